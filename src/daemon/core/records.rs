//! The core's bookkeeping by origin: each hotline call's [`CallFacts`] as
//! it moves on, the `zentrale_origin_*` counters, the caller's ACD
//! segment, and the call record written when the call is released.
//! [`crate::cdr`] decides what a record says; this file only feeds it.

use std::time::Instant;

use jiff::Timestamp;

use super::Core;
use super::index::SessionId;
use super::output::CallEvent;
use super::session::{CallingParty, Phase, Session};
use crate::acd::Segment;
use crate::call::EndReason;
use crate::cdr::{CallFacts, CallRecord};
use crate::dialplan::{CallRoute, OverflowCause};
use crate::metrics::{OriginEndLabels, OriginLabels};

/// What the dialplan's decision for a new call said beyond its route.
#[derive(Debug, Default)]
pub(super) struct Admitted {
    /// The hotline was closed: `outside_hours`, `holiday` or `closure`.
    pub closed: Option<&'static str>,
    /// It overflowed at once (closed town hall): cause and target label.
    pub overflow: Option<(OverflowCause, String)>,
}

impl Core {
    /// At exit: the records of calls still up (their BYE went unanswered),
    /// so none is lost. The calls are forgotten; the process ends anyway.
    pub fn record_remaining(&mut self, now: Instant, out: &mut super::Outputs) {
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for sid in ids {
            if self.caller(sid).is_some() {
                self.call_over(sid, EndReason::Shutdown, now);
            }
            self.sessions.remove(&sid);
        }
        self.callers = 0;
        self.hand_out(out);
    }

    /// The facts of a hotline call just accepted, counted as offered for
    /// its origin (and as overflowed, if it overflowed at once).
    pub(super) fn call_began(
        &self,
        call_id: &str,
        plan: &CallRoute,
        caller: Option<String>,
        source: &CallingParty,
        admitted: Admitted,
        now: Instant,
    ) -> CallFacts {
        let labels = OriginLabels::of(&plan.origin);
        self.metrics.origin_offered.get_or_create(&labels).inc();
        if admitted.overflow.is_some() {
            self.metrics.origin_overflowed.get_or_create(&labels).inc();
        }
        let mut facts = CallFacts::new(call_id, self.clock.at(now), caller);
        facts.closed = admitted.closed;
        facts.overflow = admitted.overflow;
        if let CallingParty::Trunk(i) = source {
            facts.trunk = self.config.trunks.get(*i).map(|t| t.name.clone());
        }
        facts
    }

    /// Moves session `sid` to `phase` ([`Session::enter`](super::session::Session::enter))
    /// at the wall-clock time of `now`, and publishes the change to the
    /// event stream when it is news there. Only a session with its caller
    /// moves on: a caller's leg that is gone takes its call's story with it.
    pub(super) fn set_phase(&mut self, sid: SessionId, phase: Phase, now: Instant) {
        let at = self.clock.at(now);
        let Some(s) = self.sessions.get_mut(&sid).filter(|s| s.caller.is_some()) else {
            return;
        };
        if s.enter(phase, at) {
            self.publish(sid, now);
        }
    }

    /// Updates a hotline call's facts (not its stage: that follows the
    /// phase) at the wall-clock time of `now`, and publishes them.
    pub(super) fn note(
        &mut self,
        sid: SessionId,
        now: Instant,
        f: impl FnOnce(&mut CallFacts, Timestamp),
    ) {
        let at = self.clock.at(now);
        let Some(s) = self.sessions.get_mut(&sid).filter(|s| s.caller.is_some()) else {
            return;
        };
        if let Some(facts) = s.facts.as_mut() {
            f(facts, at);
            self.publish(sid, now);
        }
    }

    /// Queues the call's facts for the event stream (wallboard), which
    /// shows only what a client sees change.
    fn publish(&mut self, sid: SessionId, now: Instant) {
        if let Some(s) = self.sessions.get(&sid)
            && let (Some(facts), Some(plan)) = (&s.facts, &s.plan)
        {
            self.events.push(CallEvent {
                call: sid.0,
                facts: facts.clone(),
                origin: plan.origin.clone(),
                at: now,
                ended: false,
            });
        }
    }

    /// The call overflowed to its hotline's overflow target.
    pub(super) fn note_overflow(
        &mut self,
        sid: SessionId,
        cause: OverflowCause,
        target: String,
        now: Instant,
    ) {
        if let Some(plan) = self
            .sessions
            .get(&sid)
            .filter(|s| s.caller.is_some())
            .and_then(|s| s.plan.as_ref())
        {
            self.metrics
                .origin_overflowed
                .get_or_create(&OriginLabels::of(&plan.origin))
                .inc();
        }
        self.note(sid, now, |f, _| f.overflow = Some((cause, target)));
    }

    /// The ACD segment of a caller: its municipality and whether it came
    /// via 115, so queues keep their service level per origin too.
    pub(super) fn segment(s: &Session) -> Option<Segment> {
        s.plan.as_ref().map(|p| Segment {
            municipality: p.origin.municipality.clone(),
            via_115: p.origin.via_115,
        })
    }

    /// A hotline call is released: count its disposition for its origin
    /// and queue its record for the writer (`cdr:`) and the store (`store:`).
    pub(super) fn call_over(&mut self, sid: SessionId, reason: EndReason, now: Instant) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (Some(facts), Some(plan)) = (&s.facts, &s.plan) else {
            return;
        };
        self.events.push(CallEvent {
            call: sid.0,
            facts: facts.clone(),
            origin: plan.origin.clone(),
            at: now,
            ended: true,
        });
        let origin = OriginLabels::of(&plan.origin);
        let disposition = facts.disposition().as_str();
        self.metrics
            .origin_ended
            .get_or_create(&OriginEndLabels {
                tenant: origin.tenant,
                hotline: origin.hotline,
                municipality: origin.municipality,
                via: origin.via,
                disposition,
            })
            .inc();
        // A record is built for the file (`cdr:`, with its number policy)
        // and for the store (`store:`; masked unless the file says full).
        let numbers = match (&self.config.cdr, &self.config.store) {
            (Some(cdr), _) => cdr.caller_number,
            (None, Some(_)) => crate::cdr::CallerNumbers::Masked,
            (None, None) => return,
        };
        let record = CallRecord::build(facts, plan, self.clock.at(now), reason, numbers);
        self.records.push(record);
    }
}

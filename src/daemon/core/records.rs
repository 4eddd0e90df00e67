//! The core's bookkeeping by origin: each hotline call's [`CallFacts`] as
//! it moves on, the `zentrale_origin_*` counters, the caller's ACD
//! segment, and the call record written when the call is released.
//! [`crate::cdr`] decides what a record says; this file only feeds it.

use std::time::Instant;

use jiff::Timestamp;

use super::{CallEntry, CallingParty, Core};
use crate::acd::Segment;
use crate::call::EndReason;
use crate::cdr::{CallFacts, CallRecord, Stage, Why};
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
        let ids: Vec<std::sync::Arc<str>> = self.calls.keys().cloned().collect();
        for id in ids {
            if let Some(e) = self.calls.remove(&*id) {
                self.call_over(&e, EndReason::Shutdown, now);
            }
        }
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

    /// Updates a hotline call's facts at the wall-clock time of `now`.
    pub(super) fn note(
        &mut self,
        call_id: &str,
        now: Instant,
        f: impl FnOnce(&mut CallFacts, Timestamp),
    ) {
        let at = self.clock.at(now);
        let Some(e) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Some(facts) = e.facts.as_mut() {
            f(facts, at);
            // The event stream (wallboard): publishes only what a client sees change.
            if let Some(plan) = &e.plan {
                self.metrics
                    .events
                    .call_changed(e.key.0, facts, &plan.origin, now);
            }
        }
    }

    /// The call heads for its next target for `why`: if that is a last
    /// prompt or a hang-up, the record says why (a queue or a forward
    /// moves the stage on again).
    pub(super) fn note_ending(&mut self, call_id: &str, why: Why, now: Instant) {
        self.note(call_id, now, |f, at| f.stage(Stage::Ending(why), at));
    }

    /// A last prompt or a hang-up with no reason noted: the dialplan
    /// planned it (a menu key, a target of its own).
    pub(super) fn note_planned_end(&mut self, call_id: &str, now: Instant) {
        self.note(call_id, now, |f, at| {
            if !matches!(f.stage, Stage::Ending(_)) {
                f.stage(Stage::Ending(Why::Planned), at);
            }
        });
    }

    /// The call overflowed to its hotline's overflow target.
    pub(super) fn note_overflow(
        &mut self,
        call_id: &str,
        cause: OverflowCause,
        target: String,
        now: Instant,
    ) {
        if let Some(plan) = self.calls.get(call_id).and_then(|e| e.plan.as_ref()) {
            self.metrics
                .origin_overflowed
                .get_or_create(&OriginLabels::of(&plan.origin))
                .inc();
        }
        self.note(call_id, now, |f, _| f.overflow = Some((cause, target)));
    }

    /// The ACD segment of a caller: its municipality and whether it came
    /// via 115, so queues keep their service level per origin too.
    pub(super) fn segment(e: &CallEntry) -> Option<Segment> {
        e.plan.as_ref().map(|p| Segment {
            municipality: p.origin.municipality.clone(),
            via_115: p.origin.via_115,
        })
    }

    /// A hotline call is released: count its disposition for its origin
    /// and queue its record for the writer (if the config has `cdr:`).
    pub(super) fn call_over(&mut self, e: &CallEntry, reason: EndReason, now: Instant) {
        let (Some(facts), Some(plan)) = (&e.facts, &e.plan) else {
            return;
        };
        self.metrics
            .events
            .call_ended(e.key.0, facts, &plan.origin, now);
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
        let Some(numbers) = self.config.cdr.as_ref().map(|c| c.caller_number) else {
            return;
        };
        let record = CallRecord::build(facts, plan, self.clock.at(now), reason, numbers);
        self.records.push(record);
    }
}

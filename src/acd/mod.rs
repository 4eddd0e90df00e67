//! The ACD engine: queues, agents, skills, strategies, wrap-up, pause and
//! service-level accounting. Sans-IO: no SIP, no RTP, no sockets, no tokio.
//! Time comes in as `now: Instant` arguments and leaves as deadlines
//! ([`Acd::poll_timeout`]); what the daemon must do comes back as
//! [`Offer`]s and [`Event`]s.
//!
//! # Driving it
//!
//! The daemon calls the engine on every input and executes the results:
//!
//! - a caller reaches a queue: [`Acd::enqueue`] (may reject: play the
//!   queue's full/no-agent message or route to its target);
//! - after every input that can add a caller or free an agent, and after
//!   [`Acd::handle_timeout`]: [`Acd::dispatch`] and ring the agents of each
//!   [`Offer`]; report [`Acd::offer_ringing`], [`Acd::offer_answered`]
//!   (bridge) or [`Acd::offer_failed`];
//! - the caller hangs up while waiting: [`Acd::abandon`] (cancel the legs it
//!   names); the call ends after an answer: [`Acd::call_ended`];
//! - a softphone (un)registers: [`Acd::set_registered`]; agents log in,
//!   pause, ...: [`Acd::command`] with an [`AgentCommand`] (or
//!   [`Acd::agent_login`] and friends, which it calls);
//! - sleep until [`Acd::poll_timeout`], then [`Acd::handle_timeout`] and act
//!   on its events (announce, time out, cancel ringing legs).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use zentrale::acd::*;
//!
//! let spec = AcdSpec {
//!     login_on_register: true,
//!     queues: vec![QueueSpec::new("kassel-115", "kassel", "115")],
//!     agents: vec![AgentSpec::new("anna", "kassel").with_skill("115", 5)],
//!     ..AcdSpec::default()
//! };
//! let t0 = Instant::now();
//! let acd = Acd::new(spec, t0)?;
//! acd.set_registered("anna", true, t0)?; // logs anna in
//!
//! let admission = acd.enqueue(CallKey(1), "kassel-115", 0, t0)?;
//! assert!(matches!(admission, Admission::Queued { position: 1, .. }));
//!
//! let offers = acd.dispatch(t0);
//! assert_eq!(offers[0].agents[0].as_ref(), "anna");
//! let t1 = t0 + Duration::from_secs(4);
//! acd.offer_answered(offers[0].id, "anna", t1)?; // bridge the legs
//! acd.call_ended(CallKey(1), t1 + Duration::from_secs(120))?; // anna wraps up
//!
//! let wrap_up_end = acd.poll_timeout().unwrap();
//! assert_eq!(wrap_up_end, t1 + Duration::from_secs(150));
//! let events = acd.handle_timeout(wrap_up_end);
//! assert!(matches!(&events[0], Event::WrapUpEnded { .. }));
//! assert_eq!(acd.snapshot(wrap_up_end).queues[0].counters.answered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Concurrency
//!
//! [`Acd`] is `Send + Sync` and used through `&self` (share it in an `Arc`).
//! There is no engine-wide lock on the call path:
//!
//! - each agent's state is one atomic word; claiming an agent for an offer
//!   is one compare-and-swap `Available -> Reserved(offer)` ([`agent`]);
//! - each caller's state is one atomic word; claiming it for an offer,
//!   answering, abandoning, timing out and moving are CASes on it, so a
//!   caller is taken at most once ([`queue`]);
//! - waiting callers live in a lock-free ordered map per queue, deadlines in
//!   one lock-free ordered map ([`timers`]), calls and offers in sharded
//!   `DashMap`s whose guards are never held across another access;
//! - the only locks are short per-queue statistics locks (taken when a call
//!   finishes and by snapshots), per-caller locks around the list of its
//!   timer entries, and one lock that serialises spec reloads against each
//!   other; none is held while taking another.
//!
//! # Dispatch and fairness
//!
//! [`Acd::dispatch`] walks all waiting callers in global service order
//! (effective priority descending, then original arrival ascending) and
//! gives each the best free agent its queue's [`Strategy`] picks among the
//! agents its current widening tier accepts. Because callers are served in
//! that global order, an agent eligible for several queues always takes the
//! best caller across them. A decision scans only the skill groups of the
//! caller's tier, never all agents (see [`topology`] for the complexity),
//! and each queue's callers sit in one lane per widening step, so a pass
//! gives up on a lane after one failed head instead of walking every waiting
//! caller ([`queue`]). A caller changes lane when [`Acd::handle_timeout`]
//! handles its widening deadline, so call `handle_timeout` before `dispatch`.
//! Concurrent dispatchers are safe (CAS claims) but may each see the other's
//! claims and leave a match for the next call: call `dispatch` again after
//! inputs; it is cheap when nothing matches.

mod agent;
mod command;
mod dispatch;
mod error;
mod offer;
mod queue;
mod roster;
mod service_level;
mod snapshot;
mod spec;
mod strategy;
mod timers;
mod topology;
mod waiting;

#[cfg(test)]
mod stress;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dashmap::DashMap;

pub use agent::{AgentState, Applied, PauseReason, PendingChange};
pub use command::{AgentAction, AgentCommand};
pub use error::{AgentError, CallError, OfferError};
pub use offer::{Offer, OfferFailure, OfferId};
pub use service_level::{QueueCounters, Segment, ServiceLevel};
pub use snapshot::{
    AcdSnapshot, AgentCounts, AgentSnapshot, QueueSnapshot, SegmentSnapshot, TenantSnapshot,
};
pub use spec::{
    AcdSpec, AgentSpec, Defaults, MAX_WIDEN_STEPS, QueueSpec, SKILL_LEVELS, ServiceLevelSpec,
    ShortAbandons, SpecError, WidenStep,
};
pub use strategy::Strategy;

use agent::{AgentRt, Refusal, Word};
use offer::OfferRec;
use queue::{Caller, CallerWord, QueueRt};
use service_level::Outcome;
use timers::Timers;
use topology::Topology;

/// The daemon's id for a call (opaque to the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Whether a caller got into a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Waiting at `position` (1-based) with this estimate.
    Queued {
        position: u32,
        expected_wait: Duration,
    },
    /// Not queued; the daemon sends the caller to the queue's target for
    /// the reason (full/wait-too-long message, no-agent target).
    Rejected(RejectReason),
}

/// Why [`Admission::Rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `max_waiting` callers are waiting already.
    QueueFull,
    /// The expected wait is above `max_expected_wait`.
    WaitTooLong,
    /// No eligible agent is logged in and the queue does not `join_empty`.
    NoAgents,
}

/// Legs to cancel because the caller hung up while they rang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    pub offer: OfferId,
    pub agents: Vec<Arc<str>>,
}

/// Something the daemon acts on or records. Emitted in a deterministic order
/// for a given sequence of inputs and clock values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The caller reached the queue's max wait and left it; route it to the
    /// queue's timeout target (for another queue: `enqueue_since` with
    /// `arrival` and `priority`, so it keeps its place in line).
    WaitTimeout {
        call: CallKey,
        queue: Arc<str>,
        arrival: Instant,
        priority: i32,
    },
    /// Play the periodic announcement. `position` only when it improved
    /// since the last announcement (always in the first).
    Announce {
        call: CallKey,
        queue: Arc<str>,
        position: Option<u32>,
        /// Rounded to whole minutes, at least 1.
        expected_wait_minutes: u32,
    },
    /// These agents' legs rang for the queue's ring timeout: cancel them and
    /// report each with `offer_failed(.., OfferFailure::Timeout, ..)`.
    OfferTimeout {
        offer: OfferId,
        call: CallKey,
        queue: Arc<str>,
        agents: Vec<Arc<str>>,
    },
    /// Another agent answered a ring-all offer: cancel this agent's leg
    /// (no need to report it back).
    CancelOffer {
        offer: OfferId,
        call: CallKey,
        agent: Arc<str>,
    },
    /// A caller was answered after `waited` in the queue (wait histogram).
    Answered {
        call: CallKey,
        queue: Arc<str>,
        agent: Arc<str>,
        waited: Duration,
    },
    /// An answered call ended after `talk` (talk-time histogram).
    CallEnded {
        call: CallKey,
        queue: Arc<str>,
        agent: Arc<str>,
        talk: Duration,
    },
    /// The engine paused an agent (after too many missed offers).
    AgentPaused {
        agent: Arc<str>,
        reason: PauseReason,
    },
    /// An agent's wrap-up ended; it is offered calls again.
    WrapUpEnded { agent: Arc<str> },
}

/// Converts between `Instant`s and the engine's ticks (ns since creation).
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin: Instant,
}

impl Clock {
    fn tick(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn instant(&self, tick: u64) -> Instant {
        self.origin + Duration::from_nanos(tick)
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

/// The ACD engine. See the [module docs](self).
#[derive(Debug)]
pub struct Acd {
    clock: Clock,
    topology: ArcSwap<Topology>,
    calls: DashMap<CallKey, Arc<Caller>>,
    offers: DashMap<u64, Arc<OfferRec>>,
    timers: Timers,
    next_offer: AtomicU64,
    next_seq: AtomicU64,
    next_ord: AtomicU32,
    /// Agents that are Available and registered (a hint for early exits).
    offerable: AtomicI64,
    /// Serialises `update_spec` against itself only.
    reload: Mutex<()>,
}

impl Acd {
    /// Builds the engine; `now` is the clock's origin (every later `now`
    /// must be at or after it).
    pub fn new(spec: AcdSpec, now: Instant) -> Result<Acd, SpecError> {
        spec.validate()?;
        let next_ord = AtomicU32::new(0);
        let topology = Topology::build(&spec, None, &next_ord);
        Ok(Acd {
            clock: Clock { origin: now },
            topology: ArcSwap::from_pointee(topology),
            calls: DashMap::new(),
            offers: DashMap::new(),
            timers: Timers::default(),
            next_offer: AtomicU64::new(1),
            next_seq: AtomicU64::new(0),
            next_ord,
            offerable: AtomicI64::new(0),
            reload: Mutex::new(()),
        })
    }

    /// Replaces queues, agents and defaults while running. Waiting callers
    /// keep their queue, place and priority; agents keep their state and
    /// counters; queue figures keep counting. A queue that still has callers
    /// or an agent that is logged in cannot be removed (the error says which).
    pub fn update_spec(&self, spec: AcdSpec) -> Result<(), SpecError> {
        spec.validate()?;
        let _reload = self.reload.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.topology.load_full();
        let removed_queues: Vec<&Arc<QueueRt>> = old
            .queues
            .iter()
            .filter(|q| !spec.queues.iter().any(|s| *s.name == *q.name))
            .collect();
        let removed_agents: Vec<&Arc<AgentRt>> = old
            .agents
            .iter()
            .filter(|a| !spec.agents.iter().any(|s| *s.id == *a.id))
            .collect();
        // Retire first, then check: an enqueue or login racing with us either
        // sees the flag and backs out, or is seen by the check.
        for q in &removed_queues {
            q.retired.store(true, Ordering::SeqCst);
        }
        for a in &removed_agents {
            a.retired.store(true, Ordering::SeqCst);
        }
        let in_use = removed_queues
            .iter()
            .find(|q| !q.callers.is_empty())
            .map(|q| SpecError::QueueInUse {
                queue: q.name.to_string(),
                callers: q.callers.len(),
            })
            .or_else(|| {
                removed_agents
                    .iter()
                    .find(|a| a.word().logged_in())
                    .map(|a| SpecError::AgentInUse(a.id.to_string()))
            });
        if let Some(err) = in_use {
            for q in &removed_queues {
                q.retired.store(false, Ordering::SeqCst);
            }
            for a in &removed_agents {
                a.retired.store(false, Ordering::SeqCst);
            }
            return Err(err);
        }
        let topology = Topology::build(&spec, Some(&old), &self.next_ord);
        self.topology.store(Arc::new(topology));
        Ok(())
    }

    /// The earliest deadline: call [`handle_timeout`](Acd::handle_timeout) then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|t| self.clock.instant(t))
    }

    /// Starts a new day for `FewestCalls` and `LeastTalkTime`: clears every
    /// agent's answered calls and talk time of today.
    pub fn reset_day(&self) {
        for agent in &self.topology.load().agents {
            agent.answered_today.store(0, Ordering::Relaxed);
            agent.talk_today.store(0, Ordering::Relaxed);
        }
    }

    /// CAS on an agent's word, keeping the offerable count in step.
    fn agent_cas<T>(
        &self,
        agent: &AgentRt,
        f: impl FnMut(Word) -> Result<(Word, T), Refusal>,
    ) -> Result<(Word, Word, T), Refusal> {
        let (old, new, extra) = agent.update(f)?;
        match (old.offerable(), new.offerable()) {
            (false, true) => {
                self.offerable.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                self.offerable.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        Ok((old, new, extra))
    }

    /// Bookkeeping after an agent left `offer` (its offer, call or wrap-up).
    fn agent_released(&self, agent: &AgentRt, offer: u64, new: Word, tick: u64, reset_idle: bool) {
        agent.clear_current(offer);
        agent.since.store(tick, Ordering::Release);
        if reset_idle && new.offerable() {
            agent.idle_since.store(tick, Ordering::Release);
        }
    }

    /// Hands a claimed caller back to its queue, or finishes it as abandoned
    /// if the caller hung up meanwhile.
    fn release_claim(&self, caller: &Arc<Caller>, tick: u64) {
        match caller.cas(CallerWord::CLAIMED, caller.waiting_word()) {
            Ok(()) => {}
            Err(actual) => {
                debug_assert!(actual.abandon_requested());
                if caller.cas(actual, CallerWord::GONE).is_ok() {
                    let waited = caller.waited(tick);
                    self.finish(caller, tick, Some(Outcome::Abandoned { waited }));
                }
            }
        }
    }

    /// Removes a caller whose word is `Gone` (or who was answered, with
    /// `outcome` recorded elsewhere: `None`) from its queue, the call map and
    /// the timers.
    fn finish(&self, caller: &Arc<Caller>, tick: u64, outcome: Option<Outcome>) {
        let queue = caller.queue.load_full();
        queue.remove(&caller.key());
        for key in caller.take_timers() {
            self.timers.remove(&key);
        }
        if caller.word().kind() == queue::CallerKind::Gone {
            self.calls
                .remove_if(&caller.call, |_, c| Arc::ptr_eq(c, caller));
            caller.offer.store(None);
        }
        if let Some(outcome) = outcome {
            let conf = queue.conf.load();
            queue.stats.record(tick, outcome, &conf.service_level);
            if let Some(segment) = &caller.segment {
                queue
                    .segment(segment)
                    .record(tick, outcome, &conf.service_level);
            }
        }
    }
}

impl Drop for Acd {
    fn drop(&mut self) {
        // Callers, offers and queues point at each other while a call is
        // live; break the cycles.
        for entry in self.calls.iter() {
            entry.value().offer.store(None);
        }
        for q in &self.topology.load().queues {
            q.callers.clear();
        }
        self.offers.clear();
        self.timers.clear();
    }
}

#[cfg(test)]
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Acd>();
};

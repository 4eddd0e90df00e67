//! Offers: a waiting caller proposed to one agent (or several for ring-all).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use super::CallKey;
use super::agent::AgentRt;
use super::queue::{Caller, QueueRt, TimerKey};

/// Engine-wide unique id of an offer (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OfferId(pub u64);

impl fmt::Display for OfferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offer-{}", self.0)
    }
}

/// What [`Acd::dispatch`](super::Acd::dispatch) asks the daemon to do: ring
/// these agents for this call. The agents are reserved until the daemon
/// reports back with `offer_answered` or `offer_failed` (or the caller
/// abandons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub id: OfferId,
    pub call: CallKey,
    pub queue: Arc<str>,
    /// One agent, or every eligible free agent for ring-all (first answer wins).
    pub agents: Vec<Arc<str>>,
    /// How long the caller has waited in this queue so far.
    pub waited: Duration,
    /// After this the engine emits [`Event::OfferTimeout`](super::Event::OfferTimeout).
    pub ring_timeout: Duration,
}

/// Why an agent did not take an offer. Every kind but
/// [`NotPlaced`](OfferFailure::NotPlaced) counts as a missed offer for the
/// agent's no-answer streak and in `offers_unanswered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferFailure {
    /// Rang until the ring timeout.
    Timeout,
    /// The phone answered busy (486/600).
    Busy,
    /// The agent rejected it (603 or a decline button).
    Declined,
    /// No binding, no route, or the phone did not respond.
    Unreachable,
    /// zentrale could not place the call to the agent (no RTP port of its
    /// own): not the agent's miss. The agent keeps its place in the idle
    /// line, the caller its place in the queue, and the next dispatch
    /// offers again.
    NotPlaced,
}

/// The engine's record of an offer, shared by the offer map, the caller,
/// and the ring timer.
#[derive(Debug)]
pub(crate) struct OfferRec {
    pub id: OfferId,
    pub caller: Arc<Caller>,
    pub queue: Arc<QueueRt>,
    pub agents: Vec<Arc<AgentRt>>,
    /// Agents whose leg has not failed yet; at zero the caller goes back.
    pub outstanding: AtomicU32,
    /// Ordinal of the agent that answered (`u32::MAX`: none yet).
    pub answered_by: AtomicU32,
    /// Tick of the answer.
    pub answered_at: AtomicU64,
    /// The ring-timeout entry, removed once the offer is resolved.
    pub ring_timer: TimerKey,
}

impl OfferRec {
    pub fn agent(&self, id: &str) -> Option<&Arc<AgentRt>> {
        self.agents.iter().find(|a| &*a.id == id)
    }
}

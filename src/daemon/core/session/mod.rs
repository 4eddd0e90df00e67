//! One object per call: the [`Session`].
//!
//! A session owns its caller leg ([`caller`]; optional in the type: a
//! callback session has none until it dials the caller), its outbound
//! legs ([`Leg`], each of a [`LegKind`] whose own behaviour lives in its
//! own file: [`offer`], [`forward`]), its [`Phase`], its IVR menu and the
//! facts its call record is built from. [`Session::enter`] is the one
//! place the phase changes, and the record's stage follows from it.
//!
//! The sessions sit in the core by [`SessionId`]; the core's
//! [`Index`](super::index::Index) routes every input to one.

pub mod caller;
pub mod forward;
pub mod offer;
pub mod phase;

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;

use super::index::{LegId, SessionId};
use crate::call::agent_leg::AgentLeg;
use crate::cdr::CallFacts;
use crate::dialplan::{CallRoute, Menu, Route};
use crate::media::engine::StreamId;
use crate::media::sdp::SdpSession;
use crate::sip::transaction::ServerKey;

pub use caller::{CallerLeg, CallingParty, MediaLeg};
pub use phase::{Next, Phase};

/// See the module docs.
pub struct Session {
    pub id: SessionId,
    /// The caller's leg: `None` before a callback dials the caller, and
    /// after the caller's leg was released while outbound legs still end.
    pub caller: Option<CallerLeg>,
    /// Outbound legs, in the order they were placed (a few at most).
    pub legs: Vec<Leg>,
    phase: Phase,
    pub route: Arc<Route>,
    /// The dialplan's decision: origin, menu, overflow, limits (`None` for
    /// feature codes).
    pub plan: Option<CallRoute>,
    /// The IVR menu, while it runs.
    pub menu: Option<Menu>,
    /// What the call record will say (`None` for feature codes).
    pub facts: Option<CallFacts>,
    /// The caller's number for the agent's display ("anonymous" when
    /// withheld; a withheld number is never kept).
    pub caller_number: String,
    /// The timer currently scheduled for this session in the index.
    pub scheduled: Option<Instant>,
}

impl Session {
    pub fn new(id: SessionId, phase: Phase, route: Arc<Route>, caller_number: String) -> Session {
        Session {
            id,
            caller: None,
            legs: Vec::new(),
            phase,
            route,
            plan: None,
            menu: None,
            facts: None,
            caller_number,
            scheduled: None,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Moves the session to `phase` at the wall-clock time `at`: the only
    /// place the phase changes. The record's stage follows (see
    /// [`Phase::stage`]). Returns whether the change is news for the event
    /// stream (a hotline call past its greeting).
    pub fn enter(&mut self, phase: Phase, at: Timestamp) -> bool {
        let facts = self.facts.as_mut();
        let publish = facts.is_some() && phase.published();
        if let (Some(stage), Some(f)) = (phase.stage(), facts) {
            f.stage(stage, at);
        }
        self.phase = phase;
        publish
    }

    pub fn leg(&self, id: LegId) -> Option<&Leg> {
        self.legs.iter().find(|l| l.id == id)
    }

    pub fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.id == id)
    }

    pub fn take_leg(&mut self, id: LegId) -> Option<Leg> {
        let i = self.legs.iter().position(|l| l.id == id)?;
        Some(self.legs.remove(i))
    }

    /// Whether the session is over: its call ended and no outbound leg
    /// is left. (A callback waits without a caller leg and without legs,
    /// and is not over.)
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Ended && self.caller.is_none() && self.legs.is_empty()
    }
}

/// What an outbound leg is for. Each kind's behaviour is in its own file;
/// a new kind (transfer target, consultation, callback) is a variant and
/// a file.
#[derive(Debug, Clone)]
pub enum LegKind {
    /// An ACD offer of the caller to an agent ([`offer`]).
    Offer(offer::OfferLeg),
    /// A queue's SIP URI target: another service center's system ([`forward`]).
    Forward(forward::ForwardLeg),
}

impl LegKind {
    /// The ACD offer this leg carries, for the index.
    pub fn offer(&self) -> Option<(crate::acd::OfferId, Arc<str>)> {
        match self {
            LegKind::Offer(o) => Some((o.offer, o.agent.clone())),
            LegKind::Forward(_) => None,
        }
    }

    /// Whether the ACD counts a conversation over this leg (its end
    /// starts the agent's wrap-up).
    pub fn counts_in_acd(&self) -> bool {
        matches!(self, LegKind::Offer(_))
    }
}

/// An outbound leg (to an agent, or forwarded): its SIP side and its media.
pub struct Leg {
    pub id: LegId,
    pub sip: AgentLeg,
    pub kind: LegKind,
    /// The far side already knows how this leg ends (ring timeout
    /// reported, another agent answered, the caller left), so a later
    /// failure of the leg is not reported again.
    pub settled: bool,
    pub port: u16,
    pub stream: StreamId,
    /// Whether the stream is still to be started (when the far side answers).
    pub unstarted: bool,
    pub sdp: SdpSession,
    /// SRTP towards this leg (the agent's `srtp:`; forwards: off).
    pub srtp: crate::media::srtp::SrtpPolicy,
    /// The far side put the caller on hold (re-INVITE sendonly/inactive).
    pub held: bool,
    /// The far side's last re-INVITE, whose 2xx its ACK stops.
    pub reinvite: Option<ServerKey>,
}

#[cfg(test)]
mod tests;

//! Where a call is: one enum for what the core does with the caller next
//! and what the call's record says.
//!
//! [`Session::enter`](super::Session::enter) is the only place that
//! changes a session's phase; the record's [`Stage`] is derived from the
//! phase there, so the two never drift apart.

use std::sync::Arc;

use super::super::index::LegId;
use crate::cdr::{Stage, Why};
use crate::dialplan::Target;

/// What a caller gets once the greeting is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The hotline: greeting, then its menu, its queue or `waiting` in a loop.
    Hotline,
    /// The greeting, then this target (closed hours, overflow when closed).
    Greeting(Target),
    /// No greeting, straight to this target (surge limits: the busy target).
    Direct(Target),
}

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not answered by zentrale yet; `Next` follows the greeting.
    Ringing(Next),
    /// Answered; the greeting plays, then `Next`.
    Greeting(Next),
    /// In the hotline's IVR menu (`Session::menu`).
    Menu,
    /// A hotline without a queue: its waiting prompt loops.
    Waiting,
    /// In an ACD queue: waiting, or being offered to agents.
    Queued { queue: Arc<str> },
    /// Forwarded to a SIP URI target; that leg rings.
    Forwarding { leg: LegId },
    /// Talking to an agent over this leg.
    Talking { leg: LegId },
    /// Talking to a forward target over this leg.
    Forwarded { leg: LegId },
    /// On the way to a target the call was sent to for this reason (within
    /// one input: the target is taken at once).
    Leaving(Why),
    /// A last prompt plays (or the hang-up is under way) for this reason;
    /// when the prompt ends zentrale hangs up.
    Closing(Why),
    /// The conversation ended from the far side: zentrale hangs up the
    /// caller, and the record keeps what the call was.
    Parting,
    /// The caller's leg is released and the call's record written; the
    /// session goes when its last outbound leg has ended.
    Ended,
}

impl Phase {
    /// What the call's record says in this phase; `None`: what it said
    /// before.
    pub fn stage(&self) -> Option<Stage> {
        Some(match self {
            Phase::Ringing(_) => Stage::Ringing,
            Phase::Greeting(_) => Stage::Greeting,
            Phase::Menu => Stage::Menu,
            Phase::Waiting => Stage::Waiting,
            Phase::Queued { .. } => Stage::Queued,
            Phase::Forwarding { .. } => Stage::Forwarding,
            Phase::Talking { .. } => Stage::Talking,
            Phase::Forwarded { .. } => Stage::Forwarded,
            Phase::Leaving(why) | Phase::Closing(why) => Stage::Ending(*why),
            Phase::Parting | Phase::Ended => return None,
        })
    }

    /// Whether entering this phase is news for the event stream: a call
    /// shows there once past its greeting (answering was never published),
    /// and its end is published as such (`call_ended`).
    pub fn published(&self) -> bool {
        !matches!(
            self,
            Phase::Ringing(_) | Phase::Greeting(_) | Phase::Parting | Phase::Ended
        )
    }

    /// The outbound leg the caller is connected to or forwarded over.
    pub fn leg(&self) -> Option<LegId> {
        match self {
            Phase::Forwarding { leg } | Phase::Talking { leg } | Phase::Forwarded { leg } => {
                Some(*leg)
            }
            _ => None,
        }
    }

    /// Why the call is ending, if it is heading for a last prompt or a
    /// hang-up; a target the dialplan chose itself otherwise.
    pub fn ending_why(&self) -> Why {
        match self {
            Phase::Leaving(why) | Phase::Closing(why) => *why,
            _ => Why::Planned,
        }
    }
}

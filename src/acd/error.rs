//! Errors of engine operations: what went wrong and what the caller of the
//! API should do about it. None of them changes engine state.

use thiserror::Error;

use super::agent::Refusal;
use super::{CallKey, OfferId};

/// An agent operation that does not fit the agent's state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AgentError {
    #[error("unknown agent `{0}`: add it to the ACD agents in the config, or check the id")]
    Unknown(String),
    #[error("agent `{0}` is already logged in")]
    AlreadyLoggedIn(String),
    #[error("agent `{0}` is not logged in; log in first")]
    NotLoggedIn(String),
    #[error("agent `{0}` is not paused and has no pause pending")]
    NotPaused(String),
    #[error("agent `{0}` is not in wrap-up")]
    NotInWrapUp(String),
    #[error(
        "unknown pause reason `{reason}`: use one of {known} (acd.pause_reasons in the config)"
    )]
    UnknownPauseReason { reason: String, known: String },
}

impl AgentError {
    pub(crate) fn from_refusal(agent: &str, r: Refusal) -> AgentError {
        let id = agent.to_owned();
        match r {
            Refusal::AlreadyLoggedIn => AgentError::AlreadyLoggedIn(id),
            Refusal::NotLoggedIn => AgentError::NotLoggedIn(id),
            Refusal::NotPaused => AgentError::NotPaused(id),
            Refusal::NotInWrapUp | Refusal::WrongState => AgentError::NotInWrapUp(id),
        }
    }
}

/// A call operation that does not fit the call's state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallError {
    #[error("unknown queue `{0}`: check the queue name against the ACD queues in the config")]
    UnknownQueue(String),
    #[error(
        "call {0} is not known to the ACD (never queued, or already answered and ended, abandoned or timed out)"
    )]
    UnknownCall(CallKey),
    #[error("call {0} is already queued; use move_caller to change its queue")]
    AlreadyQueued(CallKey),
    #[error("call {0} is connected to an agent; report its end with call_ended")]
    Connected(CallKey),
    #[error(
        "call {0} is not connected to an agent; a caller who hangs up while waiting is reported with abandon"
    )]
    NotConnected(CallKey),
    #[error("call {0} is being offered to an agent right now; move it after the offer fails")]
    BeingOffered(CallKey),
    #[error("call {0} already waits in queue `{1}`")]
    SameQueue(CallKey, String),
}

/// An offer report that no longer fits the offer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OfferError {
    #[error("{0} is not pending any more (answered, failed or cancelled); cancel the agent's leg")]
    UnknownOffer(OfferId),
    #[error(
        "agent `{agent}` is not ringing for {offer} (its leg failed or was cancelled); cancel the agent's leg"
    )]
    NotOnOffer { offer: OfferId, agent: String },
    #[error("the caller of {0} hung up before the answer; hang up the agent's leg")]
    CallerGone(OfferId),
    #[error("another agent answered {0} first; hang up this agent's leg")]
    AnsweredElsewhere(OfferId),
}

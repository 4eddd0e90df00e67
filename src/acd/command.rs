//! Agent commands: the changes to an agent that people ask for (log in,
//! pause, ...), as plain values.
//!
//! A supervisor asks through the HTTP API, an agent by dialling a feature
//! code; both become one [`AgentCommand`]. The daemon's core takes it as an
//! input like a SIP message or a timer, so every change reaches the engine
//! in one order, and a recorded sequence of inputs replays to the same
//! states.

use std::time::Instant;

use super::agent::PauseReason;
use super::{Acd, AgentError, AgentSnapshot};

/// What to do to an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// Log in ([`Acd::agent_login`]); during a call it cancels a pending logout.
    Login,
    /// Log out ([`Acd::agent_logout`]), after the current call if there is one.
    Logout,
    /// Pause ([`Acd::agent_pause`]), after the current call and wrap-up if
    /// there are. `None`: the default reason ([`Acd::default_pause_reason`],
    /// the first configured), chosen when the command is applied.
    Pause { reason: Option<PauseReason> },
    /// Available again, or cancel a pending pause ([`Acd::agent_unpause`]).
    Unpause,
    /// End wrap-up early ([`Acd::agent_ready`]).
    Ready,
}

impl AgentAction {
    /// The action as the API's routes and the logs name it (`login`,
    /// `logout`, `pause`, `unpause`, `ready`).
    pub fn name(&self) -> &'static str {
        match self {
            AgentAction::Login => "login",
            AgentAction::Logout => "logout",
            AgentAction::Pause { .. } => "pause",
            AgentAction::Unpause => "unpause",
            AgentAction::Ready => "ready",
        }
    }
}

/// A change asked for one agent.
///
/// ```
/// use std::time::Instant;
/// use zentrale::acd::*;
///
/// let spec = AcdSpec {
///     queues: vec![QueueSpec::new("kassel-115", "kassel", "115")],
///     agents: vec![AgentSpec::new("anna", "kassel").with_skill("115", 5)],
///     ..AcdSpec::default()
/// };
/// let t0 = Instant::now();
/// let acd = Acd::new(spec, t0)?;
/// let anna = acd.command(&AgentCommand::new("anna", AgentAction::Login), t0)?;
/// assert_eq!(anna.state, AgentState::Available);
/// let pause = AgentCommand::new("anna", AgentAction::Pause { reason: None });
/// assert_eq!(acd.command(&pause, t0)?.state, AgentState::Paused(PauseReason::Break));
/// assert!(matches!(
///     acd.command(&AgentCommand::new("otto", AgentAction::Login), t0),
///     Err(AgentError::Unknown(_))
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    /// The agent's id (its extension).
    pub agent: String,
    pub action: AgentAction,
}

impl AgentCommand {
    pub fn new(agent: impl Into<String>, action: AgentAction) -> AgentCommand {
        AgentCommand {
            agent: agent.into(),
            action,
        }
    }
}

impl Acd {
    /// Applies `command` at `now` and returns the agent as the command left
    /// it (before any dispatch that follows), or why it was refused; a
    /// refused command changes nothing.
    pub fn command(
        &self,
        command: &AgentCommand,
        now: Instant,
    ) -> Result<AgentSnapshot, AgentError> {
        let agent = command.agent.as_str();
        match &command.action {
            AgentAction::Login => self.agent_login(agent, now)?,
            AgentAction::Logout => self.agent_logout(agent, now).map(|_| ())?,
            AgentAction::Pause { reason } => {
                let reason = reason
                    .clone()
                    .unwrap_or_else(|| self.default_pause_reason());
                self.agent_pause(agent, reason, now).map(|_| ())?
            }
            AgentAction::Unpause => self.agent_unpause(agent, now)?,
            AgentAction::Ready => self.agent_ready(agent, now)?,
        }
        self.agent_snapshot(agent)
            .ok_or_else(|| AgentError::Unknown(agent.to_owned()))
    }
}

//! Agents logging in and out, pausing, registering their phones.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::agent::{AgentRt, Applied, Kind, PauseReason, Refusal, Word};
use super::{Acd, AgentError};

impl Acd {
    /// Logs an agent in (Available). Calls are offered only while its phone
    /// is registered too. Logging in during a call cancels a pending logout.
    pub fn agent_login(&self, agent: &str, now: Instant) -> Result<(), AgentError> {
        let a = self.agent(agent)?;
        let (old, _, ()) = self.change(&a, |w| w.login().map(|n| (n, ())))?;
        if old.kind() == Kind::LoggedOut {
            self.logged_in(&a, now)?;
        }
        Ok(())
    }

    /// Logs an agent out; during an offer or call it happens when the call
    /// (and its wrap-up) is over.
    pub fn agent_logout(&self, agent: &str, now: Instant) -> Result<Applied, AgentError> {
        let a = self.agent(agent)?;
        let (old, _, applied) = self.change(&a, |w| w.logout())?;
        if applied == Applied::Now {
            a.clear_current(old.offer());
            a.since.store(self.clock.tick(now), Ordering::Release);
        }
        Ok(applied)
    }

    /// Pauses an agent (or changes the reason of a pause); during an offer,
    /// call or wrap-up the pause starts when that is over.
    pub fn agent_pause(
        &self,
        agent: &str,
        reason: PauseReason,
        now: Instant,
    ) -> Result<Applied, AgentError> {
        let allowed = &self.topology.load().pause_reasons;
        if !allowed.is_empty()
            && reason != PauseReason::NoAnswer
            && !allowed.iter().any(|r| r == reason.name())
        {
            return Err(AgentError::UnknownPauseReason {
                reason: reason.name().to_owned(),
                known: allowed.join(", "),
            });
        }
        let a = self.agent(agent)?;
        a.note_reason(&reason);
        let (_, _, applied) = self.change(&a, |w| w.pause(&reason))?;
        if applied == Applied::Now {
            // From Available or Paused: no call to forget.
            a.since.store(self.clock.tick(now), Ordering::Release);
        }
        Ok(applied)
    }

    /// The pause reason a pause without one gets: the first configured,
    /// else `break`.
    pub fn default_pause_reason(&self) -> PauseReason {
        self.topology
            .load()
            .pause_reasons
            .first()
            .map_or(PauseReason::Break, |r| PauseReason::from_name(r))
    }

    /// Ends a pause (or cancels one that waits for the current call).
    pub fn agent_unpause(&self, agent: &str, now: Instant) -> Result<(), AgentError> {
        let a = self.agent(agent)?;
        let (old, _, ()) = self.change(&a, |w| w.unpause().map(|n| (n, ())))?;
        if old.kind() == Kind::Paused {
            let tick = self.clock.tick(now);
            a.since.store(tick, Ordering::Release);
            a.idle_since.store(tick, Ordering::Release);
        }
        Ok(())
    }

    /// Ends the agent's wrap-up early ("ready").
    pub fn agent_ready(&self, agent: &str, now: Instant) -> Result<(), AgentError> {
        let a = self.agent(agent)?;
        let (old, new, ()) = self.change(&a, |w| w.ready().map(|n| (n, ())))?;
        self.agent_released(&a, old.offer(), new, self.clock.tick(now), true);
        Ok(())
    }

    /// The agent's softphone registered or its binding expired. Only
    /// registered agents are offered calls; with `login_on_register` a
    /// registration also logs the agent in. Un-registering never logs out.
    pub fn set_registered(
        &self,
        agent: &str,
        registered: bool,
        now: Instant,
    ) -> Result<(), AgentError> {
        let a = self.agent(agent)?;
        let login_on_register = self.topology.load().login_on_register;
        let (old, new, ()) =
            self.change(&a, |w| Ok((w.register(registered, login_on_register), ())))?;
        if !old.logged_in() && new.logged_in() {
            self.logged_in(&a, now)?;
        }
        Ok(())
    }

    fn agent(&self, agent: &str) -> Result<Arc<AgentRt>, AgentError> {
        self.topology
            .load()
            .agent(agent)
            .cloned()
            .ok_or_else(|| AgentError::Unknown(agent.to_owned()))
    }

    fn change<T>(
        &self,
        agent: &AgentRt,
        f: impl FnMut(Word) -> Result<(Word, T), Refusal>,
    ) -> Result<(Word, Word, T), AgentError> {
        self.agent_cas(agent, f)
            .map_err(|r| AgentError::from_refusal(&agent.id, r))
    }

    /// Bookkeeping of a fresh login; undoes it if a reload removes the agent.
    fn logged_in(&self, a: &AgentRt, now: Instant) -> Result<(), AgentError> {
        if a.retired.load(Ordering::SeqCst) {
            let _ = self.agent_cas(a, |w| w.logout());
            return Err(AgentError::Unknown(a.id.to_string()));
        }
        let tick = self.clock.tick(now);
        a.since.store(tick, Ordering::Release);
        a.idle_since.store(tick, Ordering::Release);
        Ok(())
    }
}

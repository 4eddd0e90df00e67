//! The core's ACD side: callers into queues, offers into agent legs, agent
//! answers into bridged media, and the ACD's timers into prompts and
//! targets. The [`Acd`] decides; this file only carries its decisions to
//! SIP and RTP and reports back what happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Core;
use super::index::SessionId;
use super::session::Phase;
use crate::acd::{
    AcdSpec, Admission, AgentAction, AgentCommand, AgentError, AgentSnapshot, AgentSpec, CallKey,
    Defaults, Event, Offer, OfferFailure, OfferId, PauseReason, QueueSpec, RejectReason,
    ServiceLevelSpec, WidenStep,
};
use crate::call::EndReason;
use crate::cdr::Why;
use crate::config::{self, Config, Feature};
use crate::dialplan::QueueExit;
use crate::dialplan::Target;
use crate::media::engine::Playlist;
use crate::sip::Transport;
use crate::sip::transaction::Transmit;

/// Dispatch passes per input at most (see [`Core::run_dispatch`]).
const MAX_DISPATCH_PASSES: usize = 4;

/// After zentrale failed to place an agent's leg (no RTP port), the next
/// dispatch comes this much later at the latest.
pub(super) const NOT_PLACED_RETRY: Duration = Duration::from_secs(1);

/// The ACD's name of a configured queue.
pub(super) fn queue_name(q: &config::Queue) -> String {
    q.reference().to_string()
}

/// Maps the typed config onto the engine's spec.
pub fn acd_spec(config: &Config) -> AcdSpec {
    let defaults = Defaults {
        wrap_up: config.acd.wrap_up,
        max_missed_offers: config.acd.max_missed_offers.unwrap_or(0),
        ..Defaults::default()
    };
    let queues = config
        .queues()
        .map(|q| QueueSpec {
            name: queue_name(q),
            tenant: q.tenant.clone(),
            agents_from: q.agents_from.clone(),
            skill: q.skill.clone(),
            min_level: q.min_level,
            strategy: q.strategy,
            base_priority: q.priority,
            max_waiting: q.max_waiting.map(|n| n as usize),
            max_expected_wait: q.max_expected_wait,
            join_empty: q.join_empty,
            max_wait: q.max_wait,
            announce_every: q.announce_every.unwrap_or(Duration::ZERO),
            ring_timeout: Some(q.ring_timeout),
            wrap_up: Some(q.wrap_up),
            widen: q
                .widen
                .iter()
                .map(|w| WidenStep {
                    after: w.after,
                    min_level: w.min_level,
                    skill: (w.skill != q.skill).then(|| w.skill.clone()),
                })
                .collect(),
            service_level: Some(ServiceLevelSpec {
                threshold: q.service_level.threshold,
                target_percent: q.service_level.target_percent,
                window: q.service_level.window,
                ..ServiceLevelSpec::default()
            }),
        })
        .collect();
    let agents = config
        .agents
        .iter()
        .map(|a| AgentSpec {
            id: a.extension.clone(),
            tenant: a.tenant.clone(),
            skills: a.skills.clone(),
            wrap_up: a.wrap_up,
            max_missed_offers: a.max_missed_offers,
        })
        .collect();
    AcdSpec {
        login_on_register: config.acd.login_on_register,
        defaults,
        queues,
        agents,
        pause_reasons: config.acd.pause_reasons.clone(),
    }
}

/// The `X-Zentrale-Origin` value of an outbound leg:
/// `tenant/hotline;municipality="Quickborn";via=local|115[;forwarded]`.
/// The tenant and hotline are those of the number the caller dialled (for a
/// call forwarded from a town hall: the town hall's), not of the queue that
/// handles the call.
pub(super) fn origin_header(origin: &crate::dialplan::Origin) -> String {
    let municipality = origin.municipality.replace(['"', '\\'], "");
    let mut value = format!(
        "{}/{};municipality=\"{municipality}\";via={}",
        origin.tenant,
        origin.hotline,
        origin.via_label()
    );
    if origin.forwarded {
        value.push_str(";forwarded");
    }
    value
}

impl Core {
    /// The caller heard its greeting (or has none): its hotline's queue takes over.
    pub(super) fn join_queue(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        let Some(s) = self.sessions.get(&sid).filter(|s| s.caller.is_some()) else {
            return;
        };
        let Some(queue) = s.route.queue.clone() else {
            // A hotline without a queue: its waiting prompt loops.
            return self.set_phase(sid, Phase::Waiting, now);
        };
        let priority = s.route.priority;
        self.admit(sid, &queue, priority, None, now, out);
    }

    /// Puts a caller into `queue` (keeping its place from `arrival` when it
    /// comes from another queue) or sends it to the queue's target.
    fn admit(
        &mut self,
        sid: SessionId,
        queue: &str,
        priority: i32,
        arrival: Option<Instant>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(s) = self.sessions.get(&sid).filter(|s| s.caller.is_some()) else {
            return;
        };
        let segment = Core::segment(s);
        let call_id = s.caller.as_ref().map_or("", |c| &*c.call.dialog.call_id);
        let result = self.acd.enqueue_segment(
            sid.key(),
            queue,
            priority,
            arrival.unwrap_or(now),
            segment,
            now,
        );
        let conf = self.queue_conf(queue);
        match result {
            Ok(Admission::Queued { position, .. }) => {
                info!(%call_id, queue, position, "caller queued");
                let music = self.queue_music(queue);
                if let Some(f) = self.sessions.get_mut(&sid).and_then(|s| s.facts.as_mut()) {
                    f.queue = Some(queue.to_owned());
                }
                self.set_phase(
                    sid,
                    Phase::Queued {
                        queue: Arc::from(queue),
                    },
                    now,
                );
                // Straight from the greeting the queue's music loops already;
                // moved here from another queue: this queue's music, no greeting again.
                if arrival.is_some()
                    && let Some(c) = self.caller(sid)
                {
                    let playlist = Playlist {
                        items: Vec::new(),
                        then_loop: music,
                    };
                    self.media.play(c.media.stream, playlist);
                }
                self.acd_dirty = true;
            }
            Ok(Admission::Rejected(reason)) => {
                info!(%call_id, queue, ?reason, "caller not admitted");
                let exit = match reason {
                    RejectReason::NoAgents => QueueExit::NoAgents,
                    RejectReason::QueueFull | RejectReason::WaitTooLong => QueueExit::Full,
                };
                let target = conf
                    .map(|q| match reason {
                        RejectReason::NoAgents => q.on_no_agents.clone(),
                        RejectReason::QueueFull | RejectReason::WaitTooLong => q.on_full.clone(),
                    })
                    .unwrap_or_else(Target::call_later);
                let why = match reason {
                    RejectReason::NoAgents => Why::NoAgents,
                    RejectReason::QueueFull | RejectReason::WaitTooLong => Why::QueueFull,
                };
                self.set_phase(sid, Phase::Leaving(why), now);
                self.count_overflow(sid, &target, exit, now);
                self.go_to(sid, target, priority, arrival, now, out);
            }
            Err(err) => {
                warn!(%call_id, queue, error = %err, "queue refused the caller");
                self.go_to(sid, Target::call_later(), priority, arrival, now, out);
            }
        }
    }

    /// Sends a caller to a queue's target.
    pub(super) fn go_to(
        &mut self,
        sid: SessionId,
        target: Target,
        priority: i32,
        arrival: Option<Instant>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        match target {
            Target::Queue(r) => {
                let name = r.to_string();
                let already_there = self.sessions.get(&sid).is_some_and(
                    |s| matches!(s.phase(), Phase::Queued { queue } if **queue == *name),
                );
                if already_there {
                    // Config validation forbids self-targets; never loop anyway.
                    return self.close_with_prompt(sid, "call-later", now, out);
                }
                self.admit(sid, &name, priority, arrival.or(Some(now)), now, out);
            }
            Target::Prompt(p) => self.close_with_prompt(sid, &p, now, out),
            Target::Uri(uri) => self.forward(sid, &uri, now, out),
            Target::Hangup => {
                self.close(sid, now);
                self.hang_up_caller(sid, EndReason::Completed, now, out)
            }
        }
    }

    /// The call heads for its end: a last prompt or a hang-up, for the
    /// reason it is leaving for (the dialplan's plan if none).
    fn close(&mut self, sid: SessionId, now: Instant) {
        let Some(why) = self.sessions.get(&sid).map(|s| s.phase().ending_why()) else {
            return;
        };
        self.set_phase(sid, Phase::Closing(why), now);
    }

    /// Plays `prompt` once; the caller is hung up when it ends.
    pub(super) fn close_with_prompt(
        &mut self,
        sid: SessionId,
        prompt: &str,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        self.close(sid, now);
        let Some(c) = self.caller(sid) else {
            return;
        };
        match self.prompts.get(prompt) {
            Some(p) => self.media.play(c.media.stream, Playlist::once(p)),
            None => self.hang_up_caller(sid, EndReason::Completed, now, out),
        }
    }

    pub(super) fn hang_up_caller(
        &mut self,
        sid: SessionId,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let actions = self
            .caller_mut(sid)
            .map(|c| c.call.hang_up(reason))
            .unwrap_or_default();
        self.execute(sid, actions, now, out);
    }

    /// Matches free agents to waiting callers, if anything changed.
    pub(super) fn run_dispatch(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        // An offer that fails at once (no binding) frees its agent and the
        // caller again, so another pass may match them anew. Bounded: with
        // `max_missed_offers: 0` such an agent would otherwise be offered
        // forever within one input; the next input picks up the rest.
        for _ in 0..MAX_DISPATCH_PASSES {
            if !std::mem::take(&mut self.acd_dirty) {
                return;
            }
            for offer in self.acd.dispatch(now) {
                self.place_offer(&offer, now, out);
            }
        }
    }

    /// Rings the agents of an ACD offer. A session without a caller leg
    /// (a callback before it dials the caller) holds offers like any
    /// other; only a session that is gone is "caller gone".
    pub(super) fn place_offer(&mut self, offer: &Offer, now: Instant, out: &mut Vec<Transmit>) {
        let sid = SessionId::from(offer.call);
        if !self.sessions.contains_key(&sid) {
            // The caller is gone already; tell the engine so it moves on.
            for agent in &offer.agents {
                self.report_failure(offer.id, agent, OfferFailure::Unreachable, now, out);
            }
            return;
        }
        for agent in &offer.agents {
            if let Err(failure) = self.ring_agent(offer, sid, agent, now, out) {
                if failure == OfferFailure::NotPlaced {
                    self.dispatch_retry.get_or_insert(now + NOT_PLACED_RETRY);
                }
                self.report_failure(offer.id, agent, failure, now, out);
            }
        }
    }

    pub(super) fn report_failure(
        &mut self,
        offer: OfferId,
        agent: &str,
        failure: OfferFailure,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        match self.acd.offer_failed(offer, agent, failure, now) {
            Ok(events) => self.on_acd_events(events, now, out),
            Err(e) => debug!(%offer, agent, error = %e, "offer failure not taken"),
        }
        self.acd_dirty = true;
    }

    /// "Sie werden verbunden", then the queue music again.
    pub(super) fn connecting_prompt(&mut self, sid: SessionId) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (Some(c), Phase::Queued { queue }) = (&s.caller, s.phase()) else {
            return;
        };
        let music = self.queue_music(queue);
        self.media.play(
            c.media.stream,
            Playlist {
                items: self.prompts.get("connecting").into_iter().collect(),
                then_loop: music,
            },
        );
    }

    pub(super) fn conversation_over(
        &mut self,
        sid: SessionId,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let call = sid.key();
        match self.acd.call_ended(call, now) {
            Ok(events) => self.on_acd_events(events, now, out),
            Err(e) => debug!(%call, error = %e, "call end not taken"),
        }
        self.acd_dirty = true;
    }

    /// The caller's leg is being released: take it out of the ACD and end
    /// whatever outbound leg it talks over or waits for.
    pub(super) fn caller_gone(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        let Some(phase) = self.sessions.get(&sid).map(|s| s.phase().clone()) else {
            return;
        };
        if let Phase::Queued { .. } = phase {
            if let Ok(Some(cancel)) = self.acd.abandon(sid.key(), now) {
                for agent in &cancel.agents {
                    self.cancel_leg(cancel.offer, agent, now, out);
                }
            }
            self.acd_dirty = true;
        } else if let Some(leg) = phase.leg() {
            let mut from_acd = false;
            if let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(leg)) {
                from_acd = l.kind.counts_in_acd();
                l.settled = true;
                let actions = l.sip.cancel_or_hang_up();
                self.execute_leg(sid, leg, actions, now, out);
            }
            if from_acd {
                self.conversation_over(sid, now, out);
            }
        }
    }

    pub(super) fn cancel_leg(
        &mut self,
        offer: OfferId,
        agent: &Arc<str>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some((sid, lid)) = self.index.offer(offer, agent) else {
            return;
        };
        if let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) {
            l.settled = true;
            let actions = l.sip.cancel_or_hang_up();
            self.execute_leg(sid, lid, actions, now, out);
        }
    }

    /// Acts on what the engine reports.
    pub(super) fn on_acd_events(
        &mut self,
        events: Vec<Event>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        for event in events {
            match event {
                Event::WaitTimeout {
                    call,
                    queue,
                    arrival,
                    priority,
                } => {
                    let sid = SessionId::from(call);
                    let Some(c) = self.caller(sid) else {
                        continue;
                    };
                    info!(caller_call_id = %c.call.dialog.call_id, %queue, "maximum wait reached");
                    let target = self
                        .queue_conf(&queue)
                        .map(|q| q.on_timeout.clone())
                        .unwrap_or_else(Target::call_later);
                    self.count_overflow(sid, &target, QueueExit::Timeout, now);
                    // The caller left `queue`; go_to must not see it there.
                    self.set_phase(sid, Phase::Leaving(Why::TimedOut), now);
                    self.go_to(sid, target, priority, Some(arrival), now, out);
                }
                Event::Announce {
                    call,
                    queue,
                    position,
                    expected_wait_minutes,
                } => self.announce(call, &queue, position, expected_wait_minutes),
                Event::OfferTimeout { offer, agents, .. } => {
                    for agent in &agents {
                        self.cancel_leg(offer, agent, now, out);
                        self.report_failure(offer, agent, OfferFailure::Timeout, now, out);
                    }
                }
                Event::CancelOffer { offer, agent, .. } => self.cancel_leg(offer, &agent, now, out),
                Event::Answered { queue, waited, .. } => self.metrics.observe_wait(&queue, waited),
                Event::CallEnded { queue, talk, .. } => self.metrics.observe_talk(&queue, talk),
                Event::AgentPaused { agent, reason } => {
                    info!(%agent, ?reason, "agent paused by the ACD");
                }
                Event::WrapUpEnded { .. } => self.acd_dirty = true,
            }
        }
    }

    /// "Sie sind Anrufer Nummer 3. Ihre Wartezeit beträgt etwa 4 Minuten."
    fn announce(&mut self, call: CallKey, queue: &str, position: Option<u32>, minutes: u32) {
        let Some(c) = self.caller(SessionId::from(call)) else {
            return;
        };
        let stream = c.media.stream;
        let mut words: Vec<String> = Vec::new();
        if let Some(p) = position.filter(|p| (1..=60).contains(p)) {
            words.extend(["position".into(), format!("num-{p}")]);
        }
        if (1..=60).contains(&minutes) {
            words.push("wait-time".into());
            if minutes == 1 {
                words.extend(["num-1-fem".into(), "minute".into()]);
            } else {
                words.extend([format!("num-{minutes}"), "minutes".into()]);
            }
        }
        if words.is_empty() {
            return;
        }
        let music = self.queue_music(queue);
        let playlist = Playlist {
            items: words.iter().filter_map(|w| self.prompts.get(w)).collect(),
            then_loop: music,
        };
        self.media.play(stream, playlist);
    }

    /// Applies an agent command: the one way agent changes asked for by
    /// people (the API, feature codes) reach the ACD. The caller's input
    /// handler offers calls afterwards.
    pub(super) fn agent_command(
        &mut self,
        command: &AgentCommand,
        now: Instant,
    ) -> Result<AgentSnapshot, AgentError> {
        let result = self.acd.command(command, now);
        self.acd_dirty = true;
        result
    }

    /// A softphone dialled a feature code: apply it as the agent's
    /// command, and say how it went.
    pub(super) fn feature_prompt(
        &mut self,
        agent: &str,
        feature: &Feature,
        now: Instant,
    ) -> &'static str {
        let command = AgentCommand::new(agent, feature_action(feature));
        let result = self.agent_command(&command, now);
        let prompt = match feature {
            Feature::Login => "agent-logged-in",
            Feature::Logout => "agent-logged-out",
            Feature::Pause { .. } => "agent-paused",
            Feature::Unpause => "agent-unpaused",
        };
        match result {
            Ok(_) => {
                info!(agent, ?feature, "feature code applied");
                prompt
            }
            // Saying "logged in" again is what the agent wants to hear.
            Err(AgentError::AlreadyLoggedIn(_)) => "agent-logged-in",
            Err(AgentError::NotLoggedIn(_)) if matches!(feature, Feature::Logout) => {
                "agent-logged-out"
            }
            Err(e) => {
                info!(agent, ?feature, error = %e, "feature code refused");
                "agent-error"
            }
        }
    }

    /// A registration came or went.
    pub(super) fn agent_registered(&mut self, extension: &str, registered: bool, now: Instant) {
        if let Err(e) = self.acd.set_registered(extension, registered, now) {
            debug!(extension, error = %e, "registration not known to the ACD");
        }
        self.acd_dirty = true;
    }

    /// The tenant of an agent (for feature-code calls).
    pub(super) fn agent_tenant(&self, extension: &str) -> String {
        self.config
            .agents
            .iter()
            .find(|a| a.extension == extension)
            .map(|a| a.tenant.clone())
            .unwrap_or_default()
    }

    /// The music a queue loops while callers wait (`moh` if the queue is unknown).
    pub(super) fn queue_music(&self, queue: &str) -> Option<crate::media::Prompt> {
        let name = self.queue_conf(queue).map_or("moh", |q| q.music.as_str());
        self.prompts.get(name)
    }

    /// The listener zentrale sends from over `transport` (the first configured).
    pub(super) fn listener(&self, transport: Transport) -> Option<std::net::SocketAddr> {
        match transport {
            Transport::Udp => self.config.sip.udp.first().copied(),
            Transport::Tcp => self.config.sip.tcp.first().copied(),
            Transport::Tls => self.config.sip.tls.first().copied(),
        }
    }

    pub(super) fn queue_conf(&self, name: &str) -> Option<&config::Queue> {
        self.queues.get(name)
    }

    /// The queue configs by ACD name.
    pub(super) fn queue_table(config: &Config) -> HashMap<String, config::Queue> {
        config
            .queues()
            .map(|q| (queue_name(q), q.clone()))
            .collect()
    }
}

/// The agent command a feature code stands for. The config keeps feature
/// codes as plain data; this is where they become the ACD's command.
pub(super) fn feature_action(feature: &Feature) -> AgentAction {
    match feature {
        Feature::Login => AgentAction::Login,
        Feature::Logout => AgentAction::Logout,
        Feature::Pause { reason } => AgentAction::Pause {
            reason: Some(PauseReason::from_name(reason)),
        },
        Feature::Unpause => AgentAction::Unpause,
    }
}

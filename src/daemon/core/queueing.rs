//! The core's ACD side: callers into queues, offers into agent legs, agent
//! answers into bridged media, and the ACD's timers into prompts and
//! targets. The [`Acd`] decides; this file only carries its decisions to
//! SIP and RTP and reports back what happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Core, Pending};
use crate::acd::{
    AcdSpec, Admission, AgentAction, AgentCommand, AgentError, AgentSnapshot, AgentSpec, CallKey,
    Defaults, Event, Offer, OfferFailure, OfferId, PauseReason, QueueSpec, RejectReason,
    ServiceLevelSpec, Strategy, WidenStep,
};
use crate::call::EndReason;
use crate::call::agent_leg::{AgentLeg, LegAction, LegFailure, LegRequest};
use crate::cdr::{Stage, Why};
use crate::config::{self, Config, Feature};
use crate::dialplan::QueueExit;
use crate::dialplan::Target;
use crate::media::engine::{Playlist, StreamId};
use crate::media::sdp::{self, Direction, SdpSession};
use crate::sip::Transport;
use crate::sip::message::{
    Header, Method, Request, Response, StatusCode, response, sdp_refusal, set_body, with_to_tag,
};
use crate::sip::transaction::{Peer, ServerKey, Transmit};

/// Dispatch passes per input at most (see [`Core::run_dispatch`]).
const MAX_DISPATCH_PASSES: usize = 4;

/// After zentrale failed to place an agent's leg (no RTP port), the next
/// dispatch comes this much later at the latest.
pub(super) const NOT_PLACED_RETRY: Duration = Duration::from_secs(1);

/// Where a caller is, as far as queueing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Not answered yet, or a hotline without a queue: greeting and loop.
    Announcing,
    /// In an ACD queue: waiting, or being offered to agents.
    Queued { queue: Arc<str> },
    /// In the hotline's IVR menu (`CallEntry::menu`).
    Menu,
    /// Talking to an agent (or a forwarded party) over the leg with this Call-ID.
    Connected { leg: String },
    /// Forwarded to a SIP URI target; that leg rings.
    Forwarding { leg: String },
    /// A last prompt plays; when it ends zentrale hangs up.
    Closing,
}

/// What an outbound leg is for.
#[derive(Debug, Clone)]
pub(super) enum LegFor {
    /// An ACD offer of the caller to this agent.
    Offer { offer: OfferId, agent: Arc<str> },
    /// A queue's SIP URI target: another service center's system.
    Forward { uri: String },
}

/// An outbound leg (to an agent, or forwarded) and what it belongs to.
pub(super) struct LegEntry {
    pub leg: AgentLeg,
    /// The caller's Call-ID.
    pub caller: String,
    pub call: CallKey,
    pub purpose: LegFor,
    /// The ACD already knows how this offer ends for this agent (ring
    /// timeout reported, another agent answered, the caller left), so a
    /// later failure of the leg is not reported again.
    pub settled: bool,
    pub port: u16,
    pub stream: StreamId,
    /// Whether the stream is still to be started (when the agent answers).
    pub unstarted: bool,
    pub session: SdpSession,
    /// SRTP towards this leg (the agent's `srtp:`; forwards: off).
    pub srtp: crate::media::srtp::SrtpPolicy,
    /// The agent put the caller on hold (re-INVITE sendonly/inactive).
    pub held: bool,
    /// The agent's last re-INVITE, whose 2xx its ACK stops.
    pub reinvite: Option<ServerKey>,
}

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
            strategy: strategy(q.strategy),
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

fn strategy(s: config::Strategy) -> Strategy {
    match s {
        config::Strategy::LongestIdle => Strategy::LongestIdle,
        config::Strategy::RoundRobin => Strategy::RoundRobin,
        config::Strategy::FewestCalls => Strategy::FewestCalls,
        config::Strategy::LeastTalkTime => Strategy::LeastTalkTime,
        config::Strategy::RingAll => Strategy::RingAll,
        config::Strategy::SkillsFirst => Strategy::SkillsFirst,
    }
}

fn offer_failure(f: LegFailure) -> OfferFailure {
    match f {
        LegFailure::Busy => OfferFailure::Busy,
        LegFailure::Declined => OfferFailure::Declined,
        LegFailure::Unreachable | LegFailure::Cancelled => OfferFailure::Unreachable,
    }
}

impl Core {
    /// The caller heard its greeting (or has none): its hotline's queue takes over.
    pub(super) fn join_queue(&mut self, call_id: &str, now: Instant, out: &mut Vec<Transmit>) {
        let Some(e) = self.calls.get(call_id) else {
            return;
        };
        let Some(queue) = e.route.queue.clone() else {
            // A hotline without a queue: its waiting prompt loops.
            return self.note(call_id, now, |f, at| f.stage(Stage::Waiting, at));
        };
        let priority = e.route.priority;
        self.admit(call_id, &queue, priority, None, now, out);
    }

    /// Puts a caller into `queue` (keeping its place from `arrival` when it
    /// comes from another queue) or sends it to the queue's target.
    fn admit(
        &mut self,
        call_id: &str,
        queue: &str,
        priority: i32,
        arrival: Option<Instant>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(e) = self.calls.get(call_id) else {
            return;
        };
        let key = e.key;
        let segment = Core::segment(e);
        let result =
            self.acd
                .enqueue_segment(key, queue, priority, arrival.unwrap_or(now), segment, now);
        let conf = self.queue_conf(queue);
        match result {
            Ok(Admission::Queued { position, .. }) => {
                info!(%call_id, queue, position, "caller queued");
                self.note(call_id, now, |f, at| f.queued(queue, at));
                let music = self.queue_music(queue);
                let Some(e) = self.calls.get_mut(call_id) else {
                    return;
                };
                e.phase = Phase::Queued {
                    queue: Arc::from(queue),
                };
                // Straight from the greeting the queue's music loops already;
                // moved here from another queue: this queue's music, no greeting again.
                if arrival.is_some() {
                    let playlist = Playlist {
                        items: Vec::new(),
                        then_loop: music,
                    };
                    self.media.play(e.media.stream, playlist);
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
                self.note_ending(call_id, why, now);
                self.count_overflow(call_id, &target, exit, now);
                self.go_to(call_id, target, priority, arrival, now, out);
            }
            Err(err) => {
                warn!(%call_id, queue, error = %err, "queue refused the caller");
                self.go_to(call_id, Target::call_later(), priority, arrival, now, out);
            }
        }
    }

    /// Sends a caller to a queue's target.
    pub(super) fn go_to(
        &mut self,
        call_id: &str,
        target: Target,
        priority: i32,
        arrival: Option<Instant>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        match target {
            Target::Queue(r) => {
                let name = r.to_string();
                let already_there = self.calls.get(call_id).is_some_and(
                    |e| matches!(&e.phase, Phase::Queued { queue } if **queue == *name),
                );
                if already_there {
                    // Config validation forbids self-targets; never loop anyway.
                    return self.close_with_prompt(call_id, "call-later", now, out);
                }
                self.admit(call_id, &name, priority, arrival.or(Some(now)), now, out);
            }
            Target::Prompt(p) => self.close_with_prompt(call_id, &p, now, out),
            Target::Uri(uri) => self.forward(call_id, &uri, now, out),
            Target::Hangup => {
                self.note_planned_end(call_id, now);
                self.hang_up_caller(call_id, EndReason::Completed, now, out)
            }
        }
    }

    /// Plays `prompt` once; the caller is hung up when it ends.
    pub(super) fn close_with_prompt(
        &mut self,
        call_id: &str,
        prompt: &str,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        self.note_planned_end(call_id, now);
        let Some(e) = self.calls.get_mut(call_id) else {
            return;
        };
        e.phase = Phase::Closing;
        match self.prompts.get(prompt) {
            Some(p) => self.media.play(e.media.stream, Playlist::once(p)),
            None => self.hang_up_caller(call_id, EndReason::Completed, now, out),
        }
    }

    pub(super) fn hang_up_caller(
        &mut self,
        call_id: &str,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let actions = self
            .calls
            .get_mut(call_id)
            .map(|e| e.call.hang_up(reason))
            .unwrap_or_default();
        self.execute(call_id, actions, now, out);
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

    fn place_offer(&mut self, offer: &Offer, now: Instant, out: &mut Vec<Transmit>) {
        let Some(caller) = self.call_keys.get(&offer.call).cloned() else {
            // The caller is gone already; tell the engine so it moves on.
            for agent in &offer.agents {
                self.report_failure(offer.id, agent, OfferFailure::Unreachable, now, out);
            }
            return;
        };
        for agent in &offer.agents {
            if let Err(failure) = self.ring_agent(offer, &caller, agent, now, out) {
                if failure == OfferFailure::NotPlaced {
                    self.dispatch_retry.get_or_insert(now + NOT_PLACED_RETRY);
                }
                self.report_failure(offer.id, agent, failure, now, out);
            }
        }
    }

    /// Places the INVITE to one agent of an offer.
    fn ring_agent(
        &mut self,
        offer: &Offer,
        caller: &str,
        agent: &Arc<str>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) -> Result<(), OfferFailure> {
        // The most recently refreshed binding: the phone the agent uses now.
        let Some(binding) = self
            .registrar
            .bindings(agent, now)
            .into_iter()
            .max_by_key(|b| b.expires_at)
            .cloned()
        else {
            debug!(%agent, "offer to an agent without a binding");
            return Err(OfferFailure::Unreachable);
        };
        let Some(local) = self.listener(binding.transport) else {
            return Err(OfferFailure::Unreachable);
        };
        let peer = Peer {
            transport: binding.transport,
            addr: binding.source,
            local,
        };
        let to = format!("sip:{agent}@{local}");
        let headers = vec![("X-Zentrale-Queue", offer.queue.to_string())];
        let purpose = LegFor::Offer {
            offer: offer.id,
            agent: agent.clone(),
        };
        let leg_id = self
            .start_leg(
                caller,
                binding.contact,
                to,
                peer,
                headers,
                purpose,
                now,
                out,
            )
            // No port for the agent's leg: zentrale's failure, not the agent's.
            .ok_or(OfferFailure::NotPlaced)?;
        info!(caller_call_id = %caller, agent = %agent, offer = %offer.id, "ringing agent");
        self.offer_legs.insert((offer.id, agent.clone()), leg_id);
        Ok(())
    }

    /// Sends the caller to another system (a queue's `uri` target): zentrale
    /// places the INVITE there with the original called number in
    /// `Diversion` and relays the call. The URI must name an IP address
    /// (zentrale does no DNS on the call path).
    fn forward(&mut self, call_id: &str, uri: &str, now: Instant, out: &mut Vec<Transmit>) {
        // Every way out of here but a placed leg ends with call-later.
        self.note_ending(call_id, Why::ForwardFailed, now);
        let Some(addr) = crate::call::dialog::host_port_of(uri) else {
            warn!(%call_id, %uri, "forward target is not an IP address; playing call-later");
            return self.close_with_prompt(call_id, "call-later", now, out);
        };
        let transport = Transport::of_uri(uri).unwrap_or(Transport::Udp);
        let (Some(local), Some(e)) = (self.listener(transport), self.calls.get(call_id)) else {
            return self.close_with_prompt(call_id, "call-later", now, out);
        };
        let peer = Peer {
            transport,
            addr,
            local,
        };
        // RFC 5806: who was called before zentrale redirected the call: the
        // number the caller dialled (for a call forwarded to us, the
        // original one), else the hotline's configured number.
        let dialled = e
            .plan
            .as_ref()
            .map_or(e.route.number.as_str(), |p| p.origin.called.as_str());
        let diversion = format!("<sip:{dialled}@{local}>;reason=no-answer;counter=1");
        let headers = vec![("Diversion", diversion)];
        let purpose = LegFor::Forward {
            uri: uri.to_owned(),
        };
        match self.start_leg(
            call_id,
            uri.to_owned(),
            uri.to_owned(),
            peer,
            headers,
            purpose,
            now,
            out,
        ) {
            Some(leg) => {
                info!(%call_id, %uri, "forwarding the caller");
                self.note(call_id, now, |f, at| f.stage(Stage::Forwarding, at));
                if let Some(e) = self.calls.get_mut(call_id) {
                    e.phase = Phase::Forwarding { leg };
                }
            }
            None => self.close_with_prompt(call_id, "call-later", now, out),
        }
    }

    /// Places an outbound leg for `caller`: an RTP port, an SDP offer with
    /// the caller's codec first (so the usual case needs no transcoding),
    /// the INVITE. Returns the leg's Call-ID.
    #[allow(clippy::too_many_arguments)]
    fn start_leg(
        &mut self,
        caller: &str,
        contact: String,
        to: String,
        peer: Peer,
        mut headers: Vec<(&'static str, String)>,
        purpose: LegFor,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) -> Option<String> {
        self.calls.get(caller)?;
        let mut session = self.sdp_session();
        let local_ip = super::media_ip(peer.local.ip());
        let Some(port) = self.take_port(local_ip, now) else {
            warn!("no RTP port for an outbound leg: every port of the range is in use");
            return None;
        };
        let Some(e) = self.calls.get(caller) else {
            self.free_port(port, now);
            return None;
        };
        let codecs = match e.media.negotiated.as_ref().map(|n| n.codec) {
            Some(sdp::Codec::Pcma) => [sdp::Codec::Pcma, sdp::Codec::Pcmu],
            _ => [sdp::Codec::Pcmu, sdp::Codec::Pcma],
        };
        let srtp = match &purpose {
            LegFor::Offer { agent, .. } => self
                .config
                .agents
                .iter()
                .find(|a| *a.extension == **agent)
                .map_or_else(Default::default, |a| a.srtp),
            LegFor::Forward { .. } => crate::media::srtp::SrtpPolicy::Off,
        };
        let body = sdp::offer_with_srtp(local_ip, port, &mut session, &codecs, true, srtp);
        let route = &e.route;
        headers.extend([
            ("X-Zentrale-Tenant", route.tenant.clone()),
            ("X-Zentrale-Hotline", route.hotline_name.clone()),
        ]);
        // The agent answers in the name of the municipality the caller meant
        // (Quickborn model), so its phone shows that first.
        let display = match &e.plan {
            Some(plan) => {
                headers.push(("X-Zentrale-Origin", origin_header(&plan.origin)));
                plan.origin.display()
            }
            None => format!("{} {}", route.tenant_name, route.hotline_name),
        };
        let Some(leg) = AgentLeg::new(
            LegRequest {
                contact,
                to,
                caller: e.caller_number.clone(),
                display,
                headers,
                sdp: body,
                peer,
            },
            &mut self.rng,
        ) else {
            // Logged by the leg: a contact no INVITE can go to.
            self.free_port(port, now);
            return None;
        };
        let call = e.key;
        let (key, t) = self.transactions.send_request(&leg.invite, peer, now);
        out.push(t);
        let leg_id = leg.call_id.clone();
        let stream = StreamId(self.next_stream);
        self.next_stream += 1;
        self.metrics.rtp_ports_in_use.inc();
        self.pending
            .insert(key, (leg_id.clone(), Pending::LegInvite));
        self.leg_streams.insert(stream.0, leg_id.clone());
        self.legs.insert(
            leg_id.clone(),
            LegEntry {
                leg,
                caller: caller.to_owned(),
                call,
                purpose,
                settled: false,
                port,
                stream,
                unstarted: true,
                session,
                srtp,
                held: false,
                reinvite: None,
            },
        );
        Some(leg_id)
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

    /// A response to one of an agent leg's client transactions.
    pub(super) fn on_leg_response(
        &mut self,
        leg_id: &str,
        what: Pending,
        resp: &Response,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(entry) = self.legs.get_mut(leg_id) else {
            return;
        };
        let actions = match what {
            Pending::LegInvite => entry.leg.on_invite_response(resp),
            Pending::LegBye if resp.status_code.code() >= 200 => entry.leg.on_bye_done(),
            _ => Vec::new(),
        };
        self.execute_leg(leg_id, actions, now, out);
    }

    /// A client transaction of an agent leg timed out.
    pub(super) fn on_leg_timeout(
        &mut self,
        leg_id: &str,
        what: Pending,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(entry) = self.legs.get_mut(leg_id) else {
            return;
        };
        let actions = match what {
            Pending::LegInvite => entry.leg.on_invite_timeout(),
            Pending::LegBye => entry.leg.on_bye_done(),
            _ => Vec::new(),
        };
        self.execute_leg(leg_id, actions, now, out);
    }

    /// A retransmitted 2xx for an agent leg whose INVITE transaction is done.
    pub(super) fn on_leg_2xx_again(
        &mut self,
        resp: &Response,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let call_id = super::call_id_in(&resp.headers).to_owned();
        if let Some(entry) = self.legs.get_mut(&call_id) {
            let actions = entry.leg.on_invite_response(resp);
            self.execute_leg(&call_id, actions, now, out);
        }
    }

    pub(super) fn execute_leg(
        &mut self,
        leg_id: &str,
        actions: Vec<LegAction>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        for action in actions {
            let Some(entry) = self.legs.get_mut(leg_id) else {
                return;
            };
            match action {
                LegAction::Ringing => {
                    let caller = entry.caller.clone();
                    if let LegFor::Offer { offer, agent } = entry.purpose.clone()
                        && let Err(e) = self.acd.offer_ringing(offer, &agent, now)
                    {
                        debug!(%offer, error = %e, "ringing not taken");
                    }
                    self.connecting_prompt(&caller);
                }
                LegAction::SendAck(ack) => {
                    let hop = entry
                        .leg
                        .dialog
                        .as_ref()
                        .map(|d| d.next_hop())
                        .unwrap_or(entry.leg.peer);
                    out.push(Transmit {
                        peer: hop,
                        bytes: ack.to_bytes(),
                    });
                }
                LegAction::SendCancel(cancel) => {
                    let peer = entry.leg.peer;
                    let (key, t) = self.transactions.send_request(&cancel, peer, now);
                    self.pending
                        .insert(key, (leg_id.to_owned(), Pending::LegCancel));
                    out.push(t);
                }
                LegAction::SendBye(bye) => {
                    let hop = entry
                        .leg
                        .dialog
                        .as_ref()
                        .map(|d| d.next_hop())
                        .unwrap_or(entry.leg.peer);
                    let (key, t) = self.transactions.send_request(&bye, hop, now);
                    self.pending
                        .insert(key, (leg_id.to_owned(), Pending::LegBye));
                    out.push(t);
                }
                LegAction::Answered(body) => self.agent_answered(leg_id, &body, now, out),
                LegAction::Failed(failure) if !entry.settled => {
                    entry.settled = true;
                    let caller = entry.caller.clone();
                    match entry.purpose.clone() {
                        LegFor::Offer { offer, agent } => {
                            info!(%agent, ?failure, "agent did not take the call");
                            self.report_failure(offer, &agent, offer_failure(failure), now, out);
                        }
                        LegFor::Forward { uri } => {
                            info!(%uri, ?failure, "forward target did not take the call");
                            self.note_ending(&caller, Why::ForwardFailed, now);
                            self.close_with_prompt(&caller, "call-later", now, out);
                        }
                    }
                }
                LegAction::Failed(_) => {}
                LegAction::Release => self.release_leg(leg_id, now),
            }
        }
    }

    /// "Sie werden verbunden", then the queue music again.
    fn connecting_prompt(&mut self, caller: &str) {
        let Some(e) = self.calls.get(caller) else {
            return;
        };
        let Phase::Queued { queue } = &e.phase else {
            return;
        };
        let music = self.queue_music(queue);
        self.media.play(
            e.media.stream,
            Playlist {
                items: self.prompts.get("connecting").into_iter().collect(),
                then_loop: music,
            },
        );
    }

    fn agent_answered(&mut self, leg_id: &str, body: &[u8], now: Instant, out: &mut Vec<Transmit>) {
        let Some(entry) = self.legs.get(leg_id) else {
            return;
        };
        let networks = match &entry.purpose {
            LegFor::Offer { agent, .. } => self.agent_media_networks(agent),
            LegFor::Forward { .. } => &[],
        };
        let networks = networks.to_vec();
        let Some(entry) = self.legs.get_mut(leg_id) else {
            return;
        };
        let answer = sdp::parse_answer_with_srtp(body, &mut entry.session, entry.srtp)
            .map_err(|e| e.to_string())
            .and_then(|n| super::media_address_allowed(&networks, n.remote).map(|()| n));
        let negotiated = match answer {
            Ok(n) => n,
            Err(e) => {
                warn!(leg_call_id = %leg_id, error = %e, "answered with unusable SDP; hanging up that leg");
                let actions = entry.leg.cancel_or_hang_up();
                entry.settled = true;
                let (purpose, caller) = (entry.purpose.clone(), entry.caller.clone());
                self.execute_leg(leg_id, actions, now, out);
                match purpose {
                    LegFor::Offer { offer, agent } => {
                        self.report_failure(offer, &agent, OfferFailure::Declined, now, out)
                    }
                    LegFor::Forward { .. } => {
                        self.note_ending(&caller, Why::ForwardFailed, now);
                        self.close_with_prompt(&caller, "call-later", now, out)
                    }
                }
                return;
            }
        };
        if std::mem::take(&mut entry.unstarted) {
            self.media.add_stream(
                entry.stream,
                entry.port,
                negotiated.remote,
                negotiated.codec,
                negotiated.payload_type,
            );
            self.media
                .set_dtmf_payload_type(entry.stream, negotiated.dtmf_payload_type);
            self.media.set_direction(entry.stream, negotiated.direction);
            self.media.set_srtp(entry.stream, negotiated.srtp.clone());
        }
        let (caller, agent_stream) = (entry.caller.clone(), entry.stream);
        let (offer, agent) = match entry.purpose.clone() {
            LegFor::Offer { offer, agent } => (offer, agent),
            LegFor::Forward { uri } => {
                entry.settled = true;
                self.note(&caller, now, |f, at| f.forward_answered(at));
                if let Some(e) = self.calls.get_mut(&*caller) {
                    info!(caller_call_id = %caller, %uri, "forward target answered; bridging");
                    e.phase = Phase::Connected {
                        leg: leg_id.to_owned(),
                    };
                    self.media.bridge(e.media.stream, agent_stream);
                }
                return;
            }
        };
        match self.acd.offer_answered(offer, &agent, now) {
            Ok(events) => {
                entry.settled = true;
                self.note(&caller, now, |f, at| f.connected(&agent, at));
                if let Some(e) = self.calls.get_mut(&*caller) {
                    info!(caller_call_id = %caller, %agent, "agent answered; bridging");
                    e.phase = Phase::Connected {
                        leg: leg_id.to_owned(),
                    };
                    self.media.bridge(e.media.stream, agent_stream);
                }
                self.on_acd_events(events, now, out);
            }
            Err(err) => {
                // The caller left or another agent was faster: this leg goes.
                debug!(%offer, %agent, error = %err, "answer came too late");
                entry.settled = true;
                let actions = entry.leg.cancel_or_hang_up();
                self.execute_leg(leg_id, actions, now, out);
            }
        }
    }

    pub(super) fn release_leg(&mut self, leg_id: &str, now: Instant) {
        let Some(entry) = self.legs.remove(leg_id) else {
            return;
        };
        self.media.remove_stream(entry.stream);
        self.leg_streams.remove(&entry.stream.0);
        self.free_port(entry.port, now);
        self.metrics.rtp_ports_in_use.dec();
        if let LegFor::Offer { offer, agent } = entry.purpose {
            self.offer_legs.remove(&(offer, agent));
        }
        self.pending.retain(|_, (id, _)| id != leg_id);
        self.acd_dirty = true;
        debug!(leg_call_id = %leg_id, "outbound leg released");
    }

    /// The agent hung up: end the caller too.
    pub(super) fn on_leg_bye(&mut self, leg_id: &str, now: Instant, out: &mut Vec<Transmit>) {
        let Some(entry) = self.legs.get_mut(leg_id) else {
            return;
        };
        let actions = entry.leg.on_bye();
        self.end_from_leg(leg_id, actions, EndReason::AgentHangup, now, out);
    }

    /// zentrale ends a conversation from the agent's side (no RTP from the
    /// agent): BYE to both.
    pub(super) fn on_leg_bye_ours(&mut self, leg_id: &str, now: Instant, out: &mut Vec<Transmit>) {
        let Some(entry) = self.legs.get_mut(leg_id) else {
            return;
        };
        let actions = entry.leg.cancel_or_hang_up();
        self.end_from_leg(leg_id, actions, EndReason::RtpTimeout, now, out);
    }

    /// Ends a conversation from its outbound leg: runs the leg's `actions`,
    /// starts the agent's wrap-up, and hangs up the caller for `reason`.
    fn end_from_leg(
        &mut self,
        leg_id: &str,
        actions: Vec<LegAction>,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(entry) = self.legs.get(leg_id) else {
            return;
        };
        let (caller, call) = (entry.caller.clone(), entry.call);
        let from_acd = matches!(entry.purpose, LegFor::Offer { .. });
        self.execute_leg(leg_id, actions, now, out);
        if from_acd {
            self.conversation_over(call, now, out);
        }
        if let Some(e) = self.calls.get_mut(&*caller) {
            e.phase = Phase::Closing;
            self.media.unbridge(e.media.stream);
        }
        self.hang_up_caller(&caller, reason, now, out);
    }

    /// re-INVITE, UPDATE or INFO from an agent inside its leg.
    pub(super) fn on_leg_in_dialog(
        &mut self,
        key: ServerKey,
        req: Request,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let call_id = super::call_id_of(&req).to_owned();
        let Some(entry) = self.legs.get_mut(&call_id) else {
            return;
        };
        let from_tag = super::header_tag(&req, false);
        let to_tag = super::header_tag(&req, true);
        let Some(dialog) = entry
            .leg
            .dialog
            .as_ref()
            .filter(|_| entry.leg.matches(from_tag, to_tag))
        else {
            let resp = response(&req, StatusCode::CallTransactionDoesNotExist);
            return self.respond(&key, &resp, now, out);
        };
        let mut resp = with_to_tag(response(&req, StatusCode::OK), &dialog.local_tag);
        resp.headers.push(Header::Contact(dialog.contact().into()));
        let mut held = None;
        if req.method == Method::Invite {
            if super::has_sdp_body(&req) {
                let local_ip = super::media_ip(dialog.source.local.ip());
                match sdp::answer_with_srtp(
                    &req.body,
                    local_ip,
                    entry.port,
                    &mut entry.session,
                    entry.srtp,
                ) {
                    Ok(a) => {
                        self.media.set_srtp(entry.stream, a.srtp.clone());
                        self.media.set_remote(entry.stream, a.remote);
                        self.media.set_direction(entry.stream, a.direction);
                        held = Some(a.direction != Direction::SendRecv);
                        resp.body = set_body(&mut resp, "application/sdp", a.sdp);
                    }
                    Err(e) => {
                        let status = sdp_refusal(&e);
                        let mut resp = with_to_tag(response(&req, status), &dialog.local_tag);
                        super::warning(&mut resp, &e.to_string());
                        return self.respond(&key, &resp, now, out);
                    }
                }
            }
            entry.reinvite = Some(key.clone());
        }
        self.respond(&key, &resp, now, out);
        if let Some(held) = held {
            self.on_leg_hold(&call_id, held);
        }
    }

    /// The agent put the caller on hold or took them back (re-INVITE).
    pub(super) fn on_leg_hold(&mut self, leg_id: &str, held: bool) {
        let Some(entry) = self.legs.get_mut(leg_id) else {
            return;
        };
        if entry.held == held {
            return;
        }
        entry.held = held;
        let agent_stream = entry.stream;
        let Some(e) = self.calls.get(&*entry.caller) else {
            return;
        };
        if held {
            // Music first, then unbridge: the caller's stream goes straight
            // from the agent's voice to the music, never a stale frame between.
            let playlist = Playlist {
                items: Vec::new(),
                then_loop: self.prompts.get("moh"),
            };
            self.media.play(e.media.stream, playlist);
            self.media.unbridge(e.media.stream);
        } else {
            self.media.bridge(e.media.stream, agent_stream);
        }
    }

    fn conversation_over(&mut self, call: CallKey, now: Instant, out: &mut Vec<Transmit>) {
        match self.acd.call_ended(call, now) {
            Ok(events) => self.on_acd_events(events, now, out),
            Err(e) => debug!(%call, error = %e, "call end not taken"),
        }
        self.acd_dirty = true;
    }

    /// The caller's leg is being released: take it out of the ACD and end
    /// whatever agent legs it had.
    pub(super) fn caller_gone(
        &mut self,
        key: CallKey,
        phase: &Phase,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        self.call_keys.remove(&key);
        match phase {
            Phase::Queued { .. } => {
                if let Ok(Some(cancel)) = self.acd.abandon(key, now) {
                    for agent in &cancel.agents {
                        self.cancel_leg(cancel.offer, agent, now, out);
                    }
                }
                self.acd_dirty = true;
            }
            Phase::Connected { leg } | Phase::Forwarding { leg } => {
                let leg = leg.clone();
                let mut from_acd = false;
                if let Some(entry) = self.legs.get_mut(&leg) {
                    from_acd = matches!(entry.purpose, LegFor::Offer { .. });
                    entry.settled = true;
                    let actions = entry.leg.cancel_or_hang_up();
                    self.execute_leg(&leg, actions, now, out);
                }
                if from_acd {
                    self.conversation_over(key, now, out);
                }
            }
            Phase::Announcing | Phase::Menu | Phase::Closing => {}
        }
    }

    fn cancel_leg(
        &mut self,
        offer: OfferId,
        agent: &Arc<str>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(leg_id) = self.offer_legs.get(&(offer, agent.clone())).cloned() else {
            return;
        };
        if let Some(entry) = self.legs.get_mut(&leg_id) {
            entry.settled = true;
            let actions = entry.leg.cancel_or_hang_up();
            self.execute_leg(&leg_id, actions, now, out);
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
                    let Some(caller) = self.call_keys.get(&call).cloned() else {
                        continue;
                    };
                    info!(caller_call_id = %caller, %queue, "maximum wait reached");
                    let target = self
                        .queue_conf(&queue)
                        .map(|q| q.on_timeout.clone())
                        .unwrap_or_else(Target::call_later);
                    self.count_overflow(&caller, &target, QueueExit::Timeout, now);
                    self.note_ending(&caller, Why::TimedOut, now);
                    // The caller left `queue`; go_to must not see it there.
                    if let Some(e) = self.calls.get_mut(&caller) {
                        e.phase = Phase::Announcing;
                    }
                    self.go_to(&caller, target, priority, Some(arrival), now, out);
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
        let Some(caller) = self.call_keys.get(&call) else {
            return;
        };
        let Some(e) = self.calls.get(caller) else {
            return;
        };
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
        self.media.play(e.media.stream, playlist);
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
    fn queue_music(&self, queue: &str) -> Option<crate::media::Prompt> {
        let name = self.queue_conf(queue).map_or("moh", |q| q.music.as_str());
        self.prompts.get(name)
    }

    /// The listener zentrale sends from over `transport` (the first configured).
    fn listener(&self, transport: Transport) -> Option<std::net::SocketAddr> {
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

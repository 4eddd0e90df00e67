//! A session's outbound legs, whatever their kind: placing the INVITE,
//! the responses and timeouts of its transactions, the far side's BYE,
//! re-INVITE (hold) and answer, and the leg's release. What differs by
//! kind (an agent's offer, a forward) is asked of the kind's own file
//! through [`LegKind`]: this dispatcher does not change when a kind is
//! added.

use std::time::Instant;

use tracing::{debug, warn};

use super::Core;
use super::index::{LegId, Purpose, SessionId, Side};
use super::session::{Leg, LegKind, Phase};
use crate::call::EndReason;
use crate::call::agent_leg::{AgentLeg, LegAction, LegRequest};
use crate::media::engine::{Playlist, StreamId};
use crate::media::sdp::{self, Direction};
use crate::sip::message::{
    Header, Method, Request, Response, StatusCode, response, sdp_refusal, set_body, with_to_tag,
};
use crate::sip::transaction::{Peer, ServerKey, Transmit};

/// Where an outbound leg goes and what its INVITE carries besides the SDP.
pub(super) struct LegPlan {
    pub contact: String,
    pub to: String,
    pub peer: Peer,
    pub headers: Vec<(&'static str, String)>,
    pub kind: LegKind,
}

impl Core {
    /// Places an outbound leg for session `sid`: an RTP port, an SDP offer
    /// with the caller's codec first (so the usual case needs no
    /// transcoding), the INVITE. Returns the leg's id.
    pub(super) fn start_leg(
        &mut self,
        sid: SessionId,
        plan: LegPlan,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) -> Option<LegId> {
        let LegPlan {
            contact,
            to,
            peer,
            mut headers,
            kind,
        } = plan;
        self.sessions.get(&sid)?;
        let mut session = self.sdp_session();
        let local_ip = super::media_ip(peer.local.ip());
        let Some(port) = self.take_port(local_ip, now) else {
            warn!("no RTP port for an outbound leg: every port of the range is in use");
            return None;
        };
        let srtp = self.leg_srtp(&kind);
        let Some(s) = self.sessions.get(&sid) else {
            self.free_port(port, now);
            return None;
        };
        let negotiated = s.caller.as_ref().and_then(|c| c.media.negotiated.as_ref());
        let codecs = match negotiated.map(|n| n.codec) {
            Some(sdp::Codec::Pcma) => [sdp::Codec::Pcma, sdp::Codec::Pcmu],
            _ => [sdp::Codec::Pcmu, sdp::Codec::Pcma],
        };
        let body = sdp::offer_with_srtp(local_ip, port, &mut session, &codecs, true, srtp);
        let route = &s.route;
        headers.extend([
            ("X-Zentrale-Tenant", route.tenant.clone()),
            ("X-Zentrale-Hotline", route.hotline_name.clone()),
        ]);
        // The agent answers in the name of the municipality the caller meant
        // (Quickborn model), so its phone shows that first.
        let display = match &s.plan {
            Some(plan) => {
                headers.push((
                    "X-Zentrale-Origin",
                    super::queueing::origin_header(&plan.origin),
                ));
                plan.origin.display()
            }
            None => format!("{} {}", route.tenant_name, route.hotline_name),
        };
        let Some(sip) = AgentLeg::new(
            LegRequest {
                contact,
                to,
                caller: s.caller_number.clone(),
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
        let (key, t) = self.transactions.send_request(&sip.invite, peer, now);
        out.push(t);
        let lid = LegId(self.next_leg);
        self.next_leg += 1;
        let stream = StreamId(self.next_stream);
        self.next_stream += 1;
        self.metrics.rtp_ports_in_use.inc();
        self.index
            .add_client(key, sid, Side::Leg(lid), Purpose::LegInvite);
        self.index.add_stream(stream, sid, Side::Leg(lid));
        self.index.add_leg(&sip.call_id, sid, lid);
        if let Some((offer, agent)) = kind.offer() {
            self.index.add_offer(offer, agent, sid, lid);
        }
        let leg = Leg {
            id: lid,
            sip,
            kind,
            settled: false,
            port,
            stream,
            unstarted: true,
            sdp: session,
            srtp,
            held: false,
            reinvite: None,
        };
        self.sessions.get_mut(&sid)?.legs.push(leg);
        Some(lid)
    }

    /// SRTP towards a leg of `kind`.
    fn leg_srtp(&self, kind: &LegKind) -> crate::media::srtp::SrtpPolicy {
        match kind {
            LegKind::Offer(o) => self.offer_srtp(o),
            LegKind::Forward(_) => crate::media::srtp::SrtpPolicy::Off,
        }
    }

    /// A response to one of an outbound leg's client transactions.
    pub(super) fn on_leg_response(
        &mut self,
        sid: SessionId,
        lid: LegId,
        what: Purpose,
        resp: &Response,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        let actions = match what {
            Purpose::LegInvite => l.sip.on_invite_response(resp),
            Purpose::LegBye if resp.status_code.code() >= 200 => l.sip.on_bye_done(),
            _ => Vec::new(),
        };
        self.execute_leg(sid, lid, actions, now, out);
    }

    /// A client transaction of an outbound leg timed out.
    pub(super) fn on_leg_timeout(
        &mut self,
        sid: SessionId,
        lid: LegId,
        what: Purpose,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        let actions = match what {
            Purpose::LegInvite => l.sip.on_invite_timeout(),
            Purpose::LegBye => l.sip.on_bye_done(),
            _ => Vec::new(),
        };
        self.execute_leg(sid, lid, actions, now, out);
    }

    /// A retransmitted 2xx for an outbound leg whose INVITE transaction is done.
    pub(super) fn on_leg_2xx_again(
        &mut self,
        resp: &Response,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some((sid, lid)) = self.index.leg(super::call_id_in(&resp.headers)) else {
            return;
        };
        if let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) {
            let actions = l.sip.on_invite_response(resp);
            self.execute_leg(sid, lid, actions, now, out);
        }
    }

    pub(super) fn execute_leg(
        &mut self,
        sid: SessionId,
        lid: LegId,
        actions: Vec<LegAction>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        for action in actions {
            let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
                return;
            };
            match action {
                LegAction::Ringing => {
                    let kind = l.kind.clone();
                    if let LegKind::Offer(o) = &kind {
                        self.offer_ringing(o, now);
                    }
                    self.connecting_prompt(sid);
                }
                LegAction::SendAck(ack) => {
                    let hop = l
                        .sip
                        .dialog
                        .as_ref()
                        .map(|d| d.next_hop())
                        .unwrap_or(l.sip.peer);
                    out.push(Transmit {
                        peer: hop,
                        bytes: ack.to_bytes(),
                    });
                }
                LegAction::SendCancel(cancel) => {
                    let peer = l.sip.peer;
                    let (key, t) = self.transactions.send_request(&cancel, peer, now);
                    self.index
                        .add_client(key, sid, Side::Leg(lid), Purpose::LegCancel);
                    out.push(t);
                }
                LegAction::SendBye(bye) => {
                    let hop = l
                        .sip
                        .dialog
                        .as_ref()
                        .map(|d| d.next_hop())
                        .unwrap_or(l.sip.peer);
                    let (key, t) = self.transactions.send_request(&bye, hop, now);
                    self.index
                        .add_client(key, sid, Side::Leg(lid), Purpose::LegBye);
                    out.push(t);
                }
                LegAction::Answered(body) => self.leg_answered(sid, lid, &body, now, out),
                LegAction::Failed(failure) if !l.settled => {
                    l.settled = true;
                    let kind = l.kind.clone();
                    self.leg_failed(sid, &kind, failure, now, out);
                }
                LegAction::Failed(_) => {}
                LegAction::Release => self.release_leg(sid, lid, now),
            }
        }
    }

    /// A leg that was not settled failed: its kind says what follows.
    fn leg_failed(
        &mut self,
        sid: SessionId,
        kind: &LegKind,
        failure: crate::call::agent_leg::LegFailure,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        match kind {
            LegKind::Offer(o) => self.offer_failed(o, failure, now, out),
            LegKind::Forward(f) => self.forward_failed(sid, f, failure, now, out),
        }
    }

    /// The far side answered with `body`: start the leg's media and let
    /// its kind connect the caller.
    fn leg_answered(
        &mut self,
        sid: SessionId,
        lid: LegId,
        body: &[u8],
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(kind) = self
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.leg_mut(lid))
            .map(|l| l.kind.clone())
        else {
            return;
        };
        let networks = match &kind {
            LegKind::Offer(o) => self.agent_media_networks(&o.agent).to_vec(),
            LegKind::Forward(_) => Vec::new(),
        };
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        let answer = sdp::parse_answer_with_srtp(body, &mut l.sdp, l.srtp)
            .map_err(|e| e.to_string())
            .and_then(|n| super::media_address_allowed(&networks, n.remote).map(|()| n));
        let negotiated = match answer {
            Ok(n) => n,
            Err(e) => {
                warn!(leg_call_id = %l.sip.call_id, error = %e, "answered with unusable SDP; hanging up that leg");
                let actions = l.sip.cancel_or_hang_up();
                l.settled = true;
                self.execute_leg(sid, lid, actions, now, out);
                match &kind {
                    LegKind::Offer(o) => self.offer_unusable(o, now, out),
                    LegKind::Forward(f) => self.forward_unusable(sid, f, now, out),
                }
                return;
            }
        };
        if std::mem::take(&mut l.unstarted) {
            self.media.add_stream(
                l.stream,
                l.port,
                negotiated.remote,
                negotiated.codec,
                negotiated.payload_type,
            );
            self.media
                .set_dtmf_payload_type(l.stream, negotiated.dtmf_payload_type);
            self.media.set_direction(l.stream, negotiated.direction);
            self.media.set_srtp(l.stream, negotiated.srtp.clone());
        }
        match &kind {
            LegKind::Offer(o) => self.offer_answered(sid, lid, o, now, out),
            LegKind::Forward(f) => self.forward_answered(sid, lid, f, now),
        }
    }

    /// Connects the caller of `sid` to leg `lid` in `phase` (talking or
    /// forwarded): the two streams bridged.
    pub(super) fn bridge_to(&mut self, sid: SessionId, lid: LegId, phase: Phase, now: Instant) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let (Some(c), Some(l)) = (s.caller.as_ref(), s.leg(lid)) else {
            return;
        };
        let (caller, agent) = (c.media.stream, l.stream);
        self.set_phase(sid, phase, now);
        self.media.bridge(caller, agent);
    }

    pub(super) fn release_leg(&mut self, sid: SessionId, lid: LegId, now: Instant) {
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.take_leg(lid)) else {
            return;
        };
        self.media.remove_stream(l.stream);
        self.index.remove_stream(l.stream);
        self.free_port(l.port, now);
        self.metrics.rtp_ports_in_use.dec();
        self.index.remove_leg(&l.sip.call_id, lid, l.kind.offer());
        self.acd_dirty = true;
        debug!(leg_call_id = %l.sip.call_id, "outbound leg released");
        self.forget_if_empty(sid);
    }

    /// The far side hung up: end the caller too.
    pub(super) fn on_leg_bye(
        &mut self,
        sid: SessionId,
        lid: LegId,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        let actions = l.sip.on_bye();
        self.end_from_leg(sid, lid, actions, EndReason::AgentHangup, now, out);
    }

    /// zentrale ends a conversation from the far side (no RTP from the
    /// agent): BYE to both.
    pub(super) fn on_leg_bye_ours(
        &mut self,
        sid: SessionId,
        lid: LegId,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        let actions = l.sip.cancel_or_hang_up();
        self.end_from_leg(sid, lid, actions, EndReason::RtpTimeout, now, out);
    }

    /// Ends a conversation from its outbound leg: runs the leg's `actions`,
    /// starts the agent's wrap-up, and hangs up the caller for `reason`.
    fn end_from_leg(
        &mut self,
        sid: SessionId,
        lid: LegId,
        actions: Vec<LegAction>,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(from_acd) = self
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.leg_mut(lid))
            .map(|l| l.kind.counts_in_acd())
        else {
            return;
        };
        self.execute_leg(sid, lid, actions, now, out);
        if from_acd {
            self.conversation_over(sid, now, out);
        }
        if let Some(stream) = self.caller(sid).map(|c| c.media.stream) {
            self.set_phase(sid, Phase::Parting, now);
            self.media.unbridge(stream);
        }
        self.hang_up_caller(sid, reason, now, out);
    }

    /// re-INVITE, UPDATE or INFO from the far side inside its leg.
    pub(super) fn on_leg_in_dialog(
        &mut self,
        sid: SessionId,
        lid: LegId,
        key: ServerKey,
        req: Request,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        let from_tag = super::header_tag(&req, false);
        let to_tag = super::header_tag(&req, true);
        let Some(dialog) = l
            .sip
            .dialog
            .as_ref()
            .filter(|_| l.sip.matches(from_tag, to_tag))
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
                match sdp::answer_with_srtp(&req.body, local_ip, l.port, &mut l.sdp, l.srtp) {
                    Ok(a) => {
                        self.media.set_srtp(l.stream, a.srtp.clone());
                        self.media.set_remote(l.stream, a.remote);
                        self.media.set_direction(l.stream, a.direction);
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
            l.reinvite = Some(key.clone());
        }
        self.respond(&key, &resp, now, out);
        if let Some(held) = held {
            self.on_leg_hold(sid, lid, held);
        }
    }

    /// The far side put the caller on hold or took them back (re-INVITE).
    fn on_leg_hold(&mut self, sid: SessionId, lid: LegId, held: bool) {
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        if l.held == held {
            return;
        }
        l.held = held;
        let agent_stream = l.stream;
        let Some(c) = self.caller(sid) else {
            return;
        };
        let stream = c.media.stream;
        if held {
            // Music first, then unbridge: the caller's stream goes straight
            // from the agent's voice to the music, never a stale frame between.
            let playlist = Playlist {
                items: Vec::new(),
                then_loop: self.prompts.get("moh"),
            };
            self.media.play(stream, playlist);
            self.media.unbridge(stream);
        } else {
            self.media.bridge(stream, agent_stream);
        }
    }
}

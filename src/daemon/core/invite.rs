//! A new call, in the steps of the README's INVITE path: identify the
//! caller, check the dialog, decide the route, apply the limits, answer
//! the media, create the session. Each step has one job and returns what
//! the next needs, or the response that refuses the call ([`Refusal`]);
//! [`Core::on_invite`] sends that response and stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::index::SessionId;
use super::records::Admitted;
use super::session::{CallerLeg, CallingParty, MediaLeg, Next, Phase, Session};
use super::{Core, RETRY_AFTER_OVERLOAD, has_sdp_body, header_tag, log_refused, media_ip};
use super::{call_id_of, overloaded, warning};
use crate::call::session_timer::{self, Negotiation, SessionTimer};
use crate::call::{Call, Dialog};
use crate::cdr::Why;
use crate::dialplan::{BusyReason, CallInput, CallRoute, Decision, Route};
use crate::media::engine::StreamId;
use crate::media::sdp;
use crate::metrics::{ClosedLabels, HotlineLabels, OverflowLabels, SurgeLabels, TrunkLabel};
use crate::sip::message::{
    Header, Request, Response, StatusCode, response, sdp_refusal, with_to_tag,
};
use crate::sip::transaction::{Peer, ServerKey, Transmit};

/// The response that refuses a new call at one of the steps.
type Refusal = Response;

/// What the steps learned of the caller.
struct Caller {
    req: Request,
    dialog: Dialog,
    origin: CallingParty,
    input: CallInput,
    timer: Option<SessionTimer>,
    media: MediaLeg,
}

/// Where the dialplan sends a new call.
struct Routed {
    route: Arc<Route>,
    /// `None` for a feature code (an agent's command, not a hotline call).
    plan: Option<CallRoute>,
    /// The first phase: ringing towards the greeting and what follows it;
    /// closing after its prompt for a feature code.
    phase: Phase,
    /// What the decision said beyond the route (closed, overflowed).
    admitted: Admitted,
    /// Past the tenant's surge limits: the caller hears the busy target.
    busy: Option<BusyReason>,
}

impl Core {
    pub(super) fn on_invite(
        &mut self,
        key: ServerKey,
        req: Request,
        peer: Peer,
        reply_to: Peer,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        if header_tag(&req, true).is_some() {
            return self.on_in_dialog(key, req, now, out);
        }
        match self.new_call(&key, req, peer, reply_to, now, out) {
            Ok(sid) => self.run_call_timers(sid, now, out),
            Err(refusal) => self.respond(&key, &refusal, now, out),
        }
    }

    /// The steps; see the module docs.
    fn new_call(
        &mut self,
        key: &ServerKey,
        req: Request,
        peer: Peer,
        reply_to: Peer,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) -> Result<SessionId, Refusal> {
        self.room_for_call(&req, peer, now)?;
        let origin = self.identify(&req, peer, now)?;
        let dialog = self.dialog_of(&req, peer, reply_to)?;
        let input = super::routing::call_input(&req);
        let routed = self.decide_route(&req, &input, &origin, now)?;
        let timer = self.apply_limits(&req, &routed, &origin)?;
        let media = self.answer_media(&req, &origin, &routed, peer, now)?;
        let caller = Caller {
            req,
            dialog,
            origin,
            input,
            timer,
            media,
        };
        Ok(self.create_session(key, caller, routed, now, out))
    }

    /// Room for one more call, and no call with this Call-ID yet.
    fn room_for_call(&mut self, req: &Request, peer: Peer, now: Instant) -> Result<(), Refusal> {
        if self.callers >= self.config.sip.max_calls {
            self.metrics.rejected("overload");
            log_refused(peer.addr, 503, "overload", now);
            return Err(overloaded(req));
        }
        if self.index.caller(call_id_of(req)).is_some() {
            // Same Call-ID, new branch, no To tag: a loop or a confused peer.
            return Err(response(req, StatusCode::LoopDetected));
        }
        Ok(())
    }

    /// The caller's dialog. Before anything counts the call: a Contact or
    /// Record-Route that no in-dialog request could be sent to is refused
    /// here (400).
    fn dialog_of(&mut self, req: &Request, peer: Peer, reply_to: Peer) -> Result<Dialog, Refusal> {
        Dialog::from_invite(req, reply_to, &mut self.rng).map_err(|e| {
            self.metrics.rejected("bad_dialog");
            info!(call_id = call_id_of(req), peer = %peer.addr, error = %e, "INVITE cannot make a dialog");
            let mut resp = response(req, StatusCode::BadRequest);
            warning(&mut resp, &e.to_string());
            resp
        })
    }

    /// Where the call goes: an agent's feature code, or the dialplan's
    /// decision for the called number (404 for an unknown one), and
    /// whether the tenant's surge limits send it to the busy target.
    fn decide_route(
        &mut self,
        req: &Request,
        input: &CallInput,
        origin: &CallingParty,
        now: Instant,
    ) -> Result<Routed, Refusal> {
        // The Request-URI user, percent-decoded: what the dialplan looks up.
        let called = &input.request_user;
        // Feature codes start with * or # (config validation makes sure);
        // an agent who dials an unknown one hears the error prompt, not a 404.
        if let CallingParty::Agent(ext) = origin
            && called.starts_with(['*', '#'])
        {
            return Ok(self.feature_call(ext, called, now));
        }
        let mut admitted = Admitted::default();
        let (plan, then) = match self.dialplan.decide(input, self.clock.at(now)) {
            Decision::Unknown => {
                self.metrics.rejected("unknown_number");
                let mut resp = response(req, StatusCode::NotFound);
                warning(&mut resp, &format!("no hotline has the number {called}"));
                return Err(resp);
            }
            Decision::Hotline(plan) => (plan, Next::Hotline),
            Decision::Closed {
                route: plan,
                target,
                reason,
                reopens_at,
            } => {
                let reason = match reason {
                    crate::dialplan::ClosedReason::OutsideHours => "outside_hours",
                    crate::dialplan::ClosedReason::Holiday(_) => "holiday",
                    crate::dialplan::ClosedReason::Closure => "closure",
                };
                info!(call_id = call_id_of(req), tenant = %plan.route.tenant, hotline = %plan.route.hotline, reason, reopens_at = ?reopens_at.map(|t| t.to_string()), %target, "hotline closed");
                self.metrics
                    .calls_closed
                    .get_or_create(&ClosedLabels {
                        tenant: plan.route.tenant.clone(),
                        hotline: plan.route.hotline.clone(),
                        reason: reason.into(),
                    })
                    .inc();
                admitted.closed = Some(reason);
                (plan, Next::Greeting(target))
            }
            Decision::Overflow {
                route: plan,
                target,
                cause,
            } => {
                let label = plan
                    .overflow
                    .as_ref()
                    .map_or_else(|| target.to_string(), |o| o.target_label());
                info!(call_id = call_id_of(req), municipality = %plan.origin.municipality, cause = cause.as_str(), target = %label, "overflow");
                self.metrics
                    .overflow
                    .get_or_create(&OverflowLabels {
                        from_municipality: plan.origin.municipality.to_string(),
                        target: label.clone(),
                    })
                    .inc();
                admitted.overflow = Some((cause, label));
                (plan, Next::Greeting(target))
            }
        };
        // Surge limits: past them the caller is answered and hears the
        // busy target, within the tenant's call slots (checked next).
        // Counted once the call is taken: a call refused below never
        // heard the busy prompt.
        let (busy, then) = match self.surge_check(&plan) {
            Err(reason) => (Some(reason), Next::Direct(plan.limits.busy.clone())),
            Ok(()) => (None, then),
        };
        Ok(Routed {
            route: plan.route.clone(),
            plan: Some(plan),
            phase: Phase::Ringing(then),
            admitted,
            busy,
        })
    }

    /// An agent dialled a feature code: applied at once, and the call only
    /// plays how it went.
    fn feature_call(&mut self, ext: &str, called: &str, now: Instant) -> Routed {
        let prompt = match self.config.acd.feature(called) {
            Some(f) => self.feature_prompt(ext, &f, now),
            None => {
                info!(agent = %ext, code = %called, "unknown feature code");
                "agent-error"
            }
        };
        let route = Arc::new(Route {
            tenant: self.agent_tenant(ext),
            tenant_name: String::new(),
            hotline: "feature-code".into(),
            hotline_name: String::new(),
            number: called.to_owned(),
            greeting: prompt.into(),
            waiting: String::new(),
            queue: None,
            priority: 0,
            answer_after: Duration::ZERO,
        });
        Routed {
            route,
            plan: None,
            phase: Phase::Closing(Why::Planned),
            admitted: Admitted::default(),
            busy: None,
        }
    }

    /// The limits past the route: the tenant's share of the call slots
    /// (busy callers included: past it the caller gets 486, and other
    /// tenants keep theirs), the session timer (422), the trunk's calls
    /// (503). Returns the agreed session timer.
    fn apply_limits(
        &mut self,
        req: &Request,
        routed: &Routed,
        origin: &CallingParty,
    ) -> Result<Option<SessionTimer>, Refusal> {
        if let Some(p) = &routed.plan
            && let Err(refusal) = self.slots.admit(&p.route.tenant)
        {
            let tenant = p.route.tenant.clone();
            let (guaranteed, max) = self.slots.limits(&tenant);
            // A surge refuses hundreds a second: counted, logged at debug.
            debug!(call_id = call_id_of(req), %tenant, reason = refusal.as_str(), held = self.slots.used(&tenant), guaranteed, max, "tenant's call slots full: 486");
            self.refused(&tenant, refusal.as_str());
            let mut resp = response(req, StatusCode::BusyHere);
            resp.headers
                .push(Header::RetryAfter(RETRY_AFTER_OVERLOAD.to_string().into()));
            warning(
                &mut resp,
                &format!("all call slots of tenant {tenant} are in use"),
            );
            return Err(resp);
        }
        let timer = match session_timer::negotiate(req, self.config.sip.min_se) {
            Negotiation::None => None,
            Negotiation::Agreed(t) => Some(t),
            Negotiation::TooSmall { min_se } => {
                let mut resp = response(req, StatusCode::SessionIntervalTooSmall);
                resp.headers.push(Header::MinSE(min_se.to_string().into()));
                return Err(resp);
            }
        };
        if let CallingParty::Trunk(i) = origin {
            let limit = self.config.trunks[*i].max_calls;
            if limit.is_some_and(|l| self.trunk_calls[*i] >= l) {
                self.metrics.rejected("trunk_limit");
                if let Some(p) = &routed.plan {
                    self.refused(&p.route.tenant, "trunk_limit");
                }
                return Err(overloaded(req));
            }
        }
        Ok(timer)
    }

    /// An RTP port and the SDP answer (or, to an offerless INVITE, our
    /// offer): 503 with no port free, 488 for media we will not send to.
    fn answer_media(
        &mut self,
        req: &Request,
        origin: &CallingParty,
        routed: &Routed,
        peer: Peer,
        now: Instant,
    ) -> Result<MediaLeg, Refusal> {
        let local_ip = media_ip(peer.local.ip());
        let Some(port) = self.take_port(local_ip, now) else {
            warn!(
                first = self.config.rtp.first_port,
                last = self.config.rtp.last_port,
                "no RTP port free: every port of the range is in use"
            );
            self.metrics.rejected("no_rtp_port");
            if let Some(p) = &routed.plan {
                self.refused(&p.route.tenant, "no_rtp_port");
            }
            return Err(overloaded(req));
        };
        let srtp = match origin {
            CallingParty::Trunk(i) => self.config.trunks[*i].srtp,
            CallingParty::Agent(user) => self
                .config
                .agents
                .iter()
                .find(|a| a.extension == *user)
                .map_or_else(Default::default, |a| a.srtp),
        };
        let mut session = self.sdp_session();
        let (negotiated, local_sdp) = if has_sdp_body(req) {
            match sdp::answer_with_srtp(&req.body, local_ip, port, &mut session, srtp) {
                Ok(a) => {
                    let negotiated = a.negotiated();
                    if let Err(why) = self.media_allowed(origin, negotiated.remote) {
                        self.free_port(port, now);
                        return Err(self.media_refusal(req, &why));
                    }
                    (Some(negotiated), a.sdp)
                }
                Err(e) => {
                    self.free_port(port, now);
                    let mut resp = response(req, sdp_refusal(&e));
                    warning(&mut resp, &e.to_string());
                    return Err(resp);
                }
            }
        } else {
            // Offerless INVITE: our offer goes in the 200, the answer in the ACK.
            let offer = sdp::offer_with_srtp(
                local_ip,
                port,
                &mut session,
                &[sdp::Codec::Pcmu, sdp::Codec::Pcma],
                true,
                srtp,
            );
            (None, offer)
        };
        let stream = StreamId(self.next_stream);
        self.next_stream += 1;
        Ok(MediaLeg {
            port,
            stream,
            unstarted: true,
            session,
            local_sdp,
            negotiated,
            srtp,
        })
    }

    /// The call is taken: 100 (and 180 while it rings), counted, and a
    /// session for it in the index.
    fn create_session(
        &mut self,
        key: &ServerKey,
        caller: Caller,
        routed: Routed,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) -> SessionId {
        let Caller {
            req: invite,
            dialog,
            origin,
            input,
            timer,
            media,
        } = caller;
        let req = &invite;
        let Routed {
            route,
            plan,
            phase,
            admitted,
            busy,
        } = routed;
        let answer_after = route.answer_after;
        let call = Call::new(dialog, key.clone(), timer, answer_after, now);
        self.reply(key, req, StatusCode::Trying, now, out);
        if !answer_after.is_zero() {
            let mut ringing =
                with_to_tag(response(req, StatusCode::Ringing), &call.dialog.local_tag);
            ringing
                .headers
                .push(Header::Contact(call.dialog.contact().into()));
            self.respond(key, &ringing, now, out);
        }
        if let CallingParty::Trunk(i) = origin {
            self.trunk_calls[i] += 1;
            self.metrics
                .trunk_calls
                .get_or_create(&TrunkLabel {
                    trunk: self.config.trunks[i].name.clone(),
                })
                .inc();
        }
        if plan.is_some() {
            self.metrics
                .calls_offered
                .get_or_create(&HotlineLabels {
                    tenant: route.tenant.clone(),
                    hotline: route.hotline.clone(),
                })
                .inc();
        }
        self.metrics.rtp_ports_in_use.inc();
        let masked = input.caller_masked();
        info!(
            call_id = %call.dialog.call_id, tenant = %route.tenant, hotline = %route.hotline,
            caller = masked.as_deref().unwrap_or("anonymous"),
            origin = plan.as_ref().map_or("", |p| &*p.origin.municipality),
            "call accepted"
        );
        let call_id = call.dialog.call_id.clone();
        let sid = SessionId(self.next_session);
        self.next_session += 1;
        self.index.add_caller(&call_id, sid);
        self.index
            .add_stream(media.stream, sid, super::Side::Caller);
        let facts = plan
            .as_ref()
            .map(|p| self.call_began(&call_id, p, input.caller.clone(), &origin, admitted, now));
        // Only a number the caller did not withhold is kept.
        let caller_number = input.caller.unwrap_or_else(|| "anonymous".into());
        if let Some(p) = &plan {
            // Admitted above, in this same turn.
            let _ = self.slots.take(&route.tenant);
            if let Some(reason) = busy {
                info!(%call_id, tenant = %p.route.tenant, reason = reason.as_str(), "surge limit: caller hears the busy target");
                self.metrics
                    .surge_rejected
                    .get_or_create(&SurgeLabels {
                        tenant: p.route.tenant.clone(),
                        reason: reason.as_str().into(),
                    })
                    .inc();
            }
            match self.tenant_calls.get_mut(&route.tenant) {
                Some(n) => *n += 1,
                None => {
                    self.tenant_calls.insert(route.tenant.clone(), 1);
                }
            }
        }
        let mut session = Session::new(sid, phase, route, caller_number);
        session.plan = plan;
        session.facts = facts;
        session.caller = Some(CallerLeg {
            call,
            invite,
            origin,
            reinvite: None,
            media,
        });
        self.sessions.insert(sid, session);
        self.callers += 1;
        self.metrics.calls_active.set(self.callers as i64);
        sid
    }
}

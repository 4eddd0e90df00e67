//! The forward leg: a queue's SIP URI target, another service center's
//! system. zentrale places the INVITE there with the number the caller
//! dialled in `Diversion` and relays the call; if the target does not
//! take it, the caller hears call-later.

use std::time::Instant;

use tracing::{info, warn};

use super::super::Core;
use super::super::index::{LegId, SessionId};
use super::super::legs::LegPlan;
use super::{LegKind, Phase};
use crate::call::agent_leg::LegFailure;
use crate::cdr::Why;
use crate::sip::Transport;
use crate::sip::transaction::{Peer, Transmit};

/// Where a forward leg goes.
#[derive(Debug, Clone)]
pub struct ForwardLeg {
    pub uri: String,
}

impl Core {
    /// Sends the caller to another system (a queue's `uri` target). The
    /// URI must name an IP address (zentrale does no DNS on the call path).
    pub(in super::super) fn forward(
        &mut self,
        sid: SessionId,
        uri: &str,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        // Every way out of here but a placed leg ends with call-later.
        self.set_phase(sid, Phase::Leaving(Why::ForwardFailed), now);
        let call_id = self
            .caller(sid)
            .map_or(String::new(), |c| c.call.dialog.call_id.to_string());
        let Some(addr) = crate::call::dialog::host_port_of(uri) else {
            warn!(%call_id, %uri, "forward target is not an IP address; playing call-later");
            return self.close_with_prompt(sid, "call-later", now, out);
        };
        let transport = Transport::of_uri(uri).unwrap_or(Transport::Udp);
        let (Some(local), Some(s)) = (
            self.listener(transport),
            self.sessions.get(&sid).filter(|s| s.caller.is_some()),
        ) else {
            return self.close_with_prompt(sid, "call-later", now, out);
        };
        let peer = Peer {
            transport,
            addr,
            local,
        };
        // RFC 5806: who was called before zentrale redirected the call: the
        // number the caller dialled (for a call forwarded to us, the
        // original one), else the hotline's configured number.
        let dialled = s
            .plan
            .as_ref()
            .map_or(s.route.number.as_str(), |p| p.origin.called.as_str());
        let diversion = format!("<sip:{dialled}@{local}>;reason=no-answer;counter=1");
        let plan = LegPlan {
            contact: uri.to_owned(),
            to: uri.to_owned(),
            peer,
            headers: vec![("Diversion", diversion)],
            kind: LegKind::Forward(ForwardLeg {
                uri: uri.to_owned(),
            }),
        };
        match self.start_leg(sid, plan, now, out) {
            Some(leg) => {
                info!(%call_id, %uri, "forwarding the caller");
                self.set_phase(sid, Phase::Forwarding { leg }, now);
            }
            None => self.close_with_prompt(sid, "call-later", now, out),
        }
    }

    /// The target did not take the call: call-later.
    pub(in super::super) fn forward_failed(
        &mut self,
        sid: SessionId,
        f: &ForwardLeg,
        failure: LegFailure,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        info!(uri = %f.uri, ?failure, "forward target did not take the call");
        self.forward_unusable(sid, f, now, out);
    }

    /// The forward ends without a conversation: call-later.
    pub(in super::super) fn forward_unusable(
        &mut self,
        sid: SessionId,
        _f: &ForwardLeg,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        self.set_phase(sid, Phase::Leaving(Why::ForwardFailed), now);
        self.close_with_prompt(sid, "call-later", now, out);
    }

    /// The target answered: the caller talks to it.
    pub(in super::super) fn forward_answered(
        &mut self,
        sid: SessionId,
        lid: LegId,
        f: &ForwardLeg,
        now: Instant,
    ) {
        let at = self.clock.at(now);
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Some(l) = s.leg_mut(lid) {
            l.settled = true;
        }
        let Some(c) = &s.caller else {
            return;
        };
        info!(caller_call_id = %c.call.dialog.call_id, uri = %f.uri, "forward target answered; bridging");
        if let Some(facts) = s.facts.as_mut() {
            facts.connected = Some(at);
        }
        self.bridge_to(sid, lid, Phase::Forwarded { leg: lid }, now);
    }
}

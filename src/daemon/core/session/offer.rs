//! The offer leg: an ACD offer of the caller to one agent. zentrale rings
//! the agent's registered phone; the ACD hears how it went (ringing,
//! answered, or why not), and an answer connects the caller.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use super::super::Core;
use super::super::index::{LegId, SessionId};
use super::super::legs::LegPlan;
use super::{LegKind, Phase};
use crate::acd::{Offer, OfferFailure, OfferId};
use crate::call::agent_leg::LegFailure;
use crate::sip::transaction::{Peer, Transmit};

/// An offer leg's part of the ACD's offer.
#[derive(Debug, Clone)]
pub struct OfferLeg {
    pub offer: OfferId,
    pub agent: Arc<str>,
}

fn offer_failure(f: LegFailure) -> OfferFailure {
    match f {
        LegFailure::Busy => OfferFailure::Busy,
        LegFailure::Declined => OfferFailure::Declined,
        LegFailure::Unreachable | LegFailure::Cancelled => OfferFailure::Unreachable,
    }
}

impl Core {
    /// Places the INVITE to one agent of an offer.
    pub(in super::super) fn ring_agent(
        &mut self,
        offer: &Offer,
        sid: SessionId,
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
        let plan = LegPlan {
            contact: binding.contact,
            to: format!("sip:{agent}@{local}"),
            peer,
            headers: vec![("X-Zentrale-Queue", offer.queue.to_string())],
            kind: LegKind::Offer(OfferLeg {
                offer: offer.id,
                agent: agent.clone(),
            }),
        };
        self.start_leg(sid, plan, now, out)
            // No port for the agent's leg: zentrale's failure, not the agent's.
            .ok_or(OfferFailure::NotPlaced)?;
        let caller = self
            .sessions
            .get(&sid)
            .and_then(|s| s.caller.as_ref())
            .map_or("", |c| &*c.call.dialog.call_id);
        info!(caller_call_id = %caller, agent = %agent, offer = %offer.id, "ringing agent");
        Ok(())
    }

    /// SRTP towards the agent: its `srtp:`.
    pub(in super::super) fn offer_srtp(&self, o: &OfferLeg) -> crate::media::srtp::SrtpPolicy {
        self.config
            .agents
            .iter()
            .find(|a| *a.extension == *o.agent)
            .map_or_else(Default::default, |a| a.srtp)
    }

    /// The agent's phone rings.
    pub(in super::super) fn offer_ringing(&mut self, o: &OfferLeg, now: Instant) {
        if let Err(e) = self.acd.offer_ringing(o.offer, &o.agent, now) {
            debug!(offer = %o.offer, error = %e, "ringing not taken");
        }
    }

    /// The agent did not take the call: the ACD moves the offer on.
    pub(in super::super) fn offer_failed(
        &mut self,
        o: &OfferLeg,
        failure: LegFailure,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        info!(agent = %o.agent, ?failure, "agent did not take the call");
        self.report_failure(o.offer, &o.agent, offer_failure(failure), now, out);
    }

    /// The agent answered with SDP zentrale cannot use: as if declined.
    pub(in super::super) fn offer_unusable(
        &mut self,
        o: &OfferLeg,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        self.report_failure(o.offer, &o.agent, OfferFailure::Declined, now, out);
    }

    /// The agent answered: if the ACD still has the offer, the caller is
    /// connected; else (the caller left, another agent was faster) this
    /// leg goes.
    pub(in super::super) fn offer_answered(
        &mut self,
        sid: SessionId,
        lid: LegId,
        o: &OfferLeg,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        match self.acd.offer_answered(o.offer, &o.agent, now) {
            Ok(events) => {
                let at = self.clock.at(now);
                if let Some(s) = self.sessions.get_mut(&sid) {
                    if let Some(l) = s.leg_mut(lid) {
                        l.settled = true;
                    }
                    if let Some(c) = &s.caller {
                        info!(caller_call_id = %c.call.dialog.call_id, agent = %o.agent, "agent answered; bridging");
                        if let Some(f) = s.facts.as_mut() {
                            f.agent = Some(o.agent.to_string());
                            f.connected = Some(at);
                        }
                    }
                }
                self.bridge_to(sid, lid, Phase::Talking { leg: lid }, now);
                self.on_acd_events(events, now, out);
            }
            Err(err) => {
                debug!(offer = %o.offer, agent = %o.agent, error = %err, "answer came too late");
                let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
                    return;
                };
                l.settled = true;
                let actions = l.sip.cancel_or_hang_up();
                self.execute_leg(sid, lid, actions, now, out);
            }
        }
    }
}

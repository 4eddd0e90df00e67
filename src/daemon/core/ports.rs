//! Which RTP port numbers are free: the core's ledger, without a socket.
//!
//! The core must write a port into its SDP at once, in the turn that
//! answers an INVITE or places an agent's leg, so it picks the number
//! itself from this ledger and asks the shell to bind it
//! ([`PortRequest::Bind`]); the socket reaches the media worker by port
//! number with the stream ([`MediaCommand::Add`]). A bind that fails
//! (another process holds the port) comes back as an input,
//! [`Core::on_port_failed`]: the call or leg that got the number ends as
//! it would have without a port (503 to an unanswered INVITE, a BYE to an
//! answered one, an agent's offer not placed and retried), and the number
//! is set aside for [`HELD_ELSEWHERE`] so the next call does not hit it
//! again. The alternative, binding a few ports ahead so a failure can never
//! follow an SDP, needs a ready pool per listener address and changes which
//! port a call gets; a port held by another process inside zentrale's own
//! range is rare enough (and a misconfiguration) that ending the one call
//! is the better trade.
//!
//! Which number comes next follows the shell's socket pool
//! ([`crate::media::ports::PortPool`]), which keeps the sockets of the
//! last [`RECENT`] finished streams bound, so that most calls cost no
//! `bind`: the port released longest ago among those recent ones, once it
//! has rested [`QUARANTINE`]; else a port not used recently, in order;
//! else a recent one still resting rather than refusing the call. A port
//! just freed is so reused last, after the old call's late packets have
//! stopped. A released port counts only once the shell says its socket is
//! back from the media worker ([`Core::on_port_returned`]): until then a
//! bind of it would fail, because the worker still holds the socket.
//!
//! [`PortRequest::Bind`]: super::PortRequest::Bind
//! [`MediaCommand::Add`]: super::MediaCommand::Add
//! [`Core::on_port_failed`]: super::Core::on_port_failed

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::warn;

use super::index::LegId;
use super::session::LegKind;
use super::{Core, Outputs, PortRequest};
use crate::acd::OfferFailure;
use crate::call::{Action, EndReason};
use crate::sip::message::with_to_tag;
use crate::sip::transaction::Transmit;

pub use crate::media::ports::QUARANTINE;

/// How many released ports count as recent: as many sockets as the
/// shell's pool keeps bound.
pub const RECENT: usize = crate::media::ports::MAX_PARKED;

/// How long a port whose bind failed is left alone.
pub const HELD_ELSEWHERE: Duration = Duration::from_secs(60);

/// How long a released port waits for the shell to say its socket came
/// back ([`Core::on_port_returned`]) before it counts as free anyway: the
/// media worker gives sockets back within a tick (20 ms), so a port still
/// away after this had its socket closed instead.
pub const AWAY_AT_MOST: Duration = Duration::from_secs(10);

/// The even ports of the RTP range and which are free. See the module docs.
#[derive(Debug)]
pub(super) struct PortLedger {
    capacity: usize,
    /// Free ports not released recently, in order.
    free: VecDeque<u16>,
    /// The last [`RECENT`] ports released, the oldest first, and when.
    recent: VecDeque<(u16, Instant)>,
    /// Ports whose bind failed, and until when they are left alone.
    held_elsewhere: VecDeque<(u16, Instant)>,
    /// Released ports whose socket is not back from the media worker yet,
    /// and since when: handing one out would fail its bind.
    away: VecDeque<(u16, Instant)>,
}

impl PortLedger {
    /// The even ports in `first..=last` (odd bounds are rounded inwards),
    /// all free.
    pub fn new(first: u16, last: u16) -> PortLedger {
        let lo = first.saturating_add(first & 1).max(2);
        let hi = last & !1;
        let free: VecDeque<u16> = (lo..=hi).step_by(2).collect();
        PortLedger {
            capacity: free.len(),
            free,
            recent: VecDeque::new(),
            held_elsewhere: VecDeque::new(),
            away: VecDeque::new(),
        }
    }

    /// Number of even ports in the range.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A free port, if any.
    pub fn allocate(&mut self, now: Instant) -> Option<u16> {
        while let Some(&(port, until)) = self.held_elsewhere.front() {
            if until > now {
                break;
            }
            self.held_elsewhere.pop_front();
            self.free.push_back(port);
        }
        while let Some(&(port, since)) = self.away.front() {
            if now.saturating_duration_since(since) < AWAY_AT_MOST {
                break;
            }
            self.away.pop_front();
            self.free.push_back(port);
        }
        match self.recent.front() {
            Some(&(port, since)) if now.saturating_duration_since(since) >= QUARANTINE => {
                self.recent.pop_front();
                Some(port)
            }
            _ => self
                .free
                .pop_front()
                .or_else(|| self.recent.pop_front().map(|(port, _)| port)),
        }
    }

    /// The call is done with `port`; it is free again once its socket is
    /// back ([`PortLedger::returned`]). A port whose bind failed stays set
    /// aside.
    pub fn release(&mut self, port: u16, now: Instant) {
        if self.held_elsewhere.iter().any(|(p, _)| *p == port) {
            return;
        }
        self.away.push_back((port, now));
    }

    /// The socket of released `port` is back with the shell: the port
    /// rests among the recent ones. A port not away is ignored.
    pub fn returned(&mut self, port: u16, now: Instant) {
        let Some(i) = self.away.iter().position(|(p, _)| *p == port) else {
            return;
        };
        self.away.remove(i);
        self.recent.push_back((port, now));
        if self.recent.len() > RECENT
            && let Some((oldest, _)) = self.recent.pop_front()
        {
            self.free.push_back(oldest);
        }
    }

    /// Binding `port` failed: it is neither free nor in use for a while.
    pub fn bind_failed(&mut self, port: u16, now: Instant) {
        self.held_elsewhere.push_back((port, now + HELD_ELSEWHERE));
    }
}

impl Core {
    /// A free port for a stream on `ip`; the shell is asked to bind it.
    pub(super) fn take_port(&mut self, ip: IpAddr, now: Instant) -> Option<u16> {
        let port = self.ports.allocate(now)?;
        self.port_requests.push(PortRequest::Bind { ip, port });
        Some(port)
    }

    /// A call or leg is done with `port`.
    pub(super) fn free_port(&mut self, port: u16, now: Instant) {
        self.ports.release(port, now);
        self.port_requests.push(PortRequest::Release(port));
    }

    /// The shell has `port`'s socket back from the media worker (or never
    /// gave it away): the port can serve another call.
    pub fn on_port_returned(&mut self, port: u16, now: Instant) {
        self.ports.returned(port, now);
    }

    /// The shell could not bind `port` ([`PortRequest::Bind`]): the call or
    /// leg that got it ends as if no port had been free. See the module
    /// docs.
    pub fn on_port_failed(&mut self, port: u16, now: Instant, out: &mut Outputs) {
        self.ports.bind_failed(port, now);
        self.metrics.rejected("no_rtp_port");
        self.isolated(now, &mut out.transmits, |core, out| {
            core.port_failed(port, now, out)
        });
        self.hand_out(out);
    }

    /// Takes leg `lid`'s INVITE out of this turn's transmits, if it is
    /// still there, and forgets its transaction. The shell binds a turn's
    /// ports before it sends the turn's messages, so a leg whose port
    /// failed has not rung its phone yet: without this, the phone would
    /// ring and get a CANCEL at once, and an agent would see an offer that
    /// zentrale could never carry.
    fn take_back_invite(&mut self, lid: LegId, out: &mut Vec<Transmit>) -> bool {
        let Some(key) = self.index.leg_invite(lid) else {
            return false;
        };
        let Some(sent) = self.transactions.client_request(&key) else {
            return false;
        };
        // The same buffer, not equal bytes: the transmit of this very request.
        let Some(i) = out.iter().position(|t| t.bytes.as_ptr() == sent.as_ptr()) else {
            return false;
        };
        out.remove(i);
        self.transactions.forget_client(&key);
        self.index.take_client(&key);
        true
    }

    fn port_failed(&mut self, port: u16, now: Instant, out: &mut Vec<Transmit>) {
        let caller = self
            .sessions
            .iter()
            .find(|(_, s)| s.caller.as_ref().is_some_and(|c| c.media.port == port))
            .map(|(sid, _)| *sid);
        if let Some(sid) = caller {
            self.handling = Some(sid);
            let Some(c) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut()) else {
                return;
            };
            warn!(call_id = %c.call.dialog.call_id, port, "the call's RTP port could not be bound (another process holds it); ending the call");
            let mut actions = c.call.hang_up(EndReason::NoRtpPort);
            if let Some(i) = actions.iter().position(|a| *a == Action::Terminate487) {
                // Not answered yet: what a full port range answers.
                actions.remove(i);
                let resp = with_to_tag(super::overloaded(&c.invite), &c.call.dialog.local_tag);
                let key = c.call.invite_key.clone();
                self.respond(&key, &resp, now, out);
            }
            return self.execute(sid, actions, now, out);
        }
        let leg = self
            .sessions
            .iter()
            .find_map(|(sid, s)| s.legs.iter().find(|l| l.port == port).map(|l| (*sid, l.id)));
        let Some((sid, lid)) = leg else {
            return;
        };
        self.handling = Some(sid);
        let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) else {
            return;
        };
        warn!(leg_call_id = %l.sip.call_id, port, "no RTP port for an outbound leg: the port could not be bound (another process holds it); the offer is not placed");
        let offer = match &l.kind {
            LegKind::Offer(o) => Some(o.clone()),
            LegKind::Forward(_) => None,
        };
        if offer.is_some() {
            // Reported here as not placed; the leg's end reports nothing more.
            l.settled = true;
        }
        if self.take_back_invite(lid, out) {
            // The phone never heard of the leg: nothing to cancel.
            self.release_leg(sid, lid, now);
        } else if let Some(l) = self.sessions.get_mut(&sid).and_then(|s| s.leg_mut(lid)) {
            let actions = l.sip.cancel_or_hang_up();
            self.execute_leg(sid, lid, actions, now, out);
        }
        if let Some(o) = offer {
            self.dispatch_retry
                .get_or_insert(now + super::queueing::NOT_PLACED_RETRY);
            self.report_failure(o.offer, &o.agent, OfferFailure::NotPlaced, now, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_in_order_then_the_longest_released() {
        let now = Instant::now();
        let mut l = PortLedger::new(30001, 30007);
        assert_eq!(l.capacity(), 3);
        assert_eq!(l.allocate(now), Some(30002));
        assert_eq!(l.allocate(now), Some(30004));
        l.release(30002, now);
        l.returned(30002, now);
        // Still resting: a port not used recently comes first.
        assert_eq!(l.allocate(now), Some(30006));
        // Nothing else is free: the resting one rather than a refusal.
        assert_eq!(l.allocate(now), Some(30002));
        assert_eq!(l.allocate(now), None);
    }

    #[test]
    fn a_rested_recent_port_comes_before_an_unused_one() {
        let now = Instant::now();
        let mut l = PortLedger::new(30000, 30010);
        let first = l.allocate(now).unwrap();
        l.release(first, now);
        l.returned(first, now);
        assert_eq!(l.allocate(now), Some(30002), "resting: not yet");
        assert_eq!(
            l.allocate(now + QUARANTINE),
            Some(first),
            "its socket is still bound"
        );
    }

    #[test]
    fn a_port_whose_socket_is_not_back_is_never_handed_out() {
        let now = Instant::now();
        let mut l = PortLedger::new(30000, 30002);
        let (a, b) = (l.allocate(now).unwrap(), l.allocate(now).unwrap());
        l.release(a, now);
        let later = now + QUARANTINE;
        // Everything else is in use: a refusal, not a port the media
        // worker still holds (its bind would fail).
        assert_eq!(l.allocate(later), None);
        l.returned(a, later);
        assert_eq!(l.allocate(later), Some(a));
        // A socket that never comes back (closed, not returned) frees its
        // port after a while.
        l.release(b, later);
        assert_eq!(l.allocate(later + AWAY_AT_MOST), Some(b));
    }

    #[test]
    fn a_port_held_elsewhere_comes_back_after_a_while() {
        let now = Instant::now();
        let mut l = PortLedger::new(30000, 30002);
        let p = l.allocate(now).unwrap();
        l.bind_failed(p, now);
        assert_eq!(l.allocate(now), Some(30002));
        assert_eq!(l.allocate(now + Duration::from_secs(1)), None);
        assert_eq!(l.allocate(now + HELD_ELSEWHERE), Some(p));
    }
}

//! The core's side of admission control (`sip.limits`): per-source rates
//! before a message is parsed, the caps on live server transactions,
//! stateless answers to requests that need no state, the Contacts limit
//! of REGISTER, and the TCP connections that registrations keep open.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use prometheus_client::metrics::counter::Counter;
use tracing::warn;

use super::{Core, overloaded, warning};
use crate::admission::rate::{Budget, SourceRates, Verdict};
use crate::config::Config;
use crate::logging::limit::LogLimit;
use crate::metrics::{Metrics, ReasonLabel};
use crate::sip::Transport;
use crate::sip::message::{Header, Method, Request, StatusCode, encode_response, response};
use crate::sip::transaction::{Peer, ServerKey, Transmit};
use crate::sip::via::TopVia;

/// Sources tracked by the rate limiter at most (a spoofing flood cannot
/// grow the table past this; see [`SourceRates`]).
const RATE_TABLE: usize = 65_536;

/// A repeated warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The end of the live registration each TCP connection (by remote
/// address) carries. The core writes it, the connection tasks read it to
/// know they must stay open (see [`crate::admission::connections`]).
pub type TcpFlows = Arc<DashMap<SocketAddr, Instant>>;

/// What the core keeps for admission control.
pub(super) struct Guard {
    rates: SourceRates,
    /// The request being dispatched, while its refusal may be stateless.
    pub stateless: Option<ServerKey>,
    flows: Option<TcpFlows>,
    rate_limited: Counter,
    /// Rate and cap warnings, each at most once per interval.
    rate_warned: LogLimit,
    cap_warned: LogLimit,
}

impl Guard {
    pub fn new(config: &Config, metrics: &Metrics, now: Instant) -> Guard {
        let l = &config.sip.limits;
        Guard {
            rates: SourceRates::new(
                Budget {
                    per_sec: l.requests_per_sec,
                    burst: l.requests_burst,
                },
                Budget {
                    per_sec: l.trunk_requests_per_sec,
                    burst: l.trunk_requests_burst,
                },
                RATE_TABLE,
                now,
            ),
            stateless: None,
            flows: None,
            // Resolved once: this counts every datagram of a flood.
            rate_limited: metrics
                .sip_rejected
                .get_or_create(&ReasonLabel {
                    reason: "rate_limited",
                })
                .clone(),
            rate_warned: LogLimit::new(WARN_EVERY, 1),
            cap_warned: LogLimit::new(WARN_EVERY, 1),
        }
    }
}

impl Core {
    /// Hands the connection tasks the map of TCP flows registrations keep.
    pub fn set_tcp_flows(&mut self, flows: TcpFlows) {
        self.guard.flows = Some(flows);
    }

    /// Whether `ip` is inside a trunk's `sources`.
    pub(super) fn is_trunk_source(&self, ip: IpAddr) -> bool {
        self.config
            .trunks
            .iter()
            .any(|t| t.sources.iter().any(|c| c.contains(ip)))
    }

    /// The per-source rate, before anything is parsed: `false` drops the
    /// message.
    pub(super) fn within_rate(&mut self, peer: Peer, now: Instant) -> bool {
        let ip = peer.addr.ip();
        let trunks = &self.config.trunks;
        let trusted = || {
            trunks
                .iter()
                .any(|t| t.sources.iter().any(|c| c.contains(ip)))
        };
        if self.guard.rates.check(ip, trusted, now) == Verdict::Pass {
            return true;
        }
        self.guard.rate_limited.inc();
        if let Some(admit) = self.guard.rate_warned.admit(now) {
            warn!(source = %ip, suppressed = admit.suppressed, "source over its request rate (sip.limits); its messages are dropped");
        }
        false
    }

    /// Past a transaction cap, a new request (not a retransmission) is
    /// answered 503 with Retry-After without keeping a transaction.
    /// `true` when it was.
    pub(super) fn refuse_over_cap(
        &mut self,
        req: &Request,
        via: &TopVia,
        peer: Peer,
        reply_to: Peer,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) -> bool {
        if matches!(req.method, Method::Ack | Method::Options) {
            return false;
        }
        let limits = self.config.sip.limits;
        let ip = peer.addr.ip();
        let reason = if self.transactions.len().0 >= limits.transactions {
            "transaction_limit"
        } else if self.transactions.server_count_of(ip) >= limits.transactions_per_source
            && !self.is_trunk_source(ip)
        {
            "source_transaction_limit"
        } else {
            return false;
        };
        // Retransmissions cost no new state, and the requests of live
        // calls (BYE, CANCEL, re-INVITE) must end or change them.
        let call_id = super::call_id_of(req);
        if self.transactions.is_known(req, via)
            || self.index.caller(call_id).is_some()
            || self.index.leg(call_id).is_some()
        {
            return false;
        }
        self.metrics.rejected(reason);
        self.metrics.response_sent(503);
        if let Some(admit) = self.guard.cap_warned.admit(now) {
            warn!(source = %ip, reason, suppressed = admit.suppressed, "server transactions at their cap (sip.limits); new requests get 503");
        }
        out.push(Transmit {
            peer: reply_to,
            bytes: Bytes::from(encode_response(&overloaded(req))),
        });
        true
    }

    /// Whether an answer with status `code` on `key` may leave without a
    /// transaction: refusals of the request being dispatched (the initial
    /// INVITE before any provisional, REGISTER, out-of-dialog requests),
    /// and every answer to OPTIONS.
    pub(super) fn stateless_answer(&self, key: &ServerKey, code: u16) -> bool {
        self.guard.stateless.as_ref() == Some(key)
            && (code >= 300 || (code >= 200 && key.method() == Method::Options))
    }

    /// A REGISTER with more Contacts than `sip.limits.contacts_per_register`
    /// is answered 403 before anything else reads it (no digest check, no
    /// Contact parsing). `true` when it was.
    pub(super) fn refuse_many_contacts(
        &mut self,
        key: &ServerKey,
        req: &Request,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) -> bool {
        let limit = self.config.sip.limits.contacts_per_register;
        let n = count_contacts(req, limit);
        if n <= limit {
            return false;
        }
        self.metrics.rejected("too_many_contacts");
        let mut resp = response(req, StatusCode::Forbidden);
        warning(
            &mut resp,
            &format!("too many Contacts: more than {limit} in one REGISTER"),
        );
        self.respond(key, &resp, now, out);
        true
    }

    /// After a REGISTER over TCP from `peer`: the connection stays open
    /// while a registration made over it lasts.
    pub(super) fn registration_flow(&mut self, peer: Peer, now: Instant) {
        if peer.transport != Transport::Tcp {
            return;
        }
        let Some(flows) = &self.guard.flows else {
            return;
        };
        match self.registrar.flow_expiry(peer.addr, now) {
            Some(until) => {
                flows.insert(peer.addr, until);
            }
            None => {
                flows.remove(&peer.addr);
            }
        }
    }
}

/// The Contacts of `req`, counted up to one past `limit`: each Contact
/// header, and the commas between contacts outside quotes and `<>`.
fn count_contacts(req: &Request, limit: usize) -> usize {
    let mut n = 0;
    for h in req.headers.iter() {
        let Header::Contact(c) = h else {
            continue;
        };
        n += 1;
        let (mut quoted, mut angle, mut escaped) = (false, false, false);
        for b in c.value().bytes() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => n += 1,
                _ => {}
            }
        }
        if n > limit {
            break;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(contacts: &[&str]) -> Request {
        let mut text = String::from(
            "REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:a@h>\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\n",
        );
        for c in contacts {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        text.push_str("\r\n");
        Request::try_from(text.as_str()).unwrap()
    }

    #[test]
    fn contacts_are_counted_by_header_and_by_comma() {
        assert_eq!(count_contacts(&register(&[]), 10), 0);
        assert_eq!(count_contacts(&register(&["<sip:a@h>"]), 10), 1);
        assert_eq!(
            count_contacts(&register(&["<sip:a@h>, <sip:b@h>", "<sip:c@h>"]), 10),
            3
        );
        // Commas inside quotes or <> are no separators.
        assert_eq!(
            count_contacts(&register(&["\"A, \\\"B\" <sip:a@h;x=1,2>"]), 10),
            1
        );
        assert_eq!(count_contacts(&register(&["*"]), 10), 1);
    }

    #[test]
    fn counting_stops_past_the_limit() {
        let many = vec!["<sip:a@h>"; 100];
        assert_eq!(count_contacts(&register(&many), 5), 6);
    }
}

//! The top Via header: what transactions are keyed on and where responses go.
//!
//! Parsed by hand rather than through the message library's typed Via,
//! because it runs for every message and only needs four fields.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::message::{Header, Headers};
use crate::ascii::{self, Decimal};

/// The RFC 3261 magic cookie that marks a branch as globally unique.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The fields of the topmost Via value that routing and matching need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// `host[:port]` exactly as sent, lower-cased for matching. Shared:
    /// transaction keys and their timers hold it for the transaction's life.
    pub sent_by: Arc<str>,
    pub port: Option<u16>,
    pub branch: Option<Arc<str>>,
    /// The `rport` parameter was present (RFC 3581).
    pub rport: bool,
}

impl TopVia {
    /// Parses the first value of the first Via header.
    ///
    /// ```
    /// use zentrale::sip::via::TopVia;
    /// let v = TopVia::parse("SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;rport, SIP/2.0/UDP b").unwrap();
    /// assert_eq!(v.port, Some(5070));
    /// assert_eq!(v.branch.as_deref(), Some("z9hG4bKx"));
    /// assert!(v.rport);
    /// ```
    pub fn parse(value: &str) -> Option<TopVia> {
        Parts::parse(value).map(|top| top.to_top_via())
    }

    /// Finds and parses the top Via of a message.
    pub fn of(headers: &Headers) -> Option<TopVia> {
        headers.iter().find_map(|h| match h {
            Header::Via(v) => TopVia::parse(v.value()),
            _ => None,
        })
    }

    /// The branch when it carries the RFC 3261 magic cookie.
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch
            .as_deref()
            .filter(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// Where a response to a request with this Via goes when it came in
    /// over UDP from `source` (RFC 3261 §18.2.2, RFC 3581 §4).
    pub fn response_target(&self, source: SocketAddr) -> SocketAddr {
        if self.rport {
            return source;
        }
        SocketAddr::new(source.ip(), self.port.unwrap_or(5060))
    }
}

/// The fields of the first via-parm of a Via value, borrowed from it.
struct Parts<'a> {
    sent_by: &'a str,
    host: &'a str,
    port: Option<u16>,
    branch: Option<&'a str>,
    rport: bool,
}

impl<'a> Parts<'a> {
    fn to_top_via(&self) -> TopVia {
        TopVia {
            sent_by: if self.sent_by.bytes().any(|b| b.is_ascii_uppercase()) {
                self.sent_by.to_ascii_lowercase().into()
            } else {
                self.sent_by.into()
            },
            port: self.port,
            branch: self.branch.map(Arc::from),
            rport: self.rport,
        }
    }

    fn parse(value: &'a str) -> Option<Parts<'a>> {
        let first = ascii::trim(ascii::split(value, b',').next()?);
        let space = first.bytes().position(|b| b.is_ascii_whitespace())?;
        let rest = ascii::trim_start(&first[space + 1..]);
        let (sent_by, params) = match ascii::split_once(rest, b';') {
            Some((s, p)) => (ascii::trim(s), p),
            None => (ascii::trim(rest), ""),
        };
        if sent_by.is_empty() {
            return None;
        }
        let (host, port) = split_host_port(sent_by)?;
        let mut branch = None;
        let mut rport = false;
        for p in ascii::split(params, b';') {
            let (k, v) = match ascii::split_once(p, b'=') {
                Some((k, v)) => (ascii::trim(k), Some(ascii::trim(v))),
                None => (ascii::trim(p), None),
            };
            if k.eq_ignore_ascii_case("branch") {
                branch = v;
            } else if k.eq_ignore_ascii_case("rport") {
                rport = true;
            }
        }
        Some(Parts {
            sent_by,
            host,
            port,
            branch,
            rport,
        })
    }
}

/// Adds `received` and `rport=` to the top Via value (RFC 3261 §18.2.1,
/// RFC 3581 §4) so the response finds its way back through NAT. Returns
/// the top Via as [`TopVia::of`] reads it (stamping changes none of its
/// fields), so a request's Via is parsed once; `None` without a readable
/// Via, and then nothing is stamped.
pub fn stamp_received(headers: &mut Headers, source: SocketAddr) -> Option<TopVia> {
    for h in headers.iter_mut() {
        if let Header::Via(via) = h {
            let value = via.value();
            let (first, rest) = match ascii::find(value, b',') {
                Some(i) => (&value[..i], &value[i..]),
                None => (value, ""),
            };
            let top = Parts::parse(first)?;
            // received=<IPv6> and rport=65535 fit in the 48 extra octets.
            let mut out = String::with_capacity(value.len() + 48);
            for (i, p) in ascii::split(first, b';').enumerate() {
                let key = ascii::trim(ascii::split(p, b'=').next().unwrap_or(""));
                if i > 0
                    && (key.eq_ignore_ascii_case("rport") || key.eq_ignore_ascii_case("received"))
                {
                    continue;
                }
                if i > 0 {
                    out.push(';');
                }
                out.push_str(p);
            }
            // No `write!`: this runs for every request.
            if top.rport || host_ip(top.host) != Some(source.ip()) {
                out.push_str(";received=");
                ascii::push_ip(&mut out, source.ip());
            }
            if top.rport {
                out.push_str(";rport=");
                out.push_str(Decimal::new(source.port().into()).as_str());
            }
            out.push_str(rest);
            let parsed = top.to_top_via();
            *via = rsipstack::sip::Via::new(out);
            return Some(parsed);
        }
    }
    None
}

/// The address a Via host names, if it is an IP literal.
fn host_ip(host: &str) -> Option<IpAddr> {
    host.trim_matches(['[', ']']).parse().ok()
}

fn split_host_port(sent_by: &str) -> Option<(&str, Option<u16>)> {
    if let Some(end) = sent_by.strip_prefix('[').and_then(|s| s.find(']')) {
        let host = &sent_by[..end + 2];
        let rest = &sent_by[end + 2..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p.trim().parse().ok()?),
            None => None,
        };
        return Some((host, port));
    }
    match ascii::rfind(sent_by, b':') {
        Some(i) => Some((
            &sent_by[..i],
            Some(ascii::trim(&sent_by[i + 1..]).parse().ok()?),
        )),
        None => Some((sent_by, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sent_by_and_default_port() {
        let v = TopVia::parse("SIP/2.0/TCP [2001:db8::1]:5061;branch=z9hG4bKa").unwrap();
        assert_eq!(&*v.sent_by, "[2001:db8::1]:5061");
        assert_eq!(v.port, Some(5061));
        let v = TopVia::parse("SIP/2.0/UDP host.example").unwrap();
        assert_eq!(v.port, None);
        assert_eq!(v.branch, None);
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(v.response_target(src), "127.0.0.1:5060".parse().unwrap());
    }

    #[test]
    fn stamping_adds_received_and_rport() {
        let mut h = Headers::default();
        h.push(Header::Via(rsipstack::sip::Via::new(
            "SIP/2.0/UDP 10.1.1.1:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP x",
        )));
        stamp_received(&mut h, "127.0.0.1:40000".parse().unwrap());
        let v = h.iter().next().unwrap().to_string();
        assert!(
            v.ends_with("SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK1;received=127.0.0.1;rport=40000, SIP/2.0/UDP x"),
            "{v}"
        );
    }

    #[test]
    fn stamped_addresses_read_as_display_writes_them() {
        let stamp = |via: &str, source: &str| {
            let mut h = Headers::default();
            h.push(Header::Via(rsipstack::sip::Via::new(via)));
            let source: SocketAddr = source.parse().unwrap();
            stamp_received(&mut h, source);
            h.iter().next().unwrap().value().to_owned()
        };
        assert_eq!(
            stamp("SIP/2.0/UDP h;branch=z9hG4bK1", "[2001:db8::7]:5070"),
            "SIP/2.0/UDP h;branch=z9hG4bK1;received=2001:db8::7"
        );
        assert_eq!(
            stamp(
                "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=x",
                "10.0.0.1:5060"
            ),
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1"
        );
        assert_eq!(
            stamp("SIP/2.0/UDP h;rport", "192.168.100.254:65535"),
            "SIP/2.0/UDP h;received=192.168.100.254;rport=65535"
        );
    }

    #[test]
    fn garbage_is_none() {
        assert!(TopVia::parse("").is_none());
        assert!(TopVia::parse("SIP/2.0/UDP").is_none());
        assert!(TopVia::parse("SIP/2.0/UDP h:notaport").is_none());
    }
}

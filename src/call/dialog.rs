//! The dialog of one call leg (RFC 3261 §12) as seen by zentrale as UAS:
//! tags, URIs, route set, CSeq counters, and the in-dialog requests we send.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::sip::Transport;
use crate::sip::message::{Header, Method, PRODUCT, Request, random_token, tag_of};
use crate::sip::transaction::Peer;
use crate::sip::via::MAGIC_COOKIE;

/// Dialog state of a leg zentrale answered.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: Arc<str>,
    /// Our tag (the To tag of our responses).
    pub local_tag: String,
    /// The caller's From tag.
    pub remote_tag: String,
    /// The To header value of the INVITE without tag: our identity.
    pub local_uri: String,
    /// The From header value of the INVITE without tag.
    pub remote_uri: String,
    /// The caller's Contact URI: where in-dialog requests go.
    pub remote_target: String,
    /// Record-Route values of the INVITE, in order (UAS keeps the order).
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    /// Where the INVITE came from (and the local address it reached);
    /// used when the remote target is not an IP literal.
    pub source: Peer,
    /// Send every in-dialog request to `source`, whatever the route set and
    /// target say: agent legs follow the flow the phone registered from
    /// (its Contact is often a private address behind NAT).
    pub pinned: bool,
}

impl Dialog {
    /// Builds the UAS dialog from an initial INVITE (§12.1.1).
    pub fn from_invite(invite: &Request, source: Peer) -> Option<Dialog> {
        let mut call_id = None;
        let mut from = None;
        let mut to = None;
        let mut contact = None;
        let mut cseq = None;
        let mut route_set = Vec::new();
        for h in invite.headers.iter() {
            match h {
                Header::CallId(v) => call_id = Some(v.value()),
                Header::From(v) => from = Some(v.value()),
                Header::To(v) => to = Some(v.value()),
                Header::Contact(v) if contact.is_none() => contact = Some(v.value()),
                Header::CSeq(v) => {
                    cseq = v
                        .value()
                        .split_whitespace()
                        .next()
                        .and_then(|n| n.parse().ok())
                }
                Header::RecordRoute(v) => route_set.extend(split_list(v.value())),
                _ => {}
            }
        }
        let from = from?;
        let remote_tag = tag_of(from).unwrap_or("").to_owned();
        let remote_target = contact
            .and_then(uri_of)
            .unwrap_or_else(|| invite.uri.to_string());
        Some(Dialog {
            call_id: call_id?.into(),
            local_tag: random_token(),
            remote_tag,
            local_uri: strip_tag(to?),
            remote_uri: strip_tag(from),
            remote_target,
            route_set,
            local_cseq: rand::random::<u16>() as u32 + 1,
            remote_cseq: cseq?,
            source,
            pinned: false,
        })
    }

    /// Where in-dialog requests are sent: the first route, else the remote
    /// target, when it names an IP address; otherwise back to where the
    /// INVITE came from (zentrale does no DNS on the call path).
    pub fn next_hop(&self) -> Peer {
        // A TLS peer is reached back over the connection it opened: zentrale
        // has no way to check a phone's own certificate, and the flow is
        // what the peer authenticated over.
        if self.pinned || self.source.transport == Transport::Tls {
            return self.source;
        }
        let uri = self
            .route_set
            .first()
            .map(String::as_str)
            .unwrap_or(&self.remote_target);
        let transport = Transport::of_uri(uri).unwrap_or(self.source.transport);
        match host_port_of(uri) {
            Some(addr) => Peer {
                transport,
                addr,
                local: self.source.local,
            },
            None => self.source,
        }
    }

    /// Builds an in-dialog request (§12.2.1.1) with the next local CSeq.
    pub fn request(
        &mut self,
        method: Method,
        extra: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) -> Request {
        self.local_cseq += 1;
        let hop = self.next_hop();
        let mut text = format!("{method} {} SIP/2.0\r\n", self.remote_target);
        text.push_str(&format!(
            "Via: SIP/2.0/{} {};branch={MAGIC_COOKIE}{};rport\r\n",
            hop.transport,
            self.source.local,
            random_token()
        ));
        for r in &self.route_set {
            text.push_str(&format!("Route: {r}\r\n"));
        }
        text.push_str(&format!(
            "From: {};tag={}\r\n",
            self.local_uri, self.local_tag
        ));
        text.push_str(&format!(
            "To: {};tag={}\r\n",
            self.remote_uri, self.remote_tag
        ));
        text.push_str(&format!("Call-ID: {}\r\n", self.call_id));
        text.push_str(&format!("CSeq: {} {method}\r\n", self.local_cseq));
        text.push_str("Max-Forwards: 70\r\n");
        text.push_str(&format!("User-Agent: {PRODUCT}\r\n"));
        for (k, v) in extra {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or(("", b""));
        if !body.1.is_empty() {
            text.push_str(&format!("Content-Type: {}\r\n", body.0));
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n", body.1.len()));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body.1);
        Request::try_from(bytes).expect("in-dialog request built from parsed values")
    }

    /// Our Contact header value (the address the INVITE reached us on).
    pub fn contact(&self) -> String {
        // RFC 3261 §12.1.1: a dialog begun with a SIPS URI gets a SIPS
        // Contact (which implies TLS, so no transport parameter).
        let sips = self.source.transport == Transport::Tls
            && (is_sips(&self.local_uri) || is_sips(&self.remote_target));
        let transport = if sips {
            ""
        } else {
            self.source.transport.uri_param()
        };
        // Written out: this runs for every answered call.
        let mut contact = String::with_capacity(64);
        contact.push_str(if sips {
            "<sips:zentrale@"
        } else {
            "<sip:zentrale@"
        });
        crate::sip::text::push_socket_addr(&mut contact, self.source.local);
        contact.push_str(transport);
        contact.push('>');
        contact
    }

    /// Whether an in-dialog request belongs to this dialog: its From tag is
    /// the remote tag and its To tag ours.
    pub fn matches(&self, from_tag: Option<&str>, to_tag: Option<&str>) -> bool {
        from_tag.unwrap_or("") == self.remote_tag && to_tag == Some(self.local_tag.as_str())
    }
}

/// Whether a URI, or a name-addr around one, has the `sips` scheme.
pub(crate) fn is_sips(value: &str) -> bool {
    let uri = value.find('<').map_or(value, |i| &value[i + 1..]);
    uri.trim_start()
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
}

pub(crate) fn strip_tag(value: &str) -> String {
    // Drop only the tag parameter after the name-addr, keep others.
    let (addr, params) = match value.rfind('>') {
        Some(i) => value.split_at(i + 1),
        None => match value.find(';') {
            Some(i) => value.split_at(i),
            None => (value, ""),
        },
    };
    let mut out = addr.to_owned();
    for p in params.split(';').filter(|p| !p.trim().is_empty()) {
        let is_tag = p
            .trim()
            .as_bytes()
            .get(..4)
            .is_some_and(|b| b.eq_ignore_ascii_case(b"tag="));
        if !is_tag {
            out.push(';');
            out.push_str(p.trim());
        }
    }
    out
}

/// The URI inside a name-addr or addr-spec value.
pub fn uri_of(value: &str) -> Option<String> {
    let value = value.trim();
    if let (Some(a), Some(b)) = (value.find('<'), value.find('>')) {
        return (a < b).then(|| value[a + 1..b].to_owned());
    }
    let uri = value.split(';').next()?.trim();
    (!uri.is_empty()).then(|| uri.to_owned())
}

/// `host:port` of a SIP URI when the host is an IP literal.
pub fn host_port_of(uri: &str) -> Option<SocketAddr> {
    let uri = uri_of(uri).unwrap_or_else(|| uri.to_owned());
    let rest = uri.split_once(':')?.1; // after the scheme
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let hostport = rest.split([';', '?']).next()?;
    if let Ok(addr) = hostport.parse::<SocketAddr>() {
        return Some(addr);
    }
    let ip: std::net::IpAddr = hostport.trim_matches(['[', ']']).parse().ok()?;
    Some(SocketAddr::new(ip, 5060))
}

fn split_list(value: &str) -> Vec<String> {
    // Record-Route values are name-addrs; commas inside <> or quotes are not separators.
    let mut out = Vec::new();
    let mut depth = false;
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth = true,
            '>' if !quoted => depth = false,
            ',' if !quoted && !depth => {
                out.push(value[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = value[start..].trim();
    if !last.is_empty() {
        out.push(last.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Request {
        Request::try_from(
            "INVITE sip:115@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             Record-Route: <sip:10.0.0.9;lr>, <sip:10.0.0.8;lr>\r\n\
             From: \"Caller\" <sip:0561123@127.0.0.1>;tag=abc\r\n\
             To: <sip:115@127.0.0.1>\r\n\
             Contact: <sip:caller@127.0.0.1:5070>\r\n\
             Call-ID: c1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
    }

    #[test]
    fn bye_follows_route_set_and_tags() {
        let src = Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let mut d = Dialog::from_invite(&invite(), src).unwrap();
        assert_eq!(d.remote_cseq, 7);
        assert_eq!(d.route_set.len(), 2);
        assert_eq!(d.next_hop().addr, "10.0.0.9:5060".parse().unwrap());
        let bye = d.request(Method::Bye, &[], None);
        let text = bye.to_string();
        assert!(
            text.starts_with("BYE sip:caller@127.0.0.1:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("To: \"Caller\" <sip:0561123@127.0.0.1>;tag=abc\r\n"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "From: <sip:115@127.0.0.1>;tag={}\r\n",
            d.local_tag
        )));
        assert!(text.contains("Route: <sip:10.0.0.9;lr>\r\nRoute: <sip:10.0.0.8;lr>\r\n"));
    }

    #[test]
    fn hostnames_fall_back_to_source() {
        let src = Peer {
            transport: Transport::Tcp,
            addr: "127.0.0.2:40000".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let mut inv = invite();
        inv.headers
            .retain(|h| !matches!(h, Header::RecordRoute(_) | Header::Contact(_)));
        inv.headers
            .push(Header::Contact("<sip:caller@phone.invalid>".into()));
        let d = Dialog::from_invite(&inv, src).unwrap();
        assert_eq!(d.next_hop(), src);
    }

    #[test]
    fn tls_dialogs_go_back_over_the_flow_with_a_tls_or_sips_contact() {
        let src = Peer {
            transport: Transport::Tls,
            addr: "127.0.0.1:40001".parse().unwrap(),
            local: "127.0.0.1:5061".parse().unwrap(),
        };
        // Record-Route and Contact name other hops: TLS stays on the flow.
        let d = Dialog::from_invite(&invite(), src).unwrap();
        assert_eq!(d.next_hop(), src);
        assert_eq!(d.contact(), "<sip:zentrale@127.0.0.1:5061;transport=tls>");
        let text = invite()
            .to_string()
            .replace("To: <sip:115@127.0.0.1>", "To: <sips:115@127.0.0.1>");
        let sips = Dialog::from_invite(&Request::try_from(text.as_str()).unwrap(), src).unwrap();
        assert_eq!(sips.contact(), "<sips:zentrale@127.0.0.1:5061>");
        // Over UDP a sips: identity changes nothing.
        let udp = Peer {
            transport: Transport::Udp,
            ..src
        };
        let plain = Dialog::from_invite(&Request::try_from(text.as_str()).unwrap(), udp).unwrap();
        assert_eq!(plain.contact(), "<sip:zentrale@127.0.0.1:5061>");
        assert!(is_sips(" <sips:a@b>") && is_sips("SIPS:a@b") && !is_sips("<sip:a@b>"));
    }
}

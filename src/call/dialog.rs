//! The dialog of one call leg (RFC 3261 §12) as seen by zentrale as UAS:
//! tags, URIs, route set, CSeq counters, and the in-dialog requests we send.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::rng::{SeededRng, keyed_token};
use crate::sip::Transport;
use crate::sip::headers;
use crate::sip::message::{Method, Outgoing, PRODUCT, Request, RequestWriter};
use crate::sip::transaction::Peer;
use crate::sip::via::MAGIC_COOKIE;

/// Dialog state of a leg zentrale answered.
///
/// The remote target and the route set come off the wire; they are only
/// set by constructors that check them ([`Dialog::from_invite`],
/// [`Dialog::from_answer`]), so every in-dialog request built from them
/// parses (see [`check_target`]).
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
    pub(super) remote_target: String,
    /// Record-Route values of the INVITE, in order (UAS keeps the order).
    pub(super) route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    /// Where the INVITE came from (and the local address it reached);
    /// used when the remote target is not an IP literal.
    pub source: Peer,
    /// Send every in-dialog request to `source`, whatever the route set and
    /// target say: agent legs follow the flow the phone registered from
    /// (its Contact is often a private address behind NAT).
    pub pinned: bool,
    /// Keys the branches of our requests ([`crate::rng::keyed_token`]).
    pub(super) branch_key: u64,
}

/// Why a message cannot make a dialog: the header and what is wrong with
/// it, for the `Warning` of the 400 (or the log line of an agent's 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogError {
    pub header: &'static str,
    pub problem: &'static str,
}

impl std::fmt::Display for DialogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.header, self.problem)
    }
}

impl std::error::Error for DialogError {}

impl Dialog {
    /// Builds the UAS dialog from an initial INVITE (§12.1.1). The remote
    /// target (the Contact URI, else the Request-URI) and every
    /// Record-Route entry must be a usable SIP URI ([`check_target`]);
    /// otherwise the INVITE is answered 400 with the error as `Warning`.
    /// Our tag, first CSeq and branches come from `rng`.
    pub fn from_invite(
        invite: &Request,
        source: Peer,
        rng: &mut SeededRng,
    ) -> Result<Dialog, DialogError> {
        let missing = |header| DialogError {
            header,
            problem: "missing",
        };
        let h = headers::dialog_headers(&invite.headers);
        let mut route_set = Vec::new();
        for value in &h.record_route {
            for entry in headers::route_entries(value) {
                route_set.push(checked_route(entry)?);
            }
        }
        let (call_id, from, to, contact, cseq) =
            (h.call_id, h.from, h.to, h.contact, h.cseq.map(|c| c.seq));
        let from = from.ok_or(missing("From"))?;
        let remote_tag = headers::tag_of(from).unwrap_or("").to_owned();
        let remote_target = match contact {
            Some(c) => checked_contact(c)?,
            None => {
                // RFC 2543 peers send no Contact: the Request-URI stands in.
                let uri = invite.uri.to_string();
                check_target(&uri).map_err(|problem| DialogError {
                    header: "Request-URI",
                    problem,
                })?;
                uri
            }
        };
        Ok(Dialog {
            call_id: call_id.ok_or(missing("Call-ID"))?.into(),
            local_tag: rng.token(),
            remote_tag,
            local_uri: headers::without_tag(to.ok_or(missing("To"))?),
            remote_uri: headers::without_tag(from),
            remote_target,
            route_set,
            local_cseq: (rng.next_u32() & 0xffff) + 1,
            remote_cseq: cseq.ok_or(missing("CSeq"))?,
            source,
            pinned: false,
            branch_key: rng.next_u64(),
        })
    }

    /// The URI in-dialog requests are addressed to (checked).
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, in the order of the Route headers we send.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
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
    ///
    /// `None` only if a value of the dialog would break the message's
    /// framing (a line break), which the checks of the constructors rule
    /// out for what came off the wire; the caller then ends the dialog
    /// without the request instead of sending it.
    pub fn request(
        &mut self,
        method: Method,
        extra: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) -> Option<Outgoing> {
        self.local_cseq += 1;
        let branch = keyed_token(self.branch_key, u64::from(self.local_cseq));
        let request = self.write(method, self.local_cseq, &branch, extra, body);
        if request.is_none() {
            tracing::error!(call_id = %self.call_id, %method, "in-dialog request with a line break in a value");
        }
        request
    }

    /// A request of this dialog with CSeq number `cseq` and the branch
    /// [`MAGIC_COOKIE`] + `branch`, in the order of RFC 3261's examples.
    pub(super) fn write(
        &self,
        method: Method,
        cseq: u32,
        branch: &str,
        extra: &[(&str, String)],
        body: Option<(&str, &[u8])>,
    ) -> Option<Outgoing> {
        let hop = self.next_hop();
        let mut w = RequestWriter::new(method, &self.remote_target);
        let mut sent_by = String::with_capacity(48);
        crate::ascii::push_socket_addr(&mut sent_by, self.source.local);
        w.via(
            hop.transport.as_str(),
            &sent_by,
            &[MAGIC_COOKIE, branch].concat(),
        );
        for r in &self.route_set {
            w.header("Route", &[r]);
        }
        w.header("From", &[&self.local_uri, ";tag=", &self.local_tag]);
        w.header("To", &[&self.remote_uri, ";tag=", &self.remote_tag]);
        w.header("Call-ID", &[&self.call_id]);
        w.cseq(cseq, method);
        w.header("Max-Forwards", &["70"]);
        w.header("User-Agent", &[PRODUCT]);
        for (k, v) in extra {
            w.header(k, &[v]);
        }
        let (content_type, body) = body.unwrap_or(("", b""));
        w.finish(Some(content_type), body)
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
        crate::ascii::push_socket_addr(&mut contact, self.source.local);
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

use crate::sip::headers::addr_spec;
pub use crate::sip::headers::uri_of;
// Also the check `agent_leg` makes on an answer's Contact.
pub(super) use crate::sip::uri::check_target;

/// The remote target of an INVITE's (or a 2xx's) Contact, checked.
pub(super) fn checked_contact(value: &str) -> Result<String, DialogError> {
    let err = |problem| DialogError {
        header: "Contact",
        problem,
    };
    let (uri, _) = addr_spec(value).map_err(err)?;
    check_target(uri).map_err(err)?;
    Ok(uri.to_owned())
}

/// One Record-Route entry, checked: a name-addr whose URI is usable.
pub(super) fn checked_route(entry: &str) -> Result<String, DialogError> {
    let err = |problem| DialogError {
        header: "Record-Route",
        problem,
    };
    if entry.is_empty() {
        return Err(err("empty entry"));
    }
    let (uri, bracketed) = addr_spec(entry).map_err(err)?;
    if !bracketed {
        return Err(err("entry without <>"));
    }
    check_target(uri).map_err(err)?;
    Ok(entry.to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An INVITE with these Contact and Record-Route values (none: no
    /// such header).
    fn with(contact: Option<&str>, record_route: Option<&str>) -> Request {
        let mut text = String::from(
            "INVITE sip:115@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n",
        );
        if let Some(r) = record_route {
            text.push_str(&format!("Record-Route: {r}\r\n"));
        }
        text.push_str(
            "From: \"Caller\" <sip:0561123@127.0.0.1>;tag=abc\r\n\
             To: <sip:115@127.0.0.1>\r\n",
        );
        if let Some(c) = contact {
            text.push_str(&format!("Contact: {c}\r\n"));
        }
        text.push_str(
            "Call-ID: c1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        );
        Request::try_from(text.as_str()).unwrap()
    }

    fn invite() -> Request {
        with(
            Some("<sip:caller@127.0.0.1:5070>"),
            Some("<sip:127.0.0.9;lr>, <sip:127.0.0.8;lr>"),
        )
    }

    #[test]
    fn bye_follows_route_set_and_tags() {
        let src = Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let mut d = Dialog::from_invite(&invite(), src, &mut SeededRng::from_u64(1)).unwrap();
        assert_eq!(d.remote_cseq, 7);
        assert_eq!(d.route_set.len(), 2);
        assert_eq!(d.next_hop().addr, "127.0.0.9:5060".parse().unwrap());
        let bye = d.request(Method::Bye, &[], None).unwrap();
        bye.assert_reads_back();
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
        assert!(text.contains("Route: <sip:127.0.0.9;lr>\r\nRoute: <sip:127.0.0.8;lr>\r\n"));
    }

    #[test]
    fn hostnames_fall_back_to_source() {
        let src = Peer {
            transport: Transport::Tcp,
            addr: "127.0.0.2:40000".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let inv = with(Some("<sip:caller@phone.invalid>"), None);
        let d = Dialog::from_invite(&inv, src, &mut SeededRng::from_u64(1)).unwrap();
        assert_eq!(d.next_hop(), src);
    }

    fn src() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    #[test]
    fn targets_zentrale_can_send_to() {
        for uri in [
            "sip:caller@127.0.0.1:5070",
            "sip:127.0.0.1",
            "SIP:Caller@Example.COM.",
            "sips:caller@[::1]:5061;transport=tls",
            "sip:+4956112345;phone-context=x@127.0.0.1;user=phone",
            "sip:a:secret@127.0.0.1;lr;maddr=127.0.0.2",
            "sip:caller@phone-1.example",
        ] {
            assert_eq!(check_target(uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn targets_zentrale_cannot_send_to() {
        for (uri, why) in [
            ("sip:caller@", "empty host"),
            ("sip:", "empty host"),
            ("sip:@127.0.0.1", "empty user part"),
            ("sip::pw@127.0.0.1", "empty user part"),
            ("sip:caller@127.0.0.1:", "invalid port"),
            ("sip:caller@127.0.0.1:0", "invalid port"),
            ("sip:caller@127.0.0.1:65536", "invalid port"),
            ("sip:caller@127.0.0.1:5x", "invalid port"),
            ("sip:caller@[::1", "IPv6 address without ']'"),
            ("sip:caller@[::g]", "invalid IPv6 address"),
            ("sip:caller@[::1]x", "text after the IPv6 address"),
            ("sip:caller@127.0.0.256", "invalid IPv4 address"),
            ("sip:caller@bad_host", "invalid host name"),
            ("sip:caller@-bad.example", "invalid host name"),
            ("sip:caller@a..b", "invalid host name"),
            ("sip:caller@127.0.0.1;", "empty URI parameter"),
            ("sip:caller@127.0.0.1;=x", "empty URI parameter"),
            ("sip:caller@127.0.0.1?Subject=x", "URI with headers"),
            ("tel:+4956112345", "not a sip: or sips: URI"),
            ("*", "not a sip: or sips: URI"),
            ("", "empty URI"),
            (
                "sip:cal ler@127.0.0.1",
                "URI with whitespace, control characters, quotes or brackets",
            ),
            (
                "sip:\"a\"@127.0.0.1",
                "URI with whitespace, control characters, quotes or brackets",
            ),
        ] {
            assert_eq!(check_target(uri), Err(why), "{uri}");
        }
    }

    #[test]
    fn invite_with_unusable_contact_or_route_makes_no_dialog() {
        for (contact, rr, header) in [
            (Some("<sip:caller@>"), None, "Contact"),
            (Some("\"Bob\" <sip:>;expires=5"), None, "Contact"),
            (Some("sip:caller@127.0.0.1:70000"), None, "Contact"),
            (Some("*"), None, "Contact"),
            (Some("<sip:caller@127.0.0.1"), None, "Contact"),
            (Some("<sip:caller@127.0.0.1> junk"), None, "Contact"),
            (Some("\"a<b\" <sip:caller@>"), None, "Contact"),
            (None, Some("<sip:;lr>"), "Record-Route"),
            (
                None,
                Some("<sip:127.0.0.1;lr>, , <sip:127.0.0.2;lr>"),
                "Record-Route",
            ),
            (
                None,
                Some("<sip:127.0.0.1;lr>, sip:127.0.0.2"),
                "Record-Route",
            ),
            (None, Some("<sip:127.0.0.1:99999;lr>"), "Record-Route"),
        ] {
            let err = Dialog::from_invite(&with(contact, rr), src(), &mut SeededRng::from_u64(1))
                .expect_err(&format!("{contact:?} {rr:?}"));
            assert_eq!(err.header, header, "{contact:?} {rr:?}: {err}");
        }
    }

    #[test]
    fn quoted_brackets_in_a_display_name_are_not_the_uri() {
        let inv = with(
            Some("\"x <sip:evil@> y\" <sip:caller@127.0.0.1:5070>"),
            None,
        );
        let d = Dialog::from_invite(&inv, src(), &mut SeededRng::from_u64(1)).unwrap();
        assert_eq!(d.remote_target(), "sip:caller@127.0.0.1:5070");
    }

    #[test]
    fn every_dialog_made_builds_its_requests() {
        for contact in [
            "<sip:caller@127.0.0.1:5070>",
            "sip:caller@127.0.0.1;transport=tcp",
            "<sips:caller@[::1]:5061;transport=tls>;expires=60",
            "\"Anrufer\" <sip:caller@host.example>",
        ] {
            let mut d = Dialog::from_invite(
                &with(Some(contact), Some("<sip:127.0.0.2;lr>")),
                src(),
                &mut SeededRng::from_u64(1),
            )
            .unwrap_or_else(|e| panic!("{contact}: {e}"));
            for method in [Method::Bye, Method::Update, Method::Info] {
                let r = d.request(method, &[], None).expect(contact);
                r.assert_reads_back();
            }
            let extra = [
                ("Supported", "timer".to_owned()),
                ("Session-Expires", "90;refresher=uas".to_owned()),
            ];
            d.request(Method::Update, &extra, None)
                .unwrap()
                .assert_reads_back();
            let dtmf = ("application/dtmf-relay", &b"Signal=5\r\n"[..]);
            d.request(Method::Info, &[], Some(dtmf))
                .unwrap()
                .assert_reads_back();
        }
        // Without a Contact the Request-URI stands in (RFC 2543 peers).
        let mut d =
            Dialog::from_invite(&with(None, None), src(), &mut SeededRng::from_u64(1)).unwrap();
        assert_eq!(d.remote_target(), "sip:115@127.0.0.1");
        assert!(d.request(Method::Bye, &[], None).is_some());
    }

    #[test]
    fn tls_dialogs_go_back_over_the_flow_with_a_tls_or_sips_contact() {
        let src = Peer {
            transport: Transport::Tls,
            addr: "127.0.0.1:40001".parse().unwrap(),
            local: "127.0.0.1:5061".parse().unwrap(),
        };
        // Record-Route and Contact name other hops: TLS stays on the flow.
        let d = Dialog::from_invite(&invite(), src, &mut SeededRng::from_u64(1)).unwrap();
        assert_eq!(d.next_hop(), src);
        assert_eq!(d.contact(), "<sip:zentrale@127.0.0.1:5061;transport=tls>");
        let text = invite()
            .to_string()
            .replace("To: <sip:115@127.0.0.1>", "To: <sips:115@127.0.0.1>");
        let sips = Dialog::from_invite(
            &Request::try_from(text.as_str()).unwrap(),
            src,
            &mut SeededRng::from_u64(1),
        )
        .unwrap();
        assert_eq!(sips.contact(), "<sips:zentrale@127.0.0.1:5061>");
        // Over UDP a sips: identity changes nothing.
        let udp = Peer {
            transport: Transport::Udp,
            ..src
        };
        let plain = Dialog::from_invite(
            &Request::try_from(text.as_str()).unwrap(),
            udp,
            &mut SeededRng::from_u64(1),
        )
        .unwrap();
        assert_eq!(plain.contact(), "<sip:zentrale@127.0.0.1:5061>");
        assert!(is_sips(" <sips:a@b>") && is_sips("SIPS:a@b") && !is_sips("<sip:a@b>"));
    }
}

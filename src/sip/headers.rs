//! Typed access to the headers every layer asks about: Call-ID, CSeq, the
//! From and To tags, the From user, whether a body is SDP and the key of a
//! SIP INFO DTMF body. One parser for each, here, so that nothing outside
//! `sip` matches on the message types or splits header values itself.
//!
//! The accessors take [`Headers`], so requests and responses alike answer.
//! They read what screening (`sip::screen`) handed on: long and compact
//! names (`Call-ID`/`i`, `From`/`f`, `To`/`t`, `Content-Type`/`c`) in any
//! case, folded lines joined, values as the message wrote them.
//!
//! ```
//! use zentrale::sip::headers;
//! use zentrale::sip::message::Request;
//! let req = Request::try_from(
//!     "BYE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK2\r\n\
//!      f: \"Anna\" <sip:anna@127.0.0.1>;TAG=1\r\nt: <sip:115@127.0.0.1>;tag=2\r\n\
//!      i: c2\r\nCSeq: 2 BYE\r\n\r\n",
//! )
//! .unwrap();
//! assert_eq!(headers::call_id(&req.headers), Some("c2"));
//! assert_eq!(headers::cseq(&req.headers).map(|c| (c.seq, c.method)), Some((2, "BYE")));
//! assert_eq!(headers::from_tag(&req.headers), Some("1"));
//! assert_eq!(headers::to_tag(&req.headers), Some("2"));
//! assert_eq!(headers::from_user(&req.headers).as_deref(), Some("anna"));
//! ```

use super::message::{Header, Headers};
use crate::ascii;

/// A CSeq header (RFC 3261 §20.16): the sequence number and the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    /// The method token as written (methods are case-sensitive).
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Reads `number LWS method`: digits, whitespace, a token. `None` for
    /// anything else, and for a number beyond 32 bits (screening refuses
    /// numbers of 2^31 and more before this is asked).
    ///
    /// ```
    /// use zentrale::sip::headers::CSeq;
    /// assert_eq!(CSeq::parse(" 0009 \t INVITE "), Some(CSeq { seq: 9, method: "INVITE" }));
    /// assert_eq!(CSeq::parse("1INVITE"), None);
    /// assert_eq!(CSeq::parse("99999999999 BYE"), None);
    /// ```
    pub fn parse(value: &'a str) -> Option<CSeq<'a>> {
        let (n, method) = split_cseq(value)?;
        Some(CSeq {
            seq: n.parse().ok()?,
            method,
        })
    }
}

/// `number method` of a CSeq value, the number as digits of any length:
/// the syntax screening checks, before any range.
#[inline]
pub(crate) fn split_cseq(v: &str) -> Option<(&str, &str)> {
    let v = ascii::trim(v);
    let end = v.bytes().position(|b| !b.is_ascii_digit())?;
    let (n, rest) = v.split_at(end);
    let m = ascii::trim_start(rest);
    if n.is_empty() || m.len() == rest.len() || !super::screen::is_token(m.as_bytes()) {
        return None;
    }
    Some((n, m))
}

/// The first Call-ID.
pub fn call_id(headers: &Headers) -> Option<&str> {
    headers.iter().find_map(|h| match h {
        Header::CallId(v) => Some(v.value()),
        _ => None,
    })
}

/// The first CSeq, read ([`CSeq::parse`]).
pub fn cseq(headers: &Headers) -> Option<CSeq<'_>> {
    headers.iter().find_map(|h| match h {
        Header::CSeq(v) => CSeq::parse(v.value()),
        _ => None,
    })
}

/// The first From header's value.
pub fn from(headers: &Headers) -> Option<&str> {
    headers.iter().find_map(|h| match h {
        Header::From(v) => Some(v.value()),
        _ => None,
    })
}

/// The first To header's value.
pub fn to(headers: &Headers) -> Option<&str> {
    headers.iter().find_map(|h| match h {
        Header::To(v) => Some(v.value()),
        _ => None,
    })
}

/// The tag of the first From header.
pub fn from_tag(headers: &Headers) -> Option<&str> {
    tag_of(from(headers)?)
}

/// The tag of the first To header (`None` outside a dialog).
pub fn to_tag(headers: &Headers) -> Option<&str> {
    tag_of(to(headers)?)
}

/// The `tag` parameter of a From or To header value, if any: the name in
/// any case, whitespace around `=` allowed; a `tag` inside the `<>` of a
/// name-addr belongs to the URI and does not count.
///
/// ```
/// use zentrale::sip::headers::tag_of;
/// assert_eq!(tag_of("<sip:a@b;tag=no>;tag=yes"), Some("yes"));
/// assert_eq!(tag_of("sip:a@b ;  TAG = x"), Some("x"));
/// assert_eq!(tag_of("\"A\" <sip:a@b>"), None);
/// ```
pub fn tag_of(value: &str) -> Option<&str> {
    // Parameters follow the closing '>' of a name-addr, or the addr-spec.
    let params = match ascii::rfind(value, b'>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    ascii::split(params, b';').skip(1).find_map(|p| {
        let (k, v) = ascii::split_once(p, b'=')?;
        ascii::trim(k)
            .eq_ignore_ascii_case("tag")
            .then(|| ascii::trim(v))
    })
}

/// The user part of the first From header's URI, without URI parameters
/// (`sip:1001;x=y@host` gives `1001`): who an agent's phone says it is.
pub fn from_user(headers: &Headers) -> Option<String> {
    let uri = uri_of(from(headers)?)?;
    let rest = uri.split_once(':')?.1;
    let user = rest.split_once('@')?.0;
    Some(user.split(';').next().unwrap_or("").to_owned())
}

/// The first Content-Type, trimmed.
pub fn content_type(headers: &Headers) -> Option<&str> {
    headers.iter().find_map(|h| match h {
        Header::ContentType(v) => Some(ascii::trim(v.value())),
        _ => None,
    })
}

/// Whether a message with these headers carries an SDP body: a body at
/// all, and a Content-Type of `application/sdp` (any case, parameters
/// allowed; see [`is_sdp`](super::message::is_sdp)).
pub fn has_sdp(headers: &Headers, body: &[u8]) -> bool {
    !body.is_empty()
        && headers.iter().any(|h| match h {
            Header::ContentType(v) => super::message::is_sdp(v.value()),
            _ => false,
        })
}

/// The key of a SIP INFO DTMF body: `application/dtmf-relay`
/// (`Signal=1`) or `application/dtmf` (`1`); `0`-`9`, `*`, `#` or `A`-`D`
/// (a lower-case letter is read as upper case). `None` for another body or
/// anything else in it.
pub fn info_digit(headers: &Headers, body: &[u8]) -> Option<char> {
    let content_type = headers.iter().find_map(|h| match h {
        Header::ContentType(v) => Some(v.value().to_ascii_lowercase()),
        _ => None,
    })?;
    let body = std::str::from_utf8(body).ok()?;
    let value = if content_type.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if content_type.starts_with("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let mut chars = value.chars();
    let digit = chars.next()?.to_ascii_uppercase();
    let valid = digit.is_ascii_digit() || matches!(digit, '*' | '#' | 'A'..='D');
    (valid && chars.next().is_none()).then_some(digit)
}

/// The URI of a From, To, Contact or Record-Route value (name-addr or
/// addr-spec), `None` when it is malformed or empty.
///
/// ```
/// use zentrale::sip::headers::uri_of;
/// assert_eq!(uri_of("\"<A>\" <sip:a@b;lr> ;tag=1").as_deref(), Some("sip:a@b;lr"));
/// assert_eq!(uri_of("sip:a@b;tag=1").as_deref(), Some("sip:a@b"));
/// ```
pub fn uri_of(value: &str) -> Option<String> {
    let (uri, _) = addr_spec(value).ok()?;
    (!uri.is_empty()).then(|| uri.to_owned())
}

/// The addr-spec of a name-addr (`"Name" <uri>;params`) or of a bare
/// addr-spec (`uri;params`, the parameters belonging to the header, RFC
/// 3261 §20.10), and whether it was in angle brackets. A `<` inside the
/// quoted display name does not count.
pub fn addr_spec(value: &str) -> Result<(&str, bool), &'static str> {
    let value = value.trim();
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '<' => {
                let rest = &value[i + 1..];
                let end = rest.find('>').ok_or("no '>' after '<'")?;
                let after = rest[end + 1..].trim_start();
                if !after.is_empty() && !after.starts_with(';') {
                    return Err("text after the '>'");
                }
                return Ok((rest[..end].trim(), true));
            }
            _ => {}
        }
    }
    if quoted {
        return Err("unbalanced quotes");
    }
    let uri = value.split_once(';').map_or(value, |(uri, _)| uri).trim();
    Ok((uri, false))
}

// What the in-crate peers (the harness's trunk and phones, the fuzz
// targets) read of the messages zentrale sends them.

/// Every Via value, top first.
pub fn vias(headers: &Headers) -> impl Iterator<Item = &str> {
    headers.iter().filter_map(|h| match h {
        Header::Via(v) => Some(v.value()),
        _ => None,
    })
}

/// The first Contact header's value.
pub fn contact(headers: &Headers) -> Option<&str> {
    headers.iter().find_map(|h| match h {
        Header::Contact(v) => Some(v.value()),
        _ => None,
    })
}

/// The digest challenges of a 401 or 407 (`WWW-Authenticate` and
/// `Proxy-Authenticate` values), in the order they came.
pub fn challenges(headers: &Headers) -> impl Iterator<Item = &str> {
    headers.iter().filter_map(|h| match h {
        Header::WwwAuthenticate(v) => Some(v.value()),
        Header::ProxyAuthenticate(v) => Some(v.value()),
        _ => None,
    })
}

/// Every header as `(name, value)`, in order: the long form of the name,
/// the value as written (a reply copies Via, From, To, Call-ID and CSeq
/// this way, in the order they came).
pub fn fields(headers: &Headers) -> impl Iterator<Item = (&str, &str)> {
    headers.iter().map(|h| (h.name(), h.value()))
}

/// The value of the first header called `name` (the long form, in any
/// case), trimmed: for headers without an accessor of their own
/// (`Reason`, `Session-Expires`, an `X-` header).
pub fn named<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    all_named(headers, name).next()
}

/// Every value of the headers called `name`, in order (see [`named`]).
pub fn all_named<'a>(headers: &'a Headers, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value().trim())
}

/// What makes or matches a dialog (RFC 3261 §12.1), read in one pass over
/// a request's or a response's headers: each single-valued one as the
/// first of its kind, the Record-Route values in order.
#[derive(Debug, Default)]
pub struct DialogHeaders<'a> {
    pub call_id: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    /// The first Contact value (a list stays as written).
    pub contact: Option<&'a str>,
    pub cseq: Option<CSeq<'a>>,
    /// Each Record-Route header's value; [`route_entries`] splits one.
    pub record_route: Vec<&'a str>,
}

/// See [`DialogHeaders`].
pub fn dialog_headers(headers: &Headers) -> DialogHeaders<'_> {
    let mut d = DialogHeaders::default();
    for h in headers.iter() {
        match h {
            Header::CallId(v) => {
                d.call_id.get_or_insert(v.value());
            }
            Header::From(v) => {
                d.from.get_or_insert(v.value());
            }
            Header::To(v) => {
                d.to.get_or_insert(v.value());
            }
            Header::Contact(v) => {
                d.contact.get_or_insert(v.value());
            }
            Header::CSeq(v) if d.cseq.is_none() => d.cseq = CSeq::parse(v.value()),
            Header::RecordRoute(v) => d.record_route.push(v.value()),
            _ => {}
        }
    }
    d
}

/// The name-addrs of one Route or Record-Route value, trimmed: commas
/// inside `<>` or quotes do not separate. An empty entry between two
/// commas is kept (empty), the caller refuses it; a trailing one is not.
///
/// ```
/// use zentrale::sip::headers::route_entries;
/// let v = "<sip:127.0.0.1;lr>, \"a,b\" <sip:127.0.0.2;lr>";
/// assert_eq!(route_entries(v), ["<sip:127.0.0.1;lr>", "\"a,b\" <sip:127.0.0.2;lr>"]);
/// ```
pub fn route_entries(value: &str) -> Vec<&str> {
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
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = value[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// A From or To value without its `tag` parameter, other header
/// parameters kept: the local or remote URI of a dialog (RFC 3261 §12.1.1).
///
/// ```
/// use zentrale::sip::headers::without_tag;
/// assert_eq!(without_tag("\"A\" <sip:a@127.0.0.1>;tag=1;x=y"), "\"A\" <sip:a@127.0.0.1>;x=y");
/// assert_eq!(without_tag("sip:a@127.0.0.1;tag=1"), "sip:a@127.0.0.1");
/// ```
pub fn without_tag(value: &str) -> String {
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

/// The session-timer headers of a request (RFC 4028), as written: what
/// `call::session_timer` negotiates from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionHeaders<'a> {
    /// The delta-seconds of the last Session-Expires; `None` without one
    /// or when it is not a number.
    pub expires: Option<u32>,
    /// The `refresher` parameter's value, trimmed (any case).
    pub refresher: Option<&'a str>,
    /// A Supported header lists `timer`.
    pub supports_timer: bool,
    /// The last Min-SE's delta-seconds, 0 without one (or unreadable).
    pub min_se: u32,
}

/// See [`SessionHeaders`].
pub fn session_headers(headers: &Headers) -> SessionHeaders<'_> {
    let mut s = SessionHeaders::default();
    for h in headers.iter() {
        match h {
            Header::SessionExpires(v) => {
                let mut parts = v.value().split(';');
                s.expires = parts.next().and_then(|n| n.trim().parse::<u32>().ok());
                for p in parts {
                    if let Some((k, val)) = p.split_once('=')
                        && k.trim().eq_ignore_ascii_case("refresher")
                    {
                        s.refresher = Some(val.trim());
                    }
                }
            }
            Header::Supported(v) => {
                s.supports_timer |= v
                    .value()
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("timer"));
            }
            Header::MinSE(v) => {
                s.min_se = v
                    .value()
                    .split(';')
                    .next()
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;
    use crate::sip::message::Request;
    use crate::sip::screen::{Screened, screen};

    const TORTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/rfc4475");

    /// A request as screening hands it on.
    fn screened(text: &[u8]) -> Request {
        match screen(text, Transport::Udp) {
            Screened::Request(r) => *r,
            Screened::Ack(a) => panic!("an ACK: {a:?}"),
            Screened::Reject { status, response } => {
                panic!("{status}: {}", String::from_utf8_lossy(&response))
            }
            Screened::Drop(why) => panic!("dropped: {why}"),
            _ => panic!("not a request"),
        }
    }

    fn torture(name: &str) -> Request {
        let path = format!("{TORTURE_DIR}/{name}");
        screened(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    fn request(head: &str) -> Request {
        request_of("INVITE", head)
    }

    fn request_of(method: &str, head: &str) -> Request {
        screened(
            format!(
                "{method} sip:115@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
                 Max-Forwards: 70\r\n{head}\r\n"
            )
            .as_bytes(),
        )
    }

    #[test]
    fn compact_forms_and_any_case() {
        for head in [
            "i: c1@127.0.0.1\r\nf: <sip:1001@127.0.0.1>;tag=a\r\nt: <sip:115@127.0.0.1>;tag=b\r\nCSeq: 7 INVITE\r\n",
            "call-id: c1@127.0.0.1\r\nFROM: <sip:1001@127.0.0.1>;Tag=a\r\nto: <sip:115@127.0.0.1>;TAG=b\r\ncseq: 7 INVITE\r\n",
            "CALL-ID:   c1@127.0.0.1  \r\nFrom:<sip:1001@127.0.0.1> ; tag = a \r\nTo :  <sip:115@127.0.0.1>;x=y;tag=b;z\r\nCSeq:   7    INVITE  \r\n",
        ] {
            let r = request(head);
            let h = &r.headers;
            assert_eq!(call_id(h), Some("c1@127.0.0.1"), "{head}");
            assert_eq!(
                cseq(h),
                Some(CSeq {
                    seq: 7,
                    method: "INVITE"
                }),
                "{head}"
            );
            assert_eq!(from_tag(h), Some("a"), "{head}");
            assert_eq!(to_tag(h), Some("b"), "{head}");
            assert_eq!(from_user(h).as_deref(), Some("1001"), "{head}");
        }
    }

    #[test]
    fn display_names_and_uri_parameters() {
        for (from_value, user, tag) in [
            (
                "\"Anna <Amt>\" <sip:anna@127.0.0.1>;tag=t1",
                Some("anna"),
                Some("t1"),
            ),
            (
                "Anna Amt <sip:anna;ext=1@127.0.0.1;tag=uri>",
                Some("anna"),
                None,
            ),
            ("sip:1001@127.0.0.1;tag=bare", Some("1001"), Some("bare")),
            (
                "\"\\\"q\\\"\" <sip:+4956178700@127.0.0.1;user=phone>;tag=x",
                Some("+4956178700"),
                Some("x"),
            ),
            ("<sip:127.0.0.1>;tag=y", None, Some("y")),
        ] {
            let r = request(&format!(
                "Call-ID: c\r\nFrom: {from_value}\r\nTo: <sip:115@127.0.0.1>\r\nCSeq: 1 INVITE\r\n"
            ));
            assert_eq!(from_user(&r.headers).as_deref(), user, "{from_value}");
            assert_eq!(from_tag(&r.headers), tag, "{from_value}");
            assert_eq!(to_tag(&r.headers), None);
        }
        // Screening refuses these; the accessors still answer sensibly.
        assert_eq!(uri_of("\"unbalanced <sip:a@127.0.0.1>"), None);
        assert_eq!(uri_of("<sip:a@127.0.0.1> junk"), None);
        assert_eq!(uri_of("<>"), None);
    }

    #[test]
    fn cseq_forms() {
        assert_eq!(
            CSeq::parse("1 ACK"),
            Some(CSeq {
                seq: 1,
                method: "ACK"
            })
        );
        assert_eq!(CSeq::parse("4294967295 BYE").map(|c| c.seq), Some(u32::MAX));
        for bad in [
            "",
            "INVITE",
            "1",
            "1 ",
            "-1 INVITE",
            "1INVITE",
            "4294967296 BYE",
            "1 IN VITE",
            "x1 BYE",
        ] {
            assert_eq!(CSeq::parse(bad), None, "{bad:?}");
        }
        // The method keeps its case: methods are case-sensitive.
        assert_eq!(CSeq::parse("2 invite").map(|c| c.method), Some("invite"));
    }

    #[test]
    fn sdp_and_info_bodies() {
        // Parsed, not screened: screening refuses bodies nobody reads
        // (415), and the accessors must still not take them for SDP or DTMF.
        let with = |method: &str, ct: &str, body: &str| {
            Request::try_from(
                format!(
                    "{method} sip:115@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\
                     Max-Forwards: 70\r\nCall-ID: c\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:115@127.0.0.1>;tag=2\r\n\
                     CSeq: 1 {method}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_str(),
            )
            .unwrap_or_else(|e| panic!("{method} {ct}: {e}"))
        };
        let r = |ct: &str, body: &str| with("INVITE", ct, body);
        let sdp = "v=0\r\n";
        for ct in [
            "Content-Type: application/sdp\r\n",
            "c: Application/SDP\r\n",
            "content-type: application/sdp; charset=utf-8\r\n",
        ] {
            let m = r(ct, sdp);
            assert!(has_sdp(&m.headers, &m.body), "{ct}");
            assert!(!has_sdp(&m.headers, b""), "no body, no SDP: {ct}");
        }
        let m = with("INFO", "Content-Type: multipart/mixed;boundary=x\r\n", sdp);
        assert!(!has_sdp(&m.headers, &m.body));
        assert_eq!(content_type(&m.headers), Some("multipart/mixed;boundary=x"));

        for (ct, body, digit) in [
            (
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n",
                Some('5'),
            ),
            ("Application/DTMF-Relay", "signal = #\r\n", Some('#')),
            (
                "application/dtmf-relay",
                "Duration=160\r\nSignal= a\r\n",
                Some('A'),
            ),
            ("application/dtmf", "*", Some('*')),
            ("application/dtmf", " 9 \r\n", Some('9')),
            ("application/dtmf", "12", None),
            ("application/dtmf-relay", "Signal=E\r\n", None),
            ("text/plain", "1", None),
        ] {
            let m = with("INFO", &format!("Content-Type: {ct}\r\n"), body);
            assert_eq!(info_digit(&m.headers, &m.body), digit, "{ct} {body:?}");
        }
        let none = request(
            "Call-ID: c\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCSeq: 1 INVITE\r\n",
        );
        assert_eq!(info_digit(&none.headers, b"1"), None);
        assert_eq!(content_type(&none.headers), None);
    }

    /// RFC 4475 §3.1.1.1 (wsinv): folded, oddly spaced, mixed-case headers.
    #[test]
    fn rfc4475_wsinv() {
        let r = torture("wsinv.dat");
        let h = &r.headers;
        assert_eq!(call_id(h), Some("wsinv.ndaksdj@192.0.2.1"));
        assert_eq!(
            cseq(h),
            Some(CSeq {
                seq: 9,
                method: "INVITE"
            })
        );
        assert_eq!(to_tag(h), Some("1918181833n"));
        assert_eq!(from_tag(h), Some("98asjd8"));
        assert_eq!(from_user(h).as_deref(), Some("jdrosen"));
        assert!(has_sdp(h, &r.body));
    }

    /// RFC 4475 §3.1.1.3 (esc01): escaped user parts, compact `i:` and
    /// `C:`, a To without a tag.
    #[test]
    fn rfc4475_esc01() {
        let r = torture("esc01.dat");
        assert_eq!(from_user(&r.headers).as_deref(), Some("I%20have%20spaces"));
        assert_eq!(from_tag(&r.headers), Some("938"));
        assert_eq!(to_tag(&r.headers), None);
        assert_eq!(
            call_id(&r.headers),
            Some("esc01.239409asdfakjkn23onasd0-3234")
        );
        assert_eq!(cseq(&r.headers).map(|c| c.seq), Some(234234));
        assert!(has_sdp(&r.headers, &r.body));
    }

    /// RFC 4475 §3.1.1.5 (lwsdisp) and §3.1.1.11 (mpart01): a display name
    /// without space before `<`, and a multipart body that is no SDP.
    #[test]
    fn rfc4475_lwsdisp_and_mpart01() {
        let r = torture("lwsdisp.dat");
        assert_eq!(from_user(&r.headers).as_deref(), Some("caller"));
        assert_eq!(from_tag(&r.headers), Some("323"));
        let r = torture("mpart01.dat");
        assert!(!r.body.is_empty() && !has_sdp(&r.headers, &r.body));
    }

    #[test]
    fn peers_read_vias_contact_challenges_and_any_header_by_name() {
        let r = request(
            "Via: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK2\r\nContact: <sip:a@127.0.0.1>\r\n\
             Contact: <sip:b@127.0.0.1>\r\nsession-expires:  90;refresher=uac \r\n\
             X-Zentrale-Queue: kassel/115\r\nWWW-Authenticate: Digest realm=\"a\"\r\n\
             Proxy-Authenticate: Digest realm=\"b\"\r\nCall-ID: c1@127.0.0.1\r\n\
             From: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:115@127.0.0.1>\r\nCSeq: 1 INVITE\r\n",
        );
        let h = &r.headers;
        assert_eq!(
            vias(h).collect::<Vec<_>>(),
            [
                "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1",
                "SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK2"
            ]
        );
        assert_eq!(contact(h), Some("<sip:a@127.0.0.1>"));
        assert_eq!(
            challenges(h).collect::<Vec<_>>(),
            ["Digest realm=\"a\"", "Digest realm=\"b\""]
        );
        assert_eq!(named(h, "Session-Expires"), Some("90;refresher=uac"));
        assert_eq!(named(h, "x-zentrale-queue"), Some("kassel/115"));
        assert_eq!(all_named(h, "contact").count(), 2);
        assert_eq!(named(h, "Reason"), None);
    }
}

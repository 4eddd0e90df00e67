//! The SIP message model and the few builders every layer shares.
//!
//! zentrale uses the message types of `rsipstack` (pinned in `Cargo.toml`)
//! and nothing else of that crate: transports, transactions and dialogs are
//! our own. Everything outside `sip` imports these types from here, so the
//! parser can be swapped in one place.

pub use rsipstack::sip::prelude::{HasHeaders, HeadersExt, ToTypedHeader, UntypedHeader};
pub use rsipstack::sip::{
    Header, Headers, Method, Param, Request, Response, Scheme, SipMessage, StatusCode, Uri,
    Version, parse_uri,
};

use std::sync::Arc;

use bytes::Bytes;

use crate::offer::OfferFault;

/// The `Server`/`User-Agent` token zentrale puts on what it sends.
pub const PRODUCT: &str = concat!("zentrale/", env!("CARGO_PKG_VERSION"));

/// The methods zentrale handles, as sent in `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE";

/// The methods the message model represents, which are all screening
/// lets through: the closed label set of the request counters.
pub const METHODS: [Method; 14] = {
    use Method::*;
    [
        Ack, Bye, Cancel, Info, Invite, Message, Notify, Options, PRack, Publish, Refer, Register,
        Subscribe, Update,
    ]
};

/// The position of `method` in [`METHODS`]. A `match` rather than a search,
/// so that a method a newer parser adds is a compile error here instead
/// of a request counted under another method.
pub fn method_index(method: &Method) -> usize {
    use Method::*;
    match method {
        Ack => 0,
        Bye => 1,
        Cancel => 2,
        Info => 3,
        Invite => 4,
        Message => 5,
        Notify => 6,
        Options => 7,
        PRack => 8,
        Publish => 9,
        Refer => 10,
        Register => 11,
        Subscribe => 12,
        Update => 13,
    }
}

/// Builds a response to `req` as RFC 3261 §8.2.6 says: the Via headers,
/// From, To, Call-ID and CSeq are copied; Content-Length is zero until a body
/// is set with [`set_body`].
///
/// A To tag is not added here: the caller adds [`with_to_tag`] where the
/// response creates or belongs to a dialog.
///
/// ```
/// use zentrale::sip::message::{response, Request, StatusCode};
/// let req = Request::try_from(
///     "OPTIONS sip:115@127.0.0.1 SIP/2.0\r\n\
///      Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
///      From: <sip:trunk@127.0.0.1>;tag=a\r\nTo: <sip:115@127.0.0.1>\r\n\
///      Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n",
/// )
/// .unwrap();
/// let resp = response(&req, StatusCode::OK);
/// assert!(resp.to_string().starts_with("SIP/2.0 200 OK\r\n"));
/// ```
pub fn response(req: &Request, status: StatusCode) -> Response {
    // The copied headers, Server, Content-Length and room for what callers
    // usually add (Contact, Allow, ...) without growing.
    let mut headers = Vec::with_capacity(12);
    headers.extend(
        req.headers
            .iter()
            .filter(|h| copied_to_response(h))
            .cloned(),
    );
    headers.push(Header::Server(PRODUCT.into()));
    headers.push(Header::ContentLength("0".into()));
    Response {
        status_code: status,
        wire_reason: None,
        version: Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// Whether a response copies this header of its request (RFC 3261
/// §8.2.6.2: Via, From, To, Call-ID, CSeq; a Timestamp is echoed).
fn copied_to_response(h: &Header) -> bool {
    matches!(
        h,
        Header::Via(_)
            | Header::From(_)
            | Header::To(_)
            | Header::CallId(_)
            | Header::CSeq(_)
            | Header::Timestamp(_)
    )
}

/// Adds `;tag=TAG` to the To header of a response that has none yet.
pub fn with_to_tag(mut resp: Response, tag: &str) -> Response {
    for h in resp.headers.iter_mut() {
        if let Header::To(to) = h {
            if !has_tag_param(to.value()) {
                let mut value = String::with_capacity(to.value().len() + 5 + tag.len());
                value.push_str(to.value());
                value.push_str(";tag=");
                value.push_str(tag);
                *to = rsipstack::sip::To::new(value);
            }
            break;
        }
    }
    resp
}

/// The wire form of a response: the same octets as rsipstack's
/// `Response::to_bytes`, written in one pass into one buffer of the right
/// size instead of through `Display` and a string per header.
///
/// ```
/// use zentrale::sip::message::{encode_response, response, Request, StatusCode};
/// let req = Request::try_from(
///     "BYE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK2\r\n\
///      From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>;tag=2\r\n\
///      Call-ID: c2\r\nCSeq: 2 BYE\r\n\r\n",
/// )
/// .unwrap();
/// let resp = response(&req, StatusCode::OK);
/// assert_eq!(encode_response(&resp), resp.to_bytes());
/// ```
pub fn encode_response(resp: &Response) -> Vec<u8> {
    let code = resp.status_code.code();
    let reason = resp.status_code.text();
    let mut len = "SIP/2.0 200 \r\n\r\n".len() + reason.len() + resp.body.len();
    for h in resp.headers.iter() {
        len += h.name().len() + 2 + h.value().len() + 2;
    }
    let mut out = Vec::with_capacity(len);
    match resp.version {
        Version::V2 => out.extend_from_slice(b"SIP/2.0"),
        v => out.extend_from_slice(v.to_string().as_bytes()),
    }
    out.push(b' ');
    out.extend_from_slice(crate::ascii::Decimal::new(code.into()).as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        out.extend_from_slice(h.name().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&resp.body);
    out
}

/// A response to a request, for [`encode_reply`].
pub struct Reply<'a> {
    pub status: StatusCode,
    /// Added to the To header unless it has a tag ([`with_to_tag`]).
    pub to_tag: Option<&'a str>,
    /// Headers after `Server`, in order: name and value.
    pub extra: &'a [(&'a str, &'a str)],
    /// Content-Type and body ([`set_body`]); `None` for no body at all.
    pub body: Option<(&'a str, &'a [u8])>,
}

/// The wire form of the response to `req` that [`response`], [`with_to_tag`],
/// pushing `extra` and [`set_body`] would build, written straight from the
/// request's headers: the copied headers are not cloned into a
/// [`Response`] that is encoded and dropped at once (three times per call).
pub fn encode_reply(req: &Request, reply: &Reply) -> Vec<u8> {
    let code = reply.status.code();
    let reason = reply.status.text();
    let (content_type, body) = match reply.body {
        Some((ct, body)) => (Some(ct).filter(|_| !body.is_empty()), body),
        None => (None, &[][..]),
    };
    let mut len = "SIP/2.0 200 \r\n\r\n".len() + reason.len() + body.len() + 128;
    for h in req.headers.iter().filter(|h| copied_to_response(h)) {
        len += h.name().len() + 2 + h.value().len() + 2;
    }
    for (name, value) in reply.extra {
        len += name.len() + 2 + value.len() + 2;
    }
    let mut out = Vec::with_capacity(len);
    let line = |out: &mut Vec<u8>, name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    out.extend_from_slice(b"SIP/2.0 ");
    out.extend_from_slice(crate::ascii::Decimal::new(code.into()).as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut tagged = false;
    for h in req.headers.iter().filter(|h| copied_to_response(h)) {
        line(&mut out, h.name(), h.value());
        if let (Header::To(to), Some(tag), false) = (h, reply.to_tag, tagged) {
            // with_to_tag looks at the first To only.
            tagged = true;
            if !has_tag_param(to.value()) {
                out.truncate(out.len() - 2);
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(tag.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    line(&mut out, "Server", PRODUCT);
    if reply.body.is_none() {
        line(&mut out, "Content-Length", "0");
    }
    for (name, value) in reply.extra {
        line(&mut out, name, value);
    }
    if reply.body.is_some() {
        if let Some(ct) = content_type {
            line(&mut out, "Content-Type", ct);
        }
        line(
            &mut out,
            "Content-Length",
            crate::ascii::Decimal::new(body.len() as u64).as_str(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Replaces the body and its Content-Type and Content-Length headers.
pub fn set_body<M: HasHeaders>(msg: &mut M, content_type: &str, body: Vec<u8>) -> Vec<u8> {
    let headers = msg.headers_mut();
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    if !body.is_empty() {
        headers.push(Header::ContentType(content_type.into()));
    }
    headers.push(Header::ContentLength((body.len() as u32).into()));
    body
}

/// Whether a (trimmed) Content-Type value says SDP: what zentrale reads
/// as an offer or answer, for an owned request and a borrowed ACK alike.
///
/// ```
/// use zentrale::sip::message::is_sdp;
/// assert!(is_sdp("Application/SDP; charset=x"));
/// assert!(!is_sdp("multipart/mixed"));
/// ```
pub fn is_sdp(content_type: &str) -> bool {
    content_type
        .as_bytes()
        .get(..15)
        .is_some_and(|t| t.eq_ignore_ascii_case(b"application/sdp"))
}

/// The status that refuses an offer or answer the media layer cannot use:
/// 400 for SDP that cannot be read (the request is malformed), 488 Not
/// Acceptable Here for readable SDP without a usable audio stream (RFC 3261
/// §21.4.26), which is what callers' phones retry with another offer on.
/// Takes the fault's kind, or anything that names one (a media error).
///
/// ```
/// use zentrale::offer::OfferFault;
/// use zentrale::sip::message::{sdp_refusal, StatusCode};
/// assert_eq!(sdp_refusal(OfferFault::Unusable), StatusCode::NotAcceptableHere);
/// ```
pub fn sdp_refusal(fault: impl Into<OfferFault>) -> StatusCode {
    match fault.into() {
        OfferFault::Unreadable => StatusCode::BadRequest,
        OfferFault::Unusable => StatusCode::NotAcceptableHere,
    }
}

pub use super::headers::tag_of;

fn has_tag_param(value: &str) -> bool {
    tag_of(value).is_some()
}

/// The token of a method as written on the wire.
pub fn method_name(method: &Method) -> &'static str {
    use Method::*;
    match method {
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Info => "INFO",
        Invite => "INVITE",
        Message => "MESSAGE",
        Notify => "NOTIFY",
        Options => "OPTIONS",
        PRack => "PRACK",
        Publish => "PUBLISH",
        Refer => "REFER",
        Register => "REGISTER",
        Subscribe => "SUBSCRIBE",
        Update => "UPDATE",
    }
}

/// A request zentrale sends (an INVITE to an agent, its ACK and CANCEL,
/// a BYE, a session refresh), written once in wire form.
///
/// These used to be written as text, parsed back into a [`Request`] and
/// serialised again to be sent: three passes over every request, about a
/// sixth of a queued call's instructions. What a client transaction needs
/// (the method, the top Via's branch, the octets to send and resend) is
/// known when the request is written, so it is kept and nothing is parsed.
/// [`RequestWriter`] writes it; the fuzz target `dialogs` and the tests
/// hold that what it writes reads back as the request meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    method: Method,
    branch: Arc<str>,
    bytes: Bytes,
}

impl Outgoing {
    pub fn method(&self) -> Method {
        self.method
    }

    /// The branch of the one Via zentrale writes.
    pub fn branch(&self) -> &Arc<str> {
        &self.branch
    }

    /// The wire form (a shared buffer: cloning it copies nothing).
    pub fn to_bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// The wire form, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
impl Outgoing {
    /// A parsed request as if zentrale had written it (tests of the
    /// transaction layer).
    pub(crate) fn from_request(req: &Request) -> Outgoing {
        Outgoing {
            method: req.method,
            branch: super::via::TopVia::of(&req.headers)
                .and_then(|v| v.branch)
                .unwrap_or_default(),
            bytes: Bytes::from(req.to_bytes()),
        }
    }

    /// Asserts that the request as written is what the message parser
    /// reads and writes back (the octets zentrale sent when it wrote
    /// requests as text, parsed them and serialised them again), with the
    /// branch its transaction is keyed on.
    pub(crate) fn assert_reads_back(&self) {
        let parsed = Request::try_from(self.as_bytes()).unwrap_or_else(|e| panic!("{e}: {self}"));
        // The parser writes the Request-URI back normalised
        // (`transport=TLS`); it goes out as the peer's Contact wrote it.
        let (ours, theirs) = (self.to_string(), parsed.to_string());
        let after_line = |s: &str| s.split_once("\r\n").map(|(_, rest)| rest.to_owned());
        assert_eq!(after_line(&ours), after_line(&theirs));
        assert_eq!(parsed.method, self.method());
        let via = super::via::TopVia::of(&parsed.headers).unwrap();
        assert_eq!(via.branch.as_ref(), Some(self.branch()));
    }
}

impl std::fmt::Display for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes))
    }
}

/// Writes an [`Outgoing`] request line by line into one buffer.
///
/// The caller writes values it has checked (URIs by
/// `call::dialog::check_target`, tokens it drew itself); [`RequestWriter::finish`]
/// still refuses a value with a CR or LF in it, which would frame a
/// header of the peer's choosing.
///
/// ```
/// use zentrale::sip::message::{Method, Request, RequestWriter};
/// let mut w = RequestWriter::new(Method::Bye, "sip:a@127.0.0.1");
/// w.via("UDP", "127.0.0.1:5060", "z9hG4bK1");
/// w.header("From", &["<sip:115@127.0.0.1>;tag=", "x"]);
/// w.header("To", &["<sip:a@127.0.0.1>;tag=y"]);
/// w.header("Call-ID", &["c1"]);
/// w.cseq(2, Method::Bye);
/// let bye = w.finish(None, b"").unwrap();
/// assert_eq!(&**bye.branch(), "z9hG4bK1");
/// let parsed = Request::try_from(bye.as_bytes()).unwrap();
/// assert_eq!(parsed.to_bytes(), bye.as_bytes());
/// ```
#[derive(Debug)]
pub struct RequestWriter {
    method: Method,
    out: Vec<u8>,
    branch: Option<Arc<str>>,
    /// A value carried a CR or LF.
    broken: bool,
}

impl RequestWriter {
    /// The Request-Line.
    pub fn new(method: Method, uri: &str) -> RequestWriter {
        let mut w = RequestWriter {
            method,
            out: Vec::with_capacity(512),
            branch: None,
            broken: false,
        };
        w.put(method_name(&method));
        w.out.push(b' ');
        w.put(uri);
        w.out.extend_from_slice(b" SIP/2.0\r\n");
        w
    }

    fn put(&mut self, s: &str) {
        self.broken |= s.bytes().any(|b| b == b'\r' || b == b'\n');
        self.out.extend_from_slice(s.as_bytes());
    }

    /// `Via: SIP/2.0/TRANSPORT SENT-BY;branch=BRANCH;rport`; the branch is
    /// the client transaction's key.
    pub fn via(&mut self, transport: &str, sent_by: &str, branch: &str) {
        self.out.extend_from_slice(b"Via: SIP/2.0/");
        self.put(transport);
        self.out.push(b' ');
        self.put(sent_by);
        self.out.extend_from_slice(b";branch=");
        self.put(branch);
        self.out.extend_from_slice(b";rport\r\n");
        self.branch = Some(branch.into());
    }

    /// A header whose value is `parts` joined.
    pub fn header(&mut self, name: &str, parts: &[&str]) {
        self.put(name);
        self.out.extend_from_slice(b": ");
        for p in parts {
            self.put(p);
        }
        self.out.extend_from_slice(b"\r\n");
    }

    /// `CSeq: N METHOD`.
    pub fn cseq(&mut self, n: u32, method: Method) {
        self.out.extend_from_slice(b"CSeq: ");
        self.out
            .extend_from_slice(crate::ascii::Decimal::new(n.into()).as_str().as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(method_name(&method).as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Content-Type (with a body), Content-Length and the body. `None`
    /// without a Via, or when a value carried a line break.
    pub fn finish(mut self, content_type: Option<&str>, body: &[u8]) -> Option<Outgoing> {
        if !body.is_empty()
            && let Some(ct) = content_type
        {
            self.header("Content-Type", &[ct]);
        }
        self.out.extend_from_slice(b"Content-Length: ");
        self.out.extend_from_slice(
            crate::ascii::Decimal::new(body.len() as u64)
                .as_str()
                .as_bytes(),
        );
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
        if self.broken {
            return None;
        }
        Some(Outgoing {
            method: self.method,
            branch: self.branch?,
            bytes: Bytes::from(self.out),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::headers::make_header;

    #[test]
    fn encoding_equals_rsipstack_to_bytes() {
        let req = Request::try_from(
            "INVITE sip:115@127.0.0.1 SIP/2.0\r\n\
             v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
             f: \"Anna\" <sip:anna@127.0.0.1>;tag=a\r\nTo: <sip:115@127.0.0.1>\r\n\
             i: c1\r\nCSeq: 1 INVITE\r\nTimestamp: 54\r\n\r\n",
        )
        .unwrap();
        for status in [
            StatusCode::Trying,
            StatusCode::OK,
            StatusCode::Other(799, "X".into()),
        ] {
            let mut resp = with_to_tag(response(&req, status), "t1");
            resp.headers
                .push(Header::Contact("<sip:z@127.0.0.1>".into()));
            resp.headers
                .push(Header::Other("X-Extension".into(), "v".into()));
            assert_eq!(encode_response(&resp), resp.to_bytes());
            // A body is copied as octets, UTF-8 or not.
            let body = set_body(&mut resp, "application/octet-stream", vec![0xff, 0, b'a']);
            resp.body = body;
            assert_eq!(encode_response(&resp), resp.to_bytes());
        }
        let empty = Response {
            status_code: StatusCode::OK,
            wire_reason: None,
            version: Version::V2,
            headers: Headers::default(),
            body: Vec::new(),
        };
        assert_eq!(encode_response(&empty), empty.to_bytes());
    }

    #[test]
    fn reply_equals_the_built_response() {
        let req = Request::try_from(
            "INVITE sip:115@127.0.0.1 SIP/2.0\r\n\
             v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n\
             f: \"Anna\" <sip:anna@127.0.0.1>;tag=a\r\nTo: <sip:115@127.0.0.1>\r\n\
             Contact: <sip:anna@127.0.0.1>\r\nMax-Forwards: 70\r\n\
             i: c1\r\nCSeq: 1 INVITE\r\nTimestamp: 54\r\n\r\n",
        )
        .unwrap();
        let tagged = Request::try_from(
            "BYE sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK2\r\n\
             From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>;tag=2\r\n\
             Call-ID: c2\r\nCSeq: 2 BYE\r\n\r\n",
        )
        .unwrap();
        let extra = [
            ("Contact", "<sip:z@127.0.0.1>"),
            ("Allow", ALLOW),
            ("Accept", "application/sdp"),
            ("Supported", "timer"),
            ("Session-Expires", "1800;refresher=uac"),
            ("Require", "timer"),
        ];
        for req in [&req, &tagged] {
            for status in [
                StatusCode::Trying,
                StatusCode::OK,
                StatusCode::Other(799, "X".into()),
            ] {
                for to_tag in [None, Some("t1")] {
                    for body in [None, Some(&b""[..]), Some(&b"v=0\r\n"[..])] {
                        for extra in [&[][..], &extra[..]] {
                            let mut resp = response(req, status.clone());
                            if let Some(tag) = to_tag {
                                resp = with_to_tag(resp, tag);
                            }
                            for (name, value) in extra {
                                resp.headers.push(make_header(name, value.to_string()));
                            }
                            if let Some(body) = body {
                                resp.body = set_body(&mut resp, "application/sdp", body.to_vec());
                            }
                            let reply = Reply {
                                status: status.clone(),
                                to_tag,
                                extra,
                                body: body.map(|b| ("application/sdp", b)),
                            };
                            assert_eq!(
                                String::from_utf8(encode_reply(req, &reply)).unwrap(),
                                String::from_utf8(encode_response(&resp)).unwrap()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sdp_refusals_keep_their_codes() {
        assert_eq!(sdp_refusal(OfferFault::Unreadable).code(), 400);
        assert_eq!(sdp_refusal(OfferFault::Unusable).code(), 488);
    }

    #[test]
    fn tag_is_found_after_name_addr_only() {
        assert_eq!(tag_of("<sip:a@b;tag=no>;tag=yes"), Some("yes"));
        assert_eq!(tag_of("\"A\" <sip:a@b>"), None);
        assert_eq!(tag_of("sip:a@b;TAG=x"), Some("x"));
    }
}

//! What the scripted peers need of SIP: reading a message with the
//! crate's own parser ([`crate::sip::message`]) and header access
//! ([`crate::sip::headers`]), building requests and responses as text, MD5
//! digest credentials (computed by [`crate::sip::digest`], as the server
//! checks them), and SDP bodies. Every address is on loopback.

use crate::sip::digest::{self, Algorithm};
use crate::sip::headers;
use crate::sip::message::{Headers, Method, Request, Response, SipMessage};

/// A message a peer received, parsed.
#[derive(Debug, Clone)]
pub enum Received {
    Request(Request),
    Response(Response),
}

impl Received {
    /// Parses a datagram; `None` for what does not parse (a peer ignores it).
    pub fn parse(bytes: &[u8]) -> Option<Received> {
        match SipMessage::try_from(bytes).ok()? {
            SipMessage::Request(r) => Some(Received::Request(r)),
            SipMessage::Response(r) => Some(Received::Response(r)),
        }
    }
}

/// The value of the first header named `name` (case-insensitive; the
/// long form), as written ([`headers::named`]).
pub fn header(headers: &Headers, name: &str) -> Option<String> {
    headers::named(headers, name).map(str::to_owned)
}

/// The Call-ID of a message.
pub fn call_id(headers: &Headers) -> String {
    headers::call_id(headers).unwrap_or_default().to_owned()
}

/// `(number, method)` of the CSeq header; `(0, "")` without a readable one.
pub fn cseq(headers: &Headers) -> (u32, String) {
    headers::cseq(headers).map_or((0, String::new()), |c| (c.seq, c.method.to_owned()))
}

/// The `tag` of a From or To value.
pub fn tag(value: &str) -> Option<String> {
    headers::tag_of(value).map(str::to_owned)
}

/// The URI inside a Contact (or From/To) value.
pub fn uri(value: &str) -> String {
    headers::uri_of(value).unwrap_or_else(|| value.trim().to_owned())
}

/// The method of a request as text.
pub fn method(req: &Request) -> String {
    req.method.to_string()
}

/// True for the method `m`.
pub fn is(req: &Request, m: Method) -> bool {
    req.method == m
}

/// A response to `req` built as a UAS does (RFC 3261 §8.2.6): Via, From,
/// To (with `to_tag` added when it has none), Call-ID and CSeq copied,
/// then `extra` lines and the body.
pub fn respond(
    req: &Request,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[String],
    body: Option<&str>,
) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in headers::vias(&req.headers) {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    let from = headers::from(&req.headers).unwrap_or_default();
    let mut to = headers::to(&req.headers).unwrap_or_default().to_owned();
    if let Some(t) = to_tag
        && tag(&to).is_none()
    {
        to.push_str(&format!(";tag={t}"));
    }
    out.push_str(&format!("From: {from}\r\nTo: {to}\r\n"));
    out.push_str(&format!("Call-ID: {}\r\n", call_id(&req.headers)));
    out.push_str(&format!(
        "CSeq: {}\r\n",
        header(&req.headers, "CSeq").unwrap_or_default()
    ));
    finish(out, extra, body)
}

/// A request: start line, then `lines` (each without CRLF), then the body.
pub fn request(start: &str, lines: &[String], body: Option<&str>) -> Vec<u8> {
    let mut out = format!("{start}\r\n");
    for l in lines {
        out.push_str(l);
        out.push_str("\r\n");
    }
    finish(out, &[], body)
}

fn finish(mut out: String, extra: &[String], body: Option<&str>) -> Vec<u8> {
    for l in extra {
        out.push_str(l);
        out.push_str("\r\n");
    }
    match body {
        Some(b) => {
            out.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        }
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out.into_bytes()
}

/// An SDP offer or answer from a peer with media at `port` on 127.0.0.1:
/// PCMU, PCMA and telephone-event, in `direction`.
pub fn sdp(port: u16, version: u32, direction: &str) -> String {
    format!(
        "v=0\r\no=peer 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na={direction}\r\n"
    )
}

/// The `a=` direction of an SDP body (`sendrecv` when it names none).
pub fn sdp_direction(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    for d in ["sendrecv", "sendonly", "recvonly", "inactive"] {
        if text.lines().any(|l| l.trim() == format!("a={d}")) {
            return d.to_owned();
        }
    }
    "sendrecv".to_owned()
}

/// MD5 digest credentials (qop=auth, nc=1) answering `challenge` (a
/// `WWW-Authenticate` or `Proxy-Authenticate` value) for `user` with
/// `password`; `None` when the challenge lacks a realm or nonce.
pub fn digest_md5(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> Option<String> {
    let params = digest::params(challenge)?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let realm = param("realm")?;
    let nonce = param("nonce")?;
    let (cnonce, nc) = ("0a4f113b", "00000001");
    let ha1 = digest::ha1(Algorithm::Md5, user, realm, password);
    let response = digest::response(Algorithm::Md5, &ha1, nonce, Some((nc, cnonce)), method, uri);
    let mut value = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    );
    if let Some(opaque) = param("opaque") {
        value.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(value)
}

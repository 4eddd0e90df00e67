//! What the scripted peers need of SIP: reading a message with the
//! crate's own parser ([`crate::sip::message`]), building requests and
//! responses as text, MD5 digest credentials, and SDP bodies. Every
//! address is on loopback.

use md5::{Digest, Md5};

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
/// long form), as written.
pub fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.iter().find_map(|h| {
        let line = h.to_string();
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// Every value of the headers named `name`, in order.
pub fn headers_named(headers: &Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| {
            let line = h.to_string();
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
        .collect()
}

/// The Call-ID of a message.
pub fn call_id(headers: &Headers) -> String {
    header(headers, "Call-ID").unwrap_or_default()
}

/// `(number, method)` of the CSeq header.
pub fn cseq(headers: &Headers) -> (u32, String) {
    let v = header(headers, "CSeq").unwrap_or_default();
    let mut parts = v.split_whitespace();
    let n = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (n, parts.next().unwrap_or_default().to_owned())
}

/// The branch of the top Via.
pub fn branch(headers: &Headers) -> String {
    let via = header(headers, "Via").unwrap_or_default();
    param(&via, "branch").unwrap_or_default().to_owned()
}

/// The `tag` of a From or To value.
pub fn tag(value: &str) -> Option<String> {
    crate::sip::message::tag_of(value).map(str::to_owned)
}

/// A `;name=value` parameter of a header value.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The URI inside a Contact (or From/To) value.
pub fn uri(value: &str) -> String {
    crate::call::dialog::uri_of(value).unwrap_or_else(|| value.trim().to_owned())
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
    for via in headers_named(&req.headers, "Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    let from = header(&req.headers, "From").unwrap_or_default();
    let mut to = header(&req.headers, "To").unwrap_or_default();
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

/// A parameter of a digest challenge, unquoted.
pub fn auth_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let at = challenge.find(&format!("{name}="))?;
    let rest = &challenge[at + name.len() + 1..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    })
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
    let realm = auth_param(challenge, "realm")?;
    let nonce = auth_param(challenge, "nonce")?;
    let md5 = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let ha1 = md5(format!("{user}:{realm}:{password}"));
    let ha2 = md5(format!("{method}:{uri}"));
    let (cnonce, nc) = ("0a4f113b", "00000001");
    let response = md5(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let mut value = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    );
    if let Some(opaque) = auth_param(challenge, "opaque") {
        value.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(value)
}

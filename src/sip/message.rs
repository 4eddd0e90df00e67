//! The SIP message model and the few builders every layer shares.
//!
//! zentrale uses the message types of `rsipstack` (pinned in `Cargo.toml`)
//! and nothing else of that crate: transports, transactions and dialogs are
//! our own. Everything outside `sip` imports these types from here, so the
//! parser can be swapped in one place.

pub use rsipstack::sip::prelude::{HasHeaders, HeadersExt, ToTypedHeader, UntypedHeader};
pub use rsipstack::sip::{
    Header, Headers, Method, Request, Response, SipMessage, StatusCode, Uri, Version,
};

/// The `Server`/`User-Agent` token zentrale puts on what it sends.
pub const PRODUCT: &str = concat!("zentrale/", env!("CARGO_PKG_VERSION"));

/// The methods zentrale handles, as sent in `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE";

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
    let mut headers = Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_)
            | Header::From(_)
            | Header::To(_)
            | Header::CallId(_)
            | Header::CSeq(_) => headers.push(h.clone()),
            // RFC 3261 §8.2.6.2: a Timestamp is echoed.
            Header::Timestamp(_) => headers.push(h.clone()),
            _ => {}
        }
    }
    headers.push(Header::Other("Server".into(), PRODUCT.into()));
    headers.push(Header::ContentLength(0u32.into()));
    Response {
        status_code: status,
        wire_reason: None,
        version: Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Adds `;tag=TAG` to the To header of a response that has none yet.
pub fn with_to_tag(mut resp: Response, tag: &str) -> Response {
    for h in resp.headers.iter_mut() {
        if let Header::To(to) = h {
            if !has_tag_param(to.value()) {
                *to = rsipstack::sip::To::new(format!("{};tag={}", to.value(), tag));
            }
            break;
        }
    }
    resp
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

/// The `tag` parameter of a From or To header value, if any.
pub fn tag_of(value: &str) -> Option<&str> {
    // Parameters follow the closing '>' of a name-addr, or the addr-spec.
    let params = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("tag").then(|| v.trim())
    })
}

fn has_tag_param(value: &str) -> bool {
    tag_of(value).is_some()
}

/// A fresh random token for tags and branches (hex, 16 characters).
pub fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_found_after_name_addr_only() {
        assert_eq!(tag_of("<sip:a@b;tag=no>;tag=yes"), Some("yes"));
        assert_eq!(tag_of("\"A\" <sip:a@b>"), None);
        assert_eq!(tag_of("sip:a@b;TAG=x"), Some("x"));
    }
}

//! Whether rsipstack's typed parsers accept the top Via, From, To and CSeq
//! of a screened message (rule 12 of the module docs), at a fraction of the
//! cost of running them.
//!
//! The typed parsers build URIs and parameter lists (a dozen allocations
//! per header) only to be thrown away here. For the ordinary shapes the
//! checks below follow rsipstack 0.7.14's parsers step by step and prove
//! that they cannot fail: the only failures those parsers have are an
//! unknown transport, an unknown `method=`, a port or `rport=` that is not
//! a 16-bit number, an empty host and an unparseable IPv6 literal. Whatever
//! the proofs do not cover (IPv6 literals, addr-specs without `<>`, lists)
//! goes through the real parser, so the outcome is the parser's in every
//! case; a test holds the proofs to that over the RFC 4475 corpus and
//! thousands of mutations of it. The proofs only look at ASCII values, so
//! octet-wise trimming and splitting are the parsers' `str` operations.

use rsipstack::sip::typed;

use super::super::message::{HeadersExt, Method};
use crate::ascii;

/// The typed headers everybody reads must parse. `Err` names the header
/// and carries the parser's complaint.
///
/// `request_cseq`: `m` is a request that passed screening, so its CSeq is
/// `number SP method` with a number below 2^31 and the method of the
/// Request-Line, which rsipstack parsed already. The CSeq parser splits at
/// the same whitespace and parses those two again, so it cannot refuse it
/// and is not run (a test holds that over the mutated corpus).
pub(super) fn typed_ok<M: HeadersExt>(m: &M, request_cseq: bool) -> Result<(), String> {
    values_ok(
        m.via_header().map_err(|e| format!("Via: {e}"))?.value(),
        m.from_header().map_err(|e| format!("From: {e}"))?.value(),
        m.to_header().map_err(|e| format!("To: {e}"))?.value(),
    )?;
    if !request_cseq {
        m.cseq_header()
            .and_then(|h| typed::CSeq::parse(h.value().trim()))
            .map_err(|e| format!("CSeq: {e}"))?;
    }
    m.call_id_header().map_err(|e| format!("Call-ID: {e}"))?;
    Ok(())
}

/// [`typed_ok`]'s Via, From and To checks on the values as handed on
/// (the first Via header's, From's and To's).
pub(super) fn values_ok(via: &str, from: &str, to: &str) -> Result<(), String> {
    if !via_parses(via) {
        typed::Via::parse(via.trim()).map_err(|e| format!("Via: {e}"))?;
    }
    if !addr_parses(from) {
        typed::From::parse(from.trim()).map_err(|e| format!("From: {e}"))?;
    }
    if !addr_parses(to) {
        typed::To::parse(to.trim()).map_err(|e| format!("To: {e}"))?;
    }
    Ok(())
}

/// True only if `typed::Via::parse` accepts the value.
pub(super) fn via_parses(value: &str) -> bool {
    if !value.is_ascii() {
        return false;
    }
    let s = ascii::trim(value);
    // A list puts the later via-parms into the first one's parameters;
    // leave that to the parser.
    if ascii::contains(s, b',') {
        return false;
    }
    let Some((_proto, rest)) = ascii::split_once(s, b'/') else {
        return false;
    };
    let Some((_version, rest)) = ascii::split_once(rest, b'/') else {
        return false;
    };
    let rest = ascii::trim(rest);
    let Some(space) = rest.bytes().position(ascii::is_space) else {
        return false;
    };
    let (transport, addr_and_params) = (&rest[..space], &rest[space + 1..]);
    if transport.parse::<rsipstack::sip::Transport>().is_err() {
        return false;
    }
    let addr_and_params = ascii::trim(addr_and_params);
    let (addr, params) = match ascii::split_once(addr_and_params, b';') {
        Some((a, p)) => (ascii::trim(a), p),
        None => (addr_and_params, ""),
    };
    host_port_parses(ascii::trim(addr)) && params_parse(params)
}

/// True only if `typed::From::parse` / `typed::To::parse` accept the value.
/// Proves the `name-addr` form only (`[display] <URI> *(;param)`).
pub(super) fn addr_parses(value: &str) -> bool {
    if !value.is_ascii() {
        return false;
    }
    let s = ascii::trim(value);
    let Some(lt) = ascii::find(s, b'<') else {
        return false;
    };
    let rest = &s[lt + 1..];
    let Some(gt) = ascii::find(rest, b'>') else {
        return false;
    };
    let params = ascii::trim_start_matches(ascii::trim(&rest[gt + 1..]), b';');
    uri_parses(&rest[..gt]) && params_parse(params)
}

/// True only if `rsipstack::sip::parse_uri` accepts `s` (ASCII).
pub(super) fn uri_parses(s: &str) -> bool {
    let s = ascii::trim(ascii::trim_end_matches(
        ascii::trim_start_matches(ascii::trim(s), b'<'),
        b'>',
    ));
    // URI headers after '?' never fail.
    let main = ascii::split(s, b'?').next().unwrap_or("");
    let (host_part, params) = ascii::split_once(main, b';').unwrap_or((main, ""));
    // Any all-letters scheme is accepted (unknown ones as `Other`).
    let user_host = match ascii::find(host_part, b':') {
        Some(c) if host_part[..c].bytes().all(|b| b.is_ascii_alphabetic()) => &host_part[c + 1..],
        _ => host_part,
    };
    let host = match ascii::rfind(user_host, b'@') {
        Some(at) => &user_host[at + 1..],
        None => user_host,
    };
    host_port_parses(host) && params_parse(params)
}

/// True only if rsipstack's `parse_host_with_port` accepts `s`. IPv6
/// literals are left to the parser.
fn host_port_parses(s: &str) -> bool {
    if ascii::trim_start(s).starts_with('[') {
        return false;
    }
    if let Some(colon) = ascii::rfind(s, b':') {
        let port = &s[colon + 1..];
        if port.bytes().all(|b| b.is_ascii_digit()) {
            return port.parse::<u16>().is_ok() && !ascii::trim(&s[..colon]).is_empty();
        }
    }
    !ascii::trim(s).is_empty()
}

/// Exactly whether rsipstack's `parse_params` accepts `s`: only
/// `transport=`, `method=` and `rport=` values can be refused.
fn params_parse(s: &str) -> bool {
    ascii::split(s, b';').all(|part| {
        let Some((name, value)) = ascii::split_once(ascii::trim(part), b'=') else {
            return true;
        };
        if name.eq_ignore_ascii_case("transport") {
            value.parse::<rsipstack::sip::Transport>().is_ok()
        } else if name.eq_ignore_ascii_case("method") {
            value.parse::<Method>().is_ok()
        } else if name.eq_ignore_ascii_case("rport") {
            value.parse::<u16>().is_ok()
        } else {
            true
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_shapes_are_proven() {
        assert!(via_parses(
            "SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-7827-1-0;rport"
        ));
        assert!(via_parses(
            "SIP/2.0/TCP host.example;received=10.0.0.1;rport=5060"
        ));
        assert!(addr_parses(
            "<sip:0561999000@127.0.0.1:25070>;tag=7827SIPpTag001"
        ));
        assert!(addr_parses("\"Anna\" <sip:anna@127.0.0.1;transport=tcp>"));
        assert!(addr_parses("<tel:+4930123>"));
    }

    #[test]
    fn what_the_parser_refuses_is_never_proven() {
        for via in [
            "SIP/2.0/UD host",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP host:70000",
            "SIP/2.0/UDP :5060",
            "SIP/2.0/UDP host;rport=x",
            "SIP/2.0/UDP host;transport=carrier-pigeon",
            "SIP/2.0/UDP host;method=FOO",
        ] {
            assert!(!via_parses(via), "{via}");
            assert!(typed::Via::parse(via).is_err(), "{via}");
        }
        for addr in [
            "<sip:a@>",
            "<sip:a@h:>",
            "<sip:a@h:99999>",
            "<sip:a@h>;method=FOO",
            "<sip:a@h",
        ] {
            assert!(!addr_parses(addr), "{addr}");
            assert!(typed::From::parse(addr).is_err(), "{addr}");
        }
    }
}

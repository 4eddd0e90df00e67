//! SIP URIs zentrale sends requests to: the remote target of a dialog, a
//! Route entry, a registered Contact. The check lives here, below both the
//! registrar and the call legs, which take such URIs off the wire.

/// Whether `uri` can be the remote target (Request-URI) of the requests
/// zentrale sends in a dialog, or a Route entry: a `sip:`/`sips:` URI
/// with a host (a name, an IPv4 address or a bracketed IPv6 address), an
/// optional port in 1..=65535, a non-empty user part when there is an `@`,
/// no headers (`?`, not allowed in a Request-URI) and nothing but visible
/// ASCII without quotes or angle brackets; and one the message parser
/// takes. The error says what is wrong, for a `Warning`.
///
/// ```
/// use zentrale::sip::uri::check_target;
/// assert!(check_target("sip:caller@127.0.0.1:5070;transport=tcp").is_ok());
/// assert_eq!(check_target("sip:caller@"), Err("empty host"));
/// ```
pub fn check_target(uri: &str) -> Result<(), &'static str> {
    if uri.is_empty() {
        return Err("empty URI");
    }
    if !uri.bytes().all(|b| b.is_ascii_graphic()) || uri.contains(['<', '>', '"']) {
        return Err("URI with whitespace, control characters, quotes or brackets");
    }
    if uri.contains('?') {
        return Err("URI with headers");
    }
    let rest = ["sip:", "sips:"]
        .iter()
        .find_map(|s| {
            uri.get(..s.len())
                .filter(|p| p.eq_ignore_ascii_case(s))
                .map(|_| &uri[s.len()..])
        })
        .ok_or("not a sip: or sips: URI")?;
    // The user part may carry `;` (a telephone-subscriber's
    // phone-context), so the host is after the last `@`.
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => {
            if userinfo.split([':', ';']).next().is_none_or(str::is_empty) {
                return Err("empty user part");
            }
            rest
        }
        None => rest,
    };
    let (hostport, params) = match rest.split_once(';') {
        Some((before, params)) => (before, Some(params)),
        None => (rest, None),
    };
    check_hostport(hostport)?;
    if params.is_some_and(|p| {
        p.split(';')
            .any(|p| p.split('=').next().is_none_or(str::is_empty))
    }) {
        return Err("empty URI parameter");
    }
    crate::sip::message::parse_uri(uri).map_err(|_| "URI the SIP parser refuses")?;
    Ok(())
}

fn check_hostport(hostport: &str) -> Result<(), &'static str> {
    if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("IPv6 address without ']'")?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "invalid IPv6 address")?;
        return match after {
            "" => Ok(()),
            _ => check_port(
                after
                    .strip_prefix(':')
                    .ok_or("text after the IPv6 address")?,
            ),
        };
    }
    let (host, port) = match hostport.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    };
    if host.is_empty() {
        return Err("empty host");
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        host.parse::<std::net::Ipv4Addr>()
            .map_err(|_| "invalid IPv4 address")?;
    } else {
        let name = host.strip_suffix('.').unwrap_or(host);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !name.split('.').all(label_ok) {
            return Err("invalid host name");
        }
    }
    port.map_or(Ok(()), check_port)
}

fn check_port(port: &str) -> Result<(), &'static str> {
    let valid = port.len() <= 5
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if valid { Ok(()) } else { Err("invalid port") }
}

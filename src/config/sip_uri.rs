//! The syntax of the SIP URIs a config names (`uri:` targets, overflow
//! to a remote address): checked when loading, so a typo is a config error
//! with its position rather than a failed forward at call time.

/// Checks the syntax of a `sip:`/`sips:` URI (RFC 3261 section 25, without
/// the rarely used corners): scheme, optional `user[:password]@`, host
/// (name, IPv4 or `[IPv6]`), optional port, `;parameters` and `?headers`.
/// Returns what is wrong, for the error message.
pub(crate) fn check_sip_uri(uri: &str) -> Result<(), String> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .ok_or_else(|| "it does not start with `sip:` or `sips:`".to_string())?;
    if let Some(c) = rest.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("it contains {c:?}"));
    }
    // Host and port end at the first `;` or `?` after the user part.
    let (userinfo, hostport_and_more) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    if let Some(user) = userinfo {
        let user = user.split_once(':').map_or(user, |(u, _password)| u);
        if user.is_empty() {
            return Err("the user part before `@` is empty".to_string());
        }
        if let Some(c) = user.chars().find(|&c| !is_user_char(c)) {
            return Err(format!("the user part contains `{c}`"));
        }
    }
    let end = hostport_and_more
        .find([';', '?'])
        .unwrap_or(hostport_and_more.len());
    let (hostport, params) = hostport_and_more.split_at(end);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| "the IPv6 address has no closing `]`".to_string())?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{addr}` is not an IPv6 address"));
        }
        match after {
            "" => (addr, None),
            p => (
                addr,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("`{p}` after the IPv6 address is not `:port`"))?,
                ),
            ),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".to_string());
    }
    if !hostport.starts_with('[') && !is_hostname(host) {
        return Err(format!("`{host}` is not a host name or IPv4 address"));
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(1..))
    {
        return Err(format!("`{p}` is not a port number (1-65535)"));
    }
    for param in params.split([';', '?', '&']).skip(1) {
        let name = param.split_once('=').map_or(param, |(n, _)| n);
        if name.is_empty() || !name.chars().all(is_param_char) {
            return Err(format!("parameter `{param}` is malformed"));
        }
    }
    Ok(())
}

/// RFC 3261 `user`: unreserved, escaped and user-unreserved characters.
fn is_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,;?/".contains(c)
}

/// RFC 3261 `paramchar` (and `hname`/`hvalue` characters, close enough).
fn is_param_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()%[]/:&+$".contains(c)
}

/// A DNS name or dotted IPv4 address: labels of letters, digits and inner `-`.
fn is_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uris() {
        for ok in [
            "sip:zentrale@192.0.2.10",
            "sips:+4956178700@carrier.example;user=phone",
            "sip:127.0.0.1:5070",
            "sip:agent@[2001:db8::1]:5060;transport=tcp",
            "sip:svc@host.example?subject=overflow",
            "sip:a:secret@host.example",
        ] {
            assert_eq!(check_sip_uri(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("tel:+49561115", "does not start with `sip:`"),
            ("sip:", "host is missing"),
            ("sip:@host", "user part before `@` is empty"),
            ("sip:a b@host", "contains ' '"),
            ("sip:x@host:0", "`0` is not a port number"),
            ("sip:x@host:99999", "`99999` is not a port number"),
            ("sip:x@-host", "`-host` is not a host name"),
            ("sip:x@host_name", "`host_name` is not a host name"),
            ("sip:x@[::1", "no closing `]`"),
            ("sip:x@[zz::1]", "`zz::1` is not an IPv6 address"),
            ("sip:x@[::1]5060", "is not `:port`"),
            ("sip:x@host;=v", "parameter `=v` is malformed"),
        ] {
            match check_sip_uri(bad) {
                Ok(()) => panic!("{bad} accepted"),
                Err(e) => assert!(e.contains(why), "{bad}: {e}"),
            }
        }
    }
}

//! ASCII-octet helpers on UTF-8 text: searching, splitting and trimming
//! by one ASCII octet, and writing decimals and addresses without the
//! formatting machinery. SIP screening and Via handling, the dialplan's
//! header reading and the SDP writer use them on short values.
//!
//! `str::find(char)`, `split_once(char)` and friends go through the
//! generic pattern machinery (an out-of-line `memchr`, then a `memcmp` to
//! confirm each match), and `trim()` decodes UTF-8 at both ends. On header
//! values of 10 to 80 octets that overhead was a third of screening
//! (`sip::screen`) and of the Via handling (`sip::via`).
//!
//! Searching for an ASCII octet is exact on UTF-8 text: ASCII octets never
//! occur inside a multi-octet character, so every index found is a
//! character boundary and the results equal those of the `str` methods
//! with the same (ASCII) pattern.

use std::net::{IpAddr, SocketAddr};

/// `s.find(b as char)`.
#[inline]
pub(crate) fn find(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// `s.rfind(b as char)`.
pub(crate) fn rfind(s: &str, b: u8) -> Option<usize> {
    s.bytes().rposition(|c| c == b)
}

/// `s.contains(b as char)`.
pub(crate) fn contains(s: &str, b: u8) -> bool {
    s.bytes().any(|c| c == b)
}

/// `s.split_once(b as char)`.
#[inline]
pub(crate) fn split_once(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = find(s, b)?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s.split(b as char)`.
pub(crate) fn split(s: &str, b: u8) -> Split<'_> {
    Split { rest: Some(s), b }
}

pub(crate) struct Split<'a> {
    rest: Option<&'a str>,
    b: u8,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match split_once(s, self.b) {
            Some((head, tail)) => {
                self.rest = Some(tail);
                Some(head)
            }
            None => {
                self.rest = None;
                Some(s)
            }
        }
    }
}

/// The ASCII characters `char::is_whitespace` is true for.
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `s.contains(char::is_whitespace)`.
pub(crate) fn has_whitespace(s: &str) -> bool {
    find_space_or(s, b' ').is_some()
}

/// `s.find(|c: char| c == b as char || c.is_whitespace())`.
pub(crate) fn find_space_or(s: &str, b: u8) -> Option<usize> {
    // One pass over the octets; characters are decoded only from the
    // first non-ASCII octet on (which starts a character: all before it
    // are ASCII).
    for (i, c) in s.bytes().enumerate() {
        // One look-up answers "whitespace or not ASCII" for the many
        // octets that are neither.
        if SPACE_OR_NON_ASCII[usize::from(c)] {
            if !c.is_ascii() {
                return s[i..]
                    .find(|c: char| c == char::from(b) || c.is_whitespace())
                    .map(|j| i + j);
            }
            return Some(i);
        }
        if c == b {
            return Some(i);
        }
    }
    None
}

/// [`is_space`] or not ASCII, by octet.
const SPACE_OR_NON_ASCII: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        table[i] = !c.is_ascii() || matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
        i += 1;
    }
    table
};

/// `s.trim_start_matches(b as char)`.
pub(crate) fn trim_start_matches(s: &str, b: u8) -> &str {
    let start = s.bytes().position(|c| c != b).unwrap_or(s.len());
    &s[start..]
}

/// `s.trim_end_matches(b as char)`.
pub(crate) fn trim_end_matches(s: &str, b: u8) -> &str {
    let end = s.bytes().rposition(|c| c != b).map_or(0, |i| i + 1);
    &s[..end]
}

/// `s.trim()`: Unicode whitespace is only looked for where a non-ASCII
/// character is left at an end.
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |i| i + 1);
    let t = &s[start..end];
    match (t.bytes().next(), t.bytes().next_back()) {
        (Some(first), Some(last)) if !first.is_ascii() || !last.is_ascii() => t.trim(),
        _ => t,
    }
}

/// `s.trim_start()`.
#[inline]
pub(crate) fn trim_start(s: &str) -> &str {
    let start = s.bytes().position(|c| !is_space(c)).unwrap_or(s.len());
    let t = &s[start..];
    match t.bytes().next() {
        Some(first) if !first.is_ascii() => t.trim_start(),
        _ => t,
    }
}

/// Appends an address as `Display` writes it.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                // Digit by digit: a Decimal's string costs more than the
                // octet (this runs for every request's Via).
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => out.push_str(&v6.to_string()),
    }
}

/// Appends a socket address as `Display` writes it (`[v6]:port` for IPv6).
pub(crate) fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    let v6 = addr.is_ipv6();
    if v6 {
        out.push('[');
    }
    push_ip(out, addr.ip());
    if v6 {
        out.push(']');
    }
    out.push(':');
    out.push_str(Decimal::new(addr.port().into()).as_str());
}

/// A number in decimal without allocating or formatting machinery:
/// `Decimal::new(n).as_str()`.
pub(crate) struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut n: u64) -> Decimal {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { digits, start }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 5060, 65535, u64::MAX] {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn addresses_as_display_writes_them() {
        for a in [
            "127.0.0.1:5060",
            "10.200.0.9:0",
            "100.5.60.255:1",
            "[::1]:5060",
            "[2001:db8::7]:65535",
        ] {
            let addr: SocketAddr = a.parse().unwrap();
            let mut out = String::new();
            push_socket_addr(&mut out, addr);
            assert_eq!(out, addr.to_string());
            out.clear();
            push_ip(&mut out, addr.ip());
            assert_eq!(out, addr.ip().to_string());
        }
    }

    #[test]
    fn same_as_the_str_methods() {
        let samples = [
            "",
            " ",
            "\u{b}x\u{c}",
            " a;b=c ; d ",
            "\u{a0} <sip:a@b>;tag=x \u{3000}",
            " \u{85}\u{a0}",
            "ä;ö=ü,ß",
            "\t€ ;\r",
            ";;x;",
            "<<sip:a>>",
        ];
        for s in samples {
            assert_eq!(trim(s), s.trim(), "{s:?}");
            assert_eq!(trim_start(s), s.trim_start(), "{s:?}");
            assert_eq!(has_whitespace(s), s.contains(char::is_whitespace), "{s:?}");
            for b in [b';', b'=', b',', b' ', b'x', b'<', b'>'] {
                let c = b as char;
                assert_eq!(find(s, b), s.find(c), "{s:?} {c:?}");
                assert_eq!(rfind(s, b), s.rfind(c), "{s:?} {c:?}");
                assert_eq!(contains(s, b), s.contains(c), "{s:?} {c:?}");
                assert_eq!(split_once(s, b), s.split_once(c), "{s:?} {c:?}");
                assert_eq!(
                    trim_start_matches(s, b),
                    s.trim_start_matches(c),
                    "{s:?} {c:?}"
                );
                assert_eq!(trim_end_matches(s, b), s.trim_end_matches(c), "{s:?} {c:?}");
                assert!(split(s, b).eq(s.split(c)), "{s:?} {c:?}");
                assert_eq!(
                    find_space_or(s, b),
                    s.find(|x: char| x == c || x.is_whitespace()),
                    "{s:?} {c:?}"
                );
            }
        }
    }
}

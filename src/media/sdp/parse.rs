//! Reading the parts of an SDP body we care about.
//!
//! [`with_parsed`] hands negotiation a borrowed view ([`Sdp`]) of the body:
//! read in place by [`super::read`] for the usual bodies, or taken from
//! `rtc-sdp`'s model for the rest (and for every error message).

use std::borrow::Cow;
use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtc_sdp::description::session::SessionDescription;

use super::{Codec, Direction, SdpError};

/// The RFC 4733 events we understand: 0-15 (DTMF) and 16 (flash).
pub(super) const SUPPORTED_EVENTS: EventSet = EventSet(0x1_FFFF);

/// What negotiation reads of an SDP body, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Sdp<'a> {
    /// The session-level `c=`.
    pub connection: Option<Connection<'a>>,
    /// The session-level `a=` lines, in order.
    pub attributes: Vec<Attribute<'a>>,
    /// The `m=` sections, in order.
    pub media: Vec<Media<'a>>,
}

/// A `c=` line.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) struct Connection<'a> {
    /// `IP4` or `IP6`.
    pub address_type: &'a str,
    pub address: Option<&'a str>,
}

/// An `a=key[:value]` line.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) struct Attribute<'a> {
    pub key: &'a str,
    pub value: Option<&'a str>,
}

/// An `m=` section.
#[derive(Debug)]
pub(super) struct Media<'a> {
    /// `audio`, `video`, ...
    pub media: &'a str,
    pub port: u16,
    /// The transport, e.g. `RTP/AVP`.
    pub proto: Cow<'a, str>,
    /// The formats, separated by whitespace.
    pub formats: Cow<'a, str>,
    /// The media-level `c=`.
    pub connection: Option<Connection<'a>>,
    pub attributes: Vec<Attribute<'a>>,
}

impl Media<'_> {
    /// The formats (payload types, for RTP) in the writer's order.
    pub(super) fn formats(&self) -> impl Iterator<Item = &str> {
        self.formats.split_whitespace()
    }
}

impl Eq for Media<'_> {}

/// Equal when everything read is equal; the formats as a list, not as text.
impl PartialEq for Media<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.media == other.media
            && self.port == other.port
            && self.proto == other.proto
            && self.formats().eq(other.formats())
            && self.connection == other.connection
            && self.attributes == other.attributes
    }
}

/// Parses `body` and runs `f` on it; every parser complaint becomes
/// `Malformed`.
pub(super) fn with_parsed<T>(
    body: &[u8],
    f: impl FnOnce(&Sdp<'_>) -> Result<T, SdpError>,
) -> Result<T, SdpError> {
    if let Some(sdp) = super::read::read(body) {
        return f(&sdp);
    }
    let sd = parse(body)?;
    f(&Sdp::from_rtc(&sd))
}

/// Parses a body with `rtc-sdp`.
pub(super) fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SdpError::Malformed("empty body".into()));
    }
    // The parser is third-party code fed from the network: a panic in it
    // must cost one call its offer (`Malformed`), not the task.
    std::panic::catch_unwind(|| SessionDescription::unmarshal(&mut Cursor::new(body)))
        .map_err(|_| SdpError::Malformed("parser failed".into()))?
        .map_err(|e| SdpError::Malformed(e.to_string()))
}

impl<'a> Sdp<'a> {
    /// The view of what `rtc-sdp` parsed.
    pub(super) fn from_rtc(sd: &'a SessionDescription) -> Sdp<'a> {
        use rtc_sdp::description::common::{Attribute as A, ConnectionInformation as C};
        let connection = |c: &'a Option<C>| {
            c.as_ref().map(|c| Connection {
                address_type: &c.address_type,
                address: c.address.as_ref().map(|a| a.address.as_str()),
            })
        };
        let attributes = |attrs: &'a [A]| {
            attrs
                .iter()
                .map(|a| Attribute {
                    key: &a.key,
                    value: a.value.as_deref(),
                })
                .collect()
        };
        Sdp {
            connection: connection(&sd.connection_information),
            attributes: attributes(&sd.attributes),
            media: sd
                .media_descriptions
                .iter()
                .map(|md| Media {
                    media: &md.media_name.media,
                    port: u16::try_from(md.media_name.port.value).unwrap_or(0),
                    proto: Cow::Owned(md.media_name.protos.join("/")),
                    formats: Cow::Owned(md.media_name.formats.join(" ")),
                    connection: connection(&md.connection_information),
                    attributes: attributes(&md.attributes),
                })
                .collect(),
        }
    }
}

/// True for `m=audio ... RTP/AVP ...`, the only transport we speak.
pub(super) fn is_plain_rtp_audio(md: &Media) -> bool {
    md.media.eq_ignore_ascii_case("audio")
        && md
            .proto
            .split_once('/')
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case("RTP") && b.eq_ignore_ascii_case("AVP"))
}

/// True for `m=audio ... RTP/SAVP ...` (SRTP, RFC 3711 §12).
pub(super) fn is_srtp_audio(md: &Media) -> bool {
    md.media.eq_ignore_ascii_case("audio")
        && md
            .proto
            .split_once('/')
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case("RTP") && b.eq_ignore_ascii_case("SAVP"))
}

/// The first `a=crypto` line of the m-line that zentrale can use.
pub(super) fn crypto(md: &Media) -> Option<crate::media::srtp::CryptoLine> {
    md.attributes
        .iter()
        .filter(|a| a.key.eq_ignore_ascii_case("crypto"))
        .find_map(|a| crate::media::srtp::CryptoLine::parse(a.value?))
}

/// The m-line's port (0 means the stream is disabled).
pub(super) fn port(md: &Media) -> u16 {
    md.port
}

/// Media-level direction, else session-level, else sendrecv.
pub(super) fn direction(sd: &Sdp, md: &Media) -> Direction {
    find_direction(&md.attributes)
        .or_else(|| find_direction(&sd.attributes))
        .unwrap_or_default()
}

fn find_direction(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_attribute(a.key.trim()))
}

/// The connection address of a stream: media-level `c=`, else session-level.
/// `Ok(None)` means "do not send to me" (`0.0.0.0` or `::`).
pub(super) fn connection_address(sd: &Sdp, md: &Media) -> Result<Option<IpAddr>, SdpError> {
    let ci = md
        .connection
        .as_ref()
        .or(sd.connection.as_ref())
        .ok_or_else(|| SdpError::Malformed("no c= line for the audio stream".into()))?;
    let ip = parse_address(ci)?;
    Ok((!ip.is_unspecified()).then_some(ip))
}

fn parse_address(ci: &Connection) -> Result<IpAddr, SdpError> {
    let raw = ci
        .address
        .ok_or_else(|| SdpError::Malformed("c= line without an address".into()))?;
    // Multicast addresses may carry "/ttl/count"; we only need the address.
    let addr = raw.split('/').next().unwrap_or(raw);
    let ip = if ci.address_type.eq_ignore_ascii_case("IP6") {
        addr.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        addr.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    ip.map_err(|_| {
        SdpError::Malformed(format!(
            "c= address {raw:?} is not an {} address",
            ci.address_type
        ))
    })
}

/// The payload types listed on the m-line, in the writer's preference order.
fn payload_types<'m>(md: &'m Media) -> impl Iterator<Item = u8> + 'm {
    md.formats()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|&pt| pt < 128)
}

/// `a=rtpmap:<pt> <name>/<rate>[/<channels>]` for a payload type, as
/// (name, rate, channels).
fn rtpmap<'m>(md: &Media<'m>, pt: u8) -> Option<(&'m str, u32, u32)> {
    md.attributes
        .iter()
        .filter(|a| a.key.eq_ignore_ascii_case("rtpmap"))
        .filter_map(|a| a.value)
        .find_map(|v| {
            let (num, rest) = split_at_space(v.trim())?;
            if num.parse::<u8>().ok()? != pt {
                return None;
            }
            let mut parts = rest.trim().split('/');
            let name = parts.next()?;
            let rate = parts.next()?.trim().parse().ok()?;
            let channels = parts.next().map_or(Some(1), |c| c.trim().parse().ok())?;
            Some((name, rate, channels))
        })
}

/// `s.split_once(char::is_whitespace)`, octet by octet while the text is
/// ASCII: the negotiation asks this of each rtpmap once per payload type.
fn split_at_space(s: &str) -> Option<(&str, &str)> {
    for (i, b) in s.bytes().enumerate() {
        if !b.is_ascii() {
            // All before `i` is ASCII, so `i` starts a character.
            let (head, rest) = s[i..].split_once(char::is_whitespace)?;
            return Some((&s[..i + head.len()], rest));
        }
        if matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ') {
            return Some((&s[..i], &s[i + 1..]));
        }
    }
    None
}

/// `a=fmtp:<pt> <params>` for a payload type.
fn fmtp<'m>(md: &Media<'m>, pt: u8) -> Option<&'m str> {
    md.attributes
        .iter()
        .filter(|a| a.key.eq_ignore_ascii_case("fmtp"))
        .filter_map(|a| a.value)
        .find_map(|v| {
            let (num, params) = split_at_space(v.trim())?;
            (num.parse::<u8>().ok()? == pt).then_some(params.trim())
        })
}

/// The first format that is PCMU or PCMA at 8000 Hz mono, in the writer's
/// order. An rtpmap wins over the static meaning of a number.
pub(super) fn first_g711(md: &Media) -> Option<(Codec, u8)> {
    payload_types(md).find_map(|pt| {
        let codec = match rtpmap(md, pt) {
            Some((name, 8000, 1)) => Codec::from_encoding_name(name),
            Some(_) => None,
            None => Codec::from_static_payload_type(pt),
        }?;
        Some((codec, pt))
    })
}

/// The telephone-event/8000 payload type and the events it carries
/// (RFC 4733 §2.4.1: no fmtp means 0-15).
pub(super) fn telephone_event(md: &Media) -> Option<(u8, EventSet)> {
    payload_types(md).find_map(|pt| {
        let (name, rate, _) = rtpmap(md, pt)?;
        if !name.eq_ignore_ascii_case("telephone-event") || rate != 8000 {
            return None;
        }
        let events = fmtp(md, pt)
            .and_then(EventSet::parse)
            .unwrap_or(EventSet::DEFAULT);
        Some((pt, events))
    })
}

/// `a=ptime` of the stream, else of the session.
pub(super) fn ptime(sd: &Sdp, md: &Media) -> Option<u32> {
    md.attributes
        .iter()
        .chain(&sd.attributes)
        .filter(|a| a.key.eq_ignore_ascii_case("ptime"))
        .find_map(|a| a.value?.trim().parse().ok())
}

/// A set of RFC 4733 event codes 0..=31, as in `a=fmtp:101 0-15,16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EventSet(pub u32);

impl EventSet {
    const DEFAULT: EventSet = EventSet(0xFFFF);

    /// Parses "0-15,16"; codes above 31 are ignored (we use none of them).
    fn parse(s: &str) -> Option<EventSet> {
        let mut bits = 0u32;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (
                    lo.trim().parse::<u32>().ok()?,
                    hi.trim().parse::<u32>().ok()?,
                ),
                None => {
                    let v = part.parse::<u32>().ok()?;
                    (v, v)
                }
            };
            for code in lo..=hi.min(31) {
                bits |= 1 << code;
            }
        }
        Some(EventSet(bits))
    }

    pub(super) fn intersect(self, other: EventSet) -> EventSet {
        EventSet(self.0 & other.0)
    }

    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for EventSet {
    /// Ranges, e.g. "0-16" or "0-11,16".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut code = 0u32;
        while code < 32 {
            if self.0 & (1 << code) == 0 {
                code += 1;
                continue;
            }
            let start = code;
            while code + 1 < 32 && self.0 & (1 << (code + 1)) != 0 {
                code += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == code {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{code}")?;
            }
            code += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sets() {
        assert_eq!(EventSet::parse("0-15").unwrap(), EventSet::DEFAULT);
        assert_eq!(EventSet::parse("0-15,16").unwrap().to_string(), "0-16");
        assert_eq!(EventSet::parse("0-11, 16").unwrap().to_string(), "0-11,16");
        assert_eq!(
            EventSet::parse("0-255")
                .unwrap()
                .intersect(SUPPORTED_EVENTS)
                .to_string(),
            "0-16"
        );
        assert_eq!(EventSet::parse("5").unwrap().to_string(), "5");
        assert!(EventSet::parse("x-y").is_none());
        assert!(EventSet::parse("32-40").unwrap().is_empty());
    }

    #[test]
    fn split_at_space_is_split_once_at_whitespace() {
        for s in [
            "101 telephone-event/8000",
            "8\tPCMA/8000",
            "0",
            "",
            "9\u{b}x",
            "1\u{a0}a b",
            "ä b",
            "96\u{3000}x",
        ] {
            assert_eq!(
                split_at_space(s),
                s.split_once(char::is_whitespace),
                "{s:?}"
            );
        }
    }
}

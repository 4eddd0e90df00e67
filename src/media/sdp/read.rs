//! A zero-copy reader for the SDP bodies phones and trunks send.
//!
//! It follows `rtc-sdp` 0.21's unmarshaller line by line (the same state
//! machine of RFC 4566 line order, the same field checks) and borrows every
//! value from the body instead of copying it into a `String`. It only says
//! yes to bodies whose every line it fully understands; for anything else
//! (an `u=`, `r=` or `z=` line, octets that are not UTF-8, a malformed
//! line) it returns `None` and the caller asks `rtc-sdp`, whose verdict and
//! error text then stand. So a body is never accepted here that `rtc-sdp`
//! refuses, and what is read equals what `rtc-sdp` reads (a test holds both
//! to that over mutated offers).

use super::parse::{Attribute, Connection, Media, Sdp};

/// Where the reader is in the RFC 4566 line order; named after
/// `rtc-sdp`'s states `s1` to `s16` (`s10` and `s13` follow `u=` and `z=`,
/// which are left to `rtc-sdp`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    S7,
    S8,
    S9,
    S11,
    S12,
    S14,
    S15,
    S16,
}

/// Reads `body`, or `None` when `rtc-sdp` must decide.
pub(super) fn read(body: &[u8]) -> Option<Sdp<'_>> {
    let mut sdp = Sdp {
        connection: None,
        attributes: Vec::new(),
        media: Vec::new(),
    };
    // Every octet belongs to a line's value, a key or a line end, so the
    // body is UTF-8 exactly when every value is: checked once.
    let text = std::str::from_utf8(body).ok()?;
    let mut state = State::S1;
    let mut pos = 0;
    loop {
        // Line ends (and empty lines) are skipped before each type letter.
        while pos < body.len() && matches!(body[pos], b'\r' | b'\n') {
            pos += 1;
        }
        if pos == body.len() {
            // The end of the body is only allowed once a t= line was read.
            return matches!(
                state,
                State::S9 | State::S11 | State::S12 | State::S14 | State::S15 | State::S16
            )
            .then_some(sdp);
        }
        if body.get(pos + 1) != Some(&b'=') {
            return None;
        }
        let key = body[pos];
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| pos + i);
        let value = text[pos + 2..end].trim();
        pos = end;
        state = line(&mut sdp, state, key, value)?;
    }
}

/// One `key=value` line in `state`: the next state, or `None`.
fn line<'a>(sdp: &mut Sdp<'a>, state: State, key: u8, value: &'a str) -> Option<State> {
    use State::*;
    let allowed: &[u8] = match state {
        S1 => b"v",
        S2 => b"o",
        S3 => b"s",
        S4 => b"iepcbt",
        S5 => b"bt",
        S6 => b"pcbt",
        S7 => b"epcbt",
        S8 => b"cbt",
        S9 => b"katm",
        S11 => b"am",
        S12 | S14 | S15 | S16 => b"akbcim",
    };
    if !allowed.contains(&key) {
        return None;
    }
    let in_media = matches!(state, S12 | S14 | S15 | S16);
    Some(match key {
        b'v' => {
            (value.parse::<u32>().ok()? == 0).then_some(())?;
            S2
        }
        b'o' => {
            let mut f = value.split_whitespace();
            let fields: [&str; 6] = std::array::from_fn(|_| f.next().unwrap_or(""));
            if f.next().is_some() || fields[5].is_empty() {
                return None;
            }
            fields[1].parse::<u64>().ok()?;
            fields[2].parse::<u64>().ok()?;
            if fields[3] != "IN" || !matches!(fields[4], "IP4" | "IP6") {
                return None;
            }
            S3
        }
        b's' => S4,
        b'i' if in_media => S16,
        b'i' => S7,
        b'e' => S6,
        b'p' => S8,
        b'c' => {
            let c = connection(value)?;
            if in_media {
                sdp.media.last_mut()?.connection = Some(c);
                S15
            } else {
                sdp.connection = Some(c);
                S5
            }
        }
        b'b' => {
            let (_, bandwidth) = value.split_once(':')?;
            if bandwidth.contains(':') {
                return None;
            }
            bandwidth.parse::<u64>().ok()?;
            if in_media { S15 } else { S5 }
        }
        b't' => {
            let mut f = value.split_whitespace();
            f.next()?.parse::<u64>().ok()?;
            f.next()?.parse::<u64>().ok()?;
            S9
        }
        b'k' if in_media => S14,
        b'k' => S11,
        b'a' => {
            let (key, value) = match value.split_once(':') {
                Some((k, v)) => (k, Some(v)),
                None => (value, None),
            };
            let a = Attribute { key, value };
            if in_media {
                sdp.media.last_mut()?.attributes.push(a);
                S14
            } else {
                sdp.attributes.push(a);
                S11
            }
        }
        b'm' => {
            sdp.media.push(media(value)?);
            S12
        }
        _ => return None,
    })
}

/// `c=IN IP4|IP6 [address ...]`.
fn connection(value: &str) -> Option<Connection<'_>> {
    let mut f = value.split_whitespace();
    if f.next()? != "IN" {
        return None;
    }
    let address_type = f.next().filter(|t| matches!(*t, "IP4" | "IP6"))?;
    Some(Connection {
        address_type,
        address: f.next(),
    })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...`.
fn media(value: &str) -> Option<Media<'_>> {
    let mut f = value.split_whitespace();
    let kind = f
        .next()
        .filter(|m| ["audio", "video", "text", "application", "message", "image"].contains(m))?;
    let mut port = f.next()?.split('/');
    let port_value = port.next()?.parse::<u16>().ok()?;
    if let Some(count) = port.next() {
        count.parse::<i32>().ok()?;
    }
    let proto = f.next()?;
    if proto.split('/').any(str::is_empty) {
        return None;
    }
    let first_format = f.next()?;
    // The formats are the rest of the line from the first one on.
    let start = first_format.as_ptr() as usize - value.as_ptr() as usize;
    Some(Media {
        media: kind,
        port: port_value,
        proto: proto.into(),
        formats: value[start..].into(),
        connection: None,
        // An audio offer has rtpmap, fmtp, ptime and a direction or so:
        // room for them without growing.
        attributes: Vec::with_capacity(8),
    })
}

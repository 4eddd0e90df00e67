//! Writing our SDP bodies. Always CRLF, always this shape:
//! v, o, s, c, t, then the m-lines in the order of the offer.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::parse::{EventSet, SUPPORTED_EVENTS};
use super::{Codec, Direction, SdpSession};
use crate::media::srtp::{CryptoLine, SrtpPolicy, Suite};

/// The payload type we use for telephone-event in our own offers
/// (the de-facto standard number).
pub(super) const OFFER_DTMF_PT: u8 = 101;

/// Our audio stream.
pub(super) struct AudioLine<'a> {
    pub port: u16,
    /// The transport, e.g. `RTP/AVP`.
    pub proto: &'a str,
    pub formats: &'a [(Codec, u8)],
    pub dtmf: Option<(u8, EventSet)>,
    pub direction: Direction,
    /// Our `a=crypto` value (SDES), if the stream is SRTP.
    pub crypto: Option<String>,
}

/// One m-line of a body we write.
pub(super) enum MLine<'a> {
    Audio(&'a AudioLine<'a>),
    /// A stream we refuse (RFC 3264 §6: port 0, formats copied).
    Rejected {
        media: &'a str,
        proto: &'a str,
        /// Whitespace-separated, as offered.
        formats: &'a str,
    },
}

fn ip_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

/// Appends `n` in decimal (the body is written often enough that the
/// formatting machinery shows in profiles).
fn push_num(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

pub(super) fn body(local_ip: IpAddr, session: &mut SdpSession, lines: &[MLine]) -> Vec<u8> {
    // Everything after o= first: the version only moves when this changes.
    let mut rest = String::with_capacity(256);
    let t = ip_type(local_ip);
    rest.push_str("s=zentrale\r\nc=IN ");
    rest.push_str(t);
    rest.push(' ');
    let ip_at = rest.len();
    crate::ascii::push_ip(&mut rest, local_ip);
    let ip_len = rest.len() - ip_at;
    rest.push_str("\r\nt=0 0\r\n");
    for line in lines {
        match line {
            MLine::Audio(a) => audio(&mut rest, a),
            MLine::Rejected {
                media,
                proto,
                formats,
            } => {
                rest.push_str("m=");
                rest.push_str(media);
                rest.push_str(" 0 ");
                rest.push_str(proto);
                let mut any = false;
                for f in formats.split_whitespace() {
                    rest.push(' ');
                    rest.push_str(f);
                    any = true;
                }
                if !any {
                    rest.push_str(" 0");
                }
                rest.push_str("\r\n");
            }
        }
    }
    let version = session.stamp(&rest);
    let mut out = String::with_capacity(rest.len() + 64);
    out.push_str("v=0\r\no=zentrale ");
    push_num(&mut out, session.id());
    out.push(' ');
    push_num(&mut out, version);
    out.push_str(" IN ");
    out.push_str(t);
    out.push(' ');
    out.push_str(&rest[ip_at..ip_at + ip_len]);
    out.push_str("\r\n");
    out.push_str(&rest);
    session.keep(rest);
    out.into_bytes()
}

fn audio(out: &mut String, a: &AudioLine) {
    out.push_str("m=audio ");
    push_num(out, a.port.into());
    out.push(' ');
    out.push_str(a.proto);
    for (_, pt) in a.formats {
        out.push(' ');
        push_num(out, (*pt).into());
    }
    if let Some((pt, _)) = a.dtmf {
        out.push(' ');
        push_num(out, pt.into());
    }
    out.push_str("\r\n");
    if a.port == 0 {
        return;
    }
    for (codec, pt) in a.formats {
        out.push_str("a=rtpmap:");
        push_num(out, (*pt).into());
        out.push(' ');
        out.push_str(codec.encoding_name());
        out.push_str("/8000\r\n");
    }
    if let Some((pt, events)) = a.dtmf {
        out.push_str("a=rtpmap:");
        push_num(out, pt.into());
        out.push_str(" telephone-event/8000\r\na=fmtp:");
        push_num(out, pt.into());
        out.push(' ');
        let _ = write!(out, "{events}");
        out.push_str("\r\n");
    }
    out.push_str("a=ptime:20\r\na=");
    out.push_str(a.direction.as_str());
    out.push_str("\r\n");
    if let Some(crypto) = &a.crypto {
        out.push_str("a=crypto:");
        out.push_str(crypto);
        out.push_str("\r\n");
    }
}

pub(super) fn offer(
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    codecs: &[Codec],
    dtmf: bool,
    direction: Direction,
    srtp: SrtpPolicy,
) -> Vec<u8> {
    let crypto = (srtp != SrtpPolicy::Off).then(|| {
        CryptoLine {
            tag: 1,
            suite: Suite::AesCm128HmacSha1_80,
            key: session.srtp_key().clone(),
        }
        .value()
    });
    let mut formats: Vec<(Codec, u8)> = Vec::with_capacity(2);
    for &c in codecs {
        if !formats.iter().any(|&(f, _)| f == c) {
            formats.push((c, c.static_payload_type()));
        }
    }
    if formats.is_empty() {
        formats = vec![(Codec::Pcma, 8), (Codec::Pcmu, 0)];
    }
    let line = AudioLine {
        port: local_port,
        // "offer" is best-effort SRTP: a crypto line on RTP/AVP, which a
        // phone without SRTP ignores.
        proto: if srtp == SrtpPolicy::Require {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        },
        formats: &formats,
        dtmf: dtmf.then_some((OFFER_DTMF_PT, SUPPORTED_EVENTS)),
        direction,
        crypto,
    };
    body(local_ip, session, &[MLine::Audio(&line)])
}

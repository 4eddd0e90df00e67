//! Writing our SDP bodies. Always CRLF, always this shape:
//! v, o, s, c, t, then the m-lines in the order of the offer.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::parse::{EventSet, SUPPORTED_EVENTS};
use super::{Codec, Direction, SdpSession};

/// The payload type we use for telephone-event in our own offers
/// (the de-facto standard number).
pub(super) const OFFER_DTMF_PT: u8 = 101;

/// Our audio stream.
pub(super) struct AudioLine {
    pub port: u16,
    pub proto: String,
    pub formats: Vec<(Codec, u8)>,
    pub dtmf: Option<(u8, EventSet)>,
    pub direction: Direction,
}

/// One m-line of a body we write.
pub(super) enum MLine<'a> {
    Audio(&'a AudioLine),
    /// A stream we refuse (RFC 3264 §6: port 0, formats copied).
    Rejected {
        media: &'a str,
        protos: &'a [String],
        formats: &'a [String],
    },
}

fn ip_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

pub(super) fn body(local_ip: IpAddr, session: &mut SdpSession, lines: &[MLine]) -> Vec<u8> {
    // Everything after o= first: the version only moves when this changes.
    let mut rest = String::with_capacity(256);
    let t = ip_type(local_ip);
    let _ = write!(rest, "s=zentrale\r\nc=IN {t} {local_ip}\r\nt=0 0\r\n");
    for line in lines {
        match line {
            MLine::Audio(a) => audio(&mut rest, a),
            MLine::Rejected {
                media,
                protos,
                formats,
            } => {
                let formats = if formats.is_empty() {
                    "0".to_string()
                } else {
                    formats.join(" ")
                };
                let _ = write!(rest, "m={media} 0 {} {formats}\r\n", protos.join("/"));
            }
        }
    }
    let version = session.stamp(&rest);
    let mut out = format!(
        "v=0\r\no=zentrale {} {version} IN {t} {local_ip}\r\n",
        session.id()
    );
    out.push_str(&rest);
    out.into_bytes()
}

fn audio(out: &mut String, a: &AudioLine) {
    let _ = write!(out, "m=audio {} {}", a.port, a.proto);
    for (_, pt) in &a.formats {
        let _ = write!(out, " {pt}");
    }
    if let Some((pt, _)) = a.dtmf {
        let _ = write!(out, " {pt}");
    }
    out.push_str("\r\n");
    if a.port == 0 {
        return;
    }
    for (codec, pt) in &a.formats {
        let _ = write!(out, "a=rtpmap:{pt} {}/8000\r\n", codec.encoding_name());
    }
    if let Some((pt, events)) = a.dtmf {
        let _ = write!(
            out,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} {events}\r\n"
        );
    }
    let _ = write!(out, "a=ptime:20\r\na={}\r\n", a.direction);
}

pub(super) fn offer(
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    codecs: &[Codec],
    dtmf: bool,
    direction: Direction,
) -> Vec<u8> {
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
        proto: "RTP/AVP".into(),
        formats,
        dtmf: dtmf.then_some((OFFER_DTMF_PT, SUPPORTED_EVENTS)),
        direction,
    };
    body(local_ip, session, &[MLine::Audio(&line)])
}

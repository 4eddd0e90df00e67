//! The offer/answer decisions (RFC 3264 §6 for answers, §7 for reading
//! the answer to our offer).

use std::net::{IpAddr, SocketAddr};

use super::parse::{self, EventSet, Media, SUPPORTED_EVENTS, Sdp};
use super::write::{self, AudioLine};
use super::{Answer, Codec, Direction, Negotiated, SdpError, SdpSession};
use crate::media::srtp::{CryptoLine, MasterKey, SrtpKeys, SrtpPolicy};

/// Whether a line can be served under `srtp`, and with which crypto line.
/// `Err` names why not.
fn transport_of(md: &Media, srtp: SrtpPolicy) -> Result<Option<CryptoLine>, SdpError> {
    let crypto = parse::crypto(md);
    match (srtp, parse::is_srtp_audio(md), crypto) {
        (SrtpPolicy::Off, false, _) if parse::is_plain_rtp_audio(md) => Ok(None),
        (SrtpPolicy::Off, _, _) => Err(SdpError::NoCommonCodec),
        (_, _, Some(c)) if parse::is_plain_rtp_audio(md) || parse::is_srtp_audio(md) => Ok(Some(c)),
        (SrtpPolicy::Offer, false, None) if parse::is_plain_rtp_audio(md) => Ok(None),
        (SrtpPolicy::Require, _, None)
            if parse::is_plain_rtp_audio(md) || parse::is_srtp_audio(md) =>
        {
            Err(SdpError::SrtpRequired)
        }
        _ => Err(SdpError::NoCommonCodec),
    }
}

/// What we take from the peer's audio m-line.
struct Peer {
    codec: Codec,
    payload_type: u8,
    dtmf: Option<(u8, EventSet)>,
    remote: Option<SocketAddr>,
    /// The peer's direction, already narrowed for `c=0.0.0.0`.
    direction: Direction,
    ptime: Option<u32>,
}

fn read_peer(sd: &Sdp, md: &Media) -> Result<Peer, SdpError> {
    let (codec, payload_type) = parse::first_g711(md).ok_or(SdpError::NoCommonCodec)?;
    let dtmf = parse::telephone_event(md)
        .map(|(pt, events)| (pt, events.intersect(SUPPORTED_EVENTS)))
        .filter(|(_, events)| !events.is_empty());
    let port = parse::port(md);
    let mut direction = parse::direction(sd, md);
    let remote = if port == 0 {
        direction = Direction::Inactive;
        None
    } else {
        match parse::connection_address(sd, md)? {
            Some(ip) => Some(SocketAddr::new(ip, port)),
            None => {
                // RFC 2543 hold: the writer asks not to be sent media.
                direction = direction.without_receive();
                None
            }
        }
    };
    Ok(Peer {
        codec,
        payload_type,
        dtmf,
        remote,
        direction,
        ptime: parse::ptime(sd, md),
    })
}

pub(super) fn answer(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    srtp: SrtpPolicy,
) -> Result<Answer, SdpError> {
    parse::with_parsed(offer, |sd| {
        answer_parsed(sd, local_ip, local_port, session, srtp)
    })
}

fn answer_parsed(
    sd: &Sdp,
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    srtp: SrtpPolicy,
) -> Result<Answer, SdpError> {
    let mds = &sd.media;
    if !mds.iter().any(|md| md.media.eq_ignore_ascii_case("audio")) {
        return Err(SdpError::NoAudio);
    }
    // The first plain-RTP audio line we can serve; prefer enabled ones so a
    // disabled leftover line in a re-offer does not win.
    let usable = |md: &&Media| transport_of(md, srtp).is_ok() && parse::first_g711(md).is_some();
    let chosen = mds
        .iter()
        .position(|md| usable(&md) && parse::port(md) != 0)
        .or_else(|| mds.iter().position(|md| usable(&md)))
        .ok_or_else(|| {
            // Say SRTP was the reason when a line would do but for it.
            let plain = |md: &Media| {
                transport_of(md, SrtpPolicy::Offer).is_ok() && parse::first_g711(md).is_some()
            };
            if srtp == SrtpPolicy::Require && mds.iter().any(plain) {
                SdpError::SrtpRequired
            } else {
                SdpError::NoCommonCodec
            }
        })?;
    let peer = read_peer(sd, &mds[chosen])?;
    let crypto = transport_of(&mds[chosen], srtp)?;
    let keys = crypto.as_ref().map(|c| SrtpKeys {
        suite: c.suite,
        local: session.srtp_key().clone(),
        remote: c.key.clone(),
    });
    // RFC 4568 §7.1.2: the answer repeats the tag and suite with our key.
    let crypto_value = crypto.as_ref().zip(keys.as_ref()).map(|(c, k)| {
        CryptoLine {
            tag: c.tag,
            suite: c.suite,
            key: k.local.clone(),
        }
        .value()
    });
    let direction = peer.direction.reverse();
    let audio = AudioLine {
        // RFC 3264 §6: a stream offered with port 0 is answered with port 0.
        port: if parse::port(&mds[chosen]) == 0 {
            0
        } else {
            local_port
        },
        proto: &mds[chosen].proto,
        formats: &[(peer.codec, peer.payload_type)],
        dtmf: peer.dtmf,
        direction,
        crypto: crypto_value,
    };
    let lines: Vec<write::MLine> = mds
        .iter()
        .enumerate()
        .map(|(i, md)| {
            if i == chosen {
                write::MLine::Audio(&audio)
            } else {
                write::MLine::Rejected {
                    media: md.media,
                    proto: &md.proto,
                    formats: &md.formats,
                }
            }
        })
        .collect();
    let sdp = write::body(local_ip, session, &lines);
    Ok(Answer {
        codec: peer.codec,
        payload_type: peer.payload_type,
        dtmf_payload_type: peer.dtmf.map(|(pt, _)| pt),
        remote: peer.remote,
        direction,
        remote_ptime: peer.ptime,
        srtp: keys,
        sdp,
    })
}

/// Reads the answer to our offer; `local` is the key we offered (if we
/// offered SRTP).
pub(super) fn parse_answer(
    body: &[u8],
    local: Option<MasterKey>,
    srtp: SrtpPolicy,
) -> Result<Negotiated, SdpError> {
    parse::with_parsed(body, |sd| {
        let md = sd
            .media
            .iter()
            .find(|md| md.media.eq_ignore_ascii_case("audio"))
            .ok_or(SdpError::NoAudio)?;
        // Port 0 in an answer rejects the stream we offered.
        if parse::port(md) == 0 {
            return Err(SdpError::NoCommonCodec);
        }
        let crypto = transport_of(md, srtp)?;
        let keys = match (crypto, local) {
            (Some(c), Some(local)) => Some(SrtpKeys {
                suite: c.suite,
                local,
                remote: c.key,
            }),
            _ => None,
        };
        let peer = read_peer(sd, md)?;
        Ok(Negotiated {
            codec: peer.codec,
            payload_type: peer.payload_type,
            dtmf_payload_type: peer.dtmf.map(|(pt, _)| pt),
            remote: peer.remote,
            direction: peer.direction.reverse(),
            remote_ptime: peer.ptime,
            srtp: keys,
        })
    })
}

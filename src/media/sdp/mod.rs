//! SDP offer/answer (RFC 3264) for one G.711 audio stream with optional
//! RFC 4733 telephone-events.
//!
//! The usual bodies are read in place by a reader that follows `rtc-sdp`'s
//! grammar (no copies, see `read`); anything else, and every error
//! message, comes from `rtc-sdp` itself. What we send is written by hand
//! because it is always the same short shape.
//!
//! ```
//! use zentrale::media::sdp::{self, Codec, Direction, SdpSession};
//! let offer = b"v=0\r\no=- 1 1 IN IP4 127.0.0.21\r\ns=-\r\nc=IN IP4 127.0.0.21\r\n\
//! t=0 0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
//! a=fmtp:101 0-16\r\n";
//! let mut rng = zentrale::rng::SeededRng::from_u64(1);
//! let mut session = SdpSession::new(&mut rng);
//! let ans = sdp::answer(offer, "127.0.0.17".parse().unwrap(), 20000, &mut session).unwrap();
//! assert_eq!(ans.codec, Codec::Pcma);
//! assert_eq!(ans.dtmf_payload_type, Some(101));
//! assert_eq!(ans.remote, Some("127.0.0.21:4000".parse().unwrap()));
//! assert_eq!(ans.direction, Direction::SendRecv);
//! ```

mod negotiate;
mod parse;
mod read;
mod write;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};

pub use super::codec::Codec;
use super::srtp::{MasterKey, SrtpKeys, SrtpPolicy};
use crate::offer::OfferFault;
use crate::rng::SeededRng;

/// Media direction, always from the point of view of the side that wrote it.
/// In an [`Answer`] and in [`Negotiated`] it is what *zentrale* does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Send and receive (the default when no attribute is given).
    #[default]
    SendRecv,
    /// Only send (e.g. the side that puts the other on hold).
    SendOnly,
    /// Only receive.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name, e.g. `sendonly`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses a direction attribute name.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// The direction the other side has: sendonly ↔ recvonly.
    pub const fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// True if this side sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// True if this side receives media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same direction without receiving (used for `c=0.0.0.0`, where the
    /// writer asks not to be sent anything).
    pub const fn without_receive(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Our side of the SDP session: the `o=` line's session id and version.
/// Keep one per call leg. The version increases only when the body we send
/// differs from the previous one (RFC 3264 §8), so a re-answer of an
/// unchanged re-INVITE keeps it.
#[derive(Clone, Debug)]
pub struct SdpSession {
    id: u64,
    version: u64,
    last_body: Option<Vec<u8>>,
    /// Our SRTP master key on this leg, drawn with the session and kept
    /// for the leg's life, so a re-answer does not re-key the stream.
    srtp_key: MasterKey,
}

impl SdpSession {
    /// A session with a random id, drawn from `rng` like its SRTP key; the
    /// version starts equal to the id, as RFC 4566 suggests (an NTP-like
    /// number that only grows).
    pub fn new(rng: &mut SeededRng) -> SdpSession {
        // Below 2^62 so even parsers that read a signed 64-bit number cope.
        let id = rng.next_u64() >> 2;
        SdpSession::with_id(id, id, rng)
    }

    /// A session with a given id and starting version (tests, restarts),
    /// its SRTP key drawn from `rng`.
    pub fn with_id(id: u64, version: u64, rng: &mut SeededRng) -> SdpSession {
        SdpSession {
            id,
            version,
            last_body: None,
            srtp_key: MasterKey::random(rng),
        }
    }

    /// The `o=` session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Our SRTP master key on this leg.
    pub fn srtp_key(&self) -> &MasterKey {
        &self.srtp_key
    }

    /// The version of the last body produced (or the initial one).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Returns the version to write in front of `body`; [`Self::keep`]
    /// then takes the body, so that it is not copied.
    fn stamp(&mut self, body: &str) -> u64 {
        match &self.last_body {
            Some(prev) if prev.as_slice() != body.as_bytes() => {
                self.version = self.version.wrapping_add(1);
            }
            _ => {}
        }
        self.version
    }

    /// Remembers the body just stamped.
    fn keep(&mut self, body: String) {
        self.last_body = Some(body.into_bytes());
    }
}

/// The result of a negotiation: what to send, where, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec both sides send.
    pub codec: Codec,
    /// Its payload type (static 0/8 or the dynamic one the peer chose).
    pub payload_type: u8,
    /// The telephone-event payload type, if both sides do RFC 4733.
    pub dtmf_payload_type: Option<u8>,
    /// Where to send RTP; `None` for `c=0.0.0.0`/`::` (old-style hold) or port 0.
    pub remote: Option<SocketAddr>,
    /// What zentrale does.
    pub direction: Direction,
    /// The peer's `a=ptime`, if given. We always send 20 ms.
    pub remote_ptime: Option<u32>,
    /// The SRTP keys both ways, if the stream is SRTP.
    pub srtp: Option<SrtpKeys>,
}

/// Our answer to an offer, with the negotiated parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The codec both sides send.
    pub codec: Codec,
    /// Its payload type (the caller's number for it).
    pub payload_type: u8,
    /// The telephone-event payload type, if the caller offered RFC 4733.
    pub dtmf_payload_type: Option<u8>,
    /// Where to send RTP; `None` for `c=0.0.0.0`/`::` or port 0.
    pub remote: Option<SocketAddr>,
    /// What zentrale does, i.e. the direction written in the answer:
    /// offer sendonly → recvonly, recvonly → sendonly, inactive → inactive.
    pub direction: Direction,
    /// The caller's `a=ptime`, if given. We always send 20 ms.
    pub remote_ptime: Option<u32>,
    /// The SRTP keys both ways, if the stream is SRTP.
    pub srtp: Option<SrtpKeys>,
    /// The answer body to put in the 200 OK.
    pub sdp: Vec<u8>,
}

impl Answer {
    /// The negotiated parameters without the body.
    pub fn negotiated(&self) -> Negotiated {
        Negotiated {
            codec: self.codec,
            payload_type: self.payload_type,
            dtmf_payload_type: self.dtmf_payload_type,
            remote: self.remote,
            direction: self.direction,
            remote_ptime: self.remote_ptime,
            srtp: self.srtp.clone(),
        }
    }
}

/// Why an offer or answer cannot be used. The signalling layer decides
/// what the peer is told from its [`SdpError::fault`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not parseable SDP: the message itself is broken.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// Readable, but no audio stream at all.
    #[error("no audio stream offered")]
    NoAudio,
    /// Audio, but not PCMU/PCMA over RTP/AVP.
    #[error("no common codec: need PCMU or PCMA over RTP/AVP")]
    NoCommonCodec,
    /// Plain RTP where the leg's `srtp: require` asks for SRTP.
    #[error("SRTP is required: offer RTP/SAVP with a=crypto AES_CM_128_HMAC_SHA1_80")]
    SrtpRequired,
}

impl SdpError {
    /// The kind of fault, for the signalling layer to answer.
    pub fn fault(&self) -> OfferFault {
        match self {
            SdpError::Malformed(_) => OfferFault::Unreadable,
            SdpError::NoAudio | SdpError::NoCommonCodec | SdpError::SrtpRequired => {
                OfferFault::Unusable
            }
        }
    }
}

impl From<&SdpError> for OfferFault {
    fn from(e: &SdpError) -> OfferFault {
        e.fault()
    }
}

/// Answers an audio offer (RFC 3264 §6).
///
/// Picks the first of the caller's formats that is PCMU or PCMA, adds
/// telephone-event only if offered, answers the first usable audio m-line
/// and rejects every other m-line with port 0, keeping their order.
pub fn answer(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
) -> Result<Answer, SdpError> {
    negotiate::answer(offer, local_ip, local_port, session, SrtpPolicy::Off)
}

/// Like [`answer`], with SRTP as `srtp` allows (see [`SrtpPolicy`]): an
/// audio line with a usable `a=crypto` is answered with our own key.
pub fn answer_with_srtp(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    srtp: SrtpPolicy,
) -> Result<Answer, SdpError> {
    negotiate::answer(offer, local_ip, local_port, session, srtp)
}

/// Writes a `sendrecv` offer for the given codecs in preference order, plus
/// telephone-event (payload type 101, events 0-16) if `dtmf`.
pub fn offer(
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    codecs: &[Codec],
    dtmf: bool,
) -> Vec<u8> {
    offer_with_direction(
        local_ip,
        local_port,
        session,
        codecs,
        dtmf,
        Direction::SendRecv,
    )
}

/// Like [`offer`] with an explicit direction (hold: `SendOnly`).
pub fn offer_with_direction(
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    codecs: &[Codec],
    dtmf: bool,
    direction: Direction,
) -> Vec<u8> {
    write::offer(
        local_ip,
        local_port,
        session,
        codecs,
        dtmf,
        direction,
        SrtpPolicy::Off,
    )
}

/// Like [`offer`], with a crypto line of our key as `srtp` says: none for
/// `Off`, on `RTP/AVP` for `Offer`, on `RTP/SAVP` for `Require`.
pub fn offer_with_srtp(
    local_ip: IpAddr,
    local_port: u16,
    session: &mut SdpSession,
    codecs: &[Codec],
    dtmf: bool,
    srtp: SrtpPolicy,
) -> Vec<u8> {
    write::offer(
        local_ip,
        local_port,
        session,
        codecs,
        dtmf,
        Direction::SendRecv,
        srtp,
    )
}

/// Reads the answer to one of our offers. The direction returned is ours.
pub fn parse_answer(answer: &[u8]) -> Result<Negotiated, SdpError> {
    negotiate::parse_answer(answer, None, SrtpPolicy::Off)
}

/// Reads the answer to an offer made with [`offer_with_srtp`] on
/// `session`: a crypto line in it makes the stream SRTP; without one,
/// `Require` refuses the answer.
pub fn parse_answer_with_srtp(
    answer: &[u8],
    session: &mut SdpSession,
    srtp: SrtpPolicy,
) -> Result<Negotiated, SdpError> {
    let local = (srtp != SrtpPolicy::Off).then(|| session.srtp_key().clone());
    negotiate::parse_answer(answer, local, srtp)
}

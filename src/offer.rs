//! Why an SDP offer or answer cannot be used, in the two kinds both sides
//! of the boundary share: `media` finds what is wrong with a body
//! (`media::sdp::SdpError` says what in detail), `sip` decides what the
//! peer is told (`sip::message::sdp_refusal`). Neither imports the other,
//! and media knows no SIP status codes.

/// What kind of fault an offer or answer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferFault {
    /// The body cannot be read as SDP: the message itself is broken.
    Unreadable,
    /// Readable SDP without a stream zentrale can use (no audio, no common
    /// codec, plain RTP where SRTP is required): the peer may offer again.
    Unusable,
}

//! The caller's leg of a session: the SIP call zentrale answered, the
//! INVITE it answered, where it came from, and its media.

use crate::call::Call;
use crate::media::engine::StreamId;
use crate::media::sdp::{self, SdpSession};
use crate::sip::message::Request;
use crate::sip::transaction::ServerKey;

/// Who is calling, decided before routing (see README: "Trunks and agents").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallingParty {
    Trunk(usize),
    Agent(String),
}

/// See the module docs.
pub struct CallerLeg {
    pub call: Call,
    pub invite: Request,
    pub origin: CallingParty,
    /// CSeq and transaction of the last re-INVITE answered 2xx: its ACK
    /// (a new branch) is matched by CSeq and must stop the 2xx
    /// retransmissions of that transaction, not of the initial INVITE's.
    pub reinvite: Option<(u32, ServerKey)>,
    pub media: MediaLeg,
}

pub struct MediaLeg {
    pub port: u16,
    pub stream: StreamId,
    /// Whether the stream is still to be handed to the media worker.
    pub unstarted: bool,
    pub session: SdpSession,
    /// The SDP body of our answer (or offer, for an offerless INVITE).
    pub local_sdp: Vec<u8>,
    pub negotiated: Option<sdp::Negotiated>,
    /// SRTP on this leg: the trunk's or the calling agent's `srtp:`.
    pub srtp: crate::media::srtp::SrtpPolicy,
}

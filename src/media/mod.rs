//! Media: RTP sockets and the port pool, G.711, prompt and music-on-hold
//! playback, RFC 4733 DTMF, the RTP relay between bridged legs and SDP
//! offer/answer for audio. Nothing here knows
//! SIP; the call module hands SDP bodies in and gets [`sdp::Answer`]s back,
//! then drives streams through an [`engine::MediaHandle`].
//!
//! Performance shape (see DESIGN.md, "Performance notes"): one worker thread
//! paces every stream from a single 20 ms timer; prompts are encoded to G.711
//! once at start-up, so sending a frame is a 12-byte header rewrite, a
//! 160-byte copy and one `send_to`. Relayed packets are sent as soon as they
//! are read (the worker waits on socket readiness, in rounds at most 2 ms
//! apart, not on the tick), with the header rewritten in place and G.711
//! transcoded by table if needed.

pub mod codec;
pub mod engine;
pub mod error;
pub mod g711;
pub mod ports;
pub mod prompt;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod srtp;
pub mod wav;

pub use codec::Codec;
pub use engine::{EngineConfig, MediaEvent, MediaHandle, Playlist, StreamId};
pub use error::MediaError;
pub use ports::PortPool;
pub use prompt::{Prompt, PromptLibrary};
pub use sdp::{Answer, Direction, SdpError, SdpSession};

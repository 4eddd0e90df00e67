//! The media worker: one thread, one 20 ms timer, every stream.
//!
//! Each tick it applies queued commands, then for every stream builds the
//! next G.711 frame from pre-encoded prompt bytes, rewrites the 12-byte
//! header and sends it, then drains the socket (DTMF, peer learning, RTP
//! timeout). Each stream towards a peer stays one continuous RTP stream:
//! SSRC fixed, sequence +1 per packet, timestamp +160 per 20 ms of real time
//! whether or not we send — whatever is played into it.
//!
//! ```no_run
//! use std::time::Duration;
//! use zentrale::media::engine::{self, EngineConfig, Playlist, StreamId};
//! use zentrale::media::{Codec, PortPool, Prompt};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let (media, mut events) = engine::start(EngineConfig::default());
//! let mut pool = PortPool::new(10000, 20000)?;
//! let (port, socket) = pool.allocate("192.0.2.7".parse()?)?;
//! let id = StreamId(1);
//! media.add_stream(id, socket, Some("192.0.2.1:4000".parse()?), Codec::Pcma, 8);
//! media.set_dtmf_payload_type(id, Some(101));
//! let greeting = Prompt::from_samples("hallo", &[0; 8000]);
//! let music = Prompt::from_samples("musik", &[0; 8000]);
//! media.play(id, Playlist::once(greeting).then_loop(music));
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! media.remove_stream(id);
//! pool.release(port);
//! # Ok(()) }
//! ```

mod player;
mod stream;
mod worker;

#[cfg(test)]
mod tests;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::codec::Codec;
use super::prompt::Prompt;
use super::sdp::Direction;

/// Capacity of the event channel towards the call logic.
pub const EVENT_CAPACITY: usize = 4096;

/// Names a stream; the call module chooses it (e.g. a leg id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// Worker settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Report [`MediaEvent::RtpTimeout`] after this long without packets
    /// from a peer that should be sending; `None` disables the watch.
    pub rtp_timeout: Option<Duration>,
    /// Packet interval: 10 to 60 ms in whole milliseconds (anything else
    /// falls back to 20 ms with a warning). Our SDP says `a=ptime:20`.
    pub tick: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rtp_timeout: Some(Duration::from_secs(60)),
            tick: Duration::from_millis(20),
        }
    }
}

/// What to play: `items` once in order, then `then_loop` over and over
/// until replaced. With nothing left the stream carries encoded silence,
/// still sent so the stream stays continuous.
///
/// ```
/// use zentrale::media::{engine::Playlist, Prompt};
/// let hello = Prompt::from_samples("hallo", &[0; 160]);
/// let moh = Prompt::from_samples("musik", &[0; 160]);
/// let p = Playlist::once(hello).then_loop(moh);
/// assert_eq!(p.items.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Playlist {
    pub items: Vec<Prompt>,
    pub then_loop: Option<Prompt>,
}

impl Playlist {
    /// Plays `prompt` once, then silence.
    pub fn once(prompt: Prompt) -> Playlist {
        Playlist {
            items: vec![prompt],
            then_loop: None,
        }
    }

    /// Loops `prompt` (music on hold).
    pub fn looping(prompt: Prompt) -> Playlist {
        Playlist {
            items: Vec::new(),
            then_loop: Some(prompt),
        }
    }

    /// Plays silence.
    pub fn silence() -> Playlist {
        Playlist::default()
    }

    /// Adds a prompt to play once, after the current items.
    pub fn then(mut self, prompt: Prompt) -> Playlist {
        self.items.push(prompt);
        self
    }

    /// Sets what loops after the items.
    pub fn then_loop(mut self, prompt: Prompt) -> Playlist {
        self.then_loop = Some(prompt);
        self
    }
}

/// What the worker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// A peer that should be sending (direction sendrecv or recvonly) sent
    /// nothing for `rtp_timeout`. Reported once per silence.
    RtpTimeout(StreamId),
    /// An RFC 4733 key press, reported once per event (at its first packet).
    /// `digit` is `0`-`9`, `*`, `#`, `A`-`D`, or `!` for flash.
    Dtmf { stream: StreamId, digit: char },
    /// The `items` of the playlist given to [`MediaHandle::play`] have been
    /// played out (the loop or silence starts now). Not sent for a playlist
    /// without items.
    PlaylistDone(StreamId),
}

pub(super) enum Command {
    Add {
        id: StreamId,
        socket: UdpSocket,
        remote: Option<SocketAddr>,
        codec: Codec,
        payload_type: u8,
    },
    Play(StreamId, Playlist),
    SetRemote(StreamId, Option<SocketAddr>),
    SetDirection(StreamId, Direction),
    SetDtmf(StreamId, Option<u8>),
    Remove(StreamId),
}

/// Commands the worker. Cheap to clone; every method returns at once and
/// takes effect within one tick. When the last handle is dropped the worker
/// closes every socket and ends.
#[derive(Clone, Debug)]
pub struct MediaHandle {
    commands: mpsc::Sender<Command>,
    counters: Arc<MediaCounters>,
}

impl MediaHandle {
    /// The worker's packet counters.
    pub fn counters(&self) -> Arc<MediaCounters> {
        self.counters.clone()
    }

    fn send(&self, command: Command) {
        if self.commands.send(command).is_err() {
            tracing::error!("media worker is gone; command dropped");
        }
    }

    /// Starts a stream on a bound socket (see [`PortPool::allocate`](crate::media::PortPool::allocate)).
    /// It sends silence until [`play`](Self::play). With `remote: None` the
    /// peer is learned from the first RTP packet that arrives (symmetric
    /// RTP); with `Some`, packets from any other source are ignored.
    /// Starts `sendrecv`. A second add with the same id replaces the stream.
    pub fn add_stream(
        &self,
        id: StreamId,
        socket: UdpSocket,
        remote: Option<SocketAddr>,
        codec: Codec,
        payload_type: u8,
    ) {
        self.send(Command::Add {
            id,
            socket,
            remote,
            codec,
            payload_type,
        });
    }

    /// Replaces what the stream plays now.
    pub fn play(&self, id: StreamId, playlist: Playlist) {
        self.send(Command::Play(id, playlist));
    }

    /// Changes the peer (re-INVITE). `None` stops sending until a packet
    /// arrives, whose source is then used.
    pub fn set_remote(&self, id: StreamId, remote: Option<SocketAddr>) {
        self.send(Command::SetRemote(id, remote));
    }

    /// Sets what we do: we send in `SendRecv`/`SendOnly`, and watch for RTP
    /// timeout in `SendRecv`/`RecvOnly` (the peer should be sending then).
    pub fn set_direction(&self, id: StreamId, direction: Direction) {
        self.send(Command::SetDirection(id, direction));
    }

    /// The negotiated telephone-event payload type; `None` ignores DTMF.
    pub fn set_dtmf_payload_type(&self, id: StreamId, payload_type: Option<u8>) {
        self.send(Command::SetDtmf(id, payload_type));
    }

    /// Ends the stream and closes its socket; then release the port in the pool.
    pub fn remove_stream(&self, id: StreamId) {
        self.send(Command::Remove(id));
    }
}

/// Spawns the worker thread `zentrale-media` and returns its handle and the
/// event receiver (bounded, [`EVENT_CAPACITY`]).
///
/// # Panics
/// If the OS refuses to create the thread (start-up only).
pub fn start(config: EngineConfig) -> (MediaHandle, tokio::sync::mpsc::Receiver<MediaEvent>) {
    let (commands, command_rx) = mpsc::channel();
    let (events, event_rx) = tokio::sync::mpsc::channel(EVENT_CAPACITY);
    let counters = Arc::new(MediaCounters::default());
    let worker_counters = counters.clone();
    std::thread::Builder::new()
        .name("zentrale-media".into())
        .spawn(move || worker::run(config, command_rx, events, worker_counters))
        .expect("spawning the media thread");
    (MediaHandle { commands, counters }, event_rx)
}

/// RTP packets the worker sent and accepted since start, for the metrics.
#[derive(Debug, Default)]
pub struct MediaCounters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

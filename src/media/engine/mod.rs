//! The media worker: one thread, one 20 ms timer, every stream.
//!
//! The thread waits (`epoll`, through `mio`) for a command, the next tick,
//! and packets on the sockets of bridged streams ([`MediaHandle::bridge`]).
//! Those are read as they arrive, in rounds at most 2 ms apart so a busy
//! worker wakes ~500 times a second rather than once per packet: each
//! packet is rewritten in place and sent on to the partner's peer right
//! away, so the relay adds at most 2 ms of latency and paces nothing
//! itself. Each tick, for every stream that is not bridged, the worker
//! builds the next G.711 frame from pre-encoded prompt bytes, writes the
//! 12-byte header and sends it, then checks for RTP timeouts; every
//! 100 ms it reads what the peer sent meanwhile (DTMF, the learned peer
//! address), a few packets in one system call. A stream's socket is
//! connected to its peer at the first packet it sends, so sending needs no
//! route look-up and the kernel drops strangers' packets.
//!
//! Each stream towards a peer stays one continuous RTP stream whatever
//! feeds it (prompt, music, the other leg): SSRC fixed, sequence +1 per
//! packet, timestamps following real time whether or not we send (see
//! [`relay`](crate::media::relay) for how relayed timestamps are mapped).
//!
//! ```no_run
//! use std::time::Duration;
//! use zentrale::media::engine::{self, EngineConfig, Playlist, StreamId};
//! use zentrale::media::{Codec, PortPool, Prompt};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // SSRCs, sequence numbers and timestamps come from the generator given.
//! let rng = zentrale::rng::SeededRng::from_entropy();
//! let (media, mut events) = engine::start(EngineConfig::default(), rng);
//! let mut pool = PortPool::new(10000, 20000)?;
//! let (port, socket) = pool.allocate("127.0.0.27".parse()?, std::time::Instant::now())?;
//! let id = StreamId(1);
//! media.add_stream(id, socket, Some("127.0.0.21:4000".parse()?), Codec::Pcma, 8);
//! media.set_dtmf_payload_type(id, Some(101));
//! let greeting = Prompt::from_samples("hallo", &[0; 8000]);
//! let music = Prompt::from_samples("musik", &[0; 8000]);
//! media.play(id, Playlist::once(greeting).then_loop(music));
//! // An agent answers: connect the two legs, later put the caller on hold.
//! let (_, agent_socket) = pool.allocate("127.0.0.27".parse()?, std::time::Instant::now())?;
//! let agent = StreamId(2);
//! media.add_stream(agent, agent_socket, Some("127.0.0.50:5000".parse()?), Codec::Pcmu, 0);
//! media.bridge(id, agent);
//! // Hold: music first, then unbridge, so it starts the moment the bridge ends.
//! media.play(id, Playlist::looping(Prompt::from_samples("musik", &[0; 8000])));
//! media.unbridge(agent);
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::codec::Codec;
use super::prompt::Prompt;
use super::sdp::Direction;
use crate::rng::SeededRng;

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
    /// Where a stream's socket goes when the stream is removed, to be used
    /// again ([`PortPool::recycler`](crate::media::PortPool::recycler));
    /// `None` closes it.
    pub recycle: Option<crate::media::ports::Recycler>,
    /// Rung after each event is queued, for a consumer that sleeps in an
    /// epoll of its own rather than in the tokio runtime (the core thread).
    pub wake: Option<Arc<crate::doorbell::Doorbell>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rtp_timeout: Some(Duration::from_secs(60)),
            tick: Duration::from_millis(20),
            recycle: None,
            wake: None,
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
#[derive(Clone, Debug, Default, PartialEq)]
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
    /// A peer that should be sending sent nothing for `rtp_timeout`.
    /// Reported once per silence, and only while the direction is
    /// `sendrecv` (see [`MediaHandle::set_direction`]). The stream stops
    /// sending to that peer then, until it hears from it again: nothing
    /// streams on to an address that has gone silent.
    RtpTimeout(StreamId),
    /// An RFC 4733 key press, reported once per event (at its first packet)
    /// for the stream it came in on, bridged or not.
    /// `digit` is `0`-`9`, `*`, `#`, `A`-`D`, or `!` for flash.
    Dtmf { stream: StreamId, digit: char },
    /// The `items` of the playlist given to [`MediaHandle::play`] have been
    /// played out (the loop or silence starts now). Not sent for a playlist
    /// without items. The playlist pauses while the stream is bridged.
    PlaylistDone(StreamId),
}

pub(super) enum Command {
    Add {
        id: StreamId,
        socket: UdpSocket,
        remote: Option<SocketAddr>,
        codec: Codec,
        payload_type: u8,
        confirmed: bool,
    },
    Confirm(StreamId),
    Play(StreamId, Playlist),
    SetRemote(StreamId, Option<SocketAddr>),
    SetDirection(StreamId, Direction),
    SetDtmf(StreamId, Option<u8>),
    SetSrtp(StreamId, Option<crate::media::srtp::SrtpKeys>),
    Bridge(StreamId, StreamId),
    Unbridge(StreamId),
    Remove(StreamId),
    /// Answered once every command sent before it is applied: tests wait
    /// on it instead of sleeping for a tick that a loaded host may miss.
    #[cfg(test)]
    Barrier(std::sync::mpsc::Sender<()>),
}

/// Commands the worker. Cheap to clone; every method returns at once and
/// takes effect at the worker's next tick (within 20 ms). When the last
/// handle is dropped the worker closes every socket and ends.
#[derive(Clone, Debug)]
pub struct MediaHandle {
    commands: Arc<CommandSender>,
    counters: Arc<MediaCounters>,
}

/// The command channel plus the waker that gets the worker out of its wait.
#[derive(Debug)]
struct CommandSender {
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Command>>,
    waker: mio::Waker,
}

impl CommandSender {
    fn send(&self, command: Command) {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(command).is_ok());
        if !sent {
            tracing::error!("media worker is gone; command dropped");
        }
        // No wake-up: the worker applies commands at its next tick (at most
        // 20 ms later). A wake-up per command cost more CPU per call than
        // all of SIP parsing in the signalling benchmark.
    }
}

impl Drop for CommandSender {
    fn drop(&mut self) {
        // Disconnect first, then wake: the worker sees the channel closed.
        drop(self.tx.take());
        let _ = self.waker.wake();
    }
}

impl MediaHandle {
    /// The worker's packet counters.
    pub fn counters(&self) -> Arc<MediaCounters> {
        self.counters.clone()
    }

    fn send(&self, command: Command) {
        self.commands.send(command);
    }

    /// Starts a stream on a bound, non-blocking socket (as
    /// [`PortPool::allocate`](crate::media::PortPool::allocate) hands them
    /// out; the worker does not switch it, which would cost a system call
    /// per call). It sends silence until [`play`](Self::play). With `remote: None` the
    /// peer is learned from the first RTP packet that arrives (symmetric
    /// RTP); with `Some`, packets from any other source are ignored.
    /// Starts `sendrecv`. A second add with the same id replaces the stream
    /// (and ends its bridge).
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
            confirmed: true,
        });
    }

    /// [`add_stream`](Self::add_stream) for a peer that has not confirmed
    /// it wants our media (a caller whose ACK has not come): the stream
    /// sends nothing until [`confirm`](Self::confirm) or until RTP arrives
    /// from `remote` (or, with `None`, from anywhere, which then becomes
    /// the peer). Its playlist waits meanwhile, so the greeting starts at
    /// the confirmation; the RTP clock runs on. An INVITE naming someone
    /// else's address in its SDP, never ACKed, makes us send nothing there.
    pub fn add_unconfirmed_stream(
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
            confirmed: false,
        });
    }

    /// The peer confirmed the stream (the ACK came): sending starts.
    pub fn confirm(&self, id: StreamId) {
        self.send(Command::Confirm(id));
    }

    /// Replaces what the stream plays now. On a bridged stream the new
    /// playlist waits for [`unbridge`](Self::unbridge).
    pub fn play(&self, id: StreamId, playlist: Playlist) {
        self.send(Command::Play(id, playlist));
    }

    /// Changes the peer (re-INVITE). `None` stops sending until a packet
    /// arrives, whose source is then used.
    pub fn set_remote(&self, id: StreamId, remote: Option<SocketAddr>) {
        self.send(Command::SetRemote(id, remote));
    }

    /// Sets what we do on this stream, as the SDP negotiation decided: we
    /// send (prompts, or relayed media while bridged) only in
    /// `SendRecv`/`SendOnly`.
    ///
    /// RTP timeout is watched only in `SendRecv`. In `RecvOnly` the peer
    /// put us on hold with `a=sendonly`; it should send, but many phones
    /// then send nothing for minutes, and a timeout would end the call
    /// in the middle of a long hold.
    pub fn set_direction(&self, id: StreamId, direction: Direction) {
        self.send(Command::SetDirection(id, direction));
    }

    /// The negotiated telephone-event payload type; `None` ignores DTMF.
    pub fn set_dtmf_payload_type(&self, id: StreamId, payload_type: Option<u8>) {
        self.send(Command::SetDtmf(id, payload_type));
    }

    /// SRTP keys for the stream (SDES), or `None` for plain RTP. From then
    /// on what the peer sends must authenticate with its key (anything
    /// else is dropped, and does not teach the stream a peer address) and
    /// what we send is protected with ours; prompts, music and relayed
    /// media alike, so a plain caller bridged to an SRTP agent works.
    /// The same keys again (a re-INVITE) keep the running contexts.
    pub fn set_srtp(&self, id: StreamId, keys: Option<crate::media::srtp::SrtpKeys>) {
        self.send(Command::SetSrtp(id, keys));
    }

    /// Connects two streams (caller and agent): what `a`'s peer sends goes
    /// to `b`'s peer and back, each side keeping its own SSRC, sequence and
    /// timestamp line, codec (PCMU and PCMA are transcoded) and
    /// telephone-event payload type (events are dropped towards a leg that
    /// negotiated none). A side only sends while its direction
    /// [`sends`](Direction::sends). Packets are relayed as they arrive
    /// (within 2 ms), not on the tick, and keep the source's packet time;
    /// nothing is sent while a source is silent (no comfort noise).
    ///
    /// Both players pause where they are and resume after
    /// [`unbridge`](Self::unbridge), unless [`play`](Self::play) replaces
    /// them. A stream already bridged elsewhere is unbridged from that
    /// partner first, which goes back to its player. DTMF is still reported
    /// per stream.
    pub fn bridge(&self, a: StreamId, b: StreamId) {
        self.send(Command::Bridge(a, b));
    }

    /// Ends the bridge of `id` on both sides; each goes back to its player
    /// with continuous sequence numbers and timestamps and the marker bit on
    /// its first packet. Removing either stream unbridges as well.
    ///
    /// For hold, call `play(caller, moh)` first, then `unbridge`: the music
    /// is then in place when the bridge ends. The other order works too, but
    /// a tick may fall between the two commands and send one frame of the
    /// caller's old playlist first.
    pub fn unbridge(&self, id: StreamId) {
        self.send(Command::Unbridge(id));
    }

    /// Ends the stream and closes its socket; then release the port in the pool.
    pub fn remove_stream(&self, id: StreamId) {
        self.send(Command::Remove(id));
    }

    /// Blocks until the worker has applied every command sent before
    /// (at its next tick), or 5 s passed.
    #[cfg(test)]
    pub(crate) fn applied(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Command::Barrier(tx));
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the media worker applies its commands within 5 s");
    }
}

/// Spawns the worker thread `zentrale-media` and returns its handle and the
/// event receiver (bounded, [`EVENT_CAPACITY`]).
///
/// # Panics
/// If the OS refuses to create the thread or its `epoll` instance
/// (start-up only: out of file descriptors or memory).
/// `rng` draws each stream's SSRC, first sequence number and timestamp:
/// the worker's own generator, forked from the shell's seeded one.
pub fn start(
    config: EngineConfig,
    rng: SeededRng,
) -> (MediaHandle, tokio::sync::mpsc::Receiver<MediaEvent>) {
    let poll = mio::Poll::new().expect("creating the media worker's epoll instance");
    let waker = mio::Waker::new(poll.registry(), worker::WAKE)
        .expect("creating the media worker's wake-up eventfd");
    let (tx, command_rx) = mpsc::channel();
    let (events, event_rx) = tokio::sync::mpsc::channel(EVENT_CAPACITY);
    let counters = Arc::new(MediaCounters::default());
    let worker_counters = counters.clone();
    std::thread::Builder::new()
        .name("zentrale-media".into())
        .spawn(move || worker::run(config, rng, poll, command_rx, events, worker_counters))
        .expect("spawning the media thread");
    let commands = Arc::new(CommandSender {
        tx: Some(tx),
        waker,
    });
    (MediaHandle { commands, counters }, event_rx)
}

/// A handle whose commands reach no worker: nothing is played, relayed
/// or sent, and no [`MediaEvent`] comes. For driving the core in process
/// (the fuzz harness, [`crate::fuzzing`]), which makes up the events a
/// worker would report; [`DetachedMedia`] holds the other end.
#[cfg(any(test, feature = "fuzzing"))]
pub fn detached() -> std::io::Result<(MediaHandle, DetachedMedia)> {
    let poll = mio::Poll::new()?;
    let waker = mio::Waker::new(poll.registry(), worker::WAKE)?;
    let (tx, commands) = mpsc::channel();
    let handle = MediaHandle {
        commands: Arc::new(CommandSender {
            tx: Some(tx),
            waker,
        }),
        counters: Arc::new(MediaCounters::default()),
    };
    Ok((
        handle,
        DetachedMedia {
            commands,
            _poll: poll,
        },
    ))
}

/// The receiving end of a [`detached`] handle.
#[cfg(any(test, feature = "fuzzing"))]
pub struct DetachedMedia {
    commands: mpsc::Receiver<Command>,
    _poll: mio::Poll,
}

#[cfg(any(test, feature = "fuzzing"))]
impl DetachedMedia {
    /// Drops the commands sent since the last call (closing the sockets
    /// they hand over) and returns the streams they added.
    pub fn drain(&mut self) -> Vec<StreamId> {
        self.commands
            .try_iter()
            .filter_map(|c| match c {
                Command::Add { id, .. } => Some(id),
                _ => None,
            })
            .collect()
    }
}

/// RTP packets the worker sent and accepted since start, for the metrics.
/// A relayed packet counts as received on one stream and sent on the other,
/// and once more in `relayed`.
#[derive(Debug, Default)]
pub struct MediaCounters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Packets sent by the relay between bridged streams (part of `sent`).
    pub relayed: AtomicU64,
    /// Packets dropped on SRTP streams: not authentic, or a replay.
    pub srtp_rejected: AtomicU64,
}

impl MediaCounters {
    /// `(sent, received, relayed)` as they stand.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
            self.relayed.load(Ordering::Relaxed),
        )
    }
}

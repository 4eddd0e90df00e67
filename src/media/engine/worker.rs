//! The worker loop: one `epoll` wait for socket readiness, commands and the
//! next 20 ms deadline. Every tick sends each playing stream its frame and
//! checks for RTP timeouts; every [`PLAYING_READ`] it reads what their
//! peers sent (DTMF, the RTP timeout's clock), each stream on its own tick
//! so the reads spread out. Only bridged streams are watched by the poll:
//! their packets are relayed as they arrive, in rounds at least
//! [`READ_ROUND`] apart.
//!
//! Reading the playing streams in batches rather than on readiness saves,
//! per call, the two `epoll_ctl` that watching would cost and, per packet,
//! epoll's bookkeeping, a wake-up and most of a `recvmmsg`; the price is up
//! to 100 ms before a DTMF digit is seen, which no caller notices.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::player::Player;
use super::stream::{Accepted, Stream};
use super::{Command, EngineConfig, MediaCounters, MediaEvent, StreamId};
use crate::media::ports::Recycler;
use crate::media::relay::{LegFormat, OutboundRtp};
use crate::media::rtp::HEADER_LEN;
use crate::rng::SeededRng;
use crate::udp::Inbox;

/// The token of the [`mio::Waker`] that announces commands. Stream sockets
/// use their slot number, which never gets near this.
pub(super) const WAKE: Token = Token(usize::MAX);

/// Up to this many missed ticks are caught up by sending the frames back to
/// back (a jitter buffer absorbs that); beyond it we skip and resync.
const MAX_CATCH_UP: u64 = 3;

/// Large enough for any RTP packet a peer sends us over UDP without
/// fragmentation games; longer datagrams are dropped.
const RECV_BUF: usize = 2048;

/// Datagrams taken from one socket per read (`recvmmsg`). A stream brings
/// one packet per 20 ms, so a read usually returns one, and returning
/// fewer than this proves the socket empty without a second read.
const READ_SLOTS: usize = 8;

/// At most this many datagrams are read from one socket before the others
/// get their turn, so one flooding peer cannot starve the rest; the socket
/// is read again in the next round.
const MAX_READS_PER_ROUND: usize = 32;

/// How often the streams that are not bridged are read: a peer's five
/// 20 ms packets come in one `recvmmsg` (of [`READ_SLOTS`]), and a DTMF
/// digit, whose packets span 40 ms and more, is seen within this long.
pub(super) const PLAYING_READ: Duration = Duration::from_millis(100);

/// Readiness events taken per wait; more simply wait for the next round.
const EVENTS_PER_WAIT: usize = 256;

/// After reading, the worker waits this long before it reads again, so a
/// busy worker wakes about 500 times a second with many packets each time
/// instead of once per packet. Waking per packet cost 40 % more CPU per
/// packet than the old once-per-tick reads (benches/media_relay.rs); this
/// keeps the relay's added latency at 2 ms at most instead of a tick's 20.
pub(super) const READ_ROUND: Duration = Duration::from_millis(2);

/// Packet counts since the last tick; added to [`MediaCounters`] once per
/// tick, not per packet.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub sent: u64,
    pub received: u64,
    pub relayed: u64,
    /// SRTP packets that failed authentication or replay checks.
    pub srtp_rejected: u64,
}

fn tick_of(config: &EngineConfig) -> Duration {
    let ms = config.tick.as_millis();
    if config.tick.subsec_nanos().is_multiple_of(1_000_000) && (10..=60).contains(&ms) {
        config.tick
    } else {
        tracing::warn!(tick = ?config.tick, "media tick must be 10-60 whole ms; using 20 ms");
        Duration::from_millis(20)
    }
}

/// Every stream, in slots whose number is also the socket's poll token, so
/// a readiness event finds its stream without hashing and a bridge names its
/// partner by slot.
#[derive(Default)]
struct Streams {
    slots: Vec<Option<Stream>>,
    free: Vec<usize>,
    by_id: HashMap<StreamId, usize>,
}

impl Streams {
    fn slot_of(&self, id: StreamId) -> Option<usize> {
        let found = self.by_id.get(&id).copied();
        if found.is_none() {
            // Commands for a stream already removed race harmlessly with hangup.
            tracing::debug!(stream = id.0, "media command for unknown stream");
        }
        found
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut Stream> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    fn find(&mut self, id: StreamId) -> Option<&mut Stream> {
        let slot = self.slot_of(id)?;
        self.get_mut(slot)
    }

    fn insert(&mut self, stream: Stream) -> usize {
        let id = stream.id;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(stream);
                slot
            }
            None => {
                self.slots.push(Some(stream));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    fn remove(&mut self, slot: usize) -> Option<Stream> {
        let stream = self.slots.get_mut(slot)?.take()?;
        self.by_id.remove(&stream.id);
        self.free.push(slot);
        Some(stream)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.slots.iter_mut().flatten()
    }

    /// Ends the bridge of the stream in `slot`, on both sides; neither is
    /// watched any more.
    fn unbridge(&mut self, slot: usize, registry: &Registry) {
        let Some(partner) = self.get_mut(slot).and_then(Stream::unbridge) else {
            return;
        };
        for s in [slot, partner] {
            if let Some(stream) = self.get_mut(s) {
                stream.unbridge();
                watch(stream, registry, s, false);
            }
        }
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }
}

pub(super) fn run(
    config: EngineConfig,
    mut rng: SeededRng,
    mut poll: Poll,
    commands: Receiver<Command>,
    events: Sender<MediaEvent>,
    counters: Arc<MediaCounters>,
) {
    let tick = tick_of(&config);
    let tick_ns = tick.as_nanos() as u64;
    let samples_per_tick = (tick.as_millis() * 8) as u32;
    let read_every = (PLAYING_READ.as_nanos() as u64 / tick_ns).max(1);
    let mut streams = Streams::default();
    let mut send_buf = vec![0u8; HEADER_LEN + samples_per_tick as usize];
    let mut ready = Events::with_capacity(EVENTS_PER_WAIT);
    // Sockets that hit MAX_READS_PER_ROUND: edge-triggered readiness will
    // not tell us again, so we come back to them ourselves.
    let mut more: Vec<usize> = Vec::new();
    let wake = config.wake.clone();
    let emit = move |event: MediaEvent| match events.try_send(event) {
        Ok(()) => {
            if let Some(bell) = &wake {
                bell.ring();
            }
        }
        Err(TrySendError::Full(event)) => {
            tracing::warn!(?event, "media event channel full; event dropped");
        }
        // Nobody listens any more (shutdown); commands decide when we stop.
        Err(TrySendError::Closed(_)) => {}
    };
    let mut reader = Reader {
        inbox: Inbox::new(READ_SLOTS, RECV_BUF),
        emit,
        tally: Tally::default(),
    };

    let start = Instant::now();
    // Ticks handled so far; tick n is due at start + n * tick.
    let mut done: u64 = 0;
    // No socket is read before this (see READ_ROUND).
    let mut next_round = start;
    tracing::debug!(?tick, "media worker started");
    loop {
        let deadline = start + Duration::from_nanos(tick_ns.saturating_mul(done + 1));
        let now = Instant::now();
        if now < next_round.min(deadline) {
            // Let packets gather. A flooding socket waits too: at most
            // MAX_READS_PER_ROUND per round, the kernel drops the rest.
            std::thread::sleep(next_round.min(deadline) - now);
            continue;
        }
        if now < deadline {
            let wait = if more.is_empty() {
                deadline - now
            } else {
                Duration::ZERO
            };
            if let Err(e) = poll.poll(&mut ready, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    // Not expected from epoll_wait with valid arguments;
                    // sleep rather than spin, the tick still goes out.
                    tracing::error!(error = %e, "media poll failed");
                    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                }
                continue;
            }
            let now = Instant::now();
            let mut woken = false;
            // Sockets left from the previous round go after the fresh ones.
            let again = more.len();
            let mut read_any = again > 0;
            for event in ready.iter() {
                match event.token() {
                    WAKE => woken = true,
                    Token(slot) => {
                        read_any = true;
                        if reader.drain(&mut streams, slot, now) {
                            more.push(slot);
                        }
                    }
                }
            }
            for i in 0..again {
                let slot = more[i];
                if reader.drain(&mut streams, slot, now) {
                    more.push(slot);
                }
            }
            more.drain(..again);
            if read_any {
                next_round = now + READ_ROUND;
            }
            if woken
                && !apply_all(
                    &commands,
                    &mut streams,
                    &poll,
                    now,
                    config.recycle.as_ref(),
                    &mut reader,
                    &mut rng,
                )
            {
                return;
            }
            continue;
        }

        // Commands also come in here, so a lost wake-up costs a tick at most.
        if !apply_all(
            &commands,
            &mut streams,
            &poll,
            now,
            config.recycle.as_ref(),
            &mut reader,
            &mut rng,
        ) {
            return;
        }
        // What the unwatched streams' peers sent since their last read, a
        // slot's turn every `read_every` ticks. A socket holding more than
        // a round's worth keeps the rest for its next turn.
        for slot in 0..streams.slots.len() {
            let turn = (done + slot as u64).is_multiple_of(read_every);
            if turn && streams.get_mut(slot).is_some_and(|s| !s.watched) {
                reader.drain(&mut streams, slot, now);
            }
        }
        let due = (now.duration_since(start).as_nanos() as u64 / tick_ns)
            .saturating_sub(done)
            .max(1);
        let (frames, skipped) = if due <= MAX_CATCH_UP {
            (due, 0)
        } else {
            (1, due - 1)
        };
        if skipped > 0 {
            tracing::warn!(skipped, "media worker late; resyncing instead of bursting");
        }
        for stream in streams.iter_mut() {
            if skipped > 0 {
                stream.skip_ticks(skipped, samples_per_tick);
            }
            for _ in 0..frames {
                stream.send_frame(
                    &mut send_buf,
                    samples_per_tick,
                    &mut reader.emit,
                    &mut reader.tally,
                );
            }
            if let Some(timeout) = config.rtp_timeout {
                stream.check_timeout(now, timeout, &mut reader.emit);
            }
        }
        // One atomic add per tick, not per packet.
        let Tally {
            sent,
            received,
            relayed,
            srtp_rejected,
        } = std::mem::take(&mut reader.tally);
        counters.sent.fetch_add(sent, Ordering::Relaxed);
        counters.received.fetch_add(received, Ordering::Relaxed);
        counters.relayed.fetch_add(relayed, Ordering::Relaxed);
        if srtp_rejected > 0 {
            counters
                .srtp_rejected
                .fetch_add(srtp_rejected, Ordering::Relaxed);
        }
        done += due;
    }
}

/// What reading a stream's socket needs besides the streams: the buffers,
/// where events go and the packet counts.
struct Reader<E> {
    inbox: Inbox,
    emit: E,
    tally: Tally,
}

impl<E: FnMut(MediaEvent)> Reader<E> {
    /// Reads what the socket in `slot` holds, relaying to the partner if
    /// bridged. True if it stopped at [`MAX_READS_PER_ROUND`] with maybe more.
    fn drain(&mut self, streams: &mut Streams, slot: usize, now: Instant) -> bool {
        let Reader { inbox, emit, tally } = self;
        let mut taken = 0;
        while taken < MAX_READS_PER_ROUND {
            // A stale event for a slot removed in this round finds nothing.
            let Some(stream) = streams.get_mut(slot) else {
                return false;
            };
            taken += READ_SLOTS;
            let empty = match inbox.read(stream.socket()) {
                Ok(empty) => empty,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                // Queued ICMP errors of earlier sends; the next read may have data.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused
                            | ErrorKind::ConnectionReset
                            | ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::warn!(stream = stream.id.0, error = %e, "RTP receive failed");
                    return false;
                }
            };
            for i in 0..inbox.len() {
                let Some(stream) = streams.get_mut(slot) else {
                    return false;
                };
                let (packet, source) = inbox.datagram_mut(i);
                let Some(len) = stream.unprotect(packet) else {
                    tally.srtp_rejected += 1;
                    continue;
                };
                let packet = &mut packet[..len];
                let Some(Accepted { header, payload }) =
                    stream.accept(packet, source, now, emit, tally)
                else {
                    continue;
                };
                let (Some(partner), from) = (stream.partner(), stream.format()) else {
                    continue;
                };
                if let Some(dest) = streams.get_mut(partner) {
                    dest.relay(packet, header, payload, &from, now, tally);
                }
            }
            if empty {
                return false;
            }
        }
        true
    }
}

/// Applies every queued command; false once every handle is gone.
fn apply_all(
    commands: &Receiver<Command>,
    streams: &mut Streams,
    poll: &Poll,
    now: Instant,
    recycle: Option<&Recycler>,
    reader: &mut Reader<impl FnMut(MediaEvent)>,
    rng: &mut SeededRng,
) -> bool {
    loop {
        match commands.try_recv() {
            Ok(command) => apply(streams, poll, command, now, recycle, reader, rng),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => {
                tracing::debug!(streams = streams.len(), "media worker stopping");
                return false;
            }
        }
    }
}

fn apply(
    streams: &mut Streams,
    poll: &Poll,
    command: Command,
    now: Instant,
    recycle: Option<&Recycler>,
    reader: &mut Reader<impl FnMut(MediaEvent)>,
    rng: &mut SeededRng,
) {
    match command {
        Command::Add {
            id,
            socket,
            remote,
            codec,
            payload_type,
            confirmed,
        } => {
            if let Some(slot) = streams.by_id.get(&id).copied() {
                tracing::warn!(stream = id.0, "media stream added twice; replaced");
                remove(streams, poll, slot, recycle);
            }
            // A blocking socket would stall every stream at its first full
            // send buffer; `add_stream` asks for a non-blocking one.
            debug_assert!(
                is_nonblocking(&socket),
                "stream {} added with a blocking socket",
                id.0
            );
            let format = LegFormat {
                codec,
                payload_type,
                dtmf_payload_type: None,
            };
            let socket = mio::net::UdpSocket::from_std(socket);
            let out = OutboundRtp::random(rng);
            streams.insert(Stream::new(id, socket, remote, format, out, confirmed, now));
        }
        Command::Confirm(id) => {
            if let Some(s) = streams.find(id) {
                s.confirm();
            }
        }
        Command::Play(id, playlist) => {
            if let Some(s) = streams.find(id) {
                s.play(Player::new(playlist));
            }
        }
        Command::SetRemote(id, remote) => {
            if let Some(s) = streams.find(id) {
                s.set_remote(remote, now);
            }
        }
        Command::SetDirection(id, direction) => {
            if let Some(s) = streams.find(id) {
                s.set_direction(direction, now);
            }
        }
        Command::SetDtmf(id, pt) => {
            if let Some(s) = streams.find(id) {
                s.set_dtmf_payload_type(pt);
            }
        }
        Command::SetSrtp(id, keys) => {
            if let Some(s) = streams.find(id) {
                s.set_srtp(keys);
            }
        }
        Command::Bridge(a, b) => {
            if a == b {
                tracing::warn!(stream = a.0, "media stream bridged with itself; ignored");
                return;
            }
            let (Some(sa), Some(sb)) = (streams.slot_of(a), streams.slot_of(b)) else {
                return;
            };
            if streams.get_mut(sa).and_then(|s| s.partner()) == Some(sb) {
                return;
            }
            // Whoever either side was bridged to goes back to its player.
            streams.unbridge(sa, poll.registry());
            streams.unbridge(sb, poll.registry());
            for (slot, partner) in [(sa, sb), (sb, sa)] {
                // What came before the bridge is not for the partner (an
                // agent's words on hold): read it unbridged, relaying nothing.
                reader.drain(streams, slot, now);
                if let Some(s) = streams.get_mut(slot) {
                    s.bridge(partner);
                    watch(s, poll.registry(), slot, true);
                }
            }
            tracing::debug!(a = a.0, b = b.0, "media streams bridged");
        }
        Command::Unbridge(id) => {
            if let Some(slot) = streams.slot_of(id) {
                streams.unbridge(slot, poll.registry());
            }
        }
        Command::Remove(id) => {
            if let Some(slot) = streams.slot_of(id) {
                remove(streams, poll, slot, recycle);
            }
        }
        #[cfg(test)]
        Command::Barrier(done) => {
            let _ = done.send(());
        }
    }
}

/// Debug builds only (`debug_assert!`): one `fcntl` per stream.
fn is_nonblocking(socket: &std::net::UdpSocket) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL only reads the flags of a descriptor the socket owns.
    let flags = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_GETFL) };
    flags >= 0 && flags & libc::O_NONBLOCK != 0
}

fn remove(streams: &mut Streams, poll: &Poll, slot: usize, recycle: Option<&Recycler>) {
    // The partner goes back to its player (the daemon plays it something),
    // and neither socket is watched any more.
    streams.unbridge(slot, poll.registry());
    if let Some(mut s) = streams.remove(slot) {
        // Only if the unbridge could not deregister it: the pool must not
        // get a socket that still wakes us.
        watch(&mut s, poll.registry(), slot, false);
        tracing::debug!(
            stream = s.id.0,
            sent = s.packets_sent,
            received = s.packets_received,
            "media stream removed"
        );
        if let Some(recycle) = recycle {
            recycle.give_back(s.into_socket());
        }
    }
}

/// Starts or stops watching the stream's socket in the poll. Closing the
/// socket would end the registration too; deregistering first keeps
/// epoll's view exact even if the descriptor lived on (the pool keeps it).
fn watch(stream: &mut Stream, registry: &Registry, slot: usize, on: bool) {
    if stream.watched == on {
        return;
    }
    let result = if on {
        registry.register(stream.socket_mut(), Token(slot), Interest::READABLE)
    } else {
        registry.deregister(stream.socket_mut())
    };
    match result {
        Ok(()) => stream.watched = on,
        // Unwatched, it is still read every tick: the relay is late, not lost.
        Err(e) => {
            tracing::error!(stream = stream.id.0, error = %e, on, "RTP socket watch not changed")
        }
    }
}

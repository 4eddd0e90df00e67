//! The worker loop: absolute 20 ms deadlines, commands applied as they
//! arrive, one pass over all streams per tick.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::player::Player;
use super::stream::Stream;
use super::{Command, EngineConfig, MediaCounters, MediaEvent, StreamId};
use crate::media::rtp::HEADER_LEN;

/// Up to this many missed ticks are caught up by sending the frames back to
/// back (a jitter buffer absorbs that); beyond it we skip and resync.
const MAX_CATCH_UP: u64 = 3;

/// Large enough for any RTP packet a peer sends us over UDP without
/// fragmentation games; longer datagrams are truncated and then ignored.
const RECV_BUF: usize = 2048;

fn tick_of(config: &EngineConfig) -> Duration {
    let ms = config.tick.as_millis();
    if config.tick.subsec_nanos().is_multiple_of(1_000_000) && (10..=60).contains(&ms) {
        config.tick
    } else {
        tracing::warn!(tick = ?config.tick, "media tick must be 10-60 whole ms; using 20 ms");
        Duration::from_millis(20)
    }
}

pub(super) fn run(
    config: EngineConfig,
    commands: Receiver<Command>,
    events: Sender<MediaEvent>,
    counters: Arc<MediaCounters>,
) {
    let tick = tick_of(&config);
    let tick_ns = tick.as_nanos() as u64;
    let samples_per_tick = (tick.as_millis() * 8) as u32;
    let mut streams: HashMap<u64, Stream> = HashMap::new();
    let mut send_buf = vec![0u8; HEADER_LEN + samples_per_tick as usize];
    let mut recv_buf = vec![0u8; RECV_BUF];
    let mut emit = |event: MediaEvent| match events.try_send(event) {
        Ok(()) => {}
        Err(TrySendError::Full(event)) => {
            tracing::warn!(?event, "media event channel full; event dropped");
        }
        // Nobody listens any more (shutdown); commands decide when we stop.
        Err(TrySendError::Closed(_)) => {}
    };

    let start = Instant::now();
    // Ticks handled so far; tick n is due at start + n * tick.
    let mut done: u64 = 0;
    tracing::debug!(?tick, "media worker started");
    loop {
        let deadline = start + Duration::from_nanos(tick_ns.saturating_mul(done + 1));
        // Commands wait for the tick instead of waking the worker: a wake-up
        // per command cost more CPU per call than all of SIP parsing, and
        // every command only has to take effect within one tick.
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let now = Instant::now();
        loop {
            match commands.try_recv() {
                Ok(command) => apply(&mut streams, command, now),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    tracing::debug!(streams = streams.len(), "media worker stopping");
                    return;
                }
            }
        }

        let now = Instant::now();
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
        let (mut sent, mut received) = (0, 0);
        for stream in streams.values_mut() {
            let before = (stream.packets_sent, stream.packets_received);
            if skipped > 0 {
                stream.skip_ticks(skipped, samples_per_tick);
            }
            for _ in 0..frames {
                stream.send_frame(&mut send_buf, samples_per_tick, &mut emit);
            }
            stream.receive(&mut recv_buf, now, &mut emit);
            if let Some(timeout) = config.rtp_timeout {
                stream.check_timeout(now, timeout, &mut emit);
            }
            sent += stream.packets_sent - before.0;
            received += stream.packets_received - before.1;
        }
        // One atomic add per tick, not per packet.
        counters.sent.fetch_add(sent, Ordering::Relaxed);
        counters.received.fetch_add(received, Ordering::Relaxed);
        done += due;
    }
}

fn apply(streams: &mut HashMap<u64, Stream>, command: Command, now: Instant) {
    match command {
        Command::Add {
            id,
            socket,
            remote,
            codec,
            payload_type,
        } => {
            let stream = Stream::new(id, socket, remote, codec, payload_type, now);
            if streams.insert(id.0, stream).is_some() {
                tracing::warn!(stream = id.0, "media stream added twice; replaced");
            }
        }
        Command::Play(id, playlist) => {
            if let Some(s) = find(streams, id) {
                s.play(Player::new(playlist));
            }
        }
        Command::SetRemote(id, remote) => {
            if let Some(s) = find(streams, id) {
                s.set_remote(remote, now);
            }
        }
        Command::SetDirection(id, direction) => {
            if let Some(s) = find(streams, id) {
                s.set_direction(direction, now);
            }
        }
        Command::SetDtmf(id, pt) => {
            if let Some(s) = find(streams, id) {
                s.set_dtmf_payload_type(pt);
            }
        }
        Command::Remove(id) => {
            if let Some(s) = streams.remove(&id.0) {
                tracing::debug!(
                    stream = id.0,
                    sent = s.packets_sent,
                    received = s.packets_received,
                    "media stream removed"
                );
            }
        }
    }
}

fn find(streams: &mut HashMap<u64, Stream>, id: StreamId) -> Option<&mut Stream> {
    let found = streams.get_mut(&id.0);
    if found.is_none() {
        // Commands for a stream already removed race harmlessly with hangup.
        tracing::debug!(stream = id.0, "media command for unknown stream");
    }
    found
}

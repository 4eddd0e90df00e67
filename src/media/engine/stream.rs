//! One RTP stream as the worker sees it: its socket, its header state and
//! its player. Everything here runs on the worker thread.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::player::{Player, Progress};
use super::{MediaEvent, StreamId};
use crate::media::codec::Codec;
use crate::media::rtp::{self, HEADER_LEN, RtpHeader, TelephoneEvent};
use crate::media::sdp::Direction;

/// At most this many datagrams are read per stream and tick, so one flooding
/// peer cannot starve the others; the rest waits for the next tick.
const MAX_READS_PER_TICK: usize = 32;

pub(super) struct Stream {
    pub id: StreamId,
    socket: UdpSocket,
    remote: Option<SocketAddr>,
    codec: Codec,
    payload_type: u8,
    dtmf_payload_type: Option<u8>,
    direction: Direction,
    ssrc: u32,
    sequence: u16,
    /// Timestamp of the next frame; moves with the clock, sent or not.
    timestamp: u32,
    was_sending: bool,
    player: Player,
    last_receive: Instant,
    timeout_reported: bool,
    /// (RTP timestamp, event code) of the last DTMF reported.
    last_event: Option<(u32, u8)>,
    send_error_logged: bool,
    pub packets_sent: u64,
    pub packets_received: u64,
}

impl Stream {
    pub(super) fn new(
        id: StreamId,
        socket: UdpSocket,
        remote: Option<SocketAddr>,
        codec: Codec,
        payload_type: u8,
        now: Instant,
    ) -> Stream {
        Stream {
            id,
            socket,
            remote,
            codec,
            payload_type,
            dtmf_payload_type: None,
            direction: Direction::SendRecv,
            // RFC 3550 §5.1: random SSRC, sequence and timestamp starts.
            ssrc: rand::random(),
            sequence: rand::random(),
            timestamp: rand::random(),
            was_sending: false,
            player: Player::silence(),
            last_receive: now,
            timeout_reported: false,
            last_event: None,
            send_error_logged: false,
            packets_sent: 0,
            packets_received: 0,
        }
    }

    pub(super) fn play(&mut self, player: Player) {
        self.player = player;
    }

    pub(super) fn set_remote(&mut self, remote: Option<SocketAddr>, now: Instant) {
        self.remote = remote;
        self.last_receive = now;
        self.timeout_reported = false;
    }

    pub(super) fn set_direction(&mut self, direction: Direction, now: Instant) {
        if direction.receives() && !self.direction.receives() {
            // The silence watch starts when we start expecting packets.
            self.last_receive = now;
            self.timeout_reported = false;
        }
        self.direction = direction;
    }

    pub(super) fn set_dtmf_payload_type(&mut self, pt: Option<u8>) {
        self.dtmf_payload_type = pt;
    }

    /// Moves the clock over ticks that were skipped (worker was late), so
    /// timestamps keep following real time.
    pub(super) fn skip_ticks(&mut self, ticks: u64, samples_per_tick: u32) {
        let advance = (ticks as u32).wrapping_mul(samples_per_tick);
        self.timestamp = self.timestamp.wrapping_add(advance);
    }

    /// Produces one frame and sends it if we send. `buf` must hold the
    /// header plus `samples_per_tick` bytes.
    pub(super) fn send_frame(
        &mut self,
        buf: &mut [u8],
        samples_per_tick: u32,
        emit: &mut impl FnMut(MediaEvent),
    ) {
        let frame_end = HEADER_LEN + samples_per_tick as usize;
        // The playlist runs in real time even on hold, so prompt lengths
        // stay a reliable clock for the call logic.
        if self
            .player
            .fill(self.codec, &mut buf[HEADER_LEN..frame_end])
            == Progress::ItemsDone
        {
            emit(MediaEvent::PlaylistDone(self.id));
        }
        let sending = self.direction.sends() && self.remote.is_some();
        if let (true, Some(remote)) = (sending, self.remote) {
            RtpHeader {
                // RFC 3551 §4.1: marker on the first packet after silence.
                marker: !self.was_sending,
                payload_type: self.payload_type,
                sequence: self.sequence,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
            }
            .write(buf);
            self.sequence = self.sequence.wrapping_add(1);
            self.packets_sent += 1;
            if let Err(e) = self.socket.send_to(&buf[..frame_end], remote) {
                // ICMP port unreachable shows up here as ConnectionRefused;
                // the peer may come back (re-INVITE), so keep going.
                if !self.send_error_logged {
                    tracing::debug!(stream = self.id.0, %remote, error = %e, "RTP send failed");
                    self.send_error_logged = true;
                }
            }
        }
        self.was_sending = sending;
        self.timestamp = self.timestamp.wrapping_add(samples_per_tick);
    }

    /// Reads what arrived, learns the peer address if we have none, and
    /// reports DTMF.
    pub(super) fn receive(
        &mut self,
        buf: &mut [u8],
        now: Instant,
        emit: &mut impl FnMut(MediaEvent),
    ) {
        for _ in 0..MAX_READS_PER_TICK {
            let (len, source) = match self.socket.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
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
                    tracing::warn!(stream = self.id.0, error = %e, "RTP receive failed");
                    return;
                }
            };
            let Some(packet) = rtp::parse(&buf[..len]) else {
                continue;
            };
            match self.remote {
                // Symmetric RTP (RFC 4961): send back to where the peer sends from.
                None => {
                    tracing::debug!(stream = self.id.0, %source, "RTP peer learned");
                    self.remote = Some(source);
                }
                // Never follow another source mid-call: that is how media
                // gets hijacked. Re-INVITEs change the peer via set_remote.
                Some(remote) if remote != source => continue,
                Some(_) => {}
            }
            self.packets_received += 1;
            self.last_receive = now;
            self.timeout_reported = false;
            if Some(packet.header.payload_type) == self.dtmf_payload_type {
                self.on_telephone_event(packet.header.timestamp, packet.payload, emit);
            }
        }
    }

    /// RFC 4733: all packets of one event share its timestamp, and the end
    /// packet is sent three times; report each event once, at its first packet.
    fn on_telephone_event(
        &mut self,
        timestamp: u32,
        payload: &[u8],
        emit: &mut impl FnMut(MediaEvent),
    ) {
        let Some(event) = TelephoneEvent::parse(payload) else {
            return;
        };
        let key = (timestamp, event.event);
        if self.last_event == Some(key) {
            return;
        }
        self.last_event = Some(key);
        if let Some(digit) = event.digit() {
            emit(MediaEvent::Dtmf {
                stream: self.id,
                digit,
            });
        }
    }

    /// Reports silence from a peer that should be sending, once per silence.
    pub(super) fn check_timeout(
        &mut self,
        now: Instant,
        timeout: Duration,
        emit: &mut impl FnMut(MediaEvent),
    ) {
        if self.direction.receives()
            && !self.timeout_reported
            && now.saturating_duration_since(self.last_receive) >= timeout
        {
            self.timeout_reported = true;
            emit(MediaEvent::RtpTimeout(self.id));
        }
    }
}

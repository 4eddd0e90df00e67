//! One RTP stream as the worker sees it: its socket, its outbound header
//! state, its player and, while bridged, the relay that feeds it from the
//! partner leg. Everything here runs on the worker thread.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;

use super::player::{Player, Progress};
use super::worker::Tally;
use super::{MediaEvent, StreamId};
use crate::media::relay::{LegFormat, OutboundRtp, Relay};
use crate::media::rtp::{self, HEADER_LEN, RtpHeader, TelephoneEvent};
use crate::media::sdp::Direction;

/// The partner of a bridged stream, and how its packets become ours.
struct Bridge {
    /// The partner's slot in the worker's table.
    partner: usize,
    /// Maps the partner's packets onto the stream we send our peer.
    relay: Relay,
}

/// An RTP packet from a stream's peer: its header and where its payload is.
pub(super) struct Accepted {
    pub header: RtpHeader,
    pub payload: Range<usize>,
}

pub(super) struct Stream {
    pub id: StreamId,
    socket: UdpSocket,
    remote: Option<SocketAddr>,
    format: LegFormat,
    direction: Direction,
    out: OutboundRtp,
    /// Whether the player's last frame was sent (for its marker bit).
    was_sending: bool,
    player: Player,
    bridge: Option<Bridge>,
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
        format: LegFormat,
        now: Instant,
    ) -> Stream {
        Stream {
            id,
            socket,
            remote,
            format,
            direction: Direction::SendRecv,
            out: OutboundRtp::random(),
            was_sending: false,
            player: Player::silence(),
            bridge: None,
            last_receive: now,
            timeout_reported: false,
            last_event: None,
            send_error_logged: false,
            packets_sent: 0,
            packets_received: 0,
        }
    }

    pub(super) fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    pub(super) fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// The socket back as a standard one, for its pool.
    pub(super) fn into_socket(self) -> std::net::UdpSocket {
        std::net::UdpSocket::from(std::os::fd::OwnedFd::from(self.socket))
    }

    pub(super) fn format(&self) -> LegFormat {
        self.format
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
        if direction == Direction::SendRecv && self.direction != Direction::SendRecv {
            // The silence watch starts when we start expecting packets.
            self.last_receive = now;
            self.timeout_reported = false;
        }
        self.direction = direction;
    }

    pub(super) fn set_dtmf_payload_type(&mut self, pt: Option<u8>) {
        self.format.dtmf_payload_type = pt;
    }

    /// The partner's slot while bridged.
    pub(super) fn partner(&self) -> Option<usize> {
        self.bridge.as_ref().map(|b| b.partner)
    }

    /// Starts taking media from the stream in slot `partner` instead of the
    /// player, which pauses where it is.
    pub(super) fn bridge(&mut self, partner: usize) {
        self.bridge = Some(Bridge {
            partner,
            relay: Relay::new(),
        });
    }

    /// Ends the bridge; the player resumes on the next tick, after whatever
    /// the relay sent and with the marker bit. Returns the partner's slot.
    pub(super) fn unbridge(&mut self) -> Option<usize> {
        let bridge = self.bridge.take()?;
        self.out.resume();
        self.was_sending = false;
        Some(bridge.partner)
    }

    /// Moves the clock over ticks that were skipped (worker was late), so
    /// timestamps keep following real time.
    pub(super) fn skip_ticks(&mut self, ticks: u64, samples_per_tick: u32) {
        self.out
            .advance((ticks as u32).wrapping_mul(samples_per_tick));
    }

    /// One tick: the player produces a frame and it is sent if we send; a
    /// bridged stream only moves its clock. `buf` must hold the header plus
    /// `samples_per_tick` bytes.
    pub(super) fn send_frame(
        &mut self,
        buf: &mut [u8],
        samples_per_tick: u32,
        emit: &mut impl FnMut(MediaEvent),
        tally: &mut Tally,
    ) {
        if self.bridge.is_some() {
            self.out.advance(samples_per_tick);
            return;
        }
        let frame_end = HEADER_LEN + samples_per_tick as usize;
        // The playlist runs in real time even on hold, so prompt lengths
        // stay a reliable clock for the call logic.
        if self
            .player
            .fill(self.format.codec, &mut buf[HEADER_LEN..frame_end])
            == Progress::ItemsDone
        {
            emit(MediaEvent::PlaylistDone(self.id));
        }
        let remote = self.remote.filter(|_| self.direction.sends());
        if let Some(remote) = remote {
            let timestamp = self.out.clock;
            // RFC 3551 §4.1: marker on the first packet after silence.
            self.out
                .next_header(
                    !self.was_sending,
                    self.format.payload_type,
                    timestamp,
                    samples_per_tick,
                )
                .write(buf);
            self.send(&buf[..frame_end], remote, tally);
        }
        self.was_sending = remote.is_some();
        self.out.advance(samples_per_tick);
    }

    /// Relays a packet of the partner (`from` is its format) to our peer.
    /// `datagram` is rewritten in place.
    pub(super) fn relay(
        &mut self,
        datagram: &mut [u8],
        header: RtpHeader,
        payload: Range<usize>,
        from: &LegFormat,
        now: Instant,
        tally: &mut Tally,
    ) {
        let Some(bridge) = &mut self.bridge else {
            return;
        };
        // Hold: we send our peer nothing while our direction says so.
        let Some(remote) = self.remote.filter(|_| self.direction.sends()) else {
            bridge.relay.pause();
            return;
        };
        if let Some(range) = bridge.relay.rewrite(
            datagram,
            header,
            payload,
            from,
            &self.format,
            &mut self.out,
            now,
        ) {
            tally.relayed += 1;
            self.send(&datagram[range], remote, tally);
        }
    }

    fn send(&mut self, packet: &[u8], remote: SocketAddr, tally: &mut Tally) {
        self.packets_sent += 1;
        tally.sent += 1;
        if let Err(e) = self.socket.send_to(packet, remote) {
            // ICMP port unreachable shows up here as ConnectionRefused, and
            // a full socket buffer as WouldBlock (the packet is lost, as it
            // would be on the wire); the peer may come back, so keep going.
            if !self.send_error_logged {
                tracing::debug!(stream = self.id.0, %remote, error = %e, "RTP send failed");
                self.send_error_logged = true;
            }
        }
    }

    /// Takes one datagram read from this stream's socket: learns the peer
    /// address if we have none, and reports DTMF. `None` for a datagram
    /// that is not for us (not RTP, or a stranger's).
    pub(super) fn accept(
        &mut self,
        buf: &[u8],
        source: SocketAddr,
        now: Instant,
        emit: &mut impl FnMut(MediaEvent),
        tally: &mut Tally,
    ) -> Option<Accepted> {
        let (header, payload) = rtp::parse_in_place(buf)?;
        match self.remote {
            // Symmetric RTP (RFC 4961): send back to where the peer sends from.
            None => {
                tracing::debug!(stream = self.id.0, %source, "RTP peer learned");
                self.remote = Some(source);
            }
            // Never follow another source mid-call: that is how media
            // gets hijacked. Re-INVITEs change the peer via set_remote.
            Some(remote) if remote != source => return None,
            Some(_) => {}
        }
        self.packets_received += 1;
        tally.received += 1;
        self.last_receive = now;
        self.timeout_reported = false;
        if Some(header.payload_type) == self.format.dtmf_payload_type {
            self.on_telephone_event(header.timestamp, &buf[payload.clone()], emit);
        }
        Some(Accepted { header, payload })
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
    ///
    /// Only in `SendRecv`: in `RecvOnly` the peer has put us on hold
    /// (`a=sendonly`), and holding phones often send nothing at all for
    /// minutes — watching then would end long holds. In `SendOnly` and
    /// `Inactive` the peer is not supposed to send.
    pub(super) fn check_timeout(
        &mut self,
        now: Instant,
        timeout: Duration,
        emit: &mut impl FnMut(MediaEvent),
    ) {
        if self.direction == Direction::SendRecv
            && !self.timeout_reported
            && now.saturating_duration_since(self.last_receive) >= timeout
        {
            self.timeout_reported = true;
            emit(MediaEvent::RtpTimeout(self.id));
        }
    }
}

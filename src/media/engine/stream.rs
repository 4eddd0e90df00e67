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
use crate::media::srtp::{self, SrtpKeys, SrtpSession};

/// A stream's SRTP state: the keys it was given, their contexts, and room
/// to protect a packet without touching the caller's buffer.
struct Srtp {
    keys: SrtpKeys,
    session: SrtpSession,
    scratch: Vec<u8>,
}

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
    /// The peer `socket` is connected to: a connected socket sends without
    /// a route look-up per packet, and the kernel drops datagrams from
    /// other sources before they reach us.
    connected: Option<SocketAddr>,
    /// A `connect` failed: this stream sends with `send_to` from then on.
    connect_failed: bool,
    /// Whether the peer wants our media: its ACK came, or RTP from it.
    /// Until then, and again once it has been silent for the RTP timeout,
    /// nothing is sent (no reflection towards an address an INVITE named)
    /// and the player waits.
    confirmed: bool,
    /// Whether the worker's poll watches the socket (bridged streams, whose
    /// packets are relayed at once); the others are read every 100 ms.
    pub watched: bool,
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
    srtp: Option<Box<Srtp>>,
    pub packets_sent: u64,
    pub packets_received: u64,
}

impl Stream {
    pub(super) fn new(
        id: StreamId,
        socket: UdpSocket,
        remote: Option<SocketAddr>,
        format: LegFormat,
        out: OutboundRtp,
        confirmed: bool,
        now: Instant,
    ) -> Stream {
        Stream {
            id,
            socket,
            remote,
            connected: None,
            connect_failed: false,
            confirmed,
            watched: false,
            format,
            direction: Direction::SendRecv,
            out,
            was_sending: false,
            player: Player::silence(),
            bridge: None,
            last_receive: now,
            timeout_reported: false,
            last_event: None,
            send_error_logged: false,
            srtp: None,
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

    /// The socket back as a standard one, for its pool: no longer
    /// connected, so the next call can learn its peer from any source.
    pub(super) fn into_socket(self) -> std::net::UdpSocket {
        if self.connected.is_some() || self.connect_failed {
            disconnect(&self.socket);
        }
        std::net::UdpSocket::from(std::os::fd::OwnedFd::from(self.socket))
    }

    /// Sends to `remote` from now on.
    ///
    /// A socket not yet connected connects at its first send, so a call
    /// that ends before its first packet pays for neither `connect` nor
    /// the disconnect; until then `accept` drops strangers' packets. A
    /// connected one follows the new peer at once, or the kernel would
    /// keep dropping the new peer's packets. `None` leaves the socket
    /// connected to the last peer, if any: strangers stay out, and a
    /// re-INVITE names the next peer. (Disconnecting would also give up
    /// the port of a socket bound to port 0; the pool's sockets, bound to
    /// their port, are disconnected when they go back to it.)
    fn aim(&mut self, remote: Option<SocketAddr>) {
        self.remote = remote;
        if let Some(addr) = remote
            && self.connected.is_some_and(|c| c != addr)
        {
            self.connect(addr);
        }
    }

    fn connect(&mut self, addr: SocketAddr) {
        match self.socket.connect(addr) {
            Ok(()) => self.connected = Some(addr),
            Err(e) => {
                // send_to still works (or fails the same way if the address
                // is unusable); only the fast path is lost.
                tracing::debug!(stream = self.id.0, %addr, error = %e, "RTP socket not connected");
                self.connected = None;
                self.connect_failed = true;
            }
        }
    }

    pub(super) fn format(&self) -> LegFormat {
        self.format
    }

    pub(super) fn play(&mut self, player: Player) {
        self.player = player;
    }

    pub(super) fn set_remote(&mut self, remote: Option<SocketAddr>, now: Instant) {
        self.aim(remote);
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

    /// The peer confirmed it wants our media (the ACK came).
    pub(super) fn confirm(&mut self) {
        self.confirmed = true;
    }

    pub(super) fn set_dtmf_payload_type(&mut self, pt: Option<u8>) {
        self.format.dtmf_payload_type = pt;
    }

    pub(super) fn set_srtp(&mut self, keys: Option<SrtpKeys>) {
        self.srtp = match (keys, self.srtp.take()) {
            (Some(keys), Some(running)) if running.keys == keys => Some(running),
            (Some(keys), _) => Some(Box::new(Srtp {
                session: SrtpSession::new(&keys),
                keys,
                scratch: Vec::new(),
            })),
            (None, _) => None,
        };
    }

    /// Undoes SRTP on a datagram from the peer, in place: the length of
    /// the RTP packet now at its start, or `None` to drop it (it did not
    /// authenticate, or came again). Plain streams take it as it is.
    pub(super) fn unprotect(&mut self, datagram: &mut [u8]) -> Option<usize> {
        match &mut self.srtp {
            None => Some(datagram.len()),
            Some(s) => s.session.inbound.unprotect(datagram).ok(),
        }
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
        if self.bridge.is_some() || !self.confirmed {
            // Unconfirmed, the playlist waits for the peer: the greeting
            // starts when the caller can hear it.
            self.out.advance(samples_per_tick);
            self.was_sending = false;
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
        let sends = self.confirmed && self.direction.sends();
        let Some(remote) = self.remote.filter(|_| sends) else {
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
        if self.connected != Some(remote) && !self.connect_failed {
            self.connect(remote);
        }
        let packet = match &mut self.srtp {
            None => packet,
            Some(s) => {
                s.scratch.clear();
                s.scratch.extend_from_slice(packet);
                s.scratch.resize(packet.len() + srtp::MAX_OVERHEAD, 0);
                match s.session.outbound.protect(&mut s.scratch, packet.len()) {
                    Some(n) => &s.scratch[..n],
                    None => return,
                }
            }
        };
        let sent = if self.connected == Some(remote) {
            self.socket.send(packet)
        } else {
            self.socket.send_to(packet, remote)
        };
        if let Err(e) = sent {
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
                self.aim(Some(source));
            }
            // Never follow another source mid-call: that is how media
            // gets hijacked. Re-INVITEs change the peer via set_remote.
            Some(remote) if remote != source => return None,
            Some(_) => {}
        }
        // Heard from the peer: it wants the stream (symmetric RTP latching).
        self.confirmed = true;
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
            // Stop sending to a peer that has gone silent until it is
            // heard again; the call logic hangs up meanwhile.
            self.confirmed = false;
            emit(MediaEvent::RtpTimeout(self.id));
        }
    }
}

/// Undoes `connect` on a UDP socket (`AF_UNSPEC`, connect(2)). The pool's
/// sockets are bound to an explicit port, which they keep.
fn disconnect(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC, of its full size,
    // lives across the call; connect only reads it.
    let rc = unsafe {
        let mut unspec: libc::sockaddr = std::mem::zeroed();
        unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            socket.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "RTP socket not disconnected");
    }
}

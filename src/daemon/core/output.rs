//! What a turn of the core asks the world to do, as values.
//!
//! The core does no IO. Each entry point ([`Core::on_message`],
//! [`Core::on_media_event`], [`Core::handle_timeout`], ...) takes the
//! current monotonic time and an [`Outputs`] to append to; the shell
//! (`daemon::driver` in the daemon, the fuzz harness and the in-process
//! test harness elsewhere) drains it after the call and carries each
//! value out: SIP messages onto sockets, RTP ports bound, media commands to
//! the media worker, call records to the record writer, call events to
//! the event stream (`events::Hub`). Like str0m's `Output` and
//! quinn-proto's `poll_transmit`, but as typed queues rather than one
//! enum: the transmits of a turn leave in one `sendmmsg`, and each queue
//! keeps its capacity from turn to turn, so an output costs no allocation.
//!
//! Order holds within a queue (a stream is added before it is played);
//! across queues nothing depends on it: the media worker applies commands
//! at its next tick anyway.
//!
//! [`Core::on_message`]: super::Core::on_message
//! [`Core::on_media_event`]: super::Core::on_media_event
//! [`Core::handle_timeout`]: super::Core::handle_timeout

use std::net::{IpAddr, SocketAddr, UdpSocket};

use std::time::Instant;

use crate::cdr::{CallFacts, CallRecord};
use crate::dialplan::Origin;
use crate::events::Hub;
use crate::media::engine::{MediaHandle, Playlist, StreamId};
use crate::media::sdp::{Codec, Direction};
use crate::media::srtp::SrtpKeys;
use crate::sip::transaction::Transmit;

/// The queues a turn of the core fills; see the module docs. Keep one and
/// [`clear`](Outputs::clear) it (or drain each queue) between turns.
#[derive(Debug, Default)]
pub struct Outputs {
    /// SIP messages to send, in order.
    pub transmits: Vec<Transmit>,
    /// RTP ports to bind or let go, in order; carried out before `media`,
    /// whose streams use them.
    pub ports: Vec<PortRequest>,
    /// Commands for the media worker, in order.
    pub media: Vec<MediaCommand>,
    /// Call detail records of hotline calls that ended, for the record
    /// writer (`cdr:`); empty unless the config has a `cdr:` section.
    pub records: Vec<CallRecord>,
    /// Changes of hotline calls for the event stream (wallboard), in order.
    pub events: Vec<CallEvent>,
}

impl Outputs {
    /// Queues a SIP message.
    pub fn push(&mut self, transmit: Transmit) {
        self.transmits.push(transmit);
    }

    /// Whether every queue is empty.
    pub fn is_empty(&self) -> bool {
        self.transmits.is_empty()
            && self.ports.is_empty()
            && self.media.is_empty()
            && self.records.is_empty()
            && self.events.is_empty()
    }

    /// Empties every queue, keeping their capacity.
    pub fn clear(&mut self) {
        self.transmits.clear();
        self.ports.clear();
        self.media.clear();
        self.records.clear();
        self.events.clear();
    }
}

/// A hotline call moved on (or ended): its facts as they are now, for the
/// event stream. The hub, not the core, decides what a client sees of it
/// (joined, offered, answered, ...), from what it saw before.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// The daemon's key of the call (not the SIP Call-ID).
    pub call: u64,
    pub facts: CallFacts,
    pub origin: Origin,
    pub at: Instant,
    /// The call was released: the hub forgets it after this event.
    pub ended: bool,
}

impl CallEvent {
    /// Publishes the event into `hub` ([`Hub::call_changed`] or
    /// [`Hub::call_ended`]).
    pub fn publish(&self, hub: &Hub) {
        if self.ended {
            hub.call_ended(self.call, &self.facts, &self.origin, self.at);
        } else {
            hub.call_changed(self.call, &self.facts, &self.origin, self.at);
        }
    }

    /// The same into a bare [`crate::events::Log`] (the in-process harness
    /// keeps one instead of a hub).
    pub fn apply(&self, log: &mut crate::events::Log) {
        if self.ended {
            log.call_ended(self.call, &self.facts, &self.origin, self.at);
        } else {
            log.call_changed(self.call, &self.facts, &self.origin, self.at);
        }
    }
}

/// What the core asks of the RTP ports (see `ports.rs`): the shell binds
/// and keeps the sockets, the core only knows the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRequest {
    /// Bind UDP `port` on `ip` for a stream the core is about to add. If
    /// the bind fails, tell the core ([`Core::on_port_failed`]).
    ///
    /// [`Core::on_port_failed`]: super::Core::on_port_failed
    Bind { ip: IpAddr, port: u16 },
    /// The call is done with `port`: a socket bound for it and not yet
    /// handed to the media worker is no longer needed (one that was comes
    /// back from the worker when its stream ends).
    Release(u16),
}

/// What the core asks of the media worker, one [`MediaHandle`] call each
/// (see there for what each does); the shell applies them in order with
/// [`MediaCommand::apply`].
#[derive(Debug, PartialEq)]
pub enum MediaCommand {
    /// [`MediaHandle::add_stream`] (`confirmed`) or
    /// [`MediaHandle::add_unconfirmed_stream`].
    Add {
        stream: StreamId,
        /// The RTP port asked for with [`PortRequest::Bind`].
        port: u16,
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
    SetSrtp(StreamId, Option<SrtpKeys>),
    Bridge(StreamId, StreamId),
    Unbridge(StreamId),
    Remove(StreamId),
}

impl MediaCommand {
    /// Hands the command to the media worker behind `media`; `socket`
    /// gives the socket bound for a port (`None`: its bind failed, and the
    /// core, told so, removes the stream).
    pub fn apply(self, media: &MediaHandle, socket: impl FnOnce(u16) -> Option<UdpSocket>) {
        match self {
            MediaCommand::Add {
                stream,
                port,
                remote,
                codec,
                payload_type,
                confirmed,
            } => {
                let Some(socket) = socket(port) else {
                    return;
                };
                if confirmed {
                    media.add_stream(stream, socket, remote, codec, payload_type)
                } else {
                    media.add_unconfirmed_stream(stream, socket, remote, codec, payload_type)
                }
            }
            MediaCommand::Confirm(id) => media.confirm(id),
            MediaCommand::Play(id, playlist) => media.play(id, playlist),
            MediaCommand::SetRemote(id, remote) => media.set_remote(id, remote),
            MediaCommand::SetDirection(id, direction) => media.set_direction(id, direction),
            MediaCommand::SetDtmf(id, pt) => media.set_dtmf_payload_type(id, pt),
            MediaCommand::SetSrtp(id, keys) => media.set_srtp(id, keys),
            MediaCommand::Bridge(a, b) => media.bridge(a, b),
            MediaCommand::Unbridge(id) => media.unbridge(id),
            MediaCommand::Remove(id) => media.remove_stream(id),
        }
    }
}

/// Where the core's code queues media commands during a turn: the same
/// calls as a [`MediaHandle`], recorded as [`MediaCommand`]s and handed
/// out in [`Outputs::media`] at the end of the turn.
#[derive(Debug, Default)]
pub(super) struct MediaQueue(pub(super) Vec<MediaCommand>);

impl MediaQueue {
    pub fn add_stream(
        &mut self,
        stream: StreamId,
        port: u16,
        remote: Option<SocketAddr>,
        codec: Codec,
        payload_type: u8,
    ) {
        self.0.push(MediaCommand::Add {
            stream,
            port,
            remote,
            codec,
            payload_type,
            confirmed: true,
        });
    }

    pub fn add_unconfirmed_stream(
        &mut self,
        stream: StreamId,
        port: u16,
        remote: Option<SocketAddr>,
        codec: Codec,
        payload_type: u8,
    ) {
        self.0.push(MediaCommand::Add {
            stream,
            port,
            remote,
            codec,
            payload_type,
            confirmed: false,
        });
    }

    pub fn confirm(&mut self, id: StreamId) {
        self.0.push(MediaCommand::Confirm(id));
    }

    pub fn play(&mut self, id: StreamId, playlist: Playlist) {
        self.0.push(MediaCommand::Play(id, playlist));
    }

    pub fn set_remote(&mut self, id: StreamId, remote: Option<SocketAddr>) {
        self.0.push(MediaCommand::SetRemote(id, remote));
    }

    pub fn set_direction(&mut self, id: StreamId, direction: Direction) {
        self.0.push(MediaCommand::SetDirection(id, direction));
    }

    pub fn set_dtmf_payload_type(&mut self, id: StreamId, payload_type: Option<u8>) {
        self.0.push(MediaCommand::SetDtmf(id, payload_type));
    }

    pub fn set_srtp(&mut self, id: StreamId, keys: Option<SrtpKeys>) {
        self.0.push(MediaCommand::SetSrtp(id, keys));
    }

    pub fn bridge(&mut self, a: StreamId, b: StreamId) {
        self.0.push(MediaCommand::Bridge(a, b));
    }

    pub fn unbridge(&mut self, id: StreamId) {
        self.0.push(MediaCommand::Unbridge(id));
    }

    pub fn remove_stream(&mut self, id: StreamId) {
        self.0.push(MediaCommand::Remove(id));
    }
}

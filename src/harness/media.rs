//! The recording stand-in for the media engine: it keeps every command
//! the core gave (streams added, playlists played, bridges, removals)
//! with its virtual time, and plays playlists out on the virtual clock
//! the way the engine does, so a greeting "ends" when its length has
//! passed: the items of a playlist start when the stream is confirmed
//! (the caller's ACK), pause while the stream is bridged, and
//! [`MediaEvent::PlaylistDone`] comes when they are over. A test may turn
//! that off ([`MediaStandIn::auto_finish`]) and inject every event itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::media::engine::{MediaEvent, Playlist, StreamId};
use crate::media::sdp::Direction;

/// A command of the core to the media engine, as the stand-in records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// A stream on the local RTP `port`; `confirmed: false` for a caller
    /// whose ACK has not come (nothing is sent until then).
    Add {
        stream: StreamId,
        port: u16,
        remote: Option<SocketAddr>,
        confirmed: bool,
    },
    Confirm(StreamId),
    /// A playlist: prompts once in order (`items`, by name, `length` in
    /// all), then `looping` over and over.
    Play {
        stream: StreamId,
        items: Vec<String>,
        looping: Option<String>,
        length: Duration,
    },
    Remote(StreamId, Option<SocketAddr>),
    Direction(StreamId, Direction),
    Bridge(StreamId, StreamId),
    Unbridge(StreamId),
    Remove(StreamId),
    /// DTMF payload type, SRTP keys: not followed by the stand-in.
    Other(StreamId),
}

impl MediaCommand {
    /// The record of a `play` command.
    pub fn play(stream: StreamId, p: &Playlist) -> MediaCommand {
        MediaCommand::Play {
            stream,
            items: p.items.iter().map(|i| i.name().to_owned()).collect(),
            looping: p.then_loop.as_ref().map(|l| l.name().to_owned()),
            length: p.items.iter().map(|i| i.duration()).sum(),
        }
    }

    /// The stream the command is about (the first, for a bridge).
    pub fn stream(&self) -> StreamId {
        match self {
            MediaCommand::Add { stream, .. } | MediaCommand::Play { stream, .. } => *stream,
            MediaCommand::Confirm(s)
            | MediaCommand::Remote(s, _)
            | MediaCommand::Direction(s, _)
            | MediaCommand::Bridge(s, _)
            | MediaCommand::Unbridge(s)
            | MediaCommand::Remove(s)
            | MediaCommand::Other(s) => *s,
        }
    }
}

/// One stream as the stand-in plays it.
#[derive(Debug, Clone, Default)]
struct Stream {
    confirmed: bool,
    bridged_with: Option<StreamId>,
    /// Playing time left of the current playlist's items.
    left: Duration,
    /// Since when the items play (confirmed and not bridged).
    running_since: Option<Instant>,
    removed: bool,
}

impl Stream {
    fn pause(&mut self, now: Instant) {
        if let Some(since) = self.running_since.take() {
            self.left = self.left.saturating_sub(now - since);
        }
    }

    fn resume(&mut self, now: Instant) {
        if self.confirmed && self.bridged_with.is_none() && !self.removed && !self.left.is_zero() {
            self.running_since.get_or_insert(now);
        }
    }

    fn due(&self) -> Option<Instant> {
        self.running_since.map(|s| s + self.left)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct MediaStandIn {
    /// Every command, with the instant it was given.
    pub log: Vec<(Instant, MediaCommand)>,
    /// Every event given to the core (played out or injected).
    pub events: Vec<(Instant, MediaEvent)>,
    /// Report [`MediaEvent::PlaylistDone`] when a playlist's items are
    /// over (default true).
    pub auto_finish: bool,
    streams: BTreeMap<StreamId, Stream>,
}

impl Default for MediaStandIn {
    fn default() -> Self {
        MediaStandIn {
            log: Vec::new(),
            events: Vec::new(),
            auto_finish: true,
            streams: BTreeMap::new(),
        }
    }
}

impl MediaStandIn {
    /// Applies and records one command.
    pub fn apply(&mut self, now: Instant, command: MediaCommand) {
        match &command {
            MediaCommand::Add {
                stream, confirmed, ..
            } => {
                self.streams.insert(
                    *stream,
                    Stream {
                        confirmed: *confirmed,
                        ..Stream::default()
                    },
                );
            }
            MediaCommand::Confirm(s) => {
                let st = self.streams.entry(*s).or_default();
                st.confirmed = true;
                st.resume(now);
            }
            MediaCommand::Play { stream, length, .. } => {
                let st = self.streams.entry(*stream).or_default();
                st.running_since = None;
                st.left = *length;
                st.resume(now);
            }
            MediaCommand::Bridge(a, b) => {
                for (x, y) in [(*a, *b), (*b, *a)] {
                    if let Some(old) = self.streams.get(&x).and_then(|s| s.bridged_with)
                        && old != y
                        && let Some(o) = self.streams.get_mut(&old)
                    {
                        o.bridged_with = None;
                        o.resume(now);
                    }
                    let st = self.streams.entry(x).or_default();
                    st.pause(now);
                    st.bridged_with = Some(y);
                }
            }
            MediaCommand::Unbridge(s) => {
                let partner = self.streams.get(s).and_then(|st| st.bridged_with);
                for x in [Some(*s), partner].into_iter().flatten() {
                    if let Some(st) = self.streams.get_mut(&x) {
                        st.bridged_with = None;
                        st.resume(now);
                    }
                }
            }
            MediaCommand::Remove(s) => {
                let partner = self.streams.get(s).and_then(|st| st.bridged_with);
                if let Some(p) = partner.and_then(|p| self.streams.get_mut(&p)) {
                    p.bridged_with = None;
                    p.resume(now);
                }
                if let Some(st) = self.streams.get_mut(s) {
                    st.removed = true;
                    st.running_since = None;
                }
            }
            MediaCommand::Remote(..) | MediaCommand::Direction(..) | MediaCommand::Other(_) => {}
        }
        self.log.push((now, command));
    }

    /// When the next playlist runs out, if [`Self::auto_finish`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.auto_finish {
            return None;
        }
        self.streams.values().filter_map(Stream::due).min()
    }

    /// The playlists over at `now`: their [`MediaEvent::PlaylistDone`]s.
    pub fn due_events(&mut self, now: Instant) -> Vec<MediaEvent> {
        if !self.auto_finish {
            return Vec::new();
        }
        let mut done = Vec::new();
        for (id, st) in &mut self.streams {
            if st.due().is_some_and(|t| t <= now) {
                st.running_since = None;
                st.left = Duration::ZERO;
                done.push(MediaEvent::PlaylistDone(*id));
            }
        }
        done
    }

    /// Streams removed or not, in the order they were added.
    pub fn added(&self) -> Vec<StreamId> {
        self.log
            .iter()
            .filter_map(|(_, c)| match c {
                MediaCommand::Add { stream, .. } => Some(*stream),
                _ => None,
            })
            .collect()
    }

    /// Streams added and not removed.
    pub fn live(&self) -> Vec<StreamId> {
        self.streams
            .iter()
            .filter(|(_, s)| !s.removed)
            .map(|(id, _)| *id)
            .collect()
    }

    /// What `stream` was told to play, in order: `(when, items, loop)`.
    pub fn plays(&self, stream: StreamId) -> Vec<(Instant, Vec<String>, Option<String>)> {
        self.log
            .iter()
            .filter_map(|(t, c)| match c {
                MediaCommand::Play {
                    stream: s,
                    items,
                    looping,
                    ..
                } if *s == stream => Some((*t, items.clone(), looping.clone())),
                _ => None,
            })
            .collect()
    }

    /// The stream `stream` is bridged with now, if any.
    pub fn bridged_with(&self, stream: StreamId) -> Option<StreamId> {
        self.streams.get(&stream).and_then(|s| s.bridged_with)
    }

    /// Whether `stream` was removed.
    pub fn removed(&self, stream: StreamId) -> bool {
        self.streams.get(&stream).is_some_and(|s| s.removed)
    }

    /// The local RTP port of `stream`.
    pub fn port_of(&self, stream: StreamId) -> Option<u16> {
        self.log.iter().find_map(|(_, c)| match c {
            MediaCommand::Add {
                stream: s, port, ..
            } if *s == stream => Some(*port),
            _ => None,
        })
    }
}

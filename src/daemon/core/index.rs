//! Typed ids and the one table that routes every input to its session.
//!
//! A call is a [`Session`](super::session::Session) under a [`SessionId`];
//! its outbound legs have [`LegId`]s. Every input the core gets names its
//! call in its own way: a SIP request by its dialog (Call-ID and tags), a
//! response by the client transaction it answers, a media event by its
//! stream, an ACD offer or event by the caller's `CallKey` and the
//! offer's id, a timer by nothing at all. [`Index`] maps each of them to
//! the session (and leg) it is for, so the handlers work on typed ids
//! and the Call-ID strings stay what they are in SIP: dialog identifiers.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use crate::acd::{CallKey, OfferId};
use crate::media::engine::StreamId;
use crate::sip::transaction::ClientKey;

/// A map keyed by ids the core hands out itself (sessions, streams):
/// counters nobody outside chooses, so they need no keyed (DoS-proof)
/// hash, only a spread one, which costs a multiplication instead of a
/// SipHash round on every look-up. Call-IDs and branches, which peers
/// choose, stay on the default hasher.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// See [`IdMap`]: Fibonacci hashing of a `u64` id.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by the ids (they hash as one u64); correct for anything.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// One call: its caller leg (if any), outbound legs, phase, menu and record.
/// The same number as the ACD's [`CallKey`] for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl SessionId {
    /// The ACD's id of this session's caller.
    pub fn key(self) -> CallKey {
        CallKey(self.0)
    }
}

impl From<CallKey> for SessionId {
    fn from(key: CallKey) -> SessionId {
        SessionId(key.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// An outbound leg of a session (an offer to an agent, a forward); unique
/// in the core, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "l{}", self.0)
    }
}

/// Which side of a session an input is for: the caller leg or one of
/// the outbound legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Caller,
    Leg(LegId),
}

/// A dialog as a request names it (RFC 3261 §12): Call-ID, our tag (the
/// request's To tag) and the peer's (its From tag), as in ezk's sip-ua.
/// Routing looks the Call-ID up; the dialog then checks the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogKey<'a> {
    pub call_id: &'a str,
    pub local_tag: Option<&'a str>,
    pub remote_tag: Option<&'a str>,
}

/// Client transactions the core started, and what they were for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A BYE to the caller.
    Bye,
    /// A session refresh (UPDATE) to the caller.
    Refresh,
    /// The INVITE, CANCEL or BYE of an outbound leg.
    LegInvite,
    LegCancel,
    LegBye,
}

/// See the module docs.
#[derive(Default)]
pub struct Index {
    /// The caller legs' dialogs by Call-ID.
    callers: HashMap<Box<str>, SessionId>,
    /// The outbound legs' dialogs by Call-ID (zentrale chose them).
    legs: HashMap<Box<str>, (SessionId, LegId)>,
    /// Client transactions → what they are for.
    clients: HashMap<ClientKey, (SessionId, Side, Purpose)>,
    /// Media streams → the side that owns them.
    streams: IdMap<StreamId, (SessionId, Side)>,
    /// An ACD offer to one agent → the leg that rings that agent.
    offers: HashMap<(OfferId, Arc<str>), (SessionId, LegId)>,
    /// Each session's next timer.
    timers: BTreeSet<(Instant, SessionId)>,
}

impl Index {
    /// Routes a request by its dialog: an outbound leg's first (as the
    /// core always did), then a caller leg's. The tags are the dialog's
    /// to check.
    pub fn dialog(&self, key: &DialogKey<'_>) -> Option<(SessionId, Side)> {
        if let Some(&(s, l)) = self.legs.get(key.call_id) {
            return Some((s, Side::Leg(l)));
        }
        self.caller(key.call_id).map(|s| (s, Side::Caller))
    }

    /// The session whose caller leg has Call-ID `call_id`.
    pub fn caller(&self, call_id: &str) -> Option<SessionId> {
        self.callers.get(call_id).copied()
    }

    /// The outbound leg with Call-ID `call_id`.
    pub fn leg(&self, call_id: &str) -> Option<(SessionId, LegId)> {
        self.legs.get(call_id).copied()
    }

    pub fn add_caller(&mut self, call_id: &str, session: SessionId) {
        self.callers.insert(call_id.into(), session);
    }

    pub fn remove_caller(&mut self, call_id: &str) {
        self.callers.remove(call_id);
    }

    pub fn add_leg(&mut self, call_id: &str, session: SessionId, leg: LegId) {
        self.legs.insert(call_id.into(), (session, leg));
    }

    /// Forgets leg `leg` (Call-ID `call_id`): its dialog, its client
    /// transactions, its offer.
    pub fn remove_leg(&mut self, call_id: &str, leg: LegId, offer: Option<(OfferId, Arc<str>)>) {
        self.legs.remove(call_id);
        self.clients
            .retain(|_, (_, side, _)| *side != Side::Leg(leg));
        if let Some(offer) = offer {
            self.offers.remove(&offer);
        }
    }

    pub fn add_client(&mut self, key: ClientKey, session: SessionId, side: Side, what: Purpose) {
        self.clients.insert(key, (session, side, what));
    }

    /// What client transaction `key` is for; kept for a provisional answer.
    pub fn client(&self, key: &ClientKey) -> Option<(SessionId, Side, Purpose)> {
        self.clients.get(key).copied()
    }

    pub fn take_client(&mut self, key: &ClientKey) -> Option<(SessionId, Side, Purpose)> {
        self.clients.remove(key)
    }

    /// The INVITE transaction of leg `leg`, if still pending.
    pub fn leg_invite(&self, leg: LegId) -> Option<ClientKey> {
        self.clients
            .iter()
            .find(|(_, (_, side, what))| *side == Side::Leg(leg) && *what == Purpose::LegInvite)
            .map(|(k, _)| k.clone())
    }

    pub fn add_stream(&mut self, stream: StreamId, session: SessionId, side: Side) {
        self.streams.insert(stream, (session, side));
    }

    pub fn stream(&self, stream: StreamId) -> Option<(SessionId, Side)> {
        self.streams.get(&stream).copied()
    }

    pub fn remove_stream(&mut self, stream: StreamId) {
        self.streams.remove(&stream);
    }

    pub fn add_offer(&mut self, offer: OfferId, agent: Arc<str>, session: SessionId, leg: LegId) {
        self.offers.insert((offer, agent), (session, leg));
    }

    pub fn offer(&self, offer: OfferId, agent: &Arc<str>) -> Option<(SessionId, LegId)> {
        self.offers.get(&(offer, agent.clone())).copied()
    }

    /// Moves session `session`'s timer from `old` to `new`.
    pub fn reschedule(&mut self, session: SessionId, old: Option<Instant>, new: Option<Instant>) {
        if let Some(at) = old {
            self.timers.remove(&(at, session));
        }
        if let Some(at) = new {
            self.timers.insert((at, session));
        }
    }

    /// The earliest session timer.
    pub fn next_timer(&self) -> Option<(Instant, SessionId)> {
        self.timers.first().copied()
    }
}

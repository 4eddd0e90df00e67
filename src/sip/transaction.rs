//! RFC 3261 §17 transactions, sans-IO.
//!
//! [`Transactions`] matches incoming messages to transactions, absorbs
//! retransmissions, retransmits what we sent over UDP and runs timers A-K
//! against an explicit clock. It never touches a socket: every method returns
//! the [`Transmit`]s to put on the wire, and [`Transactions::poll_timeout`] /
//! [`Transactions::handle_timeout`] drive the timers. The transaction user
//! (the daemon's core) answers requests with [`Transactions::respond`] and
//! sends its own with [`Transactions::send_request`].
//!
//! The INVITE server transaction follows RFC 6026: after a 2xx it stays in
//! *Accepted*, retransmitting the 2xx until the TU reports the ACK
//! ([`Transactions::ack_received`]) or timer L fires, which is reported as
//! [`TxEvent::NoAck`] so the call can be torn down with a BYE.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Transport;
use super::message::{HasHeaders, Header, Method, Outgoing, Request, Response};
use super::via::TopVia;

/// Where a message comes from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    /// The remote address.
    pub addr: SocketAddr,
    /// Our address the message came in on / goes out from.
    pub local: SocketAddr,
}

/// A message to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
}

/// RFC 3261 timer values. Defaults: T1 500 ms, T2 4 s, T4 5 s.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Identifies a server transaction (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKey {
    // Shared with the timers that name the transaction: cloning a key
    // must not allocate.
    branch: Arc<str>,
    sent_by: Arc<str>,
    /// INVITE and the ACK of a non-2xx share one; CANCEL has its own.
    method: Method,
    /// [`prehash`] of branch and sent-by (equal strings, equal hash).
    hash: u64,
}

impl ServerKey {
    fn new(branch: Arc<str>, sent_by: Arc<str>, method: Method) -> ServerKey {
        let hash = prehash(&branch, &sent_by);
        ServerKey {
            branch,
            sent_by,
            method,
            hash,
        }
    }

    /// The method of the transaction's request (ACK counts as INVITE).
    pub fn method(&self) -> Method {
        self.method
    }

    /// The key of the INVITE transaction a CANCEL with this key refers to.
    pub fn invite_of_cancel(&self) -> ServerKey {
        ServerKey {
            method: Method::Invite,
            ..self.clone()
        }
    }
}

/// The peer chooses branch and sent-by, so a server transaction's key is
/// hashed with SipHash under a key random per process, as std's maps do
/// (HashDoS). A transaction's key is looked up half a dozen times (the
/// request, its retransmissions, each response, the ACK), so it is hashed
/// once, when the request arrives; the map only mixes in the method.
fn prehash(branch: &str, sent_by: &str) -> u64 {
    static KEYS: LazyLock<RandomState> = LazyLock::new(RandomState::new);
    KEYS.hash_one((branch, sent_by))
}

impl Hash for ServerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
        self.method.hash(state);
    }
}

/// The hasher of the server transaction map: [`ServerKey`]s arrive
/// hashed, the method's discriminant is folded in.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b.into());
        }
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        // FxHash's step: the input is already well mixed.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type ServerMap = HashMap<ServerKey, ServerTx, BuildHasherDefault<Prehashed>>;

/// Identifies a client transaction: our branch plus the method (CANCEL
/// reuses the INVITE's branch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    branch: Arc<str>,
    method: Method,
}

/// What an incoming request turned out to be.
#[derive(Debug)]
pub enum Incoming {
    /// A new request; the TU must answer it with [`Transactions::respond`]
    /// (except ACK, which has no transaction).
    Request { key: ServerKey, request: Request },
    /// An ACK that is not part of an INVITE transaction: the ACK of a 2xx,
    /// for the dialog layer.
    Ack(Request),
    /// A response to one of our client transactions.
    Response { key: ClientKey, response: Response },
    /// A retransmission or an ACK for a non-2xx; handled here.
    Absorbed,
    /// A response matching no transaction of ours (RFC 3261 §17.1.3: drop).
    Stray,
}

/// Timer outcomes the TU must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// Our 2xx to an INVITE was never acknowledged (timer L / H).
    NoAck(ServerKey),
    /// A client transaction got no final response (timer B / F).
    Timeout(ClientKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Trying,
    Proceeding,
    /// INVITE, after a 2xx (RFC 6026).
    Accepted,
    Completed,
    Confirmed,
}

struct ServerTx {
    state: ServerState,
    peer: Peer,
    last_response: Option<Bytes>,
    final_is_2xx: bool,
    retransmit_interval: Duration,
    /// Bumped whenever the timers are re-armed, so stale heap entries are ignored.
    generation: u64,
    /// The pending retransmission (timer G, or the 2xx's), taken out of
    /// the queue as soon as it has nothing left to send.
    retransmit_timer: Option<TimerId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Calling,
    Proceeding,
    Completed,
}

struct ClientTx {
    state: ClientState,
    peer: Peer,
    /// The request as sent; for an INVITE also what the ACK of a non-2xx
    /// final response is made of (RFC 3261 §17.1.1.3).
    request: Bytes,
    retransmit_interval: Duration,
    generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerTarget {
    Server(ServerKey),
    Client(ClientKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    /// G (server) / A, E (client).
    Retransmit,
    /// H, L, J, I (server) / B, F, D, K (client).
    Expire,
}

/// All transactions of one endpoint. See the module docs.
pub struct Transactions {
    timers_cfg: Timers,
    server: ServerMap,
    client: HashMap<ClientKey, ClientTx>,
    timers: TimerQueue,
    /// Live server transactions per source address (the caps of
    /// `sip.limits`).
    by_source: HashMap<IpAddr, usize>,
    /// Messages retransmitted (for the metrics).
    pub retransmissions: u64,
}

impl Transactions {
    pub fn new(timers: Timers) -> Self {
        Transactions {
            timers_cfg: timers,
            server: ServerMap::default(),
            client: HashMap::new(),
            timers: TimerQueue::default(),
            by_source: HashMap::new(),
            retransmissions: 0,
        }
    }

    /// Live server transactions whose requests came from `source`.
    pub fn server_count_of(&self, source: IpAddr) -> usize {
        self.by_source.get(&source).copied().unwrap_or(0)
    }

    /// Whether `request` (top Via `via`) belongs to a live server
    /// transaction: a retransmission, which costs no new state.
    pub fn is_known(&self, request: &Request, via: &TopVia) -> bool {
        request.method != Method::Ack && self.server.contains_key(&server_key_of(request, via))
    }

    /// Removes server transaction `key` and its count.
    fn remove_server(&mut self, key: &ServerKey) -> Option<ServerTx> {
        let tx = self.server.remove(key)?;
        let ip = tx.peer.addr.ip();
        if let Some(n) = self.by_source.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&ip);
            }
        }
        Some(tx)
    }

    /// The timer values in use.
    pub fn timers(&self) -> Timers {
        self.timers_cfg
    }

    /// Number of live server and client transactions.
    pub fn len(&self) -> (usize, usize) {
        (self.server.len(), self.client.len())
    }

    /// Matches a screened request from `peer`.
    ///
    /// Returns the retransmissions of a stored response it caused (a
    /// retransmitted request gets the last response again).
    pub fn on_request(
        &mut self,
        request: Request,
        peer: Peer,
        now: Instant,
    ) -> (Incoming, Option<Transmit>) {
        match TopVia::of(&request.headers) {
            Some(via) => self.on_request_via(request, &via, peer, now),
            // The screen guarantees a Via; without one there is nothing to match.
            None => (Incoming::Absorbed, None),
        }
    }

    /// [`Transactions::on_request`] for a caller that has already parsed
    /// the request's top Via (the core has, to stamp it and to find where
    /// responses go).
    pub fn on_request_via(
        &mut self,
        request: Request,
        via: &TopVia,
        peer: Peer,
        now: Instant,
    ) -> (Incoming, Option<Transmit>) {
        let key = server_key_of(&request, via);
        if request.method == Method::Ack {
            if self.absorbs_ack(key, peer.transport, now) {
                return (Incoming::Absorbed, None);
            }
            return (Incoming::Ack(request), None);
        }
        if let Some(tx) = self.server.get(&key) {
            // Answer where this copy came from: over TCP a request repeated
            // on a new connection must not be answered on the old one.
            let resend = tx
                .last_response
                .clone()
                .map(|bytes| Transmit { peer, bytes });
            if resend.is_some() {
                self.retransmissions += 1;
            }
            return (Incoming::Absorbed, resend);
        }
        *self.by_source.entry(peer.addr.ip()).or_insert(0) += 1;
        self.server.insert(
            key.clone(),
            ServerTx {
                state: if request.method == Method::Invite {
                    ServerState::Proceeding
                } else {
                    ServerState::Trying
                },
                peer,
                last_response: None,
                final_is_2xx: false,
                retransmit_interval: self.timers_cfg.t1,
                generation: 0,
                retransmit_timer: None,
            },
        );
        (Incoming::Request { key, request }, None)
    }

    /// An ACK with top Via `via` and the Call-ID, From tag and CSeq number
    /// given (which stand in for a branch without the RFC 3261 cookie):
    /// `true` when it acknowledges a non-2xx final response of ours, and
    /// this layer has taken it; `false` when it is for the dialog layer
    /// (the ACK of a 2xx). [`Transactions::on_request`] does the same for
    /// an ACK as an owned [`Request`].
    pub fn on_ack(
        &mut self,
        via: &TopVia,
        dialog: (&str, Option<&str>, u32),
        transport: Transport,
        now: Instant,
    ) -> bool {
        let branch = match via.rfc3261_branch() {
            Some(_) => via.branch.clone().unwrap_or_default(),
            None => {
                let (call_id, from_tag, cseq) = dialog;
                rfc2543_branch(call_id, from_tag.unwrap_or(""), Some(cseq)).into()
            }
        };
        let key = ServerKey::new(branch, via.sent_by.clone(), Method::Invite);
        self.absorbs_ack(key, transport, now)
    }

    /// The ACK of the INVITE transaction `invite_key`: absorbed when that
    /// transaction sent a non-2xx final response (RFC 3261 §17.2.1).
    fn absorbs_ack(&mut self, invite_key: ServerKey, transport: Transport, now: Instant) -> bool {
        let Some(tx) = self.server.get_mut(&invite_key) else {
            return false;
        };
        if tx.state == ServerState::Completed && !tx.final_is_2xx {
            tx.state = ServerState::Confirmed;
            tx.generation += 1;
            let gen_ = tx.generation;
            // Timer G stops (RFC 3261 §17.2.1).
            if let Some(id) = tx.retransmit_timer.take() {
                self.timers.cancel(id);
            }
            let wait = match transport {
                Transport::Udp => self.timers_cfg.t4,
                Transport::Tcp | Transport::Tls => Duration::ZERO,
            };
            self.timers.arm(
                now + wait,
                TimerTarget::Server(invite_key),
                TimerKind::Expire,
                gen_,
            );
            return true;
        }
        tx.state == ServerState::Confirmed
    }

    /// Whether a server transaction with this key is live (used to find the
    /// INVITE a CANCEL refers to).
    pub fn has_server(&self, key: &ServerKey) -> bool {
        self.server.contains_key(key)
    }

    /// Whether a final response was already sent on this server transaction.
    pub fn is_answered(&self, key: &ServerKey) -> bool {
        self.server
            .get(key)
            .is_some_and(|tx| !matches!(tx.state, ServerState::Trying | ServerState::Proceeding))
    }

    /// Sends `response` on server transaction `key`. Returns what to
    /// transmit; `None` if the transaction is gone or already final.
    pub fn respond(
        &mut self,
        key: &ServerKey,
        response: &Response,
        now: Instant,
    ) -> Option<Transmit> {
        let code = response.status_code.code();
        self.respond_with(key, code, || super::message::encode_response(response), now)
    }

    /// [`Transactions::respond`] with a response in wire form (status
    /// `code`), encoded only if the transaction can still send it.
    pub fn respond_with(
        &mut self,
        key: &ServerKey,
        code: u16,
        encode: impl FnOnce() -> Vec<u8>,
        now: Instant,
    ) -> Option<Transmit> {
        let t1 = self.timers_cfg.t1;
        let tx = self.server.get_mut(key)?;
        if !matches!(tx.state, ServerState::Trying | ServerState::Proceeding) {
            return None;
        }
        let bytes = Bytes::from(encode());
        tx.last_response = Some(bytes.clone());
        let peer = tx.peer;
        let unreliable = peer.transport == Transport::Udp;
        if code < 200 {
            tx.state = ServerState::Proceeding;
            return Some(Transmit { peer, bytes });
        }
        tx.generation += 1;
        let gen_ = tx.generation;
        let target = TimerTarget::Server(key.clone());
        if key.method == Method::Invite {
            tx.final_is_2xx = code < 300;
            tx.state = if tx.final_is_2xx {
                ServerState::Accepted
            } else {
                ServerState::Completed
            };
            tx.retransmit_interval = t1;
            // 2xx retransmission is needed even on TCP (RFC 3261 §13.3.1.4);
            // non-2xx only on UDP (timer G).
            if unreliable || tx.final_is_2xx {
                let id = self
                    .timers
                    .arm(now + t1, target.clone(), TimerKind::Retransmit, gen_);
                tx.retransmit_timer = Some(id);
            }
            self.timers
                .arm(now + 64 * t1, target, TimerKind::Expire, gen_);
        } else {
            tx.state = ServerState::Completed;
            let wait = if unreliable { 64 * t1 } else { Duration::ZERO };
            self.timers.arm(now + wait, target, TimerKind::Expire, gen_);
        }
        Some(Transmit { peer, bytes })
    }

    /// Sends the final response `code` on server transaction `key` and
    /// forgets the transaction at once: a stateless answer (RFC 3261
    /// §8.2.7), for refusals that create no state. A retransmitted request
    /// is answered anew; nothing is retransmitted, no timer kept. A
    /// transaction that already sent a provisional response stays
    /// stateful ([`Transactions::respond_with`]).
    pub fn respond_stateless(
        &mut self,
        key: &ServerKey,
        code: u16,
        encode: impl FnOnce() -> Vec<u8>,
        now: Instant,
    ) -> Option<Transmit> {
        let tx = self.server.get(key)?;
        if tx.last_response.is_some() || code < 200 {
            return self.respond_with(key, code, encode, now);
        }
        let tx = self.remove_server(key)?;
        Some(Transmit {
            peer: tx.peer,
            bytes: Bytes::from(encode()),
        })
    }

    /// The TU saw the ACK for the 2xx sent on INVITE transaction `key`:
    /// stop retransmitting it. The transaction lingers until timer L to
    /// absorb retransmitted INVITEs.
    pub fn ack_received(&mut self, key: &ServerKey) {
        if let Some(tx) = self.server.get_mut(key)
            && tx.state == ServerState::Accepted
        {
            tx.state = ServerState::Confirmed;
            tx.final_is_2xx = true;
            // Keep the Expire timer (L) running; the retransmissions end
            // here, and so does their timer, so that no wake-up is spent
            // on it.
            if let Some(id) = tx.retransmit_timer.take() {
                self.timers.cancel(id);
            }
        }
    }

    /// Starts a client transaction for `request` (whose top Via carries a
    /// fresh branch) towards `peer`. It keeps the request's octets (to
    /// resend, and to build the ACK of a non-2xx answer from) and its
    /// branch and method (the key): nothing is parsed.
    pub fn send_request(
        &mut self,
        request: &Outgoing,
        peer: Peer,
        now: Instant,
    ) -> (ClientKey, Transmit) {
        let key = ClientKey {
            branch: request.branch().clone(),
            method: request.method(),
        };
        let bytes = request.to_bytes();
        let t1 = self.timers_cfg.t1;
        self.client.insert(
            key.clone(),
            ClientTx {
                state: ClientState::Calling,
                peer,
                request: bytes.clone(),
                retransmit_interval: t1,
                generation: 0,
            },
        );
        if peer.transport == Transport::Udp {
            self.timers.arm(
                now + t1,
                TimerTarget::Client(key.clone()),
                TimerKind::Retransmit,
                0,
            );
        }
        self.timers.arm(
            now + 64 * t1,
            TimerTarget::Client(key.clone()),
            TimerKind::Expire,
            0,
        );
        (key, Transmit { peer, bytes })
    }

    /// Matches a screened response. For an INVITE client transaction a
    /// non-2xx final response is acknowledged here.
    pub fn on_response(
        &mut self,
        response: Response,
        now: Instant,
    ) -> (Incoming, Option<Transmit>) {
        let Some(key) = client_key(&response) else {
            return (Incoming::Stray, None);
        };
        let code = response.status_code.code();
        let t4 = self.timers_cfg.t4;
        let Some(tx) = self.client.get_mut(&key) else {
            return (Incoming::Stray, None);
        };
        let unreliable = tx.peer.transport == Transport::Udp;
        match tx.state {
            ClientState::Completed => {
                // A retransmitted final response: re-ACK a non-2xx INVITE answer.
                let ack = (key.method == Method::Invite && code >= 300).then(|| Transmit {
                    peer: tx.peer,
                    bytes: ack_of_failure(&tx.request, &response),
                });
                return (Incoming::Absorbed, ack);
            }
            ClientState::Calling | ClientState::Proceeding => {}
        }
        if code < 200 {
            tx.state = ClientState::Proceeding;
            if key.method == Method::Invite {
                // Timer A stops once anything arrives (RFC 3261 §17.1.1.2).
                tx.generation += 1;
            }
            return (Incoming::Response { key, response }, None);
        }
        tx.generation += 1;
        let gen_ = tx.generation;
        if key.method == Method::Invite && code < 300 {
            // The 2xx and its ACK belong to the TU (RFC 3261 §17.1.1.2).
            self.client.remove(&key);
            return (Incoming::Response { key, response }, None);
        }
        tx.state = ClientState::Completed;
        let mut ack = None;
        let wait = if key.method == Method::Invite {
            ack = Some(Transmit {
                peer: tx.peer,
                bytes: ack_of_failure(&tx.request, &response),
            });
            if unreliable {
                Duration::from_secs(32)
            } else {
                Duration::ZERO
            }
        } else if unreliable {
            t4
        } else {
            Duration::ZERO
        };
        self.timers.arm(
            now + wait,
            TimerTarget::Client(key.clone()),
            TimerKind::Expire,
            gen_,
        );
        (Incoming::Response { key, response }, ack)
    }

    /// Forgets a client transaction the TU no longer cares about.
    /// The request client transaction `key` sends and retransmits: the
    /// same bytes (one buffer) as the [`Transmit`] `send_request` returned.
    pub fn client_request(&self, key: &ClientKey) -> Option<&Bytes> {
        self.client.get(key).map(|c| &c.request)
    }

    pub fn forget_client(&mut self, key: &ClientKey) {
        self.client.remove(key);
    }

    /// The next instant [`Transactions::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first()
    }

    /// Runs every timer due at `now`. Returns retransmissions and events.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        out: &mut Vec<Transmit>,
        events: &mut Vec<TxEvent>,
    ) {
        while let Some((target, kind, gen_)) = self.timers.pop_due(now) {
            match target {
                TimerTarget::Server(key) => self.fire_server(key, kind, gen_, now, out, events),
                TimerTarget::Client(key) => self.fire_client(key, kind, gen_, now, out, events),
            }
        }
    }

    fn fire_server(
        &mut self,
        key: ServerKey,
        kind: TimerKind,
        gen_: u64,
        now: Instant,
        out: &mut Vec<Transmit>,
        events: &mut Vec<TxEvent>,
    ) {
        let t2 = self.timers_cfg.t2;
        let Some(tx) = self.server.get_mut(&key) else {
            return;
        };
        if tx.generation != gen_ {
            return;
        }
        match kind {
            TimerKind::Retransmit => {
                if !matches!(tx.state, ServerState::Accepted | ServerState::Completed) {
                    return;
                }
                if let Some(bytes) = tx.last_response.clone() {
                    out.push(Transmit {
                        peer: tx.peer,
                        bytes,
                    });
                    self.retransmissions += 1;
                }
                tx.retransmit_interval = (tx.retransmit_interval * 2).min(t2);
                let at = now + tx.retransmit_interval;
                let id = self
                    .timers
                    .arm(at, TimerTarget::Server(key), TimerKind::Retransmit, gen_);
                tx.retransmit_timer = Some(id);
            }
            TimerKind::Expire => {
                let unacked_2xx = tx.state == ServerState::Accepted;
                if let Some(id) = tx.retransmit_timer.take() {
                    self.timers.cancel(id);
                }
                self.remove_server(&key);
                if unacked_2xx {
                    events.push(TxEvent::NoAck(key));
                }
            }
        }
    }

    fn fire_client(
        &mut self,
        key: ClientKey,
        kind: TimerKind,
        gen_: u64,
        now: Instant,
        out: &mut Vec<Transmit>,
        events: &mut Vec<TxEvent>,
    ) {
        let t2 = self.timers_cfg.t2;
        let Some(tx) = self.client.get_mut(&key) else {
            return;
        };
        match kind {
            TimerKind::Retransmit => {
                if tx.generation != gen_
                    && !(key.method != Method::Invite && tx.state == ClientState::Proceeding)
                {
                    return;
                }
                if tx.state == ClientState::Completed {
                    return;
                }
                out.push(Transmit {
                    peer: tx.peer,
                    bytes: tx.request.clone(),
                });
                self.retransmissions += 1;
                // Timer E keeps T2 once a provisional arrived (§17.1.2.2);
                // timer A doubles without cap.
                tx.retransmit_interval = match (key.method == Method::Invite, tx.state) {
                    (true, _) => tx.retransmit_interval * 2,
                    (false, ClientState::Proceeding) => t2,
                    (false, _) => (tx.retransmit_interval * 2).min(t2),
                };
                let at = now + tx.retransmit_interval;
                let g = tx.generation;
                self.timers
                    .arm(at, TimerTarget::Client(key), TimerKind::Retransmit, g);
            }
            TimerKind::Expire => {
                if tx.state == ClientState::Completed {
                    if tx.generation == gen_ {
                        self.client.remove(&key);
                    }
                    return;
                }
                if gen_ != 0 {
                    return;
                }
                self.client.remove(&key);
                events.push(TxEvent::Timeout(key));
            }
        }
    }
}

/// A timer in the [`TimerQueue`], for cancelling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TimerId(Instant, u64);

/// Pending timers in deadline order. A timer that became pointless either
/// stays and is ignored when it fires (its generation is stale) or, for
/// the retransmissions that lie ahead of everything else, is cancelled:
/// the earliest deadline is what the daemon wakes up for, and a 2xx
/// retransmission timer left behind by every ACK'd call woke it every few
/// milliseconds under load for nothing.
#[derive(Default)]
struct TimerQueue {
    entries: BTreeMap<TimerId, (TimerTarget, TimerKind, u64)>,
    next_id: u64,
}

impl TimerQueue {
    fn arm(&mut self, at: Instant, target: TimerTarget, kind: TimerKind, gen_: u64) -> TimerId {
        self.next_id += 1;
        let id = TimerId(at, self.next_id);
        self.entries.insert(id, (target, kind, gen_));
        id
    }

    fn cancel(&mut self, id: TimerId) {
        self.entries.remove(&id);
    }

    fn first(&self) -> Option<Instant> {
        self.entries.keys().next().map(|id| id.0)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(TimerTarget, TimerKind, u64)> {
        let entry = self.entries.first_entry()?;
        (entry.key().0 <= now).then(|| entry.remove())
    }
}

/// The server transaction key of a request (RFC 3261 §17.2.3), with the
/// RFC 2543 fallback for branches without the magic cookie.
pub fn server_key(request: &Request) -> Option<ServerKey> {
    Some(server_key_of(request, &TopVia::of(&request.headers)?))
}

/// What stands in for the branch of a request from an RFC 2543 client
/// (no magic cookie): RFC 3261 §17.2.3 falls back to matching on the
/// dialog and CSeq, which From tag, Call-ID and CSeq number approximate
/// well.
fn rfc2543_branch(call_id: &str, from_tag: &str, cseq: Option<u32>) -> String {
    match cseq {
        Some(n) => format!("2543:{call_id}|{from_tag}|{n}|"),
        None => format!("2543:{call_id}|{from_tag}||"),
    }
}

/// [`server_key`] with the top Via already parsed.
fn server_key_of(request: &Request, via: &TopVia) -> ServerKey {
    let method = match request.method {
        Method::Ack => Method::Invite,
        m => m,
    };
    let branch = match &via.branch {
        Some(b) if b.starts_with(super::via::MAGIC_COOKIE) => b.clone(),
        _ => {
            let (mut call_id, mut from_tag, mut cseq) = ("", "", None);
            for h in request.headers.iter() {
                match h {
                    Header::CallId(v) => call_id = v.value(),
                    Header::From(v) => from_tag = super::message::tag_of(v.value()).unwrap_or(""),
                    // As a number: `01` and `1` are one CSeq.
                    Header::CSeq(v) => {
                        cseq = v
                            .value()
                            .split_whitespace()
                            .next()
                            .and_then(|n| n.parse().ok())
                    }
                    _ => {}
                }
            }
            rfc2543_branch(call_id, from_tag, cseq).into()
        }
    };
    ServerKey::new(branch, via.sent_by.clone(), method)
}

fn client_key(response: &Response) -> Option<ClientKey> {
    let via = TopVia::of(&response.headers)?;
    let method = response.headers.iter().find_map(|h| match h {
        Header::CSeq(c) => c
            .value()
            .split_whitespace()
            .nth(1)
            .and_then(|m| m.parse::<Method>().ok()),
        _ => None,
    })?;
    Some(ClientKey {
        branch: via.branch?,
        method,
    })
}

/// The ACK for a non-2xx answer to `invite` (RFC 3261 §17.1.1.3): same
/// Request-URI, top Via, From, Call-ID, Route and Max-Forwards, the CSeq
/// number with method ACK, and the To of the response. Read off the
/// INVITE's octets as zentrale wrote them ([`Outgoing`]), only when such an
/// answer comes: nearly every INVITE is answered 2xx, whose ACK the
/// dialog sends.
fn ack_of_failure(invite: &[u8], response: &Response) -> Bytes {
    let to = response.headers().iter().find_map(|h| match h {
        Header::To(v) => Some(v.value()),
        _ => None,
    });
    let mut out = Vec::with_capacity(invite.len());
    let mut lines = invite
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let uri = request_line
        .split(|&b| b == b' ')
        .nth(1)
        .unwrap_or_default();
    out.extend_from_slice(b"ACK ");
    out.extend_from_slice(uri);
    out.extend_from_slice(b" SIP/2.0\r\n");
    let mut via_done = false;
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        let is = |long: &[u8], compact: &[u8]| {
            name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(compact)
        };
        let copy = if is(b"via", b"v") {
            !std::mem::replace(&mut via_done, true)
        } else {
            is(b"from", b"f")
                || is(b"call-id", b"i")
                || is(b"route", b"route")
                || is(b"max-forwards", b"max-forwards")
        };
        if copy {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        } else if is(b"to", b"t") {
            out.extend_from_slice(b"To: ");
            out.extend_from_slice(to.unwrap_or_default().as_bytes());
            out.extend_from_slice(b"\r\n");
        } else if is(b"cseq", b"cseq") {
            let value = line[colon + 1..].trim_ascii();
            let n = value
                .split(|b| b.is_ascii_whitespace())
                .next()
                .unwrap_or(b"1");
            out.extend_from_slice(b"CSeq: ");
            out.extend_from_slice(n);
            out.extend_from_slice(b" ACK\r\n");
        }
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, branch: &str) -> Request {
        Request::try_from(format!(
            "{method} sip:115@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
             From: <sip:c@127.0.0.1>;tag=f\r\nTo: <sip:115@127.0.0.1>\r\n\
             Call-ID: call1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ))
        .unwrap()
    }

    fn udp_peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    type Timeline = (Vec<(Instant, Transmit)>, Vec<(Instant, TxEvent)>);

    fn run(tx: &mut Transactions, until: Instant) -> Timeline {
        let mut sent = Vec::new();
        let mut events = Vec::new();
        while let Some(at) = tx.poll_timeout() {
            if at > until {
                break;
            }
            let mut out = Vec::new();
            let mut ev = Vec::new();
            tx.handle_timeout(at, &mut out, &mut ev);
            sent.extend(out.into_iter().map(|t| (at, t)));
            events.extend(ev.into_iter().map(|e| (at, e)));
        }
        (sent, events)
    }

    #[test]
    fn retransmitted_invite_gets_last_response_again() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let (inc, _) = t.on_request(req("INVITE", "z9hG4bK1"), udp_peer(), now);
        let Incoming::Request { key, request } = inc else {
            panic!()
        };
        let trying = super::super::message::response(&request, rsipstack::sip::StatusCode::Trying);
        assert!(t.respond(&key, &trying, now).is_some());
        let (inc, resend) = t.on_request(req("INVITE", "z9hG4bK1"), udp_peer(), now);
        assert!(matches!(inc, Incoming::Absorbed));
        assert!(resend.unwrap().bytes.starts_with(b"SIP/2.0 100"));
    }

    #[test]
    fn unacked_2xx_is_retransmitted_with_doubling_then_reported() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let (Incoming::Request { key, request }, _) =
            t.on_request(req("INVITE", "z9hG4bK2"), udp_peer(), now)
        else {
            panic!()
        };
        let ok = super::super::message::response(&request, rsipstack::sip::StatusCode::OK);
        t.respond(&key, &ok, now).unwrap();
        let (sent, events) = run(&mut t, now + Duration::from_secs(40));
        let offsets: Vec<u128> = sent.iter().map(|(at, _)| (*at - now).as_millis()).collect();
        // G: 0.5, 1.5, 3.5, 7.5, 11.5, ... capped at T2 = 4 s, until L = 32 s.
        assert_eq!(&offsets[..5], &[500, 1500, 3500, 7500, 11500]);
        assert!(offsets.iter().all(|o| *o < 32_000));
        assert_eq!(
            events,
            vec![(now + Duration::from_secs(32), TxEvent::NoAck(key))]
        );
    }

    #[test]
    fn ack_stops_2xx_retransmission() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let (Incoming::Request { key, request }, _) =
            t.on_request(req("INVITE", "z9hG4bK3"), udp_peer(), now)
        else {
            panic!()
        };
        let ok = super::super::message::response(&request, rsipstack::sip::StatusCode::OK);
        t.respond(&key, &ok, now).unwrap();
        let (inc, _) = t.on_request(req("ACK", "z9hG4bK4"), udp_peer(), now);
        assert!(matches!(inc, Incoming::Ack(_)));
        t.ack_received(&key);
        // Nothing is due before timer L: the retransmission timer is gone,
        // not merely ignored when it fires.
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(32)));
        let (sent, events) = run(&mut t, now + Duration::from_secs(40));
        assert!(sent.is_empty());
        assert!(events.is_empty());
        assert_eq!(t.len(), (0, 0));
    }

    #[test]
    fn non_2xx_is_absorbed_by_ack_and_timer_i_cleans_up() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let (Incoming::Request { key, request }, _) =
            t.on_request(req("INVITE", "z9hG4bK5"), udp_peer(), now)
        else {
            panic!()
        };
        let busy = super::super::message::response(&request, rsipstack::sip::StatusCode::BusyHere);
        t.respond(&key, &busy, now).unwrap();
        let (inc, _) = t.on_request(
            req("ACK", "z9hG4bK5"),
            udp_peer(),
            now + Duration::from_millis(10),
        );
        assert!(matches!(inc, Incoming::Absorbed));
        // Timer G is gone; timer I (T4) is next.
        assert_eq!(
            t.poll_timeout(),
            Some(now + Duration::from_millis(10) + Duration::from_secs(5))
        );
        let (sent, events) = run(&mut t, now + Duration::from_secs(10));
        assert!(sent.is_empty(), "no retransmission after ACK");
        assert!(events.is_empty());
        assert_eq!(t.len(), (0, 0), "timer I removed it");
    }

    #[test]
    fn a_borrowed_ack_is_matched_as_an_owned_one() {
        let now = Instant::now();
        // With the cookie by branch; without it (RFC 2543) by Call-ID, From
        // tag and CSeq number, whatever order the headers came in.
        for branch in ["z9hG4bK7", "rfc2543-7"] {
            let mut t = Transactions::new(Timers::default());
            let (Incoming::Request { key, request }, _) =
                t.on_request(req("INVITE", branch), udp_peer(), now)
            else {
                panic!()
            };
            let busy =
                super::super::message::response(&request, rsipstack::sip::StatusCode::BusyHere);
            t.respond(&key, &busy, now).unwrap();
            let via = TopVia::of(&req("ACK", branch).headers).unwrap();
            let later = now + Duration::from_millis(10);
            let other = TopVia::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK8").unwrap();
            assert!(!t.on_ack(&other, ("call1", Some("f"), 1), Transport::Udp, later));
            if !branch.starts_with(super::super::via::MAGIC_COOKIE) {
                for dialog in [
                    ("call2", Some("f"), 1),
                    ("call1", None, 1),
                    ("call1", Some("f"), 2),
                ] {
                    assert!(!t.on_ack(&via, dialog, Transport::Udp, later), "{dialog:?}");
                }
            }
            assert!(
                t.on_ack(&via, ("call1", Some("f"), 1), Transport::Udp, later),
                "{branch}"
            );
            // A repeated ACK is absorbed too; the retransmissions stopped.
            assert!(t.on_ack(&via, ("call1", Some("f"), 1), Transport::Udp, later));
            let (sent, _) = run(&mut t, now + Duration::from_secs(10));
            assert!(sent.is_empty(), "{branch}: no retransmission after ACK");
            assert_eq!(t.len(), (0, 0), "{branch}: timer I removed it");
        }
        // RFC 2543: the INVITE's CSeq `01` and the ACK's 1 are one number.
        let mut t = Transactions::new(Timers::default());
        let invite = Request::try_from(
            "INVITE sip:115@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=old\r\n\
             From: <sip:c@127.0.0.1>;tag=f\r\nTo: <sip:115@127.0.0.1>\r\n\
             Call-ID: call1\r\nCSeq: 01 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let (Incoming::Request { key, request }, _) = t.on_request(invite, udp_peer(), now) else {
            panic!()
        };
        let busy = super::super::message::response(&request, rsipstack::sip::StatusCode::BusyHere);
        t.respond(&key, &busy, now).unwrap();
        let via = TopVia::of(&request.headers).unwrap();
        assert!(t.on_ack(&via, ("call1", Some("f"), 1), Transport::Udp, now));
        // The ACK of a 2xx is the dialog's.
        let mut t = Transactions::new(Timers::default());
        let (Incoming::Request { key, request }, _) =
            t.on_request(req("INVITE", "z9hG4bK9"), udp_peer(), now)
        else {
            panic!()
        };
        let ok = super::super::message::response(&request, rsipstack::sip::StatusCode::OK);
        t.respond(&key, &ok, now).unwrap();
        let via = TopVia::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK10").unwrap();
        assert!(!t.on_ack(&via, ("call1", Some("f"), 1), Transport::Udp, now));
    }

    #[test]
    fn non_invite_server_lives_for_timer_j() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let (Incoming::Request { key, request }, _) =
            t.on_request(req("BYE", "z9hG4bK6"), udp_peer(), now)
        else {
            panic!()
        };
        let ok = super::super::message::response(&request, rsipstack::sip::StatusCode::OK);
        t.respond(&key, &ok, now).unwrap();
        run(&mut t, now + Duration::from_secs(31));
        assert_eq!(t.len(), (1, 0));
        run(&mut t, now + Duration::from_secs(33));
        assert_eq!(t.len(), (0, 0));
    }

    #[test]
    fn client_non_invite_retransmits_then_times_out() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let bye = req("BYE", "z9hG4bKc1");
        let (key, first) = t.send_request(&Outgoing::from_request(&bye), udp_peer(), now);
        assert!(first.bytes.starts_with(b"BYE "));
        let (sent, events) = run(&mut t, now + Duration::from_secs(40));
        let offsets: Vec<u128> = sent.iter().map(|(at, _)| (*at - now).as_millis()).collect();
        assert_eq!(&offsets[..5], &[500, 1500, 3500, 7500, 11500]);
        assert_eq!(
            events,
            vec![(now + Duration::from_secs(32), TxEvent::Timeout(key))]
        );
    }

    #[test]
    fn client_final_response_stops_retransmission() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let bye = req("BYE", "z9hG4bKc2");
        let (key, _) = t.send_request(&Outgoing::from_request(&bye), udp_peer(), now);
        let ok = super::super::message::response(&bye, rsipstack::sip::StatusCode::OK);
        let (inc, _) = t.on_response(ok.clone(), now + Duration::from_millis(100));
        assert!(matches!(inc, Incoming::Response { key: k, .. } if k == key));
        let (inc, _) = t.on_response(ok, now + Duration::from_millis(200));
        assert!(matches!(inc, Incoming::Absorbed));
        let (sent, events) = run(&mut t, now + Duration::from_secs(40));
        assert!(sent.is_empty());
        assert!(events.is_empty());
        assert_eq!(t.len(), (0, 0));
    }

    #[test]
    fn invite_client_acks_failure_itself() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let inv = req("INVITE", "z9hG4bKc3");
        t.send_request(&Outgoing::from_request(&inv), udp_peer(), now);
        let busy = super::super::message::with_to_tag(
            super::super::message::response(&inv, rsipstack::sip::StatusCode::BusyHere),
            "agent",
        );
        let (inc, ack) = t.on_response(busy, now);
        assert!(matches!(inc, Incoming::Response { .. }));
        let ack = String::from_utf8(ack.unwrap().bytes.to_vec()).unwrap();
        assert!(
            ack.starts_with("ACK sip:115@127.0.0.1 SIP/2.0\r\n"),
            "{ack}"
        );
        assert!(ack.contains("tag=agent"), "{ack}");
        assert!(ack.contains("CSeq: 1 ACK"), "{ack}");
    }

    #[test]
    fn stray_response_is_reported() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let r = super::super::message::response(
            &req("BYE", "z9hG4bKzz"),
            rsipstack::sip::StatusCode::OK,
        );
        assert!(matches!(t.on_response(r, now).0, Incoming::Stray));
    }

    #[test]
    fn a_stateless_answer_keeps_nothing_and_sources_are_counted() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let ip = udp_peer().addr.ip();
        let (Incoming::Request { key, request }, _) =
            t.on_request(req("INVITE", "z9hG4bK5"), udp_peer(), now)
        else {
            panic!()
        };
        let (Incoming::Request { key: other, .. }, _) =
            t.on_request(req("OPTIONS", "z9hG4bK6"), udp_peer(), now)
        else {
            panic!()
        };
        assert_eq!(t.server_count_of(ip), 2);
        let forbidden =
            super::super::message::response(&request, rsipstack::sip::StatusCode::Forbidden);
        let sent = t.respond_stateless(
            &key,
            403,
            || super::super::message::encode_response(&forbidden),
            now,
        );
        assert!(sent.unwrap().bytes.starts_with(b"SIP/2.0 403"));
        assert_eq!(t.len(), (1, 0));
        assert_eq!(t.server_count_of(ip), 1);
        assert_eq!(t.poll_timeout(), None, "no timer left behind");
        // The retransmission is a new request, answered anew.
        assert!(matches!(
            t.on_request(req("INVITE", "z9hG4bK5"), udp_peer(), now).0,
            Incoming::Request { .. }
        ));
        // After a provisional the answer stays stateful.
        let trying = super::super::message::response(&request, rsipstack::sip::StatusCode::Trying);
        t.respond(&key, &trying, now).unwrap();
        t.respond_stateless(
            &key,
            486,
            || super::super::message::encode_response(&forbidden),
            now,
        )
        .unwrap();
        assert!(t.is_answered(&key));
        // Expiry gives the source's count back.
        let ok = super::super::message::response(
            &req("OPTIONS", "z9hG4bK6"),
            rsipstack::sip::StatusCode::OK,
        );
        t.respond(&other, &ok, now).unwrap();
        run(&mut t, now + Duration::from_secs(60));
        assert_eq!(t.len(), (0, 0));
        assert_eq!(t.server_count_of(ip), 0);
    }
}

#[cfg(test)]
mod tcp_tests {
    use super::*;
    use crate::sip::message::{StatusCode, response};

    #[test]
    fn non_invite_over_tcp_is_forgotten_at_once() {
        let now = Instant::now();
        let mut t = Transactions::new(Timers::default());
        let peer = Peer {
            transport: Transport::Tcp,
            addr: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let req = Request::try_from(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n\
             From: sip:watson@example.com;tag=838293\r\nTo: sip:watson@example.com\r\n\
             Call-ID: c\r\nCSeq: 3 REGISTER\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        let (Incoming::Request { key, request }, _) = t.on_request(req.clone(), peer, now) else {
            panic!()
        };
        t.respond(&key, &response(&request, StatusCode::Unauthorized), now)
            .unwrap();
        assert_eq!(t.poll_timeout(), Some(now));
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        t.handle_timeout(now, &mut out, &mut ev);
        assert_eq!(t.len(), (0, 0));
        assert!(matches!(
            t.on_request(req, peer, now).0,
            Incoming::Request { .. }
        ));
    }
}

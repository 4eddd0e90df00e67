//! The core: every SIP message and timer of the daemon goes through here.
//!
//! [`Core`] owns the transactions, the registrar, the calls and the ledger
//! of RTP port numbers, and does no IO: it is driven by a shell
//! ([`super::driver`] in the daemon; the fuzz harness and the tests in
//! process). Its inputs are few: a framed message from a peer
//! ([`Core::on_message`]), a media worker event ([`Core::on_media_event`]),
//! a port that could not be bound ([`Core::on_port_failed`]), a change of
//! the agents ([`Core::acd_changed`]) and time ([`Core::handle_timeout`],
//! due at [`Core::poll_timeout`]). Each takes the monotonic `now`; the wall
//! clock (`--clock`) and the random generator every identifier is drawn
//! from are given at construction. What the core wants done comes out as
//! values in an [`Outputs`] ([`output`]): SIP transmits, RTP port binds,
//! media commands and call records. A panic while handling one input ends
//! only the call it was for ([`isolation`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod admission;
mod index;
mod invite;
mod isolation;
mod legs;
mod output;
mod ports;
mod queueing;
mod records;
mod routing;
mod session;

pub use admission::TcpFlows;
use output::MediaQueue;
pub use output::{CallEvent, MediaCommand, Outputs, PortRequest};

pub use queueing::acd_spec;

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::clock::WallClock;
use crate::acd::{Acd, AgentCommand, AgentError, AgentSnapshot};
use crate::call::session_timer::{self, Negotiation};
use crate::call::{Action, EndReason};
use crate::config::Config;
use crate::dialplan::{CallSlots, Dialplan, Menu};
use crate::media::engine::MediaEvent;
use crate::media::prompt::PromptLibrary;
use crate::media::sdp::{self, SdpSession};
use crate::metrics::{Metrics, ReasonLabel, RefusedLabels};
use crate::rng::SeededRng;
use crate::sip::Transport;
use crate::sip::auth::{AuthEvent, Authenticator, Challenge, Verdict};
use crate::sip::digest::{Algorithm, DigestServer};
use crate::sip::headers;
use crate::sip::lockout::Lockout;
use crate::sip::message::{
    ALLOW, Header, Method, Reply, Request, Response, StatusCode, encode_reply, response,
    sdp_refusal, set_body, tag_of, with_to_tag,
};
use crate::sip::registrar::{Accounts, Registrar, RegistrarSettings, RegistrationChange};
use crate::sip::screen::{Ack, Screened, screen};
use crate::sip::transaction::{Incoming, Peer, ServerKey, Timers, Transactions, Transmit, TxEvent};
use crate::sip::via::{TopVia, stamp_received};
use index::{DialogKey, Index, Purpose, SessionId, Side};
use session::{CallerLeg, CallingParty, Phase, Session};

/// Seconds an overloaded zentrale asks callers to wait before retrying.
const RETRY_AFTER_OVERLOAD: u32 = 5;

/// Refused requests are logged at most once per 10 s per source address,
/// with the count of those left out (a scanner or a broken peer must not
/// fill the log); every refusal still counts in `zentrale_sip_rejected_total`.
static REFUSED: crate::logging::limit::KeyedLogLimit<IpAddr> =
    crate::logging::limit::KeyedLogLimit::new(Duration::from_secs(10), 1);

fn log_refused(
    peer: std::net::SocketAddr,
    status: impl std::fmt::Display,
    reason: &str,
    now: Instant,
) {
    if let Some(admit) = REFUSED.admit(peer.ip(), now) {
        warn!(%peer, %status, reason, suppressed = admit.suppressed, "SIP request refused");
    }
}

/// Passwords of agents (by extension) and trunks (by username), and the
/// digest algorithms offered to each.
struct AccountBook {
    agents: HashMap<String, String>,
    trunks: HashMap<String, String>,
    /// Accounts with their own `digest_algorithms`.
    algorithms: HashMap<String, Vec<Algorithm>>,
    /// `sip.digest_algorithms`: everyone else, unknown users included.
    default_algorithms: Vec<Algorithm>,
}

impl AccountBook {
    fn new(config: &Config) -> AccountBook {
        let mut book = AccountBook {
            agents: HashMap::new(),
            trunks: config
                .trunks
                .iter()
                .filter_map(|t| t.credentials.as_ref())
                .map(|c| (c.username.clone(), c.password.clone()))
                .collect(),
            algorithms: config
                .trunks
                .iter()
                .filter_map(|t| Some((t.credentials.as_ref()?, t.digest_algorithms.as_ref()?)))
                .map(|(c, a)| (c.username.clone(), a.clone()))
                .collect(),
            default_algorithms: config.sip.digest_algorithms.clone(),
        };
        book.set_agents(config);
        book
    }

    /// The agents' passwords and algorithms from `config` (on reload too).
    fn set_agents(&mut self, config: &Config) {
        for ext in self.agents.keys() {
            self.algorithms.remove(ext);
        }
        self.agents = config
            .agents
            .iter()
            .map(|a| (a.extension.clone(), a.password.clone()))
            .collect();
        for a in &config.agents {
            if let Some(algs) = &a.digest_algorithms {
                self.algorithms.insert(a.extension.clone(), algs.clone());
            }
        }
    }
}

impl Accounts for AccountBook {
    fn password(&self, user: &str) -> Option<String> {
        self.agents
            .get(user)
            .or_else(|| self.trunks.get(user))
            .cloned()
    }

    fn digest_algorithms(&self, user: &str) -> &[Algorithm] {
        self.algorithms
            .get(user)
            .unwrap_or(&self.default_algorithms)
    }
}

/// What the handling of an ACK reads of it, from a [`Request`] or borrowed
/// by screening.
struct AckOf<'a> {
    call_id: &'a str,
    from_tag: Option<&'a str>,
    to_tag: Option<&'a str>,
    cseq: Option<u32>,
    /// The body when it is SDP.
    sdp: Option<&'a [u8]>,
}

/// See the module docs.
pub struct Core {
    config: Arc<Config>,
    dialplan: Dialplan,
    transactions: Transactions,
    auth: Authenticator,
    registrar: Registrar,
    accounts: AccountBook,
    /// The calls, each one [`Session`].
    sessions: index::IdMap<SessionId, Session>,
    /// Sessions with a caller leg: the calls alive (`sip.max_calls`).
    callers: usize,
    /// Routes every input to its session ([`index`]).
    index: Index,
    trunk_calls: Vec<u32>,
    /// Which RTP port numbers are free ([`ports`]).
    ports: ports::PortLedger,
    /// Port requests of this turn, handed out with [`Outputs::ports`].
    port_requests: Vec<PortRequest>,
    prompts: PromptLibrary,
    /// Media commands of this turn, handed out with [`Outputs::media`].
    media: MediaQueue,
    next_stream: u64,
    pub metrics: Arc<Metrics>,
    /// The ACD engine, shared with the HTTP API.
    pub acd: Arc<Acd>,
    /// Something changed that may let a waiting caller meet a free agent.
    acd_dirty: bool,
    /// When to dispatch again after zentrale could not place an agent's
    /// leg (no RTP port): the caller waits on, and nothing else may come
    /// along to retry.
    dispatch_retry: Option<Instant>,
    next_session: u64,
    next_leg: u64,
    /// Queue configs by ACD name.
    queues: HashMap<String, crate::config::Queue>,
    /// The civil time service hours are evaluated at.
    clock: WallClock,
    /// Calls alive per tenant (surge limits).
    tenant_calls: HashMap<String, u32>,
    /// Each tenant's share of the call slots, and what it holds.
    slots: CallSlots,
    /// Call records of this turn, handed out with [`Outputs::records`].
    records: Vec<crate::cdr::CallRecord>,
    /// Call events of this turn, handed out with [`Outputs::events`].
    events: Vec<CallEvent>,
    /// The one source of tags, Call-IDs, branches, CSeqs and nonces
    /// ([`crate::rng`]).
    rng: SeededRng,
    /// The session whose input is being handled, if any ([`isolation`]).
    handling: Option<SessionId>,
    /// The call whose next in-dialog request panics (tests of [`isolation`]).
    #[cfg(test)]
    fault: Option<String>,
    /// Rates, transaction caps, stateless answers (`sip.limits`).
    guard: admission::Guard,
}

impl Core {
    /// A core for `config`. `clock`
    /// maps the monotonic `now` of every input to wall-clock time (service
    /// hours, `Date` headers, call records: `--clock` moves them all);
    /// `rng` draws every identifier (seed it from entropy in production,
    /// with a fixed seed in tests).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Arc<Config>,
        prompts: PromptLibrary,
        metrics: Arc<Metrics>,
        acd: Arc<Acd>,
        clock: WallClock,
        mut rng: SeededRng,
        now: Instant,
    ) -> Core {
        let accounts = AccountBook::new(&config);
        let register = &config.sip.register;
        let guard = admission::Guard::new(&config, &metrics, now);
        let ledger = ports::PortLedger::new(config.rtp.first_port, config.rtp.last_port);
        let slots = CallSlots::new(
            crate::dialplan::caller_slots(
                config.sip.max_calls,
                ledger.capacity(),
                config.agents.len(),
            ),
            &slot_shares(&config),
        );
        log_slots(&slots, &config);
        Core {
            slots,
            dialplan: config.dialplan(),
            transactions: Transactions::new(Timers::default()),
            auth: Authenticator::new(
                DigestServer::seeded(
                    config.sip.realm.clone(),
                    config.sip.nonce_ttl,
                    now,
                    rng.fork(),
                )
                .with_max_nonce_failures(config.sip.nonce_failures),
                Lockout::new(config.sip.auth_limits),
            ),
            registrar: {
                let mut registrar = Registrar::seeded(
                    RegistrarSettings {
                        min_expires: register.min_expires,
                        max_expires: register.max_expires,
                        default_expires: register.default_expires,
                    },
                    rng.fork(),
                );
                let (at, wall) = clock.anchor();
                registrar.set_wall_clock(at, wall.into());
                registrar
            },
            accounts,
            sessions: index::IdMap::default(),
            callers: 0,
            index: Index::default(),
            trunk_calls: vec![0; config.trunks.len()],
            ports: ledger,
            port_requests: Vec::new(),
            prompts,
            media: MediaQueue::default(),
            next_stream: 1,
            metrics,
            acd,
            acd_dirty: false,
            dispatch_retry: None,
            next_session: 1,
            next_leg: 1,
            queues: Core::queue_table(&config),
            clock,
            tenant_calls: HashMap::new(),
            records: Vec::new(),
            events: Vec::new(),
            rng,
            handling: None,
            #[cfg(test)]
            fault: None,
            guard,
            config,
        }
    }

    /// Swaps in a reloaded config for new calls: dialplan, queue table,
    /// ACD spec, prompts, agent passwords. Calls in progress keep their
    /// route, waiting callers their queue and place. Listeners, the RTP
    /// range and the rest of `sip:`, `rtp:`, `http:` and `trunks:` keep the
    /// running values; the returned list names those that changed (a
    /// restart applies them). `Err` when the ACD refuses the new queues or
    /// agents (e.g. a queue with callers removed); nothing changes then.
    pub fn reload(
        &mut self,
        mut config: Config,
        prompts: PromptLibrary,
    ) -> Result<Vec<String>, String> {
        let old = self.config.clone();
        let mut restart = Vec::new();
        if config.sip != old.sip {
            restart.push("sip: (listeners, realm, registration, limits)".to_string());
            config.sip = old.sip.clone();
        }
        if config.rtp != old.rtp {
            restart.push("RTP port range and timeout (rtp:)".to_string());
            config.rtp = old.rtp;
        }
        // Tokens and the rest of `http:` apply at once (daemon::load hands
        // them to the API); only the listener waits for a restart.
        if config.http.listen != old.http.listen {
            restart.push("HTTP listener (http.listen)".to_string());
            config.http.listen = old.http.listen;
        }
        if config.trunks != old.trunks {
            // Calls in progress count against their trunk by position.
            restart.push("trunks".to_string());
            config.trunks = old.trunks.clone();
        }
        self.acd.update_spec(acd_spec(&config)).map_err(|e| {
            format!("the new queues and agents do not fit the running ones: {e}; the running config stays")
        })?;
        self.dialplan = config.dialplan();
        self.slots.configure(&slot_shares(&config));
        log_slots(&self.slots, &config);
        self.queues = Core::queue_table(&config);
        self.accounts.set_agents(&config);
        // A removed account's phone must not stay reachable until its
        // registration lapses.
        let agents = &self.accounts.agents;
        let gone = self
            .registrar
            .retain_extensions(|ext| agents.contains_key(ext));
        if !gone.is_empty() {
            info!(extensions = %gone.join(", "), "registrations of removed agents dropped");
            self.count_registrations();
        }
        self.prompts = prompts;
        self.metrics.hours.update(&config);
        self.config = Arc::new(config);
        self.acd_dirty = true;
        Ok(restart)
    }

    /// Sets the registrations gauge after the registrar changed.
    fn count_registrations(&self) {
        self.metrics
            .registrations
            .set(self.registrar.registered_count() as i64);
    }

    /// Number of calls alive (ringing, up or ending).
    pub fn active_calls(&self) -> usize {
        self.callers
    }

    /// Handles one framed message from `peer`.
    pub fn on_message(&mut self, data: &[u8], peer: Peer, now: Instant, out: &mut Outputs) {
        if !self.within_rate(peer, now) {
            return;
        }
        let tx = &mut out.transmits;
        self.isolated(now, tx, |core, tx| core.screened(data, peer, now, tx));
        self.isolated(now, tx, |core, tx| core.run_dispatch(now, tx));
        let (s, c) = self.transactions.len();
        self.metrics.sip_transactions.set((s + c) as i64);
        self.hand_out(out);
    }

    /// Moves what the turn queued inside the core into `out`.
    fn hand_out(&mut self, out: &mut Outputs) {
        out.ports.append(&mut self.port_requests);
        out.media.append(&mut self.media.0);
        out.records.append(&mut self.records);
        out.events.append(&mut self.events);
    }

    fn screened(&mut self, data: &[u8], peer: Peer, now: Instant, out: &mut Vec<Transmit>) {
        match screen(data, peer.transport) {
            Screened::Request(req) => self.on_request(*req, peer, now, out),
            Screened::Ack(ack) => self.on_borrowed_ack(ack, peer, now),
            Screened::Response(resp) => self.on_response(*resp, now, out),
            Screened::Reject { status, response } => {
                log_refused(peer.addr, status, "malformed", now);
                self.metrics.rejected("malformed");
                self.metrics.response_sent(status);
                out.push(Transmit {
                    peer: reply_peer(data, peer),
                    bytes: Bytes::from(response),
                });
            }
            Screened::Drop(reason) => {
                if reason != "keepalive" {
                    debug!(reason, peer = %peer.addr, "message dropped");
                    self.metrics.rejected("dropped");
                }
            }
        }
    }

    fn on_request(&mut self, mut req: Request, peer: Peer, now: Instant, out: &mut Vec<Transmit>) {
        self.metrics.request_received(&req.method);
        // The screen guarantees a Via; without one there is nothing to match.
        let Some(via) = stamp_received(&mut req.headers, peer.addr) else {
            return;
        };
        let reply_to = response_peer_via(&via, peer);
        if self.refuse_over_cap(&req, &via, peer, reply_to, now, out) {
            return;
        }
        let (incoming, resend) = self.transactions.on_request_via(req, &via, reply_to, now);
        if let Some(t) = resend {
            self.metrics.sip_retransmissions.inc();
            out.push(t);
        }
        match incoming {
            Incoming::Request { key, request } => {
                // A re-INVITE's refusal stays stateful: its ACK must find
                // the transaction, not the dialog.
                if request.method != Method::Invite || header_tag(&request, true).is_none() {
                    self.guard.stateless = Some(key.clone());
                }
                self.dispatch(key, request, peer, reply_to, now, out);
                self.guard.stateless = None;
            }
            Incoming::Ack(ack) => self.on_ack(&AckOf {
                call_id: call_id_of(&ack),
                from_tag: header_tag(&ack, false),
                to_tag: header_tag(&ack, true),
                cseq: cseq_number(&ack),
                sdp: has_sdp_body(&ack).then_some(&ack.body[..]),
            }),
            Incoming::Absorbed | Incoming::Stray | Incoming::Response { .. } => {}
        }
    }

    /// `reply_to` is where responses to `req` go (from its top Via).
    fn dispatch(
        &mut self,
        key: ServerKey,
        req: Request,
        peer: Peer,
        reply_to: Peer,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        match req.method {
            Method::Invite => self.on_invite(key, req, peer, reply_to, now, out),
            Method::Register => {
                if self.refuse_many_contacts(&key, &req, now, out) {
                    return;
                }
                let outcome = self.registrar.handle_register(
                    &req,
                    peer.addr,
                    peer.transport,
                    &mut self.auth,
                    &self.accounts,
                    now,
                );
                if let Some(event) = &outcome.auth_event {
                    self.auth_failed(event, "REGISTER");
                }
                if let Some((ext, change)) = &outcome.changed {
                    info!(extension = %ext, ?change, "registration changed");
                    if matches!(
                        change,
                        RegistrationChange::Registered | RegistrationChange::Unregistered
                    ) {
                        self.count_registrations();
                    }
                    let registered = !matches!(change, RegistrationChange::Unregistered);
                    let ext = ext.clone();
                    self.agent_registered(&ext, registered, now);
                }
                self.respond(&key, &outcome.response, now, out);
                self.registration_flow(peer, now);
            }
            Method::Options => {
                let mut resp = response(&req, StatusCode::OK);
                add_capabilities(&mut resp);
                let tag = self.rng.token();
                self.respond(&key, &with_to_tag(resp, &tag), now, out);
            }
            Method::Cancel => self.on_cancel(key, req, now, out),
            Method::Bye => self.on_bye(key, req, now, out),
            Method::Update | Method::Info => self.on_in_dialog(key, req, now, out),
            Method::Ack => {}
            _ => {
                let mut resp = response(&req, StatusCode::MethodNotAllowed);
                resp.headers.push(Header::Allow(ALLOW.into()));
                self.respond(&key, &resp, now, out);
            }
        }
    }

    /// Counts a call refused after routing (`zentrale_calls_refused_total`).
    fn refused(&self, tenant: &str, reason: &str) {
        self.metrics
            .calls_refused
            .get_or_create(&RefusedLabels {
                tenant: tenant.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The networks `origin`'s media may go to (`media_networks`; empty:
    /// anywhere).
    fn media_networks(&self, origin: &CallingParty) -> &[crate::config::Cidr] {
        match origin {
            CallingParty::Trunk(i) => self
                .config
                .trunks
                .get(*i)
                .map_or(&[], |t| &t.media_networks[..]),
            CallingParty::Agent(ext) => self.agent_media_networks(ext),
        }
    }

    fn agent_media_networks(&self, ext: &str) -> &[crate::config::Cidr] {
        self.config
            .agents
            .iter()
            .find(|a| a.extension == ext)
            .map_or(&[], |a| &a.media_networks[..])
    }

    /// `Err` (what to tell the peer) when an SDP names a media address
    /// outside `origin`'s `media_networks`.
    fn media_allowed(
        &self,
        origin: &CallingParty,
        remote: Option<std::net::SocketAddr>,
    ) -> Result<(), String> {
        media_address_allowed(self.media_networks(origin), remote)
    }

    /// 488 with a Warning: the SDP names a media address we will not send to.
    fn media_refusal(&self, req: &Request, why: &str) -> Response {
        info!(call_id = call_id_of(req), why, "media address refused: 488");
        self.metrics.rejected("media_address");
        let mut resp = response(req, StatusCode::NotAcceptableHere);
        warning(&mut resp, why);
        resp
    }

    /// Decides whether an initial INVITE comes from a trunk or an agent
    /// and authenticates it. See README "Trunks and agents".
    fn identify(
        &mut self,
        req: &Request,
        peer: Peer,
        now: Instant,
    ) -> Result<CallingParty, Response> {
        let from_user = from_user(req);
        let proxy_auth = req.headers.iter().find_map(|h| match h {
            Header::ProxyAuthorization(v) => Some(v.value().to_owned()),
            _ => None,
        });
        let is_agent = from_user.as_deref().is_some_and(|u| {
            self.accounts.agents.contains_key(u)
                && (proxy_auth.is_some()
                    || self
                        .registrar
                        .bindings(u, now)
                        .iter()
                        .any(|b| b.source == peer.addr))
        });
        if is_agent {
            let user = from_user.unwrap_or_default();
            return self.authenticate(req, &user, peer, now).and_then(|authed| {
                if authed == user {
                    Ok(CallingParty::Agent(user))
                } else {
                    self.metrics.rejected("auth_identity_mismatch");
                    Err(response(req, StatusCode::Forbidden))
                }
            });
        }
        let trunk = self
            .config
            .trunks
            .iter()
            .position(|t| t.sources.iter().any(|c| c.contains(peer.addr.ip())));
        let Some(i) = trunk else {
            self.metrics.rejected("source_not_allowed");
            log_refused(peer.addr, 403, "source_not_allowed", now);
            let mut resp = response(req, StatusCode::Forbidden);
            warning(
                &mut resp,
                "source address is not an allowed trunk source and the caller is not a registered agent",
            );
            return Err(resp);
        };
        if self.config.trunks[i].tls_only && peer.transport != Transport::Tls {
            self.metrics.rejected("trunk_needs_tls");
            let mut resp = response(req, StatusCode::Forbidden);
            warning(&mut resp, "this trunk sends its calls over SIP-TLS only");
            return Err(resp);
        }
        if let Some(creds) = self.config.trunks[i].credentials.clone() {
            let authed = self.authenticate(req, &creds.username, peer, now)?;
            if authed != creds.username {
                self.metrics.rejected("auth_identity_mismatch");
                return Err(response(req, StatusCode::Forbidden));
            }
        }
        Ok(CallingParty::Trunk(i))
    }

    /// Digest authentication of an INVITE for `account` (an agent's
    /// extension, a trunk's user name): 407 to challenge, 403 while locked
    /// out, 400 when the digest `uri` is not the Request-URI.
    fn authenticate(
        &mut self,
        req: &Request,
        account: &str,
        peer: Peer,
        now: Instant,
    ) -> Result<String, Response> {
        let result = self.auth.authenticate(
            req,
            Challenge::Proxy,
            account,
            peer.addr.ip(),
            &self.accounts,
            now,
        );
        if let Some(event) = &result.event {
            self.auth_failed(event, "INVITE");
        }
        match result.verdict {
            Verdict::Authenticated(user) => Ok(user),
            Verdict::Challenge(challenges) => {
                if result.event.is_some() {
                    self.metrics.rejected("auth_failed");
                }
                let mut resp = response(req, StatusCode::ProxyAuthenticationRequired);
                for c in challenges {
                    resp.headers.push(Header::ProxyAuthenticate(c.into()));
                }
                Err(resp)
            }
            Verdict::Locked => {
                self.metrics.rejected("auth_locked");
                let mut resp = response(req, StatusCode::Forbidden);
                warning(
                    &mut resp,
                    "too many failed authentications; try again later",
                );
                Err(resp)
            }
            Verdict::BadRequest(why) => {
                self.metrics.rejected("auth_failed");
                let mut resp = response(req, StatusCode::BadRequest);
                warning(&mut resp, why);
                Err(resp)
            }
        }
    }

    /// Counts a failed or refused authentication and writes its log line
    /// when the rate limit lets it (see README "Brute force and fail2ban":
    /// the filter there matches this line; `source` comes before the
    /// account, which the client chose and is written quoted).
    fn auth_failed(&self, event: &AuthEvent, method: &'static str) {
        self.metrics
            .auth_failures
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: event.reason,
            })
            .inc();
        if let Some((scope, _)) = event.lockout {
            self.metrics
                .auth_lockouts
                .get_or_create(&crate::metrics::ScopeLabel {
                    scope: scope.as_str(),
                })
                .inc();
        }
        if let (Some((scope, secs)), Some(_)) = (event.lockout, event.log) {
            warn!(
                source = %event.source,
                account = ?event.account,
                scope = scope.as_str(),
                lockout_secs = secs.as_secs(),
                "SIP authentication locked out"
            );
        }
        match event.log {
            Some(suppressed) => warn!(
                source = %event.source,
                account = ?event.account,
                method,
                reason = event.reason,
                suppressed,
                "SIP authentication failed"
            ),
            None => {
                debug!(source = %event.source, reason = event.reason, "SIP authentication failed")
            }
        }
    }

    /// An ACK as screening borrowed it ([`Screened::Ack`]): the same as
    /// one that came as a [`Request`], without building it.
    fn on_borrowed_ack(&mut self, ack: Ack<'_>, peer: Peer, now: Instant) {
        self.metrics.request_received(&Method::Ack);
        // Screening wrote this Via; it parses.
        let Some(via) = TopVia::parse(&ack.via) else {
            return;
        };
        let from_tag = tag_of(ack.from);
        let dialog = (ack.call_id, from_tag, ack.cseq);
        if self.transactions.on_ack(&via, dialog, peer.transport, now) {
            return;
        }
        self.on_ack(&AckOf {
            call_id: ack.call_id,
            from_tag,
            to_tag: tag_of(ack.to),
            cseq: Some(ack.cseq),
            sdp: ack.sdp,
        });
    }

    /// The ACK of a 2xx of ours.
    fn on_ack(&mut self, ack: &AckOf<'_>) {
        let dialog = DialogKey {
            call_id: ack.call_id,
            local_tag: ack.to_tag,
            remote_tag: ack.from_tag,
        };
        let Some((sid, side)) = self.index.dialog(&dialog) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Side::Leg(lid) = side {
            // The ACK of our 2xx to an agent's re-INVITE.
            if let Some(key) = s.leg_mut(lid).and_then(|l| l.reinvite.take()) {
                self.transactions.ack_received(&key);
            }
            return;
        }
        if !s
            .caller
            .as_ref()
            .is_some_and(|c| c.call.dialog.matches(ack.from_tag, ack.to_tag))
        {
            return;
        }
        self.handling = Some(sid);
        let Some(caller) = s.caller.as_mut() else {
            return;
        };
        match caller.reinvite.take() {
            Some((cseq, key)) if ack.cseq == Some(cseq) => {
                self.transactions.ack_received(&key);
                return;
            }
            other => caller.reinvite = other,
        }
        self.transactions.ack_received(&caller.call.invite_key);
        self.media.confirm(caller.media.stream);
        if caller.media.negotiated.is_none()
            && let Some(body) = ack.sdp
        {
            // The answer to our offer in an offerless INVITE's 200.
            let networks = match &caller.origin {
                CallingParty::Trunk(i) => self.config.trunks.get(*i).map(|t| &t.media_networks[..]),
                CallingParty::Agent(ext) => self
                    .config
                    .agents
                    .iter()
                    .find(|a| &a.extension == ext)
                    .map(|a| &a.media_networks[..]),
            };
            match sdp::parse_answer_with_srtp(body, &mut caller.media.session, caller.media.srtp) {
                Ok(a) if media_address_allowed(networks.unwrap_or_default(), a.remote).is_err() => {
                    // An ACK cannot be refused: nothing is sent there, and
                    // the stream waits for RTP from the caller.
                    warn!(call_id = %caller.call.dialog.call_id, remote = ?a.remote, "media address in the ACK is outside the allowed media networks; ignored");
                }
                Ok(a) => {
                    self.media.set_srtp(caller.media.stream, a.srtp.clone());
                    self.media.set_remote(caller.media.stream, a.remote);
                    caller.media.negotiated = Some(a);
                }
                Err(e) => {
                    warn!(call_id = %caller.call.dialog.call_id, error = %e, "bad SDP answer in ACK")
                }
            }
        }
        caller.call.on_ack();
    }

    fn on_cancel(&mut self, key: ServerKey, req: Request, now: Instant, out: &mut Vec<Transmit>) {
        let invite_key = key.invite_of_cancel();
        let sid = self.index.caller(call_id_of(&req)).filter(|sid| {
            self.caller(*sid)
                .is_some_and(|c| c.call.invite_key == invite_key)
        });
        let Some(sid) = sid else {
            let status = if self.transactions.has_server(&invite_key) {
                StatusCode::OK
            } else {
                StatusCode::CallTransactionDoesNotExist
            };
            return self.respond(&key, &response(&req, status), now, out);
        };
        let tag = self.rng.token();
        self.respond(
            &key,
            &with_to_tag(response(&req, StatusCode::OK), &tag),
            now,
            out,
        );
        let actions = self
            .caller_mut(sid)
            .map(|c| c.call.on_cancel())
            .unwrap_or_default();
        self.execute(sid, actions, now, out);
    }

    fn on_bye(&mut self, key: ServerKey, req: Request, now: Instant, out: &mut Vec<Transmit>) {
        let dialog = dialog_key(&req);
        let found = self.index.dialog(&dialog);
        if let Some((sid, Side::Leg(lid))) = found {
            let ours = self
                .sessions
                .get(&sid)
                .and_then(|s| s.leg(lid))
                .is_some_and(|l| l.sip.matches(dialog.remote_tag, dialog.local_tag));
            let status = if ours {
                StatusCode::OK
            } else {
                StatusCode::CallTransactionDoesNotExist
            };
            self.respond(&key, &response(&req, status), now, out);
            if ours {
                self.handling = Some(sid);
                self.on_leg_bye(sid, lid, now, out);
            }
            return;
        }
        let sid = found.map(|(sid, _)| sid).filter(|sid| {
            self.caller(*sid)
                .is_some_and(|c| c.call.dialog.matches(dialog.remote_tag, dialog.local_tag))
        });
        let Some(sid) = sid else {
            return self.respond(
                &key,
                &response(&req, StatusCode::CallTransactionDoesNotExist),
                now,
                out,
            );
        };
        self.reply(&key, &req, StatusCode::OK, now, out);
        let actions = self
            .caller_mut(sid)
            .map(|c| c.call.on_bye())
            .unwrap_or_default();
        self.execute(sid, actions, now, out);
    }

    /// re-INVITE, UPDATE and INFO inside a dialog.
    fn on_in_dialog(
        &mut self,
        key: ServerKey,
        req: Request,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let dialog = dialog_key(&req);
        let found = self.index.dialog(&dialog);
        if let Some((sid, Side::Leg(lid))) = found {
            return self.on_leg_in_dialog(sid, lid, key, req, now, out);
        }
        let Some(sid) = found.map(|(sid, _)| sid) else {
            return self.respond(
                &key,
                &response(&req, StatusCode::CallTransactionDoesNotExist),
                now,
                out,
            );
        };
        // Empty for most: no allocation.
        let networks = self
            .caller(sid)
            .map(|c| self.media_networks(&c.origin).to_vec())
            .unwrap_or_default();
        let Some(caller) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut()) else {
            return self.respond(
                &key,
                &response(&req, StatusCode::CallTransactionDoesNotExist),
                now,
                out,
            );
        };
        if !caller
            .call
            .dialog
            .matches(dialog.remote_tag, dialog.local_tag)
        {
            return self.respond(
                &key,
                &response(&req, StatusCode::CallTransactionDoesNotExist),
                now,
                out,
            );
        }
        let cseq = cseq_number(&req).unwrap_or(0);
        if cseq <= caller.call.dialog.remote_cseq && req.method != Method::Info {
            // RFC 3261 §12.2.2: lower CSeq than seen → 500.
            let mut resp = response(&req, StatusCode::ServerInternalError);
            warning(&mut resp, "CSeq out of order");
            return self.respond(&key, &resp, now, out);
        }
        caller.call.dialog.remote_cseq = cseq.max(caller.call.dialog.remote_cseq);
        self.handling = Some(sid);
        self.fault_point(sid);
        let Some(caller) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut()) else {
            return;
        };
        let tag = caller.call.dialog.local_tag.clone();
        if req.method == Method::Info {
            // DTMF by SIP INFO feeds a running menu like RFC 4733 events.
            let resp = with_to_tag(response(&req, StatusCode::OK), &tag);
            self.respond(&key, &resp, now, out);
            if let Some(digit) = routing::info_digit(&req) {
                self.on_digit(sid, digit, now, out);
            }
            return;
        }
        let session = match session_timer::negotiate(&req, self.config.sip.min_se) {
            Negotiation::TooSmall { min_se } => {
                let mut resp =
                    with_to_tag(response(&req, StatusCode::SessionIntervalTooSmall), &tag);
                resp.headers.push(Header::MinSE(min_se.to_string().into()));
                return self.respond(&key, &resp, now, out);
            }
            Negotiation::Agreed(t) => Some(t),
            Negotiation::None => None,
        };
        let Some(caller) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut()) else {
            return;
        };
        let mut resp = with_to_tag(response(&req, StatusCode::OK), &tag);
        if has_sdp_body(&req) {
            let local_ip = media_ip(caller.call.dialog.source.local.ip());
            match sdp::answer_with_srtp(
                &req.body,
                local_ip,
                caller.media.port,
                &mut caller.media.session,
                caller.media.srtp,
            ) {
                Ok(a) if media_address_allowed(&networks, a.remote).is_err() => {
                    let why = media_address_allowed(&networks, a.remote)
                        .err()
                        .unwrap_or_default();
                    let mut resp = with_to_tag(response(&req, StatusCode::NotAcceptableHere), &tag);
                    warning(&mut resp, &why);
                    self.metrics.rejected("media_address");
                    return self.respond(&key, &resp, now, out);
                }
                Ok(a) => {
                    self.media.set_srtp(caller.media.stream, a.srtp.clone());
                    // Hold (sendonly/inactive) and resume change only the
                    // direction and address; the stream stays continuous.
                    self.media.set_remote(caller.media.stream, a.remote);
                    self.media.set_direction(caller.media.stream, a.direction);
                    caller.media.negotiated = Some(a.negotiated());
                    caller.media.local_sdp = a.sdp;
                }
                Err(e) => {
                    let status = sdp_refusal(&e);
                    let mut resp = with_to_tag(response(&req, status), &tag);
                    warning(&mut resp, &e.to_string());
                    return self.respond(&key, &resp, now, out);
                }
            }
            let body = set_body(&mut resp, "application/sdp", caller.media.local_sdp.clone());
            resp.body = body;
        } else if req.method == Method::Invite {
            // An offerless re-INVITE: offer what we have now.
            let body = set_body(&mut resp, "application/sdp", caller.media.local_sdp.clone());
            resp.body = body;
        }
        let session = session.or(caller.call.session_timer());
        resp.headers
            .push(Header::Contact(caller.call.dialog.contact().into()));
        if let Some(t) = session {
            add_session_expires(&mut resp, t);
        }
        caller.call.on_refresh(session, now);
        if req.method == Method::Invite {
            caller.reinvite = Some((cseq, key.clone()));
        }
        self.respond(&key, &resp, now, out);
        self.run_call_timers(sid, now, out);
    }

    fn on_response(&mut self, resp: Response, now: Instant, out: &mut Vec<Transmit>) {
        // A 2xx to an agent leg's INVITE may come again after its
        // transaction is gone (RFC 6026): the leg must ACK it again.
        let retransmitted_2xx = (resp.status_code.code() / 100 == 2
            && self.index.leg(call_id_in(&resp.headers)).is_some())
        .then(|| resp.clone());
        let (incoming, ack) = self.transactions.on_response(resp, now);
        if let Some(t) = ack {
            out.push(t);
        }
        let Incoming::Response { key, response } = incoming else {
            if let Some(resp) = retransmitted_2xx {
                self.on_leg_2xx_again(&resp, now, out);
            }
            return;
        };
        let code = response.status_code.code();
        let pending = if code < 200 {
            self.index.client(&key)
        } else {
            self.index.take_client(&key)
        };
        let Some((sid, side, what)) = pending else {
            return;
        };
        self.handling = Some(sid);
        if let Side::Leg(lid) = side {
            return self.on_leg_response(sid, lid, what, &response, now, out);
        }
        if code < 200 {
            return;
        }
        let actions = match (
            what,
            self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut()),
        ) {
            (Purpose::Bye, Some(c)) => c.call.on_bye_done(),
            (Purpose::Refresh, Some(c)) => {
                if response.status_code.code() < 300 {
                    c.call.on_refresh_answered(now);
                    Vec::new()
                } else if matches!(response.status_code.code(), 408 | 481) {
                    // RFC 4028 §10 / RFC 5057: the dialog is gone.
                    c.call.hang_up(EndReason::SessionExpired)
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        self.execute(sid, actions, now, out);
    }

    /// Something outside the core's inputs changed the ACD (a reload):
    /// offer calls if that freed an agent.
    pub fn acd_changed(&mut self, now: Instant, out: &mut Outputs) {
        self.acd_dirty = true;
        self.isolated(now, &mut out.transmits, |core, tx| {
            core.run_dispatch(now, tx)
        });
        self.hand_out(out);
    }

    /// An agent command (from the HTTP API; feature codes dialled from a
    /// phone take the same path inside [`Core::on_message`]): applied in
    /// order with every other input, then calls are offered if it freed
    /// the agent. Returns the agent as the command left it, before that
    /// offer, or why it was refused.
    pub fn on_agent_command(
        &mut self,
        command: AgentCommand,
        now: Instant,
        out: &mut Outputs,
    ) -> Result<AgentSnapshot, AgentError> {
        let result = self.agent_command(&command, now);
        self.isolated(now, &mut out.transmits, |core, tx| {
            core.run_dispatch(now, tx)
        });
        self.hand_out(out);
        result
    }

    /// Media worker events.
    pub fn on_media_event(&mut self, event: MediaEvent, now: Instant, out: &mut Outputs) {
        let tx = &mut out.transmits;
        self.isolated(now, tx, |core, tx| core.media_event(event, now, tx));
        self.isolated(now, tx, |core, tx| core.run_dispatch(now, tx));
        self.hand_out(out);
    }

    /// A new SDP session, its id drawn from the core's generator.
    fn sdp_session(&mut self) -> SdpSession {
        // Below 2^62 so even parsers that read a signed 64-bit number cope.
        let id = self.rng.next_u64() >> 2;
        SdpSession::with_id(id, id, &mut self.rng)
    }

    fn media_event(&mut self, event: MediaEvent, now: Instant, out: &mut Vec<Transmit>) {
        let stream = match event {
            MediaEvent::RtpTimeout(s) | MediaEvent::PlaylistDone(s) => s,
            MediaEvent::Dtmf { stream, .. } => stream,
        };
        let Some((sid, side)) = self.index.stream(stream) else {
            return;
        };
        if self.caller(sid).is_some() {
            self.handling = Some(sid);
        }
        match (event, side) {
            (MediaEvent::RtpTimeout(_), Side::Leg(lid)) => {
                info!(session = %sid, leg = %lid, "no RTP from the agent: hanging up");
                self.on_leg_bye_ours(sid, lid, now, out)
            }
            (MediaEvent::RtpTimeout(_), Side::Caller) => {
                let Some(caller) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut())
                else {
                    return;
                };
                info!(call_id = %caller.call.dialog.call_id, "no RTP from the caller: hanging up");
                let actions = caller.call.on_rtp_timeout();
                self.execute(sid, actions, now, out);
            }
            (MediaEvent::Dtmf { stream, digit }, side) => {
                debug!(stream = stream.0, %digit, "DTMF");
                if side == Side::Caller {
                    self.on_digit(sid, digit, now, out);
                }
            }
            (MediaEvent::PlaylistDone(_), Side::Caller) => {
                let Some(s) = self.sessions.get(&sid) else {
                    return;
                };
                match s.phase() {
                    Phase::Closing(_) => self.hang_up_caller(sid, EndReason::Completed, now, out),
                    // The greeting is over: menu, queue or target.
                    Phase::Greeting(_) => self.after_greeting(sid, now, out),
                    Phase::Menu => self.menu_prompt_done(sid, now),
                    _ => {}
                }
            }
            (MediaEvent::PlaylistDone(_), Side::Leg(_)) => {}
        }
    }

    /// The next instant [`Core::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.transactions.poll_timeout(),
            self.index.next_timer().map(|(t, _)| t),
            self.registrar.next_expiry(),
            self.acd.poll_timeout(),
            self.dispatch_retry,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outputs) {
        self.timers_due(now, &mut out.transmits);
        self.hand_out(out);
    }

    fn timers_due(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        let mut events = Vec::new();
        let before = self.transactions.retransmissions;
        self.transactions.handle_timeout(now, out, &mut events);
        self.metrics
            .sip_retransmissions
            .inc_by(self.transactions.retransmissions - before);
        for event in events {
            self.isolated(now, out, |core, out| core.tx_event(event, now, out));
        }
        while let Some((at, sid)) = self.index.next_timer() {
            if at > now {
                break;
            }
            self.index.reschedule(sid, Some(at), None);
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.scheduled = None;
            }
            self.isolated(now, out, |core, out| core.run_call_timers(sid, now, out));
        }
        self.isolated(now, out, |core, out| core.housekeeping_due(now, out));
    }

    /// A transaction's timeout.
    fn tx_event(&mut self, event: TxEvent, now: Instant, out: &mut Vec<Transmit>) {
        match event {
            TxEvent::NoAck(key) => {
                // Rare: a linear look-up keeps the common path free of an index.
                let sid = self
                    .sessions
                    .iter()
                    .find(|(_, s)| s.caller.as_ref().is_some_and(|c| c.call.invite_key == key))
                    .map(|(sid, _)| *sid);
                if let Some(sid) = sid {
                    let actions = self
                        .caller_mut(sid)
                        .map(|c| c.call.on_no_ack())
                        .unwrap_or_default();
                    self.execute(sid, actions, now, out);
                }
            }
            TxEvent::Timeout(key) => {
                let Some((sid, side, what)) = self.index.take_client(&key) else {
                    return;
                };
                self.handling = Some(sid);
                let actions = match (side, what) {
                    (Side::Leg(lid), _) => return self.on_leg_timeout(sid, lid, what, now, out),
                    (Side::Caller, Purpose::Bye) => self
                        .sessions
                        .get_mut(&sid)
                        .and_then(|s| s.caller.as_mut())
                        .map(|c| c.call.on_bye_done()),
                    (Side::Caller, Purpose::Refresh) => self
                        .caller_mut(sid)
                        .map(|c| c.call.hang_up(EndReason::SessionExpired)),
                    (Side::Caller, _) => None,
                };
                if let Some(actions) = actions {
                    self.execute(sid, actions, now, out);
                }
            }
        }
    }

    /// Registrations, the ACD's timers and dispatch, at a timer turn.
    fn housekeeping_due(&mut self, now: Instant, out: &mut Vec<Transmit>) {
        if self.registrar.next_expiry().is_some_and(|t| t <= now) {
            for ext in self.registrar.expire(now) {
                info!(extension = %ext, "registration expired");
                self.agent_registered(&ext, false, now);
            }
            self.count_registrations();
        }
        if self.acd.poll_timeout().is_some_and(|t| t <= now) {
            let events = self.acd.handle_timeout(now);
            self.on_acd_events(events, now, out);
        }
        if self.dispatch_retry.is_some_and(|t| t <= now) {
            self.dispatch_retry = None;
            self.acd_dirty = true;
        }
        let (s, c) = self.transactions.len();
        self.metrics.sip_transactions.set((s + c) as i64);
        self.run_dispatch(now, out);
    }

    /// Hangs up every call (shutdown). Returns how many were up.
    pub fn hang_up_all(&mut self, now: Instant, out: &mut Outputs) -> usize {
        let mut ids: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.caller.is_some())
            .map(|(sid, _)| *sid)
            .collect();
        ids.sort_unstable();
        for &sid in &ids {
            self.isolated(now, &mut out.transmits, |core, out| {
                let actions = core
                    .caller_mut(sid)
                    .map(|c| c.call.hang_up(EndReason::Shutdown))
                    .unwrap_or_default();
                core.execute(sid, actions, now, out);
            });
        }
        self.hand_out(out);
        ids.len()
    }

    /// A session without a caller leg, waiting in `queue` (what a
    /// callback is until it dials the caller): no code path creates one
    /// yet, so the harness does, to hold the paths to what the type says.
    /// Returns the session's number (the ACD's call key).
    #[cfg(test)]
    pub(crate) fn queue_callerless(&mut self, queue: &str, now: Instant, out: &mut Outputs) -> u64 {
        let tenant = self
            .queue_conf(queue)
            .map(|q| q.tenant.clone())
            .unwrap_or_default();
        let route = Arc::new(crate::dialplan::Route {
            tenant,
            tenant_name: String::new(),
            hotline: "callback".into(),
            hotline_name: "callback".into(),
            number: String::new(),
            greeting: String::new(),
            waiting: String::new(),
            queue: Some(queue.to_owned()),
            priority: 0,
            answer_after: Duration::ZERO,
        });
        let sid = SessionId(self.next_session);
        self.next_session += 1;
        let phase = Phase::Queued {
            queue: Arc::from(queue),
        };
        let session = Session::new(sid, phase, route, "anonymous".into());
        self.sessions.insert(sid, session);
        let admitted = self
            .acd
            .enqueue_segment(sid.key(), queue, 0, now, None, now);
        assert!(
            matches!(admitted, Ok(crate::acd::Admission::Queued { .. })),
            "{admitted:?}"
        );
        self.acd_dirty = true;
        self.isolated(now, &mut out.transmits, |core, tx| {
            core.run_dispatch(now, tx)
        });
        self.hand_out(out);
        sid.0
    }

    /// Session `sid`'s caller leg, if it has one.
    fn caller(&self, sid: SessionId) -> Option<&CallerLeg> {
        self.sessions.get(&sid)?.caller.as_ref()
    }

    fn caller_mut(&mut self, sid: SessionId) -> Option<&mut CallerLeg> {
        self.sessions.get_mut(&sid)?.caller.as_mut()
    }

    /// Runs a call's due timers and reschedules it.
    fn run_call_timers(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        if self.caller(sid).is_some() {
            self.handling = Some(sid);
        }
        let Some(caller) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut()) else {
            return;
        };
        let actions = caller.call.handle_timeout(now);
        self.execute(sid, actions, now, out);
        self.menu_timeout(sid, now, out);
        self.reschedule(sid);
    }

    fn reschedule(&mut self, sid: SessionId) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let menu = s.menu.as_ref().and_then(Menu::poll_timeout);
        let call = s.caller.as_ref().and_then(|c| c.call.poll_timeout());
        let next = [call, menu].into_iter().flatten().min();
        if next == s.scheduled {
            return;
        }
        let old = std::mem::replace(&mut s.scheduled, next);
        self.index.reschedule(sid, old, next);
    }

    fn execute(
        &mut self,
        sid: SessionId,
        actions: Vec<Action>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        if self.caller(sid).is_some() {
            self.handling = Some(sid);
        }
        for action in actions {
            match action {
                Action::Answer => self.answer(sid, now, out),
                Action::Terminate487 => {
                    let Some(c) = self.caller(sid) else {
                        continue;
                    };
                    let resp = with_to_tag(
                        response(&c.invite, StatusCode::RequestTerminated),
                        &c.call.dialog.local_tag,
                    );
                    let key = c.call.invite_key.clone();
                    self.respond(&key, &resp, now, out);
                }
                Action::SendBye(reason) => {
                    let Some(c) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut())
                    else {
                        continue;
                    };
                    // Silence the caller's side at once; the port is freed on release.
                    self.media.remove_stream(c.media.stream);
                    let Some(bye) = c.call.dialog.request(
                        Method::Bye,
                        &[("Reason", reason.reason_header().to_owned())],
                        None,
                    ) else {
                        // Logged by the dialog; ended as if the BYE were answered.
                        let done = c.call.on_bye_done();
                        self.execute(sid, done, now, out);
                        continue;
                    };
                    let hop = c.call.dialog.next_hop();
                    let (key, t) = self.transactions.send_request(&bye, hop, now);
                    self.index.add_client(key, sid, Side::Caller, Purpose::Bye);
                    out.push(t);
                }
                Action::SendRefresh => {
                    let Some(c) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut())
                    else {
                        continue;
                    };
                    let mut extra = vec![("Supported", "timer".to_owned())];
                    if let Some(t) = c.call.session_timer() {
                        extra.push(("Session-Expires", t.header_value()));
                    }
                    let Some(update) = c.call.dialog.request(Method::Update, &extra, None) else {
                        // Logged by the dialog; the session timer ends the call.
                        continue;
                    };
                    let hop = c.call.dialog.next_hop();
                    let (key, t) = self.transactions.send_request(&update, hop, now);
                    self.index
                        .add_client(key, sid, Side::Caller, Purpose::Refresh);
                    out.push(t);
                }
                Action::Release(reason) => self.release(sid, reason, now, out),
            }
        }
        self.reschedule(sid);
    }

    fn answer(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        let at = self.clock.at(now);
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Some(f) = &mut s.facts {
            f.answered = Some(at);
        }
        if let Phase::Ringing(next) = s.phase() {
            let next = next.clone();
            s.enter(Phase::Greeting(next), at);
        }
        let Some(c) = s.caller.as_mut() else {
            return;
        };
        // What add_capabilities and add_session_expires add, in order.
        let contact = c.call.dialog.contact();
        let session = c.call.session_timer();
        let expires = session.map(|t| t.header_value()).unwrap_or_default();
        let [allow, accept, supported] = CAPABILITIES;
        let extra = [
            ("Contact", contact.as_str()),
            allow,
            accept,
            supported,
            ("Session-Expires", &expires),
            ("Require", "timer"),
        ];
        let extras = match session {
            None => 4,
            Some(t) if t.refresher == session_timer::Refresher::Uac => 6,
            Some(_) => 5,
        };
        let ok = encode_reply(
            &c.invite,
            &Reply {
                status: StatusCode::OK,
                to_tag: Some(&c.call.dialog.local_tag),
                extra: &extra[..extras],
                body: Some(("application/sdp", &c.media.local_sdp)),
            },
        );
        let key = c.call.invite_key.clone();
        if std::mem::take(&mut c.media.unstarted) {
            let (codec, pt, dtmf, remote, direction) = match &c.media.negotiated {
                Some(a) => (
                    a.codec,
                    a.payload_type,
                    a.dtmf_payload_type,
                    a.remote,
                    a.direction,
                ),
                // Offerless: until the ACK brings the answer, assume PCMU.
                None => (
                    sdp::Codec::Pcmu,
                    0,
                    Some(101),
                    None,
                    sdp::Direction::SendRecv,
                ),
            };
            // Nothing is sent until the ACK (or RTP from the caller): an
            // INVITE is no way to aim our media at someone else.
            self.media
                .add_unconfirmed_stream(c.media.stream, c.media.port, remote, codec, pt);
            // Commands apply in order: the keys are in place before the
            // stream's first packet.
            let keys = c.media.negotiated.as_ref().and_then(|a| a.srtp.clone());
            self.media.set_srtp(c.media.stream, keys);
            self.media.set_dtmf_payload_type(c.media.stream, dtmf);
            self.media.set_direction(c.media.stream, direction);
            let stream = c.media.stream;
            let playlist = self.first_playlist(sid);
            let greeted = !playlist.items.is_empty();
            self.media.play(stream, playlist);
            self.respond_with(&key, 200, || ok, now, out);
            if !greeted {
                self.after_greeting(sid, now, out);
            }
            return;
        }
        self.respond_with(&key, 200, || ok, now, out);
    }

    /// The caller's leg is over: out of the ACD, its agent legs ended,
    /// its record written, its port, slot and trunk count given back. The
    /// session goes once its outbound legs have ended too.
    fn release(
        &mut self,
        sid: SessionId,
        reason: EndReason,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(c) = self.sessions.get_mut(&sid).and_then(|s| s.caller.take()) else {
            return;
        };
        self.callers -= 1;
        self.call_over(sid, reason, now);
        self.release_slot(sid);
        self.caller_gone(sid, now, out);
        self.end_session(sid, now);
        self.drop_caller(sid, &c, now);
        self.metrics
            .calls_ended
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
        self.metrics.calls_active.set(self.callers as i64);
        info!(call_id = %c.call.dialog.call_id, reason = reason.as_str(), secs = now.saturating_duration_since(c.call.created_at).as_secs(), "call ended");
    }

    /// Gives the tenant's call slot back (feature-code calls, without a
    /// plan, were never counted).
    fn release_slot(&mut self, sid: SessionId) {
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        if s.plan.is_some() {
            self.slots.release(&s.route.tenant);
            if let Some(n) = self.tenant_calls.get_mut(&s.route.tenant) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Gives back what caller leg `c` of session `sid` held (its timer,
    /// stream, port, trunk count), and drops the session if nothing of it
    /// is left.
    fn drop_caller(&mut self, sid: SessionId, c: &CallerLeg, now: Instant) {
        self.index.remove_caller(&c.call.dialog.call_id);
        self.media.remove_stream(c.media.stream);
        self.index.remove_stream(c.media.stream);
        self.free_port(c.media.port, now);
        if let CallingParty::Trunk(i) = c.origin
            && let Some(n) = self.trunk_calls.get_mut(i)
        {
            *n = n.saturating_sub(1);
        }
        self.metrics.rtp_ports_in_use.dec();
        self.reschedule(sid);
        self.forget_if_empty(sid);
    }

    /// Session `sid`'s call is over: it goes with its last outbound leg.
    fn end_session(&mut self, sid: SessionId, now: Instant) {
        let at = self.clock.at(now);
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.enter(Phase::Ended, at);
        }
    }

    /// Drops session `sid` once it is over ([`Session::is_over`]).
    fn forget_if_empty(&mut self, sid: SessionId) {
        if self.sessions.get(&sid).is_some_and(Session::is_over)
            && let Some(s) = self.sessions.remove(&sid)
        {
            self.index.reschedule(s.id, s.scheduled, None);
        }
    }

    fn respond(&mut self, key: &ServerKey, resp: &Response, now: Instant, out: &mut Vec<Transmit>) {
        let encode = || crate::sip::message::encode_response(resp);
        self.respond_with(key, resp.status_code.code(), encode, now, out);
    }

    /// [`Core::respond`] with `response(req, status)`, written without
    /// building it.
    fn reply(
        &mut self,
        key: &ServerKey,
        req: &Request,
        status: StatusCode,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let code = status.code();
        let reply = Reply {
            status,
            to_tag: None,
            extra: &[],
            body: None,
        };
        self.respond_with(key, code, || encode_reply(req, &reply), now, out);
    }

    /// [`Core::respond`] with the response in wire form (status `code`),
    /// encoded only if the transaction can still send it.
    fn respond_with(
        &mut self,
        key: &ServerKey,
        code: u16,
        encode: impl FnOnce() -> Vec<u8>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let t = if self.stateless_answer(key, code) {
            self.transactions.respond_stateless(key, code, encode, now)
        } else {
            self.transactions.respond_with(key, code, encode, now)
        };
        if let Some(t) = t {
            self.metrics.response_sent(code);
            out.push(t);
        }
    }
}

/// The media address to advertise for a call that reached us on `sip_ip`:
/// the same address, unless that is a wildcard.
fn media_ip(sip_ip: IpAddr) -> IpAddr {
    if sip_ip.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        sip_ip
    }
}

/// Where responses to a request whose top Via is `via` go: the source over
/// TCP; over UDP the Via's rport/sent-by rules.
fn response_peer_via(via: &crate::sip::via::TopVia, peer: Peer) -> Peer {
    match peer.transport {
        Transport::Udp => Peer {
            addr: via.response_target(peer.addr),
            ..peer
        },
        Transport::Tcp | Transport::Tls => peer,
    }
}

/// The reply target for a screen-rejected message, from its raw Via.
fn reply_peer(data: &[u8], peer: Peer) -> Peer {
    if peer.transport.is_stream() {
        return peer;
    }
    let text = String::from_utf8_lossy(data);
    let via = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v"))
            .then(|| crate::sip::via::TopVia::parse(value))
            .flatten()
    });
    match via {
        Some(v) => Peer {
            addr: v.response_target(peer.addr),
            ..peer
        },
        None => peer,
    }
}

/// `Err` (for the Warning) when `remote` is outside a non-empty `networks`.
/// An SDP without an address (`None`, learned from RTP) passes.
fn media_address_allowed(
    networks: &[crate::config::Cidr],
    remote: Option<std::net::SocketAddr>,
) -> Result<(), String> {
    match remote {
        Some(addr) if !networks.is_empty() && !networks.iter().any(|n| n.contains(addr.ip())) => {
            let list: Vec<String> = networks.iter().map(|n| n.to_string()).collect();
            Err(format!(
                "media address {} is outside the allowed media networks {}",
                addr.ip(),
                list.join(", ")
            ))
        }
        _ => Ok(()),
    }
}

/// Each tenant's `limits.slots`, in config order.
fn slot_shares(config: &Config) -> Vec<(String, crate::dialplan::SlotShare)> {
    config
        .tenants
        .iter()
        .map(|t| (t.id.clone(), t.dialplan.limits.slots))
        .collect()
}

fn log_slots(slots: &CallSlots, config: &Config) {
    let (total, shared) = slots.totals();
    let each: Vec<String> = config
        .tenants
        .iter()
        .map(|t| {
            let (g, m) = slots.limits(&t.id);
            format!("{} {g}..{m}", t.id)
        })
        .collect();
    info!(total, shared, tenants = %each.join(", "), "call slots (guaranteed..max per tenant)");
    if !slots.cut().is_empty() {
        warn!(tenants = %slots.cut().join(", "), total, "guaranteed call slots cut to fit the RTP range");
    }
}

/// 503 with `Retry-After`: zentrale (or a trunk) is at its limit.
fn overloaded(req: &Request) -> Response {
    let mut resp = response(req, StatusCode::ServiceUnavailable);
    resp.headers
        .push(Header::RetryAfter(RETRY_AFTER_OVERLOAD.to_string().into()));
    resp
}

/// What zentrale can do, on every 2xx to an INVITE or OPTIONS.
const CAPABILITIES: [(&str, &str); 3] = [
    ("Allow", ALLOW),
    ("Accept", "application/sdp"),
    ("Supported", "timer"),
];

fn add_capabilities(resp: &mut Response) {
    let [(_, allow), (_, accept), (_, supported)] = CAPABILITIES;
    resp.headers.push(Header::Allow(allow.into()));
    resp.headers.push(Header::Accept(accept.into()));
    resp.headers.push(Header::Supported(supported.into()));
}

fn add_session_expires(resp: &mut Response, t: session_timer::SessionTimer) {
    resp.headers
        .push(Header::SessionExpires(t.header_value().into()));
    if t.refresher == session_timer::Refresher::Uac {
        // RFC 4028 §9: the UAC must refresh, so it must support timers.
        resp.headers.push(Header::Require("timer".into()));
    }
}

fn warning(resp: &mut Response, text: &str) {
    let text = text.replace('"', "'");
    resp.headers
        .push(Header::Warning(format!("399 zentrale \"{text}\"").into()));
}

fn call_id_of(req: &Request) -> &str {
    call_id_in(&req.headers)
}

fn call_id_in(headers: &crate::sip::message::Headers) -> &str {
    headers::call_id(headers).unwrap_or("")
}

fn cseq_number(req: &Request) -> Option<u32> {
    headers::cseq(&req.headers).map(|c| c.seq)
}

/// The dialog a request names.
fn dialog_key(req: &Request) -> DialogKey<'_> {
    DialogKey {
        call_id: call_id_of(req),
        local_tag: header_tag(req, true),
        remote_tag: header_tag(req, false),
    }
}

/// The To tag (`to = true`) or From tag of a request.
fn header_tag(req: &Request, to: bool) -> Option<&str> {
    if to {
        headers::to_tag(&req.headers)
    } else {
        headers::from_tag(&req.headers)
    }
}

fn has_sdp_body(req: &Request) -> bool {
    headers::has_sdp(&req.headers, &req.body)
}

fn from_user(req: &Request) -> Option<String> {
    headers::from_user(&req.headers)
}

#[cfg(test)]
mod core_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_user_is_the_user_of_the_from_uri() {
        let r = Request::try_from(
            "INVITE sip:115@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:115@h>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
        )
        .unwrap();
        assert_eq!(from_user(&r).as_deref(), Some("a"));
    }
}

//! A virtual network around the daemon's core, for call flows that take
//! seconds to hours of call time and milliseconds of real time.
//!
//! [`Harness`] steps the real [`crate::daemon::core::Core`] (through the
//! one adapter, [`endpoint::Endpoint`]) the way quinn-proto's test `Pair`
//! steps a client and a server: datagrams travel between the core and
//! scripted peers over a lossless wire with a fixed latency, and a
//! virtual clock jumps to the next thing due: a datagram's arrival, the
//! core's next timer ([`endpoint::Endpoint::poll_timeout`]), a peer's
//! scripted action, or a prompt played out. Nothing sleeps and no real
//! clock is read after the start instant; every peer's tags and branches
//! are counters, so a run replays.
//!
//! The peers are small user agents that parse what they get with the
//! crate's own parser and answer by their dialog state:
//!
//! - [`trunk::Trunk`]: the carrier (INVITE with SDP, ACK, BYE, CANCEL,
//!   re-INVITE for hold and resume, UPDATE, INFO; answers BYE and UPDATE);
//! - [`phone::Phone`]: an agent's softphone (REGISTER with digest,
//!   answers, ignores or rejects offers after a chosen delay, 180, BYE,
//!   hold and resume);
//! - [`media::MediaStandIn`]: the media engine, recording the core's
//!   commands and playing prompts out on the virtual clock; tests inject
//!   DTMF, RTP timeouts and played-out prompts through [`Harness::inject`].
//!
//! ```
//! use std::time::Duration;
//! use zentrale::harness::{Harness, phone::Answer, trunk::CallerState};
//!
//! let mut h = Harness::demo();
//! h.register("1001", Answer::After(Duration::from_secs(2)));
//! let call = h.call("0561115");
//! h.run_for(Duration::from_secs(30));
//! assert_eq!(h.trunk.call(call).state, CallerState::Up);
//! assert_eq!(h.phone("1001").offers.len(), 1);
//! ```
//!
//! Built for the lib's tests and with the `fuzzing` feature; not part of
//! the daemon. Every address is on loopback.

pub mod endpoint;
pub mod media;
pub mod phone;
pub mod trunk;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::acd::{AgentAction, AgentCommand, AgentError, AgentSnapshot, QueueSnapshot};
use crate::config::Config;
use crate::media::engine::{MediaEvent, StreamId};
use crate::sip::Transport;
use crate::sip::transaction::Peer;

use endpoint::{Endpoint, Outputs};
use media::MediaStandIn;
use phone::{Answer, Phone};
use trunk::{CallRef, Trunk};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The trunk's address (inside the demo trunk's `sources`).
pub const TRUNK: SocketAddr = SocketAddr::new(LOOPBACK, 25070);
/// Agent phones get ports from here up, in the order they register.
const PHONE_PORTS: u16 = 26000;
/// The RTP range of a harness's core: numbers from the core's ledger,
/// nothing bound.
pub const RTP_PORTS: (u16, u16) = (46000, 46999);
/// Monday 23 November 2026, 10:00 in Kassel: every demo hotline is open.
pub const MONDAY_MORNING: &str = "2026-11-23T09:00:00Z";
/// The seed of the core's RNG (tags, Call-IDs, branches, nonces).
const SEED: u64 = 115;
/// A run that takes more steps than this is stuck (a timer that does
/// not move on): the harness panics rather than spin.
const MAX_STEPS: u64 = 5_000_000;

/// A datagram on the wire.
#[derive(Debug, Clone)]
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// One SIP message as it arrived somewhere.
#[derive(Debug, Clone)]
pub struct SipRecord {
    pub at: Instant,
    /// `zentrale`, `trunk` or an agent's extension.
    pub from: String,
    pub to: String,
    /// The start line.
    pub line: String,
    pub call_id: String,
    /// The CSeq method (the method of a request, the request's of a response).
    pub method: String,
}

impl SipRecord {
    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    /// True for a request of `method`.
    pub fn is_request(&self, method: &str) -> bool {
        self.line.starts_with(&format!("{method} "))
    }
}

/// See the module docs.
pub struct Harness {
    start: Instant,
    now: Instant,
    endpoint: Endpoint,
    config: Arc<Config>,
    zentrale: SocketAddr,
    pub trunk: Trunk,
    phones: BTreeMap<String, Phone>,
    pub media: MediaStandIn,
    wire: BTreeMap<(Instant, u64), Datagram>,
    seq: u64,
    /// One-way delay of every datagram (default 5 ms).
    pub latency: Duration,
    /// Every SIP message delivered, in order.
    pub sip: Vec<SipRecord>,
    /// The call records the core gave (with a `cdr:` section in the config).
    pub records: Vec<(Instant, crate::cdr::CallRecord)>,
    /// The call events the core gave, in order.
    pub call_events: Vec<(Instant, crate::daemon::core::CallEvent)>,
    /// What the event stream made of [`Harness::call_events`]: the daemon
    /// publishes them into its hub, which keeps such a log.
    pub wallboard: crate::events::Log,
    steps: u64,
}

impl Harness {
    /// The demo config, on a Monday morning.
    pub fn demo() -> Harness {
        Harness::new(|_| {})
    }

    /// The demo config changed by `edit` (queues, agents, limits), on a
    /// Monday morning.
    pub fn new(edit: impl FnOnce(&mut Config)) -> Harness {
        let (mut config, prompts) = endpoint::demo(RTP_PORTS);
        // Records come out of the core as values ([`Harness::records`]);
        // the path is the shell's to write, and nothing here opens it.
        config.cdr = Some(crate::config::CdrConfig {
            path: "harness-cdr.jsonl".into(),
            caller_number: crate::cdr::CallerNumbers::Masked,
        });
        edit(&mut config);
        // One fixed origin for the virtual clock; only differences count.
        let start = Instant::now();
        let wall = MONDAY_MORNING.parse().expect("a timestamp");
        let config = Arc::new(config);
        let zentrale = Endpoint::sip_address(&config);
        Harness {
            start,
            now: start,
            endpoint: Endpoint::new(config.clone(), prompts, start, wall, SEED),
            config,
            zentrale,
            trunk: Trunk::new(TRUNK, zentrale),
            phones: BTreeMap::new(),
            media: MediaStandIn::default(),
            wire: BTreeMap::new(),
            seq: 0,
            latency: Duration::from_millis(5),
            sip: Vec::new(),
            records: Vec::new(),
            call_events: Vec::new(),
            wallboard: crate::events::Log::new(4096),
            steps: 0,
        }
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// `at` as time since the start.
    pub fn since_start(&self, at: Instant) -> Duration {
        at - self.start
    }

    /// The config the core runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The phone of agent `ext` (registered with [`Harness::register`]).
    pub fn phone(&self, ext: &str) -> &Phone {
        self.phones
            .get(ext)
            .unwrap_or_else(|| panic!("no phone {ext} in the harness"))
    }

    /// The phone of agent `ext`, to change its behaviour.
    pub fn phone_mut(&mut self, ext: &str) -> &mut Phone {
        self.phones
            .get_mut(ext)
            .unwrap_or_else(|| panic!("no phone {ext} in the harness"))
    }

    /// Agent `ext`'s phone registers (REGISTER, 401, REGISTER with
    /// credentials, 200), which logs the agent in (the demo's
    /// `login_on_register`), and will treat offers as `answer` says.
    pub fn register(&mut self, ext: &str, answer: Answer) {
        let password = self
            .config
            .agents
            .iter()
            .find(|a| a.extension == ext)
            .map(|a| a.password.clone())
            .unwrap_or_else(|| panic!("agent {ext} is not in the config"));
        let addr = SocketAddr::new(LOOPBACK, PHONE_PORTS + self.phones.len() as u16 * 2);
        let mut phone = Phone::new(ext, &password, addr, self.zentrale);
        phone.answer = answer;
        let bytes = phone.register(None);
        self.phones.insert(ext.to_owned(), phone);
        self.send(addr, self.zentrale, bytes);
        let limit = self.now + Duration::from_secs(1);
        let ext = ext.to_owned();
        let ok = self.run_until(limit, |h| h.phone(&ext).registered);
        assert!(ok, "phone {ext} did not register within a second");
    }

    /// A supervisor's command for agent `ext` through the core's input
    /// (what the HTTP API sends): the agent as it left it, or the refusal.
    pub fn command(&mut self, ext: &str, action: AgentAction) -> Result<AgentSnapshot, AgentError> {
        let (result, out) = self
            .endpoint
            .agent_command(AgentCommand::new(ext, action), self.now);
        self.outputs(out);
        result
    }

    /// A trunk caller with the number `caller` dials `number` and hangs
    /// up `talk` after the answer.
    pub fn call_from(&mut self, caller: &str, number: &str, talk: Duration) -> CallRef {
        self.trunk.caller_number = caller.to_owned();
        let c = self.call(number);
        self.trunk.calls[c.0].talk = Some(talk);
        c
    }

    /// A trunk caller dials `number`.
    pub fn call(&mut self, number: &str) -> CallRef {
        self.call_with(number, &[])
    }

    /// A trunk caller dials `number` with `extra` header lines in the INVITE.
    pub fn call_with(&mut self, number: &str, extra: &[&str]) -> CallRef {
        let (c, bytes) = self.trunk.invite(number, extra, self.now);
        self.send(TRUNK, self.zentrale, bytes);
        c
    }

    /// The caller of `c` hangs up (BYE).
    pub fn hang_up(&mut self, c: CallRef) {
        let bytes = self.trunk.bye(c);
        self.send(TRUNK, self.zentrale, bytes);
    }

    /// The caller of `c` gives up before the answer (CANCEL).
    pub fn cancel(&mut self, c: CallRef) {
        let bytes = self.trunk.cancel(c);
        self.send(TRUNK, self.zentrale, bytes);
    }

    /// The caller's side sends a re-INVITE offering `direction`.
    pub fn reinvite(&mut self, c: CallRef, direction: &str, extra: &[&str]) {
        let bytes = self.trunk.reinvite(c, direction, extra);
        self.send(TRUNK, self.zentrale, bytes);
    }

    /// The caller's side refreshes the session with an UPDATE.
    pub fn update(&mut self, c: CallRef, extra: &[&str]) {
        let bytes = self.trunk.update(c, extra);
        self.send(TRUNK, self.zentrale, bytes);
    }

    /// The caller presses `digit`, sent by SIP INFO.
    pub fn info(&mut self, c: CallRef, digit: char) {
        let bytes = self.trunk.info(c, digit);
        self.send(TRUNK, self.zentrale, bytes);
    }

    /// Agent `ext`'s silent phone starts ringing on its last offer (180).
    pub fn agent_ring(&mut self, ext: &str) {
        let phone = self.phone_mut(ext);
        let addr = phone.addr;
        let bytes = phone
            .ring()
            .unwrap_or_else(|| panic!("{ext} has no silent offer"));
        self.send(addr, self.zentrale, bytes);
    }

    /// Agent `ext` hangs up the call it talks on.
    pub fn agent_hang_up(&mut self, ext: &str) {
        let phone = self.phone_mut(ext);
        let addr = phone.addr;
        let bytes = phone
            .bye()
            .unwrap_or_else(|| panic!("{ext} talks on no call"));
        self.send(addr, self.zentrale, bytes);
    }

    /// Agent `ext` sends a re-INVITE offering `direction` (`sendonly`:
    /// hold; `sendrecv`: resume).
    pub fn agent_reinvite(&mut self, ext: &str, direction: &str) {
        let phone = self.phone_mut(ext);
        let addr = phone.addr;
        let bytes = phone
            .reinvite(direction)
            .unwrap_or_else(|| panic!("{ext} talks on no call"));
        self.send(addr, self.zentrale, bytes);
    }

    /// The media engine reports `event` now.
    pub fn inject(&mut self, event: MediaEvent) {
        self.media.events.push((self.now, event.clone()));
        let out = self.endpoint.media_event(event, self.now);
        self.outputs(out);
    }

    /// The caller of `c` presses `digit` (RFC 4733, as the engine reports it).
    pub fn dtmf(&mut self, c: CallRef, digit: char) {
        let stream = self
            .caller_stream(c)
            .expect("the call has no media stream yet");
        self.inject(MediaEvent::Dtmf { stream, digit });
    }

    /// The stream zentrale added for the caller of `c`: the one on the
    /// port its SDP answer named, added last before the answer.
    pub fn caller_stream(&self, c: CallRef) -> Option<StreamId> {
        let call = self.trunk.call(c);
        let port = call.media_port?;
        let answered = call.answered_at?;
        self.media
            .log
            .iter()
            .filter(|(t, cmd)| {
                *t <= answered
                    && matches!(cmd, media::MediaCommand::Add { port: p, .. } if *p == port)
            })
            .map(|(_, cmd)| cmd.stream())
            .next_back()
    }

    /// Shutdown: the core hangs up every call.
    pub fn shut_down(&mut self) {
        let out = self.endpoint.hang_up_all(self.now);
        self.outputs(out);
    }

    /// A session without a caller leg joins `queue` (`tenant/id`): a
    /// callback before it dials the caller. Returns its ACD call key.
    #[cfg(test)]
    pub fn queue_callerless(&mut self, queue: &str) -> u64 {
        let (key, out) = self.endpoint.queue_callerless(queue, self.now);
        self.outputs(out);
        key
    }

    /// Calls alive in the core.
    pub fn active_calls(&self) -> usize {
        self.endpoint.active_calls()
    }

    /// The ACD's view of agent `ext` now.
    pub fn agent(&self, ext: &str) -> AgentSnapshot {
        self.endpoint
            .snapshot(self.now)
            .agents
            .into_iter()
            .find(|a| &*a.id == ext)
            .unwrap_or_else(|| panic!("no agent {ext} in the ACD"))
    }

    /// The ACD's view of queue `name` (`tenant/id`) now.
    pub fn queue(&self, name: &str) -> QueueSnapshot {
        self.endpoint
            .snapshot(self.now)
            .queues
            .into_iter()
            .find(|q| &*q.name == name)
            .unwrap_or_else(|| panic!("no queue {name} in the ACD"))
    }

    /// The call records so far, as the JSON lines the writer would write.
    pub fn records_json(&self) -> Vec<serde_json::Value> {
        self.records
            .iter()
            .map(|(_, r)| serde_json::to_value(r).expect("a record serialises"))
            .collect()
    }

    /// The value of the sample `name{labels}` in the core's metrics.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.endpoint.metrics_text();
        text.lines().find_map(|l| {
            let value = l.strip_prefix(sample)?.strip_prefix(' ')?;
            value.split_whitespace().next()?.parse().ok()
        })
    }

    /// SIP messages delivered to `to` (`zentrale`, `trunk`, an extension)
    /// whose start line begins with `line`.
    pub fn sip_to(&self, to: &str, line: &str) -> Vec<&SipRecord> {
        self.sip
            .iter()
            .filter(|r| r.to == to && r.line.starts_with(line))
            .collect()
    }

    /// Runs the virtual clock for `d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until, |_| false);
    }

    /// Runs until `done` holds (checked after every step) or the clock
    /// reaches `limit`; true if `done` held.
    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&Harness) -> bool) -> bool {
        if done(self) {
            return true;
        }
        while let Some(t) = self.next_due() {
            if t > limit {
                break;
            }
            self.now = self.now.max(t);
            self.step();
            if done(self) {
                return true;
            }
        }
        self.now = self.now.max(limit);
        done(self)
    }

    /// [`Harness::run_until`] with a limit `within` from now.
    pub fn run_within(&mut self, within: Duration, done: impl FnMut(&Harness) -> bool) -> bool {
        let limit = self.now + within;
        self.run_until(limit, done)
    }

    fn next_due(&self) -> Option<Instant> {
        [
            self.wire.keys().next().map(|(t, _)| *t),
            self.endpoint.poll_timeout(),
            self.trunk.poll_timeout(),
            self.phones.values().filter_map(Phone::poll_timeout).min(),
            self.media.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Everything due at `now`: datagrams, the core's timers, played-out
    /// prompts, the peers' scripted actions.
    fn step(&mut self) {
        self.steps += 1;
        assert!(
            self.steps < MAX_STEPS,
            "the harness made {MAX_STEPS} steps by {:?} of virtual time: something is due again and again",
            self.elapsed()
        );
        let now = self.now;
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let d = entry.remove();
            self.deliver(d);
        }
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            let out = self.endpoint.timeout(now);
            self.outputs(out);
        }
        for event in self.media.due_events(now) {
            self.inject(event);
        }
        for bytes in self.trunk.handle_timeout(now) {
            self.send(TRUNK, self.zentrale, bytes);
        }
        let due: Vec<String> = self
            .phones
            .iter()
            .filter(|(_, p)| p.poll_timeout().is_some_and(|t| t <= now))
            .map(|(ext, _)| ext.clone())
            .collect();
        for ext in due {
            let phone = self.phone_mut(&ext);
            let addr = phone.addr;
            for bytes in phone.handle_timeout(now) {
                self.send(addr, self.zentrale, bytes);
            }
        }
    }

    fn name_of(&self, addr: SocketAddr) -> String {
        if addr == self.zentrale {
            return "zentrale".into();
        }
        if addr == TRUNK {
            return "trunk".into();
        }
        self.phones
            .values()
            .find(|p| p.addr == addr)
            .map_or_else(|| addr.to_string(), |p| p.extension.clone())
    }

    fn deliver(&mut self, d: Datagram) {
        let text = String::from_utf8_lossy(&d.bytes);
        let line = text.lines().next().unwrap_or_default().to_owned();
        let (call_id, method) = match wire::Received::parse(&d.bytes) {
            Some(wire::Received::Request(r)) => {
                (wire::call_id(&r.headers), wire::cseq(&r.headers).1)
            }
            Some(wire::Received::Response(r)) => {
                (wire::call_id(&r.headers), wire::cseq(&r.headers).1)
            }
            None => (String::new(), String::new()),
        };
        self.sip.push(SipRecord {
            at: self.now,
            from: self.name_of(d.from),
            to: self.name_of(d.to),
            line,
            call_id,
            method,
        });
        if d.to == self.zentrale {
            let peer = Peer {
                transport: Transport::Udp,
                addr: d.from,
                local: self.zentrale,
            };
            let out = self.endpoint.receive(&d.bytes, peer, self.now);
            self.outputs(out);
        } else if d.to == TRUNK {
            for bytes in self.trunk.on_message(&d.bytes, self.now) {
                self.send(TRUNK, self.zentrale, bytes);
            }
        } else if let Some(ext) = self
            .phones
            .iter()
            .find(|(_, p)| p.addr == d.to)
            .map(|(e, _)| e.clone())
        {
            let now = self.now;
            let phone = self.phone_mut(&ext);
            let addr = phone.addr;
            for bytes in phone.on_message(&d.bytes, now) {
                self.send(addr, self.zentrale, bytes);
            }
        }
        // Anything else (a forward target nobody plays) is lost.
    }

    fn outputs(&mut self, out: Outputs) {
        for t in out.transmits {
            self.send(t.peer.local, t.peer.addr, t.bytes.to_vec());
        }
        for c in out.media {
            self.media.apply(self.now, c);
        }
        for r in out.records {
            self.records.push((self.now, r));
        }
        for e in out.events {
            e.apply(&mut self.wallboard);
            self.call_events.push((self.now, e));
        }
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.wire.insert(
            (self.now + self.latency, self.seq),
            Datagram { from, to, bytes },
        );
    }
}

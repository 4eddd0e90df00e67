//! Fuzz target `core`: the daemon's core fed a sequence of operations
//! decoded from the input, on a virtual clock.
//!
//! The input is read as [`Op`]s (one byte chooses, the next bytes fill it
//! in; see [`Op::decode`]). Messages are built from templates of what real
//! peers send (a trunk's INVITE with SDP, ACK, BYE, CANCEL, re-INVITE,
//! UPDATE, INFO, OPTIONS; an agent phone's REGISTER with digest
//! credentials and its answers to zentrale's INVITE, BYE and CANCEL) and
//! then mutated: header values replaced by [`super::DICTIONARY`] tokens or
//! raw input octets, headers dropped, doubled or added, SDP lines
//! changed. The templates follow the dialogs zentrale answers (To tags,
//! Call-IDs, CSeqs), so mutations land inside established calls, where
//! the timers and BYEs run. Time moves in steps up to many minutes,
//! firing every timer at its instant (retransmissions, timer H, session
//! expiry, ring timeouts); the media worker's events (prompt played out,
//! RTP timeout, a key) are made up for the streams the core added. Every
//! input ends with a shutdown ([`crate::daemon::core::Core::hang_up_all`])
//! and time for it to finish.
//!
//! Peers: the trunk at 127.0.0.1:25070, agent phones 1001 and 1002 at
//! 127.0.0.1:25072 and :25073, zentrale at 127.0.0.1:5060. Every message
//! passes [`super::loopback_only`].

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::{DICTIONARY, Input, loopback_only};
use crate::config::Config;
use crate::harness::endpoint::{self, Endpoint, Outputs};
use crate::harness::media::MediaCommand;
use crate::harness::wire::{digest_md5, sdp};
use crate::media::engine::{MediaEvent, StreamId};
use crate::media::prompt::PromptLibrary;
use crate::sip::Transport;
use crate::sip::headers::{self, tag_of, uri_of};
use crate::sip::message::{Request, Response, SipMessage};
use crate::sip::transaction::Peer;

const ZENTRALE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(LOOPBACK), 5060);
const TRUNK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(LOOPBACK), 25070);
const LOOPBACK: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 1);
/// Agent phones: extension and port.
const AGENTS: [(&str, u16); 2] = [("1001", 25072), ("1002", 25073)];
/// Numbers a trunk call dials: hotlines of every demo tenant, an unknown
/// one, and a feature code.
const NUMBERS: [&str; 6] = ["115", "0561115", "02151860", "041066110", "999", "*42"];
/// RTP ports of one rig: few, so running out (503) is reached too.
const RTP_PORTS: (u16, u16) = (47000, 47039);
/// Operations per input, and calls and requests kept track of.
const MAX_OPS: usize = 48;
const MAX_CALLS: usize = 6;
const MAX_INBOX: usize = 16;

/// The demo config with this rig's RTP ports, and its prompts, once per
/// process.
fn setup() -> &'static (Arc<Config>, PromptLibrary) {
    static SETUP: OnceLock<(Arc<Config>, PromptLibrary)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let (config, prompts) = endpoint::demo(RTP_PORTS);
        (Arc::new(config), prompts)
    })
}

/// Runs one input: decodes and applies its operations, then shuts down.
pub fn run(data: &[u8]) {
    run_traced(data);
}

/// [`run`], returning what the core sent ([`Rig::trace`]).
pub fn run_traced(data: &[u8]) -> Vec<String> {
    let mut rig = Rig::new();
    let mut input = Input::new(data);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = Op::decode(&mut input);
        rig.apply(op, &mut input);
    }
    rig.finish();
    rig.trace
}

/// One step of a fuzz input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new call from the trunk to `NUMBERS[number]`.
    Invite { number: usize },
    /// ACK, BYE, CANCEL, re-INVITE, UPDATE, INFO, or a BYE with a wrong
    /// tag, from the caller of call `call`.
    InDialog { call: usize, kind: usize },
    /// The trunk answers the `which`-th request zentrale sent it.
    AnswerTrunk { which: usize, code: usize },
    /// Agent phone `agent` registers (REGISTER, 401, REGISTER with MD5
    /// credentials), or un-registers.
    Register { agent: usize, expires: usize },
    /// Agent `agent` dials a feature code (INVITE, 407, INVITE with
    /// credentials).
    AgentCall { agent: usize, code: usize },
    /// The agent phones answer the `which`-th request zentrale sent them.
    AnswerAgent { which: usize, code: usize },
    /// The agent hangs up the conversation it answered.
    AgentBye { which: usize },
    /// OPTIONS from the trunk.
    Options,
    /// Raw octets from the input as one datagram (or TCP message).
    Raw { tcp: bool, from_agent: bool },
    /// The clock moves on by `STEPS[step]`.
    Advance { step: usize },
    /// The media worker reports an event for an added stream.
    Media { stream: usize, kind: usize },
    /// Graceful shutdown.
    HangUpAll,
}

/// How far [`Op::Advance`] moves the clock.
const STEPS: [Duration; 10] = [
    Duration::from_millis(20),
    Duration::from_millis(300),
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(16),
    Duration::from_secs(32),
    Duration::from_secs(33),
    Duration::from_secs(65),
    Duration::from_secs(200),
    Duration::from_secs(1900),
];

impl Op {
    /// One operation from the input (see the module docs).
    pub fn decode(input: &mut Input) -> Op {
        match input.byte() % 16 {
            0 | 1 => Op::Invite {
                number: input.pick(NUMBERS.len()),
            },
            2 | 3 => Op::InDialog {
                call: input.pick(MAX_CALLS),
                kind: input.pick(8),
            },
            4 => Op::AnswerTrunk {
                which: input.pick(MAX_INBOX),
                code: input.pick(TRUNK_CODES.len()),
            },
            5 => Op::Register {
                agent: input.pick(AGENTS.len()),
                expires: input.pick(3),
            },
            6 => Op::AgentCall {
                agent: input.pick(AGENTS.len()),
                code: input.pick(FEATURE_CODES.len()),
            },
            7 | 8 => Op::AnswerAgent {
                which: input.pick(MAX_INBOX),
                code: input.pick(AGENT_CODES.len()),
            },
            9 => Op::AgentBye {
                which: input.pick(MAX_CALLS),
            },
            10 => Op::Options,
            11 => {
                let b = input.byte();
                Op::Raw {
                    tcp: b & 1 == 1,
                    from_agent: b & 2 == 2,
                }
            }
            12 | 13 => Op::Advance {
                step: input.pick(STEPS.len()),
            },
            14 => Op::Media {
                stream: input.pick(8),
                kind: input.pick(4),
            },
            _ => Op::HangUpAll,
        }
    }
}

const TRUNK_CODES: [u16; 6] = [200, 481, 408, 500, 422, 100];
const AGENT_CODES: [u16; 10] = [180, 200, 200, 486, 603, 487, 408, 183, 500, 100];
const FEATURE_CODES: [&str; 5] = ["*40", "*41", "*42", "*43", "*99"];

/// A call placed from the trunk, as the caller sees it.
#[derive(Debug, Clone)]
struct CallerSide {
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    number: &'static str,
    cseq: u32,
    invite_branch: String,
}

/// A request zentrale sent to a peer, waiting for an answer.
#[derive(Debug, Clone)]
struct Sent {
    to: Peer,
    request: Request,
}

/// An agent leg the phone answered, as the phone sees it.
#[derive(Debug, Clone)]
struct PhoneDialog {
    phone: Peer,
    call_id: String,
    /// zentrale's From (with its tag): our To.
    remote: String,
    /// zentrale's To plus our tag: our From.
    local: String,
    /// zentrale's Contact URI.
    target: String,
    cseq: u32,
}

/// A message to send, as header lines that mutations can change.
#[derive(Debug, Clone)]
struct Message {
    start: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

impl Message {
    fn new(start: String) -> Message {
        Message {
            start: start.into_bytes(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Message {
        self.headers
            .push((name.as_bytes().to_vec(), value.into().into_bytes()));
        self
    }

    fn body(mut self, content_type: &str, body: String) -> Message {
        self = self.header("Content-Type", content_type);
        self.body = body.into_bytes();
        self
    }

    /// Zero to three mutations chosen by the input.
    fn mutate(&mut self, input: &mut Input) {
        const NEW_HEADERS: [&str; 12] = [
            "Contact",
            "Record-Route",
            "Route",
            "Via",
            "Require",
            "Supported",
            "Session-Expires",
            "Min-SE",
            "Max-Forwards",
            "Expires",
            "Diversion",
            "Privacy",
        ];
        for _ in 0..input.pick(4) {
            let value = match input.pick(3) {
                0 => DICTIONARY[input.pick(DICTIONARY.len())].as_bytes().to_vec(),
                1 => input.bytes(96).to_vec(),
                _ => {
                    let mut v = DICTIONARY[input.pick(DICTIONARY.len())].as_bytes().to_vec();
                    v.extend_from_slice(input.bytes(16));
                    v
                }
            };
            let n = self.headers.len();
            match input.pick(8) {
                0 => self.start = value,
                1 | 2 if n > 0 => {
                    let i = input.pick(n);
                    self.headers[i].1 = value;
                }
                3 if n > 0 => {
                    let i = input.pick(n);
                    self.headers.remove(i);
                }
                4 if n > 0 => {
                    let i = input.pick(n);
                    let h = self.headers[i].clone();
                    self.headers.insert(i, h);
                }
                5 => {
                    let name = NEW_HEADERS[input.pick(NEW_HEADERS.len())];
                    let at = input.pick(n + 1);
                    self.headers.insert(at, (name.as_bytes().to_vec(), value));
                }
                6 if !self.body.is_empty() => {
                    // One line of the body.
                    let lines: Vec<&[u8]> = self.body.split(|b| *b == b'\n').collect();
                    let i = input.pick(lines.len());
                    let mut body = Vec::new();
                    for (j, line) in lines.iter().enumerate() {
                        if j == i {
                            body.extend_from_slice(&value);
                            body.extend_from_slice(b"\r");
                        } else {
                            body.extend_from_slice(line);
                        }
                        if j + 1 < lines.len() {
                            body.push(b'\n');
                        }
                    }
                    self.body = body;
                }
                _ if n > 0 => {
                    // Append to a value: parameters, list entries.
                    let i = input.pick(n);
                    self.headers[i].1.extend_from_slice(&value);
                }
                _ => {}
            }
        }
    }

    /// The wire form: loopback addresses only, Content-Length of the body
    /// unless a mutation set one.
    fn encode(&self) -> Vec<u8> {
        let body = loopback_only(&self.body);
        let mut out = loopback_only(&self.start);
        out.extend_from_slice(b"\r\n");
        let mut has_length = false;
        for (name, value) in &self.headers {
            has_length |= name.eq_ignore_ascii_case(b"Content-Length");
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&loopback_only(value));
            out.extend_from_slice(b"\r\n");
        }
        if !has_length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }
}

/// The core, its peers' view of the calls, and the virtual clock.
pub struct Rig {
    core: Endpoint,
    now: Instant,
    counter: u64,
    calls: Vec<CallerSide>,
    streams: Vec<StreamId>,
    /// Requests zentrale sent to the trunk and to the phones.
    to_trunk: Vec<Sent>,
    to_phones: Vec<Sent>,
    phone_dialogs: Vec<PhoneDialog>,
    /// The last challenges a peer got (WWW- or Proxy-Authenticate).
    challenges: Vec<String>,
    /// The start line of everything the core sent, with the peer's port
    /// (the first [`TRACE`] of them), for tests that check where an input
    /// leads.
    pub trace: Vec<String>,
}

/// How many start lines [`Rig::trace`] keeps.
const TRACE: usize = 256;

fn peer(addr: SocketAddr, transport: Transport) -> Peer {
    Peer {
        transport,
        addr,
        local: ZENTRALE,
    }
}

fn agent_peer(agent: usize) -> Peer {
    let (_, port) = AGENTS[agent % AGENTS.len()];
    peer(SocketAddr::new(LOOPBACK.into(), port), Transport::Udp)
}

impl Default for Rig {
    fn default() -> Self {
        Rig::new()
    }
}

impl Rig {
    /// A core with the demo config on a weekday morning, and no calls.
    pub fn new() -> Rig {
        let (config, prompts) = setup();
        let now = Instant::now();
        let wall = crate::harness::MONDAY_MORNING.parse().expect("a timestamp");
        let core = Endpoint::new(config.clone(), prompts.clone(), now, wall, 1);
        Rig {
            core,
            now,
            counter: 0,
            calls: Vec::new(),
            streams: Vec::new(),
            to_trunk: Vec::new(),
            to_phones: Vec::new(),
            phone_dialogs: Vec::new(),
            challenges: Vec::new(),
            trace: Vec::new(),
        }
    }

    fn token(&mut self) -> String {
        self.counter += 1;
        format!("f{:x}", self.counter)
    }

    /// Applies one operation; `input` supplies its mutations.
    pub fn apply(&mut self, op: Op, input: &mut Input) {
        match op {
            Op::Invite { number } => self.invite(NUMBERS[number], input),
            Op::InDialog { call, kind } => self.in_dialog(call, kind, input),
            Op::AnswerTrunk { which, code } => {
                let code = TRUNK_CODES[code];
                if let Some(sent) = pick(&mut self.to_trunk, which, code) {
                    self.answer(&sent, code, None, input);
                }
            }
            Op::Register { agent, expires } => self.register(agent, [300, 0, 3600][expires], input),
            Op::AgentCall { agent, code } => self.agent_call(agent, FEATURE_CODES[code], input),
            Op::AnswerAgent { which, code } => {
                let code = AGENT_CODES[code];
                if let Some(sent) = pick(&mut self.to_phones, which, code) {
                    self.answer(&sent, code, Some(code), input);
                }
            }
            Op::AgentBye { which } => self.agent_bye(which, input),
            Op::Options => {
                let branch = self.token();
                let mut m = Message::new(format!("OPTIONS sip:{ZENTRALE} SIP/2.0"))
                    .header("Via", format!("SIP/2.0/UDP {TRUNK};branch=z9hG4bK{branch}"))
                    .header("From", format!("<sip:monitor@{TRUNK}>;tag={branch}"))
                    .header("To", format!("<sip:{ZENTRALE}>"))
                    .header("Call-ID", format!("{branch}@monitor"))
                    .header("CSeq", "1 OPTIONS")
                    .header("Max-Forwards", "70")
                    .header("Accept", "application/sdp");
                m.mutate(input);
                self.send(&m.encode(), peer(TRUNK, Transport::Udp));
            }
            Op::Raw { tcp, from_agent } => {
                let data = loopback_only(input.bytes(255));
                let from = if from_agent {
                    agent_peer(0)
                } else {
                    peer(TRUNK, Transport::Udp)
                };
                let from = if tcp {
                    Peer {
                        transport: Transport::Tcp,
                        ..from
                    }
                } else {
                    from
                };
                self.send(&data, from);
            }
            Op::Advance { step } => self.advance(STEPS[step]),
            Op::Media { stream, kind } => {
                if self.streams.is_empty() {
                    return;
                }
                let id = self.streams[stream % self.streams.len()];
                let event = match kind {
                    0 | 1 => MediaEvent::PlaylistDone(id),
                    2 => MediaEvent::RtpTimeout(id),
                    _ => MediaEvent::Dtmf {
                        stream: id,
                        digit: b"0123456789*#"[input.pick(12)] as char,
                    },
                };
                let out = self.core.media_event(event, self.now);
                self.settle(out);
            }
            Op::HangUpAll => {
                let out = self.core.hang_up_all(self.now);
                self.settle(out);
            }
        }
    }

    /// Every input ends here: calls answered, shut down, time for the
    /// BYEs to be answered or to time out.
    pub fn finish(&mut self) {
        self.advance(Duration::from_secs(1));
        let out = self.core.hang_up_all(self.now);
        self.settle(out);
        for sent in std::mem::take(&mut self.to_trunk) {
            self.answer_plain(&sent, 200);
        }
        self.advance(Duration::from_secs(40));
        self.advance(Duration::from_secs(40));
    }

    /// One message into the core, then what it sent is read.
    fn send(&mut self, data: &[u8], from: Peer) {
        let out = self.core.receive(data, from, self.now);
        self.settle(out);
    }

    /// Moves the clock by `by`, firing each due timer at its instant.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        for _ in 0..4096 {
            match self.core.poll_timeout() {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let out = self.core.timeout(self.now);
                    self.settle(out);
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// Reads what the core sent: responses update the callers' dialogs,
    /// requests wait for an answer from their peer.
    fn settle(&mut self, out: Outputs) {
        self.streams
            .extend(out.media.iter().filter_map(|c| match c {
                MediaCommand::Add { stream, .. } => Some(*stream),
                _ => None,
            }));
        self.streams.truncate(64);
        for t in out.transmits {
            if self.trace.len() < TRACE {
                let line = t.bytes.split(|b| *b == b'\r').next().unwrap_or_default();
                self.trace.push(format!(
                    "{} {}",
                    t.peer.addr.port(),
                    String::from_utf8_lossy(line)
                ));
            }
            let Ok(msg) = SipMessage::try_from(t.bytes.as_ref()) else {
                continue;
            };
            match msg {
                SipMessage::Response(resp) => self.on_response(&resp),
                SipMessage::Request(req) => {
                    let sent = Sent {
                        to: t.peer,
                        request: req,
                    };
                    let inbox = if t.peer.addr == TRUNK {
                        &mut self.to_trunk
                    } else {
                        &mut self.to_phones
                    };
                    if matches!(sent.request.method, crate::sip::message::Method::Ack) {
                        continue;
                    }
                    inbox.push(sent);
                    if inbox.len() > MAX_INBOX {
                        inbox.remove(0);
                    }
                }
            }
        }
    }

    fn on_response(&mut self, resp: &Response) {
        let call_id = headers::call_id(&resp.headers);
        self.challenges
            .extend(headers::challenges(&resp.headers).map(str::to_owned));
        self.challenges.truncate(8);
        let to_tag = headers::to_tag(&resp.headers);
        if let (Some(call_id), Some(tag)) = (call_id, to_tag)
            && let Some(call) = self.calls.iter_mut().find(|c| c.call_id == call_id)
            && resp.status_code.code() >= 200
            && resp.status_code.code() < 300
        {
            call.to_tag = Some(tag.to_owned());
        }
    }

    fn invite(&mut self, number: &'static str, input: &mut Input) {
        let tag = self.token();
        let call = CallerSide {
            call_id: format!("{tag}@trunk"),
            from_tag: tag.clone(),
            to_tag: None,
            number,
            cseq: 1,
            invite_branch: format!("z9hG4bK{tag}i"),
        };
        let port = 30000 + (self.counter as u16 % 1000) * 2;
        let mut m = Message::new(format!("INVITE sip:{number}@{ZENTRALE} SIP/2.0"))
            .header(
                "Via",
                format!("SIP/2.0/UDP {TRUNK};branch={};rport", call.invite_branch),
            )
            .header("Max-Forwards", "70")
            .header(
                "From",
                format!("\"Anrufer\" <sip:0301234567@{TRUNK}>;tag={tag}"),
            )
            .header("To", format!("<sip:{number}@{ZENTRALE}>"))
            .header("Call-ID", call.call_id.clone())
            .header("CSeq", "1 INVITE")
            .header("Contact", format!("<sip:trunk@{TRUNK}>"))
            .header("Supported", "timer")
            .body("application/sdp", sdp(port, 1, "sendrecv"));
        m.mutate(input);
        self.calls.push(call);
        if self.calls.len() > MAX_CALLS {
            self.calls.remove(0);
        }
        self.send(&m.encode(), peer(TRUNK, Transport::Udp));
    }

    fn in_dialog(&mut self, which: usize, kind: usize, input: &mut Input) {
        if self.calls.is_empty() {
            return;
        }
        let i = which % self.calls.len();
        let call = &mut self.calls[i];
        let method = [
            "ACK", "BYE", "CANCEL", "INVITE", "UPDATE", "INFO", "BYE", "ACK",
        ][kind];
        let (cseq, branch) = match method {
            // The ACK of a 2xx is its own transaction with the INVITE's
            // CSeq; CANCEL reuses the INVITE's branch.
            "ACK" => (call.cseq, format!("z9hG4bK{}a{kind}", call.from_tag)),
            "CANCEL" => (1, call.invite_branch.clone()),
            _ => {
                call.cseq += 1;
                (call.cseq, format!("z9hG4bK{}c{}", call.from_tag, call.cseq))
            }
        };
        let to_tag = match (kind, &call.to_tag) {
            (6, _) => ";tag=wrong".to_owned(),
            (_, Some(t)) if method != "CANCEL" => format!(";tag={t}"),
            _ => String::new(),
        };
        let mut m = Message::new(format!("{method} sip:{}@{ZENTRALE} SIP/2.0", call.number))
            .header("Via", format!("SIP/2.0/UDP {TRUNK};branch={branch};rport"))
            .header("Max-Forwards", "70")
            .header(
                "From",
                format!("\"Anrufer\" <sip:0301234567@{TRUNK}>;tag={}", call.from_tag),
            )
            .header("To", format!("<sip:{}@{ZENTRALE}>{to_tag}", call.number))
            .header("Call-ID", call.call_id.clone())
            .header("CSeq", format!("{cseq} {method}"));
        m = match method {
            "INVITE" => m.header("Contact", format!("<sip:trunk@{TRUNK}>")).body(
                "application/sdp",
                sdp(31000, 2, ["sendonly", "sendrecv"][kind % 2]),
            ),
            "UPDATE" => m
                .header("Contact", format!("<sip:trunk@{TRUNK}>"))
                .header("Session-Expires", "90;refresher=uac"),
            "INFO" => m.body(
                "application/dtmf-relay",
                "Signal=1\r\nDuration=160\r\n".to_owned(),
            ),
            _ => m,
        };
        m.mutate(input);
        self.send(&m.encode(), peer(TRUNK, Transport::Udp));
    }

    /// Registers (or un-registers) an agent phone: the 401's challenge is
    /// answered with MD5 credentials for the demo password.
    fn register(&mut self, agent: usize, expires: u32, input: &mut Input) {
        let (ext, port) = AGENTS[agent % AGENTS.len()];
        let phone = agent_peer(agent);
        let call_id = format!("reg-{ext}@phone");
        let uri = format!("sip:{ZENTRALE}");
        let request = |cseq: u32, auth: Option<String>, branch: String| {
            let mut m = Message::new(format!("REGISTER {uri} SIP/2.0"))
                .header(
                    "Via",
                    format!("SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport"),
                )
                .header("Max-Forwards", "70")
                .header("From", format!("<sip:{ext}@{ZENTRALE}>;tag=reg{ext}"))
                .header("To", format!("<sip:{ext}@{ZENTRALE}>"))
                .header("Call-ID", call_id.clone())
                .header("CSeq", format!("{cseq} REGISTER"))
                .header("Contact", format!("<sip:{ext}@127.0.0.1:{port}>"))
                .header("Expires", expires.to_string());
            if let Some(auth) = auth {
                m = m.header("Authorization", auth);
            }
            m
        };
        self.challenges.clear();
        self.counter += 2;
        let first = request(self.counter as u32, None, self.token());
        self.send(&first.encode(), phone);
        let Some(auth) = self.credentials(ext, "REGISTER", &uri) else {
            return;
        };
        let mut second = request(self.counter as u32 + 1, Some(auth), self.token());
        second.mutate(input);
        self.send(&second.encode(), phone);
    }

    /// An agent dials a feature code: INVITE, 407, INVITE with credentials.
    fn agent_call(&mut self, agent: usize, code: &str, input: &mut Input) {
        let (ext, port) = AGENTS[agent % AGENTS.len()];
        let phone = agent_peer(agent);
        let tag = self.token();
        let uri = format!("sip:{code}@{ZENTRALE}");
        let invite = |cseq: u32, branch: &str, auth: Option<String>| {
            let mut m = Message::new(format!("INVITE {uri} SIP/2.0"))
                .header(
                    "Via",
                    format!("SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport"),
                )
                .header("Max-Forwards", "70")
                .header("From", format!("<sip:{ext}@{ZENTRALE}>;tag={tag}"))
                .header("To", format!("<{uri}>"))
                .header("Call-ID", format!("{tag}@phone"))
                .header("CSeq", format!("{cseq} INVITE"))
                .header("Contact", format!("<sip:{ext}@127.0.0.1:{port}>"));
            if let Some(auth) = auth {
                m = m.header("Proxy-Authorization", auth);
            }
            m.body("application/sdp", sdp(port + 1000, 1, "sendrecv"))
        };
        self.challenges.clear();
        self.send(&invite(1, &format!("{tag}a"), None).encode(), phone);
        let Some(auth) = self.credentials(ext, "INVITE", &uri) else {
            return;
        };
        let mut second = invite(2, &format!("{tag}b"), Some(auth));
        second.mutate(input);
        self.send(&second.encode(), phone);
    }

    /// MD5 digest credentials (qop=auth) for the last MD5 challenge.
    fn credentials(&self, user: &str, method: &str, uri: &str) -> Option<String> {
        let challenge = self
            .challenges
            .iter()
            .find(|c| c.contains("MD5") || !c.contains("algorithm"))?;
        digest_md5(challenge, user, "demo", method, uri)
    }

    /// A response to a request zentrale sent; `agent_code` set when the
    /// peer is an agent phone (its 2xx to an INVITE carries SDP and makes
    /// a dialog the phone can hang up later).
    fn answer(&mut self, sent: &Sent, code: u16, agent_code: Option<u16>, input: &mut Input) {
        let req = &sent.request;
        let is_invite = matches!(req.method, crate::sip::message::Method::Invite);
        let mut m = Message::new(format!("SIP/2.0 {code} Reason"));
        let mut to = String::new();
        for (name, value) in headers::fields(&req.headers) {
            match name {
                "Via" | "From" | "Call-ID" | "CSeq" => m = m.header(name, value),
                "To" => to = value.to_owned(),
                _ => {}
            }
        }
        if tag_of(&to).is_none() && code > 100 {
            to.push_str(";tag=phone");
        }
        m = m.header("To", to.clone());
        let contact = format!("<sip:agent@{}>", sent.to.addr);
        if is_invite && (200..300).contains(&code) {
            m = m.header("Contact", contact.clone()).body(
                "application/sdp",
                sdp(sent.to.addr.port() + 1000, 1, "sendrecv"),
            );
        }
        m.mutate(input);
        self.send(&m.encode(), sent.to);
        if agent_code.is_some() && is_invite && (200..300).contains(&code) {
            let target = headers::contact(&req.headers)
                .and_then(uri_of)
                .unwrap_or_else(|| format!("sip:zentrale@{ZENTRALE}"));
            let remote = headers::from(&req.headers).unwrap_or_default().to_owned();
            let call_id = headers::call_id(&req.headers)
                .unwrap_or_default()
                .to_owned();
            self.phone_dialogs.push(PhoneDialog {
                phone: sent.to,
                call_id,
                remote,
                local: to,
                target,
                cseq: 1,
            });
            if self.phone_dialogs.len() > MAX_CALLS {
                self.phone_dialogs.remove(0);
            }
        }
    }

    /// A plain answer, unmutated (the finish answers zentrale's BYEs).
    fn answer_plain(&mut self, sent: &Sent, code: u16) {
        let mut none = Input::new(&[]);
        self.answer(sent, code, None, &mut none);
    }

    fn agent_bye(&mut self, which: usize, input: &mut Input) {
        if self.phone_dialogs.is_empty() {
            return;
        }
        let i = which % self.phone_dialogs.len();
        let d = &mut self.phone_dialogs[i];
        d.cseq += 1;
        let branch = format!("z9hG4bK{}b{}", d.call_id.len(), d.cseq);
        let mut m = Message::new(format!("BYE {} SIP/2.0", d.target))
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {};branch={branch}{};rport",
                    d.phone.addr, d.cseq
                ),
            )
            .header("Max-Forwards", "70")
            .header("From", d.local.clone())
            .header("To", d.remote.clone())
            .header("Call-ID", d.call_id.clone())
            .header("CSeq", format!("{} BYE", d.cseq));
        let phone = d.phone;
        m.mutate(input);
        self.send(&m.encode(), phone);
    }
}

/// The `which`-th entry (modulo the length), if any, to be answered with
/// `code`: a final answer takes it off the list.
fn pick(list: &mut Vec<Sent>, which: usize, code: u16) -> Option<Sent> {
    if list.is_empty() {
        return None;
    }
    let i = which % list.len();
    if code >= 200 {
        Some(list.remove(i))
    } else {
        Some(list[i].clone())
    }
}

//! The core driven in process: a trunk's calls on a virtual clock, what
//! it sends read back from its [`Outputs`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::{Core, Outputs, acd_spec};
use crate::acd::Acd;
use crate::config::{Config, Overrides};
use crate::daemon::clock::WallClock;
use crate::daemon::rtp::RtpSockets;
use crate::media::engine::{self, DetachedMedia, MediaHandle};
use crate::media::prompt::PromptLibrary;
use crate::metrics::Metrics;
use crate::rng::SeededRng;
use crate::sip::Transport;
use crate::sip::transaction::Peer;

const LOCAL: &str = "127.0.0.1:5060";
const TRUNK: &str = "127.0.0.1:25071";
/// Ports of these tests alone (the fuzz tests use 47000-47039).
const RTP_PORTS: (u16, u16) = (47100, 47139);

fn setup() -> &'static (Arc<Config>, PromptLibrary) {
    static SETUP: OnceLock<(Arc<Config>, PromptLibrary)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let overrides = Overrides {
            rtp_ports: Some(RTP_PORTS),
            ..Overrides::default()
        };
        let config = Config::load(&root.join("zentrale.yaml"), &overrides)
            .unwrap_or_else(|e| panic!("the demo config: {e}"));
        let prompts = PromptLibrary::load(&config.sounds_dir, config.sound_names())
            .unwrap_or_else(|e| panic!("the demo prompts: {e}"));
        (Arc::new(config), prompts)
    })
}

/// The demo config's core on a weekday morning, and a trunk calling it.
struct Rig {
    core: Core,
    media: MediaHandle,
    _media: DetachedMedia,
    sockets: RtpSockets,
    metrics: Arc<Metrics>,
    now: Instant,
    out: Outputs,
    trunk: Peer,
}

impl Rig {
    fn new(seed: u64) -> Rig {
        let (config, prompts) = setup();
        let now = Instant::now();
        let (media, detached) = engine::detached().expect("a media handle without a worker");
        let acd = Arc::new(Acd::new(acd_spec(config), now).expect("the demo ACD"));
        let clock = WallClock::new(now, "2026-11-23T09:00:00Z".parse().unwrap());
        let metrics = Arc::new(Metrics::new());
        let core = Core::new(
            config.clone(),
            prompts.clone(),
            metrics.clone(),
            acd,
            clock,
            SeededRng::from_u64(seed),
            now,
        );
        Rig {
            core,
            media,
            _media: detached,
            sockets: RtpSockets::ephemeral(),
            metrics,
            now,
            out: Outputs::default(),
            trunk: Peer {
                transport: Transport::Udp,
                addr: TRUNK.parse::<SocketAddr>().unwrap(),
                local: LOCAL.parse::<SocketAddr>().unwrap(),
            },
        }
    }

    /// One message from the trunk; what the core sent in answer, as text.
    fn send(&mut self, message: &str) -> Vec<String> {
        self.out.clear();
        self.core
            .on_message(message.as_bytes(), self.trunk, self.now, &mut self.out);
        self.sent()
    }

    /// Moves the clock by `by`, firing the timers due on the way.
    fn advance(&mut self, by: Duration) -> Vec<String> {
        self.out.clear();
        let until = self.now + by;
        while let Some(t) = self.core.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.max(t);
            self.core.handle_timeout(self.now, &mut self.out);
        }
        self.now = until;
        self.sent()
    }

    fn sent(&mut self) -> Vec<String> {
        self.sockets
            .carry_out(&mut self.core, &mut self.out, &self.media, self.now);
        self.out
            .transmits
            .iter()
            .map(|t| String::from_utf8_lossy(&t.bytes).into_owned())
            .collect()
    }

    /// A trunk call to 115, answered and ACKed; returns its To tag.
    fn established(&mut self, call: &str) -> String {
        let mut sent = self.send(&invite(call));
        sent.extend(self.advance(Duration::from_secs(5)));
        let ok = sent
            .iter()
            .find(|m| m.starts_with("SIP/2.0 200") && m.contains(&format!("Call-ID: {call}")))
            .unwrap_or_else(|| panic!("call {call} not answered: {sent:?}"));
        let tag = header(ok, "To")
            .split(";tag=")
            .nth(1)
            .expect("a To tag")
            .to_owned();
        self.send(&in_dialog("ACK", 1, call, &tag));
        tag
    }
}

fn header<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map_or("", str::trim)
}

fn invite(call: &str) -> String {
    let sdp = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";
    format!(
        "INVITE sip:115@{LOCAL} SIP/2.0\r\n\
Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call}-0;rport\r\n\
From: <sip:0561999000@{TRUNK}>;tag={call}-from\r\n\
To: <sip:115@{LOCAL}>\r\n\
Call-ID: {call}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:trunk@{TRUNK}>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn in_dialog(method: &str, cseq: u32, call: &str, to_tag: &str) -> String {
    format!(
        "{method} sip:zentrale@{LOCAL} SIP/2.0\r\n\
Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call}-{cseq}-{method};rport\r\n\
From: <sip:0561999000@{TRUNK}>;tag={call}-from\r\n\
To: <sip:115@{LOCAL}>;tag={to_tag}\r\n\
Call-ID: {call}\r\n\
CSeq: {cseq} {method}\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_fixed_seed_gives_the_same_tags_branches_and_sdp() {
    let answer = |seed| {
        let mut rig = Rig::new(seed);
        let mut sent = rig.send(&invite("seeded-1"));
        sent.extend(rig.advance(Duration::from_secs(5)));
        rig.send(&format!(
            "OPTIONS sip:{LOCAL} SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-o1\r\n\
From: <sip:monitor@{TRUNK}>;tag=o1\r\nTo: <sip:{LOCAL}>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ))
        .into_iter()
        .for_each(|m| sent.push(m));
        sent
    };
    let first = answer(7);
    assert!(
        first.iter().any(|m| m.starts_with("SIP/2.0 200")),
        "{first:?}"
    );
    // The rigs run one after the other, so the second gets the same RTP port.
    assert_eq!(
        first,
        answer(7),
        "the same seed must give the same messages"
    );
    let other = answer(8);
    let tag = |sent: &[String]| header(sent.last().unwrap(), "To").to_owned();
    assert_ne!(tag(&first), tag(&other), "another seed, other tags");
}

#[test]
fn a_panic_in_one_call_ends_that_call_and_the_others_go_on() {
    let mut rig = Rig::new(1);
    let a = rig.established("isolated-a");
    let b = rig.established("isolated-b");
    assert_eq!(rig.core.active_calls(), 2);

    rig.core.fail_call("isolated-a");
    let sent = rig.send(&in_dialog("UPDATE", 2, "isolated-a", &a));
    // The failed call is hung up with a BYE saying why, and counted.
    let bye = sent
        .iter()
        .find(|m| m.starts_with("BYE ") && header(m, "Call-ID") == "isolated-a")
        .unwrap_or_else(|| panic!("no BYE for the failed call: {sent:?}"));
    assert!(header(bye, "Reason").contains("cause=500"), "{bye}");
    assert_eq!(rig.metrics.internal_errors.get(), 1);
    // The BYE is answered: the failed call is gone, the other is not.
    let cseq = header(bye, "CSeq").to_owned();
    let via = header(bye, "Via").to_owned();
    let from = header(bye, "From").to_owned();
    let to = header(bye, "To").to_owned();
    rig.send(&format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: isolated-a\r\n\
CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    ));
    assert_eq!(rig.core.active_calls(), 1);

    // The other call carries on: its UPDATE is answered, its BYE ends it.
    let sent = rig.send(&in_dialog("UPDATE", 2, "isolated-b", &b));
    assert!(
        sent.iter()
            .any(|m| m.starts_with("SIP/2.0 200") && header(m, "Call-ID") == "isolated-b"),
        "{sent:?}"
    );
    let sent = rig.send(&in_dialog("BYE", 3, "isolated-b", &b));
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 200")),
        "{sent:?}"
    );
    assert_eq!(rig.core.active_calls(), 0);
    // And new calls are taken.
    rig.established("isolated-c");
    assert_eq!(rig.core.active_calls(), 1);
    assert_eq!(rig.metrics.internal_errors.get(), 1);
}

#[test]
fn a_port_that_cannot_be_bound_ends_its_call_as_a_full_range_would() {
    let mut rig = Rig::new(1);
    rig.out.clear();
    rig.core.on_message(
        invite("port-a").as_bytes(),
        rig.trunk,
        rig.now,
        &mut rig.out,
    );
    let port = rig
        .out
        .ports
        .iter()
        .find_map(|r| match r {
            super::PortRequest::Bind { port, .. } => Some(*port),
            super::PortRequest::Release(_) => None,
        })
        .expect("a bind for the call's RTP port");
    assert!(
        rig.out.transmits.iter().any(|t| {
            let text = String::from_utf8_lossy(&t.bytes);
            text.starts_with("SIP/2.0 100")
        }),
        "the INVITE is taken at once"
    );
    // The shell could not bind it (another process holds the port).
    rig.out.clear();
    rig.core.on_port_failed(port, rig.now, &mut rig.out);
    assert!(
        rig.out.ports.contains(&super::PortRequest::Release(port)),
        "the port is let go: {:?}",
        rig.out.ports
    );
    let sent = rig.sent();
    let ended = sent.iter().any(|m| {
        (m.starts_with("SIP/2.0 503") && !header(m, "Retry-After").is_empty())
            || (m.starts_with("BYE ") && header(m, "Reason").contains("cause=503"))
    });
    assert!(ended, "the call ends as with no port free: {sent:?}");
    // The next call gets another port and is answered.
    rig.out.clear();
    rig.core.on_message(
        invite("port-b").as_bytes(),
        rig.trunk,
        rig.now,
        &mut rig.out,
    );
    let other = rig.out.ports.iter().find_map(|r| match r {
        super::PortRequest::Bind { port, .. } => Some(*port),
        super::PortRequest::Release(_) => None,
    });
    assert!(other.is_some_and(|p| p != port), "{other:?}");
    let mut sent = rig.sent();
    sent.extend(rig.advance(Duration::from_secs(5)));
    assert!(
        sent.iter()
            .any(|m| m.starts_with("SIP/2.0 200") && header(m, "Call-ID") == "port-b"),
        "{sent:?}"
    );
}

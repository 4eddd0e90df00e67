//! CPU of one whole trunk call through the sans-IO core, in process: the
//! demo config answering at once, the INVITE → 100 → 200 → ACK → BYE → 200
//! of `benches/load.sh signalling`, with the real media worker and RTP
//! ports behind it. The clock advances 5 ms per call (200 calls/s), so
//! transactions and timers live and expire as they do under the load run.
//!
//! This is the core's share of a call with warm caches; `load.sh` measures
//! the whole process (system calls, wake-ups, cold caches) on the wire.
//!
//! `cargo bench --bench core_call`; figures in BENCHMARKS.md.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use zentrale::acd::Acd;
use zentrale::config::{Config, Overrides};
use zentrale::daemon::core::{Core, Outputs, acd_spec};
use zentrale::daemon::rtp::RtpSockets;
use zentrale::media::engine::{self, EngineConfig, MediaEvent};
use zentrale::media::ports::PortPool;
use zentrale::media::prompt::PromptLibrary;
use zentrale::metrics::Metrics;
use zentrale::sip::Transport;
use zentrale::sip::transaction::{Peer, Transmit};
use zentrale::wallclock::WallClock;

const LOCAL: &str = "127.0.0.1:5060";
const TRUNK: &str = "127.0.0.1:25070";
const CALL_SPACING: Duration = Duration::from_millis(5);

fn invite(call: u64) -> Vec<u8> {
    let sdp = "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n";
    format!(
        "INVITE sip:115@{LOCAL} SIP/2.0\r\n\
Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call}-0;rport\r\n\
From: <sip:0561999000@{TRUNK}>;tag={call}SIPpTag001\r\n\
To: <sip:115@{LOCAL}>\r\n\
Call-ID: {call}-7827@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:trunk@{TRUNK}>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn in_dialog(method: &str, cseq: u32, branch: u32, call: u64, to_tag: &str) -> Vec<u8> {
    format!(
        "{method} sip:zentrale@{LOCAL} SIP/2.0\r\n\
Via: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call}-{branch};rport\r\n\
From: <sip:0561999000@{TRUNK}>;tag={call}SIPpTag001\r\n\
To: <sip:115@{LOCAL}>;tag={to_tag}\r\n\
Call-ID: {call}-7827@127.0.0.1\r\n\
CSeq: {cseq} {method}\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The To tag of the final response among `out`.
fn to_tag(out: &[Transmit]) -> String {
    let text = std::str::from_utf8(&out.last().expect("a response").bytes).expect("UTF-8");
    assert!(text.starts_with("SIP/2.0 200"), "not answered: {text}");
    let to = text
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("a To header");
    let tag = to.split(";tag=").nth(1).expect("a To tag");
    tag.trim().to_string()
}

struct Driver {
    core: Core,
    media: engine::MediaHandle,
    sockets: RtpSockets,
    events: tokio::sync::mpsc::Receiver<MediaEvent>,
    peer: Peer,
    now: Instant,
    call: u64,
    out: Outputs,
    /// Time spent inside the core, summed over all calls.
    spent: Duration,
}

impl Driver {
    fn new() -> Driver {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let overrides = Overrides {
            rtp_ports: Some((42000, 51999)),
            ..Overrides::default()
        };
        let mut config = Config::load(&root.join("zentrale.yaml"), &overrides)
            .unwrap_or_else(|e| panic!("the demo config: {e}"));
        for tenant in &mut config.tenants {
            for hotline in &mut tenant.dialplan.hotlines {
                hotline.answer_after_ms = 0;
            }
            tenant.dialplan.limits = Default::default();
        }
        let prompts = PromptLibrary::load(&config.sounds_dir, config.sound_names())
            .expect("the demo prompts");
        let ports = PortPool::new(42000, 51999).expect("RTP ports 42000-51999 free");
        let (media, events) = engine::start(
            EngineConfig {
                rtp_timeout: config.rtp.timeout,
                tick: Duration::from_millis(20),
                recycle: Some(ports.recycler()),
                wake: None,
            },
            zentrale::rng::SeededRng::from_u64(2),
        );
        let now = Instant::now();
        let mut metrics = Metrics::new();
        metrics.watch_media(media.counters());
        let acd = Arc::new(Acd::new(acd_spec(&config), now).expect("the demo ACD"));
        // A weekday morning, inside every demo hotline's service hours.
        let clock = WallClock::new(now, "2026-11-23T09:00:00Z".parse().unwrap());
        let core = Core::new(
            Arc::new(config),
            prompts,
            Arc::new(metrics),
            acd,
            clock,
            zentrale::rng::SeededRng::from_u64(1),
            now,
        );
        Driver {
            core,
            media,
            sockets: RtpSockets::new(ports),
            events,
            peer: Peer {
                transport: Transport::Udp,
                addr: TRUNK.parse::<SocketAddr>().unwrap(),
                local: LOCAL.parse::<SocketAddr>().unwrap(),
            },
            now,
            call: 0,
            out: Outputs::default(),
            spent: Duration::ZERO,
        }
    }

    /// One call, answered at once and hung up by the caller right after
    /// the ACK, then the clock moves on to the next call.
    fn call(&mut self) {
        self.call += 1;
        let call = self.call;
        self.out.clear();
        self.feed(&invite(call));
        let tag = to_tag(&self.out.transmits);
        black_box(&self.out);
        self.out.clear();
        self.feed(&in_dialog("ACK", 1, 4, call, &tag));
        self.feed(&in_dialog("BYE", 2, 5, call, &tag));
        black_box(&self.out);
        self.now += CALL_SPACING;
        let t = Instant::now();
        while let Ok(event) = self.events.try_recv() {
            self.core.on_media_event(event, self.now, &mut self.out);
        }
        if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now, &mut self.out);
        }
        self.sockets
            .carry_out(&mut self.core, &mut self.out, &self.media, self.now);
        self.spent += t.elapsed();
    }

    /// One datagram from the trunk into the core, timed.
    fn feed(&mut self, datagram: &[u8]) {
        let t = Instant::now();
        self.core
            .on_message(datagram, self.peer, self.now, &mut self.out);
        // The shell's share: ports bound, commands to the worker, as the
        // daemon's core thread does it.
        self.sockets
            .carry_out(&mut self.core, &mut self.out, &self.media, self.now);
        self.spent += t.elapsed();
    }
}

fn main() {
    let mut driver = Driver::new();
    // `CORE_CALLS=N`: N calls and nothing else, for a profiler or for
    // counting instructions (BENCHMARKS.md).
    if let Some(n) = std::env::var("CORE_CALLS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        for _ in 0..n {
            driver.call();
        }
        let per_call = driver.spent.as_secs_f64() * 1e6 / n.max(1) as f64;
        eprintln!("{n} calls, {per_call:.1} us per call in the core");
        return;
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    // Only the core's own time counts, not building the bench's messages.
    criterion.bench_function("core/trunk call answered at once", |b| {
        b.iter_custom(|calls| {
            let before = driver.spent;
            for _ in 0..calls {
                driver.call();
            }
            driver.spent - before
        })
    });
    criterion.final_summary();
}

//! What relaying one RTP packet between bridged legs costs.
//!
//! ```text
//! cargo bench --bench media_relay                 # everything
//! cargo bench --bench media_relay -- rewrite      # only the in-memory rewrite (filter first)
//! MEDIA_ENGINE_PAIRS=500 MEDIA_ENGINE_SECONDS=20 cargo bench --bench media_relay -- engine
//! ```
//!
//! - `relay/rewrite/*`: [`Relay::rewrite`] alone (header rewrite in place,
//!   plus µ-law→A-law per byte in the transcoding case), no system call.
//! - `relay/loopback/*`: the same over real UDP on 127.0.0.1: a bare
//!   send+receive pair, and a relay hop (send → receive, rewrite, send →
//!   receive); the difference is what the worker spends per relayed packet.
//! - `engine`: the real worker with `MEDIA_ENGINE_PAIRS` bridged call pairs
//!   (default 200) whose phones all talk at 50 packets/s, spread over the
//!   20 ms; prints the worker thread's CPU time (from
//!   `/proc/self/task/TID/schedstat`) per relayed packet, and for
//!   comparison per packet of prompt playback with the peers talking.

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use zentrale::media::engine::{self, EngineConfig, MediaHandle, Playlist, StreamId};
use zentrale::media::relay::{LegFormat, OutboundRtp, Relay};
use zentrale::media::rtp::{self, RtpHeader};
use zentrale::media::{Codec, Prompt};

const PCMA: LegFormat = LegFormat {
    codec: Codec::Pcma,
    payload_type: 8,
    dtmf_payload_type: Some(101),
};
const PCMU: LegFormat = LegFormat {
    codec: Codec::Pcmu,
    payload_type: 0,
    dtmf_payload_type: Some(101),
};

/// A 20 ms packet as a phone sends it.
fn voice_packet(format: &LegFormat, seq: u16, ts: u32) -> Vec<u8> {
    let mut p = vec![0u8; 12 + 160];
    RtpHeader {
        marker: false,
        payload_type: format.payload_type,
        sequence: seq,
        timestamp: ts,
        ssrc: 0x5eed,
    }
    .write(&mut p);
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    p
}

fn rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay/rewrite");
    group.throughput(Throughput::Elements(1));
    for (name, from, to) in [("same_codec", PCMA, PCMA), ("pcmu_to_pcma", PCMU, PCMA)] {
        group.bench_function(name, |b| {
            let mut relay = Relay::new();
            let mut out = OutboundRtp::random(&mut zentrale::rng::SeededRng::from_u64(1));
            let now = Instant::now();
            let mut datagram = voice_packet(&from, 0, 0);
            let mut ts = 0u32;
            b.iter(|| {
                // What the socket would have delivered: the source header.
                ts = ts.wrapping_add(160);
                datagram[4..8].copy_from_slice(&ts.to_be_bytes());
                datagram[8..12].copy_from_slice(&0x5eedu32.to_be_bytes());
                datagram[1] = from.payload_type;
                let (header, payload) = rtp::parse_in_place(&datagram).unwrap();
                let range =
                    relay.rewrite(&mut datagram, header, payload, &from, &to, &mut out, now);
                black_box(range);
            });
        });
    }
    group.finish();
}

fn loopback(c: &mut Criterion) {
    let bind = || UdpSocket::bind("127.0.0.1:0").unwrap();
    let (phone_a, engine_a, engine_b, phone_b) = (bind(), bind(), bind(), bind());
    let a_addr = engine_a.local_addr().unwrap();
    let b_addr = phone_b.local_addr().unwrap();
    let mut group = c.benchmark_group("relay/loopback");
    group.throughput(Throughput::Elements(1));
    let packet = voice_packet(&PCMA, 0, 0);
    let mut buf = [0u8; 2048];
    group.bench_function("send_recv", |b| {
        b.iter(|| {
            phone_a.send_to(&packet, a_addr).unwrap();
            black_box(engine_a.recv_from(&mut buf).unwrap());
        });
    });
    for (name, from, to) in [
        ("hop_same_codec", PCMA, PCMA),
        ("hop_pcmu_to_pcma", PCMU, PCMA),
    ] {
        let packet = voice_packet(&from, 0, 0);
        group.bench_function(name, |b| {
            let mut relay = Relay::new();
            let mut out = OutboundRtp::random(&mut zentrale::rng::SeededRng::from_u64(1));
            let mut got = [0u8; 2048];
            b.iter(|| {
                phone_a.send_to(&packet, a_addr).unwrap();
                let (n, _) = engine_a.recv_from(&mut buf).unwrap();
                let (header, payload) = rtp::parse_in_place(&buf[..n]).unwrap();
                let range = relay
                    .rewrite(
                        &mut buf[..n],
                        header,
                        payload,
                        &from,
                        &to,
                        &mut out,
                        Instant::now(),
                    )
                    .unwrap();
                engine_b.send_to(&buf[range], b_addr).unwrap();
                black_box(phone_b.recv_from(&mut got).unwrap());
            });
        });
    }
    group.finish();
}

/// The media worker's thread id, once it runs.
fn worker_tid() -> Option<String> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "zentrale-media")
        })
        .map(|t| t.file_name().to_string_lossy().into_owned())
}

/// Times the thread gave up the CPU (went to sleep in `epoll_wait` or
/// `nanosleep`), i.e. its wake-ups.
fn wakeups(tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds the thread has run on a CPU.
fn cpu_ns(tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A phone: its socket and where it sends (the engine's port for its leg).
struct Phone {
    socket: UdpSocket,
    engine: SocketAddr,
    format: LegFormat,
}

fn add_leg(media: &MediaHandle, id: u64, format: LegFormat) -> Phone {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let engine_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    engine_socket.set_nonblocking(true).unwrap();
    let engine = engine_socket.local_addr().unwrap();
    media.add_stream(
        StreamId(id),
        engine_socket,
        Some(socket.local_addr().unwrap()),
        format.codec,
        format.payload_type,
    );
    Phone {
        socket,
        engine,
        format,
    }
}

/// Every phone talks at 50 packets/s, spread over the 20 ms in 1 ms slots,
/// for `seconds`.
fn drive(phones: &[Phone], seconds: f64) -> Load {
    std::thread::sleep(Duration::from_millis(300));
    let tid = worker_tid().expect("the media worker thread");
    let (cpu0, wake0) = (cpu_ns(&tid), wakeups(&tid));
    let t0 = Instant::now();
    let mut buf = [0u8; 2048];
    let mut packets: Vec<Vec<u8>> = phones
        .iter()
        .map(|p| voice_packet(&p.format, 0, 0))
        .collect();
    let mut slot: u64 = 0;
    while t0.elapsed().as_secs_f64() < seconds {
        if let Some(wait) =
            (t0 + Duration::from_millis(slot)).checked_duration_since(Instant::now())
        {
            std::thread::sleep(wait);
        }
        let frame = (slot / 20) as u32;
        for (i, phone) in phones.iter().enumerate() {
            if i as u64 % 20 != slot % 20 {
                continue;
            }
            let p = &mut packets[i];
            p[2..4].copy_from_slice(&(frame as u16).to_be_bytes());
            p[4..8].copy_from_slice(&(frame * 160).to_be_bytes());
            let _ = phone.socket.send_to(p, phone.engine);
            while phone.socket.recv_from(&mut buf).is_ok() {}
        }
        slot += 1;
    }
    Load {
        cpu_ns: cpu_ns(&tid) - cpu0,
        wall: t0.elapsed(),
        wakeups: wakeups(&tid) - wake0,
    }
}

/// What the worker spent while [`drive`] ran.
struct Load {
    cpu_ns: u64,
    wall: Duration,
    wakeups: u64,
}

impl Load {
    /// "CPU 1.20 s (15.0 % of a core, 550 wake-ups/s) = 7.50 us per <what>".
    fn per(&self, packets: u64, what: &str) -> String {
        let cpu = self.cpu_ns as f64;
        let wall = self.wall.as_secs_f64();
        format!(
            "worker CPU {:.2} s ({:.1} % of a core, {:.0} wake-ups/s) = {:.2} us per {what}",
            cpu / 1e9,
            cpu / 1e9 / wall * 100.0,
            self.wakeups as f64 / wall,
            cpu / 1e3 / packets.max(1) as f64,
        )
    }
}

fn engine_figures() {
    let pairs: u64 = std::env::var("MEDIA_ENGINE_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seconds: f64 = std::env::var("MEDIA_ENGINE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let config = EngineConfig {
        rtp_timeout: None,
        tick: Duration::from_millis(20),
        recycle: None,
        wake: None,
    };
    for (name, caller, agent) in [("same codec", PCMA, PCMA), ("PCMU<->PCMA", PCMU, PCMA)] {
        let (media, _events) = engine::start(config.clone(), zentrale::rng::SeededRng::from_u64(1));
        let mut phones = Vec::new();
        for p in 0..pairs {
            phones.push(add_leg(&media, 2 * p, caller));
            phones.push(add_leg(&media, 2 * p + 1, agent));
            media.bridge(StreamId(2 * p), StreamId(2 * p + 1));
        }
        let counters = media.counters();
        std::thread::sleep(Duration::from_millis(100));
        let relayed0 = counters.relayed.load(Ordering::Relaxed);
        let load = drive(&phones, seconds);
        std::thread::sleep(Duration::from_millis(40));
        let relayed = counters.relayed.load(Ordering::Relaxed) - relayed0;
        println!(
            "engine relay, {name}: {pairs} bridged pairs, {relayed} packets relayed in {:.1} s; {}",
            load.wall.as_secs_f64(),
            load.per(relayed, "relayed packet (receive + rewrite + send)"),
        );
        drop(media);
        std::thread::sleep(Duration::from_millis(200));
    }

    // The same number of legs playing music while their peers talk.
    let (media, _events) = engine::start(config, zentrale::rng::SeededRng::from_u64(1));
    let moh = Prompt::from_samples(
        "moh",
        &(0..8000)
            .map(|i| ((i * 37) % 2000 - 1000) as i16)
            .collect::<Vec<_>>(),
    );
    let phones: Vec<Phone> = (0..2 * pairs)
        .map(|id| {
            let phone = add_leg(&media, id, PCMA);
            media.play(StreamId(id), Playlist::looping(moh.clone()));
            phone
        })
        .collect();
    let counters = media.counters();
    std::thread::sleep(Duration::from_millis(100));
    let (s0, r0) = (
        counters.sent.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed),
    );
    let load = drive(&phones, seconds);
    let packets =
        counters.sent.load(Ordering::Relaxed) - s0 + counters.received.load(Ordering::Relaxed) - r0;
    println!(
        "engine playback: {} streams playing while their peers talk, {packets} packets sent + received in {:.1} s; {}",
        2 * pairs,
        load.wall.as_secs_f64(),
        load.per(packets, "packet sent or received"),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listing = args.iter().any(|a| a == "--list" || a == "--test");
    // Cargo passes `--bench` first; a filter must come right after it.
    let filter = args
        .iter()
        .find(|a| *a != "--bench")
        .filter(|a| !a.starts_with('-'));
    let mut c = Criterion::default().configure_from_args();
    rewrite(&mut c);
    loopback(&mut c);
    c.final_summary();
    if !listing && filter.is_none_or(|f| "engine".contains(f.as_str())) {
        engine_figures();
    }
}

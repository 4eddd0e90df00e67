//! The worker over real loopback sockets.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::*;
use crate::media::prompt::Prompt;
use crate::media::rtp::{self, RtpHeader, TelephoneEvent};
use crate::rng::SeededRng;

const FRAME: usize = 160;

fn config(timeout: Option<Duration>) -> EngineConfig {
    EngineConfig {
        rtp_timeout: timeout,
        tick: Duration::from_millis(20),
        recycle: None,
        wake: None,
    }
}

/// A peer: a blocking socket with a short read timeout.
fn peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

/// The engine's side: non-blocking, as the port pool hands it out.
fn engine_socket() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_nonblocking(true).unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

fn recv_packet(s: &UdpSocket) -> (RtpHeader, Vec<u8>) {
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).expect("an RTP packet within 500 ms");
    let p = rtp::parse(&buf[..n]).expect("valid RTP");
    (p.header, p.payload.to_vec())
}

async fn next_event(
    events: &mut tokio::sync::mpsc::Receiver<MediaEvent>,
    within: Duration,
) -> Option<MediaEvent> {
    tokio::time::timeout(within, events.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn plays_a_prompt_as_one_continuous_stream() {
    let (media, mut events) = start(config(None), SeededRng::from_u64(1));
    let (rx, rx_addr) = peer();
    let (sock, _) = engine_socket();
    // 5.5 frames of a ramp, so frames differ and the last one is padded.
    let samples: Vec<i16> = (0..880).map(|i| (i * 37 % 8000 - 4000) as i16).collect();
    let prompt = Prompt::from_samples("ramp", &samples);
    let id = StreamId(7);
    media.add_stream(id, sock, Some(rx_addr), Codec::Pcma, 8);
    media.play(id, Playlist::once(prompt.clone()));

    let packets: Vec<_> = (0..10).map(|_| recv_packet(&rx)).collect();
    let first = packets[0].0;
    assert!(first.marker, "marker on the first packet");
    for (i, (h, payload)) in packets.iter().enumerate() {
        assert_eq!(h.payload_type, 8);
        assert_eq!(h.ssrc, first.ssrc);
        assert_eq!(h.sequence, first.sequence.wrapping_add(i as u16));
        assert_eq!(h.timestamp, first.timestamp.wrapping_add(160 * i as u32));
        assert_eq!(h.marker, i == 0, "packet {i}");
        assert_eq!(payload.len(), FRAME);
    }
    // The prompt starts in the first packet, or the second if the tick fell
    // between add_stream and play.
    let mut expected = prompt.encoded(Codec::Pcma).to_vec();
    expected.resize(6 * FRAME, Codec::Pcma.silence());
    let start_at = packets
        .iter()
        .position(|(_, p)| p[..] == expected[..FRAME])
        .expect("prompt start");
    assert!(start_at <= 1, "prompt started at packet {start_at}");
    let played: Vec<u8> = packets[start_at..start_at + 6]
        .iter()
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(played, expected);
    assert!(
        packets[start_at + 6].1.iter().all(|&b| b == 0xD5),
        "silence after the prompt"
    );
    assert_eq!(
        next_event(&mut events, Duration::from_millis(200)).await,
        Some(MediaEvent::PlaylistDone(id))
    );

    media.remove_stream(id);
    std::thread::sleep(Duration::from_millis(60));
    let mut buf = [0u8; 1500];
    while rx.set_nonblocking(true).is_ok() && rx.recv_from(&mut buf).is_ok() {}
    rx.set_nonblocking(false).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(
        rx.recv_from(&mut buf).is_err(),
        "no packets after remove_stream"
    );
}

fn rtp_packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 12 + payload.len()];
    RtpHeader {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: ts,
        ssrc: 0x1234,
    }
    .write(&mut b);
    b[12..].copy_from_slice(payload);
    b
}

fn dtmf_packet(seq: u16, ts: u32, event: u8, end: bool, duration: u16) -> Vec<u8> {
    let mut p = [0u8; 4];
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
    .write(&mut p);
    rtp_packet(101, seq, ts, &p)
}

#[tokio::test]
async fn learns_the_peer_and_reports_dtmf_once_per_event() {
    let (media, mut events) = start(config(None), SeededRng::from_u64(1));
    let (phone, _) = peer();
    let (sock, engine_addr) = engine_socket();
    let id = StreamId(1);
    media.add_stream(id, sock, None, Codec::Pcmu, 0);
    media.set_dtmf_payload_type(id, Some(101));

    // Nothing is sent until the phone's first packet tells us where to.
    phone
        .set_read_timeout(Some(Duration::from_millis(80)))
        .unwrap();
    assert!(phone.recv_from(&mut [0u8; 1500]).is_err());
    phone
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    phone
        .send_to(&rtp_packet(0, 1, 0, &[0xFF; 160]), engine_addr)
        .unwrap();
    let (h, payload) = recv_packet(&phone);
    assert!(h.marker);
    assert_eq!((h.payload_type, payload), (0, vec![0xFF; 160]));

    // Key 5: three start packets, then the end packet three times.
    let mut seq = 2;
    for (end, dur) in [
        (false, 160),
        (false, 320),
        (false, 480),
        (true, 640),
        (true, 640),
        (true, 640),
    ] {
        phone
            .send_to(&dtmf_packet(seq, 1000, 5, end, dur), engine_addr)
            .unwrap();
        seq += 1;
    }
    // Key #: only its end packets got through.
    for _ in 0..3 {
        phone
            .send_to(&dtmf_packet(seq, 3000, 11, true, 800), engine_addr)
            .unwrap();
        seq += 1;
    }
    // A stranger's packets are ignored.
    let (stranger, _) = peer();
    stranger
        .send_to(&dtmf_packet(1, 5000, 9, false, 160), engine_addr)
        .unwrap();

    let d = |digit| Some(MediaEvent::Dtmf { stream: id, digit });
    let wait = Duration::from_millis(300);
    assert_eq!(next_event(&mut events, wait).await, d('5'));
    assert_eq!(next_event(&mut events, wait).await, d('#'));
    assert_eq!(
        next_event(&mut events, Duration::from_millis(100)).await,
        None
    );
    // Sending goes on to the phone, not to the stranger.
    let (h2, _) = recv_packet(&phone);
    assert_eq!(h2.ssrc, h.ssrc);
    assert!(!h2.marker);
}

#[tokio::test]
async fn a_new_peer_from_a_reinvite_is_heard_before_anything_is_sent_to_it() {
    let (media, mut events) = start(config(None), SeededRng::from_u64(1));
    let (old, old_addr) = peer();
    let (new, new_addr) = peer();
    let (sock, engine_addr) = engine_socket();
    let id = StreamId(1);
    media.add_stream(id, sock, Some(old_addr), Codec::Pcmu, 0);
    media.set_dtmf_payload_type(id, Some(101));
    // Sending has tied the socket to the old peer.
    recv_packet(&old);

    // A re-INVITE from a new address that puts us on receive-only: we send
    // the new peer nothing, and must hear it all the same.
    media.set_direction(id, Direction::RecvOnly);
    media.set_remote(id, Some(new_addr));
    drain(&old);
    assert!(
        stays_quiet(&new, Duration::from_millis(60)),
        "sent on receive-only"
    );
    old.send_to(&dtmf_packet(1, 1000, 3, true, 320), engine_addr)
        .unwrap();
    new.send_to(&dtmf_packet(1, 2000, 7, true, 320), engine_addr)
        .unwrap();
    let wait = Duration::from_millis(300);
    let digit = |digit| Some(MediaEvent::Dtmf { stream: id, digit });
    assert_eq!(next_event(&mut events, wait).await, digit('7'));
    // The old peer is a stranger now.
    assert_eq!(next_event(&mut events, wait).await, None);

    media.set_direction(id, Direction::SendRecv);
    recv_packet(&new);
    assert!(
        stays_quiet(&old, Duration::from_millis(60)),
        "old peer still sent to"
    );
}

#[tokio::test]
async fn silence_from_the_peer_times_out_once() {
    let (media, mut events) = start(
        config(Some(Duration::from_millis(200))),
        SeededRng::from_u64(1),
    );
    let (_rx, rx_addr) = peer();
    let (sock_a, _) = engine_socket();
    let (sock_b, _) = engine_socket();
    media.add_stream(StreamId(1), sock_a, Some(rx_addr), Codec::Pcma, 8);
    // We only send on B: its peer is not expected to send, so no timeout.
    media.add_stream(StreamId(2), sock_b, Some(rx_addr), Codec::Pcma, 8);
    media.set_direction(StreamId(2), Direction::SendOnly);

    let t0 = std::time::Instant::now();
    let ev = next_event(&mut events, Duration::from_millis(1000)).await;
    assert_eq!(ev, Some(MediaEvent::RtpTimeout(StreamId(1))));
    assert!(
        t0.elapsed() >= Duration::from_millis(180),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        next_event(&mut events, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test]
async fn hold_pauses_sending_and_keeps_the_clock() {
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let (rx, rx_addr) = peer();
    let (sock, _) = engine_socket();
    let id = StreamId(3);
    media.add_stream(id, sock, Some(rx_addr), Codec::Pcmu, 0);
    let (a, _) = recv_packet(&rx);
    let (b, _) = recv_packet(&rx);
    media.set_direction(id, Direction::RecvOnly);
    std::thread::sleep(Duration::from_millis(120));
    // Drop what was sent before the hold took effect.
    rx.set_nonblocking(true).unwrap();
    let mut last = b;
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = rx.recv_from(&mut buf) {
        last = rtp::parse(&buf[..n]).unwrap().header;
    }
    rx.set_nonblocking(false).unwrap();
    media.set_direction(id, Direction::SendRecv);
    let (c, _) = recv_packet(&rx);
    assert!(c.marker, "marker after resuming");
    assert_eq!(c.ssrc, a.ssrc);
    assert_eq!(c.sequence, last.sequence.wrapping_add(1), "no sequence gap");
    let gap = c.timestamp.wrapping_sub(last.timestamp);
    assert_eq!(gap % 160, 0);
    assert!(gap >= 160 * 4, "timestamps ran on during hold: {gap}");
}

// ---- Bridging two legs ----------------------------------------------------

/// Packets already queued at `s`, without waiting.
fn drain(s: &UdpSocket) -> Vec<(RtpHeader, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1500];
    s.set_nonblocking(true).unwrap();
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        let p = rtp::parse(&buf[..n]).expect("valid RTP");
        got.push((p.header, p.payload.to_vec()));
    }
    s.set_nonblocking(false).unwrap();
    got
}

/// True if nothing arrives at `s` for `quiet`.
fn stays_quiet(s: &UdpSocket, quiet: Duration) -> bool {
    s.set_read_timeout(Some(quiet)).unwrap();
    let nothing = s.recv_from(&mut [0u8; 1500]).is_err();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    nothing
}

fn packet_from(ssrc: u32, pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = rtp_packet(pt, seq, ts, payload);
    b[8..12].copy_from_slice(&ssrc.to_be_bytes());
    b
}

/// One leg: the phone's socket and the engine's address for it.
struct Leg {
    id: StreamId,
    phone: UdpSocket,
    engine: SocketAddr,
}

impl Leg {
    fn add(media: &MediaHandle, id: u64, codec: Codec, pt: u8) -> Leg {
        let (phone, phone_addr) = peer();
        let (sock, engine) = engine_socket();
        let id = StreamId(id);
        media.add_stream(id, sock, Some(phone_addr), codec, pt);
        Leg { id, phone, engine }
    }

    fn send(&self, datagram: &[u8]) {
        self.phone.send_to(datagram, self.engine).unwrap();
    }

    /// The last packet the phone got: `seen`, or any queued since.
    fn last_packet(&self, seen: RtpHeader) -> RtpHeader {
        drain(&self.phone).last().map_or(seen, |p| p.0)
    }
}

/// Sends `n` 20 ms packets of `payload` from `leg`'s phone, paced in real
/// time, starting at `seq0`/`ts0`.
fn talk(leg: &Leg, ssrc: u32, pt: u8, seq0: u16, ts0: u32, n: u16, payload: &[u8]) {
    for i in 0..n {
        let ts = ts0.wrapping_add(160 * u32::from(i));
        leg.send(&packet_from(ssrc, pt, seq0.wrapping_add(i), ts, payload));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that `got` continues the stream whose last packet was `last`:
/// same SSRC, sequence +1 each, timestamps moving on by `spacing` after a
/// first gap of at least one frame (the clock ran on during the switch), the
/// marker on the first packet only.
fn assert_continues(last: RtpHeader, got: &[(RtpHeader, Vec<u8>)], spacing: u32, what: &str) {
    assert!(!got.is_empty(), "{what}: nothing relayed");
    for (i, (h, _)) in got.iter().enumerate() {
        assert_eq!(h.ssrc, last.ssrc, "{what} {i}: SSRC");
        assert_eq!(
            h.sequence,
            last.sequence.wrapping_add(1 + i as u16),
            "{what} {i}: sequence"
        );
        assert_eq!(h.marker, i == 0, "{what} {i}: marker");
    }
    let gap = got[0].0.timestamp.wrapping_sub(last.timestamp);
    // At least one frame, at most what real time allows on a busy machine.
    assert!((160..160 * 50).contains(&gap), "{what}: first gap {gap}");
    for w in got.windows(2) {
        assert_eq!(
            w[1].0.timestamp.wrapping_sub(w[0].0.timestamp),
            spacing,
            "{what}: spacing"
        );
    }
}

#[tokio::test]
async fn bridged_legs_relay_both_ways_as_one_continuous_stream() {
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcma, 8);
    let agent = Leg::add(&media, 2, Codec::Pcma, 8);
    let ramp: Vec<i16> = (0..1600).map(|i| (i * 20 - 16000) as i16).collect();
    media.play(
        caller.id,
        Playlist::looping(Prompt::from_samples("w", &ramp)),
    );
    let (seen_by_caller, _) = recv_packet(&caller.phone);
    let (seen_by_agent, _) = recv_packet(&agent.phone);
    media.bridge(caller.id, agent.id);
    std::thread::sleep(Duration::from_millis(60));
    let last_to_caller = caller.last_packet(seen_by_caller);
    let last_to_agent = agent.last_packet(seen_by_agent);
    assert!(
        stays_quiet(&agent.phone, Duration::from_millis(60)),
        "no prompt while bridged"
    );

    let voice: Vec<u8> = (0..160).map(|i| i as u8).collect();
    talk(&caller, 0xCA11, 8, 100, 50_000, 5, &voice);
    let to_agent = drain(&agent.phone);
    assert_eq!(to_agent.len(), 5);
    assert_continues(last_to_agent, &to_agent, 160, "caller->agent");
    for (h, payload) in &to_agent {
        assert_eq!((h.payload_type, payload), (8, &voice));
    }

    talk(&agent, 0xA6E7, 8, 7, 1_000_000, 4, &[0x55; 160]);
    let to_caller = drain(&caller.phone);
    assert_eq!(to_caller.len(), 4);
    assert_continues(last_to_caller, &to_caller, 160, "agent->caller");

    std::thread::sleep(Duration::from_millis(30));
    let counters = media.counters();
    let (sent, received, relayed) = counters.snapshot();
    assert_eq!(relayed, 9);
    // Plus at least the two prompt packets seen before the bridge.
    assert!(received >= 9 && sent >= relayed + 2, "{sent} {received}");
}

#[tokio::test]
async fn pcmu_leg_to_pcma_leg_is_transcoded_with_the_source_packet_time() {
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcmu, 0);
    let agent = Leg::add(&media, 2, Codec::Pcma, 8);
    recv_packet(&agent.phone);
    media.bridge(caller.id, agent.id);
    std::thread::sleep(Duration::from_millis(40));
    drain(&agent.phone);

    // 30 ms packets: silence, full scale both ways, then every µ-law code.
    let mut ulaw = vec![0xFF, 0x7F, 0x80, 0x00];
    ulaw.extend(0..=235u8);
    for i in 0..3u16 {
        caller.send(&packet_from(9, 0, i, 240 * u32::from(i), &ulaw));
        std::thread::sleep(Duration::from_millis(30));
    }
    let got = drain(&agent.phone);
    assert_eq!(got.len(), 3);
    let payload = &got[0].1;
    assert_eq!(payload.len(), 240);
    assert_eq!(payload[..4], [0xD5, 0xD5, 0xAA, 0x2A]);
    for (i, &u) in ulaw.iter().enumerate() {
        let (from, to) = (Codec::Pcmu.decode(u), Codec::Pcma.decode(payload[i]));
        // Within one A-law step of the µ-law value.
        let step = (i32::from(from).abs() / 16).max(16);
        assert!(
            (i32::from(from) - i32::from(to)).abs() <= step,
            "{u:#x}: {from} -> {to}"
        );
    }
    for (h, _) in &got {
        assert_eq!(h.payload_type, 8);
    }
    assert_eq!(got[1].0.timestamp.wrapping_sub(got[0].0.timestamp), 240);
    assert_eq!(got[2].0.timestamp.wrapping_sub(got[1].0.timestamp), 240);
}

fn dtmf_from(ssrc: u32, pt: u8, seq: u16, ts: u32, event: u8, end: bool, duration: u16) -> Vec<u8> {
    let mut p = [0u8; 4];
    TelephoneEvent {
        event,
        end,
        volume: 10,
        duration,
    }
    .write(&mut p);
    packet_from(ssrc, pt, seq, ts, &p)
}

#[tokio::test]
async fn dtmf_takes_the_destination_payload_type_or_is_dropped() {
    let (media, mut events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcma, 8);
    let agent = Leg::add(&media, 2, Codec::Pcma, 8);
    media.set_dtmf_payload_type(caller.id, Some(101));
    media.set_dtmf_payload_type(agent.id, Some(96));
    recv_packet(&agent.phone);
    media.bridge(caller.id, agent.id);
    std::thread::sleep(Duration::from_millis(40));
    drain(&agent.phone);

    talk(&caller, 5, 8, 1, 8000, 2, &[0xD5; 160]);
    // Key 7 held for 60 ms, end packet three times; all share timestamp 8320.
    let mut seq = 3;
    for (end, duration) in [
        (false, 160),
        (false, 320),
        (true, 480),
        (true, 480),
        (true, 480),
    ] {
        caller.send(&dtmf_from(5, 101, seq, 8320, 7, end, duration));
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    talk(&caller, 5, 8, seq, 8800, 1, &[0xD5; 160]);
    let got = drain(&agent.phone);
    assert_eq!(got.len(), 8);
    let audio_ts = got[1].0.timestamp;
    for (i, (h, payload)) in got[2..7].iter().enumerate() {
        assert_eq!(h.payload_type, 96, "event packet {i}");
        assert_eq!(h.timestamp, audio_ts.wrapping_add(160), "event packet {i}");
        assert_eq!(TelephoneEvent::parse(payload).unwrap().event, 7);
    }
    // The first relayed packet starts the talkspurt; the phone marked none.
    let markers: Vec<bool> = got.iter().map(|p| p.0.marker).collect();
    assert_eq!(
        markers,
        [true, false, false, false, false, false, false, false]
    );
    assert_eq!(got[7].0.payload_type, 8);
    assert_eq!(got[7].0.timestamp, audio_ts.wrapping_add(640));
    assert_eq!(
        next_event(&mut events, Duration::from_millis(200)).await,
        Some(MediaEvent::Dtmf {
            stream: caller.id,
            digit: '7'
        })
    );

    // An agent phone without telephone-event gets no events, and no
    // sequence gap for them.
    media.set_dtmf_payload_type(agent.id, None);
    media.applied();
    let last = got[7].0;
    caller.send(&dtmf_from(5, 101, seq + 1, 9000, 11, false, 160));
    caller.send(&dtmf_from(5, 101, seq + 2, 9000, 11, true, 320));
    std::thread::sleep(Duration::from_millis(20));
    talk(&caller, 5, 8, seq + 3, 9320, 1, &[0xD5; 160]);
    let got = drain(&agent.phone);
    assert_eq!(got.len(), 1, "only the audio packet");
    assert_eq!(got[0].0.sequence, last.sequence.wrapping_add(1));
    assert_eq!(
        next_event(&mut events, Duration::from_millis(200)).await,
        Some(MediaEvent::Dtmf {
            stream: caller.id,
            digit: '#'
        })
    );
}

#[tokio::test]
async fn hold_by_unbridge_and_music_is_seamless() {
    let (media, mut events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcma, 8);
    let agent = Leg::add(&media, 2, Codec::Pcmu, 0);
    recv_packet(&caller.phone);
    media.bridge(caller.id, agent.id);
    std::thread::sleep(Duration::from_millis(40));
    drain(&caller.phone);
    talk(&agent, 77, 0, 0, 123, 3, &[0xFF; 160]);
    let relayed = drain(&caller.phone);
    assert_eq!(relayed.len(), 3);
    let last = relayed[2].0;

    // The agent presses hold: the daemon queues the music, then unbridges
    // (in that order no frame of the old playlist slips in between).
    let moh = Prompt::from_samples("moh", &[1000; 480]);
    media.play(caller.id, Playlist::looping(moh.clone()));
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        drain(&caller.phone).is_empty(),
        "music waits for the unbridge"
    );
    media.unbridge(agent.id);
    let music: Vec<_> = (0..4).map(|_| recv_packet(&caller.phone)).collect();
    assert_continues(last, &music, 160, "music after hold");
    assert_eq!(music[0].1, moh.encoded(Codec::Pcma)[..160]);
    assert_eq!(music[0].0.payload_type, 8);
    // The agent's leg went back to its (silent) player too.
    let (h, payload) = recv_packet(&agent.phone);
    assert_eq!((h.payload_type, payload), (0, vec![0xFF; 160]));
    // Nothing the agent says reaches the caller now.
    talk(&agent, 77, 0, 3, 603, 2, &[0xFF; 160]);
    let on_hold = drain(&caller.phone);
    assert!(
        on_hold
            .iter()
            .all(|(_, p)| p[..] == moh.encoded(Codec::Pcma)[..160]),
        "only music while on hold"
    );

    // Back from hold: the relay picks up after the music, marker set.
    media.bridge(caller.id, agent.id);
    std::thread::sleep(Duration::from_millis(30));
    let last = caller.last_packet(on_hold.last().map_or(music[3].0, |p| p.0));
    talk(&agent, 77, 0, 5, 963, 2, &[0xFF; 160]);
    assert_continues(last, &drain(&caller.phone), 160, "after hold");
    assert_eq!(
        next_event(&mut events, Duration::from_millis(50)).await,
        None
    );
}

#[tokio::test]
async fn a_restarted_source_causes_no_timestamp_jump() {
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcma, 8);
    let agent = Leg::add(&media, 2, Codec::Pcma, 8);
    recv_packet(&agent.phone);
    media.bridge(caller.id, agent.id);
    std::thread::sleep(Duration::from_millis(40));
    drain(&agent.phone);

    talk(&caller, 0x1111, 8, 0, 4_000_000_000, 3, &[0xD5; 160]);
    // New SSRC and timestamps (a re-INVITE to another media server, say),
    // then the same SSRC restarting its clock (here: ten minutes back).
    talk(&caller, 0x2222, 8, 9, 17, 3, &[0xD5; 160]);
    talk(
        &caller,
        0x2222,
        8,
        12,
        17u32.wrapping_sub(4_800_000),
        2,
        &[0xD5; 160],
    );
    let got = drain(&agent.phone);
    assert_eq!(got.len(), 8);
    let steps: Vec<u32> = got
        .windows(2)
        .map(|w| w[1].0.timestamp.wrapping_sub(w[0].0.timestamp))
        .collect();
    for (i, &step) in steps.iter().enumerate() {
        // 160 within a source; at a restart what the clock ran ahead of
        // the source (a frame or two; more on a loaded machine), never the
        // source's own jump of millions.
        assert!((160..=160 * 10).contains(&step), "step {i}: {step}");
    }
    assert_eq!(steps[..2], [160, 160]);
    let markers: Vec<bool> = got.iter().map(|p| p.0.marker).collect();
    assert_eq!(
        markers,
        [true, false, false, true, false, false, true, false]
    );
}

#[tokio::test]
async fn hold_direction_stops_the_relay_one_way() {
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcma, 8);
    let agent = Leg::add(&media, 2, Codec::Pcma, 8);
    recv_packet(&caller.phone);
    media.bridge(caller.id, agent.id);
    media.applied();
    drain(&caller.phone);
    talk(&agent, 3, 8, 0, 0, 2, &[0xD5; 160]);
    let before = drain(&caller.phone);
    assert_eq!(before.len(), 2);

    // The caller holds (a=sendonly), so our side of its leg is recvonly:
    // its music still reaches the agent, the agent's voice no longer the caller.
    media.set_direction(caller.id, Direction::RecvOnly);
    media.applied();
    talk(&agent, 3, 8, 2, 320, 3, &[0xD5; 160]);
    assert!(
        drain(&caller.phone).is_empty(),
        "nothing to a holding caller"
    );
    drain(&agent.phone);
    talk(&caller, 4, 8, 0, 0, 2, &[0x42; 160]);
    assert_eq!(
        drain(&agent.phone).len(),
        2,
        "the caller's music reaches the agent"
    );

    media.set_direction(caller.id, Direction::SendRecv);
    media.applied();
    talk(&agent, 3, 8, 5, 800, 2, &[0xD5; 160]);
    let after = drain(&caller.phone);
    assert_eq!(after.len(), 2);
    assert!(after[0].0.marker && !after[1].0.marker);
    assert_eq!(after[0].0.sequence, before[1].0.sequence.wrapping_add(1));
    assert_eq!(
        after[0].0.timestamp.wrapping_sub(before[1].0.timestamp),
        800 - 160
    );
}

#[tokio::test]
async fn removing_a_bridged_leg_returns_the_other_to_its_player() {
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcma, 8);
    let agent = Leg::add(&media, 2, Codec::Pcma, 8);
    let third = Leg::add(&media, 3, Codec::Pcma, 8);
    recv_packet(&caller.phone);
    media.bridge(caller.id, agent.id);
    // Re-bridging the caller to another agent releases the first.
    media.bridge(caller.id, third.id);
    std::thread::sleep(Duration::from_millis(60));
    drain(&agent.phone);
    assert!(
        !stays_quiet(&agent.phone, Duration::from_millis(60)),
        "first agent back to its player"
    );
    talk(&caller, 1, 8, 0, 0, 2, &[0x11; 160]);
    let got = drain(&third.phone);
    assert!(
        got.iter().filter(|(_, p)| p[..] == [0x11; 160]).count() == 2,
        "relayed to the new partner"
    );

    media.remove_stream(third.id);
    std::thread::sleep(Duration::from_millis(60));
    drain(&caller.phone);
    let (h, payload) = recv_packet(&caller.phone);
    assert_eq!((h.payload_type, payload), (8, vec![0xD5; 160]));
}

#[tokio::test]
async fn rtp_timeout_is_watched_only_in_sendrecv() {
    let timeout = Duration::from_millis(150);
    let (media, mut events) = start(config(Some(timeout)), SeededRng::from_u64(1));
    let (_rx, rx_addr) = peer();
    for (id, direction) in [
        (1, Direction::RecvOnly),
        (2, Direction::SendOnly),
        (3, Direction::Inactive),
    ] {
        let (sock, _) = engine_socket();
        media.add_stream(StreamId(id), sock, Some(rx_addr), Codec::Pcma, 8);
        media.set_direction(StreamId(id), direction);
    }
    // A long hold by the peer (we are recvonly) ends no call.
    assert_eq!(
        next_event(&mut events, Duration::from_millis(500)).await,
        None
    );

    // Back to sendrecv: the watch starts from the switch, not from the add.
    media.set_direction(StreamId(1), Direction::SendRecv);
    let t0 = std::time::Instant::now();
    assert_eq!(
        next_event(&mut events, Duration::from_millis(600)).await,
        Some(MediaEvent::RtpTimeout(StreamId(1)))
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(130),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        next_event(&mut events, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test]
async fn a_removed_stream_gives_its_socket_back_to_the_pool() {
    let mut pool = crate::media::PortPool::new(41000, 41999).unwrap();
    let (media, _events) = start(
        EngineConfig {
            recycle: Some(pool.recycler()),
            wake: None,
            ..config(None)
        },
        SeededRng::from_u64(1),
    );
    let ip = "127.0.0.1".parse().unwrap();
    let t0 = std::time::Instant::now();
    let (port, socket) = pool.allocate(ip, t0).unwrap();
    let (peer, peer_addr) = peer();
    media.add_stream(StreamId(1), socket, Some(peer_addr), Codec::Pcma, 8);
    // Its first packet out connects the socket to the peer.
    recv_packet(&peer);
    media.remove_stream(StreamId(1));
    pool.release(port);
    // The worker applies commands at its next tick; the pool takes the
    // socket in at an allocation, and hands it out once it has rested.
    for i in 1..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let later = t0 + crate::media::ports::QUARANTINE * i;
        let (p, s) = pool.allocate(ip, later).unwrap();
        if p == port {
            // The stream had connected it to its peer; the next call must
            // be able to learn another one.
            assert!(s.peer_addr().is_err(), "socket came back still connected");
            assert_eq!(s.local_addr().unwrap().port(), port);
            return;
        }
        drop(s);
        pool.release(p);
    }
    panic!("port {port} never came back from the media worker");
}

// ---- No reflection: unconfirmed streams ------------------------------------

#[tokio::test]
async fn an_unconfirmed_stream_sends_nothing_and_starts_its_greeting_on_confirm() {
    let (media, mut events) = start(config(None), SeededRng::from_u64(1));
    let (rx, rx_addr) = peer();
    let (sock, _) = engine_socket();
    let samples: Vec<i16> = (0..480).map(|i| (i * 53 % 8000 - 4000) as i16).collect();
    let greeting = Prompt::from_samples("greeting", &samples);
    let id = StreamId(11);
    media.add_unconfirmed_stream(id, sock, Some(rx_addr), Codec::Pcmu, 0);
    media.play(id, Playlist::once(greeting.clone()));
    // Longer than the greeting: it must not play out unheard.
    assert!(
        stays_quiet(&rx, Duration::from_millis(300)),
        "sent before the ACK"
    );
    assert_eq!(
        next_event(&mut events, Duration::from_millis(10)).await,
        None
    );

    media.confirm(id);
    let packets: Vec<_> = (0..4).map(|_| recv_packet(&rx)).collect();
    assert!(packets[0].0.marker, "marker on the first packet");
    let played: Vec<u8> = packets[..3].iter().flat_map(|(_, p)| p.clone()).collect();
    assert_eq!(
        played,
        greeting.encoded(Codec::Pcmu),
        "the greeting from its start"
    );
    for (i, w) in packets.windows(2).enumerate() {
        assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1), "at {i}");
        assert_eq!(
            w[1].0.timestamp,
            w[0].0.timestamp.wrapping_add(160),
            "at {i}"
        );
    }
    assert_eq!(
        next_event(&mut events, Duration::from_millis(200)).await,
        Some(MediaEvent::PlaylistDone(id))
    );
}

#[tokio::test]
async fn rtp_from_the_peer_confirms_and_a_stranger_does_not() {
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let (rx, rx_addr) = peer();
    let (stranger, _) = peer();
    let (sock, engine) = engine_socket();
    let id = StreamId(12);
    media.add_unconfirmed_stream(id, sock, Some(rx_addr), Codec::Pcma, 8);
    stranger
        .send_to(&rtp_packet(8, 1, 160, &[0xD5; FRAME]), engine)
        .unwrap();
    // Read within 100 ms; give it two rounds.
    assert!(
        stays_quiet(&rx, Duration::from_millis(300)),
        "a stranger confirmed it"
    );
    rx.send_to(&rtp_packet(8, 1, 160, &[0xD5; FRAME]), engine)
        .unwrap();
    let (h, _) = recv_packet(&rx);
    assert!(h.marker);
}

#[tokio::test]
async fn a_peer_silent_past_the_timeout_gets_nothing_more() {
    let (media, mut events) = start(
        config(Some(Duration::from_millis(200))),
        SeededRng::from_u64(1),
    );
    let (rx, rx_addr) = peer();
    let (sock, engine) = engine_socket();
    let id = StreamId(13);
    media.add_stream(id, sock, Some(rx_addr), Codec::Pcma, 8);
    recv_packet(&rx);
    assert_eq!(
        next_event(&mut events, Duration::from_millis(1000)).await,
        Some(MediaEvent::RtpTimeout(id))
    );
    std::thread::sleep(Duration::from_millis(40));
    drain(&rx);
    assert!(
        stays_quiet(&rx, Duration::from_millis(200)),
        "still sending to a silent peer"
    );
    // Heard again: the stream carries on where its clock is.
    rx.send_to(&rtp_packet(8, 1, 160, &[0xD5; FRAME]), engine)
        .unwrap();
    let (h, _) = recv_packet(&rx);
    assert!(h.marker, "marker after the silence");
}

/// The agent's phone speaks SRTP, the caller's plain RTP: the prompt
/// reaches the agent encrypted, the bridge decrypts one way and encrypts
/// the other, each side keeping its sequence line; forged packets are
/// dropped.
#[tokio::test]
async fn an_srtp_leg_bridged_to_a_plain_leg() {
    use crate::media::srtp::{Context, MasterKey, SrtpKeys, Suite};
    let (media, _events) = start(config(None), SeededRng::from_u64(1));
    let caller = Leg::add(&media, 1, Codec::Pcmu, 0);
    let agent = Leg::add(&media, 2, Codec::Pcmu, 0);
    let keys = SrtpKeys {
        suite: Suite::AesCm128HmacSha1_80,
        local: MasterKey::random(&mut SeededRng::from_u64(2)),
        remote: MasterKey::random(&mut SeededRng::from_u64(3)),
    };
    media.set_srtp(agent.id, Some(keys.clone()));
    // The phone's view: it decrypts with our key, encrypts with its own.
    let mut phone_rx = Context::new(keys.suite, &keys.local);
    let mut phone_tx = Context::new(keys.suite, &keys.remote);
    let tone: Vec<i16> = (0..1600).map(|i| ((i % 40) * 800 - 16000) as i16).collect();
    media.play(
        agent.id,
        Playlist::looping(Prompt::from_samples("t", &tone)),
    );
    let recv_srtp = |rx: &mut Context| {
        let mut buf = [0u8; 1500];
        let (n, _) = agent.phone.recv_from(&mut buf).expect("an SRTP packet");
        assert_eq!(n, 12 + 160 + 10, "SRTP adds the 80-bit tag");
        let plain = rx
            .unprotect(&mut buf[..n])
            .expect("authenticates with our key");
        let p = rtp::parse(&buf[..plain]).expect("RTP inside");
        (p.header, p.payload.to_vec())
    };
    let (first, payload) = recv_srtp(&mut phone_rx);
    assert!(
        payload.iter().any(|&b| b != 0xff),
        "the prompt, not silence"
    );
    let (second, _) = recv_srtp(&mut phone_rx);
    assert_eq!(second.sequence, first.sequence.wrapping_add(1));

    media.bridge(caller.id, agent.id);
    std::thread::sleep(Duration::from_millis(60));
    drain(&caller.phone);
    // Agent -> caller: SRTP in, plain out.
    for i in 0..4u16 {
        let plain = packet_from(0xA6E7, 0, 500 + i, 8000 + 160 * u32::from(i), &[0x42; 160]);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 10, 0);
        let n = phone_tx.protect(&mut buf, plain.len()).unwrap();
        agent.send(&buf[..n]);
        std::thread::sleep(Duration::from_millis(20));
    }
    // A forged packet (plain RTP on the SRTP leg) is not relayed.
    agent.send(&packet_from(0xA6E7, 0, 504, 8640, &[0x13; 160]));
    std::thread::sleep(Duration::from_millis(40));
    let to_caller = drain(&caller.phone);
    assert_eq!(to_caller.len(), 4, "the four authenticated packets");
    let rejected = media
        .counters()
        .srtp_rejected
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(rejected, 1, "the forged packet is counted");
    assert!(to_caller.iter().all(|(_, p)| p == &[0x42; 160]));
    // Caller -> agent: plain in, SRTP out, continuing the prompt's line.
    loop {
        // What the prompt sent before the bridge took over.
        agent.phone.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1500];
        let got = agent.phone.recv_from(&mut buf);
        agent.phone.set_nonblocking(false).unwrap();
        match got {
            Ok((n, _)) => {
                phone_rx.unprotect(&mut buf[..n]).unwrap();
            }
            Err(_) => break,
        }
    }
    talk(&caller, 0xCA11, 0, 9, 100, 3, &[0x24; 160]);
    for _ in 0..3 {
        let (h, p) = recv_srtp(&mut phone_rx);
        assert_eq!(p, vec![0x24; 160]);
        assert_eq!(h.ssrc, first.ssrc, "one SSRC towards the agent");
    }
}

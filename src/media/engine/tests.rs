//! The worker over real loopback sockets.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::*;
use crate::media::prompt::Prompt;
use crate::media::rtp::{self, RtpHeader, TelephoneEvent};

const FRAME: usize = 160;

fn config(timeout: Option<Duration>) -> EngineConfig {
    EngineConfig {
        rtp_timeout: timeout,
        tick: Duration::from_millis(20),
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
    let (media, mut events) = start(config(None));
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
    let (media, mut events) = start(config(None));
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
async fn silence_from_the_peer_times_out_once() {
    let (media, mut events) = start(config(Some(Duration::from_millis(200))));
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
    let (media, _events) = start(config(None));
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

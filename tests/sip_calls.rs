//! End-to-end SIP tests against a running `zentrale` with the demo config.
//!
//! Each test starts its own daemon on its own loopback ports, so the tests
//! run in parallel. Peers: SIPp (tests/sipp/*.xml) and small raw-socket
//! clients where the test needs to look at the bytes (RTP, digest).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;

const DEMO_NUMBERS: &[&str] = &[
    "115",
    "0561115",
    "05617870",
    "02151860",
    "04101115",
    "041066110",
];
const SIP_WAIT: Duration = Duration::from_secs(5);

/// One RTP header, as far as the checks need it.
#[derive(Debug, Clone, Copy)]
struct Rtp {
    version: u8,
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload_len: usize,
}

fn parse_rtp(p: &[u8]) -> Option<Rtp> {
    if p.len() < 12 {
        return None;
    }
    let cc = usize::from(p[0] & 0x0f);
    Some(Rtp {
        version: p[0] >> 6,
        marker: p[1] & 0x80 != 0,
        pt: p[1] & 0x7f,
        seq: u16::from_be_bytes([p[2], p[3]]),
        ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        payload_len: p.len().saturating_sub(12 + 4 * cc),
    })
}

/// Places one call over UDP, checks the answer and the RTP zentrale sends,
/// hangs up. `offer` is the payload type list of our SDP.
fn call_with_rtp(d: &Daemon, number: &str, offer: &[u8]) {
    let sip = SipUdp::new(d.sip);
    let rtp = UdpSocket::bind((LOCALHOST, 0)).expect("binding the RTP test socket");
    let rtp_addr = rtp.local_addr().expect("rtp addr");
    let inv = invite(sip.local, "UDP", d.sip, number, rtp_addr, offer);
    sip.send(&inv.text);

    // 100 (optional), 180 with a To-tag (optional), then 200 with SDP.
    let t0 = Instant::now();
    let mut provisional = Vec::new();
    let ok = loop {
        let Some(m) = sip.recv(SIP_WAIT.saturating_sub(t0.elapsed())) else {
            d.fail(format!(
                "{number}: no final response to the INVITE within {SIP_WAIT:?}; got {provisional:?}"
            ));
        };
        if m.cseq_method() != Some("INVITE") {
            continue;
        }
        match m.status() {
            Some(c @ 100..=199) => {
                if c == 180 {
                    d.check(m.tag("to").is_some(), || {
                        format!("{number}: 180 without a To-tag: {m:?}")
                    });
                }
                provisional.push(c);
            }
            Some(200) => break m,
            other => d.fail(format!(
                "{number}: expected 200, got {other:?}: {}",
                m.start
            )),
        }
    };
    d.check(ok.tag("to").is_some(), || {
        format!("{number}: 200 without a To-tag")
    });
    let ctype = ok
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    d.check(ctype.starts_with("application/sdp"), || {
        format!("{number}: 200 body is {ctype:?}, not SDP")
    });
    let sdp = ok.body_str();
    let Some((media_ip, media_port, pts)) = sdp_audio(&sdp) else {
        d.fail(format!(
            "{number}: no audio m=/c= line in the answer:\n{sdp}"
        ));
    };
    let chosen = pts.first().copied().unwrap_or(255);
    d.check(matches!(chosen, 0 | 8) && offer.contains(&chosen), || {
        format!("{number}: answer codec {chosen} is not PCMU/PCMA from the offer {offer:?}:\n{sdp}")
    });
    if offer.contains(&101) {
        d.check(sdp.to_ascii_lowercase().contains("telephone-event"), || {
            format!("{number}: telephone-event was offered but not answered:\n{sdp}")
        });
    }
    let zentrale_media: SocketAddr =
        format!("{media_ip}:{media_port}")
            .parse()
            .unwrap_or_else(|_| {
                d.fail(format!(
                    "{number}: bad media address {media_ip}:{media_port}"
                ))
            });

    // ACK the 200 (a new transaction; Request-URI = the Contact).
    sip.send(&in_dialog("ACK", 1, &inv, &ok, sip.local, "UDP"));

    // Receive >= 25 RTP packets within 2 s, answering with our own stream.
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("rtp timeout");
    let mut packets = Vec::new();
    let until = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 2048];
    let mut seq: u16 = 4711;
    while packets.len() < 25 && Instant::now() < until {
        if let Ok((n, _)) = rtp.recv_from(&mut buf)
            && let Some(p) = parse_rtp(&buf[..n])
        {
            packets.push(p);
            let mut out = vec![0x80, chosen, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
            out[2..4].copy_from_slice(&seq.to_be_bytes());
            out[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            out.extend(std::iter::repeat_n(
                if chosen == 0 { 0xff } else { 0xd5 },
                160,
            ));
            let _ = rtp.send_to(&out, zentrale_media);
            seq = seq.wrapping_add(1);
        }
    }
    d.check(packets.len() >= 25, || {
        format!(
            "{number}: only {} RTP packets from zentrale within 2 s (want >= 25)",
            packets.len()
        )
    });
    let first = packets[0];
    d.check(first.marker, || {
        format!("{number}: first RTP packet has no marker bit: {first:?}")
    });
    for (i, w) in packets.windows(2).enumerate() {
        let (a, b) = (w[0], w[1]);
        d.check(b.version == 2 && a.version == 2, || {
            format!("{number}: RTP version != 2 at {i}: {b:?}")
        });
        d.check(b.pt == chosen && a.pt == chosen, || {
            format!("{number}: RTP PT {} != chosen {chosen} at {i}", b.pt)
        });
        d.check(b.ssrc == first.ssrc, || {
            format!("{number}: SSRC changed at packet {}: {a:?} -> {b:?}", i + 1)
        });
        d.check(b.seq == a.seq.wrapping_add(1), || {
            format!("{number}: sequence jump at {}: {a:?} -> {b:?}", i + 1)
        });
        d.check(b.ts == a.ts.wrapping_add(160), || {
            format!("{number}: timestamp not +160 at {}: {a:?} -> {b:?}", i + 1)
        });
        d.check(b.payload_len == 160, || {
            format!(
                "{number}: payload {} bytes, want 160 (20 ms G.711)",
                b.payload_len
            )
        });
    }

    // Hang up.
    sip.send(&in_dialog("BYE", 2, &inv, &ok, sip.local, "UDP"));
    if let Err(e) = sip.expect("BYE", SIP_WAIT, |c| c >= 200).and_then(|m| {
        if m.status() == Some(200) {
            Ok(m)
        } else {
            Err(format!("BYE answered {}", m.start))
        }
    }) {
        d.fail(format!("{number}: {e}"));
    }
}

/// (a) Every demo number answers, streams well-formed RTP, takes a BYE.
#[test]
fn every_demo_number_answers_and_streams_rtp() {
    let d = Daemon::start();
    for (i, number) in DEMO_NUMBERS.iter().enumerate() {
        // Alternate the offer so both codecs and both orders get exercised.
        let offer: &[u8] = if i % 2 == 0 {
            &[0, 8, 101]
        } else {
            &[8, 0, 101]
        };
        call_with_rtp(&d, number, offer);
    }
    call_with_rtp(&d, "115", &[8]);
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(3), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after all calls hung up")
    });
    let ended = d.metric_sum("zentrale_calls_ended_total");
    let want = (DEMO_NUMBERS.len() + 1) as f64;
    d.check(ended == want, || {
        format!("zentrale_calls_ended_total sums to {ended}, want {want}")
    });
}

/// A SIPp trunk call over UDP with RTP both ways (rtp_stream).
#[test]
fn sipp_call_over_udp() {
    let d = Daemon::start();
    sipp_ok(
        &d,
        "uac_call",
        &["-s", "0561115", "-m", "1", "-r", "1"],
        Duration::from_secs(20),
    );
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(3), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after the call")
    });
}

/// (f) The same call over TCP.
#[test]
fn sipp_call_over_tcp() {
    let d = Daemon::start();
    sipp_ok(
        &d,
        "uac_call",
        &["-t", "t1", "-s", "115", "-m", "1", "-r", "1"],
        Duration::from_secs(20),
    );
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(3), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after the TCP call")
    });
    let ended = d.metric_sum("zentrale_calls_ended_total");
    d.check(ended == 1.0, || {
        format!("zentrale_calls_ended_total sums to {ended}, want 1")
    });
}

// --- (b) registration -------------------------------------------------------

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let i = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[i..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split([',', ' ']).next()
    }
}

/// REGISTERs agent `user` over UDP answering the challenge for `algorithm`
/// with `password`; returns the final response.
fn register(d: &Daemon, user: &str, password: &str, algorithm: &str) -> SipMsg {
    let sip = SipUdp::new(d.sip);
    let uri = format!("sip:{}", d.sip);
    let req = register_requests(d, &sip, user, 120);
    sip.send(&req(1, ""));
    let chal = sip
        .expect("REGISTER", SIP_WAIT, |c| c >= 200)
        .unwrap_or_else(|e| d.fail(format!("REGISTER {user}: {e}")));
    d.check(chal.status() == Some(401), || {
        format!("REGISTER without credentials answered {}", chal.start)
    });
    let challenges = chal.headers_named("www-authenticate");
    for alg in ["SHA-256", "MD5"] {
        d.check(
            challenges
                .iter()
                .any(|c| c.contains(&format!("algorithm={alg}"))),
            || format!("401 lacks a {alg} challenge: {challenges:?}"),
        );
    }
    let Some(c) = challenges
        .iter()
        .find(|c| c.contains(&format!("algorithm={algorithm}")))
    else {
        d.fail(format!("no {algorithm} challenge in {challenges:?}"));
    };
    let realm = param(c, "realm").unwrap_or_default();
    d.check(realm == "zentrale", || {
        format!("realm is {realm:?}, want zentrale")
    });
    let nonce = param(c, "nonce").unwrap_or_default();
    let opaque = param(c, "opaque");
    let h = |s: &str| {
        if algorithm == "MD5" {
            md5_hex(s)
        } else {
            sha256_hex(s)
        }
    };
    let cnonce = SipUdp::token();
    let nc = "00000001";
    let ha1 = h(&format!("{user}:{realm}:{password}"));
    let ha2 = h(&format!("REGISTER:{uri}"));
    let response = h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let mut auth = format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={algorithm}, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    );
    if let Some(o) = opaque {
        auth.push_str(&format!(", opaque=\"{o}\""));
    }
    auth.push_str("\r\n");
    sip.send(&req(2, &auth));
    sip.expect("REGISTER", SIP_WAIT, |c| c >= 200)
        .unwrap_or_else(|e| d.fail(format!("authenticated REGISTER {user}: {e}")))
}

/// (b) Digest REGISTER: wrong password gets 401 again and no binding (SIPp
/// and Rust), right password (MD5 and SHA-256) gets 200 with Contact;expires.
#[test]
fn register_with_digest() {
    // The demo offers MD5 alone (what every phone answers); SHA-256 is
    // offered where configured, here to everyone, after MD5 for SIPp.
    let d = Daemon::start_with(Options {
        edits: vec![(
            "  nonce_ttl_secs: 300 ".into(),
            "  digest_algorithms: [MD5, SHA-256]\n  nonce_ttl_secs: 300 ".into(),
        )],
        ..Default::default()
    });
    // Wrong first, so "no binding" is unambiguous.
    sipp_ok(
        &d,
        "uac_register_wrong",
        &["-m", "1", "-r", "1"],
        Duration::from_secs(15),
    );
    let wrong = register(&d, "1002", "not-demo", "MD5");
    d.check(wrong.status() == Some(401), || {
        format!("wrong password answered {}, want 401", wrong.start)
    });
    let regs = d.metric_sum("zentrale_registrations");
    d.check(regs == 0.0, || {
        format!("zentrale_registrations is {regs} after failed registrations")
    });

    for (user, alg) in [("1001", "MD5"), ("2001", "SHA-256")] {
        let ok = register(&d, user, "demo", alg);
        d.check(ok.status() == Some(200), || {
            format!("{user} ({alg}) answered {}, want 200", ok.start)
        });
        let contact = ok
            .header("contact")
            .unwrap_or_default()
            .to_ascii_lowercase();
        d.check(contact.contains("expires="), || {
            format!("200 Contact lacks expires: {contact:?}")
        });
    }
    let regs = d.wait_metric("zentrale_registrations", Duration::from_secs(2), |v| {
        v == 2.0
    });
    d.check(regs == 2.0, || {
        format!("zentrale_registrations is {regs}, want 2")
    });
}

/// SIPp's own digest against zentrale: SIPp 3.6.1 answers only the first
/// WWW-Authenticate and only MD5, which the demo offers alone.
#[test]
fn register_with_sipp_digest() {
    let d = Daemon::start();
    sipp_ok(
        &d,
        "uac_register",
        &["-m", "1", "-r", "1"],
        Duration::from_secs(15),
    );
    let regs = d.wait_metric("zentrale_registrations", Duration::from_secs(2), |v| {
        v == 1.0
    });
    d.check(regs == 1.0, || {
        format!("zentrale_registrations is {regs}, want 1")
    });
}

/// (c) CANCEL while ringing: 200 for the CANCEL, 487 for the INVITE.
#[test]
fn cancel_while_ringing_gets_487() {
    let d = Daemon::start();
    sipp_ok(
        &d,
        "uac_cancel",
        &["-s", "115", "-m", "1", "-r", "1"],
        Duration::from_secs(15),
    );
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(3), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after the CANCEL")
    });
}

/// (d) Unknown number: 404.
#[test]
fn unknown_number_gets_404() {
    let d = Daemon::start();
    sipp_ok(
        &d,
        "uac_404",
        &["-s", "0999999999", "-m", "1", "-r", "1"],
        Duration::from_secs(15),
    );
    let active = d.metric_sum("zentrale_calls_active");
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after a 404")
    });
}

/// (e) 200 short calls at 50 calls/s (at most 100 at once): all answered and
/// ended, nothing left over.
#[test]
fn burst_of_200_calls() {
    let d = Daemon::start();
    let run = sipp_ok(
        &d,
        "uac_burst",
        &["-s", "115", "-m", "200", "-r", "50", "-l", "100"],
        Duration::from_secs(60),
    );
    d.check(run.successful == 200 && run.failed == 0, || {
        format!(
            "SIPp counted {} successful and {} failed calls\n{}",
            run.successful, run.failed, run.report
        )
    });
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(5), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after the burst")
    });
    let ended = d.wait_metric("zentrale_calls_ended_total", Duration::from_secs(5), |v| {
        v == 200.0
    });
    d.check(ended == 200.0, || {
        format!("zentrale_calls_ended_total sums to {ended}, want 200")
    });
}

/// (g) A caller that sends no RTP is hung up by zentrale (BYE) after the RTP
/// timeout (2 s in a copy of the demo config).
#[test]
fn silent_caller_gets_bye_after_rtp_timeout() {
    let d = Daemon::start_with(Options {
        rtp_timeout_secs: Some(2),
        ..Options::default()
    });
    sipp_ok(
        &d,
        "uac_rtp_timeout",
        &["-s", "115", "-m", "1", "-r", "1"],
        Duration::from_secs(20),
    );
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(3), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after zentrale's BYE")
    });
    let ended = d.metric_sum("zentrale_calls_ended_total");
    d.check(ended == 1.0, || {
        format!("zentrale_calls_ended_total sums to {ended}, want 1")
    });
}

#[test]
fn rtp_timeout_override_edits_only_the_rtp_block() {
    let block = "sip:\n  timeout_secs: 9\nrtp:\n  ports: \"30000-30999\"\n  timeout_secs: 60\nhttp:\n  listen: x\n";
    let out = set_rtp_timeout(block, 2);
    assert_eq!(
        out,
        "sip:\n  timeout_secs: 9\nrtp:\n  ports: \"30000-30999\"\n  timeout_secs: 2\nhttp:\n  listen: x\n"
    );
    let missing = set_rtp_timeout("rtp:\n  ports: \"1-2\"\nhttp: {}\n", 2);
    assert_eq!(
        missing,
        "rtp:\n  ports: \"1-2\"\n  timeout_secs: 2\nhttp: {}\n"
    );
    let flow = set_rtp_timeout("rtp: { ports: \"1-2\", timeout_secs: 60 }\n", 2);
    assert_eq!(flow, "rtp: { ports: \"1-2\", timeout_secs: 2 }\n");
    let none = set_rtp_timeout("http: {}\n", 2);
    assert_eq!(none, "http: {}\nrtp:\n  timeout_secs: 2\n");
}

#[test]
fn metric_parsing() {
    let text = "# TYPE zentrale_calls_active gauge\nzentrale_calls_active 3\n\
                zentrale_calls_ended_total{reason=\"caller_bye\"} 5\n\
                zentrale_calls_ended_total{reason=\"rtp_timeout\"} 2\n# EOF\n";
    assert_eq!(metric_value(text, "zentrale_calls_active"), Some(3.0));
    assert_eq!(
        metric_value(text, "zentrale_calls_ended_total{reason=\"rtp_timeout\"}"),
        Some(2.0)
    );
    assert_eq!(metric_sum(text, "zentrale_calls_ended_total"), 7.0);
    assert_eq!(metric_sum(text, "zentrale_calls"), 0.0);
    assert_eq!(linear_to_ulaw(0), 0xff);
    assert_eq!(linear_to_alaw(0), 0xd5);
}

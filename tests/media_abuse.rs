//! Media under abuse, against the real binary on loopback (issue 16):
//! no RTP reflection towards an address an INVITE names, media networks,
//! and fair refusal when one tenant surges.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;

/// The reflection attack of issue 16: an INVITE whose SDP names a victim
/// (here a loopback port the test listens on), answered by zentrale and
/// never ACKed. zentrale must send the victim nothing, for as long as it
/// keeps the call (until timer H, 64*T1 = 32 s, gives up on the ACK).
#[test]
fn a_never_acked_invite_makes_zentrale_send_no_media_anywhere() {
    let d = Daemon::start();
    let victim = RtpPeer::new(0x0bad_0001);
    let sip = SipUdp::new(d.sip);
    let inv = invite(sip.local, "UDP", d.sip, "115", victim.addr, &[0, 101]);
    sip.send(&inv.text);
    let ok = sip.final_response(&d, "INVITE");
    d.check(ok.status() == Some(200), || {
        format!("INVITE answered {}", ok.start)
    });
    let answered = Instant::now();
    // zentrale retransmits its 200 and, without an ACK, hangs up (BYE)
    // when timer H fires. Keep reading until then.
    let mut bye = None;
    let until = answered + Duration::from_secs(40);
    while bye.is_none() && Instant::now() < until {
        if let Some(m) = sip.recv(Duration::from_millis(500))
            && m.method() == Some("BYE")
        {
            sip.send(&response_to(&m, 200, "OK"));
            bye = Some(answered.elapsed());
        }
    }
    let Some(after) = bye else {
        d.fail("no BYE within 40 s of a never-ACKed answer");
    };
    std::thread::sleep(Duration::from_millis(300));
    let got = victim.got();
    println!(
        "reflection: a 200 never ACKed for {:.1} s: {} RTP packets reached the address in the SDP",
        after.as_secs_f64(),
        got.len()
    );
    d.check(got.is_empty(), || {
        format!(
            "{} RTP packets reached the never-ACKed SDP address (want 0)",
            got.len()
        )
    });
    let ended = d.wait_metric(
        "zentrale_calls_ended_total{reason=\"no_ack\"}",
        Duration::from_secs(3),
        |v| v == 1.0,
    );
    d.check(ended == 1.0, || {
        format!("zentrale_calls_ended_total{{reason=\"no_ack\"}} is {ended}, want 1")
    });
}

/// Answered but ACKed late: nothing before the ACK, and after it the
/// caller hears the greeting from its first frame (it did not play out
/// unheard meanwhile), as one RTP stream starting with a marker.
#[test]
fn media_starts_at_the_ack_with_the_greeting_from_its_start() {
    let d = Daemon::start();
    let peer = RtpPeer::new(0x0bad_0002);
    let sip = SipUdp::new(d.sip);
    let inv = invite(sip.local, "UDP", d.sip, "115", peer.addr, &[8]);
    sip.send(&inv.text);
    let ok = sip.final_response(&d, "INVITE");
    d.check(ok.status() == Some(200), || {
        format!("INVITE answered {}", ok.start)
    });
    // The greeting is 4.5 s long; 1.5 s without ACK.
    std::thread::sleep(Duration::from_millis(1500));
    let before = peer.got().len();
    d.check(before == 0, || {
        format!("{before} RTP packets before the ACK (want 0)")
    });
    sip.send(&in_dialog("ACK", 1, &inv, &ok, sip.local, "UDP"));
    let acked = Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    let heard = peer.heard();
    d.check(heard.len() >= 20, || {
        format!("{} RTP packets within 600 ms of the ACK", heard.len())
    });
    let first_at = heard[0].0.at.duration_since(acked);
    d.check(first_at < Duration::from_millis(200), || {
        format!("first RTP packet {first_at:?} after the ACK")
    });
    d.check(heard[0].0.marker, || "no marker on the first packet".into());
    expect_one_stream(&d, &heard, "after a late ACK");
    let greeting = prompt_frames(&d, "greeting-kassel", 8);
    let start = find_frame(&heard, &greeting[0], 0);
    d.check(start.is_some_and(|i| i <= 1), || {
        format!("the greeting's first frame is at packet {start:?}, want 0 or 1")
    });
    sip.send(&in_dialog("BYE", 2, &inv, &ok, sip.local, "UDP"));
}

/// Symmetric RTP: before any ACK, RTP from the address the SDP names shows
/// that address wants the stream; zentrale answers it at once.
#[test]
fn rtp_from_the_sdp_address_starts_the_stream_before_the_ack() {
    let d = Daemon::start();
    let peer = RtpPeer::new(0x0bad_0003);
    let sip = SipUdp::new(d.sip);
    let inv = invite(sip.local, "UDP", d.sip, "115", peer.addr, &[0]);
    sip.send(&inv.text);
    let ok = sip.final_response(&d, "INVITE");
    d.check(ok.status() == Some(200), || {
        format!("INVITE answered {}", ok.start)
    });
    let (media, _) = sdp_media(&d, &ok.body_str());
    std::thread::sleep(Duration::from_millis(300));
    d.check(peer.got().is_empty(), || {
        "RTP before the ACK or any RTP from the peer".into()
    });
    // A stranger's packet does not start it.
    let stranger = UdpSocket::bind((LOCALHOST, 0)).expect("binding a stranger");
    let mut packet = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
    packet.extend([0xff; 160]);
    stranger.send_to(&packet, media).expect("stranger sends");
    std::thread::sleep(Duration::from_millis(300));
    d.check(peer.got().is_empty(), || {
        "a stranger's RTP started the stream".into()
    });
    peer.talk(Some(media), 0, CALLER_FILL);
    std::thread::sleep(Duration::from_millis(600));
    let got = peer.got().len();
    d.check(got >= 15, || {
        format!("{got} packets after the peer spoke (want >= 15)")
    });
    peer.talk(None, 0, 0);
    sip.send(&in_dialog("ACK", 1, &inv, &ok, sip.local, "UDP"));
    sip.send(&in_dialog("BYE", 2, &inv, &ok, sip.local, "UDP"));
}

/// A trunk restricted to `media_networks: [127.0.0.2/32]`: an SDP naming
/// 127.0.0.1 is refused with 488 and a Warning saying why; one naming
/// 127.0.0.2 is answered.
#[test]
fn an_sdp_address_outside_the_trunks_media_networks_gets_488() {
    let d = Daemon::start_edited(vec![trunk_with("    media_networks: [127.0.0.2/32]\n")]);
    let outside = UdpSocket::bind((LOCALHOST, 0)).expect("binding 127.0.0.1");
    let sip = SipUdp::new(d.sip);
    let inv = invite(
        sip.local,
        "UDP",
        d.sip,
        "115",
        outside.local_addr().expect("addr"),
        &[0],
    );
    sip.send(&inv.text);
    let refused = sip.final_response(&d, "INVITE");
    d.check(refused.status() == Some(488), || {
        format!("SDP outside media_networks answered {}", refused.start)
    });
    let warning = refused.header("warning").unwrap_or_default().to_owned();
    d.check(
        warning.starts_with("399 ")
            && warning.contains("127.0.0.1")
            && warning.contains("127.0.0.2/32"),
        || format!("Warning: {warning:?}"),
    );
    let inside = UdpSocket::bind(("127.0.0.2", 0)).expect("binding 127.0.0.2");
    let sip = SipUdp::new(d.sip);
    let inv = invite(
        sip.local,
        "UDP",
        d.sip,
        "115",
        inside.local_addr().expect("addr"),
        &[0],
    );
    sip.send(&inv.text);
    let ok = sip.final_response(&d, "INVITE");
    d.check(ok.status() == Some(200), || {
        format!("SDP inside media_networks answered {}", ok.start)
    });
    sip.send(&in_dialog("ACK", 1, &inv, &ok, sip.local, "UDP"));
    sip.send(&in_dialog("BYE", 2, &inv, &ok, sip.local, "UDP"));
    let rejected = d.rejected("media_address");
    d.check(rejected == Some(1.0), || {
        format!("media_address rejections: {rejected:?}, want 1")
    });
}

/// Issue 16's surge, short: 200 calls/s on Kassel's 115 for 4 s (Kassel's
/// surge limit at 10 calls, the test's 100 RTP legs). Kassel's callers get
/// the busy prompt, then 486 once Kassel's call slots are full; Krefeld's
/// callers are all answered, nobody gets 503, and a connected Krefeld call
/// keeps every packet. The full run is benches/surge.rs.
#[test]
fn a_surge_on_kassel_refuses_only_kassel_and_krefeld_keeps_its_calls() {
    let (d, _dialplans) = surge::start_daemon(10, 200);
    let f = surge::run(&d, 200, 4, 4);
    println!("{}", f.report());
    d.check(f.sipp_failed == 0 && f.placed == 800, || {
        format!(
            "SIPp: {} placed, {} failed (want 800, 0)\n{}",
            f.placed,
            f.sipp_failed,
            f.report()
        )
    });
    d.check(f.kassel_busy > 0.0 && f.kassel_refused > 0.0, || {
        format!("want both busy prompts and 486 for Kassel\n{}", f.report())
    });
    d.check(
        f.others_refused == 0.0 && f.no_rtp_port == 0.0 && f.responses_5xx == 0.0,
        || {
            format!(
                "nobody but Kassel may be refused, nobody gets 503\n{}",
                f.report()
            )
        },
    );
    d.check(f.krefeld_answered == f.krefeld_calls, || {
        format!("Krefeld callers refused during the surge\n{}", f.report())
    });
    // 4 s of the agent's audio at 50 packets/s; nothing lost. The gap
    // bound is generous: the test host may be busy with other builds.
    d.check(f.connected_packets >= 180 && f.connected_lost == 0, || {
        format!("the connected call lost audio\n{}", f.report())
    });
    d.check(f.connected_max_gap < Duration::from_millis(300), || {
        format!("the connected call stalled\n{}", f.report())
    });
    d.check(f.agent_state == "talking", || {
        format!(
            "agent 2001 is {:?}, want talking\n{}",
            f.agent_state,
            f.report()
        )
    });
}

/// The state of agent `id` in `GET /api/v1/agents`.
fn agent_state(d: &Daemon, id: &str) -> String {
    let agent = d.agent(id);
    let reason = agent["reason"].as_str().unwrap_or_default();
    format!(
        "{}{}{reason}",
        agent["state"].as_str().unwrap_or_default(),
        if reason.is_empty() { "" } else { " " }
    )
}

/// zentrale's own shortage is no agent's fault (issue 16): with every free
/// RTP port of the range held by another process, the Kassel caller is
/// answered but the leg to agent 1001 gets no port, again and again. 1001
/// stays available (not paused "no-answer" after its 3 misses), the caller
/// stays queued, and once ports are free again 1001 rings.
#[test]
fn no_port_for_the_agent_leg_is_no_missed_offer() {
    let d = Daemon::start();
    let mut phone = Phone::registered(&d, "1001");
    let mut caller = Caller::new(&d, "115");
    caller.connect(&d);
    // Every even port of the range the caller's leg left free.
    let squat: Vec<UdpSocket> = (d.rtp.0..=d.rtp.1)
        .step_by(2)
        .filter_map(|p| UdpSocket::bind((LOCALHOST, p)).ok())
        .collect();
    d.check(squat.len() >= 90, || {
        format!("only {} ports squatted", squat.len())
    });
    // The greeting (4.5 s), then offers that fail for want of a port,
    // retried every second.
    let rang = phone.offer(Duration::from_secs(9));
    d.check(rang.is_none(), || {
        "1001 rang without a port for its leg".into()
    });
    let state = agent_state(&d, "1001");
    d.check(state == "available", || {
        format!("1001 is {state:?} after zentrale's own failures, want available")
    });
    let unanswered = d.metric_sum("zentrale_queue_offers_unanswered_total");
    d.check(unanswered == 0.0, || {
        format!("{unanswered} offers counted unanswered")
    });
    d.check(
        d.log_tail(400).contains("no RTP port for an outbound leg"),
        || "the leg never failed for want of a port: the test proves nothing".into(),
    );
    drop(squat);
    let invite = phone.expect_offer(&d, Duration::from_secs(5));
    phone.answer(&d, &invite);
    std::thread::sleep(Duration::from_millis(500));
    let state = agent_state(&d, "1001");
    d.check(state == "talking", || {
        format!("1001 is {state:?}, want talking")
    });
    caller.hang_up(&d);
}

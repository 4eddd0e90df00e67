//! End-to-end tests of the ACD against the real binary: agents register,
//! trunk callers queue, zentrale offers them to the agents' phones, bridges
//! the media, and the supervisor API and `/metrics` show what happened.
//!
//! Agents are mostly played by a small raw SIP phone ([`Phone`]) because the
//! tests look at exact headers, SDP and RTP bytes; where a real peer is the
//! natural agent (busy, cancelled while ringing, answering an overflow call)
//! a SIPp UAS takes over the port the agent registered from
//! (`tests/sipp/uas_agent_*.xml`). Every test starts its own daemon on free
//! loopback ports, so they run in parallel; every wait is bounded.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Length of sounds/greeting-kassel.wav: callers of kassel/115 hear it
/// before they join the queue.
const GREETING_KASSEL: Duration = Duration::from_millis(4500);

/// Length of sounds/greeting-quickborn.wav.
const GREETING_QUICKBORN: Duration = Duration::from_millis(2500);

// ---------------------------------------------------------------------------
// Daemons with edited dialplans
// ---------------------------------------------------------------------------

/// A daemon whose config is the demo with literal edits, in zentrale.yaml
/// and in copies of dialplan files (each edit must match exactly once).
struct AcdDaemon {
    d: Daemon,
    /// Holds the edited dialplans (read once at start; kept for inspection).
    _dialplans: Option<TempDir>,
}

impl std::ops::Deref for AcdDaemon {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.d
    }
}

/// Starts the daemon with `edits` to zentrale.yaml and `dialplan_edits` as
/// `(file name in dialplans/, from, to)`.
fn start(edits: &[(&str, &str)], dialplan_edits: &[(&str, &str, &str)]) -> AcdDaemon {
    let mut all: Vec<(String, String)> = edits
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    let mut dir = None;
    if !dialplan_edits.is_empty() {
        let tmp = TempDir::new("dialplans");
        let mut files: Vec<&str> = dialplan_edits.iter().map(|e| e.0).collect();
        files.dedup();
        for file in files {
            let src = repo().join("dialplans").join(file);
            let mut text = fs::read_to_string(&src)
                .unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
            for (_, from, to) in dialplan_edits.iter().filter(|e| e.0 == file) {
                text = replace_once(&text, from, to, &src);
            }
            let copy = tmp.path().join(file);
            fs::write(&copy, text).expect("writing the edited dialplan");
            all.push((
                format!("dialplan: dialplans/{file}"),
                format!("dialplan: {}", copy.display()),
            ));
        }
        dir = Some(tmp);
    }
    let d = Daemon::start_with(Options {
        edits: all,
        ..Options::default()
    });
    AcdDaemon { d, _dialplans: dir }
}

// ---------------------------------------------------------------------------
// HTTP: the supervisor API
// ---------------------------------------------------------------------------

fn json(d: &Daemon, body: &str, what: &str) -> Value {
    serde_json::from_str(body)
        .unwrap_or_else(|e| d.fail(format!("{what} is not JSON ({e}): {body}")))
}

/// A POST with the demo token (every change needs a token).
fn post(d: &Daemon, path: &str, body: Option<&str>) -> (u16, Value) {
    match http_request(d.http, "POST", path, DEMO_AUTH, body).map(|r| (r.status, r.text())) {
        Ok((code, text)) => (code, json(d, &text, &format!("POST {path} ({code})"))),
        Err(e) => d.fail(format!("POST {path}: {e}")),
    }
}

/// Polls the API until agent `id` is in `state`; fails after `limit`.
fn wait_agent(d: &Daemon, id: &str, state: &str, limit: Duration) -> Value {
    let until = Instant::now() + limit;
    loop {
        let a = d.agent(id);
        if a["state"] == state {
            return a;
        }
        if Instant::now() >= until {
            d.fail(format!("agent {id} is not {state} within {limit:?}: {a}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The queue `name` (`tenant/id`) in `GET /api/v1/queues`.
fn queue(d: &Daemon, name: &str) -> Value {
    let all = d.api_json("/api/v1/queues");
    let Some(list) = all.as_array() else {
        d.fail(format!("/api/v1/queues is not an array: {all}"));
    };
    list.iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap_or_else(|| d.fail(format!("queue {name} missing from /api/v1/queues: {all}")))
}

fn metric(d: &Daemon, sample: &str) -> f64 {
    metric_value(&d.metrics(), sample).unwrap_or(0.0)
}

/// Polls `/metrics` until the exact `sample` equals `want`; fails after `limit`.
fn wait_metric_eq(d: &Daemon, sample: &str, want: f64, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let v = metric(d, sample);
        if v == want {
            return;
        }
        if Instant::now() >= until {
            d.fail(format!("{sample} is {v}, want {want} (waited {limit:?})"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_no_calls(d: &Daemon, what: &str) {
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(5), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} {what}")
    });
}

// ---------------------------------------------------------------------------
// SIPp as an agent's phone
// ---------------------------------------------------------------------------

/// A SIPp UAS on the port an agent registered from, running one scenario.
struct SippPhone {
    child: Option<Child>,
    name: String,
    dir: PathBuf,
}

impl SippPhone {
    /// Starts `tests/sipp/NAME.xml` as a UAS on 127.0.0.1:`port` (free it
    /// first) and waits until SIPp holds the port.
    fn start(d: &Daemon, name: &str, port: u16, limit: Duration) -> SippPhone {
        require_sipp();
        let sf = scenario(name);
        assert!(sf.exists(), "scenario {} is missing", sf.display());
        let dir = d
            .dir
            .path()
            .join(format!("sipp-{name}-{:x}", random_u64() & 0xff_ffff));
        fs::create_dir_all(&dir).expect("creating the sipp dir");
        let media = free_udp_range(8).0;
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(&sf)
            .args(["-i", LOCALHOST, "-p", &port.to_string()])
            .args(["-mi", LOCALHOST, "-mp", &media.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout"])
            .arg(format!("{}s", limit.as_secs().max(1)))
            .args(["-timeout_error", "-max_retrans", "5"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.join("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(dir.join("messages.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("stdout.log")).expect("sipp stdout"))
            .stderr(fs::File::create(dir.join("stderr.log")).expect("sipp stderr"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("running sipp ({e}): install sip-tester (tests/run.sh does it)")
            });
        let phone = SippPhone {
            child: Some(child),
            name: name.to_owned(),
            dir,
        };
        // SIPp is ready once its socket holds the port.
        let until = Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind((LOCALHOST, port)).is_ok() {
            if Instant::now() >= until {
                let report = phone.report();
                d.fail(format!("SIPp {name} did not bind port {port}\n{report}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        phone
    }

    fn report(&self) -> String {
        let mut r = format!("--- sipp {} ({}) ---\n", self.name, self.dir.display());
        for f in ["errors.log", "stderr.log", "messages.log"] {
            if let Ok(t) = fs::read_to_string(self.dir.join(f)) {
                let lines: Vec<&str> = t.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                let _ = writeln!(r, "--- {f} ---\n{tail}");
            }
        }
        r
    }

    /// Waits up to `limit` for SIPp to finish its one call; fails the test
    /// unless it exited 0.
    fn finish(mut self, d: &Daemon, limit: Duration) {
        let mut child = self.child.take().expect("a running sipp");
        let until = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        match status {
            Some(s) if s.success() => {}
            Some(s) => d.fail(format!("SIPp {} exited {s}\n{}", self.name, self.report())),
            None => d.fail(format!(
                "SIPp {} still ran after {limit:?}\n{}",
                self.name,
                self.report()
            )),
        }
    }
}

impl Drop for SippPhone {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Registers `ext` from a fresh port, then hands that port to a SIPp UAS
/// running `scenario`.
fn sipp_agent(d: &Daemon, ext: &str, scenario: &str, limit: Duration) -> SippPhone {
    let port = {
        let p = Phone::registered(d, ext);
        p.port()
    };
    SippPhone::start(d, scenario, port, limit)
}

// ---------------------------------------------------------------------------
// 1. The basic ACD call
// ---------------------------------------------------------------------------

/// Agent 1001's wrap-up, short so the test sees it end (an agent's own
/// wrap_up_secs wins over the queue's 30 s).
const WRAP_UP_2S: (&str, &str) = (
    "    # wrap_up_secs: 60       # this agent's after-call work, instead of the queue's",
    "    wrap_up_secs: 2",
);

/// 1001 registers (and so logs in); a trunk caller dials 0561115, hears the
/// greeting, then 1001's phone gets its own INVITE naming caller, tenant and
/// queue with the caller's codec first; after the answer RTP flows both
/// ways, the stream towards the caller keeping its SSRC and sequence; the
/// agent hangs up, the caller gets a BYE, 1001 wraps up and is available
/// again; the queue metrics count the answer and the wait.
#[test]
fn basic_acd_call() {
    let d = start(&[WRAP_UP_2S], &[]);
    let mut phone = Phone::registered(&d, "1001");
    let a = wait_agent(&d, "1001", "available", SIP_WAIT);
    d.check(a["registered"] == true, || {
        format!("1001 registered but the API says {a}")
    });

    let mut caller = Caller::new(&d, "0561115").with_pts(&[8, 0, 101]);
    // PCMA first: the agent's offer must follow the caller's choice.
    caller.connect(&d);
    let answered = Instant::now();
    let invite = phone.expect_offer(&d, GREETING_KASSEL + SIP_WAIT);
    let after = answered.elapsed();
    d.check(after >= GREETING_KASSEL - Duration::from_millis(500), || {
        format!("the agent was offered the call {after:?} after the answer, before the greeting ({GREETING_KASSEL:?}) was over")
    });

    // The agent's leg: its own dialog, naming caller, tenant and queue.
    d.check(
        invite.header("call-id") != Some(caller.call_id.as_str()),
        || "the agent leg reuses the caller's Call-ID".to_owned(),
    );
    let from = invite.header("from").unwrap_or_default();
    d.check(
        from.starts_with("\"Kassel 115\"") && from.contains("<sip:0301234567@"),
        || format!("the agent INVITE's From is {from:?}: want the display naming the origin (Kassel 115) and the caller's number as user"),
    );
    let origin = invite.header("x-zentrale-origin").unwrap_or_default();
    d.check(
        origin.starts_with("kassel/115;")
            && origin.contains("municipality=\"Kassel\"")
            && origin.contains("via=115"),
        || format!("X-Zentrale-Origin is {origin:?}, want kassel/115 via 115"),
    );
    let to = invite.header("to").unwrap_or_default();
    d.check(to.contains("sip:1001@") && !to.contains("tag="), || {
        format!("the agent INVITE's To is {to:?}")
    });
    let queue_header = invite.header("x-zentrale-queue").unwrap_or_default();
    d.check(queue_header == "kassel/115", || {
        format!("X-Zentrale-Queue is {queue_header:?}, want kassel/115")
    });
    let (_, pts) = sdp_media(&d, &invite.body_str());
    d.check(pts.first() == Some(&8), || {
        format!("the agent offer lists {pts:?}: want the caller's PCMA (8) first")
    });

    phone.ring(&invite);
    let talk_from = Instant::now();
    let pt = phone.answer(&d, &invite);
    d.check(pt == 8, || format!("agent answered PT {pt}"));
    wait_agent(&d, "1001", "talking", SIP_WAIT);
    std::thread::sleep(Duration::from_millis(1500));

    // Towards the caller: music, then the agent's packets, one stream.
    let heard = caller.rtp.got();
    let Some(first_relayed) = heard.iter().position(|p| p.fill == Some(AGENT_FILL)) else {
        d.fail(format!(
            "the caller never got the agent's RTP ({} packets heard)",
            heard.len()
        ));
    };
    d.check(first_relayed > 10, || {
        format!(
            "the caller heard only {first_relayed} packets before the agent: no greeting or music?"
        )
    });
    let (before, at) = (heard[first_relayed - 1], heard[first_relayed]);
    d.check(before.ssrc == at.ssrc && at.seq == before.seq.wrapping_add(1), || {
        format!("the stream towards the caller breaks at the bridge: last prompt packet {before:?}, first relayed {at:?}")
    });
    let ssrcs: Vec<u32> = heard.iter().map(|p| p.ssrc).collect();
    d.check(ssrcs.iter().all(|s| *s == ssrcs[0]), || {
        "the caller's stream changed its SSRC during the call".to_owned()
    });
    let relayed = heard[first_relayed..]
        .iter()
        .filter(|p| p.fill == Some(AGENT_FILL))
        .count();
    d.check(
        relayed >= 40 && heard[first_relayed..].iter().all(|p| p.pt == 8),
        || format!("after the bridge the caller got {relayed} agent packets in ~1.5 s"),
    );
    // Towards the agent: the caller's packets.
    let agent_heard = phone.rtp.got_since(talk_from);
    let from_caller = agent_heard
        .iter()
        .filter(|p| p.fill == Some(CALLER_FILL) && p.pt == 8)
        .count();
    d.check(from_caller >= 40, || {
        format!(
            "the agent got {from_caller} of the caller's packets in ~1.5 s ({} in all)",
            agent_heard.len()
        )
    });

    phone.hang_up(&d);
    let (bye, _) = caller.expect_bye(&d, SIP_WAIT);
    d.check(
        bye.header("call-id") == Some(caller.call_id.as_str()),
        || format!("caller BYE {bye:?}"),
    );
    let a = wait_agent(&d, "1001", "wrap_up", SIP_WAIT);
    d.check(a["answered_today"] == 1, || {
        format!("after the call 1001 is {a}")
    });
    let wrap_started = Instant::now();
    wait_agent(&d, "1001", "available", Duration::from_secs(6));
    let wrapped = wrap_started.elapsed();
    d.check(wrapped >= Duration::from_millis(1500), || {
        format!("1001 was available again {wrapped:?} after the call, before its 2 s wrap-up")
    });

    let m = d.metrics();
    let answered = metric_value(
        &m,
        "zentrale_queue_calls_answered_total{tenant=\"kassel\",queue=\"115\"}",
    );
    d.check(answered == Some(1.0), || {
        format!("queue_calls_answered for kassel/115 is {answered:?}, want 1")
    });
    let waits = metric_value(
        &m,
        "zentrale_queue_wait_seconds_count{tenant=\"kassel\",queue=\"115\"}",
    );
    d.check(waits == Some(1.0), || {
        format!("queue_wait_seconds count for kassel/115 is {waits:?}, want 1")
    });
    let talks = metric_value(
        &m,
        "zentrale_queue_talk_seconds_count{tenant=\"kassel\",queue=\"115\"}",
    );
    d.check(talks == Some(1.0), || {
        format!("queue_talk_seconds count for kassel/115 is {talks:?}, want 1")
    });
    wait_no_calls(&d, "after the ACD call");
}

// ---------------------------------------------------------------------------
// 2, 3. The caller leaving while the agent's phone rings, ring timeout and
// re-offer, and (5) ring-all with a 200 crossing the CANCEL: timing flows,
// run on the virtual network in the crate (src/harness/tests/ringing.rs)
// in milliseconds instead of waiting here.
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// 4. Busy: the next agent at once
// ---------------------------------------------------------------------------

/// 1001's phone (SIPp) answers the offer 486 Busy Here: zentrale ACKs it
/// and offers 1002 at once, not after a ring timeout; 1002 takes the call.
#[test]
fn busy_agent_passes_the_offer_on_at_once() {
    let d = start(&[], &[]);
    // 1001 first: idle longest, offered first.
    let busy = sipp_agent(&d, "1001", "uas_agent_busy", Duration::from_secs(30));
    wait_agent(&d, "1001", "available", SIP_WAIT);
    std::thread::sleep(Duration::from_millis(50));
    let mut p2 = Phone::registered(&d, "1002");
    wait_agent(&d, "1002", "available", SIP_WAIT);

    let mut caller = Caller::new(&d, "0561115").with_pts(&[0, 8, 101]);
    caller.connect(&d);
    let answered = Instant::now();
    let invite = p2.expect_offer(&d, GREETING_KASSEL + SIP_WAIT);
    let after = answered.elapsed();
    d.check(
        after < GREETING_KASSEL + Duration::from_millis(1500),
        || {
            format!(
                "1002 was offered the call {after:?} after the answer: the busy 1001 held it up"
            )
        },
    );
    busy.finish(&d, SIP_WAIT);
    let a = d.agent("1001");
    d.check(a["state"] == "available" && a["missed_in_row"] == 1, || {
        format!("after its 486 1001 is {a}, want available with one miss")
    });
    p2.ring(&invite);
    p2.answer(&d, &invite);
    wait_agent(&d, "1002", "talking", SIP_WAIT);
    caller.hang_up(&d);
    let bye = p2.expect_request(&d, "BYE", SIP_WAIT);
    p2.sip.send(&response_to(&bye, 200, "OK"));
    wait_agent(&d, "1002", "wrap_up", SIP_WAIT);
    let q = queue(&d, "kassel/115");
    d.check(q["answered"] == 1 && q["offers_unanswered"] == 1, || {
        format!("kassel/115 after one busy and one answered offer: {q}")
    });
    wait_no_calls(&d, "after the call");
}

// ---------------------------------------------------------------------------
// 6. Overflow to the district (the Quickborn model). The overflow after the
// town hall's 20 s, with its figures and call record, runs on the virtual
// network (src/harness/tests/routing.rs).
// ---------------------------------------------------------------------------

/// Nobody of Quickborn's town hall is logged in and its queue does not
/// `join_empty`, so a call to 041066110 goes to kreis-pinneberg/115 at once
/// (`on_no_agents`): agent 3001 (SIPp) gets it with X-Zentrale-Queue naming
/// the district's queue and the display naming Stadt Quickborn, answers,
/// talks a second and hangs up.
#[test]
fn overflow_when_nobody_is_logged_in() {
    let d = start(&[], &[]);
    let district = sipp_agent(&d, "3001", "uas_agent_answer", Duration::from_secs(30));
    wait_agent(&d, "3001", "available", SIP_WAIT);
    let a = d.agent("4001");
    d.check(a["state"] == "logged_out", || {
        format!("4001 never registered, yet the API says {a}")
    });

    let mut caller = Caller::new(&d, "041066110").with_pts(&[0, 8, 101]);
    caller.connect(&d);
    let answered = Instant::now();
    wait_agent(&d, "3001", "talking", GREETING_QUICKBORN + SIP_WAIT);
    let after = answered.elapsed();
    d.check(
        after < GREETING_QUICKBORN + Duration::from_millis(1500),
        || format!("3001 took the Quickborn call {after:?} after the answer: not at once"),
    );
    caller.expect_bye(&d, SIP_WAIT);
    district.finish(&d, SIP_WAIT);
    let m = d.metrics();
    for (sample, want) in [
        (
            "zentrale_queue_calls_rejected_total{tenant=\"quickborn\",queue=\"rathaus\",reason=\"no_agents\"}",
            1.0,
        ),
        (
            "zentrale_queue_calls_entered_total{tenant=\"quickborn\",queue=\"rathaus\"}",
            0.0,
        ),
        (
            "zentrale_overflow_total{from_municipality=\"Quickborn\",target=\"kreis-pinneberg/115\"}",
            1.0,
        ),
        (
            "zentrale_queue_calls_answered_total{tenant=\"kreis-pinneberg\",queue=\"115\"}",
            1.0,
        ),
        (
            "zentrale_queue_wait_seconds_count{tenant=\"kreis-pinneberg\",queue=\"115\"}",
            1.0,
        ),
    ] {
        let v = metric_value(&m, sample);
        d.check(v == Some(want), || {
            format!("{sample} is {v:?}, want {want}")
        });
    }
    wait_no_calls(&d, "after the overflow call");
}

/// A queue target that is a SIP URI (another service center's system):
/// with nobody logged in at Quickborn the caller is forwarded there with
/// the dialled number in `Diversion`, the call is relayed, and the remote
/// side's BYE ends the caller's call.
#[test]
fn forward_to_a_sip_uri_target() {
    let port = free_port();
    let target = format!("      target: {{ uri: \"sip:5555@127.0.0.1:{port}\" }}");
    let d = start(
        &[],
        &[(
            "quickborn.yaml",
            "      target: { queue: kreis-pinneberg/115 }",
            &target,
        )],
    );
    let remote = SippPhone::start(&d, "uas_forward_target", port, Duration::from_secs(30));
    let mut caller = Caller::new(&d, "041066110").with_pts(&[0, 8, 101]);
    caller.connect(&d);
    caller.expect_bye(&d, GREETING_QUICKBORN + SIP_WAIT);
    remote.finish(&d, SIP_WAIT);
    let m = d.metrics();
    let relayed = metric_value(&m, "zentrale_rtp_packets_relayed_total").unwrap_or(0.0);
    d.check(relayed > 0.0, || {
        format!("no RTP relayed between the caller and the forward target\n{m}")
    });
    wait_no_calls(&d, "after the forwarded call");
}

// ---------------------------------------------------------------------------
// 7. Feature codes
// ---------------------------------------------------------------------------

/// What a feature-code call gave the agent.
struct FeatureCall {
    /// zentrale's 200.
    ok: SipMsg,
    /// From the 200 to zentrale's BYE.
    lasted: Duration,
    /// RTP packets (the prompt) from zentrale during the call.
    heard: usize,
}

/// The agent dials `code` from its phone: INVITE, 407, INVITE with
/// Proxy-Authorization (MD5), 200, ACK; zentrale plays the prompt and hangs
/// up (BYE, 200).
fn dial_feature(d: &Daemon, phone: &Phone, code: &str) -> FeatureCall {
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let tag = SipUdp::token();
    let uri = format!("sip:{code}@{}", d.sip);
    let local = phone.sip.local;
    let sdp = phone.sdp(1, 0, "sendrecv");
    let invite = |cseq: u32, branch: &str, auth: &str| {
        format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{ext}@{ip}>;tag={tag}\r\n\
             To: <sip:{code}@{remote}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:{ext}@{local}>\r\n\
             {auth}Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            ext = phone.ext,
            ip = local.ip(),
            remote = d.sip,
            len = sdp.len(),
        )
    };
    let ack = |cseq: u32, branch: &str, to: &str| {
        format!(
            "ACK {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{ext}@{ip}>;tag={tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n",
            ext = phone.ext,
            ip = local.ip(),
        )
    };
    let final_to = |cseq: u32| -> SipMsg {
        let want = format!("{cseq} INVITE");
        let until = Instant::now() + SIP_WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(m) = phone.sip.recv(left) else {
                d.fail(format!("{code}: no final response to INVITE {cseq}"));
            };
            if m.status().is_some_and(|c| c >= 200) && m.header("cseq") == Some(want.as_str()) {
                return m;
            }
        }
    };

    let branch = format!("z9hG4bK{}", SipUdp::token());
    phone.sip.send(&invite(1, &branch, ""));
    let challenge = final_to(1);
    d.check(challenge.status() == Some(407), || {
        format!(
            "{code} without credentials answered {}, want 407",
            challenge.start
        )
    });
    phone
        .sip
        .send(&ack(1, &branch, challenge.header("to").unwrap_or_default()));
    let challenges = challenge.headers_named("proxy-authenticate");
    let Some(auth) = digest_md5(&challenges, &phone.ext, "INVITE", &uri) else {
        d.fail(format!("{code}: no MD5 challenge in {challenges:?}"));
    };
    let branch = format!("z9hG4bK{}", SipUdp::token());
    phone.sip.send(&invite(
        2,
        &branch,
        &format!("Proxy-Authorization: {auth}\r\n"),
    ));
    let ok = final_to(2);
    d.check(ok.status() == Some(200), || {
        format!("{code} with credentials answered {}, want 200", ok.start)
    });
    let answered = Instant::now();
    let to = ok.header("to").unwrap_or_default().to_owned();
    phone
        .sip
        .send(&ack(2, &format!("z9hG4bK{}", SipUdp::token()), &to));
    let bye = phone.expect_request(d, "BYE", Duration::from_secs(8));
    let lasted = answered.elapsed();
    phone.sip.send(&response_to(&bye, 200, "OK"));
    d.check(bye.header("call-id") == Some(call_id.as_str()), || {
        format!("{code}: BYE of another call: {bye:?}")
    });
    let heard = phone.rtp.got_since(answered).len();
    FeatureCall { ok, lasted, heard }
}

/// An agent dials *41 (logout), *40 (login), *42 (pause, first reason:
/// break), *422 (pause code 2: back-office) and *43 (unpause) from its
/// registered phone: each call is challenged (407), answered after the
/// credentials, plays its prompt and is hung up by zentrale; the API shows
/// each state. Feature calls are not hotline calls in the metrics.
#[test]
fn feature_codes_change_the_agent_state() {
    let d = start(&[], &[]);
    let phone = Phone::registered(&d, "1001");
    wait_agent(&d, "1001", "available", SIP_WAIT);
    for (code, state, reason) in [
        ("*41", "logged_out", None),
        ("*40", "available", None),
        ("*42", "paused", Some("break")),
        ("*422", "paused", Some("back-office")),
        ("*43", "available", None),
    ] {
        let call = dial_feature(&d, &phone, code);
        d.check(
            call.ok.header("content-type") == Some("application/sdp"),
            || format!("{code}: the 200 has no SDP: {:?}", call.ok),
        );
        // The confirmations are 1.1 to 1.5 s long, agent-error 2.05 s.
        d.check(
            call.lasted >= Duration::from_millis(900) && call.lasted < Duration::from_millis(1950),
            || format!("{code}: zentrale hung up {:?} after the answer, want after its ~1.4 s confirmation", call.lasted),
        );
        d.check(call.heard >= 40, || {
            format!(
                "{code}: only {} RTP packets of the prompt arrived",
                call.heard
            )
        });
        let a = d.agent("1001");
        d.check(
            a["state"] == state && a["reason"].as_str() == reason,
            || format!("after {code} 1001 is {a}, want {state} {reason:?}"),
        );
    }
    // Unpausing an agent who is not paused is refused: the error prompt.
    let call = dial_feature(&d, &phone, "*43");
    d.check(call.lasted >= Duration::from_millis(1900), || {
        format!(
            "*43 while available ended after {:?}: want the 2 s agent-error prompt",
            call.lasted
        )
    });
    let a = d.agent("1001");
    d.check(a["state"] == "available", || {
        format!("after a refused *43 1001 is {a}")
    });
    // A code zentrale does not know: the error prompt too, not a 404.
    let call = dial_feature(&d, &phone, "*99");
    d.check(call.lasted >= Duration::from_millis(1900), || {
        format!(
            "*99 ended after {:?}: want the 2 s agent-error prompt",
            call.lasted
        )
    });
    let offered = d.metric_sum("zentrale_calls_offered_total");
    d.check(offered == 0.0, || {
        format!("feature-code calls counted as {offered} hotline calls")
    });
    wait_no_calls(&d, "after the feature-code calls");
}

// ---------------------------------------------------------------------------
// 8. The supervisor API
// ---------------------------------------------------------------------------

/// `GET /api/v1/queues` and `/api/v1/agents` list every queue and agent of
/// the demo with their figures; POST pause/unpause/logout/login change an
/// agent and answer it as it is now; errors are JSON with 404 (unknown agent
/// or action) or 409 (not possible in this state); a login through the API
/// offers a waiting caller to the agent at once (the API wakes the core).
#[test]
fn supervisor_api() {
    let d = start(&[], &[]);
    let queues = d.api_json("/api/v1/queues");
    let names: Vec<&str> = queues
        .as_array()
        .map(|l| l.iter().filter_map(|q| q["name"].as_str()).collect())
        .unwrap_or_default();
    d.check(
        names
            == [
                "kassel/115",
                "kassel/buergeramt",
                "krefeld/serviceportal",
                "krefeld/kfz",
                "krefeld/meldewesen",
                "kreis-pinneberg/115",
                "quickborn/rathaus",
            ],
        || format!("GET /api/v1/queues lists {names:?}"),
    );
    let rathaus = queue(&d, "quickborn/rathaus");
    d.check(
        rathaus["tenant"] == "quickborn"
            && rathaus["strategy"] == "ring-all"
            && rathaus["waiting"] == 0
            && rathaus["agents"]["logged_out"] == 2
            && rathaus["service_level_target_percent"] == 75
            && rathaus["service_level_threshold_secs"] == 30
            && rathaus["service_level_percent"].is_null(),
        || format!("quickborn/rathaus in the API: {rathaus}"),
    );
    let agents = d.api_json("/api/v1/agents");
    let n = agents.as_array().map_or(0, Vec::len);
    d.check(n == 22, || {
        format!("GET /api/v1/agents lists {n} agents, want the demo's 22")
    });
    let a = d.agent("2004");
    d.check(
        a["tenant"] == "krefeld" && a["state"] == "logged_out" && a["registered"] == false,
        || format!("2004 before anything happened: {a}"),
    );

    let mut phone = Phone::registered(&d, "1001");
    wait_agent(&d, "1001", "available", SIP_WAIT);

    let (code, body) = post(
        &d,
        "/api/v1/agents/1001/pause",
        Some(r#"{"reason":"training"}"#),
    );
    d.check(
        code == 200 && body["state"] == "paused" && body["reason"] == "training",
        || format!("POST pause (training) answered {code}: {body}"),
    );
    let a = d.agent("1001");
    d.check(a["state"] == "paused" && a["reason"] == "training", || {
        format!("after the API paused 1001: {a}")
    });
    let (code, body) = post(&d, "/api/v1/agents/1001/unpause", None);
    d.check(code == 200 && body["state"] == "available", || {
        format!("POST unpause answered {code}: {body}")
    });
    let (code, body) = post(&d, "/api/v1/agents/1001/unpause", None);
    let msg = body["error"].as_str().unwrap_or_default();
    d.check(code == 409 && msg.contains("1001"), || {
        format!("POST unpause of an available agent answered {code}: {body}, want 409 naming 1001")
    });
    let (code, body) = post(&d, "/api/v1/agents/1001/pause", None);
    d.check(
        code == 200 && body["state"] == "paused" && body["reason"] == "break",
        || format!("POST pause without a body answered {code}: {body}, want paused (break)"),
    );
    post(&d, "/api/v1/agents/1001/unpause", None);
    let (code, body) = post(
        &d,
        "/api/v1/agents/1001/pause",
        Some(r#"{"reason":"coffee"}"#),
    );
    let msg = body["error"].as_str().unwrap_or_default();
    d.check(
        code == 422 && msg.contains("`coffee`") && msg.contains("back-office"),
        || format!("POST pause with an unconfigured reason answered {code}: {body}, want 422 listing the reasons"),
    );
    let a = d.agent("1001");
    d.check(a["state"] == "available", || {
        format!("after a refused pause: {a}")
    });
    let (code, body) = post(
        &d,
        "/api/v1/agents/9999/pause",
        Some(r#"{"reason":"break"}"#),
    );
    let msg = body["error"].as_str().unwrap_or_default();
    d.check(code == 404 && msg.contains("9999"), || {
        format!("POST pause of an unknown agent answered {code}: {body}, want 404 naming it")
    });
    let (code, body) = post(&d, "/api/v1/agents/1001/dance", None);
    d.check(code == 404 && body["error"].is_string(), || {
        format!("POST of an unknown action answered {code}: {body}")
    });

    // Logged out, the agent is not offered the waiting caller; logged in
    // through the API, it is, without waiting for another SIP event.
    let (code, body) = post(&d, "/api/v1/agents/1001/logout", None);
    d.check(code == 200 && body["state"] == "logged_out", || {
        format!("POST logout answered {code}: {body}")
    });
    let mut caller = Caller::new(&d, "0561115").with_pts(&[0, 8, 101]);
    caller.connect(&d);
    std::thread::sleep(GREETING_KASSEL + Duration::from_millis(700));
    let q = queue(&d, "kassel/115");
    d.check(q["waiting"] == 1 && q["ringing"] == 0, || {
        format!("with 1001 logged out kassel/115 is {q}")
    });
    let early = phone.next_request("INVITE", Duration::from_millis(300));
    d.check(early.is_none(), || {
        "a logged-out agent was offered the caller".to_owned()
    });
    let (code, body) = post(&d, "/api/v1/agents/1001/login", None);
    let logged_in = Instant::now();
    d.check(code == 200, || {
        format!("POST login answered {code}: {body}")
    });
    let invite = phone.expect_offer(&d, SIP_WAIT);
    let after = logged_in.elapsed();
    d.check(after < Duration::from_millis(1000), || {
        format!(
            "the waiting caller was offered {after:?} after the API login: the core was not woken"
        )
    });
    phone.ring(&invite);
    phone.answer(&d, &invite);
    let a = wait_agent(&d, "1001", "talking", SIP_WAIT);
    d.check(a["queue"] == "kassel/115", || format!("1001 talking: {a}"));
    // A pause asked for during a call waits for its end.
    let (code, body) = post(
        &d,
        "/api/v1/agents/1001/pause",
        Some(r#"{"reason":"back-office"}"#),
    );
    d.check(
        code == 200 && body["state"] == "talking" && body["pending"] == "pause:back-office",
        || format!("POST pause during a call answered {code}: {body}"),
    );
    caller.hang_up(&d);
    let bye = phone.expect_request(&d, "BYE", SIP_WAIT);
    phone.sip.send(&response_to(&bye, 200, "OK"));
    phone.leg = None;
    let q = queue(&d, "kassel/115");
    d.check(
        q["answered"] == 1 && q["entered"] == 1 && q["waiting"] == 0,
        || format!("kassel/115 after the call: {q}"),
    );
    wait_no_calls(&d, "after the API test call");
}

// ---------------------------------------------------------------------------
// 9. Metrics: promtool and the queue figures
// ---------------------------------------------------------------------------

/// `promtool check metrics` on `text`: (exit code, output).
fn promtool_check(text: &str) -> (Option<i32>, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running promtool ({e}): install the prometheus package (tests/run.sh does it)")
        });
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .expect("piping the metrics to promtool");
    }
    let until = Instant::now() + Duration::from_secs(20);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// After an answered and an abandoned call, `/metrics` passes `promtool
/// check metrics` (exit 0: no parse error and no lint problem) in the
/// classic text format it gets by default, Prometheus gets OpenMetrics when
/// it asks, and the queue families count agents by state and waiting callers.
#[test]
fn metrics_pass_promtool_and_count_agents_and_waiting_callers() {
    let d = start(&[], &[]);
    let mut p1 = Phone::registered(&d, "1001");
    wait_agent(&d, "1001", "available", SIP_WAIT);
    std::thread::sleep(Duration::from_millis(50));
    let _p2 = Phone::registered(&d, "1002");
    wait_agent(&d, "1002", "available", SIP_WAIT);

    let mut a = Caller::new(&d, "0561115").with_pts(&[0, 8, 101]);
    a.connect(&d);
    let invite = p1.expect_offer(&d, GREETING_KASSEL + SIP_WAIT);
    p1.ring(&invite);
    p1.answer(&d, &invite);
    wait_agent(&d, "1001", "talking", SIP_WAIT);
    let by_state = |m: &str, state: &str| {
        metric_value(
            m,
            &format!("zentrale_queue_agents{{tenant=\"kassel\",queue=\"115\",state=\"{state}\"}}"),
        )
    };
    let m = d.metrics();
    for (state, want) in [
        ("available", 1.0),
        ("talking", 1.0),
        ("logged_out", 8.0),
        ("paused", 0.0),
    ] {
        let v = by_state(&m, state);
        d.check(v == Some(want), || {
            format!("kassel/115 agents {state}: {v:?}, want {want}")
        });
    }
    let v = metric_value(&m, "zentrale_agents{tenant=\"kassel\",state=\"talking\"}");
    d.check(v == Some(1.0), || {
        format!("kassel agents talking: {v:?}, want 1")
    });

    // 1002 pauses, so the next caller waits.
    let (code, body) = post(&d, "/api/v1/agents/1002/pause", None);
    d.check(code == 200, || format!("pausing 1002: {code} {body}"));
    let mut b = Caller::new(&d, "0561115").with_pts(&[0, 8, 101]);
    b.connect(&d);
    std::thread::sleep(GREETING_KASSEL + Duration::from_millis(1500));
    let m = d.metrics();
    let waiting = metric_value(
        &m,
        "zentrale_queue_waiting{tenant=\"kassel\",queue=\"115\"}",
    );
    let longest = metric_value(
        &m,
        "zentrale_queue_longest_wait_seconds{tenant=\"kassel\",queue=\"115\"}",
    )
    .unwrap_or(0.0);
    d.check(waiting == Some(1.0) && longest >= 1.0, || {
        format!("with one caller waiting: queue_waiting {waiting:?}, longest wait {longest}")
    });
    d.check(by_state(&m, "paused") == Some(1.0), || {
        "kassel/115 does not count 1002 as paused".to_owned()
    });
    b.hang_up(&d);
    p1.hang_up(&d);
    a.expect_bye(&d, SIP_WAIT);
    wait_agent(&d, "1001", "wrap_up", SIP_WAIT);
    // The ACD puts 1001 into wrap-up as soon as it hears of the end; the
    // core releases the call (and counts it by origin) once its legs are
    // done, which a loaded host shows as a gap.
    let active = d.wait_metric("zentrale_calls_active", SIP_WAIT, |v| v == 0.0);
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} after both calls ended")
    });

    let r = http_request(d.http, "GET", "/metrics", "Accept: */*\r\n", None)
        .unwrap_or_else(|e| d.fail(format!("GET /metrics: {e}")));
    let (code, head, text) = (r.status, head_of(&r), r.text());
    d.check(
        code == 200
            && head
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
        || format!("GET /metrics with Accept */* answered {code}\n{head}"),
    );
    for (sample, want) in [
        (
            "zentrale_queue_calls_answered_total{tenant=\"kassel\",queue=\"115\"}",
            1.0,
        ),
        (
            "zentrale_queue_calls_abandoned_total{tenant=\"kassel\",queue=\"115\"}",
            1.0,
        ),
        (
            "zentrale_queue_calls_entered_total{tenant=\"kassel\",queue=\"115\"}",
            2.0,
        ),
        (
            "zentrale_queue_waiting{tenant=\"kassel\",queue=\"115\"}",
            0.0,
        ),
        (
            "zentrale_queue_agents{tenant=\"kassel\",queue=\"115\",state=\"wrap_up\"}",
            1.0,
        ),
        (
            "zentrale_queue_wait_seconds_count{tenant=\"kassel\",queue=\"115\"}",
            1.0,
        ),
        (
            "zentrale_queue_wait_seconds_bucket{le=\"5.0\",tenant=\"kassel\",queue=\"115\"}",
            1.0,
        ),
        (
            "zentrale_queue_talk_seconds_count{tenant=\"kassel\",queue=\"115\"}",
            1.0,
        ),
        // The same calls by origin: both dialled Kassel's 115.
        (
            "zentrale_origin_calls_offered_total{tenant=\"kassel\",hotline=\"115\",municipality=\"Kassel\",via=\"115\"}",
            2.0,
        ),
        (
            "zentrale_origin_calls_ended_total{tenant=\"kassel\",hotline=\"115\",municipality=\"Kassel\",via=\"115\",disposition=\"answered\"}",
            1.0,
        ),
        (
            "zentrale_origin_calls_ended_total{tenant=\"kassel\",hotline=\"115\",municipality=\"Kassel\",via=\"115\",disposition=\"abandoned\"}",
            1.0,
        ),
        (
            "zentrale_queue_origin_calls_entered_total{tenant=\"kassel\",queue=\"115\",municipality=\"Kassel\",via=\"115\"}",
            2.0,
        ),
        (
            "zentrale_queue_origin_calls_answered_in_threshold_total{tenant=\"kassel\",queue=\"115\",municipality=\"Kassel\",via=\"115\"}",
            1.0,
        ),
        (
            "zentrale_queue_origin_calls_abandoned_total{tenant=\"kassel\",queue=\"115\",municipality=\"Kassel\",via=\"115\"}",
            1.0,
        ),
        // The short abandon does not count (as for the queue): 1 of 1.
        (
            "zentrale_queue_origin_service_level_ratio{tenant=\"kassel\",queue=\"115\",municipality=\"Kassel\",via=\"115\"}",
            1.0,
        ),
    ] {
        let v = metric_value(&text, sample);
        d.check(v == Some(want), || {
            let family = sample.split('{').next().unwrap_or(sample);
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(family)).collect();
            format!(
                "{sample} is {v:?}, want {want}; the family:\n{}",
                lines.join("\n")
            )
        });
    }
    let (status, report) = promtool_check(&text);
    d.check(status == Some(0), || {
        format!("promtool check metrics exited {status:?}:\n{report}\n--- the metrics ---\n{text}")
    });

    // Prometheus asks for OpenMetrics and gets it.
    let r = http_request(
        d.http,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
        None,
    )
    .unwrap_or_else(|e| d.fail(format!("GET /metrics (OpenMetrics): {e}")));
    let (code, head, om) = (r.status, head_of(&r), r.text());
    d.check(
        code == 200
            && head
                .to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0")
            && om.ends_with("# EOF\n")
            && om.contains("# TYPE zentrale_queue_calls_answered counter\n"),
        || format!("GET /metrics asking for OpenMetrics answered {code}\n{head}\n{om}"),
    );
    wait_no_calls(&d, "after the calls");
}

// ---------------------------------------------------------------------------
// 10. The agent holds the caller
// ---------------------------------------------------------------------------

/// The agent's re-INVITE `a=sendonly` is answered `a=recvonly`: the caller
/// hears zentrale's music instead of the agent and zentrale sends the agent
/// nothing; `a=sendrecv` bridges them again. The caller's stream keeps one
/// SSRC and consecutive sequence numbers through both switches.
#[test]
fn agent_hold_plays_music_to_the_caller() {
    let d = start(&[], &[]);
    let mut phone = Phone::registered(&d, "1001");
    wait_agent(&d, "1001", "available", SIP_WAIT);
    let mut caller = Caller::new(&d, "0561115").with_pts(&[0, 8, 101]);
    caller.connect(&d);
    let invite = phone.expect_offer(&d, GREETING_KASSEL + SIP_WAIT);
    phone.ring(&invite);
    let pt = phone.answer(&d, &invite);
    wait_agent(&d, "1001", "talking", SIP_WAIT);
    std::thread::sleep(Duration::from_millis(800));
    let talking = caller.rtp.got();
    d.check(
        talking
            .iter()
            .rev()
            .take(20)
            .all(|p| p.fill == Some(AGENT_FILL)),
        || "before the hold the caller does not hear the agent".to_owned(),
    );

    let held = phone.reinvite(&d, pt, "sendonly");
    let answer = held.body_str();
    d.check(sdp_direction(&answer) == "recvonly", || {
        format!("the agent's hold (sendonly) was answered:\n{answer}")
    });
    let hold_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    // Skip what was on its way when the hold took effect.
    let settle = hold_at + Duration::from_millis(200);
    let on_hold = caller.rtp.got_since(settle);
    let music = on_hold
        .iter()
        .filter(|p| p.fill != Some(AGENT_FILL))
        .count();
    d.check(on_hold.len() >= 40 && music == on_hold.len(), || {
        format!(
            "on hold the caller got {} packets, {music} of them music: want only music, flowing",
            on_hold.len()
        )
    });
    // The music resumes the caller's stream with the marker bit (RFC 3551).
    let first_music = caller
        .rtp
        .got_since(hold_at - Duration::from_millis(100))
        .into_iter()
        .find(|p| p.fill != Some(AGENT_FILL));
    d.check(first_music.is_some_and(|p| p.marker), || {
        format!("the first music packet on hold lacks the marker bit: {first_music:?}")
    });
    let to_agent = phone.rtp.got_since(settle).len();
    d.check(to_agent == 0, || {
        format!("zentrale sent the holding agent {to_agent} RTP packets (it answered recvonly)")
    });

    let resumed = phone.reinvite(&d, pt, "sendrecv");
    let answer = resumed.body_str();
    d.check(sdp_direction(&answer) == "sendrecv", || {
        format!("the agent's resume (sendrecv) was answered:\n{answer}")
    });
    let resume_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    let settle = resume_at + Duration::from_millis(200);
    let after = caller.rtp.got_since(settle);
    let relayed = after.iter().filter(|p| p.fill == Some(AGENT_FILL)).count();
    d.check(after.len() >= 40 && relayed == after.len(), || {
        format!(
            "after the resume the caller got {} packets, {relayed} from the agent",
            after.len()
        )
    });
    let from_caller = phone
        .rtp
        .got_since(settle)
        .iter()
        .filter(|p| p.fill == Some(CALLER_FILL))
        .count();
    d.check(from_caller >= 40, || {
        format!("after the resume the agent got {from_caller} of the caller's packets")
    });

    // One stream towards the caller from the answer to now.
    let all = caller.rtp.got();
    let breaks: Vec<(u16, u16)> = all
        .windows(2)
        .filter(|w| w[1].ssrc != w[0].ssrc || w[1].seq != w[0].seq.wrapping_add(1))
        .map(|w| (w[0].seq, w[1].seq))
        .collect();
    d.check(breaks.is_empty(), || {
        format!(
            "the caller's stream ({} packets) breaks its SSRC or sequence at {breaks:?}",
            all.len()
        )
    });
    caller.hang_up(&d);
    let bye = phone.expect_request(&d, "BYE", SIP_WAIT);
    phone.sip.send(&response_to(&bye, 200, "OK"));
    wait_no_calls(&d, "after the held call");
}

// ---------------------------------------------------------------------------
// 11. Prompts proven from the RTP bytes: announcements, queue admission
// ---------------------------------------------------------------------------

/// With Kassel's 115 queue announcing every 15 s and nobody logged in, the
/// waiting caller hears the greeting, the queue's music, about 15 s after
/// joining "Sie sind Anrufer Nummer eins" (`position`, `num-1`, then
/// `wait-time`), and the music again from its start: every prompt byte for
/// byte in the caller's codec, all in one RTP stream.
#[test]
fn announcement_tells_the_waiting_caller_its_position() {
    const EVERY: Duration = Duration::from_secs(15);
    let d = start(
        &[],
        &[(
            "kassel.yaml",
            "announce_every_secs: 45",
            "announce_every_secs: 15",
        )],
    );
    let mut caller = Caller::new(&d, "0561115").with_pts(&[8, 0, 101]);
    // PCMA: the harness's A-law encoder rounds like zentrale's (its µ-law
    // one does not for some negative samples).
    let ok = caller.connect(&d);
    let answered = Instant::now();
    let (_, pts) = sdp_media(&d, &ok.body_str());
    let pt = pts[0];
    d.check(pt == 8, || {
        format!("zentrale answered PT {pt} to an offer of PCMA first")
    });
    let greeting = prompt_frames(&d, "greeting-kassel", pt);
    let moh = prompt_frames(&d, "moh", pt);
    let position = prompt_frames(&d, "position", pt);
    let num_1 = prompt_frames(&d, "num-1", pt);
    let wait_time = prompt_frames(&d, "wait-time", pt);

    wait_metric_eq(
        &d,
        "zentrale_queue_waiting{tenant=\"kassel\",queue=\"115\"}",
        1.0,
        GREETING_KASSEL + SIP_WAIT,
    );

    // Until the music is back after the announcement: greeting, 15 s in
    // the queue, the announcement (position .. minutes, about 6 s), slack.
    let limit = GREETING_KASSEL + EVERY + Duration::from_secs(9);
    let music_again = |heard: &[(Pkt, Vec<u8>)]| {
        let p = find_frame(heard, &position[0], 0)?;
        find_frame(heard, &moh[0], p)
    };
    let heard = loop {
        let heard = caller.rtp.heard();
        if music_again(&heard).is_some() {
            break heard;
        }
        if answered.elapsed() > limit {
            let p = find_frame(&heard, &position[0], 0);
            d.fail(format!(
                "{limit:?} after the answer the caller has not heard the announcement and the \
                 music after it ({} packets heard, position prompt at {p:?})",
                heard.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    d.check(
        heard.first().is_some_and(|(_, p)| *p == greeting[0]),
        || "the caller's first packet is not the start of greeting-kassel".to_owned(),
    );
    expect_frames(&d, &heard, 0, &greeting, "greeting-kassel");
    let music_from = greeting.len();
    let Some(announced) = find_frame(&heard, &position[0], music_from) else {
        d.fail("the position prompt vanished from what the caller heard");
    };
    // Between the greeting and the announcement: the music from its start.
    let between: Vec<Vec<u8>> = (0..announced - music_from)
        .map(|i| moh[i % moh.len()].clone())
        .collect();
    expect_frames(
        &d,
        &heard,
        music_from,
        &between,
        "the music after the greeting",
    );
    let queued_for = frames_duration(&between);
    d.check(
        queued_for >= EVERY - Duration::from_millis(500)
            && queued_for <= EVERY + Duration::from_secs(2),
        || format!("the announcement came after {queued_for:?} of music, want about {EVERY:?}"),
    );
    // "Sie sind Anrufer Nummer eins. Ihre Wartezeit beträgt ..."
    let said: Vec<Vec<u8>> = [&position, &num_1, &wait_time]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    expect_frames(&d, &heard, announced, &said, "position, num-1, wait-time");
    // The minutes follow; then the music starts over.
    let Some(resumed) = music_again(&heard) else {
        d.fail("the music after the announcement vanished");
    };
    let rest = Duration::from_millis(20 * resumed.saturating_sub(announced + said.len()) as u64);
    d.check(rest <= Duration::from_secs(3), || {
        format!("{rest:?} passed between wait-time and the music: want only a number and `minutes`")
    });
    let tail = heard.len() - resumed;
    expect_frames(
        &d,
        &heard,
        resumed,
        &moh[..tail.min(moh.len())],
        "the music after the announcement",
    );
    expect_one_stream(&d, &heard, "greeting, music, announcement, music");

    let q = queue(&d, "kassel/115");
    d.check(q["waiting"] == 1, || {
        format!("after the announcement kassel/115 is {q}")
    });
    caller.hang_up(&d);
    wait_metric_eq(
        &d,
        "zentrale_queue_calls_abandoned_total{tenant=\"kassel\",queue=\"115\"}",
        1.0,
        SIP_WAIT,
    );
    wait_no_calls(&d, "after the announced caller hung up");
}

/// Kassel's 115 queue with `max_waiting: 1` and nobody logged in: the first
/// caller waits; the second hears the greeting, then `call-later` (its
/// `on_full` target) byte for byte, and gets zentrale's BYE when the prompt
/// ends; the rejection is counted as `full`; the first caller still waits
/// and, hanging up, is counted as abandoned.
#[test]
fn full_queue_sends_the_next_caller_to_call_later() {
    let d = start(
        &[],
        &[("kassel.yaml", "# max_waiting: 50", "max_waiting: 1")],
    );
    let waiting = "zentrale_queue_waiting{tenant=\"kassel\",queue=\"115\"}";
    let mut first = Caller::new(&d, "0561115").with_pts(&[8, 0, 101]);
    first.connect(&d);
    wait_metric_eq(&d, waiting, 1.0, GREETING_KASSEL + SIP_WAIT);

    let mut second = Caller::new(&d, "0561115").with_pts(&[8, 0, 101]);
    let ok = second.connect(&d);
    let answered = Instant::now();
    let (_, pts) = sdp_media(&d, &ok.body_str());
    let pt = pts[0];
    let greeting = prompt_frames(&d, "greeting-kassel", pt);
    let call_later = prompt_frames(&d, "call-later", pt);
    let played = frames_duration(&greeting) + frames_duration(&call_later);
    second.expect_bye(&d, played + Duration::from_secs(3));
    let after = answered.elapsed();
    d.check(after >= played - Duration::from_millis(500), || {
        format!("the rejected caller got the BYE {after:?} after the answer, before greeting and call-later ({played:?}) were over")
    });
    // The last packets may still be on their way when the BYE arrives.
    std::thread::sleep(Duration::from_millis(200));
    let heard = second.rtp.heard();
    let said: Vec<Vec<u8>> = greeting.iter().chain(&call_later).cloned().collect();
    expect_frames(&d, &heard, 0, &said, "greeting-kassel, call-later");
    expect_one_stream(&d, &heard, "greeting, call-later");

    let m = d.metrics();
    for (sample, want) in [
        (
            "zentrale_queue_calls_rejected_total{tenant=\"kassel\",queue=\"115\",reason=\"full\"}",
            1.0,
        ),
        (
            "zentrale_queue_calls_entered_total{tenant=\"kassel\",queue=\"115\"}",
            1.0,
        ),
        (waiting, 1.0),
    ] {
        let v = metric_value(&m, sample);
        d.check(v == Some(want), || {
            format!("with the second caller turned away {sample} is {v:?}, want {want}")
        });
    }
    first.hang_up(&d);
    wait_metric_eq(
        &d,
        "zentrale_queue_calls_abandoned_total{tenant=\"kassel\",queue=\"115\"}",
        1.0,
        SIP_WAIT,
    );
    wait_metric_eq(&d, waiting, 0.0, SIP_WAIT);
    wait_no_calls(&d, "after both callers");
}

// ---------------------------------------------------------------------------
// 12. Call records and the figures by origin
// ---------------------------------------------------------------------------

/// A wall-clock time of a call record.
fn record_time(d: &Daemon, r: &Value, key: &str) -> jiff::Timestamp {
    r[key]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| d.fail(format!("record key {key} is no timestamp: {r}")))
}

/// Seconds between two record times.
fn between(a: jiff::Timestamp, b: jiff::Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

/// A Kassel 115 call that rings 1001 for a second and talks for two
/// leaves exactly one call record when the agent hangs up: the origin, the
/// number dialled and its header, the masked caller, trunk, queue, agent,
/// times on the `--clock` wall clock that fit the call, wait and talk
/// seconds, `answered`, hung up by the agent. The origin families count it.
#[test]
fn an_answered_call_leaves_one_correct_call_record() {
    let d = start(&[CDR_ON, WRAP_UP_2S], &[]);
    let mut phone = Phone::registered(&d, "1001");
    wait_agent(&d, "1001", "available", SIP_WAIT);
    let mut caller = Caller::new(&d, "0561115").with_pts(&[8, 0, 101]);
    let sent = Instant::now();
    caller.connect(&d);
    let invite = phone.expect_offer(&d, GREETING_KASSEL + SIP_WAIT);
    phone.ring(&invite);
    std::thread::sleep(Duration::from_secs(1));
    phone.answer(&d, &invite);
    std::thread::sleep(Duration::from_secs(2));
    phone.hang_up(&d);
    caller.expect_bye(&d, SIP_WAIT);
    let took = sent.elapsed().as_secs_f64();

    let records = d.cdr_records(1, SIP_WAIT);
    // A second record (say, of the agent leg) would have come with the first.
    std::thread::sleep(Duration::from_millis(300));
    let records_later = d.cdr_records(1, Duration::ZERO);
    d.check(records.len() == 1 && records_later.len() == 1, || {
        format!("want exactly one call record, got {records_later:?}")
    });
    let r = &records[0];
    for (key, want) in [
        ("call_id", Value::from(caller.call_id.as_str())),
        ("tenant", "kassel".into()),
        ("hotline", "115".into()),
        ("municipality", "Kassel".into()),
        ("via", "115".into()),
        ("forwarded", false.into()),
        ("called", "0561115".into()),
        ("called_from", "request-uri".into()),
        ("handled_by", "kassel/115".into()),
        ("caller", "0301234xxx".into()),
        ("anonymous", false.into()),
        ("trunk", "demo-carrier".into()),
        ("queue", "kassel/115".into()),
        ("agent", "1001".into()),
        ("disposition", "answered".into()),
        ("hangup", "agent".into()),
        ("end_reason", "agent_hangup".into()),
    ] {
        d.check(r[key] == want, || {
            format!("call record {key} is {}, want {want}: {r}", r[key])
        });
    }
    for absent in ["menu", "closed", "overflow_cause", "overflow_target"] {
        d.check(r.get(absent).is_none(), || {
            format!("call record has {absent} for a plain call: {r}")
        });
    }
    // --clock: Monday 10:00 in Germany is 09:00 UTC, and the call is young.
    let start_at = record_time(&d, r, "start");
    let (answer, connect, end) = (
        record_time(&d, r, "answer"),
        record_time(&d, r, "connect"),
        record_time(&d, r, "end"),
    );
    d.check(
        r["start"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-11-23T09:00:")),
        || format!("call record start {} is not on the --clock", r["start"]),
    );
    let rang = between(start_at, answer);
    d.check((0.25..1.0).contains(&rang), || {
        format!("zentrale answered {rang} s after the INVITE, want its 0.3 s of ringing: {r}")
    });
    let to_agent = between(answer, connect);
    d.check((5.4..7.5).contains(&to_agent), || {
        format!("the agent answered {to_agent} s after zentrale: want greeting (4.5 s) and 1 s of ringing: {r}")
    });
    let talk = r["talk_secs"].as_f64().unwrap_or(-1.0);
    d.check(
        (1.9..3.5).contains(&talk) && (talk - between(connect, end)).abs() < 0.002,
        || {
            format!(
                "talk_secs {talk} for 2 s of talking (connect..end {}): {r}",
                between(connect, end)
            )
        },
    );
    let wait = r["wait_secs"].as_f64().unwrap_or(-1.0);
    d.check((0.9..3.0).contains(&wait), || {
        format!("wait_secs {wait}: the caller queued after the greeting and rang 1 s: {r}")
    });
    let duration = r["duration_secs"].as_f64().unwrap_or(-1.0);
    d.check(
        (duration - between(start_at, end)).abs() < 0.002 && duration <= took + 0.5,
        || format!("duration_secs {duration} for a call the caller saw take {took} s: {r}"),
    );

    let m = d.metrics();
    let origin = "tenant=\"kassel\",hotline=\"115\",municipality=\"Kassel\",via=\"115\"";
    for (sample, want) in [
        (format!("zentrale_origin_calls_offered_total{{{origin}}}"), 1.0),
        (
            format!("zentrale_origin_calls_ended_total{{{origin},disposition=\"answered\"}}"),
            1.0,
        ),
        (
            "zentrale_queue_origin_calls_answered_total{tenant=\"kassel\",queue=\"115\",municipality=\"Kassel\",via=\"115\"}".to_owned(),
            1.0,
        ),
        ("zentrale_cdr_records_total{result=\"written\"}".to_owned(), 1.0),
    ] {
        let v = metric_value(&m, &sample);
        d.check(v == Some(want), || format!("{sample} is {v:?}, want {want}"));
    }
    wait_no_calls(&d, "after the recorded call");
}

//! The dialplan core wired into the daemon, end to end: service hours on a
//! set clock, the Krefeld IVR menu with RFC 4733 and SIP INFO keys, surge
//! limits, `check --clock`, and live reload under load.
//!
//! Raw-socket callers and phones like tests/acd.rs (a trimmed copy of its
//! helpers: the caller sends keys, the phone only needs its offer), SIPp
//! for the load. Every daemon runs on a clock the test sets (`--clock`).

mod common;

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Length of sounds/greeting-kassel.wav.
const GREETING_KASSEL: Duration = Duration::from_millis(4500);
/// Length of sounds/closed-kassel.wav.
const CLOSED_KASSEL: Duration = Duration::from_millis(10_700);
/// Length of sounds/greeting-quickborn.wav.
const GREETING_QUICKBORN: Duration = Duration::from_millis(2500);
/// Length of sounds/greeting-kreis-pinneberg.wav.
const GREETING_PINNEBERG: Duration = Duration::from_millis(5000);
/// Length of sounds/greeting-krefeld.wav (the menu starts after it).
const GREETING_KREFELD: Duration = Duration::from_millis(3200);
/// Length of sounds/call-later.wav (the default busy target).
const CALL_LATER: Duration = Duration::from_millis(6650);

/// Sunday 2026-11-22, 10:00 in Germany: Kassel's 115 is closed.
const SUNDAY_MORNING: &str = "2026-11-22T10:00:00+01:00";

// ---------------------------------------------------------------------------
// A daemon with edited dialplans it can reload
// ---------------------------------------------------------------------------

/// A daemon running on copies of demo dialplans (so a test can rewrite
/// them and reload).
struct PlanDaemon {
    d: Daemon,
    dialplans: TempDir,
}

impl std::ops::Deref for PlanDaemon {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.d
    }
}

impl PlanDaemon {
    /// The copy of `dialplans/<file>` the daemon reads.
    fn dialplan(&self, file: &str) -> PathBuf {
        self.dialplans.path().join(file)
    }
}

/// Starts the daemon at `clock` with copies of `files` from dialplans/,
/// each with its `(from, to)` edits.
fn start(clock: &str, files: &[(&str, &[(&str, &str)])]) -> PlanDaemon {
    start_edited(clock, files, &[])
}

/// Like [`start`], with `(from, to)` edits to zentrale.yaml too.
fn start_edited(
    clock: &str,
    files: &[(&str, &[(&str, &str)])],
    main: &[(&str, &str)],
) -> PlanDaemon {
    let dialplans = TempDir::new("dialplans");
    let mut edits: Vec<(String, String)> = main
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    for (file, changes) in files {
        let src = repo().join("dialplans").join(file);
        let mut text =
            fs::read_to_string(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
        for (from, to) in *changes {
            text = replace_once(&text, from, to, &src);
        }
        let copy = dialplans.path().join(file);
        fs::write(&copy, text).expect("writing the edited dialplan");
        edits.push((
            format!("dialplan: dialplans/{file}"),
            format!("dialplan: {}", copy.display()),
        ));
    }
    let d = Daemon::start_with(Options {
        clock: Some(clock.to_owned()),
        edits,
        ..Options::default()
    });
    PlanDaemon { d, dialplans }
}

fn metric(d: &Daemon, sample: &str) -> f64 {
    metric_value(&d.metrics(), sample).unwrap_or(0.0)
}

fn wait_no_calls(d: &Daemon, what: &str) {
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(5), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} {what}")
    });
}

/// One HTTP/1.1 POST without a body, with the demo token: (status, body).
fn http_post(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    http_request(addr, "POST", path, DEMO_AUTH, None).map(|r| (r.status, r.text()))
}

fn sighup(d: &Daemon) {
    let status = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .expect("running kill -HUP");
    assert!(status.success(), "kill -HUP {} failed", d.pid());
}

// ---------------------------------------------------------------------------
// Service hours
// ---------------------------------------------------------------------------

/// On a Sunday Kassel's 115 is closed: the caller is answered, hears the
/// greeting and `closed-kassel`, and zentrale hangs up; counted as closed.
#[test]
fn out_of_hours_caller_hears_the_closed_prompt_and_gets_a_bye() {
    let d = start(SUNDAY_MORNING, &[]);
    let mut caller = Caller::new(&d, "0561115");
    let ok = caller.call(&d);
    d.check(ok.status() == Some(200), || {
        format!("the closed hotline answered {}, want 200", ok.start)
    });
    let answered = Instant::now();
    let (_, bye_at) = caller.expect_bye(&d, GREETING_KASSEL + CLOSED_KASSEL + SIP_WAIT);
    let after = bye_at - answered;
    let prompts = GREETING_KASSEL + CLOSED_KASSEL;
    d.check(
        after + Duration::from_millis(800) >= prompts,
        || format!("BYE {after:?} after the answer: before greeting and closed prompt ({prompts:?}) were over"),
    );
    let heard = caller.rtp.got().len();
    d.check(heard >= 100, || {
        format!("the caller got only {heard} RTP packets in {after:?}: no prompt played")
    });
    let closed = metric(
        &d,
        "zentrale_calls_closed_total{tenant=\"kassel\",hotline=\"115\",reason=\"outside_hours\"}",
    );
    d.check(closed == 1.0, || {
        format!("zentrale_calls_closed_total for kassel/115 is {closed}, want 1")
    });
    let entered = metric(
        &d,
        "zentrale_queue_calls_entered_total{tenant=\"kassel\",queue=\"115\"}",
    );
    d.check(entered == 0.0, || {
        format!("a closed-hours caller entered kassel/115 ({entered})")
    });
    wait_no_calls(&d, "after the closed call");
}

/// `check --clock` says which hotlines are open at that instant.
#[test]
fn check_with_a_clock_lists_open_and_closed_hotlines() {
    let run = |clock: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_zentrale"))
            .args(["check", "--config"])
            .arg(repo().join("zentrale.yaml"))
            .args(["--clock", clock])
            .output()
            .expect("running zentrale check");
        assert!(
            out.status.success(),
            "zentrale check --clock {clock} failed: {out:?}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let evening = run("2026-11-23T18:01:00+01:00");
    assert!(
        evening.contains("kassel/115: closed (OutsideHours), reopens 2026-11-24T06:00:00Z"),
        "Monday 18:01 should close Kassel's 115 until Tuesday 07:00:\n{evening}"
    );
    let morning = run(WEEKDAY_MORNING);
    assert!(
        morning.contains("kassel/115: open\n") && morning.contains("krefeld/serviceportal: open\n"),
        "Monday 10:00 should open Kassel's 115 and Krefeld:\n{morning}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .args(["check", "--clock", "next monday"])
        .output()
        .expect("running zentrale check");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("2026-11-23T10:00:00+01:00"),
        "a bad --clock should fail with an example: {err}"
    );
}

// ---------------------------------------------------------------------------
// Origin and overflow
// ---------------------------------------------------------------------------

/// Monday 13:00 Quickborn's town hall is closed and the district open: the
/// caller goes to kreis-pinneberg/115 at once (`overflow.when_closed`), the
/// district agent sees Quickborn, and it counts as Quickborn's overflow.
#[test]
fn closed_town_hall_overflows_to_the_district_in_its_name() {
    let d = start("2026-11-23T13:00:00+01:00", &[]);
    let district = Phone::registered(&d, "3001");
    let mut caller = Caller::new(&d, "041066110");
    caller.call(&d);
    let Some(invite) = district.offer(GREETING_QUICKBORN + SIP_WAIT) else {
        d.fail("the district agent 3001 got no offer for the closed town hall's caller");
    };
    let queue = invite.header("x-zentrale-queue").unwrap_or_default();
    let from = invite.header("from").unwrap_or_default();
    let origin = invite.header("x-zentrale-origin").unwrap_or_default();
    d.check(
        queue == "kreis-pinneberg/115"
            && from.starts_with("\"Quickborn\"")
            && origin == "quickborn/rathaus;municipality=\"Quickborn\";via=local",
        || format!("the offer has X-Zentrale-Queue {queue:?}, From {from:?}, X-Zentrale-Origin {origin:?}"),
    );
    let overflow = metric(
        &d,
        "zentrale_overflow_total{from_municipality=\"Quickborn\",target=\"kreis-pinneberg/115\"}",
    );
    d.check(overflow == 1.0, || {
        format!("Quickborn's overflow counted {overflow} times, want 1")
    });
    let closed = metric(
        &d,
        "zentrale_calls_closed_total{tenant=\"quickborn\",hotline=\"rathaus\",reason=\"outside_hours\"}",
    );
    d.check(closed == 0.0, || {
        format!("an overflowed call also counted as closed ({closed})")
    });
    caller.hang_up(&d);
}

#[test]
fn town_hall_caller_facing_a_long_expected_wait_overflows_at_once() {
    // The town hall's only agent is busy with a ringing call: with the
    // default handle time (3 min) the next caller would wait longer than
    // the 60 s this copy allows, so it goes to the district straight after
    // its greeting instead of ringing the town hall for 20 s.
    let d = start(
        WEEKDAY_MORNING,
        &[(
            "quickborn.yaml",
            &[(
                "when_no_agents: true       # nobody of the town hall logged in",
                "when_no_agents: true\n      when_expected_wait_over_secs: 60",
            )],
        )],
    );
    let town_hall = Phone::registered(&d, "4001");
    let district = Phone::registered(&d, "3001");
    let mut first = Caller::new(&d, "041066110");
    first.call(&d);
    if town_hall.offer(GREETING_QUICKBORN + SIP_WAIT).is_none() {
        d.fail("the town-hall agent 4001 got no offer for the first caller");
    }
    let rings_since = Instant::now();
    let mut second = Caller::new(&d, "041066110");
    second.call(&d);
    let Some(invite) = district.offer(GREETING_QUICKBORN + SIP_WAIT) else {
        d.fail("the district agent 3001 got no offer for the caller facing a long wait");
    };
    d.check(rings_since.elapsed() < Duration::from_secs(15), || {
        format!(
            "the district's offer came {:?} after the first caller's: that is the 20 s overflow, not the expected wait",
            rings_since.elapsed()
        )
    });
    let (queue, origin) = (
        invite.header("x-zentrale-queue").unwrap_or_default(),
        invite.header("x-zentrale-origin").unwrap_or_default(),
    );
    d.check(
        queue == "kreis-pinneberg/115"
            && origin.starts_with("quickborn/rathaus;municipality=\"Quickborn\""),
        || format!("the offer has X-Zentrale-Queue {queue:?}, X-Zentrale-Origin {origin:?}"),
    );
    let overflow = metric(
        &d,
        "zentrale_overflow_total{from_municipality=\"Quickborn\",target=\"kreis-pinneberg/115\"}",
    );
    d.check(overflow == 1.0, || {
        format!("Quickborn's overflow counted {overflow} times, want 1 (the second caller only)")
    });
    second.hang_up(&d);
    first.hang_up(&d);
}

/// The town hall's PBX forwards a caller who withholds the number to the
/// district's 115 (`Diversion` names the town hall): the agent sees
/// Quickborn and `anonymous`, the origin says forwarded, and the number is
/// nowhere in the log.
#[test]
fn forwarded_withheld_caller_keeps_origin_and_privacy() {
    let d = start(WEEKDAY_MORNING, &[]);
    let district = Phone::registered(&d, "3001");
    let mut caller = Caller::new(&d, "04101115")
        .with_header("Diversion: <sip:041066110@127.0.0.10>;reason=no-answer;counter=1")
        .with_header("Privacy: id")
        .with_header("P-Asserted-Identity: <sip:+4930555123@127.0.0.20>");
    caller.call(&d);
    let Some(invite) = district.offer(GREETING_PINNEBERG + SIP_WAIT) else {
        d.fail("the district agent 3001 got no offer for the forwarded caller");
    };
    let from = invite.header("from").unwrap_or_default();
    let origin = invite.header("x-zentrale-origin").unwrap_or_default();
    d.check(
        from.starts_with("\"Quickborn\" <sip:anonymous@")
            && origin.ends_with(";via=local;forwarded")
            && origin.starts_with("quickborn/rathaus;"),
        || format!("the offer has From {from:?} and X-Zentrale-Origin {origin:?}"),
    );
    caller.hang_up(&d);
    let log = d.log_tail(200);
    d.check(
        !log.contains("4930555123") && !log.contains("0301234567") && !log.contains("0301234"),
        || "the withheld caller's number is in the log".to_owned(),
    );
}

/// The caller's number and the parts of it a leak would show.
const WITHHELD: [&str; 4] = ["0301234567", "301234567", "4930555123", "30555123"];

/// The digits of `text` that give away a withheld number, if any.
fn leaked(text: &str) -> Option<&'static str> {
    WITHHELD.into_iter().find(|n| text.contains(n))
}

/// A caller who withholds the number (`Privacy: id`; its From and the
/// carrier's P-Asserted-Identity still carry numbers): the agent's INVITE
/// has it in no header and not in the body, and its call record has no
/// `caller` key, even with `caller_number: full`, while the record of the
/// next caller, who does not withhold it, has the whole number. Neither the
/// log nor `/metrics` shows the withheld one.
#[test]
fn a_withheld_number_reaches_neither_the_agent_leg_nor_the_call_record() {
    let d = start_edited(WEEKDAY_MORNING, &[], &[CDR_ON, CDR_FULL_NUMBERS]);
    let agent = Phone::registered(&d, "1001");
    let mut withheld = Caller::new(&d, "0561115")
        .with_header("Privacy: id")
        .with_header("P-Asserted-Identity: <sip:+4930555123@127.0.0.20>");
    withheld.call(&d);
    let Some(invite) = agent.offer(GREETING_KASSEL + SIP_WAIT) else {
        d.fail("agent 1001 got no offer for the withheld caller");
    };
    let mut leg = invite.start.clone();
    for (name, value) in &invite.headers {
        let _ = write!(leg, "\n{name}: {value}");
    }
    leg.push_str(&invite.body_str());
    d.check(leaked(&leg).is_none(), || {
        format!("the agent leg carries the withheld number:\n{leg}")
    });
    let from = invite.header("from").unwrap_or_default();
    d.check(from.starts_with("\"Kassel 115\" <sip:anonymous@"), || {
        format!("the agent sees From {from:?}, want Kassel 115 and anonymous")
    });
    withheld.hang_up(&d);

    let mut open = Caller::new(&d, "0561115");
    open.call(&d);
    std::thread::sleep(Duration::from_millis(500));
    open.hang_up(&d);

    let records = d.cdr_records(2, SIP_WAIT);
    d.check(records.len() == 2, || {
        format!("want two call records, got {records:?}")
    });
    let by_call = |id: &str| {
        records
            .iter()
            .find(|r| r["call_id"] == id)
            .unwrap_or_else(|| d.fail(format!("no record of call {id}: {records:?}")))
    };
    let r = by_call(&withheld.call_id);
    let line = r.to_string();
    d.check(
        r.get("caller").is_none() && r["anonymous"] == true && leaked(&line).is_none(),
        || format!("the withheld caller's record: {line}"),
    );
    d.check(r["disposition"] == "abandoned", || {
        format!("the withheld caller hung up while 1001 rang: {line}")
    });
    let r = by_call(&open.call_id);
    d.check(
        r["caller"] == "0301234567" && r["anonymous"] == false,
        || format!("with caller_number: full the open caller's record has its number: {r}"),
    );
    d.check(r["disposition"] == "left_in_greeting", || {
        format!("the open caller hung up during the greeting: {r}")
    });

    let log = d.log_tail(100_000);
    d.check(
        !log.contains("4930555123") && !log.contains("30555123"),
        || "the number of the withheld caller's P-Asserted-Identity is in the log".to_owned(),
    );
    let metrics = d.metrics();
    d.check(leaked(&metrics).is_none(), || {
        "a caller number is in /metrics".to_owned()
    });
}

/// Log rotation: the record file is renamed and zentrale gets a SIGHUP;
/// the next call's record goes to a new file at the configured path, the
/// earlier one stays in the renamed file.
#[test]
fn sighup_reopens_the_call_record_file() {
    let d = start_edited(WEEKDAY_MORNING, &[], &[CDR_ON]);
    let mut first = Caller::new(&d, "0561115");
    first.call(&d);
    first.hang_up(&d);
    d.cdr_records(1, SIP_WAIT);
    let path = d.dir.path().join("cdr.jsonl");
    let rotated = d.dir.path().join("cdr.jsonl.1");
    fs::rename(&path, &rotated).expect("rotating the call record file");
    sighup(&d);
    let reloaded = d.wait_metric(
        "zentrale_config_reloads_total{result=\"ok\"}",
        Duration::from_secs(5),
        |v| v >= 1.0,
    );
    d.check(reloaded == 1.0, || {
        format!("the SIGHUP reload counted {reloaded}")
    });
    let mut second = Caller::new(&d, "0561115");
    second.call(&d);
    second.hang_up(&d);
    let now = d.cdr_records(1, SIP_WAIT);
    let old = fs::read_to_string(&rotated).unwrap_or_default();
    d.check(
        now.len() == 1 && now[0]["call_id"] == second.call_id.as_str(),
        || format!("after the SIGHUP the new file holds {now:?}, want the second call only"),
    );
    d.check(
        old.lines().count() == 1 && old.contains(&first.call_id),
        || format!("the rotated file holds {old:?}, want the first call only"),
    );
}

// ---------------------------------------------------------------------------
// The Krefeld menu
// ---------------------------------------------------------------------------

/// The caller presses 1 (RFC 4733) during Krefeld's menu and reaches a
/// `kfz` agent (2001), not the `meldewesen` one (2004), announced as Krefeld.
#[test]
fn krefeld_caller_pressing_1_reaches_a_kfz_agent() {
    let d = start(WEEKDAY_MORNING, &[]);
    let kfz = Phone::registered(&d, "2001");
    let melde = Phone::registered(&d, "2004");
    let mut caller = Caller::new(&d, "02151860");
    let ok = caller.call(&d);
    d.check(ok.status() == Some(200), || {
        format!("Krefeld answered {}, want 200", ok.start)
    });
    std::thread::sleep(GREETING_KREFELD + Duration::from_millis(800));
    caller.press_rtp(1);
    let Some(invite) = kfz.offer(SIP_WAIT) else {
        d.fail("the kfz agent 2001 got no offer after the caller pressed 1");
    };
    let queue = invite.header("x-zentrale-queue").unwrap_or_default();
    let from = invite.header("from").unwrap_or_default();
    let origin = invite.header("x-zentrale-origin").unwrap_or_default();
    d.check(
        queue == "krefeld/kfz" && from.starts_with("\"Krefeld\"") && origin.starts_with("krefeld/serviceportal;"),
        || format!("the offer has X-Zentrale-Queue {queue:?}, From {from:?}, X-Zentrale-Origin {origin:?}"),
    );
    d.check(melde.offer(Duration::from_millis(500)).is_none(), || {
        "the meldewesen agent 2004 was offered a kfz call".to_owned()
    });
    let chose = metric(
        &d,
        "zentrale_menu_choices_total{tenant=\"krefeld\",hotline=\"serviceportal\",choice=\"1\"}",
    );
    d.check(chose == 1.0, || {
        format!("menu choice 1 counted {chose} times")
    });
    caller.hang_up(&d);
}

/// The same menu by SIP INFO: 2 leads to `meldewesen` (agent 2004).
#[test]
fn krefeld_menu_takes_sip_info_keys() {
    let d = start(WEEKDAY_MORNING, &[]);
    let kfz = Phone::registered(&d, "2001");
    let melde = Phone::registered(&d, "2004");
    let mut caller = Caller::new(&d, "02151860");
    caller.call(&d);
    std::thread::sleep(GREETING_KREFELD + Duration::from_millis(800));
    caller.press_info(&d, '2');
    let Some(invite) = melde.offer(SIP_WAIT) else {
        d.fail("the meldewesen agent 2004 got no offer after INFO 2");
    };
    let queue = invite.header("x-zentrale-queue").unwrap_or_default();
    d.check(queue == "krefeld/meldewesen", || {
        format!("the offer after INFO 2 has X-Zentrale-Queue {queue:?}")
    });
    d.check(kfz.offer(Duration::from_millis(500)).is_none(), || {
        "the kfz agent 2001 was offered a meldewesen call".to_owned()
    });
    caller.hang_up(&d);
}

/// The caller offers PCMA (the harness's A-law encoder matches zentrale's
/// byte for byte, see `prompt_frames`) and keys; the frames of the Krefeld
/// prompts as it hears them.
struct KrefeldPrompts {
    greeting: Vec<Vec<u8>>,
    menu: Vec<Vec<u8>>,
    invalid: Vec<Vec<u8>>,
}

impl KrefeldPrompts {
    fn new(d: &Daemon) -> KrefeldPrompts {
        KrefeldPrompts {
            greeting: prompt_frames(d, "greeting-krefeld", 8),
            menu: prompt_frames(d, "menu-krefeld", 8),
            invalid: prompt_frames(d, "invalid-input", 8),
        }
    }
}

/// A PCMA caller of Krefeld's Serviceportal, answered.
fn krefeld_caller(d: &Daemon) -> Caller {
    let mut caller = Caller::new(d, "02151860").with_pts(&[8, 101]);
    let ok = caller.call(d);
    let pts = sdp_audio(&ok.body_str()).map(|(_, _, pts)| pts);
    d.check(pts.as_deref().and_then(|p| p.first()) == Some(&8), || {
        format!("Krefeld answered the PCMA caller with payload types {pts:?}")
    });
    caller
}

/// Where the menu prompt starts after the greeting; fails unless the
/// caller heard the whole greeting first and the menu right after it (a
/// few frames of silence between are the media worker's tick).
fn menu_after_greeting(d: &Daemon, heard: &[(Pkt, Vec<u8>)], p: &KrefeldPrompts) -> usize {
    expect_frames(d, heard, 0, &p.greeting, "greeting-krefeld");
    let Some(at) = find_frame(heard, &p.menu[0], p.greeting.len()) else {
        d.fail(format!(
            "the caller never heard menu-krefeld after the greeting ({} packets)",
            heard.len()
        ));
    };
    d.check(at - p.greeting.len() <= 5, || {
        format!(
            "menu-krefeld started {} frames after the greeting",
            at - p.greeting.len()
        )
    });
    at
}

/// Playing time of `n` packets of 20 ms.
fn packets(n: usize) -> Duration {
    Duration::from_millis(20 * n as u64)
}

// The menu's timeout and its retry, with the call record, run on the
// virtual network (src/harness/tests/routing.rs); the tests here prove the
// prompts byte for byte on the caller's RTP.

/// The caller presses 9, which the menu does not know, while the prompt
/// plays (RFC 4733): the prompt stops, `invalid-input` plays, then the menu
/// from its start; no offer yet (`retries: 1`). A second 9 (SIP INFO)
/// is past the retry limit: the call goes to the default queue at once,
/// without another invalid prompt, and counts as `invalid`.
#[test]
fn krefeld_invalid_keys_hear_the_invalid_prompt_then_reach_the_default() {
    let d = start(WEEKDAY_MORNING, &[]);
    let agent = Phone::registered(&d, "2004");
    let p = KrefeldPrompts::new(&d);
    let mut caller = krefeld_caller(&d);
    // The menu has started: press 9 a second into it.
    let limit = frames_duration(&p.greeting) + SIP_WAIT;
    let until = Instant::now() + limit;
    while find_frame(&caller.rtp.heard(), &p.menu[0], 0).is_none() {
        if Instant::now() >= until {
            d.fail(format!("menu-krefeld did not start within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    caller.press_rtp(9);
    // invalid-input, then the menu again from its start.
    let replay = |heard: &[(Pkt, Vec<u8>)]| {
        let i = find_frame(heard, &p.invalid[0], 0)?;
        let m = find_frame(heard, &p.menu[0], i)?;
        // A few frames into the replay, so it is known to run.
        (heard.len() > m + 10).then_some((i, m))
    };
    let limit = frames_duration(&p.invalid) + SIP_WAIT;
    let until = Instant::now() + limit;
    let (invalid_at, replay_at) = loop {
        if let Some(found) = replay(&caller.rtp.heard()) {
            break found;
        }
        if Instant::now() >= until {
            d.fail(format!(
                "within {limit:?} of the key 9 the caller did not hear invalid-input and the menu again"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let heard = caller.rtp.heard();
    let first = menu_after_greeting(&d, &heard, &p);
    let played = invalid_at - first;
    d.check(played < p.menu.len() && packets(invalid_at - first) < Duration::from_secs(3), || {
        format!("the key 9 a second into the menu did not cut it short: {played} of {} frames played", p.menu.len())
    });
    expect_frames(
        &d,
        &heard,
        first,
        &p.menu[..played.min(40)],
        "the start of menu-krefeld",
    );
    expect_frames(&d, &heard, invalid_at, &p.invalid, "invalid-input");
    d.check(replay_at == invalid_at + p.invalid.len(), || {
        format!(
            "the menu's replay starts {} frames after invalid-input ends, want right after it",
            replay_at as i64 - (invalid_at + p.invalid.len()) as i64
        )
    });
    d.check(agent.offer(Duration::from_millis(300)).is_none(), || {
        "the first invalid key already sent the call on; retries: 1 allows one more try".to_owned()
    });

    caller.press_info(&d, '9');
    let pressed = Instant::now();
    let Some(invite) = agent.offer(SIP_WAIT) else {
        d.fail("no offer after the second invalid key");
    };
    let after = pressed.elapsed();
    d.check(after < Duration::from_secs(2), || {
        format!("the offer came {after:?} after the second key: it should not wait for a timeout")
    });
    let queue = invite.header("x-zentrale-queue").unwrap_or_default();
    d.check(queue == "krefeld/serviceportal", || {
        format!(
            "after too many invalid keys the offer is for {queue:?}, want krefeld/serviceportal"
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let heard = caller.rtp.heard();
    d.check(
        find_frame(&heard, &p.invalid[0], invalid_at + p.invalid.len()).is_none(),
        || "the key past the retry limit played invalid-input again".to_owned(),
    );
    let chose = metric(
        &d,
        "zentrale_menu_choices_total{tenant=\"krefeld\",hotline=\"serviceportal\",choice=\"invalid\"}",
    );
    d.check(chose == 1.0, || {
        format!("menu choice invalid counted {chose} times")
    });
    caller.hang_up(&d);
}

// ---------------------------------------------------------------------------
// Surge limits
// ---------------------------------------------------------------------------

/// Krefeld limited to one call: the second caller is answered, hears
/// `call-later` without a greeting, and zentrale hangs up.
#[test]
fn past_max_calls_the_caller_hears_call_later_and_is_hung_up() {
    let d = start(
        WEEKDAY_MORNING,
        &[("krefeld.yaml", &[("max_calls: 80", "max_calls: 1")])],
    );
    let mut first = Caller::new(&d, "02151860");
    first.call(&d);
    let mut second = Caller::new(&d, "02151860");
    let ok = second.call(&d);
    d.check(ok.status() == Some(200), || {
        format!(
            "the call past the limit was answered {}, want 200 (never a failed call)",
            ok.start
        )
    });
    let answered = Instant::now();
    let (_, bye_at) = second.expect_bye(&d, CALL_LATER + SIP_WAIT);
    let after = bye_at - answered;
    d.check(
        after + Duration::from_millis(800) >= CALL_LATER && after < CALL_LATER + Duration::from_secs(2),
        || format!("the busy caller was hung up {after:?} after the answer, want right after call-later ({CALL_LATER:?})"),
    );
    let rejected = metric(
        &d,
        "zentrale_surge_rejected_total{tenant=\"krefeld\",reason=\"max_calls\"}",
    );
    d.check(rejected == 1.0, || {
        format!("zentrale_surge_rejected_total is {rejected}, want 1")
    });
    first.hang_up(&d);
    wait_no_calls(&d, "after both calls");
}

// ---------------------------------------------------------------------------
// Live reload
// ---------------------------------------------------------------------------

/// SIPp calls Kassel at 4 calls/s while a SIGHUP reloads a changed greeting
/// and ring time: no call fails. New calls ring the new time. Then a broken
/// dialplan is refused (422 with file:line:col, and by SIGHUP) and the
/// daemon keeps taking calls.
#[test]
fn reload_under_load_loses_no_call() {
    require_sipp();
    let d = start(WEEKDAY_MORNING, &[("kassel.yaml", &[])]);
    let kassel = d.dialplan("kassel.yaml");
    let original = fs::read_to_string(&kassel).expect("reading the kassel copy");
    let changed = replace_once(
        &replace_once(
            &original,
            "    greeting: greeting-kassel\n",
            "    greeting: greeting-kassel-buergeramt\n",
            &kassel,
        ),
        "    answer_after_ms: 300\n    queue: \"115\"",
        "    answer_after_ms: 1500\n    queue: \"115\"",
        &kassel,
    );
    let run = std::thread::scope(|s| {
        let load = s.spawn(|| {
            sipp(
                &d,
                "uac_call",
                &["-s", "0561115", "-m", "20", "-r", "4"],
                Duration::from_secs(60),
            )
        });
        std::thread::sleep(Duration::from_millis(2500));
        fs::write(&kassel, &changed).expect("writing the changed dialplan");
        sighup(&d);
        load.join().expect("the SIPp thread")
    });
    d.check(run.ok() && run.successful == 20, || {
        format!("calls failed around the reload:\n{}", run.report)
    });
    let reloaded = metric(&d, "zentrale_config_reloads_total{result=\"ok\"}");
    d.check(reloaded == 1.0, || {
        format!("zentrale_config_reloads_total{{result=\"ok\"}} is {reloaded}, want 1")
    });

    // New calls follow the new dialplan: 1.5 s of ringing now.
    let mut caller = Caller::new(&d, "0561115");
    let sent = Instant::now();
    caller.call(&d);
    let rang = sent.elapsed();
    d.check(rang >= Duration::from_millis(1400), || {
        format!("a call after the reload was answered after {rang:?}, want the new 1.5 s")
    });
    caller.hang_up(&d);

    // A broken dialplan is refused with its position; the old one stays.
    fs::write(
        &kassel,
        changed.replace("answer_after_ms: 1500", "answer_after_ms: soon"),
    )
    .expect("writing the broken dialplan");
    let (status, body) =
        http_post(d.http, "/api/v1/reload").unwrap_or_else(|e| d.fail(format!("POST reload: {e}")));
    let line = changed
        .lines()
        .position(|l| l.contains("answer_after_ms: 1500"))
        .map_or(0, |i| i + 1);
    d.check(
        status == 422
            && body.contains(&format!("kassel.yaml:{line}:"))
            && body.contains("whole number"),
        || format!("reloading a broken dialplan (line {line}) answered {status}: {body}"),
    );
    sighup(&d);
    let refused = d.wait_metric(
        "zentrale_config_reloads_total{result=\"rejected\"}",
        Duration::from_secs(5),
        |v| v >= 2.0,
    );
    d.check(refused == 2.0, || {
        format!("zentrale_config_reloads_total{{result=\"rejected\"}} is {refused}, want 2")
    });
    let after = sipp(
        &d,
        "uac_call",
        &["-s", "0561115", "-m", "2", "-r", "2"],
        Duration::from_secs(30),
    );
    d.check(after.ok() && after.successful == 2, || {
        format!("calls after the refused reload failed:\n{}", after.report)
    });
    let mut caller = Caller::new(&d, "0561115");
    let sent = Instant::now();
    caller.call(&d);
    let rang = sent.elapsed();
    d.check(rang >= Duration::from_millis(1400), || {
        format!("after the refused reload a call rang {rang:?}: the good config should still run (1.5 s)")
    });
    caller.hang_up(&d);
    wait_no_calls(&d, "after the reload test");
}

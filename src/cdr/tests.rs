//! Records built from facts, against the demo dialplans.

use std::path::Path;

use jiff::Timestamp;
use serde_json::Value;

use super::*;
use crate::config::{Config, Overrides};
use crate::dialplan::{CallInput, Decision, Dialplan, SipHeaders};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Tuesday 2026-11-24 at `hhmmss` UTC (10:00 in Germany at 09:00:00).
fn at(hhmmss: &str) -> Timestamp {
    t(&format!("2026-11-24T{hhmmss}Z"))
}

fn dialplan() -> Dialplan {
    let config = Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml"),
        &Overrides::default(),
    )
    .unwrap();
    config.dialplan()
}

fn route(input: &CallInput) -> CallRoute {
    match dialplan().decide(input, at("09:00:00")) {
        Decision::Hotline(r) => r,
        other => panic!("{other:?}"),
    }
}

fn json(record: &CallRecord) -> Value {
    serde_json::to_value(record).unwrap()
}

#[test]
fn an_answered_call_has_its_origin_times_agent_and_masked_caller() {
    let input = CallInput::from_sip(&SipHeaders {
        request_uri: "sip:0561115@zentrale",
        to: "<sip:0561115@zentrale>",
        from: "<sip:05617870123@carrier>;tag=1",
        ..SipHeaders::default()
    });
    let route = route(&input);
    let mut f = CallFacts::new("c-1", at("09:00:00"), input.caller.clone());
    f.trunk = Some("demo-carrier".into());
    f.answered(at("09:00:00.300"));
    f.queued("kassel/115", at("09:00:04.800"));
    f.connected("1001", at("09:00:30"));
    let r = CallRecord::build(
        &f,
        &route,
        at("09:02:30.5"),
        EndReason::CallerHangup,
        CallerNumbers::Masked,
    );
    let want = serde_json::json!({
        "call_id": "c-1",
        "start": "2026-11-24T09:00:00.000Z",
        "answer": "2026-11-24T09:00:00.300Z",
        "connect": "2026-11-24T09:00:30.000Z",
        "end": "2026-11-24T09:02:30.500Z",
        "tenant": "kassel",
        "hotline": "115",
        "municipality": "Kassel",
        "via": "115",
        "forwarded": false,
        "called": "0561115",
        "called_from": "request-uri",
        "handled_by": "kassel/115",
        "caller": "05617870xxx",
        "anonymous": false,
        "trunk": "demo-carrier",
        "queue": "kassel/115",
        "agent": "1001",
        "wait_secs": 25.2,
        "talk_secs": 120.5,
        "duration_secs": 150.5,
        "disposition": "answered",
        "hangup": "caller",
        "end_reason": "caller_hangup",
    });
    assert_eq!(json(&r), want);
    let full = CallRecord::build(
        &f,
        &route,
        at("09:02:30.5"),
        EndReason::AgentHangup,
        CallerNumbers::Full,
    );
    assert_eq!(full.caller.as_deref(), Some("05617870123"));
    assert_eq!(full.hangup, HangupSide::Agent);
}

/// A withheld number (Privacy: id, the real one only in P-Asserted-Identity)
/// is in no key and nowhere in the line, whatever `caller_number` says.
#[test]
fn an_anonymous_callers_record_has_no_number_at_all() {
    for from in [
        "<sip:+4930555123@carrier>;tag=1",
        "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1",
    ] {
        let input = CallInput::from_sip(&SipHeaders {
            request_uri: "sip:115@zentrale",
            to: "<sip:115@zentrale>",
            from,
            privacy: &["id"],
            p_asserted_identity: &["<sip:+4930555123@carrier>"],
            ..SipHeaders::default()
        });
        let route = route(&input);
        let mut f = CallFacts::new("c-2", at("09:00:00"), input.caller.clone());
        f.answered(at("09:00:00.300"));
        f.queued("kassel/115", at("09:00:04.800"));
        for numbers in [CallerNumbers::Masked, CallerNumbers::Full] {
            let r = CallRecord::build(&f, &route, at("09:00:40"), EndReason::CallerHangup, numbers);
            let line = serde_json::to_string(&r).unwrap();
            let v = json(&r);
            assert!(v.get("caller").is_none(), "{line}");
            assert_eq!(v["anonymous"], true, "{line}");
            assert!(!line.contains("555123") && !line.contains("4930"), "{line}");
            assert_eq!(v["disposition"], "abandoned");
            assert_eq!(v["wait_secs"], 35.2);
        }
    }
}

/// Quickborn's PBX forwards to the district's 115: the record counts the
/// call for Quickborn (dialled 041066110, from Diversion), handled by the
/// district.
#[test]
fn a_forwarded_call_keeps_the_number_dialled_and_where_it_came_from() {
    let input = CallInput::from_sip(&SipHeaders {
        request_uri: "sip:04101115@zentrale",
        to: "<sip:04101115@zentrale>",
        from: "<sip:05617870123@carrier>;tag=1",
        diversion: &["<sip:+4941066110@pbx>;reason=no-answer;counter=1"],
        ..SipHeaders::default()
    });
    let route = route(&input);
    let mut f = CallFacts::new("c-3", at("09:00:00"), input.caller.clone());
    f.answered(at("09:00:00.300"));
    let r = CallRecord::build(
        &f,
        &route,
        at("09:00:02"),
        EndReason::CallerHangup,
        CallerNumbers::Masked,
    );
    let v = json(&r);
    assert_eq!(
        (
            &v["tenant"],
            &v["hotline"],
            &v["municipality"],
            &v["via"],
            &v["forwarded"]
        ),
        (
            &Value::from("quickborn"),
            &Value::from("rathaus"),
            &Value::from("Quickborn"),
            &Value::from("local"),
            &Value::from(true)
        )
    );
    assert_eq!(
        (&v["called"], &v["called_from"]),
        (&"041066110".into(), &"diversion".into())
    );
    assert_eq!(v["handled_by"], "kreis-pinneberg/115");
    assert_eq!(v["disposition"], "left_in_greeting");
    assert!(v.get("wait_secs").is_none() && v.get("queue").is_none());
}

/// Every stage a call can end in has its disposition and hang-up side.
#[test]
fn dispositions_follow_the_stage_the_call_ended_in() {
    let input = CallInput::to_number("02151860");
    let route = route(&input);
    let end = at("09:01:00");
    let cases = [
        (Stage::Ringing, EndReason::Cancelled, "cancelled", "caller"),
        (
            Stage::Greeting,
            EndReason::NoAck,
            "left_in_greeting",
            "zentrale",
        ),
        (
            Stage::Menu,
            EndReason::CallerHangup,
            "left_in_menu",
            "caller",
        ),
        (
            Stage::Waiting,
            EndReason::CallerHangup,
            "announced",
            "caller",
        ),
        (
            Stage::Queued,
            EndReason::RtpTimeout,
            "abandoned",
            "zentrale",
        ),
        (
            Stage::Forwarding,
            EndReason::CallerHangup,
            "abandoned",
            "caller",
        ),
        (Stage::Talking, EndReason::AgentHangup, "answered", "agent"),
        (
            Stage::Forwarded,
            EndReason::AgentHangup,
            "forwarded",
            "remote",
        ),
        (
            Stage::Ending(Why::Closed),
            EndReason::Completed,
            "closed",
            "zentrale",
        ),
        (
            Stage::Ending(Why::Surge),
            EndReason::Completed,
            "surge_rejected",
            "zentrale",
        ),
        (
            Stage::Ending(Why::TimedOut),
            EndReason::Completed,
            "timed_out",
            "zentrale",
        ),
        (
            Stage::Ending(Why::QueueFull),
            EndReason::CallerHangup,
            "queue_full",
            "caller",
        ),
        (
            Stage::Ending(Why::NoAgents),
            EndReason::Completed,
            "no_agents",
            "zentrale",
        ),
        (
            Stage::Ending(Why::ForwardFailed),
            EndReason::Completed,
            "forward_failed",
            "zentrale",
        ),
        (
            Stage::Ending(Why::Planned),
            EndReason::Shutdown,
            "announced",
            "zentrale",
        ),
    ];
    for (stage, reason, disposition, hangup) in cases {
        let mut f = CallFacts::new("c", at("09:00:00"), None);
        f.stage(stage, at("09:00:10"));
        let r = CallRecord::build(&f, &route, end, reason, CallerNumbers::Masked);
        let v = json(&r);
        assert_eq!(
            (v["disposition"].as_str(), v["hangup"].as_str()),
            (Some(disposition), Some(hangup)),
            "{stage:?} {reason:?}"
        );
        assert_eq!(r.disposition.as_str(), disposition);
        assert_eq!(v["end_reason"], reason.as_str());
    }
}

/// A caller who overflows from one queue to another waits in both; the
/// record's wait is the sum up to the agent's answer, and names the last
/// queue and the overflow.
#[test]
fn wait_adds_up_across_queues_and_overflow_is_recorded() {
    let input = CallInput::to_number("041066110");
    let route = route(&input);
    let mut f = CallFacts::new("c-4", at("09:00:00"), Some("0301234567".into()));
    f.answered(at("09:00:00.300"));
    f.queued("quickborn/rathaus", at("09:00:03"));
    f.overflow = Some((OverflowCause::NoAnswer, "kreis-pinneberg/115".into()));
    f.stage(Stage::Ending(Why::TimedOut), at("09:00:23"));
    f.queued("kreis-pinneberg/115", at("09:00:23"));
    f.connected("3001", at("09:00:41"));
    f.menu = None;
    let r = CallRecord::build(
        &f,
        &route,
        at("09:05:41"),
        EndReason::AgentHangup,
        CallerNumbers::Masked,
    );
    assert_eq!(r.wait_secs, Some(38.0));
    assert_eq!(r.talk_secs, Some(300.0));
    assert_eq!(r.queue.as_deref(), Some("kreis-pinneberg/115"));
    assert_eq!(
        (r.overflow_cause, r.overflow_target.as_deref()),
        (Some("no_answer"), Some("kreis-pinneberg/115"))
    );
    // Hung up while still in line: the wait runs to the end.
    let mut g = CallFacts::new("c-5", at("09:00:00"), None);
    g.queued("quickborn/rathaus", at("09:00:03"));
    g.menu = Some(MenuChoice::Timeout);
    let r = CallRecord::build(
        &g,
        &route,
        at("09:00:13.25"),
        EndReason::CallerHangup,
        CallerNumbers::Masked,
    );
    assert_eq!((r.wait_secs, r.talk_secs), (Some(10.25), None));
    assert_eq!(r.menu.as_deref(), Some("timeout"));
}

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::acd::{Acd, AcdSpec, Admission, AgentSpec, CallKey, PauseReason, QueueSpec, Segment};
use crate::cdr::{CallFacts, Stage, Why};
use crate::dialplan::{NumberSource, Origin};

fn acd(t0: Instant) -> Acd {
    let spec = AcdSpec {
        login_on_register: true,
        queues: vec![QueueSpec::new("kassel-115", "kassel", "115")],
        agents: vec![
            AgentSpec::new("1001", "kassel").with_skill("115", 5),
            AgentSpec::new("1002", "kassel").with_skill("115", 5),
        ],
        ..AcdSpec::default()
    };
    Acd::new(spec, t0).unwrap()
}

fn origin() -> Origin {
    Origin {
        tenant: "kassel".into(),
        hotline: "115".into(),
        municipality: "Kassel".into(),
        via_115: true,
        called: "0561115".into(),
        called_from: NumberSource::RequestUri,
        forwarded: false,
    }
}

fn at() -> jiff::Timestamp {
    "2026-12-07T09:00:00Z".parse().unwrap()
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.change {
            Change::Call(c) => format!("call:{}", c.kind.as_str()),
            Change::Agent(a) => format!("agent:{}:{}", a.id, a.state),
            Change::Queue(q) => format!("queue:{}:{}", q.queue.name, q.queue.waiting),
        })
        .collect()
}

fn events(r: Resume) -> Vec<Event> {
    match r {
        Resume::Events(e) => e,
        Resume::Snapshot => panic!("expected events, got a snapshot"),
    }
}

#[test]
fn resume_within_the_buffer_then_a_snapshot_past_it() {
    let t0 = Instant::now();
    let mut log = Log::new(3);
    let facts = CallFacts::new("a@b", at(), Some("05617870123".into()));
    for key in 1..=5 {
        log.call_changed(key, &facts, &origin(), t0);
    }
    assert_eq!(log.last_id(), 5);
    // Ids 3, 4, 5 are kept.
    let missed = events(log.since(Some(2)));
    assert_eq!(missed.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(events(log.since(Some(4))).len(), 1);
    assert!(events(log.since(Some(5))).is_empty());
    // Further back than the buffer, a first connection, or ids of an
    // earlier run: a snapshot, which holds every live call.
    assert_eq!(log.since(Some(1)), Resume::Snapshot);
    assert_eq!(log.since(None), Resume::Snapshot);
    assert_eq!(log.since(Some(6)), Resume::Snapshot);
    let snap = log.snapshot();
    assert_eq!(snap.id, 5);
    assert_eq!(snap.calls.len(), 5);
}

#[test]
fn caller_numbers_are_masked_and_withheld_ones_absent() {
    let t0 = Instant::now();
    let mut log = Log::new(16);
    let facts = CallFacts::new("a@b", at(), Some("05617870123".into()));
    log.call_changed(1, &facts, &origin(), t0);
    let anonymous = CallFacts::new("c@d", at(), None);
    log.call_changed(2, &anonymous, &origin(), t0);
    let all = events(log.since(Some(0)));
    let json: Vec<String> = all
        .iter()
        .map(|e| e.change.to_json(t0).to_string())
        .collect();
    assert!(
        json[0].contains("\"caller\":\"05617870xxx\""),
        "{}",
        json[0]
    );
    assert!(!json[0].contains("0123"), "{}", json[0]);
    assert!(json[1].contains("\"caller\":null"), "{}", json[1]);
    let snap = log.snapshot().to_json(t0).to_string();
    assert!(!snap.contains("0123"), "{snap}");
}

#[test]
fn a_call_joins_is_offered_answered_and_ends() {
    let t0 = Instant::now();
    let acd = acd(t0);
    let mut log = Log::new(64);
    acd.set_registered("1001", true, t0).unwrap();
    log.observe_acd(&acd.snapshot(t0), t0);
    let start = log.last_id();

    let mut facts = CallFacts::new("a@b", at(), Some("05617870123".into()));
    log.call_changed(7, &facts, &origin(), t0);
    acd.enqueue(CallKey(7), "kassel-115", 0, t0).unwrap();
    facts.queued("kassel/115", at());
    log.call_changed(7, &facts, &origin(), t0);
    // The same facts again publish nothing.
    log.call_changed(7, &facts, &origin(), t0);
    let t1 = t0 + Duration::from_secs(3);
    log.observe_acd(&acd.snapshot(t1), t1);
    let offer = acd.dispatch(t1).remove(0);
    acd.offer_ringing(offer.id, "1001", t1).unwrap();
    log.observe_acd(&acd.snapshot(t1), t1);
    let t2 = t1 + Duration::from_secs(2);
    acd.offer_answered(offer.id, "1001", t2).unwrap();
    facts.connected("1001", at());
    log.call_changed(7, &facts, &origin(), t2);
    log.observe_acd(&acd.snapshot(t2), t2);
    acd.call_ended(CallKey(7), t2 + Duration::from_secs(60))
        .unwrap();
    log.call_ended(7, &facts, &origin(), t2 + Duration::from_secs(60));

    let got = kinds(&events(log.since(Some(start))));
    assert_eq!(
        got,
        [
            "call:arrived",
            "call:joined",
            "queue:kassel-115:1",
            "queue:kassel-115:1",
            "agent:1001:ringing",
            "call:offered",
            "call:answered",
            "queue:kassel-115:0",
            "agent:1001:talking",
            "call:ended",
        ],
    );
    assert!(log.snapshot().calls.is_empty());
    // The offered call names the agent whose phone rings; the live call
    // in a snapshot taken then says how long it waited.
    let all = events(log.since(Some(start)));
    let Change::Call(offered) = &all[5].change else {
        panic!()
    };
    assert_eq!(offered.call.agent.as_deref(), Some("1001"));
    let json = offered.call.to_json(t1 + Duration::from_secs(1));
    assert_eq!(json["waiting_secs"], 4);
    assert_eq!(json["queue"], "kassel/115");
}

#[test]
fn a_caller_who_hangs_up_in_the_queue_abandoned() {
    let t0 = Instant::now();
    let mut log = Log::new(64);
    let mut facts = CallFacts::new("a@b", at(), Some("0301234567".into()));
    facts.queued("kassel/115", at());
    log.call_changed(1, &facts, &origin(), t0);
    log.call_ended(1, &facts, &origin(), t0 + Duration::from_secs(40));
    let all = events(log.since(Some(0)));
    let Change::Call(c) = &all[1].change else {
        panic!()
    };
    assert_eq!(
        (c.kind, c.disposition),
        (CallKind::Abandoned, Some("abandoned"))
    );
    // A call that ends with a last prompt is no abandonment.
    let mut closed = CallFacts::new("e@f", at(), None);
    closed.stage(Stage::Ending(Why::QueueFull), at());
    log.call_changed(2, &closed, &origin(), t0);
    log.call_ended(2, &closed, &origin(), t0);
    let Change::Call(c) = &events(log.since(Some(3))).remove(0).change else {
        panic!()
    };
    assert_eq!(c.kind, CallKind::Ended);
}

#[test]
fn overflows_count_by_target_and_municipality() {
    let t0 = Instant::now();
    let mut log = Log::new(64);
    let quickborn = Origin {
        municipality: "Quickborn".into(),
        via_115: false,
        ..origin()
    };
    for key in [1, 2] {
        let mut facts = CallFacts::new("a@b", at(), None);
        log.call_changed(key, &facts, &quickborn, t0);
        facts.overflow = Some((
            crate::dialplan::OverflowCause::NoAnswer,
            "pinneberg/buergerservice".into(),
        ));
        log.call_changed(key, &facts, &quickborn, t0);
    }
    let overflowed = log.snapshot().overflowed;
    assert_eq!(
        overflowed,
        [OverflowCount {
            target: "pinneberg/buergerservice".into(),
            municipality: "Quickborn".into(),
            calls: 2,
        }]
    );
    assert!(
        kinds(&events(log.since(Some(0))))
            .iter()
            .filter(|k| *k == "call:overflowed")
            .count()
            == 2
    );
}

#[test]
fn agent_changes_only_when_the_state_changes_and_names_only_when_shown() {
    let t0 = Instant::now();
    let acd = acd(t0);
    let mut log = Log::new(64);
    assert_eq!(log.observe_acd(&acd.snapshot(t0), t0), 3); // the queue and both agents
    // Nothing changed: nothing published, however often it looks.
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(log.observe_acd(&acd.snapshot(t1), t1), 0);
    acd.agent_login("1002", t1).unwrap();
    acd.agent_pause("1002", PauseReason::from_name("training"), t1)
        .unwrap();
    log.observe_acd(&acd.snapshot(t1), t1);
    let snap = log.snapshot();
    let a = snap.agents.iter().find(|a| &*a.id == "1002").unwrap();
    assert_eq!((a.state, a.reason.as_deref()), ("paused", Some("training")));
    assert_eq!(a.name, None);
    log.set_names(HashMap::from([(
        Arc::from("1002"),
        Arc::from("Anna Schmidt"),
    )]));
    assert_eq!(log.observe_acd(&acd.snapshot(t1), t1), 1);
    let json = log.snapshot().to_json(t1).to_string();
    assert!(json.contains("Anna Schmidt"), "{json}");
}

#[tokio::test]
async fn a_stream_that_falls_behind_the_buffer_is_dropped() {
    let hub = Arc::new(Hub::new(4, 8));
    let facts = CallFacts::new("a@b", at(), None);
    let t0 = Instant::now();
    hub.call_changed(1, &facts, &origin(), t0);
    let mut cursor = hub.open_stream().unwrap().cursor(hub.snapshot().id);
    // A stream that keeps up gets each event.
    hub.call_changed(2, &facts, &origin(), t0);
    match cursor.next(Duration::from_secs(5)).await {
        Next::Events(e) => assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), [2]),
        other => panic!("{other:?}"),
    }
    // Nothing new: keep-alive.
    assert!(matches!(
        cursor.next(Duration::from_millis(1)).await,
        Next::Idle
    ));
    // Five events while the client does not read: the fourth-last it saw
    // is gone from a buffer of four.
    for key in 3..=7 {
        hub.call_changed(key, &facts, &origin(), t0);
    }
    assert!(matches!(
        cursor.next(Duration::from_secs(5)).await,
        Next::Behind
    ));
    assert_eq!(hub.dropped.get(), 1);
    assert_eq!(hub.published.get(), 7);
}

#[tokio::test]
async fn a_publication_wakes_a_waiting_stream() {
    let hub = Arc::new(Hub::new(16, 8));
    let mut cursor = hub.open_stream().unwrap().cursor(0);
    let publisher = hub.clone();
    let waiting = tokio::spawn(async move { cursor.next(Duration::from_secs(30)).await });
    tokio::task::yield_now().await;
    publisher.call_changed(
        1,
        &CallFacts::new("a@b", at(), None),
        &origin(),
        Instant::now(),
    );
    match waiting.await.unwrap() {
        Next::Events(e) => assert_eq!(e.len(), 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn streams_are_capped_and_refusals_counted() {
    let hub = Arc::new(Hub::new(16, 2));
    let a = hub.open_stream().unwrap();
    let _b = hub.open_stream().unwrap();
    assert!(hub.open_stream().is_none());
    assert_eq!((hub.refused.get(), hub.open.get()), (1, 2));
    drop(a);
    assert!(hub.open_stream().is_some());
    assert_eq!(hub.open.get(), 1);
}

#[test]
fn sse_frames_have_id_event_and_one_data_line() {
    let data = serde_json::json!({"a": "x\ny"});
    assert_eq!(
        sse(7, "call", &data),
        "id: 7\nevent: call\ndata: {\"a\":\"x\\ny\"}\n\n"
    );
}

#[test]
fn a_queue_event_shows_what_a_client_sees_and_only_its_changes() {
    let t0 = Instant::now();
    let spec = AcdSpec {
        queues: vec![QueueSpec {
            max_waiting: Some(1),
            ..QueueSpec::new("kassel-115", "kassel", "115")
        }],
        agents: vec![AgentSpec::new("1001", "kassel").with_skill("115", 5)],
        ..AcdSpec::default()
    };
    let acd = Acd::new(spec, t0).unwrap();
    let mut log = Log::new(64);
    let quickborn = Segment {
        municipality: "Quickborn".into(),
        via_115: false,
    };
    acd.enqueue_segment(CallKey(1), "kassel-115", 0, t0, Some(quickborn), t0)
        .unwrap();
    log.observe_acd(&acd.snapshot(t0), t0);
    let expected_wait = acd.snapshot(t0).queues[0].expected_wait.as_secs();

    // A second caller finds the queue full: counted (the metrics show it),
    // but not among what a client is shown, so no event.
    let t1 = t0 + Duration::from_secs(7);
    let admission = acd.enqueue(CallKey(2), "kassel-115", 0, t1).unwrap();
    assert!(matches!(admission, Admission::Rejected(_)), "{admission:?}");
    assert_eq!(acd.snapshot(t1).queues[0].counters.rejected_full, 1);
    assert_eq!(log.observe_acd(&acd.snapshot(t1), t1), 0);

    // The longest wait grows from the figures' time to the client's.
    let json = log.snapshot().queues[0].to_json(t1 + Duration::from_secs(5));
    assert_eq!(
        json,
        serde_json::json!({
            "name": "kassel-115",
            "tenant": "kassel",
            "waiting": 1,
            "ringing": 0,
            "longest_wait_secs": 12,
            "expected_wait_secs": expected_wait,
            "entered": 1,
            "answered": 0,
            "answered_in_threshold": 0,
            "abandoned": 0,
            "timed_out": 0,
            "moved_out": 0,
            "service_level_percent": null,
            "service_level_target_percent": 75,
            "service_level_threshold_secs": 30,
            "by_origin": [{
                "municipality": "Quickborn",
                "via": "local",
                "entered": 1,
                "answered": 0,
                "abandoned": 0,
                "service_level_percent": null,
            }],
            "agents": {
                "logged_out": 1,
                "available": 0,
                "unreachable": 0,
                "offered": 0,
                "talking": 0,
                "wrap_up": 0,
                "paused": 0,
            },
        })
    );

    // The caller hangs up: a change a client sees.
    acd.abandon(CallKey(1), t1).unwrap();
    assert_eq!(log.observe_acd(&acd.snapshot(t1), t1), 1);
}

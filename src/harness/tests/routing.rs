//! The dialplan's timers: Quickborn's overflow to the district, the menu's
//! timeout and retry.

use std::time::{Duration, Instant};

use super::{SEC, between, near, trace};
use crate::acd::AgentState;
use crate::harness::Harness;
use crate::harness::media::MediaCommand;
use crate::harness::phone::{Answer, OfferState};
use crate::harness::trunk::{CallRef, CallerState};
use crate::media::engine::MediaEvent;

/// When the caller's greeting (its first playlist) was over.
fn greeting_done(h: &Harness, c: CallRef) -> Instant {
    let stream = h.caller_stream(c).expect("the caller's stream");
    h.media
        .events
        .iter()
        .find(|(_, e)| *e == MediaEvent::PlaylistDone(stream))
        .map(|(t, _)| *t)
        .expect("the greeting played out")
}

/// 4001 is logged in but lets its phone ring: Quickborn's caller rings
/// there for the town hall's 20 s (`overflow.after_secs`) from joining its
/// queue, then goes to kreis-pinneberg/115 at once, where 3001 gets the
/// offer in Quickborn's name and answers; the figures count the timeout,
/// the overflow and the district's answer, by origin too, and the call's
/// one record tells the story (its wait spans both queues).
#[test]
fn quickborn_overflows_to_the_district_after_20_seconds() {
    let mut h = Harness::demo();
    h.register("4001", Answer::Never);
    h.register("3001", Answer::After(2 * SEC));
    let c = h.call("041066110");
    let answered = h.run_within(60 * SEC, |h| {
        h.phone("3001").offers.first().is_some_and(|o| o.acked)
    });
    assert!(answered, "{}", trace(&h));

    let joined = greeting_done(&h, c);
    let town = &h.phone("4001").offers[0];
    assert_eq!(town.queue, "quickborn/rathaus");
    assert_eq!(town.state, OfferState::Cancelled);
    let rang = between(joined, town.cancelled_at.unwrap());
    assert!(
        near(rang, 20 * SEC, Duration::from_millis(30)),
        "4001 rang until {rang:?} after the caller joined the town hall's queue, want 20 s\n{}",
        trace(&h)
    );
    let district = &h.phone("3001").offers[0];
    let moved = between(joined, district.received_at);
    assert!(
        near(moved, 20 * SEC, Duration::from_millis(30)),
        "the district got the caller {moved:?} after joining, want 20 s"
    );
    assert_eq!(district.queue, "kreis-pinneberg/115");
    assert!(
        district.from.starts_with("\"Quickborn\""),
        "From {:?}",
        district.from
    );
    let origin = district.origin.clone().unwrap_or_default();
    assert!(
        origin.starts_with("quickborn/rathaus;") && origin.contains("via=local"),
        "X-Zentrale-Origin {origin:?}"
    );
    assert_eq!(h.agent("3001").state, AgentState::Talking);
    assert_eq!(h.trunk.call(c).state, CallerState::Up);
    h.hang_up(c);
    h.run_for(2 * SEC);
    assert_eq!(h.active_calls(), 0);
    // The queue figures as the ACD keeps them (what /metrics renders).
    let town = h.queue("quickborn/rathaus");
    assert_eq!(town.counters.timed_out, 1);
    let district = h.queue("kreis-pinneberg/115");
    assert_eq!(district.counters.answered, 1);
    let quickborn = |q: &crate::acd::QueueSnapshot| {
        q.segments
            .iter()
            .find(|s| &*s.segment.municipality == "Quickborn" && !s.segment.via_115)
            .cloned()
            .unwrap_or_else(|| panic!("no Quickborn segment in {}", q.name))
    };
    let (t, d) = (quickborn(&town), quickborn(&district));
    assert_eq!(t.counters.timed_out, 1);
    assert_eq!(t.service_level.percent, Some(0.0));
    assert_eq!(d.counters.answered_in_threshold, 1);
    assert_eq!(d.service_level.percent, Some(100.0));
    let records = h.records_json();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    let wait = r["wait_secs"].as_f64().unwrap_or(0.0);
    let answered_at = h.phone("3001").offers[0].answered_at.unwrap();
    let want_wait = between(joined, answered_at + h.latency).as_secs_f64();
    assert!(
        r["tenant"] == "quickborn"
            && r["hotline"] == "rathaus"
            && r["handled_by"] == "quickborn/rathaus"
            && r["queue"] == "kreis-pinneberg/115"
            && r["agent"] == "3001"
            && r["overflow_cause"] == "no_answer"
            && r["overflow_target"] == "kreis-pinneberg/115"
            && r["disposition"] == "answered"
            && r["hangup"] == "caller"
            && (wait - want_wait).abs() < 1.0,
        "the overflowed call's record (wait {want_wait:.1} s over both queues): {r}"
    );
    for (sample, want) in [
        (
            "zentrale_overflow_total{from_municipality=\"Quickborn\",target=\"kreis-pinneberg/115\"}",
            1.0,
        ),
        (
            "zentrale_origin_calls_overflowed_total{tenant=\"quickborn\",hotline=\"rathaus\",municipality=\"Quickborn\",via=\"local\"}",
            1.0,
        ),
        (
            "zentrale_origin_calls_ended_total{tenant=\"quickborn\",hotline=\"rathaus\",municipality=\"Quickborn\",via=\"local\",disposition=\"answered\"}",
            1.0,
        ),
    ] {
        assert_eq!(h.metric(sample), Some(want), "{sample}");
    }
}

/// What the caller's stream was told to play, in order, with the time
/// since `from`: (time, items, loop).
fn plays_since(
    h: &Harness,
    c: CallRef,
    from: Instant,
) -> Vec<(Duration, Vec<String>, Option<String>)> {
    let stream = h.caller_stream(c).unwrap();
    h.media
        .plays(stream)
        .into_iter()
        .map(|(t, items, l)| (between(from, t), items, l))
        .collect()
}

/// Krefeld's caller presses nothing: the greeting, then the menu prompt;
/// 5 s after the prompt is over (`timeout_secs`) the call goes to the
/// menu's default, the Serviceportal queue, whose music starts and whose
/// agent is offered the call. The menu is not repeated
/// (`repeat_on_timeout: false`), the invalid prompt never plays, the
/// choice counts as `timeout`, and the call record says so.
#[test]
fn menu_timeout_sends_the_caller_to_the_default_queue() {
    let mut h = Harness::demo();
    h.register("2004", Answer::After(SEC));
    let c = h.call("02151860");
    let offered = h.run_within(60 * SEC, |h| !h.phone("2004").offers.is_empty());
    assert!(offered, "{}", trace(&h));
    let start = h.trunk.call(c).answered_at.unwrap();
    let plays = plays_since(&h, c, start);
    let names: Vec<(Vec<String>, Option<String>)> = plays
        .iter()
        .map(|(_, i, l)| (i.clone(), l.clone()))
        .collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names,
        [
            (s(&["greeting-krefeld"]), None),
            (s(&["menu-krefeld"]), None),
            (s(&[]), Some("moh".to_owned())),
        ],
        "what the caller heard"
    );
    let stream = h.caller_stream(c).unwrap();
    let menu_over = h
        .media
        .events
        .iter()
        .filter(|(_, e)| *e == MediaEvent::PlaylistDone(stream))
        .map(|(t, _)| *t)
        .nth(1)
        .expect("the menu prompt played out");
    let music_at = start + plays[2].0;
    assert_eq!(
        between(menu_over, music_at),
        5 * SEC,
        "between the menu prompt and the queue music"
    );
    let offer = &h.phone("2004").offers[0];
    assert_eq!(offer.queue, "krefeld/serviceportal");
    assert!(between(music_at, offer.received_at) <= Duration::from_millis(10));
    assert_eq!(
        h.metric(
            "zentrale_menu_choices_total{tenant=\"krefeld\",hotline=\"serviceportal\",choice=\"timeout\"}"
        ),
        Some(1.0)
    );
    assert!(
        !h.media
            .log
            .iter()
            .any(|(_, m)| matches!(m, MediaCommand::Play { items, .. } if items.iter().any(|i| i == "invalid-input"))),
        "the invalid prompt played without a key"
    );
    h.hang_up(c);
    h.run_for(SEC);
    let records = h.records_json();
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert!(
        r["menu"] == "timeout"
            && r["queue"] == "krefeld/serviceportal"
            && r["disposition"] == "abandoned"
            && r["municipality"] == "Krefeld"
            && r["via"] == "local",
        "the call record of the timed-out menu: {r}"
    );
}

/// With `repeat_on_timeout: true` a caller who presses nothing hears the
/// menu again 5 s after it ends, as often as `retries` allows (once),
/// then goes to the default queue 5 s after the second prompt; one
/// `timeout` choice is counted.
#[test]
fn menu_repeats_on_timeout_up_to_its_retries_then_the_default() {
    let mut h = Harness::new(|c| {
        let krefeld = c.tenants.iter_mut().find(|t| t.id == "krefeld").unwrap();
        let menu = krefeld.dialplan.hotlines[0].menu.as_mut().unwrap();
        menu.repeat_on_timeout = true;
    });
    h.register("2004", Answer::After(SEC));
    let c = h.call("02151860");
    let offered = h.run_within(60 * SEC, |h| !h.phone("2004").offers.is_empty());
    assert!(offered, "{}", trace(&h));
    let start = h.trunk.call(c).answered_at.unwrap();
    let plays = plays_since(&h, c, start);
    let items: Vec<String> = plays
        .iter()
        .map(|(_, i, l)| i.first().cloned().or(l.clone()).unwrap_or_default())
        .collect();
    assert_eq!(
        items,
        ["greeting-krefeld", "menu-krefeld", "menu-krefeld", "moh"],
        "{plays:?}"
    );
    let stream = h.caller_stream(c).unwrap();
    let done: Vec<Instant> = h
        .media
        .events
        .iter()
        .filter(|(_, e)| *e == MediaEvent::PlaylistDone(stream))
        .map(|(t, _)| *t)
        .collect();
    // Greeting over, first menu over, second menu over.
    assert_eq!(done.len(), 3, "{plays:?}");
    assert_eq!(between(done[1], start + plays[2].0), 5 * SEC, "the retry");
    assert_eq!(between(done[2], start + plays[3].0), 5 * SEC, "the default");
    assert_eq!(h.phone("2004").offers[0].queue, "krefeld/serviceportal");
    assert_eq!(
        h.metric(
            "zentrale_menu_choices_total{tenant=\"krefeld\",hotline=\"serviceportal\",choice=\"timeout\"}"
        ),
        Some(1.0)
    );
}

/// The event stream of a queued call that 1001 answers: the core hands out
/// each change of the call as a value (the daemon's driver publishes it),
/// and the stream shows it joining the queue, answered by 1001 and ended,
/// in that order and with nothing after its end; the end carries the
/// record's disposition. Its greeting is not news (`Phase::published`),
/// and `offered` comes from the ACD's snapshot, which the API observes,
/// not from the core.
#[test]
fn queued_and_answered_call_yields_its_events_in_order() {
    use crate::events::{Change, Resume};
    let mut h = Harness::demo();
    h.register("1001", Answer::After(2 * SEC));
    let c = h.call("0561115");
    let up = h.run_within(30 * SEC, |h| {
        h.phone("1001").offers.first().is_some_and(|o| o.acked)
    });
    assert!(up, "{}", trace(&h));
    h.run_for(5 * SEC);
    h.hang_up(c);
    h.run_for(2 * SEC);
    assert_eq!(h.active_calls(), 0);

    let last = h.call_events.last().expect("call events").1.clone();
    assert!(last.ended, "the last event ends the call: {last:?}");
    assert_eq!(
        h.call_events.iter().filter(|(_, e)| e.ended).count(),
        1,
        "one end per call"
    );
    assert!(
        h.call_events.iter().all(|(_, e)| e.call == last.call),
        "only the one call moved"
    );
    let Resume::Events(events) = h.wallboard.since(Some(0)) else {
        panic!("the harness's log keeps every event");
    };
    let calls: Vec<(&str, Option<&str>, Option<&str>)> = events
        .iter()
        .filter_map(|e| match &e.change {
            Change::Call(c) => Some((c.kind.as_str(), c.call.agent.as_deref(), c.disposition)),
            _ => None,
        })
        .collect();
    let kinds: Vec<&str> = calls.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(kinds, ["joined", "answered", "ended"], "{calls:?}");
    assert_eq!(calls[0].1, None, "nobody has it yet: {calls:?}");
    assert_eq!(calls[1].1, Some("1001"), "answered by 1001: {calls:?}");
    assert_eq!(calls[2].2, Some("answered"), "{calls:?}");
    assert!(
        h.wallboard.snapshot().calls.is_empty(),
        "the ended call is gone"
    );
}

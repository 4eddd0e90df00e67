//! In-dialog timing: hold and resume from either side, session timers.

use std::time::Duration;

use super::{SEC, between, near, trace};
use crate::acd::AgentState;
use crate::harness::Harness;
use crate::harness::media::MediaCommand;
use crate::harness::phone::{Answer, OfferState};
use crate::harness::trunk::CallerState;
use crate::media::sdp::Direction;

/// The caller's side holds (re-INVITE `a=sendonly`, answered `recvonly`),
/// goes inactive (answered `inactive`) and resumes (`sendrecv`): each
/// answer carries the direction, the caller's stream only changes its
/// direction (no new stream, nothing removed), and the call stays up
/// until the caller hangs up.
#[test]
fn caller_holds_and_resumes() {
    let mut h = Harness::demo();
    let c = h.call("115");
    h.run_for(2 * SEC);
    assert_eq!(h.trunk.call(c).state, CallerState::Up);
    let stream = h.caller_stream(c).expect("the caller's stream");
    for (offer, want, dir) in [
        ("sendonly", "recvonly", Direction::RecvOnly),
        ("inactive", "inactive", Direction::Inactive),
        ("sendrecv", "sendrecv", Direction::SendRecv),
    ] {
        let before = h.media.log.len();
        h.reinvite(c, offer, &[]);
        h.run_for(SEC);
        let call = h.trunk.call(c);
        assert_eq!(call.finals.last(), Some(&("INVITE".to_owned(), 200)));
        assert_eq!(call.answered_direction.as_deref(), Some(want), "{offer}");
        let since: Vec<&MediaCommand> = h.media.log[before..].iter().map(|(_, m)| m).collect();
        assert!(
            since.contains(&&MediaCommand::Direction(stream, dir)),
            "after the re-INVITE {offer} the media got {since:?}"
        );
        assert!(
            !since
                .iter()
                .any(|m| matches!(m, MediaCommand::Add { .. } | MediaCommand::Remove(_))),
            "the stream is kept through {offer}: {since:?}"
        );
    }
    // Ten minutes on hold and back: still up.
    h.reinvite(c, "sendonly", &[]);
    h.run_for(Duration::from_secs(600));
    h.reinvite(c, "sendrecv", &[]);
    h.run_for(SEC);
    assert_eq!(h.trunk.call(c).state, CallerState::Up);
    h.hang_up(c);
    h.run_for(SEC);
    assert_eq!(
        h.trunk.call(c).state,
        CallerState::Ended { by_zentrale: false }
    );
    assert!(h.media.removed(stream));
    assert_eq!(h.active_calls(), 0);
}

/// The agent holds the caller (re-INVITE `a=sendonly`, answered
/// `recvonly`): the caller's stream gets the music first and is then
/// unbridged, so the music is in place when the agent's voice stops; the
/// agent's resume (`sendrecv`) bridges the two again. The agent stays
/// talking throughout; the caller's BYE ends the agent's leg too.
#[test]
fn agent_holds_and_resumes() {
    let mut h = Harness::demo();
    h.register("1001", Answer::After(2 * SEC));
    let c = h.call("0561115");
    let up = h.run_within(30 * SEC, |h| {
        h.phone("1001").offers.first().is_some_and(|o| o.acked)
    });
    assert!(up, "{}", trace(&h));
    let caller = h.caller_stream(c).unwrap();
    let agent = h
        .media
        .bridged_with(caller)
        .expect("bridged after the answer");

    let before = h.media.log.len();
    h.agent_reinvite("1001", "sendonly");
    h.run_for(SEC);
    let since: Vec<MediaCommand> = h.media.log[before..]
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    let music = since.iter().position(|m| {
        matches!(m, MediaCommand::Play { stream, items, looping, .. }
            if *stream == caller && items.is_empty() && looping.as_deref() == Some("moh"))
    });
    let unbridge = since
        .iter()
        .position(|m| *m == MediaCommand::Unbridge(caller));
    assert!(
        matches!((music, unbridge), (Some(m), Some(u)) if m < u),
        "on hold: music, then unbridge; got {since:?}"
    );
    assert!(since.contains(&MediaCommand::Direction(agent, Direction::RecvOnly)));
    assert_eq!(h.media.bridged_with(caller), None);
    assert_eq!(h.agent("1001").state, AgentState::Talking);

    h.run_for(Duration::from_secs(120));
    let before = h.media.log.len();
    h.agent_reinvite("1001", "sendrecv");
    h.run_for(SEC);
    let since: Vec<MediaCommand> = h.media.log[before..]
        .iter()
        .map(|(_, m)| m.clone())
        .collect();
    assert!(
        since.contains(&MediaCommand::Bridge(caller, agent)),
        "resume bridges again: {since:?}"
    );
    assert_eq!(h.media.bridged_with(caller), Some(agent));

    h.hang_up(c);
    h.run_for(2 * SEC);
    assert_eq!(
        h.phone("1001").offers[0].state,
        OfferState::Ended { by_zentrale: true }
    );
    assert_eq!(h.agent("1001").state, AgentState::WrapUp);
    assert!(h.media.removed(caller) && h.media.removed(agent));
    assert_eq!(h.active_calls(), 0);
}

/// Three calls with Session-Expires 90 (RFC 4028): A refreshes (re-INVITE
/// at 20 s, UPDATE at 40 s) and is still up at 120 s; B never refreshes
/// and gets zentrale's BYE at expiry - min(32, 90/3) = 60 s after the
/// answer, with the reason (A, refreshing at 80 s too, outlives 100 s);
/// C does not support timers, so zentrale
/// refreshes it with an UPDATE at half time (45 s) and again every 45 s,
/// and it stays up.
#[test]
fn session_timer_refresh_keeps_calls_and_expiry_ends_them() {
    let mut h = Harness::demo();
    let timer = ["Supported: timer", "Session-Expires: 90;refresher=uac"];
    let a = h.call_with("115", &timer);
    let b = h.call_with("0561115", &timer);
    let c = h.call_with("05617870", &["Session-Expires: 90;refresher=uac"]);
    h.run_for(SEC);
    for (name, call, want) in [
        ("A", a, "90;refresher=uac"),
        ("B", b, "90;refresher=uac"),
        ("C", c, "90;refresher=uas"),
    ] {
        let se = h
            .trunk
            .call(call)
            .session_expires
            .clone()
            .unwrap_or_default();
        assert_eq!(se.replace(' ', ""), want, "{name}'s 200");
    }
    let answered = |h: &Harness, c| h.trunk.call(c).answered_at.unwrap();
    h.run_until(answered(&h, a) + 20 * SEC, |_| false);
    h.reinvite(a, "sendrecv", &timer);
    h.run_until(answered(&h, a) + 40 * SEC, |_| false);
    h.update(a, &timer);
    h.run_until(answered(&h, a) + 80 * SEC, |_| false);
    h.update(a, &timer);
    h.run_until(answered(&h, a) + 120 * SEC, |_| false);

    let ca = h.trunk.call(a);
    assert_eq!(ca.state, CallerState::Up, "A refreshed\n{}", trace(&h));
    assert_eq!(
        ca.finals,
        [
            ("INVITE".to_owned(), 200),
            ("UPDATE".to_owned(), 200),
            ("UPDATE".to_owned(), 200)
        ]
    );
    let cb = h.trunk.call(b);
    assert_eq!(cb.state, CallerState::Ended { by_zentrale: true });
    let bye_after = between(cb.answered_at.unwrap(), cb.ended_at.unwrap());
    assert!(
        near(bye_after, 60 * SEC, Duration::from_millis(20)),
        "B's BYE came {bye_after:?} after the answer, want 60 s\n{}",
        trace(&h)
    );
    assert!(
        cb.bye_reason
            .as_deref()
            .is_some_and(|r| r.contains("Session expired")),
        "B's BYE Reason: {:?}",
        cb.bye_reason
    );
    let cc = h.trunk.call(c);
    assert_eq!(cc.state, CallerState::Up, "{}", trace(&h));
    let refreshes: Vec<Duration> = cc
        .refreshes
        .iter()
        .map(|t| between(cc.answered_at.unwrap(), *t))
        .collect();
    assert!(
        refreshes.len() == 2
            && near(refreshes[0], 45 * SEC, Duration::from_millis(20))
            && near(refreshes[1], 90 * SEC, Duration::from_millis(40)),
        "zentrale refreshed C at {refreshes:?}, want every 45 s"
    );
    assert_eq!(
        h.metric("zentrale_calls_ended_total{reason=\"session_expired\"}"),
        Some(1.0)
    );
    assert_eq!(h.active_calls(), 2);
    h.hang_up(a);
    h.hang_up(c);
    h.run_for(SEC);
    assert_eq!(h.active_calls(), 0);
    assert_eq!(
        h.metric("zentrale_calls_ended_total{reason=\"caller_hangup\"}"),
        Some(2.0)
    );
}

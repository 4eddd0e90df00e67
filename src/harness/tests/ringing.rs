//! Offers to agents: ring timeout and re-offer, ring-all, the CANCEL/200
//! race, the caller leaving while an agent rings.

use std::time::Duration;

use super::{SEC, between, near, offers, trace};
use crate::acd::{AgentAction, AgentState, PauseReason};
use crate::harness::Harness;
use crate::harness::phone::{Answer, OfferState};
use crate::harness::trunk::CallerState;

/// Kassel's 115 queue rings an agent for 15 s (`ring_timeout_secs`); with
/// `max_missed_offers: 2` and nobody answering, the offer moves to the
/// other agent at each timeout (CANCEL, then the next INVITE at once),
/// 1001 (idle longest) and 1002 alternate, each is paused with reason
/// no-answer after its second miss in a row, and then nobody is offered
/// the waiting caller; four unanswered offers are counted.
#[test]
fn ring_timeout_re_offers_to_the_next_agent_and_pauses_who_keeps_missing() {
    // The global setting is each agent's unless it has its own.
    let mut h = Harness::new(|c| {
        c.acd.max_missed_offers = Some(2);
        for a in &mut c.agents {
            a.max_missed_offers = Some(2);
        }
    });
    h.register("1001", Answer::Never);
    h.run_for(SEC);
    h.register("1002", Answer::Never);
    let c = h.call("0561115");
    h.run_for(Duration::from_secs(180));

    let all = offers(&h, &["1001", "1002"]);
    let order: Vec<&str> = all.iter().map(|(e, _)| *e).collect();
    assert_eq!(
        order,
        ["1001", "1002", "1001", "1002"],
        "offers in turn, four in all\n{}",
        trace(&h)
    );
    let ring = h
        .config()
        .queues()
        .find(|q| q.id == "115")
        .unwrap()
        .ring_timeout;
    assert_eq!(ring, Duration::from_secs(15));
    for (i, (ext, o)) in all.iter().enumerate() {
        assert_eq!(o.state, OfferState::Cancelled, "offer {i} to {ext}");
        let rang = between(o.received_at, o.cancelled_at.unwrap());
        // The ring timer runs from the INVITE; the CANCEL takes 2 hops more.
        assert!(
            near(rang, ring, Duration::from_millis(30)),
            "offer {i} to {ext} rang {rang:?}, want the ring timeout {ring:?}\n{}",
            trace(&h)
        );
        if let Some((_, next)) = all.get(i + 1) {
            let gap = between(o.cancelled_at.unwrap(), next.received_at);
            assert!(
                gap <= Duration::from_millis(30),
                "offer {} came {gap:?} after the CANCEL of offer {i}, want at once",
                i + 1
            );
        }
    }
    for ext in ["1001", "1002"] {
        let a = h.agent(ext);
        assert_eq!(
            a.state,
            AgentState::Paused(PauseReason::from_name("no-answer")),
            "{ext} missed twice in a row"
        );
    }
    let q = h.queue("kassel/115");
    assert_eq!((q.waiting, q.counters.offers_unanswered), (1, 4));
    assert_eq!(h.trunk.call(c).state, CallerState::Up);
    // A supervisor unpauses 1001 (the API's command through the core's
    // input): the waiting caller is offered to it at once.
    let unpaused = h.now();
    let a = h
        .command("1001", AgentAction::Unpause)
        .expect("1001 unpaused");
    assert_eq!(a.state, AgentState::Available);
    let offered = h.run_within(SEC, |h| h.phone("1001").offers.len() == 3);
    assert!(offered, "{}", trace(&h));
    let at = h.phone("1001").offers[2].received_at;
    assert!(between(unpaused, at) <= Duration::from_millis(10));
    h.hang_up(c);
    h.run_for(5 * SEC);
    assert_eq!(h.active_calls(), 0);
    assert_eq!(h.queue("kassel/115").counters.abandoned, 1);
}

/// Quickborn's town hall rings every free phone at once (ring-all): 4001
/// answers after 3 s, so 4002 gets a CANCEL, answers 487 and is free
/// again with no miss counted; the caller talks to 4001 (its stream is
/// bridged to 4001's leg), and when 4001 hangs up the caller gets a BYE.
#[test]
fn ring_all_answered_by_one_cancels_the_others() {
    let mut h = Harness::demo();
    h.register("4001", Answer::After(3 * SEC));
    h.register("4002", Answer::Never);
    let c = h.call("041066110");
    h.run_for(20 * SEC);

    let (p1, p2) = (&h.phone("4001").offers, &h.phone("4002").offers);
    assert_eq!((p1.len(), p2.len()), (1, 1), "{}", trace(&h));
    assert_eq!(p1[0].queue, "quickborn/rathaus");
    assert!(
        p1[0].received_at == p2[0].received_at,
        "ring-all rings both phones at once"
    );
    assert_eq!(p1[0].state, OfferState::Answered);
    assert!(p1[0].acked);
    assert_eq!(p2[0].state, OfferState::Cancelled, "{}", trace(&h));
    // The CANCEL follows the answer by the two hops it takes.
    let after = between(p1[0].answered_at.unwrap(), p2[0].cancelled_at.unwrap());
    assert!(
        after <= Duration::from_millis(15),
        "CANCEL {after:?} after the answer"
    );
    assert_eq!(h.agent("4001").state, AgentState::Talking);
    let a2 = h.agent("4002");
    assert_eq!((a2.state, a2.missed_in_row), (AgentState::Available, 0));
    assert_eq!(h.queue("quickborn/rathaus").counters.offers_unanswered, 0);
    let caller = h.caller_stream(c).expect("the caller's stream");
    let partner = h.media.bridged_with(caller).expect("the caller is bridged");
    assert_eq!(h.media.bridged_with(partner), Some(caller));

    h.agent_hang_up("4001");
    h.run_for(2 * SEC);
    let call = h.trunk.call(c);
    assert_eq!(call.state, CallerState::Ended { by_zentrale: true });
    assert_eq!(h.active_calls(), 0);
    assert!(h.media.removed(caller) && h.media.removed(partner));
    assert_eq!(h.queue("quickborn/rathaus").counters.answered, 1);
    assert_eq!(h.agent("4001").state, AgentState::WrapUp);
}

/// Ring-all, and both phones answer at the same instant: 4001's 200
/// reaches zentrale first, so 4002 is cancelled while its own 200 is on
/// the wire. zentrale ACKs the late 200 and hangs that leg up with a BYE;
/// the caller stays with 4001 and 4002 is free again with no miss.
#[test]
fn a_200_crossing_the_cancel_is_acked_and_hung_up() {
    let mut h = Harness::demo();
    h.register("4001", Answer::After(3 * SEC));
    h.register("4002", Answer::After(3 * SEC));
    let c = h.call("041066110");
    h.run_for(20 * SEC);

    let o1 = &h.phone("4001").offers[0];
    let o2 = &h.phone("4002").offers[0];
    assert_eq!(o1.state, OfferState::Answered);
    assert!(o1.acked, "{}", trace(&h));
    assert!(
        o2.cancel_after_answer,
        "4002's 200 and zentrale's CANCEL crossed\n{}",
        trace(&h)
    );
    assert!(o2.acked, "zentrale ACKs the late 200\n{}", trace(&h));
    assert_eq!(
        o2.state,
        OfferState::Ended { by_zentrale: true },
        "and hangs that leg up\n{}",
        trace(&h)
    );
    let to_4002: Vec<&str> = h
        .sip
        .iter()
        .filter(|r| r.to == "4002" && !r.line.starts_with("SIP/2.0"))
        .map(|r| r.line.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(to_4002, ["INVITE", "CANCEL", "ACK", "BYE"], "{}", trace(&h));
    assert_eq!(h.agent("4001").state, AgentState::Talking);
    let a2 = h.agent("4002");
    assert_eq!((a2.state, a2.missed_in_row), (AgentState::Available, 0));
    let caller = h.caller_stream(c).unwrap();
    let leg = h.media.bridged_with(caller).expect("bridged");
    // The caller's partner is 4001's leg: the stream added when 4001's
    // 200 came, not 4002's (removed).
    let live = h.media.live();
    assert!(
        live.contains(&leg) && live.len() == 2,
        "live streams {live:?}"
    );
    assert_eq!(h.trunk.call(c).state, CallerState::Up);
}

/// The caller hangs up while 1001's phone rings: 1001 gets a CANCEL in
/// the INVITE's transaction, answers 487 and zentrale ACKs it; the queue
/// counts one abandoned caller, 1001 is available again and not
/// penalised, and nothing more reaches the phone. A second caller leaves
/// before the phone said anything: the CANCEL waits for its 180 (RFC 3261
/// §9.1), then goes.
#[test]
fn caller_hangs_up_while_the_agent_rings() {
    let mut h = Harness::demo();
    h.register("1001", Answer::Never);
    let c = h.call("0561115");
    let rings = h.run_within(30 * SEC, |h| !h.phone("1001").offers.is_empty());
    assert!(rings, "{}", trace(&h));
    h.run_for(2 * SEC);
    assert_eq!(h.agent("1001").state, AgentState::Ringing);
    let q = h.queue("kassel/115");
    assert_eq!((q.waiting, q.offered), (1, 1));

    h.hang_up(c);
    h.run_for(5 * SEC);
    let o = &h.phone("1001").offers[0];
    assert_eq!(o.state, OfferState::Cancelled, "{}", trace(&h));
    let acks = h
        .sip
        .iter()
        .filter(|r| r.to == "1001" && r.is_request("ACK") && r.call_id == o.call_id)
        .count();
    assert_eq!(acks, 1, "zentrale ACKs the 487\n{}", trace(&h));
    let a = h.agent("1001");
    assert_eq!((a.state, a.missed_in_row), (AgentState::Available, 0));
    let q = h.queue("kassel/115");
    assert_eq!((q.counters.abandoned, q.counters.answered), (1, 0));
    assert_eq!((q.counters.offers_unanswered, q.waiting), (0, 0));
    assert_eq!(
        h.trunk.call(c).state,
        CallerState::Ended { by_zentrale: false }
    );
    let heard = h.sip.iter().filter(|r| r.to == "1001").count();
    h.run_for(60 * SEC);
    assert_eq!(
        h.sip.iter().filter(|r| r.to == "1001").count(),
        heard,
        "nothing more for the phone after the CANCEL\n{}",
        trace(&h)
    );

    // Silent until told otherwise: the phone says nothing at first.
    h.phone_mut("1001").answer = Answer::Silent;
    let c2 = h.call("0561115");
    let offered = h.run_within(30 * SEC, |h| h.phone("1001").offers.len() == 2);
    assert!(offered);
    h.hang_up(c2);
    h.run_for(2 * SEC);
    assert!(
        h.phone("1001").offers[1].cancelled_at.is_none(),
        "a CANCEL before any provisional response\n{}",
        trace(&h)
    );
    // The phone rings after all: the CANCEL follows its 180.
    h.agent_ring("1001");
    h.run_for(5 * SEC);
    assert_eq!(
        h.phone("1001").offers[1].state,
        OfferState::Cancelled,
        "after the 180 the CANCEL goes\n{}",
        trace(&h)
    );
    assert_eq!(h.agent("1001").state, AgentState::Available);
    assert_eq!(h.queue("kassel/115").counters.abandoned, 2);
    assert_eq!(h.active_calls(), 0);
}

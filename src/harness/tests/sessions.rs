//! Flows the one-object-per-call structure makes expressible: a session
//! without a caller leg (a callback, before it dials the caller).

use std::time::Duration;

use super::{SEC, trace};
use crate::harness::Harness;
use crate::harness::phone::{Answer, OfferState};

/// A callback waits in a queue before any caller leg exists: the ACD's
/// offer for it must ring the agent (the session is there), not be
/// reported "caller gone" (which would count the offer unanswered and
/// ring nobody). When the offer times out, the session waits on and is
/// offered again.
#[test]
fn a_session_without_a_caller_leg_holds_an_offer() {
    let mut h = Harness::demo();
    h.register("1001", Answer::Never);
    h.run_for(SEC);
    h.queue_callerless("kassel/115");
    h.run_for(2 * SEC);

    let offers = &h.phone("1001").offers;
    assert_eq!(offers.len(), 1, "the agent rings\n{}", trace(&h));
    assert_eq!(offers[0].state, OfferState::Ringing);
    assert_eq!(offers[0].queue, "kassel/115");
    let q = h.queue("kassel/115");
    assert_eq!(q.counters.offers_unanswered, 0, "no offer reported failed");
    assert_eq!(q.offered, 1, "the ACD's offer is out");
    // Not a call: nothing of it counts against `sip.max_calls`.
    assert_eq!(h.active_calls(), 0);

    // The ring timeout (15 s) cancels the leg; the session is still
    // there, so the ACD offers it again rather than dropping it.
    h.run_for(Duration::from_secs(20));
    let offers = &h.phone("1001").offers;
    assert_eq!(offers[0].state, OfferState::Cancelled, "{}", trace(&h));
    assert!(offers.len() >= 2, "offered again\n{}", trace(&h));
    assert_eq!(h.queue("kassel/115").waiting, 1);
}

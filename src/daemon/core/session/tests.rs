//! The phase and its one writer.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cdr::{Disposition, Stage, Why};
use crate::dialplan::Target;

fn route() -> Arc<Route> {
    Arc::new(Route {
        tenant: "kassel".into(),
        tenant_name: "Kassel".into(),
        hotline: "115".into(),
        hotline_name: "115".into(),
        number: "115".into(),
        greeting: "welcome".into(),
        waiting: String::new(),
        queue: None,
        priority: 0,
        answer_after: Duration::ZERO,
    })
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_795_424_400 + secs).unwrap()
}

fn hotline_session() -> Session {
    let mut s = Session::new(
        SessionId(1),
        Phase::Ringing(Next::Hotline),
        route(),
        "anonymous".into(),
    );
    s.facts = Some(CallFacts::new("c1", at(0), None));
    s
}

#[test]
fn the_record_stage_follows_each_phase_entered() {
    let mut s = hotline_session();
    let stage = |s: &Session| s.facts.as_ref().unwrap().stage;
    assert_eq!(stage(&s), Stage::Ringing);
    // Answering is not news for the event stream; the queue is.
    assert!(!s.enter(Phase::Greeting(Next::Hotline), at(1)));
    assert_eq!(stage(&s), Stage::Greeting);
    assert!(s.enter(
        Phase::Queued {
            queue: "kassel/115".into()
        },
        at(5)
    ));
    assert_eq!(stage(&s), Stage::Queued);
    assert!(s.enter(Phase::Talking { leg: LegId(1) }, at(35)));
    assert_eq!(stage(&s), Stage::Talking);
    assert_eq!(s.phase().leg(), Some(LegId(1)));
    // The agent hung up: zentrale parts from the caller, and the record
    // still says the call was answered.
    assert!(!s.enter(Phase::Parting, at(95)));
    assert_eq!(*s.phase(), Phase::Parting);
    assert_eq!(stage(&s), Stage::Talking);
    assert_eq!(
        s.facts.as_ref().unwrap().disposition(),
        Disposition::Answered
    );
}

#[test]
fn leaving_and_closing_keep_the_reason_for_the_record() {
    let mut s = hotline_session();
    s.enter(Phase::Greeting(Next::Greeting(Target::call_later())), at(1));
    s.enter(Phase::Leaving(Why::Closed), at(9));
    assert_eq!(s.phase().ending_why(), Why::Closed);
    let why = s.phase().ending_why();
    s.enter(Phase::Closing(why), at(9));
    let f = s.facts.as_ref().unwrap();
    assert_eq!(f.stage, Stage::Ending(Why::Closed));
    assert_eq!(f.disposition(), Disposition::Closed);
    // A target the dialplan chose itself: planned.
    let mut planned = hotline_session();
    planned.enter(Phase::Menu, at(3));
    assert_eq!(planned.phase().ending_why(), Why::Planned);
}

#[test]
fn a_session_without_a_caller_is_over_only_once_ended() {
    let mut s = Session::new(
        SessionId(2),
        Phase::Queued { queue: "a".into() },
        route(),
        "anonymous".into(),
    );
    // A callback waiting in a queue: no caller leg, no leg, not over.
    assert!(s.caller.is_none() && s.legs.is_empty());
    assert!(!s.is_over());
    // No caller, no record: entering a phase changes only the phase.
    assert!(!s.enter(Phase::Waiting, at(1)));
    assert_eq!(*s.phase(), Phase::Waiting);
    assert!(!s.enter(Phase::Ended, at(2)));
    assert!(s.is_over());
}

#[test]
fn ending_keeps_the_record_as_it_was() {
    let mut s = hotline_session();
    s.enter(Phase::Greeting(Next::Hotline), at(1));
    assert!(s.enter(Phase::Menu, at(4)));
    assert!(!s.enter(Phase::Ended, at(9)));
    assert_eq!(s.facts.as_ref().unwrap().stage, Stage::Menu);
}

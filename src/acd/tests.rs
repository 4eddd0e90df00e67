//! Behaviour of the engine through its public API, with a virtual clock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An engine plus its clock origin; `t(s)` is `s` seconds in.
struct Fixture {
    acd: Acd,
    t0: Instant,
}

impl Fixture {
    fn new(spec: AcdSpec) -> Fixture {
        let t0 = Instant::now();
        Fixture {
            acd: Acd::new(spec, t0).expect("valid spec"),
            t0,
        }
    }

    fn t(&self, s: u64) -> Instant {
        self.t0 + secs(s)
    }

    /// Registered and logged in at `s`.
    fn ready(&self, agent: &str, s: u64) {
        self.acd.set_registered(agent, true, self.t(s)).unwrap();
        self.acd.agent_login(agent, self.t(s)).unwrap();
    }

    fn enqueue(&self, call: u64, queue: &str, priority: i32, s: u64) -> Admission {
        self.acd
            .enqueue(CallKey(call), queue, priority, self.t(s))
            .unwrap()
    }

    /// Dispatches at `s` and returns (call, agents) of each offer.
    fn dispatch(&self, s: u64) -> Vec<Offer> {
        self.acd.dispatch(self.t(s))
    }

    /// Answers and ends the call of a single-agent offer.
    fn serve(&self, offer: &Offer, answer: u64, end: u64) {
        let agent = offer.agents[0].clone();
        self.acd
            .offer_answered(offer.id, &agent, self.t(answer))
            .unwrap();
        self.acd.call_ended(offer.call, self.t(end)).unwrap();
    }

    fn agent(&self, id: &str) -> AgentSnapshot {
        self.acd
            .snapshot(self.t0)
            .agents
            .into_iter()
            .find(|a| &*a.id == id)
            .unwrap()
    }

    fn queue(&self, name: &str, s: u64) -> QueueSnapshot {
        self.acd
            .snapshot(self.t(s))
            .queues
            .into_iter()
            .find(|q| &*q.name == name)
            .unwrap()
    }
}

fn agents_of(offer: &Offer) -> Vec<&str> {
    offer.agents.iter().map(|a| a.as_ref()).collect()
}

/// One tenant `t`, one queue `q` (skill `s`), agents with `s` at the given
/// levels; no wrap-up unless a test sets one.
fn spec(strategy: Strategy, agents: &[(&str, u8)]) -> AcdSpec {
    let mut q = QueueSpec::new("q", "t", "s");
    q.strategy = strategy;
    AcdSpec {
        defaults: Defaults {
            wrap_up: Duration::ZERO,
            ..Defaults::default()
        },
        queues: vec![q],
        agents: agents
            .iter()
            .map(|(id, level)| AgentSpec::new(id, "t").with_skill("s", *level))
            .collect(),
        ..AcdSpec::default()
    }
}

// --- model -----------------------------------------------------------------

#[test]
fn spec_errors_say_what_to_fix() {
    let mut bad = spec(Strategy::LongestIdle, &[("a", 11)]);
    let err = Acd::new(bad.clone(), Instant::now()).unwrap_err();
    assert!(err.to_string().contains("outside 1-10"), "{err}");
    bad.agents[0] = AgentSpec::new("a", "t").with_skill("s", 5);
    bad.queues.push(QueueSpec::new("q", "t", "s"));
    let err = Acd::new(bad, Instant::now()).unwrap_err();
    assert_eq!(err, SpecError::DuplicateQueue("q".into()));
    let mut widen = spec(Strategy::LongestIdle, &[]);
    widen.queues[0].widen = vec![
        WidenStep {
            after: secs(60),
            min_level: 3,
            skill: None,
        },
        WidenStep {
            after: secs(30),
            min_level: 1,
            skill: None,
        },
    ];
    assert!(matches!(
        widen.validate(),
        Err(SpecError::WidenOrder { step: 2, .. })
    ));
}

#[test]
fn only_agents_of_the_tenant_with_the_skill_level_are_offered() {
    let mut s = spec(Strategy::LongestIdle, &[("low", 3), ("ok", 5)]);
    s.queues[0].min_level = 5;
    s.agents
        .push(AgentSpec::new("other-tenant", "u").with_skill("s", 9));
    s.agents
        .push(AgentSpec::new("other-skill", "t").with_skill("x", 9));
    let f = Fixture::new(s);
    for a in ["other-tenant", "other-skill", "low"] {
        f.ready(a, 0);
    }
    f.enqueue(1, "q", 0, 1);
    assert!(f.dispatch(1).is_empty());
    f.ready("ok", 2);
    let offers = f.dispatch(2);
    assert_eq!(agents_of(&offers[0]), ["ok"]);
}

#[test]
fn agents_from_lets_other_tenants_agents_serve_and_only_those_listed() {
    // The district queue `q` of tenant `t` is served by its own agents and
    // by the town hall `u`'s; tenant `v` is not listed.
    let mut s = spec(Strategy::LongestIdle, &[]);
    s.queues[0].agents_from = vec!["t".into(), "u".into()];
    for (id, tenant) in [("town-hall", "u"), ("elsewhere", "v"), ("district", "t")] {
        s.agents.push(AgentSpec::new(id, tenant).with_skill("s", 5));
    }
    let f = Fixture::new(s);
    f.ready("elsewhere", 0);
    f.enqueue(1, "q", 0, 1);
    assert!(f.dispatch(1).is_empty(), "tenant v is not in agents_from");
    f.ready("town-hall", 2);
    let offers = f.dispatch(2);
    assert_eq!(agents_of(&offers[0]), ["town-hall"]);
    f.serve(&offers[0], 3, 4);
    // Its own tenant serves because `t` is listed too.
    f.acd.agent_logout("town-hall", f.t(5)).unwrap();
    f.ready("district", 5);
    f.enqueue(2, "q", 0, 6);
    let offers = f.dispatch(6);
    assert_eq!(agents_of(&offers[0]), ["district"]);
}

#[test]
fn higher_priority_first_then_arrival_and_base_priority_adds() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    let mut vip = QueueSpec::new("vip", "t", "s");
    vip.base_priority = 10;
    s.queues.push(vip);
    let f = Fixture::new(s);
    f.enqueue(1, "q", 0, 0);
    f.enqueue(2, "q", 5, 1);
    f.enqueue(3, "q", 0, 2);
    f.enqueue(4, "vip", 0, 3);
    f.ready("a", 4);
    let mut order = Vec::new();
    for s in 5..9 {
        let offer = f.dispatch(s).pop().unwrap();
        order.push(offer.call.0);
        f.serve(&offer, s, s);
    }
    assert_eq!(order, [4, 2, 1, 3]);
}

// --- agent states ----------------------------------------------------------

#[test]
fn offered_only_when_logged_in_available_and_registered() {
    let f = Fixture::new(spec(Strategy::LongestIdle, &[("a", 5)]));
    f.enqueue(1, "q", 0, 0);
    f.acd.agent_login("a", f.t(1)).unwrap();
    assert!(f.dispatch(1).is_empty(), "not registered");
    assert_eq!(f.agent("a").state, AgentState::Available);
    f.acd.agent_pause("a", PauseReason::Break, f.t(2)).unwrap();
    f.acd.set_registered("a", true, f.t(3)).unwrap();
    assert!(f.dispatch(3).is_empty(), "paused");
    assert_eq!(
        f.acd
            .agent_pause("a", PauseReason::Other("Teamrunde".into()), f.t(4)),
        Ok(Applied::Now)
    );
    assert_eq!(
        f.agent("a").state,
        AgentState::Paused(PauseReason::Other("Teamrunde".into()))
    );
    f.acd.agent_unpause("a", f.t(5)).unwrap();
    assert_eq!(f.dispatch(5).len(), 1);
    assert_eq!(f.agent("a").state, AgentState::Reserved);
    assert_eq!(f.agent("a").call, Some(CallKey(1)));
}

#[test]
fn login_on_register_and_unregister_keeps_the_login() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.login_on_register = true;
    let f = Fixture::new(s);
    f.acd.set_registered("a", true, f.t(1)).unwrap();
    let a = f.agent("a");
    assert_eq!(
        (a.state, a.registered, a.since),
        (AgentState::Available, true, f.t(1))
    );
    f.acd.set_registered("a", false, f.t(2)).unwrap();
    assert_eq!(f.agent("a").state, AgentState::Available);
    f.enqueue(1, "q", 0, 3);
    assert!(f.dispatch(3).is_empty(), "unreachable agents get no offers");
    let counts = f.queue("q", 3).agents;
    assert_eq!((counts.available, counts.unreachable), (0, 1));
    f.acd.set_registered("a", true, f.t(4)).unwrap();
    assert_eq!(f.dispatch(4).len(), 1);
}

#[test]
fn agent_errors_name_the_problem() {
    let f = Fixture::new(spec(Strategy::LongestIdle, &[("a", 5)]));
    let now = f.t(0);
    assert_eq!(
        f.acd.agent_login("x", now),
        Err(AgentError::Unknown("x".into()))
    );
    assert_eq!(
        f.acd.agent_logout("a", now),
        Err(AgentError::NotLoggedIn("a".into()))
    );
    f.acd.agent_login("a", now).unwrap();
    assert_eq!(
        f.acd.agent_login("a", now),
        Err(AgentError::AlreadyLoggedIn("a".into()))
    );
    assert_eq!(
        f.acd.agent_unpause("a", now),
        Err(AgentError::NotPaused("a".into()))
    );
    assert_eq!(
        f.acd.agent_ready("a", now),
        Err(AgentError::NotInWrapUp("a".into()))
    );
    assert!(f.acd.agent_logout("a", now).is_ok());
}

#[test]
fn only_configured_pause_reasons_are_accepted() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.pause_reasons = vec!["lunch".into(), "meeting".into()];
    let f = Fixture::new(s);
    f.ready("a", 0);
    let err = f
        .acd
        .agent_pause("a", PauseReason::from_name("coffee"), f.t(1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown pause reason `coffee`: use one of lunch, meeting (acd.pause_reasons in the config)"
    );
    assert!(matches!(f.agent("a").state, AgentState::Available));
    assert_eq!(
        f.acd.default_pause_reason(),
        PauseReason::from_name("lunch")
    );
    f.acd
        .agent_pause("a", PauseReason::from_name("meeting"), f.t(2))
        .unwrap();
    // The engine's own pause after missed offers is always allowed.
    f.acd.agent_unpause("a", f.t(3)).unwrap();
    f.acd
        .agent_pause("a", PauseReason::NoAnswer, f.t(4))
        .unwrap();
}

#[test]
fn commands_answer_with_the_agent_as_they_left_it() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.pause_reasons = vec!["lunch".into(), "meeting".into()];
    let f = Fixture::new(s);
    let run =
        |action: AgentAction, at: u64| f.acd.command(&AgentCommand::new("a", action), f.t(at));
    let a = run(AgentAction::Login, 1).unwrap();
    assert_eq!((a.state, a.since), (AgentState::Available, f.t(1)));
    // No reason: the first configured one, as of when the command applies.
    let a = run(AgentAction::Pause { reason: None }, 2).unwrap();
    assert_eq!(a.state, AgentState::Paused(PauseReason::from_name("lunch")));
    let a = run(
        AgentAction::Pause {
            reason: Some(PauseReason::from_name("meeting")),
        },
        3,
    )
    .unwrap();
    assert_eq!(
        a.state,
        AgentState::Paused(PauseReason::from_name("meeting"))
    );
    assert_eq!(
        a,
        f.acd.agent_snapshot("a").unwrap(),
        "what a snapshot shows"
    );
    assert_eq!(
        run(AgentAction::Login, 4),
        Err(AgentError::AlreadyLoggedIn("a".into()))
    );
    assert_eq!(
        run(AgentAction::Ready, 4),
        Err(AgentError::NotInWrapUp("a".into()))
    );
    assert!(matches!(
        run(
            AgentAction::Pause {
                reason: Some(PauseReason::from_name("coffee"))
            },
            4
        ),
        Err(AgentError::UnknownPauseReason { .. })
    ));
    let a = run(AgentAction::Unpause, 5).unwrap();
    assert_eq!((a.state, a.since), (AgentState::Available, f.t(5)));
    assert_eq!(
        run(AgentAction::Logout, 6).unwrap().state,
        AgentState::LoggedOut
    );
    assert_eq!(
        f.acd
            .command(&AgentCommand::new("nobody", AgentAction::Login), f.t(7)),
        Err(AgentError::Unknown("nobody".into()))
    );
    assert_eq!(f.acd.agent_snapshot("nobody"), None);
}

#[test]
fn a_command_during_a_call_shows_as_pending_and_ready_ends_wrap_up() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.defaults.wrap_up = secs(30);
    let f = Fixture::new(s);
    f.ready("a", 0);
    f.enqueue(1, "q", 0, 1);
    let offer = f.dispatch(1).remove(0);
    f.acd.offer_answered(offer.id, "a", f.t(2)).unwrap();
    let pause = AgentCommand::new("a", AgentAction::Pause { reason: None });
    let a = f.acd.command(&pause, f.t(3)).unwrap();
    assert_eq!(a.state, AgentState::Talking);
    assert_eq!(a.pending, Some(PendingChange::Pause(PauseReason::Break)));
    assert_eq!(a.call, Some(CallKey(1)));
    f.acd.call_ended(CallKey(1), f.t(10)).unwrap();
    let ready = AgentCommand::new("a", AgentAction::Ready);
    let a = f.acd.command(&ready, f.t(12)).unwrap();
    assert_eq!(
        a.state,
        AgentState::Paused(PauseReason::Break),
        "the pending pause"
    );
    assert_eq!(a.call, None);
}

/// The same commands at the same instants leave two engines in the same
/// state: what a replay of recorded inputs relies on.
#[test]
fn replayed_commands_give_the_same_agents() {
    let commands = [
        (AgentAction::Login, 1),
        (AgentAction::Pause { reason: None }, 5),
        (AgentAction::Logout, 6),
        (AgentAction::Unpause, 7),
        (AgentAction::Login, 9),
        (
            AgentAction::Pause {
                reason: Some(PauseReason::Other("Teamrunde".into())),
            },
            12,
        ),
    ];
    let run = || {
        let f = Fixture::new(spec(Strategy::LongestIdle, &[("a", 5), ("b", 3)]));
        let outcomes: Vec<_> = commands
            .iter()
            .flat_map(|(action, at)| {
                ["a", "b"].map(|agent| {
                    f.acd
                        .command(&AgentCommand::new(agent, action.clone()), f.t(*at))
                        .map(|a| (a.state, a.since.duration_since(f.t0), a.pending))
                })
            })
            .collect();
        outcomes
    };
    let first = run();
    assert_eq!(first, run());
    assert!(
        first.iter().any(Result::is_err),
        "refusals are replayed too"
    );
}

#[test]
fn wrap_up_uses_agent_then_queue_then_default_and_can_end_early() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5), ("b", 5), ("c", 5)]);
    s.defaults.wrap_up = secs(30);
    s.agents[0].wrap_up = Some(secs(5));
    let mut q2 = QueueSpec::new("q2", "t", "s2");
    q2.wrap_up = Some(secs(60));
    s.queues.push(q2);
    s.agents[2].skills = [("s2".to_owned(), 5)].into();
    let f = Fixture::new(s);
    f.ready("a", 0);
    f.ready("b", 1);
    f.ready("c", 2);
    f.enqueue(1, "q", 0, 3);
    f.enqueue(2, "q", 0, 3);
    f.enqueue(3, "q2", 0, 3);
    let offers = f.dispatch(3);
    assert_eq!(offers.len(), 3);
    for o in &offers {
        f.serve(o, 4, 10);
    }
    assert_eq!(f.agent("a").state, AgentState::WrapUp);
    assert_eq!(
        f.agent("a").call,
        Some(CallKey(1)),
        "the call is shown during wrap-up"
    );
    assert_eq!(f.acd.poll_timeout(), Some(f.t(15)));
    assert_eq!(
        f.acd.handle_timeout(f.t(15)),
        [Event::WrapUpEnded { agent: "a".into() }]
    );
    assert_eq!(
        f.acd.handle_timeout(f.t(40)),
        [Event::WrapUpEnded { agent: "b".into() }]
    );
    assert_eq!(f.agent("c").state, AgentState::WrapUp);
    f.acd.agent_ready("c", f.t(41)).unwrap();
    assert_eq!(f.agent("c").state, AgentState::Available);
    assert!(
        f.acd.handle_timeout(f.t(70)).is_empty(),
        "stale wrap-up timer is ignored"
    );
}

#[test]
fn pause_and_logout_during_a_call_apply_after_wrap_up() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5), ("b", 5)]);
    s.defaults.wrap_up = secs(10);
    let f = Fixture::new(s);
    f.ready("a", 0);
    f.ready("b", 1);
    f.enqueue(1, "q", 0, 2);
    f.enqueue(2, "q", 0, 2);
    let offers = f.dispatch(2);
    assert_eq!(
        f.acd.agent_pause("a", PauseReason::BackOffice, f.t(3)),
        Ok(Applied::AfterCall)
    );
    assert_eq!(f.acd.agent_logout("b", f.t(3)), Ok(Applied::AfterCall));
    assert_eq!(f.agent("b").pending, Some(PendingChange::Logout));
    for o in &offers {
        f.serve(o, 4, 20);
    }
    f.acd.handle_timeout(f.t(30));
    assert_eq!(
        f.agent("a").state,
        AgentState::Paused(PauseReason::BackOffice)
    );
    assert_eq!(f.agent("a").since, f.t(30));
    assert_eq!(f.agent("b").state, AgentState::LoggedOut);
}

// --- strategies ------------------------------------------------------------

/// Serves `calls` callers one at a time (each ends at once) and returns the
/// agents in the order they were offered.
fn serve_in_turn(f: &Fixture, calls: u64, start: u64) -> Vec<String> {
    let mut got = Vec::new();
    for i in 0..calls {
        let s = start + i * 10;
        f.enqueue(100 + i, "q", 0, s);
        let offer = f.dispatch(s).pop().expect("an offer");
        got.push(offer.agents[0].to_string());
        f.serve(&offer, s + 1, s + 2);
    }
    got
}

#[test]
fn longest_idle_picks_who_waited_longest() {
    let f = Fixture::new(spec(Strategy::LongestIdle, &[("a", 5), ("b", 5), ("c", 5)]));
    f.ready("c", 0);
    f.ready("a", 1);
    f.ready("b", 2);
    assert_eq!(serve_in_turn(&f, 4, 10), ["c", "a", "b", "c"]);
}

#[test]
fn round_robin_continues_after_the_last_agent_offered() {
    let f = Fixture::new(spec(Strategy::RoundRobin, &[("a", 5), ("b", 5), ("c", 5)]));
    // Login order would make longest-idle pick c first; round robin does not care.
    f.ready("c", 0);
    f.ready("b", 1);
    f.ready("a", 2);
    assert_eq!(serve_in_turn(&f, 4, 10), ["a", "b", "c", "a"]);
    f.acd
        .agent_pause("b", PauseReason::Break, f.t(100))
        .unwrap();
    assert_eq!(
        serve_in_turn(&f, 2, 110),
        ["c", "a"],
        "skips the paused one"
    );
}

#[test]
fn fewest_calls_counts_answered_calls_until_reset_day() {
    let f = Fixture::new(spec(Strategy::FewestCalls, &[("a", 5), ("b", 5)]));
    f.ready("a", 0);
    f.acd.enqueue(CallKey(1), "q", 0, f.t(1)).unwrap();
    let o = f.dispatch(1).pop().unwrap();
    f.serve(&o, 2, 3);
    f.ready("b", 4);
    // a idles longer (since 3) than b (since 4), but has one call more.
    assert_eq!(serve_in_turn(&f, 3, 10), ["b", "a", "b"]);
    assert_eq!(f.agent("b").answered_today, 2);
    f.acd.reset_day();
    assert_eq!(f.agent("b").answered_today, 0);
    // Even now: the one idle longer (a, since 22) goes first.
    assert_eq!(serve_in_turn(&f, 1, 50), ["a"]);
}

#[test]
fn least_talk_time_prefers_who_talked_least_today() {
    let f = Fixture::new(spec(Strategy::LeastTalkTime, &[("a", 5), ("b", 5)]));
    f.ready("a", 0);
    f.ready("b", 0);
    f.enqueue(1, "q", 0, 1);
    f.enqueue(2, "q", 0, 1);
    let offers = f.dispatch(1);
    let talk = |o: &Offer| if &*o.agents[0] == "a" { 300 } else { 60 };
    for o in &offers {
        f.serve(o, 2, 2 + talk(o));
    }
    assert_eq!(f.agent("a").talk_today, secs(300));
    assert_eq!(serve_in_turn(&f, 2, 400), ["b", "b"]);
}

#[test]
fn skills_first_prefers_the_best_level_then_longest_idle() {
    let f = Fixture::new(spec(
        Strategy::SkillsFirst,
        &[("junior", 3), ("senior", 9), ("senior2", 9)],
    ));
    f.ready("junior", 0);
    f.ready("senior2", 1);
    f.ready("senior", 2);
    f.enqueue(1, "q", 0, 3);
    f.enqueue(2, "q", 0, 3);
    f.enqueue(3, "q", 0, 3);
    let offers = f.dispatch(3);
    let order: Vec<&str> = offers.iter().map(|o| o.agents[0].as_ref()).collect();
    assert_eq!(order, ["senior2", "senior", "junior"]);
}

#[test]
fn ring_all_offers_everyone_and_cancels_the_others_on_answer() {
    let f = Fixture::new(spec(Strategy::RingAll, &[("a", 5), ("b", 5), ("c", 5)]));
    f.ready("a", 0);
    f.ready("b", 1);
    f.ready("c", 2);
    f.enqueue(1, "q", 0, 3);
    f.enqueue(2, "q", 0, 3);
    let offers = f.dispatch(3);
    assert_eq!(offers.len(), 1, "everyone rings for the first caller");
    assert_eq!(agents_of(&offers[0]), ["a", "b", "c"]);
    let id = offers[0].id;
    f.acd.offer_ringing(id, "b", f.t(4)).unwrap();
    assert_eq!(f.agent("b").state, AgentState::Ringing);
    let events = f.acd.offer_answered(id, "b", f.t(5)).unwrap();
    assert_eq!(
        events,
        [
            Event::Answered {
                call: CallKey(1),
                queue: "q".into(),
                agent: "b".into(),
                waited: secs(2)
            },
            Event::CancelOffer {
                offer: id,
                call: CallKey(1),
                agent: "a".into()
            },
            Event::CancelOffer {
                offer: id,
                call: CallKey(1),
                agent: "c".into()
            },
        ]
    );
    assert_eq!(
        f.acd.offer_answered(id, "c", f.t(5)),
        Err(OfferError::UnknownOffer(id)),
        "too late"
    );
    let next = f.dispatch(6);
    assert_eq!(agents_of(&next[0]), ["a", "c"]);
}

#[test]
fn ring_all_caller_returns_only_when_every_leg_failed() {
    let f = Fixture::new(spec(Strategy::RingAll, &[("a", 5), ("b", 5)]));
    f.ready("a", 0);
    f.ready("b", 0);
    f.enqueue(1, "q", 0, 1);
    let id = f.dispatch(1)[0].id;
    f.acd
        .offer_failed(id, "a", OfferFailure::Busy, f.t(2))
        .unwrap();
    assert_eq!(f.queue("q", 2).offered, 1, "b still rings");
    assert!(f.dispatch(2).is_empty(), "still on offer");
    f.acd
        .offer_failed(id, "b", OfferFailure::Declined, f.t(3))
        .unwrap();
    assert_eq!(f.queue("q", 3).offered, 0);
    assert_eq!(f.dispatch(3).len(), 1);
}

// --- penalty widening and fairness -------------------------------------------

#[test]
fn widening_accepts_lower_levels_then_another_group_keeping_places() {
    let mut s = spec(Strategy::LongestIdle, &[("expert", 9), ("novice", 4)]);
    s.queues[0].min_level = 8;
    s.queues[0].widen = vec![
        WidenStep {
            after: secs(30),
            min_level: 3,
            skill: None,
        },
        WidenStep {
            after: secs(60),
            min_level: 1,
            skill: Some("bezirk".into()),
        },
    ];
    s.agents
        .push(AgentSpec::new("district", "t").with_skill("bezirk", 2));
    let f = Fixture::new(s);
    f.ready("novice", 0);
    f.ready("district", 0);
    f.enqueue(1, "q", 0, 0);
    f.enqueue(2, "q", 0, 10);
    assert!(f.dispatch(0).is_empty());
    assert_eq!(
        f.acd.poll_timeout(),
        Some(f.t(30)),
        "the daemon is woken to widen"
    );
    assert!(f.acd.handle_timeout(f.t(30)).is_empty());
    let offers = f.dispatch(30);
    assert_eq!(offers.len(), 1);
    assert_eq!(
        (offers[0].call, agents_of(&offers[0])),
        (CallKey(1), vec!["novice"])
    );
    f.acd
        .offer_failed(offers[0].id, "novice", OfferFailure::Declined, f.t(31))
        .unwrap();
    f.acd
        .agent_pause("novice", PauseReason::Break, f.t(31))
        .unwrap();
    // At 45 s both callers accept novice; caller 1 keeps its place ahead.
    assert!(
        f.acd.handle_timeout(f.t(45)).is_empty(),
        "caller 2 widens at 40 s"
    );
    f.acd.agent_unpause("novice", f.t(45)).unwrap();
    let offers = f.dispatch(45);
    assert_eq!(offers.len(), 1);
    assert_eq!(
        (offers[0].call, agents_of(&offers[0])),
        (CallKey(1), vec!["novice"])
    );
    f.acd.handle_timeout(f.t(69));
    assert!(
        f.dispatch(69).is_empty(),
        "caller 2 does not take district before 60 s"
    );
    f.acd.handle_timeout(f.t(70));
    let second = f.dispatch(70);
    assert_eq!(
        (second[0].call, agents_of(&second[0])),
        (CallKey(2), vec!["district"])
    );
    // Caller 1 passed 60 s while ringing at novice: back from the offer it
    // is in the widest tier at once, ahead of caller 2.
    let fail = |offer: &Offer, s| {
        let agent = offer.agents[0].clone();
        f.acd
            .offer_failed(offer.id, &agent, OfferFailure::Declined, f.t(s))
            .unwrap();
    };
    fail(&offers[0], 71);
    f.acd
        .agent_pause("novice", PauseReason::Break, f.t(71))
        .unwrap();
    fail(&second[0], 72);
    let third = f.dispatch(72);
    assert_eq!(
        (third[0].call, agents_of(&third[0])),
        (CallKey(1), vec!["district"])
    );
}

#[test]
fn an_agent_in_several_queues_takes_the_best_caller_across_them() {
    let mut s = spec(Strategy::LongestIdle, &[]);
    s.queues.push(QueueSpec::new("q2", "t", "y"));
    s.agents.push(
        AgentSpec::new("both", "t")
            .with_skill("s", 5)
            .with_skill("y", 5),
    );
    let f = Fixture::new(s);
    f.enqueue(1, "q2", 0, 0);
    f.enqueue(2, "q", 0, 5);
    f.enqueue(3, "q", 1, 6);
    f.ready("both", 10);
    let mut order = Vec::new();
    for s in 10..13 {
        let o = f.dispatch(s).pop().unwrap();
        order.push(o.call.0);
        f.serve(&o, s, s);
    }
    // Priority first (3), then arrival across queues (1 before 2), not spec order.
    assert_eq!(order, [3, 1, 2]);
}

// --- queue behaviour ---------------------------------------------------------

#[test]
fn admission_rejects_full_too_long_and_empty_queues() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.queues[0].max_waiting = Some(2);
    s.queues[0].join_empty = false;
    s.queues[0].max_expected_wait = Some(secs(300));
    let f = Fixture::new(s);
    assert_eq!(
        f.enqueue(1, "q", 0, 0),
        Admission::Rejected(RejectReason::NoAgents)
    );
    f.ready("a", 1);
    f.acd.agent_pause("a", PauseReason::Break, f.t(1)).unwrap();
    // Paused still counts as logged in; default handle time 180 s, one agent.
    assert_eq!(
        f.enqueue(1, "q", 0, 2),
        Admission::Queued {
            position: 1,
            expected_wait: secs(180)
        }
    );
    assert_eq!(
        f.enqueue(2, "q", 0, 3),
        Admission::Rejected(RejectReason::WaitTooLong)
    );
    assert_eq!(
        f.enqueue(2, "q", 9, 3),
        Admission::Queued {
            position: 1,
            expected_wait: secs(180)
        },
        "a priority caller goes first"
    );
    assert_eq!(
        f.enqueue(3, "q", 9, 4),
        Admission::Rejected(RejectReason::QueueFull)
    );
    let c = f.queue("q", 4).counters;
    assert_eq!(
        (
            c.entered,
            c.rejected_no_agents,
            c.rejected_wait_too_long,
            c.rejected_full
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(
        f.acd.enqueue(CallKey(1), "q", 0, f.t(5)),
        Err(CallError::AlreadyQueued(CallKey(1)))
    );
    assert_eq!(
        f.acd.enqueue(CallKey(7), "nope", 0, f.t(5)),
        Err(CallError::UnknownQueue("nope".into()))
    );
}

#[test]
fn expected_wait_follows_recent_handle_times_and_free_agents() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5), ("b", 5)]);
    s.defaults.wrap_up = secs(20);
    s.defaults.handle_time_samples = 2;
    let f = Fixture::new(s);
    f.ready("a", 0);
    f.ready("b", 0);
    assert_eq!(
        f.enqueue(1, "q", 0, 1),
        Admission::Queued {
            position: 1,
            expected_wait: Duration::ZERO
        },
        "a free agent takes it at once"
    );
    f.enqueue(2, "q", 0, 1);
    let offers = f.dispatch(1);
    f.serve(&offers[0], 2, 82); // 80 s talk + 20 s wrap-up
    f.serve(&offers[1], 2, 42); // 40 s talk + 20 s wrap-up
    // Both in wrap-up: average handle 80 s over 2 agents, 3rd in line.
    f.enqueue(3, "q", 0, 90);
    f.enqueue(4, "q", 0, 90);
    assert_eq!(
        f.enqueue(5, "q", 0, 90),
        Admission::Queued {
            position: 3,
            expected_wait: secs(120)
        }
    );
    assert_eq!(f.queue("q", 90).handle_time, secs(80));
}

#[test]
fn max_wait_times_out_and_the_caller_keeps_its_arrival_elsewhere() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.queues[0].max_wait = Some(secs(60));
    s.queues.push(QueueSpec::new("overflow", "t", "s"));
    let f = Fixture::new(s);
    f.enqueue(1, "q", 3, 0);
    f.enqueue(2, "overflow", 3, 10);
    assert_eq!(f.acd.poll_timeout(), Some(f.t(60)));
    let events = f.acd.handle_timeout(f.t(60));
    assert_eq!(
        events,
        [Event::WaitTimeout {
            call: CallKey(1),
            queue: "q".into(),
            arrival: f.t(0),
            priority: 3
        }]
    );
    assert_eq!(f.queue("q", 60).counters.timed_out, 1);
    assert_eq!(
        f.acd.abandon(CallKey(1), f.t(61)),
        Err(CallError::UnknownCall(CallKey(1)))
    );
    let Event::WaitTimeout {
        arrival, priority, ..
    } = events[0].clone()
    else {
        unreachable!()
    };
    assert_eq!(
        f.acd
            .enqueue_since(CallKey(1), "overflow", priority, arrival, f.t(61))
            .unwrap(),
        Admission::Queued {
            position: 1,
            expected_wait: secs(180)
        },
        "ahead of call 2, who came later"
    );
    f.ready("a", 62);
    assert_eq!(f.dispatch(62)[0].call, CallKey(1));
}

#[test]
fn max_wait_while_ringing_times_out_when_the_offer_fails() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.queues[0].max_wait = Some(secs(60));
    let f = Fixture::new(s);
    f.enqueue(1, "q", 0, 0);
    f.ready("a", 50);
    let id = f.dispatch(50)[0].id;
    assert!(f.acd.handle_timeout(f.t(60)).is_empty(), "ringing: not yet");
    let events = f
        .acd
        .offer_failed(id, "a", OfferFailure::Timeout, f.t(62))
        .unwrap();
    assert!(matches!(
        events[..],
        [Event::WaitTimeout {
            call: CallKey(1),
            ..
        }]
    ));
    assert!(f.acd.handle_timeout(f.t(100)).is_empty());
    assert_eq!(f.queue("q", 100).waiting, 0);
}

#[test]
fn announcements_tell_position_only_when_it_improved() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.queues[0].announce_every = secs(30);
    let f = Fixture::new(s);
    f.enqueue(1, "q", 0, 0);
    f.enqueue(2, "q", 0, 1);
    f.enqueue(3, "q", 0, 2);
    let ann = |call: u64, position: Option<u32>, minutes: u32| Event::Announce {
        call: CallKey(call),
        queue: "q".into(),
        position,
        expected_wait_minutes: minutes,
    };
    // Nobody logged in: estimates count one agent at 180 s per call.
    assert_eq!(f.acd.handle_timeout(f.t(30)), [ann(1, Some(1), 3)]);
    assert_eq!(f.acd.handle_timeout(f.t(31)), [ann(2, Some(2), 6)]);
    assert_eq!(f.acd.handle_timeout(f.t(32)), [ann(3, Some(3), 9)]);
    f.acd.abandon(CallKey(1), f.t(40)).unwrap();
    assert_eq!(f.acd.handle_timeout(f.t(61)), [ann(2, Some(1), 3)]);
    assert_eq!(f.acd.handle_timeout(f.t(62)), [ann(3, Some(2), 6)]);
    assert_eq!(f.acd.handle_timeout(f.t(91)), [ann(2, None, 3)], "no news");
    // A late wake-up (92 was missed, 122 is due) gives one announcement
    // each and keeps the rhythm: next at 151 and 152.
    let late = f.acd.handle_timeout(f.t(125));
    assert_eq!(late, [ann(3, None, 6), ann(2, None, 3)]);
    assert_eq!(f.acd.poll_timeout(), Some(f.t(151)));
    assert_eq!(
        f.acd.handle_timeout(f.t(152)),
        [ann(2, None, 3), ann(3, None, 6)]
    );
}

#[test]
fn positions_count_across_priorities_and_widening_lanes() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.queues[0].announce_every = secs(30);
    s.queues[0].widen = vec![WidenStep {
        after: secs(32),
        min_level: 1,
        skill: None,
    }];
    let f = Fixture::new(s);
    for (call, priority) in [(1, 0), (2, 5), (3, 0), (4, 9), (5, 0)] {
        f.enqueue(call, "q", priority, call - 1);
    }
    // One wake-up for all five announcements; callers 1-3 changed lane first.
    let positions: Vec<(u64, Option<u32>)> = f
        .acd
        .handle_timeout(f.t(34))
        .into_iter()
        .map(|e| match e {
            Event::Announce { call, position, .. } => (call.0, position),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        positions,
        [
            (1, Some(3)),
            (2, Some(2)),
            (3, Some(4)),
            (4, Some(1)),
            (5, Some(5))
        ]
    );
    // Alone, each count agrees.
    f.acd.abandon(CallKey(4), f.t(35)).unwrap();
    let ann = f.acd.handle_timeout(f.t(60));
    assert!(matches!(
        ann[..],
        [Event::Announce {
            call: CallKey(1),
            position: Some(2),
            ..
        }]
    ));
    let ann = f.acd.handle_timeout(f.t(61));
    assert!(matches!(
        ann[..],
        [Event::Announce {
            call: CallKey(2),
            position: Some(1),
            ..
        }]
    ));
}

#[test]
fn ring_timeout_then_failed_offer_keeps_the_callers_place() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5), ("b", 5)]);
    s.queues[0].ring_timeout = Some(secs(20));
    let f = Fixture::new(s);
    f.ready("a", 0);
    f.enqueue(1, "q", 0, 1);
    f.enqueue(2, "q", 0, 2);
    let offer = f.dispatch(3).pop().unwrap();
    assert_eq!((offer.call, offer.ring_timeout), (CallKey(1), secs(20)));
    assert_eq!(f.acd.poll_timeout(), Some(f.t(23)));
    assert_eq!(
        f.acd.handle_timeout(f.t(23)),
        [Event::OfferTimeout {
            offer: offer.id,
            call: CallKey(1),
            queue: "q".into(),
            agents: vec!["a".into()]
        }]
    );
    f.acd
        .offer_failed(offer.id, "a", OfferFailure::Timeout, f.t(23))
        .unwrap();
    assert_eq!(f.agent("a").last_failure, Some(OfferFailure::Timeout));
    assert_eq!(f.queue("q", 23).counters.offers_unanswered, 1);
    f.ready("b", 24);
    // Caller 1 is still first, and goes to b rather than back to a.
    let offers = f.dispatch(24);
    assert_eq!(offers.len(), 2);
    assert_eq!(
        (offers[0].call, agents_of(&offers[0])),
        (CallKey(1), vec!["b"])
    );
    assert_eq!(
        (offers[1].call, agents_of(&offers[1])),
        (CallKey(2), vec!["a"])
    );
}

#[test]
fn missed_offers_in_a_row_pause_the_agent_and_an_answer_resets_the_count() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5), ("b", 5)]);
    s.defaults.max_missed_offers = 2;
    s.agents[1].max_missed_offers = Some(1);
    let f = Fixture::new(s);
    f.ready("a", 0);
    f.enqueue(1, "q", 0, 1);
    let miss = |s: u64| {
        let o = f.dispatch(s).pop().unwrap();
        let agent = o.agents[0].clone();
        f.acd
            .offer_failed(o.id, &agent, OfferFailure::Timeout, f.t(s))
            .unwrap()
    };
    assert!(miss(2).is_empty());
    let o = f.dispatch(3).pop().unwrap();
    f.acd.offer_answered(o.id, "a", f.t(3)).unwrap();
    f.acd.call_ended(CallKey(1), f.t(4)).unwrap();
    assert_eq!(f.agent("a").missed_in_row, 0);
    f.enqueue(2, "q", 0, 5);
    assert!(miss(5).is_empty());
    assert_eq!(
        miss(6),
        [Event::AgentPaused {
            agent: "a".into(),
            reason: PauseReason::NoAnswer
        }]
    );
    assert_eq!(
        f.agent("a").state,
        AgentState::Paused(PauseReason::NoAnswer)
    );
    f.ready("b", 7);
    assert_eq!(miss(7).len(), 1, "b's own limit is one");
}

#[test]
fn an_offer_zentrale_could_not_place_is_no_miss_of_the_agent() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.defaults.max_missed_offers = 1;
    let f = Fixture::new(s);
    f.ready("a", 0);
    f.enqueue(1, "q", 0, 1);
    for at in 2..6 {
        let o = f.dispatch(at).pop().expect("offered again");
        assert_eq!(agents_of(&o), vec!["a"]);
        let events = f
            .acd
            .offer_failed(o.id, "a", OfferFailure::NotPlaced, f.t(at))
            .unwrap();
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(f.agent("a").state, AgentState::Available);
        assert_eq!(f.agent("a").missed_in_row, 0);
    }
    assert_eq!(f.queue("q", 6).counters.offers_unanswered, 0);
    assert_eq!(f.queue("q", 6).waiting, 1, "the caller keeps waiting");
    // A real miss still counts.
    let o = f.dispatch(7).pop().unwrap();
    let events = f
        .acd
        .offer_failed(o.id, "a", OfferFailure::Timeout, f.t(7))
        .unwrap();
    assert_eq!(
        events,
        [Event::AgentPaused {
            agent: "a".into(),
            reason: PauseReason::NoAnswer
        }]
    );
}

#[test]
fn abandon_while_offered_names_the_legs_to_cancel_and_counts() {
    let f = Fixture::new(spec(Strategy::LongestIdle, &[("a", 5)]));
    f.ready("a", 0);
    f.enqueue(1, "q", 0, 0);
    f.enqueue(2, "q", 0, 0);
    let offer = f.dispatch(1).pop().unwrap();
    let cancel = f.acd.abandon(CallKey(1), f.t(50)).unwrap();
    assert_eq!(
        cancel,
        Some(Cancel {
            offer: offer.id,
            agents: vec!["a".into()]
        })
    );
    assert_eq!(f.agent("a").state, AgentState::Available);
    assert_eq!(
        f.acd.offer_answered(offer.id, "a", f.t(51)),
        Err(OfferError::UnknownOffer(offer.id))
    );
    assert_eq!(f.acd.abandon(CallKey(2), f.t(52)), Ok(None));
    let c = f.queue("q", 52).counters;
    assert_eq!((c.abandoned, c.abandoned_in_threshold), (2, 0));
    assert_eq!(f.queue("q", 52).waiting, 0);
    assert!(f.dispatch(53).is_empty());
    assert_eq!(f.acd.poll_timeout(), None, "no timers left behind");
}

#[test]
fn move_caller_keeps_arrival_and_a_rejected_move_keeps_the_caller() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    let mut overflow = QueueSpec::new("overflow", "t", "s");
    overflow.max_waiting = Some(2);
    s.queues.push(overflow);
    let f = Fixture::new(s);
    f.enqueue(1, "q", 0, 0);
    f.enqueue(2, "overflow", 0, 5);
    assert_eq!(
        f.acd.move_caller(CallKey(1), "overflow", None, f.t(10)),
        Ok(Admission::Queued {
            position: 1,
            expected_wait: secs(180)
        })
    );
    f.enqueue(3, "q", 0, 11);
    assert_eq!(
        f.acd.move_caller(CallKey(3), "overflow", Some(0), f.t(12)),
        Ok(Admission::Rejected(RejectReason::QueueFull))
    );
    assert_eq!(
        f.acd.move_caller(CallKey(3), "q", None, f.t(12)),
        Err(CallError::SameQueue(CallKey(3), "q".into()))
    );
    let q = f.queue("q", 12);
    assert_eq!(
        (q.waiting, q.counters.entered, q.counters.moved_out),
        (1, 2, 1)
    );
    let o = f.queue("overflow", 12);
    assert_eq!(
        (o.waiting, o.counters.entered, o.longest_wait),
        (2, 2, Some(secs(7)))
    );
    f.ready("a", 13);
    assert_eq!(f.dispatch(13)[0].call, CallKey(1));
    assert_eq!(
        f.acd.move_caller(CallKey(1), "q", None, f.t(14)),
        Err(CallError::BeingOffered(CallKey(1)))
    );
}

// --- service level and figures -----------------------------------------------

#[test]
fn service_level_counters_gauges_and_samples() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5), ("b", 5)]);
    s.queues[0].service_level = Some(ServiceLevelSpec {
        threshold: secs(20),
        target_percent: 50,
        ..ServiceLevelSpec::default()
    });
    s.queues.push(QueueSpec::new("other", "u", "s"));
    s.agents.push(AgentSpec::new("c", "u").with_skill("s", 5));
    let f = Fixture::new(s);
    f.enqueue(1, "q", 0, 0);
    f.enqueue(2, "q", 0, 0);
    f.enqueue(3, "q", 0, 1);
    f.enqueue(4, "q", 0, 2);
    let q = f.queue("q", 12);
    assert_eq!((q.waiting, q.longest_wait), (4, Some(secs(12))));
    f.acd.abandon(CallKey(4), f.t(12)).unwrap(); // short: ignored
    f.ready("a", 15);
    let o1 = f.dispatch(15).pop().unwrap();
    let events = f.acd.offer_answered(o1.id, "a", f.t(16)).unwrap();
    assert!(matches!(&events[0], Event::Answered { waited, .. } if *waited == secs(16)));
    f.ready("b", 25);
    let o2 = f.dispatch(25).pop().unwrap();
    f.acd.offer_answered(o2.id, "b", f.t(30)).unwrap(); // 30 s: late
    f.acd.abandon(CallKey(3), f.t(40)).unwrap(); // 39 s: late
    let ended = f.acd.call_ended(CallKey(1), f.t(76)).unwrap();
    assert_eq!(
        ended,
        [Event::CallEnded {
            call: CallKey(1),
            queue: "q".into(),
            agent: "a".into(),
            talk: secs(60)
        }]
    );
    f.ready("c", 77);
    let q = f.queue("q", 80);
    assert_eq!(q.waiting, 0);
    assert_eq!(q.longest_wait, None);
    let c = q.counters;
    assert_eq!((c.entered, c.answered, c.answered_in_threshold), (4, 2, 1));
    assert_eq!((c.abandoned, c.abandoned_in_threshold), (2, 1));
    let sl = q.service_level;
    assert_eq!((sl.in_threshold, sl.judged), (1, 3));
    assert!((sl.percent.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(sl.met(), Some(false));
    assert_eq!(
        (q.agents.available, q.agents.talking, q.agents.logged_out),
        (1, 1, 0),
        "c belongs to another tenant"
    );
    let snap = f.acd.snapshot(f.t(80));
    let tenant_u = snap.tenants.iter().find(|t| &*t.tenant == "u").unwrap();
    assert_eq!(tenant_u.agents.available, 1);
    let b = snap.agents.iter().find(|a| &*a.id == "b").unwrap();
    assert_eq!(
        (&b.state, b.call, b.queue.as_deref(), b.since),
        (&AgentState::Talking, Some(CallKey(2)), Some("q"), f.t(30))
    );
    // An hour later the window is empty again.
    assert_eq!(f.queue("q", 4000).service_level.percent, None);
}

/// A queue serving two towns: each segment gets the queue's counters and
/// service level over its own callers, with the queue's threshold and
/// window; the segments add up to the queue, callers without a segment
/// count only for the queue, and a moved caller takes its segment along.
#[test]
fn segments_split_counters_and_service_level_with_the_queues_rules() {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5)]);
    s.queues[0].service_level = Some(ServiceLevelSpec {
        threshold: secs(20),
        window: secs(600),
        ..ServiceLevelSpec::default()
    });
    s.queues.push(QueueSpec::new("town", "t", "s"));
    let f = Fixture::new(s);
    let seg = |m: &str, via_115: bool| Segment {
        municipality: Arc::from(m),
        via_115,
    };
    let (quickborn, pinneberg) = (seg("Quickborn", false), seg("Kreis Pinneberg", true));
    let join = |call: u64, queue: &str, segment: &Segment, at: u64| {
        f.acd
            .enqueue_segment(
                CallKey(call),
                queue,
                0,
                f.t(at),
                Some(segment.clone()),
                f.t(at),
            )
            .unwrap()
    };
    join(1, "q", &quickborn, 0);
    join(2, "q", &pinneberg, 0);
    join(3, "town", &quickborn, 0);
    f.enqueue(4, "q", 0, 0);
    // Quickborn's caller 3 overflows from the town's queue after 5 s.
    f.acd.move_caller(CallKey(3), "q", None, f.t(5)).unwrap();
    f.ready("a", 10);
    let first = f.dispatch(10).pop().unwrap();
    assert_eq!(first.call, CallKey(1));
    f.serve(&first, 12, 20); // Quickborn, 12 s: in time
    f.acd.abandon(CallKey(2), f.t(50)).unwrap(); // Kreis Pinneberg, 50 s: missed
    let next = f.dispatch(60).pop().unwrap();
    assert_eq!(next.call, CallKey(3));
    f.serve(&next, 61, 70); // Quickborn, 56 s since the move: late
    f.acd.abandon(CallKey(4), f.t(71)).unwrap(); // no segment, 71 s: missed

    let q = f.queue("q", 80);
    let by = |s: &Segment| {
        q.segments
            .iter()
            .find(|x| x.segment == *s)
            .unwrap_or_else(|| panic!("no segment {s:?} in {:?}", q.segments))
    };
    assert_eq!(
        q.segments
            .iter()
            .map(|x| x.segment.clone())
            .collect::<Vec<_>>(),
        [pinneberg.clone(), quickborn.clone()],
        "sorted by segment"
    );
    let qb = by(&quickborn);
    assert_eq!(
        (
            qb.counters.entered,
            qb.counters.answered,
            qb.counters.answered_in_threshold
        ),
        (2, 2, 1)
    );
    assert_eq!(
        (qb.service_level.in_threshold, qb.service_level.judged),
        (1, 2)
    );
    assert_eq!(qb.service_level.percent, Some(50.0));
    assert_eq!(qb.service_level.threshold, secs(20));
    let pb = by(&pinneberg);
    assert_eq!((pb.counters.entered, pb.counters.abandoned), (1, 1));
    assert_eq!(pb.service_level.percent, Some(0.0));
    // The queue: all four; the segments only their own.
    assert_eq!((q.counters.entered, q.counters.answered), (4, 2));
    assert_eq!(q.counters.abandoned, 2);
    assert_eq!(
        (q.service_level.in_threshold, q.service_level.judged),
        (1, 4)
    );
    let town = f.queue("town", 80);
    assert_eq!(town.segments.len(), 1);
    assert_eq!(
        (
            town.segments[0].counters.entered,
            town.segments[0].counters.moved_out
        ),
        (1, 1)
    );
    // The window slides for segments as for the queue.
    let later = f.queue("q", 20 + 600 + 60);
    assert_eq!(later.segments[1].service_level.percent, None);
}

#[test]
fn call_errors_point_to_the_right_report() {
    let f = Fixture::new(spec(Strategy::LongestIdle, &[("a", 5)]));
    f.ready("a", 0);
    f.enqueue(1, "q", 0, 0);
    assert_eq!(
        f.acd.call_ended(CallKey(1), f.t(1)),
        Err(CallError::NotConnected(CallKey(1)))
    );
    let o = f.dispatch(1).pop().unwrap();
    assert_eq!(
        f.acd.offer_answered(o.id, "b", f.t(2)),
        Err(OfferError::NotOnOffer {
            offer: o.id,
            agent: "b".into()
        })
    );
    f.acd.offer_answered(o.id, "a", f.t(2)).unwrap();
    assert_eq!(
        f.acd.abandon(CallKey(1), f.t(3)),
        Err(CallError::Connected(CallKey(1)))
    );
    f.acd.call_ended(CallKey(1), f.t(4)).unwrap();
    assert_eq!(
        f.acd.call_ended(CallKey(1), f.t(5)),
        Err(CallError::UnknownCall(CallKey(1)))
    );
}

// --- reload and determinism ----------------------------------------------------

#[test]
fn update_spec_keeps_callers_and_agent_states() {
    let base = spec(Strategy::LongestIdle, &[("a", 5), ("b", 5)]);
    let f = Fixture::new(base.clone());
    f.ready("a", 0);
    f.acd
        .agent_pause("a", PauseReason::Training, f.t(0))
        .unwrap();
    f.enqueue(1, "q", 0, 1);
    f.enqueue(2, "q", 0, 2);

    let mut next = base.clone();
    next.queues[0].strategy = Strategy::RoundRobin;
    next.agents
        .push(AgentSpec::new("c", "t").with_skill("s", 5));
    next.queues.push(QueueSpec::new("new", "t", "s"));
    f.acd.update_spec(next.clone()).unwrap();
    assert_eq!(
        f.agent("a").state,
        AgentState::Paused(PauseReason::Training)
    );
    let q = f.queue("q", 3);
    assert_eq!(
        (q.waiting, q.strategy, q.counters.entered),
        (2, Strategy::RoundRobin, 2)
    );
    f.ready("c", 3);
    let offers = f.dispatch(3);
    assert_eq!(
        (offers[0].call, agents_of(&offers[0])),
        (CallKey(1), vec!["c"])
    );

    let mut without_q = next.clone();
    without_q.queues.remove(0);
    assert_eq!(
        f.acd.update_spec(without_q),
        Err(SpecError::QueueInUse {
            queue: "q".into(),
            callers: 2
        })
    );
    let mut without_a = next.clone();
    without_a.agents.remove(0);
    assert_eq!(
        f.acd.update_spec(without_a),
        Err(SpecError::AgentInUse("a".into()))
    );
    let mut without_new = next.clone();
    without_new.queues.pop();
    without_new.agents.remove(1); // b never logged in
    f.acd.update_spec(without_new).unwrap();
    assert_eq!(
        f.acd.enqueue(CallKey(9), "new", 0, f.t(4)),
        Err(CallError::UnknownQueue("new".into()))
    );
    assert_eq!(
        f.acd.agent_login("b", f.t(4)),
        Err(AgentError::Unknown("b".into()))
    );
    // The failed reloads changed nothing: the queue still takes calls.
    assert!(matches!(
        f.enqueue(10, "q", 0, 5),
        Admission::Queued { position: 3, .. }
    ));
}

/// Runs a fixed script and returns everything the engine said, rendered.
fn script() -> Vec<String> {
    let mut s = spec(Strategy::LongestIdle, &[("a", 5), ("b", 7), ("c", 9)]);
    s.defaults.wrap_up = secs(10);
    s.queues[0].announce_every = secs(20);
    s.queues[0].max_wait = Some(secs(90));
    s.queues[0].widen = vec![WidenStep {
        after: secs(15),
        min_level: 1,
        skill: None,
    }];
    s.queues[0].min_level = 8;
    let f = Fixture::new(s);
    let mut out = Vec::new();
    for a in ["a", "b", "c"] {
        f.ready(a, 0);
    }
    for call in 0..6 {
        out.push(format!(
            "{:?}",
            f.enqueue(call, "q", (call % 2) as i32, call)
        ));
    }
    for s in 0..200 {
        out.extend(
            f.acd
                .handle_timeout(f.t(s))
                .iter()
                .map(|e| format!("{e:?}")),
        );
        for o in f.dispatch(s) {
            out.push(format!("{o:?}"));
            let agent = o.agents[0].clone();
            if (o.id.0 + s) % 3 == 0 {
                out.push(format!(
                    "{:?}",
                    f.acd.offer_failed(o.id, &agent, OfferFailure::Busy, f.t(s))
                ));
            } else {
                out.push(format!("{:?}", f.acd.offer_answered(o.id, &agent, f.t(s))));
                out.push(format!("{:?}", f.acd.call_ended(o.call, f.t(s + 5))));
            }
        }
    }
    out
}

#[test]
fn the_same_inputs_and_clock_give_the_same_outputs() {
    let first = script();
    assert!(first.len() > 20, "the script exercises the engine");
    assert_eq!(first, script());
}

// --- concurrency ---------------------------------------------------------------

/// 8 threads, 64 agents, 5,000 callers; see `stress.rs` for what is checked.
#[test]
fn many_threads_never_double_book_and_lose_no_caller() {
    let report = super::stress::run(&super::stress::StressConfig {
        threads: 8,
        agents: 64,
        callers: 5_000,
        seed: 0x5EED_0115,
    });
    // The run did exercise every path.
    assert!(
        report.offers >= report.answered && report.operations > 20_000,
        "{report:?}"
    );
    assert!(report.answered > 1_000, "{report:?}");
    assert!(
        report.abandoned > 0 && report.timed_out > 0 && report.rejected > 0,
        "{report:?}"
    );
    assert!(report.moved > 0 && report.served_at_end > 0, "{report:?}");
    assert!(report.elapsed < Duration::from_secs(60), "{report:?}");
}

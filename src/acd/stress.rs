//! Concurrency stress of the engine through its public API only.
//!
//! Threads enqueue callers, dispatch, answer, decline and time out offers,
//! abandon, move and end calls, run the timers on a shared fake clock, and
//! pause, log out and unregister agents, all at once. The driver checks as
//! it goes that no agent ever talks on two calls and that every caller ends
//! exactly once; then, single-threaded, it frees every agent and checks that
//! every caller still waiting is served and that the engine's counters and
//! timers add up.
//!
//! The unit test (in `tests.rs`) runs a bounded size; `benches/acd.rs` includes this file
//! (`#[path]`) for a larger run that prints its figures.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// Size of a stress run.
#[derive(Debug, Clone, Copy)]
pub struct StressConfig {
    pub threads: usize,
    pub agents: usize,
    pub callers: u64,
    pub seed: u64,
}

/// What a stress run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct StressReport {
    pub elapsed: Duration,
    pub operations: u64,
    pub offers: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub rejected: u64,
    pub moved: u64,
    /// Answered in the final, single-threaded phase.
    pub served_at_end: u64,
}

const PENDING: u8 = 0;
const ANSWERED: u8 = 1;
const ABANDONED: u8 = 2;
const TIMED_OUT: u8 = 3;
const REJECTED: u8 = 4;

const QUEUES: [&str; 5] = ["general", "rr", "ring", "experts", "fewest"];

fn stress_spec(agents: usize) -> AcdSpec {
    let mut general = QueueSpec::new("general", "t", "g");
    general.max_wait = Some(Duration::from_secs(300));
    general.announce_every = Duration::from_secs(20);
    general.widen = vec![WidenStep {
        after: Duration::from_secs(30),
        min_level: 1,
        skill: Some("h".into()),
    }];
    let mut rr = QueueSpec::new("rr", "t", "h");
    rr.strategy = Strategy::RoundRobin;
    rr.base_priority = 1;
    rr.max_waiting = Some(60);
    let mut ring = QueueSpec::new("ring", "t", "r");
    ring.strategy = Strategy::RingAll;
    ring.ring_timeout = Some(Duration::from_secs(8));
    ring.max_wait = Some(Duration::from_secs(60));
    let mut experts = QueueSpec::new("experts", "t", "g");
    experts.strategy = Strategy::SkillsFirst;
    experts.min_level = 5;
    experts.wrap_up = Some(Duration::from_secs(5));
    let mut fewest = QueueSpec::new("fewest", "t", "h");
    fewest.strategy = Strategy::FewestCalls;
    fewest.announce_every = Duration::from_secs(15);
    AcdSpec {
        login_on_register: false,
        defaults: Defaults {
            wrap_up: Duration::from_secs(2),
            ..Defaults::default()
        },
        queues: vec![general, rr, ring, experts, fewest],
        agents: (0..agents)
            .map(|i| {
                let mut a =
                    AgentSpec::new(&format!("agent-{i}"), "t").with_skill("g", 1 + (i % 10) as u8);
                if i % 2 == 0 {
                    a = a.with_skill("h", 5);
                }
                if i % 8 < 3 {
                    a = a.with_skill("r", 5);
                }
                if i % 5 == 0 {
                    a.wrap_up = Some(Duration::ZERO);
                }
                a
            })
            .collect(),
        pause_reasons: Vec::new(),
    }
}

/// A shared virtual clock the threads advance.
struct FakeClock {
    base: Instant,
    nanos: AtomicU64,
}

impl FakeClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn advance(&self, by: Duration) -> Instant {
        let n = self.nanos.fetch_add(by.as_nanos() as u64, Ordering::AcqRel);
        self.base + Duration::from_nanos(n) + by
    }
}

/// xorshift64*: deterministic per thread, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the driver knows, shared by its threads.
struct World {
    acd: Acd,
    clock: FakeClock,
    agents: Vec<String>,
    /// Per caller: PENDING or how it ended (set exactly once).
    outcome: Vec<AtomicU8>,
    /// Per caller: answered once (never twice).
    connected: Vec<AtomicBool>,
    /// Per agent: calls it is talking on, by the driver's books.
    talking: Vec<AtomicU32>,
    next_caller: AtomicU64,
    offers: Mutex<Vec<Offer>>,
    calls: Mutex<Vec<(CallKey, usize)>>,
    count: Counters,
}

#[derive(Default)]
struct Counters {
    operations: AtomicU64,
    offers: AtomicU64,
    moved: AtomicU64,
    moves_rejected: AtomicU64,
}

impl World {
    fn agent_index(&self, id: &str) -> usize {
        id.strip_prefix("agent-")
            .and_then(|n| n.parse().ok())
            .expect("agent ids are agent-N")
    }

    fn end(&self, call: CallKey, how: u8) {
        let prev = self.outcome[call.0 as usize].compare_exchange(
            PENDING,
            how,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        assert_eq!(prev, Ok(PENDING), "{call} ended twice (now as {how})");
    }

    fn take_events(&self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::WaitTimeout { call, .. } => self.end(call, TIMED_OUT),
                Event::OfferTimeout { offer, agents, .. } => {
                    for agent in agents {
                        if let Ok(more) = self.acd.offer_failed(
                            offer,
                            &agent,
                            OfferFailure::Timeout,
                            self.clock.now(),
                        ) {
                            self.take_events(more);
                        }
                    }
                }
                Event::Answered { .. }
                | Event::CallEnded { .. }
                | Event::CancelOffer { .. }
                | Event::Announce { .. }
                | Event::AgentPaused { .. }
                | Event::WrapUpEnded { .. } => {}
            }
        }
    }

    /// `alone`: no other thread acts, so no agent can be freed and claimed
    /// again within this dispatch (with other threads it can: a caller
    /// abandoning frees its agents at once).
    fn dispatch(&self, alone: bool) {
        let offers = self.acd.dispatch(self.clock.now());
        let mut seen = std::collections::HashSet::new();
        for offer in &offers {
            assert!(!offer.agents.is_empty(), "an offer without agents");
            for agent in &offer.agents {
                assert!(
                    seen.insert(agent.clone()) || !alone,
                    "{agent} in two offers of one dispatch"
                );
            }
        }
        self.count
            .offers
            .fetch_add(offers.len() as u64, Ordering::Relaxed);
        self.offers.lock().unwrap().extend(offers);
    }

    fn answer(&self, offer: &Offer, agent: &str) -> bool {
        let Ok(events) = self.acd.offer_answered(offer.id, agent, self.clock.now()) else {
            return false;
        };
        let a = self.agent_index(agent);
        let before = self.talking[a].fetch_add(1, Ordering::AcqRel);
        assert_eq!(
            before, 0,
            "{agent} answered {} while on another call",
            offer.call
        );
        assert!(
            !self.connected[offer.call.0 as usize].swap(true, Ordering::AcqRel),
            "{} answered twice",
            offer.call
        );
        self.calls.lock().unwrap().push((offer.call, a));
        self.take_events(events);
        true
    }

    fn fail(&self, offer: &Offer, reason: OfferFailure) {
        for agent in &offer.agents {
            if let Ok(events) = self
                .acd
                .offer_failed(offer.id, agent, reason, self.clock.now())
            {
                self.take_events(events);
            }
        }
    }

    fn end_call(&self, call: CallKey, agent: usize) {
        // Off the books first: once call_ended returns, the agent may be
        // claimed and answer again on another thread.
        self.talking[agent].fetch_sub(1, Ordering::AcqRel);
        let events = self
            .acd
            .call_ended(call, self.clock.now())
            .unwrap_or_else(|e| panic!("ending {call}: {e}"));
        self.end(call, ANSWERED);
        self.take_events(events);
    }

    fn take<T>(pool: &Mutex<Vec<T>>, rng: &mut Rng) -> Option<T> {
        let mut pool = pool.lock().unwrap();
        if pool.is_empty() {
            return None;
        }
        let i = rng.below(pool.len() as u64) as usize;
        Some(pool.swap_remove(i))
    }

    /// One random step of a worker thread.
    fn step(&self, rng: &mut Rng) {
        self.count.operations.fetch_add(1, Ordering::Relaxed);
        let callers = self.outcome.len() as u64;
        let agent = &self.agents[rng.below(self.agents.len() as u64) as usize];
        match rng.below(100) {
            0..=24 => {
                let n = self.next_caller.fetch_add(1, Ordering::AcqRel);
                if n >= callers {
                    return;
                }
                let queue = QUEUES[rng.below(QUEUES.len() as u64) as usize];
                let admission = self
                    .acd
                    .enqueue(CallKey(n), queue, rng.below(3) as i32, self.clock.now())
                    .expect("fresh call key and known queue");
                if let Admission::Rejected(_) = admission {
                    self.end(CallKey(n), REJECTED);
                }
            }
            25..=39 => self.dispatch(false),
            40..=59 => {
                let Some(offer) = Self::take(&self.offers, rng) else {
                    return;
                };
                let agent = offer.agents[rng.below(offer.agents.len() as u64) as usize].clone();
                match rng.below(10) {
                    0..=6 => {
                        let _ = self.acd.offer_ringing(offer.id, &agent, self.clock.now());
                        if !self.answer(&offer, &agent) {
                            // Too late for this leg: fail whatever still rings.
                            self.fail(&offer, OfferFailure::Timeout);
                        }
                    }
                    7 => self.offers.lock().unwrap().push(offer), // keep ringing
                    _ => {
                        let reason = [
                            OfferFailure::Busy,
                            OfferFailure::Declined,
                            OfferFailure::Unreachable,
                        ][rng.below(3) as usize];
                        self.fail(&offer, reason);
                    }
                }
            }
            60..=71 => {
                if let Some((call, agent)) = Self::take(&self.calls, rng) {
                    self.end_call(call, agent);
                }
            }
            72..=75 => {
                let issued = self.next_caller.load(Ordering::Acquire).min(callers);
                let call = CallKey(rng.below(issued));
                if issued > 0 && self.acd.abandon(call, self.clock.now()).is_ok() {
                    self.end(call, ABANDONED);
                }
            }
            76..=85 => {
                let now = self.clock.advance(Duration::from_millis(rng.below(1500)));
                self.take_events(self.acd.handle_timeout(now));
            }
            // Agent changes go in as commands, the way the daemon applies them.
            86..=88 => {
                let reason = match rng.below(3) {
                    0 => Some(PauseReason::Break),
                    1 => Some(PauseReason::Other("Teamrunde".into())),
                    _ => None,
                };
                self.command(agent, AgentAction::Pause { reason });
            }
            89..=92 => {
                self.command(agent, AgentAction::Unpause);
                self.command(agent, AgentAction::Login);
                let _ = self.acd.set_registered(agent, true, self.clock.now());
            }
            93 => self.command(agent, AgentAction::Logout),
            94 => {
                let _ = self.acd.set_registered(agent, false, self.clock.now());
            }
            95 => self.command(agent, AgentAction::Ready),
            _ => {
                let issued = self.next_caller.load(Ordering::Acquire).min(callers);
                let call = CallKey(rng.below(issued));
                let to = QUEUES[rng.below(QUEUES.len() as u64) as usize];
                if issued == 0 {
                    return;
                }
                match self.acd.move_caller(call, to, None, self.clock.now()) {
                    Ok(Admission::Queued { .. }) => {
                        self.count.moved.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Admission::Rejected(_)) => {
                        self.count.moves_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// Applies an agent command; a refusal (the agent's state did not allow
    /// it) is part of the game.
    fn command(&self, agent: &str, action: AgentAction) {
        let _ = self
            .acd
            .command(&AgentCommand::new(agent, action), self.clock.now());
    }

    /// Single-threaded: every agent free, every waiting caller served.
    fn drain(&self) -> u64 {
        let now = self.clock.now();
        let still_waiting: Vec<u64> = (0..self.outcome.len() as u64)
            .filter(|&c| {
                self.outcome[c as usize].load(Ordering::Acquire) == PENDING
                    && !self.connected[c as usize].load(Ordering::Acquire)
            })
            .collect();
        for _round in 0..10_000 {
            for agent in &self.agents {
                let _ = self.acd.agent_unpause(agent, now);
                let _ = self.acd.agent_login(agent, now);
                let _ = self.acd.set_registered(agent, true, now);
                let _ = self.acd.agent_ready(agent, now);
            }
            let offers: Vec<Offer> = std::mem::take(&mut *self.offers.lock().unwrap());
            for offer in &offers {
                // Ring-all legs may have failed one by one: any live leg answers.
                for agent in &offer.agents {
                    if self.answer(offer, agent) {
                        break;
                    }
                }
            }
            let calls: Vec<(CallKey, usize)> = std::mem::take(&mut *self.calls.lock().unwrap());
            for (call, agent) in &calls {
                self.end_call(*call, *agent);
            }
            self.dispatch(true);
            let done = self
                .outcome
                .iter()
                .all(|o| o.load(Ordering::Acquire) != PENDING);
            if done && self.offers.lock().unwrap().is_empty() {
                break;
            }
        }
        for c in &still_waiting {
            assert_eq!(
                self.outcome[*c as usize].load(Ordering::Acquire),
                ANSWERED,
                "caller {c} was waiting when agents became free but was not served"
            );
        }
        still_waiting.len() as u64
    }
}

/// Runs the stress and checks the invariants; panics on a violation.
pub fn run(config: &StressConfig) -> StressReport {
    let spec = stress_spec(config.agents);
    let base = Instant::now();
    let world = Arc::new(World {
        acd: Acd::new(spec, base).expect("stress spec is valid"),
        clock: FakeClock {
            base,
            nanos: AtomicU64::new(0),
        },
        agents: (0..config.agents).map(|i| format!("agent-{i}")).collect(),
        outcome: (0..config.callers)
            .map(|_| AtomicU8::new(PENDING))
            .collect(),
        connected: (0..config.callers)
            .map(|_| AtomicBool::new(false))
            .collect(),
        talking: (0..config.agents).map(|_| AtomicU32::new(0)).collect(),
        next_caller: AtomicU64::new(0),
        offers: Mutex::new(Vec::new()),
        calls: Mutex::new(Vec::new()),
        count: Counters::default(),
    });
    for agent in &world.agents {
        world.acd.set_registered(agent, true, base).unwrap();
        world.acd.agent_login(agent, base).unwrap();
    }

    let started = Instant::now();
    let callers = config.callers;
    let workers: Vec<_> = (0..config.threads)
        .map(|t| {
            let world = world.clone();
            let mut rng = Rng(config.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1)));
            std::thread::spawn(move || {
                // Until every caller has been enqueued, then some more steps
                // so the last ones see offers, timeouts and abandons too.
                let mut extra = 0;
                while extra < 100 {
                    world.step(&mut rng);
                    if world.next_caller.load(Ordering::Acquire) >= callers {
                        extra += 1;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a stress worker panicked");
    }
    let served_at_end = world.drain();
    let elapsed = started.elapsed();

    let count = |how: u8| {
        world
            .outcome
            .iter()
            .filter(|o| o.load(Ordering::Acquire) == how)
            .count() as u64
    };
    let report = StressReport {
        elapsed,
        operations: world.count.operations.load(Ordering::Relaxed),
        offers: world.count.offers.load(Ordering::Relaxed),
        answered: count(ANSWERED),
        abandoned: count(ABANDONED),
        timed_out: count(TIMED_OUT),
        rejected: count(REJECTED),
        moved: world.count.moved.load(Ordering::Relaxed),
        served_at_end,
    };
    assert_eq!(count(PENDING), 0, "every caller ends");
    assert_eq!(
        report.answered + report.abandoned + report.timed_out + report.rejected,
        config.callers
    );
    assert!(world.talking.iter().all(|t| t.load(Ordering::Acquire) == 0));

    // The engine's books agree with the driver's.
    let snapshot = world.acd.snapshot(world.clock.now());
    let mut sum = QueueCounters::default();
    for q in &snapshot.queues {
        assert_eq!((q.name.as_ref(), q.waiting), (q.name.as_ref(), 0));
        let c = q.counters;
        sum.entered += c.entered;
        sum.moved_out += c.moved_out;
        sum.answered += c.answered;
        sum.abandoned += c.abandoned;
        sum.timed_out += c.timed_out;
        sum.rejected_full += c.rejected_full;
    }
    assert_eq!(sum.answered, report.answered);
    assert_eq!(sum.abandoned, report.abandoned);
    assert_eq!(sum.timed_out, report.timed_out);
    assert_eq!(
        sum.rejected_full,
        report.rejected + world.count.moves_rejected.load(Ordering::Relaxed)
    );
    assert_eq!(sum.moved_out, report.moved);
    assert_eq!(
        sum.entered - sum.moved_out,
        report.answered + report.abandoned + report.timed_out
    );
    for a in &snapshot.agents {
        assert!(
            matches!(a.state, AgentState::Available | AgentState::WrapUp),
            "{} left {:?}",
            a.id,
            a.state
        );
    }
    // Past every wrap-up no deadline is left behind.
    let later = world.clock.advance(Duration::from_secs(3600));
    world.acd.handle_timeout(later);
    assert_eq!(world.acd.poll_timeout(), None, "leaked timers");
    report
}

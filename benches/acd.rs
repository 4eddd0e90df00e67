//! ACD engine benchmarks: the dispatch decision at service-center scale
//! (500 agents, 2,000 waiting callers over 10 skill queues), a whole queued
//! call through the engine, and a multi-threaded stress run that prints its
//! figures.
//!
//! `cargo bench --bench acd` runs everything at full size; `cargo test
//! --benches` runs each benchmark once and a small stress run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use zentrale::acd::*;

// The stress driver is shared with the unit test and uses only the public
// API; its `use super::*` picks up the import above.
#[path = "../src/acd/stress.rs"]
mod stress;

const AGENTS: usize = 500;
const WAITING: u64 = 2_000;
const SKILLS: usize = 10;

/// 10 queues (one skill each, mixed strategies, a widening step); every
/// agent has three of the skills at varying levels.
fn spec() -> AcdSpec {
    let strategies = [
        Strategy::LongestIdle,
        Strategy::SkillsFirst,
        Strategy::FewestCalls,
        Strategy::RoundRobin,
        Strategy::LeastTalkTime,
    ];
    AcdSpec {
        defaults: Defaults {
            wrap_up: Duration::ZERO,
            ..Defaults::default()
        },
        queues: (0..SKILLS)
            .map(|k| {
                let mut q = QueueSpec::new(&format!("q{k}"), "center", &format!("s{k}"));
                q.strategy = strategies[k % strategies.len()];
                q.min_level = 3;
                q.widen = vec![WidenStep {
                    after: Duration::from_secs(60),
                    min_level: 1,
                    skill: None,
                }];
                q
            })
            .collect(),
        agents: (0..AGENTS)
            .map(|i| {
                let level = |n: usize| 1 + ((i * 7 + n) % 10) as u8;
                AgentSpec::new(&format!("a{i}"), "center")
                    .with_skill(&format!("s{}", i % SKILLS), level(0))
                    .with_skill(&format!("s{}", (i + 3) % SKILLS), level(1))
                    .with_skill(&format!("s{}", (i + 7) % SKILLS), level(2))
            })
            .collect(),
        ..AcdSpec::default()
    }
}

/// An engine where every agent but `a0` talks and 2,000 callers wait.
struct Busy {
    acd: Acd,
    now: Instant,
    next_call: u64,
}

impl Busy {
    fn new() -> Busy {
        let now = Instant::now();
        let acd = Acd::new(spec(), now).expect("bench spec is valid");
        let mut busy = Busy {
            acd,
            now,
            next_call: 0,
        };
        for i in 0..AGENTS {
            let id = format!("a{i}");
            busy.acd.set_registered(&id, true, now).unwrap();
            busy.acd.agent_login(&id, now).unwrap();
        }
        for n in 0..(WAITING + AGENTS as u64 - 1) {
            busy.enqueue(&format!("q{}", n % SKILLS as u64));
        }
        busy.acd.agent_pause("a0", PauseReason::Break, now).unwrap();
        // Everybody else takes a call and keeps talking.
        for offer in busy.acd.dispatch(now) {
            busy.acd
                .offer_answered(offer.id, &offer.agents[0], now)
                .unwrap();
        }
        busy.acd.agent_unpause("a0", now).unwrap();
        busy
    }

    fn enqueue(&mut self, queue: &str) {
        self.acd
            .enqueue(
                CallKey(self.next_call),
                queue,
                (self.next_call % 3) as i32,
                self.now,
            )
            .unwrap();
        self.next_call += 1;
    }

    /// Answers and ends the offer's call so its agent is free again, and
    /// refills its queue (so the mix of waiting callers stays the same).
    fn settle(&mut self, offer: &Offer) {
        self.now += Duration::from_millis(10);
        self.acd
            .offer_answered(offer.id, &offer.agents[0], self.now)
            .unwrap();
        self.acd.call_ended(offer.call, self.now).unwrap();
        self.enqueue(&offer.queue);
    }
}

fn dispatch_decision(c: &mut Criterion) {
    let mut busy = Busy::new();
    let waiting: usize = busy
        .acd
        .snapshot(busy.now)
        .queues
        .iter()
        .map(|q| q.waiting)
        .sum();
    assert_eq!(waiting as u64, WAITING);
    c.bench_function("acd/dispatch: 1 free agent of 500, 2000 waiting", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let offers = black_box(busy.acd.dispatch(busy.now));
                spent += start.elapsed();
                assert_eq!(offers.len(), 1, "exactly the free agent is offered");
                busy.settle(&offers[0]);
            }
            spent
        })
    });
    let idle = Busy::new();
    let offers = idle.acd.dispatch(idle.now);
    idle.acd
        .offer_answered(offers[0].id, &offers[0].agents[0], idle.now)
        .unwrap();
    c.bench_function("acd/dispatch: no free agent, 2000 waiting", |b| {
        b.iter(|| assert!(black_box(idle.acd.dispatch(idle.now)).is_empty()))
    });
}

fn queued_call(c: &mut Criterion) {
    let mut busy = Busy::new();
    c.bench_function("acd/queued call: enqueue, dispatch, answer, end", |b| {
        b.iter(|| {
            let offers = busy.acd.dispatch(busy.now);
            busy.settle(&offers[0]);
        })
    });
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    dispatch_decision(&mut criterion);
    queued_call(&mut criterion);
    criterion.final_summary();

    let full = std::env::args().any(|a| a == "--bench");
    let config = stress::StressConfig {
        threads: 8,
        agents: if full { 500 } else { 64 },
        callers: if full { 20_000 } else { 2_000 },
        seed: 0x5EED_0115,
    };
    let r = stress::run(&config);
    let secs = r.elapsed.as_secs_f64();
    println!(
        "acd/stress: {} threads, {} agents, {} callers in {:.2} s: {:.0} operations/s, {} offers, \
         {} answered, {} abandoned, {} timed out, {} rejected, {} moved, {} served after the run; \
         invariants held",
        config.threads,
        config.agents,
        config.callers,
        secs,
        r.operations as f64 / secs,
        r.offers,
        r.answered,
        r.abandoned,
        r.timed_out,
        r.rejected,
        r.moved,
        r.served_at_end,
    );
}

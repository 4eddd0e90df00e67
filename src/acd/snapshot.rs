//! Point-in-time figures for the API, wallboards and metrics.
//!
//! A snapshot reads atomics and the per-queue statistics locks; it costs
//! O(queues x members + agents + waiting callers) and never blocks the call
//! path. It is not atomic across queues and agents: an agent claimed during
//! the snapshot may show up in either state.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::agent::{AgentRt, AgentState, Kind, PendingChange};
use super::service_level::{QueueCounters, Segment, ServiceLevel};
use super::strategy::Strategy;
use super::{Acd, CallKey, OfferFailure, OfferId};

/// The whole engine at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct AcdSnapshot {
    pub at: Instant,
    /// In spec order.
    pub queues: Vec<QueueSnapshot>,
    /// In spec order.
    pub agents: Vec<AgentSnapshot>,
    /// Sorted by tenant.
    pub tenants: Vec<TenantSnapshot>,
}

/// Live figures of one queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSnapshot {
    pub name: Arc<str>,
    pub tenant: Arc<str>,
    pub strategy: Strategy,
    /// Callers in the queue, including those ringing at an agent right now.
    pub waiting: usize,
    /// Of `waiting`, those ringing at an agent.
    pub offered: usize,
    /// Wait in this queue of the longest-waiting present caller.
    pub longest_wait: Option<Duration>,
    /// What a caller joining now would be told.
    pub expected_wait: Duration,
    /// Recent average handle time (talk + wrap-up), or the default.
    pub handle_time: Duration,
    pub counters: QueueCounters,
    pub service_level: ServiceLevel,
    /// The same figures per caller segment that has used the queue, sorted
    /// by segment (see [`Segment`]).
    pub segments: Vec<SegmentSnapshot>,
    /// The queue's eligible agents (any widening step) by state.
    pub agents: AgentCounts,
}

/// A queue's figures for the callers of one [`Segment`]: the queue's
/// counters and service level (same threshold and window) restricted to them.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSnapshot {
    pub segment: Segment,
    pub counters: QueueCounters,
    pub service_level: ServiceLevel,
}

/// Agents by state (as `GET /api/v1/queues` shows them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct AgentCounts {
    pub logged_out: usize,
    /// Idle and registered: offered the next call.
    pub available: usize,
    /// Idle but without a registered phone.
    pub unreachable: usize,
    /// Reserved or ringing.
    pub offered: usize,
    pub talking: usize,
    pub wrap_up: usize,
    pub paused: usize,
}

impl AgentCounts {
    fn add(&mut self, agent: &AgentRt) {
        let w = agent.word();
        let slot = match w.kind() {
            Kind::LoggedOut => &mut self.logged_out,
            Kind::Available if w.registered() => &mut self.available,
            Kind::Available => &mut self.unreachable,
            Kind::Reserved | Kind::Ringing => &mut self.offered,
            Kind::Talking => &mut self.talking,
            Kind::WrapUp => &mut self.wrap_up,
            Kind::Paused => &mut self.paused,
        };
        *slot += 1;
    }

    /// Each state's count, under the name the API, the event stream and
    /// the metrics give it.
    pub fn by_state(&self) -> [(&'static str, usize); 7] {
        [
            ("logged_out", self.logged_out),
            ("available", self.available),
            ("unreachable", self.unreachable),
            ("offered", self.offered),
            ("talking", self.talking),
            ("wrap_up", self.wrap_up),
            ("paused", self.paused),
        ]
    }

    /// Logged-in agents.
    pub fn logged_in(&self) -> usize {
        self.available + self.unreachable + self.offered + self.talking + self.wrap_up + self.paused
    }
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSnapshot {
    pub id: Arc<str>,
    pub tenant: Arc<str>,
    pub state: AgentState,
    pub registered: bool,
    /// When the agent entered `state`.
    pub since: Instant,
    pub pending: Option<PendingChange>,
    /// The offer or call the agent is on (also during wrap-up).
    pub offer: Option<OfferId>,
    pub call: Option<CallKey>,
    pub queue: Option<Arc<str>>,
    pub answered_today: u32,
    pub talk_today: Duration,
    pub missed_in_row: u32,
    pub last_failure: Option<OfferFailure>,
}

/// Agents of one tenant by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSnapshot {
    pub tenant: Arc<str>,
    pub agents: AgentCounts,
}

impl Acd {
    /// Live figures of every queue and agent, cheap enough per API request.
    pub fn snapshot(&self, now: Instant) -> AcdSnapshot {
        let tick = self.clock.tick(now);
        let topology = self.topology.load_full();
        let queues = topology
            .queues
            .iter()
            .map(|q| {
                let conf = q.conf.load();
                let mut agents = AgentCounts::default();
                for a in &conf.members {
                    agents.add(a);
                }
                let (mut waiting, mut offered, mut earliest) = (0, 0, None::<u64>);
                for entry in q.callers.iter() {
                    let caller = entry.value();
                    let entered = caller.entered.load(Ordering::Acquire);
                    waiting += 1;
                    if caller.word().kind() == super::queue::CallerKind::Offered {
                        offered += 1;
                    }
                    earliest = Some(earliest.map_or(entered, |e| e.min(entered)));
                }
                let position = u32::try_from(waiting).unwrap_or(u32::MAX).saturating_add(1);
                QueueSnapshot {
                    name: q.name.clone(),
                    tenant: conf.tenant.clone(),
                    strategy: conf.strategy,
                    waiting,
                    offered,
                    longest_wait: earliest.map(|e| Duration::from_nanos(tick.saturating_sub(e))),
                    expected_wait: super::waiting::estimate(q, &conf, position),
                    handle_time: q.stats.handle_time(conf.handle_time),
                    counters: q.stats.counters.read(),
                    service_level: q.stats.service_level(tick, &conf.service_level),
                    segments: q
                        .segments()
                        .into_iter()
                        .map(|(segment, stats)| SegmentSnapshot {
                            segment,
                            counters: stats.counters.read(),
                            service_level: stats.service_level(tick, &conf.service_level),
                        })
                        .collect(),
                    agents,
                }
            })
            .collect();

        let mut tenants: Vec<TenantSnapshot> = topology
            .tenants
            .iter()
            .map(|t| TenantSnapshot {
                tenant: t.clone(),
                agents: AgentCounts::default(),
            })
            .collect();
        let agents = topology
            .agents
            .iter()
            .map(|a| {
                let conf = a.conf.load();
                if let Ok(i) = tenants.binary_search_by(|t| t.tenant.cmp(&conf.tenant)) {
                    tenants[i].agents.add(a);
                }
                self.agent_figures(a)
            })
            .collect();
        AcdSnapshot {
            at: now,
            queues,
            agents,
            tenants,
        }
    }

    /// One agent as [`Acd::snapshot`] shows it; `None` for an unknown id.
    /// Costs one agent's atomics, not a whole snapshot.
    pub fn agent_snapshot(&self, agent: &str) -> Option<AgentSnapshot> {
        self.topology
            .load()
            .agent(agent)
            .map(|a| self.agent_figures(a))
    }

    fn agent_figures(&self, a: &AgentRt) -> AgentSnapshot {
        let conf = a.conf.load();
        let w = a.word();
        let current = a.current.load();
        let current = current.as_ref().filter(|_| w.offer() != 0);
        AgentSnapshot {
            id: a.id.clone(),
            tenant: conf.tenant.clone(),
            state: a.state(w),
            registered: w.registered(),
            since: self.clock.instant(a.since.load(Ordering::Acquire)),
            pending: a.pending(w),
            offer: current.map(|c| c.offer),
            call: current.map(|c| c.call),
            queue: current.map(|c| c.queue.clone()),
            answered_today: a.answered_today.load(Ordering::Relaxed),
            talk_today: Duration::from_nanos(a.talk_today.load(Ordering::Relaxed)),
            missed_in_row: a.missed_in_row.load(Ordering::Relaxed),
            last_failure: a.last_failure(),
        }
    }
}

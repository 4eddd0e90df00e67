//! The resolved shape of the engine: queues with their tiers of skill
//! groups, agents, and the per-skill index.
//!
//! A `Topology` is immutable and swapped whole on a spec reload; the runtime
//! objects it points to (`QueueRt`, `AgentRt`) are kept across reloads, so
//! waiting callers keep their places and agents their states.
//!
//! **Agent index.** Agents are indexed per (tenant, skill) in groups sorted
//! by level (best first). A queue's tier `k` lists the groups (of every
//! tenant in its `agents_from`) and minimum
//! levels a caller accepts after `k` widening steps. Finding the agent for a
//! caller scans only the members of those groups, stopping in each group at
//! the first member below the minimum level: O(eligible agents), never all
//! agents. For the tens to hundreds of agents of a service center this is a
//! few microseconds of atomic loads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::agent::{AgentConf, AgentRt};
use super::queue::QueueRt;
use super::spec::{AcdSpec, Defaults, QueueSpec, ServiceLevelSpec};
use super::strategy::Strategy;

/// An agent in a skill group with its level there.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub agent: Arc<AgentRt>,
    pub level: u8,
}

/// The members of one (tenant, skill), best level first, then by ordinal.
pub(crate) type Group = Arc<[Member]>;

/// The groups (with minimum level) a caller accepts at one widening step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tier {
    pub groups: Vec<(Group, u8)>,
}

/// A queue's settings with the defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct QueueConf {
    pub name: Arc<str>,
    pub tenant: Arc<str>,
    pub strategy: Strategy,
    pub base_priority: i32,
    pub max_waiting: Option<usize>,
    pub max_expected_wait: Option<Duration>,
    pub join_empty: bool,
    pub max_wait: Option<Duration>,
    pub announce_every: Duration,
    pub ring_timeout: Duration,
    pub wrap_up: Duration,
    pub service_level: ServiceLevelSpec,
    pub handle_time: Duration,
    pub handle_time_samples: usize,
    /// `after` of each widening step, ascending.
    pub steps: Vec<Duration>,
    /// `tiers[0]` is the base; `tiers[k]` applies after `steps[k - 1]`.
    pub tiers: Vec<Tier>,
    /// Every agent of any tier, once, by ordinal (for counts and admission).
    pub members: Vec<Arc<AgentRt>>,
}

impl QueueConf {
    /// The widening step reached after `waited` in the queue.
    pub fn step_at(&self, waited: Duration) -> usize {
        self.steps
            .iter()
            .take_while(|after| **after <= waited)
            .count()
    }
}

/// The engine's shape at one spec version.
#[derive(Debug)]
pub(crate) struct Topology {
    /// Spec order.
    pub queues: Vec<Arc<QueueRt>>,
    pub queue_index: HashMap<Arc<str>, usize>,
    /// Spec order.
    pub agents: Vec<Arc<AgentRt>>,
    pub agent_index: HashMap<Arc<str>, usize>,
    /// Sorted, for snapshots.
    pub tenants: Vec<Arc<str>>,
    pub login_on_register: bool,
    pub pause_reasons: Vec<String>,
    pub defaults: Defaults,
}

impl Topology {
    pub fn queue(&self, name: &str) -> Option<&Arc<QueueRt>> {
        self.queue_index.get(name).map(|&i| &self.queues[i])
    }

    pub fn agent(&self, id: &str) -> Option<&Arc<AgentRt>> {
        self.agent_index.get(id).map(|&i| &self.agents[i])
    }

    /// Builds the topology for a validated spec, reusing the runtime objects
    /// of `previous` by name and storing their new settings.
    pub fn build(spec: &AcdSpec, previous: Option<&Topology>, next_ord: &AtomicU32) -> Topology {
        let mut agents = Vec::with_capacity(spec.agents.len());
        let mut agent_index = HashMap::new();
        for a in &spec.agents {
            let conf = AgentConf {
                tenant: Arc::from(a.tenant.as_str()),
                wrap_up: a.wrap_up,
                max_missed_offers: a.max_missed_offers,
            };
            let agent = match previous.and_then(|p| p.agent(&a.id)) {
                Some(existing) => {
                    existing.conf.store(Arc::new(conf));
                    existing.clone()
                }
                None => Arc::new(AgentRt::new(
                    Arc::from(a.id.as_str()),
                    next_ord.fetch_add(1, Ordering::Relaxed),
                    conf,
                )),
            };
            agent_index.insert(agent.id.clone(), agents.len());
            agents.push(agent);
        }

        let mut by_skill: HashMap<(&str, &str), Vec<Member>> = HashMap::new();
        for (a, agent) in spec.agents.iter().zip(&agents) {
            for (skill, &level) in &a.skills {
                by_skill
                    .entry((a.tenant.as_str(), skill.as_str()))
                    .or_default()
                    .push(Member {
                        agent: agent.clone(),
                        level,
                    });
            }
        }
        let groups: HashMap<(&str, &str), Group> = by_skill
            .into_iter()
            .map(|(k, mut members)| {
                members.sort_by_key(|m| (std::cmp::Reverse(m.level), m.agent.ord));
                (k, Group::from(members))
            })
            .collect();

        let mut queues = Vec::with_capacity(spec.queues.len());
        let mut queue_index = HashMap::new();
        for q in &spec.queues {
            let conf = resolve_queue(q, &spec.defaults, &groups);
            let queue = match previous.and_then(|p| p.queue(&q.name)) {
                Some(existing) => {
                    existing.conf.store(Arc::new(conf));
                    existing.clone()
                }
                None => Arc::new(QueueRt::new(conf)),
            };
            queue_index.insert(queue.name.clone(), queues.len());
            queues.push(queue);
        }

        let mut tenants: Vec<Arc<str>> = spec
            .queues
            .iter()
            .map(|q| q.tenant.as_str())
            .chain(spec.agents.iter().map(|a| a.tenant.as_str()))
            .map(Arc::from)
            .collect();
        tenants.sort();
        tenants.dedup();

        Topology {
            queues,
            queue_index,
            agents,
            agent_index,
            tenants,
            login_on_register: spec.login_on_register,
            pause_reasons: spec.pause_reasons.clone(),
            defaults: spec.defaults.clone(),
        }
    }
}

fn resolve_queue(q: &QueueSpec, d: &Defaults, groups: &HashMap<(&str, &str), Group>) -> QueueConf {
    let serving: Vec<&str> = if q.agents_from.is_empty() {
        vec![q.tenant.as_str()]
    } else {
        q.agents_from.iter().map(String::as_str).collect()
    };
    // One group per serving tenant: the skill index is per (tenant, skill).
    let groups_of = |skill: &str, min: u8| {
        serving
            .iter()
            .filter_map(|tenant| groups.get(&(*tenant, skill)))
            .map(|g| (g.clone(), min))
            .collect::<Vec<_>>()
    };
    // Skill -> lowest accepted level, growing step by step.
    let mut accepted: BTreeMap<&str, u8> = BTreeMap::new();
    accepted.insert(q.skill.as_str(), q.min_level);
    let tier_of = |accepted: &BTreeMap<&str, u8>| Tier {
        groups: accepted
            .iter()
            .flat_map(|(skill, &min)| groups_of(skill, min))
            .collect(),
    };
    let mut tiers = vec![tier_of(&accepted)];
    for step in &q.widen {
        let skill = step.skill.as_deref().unwrap_or(&q.skill);
        let min = accepted.entry(skill).or_insert(step.min_level);
        *min = (*min).min(step.min_level);
        tiers.push(tier_of(&accepted));
    }
    let mut members: Vec<Arc<AgentRt>> = tiers
        .last()
        .into_iter()
        .flat_map(|t| t.groups.iter())
        .flat_map(|(g, min)| g.iter().filter(move |m| m.level >= *min))
        .map(|m| m.agent.clone())
        .collect();
    members.sort_by_key(|a| a.ord);
    members.dedup_by_key(|a| a.ord);

    QueueConf {
        name: Arc::from(q.name.as_str()),
        tenant: Arc::from(q.tenant.as_str()),
        strategy: q.strategy,
        base_priority: q.base_priority,
        max_waiting: q.max_waiting,
        max_expected_wait: q.max_expected_wait,
        join_empty: q.join_empty,
        max_wait: q.max_wait,
        announce_every: q.announce_every,
        ring_timeout: q.ring_timeout.unwrap_or(d.ring_timeout),
        wrap_up: q.wrap_up.unwrap_or(d.wrap_up),
        service_level: q
            .service_level
            .clone()
            .unwrap_or_else(|| d.service_level.clone()),
        handle_time: d.handle_time,
        handle_time_samples: d.handle_time_samples,
        steps: q.widen.iter().map(|s| s.after).collect(),
        tiers,
        members,
    }
}

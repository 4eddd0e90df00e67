//! The plain description of an ACD: queues, agents and defaults.
//!
//! These types are what the daemon hands to [`Acd::new`](super::Acd::new) and
//! [`Acd::update_spec`](super::Acd::update_spec); the config loader maps its
//! YAML onto them. They carry no runtime state. [`AcdSpec::validate`] checks
//! everything the engine relies on and says what to change.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use thiserror::Error;

use super::strategy::Strategy;

/// How many widening steps a queue may have.
pub const MAX_WIDEN_STEPS: usize = 7;

/// Lowest and highest skill level an agent or queue may name.
pub const SKILL_LEVELS: std::ops::RangeInclusive<u8> = 1..=10;

/// Everything the engine needs to run: queues, agents and engine defaults.
///
/// ```
/// use zentrale::acd::{AcdSpec, AgentSpec, QueueSpec};
///
/// let spec = AcdSpec {
///     queues: vec![QueueSpec::new("kassel-buergerbuero", "kassel", "buergerbuero")],
///     agents: vec![AgentSpec::new("anna", "kassel").with_skill("buergerbuero", 7)],
///     ..AcdSpec::default()
/// };
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AcdSpec {
    /// A softphone that registers logs its agent in (un-registering does not
    /// log out; it only makes the agent unreachable).
    pub login_on_register: bool,
    /// Values used where a queue or agent does not set its own.
    pub defaults: Defaults,
    /// Queue names are unique across all tenants (use `tenant-service`).
    pub queues: Vec<QueueSpec>,
    /// Agent ids are unique across all tenants.
    pub agents: Vec<AgentSpec>,
    /// The pause reasons an agent may be paused with, by name
    /// ([`PauseReason::name`](super::PauseReason::name)); empty allows any.
    /// The engine's own `no-answer` pause is always allowed.
    pub pause_reasons: Vec<String>,
}

/// Engine-wide defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// Nachbearbeitung after each call (30 s).
    pub wrap_up: Duration,
    /// How long an offer may ring before [`Event::OfferTimeout`](super::Event::OfferTimeout) (15 s).
    pub ring_timeout: Duration,
    /// Missed offers in a row before the agent is paused with
    /// [`PauseReason::NoAnswer`](super::PauseReason::NoAnswer) (3; 0 = never).
    pub max_missed_offers: u32,
    /// Service-level target, threshold and window (75 % in 30 s over 1 h).
    pub service_level: ServiceLevelSpec,
    /// Handle time (talk + wrap-up) assumed before a queue has answered
    /// calls of its own (3 min).
    pub handle_time: Duration,
    /// How many recent answered calls the handle-time average covers (20).
    pub handle_time_samples: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            wrap_up: Duration::from_secs(30),
            ring_timeout: Duration::from_secs(15),
            max_missed_offers: 3,
            service_level: ServiceLevelSpec::default(),
            handle_time: Duration::from_secs(180),
            handle_time_samples: 20,
        }
    }
}

/// How a queue's service level is measured.
///
/// The percentage is `answered within threshold / judged calls` over the
/// last `window`, where judged calls are answered, timed-out and abandoned
/// calls, except that abandons before `threshold` follow `short_abandons`.
/// Calls moved to another queue are judged by the queue that finishes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLevelSpec {
    /// A call answered within this wait counts as served in time (30 s).
    pub threshold: Duration,
    /// The promised share in percent (75).
    pub target_percent: u8,
    /// The sliding window the percentage covers (1 h).
    pub window: Duration,
    /// What a caller who hangs up before `threshold` counts as.
    pub short_abandons: ShortAbandons,
}

impl Default for ServiceLevelSpec {
    fn default() -> Self {
        ServiceLevelSpec {
            threshold: Duration::from_secs(30),
            target_percent: 75,
            window: Duration::from_secs(3600),
            short_abandons: ShortAbandons::Ignore,
        }
    }
}

/// How callers who give up before the service-level threshold count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShortAbandons {
    /// Left out of the percentage entirely: the queue never had a fair
    /// chance (the usual call-center definition, and the default).
    #[default]
    Ignore,
    /// Counted as calls not served in time.
    Missed,
}

/// One queue: a hotline or service of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// Unique across the engine; used in the API and in events.
    pub name: String,
    /// The tenant the queue belongs to (metrics, snapshots).
    pub tenant: String,
    /// The tenants whose agents serve the queue; empty means `tenant` alone.
    /// A district queue that town-hall agents help with lists both.
    pub agents_from: Vec<String>,
    /// The skill an agent needs ...
    pub skill: String,
    /// ... at least at this level (1-10).
    pub min_level: u8,
    /// How the agent for a caller is chosen.
    pub strategy: Strategy,
    /// Added to every caller's own priority (higher is served first).
    pub base_priority: i32,
    /// Callers beyond this many waiting are rejected with `QueueFull`.
    pub max_waiting: Option<usize>,
    /// Callers whose expected wait would exceed this are rejected with `WaitTooLong`.
    pub max_expected_wait: Option<Duration>,
    /// Whether callers may join while no eligible agent is logged in
    /// (otherwise they are rejected with `NoAgents`).
    pub join_empty: bool,
    /// After this wait in the queue the engine emits `WaitTimeout`.
    pub max_wait: Option<Duration>,
    /// Period of position announcements; zero turns them off.
    pub announce_every: Duration,
    /// Overrides [`Defaults::ring_timeout`].
    pub ring_timeout: Option<Duration>,
    /// Overrides [`Defaults::wrap_up`] (an agent's own setting wins over both).
    pub wrap_up: Option<Duration>,
    /// Penalty widening: after each step's wait the caller also accepts the
    /// agents it names, keeping their place in the queue. Ascending `after`,
    /// at most [`MAX_WIDEN_STEPS`].
    pub widen: Vec<WidenStep>,
    /// Overrides [`Defaults::service_level`].
    pub service_level: Option<ServiceLevelSpec>,
}

impl QueueSpec {
    /// A queue with the defaults: level 1, longest idle, no limits, joining
    /// allowed without agents, no announcements.
    pub fn new(name: &str, tenant: &str, skill: &str) -> QueueSpec {
        QueueSpec {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            agents_from: Vec::new(),
            skill: skill.to_owned(),
            min_level: 1,
            strategy: Strategy::default(),
            base_priority: 0,
            max_waiting: None,
            max_expected_wait: None,
            join_empty: true,
            max_wait: None,
            announce_every: Duration::ZERO,
            ring_timeout: None,
            wrap_up: None,
            widen: Vec::new(),
            service_level: None,
        }
    }
}

/// One penalty-widening step of a queue.
///
/// `WidenStep { after: 60 s, min_level: 3, skill: None }` lets a caller who
/// has waited a minute take agents of the queue's skill down to level 3;
/// with `skill: Some("bezirk")` it also takes agents of that skill group.
#[derive(Debug, Clone, PartialEq)]
pub struct WidenStep {
    /// Wait in this queue after which the step applies.
    pub after: Duration,
    /// Lowest level accepted from this step on.
    pub min_level: u8,
    /// Another skill group accepted from this step on (default: the queue's skill).
    pub skill: Option<String>,
}

/// One agent: a person with a softphone.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSpec {
    /// Unique across the engine (usually the SIP user).
    pub id: String,
    /// The tenant whose queues the agent serves (and any queue that lists
    /// it in [`QueueSpec::agents_from`]).
    pub tenant: String,
    /// Skill name -> level 1-10.
    pub skills: BTreeMap<String, u8>,
    /// Overrides the queue's and the engine's wrap-up.
    pub wrap_up: Option<Duration>,
    /// Overrides [`Defaults::max_missed_offers`].
    pub max_missed_offers: Option<u32>,
}

impl AgentSpec {
    /// An agent without skills or overrides.
    pub fn new(id: &str, tenant: &str) -> AgentSpec {
        AgentSpec {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            skills: BTreeMap::new(),
            wrap_up: None,
            max_missed_offers: None,
        }
    }

    /// Adds (or replaces) a skill.
    pub fn with_skill(mut self, skill: &str, level: u8) -> AgentSpec {
        self.skills.insert(skill.to_owned(), level);
        self
    }
}

/// A spec the engine cannot run; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("queue name is empty; give every queue a unique name such as `tenant-service`")]
    EmptyQueueName,
    #[error("queue `{0}` is defined twice; queue names must be unique across tenants")]
    DuplicateQueue(String),
    #[error("queue `{queue}` has no {what}; set it")]
    MissingQueueField { queue: String, what: &'static str },
    #[error("agent id is empty; use the agent's SIP user name")]
    EmptyAgentId,
    #[error("agent `{0}` is defined twice; agent ids must be unique across tenants")]
    DuplicateAgent(String),
    #[error("agent `{0}` has no tenant; set the tenant whose queues the agent serves")]
    AgentWithoutTenant(String),
    #[error(
        "{owner}: level {level} for skill `{skill}` is outside 1-10; use 1 (lowest) to 10 (best)"
    )]
    BadLevel {
        owner: String,
        skill: String,
        level: u8,
    },
    #[error(
        "queue `{queue}`: widening step {step} comes after {after:?}, not later than the step before; list steps by ascending `after`"
    )]
    WidenOrder {
        queue: String,
        step: usize,
        after: Duration,
    },
    #[error("{owner}: {what} is zero; give it a positive duration")]
    ZeroDuration { owner: String, what: &'static str },
    #[error("queue `{0}` has more than 7 widening steps; merge some")]
    TooManyWidenSteps(String),
    #[error("{owner}: service-level target {percent}% is above 100%; use 0-100")]
    BadTarget { owner: String, percent: u8 },
    #[error("defaults: {0} must be positive")]
    BadDefault(&'static str),
    #[error(
        "queue `{queue}` still has {callers} caller(s) waiting or on offer; keep it in the spec until they are served, moved or gone"
    )]
    QueueInUse { queue: String, callers: usize },
    #[error("agent `{0}` is logged in; log the agent out before removing it from the spec")]
    AgentInUse(String),
}

impl AcdSpec {
    /// Checks names, levels, widening order and durations.
    pub fn validate(&self) -> Result<(), SpecError> {
        let d = &self.defaults;
        if d.ring_timeout.is_zero() {
            return Err(SpecError::BadDefault("ring_timeout"));
        }
        if d.handle_time.is_zero() {
            return Err(SpecError::BadDefault("handle_time"));
        }
        if d.handle_time_samples == 0 {
            return Err(SpecError::BadDefault("handle_time_samples"));
        }
        check_service_level("defaults", &d.service_level)?;

        let mut names = HashSet::new();
        for q in &self.queues {
            if q.name.is_empty() {
                return Err(SpecError::EmptyQueueName);
            }
            if !names.insert(q.name.as_str()) {
                return Err(SpecError::DuplicateQueue(q.name.clone()));
            }
            for (what, value) in [("tenant", &q.tenant), ("skill", &q.skill)] {
                if value.is_empty() {
                    return Err(SpecError::MissingQueueField {
                        queue: q.name.clone(),
                        what,
                    });
                }
            }
            check_level(&format!("queue `{}`", q.name), &q.skill, q.min_level)?;
            if q.widen.len() > MAX_WIDEN_STEPS {
                return Err(SpecError::TooManyWidenSteps(q.name.clone()));
            }
            let mut previous = Duration::ZERO;
            for (i, step) in q.widen.iter().enumerate() {
                if step.after <= previous {
                    return Err(SpecError::WidenOrder {
                        queue: q.name.clone(),
                        step: i + 1,
                        after: step.after,
                    });
                }
                previous = step.after;
                let skill = step.skill.as_deref().unwrap_or(&q.skill);
                check_level(&format!("queue `{}`", q.name), skill, step.min_level)?;
            }
            for (what, value) in [("ring_timeout", q.ring_timeout), ("max_wait", q.max_wait)] {
                if value == Some(Duration::ZERO) {
                    return Err(SpecError::ZeroDuration {
                        owner: format!("queue `{}`", q.name),
                        what,
                    });
                }
            }
            if let Some(sl) = &q.service_level {
                check_service_level(&format!("queue `{}`", q.name), sl)?;
            }
        }

        let mut ids = HashSet::new();
        for a in &self.agents {
            if a.id.is_empty() {
                return Err(SpecError::EmptyAgentId);
            }
            if !ids.insert(a.id.as_str()) {
                return Err(SpecError::DuplicateAgent(a.id.clone()));
            }
            if a.tenant.is_empty() {
                return Err(SpecError::AgentWithoutTenant(a.id.clone()));
            }
            for (skill, &level) in &a.skills {
                check_level(&format!("agent `{}`", a.id), skill, level)?;
            }
        }
        Ok(())
    }
}

fn check_level(owner: &str, skill: &str, level: u8) -> Result<(), SpecError> {
    if SKILL_LEVELS.contains(&level) {
        Ok(())
    } else {
        Err(SpecError::BadLevel {
            owner: owner.to_owned(),
            skill: skill.to_owned(),
            level,
        })
    }
}

fn check_service_level(owner: &str, sl: &ServiceLevelSpec) -> Result<(), SpecError> {
    if sl.target_percent > 100 {
        return Err(SpecError::BadTarget {
            owner: owner.to_owned(),
            percent: sl.target_percent,
        });
    }
    if sl.window.is_zero() {
        return Err(SpecError::ZeroDuration {
            owner: owner.to_owned(),
            what: "service-level window",
        });
    }
    Ok(())
}

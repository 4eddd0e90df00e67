//! ACD settings: the engine-wide `acd:` section of `zentrale.yaml` and the
//! `queues:` of each tenant's dialplan file.
//!
//! These are plain data; the ACD engine maps them onto its own types.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Agent;
/// How a queue picks among the agents able to take a call: the ACD's own
/// type, which the config names by its YAML names (`ring-all`, ...).
pub use crate::acd::Strategy;
use crate::dialplan::{QueueRef, Target};

/// The pause reason zentrale sets itself when an agent leaves
/// `max_missed_offers` offers in a row unanswered. Agents cannot choose it.
pub const NO_ANSWER_REASON: &str = "no-answer";

/// Engine-wide ACD settings (`acd:`).
///
/// ```yaml
/// acd:
///   login_on_register: true
///   max_missed_offers: 3
///   wrap_up_secs: 30
///   feature_codes: { login: "*40", logout: "*41", pause: "*42", unpause: "*43" }
///   pause_reasons: [break, back-office, training]
///   pause_codes: { "1": break, "2": back-office, "3": training }
/// ```
///
/// An agent dials a feature code from the softphone; `pause` followed by a
/// key of `pause_codes` pauses with that reason (`*421` = break), the bare
/// pause code with the first of `pause_reasons`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdConfig {
    /// Whether an agent is logged in to its queues as soon as its phone
    /// registers (default false: the agent dials the login code).
    pub login_on_register: bool,
    /// After this many unanswered offers in a row an agent is paused with
    /// [`NO_ANSWER_REASON`]; `None` when `max_missed_offers: 0` (never).
    /// Default 3. Agents may override it.
    pub max_missed_offers: Option<u32>,
    /// Wrap-up time after a call before the next offer (`wrap_up_secs`,
    /// default 30 s); the default for every queue's `wrap_up_secs`.
    pub wrap_up: Duration,
    /// The codes agents dial to log in, out, pause and unpause.
    pub feature_codes: FeatureCodes,
    /// Pause reasons agents may choose, in file order (default `break`,
    /// `back-office`, `training`). [`NO_ANSWER_REASON`] is built in, not listed.
    pub pause_reasons: Vec<String>,
    /// Digits dialled after the pause code → pause reason (default: the
    /// reasons numbered `1`, `2`, ... in `pause_reasons` order).
    pub pause_codes: BTreeMap<String, String>,
}

/// Feature codes (`acd.feature_codes`): `*` or `#` followed by digits, unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    /// Default `*40`.
    pub login: String,
    /// Default `*41`.
    pub logout: String,
    /// Default `*42`; followed by a key of `pause_codes` to give a reason.
    pub pause: String,
    /// Default `*43`.
    pub unpause: String,
}

/// What an agent asked for by dialling a feature code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// Log in to the agent's queues.
    Login,
    /// Log out of all queues.
    Logout,
    /// Stop receiving offers, with one of the configured reasons.
    Pause {
        /// A name from [`AcdConfig::pause_reasons`].
        reason: String,
    },
    /// Receive offers again.
    Unpause,
}

impl AcdConfig {
    /// The feature a dialled number (Request-URI user of an agent's INVITE)
    /// asks for, if it is one.
    ///
    /// ```
    /// # use zentrale::config::{AcdConfig, Feature};
    /// let acd = AcdConfig::default();
    /// assert_eq!(acd.feature("*40"), Some(Feature::Login));
    /// assert_eq!(acd.feature("*422"), Some(Feature::Pause { reason: "back-office".into() }));
    /// assert_eq!(acd.feature("*42"), Some(Feature::Pause { reason: "break".into() }));
    /// assert_eq!(acd.feature("*429"), None);
    /// assert_eq!(acd.feature("115"), None);
    /// ```
    pub fn feature(&self, dialled: &str) -> Option<Feature> {
        let c = &self.feature_codes;
        if dialled == c.login {
            return Some(Feature::Login);
        }
        if dialled == c.logout {
            return Some(Feature::Logout);
        }
        if dialled == c.unpause {
            return Some(Feature::Unpause);
        }
        let suffix = dialled.strip_prefix(c.pause.as_str())?;
        let reason = if suffix.is_empty() {
            self.pause_reasons.first()?
        } else {
            self.pause_codes.get(suffix)?
        };
        Some(Feature::Pause {
            reason: reason.clone(),
        })
    }
}

impl Default for AcdConfig {
    /// The defaults of an absent `acd:` section.
    fn default() -> Self {
        let pause_reasons: Vec<String> = ["break", "back-office", "training"]
            .map(String::from)
            .to_vec();
        AcdConfig {
            login_on_register: false,
            max_missed_offers: Some(3),
            wrap_up: Duration::from_secs(30),
            feature_codes: FeatureCodes {
                login: "*40".to_string(),
                logout: "*41".to_string(),
                pause: "*42".to_string(),
                unpause: "*43".to_string(),
            },
            pause_codes: numbered(&pause_reasons),
            pause_reasons,
        }
    }
}

/// The default `pause_codes`: reasons numbered from `1` in list order (up to 9).
pub(crate) fn numbered(reasons: &[String]) -> BTreeMap<String, String> {
    reasons
        .iter()
        .take(9)
        .enumerate()
        .map(|(i, r)| ((i + 1).to_string(), r.clone()))
        .collect()
}

/// A queue: callers wait here until an agent with the queue's skill takes
/// the call.
///
/// ```yaml
/// queues:
///   - id: rathaus
///     name: Rathaus Quickborn
///     skill: general
///     strategy: ring-all
///     max_wait_secs: 20
///     on_timeout: { queue: kreis-pinneberg/115 }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The tenant whose dialplan defines the queue.
    pub tenant: String,
    /// Id, unique within the tenant.
    pub id: String,
    /// Display name for agents and wallboards.
    pub name: String,
    /// Skill an agent needs to take calls of this queue.
    pub skill: String,
    /// Lowest skill level (1..=10) an agent needs (default 1).
    pub min_level: u8,
    /// Tenants whose agents serve this queue (`agents_from`, default: the
    /// queue's own tenant). Listing other tenants lets a service center's
    /// agents serve a town's queue; the own tenant must be listed too if its
    /// agents should still serve.
    pub agents_from: Vec<String>,
    /// How the next agent is chosen (default longest-idle).
    pub strategy: Strategy,
    /// Queue priority: callers of higher-priority queues are offered to a
    /// shared agent first (default 0; hotlines add theirs).
    pub priority: i32,
    /// Wrap-up after a call of this queue (default `acd.wrap_up_secs`);
    /// an agent's own `wrap_up_secs` takes precedence, see [`Agent::wrap_up_for`].
    pub wrap_up: Duration,
    /// How long an offer rings before it goes to the next agent
    /// (`ring_timeout_secs`, default 15 s).
    pub ring_timeout: Duration,
    /// Most callers waiting at once; the next one goes to `on_full`
    /// (default `None`: unlimited).
    pub max_waiting: Option<u32>,
    /// A new caller whose expected wait is longer than this goes to
    /// `on_full` (`max_expected_wait_secs`, default `None`: never).
    pub max_expected_wait: Option<Duration>,
    /// A caller waiting this long goes to `on_timeout` (`max_wait_secs`,
    /// default `None`: waits until answered or hung up).
    pub max_wait: Option<Duration>,
    /// Whether a caller may join while no agent who could serve the queue
    /// is logged in (default true). When false, such callers go to `on_no_agents`.
    pub join_empty: bool,
    /// Interval of the position and wait-time announcement
    /// (`announce_every_secs`, default 45 s); `None` when 0 (off).
    pub announce_every: Option<Duration>,
    /// Sound looped while waiting (default `moh`).
    pub music: String,
    /// The service-level promise this queue is measured against.
    pub service_level: ServiceLevel,
    /// Steps that relax the requirement the longer a caller waits, in
    /// increasing `after` order, each fully resolved.
    pub widen: Vec<WidenStep>,
    /// Where a caller goes after `max_wait` (default `{ prompt: call-later }`).
    pub on_timeout: Target,
    /// Where a caller goes when no agent is logged in and `join_empty` is
    /// false (default `{ prompt: call-later }`).
    pub on_no_agents: Target,
    /// Where a caller goes when `max_waiting` or `max_expected_wait` is
    /// exceeded (default `{ prompt: call-later }`).
    pub on_full: Target,
}

impl Queue {
    /// The queue's name across tenants.
    pub fn reference(&self) -> QueueRef {
        QueueRef {
            tenant: self.tenant.clone(),
            queue: self.id.clone(),
        }
    }

    /// The skill and level a caller who has waited `waited` needs: the last
    /// `widen` step reached, or the queue's own: `(skill, min_level)`.
    pub fn requirement(&self, waited: Duration) -> (&str, u8) {
        self.widen
            .iter()
            .rev()
            .find(|s| waited >= s.after)
            .map_or((self.skill.as_str(), self.min_level), |s| {
                (s.skill.as_str(), s.min_level)
            })
    }
}

impl Agent {
    /// The wrap-up after a call from `queue`: the agent's own setting if it
    /// has one (a person-level arrangement), else the queue's.
    pub fn wrap_up_for(&self, queue: &Queue) -> Duration {
        self.wrap_up.unwrap_or(queue.wrap_up)
    }
}

/// A service-level promise: `target_percent` of calls answered within
/// `threshold`, measured over a sliding `window`.
///
/// ```yaml
/// service_level: { seconds: 30, target_percent: 75, window_secs: 3600 }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLevel {
    /// Answered within this counts as in time (`seconds`, default 30).
    pub threshold: Duration,
    /// The promised share, 1..=100 (default 75).
    pub target_percent: u8,
    /// The window the share is computed over (`window_secs`, default 3600).
    pub window: Duration,
}

impl Default for ServiceLevel {
    /// The 115 promise: 75 % within 30 s, over the last hour.
    fn default() -> Self {
        ServiceLevel {
            threshold: Duration::from_secs(30),
            target_percent: 75,
            window: Duration::from_secs(3600),
        }
    }
}

/// From `after` on, a caller may be offered to agents with `skill` at
/// `min_level` or more. Values the YAML step leaves out are carried over from
/// the step before (or the queue), so each step is complete here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidenStep {
    /// Waiting time from which the step applies (`after_secs`).
    pub after: Duration,
    /// The skill required from then on.
    pub skill: String,
    /// The lowest level required from then on.
    pub min_level: u8,
}

/// The prompts the ACD itself plays, which every deployment needs in its
/// sounds directory: connecting, call-later, the position and wait-time
/// announcement (`position`, `wait-time`, `minute`, `minutes`, `num-1` ..
/// `num-60`, `num-1-fem` for "eine Minute") and the agent feature-code
/// confirmations.
pub fn acd_prompts() -> Vec<String> {
    let fixed = [
        "connecting",
        "call-later",
        "position",
        "wait-time",
        "minute",
        "minutes",
        "num-1-fem",
        "agent-logged-in",
        "agent-logged-out",
        "agent-paused",
        "agent-unpaused",
        "agent-error",
    ];
    fixed
        .into_iter()
        .map(String::from)
        .chain((1..=60).map(|n| format!("num-{n}")))
        .collect()
}

//! Where a call goes: called number → tenant and hotline, service hours,
//! IVR menu, overflow and surge limits. Pure data and pure functions, no IO:
//! every decision takes the time as an argument.
//!
//! [`Dialplan::from_config`] builds the table from a validated
//! [`Config`]; it is cheap and has no side effects, so on reload the daemon
//! builds a new one and swaps it in atomically (calls in progress keep the
//! [`CallRoute`] they were given).
//!
//! [`Dialplan::decide`] answers for a new call:
//!
//! ```
//! # use std::path::Path;
//! use zentrale::config::{Config, Overrides};
//! use zentrale::dialplan::{CallInput, Decision, Dialplan};
//!
//! let config = Config::load(
//!     &Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml"),
//!     &Overrides::default(),
//! ).unwrap();
//! let dialplan = Dialplan::from_config(&config);
//! // Tuesday 2026-11-24, 10:00 in Kassel (09:00 UTC).
//! let at = "2026-11-24T09:00:00Z".parse().unwrap();
//! match dialplan.decide(&CallInput::to_number("+49561115"), at) {
//!     Decision::Hotline(route) => {
//!         assert_eq!(route.route.queue.as_deref(), Some("kassel/115"));
//!         assert_eq!(&*route.origin.municipality, "Kassel");
//!         assert!(route.origin.via_115);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! The pieces: [`number`](NumberPattern) matching and [`normalise`],
//! [`CallInput`] from SIP header values, [`Schedule`] with public holidays
//! per [`FederalState`], [`Menu`] (a sans-IO state machine), [`Overflow`]
//! and [`SurgeLimits`].

mod holidays;
mod hours;
mod input;
mod menu;
mod number;
mod overflow;
mod slots;
mod surge;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::config::{Config, QueueRef, Target};

pub use holidays::{FederalState, Holiday, easter_sunday, holiday_on, holidays};
pub use hours::{
    ClosedReason, Closure, ClosureDays, Openness, Overlap, Schedule, TimeRange, WeeklyEntry,
    WeeklyHours, time_zone,
};
pub(crate) use hours::{day_name, time_zone_names};
pub use input::{
    CallInput, NumberSource, SipHeaders, diversion_original, entries, history_info_users,
    mask_number, uri_user,
};
pub use menu::{Menu, MenuAction, MenuChoice, MenuSpec};
pub use number::{MatchKind, NumberPattern, PatternDigit, is_115, normalise};
pub use overflow::{Overflow, OverflowCause, QueueExit};
pub use slots::{CallSlots, SlotRefusal, SlotShare, caller_slots};
pub use surge::{BusyReason, SurgeLimits};

/// A value in a dialplan that cannot be read: what is wrong and what to
/// write instead. The config loader adds the file position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub hint: String,
}

/// What a hotline does with a call, resolved from the config: the part
/// that is the same for every call to one of its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub tenant: String,
    pub tenant_name: String,
    pub hotline: String,
    pub hotline_name: String,
    /// The number as configured (not as dialled): `0561115`, `0561*`, ...
    pub number: String,
    /// Sound played once after answering.
    pub greeting: String,
    /// Sound looped after the greeting until the call ends (hotlines
    /// without a queue).
    pub waiting: String,
    /// The ACD queue callers wait in, as `tenant/queue` (after the menu,
    /// if any, chose no other target).
    pub queue: Option<String>,
    /// Added to the queue's priority for callers of this hotline.
    pub priority: i32,
    /// Ring (180) this long before answering.
    pub answer_after: std::time::Duration,
}

/// Where a call comes from, carried through the whole system: agents see
/// it, metrics, call records and service-level figures are split by it.
///
/// For a call forwarded to us (Diversion/History-Info) whose original
/// number is one of ours, the origin is the hotline of that original number
/// (a town hall's unanswered calls forwarded by its PBX to the district
/// service center count for the town), while the [`CallRoute::route`] is
/// the hotline that handles the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub tenant: Arc<str>,
    pub hotline: Arc<str>,
    /// The municipality the caller meant (the hotline's `municipality`,
    /// else the dialplan's, else the tenant's name), e.g. `Quickborn`.
    pub municipality: Arc<str>,
    /// The call came in via the authority number 115, not a local number.
    pub via_115: bool,
    /// The number the caller dialled, national form: the original called
    /// number of a forwarded call, else the one that matched.
    pub called: String,
    /// The header `called` came from.
    pub called_from: NumberSource,
    /// The call was forwarded to us (it had Diversion or History-Info).
    pub forwarded: bool,
}

impl Origin {
    /// The `via` label of metrics: `115` or `local`.
    pub fn via_label(&self) -> &'static str {
        if self.via_115 { "115" } else { "local" }
    }

    /// What an agent's phone shows before the caller's number, e.g.
    /// `Quickborn` or `Kassel 115`.
    pub fn display(&self) -> String {
        if self.via_115 {
            format!("{} 115", self.municipality)
        } else {
            self.municipality.to_string()
        }
    }
}

/// Which number matched how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The matched number, national form.
    pub number: String,
    pub source: NumberSource,
    pub kind: MatchKind,
}

/// Everything the daemon needs to run one call of a hotline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRoute {
    /// The hotline: greeting, queue, priority, ring time.
    pub route: Arc<Route>,
    pub origin: Origin,
    pub matched: Matched,
    /// The menu to run after the greeting; its result replaces `route.queue`.
    pub menu: Option<Arc<MenuSpec>>,
    /// The hotline's overflow rules (for labels; see [`Overflow`]).
    pub overflow: Option<Arc<Overflow>>,
    /// The handling tenant's surge limits.
    pub limits: Arc<SurgeLimits>,
}

/// What to do with a new call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Open: answer, greeting, the menu if any, then the queue (or
    /// `waiting` in a loop).
    Hotline(CallRoute),
    /// Outside service hours: answer, greeting, then `target` (by default
    /// `{ prompt: closed }`).
    Closed {
        route: CallRoute,
        target: Target,
        reason: ClosedReason,
        reopens_at: Option<Timestamp>,
    },
    /// The hotline hands the call on at once (so far only `when_closed`):
    /// answer, greeting, then `target`; count it as overflow.
    Overflow {
        route: CallRoute,
        target: Target,
        cause: OverflowCause,
    },
    /// No hotline has any of the call's numbers (404).
    Unknown,
}

impl Decision {
    pub fn route(&self) -> Option<&CallRoute> {
        match self {
            Decision::Hotline(r)
            | Decision::Closed { route: r, .. }
            | Decision::Overflow { route: r, .. } => Some(r),
            Decision::Unknown => None,
        }
    }
}

/// A hotline's per-call data, shared by its numbers.
#[derive(Debug)]
struct HotlinePlan {
    tenant: Arc<str>,
    hotline: Arc<str>,
    municipality: Arc<str>,
    via_115: Option<bool>,
    schedule: Option<Schedule>,
    closed: Target,
    menu: Option<Arc<MenuSpec>>,
    overflow: Option<Arc<Overflow>>,
    limits: Arc<SurgeLimits>,
}

/// One configured number of a hotline.
#[derive(Debug)]
struct Line {
    route: Arc<Route>,
    plan: Arc<HotlinePlan>,
}

/// The number → route table of all tenants, with their schedules.
#[derive(Debug, Clone, Default)]
pub struct Dialplan {
    exact: HashMap<String, Arc<Line>>,
    patterns: Vec<(NumberPattern, Arc<Line>)>,
    /// Longest first.
    prefixes: Vec<(String, Arc<Line>)>,
    /// The schedule of each queue that has one (for overflow targets).
    queue_hours: HashMap<QueueRef, Arc<Schedule>>,
}

impl Dialplan {
    /// Builds the table from a validated config (numbers do not overlap
    /// there). Pure and cheap: no IO, a few allocations per number.
    pub fn from_config(config: &Config) -> Dialplan {
        let mut d = Dialplan::default();
        for tenant in &config.tenants {
            let dp = &tenant.dialplan;
            let limits = Arc::new(dp.limits.clone());
            let tenant_id: Arc<str> = Arc::from(tenant.id.as_str());
            for hotline in &dp.hotlines {
                let plan = Arc::new(HotlinePlan {
                    tenant: tenant_id.clone(),
                    hotline: Arc::from(hotline.id.as_str()),
                    municipality: Arc::from(hotline.municipality.as_str()),
                    via_115: hotline.via_115,
                    schedule: hotline.schedule.clone(),
                    closed: hotline.closed.clone(),
                    menu: hotline.menu.clone().map(Arc::new),
                    overflow: hotline.overflow.clone().map(Arc::new),
                    limits: limits.clone(),
                });
                for number in &hotline.numbers {
                    let Ok(pattern) = NumberPattern::parse(number) else {
                        // The loader refuses such numbers; a hand-built
                        // config with one simply does not route it.
                        continue;
                    };
                    let line = Arc::new(Line {
                        route: Arc::new(Route {
                            tenant: tenant.id.clone(),
                            tenant_name: tenant.name.clone(),
                            hotline: hotline.id.clone(),
                            hotline_name: hotline.name.clone(),
                            number: number.clone(),
                            greeting: hotline.greeting.clone(),
                            waiting: hotline.waiting.clone(),
                            queue: hotline.queue.as_ref().map(ToString::to_string),
                            priority: hotline.priority,
                            answer_after: std::time::Duration::from_millis(hotline.answer_after_ms),
                        }),
                        plan: plan.clone(),
                    });
                    match pattern {
                        NumberPattern::Exact(n) => {
                            d.exact.entry(n).or_insert(line);
                        }
                        NumberPattern::Prefix(p) => d.prefixes.push((p, line)),
                        p @ NumberPattern::Pattern(_) => d.patterns.push((p, line)),
                    }
                }
                if let (Some(q), Some(s)) = (&hotline.queue, &hotline.schedule)
                    && q.tenant == tenant.id
                {
                    d.queue_hours
                        .entry(q.clone())
                        .or_insert_with(|| Arc::new(s.clone()));
                }
            }
            // Queues no hotline of their tenant leads to follow the tenant's hours.
            if let Some(s) = &dp.schedule {
                for q in &dp.queues {
                    d.queue_hours
                        .entry(q.reference())
                        .or_insert_with(|| Arc::new(s.clone()));
                }
            }
        }
        d.prefixes
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        d
    }

    /// The line for a dialled number: exact before pattern before prefix,
    /// the longest prefix first.
    fn lookup(&self, dialled: &str) -> Option<(&Arc<Line>, MatchKind, String)> {
        let n = normalise(dialled);
        if n.is_empty() {
            return None;
        }
        if let Some(l) = self.exact.get(&n) {
            return Some((l, MatchKind::Exact, n));
        }
        if let Some((_, l)) = self.patterns.iter().find(|(p, _)| p.matches(&n)) {
            return Some((l, MatchKind::Pattern, n));
        }
        self.prefixes
            .iter()
            .find(|(p, _)| n.starts_with(p.as_str()))
            .map(|(_, l)| (l, MatchKind::Prefix, n))
    }

    /// The hotline for a called number (Request-URI user), if any: the
    /// routing of the first version, without hours, menu or origin.
    ///
    /// ```
    /// # use zentrale::dialplan::normalise;
    /// assert_eq!(normalise("+49561115"), "0561115");
    /// assert_eq!(normalise("0049561115"), "0561115");
    /// assert_eq!(normalise("115"), "115");
    /// ```
    pub fn route(&self, called: &str) -> Option<Arc<Route>> {
        self.lookup(called).map(|(l, _, _)| l.route.clone())
    }

    /// The configured exact numbers, normalised.
    pub fn numbers(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }

    /// The decision for a new call at time `at`.
    ///
    /// The call's numbers are tried in order (Request-URI, To, then the
    /// original called number from Diversion/History-Info); the first that
    /// matches a hotline routes the call. Then the hotline's service hours
    /// decide between [`Decision::Hotline`], [`Decision::Closed`] and, with
    /// `overflow: { when_closed: true }` and an open target,
    /// [`Decision::Overflow`].
    pub fn decide(&self, input: &CallInput, at: Timestamp) -> Decision {
        let Some((line, kind, number, source)) = input
            .candidates()
            .find_map(|(n, src)| self.lookup(n).map(|(l, k, num)| (l, k, num, src)))
        else {
            return Decision::Unknown;
        };
        let original = input.original_called();
        let forwarded = original.is_some();
        // The origin is the hotline of the original number when that is one
        // of ours; else the routing hotline, reached via 115 if the number
        // that matched is a 115 number.
        let (origin_plan, called, via_number) = match original {
            Some((o, _)) => match self.lookup(o) {
                Some((ol, _, on)) => (&ol.plan, on.clone(), on),
                None => (&line.plan, normalise(o), number.clone()),
            },
            None => (&line.plan, number.clone(), number.clone()),
        };
        let called_from = original.map_or(source, |(_, s)| s);
        let plan = &line.plan;
        let route = CallRoute {
            route: line.route.clone(),
            origin: Origin {
                tenant: origin_plan.tenant.clone(),
                hotline: origin_plan.hotline.clone(),
                municipality: origin_plan.municipality.clone(),
                via_115: origin_plan.via_115.unwrap_or_else(|| is_115(&via_number)),
                called,
                called_from,
                forwarded,
            },
            matched: Matched {
                number,
                source,
                kind,
            },
            menu: plan.menu.clone(),
            overflow: plan.overflow.clone(),
            limits: plan.limits.clone(),
        };
        let Some(schedule) = &plan.schedule else {
            return Decision::Hotline(route);
        };
        let (reason, reopens_at) = match schedule.is_open(at) {
            Openness::Open => return Decision::Hotline(route),
            Openness::Closed { reason, reopens_at } => (reason, reopens_at),
        };
        if let Some(o) = plan.overflow.as_ref().filter(|o| o.when_closed)
            && self.target_open(&o.target, at)
        {
            let target = o.target.clone();
            return Decision::Overflow {
                route,
                target,
                cause: OverflowCause::Closed,
            };
        }
        Decision::Closed {
            route,
            target: plan.closed.clone(),
            reason,
            reopens_at,
        }
    }

    /// Whether a target takes calls at `at`: a queue follows the hours of
    /// the hotline of its tenant that leads to it (else the tenant's
    /// hours); anything else is always available.
    fn target_open(&self, target: &Target, at: Timestamp) -> bool {
        match target {
            Target::Queue(q) => self.queue_open(q, at),
            _ => true,
        }
    }

    /// Whether `queue` is within its service hours at `at`: the hours of
    /// the tenant's hotline that leads to it, else the tenant's; a queue
    /// without any is always open. The overflow's test for an open target,
    /// and `zentrale_queue_open` (alert rules that only matter in service
    /// hours).
    pub fn queue_open(&self, queue: &QueueRef, at: Timestamp) -> bool {
        self.queue_hours
            .get(queue)
            .is_none_or(|s| s.is_open(at) == Openness::Open)
    }
}

//! Where a call goes: called number → tenant and hotline, service hours,
//! IVR menu, overflow and surge limits. Pure data and pure functions, no IO:
//! every decision takes the time as an argument.
//!
//! [`Config::dialplan`](crate::config::Config::dialplan) builds the table
//! from a validated config (the config parses into this module's types;
//! this module knows nothing of the config); it is cheap and has no side
//! effects, so on reload the daemon builds a new one and swaps it in
//! atomically (calls in progress keep the [`CallRoute`] they were given).
//!
//! [`Dialplan::decide`] answers for a new call:
//!
//! ```
//! # use std::path::Path;
//! use zentrale::config::{Config, Overrides};
//! use zentrale::dialplan::{CallInput, Decision};
//!
//! let config = Config::load(
//!     &Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml"),
//!     &Overrides::default(),
//! ).unwrap();
//! let dialplan = config.dialplan();
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
mod target;

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

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
pub use target::{QueueRef, Target};

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

/// A hotline as its tenant's dialplan file defines it: the numbers callers
/// dial and what they get. [`Dialplan::add_hotline`] puts it in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hotline {
    /// Id, unique within the tenant.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Dialled numbers as written: exact (`"0561115"`, `"+49561115"`),
    /// prefix (`"0561*"`, `"prefix:0561"`) or pattern (`"04106611X"`); see
    /// [`NumberPattern`]. No number of one tenant overlaps another's.
    pub numbers: Vec<String>,
    /// Sound played first.
    pub greeting: String,
    /// Sound played in a loop after the greeting when the hotline has no
    /// queue (default `waiting`). With a queue, the queue's music plays.
    pub waiting: String,
    /// The queue callers wait in after the greeting (`queue: id` of the same
    /// tenant or `queue: tenant/id`); `None`: greeting, then `waiting` in a loop.
    pub queue: Option<QueueRef>,
    /// Added to the queue's priority for calls of this hotline (default 0).
    pub priority: i32,
    /// How long the call rings (180) before zentrale answers, in ms
    /// (default 0: answer at once).
    pub answer_after_ms: u64,
    /// The municipality of the origin (`municipality:`, default the
    /// dialplan's).
    pub municipality: String,
    /// Whether calls came via 115 (`via_115:`); `None`: decided per call
    /// from the number dialled ([`is_115`]).
    pub via_115: Option<bool>,
    /// Service hours: the tenant's `hours:` with the hotline's `hours:`
    /// keys replacing theirs; `None`: open around the clock.
    pub schedule: Option<Schedule>,
    /// Where calls go outside the hours (default `{ prompt: closed }`).
    pub closed: Target,
    /// The menu played after the greeting (`menu:`).
    pub menu: Option<MenuSpec>,
    /// Overflow rules (`overflow:`).
    pub overflow: Option<Overflow>,
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
    /// The `via` label of metrics, call records and the API: `115` or `local`.
    pub fn via_label(&self) -> &'static str {
        via_label(self.via_115)
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

/// The `via` label of an origin that came via 115 or not (see
/// [`Origin::via_label`]), for what keeps only that flag of it, like the
/// ACD's service-level segments.
pub fn via_label(via_115: bool) -> &'static str {
    if via_115 { "115" } else { "local" }
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
    /// Adds the numbers of `hotline`, a hotline of tenant `tenant` (id and
    /// display name) whose dialplan has the surge `limits`. Numbers already
    /// in the table keep their hotline (a validated config has no overlaps);
    /// a number that is no [`NumberPattern`] is not routed (the config
    /// loader refuses those). Pure and cheap: a few allocations per number.
    ///
    /// [`Config::dialplan`](crate::config::Config::dialplan) builds the
    /// whole table this way.
    pub fn add_hotline(
        &mut self,
        tenant: (&str, &str),
        hotline: &Hotline,
        limits: &Arc<SurgeLimits>,
    ) {
        let (tenant_id, tenant_name) = tenant;
        let plan = Arc::new(HotlinePlan {
            tenant: Arc::from(tenant_id),
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
                continue;
            };
            let line = Arc::new(Line {
                route: Arc::new(Route {
                    tenant: tenant_id.to_string(),
                    tenant_name: tenant_name.to_string(),
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
                    self.exact.entry(n).or_insert(line);
                }
                NumberPattern::Prefix(p) => {
                    // Longest first; among equals, in order of the text.
                    let at = self.prefixes.partition_point(|(q, _)| {
                        q.len() > p.len() || (q.len() == p.len() && *q <= p)
                    });
                    self.prefixes.insert(at, (p, line));
                }
                p @ NumberPattern::Pattern(_) => self.patterns.push((p, line)),
            }
        }
        if let (Some(q), Some(s)) = (&hotline.queue, &hotline.schedule)
            && q.tenant == tenant_id
        {
            self.add_queue_hours(q.clone(), s);
        }
    }

    /// Gives `queue` the service hours `schedule` unless it has some
    /// already: the hours of the first hotline of its tenant that leads to
    /// it ([`add_hotline`](Self::add_hotline)), else the tenant's.
    pub fn add_queue_hours(&mut self, queue: QueueRef, schedule: &Schedule) {
        self.queue_hours
            .entry(queue)
            .or_insert_with(|| Arc::new(schedule.clone()));
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

//! The dialplan keys beyond numbers and queues: `municipality`, `hours`
//! (time zone, federal state, weekly hours, closures, closed target),
//! `limits`, and each hotline's `menu` and `overflow`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::refs::Refs;
use super::{Loader, Sounds};
use crate::config::Queue;
use crate::config::error::{Pos, closest};
use crate::config::raw::{RawHours, RawLimits, RawMenu, RawOverflow, RawTarget};
use crate::dialplan::{
    Closure, FederalState, MenuSpec, Overflow, QueueRef, Schedule, SurgeLimits, Target,
    WeeklyEntry, WeeklyHours, day_name, time_zone, time_zone_names,
};

/// The zone of a schedule that names none.
pub(super) const DEFAULT_ZONE: &str = "Europe/Berlin";
/// The default prompt outside service hours.
const CLOSED_PROMPT: &str = "closed";
/// The default prompt after an invalid menu key.
const INVALID_PROMPT: &str = "invalid-input";
/// A menu timeout longer than this only keeps callers waiting.
const MAX_MENU_TIMEOUT_SECS: u64 = 30;
/// More menu repetitions than this and callers hang up.
const MAX_MENU_RETRIES: u32 = 5;

/// The keys of one `hours:` block as written (each `None` if left out),
/// already checked.
#[derive(Debug, Clone, Default)]
pub(super) struct Hours {
    /// Where the `hours:` key is; `None` when there is none.
    pub at: Option<Pos>,
    zone: Option<String>,
    state: Option<Option<FederalState>>,
    weekly: Option<WeeklyHours>,
    closures: Option<Vec<Closure>>,
    closed: Option<Target>,
}

impl Hours {
    /// A block that could not be read (its error is reported): present,
    /// with every key at its default.
    pub fn broken(at: Pos) -> Hours {
        Hours {
            at: Some(at),
            ..Hours::default()
        }
    }

    /// This block's keys, each replacing the one of `base` (the tenant's).
    fn over(&self, base: &Hours) -> Hours {
        Hours {
            at: self.at.or(base.at),
            zone: self.zone.clone().or_else(|| base.zone.clone()),
            state: self.state.or(base.state),
            weekly: self.weekly.clone().or_else(|| base.weekly.clone()),
            closures: self.closures.clone().or_else(|| base.closures.clone()),
            closed: self.closed.clone().or_else(|| base.closed.clone()),
        }
    }
}

/// What the hotlines of a file inherit from its top-level keys.
pub(super) struct TenantDefaults {
    pub municipality: String,
    pub hours: Hours,
}

impl Loader<'_> {
    // ---- top-level keys of a dialplan file -----------------------------------------

    pub(super) fn municipality(
        &mut self,
        file: &Path,
        raw: Option<Spanned<String>>,
        key: Pos,
        tenant_name: &str,
    ) -> String {
        match raw {
            Some(m) if m.value.trim().is_empty() => {
                self.d.at(
                    file,
                    Pos::or(&m, key),
                    "empty municipality",
                    "write the town agents should see, e.g. Quickborn, or remove the key to use \
                     the tenant's name",
                );
                tenant_name.to_string()
            }
            Some(m) => m.value,
            None => tenant_name.to_string(),
        }
    }

    /// A `hours:` block (of the file or of a hotline).
    pub(super) fn hours(
        &mut self,
        file: &Path,
        raw: &Spanned<RawHours>,
        key: Pos,
        (tenant, what): (&str, &str),
        sounds: Option<&Sounds>,
        refs: &mut Refs,
    ) -> Hours {
        let hpos = Pos::or(raw, key);
        let raw = &raw.value;
        let mut out = Hours {
            at: Some(hpos),
            ..Hours::default()
        };
        if let Some(z) = &raw.time_zone {
            let pos = Pos::or(z, hpos);
            if time_zone(&z.value).is_some() {
                out.zone = Some(z.value.clone());
            } else {
                let names = time_zone_names();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let hint = match closest(&z.value, &refs) {
                    Some(c) => format!("did you mean `{c}`? write an IANA time zone name"),
                    None => {
                        format!("write an IANA time zone name such as {DEFAULT_ZONE} (the default)")
                    }
                };
                self.d
                    .at(file, pos, format!("unknown time zone `{}`", z.value), hint);
            }
        }
        if let Some(s) = &raw.state {
            let pos = Pos::or(s, hpos);
            if s.value.trim().eq_ignore_ascii_case("none") {
                out.state = Some(None);
            } else {
                match s.value.parse::<FederalState>() {
                    Ok(st) => out.state = Some(Some(st)),
                    Err(e) => self.d.at(file, pos, e.message, e.hint),
                }
            }
        }
        if let Some(w) = &raw.weekly {
            out.weekly = Some(self.weekly(file, w, hpos));
        }
        if let Some(list) = &raw.closures {
            let lpos = Pos::or(list, hpos);
            let mut seen: Vec<(Closure, Pos)> = Vec::new();
            for c in &list.value {
                let pos = Pos::or(c, lpos);
                match c.value.parse::<Closure>() {
                    Ok(closure) => {
                        if let Some((_, first)) = seen.iter().find(|(x, _)| *x == closure) {
                            self.d.at(
                                file,
                                pos,
                                format!(
                                    "closure `{}` is listed twice (first at line {})",
                                    c.value, first.line
                                ),
                                "remove the second entry",
                            );
                        } else {
                            seen.push((closure, pos));
                        }
                    }
                    Err(e) => self.d.at(file, pos, e.message, e.hint),
                }
            }
            out.closures = Some(seen.into_iter().map(|(c, _)| c).collect());
        }
        if let Some(t) = &raw.closed {
            out.closed = self.dialplan_target(
                file,
                t,
                hpos,
                tenant,
                sounds,
                refs,
                format!("closed target of {what}"),
            );
        }
        out
    }

    fn weekly(
        &mut self,
        file: &Path,
        list: &Spanned<Vec<Spanned<String>>>,
        hpos: Pos,
    ) -> WeeklyHours {
        let lpos = Pos::or(list, hpos);
        if list.value.is_empty() {
            self.d.at(
                file,
                lpos,
                "weekly is empty, so the hotline would never open",
                "list the opening hours, e.g. [\"mon-fri 08:00-18:00\"], or remove `weekly` to \
                 be open around the clock",
            );
        }
        let mut weekly = WeeklyHours::default();
        let mut lines: Vec<(WeeklyEntry, Pos, &str)> = Vec::new();
        for line in &list.value {
            let pos = Pos::or(line, lpos);
            let entry = match line.value.parse::<WeeklyEntry>() {
                Ok(e) => e,
                Err(e) => {
                    self.d.at(file, pos, e.message, e.hint);
                    continue;
                }
            };
            if let Err(o) = weekly.add(&entry) {
                let earlier = lines
                    .iter()
                    .find(|(e, _, _)| e.days.contains(&o.day) && e.ranges.contains(&o.existing))
                    .map(|(_, p, text)| format!(" of `{text}` (line {})", p.line))
                    .unwrap_or_default();
                self.d.at(
                    file,
                    pos,
                    format!(
                        "{} {} overlaps {}{earlier}",
                        day_name(o.day),
                        o.new,
                        o.existing
                    ),
                    "give each day its hours once, e.g. \"mon-thu 08:00-17:00\" and \
                     \"fri 08:00-13:00\"",
                );
                continue;
            }
            lines.push((entry, pos, &line.value));
        }
        weekly
    }

    /// The schedule and closed target of a hotline from its own `hours:`
    /// over the file's; `None` when neither has one. A default `closed`
    /// prompt must exist as a sound.
    pub(super) fn schedule(
        &mut self,
        file: &Path,
        own: &Hours,
        base: &Hours,
        sounds: Option<&Sounds>,
    ) -> (Option<Schedule>, Target) {
        let h = own.over(base);
        let closed_default = Target::Prompt(CLOSED_PROMPT.to_string());
        let Some(at) = h.at else {
            return (None, h.closed.unwrap_or(closed_default));
        };
        let zone = h.zone.as_deref().unwrap_or(DEFAULT_ZONE);
        let mut schedule = match Schedule::new(zone) {
            Ok(s) => s,
            // The zone was checked; a bad one is reported and Berlin stands in.
            Err(_) => match Schedule::new(DEFAULT_ZONE) {
                Ok(s) => s,
                Err(e) => {
                    self.d.at(
                        file,
                        at,
                        e.message,
                        "the time zone database is missing; install tzdata",
                    );
                    return (None, closed_default);
                }
            },
        };
        schedule.set_weekly(h.weekly);
        schedule.set_state(h.state.flatten());
        for c in h.closures.unwrap_or_default() {
            schedule.add_closure(c);
        }
        let closed = match h.closed {
            Some(t) => t,
            None => {
                let name = Spanned::new(
                    CLOSED_PROMPT.to_string(),
                    serde_saphyr::Location::UNKNOWN,
                    serde_saphyr::Location::UNKNOWN,
                );
                self.sound(file, &name, at, sounds);
                closed_default
            }
        };
        (Some(schedule), closed)
    }

    pub(super) fn limits(
        &mut self,
        file: &Path,
        raw: &Spanned<RawLimits>,
        key: Pos,
        tenant: &str,
        sounds: Option<&Sounds>,
        refs: &mut Refs,
    ) -> SurgeLimits {
        let lpos = Pos::or(raw, key);
        let raw = &raw.value;
        let mut positive = |v: &Option<Spanned<u32>>, name: &str, example: &str| {
            let v = v.as_ref()?;
            if v.value == 0 {
                self.d.at(
                    file,
                    Pos::or(v, lpos),
                    format!("{name} is 0, so every call would get the busy target"),
                    format!("remove it for no limit, or set a limit, e.g. {example}"),
                );
                return None;
            }
            Some(v.value)
        };
        let max_calls = positive(&raw.max_calls, "max_calls", "200");
        let max_waiting = positive(&raw.max_waiting, "max_waiting", "100");
        let busy = raw
            .busy
            .as_ref()
            .and_then(|t| {
                self.dialplan_target(
                    file,
                    t,
                    lpos,
                    tenant,
                    sounds,
                    refs,
                    "busy target of the limits".to_string(),
                )
            })
            .unwrap_or_else(Target::call_later);
        let mut slots = crate::dialplan::SlotShare::default();
        if let Some(raw_slots) = &raw.slots {
            let spos = Pos::or(raw_slots, lpos);
            let r = &raw_slots.value;
            if let Some(g) = &r.guaranteed {
                slots.guaranteed = Some(g.value);
                refs.slot_guarantees.push((
                    file.to_path_buf(),
                    Pos::or(g, spos),
                    tenant.to_string(),
                    g.value,
                ));
            }
            if let Some(m) = &r.max {
                if m.value == 0 {
                    self.d.at(
                        file,
                        Pos::or(m, spos),
                        "slots.max is 0, so every call would be refused",
                        "remove it (the guarantee plus every shared slot), or set a limit, e.g. 200",
                    );
                } else if slots.guaranteed.is_some_and(|g| m.value < g) {
                    self.d.at(
                        file,
                        Pos::or(m, spos),
                        format!(
                            "slots.max {} is below slots.guaranteed {}",
                            m.value,
                            slots.guaranteed.unwrap_or(0)
                        ),
                        "set max at least as high as guaranteed",
                    );
                }
                slots.max = Some(m.value);
            }
        }
        SurgeLimits {
            max_calls,
            max_waiting,
            busy,
            slots,
        }
    }

    /// A target outside a queue (closed, busy, menu keys, overflow): its
    /// queue, if any, is checked once every file is read.
    #[allow(clippy::too_many_arguments)] // all are needed to place and check it
    fn dialplan_target(
        &mut self,
        file: &Path,
        raw: &Spanned<RawTarget>,
        fallback: Pos,
        tenant: &str,
        sounds: Option<&Sounds>,
        refs: &mut Refs,
        what: String,
    ) -> Option<Target> {
        let pos = Pos::or(raw, fallback);
        let (target, qpos) = self.target(file, &raw.value, pos, tenant, sounds)?;
        if let Target::Queue(r) = &target {
            refs.queue(file, qpos.unwrap_or(pos), None, what, r);
        }
        Some(target)
    }

    // ---- menus -------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    pub(super) fn menu(
        &mut self,
        file: &Path,
        raw: &Spanned<RawMenu>,
        hpos: Pos,
        (tenant, hotline): (&str, &str),
        queue: Option<&QueueRef>,
        sounds: Option<&Sounds>,
        refs: &mut Refs,
    ) -> Option<MenuSpec> {
        let mpos = Pos::or(raw, hpos);
        let raw = &raw.value;
        self.sound(file, &raw.prompt, Pos::or(&raw.prompt, mpos), sounds);
        let dpos = Pos::or(&raw.digits, mpos);
        if raw.digits.value.0.is_empty() {
            self.d.at(
                file,
                dpos,
                "the menu has no keys",
                "map keys to targets, e.g. digits: { \"1\": { queue: kfz } }, or remove the menu",
            );
        }
        let mut digits = std::collections::BTreeMap::new();
        let mut first_at: HashMap<char, Pos> = HashMap::new();
        let mut complete = true;
        for (k, v) in &raw.digits.value.0 {
            let kpos = Pos::or(k, dpos);
            let key = k.value.trim();
            let mut chars = key.chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_digit() || c == '*' || c == '#' => c,
                _ => {
                    self.d.at(
                        file,
                        kpos,
                        format!("menu key `{key}` is not one phone key"),
                        "use one of 0-9, * or #, quoted: \"1\", \"*\", \"#\"",
                    );
                    complete = false;
                    continue;
                }
            };
            if let Some(first) = first_at.get(&digit) {
                self.d.at(
                    file,
                    kpos,
                    format!(
                        "menu key `{digit}` is used twice (first at line {})",
                        first.line
                    ),
                    "give each key one target: remove or renumber one of them",
                );
                complete = false;
                continue;
            }
            first_at.insert(digit, kpos);
            match self.dialplan_target(
                file,
                v,
                kpos,
                tenant,
                sounds,
                refs,
                format!("menu key {digit} of hotline `{hotline}`"),
            ) {
                Some(t) => {
                    digits.insert(digit, t);
                }
                None => complete = false,
            }
        }
        let timeout = match &raw.timeout_secs {
            None => Duration::from_secs(5),
            Some(t) if t.value == 0 || t.value > MAX_MENU_TIMEOUT_SECS => {
                self.d.at(
                    file,
                    Pos::or(t, mpos),
                    format!(
                        "menu timeout_secs {} is outside 1..={MAX_MENU_TIMEOUT_SECS}",
                        t.value
                    ),
                    "give callers a few seconds after the prompt to press a key, e.g. 5",
                );
                complete = false;
                Duration::from_secs(5)
            }
            Some(t) => Duration::from_secs(t.value),
        };
        let retries = match &raw.retries {
            None => 1,
            Some(r) if r.value > MAX_MENU_RETRIES => {
                self.d.at(
                    file,
                    Pos::or(r, mpos),
                    format!("menu retries {} is more than callers sit through", r.value),
                    format!("use 0 to {MAX_MENU_RETRIES}; after them the call goes to `default`"),
                );
                complete = false;
                1
            }
            Some(r) => r.value,
        };
        let invalid_prompt = match &raw.invalid {
            Some(p) => {
                self.sound(file, p, Pos::or(p, mpos), sounds);
                p.value.clone()
            }
            None => {
                let p = Spanned::new(
                    INVALID_PROMPT.to_string(),
                    serde_saphyr::Location::UNKNOWN,
                    serde_saphyr::Location::UNKNOWN,
                );
                self.sound(file, &p, mpos, sounds);
                p.value
            }
        };
        let default = match &raw.default {
            Some(d) => self.dialplan_target(
                file,
                d,
                mpos,
                tenant,
                sounds,
                refs,
                format!("menu default of hotline `{hotline}`"),
            ),
            None => match queue {
                Some(q) => Some(Target::Queue(q.clone())),
                None => {
                    self.d.at(
                        file,
                        mpos,
                        format!(
                            "the menu of hotline `{hotline}` has no default and the hotline no queue"
                        ),
                        "add `default:` to the menu (where callers go without a valid key), \
                         e.g. default: { queue: general }",
                    );
                    None
                }
            },
        };
        let default = default?;
        complete.then(|| MenuSpec {
            prompt: raw.prompt.value.clone(),
            digits,
            timeout,
            retries,
            invalid_prompt,
            repeat_on_timeout: raw.repeat_on_timeout.as_ref().is_some_and(|r| r.value),
            default,
        })
    }

    // ---- overflow ------------------------------------------------------------------

    /// A hotline's `overflow:`. Its queue triggers are written into the
    /// hotline's queue (see [`crate::dialplan::Overflow`]), which must be the
    /// hotline's alone (checked with all files read) and must not set the
    /// same rules itself.
    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    pub(super) fn overflow(
        &mut self,
        file: &Path,
        raw: &Spanned<RawOverflow>,
        hpos: Pos,
        (tenant, hotline): (&str, &str),
        queue: Option<&QueueRef>,
        queues: &mut [Queue],
        sounds: Option<&Sounds>,
        refs: &mut Refs,
    ) -> Option<Overflow> {
        let opos = Pos::or(raw, hpos);
        let raw = &raw.value;
        let tpos = Pos::or(&raw.target, opos);
        let what = format!("overflow of hotline `{hotline}`");
        let (target, qpos) = self.target(file, &raw.target.value, tpos, tenant, sounds)?;
        let target_pos = qpos.unwrap_or(tpos);
        if let Target::Queue(r) = &target
            && Some(r) == queue
        {
            self.d.at(
                file,
                target_pos,
                format!("the {what} points at the hotline's own queue `{r}`"),
                "overflow to another tenant's queue, e.g. { queue: kreis-pinneberg/115 }, or to \
                 a SIP URI",
            );
            return None;
        }
        let secs = |this: &mut Self, v: &Option<Spanned<u64>>, name: &str| {
            let v = v.as_ref()?;
            if v.value == 0 {
                this.d.at(
                    file,
                    Pos::or(v, opos),
                    format!("overflow {name} is 0, so no call would ever reach the hotline"),
                    "set how long the hotline's own agents get first, e.g. 20; to send every \
                     call elsewhere, give the hotline that queue instead",
                );
                return None;
            }
            Some((Duration::from_secs(v.value), Pos::or(v, opos)))
        };
        let after = secs(self, &raw.after_secs, "after_secs");
        let expected = secs(
            self,
            &raw.when_expected_wait_over_secs,
            "when_expected_wait_over_secs",
        );
        let when_closed = raw.when_closed.as_ref().is_some_and(|b| b.value);
        let no_agents = raw
            .when_no_agents
            .as_ref()
            .filter(|b| b.value)
            .map(|b| Pos::or(b, opos));
        if after.is_none()
            && expected.is_none()
            && !when_closed
            && no_agents.is_none()
            && raw.after_secs.is_none()
            && raw.when_expected_wait_over_secs.is_none()
        {
            self.d.at(
                file,
                opos,
                format!("the {what} has no trigger, so it never happens"),
                "add after_secs, when_closed: true, when_no_agents: true and/or \
                 when_expected_wait_over_secs",
            );
            return None;
        }
        // The queue triggers become rules of the hotline's own queue.
        let queue_triggers: [(Option<Pos>, &'static str); 3] = [
            (after.map(|(_, p)| p), "on_timeout"),
            (no_agents, "on_no_agents"),
            (expected.map(|(_, p)| p), "on_full"),
        ];
        if let Some(first) = queue_triggers.iter().find_map(|(p, _)| *p) {
            let own = queue.filter(|q| q.tenant == tenant);
            match own.and_then(|q| queues.iter_mut().find(|x| x.id == q.queue)) {
                Some(q) => {
                    let qref = q.reference();
                    let mut conflict = |key: &str, theirs: &str, pos: Pos| {
                        self.d.at(
                            file,
                            pos,
                            format!(
                                "the {what} sets {key}, and its queue `{}` sets {theirs} itself",
                                qref.queue
                            ),
                            format!(
                                "set it in one place: remove {theirs} from queue `{}`, or drop \
                                 {key} here",
                                qref.queue
                            ),
                        );
                    };
                    let default = Target::call_later();
                    if let Some((d, p)) = after {
                        if q.max_wait.is_some() || q.on_timeout != default {
                            conflict("after_secs", "max_wait_secs/on_timeout", p);
                        } else {
                            q.max_wait = Some(d);
                            q.on_timeout = target.clone();
                        }
                    }
                    if let Some(p) = no_agents {
                        if !q.join_empty || q.on_no_agents != default {
                            conflict("when_no_agents", "join_empty/on_no_agents", p);
                        } else {
                            q.join_empty = false;
                            q.on_no_agents = target.clone();
                        }
                    }
                    if let Some((d, p)) = expected {
                        if q.max_expected_wait.is_some() || q.on_full != default {
                            conflict(
                                "when_expected_wait_over_secs",
                                "max_expected_wait_secs/on_full",
                                p,
                            );
                        } else {
                            q.max_expected_wait = Some(d);
                            q.on_full = target.clone();
                        }
                    }
                    refs.overflow(file, first, hotline, &qref);
                    if let Target::Queue(r) = &target {
                        for (p, kind) in queue_triggers {
                            if p.is_some() {
                                refs.queue(
                                    file,
                                    target_pos,
                                    Some((qref.clone(), kind)),
                                    what.clone(),
                                    r,
                                );
                            }
                        }
                    }
                }
                None if queue.is_some_and(|q| q.tenant != tenant) => self.d.at(
                    file,
                    first,
                    format!(
                        "the {what} needs the hotline's own queue, but its queue `{}` belongs to \
                         another tenant",
                        queue.map(ToString::to_string).unwrap_or_default()
                    ),
                    "give the hotline a queue of this tenant (where its own agents ring first), \
                     or use only when_closed",
                ),
                None if queue.is_none() => self.d.at(
                    file,
                    first,
                    format!("the {what} waits for the hotline's queue, but it has none"),
                    "add `queue:` to the hotline (its own agents ring there first), or use only \
                     when_closed",
                ),
                // The queue is not defined: reported with the hotline's queue reference.
                None => {}
            }
        } else if let Target::Queue(r) = &target {
            refs.queue(file, target_pos, None, what.clone(), r);
        }
        Some(Overflow {
            after: after.map(|(d, _)| d),
            when_closed,
            when_no_agents: no_agents.is_some(),
            when_expected_wait_over: expected.map(|(d, _)| d),
            target,
        })
    }
}

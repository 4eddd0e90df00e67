//! Each tenant's `queues:`: keys, widen steps and targets. References to
//! other queues, tenants and agents' skills are collected in [`Refs`] and
//! checked once every file is read.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::refs::Refs;
use super::{Loader, Sounds, valid_id, valid_skill};
use crate::config::error::{Pos, closest};
use crate::config::raw::{RawQueue, RawServiceLevel, RawTarget, RawWiden};
use crate::config::sip_uri::check_sip_uri;
use crate::config::{AcdConfig, Queue, ServiceLevel, Strategy, WidenStep};
use crate::dialplan::{QueueRef, Target};

/// Shortest sensible interval between position announcements: one
/// announcement ("Sie sind Anrufer Nummer ... Ihre Wartezeit beträgt etwa
/// ...") already takes several seconds.
const MIN_ANNOUNCE_SECS: u64 = 15;

impl Loader<'_> {
    // ---- queues: ------------------------------------------------------------------

    pub(super) fn queues(
        &mut self,
        file: &Path,
        tenant: &str,
        raw: Vec<Spanned<RawQueue>>,
        sounds: Option<&Sounds>,
        acd: &AcdConfig,
        refs: &mut Refs,
    ) -> Vec<Queue> {
        let mut ids: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for q in raw {
            let qpos = Pos::or(&q, Pos::START);
            let q = q.value;
            let ipos = Pos::or(&q.id, qpos);
            let id = q.id.value.clone();
            if !valid_id(&id) {
                self.d.at(
                    file,
                    ipos,
                    format!("queue id `{id}` is not usable"),
                    "use letters, digits, `-` and `_`, e.g. general or \"115\"",
                );
            } else if let Some(first) = ids.get(&id) {
                self.d.at(
                    file,
                    ipos,
                    format!(
                        "queue id `{id}` is used twice in this file (first at line {})",
                        first.line
                    ),
                    "give each queue of a tenant its own id",
                );
            } else {
                ids.insert(id.clone(), ipos);
            }
            let me = QueueRef {
                tenant: tenant.to_string(),
                queue: id.clone(),
            };
            if q.name.value.trim().is_empty() {
                self.d.at(
                    file,
                    Pos::or(&q.name, qpos),
                    "empty queue name",
                    "write the display name agents and wallboards show",
                );
            }
            let skill_pos = Pos::or(&q.skill, qpos);
            let skill = q.skill.value.clone();
            let skill_ok = valid_skill(&skill);
            if !skill_ok {
                self.d.at(
                    file,
                    skill_pos,
                    format!("skill name `{skill}` is not usable"),
                    "use letters, digits, `-` and `_`, as in the agents' `skills:`, e.g. general",
                );
            }
            let min_level = q
                .min_level
                .as_ref()
                .and_then(|l| self.level(file, l, qpos, "min_level"))
                .unwrap_or(1);
            let agents_from = self.agents_from(file, q.agents_from.as_ref(), qpos, tenant, refs);
            let strategy = q
                .strategy
                .as_ref()
                .and_then(|s| self.strategy(file, s, qpos))
                .unwrap_or(Strategy::LongestIdle);

            let ring_timeout = self.positive_secs(
                file,
                q.ring_timeout_secs.as_ref(),
                qpos,
                "ring_timeout_secs is 0, so no agent's phone would ever ring",
                "set how long an offer rings before the next agent gets it, e.g. 15",
            );
            let max_waiting = q.max_waiting.as_ref().and_then(|m| {
                if m.value == 0 {
                    self.d.at(
                        file,
                        Pos::or(m, qpos),
                        "max_waiting is 0, so every caller would be sent to on_full",
                        "remove it for no limit, or set how many callers may wait, e.g. 50",
                    );
                    None
                } else {
                    Some(m.value)
                }
            });
            let max_expected_wait = self.positive_secs(
                file,
                q.max_expected_wait_secs.as_ref(),
                qpos,
                "max_expected_wait_secs is 0, so every caller would be sent to on_full",
                "remove it for no limit, or set the longest wait to offer callers, e.g. 300",
            );
            let max_wait = self.positive_secs(
                file,
                q.max_wait_secs.as_ref(),
                qpos,
                "max_wait_secs is 0, so every caller would be sent to on_timeout at once",
                "remove it to let callers wait until answered, or set e.g. 600",
            );
            let announce_every = match &q.announce_every_secs {
                None => Some(Duration::from_secs(45)),
                Some(a) if a.value == 0 => None,
                Some(a) => {
                    if a.value < MIN_ANNOUNCE_SECS {
                        self.d.at(
                            file,
                            Pos::or(a, qpos),
                            format!(
                                "announce_every_secs {} leaves no time between announcements",
                                a.value
                            ),
                            format!(
                                "use 0 (off) or {MIN_ANNOUNCE_SECS} and more, e.g. 45; one \
                                 announcement takes several seconds"
                            ),
                        );
                    }
                    Some(Duration::from_secs(a.value))
                }
            };
            let music = match &q.music {
                Some(m) => {
                    self.sound(file, m, Pos::or(m, qpos), sounds);
                    m.value.clone()
                }
                None => {
                    // The default points at the queue when its file is missing.
                    let m = Spanned::new(
                        "moh".to_string(),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    );
                    self.sound(file, &m, qpos, sounds);
                    m.value
                }
            };
            let service_level = match &q.service_level {
                Some(sl) => self.service_level(file, &sl.value, Pos::or(sl, qpos)),
                None => ServiceLevel::default(),
            };
            let widen = match &q.widen {
                Some(w) => self.widen(
                    file,
                    &w.value,
                    Pos::or(w, qpos),
                    (&skill, min_level),
                    max_wait,
                ),
                None => Vec::new(),
            };

            let [on_timeout, on_no_agents, on_full] = self.queue_targets(
                file,
                [&q.on_timeout, &q.on_no_agents, &q.on_full],
                qpos,
                &me,
                sounds,
                refs,
            );

            if skill_ok {
                refs.skill(
                    file,
                    skill_pos,
                    format!("queue `{id}`"),
                    &skill,
                    min_level,
                    &agents_from,
                );
            }
            // A step that keeps a skill asked for before needs no check of
            // its own: a lower level is served if the earlier one is, and a
            // higher one is already an error. A new skill is checked.
            let mut skills_seen = vec![skill.clone()];
            for (step, skill_pos) in &widen {
                let Some(pos) = skill_pos else { continue };
                if skills_seen.contains(&step.skill) {
                    continue;
                }
                skills_seen.push(step.skill.clone());
                refs.skill(
                    file,
                    *pos,
                    format!(
                        "widen step after {} s of queue `{id}`",
                        step.after.as_secs()
                    ),
                    &step.skill,
                    step.min_level,
                    &agents_from,
                );
            }
            let widen = widen.into_iter().map(|(step, _)| step).collect();

            out.push(Queue {
                tenant: tenant.to_string(),
                id,
                name: q.name.value,
                skill,
                min_level,
                agents_from,
                strategy,
                priority: q.priority.map_or(0, |p| p.value),
                wrap_up: q
                    .wrap_up_secs
                    .map_or(acd.wrap_up, |w| Duration::from_secs(w.value)),
                ring_timeout: ring_timeout.unwrap_or(Duration::from_secs(15)),
                max_waiting,
                max_expected_wait,
                max_wait,
                join_empty: q.join_empty.is_none_or(|j| j.value),
                announce_every,
                music,
                service_level,
                widen,
                on_timeout,
                on_no_agents,
                on_full,
            });
        }
        out
    }

    /// `on_timeout`, `on_no_agents` and `on_full` of queue `me`; a target
    /// left out or in error is `{ prompt: call-later }`. That prompt is one of
    /// the fixed ACD set, whose absence is reported at `acd:`.
    fn queue_targets(
        &mut self,
        file: &Path,
        raws: [&Option<Spanned<RawTarget>>; 3],
        qpos: Pos,
        me: &QueueRef,
        sounds: Option<&Sounds>,
        refs: &mut Refs,
    ) -> [Target; 3] {
        let kinds = ["on_timeout", "on_no_agents", "on_full"];
        let mut out = [
            Target::call_later(),
            Target::call_later(),
            Target::call_later(),
        ];
        for ((kind, slot), raw) in kinds.into_iter().zip(&mut out).zip(raws) {
            let Some(raw) = raw else { continue };
            let tpos = Pos::or(raw, qpos);
            let Some((target, qref_pos)) = self.target(file, &raw.value, tpos, &me.tenant, sounds)
            else {
                continue;
            };
            if let Target::Queue(r) = &target {
                let pos = qref_pos.unwrap_or(tpos);
                let id = &me.queue;
                if r == me {
                    self.d.at(
                        file,
                        pos,
                        format!("{kind} of queue `{id}` points at the queue itself"),
                        "send callers elsewhere: another queue, { prompt: call-later } or hangup",
                    );
                    continue;
                }
                refs.queue(
                    file,
                    pos,
                    Some((me.clone(), kind)),
                    format!("{kind} of queue `{id}`"),
                    r,
                );
            }
            *slot = target;
        }
        out
    }

    /// A skill level 1..=10, or `None` after recording the error.
    fn level(&mut self, file: &Path, v: &Spanned<i64>, fallback: Pos, key: &str) -> Option<u8> {
        match u8::try_from(v.value) {
            Ok(l) if (1..=10).contains(&l) => Some(l),
            _ => {
                self.d.at(
                    file,
                    Pos::or(v, fallback),
                    format!("{key} {} is outside 1..=10", v.value),
                    "use a skill level from 1 (basic) to 10 (expert), the scale of the agents' skills",
                );
                None
            }
        }
    }

    /// A number of seconds that must not be 0; `None` if absent or 0.
    fn positive_secs(
        &mut self,
        file: &Path,
        v: Option<&Spanned<u64>>,
        fallback: Pos,
        zero: &str,
        hint: &str,
    ) -> Option<Duration> {
        let v = v?;
        if v.value == 0 {
            self.d.at(file, Pos::or(v, fallback), zero, hint);
            return None;
        }
        Some(Duration::from_secs(v.value))
    }

    fn strategy(&mut self, file: &Path, s: &Spanned<String>, fallback: Pos) -> Option<Strategy> {
        if let Ok(st) = s.value.parse::<Strategy>() {
            return Some(st);
        }
        let names: Vec<&str> = Strategy::ALL.iter().map(|(_, n)| *n).collect();
        // `longest_idle` and `LongestIdle` are the likely slips.
        let normalised = s.value.replace('_', "-").to_lowercase();
        let hint = match closest(&normalised, &names) {
            Some(c) => format!("did you mean `{c}`? strategies are: {}", names.join(", ")),
            None => format!("use one of: {}", names.join(", ")),
        };
        self.d.at(
            file,
            Pos::or(s, fallback),
            format!("unknown strategy `{}`", s.value),
            hint,
        );
        None
    }

    fn agents_from(
        &mut self,
        file: &Path,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
        fallback: Pos,
        tenant: &str,
        refs: &mut Refs,
    ) -> Vec<String> {
        let Some(list) = raw else {
            return vec![tenant.to_string()];
        };
        let lpos = Pos::or(list, fallback);
        if list.value.is_empty() {
            self.d.at(
                file,
                lpos,
                "agents_from is empty, so no agent could serve the queue",
                format!(
                    "list the tenants whose agents serve it, e.g. [{tenant}], or remove the key"
                ),
            );
        }
        let mut out: Vec<String> = Vec::new();
        for t in &list.value {
            let pos = Pos::or(t, lpos);
            if out.contains(&t.value) {
                self.d.at(
                    file,
                    pos,
                    format!("tenant `{}` is listed twice in agents_from", t.value),
                    "remove the second entry",
                );
                continue;
            }
            refs.tenant(file, pos, &t.value);
            out.push(t.value.clone());
        }
        out
    }

    fn service_level(&mut self, file: &Path, raw: &RawServiceLevel, pos: Pos) -> ServiceLevel {
        let d = ServiceLevel::default();
        let threshold = raw.seconds.as_ref().map_or(d.threshold.as_secs(), |s| {
            if s.value == 0 {
                self.d.at(
                    file,
                    Pos::or(s, pos),
                    "service_level seconds is 0, so no call could be answered in time",
                    "set the answer time the promise counts, e.g. 30 (the 115 promise)",
                );
            }
            s.value
        });
        let target_percent = match &raw.target_percent {
            None => d.target_percent,
            Some(p) => match u8::try_from(p.value) {
                Ok(v) if (1..=100).contains(&v) => v,
                _ => {
                    self.d.at(
                        file,
                        Pos::or(p, pos),
                        format!("target_percent {} is outside 1..=100", p.value),
                        "write the promised share in percent, e.g. 75 (the 115 promise)",
                    );
                    d.target_percent
                }
            },
        };
        let window = raw.window_secs.as_ref().map_or(d.window.as_secs(), |w| {
            if w.value < threshold.max(1) {
                self.d.at(
                    file,
                    Pos::or(w, pos),
                    format!(
                        "service_level window_secs {} is shorter than seconds {threshold}",
                        w.value
                    ),
                    "measure over a window that holds many calls, e.g. 3600 (one hour)",
                );
            }
            w.value
        });
        ServiceLevel {
            threshold: Duration::from_secs(threshold),
            target_percent,
            window: Duration::from_secs(window),
        }
    }

    /// The widen steps, each resolved against the one before, with the
    /// place of the skill if the step names one; checks order and that every
    /// step relaxes something.
    fn widen(
        &mut self,
        file: &Path,
        raw: &[Spanned<RawWiden>],
        lpos: Pos,
        (skill, level): (&str, u8),
        max_wait: Option<Duration>,
    ) -> Vec<(WidenStep, Option<Pos>)> {
        let mut out = Vec::new();
        let (mut cur_skill, mut cur_level) = (skill.to_string(), level);
        let mut prev_after: Option<u64> = None;
        for step in raw {
            let spos = Pos::or(step, lpos);
            let s = &step.value;
            let after = s.after_secs.value;
            let apos = Pos::or(&s.after_secs, spos);
            match prev_after {
                None if after == 0 => self.d.at(
                    file,
                    apos,
                    "widen step with after_secs 0 applies from the start",
                    "set skill and min_level on the queue itself, or let callers wait first, \
                     e.g. after_secs: 30",
                ),
                Some(prev) if after <= prev => self.d.at(
                    file,
                    apos,
                    format!(
                        "widen step after_secs {after} is not later than the step before ({prev})"
                    ),
                    "list the steps in order, each after_secs larger than the one before",
                ),
                _ => {}
            }
            prev_after = Some(after);
            if let Some(m) = max_wait
                && after >= m.as_secs()
            {
                self.d.at(
                    file,
                    apos,
                    format!(
                        "widen step after_secs {after} is never reached: callers leave at \
                         max_wait_secs {}",
                        m.as_secs()
                    ),
                    format!(
                        "use after_secs below {} or raise max_wait_secs",
                        m.as_secs()
                    ),
                );
            }
            let new_skill = match &s.skill {
                Some(k) if !valid_skill(&k.value) => {
                    self.d.at(
                        file,
                        Pos::or(k, spos),
                        format!("skill name `{}` is not usable", k.value),
                        "use letters, digits, `-` and `_`, as in the agents' `skills:`",
                    );
                    continue;
                }
                Some(k) => k.value.clone(),
                None => cur_skill.clone(),
            };
            let new_level = match &s.min_level {
                Some(l) => match self.level(file, l, spos, "min_level") {
                    Some(l) => l,
                    None => continue,
                },
                None => cur_level,
            };
            if s.skill.is_none() && s.min_level.is_none() {
                self.d.at(
                    file,
                    spos,
                    format!("widen step after {after} s changes nothing"),
                    "give it `min_level:` and/or `skill:`, or remove the step",
                );
            } else if new_skill == cur_skill && new_level == cur_level {
                self.d.at(
                    file,
                    spos,
                    format!(
                        "widen step after {after} s changes nothing: it asks for `{cur_skill}` \
                         at level {cur_level} or more, as before"
                    ),
                    "lower min_level or name another skill, or remove the step",
                );
            } else if new_skill == cur_skill && new_level > cur_level {
                let pos = s.min_level.as_ref().map_or(spos, |l| Pos::or(l, spos));
                self.d.at(
                    file,
                    pos,
                    format!(
                        "widen step after {after} s raises min_level from {cur_level} to \
                         {new_level}, which narrows instead of widening"
                    ),
                    "widen by lowering min_level or switching to a broader skill; to be \
                     stricter from the start, raise the queue's own min_level",
                );
            }
            cur_skill = new_skill;
            cur_level = new_level;
            out.push((
                WidenStep {
                    after: Duration::from_secs(after),
                    skill: cur_skill.clone(),
                    min_level: cur_level,
                },
                s.skill.as_ref().map(|k| Pos::or(k, spos)),
            ));
        }
        out
    }

    // ---- targets -----------------------------------------------------------------

    /// `queue` or `tenant/queue`, checked for syntax only.
    pub(super) fn queue_ref(
        &mut self,
        file: &Path,
        text: &str,
        tenant: &str,
        pos: Pos,
    ) -> Option<QueueRef> {
        let r = QueueRef::parse(text, tenant);
        if r.is_none() {
            self.d.at(
                file,
                pos,
                format!("`{text}` is not a queue reference"),
                format!(
                    "write a queue id of this tenant, e.g. general, or tenant/queue for another \
                     tenant's queue, e.g. kreis-pinneberg/115 (this file is tenant `{tenant}`)"
                ),
            );
        }
        r
    }

    /// A target, and where its queue reference is written if it has one.
    /// `None` after recording an error.
    pub(super) fn target(
        &mut self,
        file: &Path,
        raw: &RawTarget,
        pos: Pos,
        tenant: &str,
        sounds: Option<&Sounds>,
    ) -> Option<(Target, Option<Pos>)> {
        const KINDS: [&str; 4] = ["queue", "prompt", "uri", "hangup"];
        let forms = "write `{ queue: <id> }`, `{ prompt: <sound> }`, `{ uri: \"sip:...\" }` \
                     or `hangup`";
        let (kind, value) = match raw {
            RawTarget::Word(w) if w == "hangup" => return Some((Target::Hangup, None)),
            RawTarget::Word(w) => {
                let hint = match w.as_str() {
                    "queue" | "prompt" | "uri" => {
                        format!("a {w} target needs a value: write `{{ {w}: ... }}`")
                    }
                    _ => match closest(w, &KINDS) {
                        Some("hangup") => "did you mean `hangup`?".to_string(),
                        _ => forms.to_string(),
                    },
                };
                self.d.at(file, pos, format!("`{w}` is not a target"), hint);
                return None;
            }
            RawTarget::Tagged(entries) => match entries.as_slice() {
                [(k, v)] => (k, v),
                _ => {
                    self.d.at(
                        file,
                        pos,
                        format!(
                            "a target names one place to go; this one has {} keys",
                            entries.len()
                        ),
                        forms,
                    );
                    return None;
                }
            },
        };
        let kpos = Pos::or(kind, pos);
        let vpos = Pos::or(value, pos);
        match kind.value.as_str() {
            "queue" => {
                let r = self.queue_ref(file, &value.value, tenant, vpos)?;
                Some((Target::Queue(r), Some(vpos)))
            }
            "prompt" => {
                self.sound(file, value, vpos, sounds);
                Some((Target::Prompt(value.value.clone()), None))
            }
            "uri" => match check_sip_uri(&value.value) {
                Ok(()) => Some((Target::Uri(value.value.clone()), None)),
                Err(why) => {
                    self.d.at(
                        file,
                        vpos,
                        format!("`{}` is not a SIP URI: {why}", value.value),
                        "write sip:user@host[:port] with a host name or IP address, quoted, \
                         e.g. \"sip:zentrale@192.0.2.10:5060\"",
                    );
                    None
                }
            },
            "hangup" => {
                self.d.at(
                    file,
                    kpos,
                    "hangup takes no value",
                    "write the bare word: `on_full: hangup`",
                );
                None
            }
            other => {
                let hint = match closest(other, &KINDS) {
                    Some(c) => format!("did you mean `{c}`? {forms}"),
                    None => forms.to_string(),
                };
                self.d
                    .at(file, kpos, format!("unknown target kind `{other}`"), hint);
                None
            }
        }
    }
}

//! The ACD parts of loading: the `acd:` section, each tenant's `queues:`,
//! targets, and the checks that need every file read first (queue
//! references across tenants, whether some agent can serve each queue,
//! loops between queues).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::{Loader, Sounds, valid_id, valid_skill};
use crate::config::acd::numbered;
use crate::config::error::{Pos, closest};
use crate::config::raw::{RawAcd, RawQueue, RawServiceLevel, RawTarget, RawWiden};
use crate::config::target::check_sip_uri;
use crate::config::{
    AcdConfig, Agent, FeatureCodes, NO_ANSWER_REASON, Queue, QueueRef, ServiceLevel, Strategy,
    Target, Tenant, WidenStep, acd_prompts,
};

/// Shortest sensible interval between position announcements: one
/// announcement ("Sie sind Anrufer Nummer ... Ihre Wartezeit beträgt etwa
/// ...") already takes several seconds.
const MIN_ANNOUNCE_SECS: u64 = 15;

/// What the dialplan files refer to, collected while reading them and
/// checked once every file is read.
#[derive(Default)]
pub(super) struct Refs {
    /// Tenants whose `queues:` were read without error, so a missing queue
    /// there is a real error and not the echo of a parse error.
    pub known_queues: BTreeSet<String>,
    queues: Vec<QueueUse>,
    tenants: Vec<TenantUse>,
    skills: Vec<SkillNeed>,
}

/// A reference to a queue from a hotline or a queue's target.
struct QueueUse {
    file: PathBuf,
    pos: Pos,
    /// The queue whose target this is, and which kind of target.
    from: Option<(QueueRef, Edge)>,
    /// For messages: `hotline `115``, `on_timeout of queue `rathaus``.
    what: String,
    target: QueueRef,
}

/// Kinds of queue-to-queue targets, for the loop check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// `on_timeout`: taken after a wait, so a loop passes callers round forever.
    Timeout,
    /// `on_full`, `on_no_agents`: taken on joining, so a loop never settles.
    Join,
}

/// A tenant named in `agents_from`.
struct TenantUse {
    file: PathBuf,
    pos: Pos,
    tenant: String,
}

/// A skill and level some agent must have for a queue (or widen step) to be
/// answerable.
struct SkillNeed {
    file: PathBuf,
    pos: Pos,
    /// `queue` or `widen step after 60 s`.
    what: String,
    skill: String,
    level: u8,
    agents_from: Vec<String>,
}

impl Refs {
    pub(super) fn queue(
        &mut self,
        file: &Path,
        pos: Pos,
        from: Option<(QueueRef, &'static str)>,
        what: String,
        target: &QueueRef,
    ) {
        let from = from.map(|(q, kind)| {
            let edge = if kind == "on_timeout" {
                Edge::Timeout
            } else {
                Edge::Join
            };
            (q, edge)
        });
        self.queues.push(QueueUse {
            file: file.to_path_buf(),
            pos,
            from,
            what,
            target: target.clone(),
        });
    }
}

impl Loader<'_> {
    // ---- acd: ----------------------------------------------------------------

    pub(super) fn acd(&mut self, raw: Spanned<RawAcd>, key: Pos) -> AcdConfig {
        let file = self.path;
        let apos = Pos::or(&raw, key);
        let raw = raw.value;
        let defaults = AcdConfig::default();

        let (cpos, codes) = raw
            .feature_codes
            .map(|c| (Pos::or(&c, apos), c.value))
            .unwrap_or_else(|| (apos, Default::default()));
        // A default code has no place of its own; its errors point at `feature_codes:`.
        let code = |v: Option<Spanned<String>>, default: &str| match v {
            Some(v) => (Pos::or(&v, cpos), v.value),
            None => (cpos, default.to_string()),
        };
        let d = &defaults.feature_codes;
        let entries = [
            ("login", code(codes.login, &d.login)),
            ("logout", code(codes.logout, &d.logout)),
            ("pause", code(codes.pause, &d.pause)),
            ("unpause", code(codes.unpause, &d.unpause)),
        ];
        // Every dialled string must mean one thing: the four codes, and the
        // pause code followed by each pause-code key.
        let mut dialled: HashMap<String, (String, Pos)> = HashMap::new();
        for (name, (pos, value)) in &entries {
            if !valid_feature_code(value) {
                self.d.at(
                    file,
                    *pos,
                    format!("feature code `{name}: {value}` is not usable"),
                    "write `*` or `#` followed by 1 to 8 digits, quoted: \"*40\" \
                     (an unquoted * starts a YAML alias, an unquoted # a comment)",
                );
                continue;
            }
            if let Some((other, _)) = dialled.get(value) {
                self.d.at(
                    file,
                    *pos,
                    format!("feature code {value} is used for both `{other}` and `{name}`"),
                    "give each feature its own code, e.g. login \"*40\", logout \"*41\", \
                     pause \"*42\", unpause \"*43\"",
                );
                continue;
            }
            dialled.insert(value.clone(), (name.to_string(), *pos));
        }
        let [login, logout, pause, unpause] = entries.map(|(_, (_, v))| v);

        let pause_reasons = match raw.pause_reasons {
            None => defaults.pause_reasons.clone(),
            Some(list) => self.pause_reasons(list, apos),
        };
        let pause_codes = match raw.pause_codes {
            None => numbered(&pause_reasons),
            Some(map) => {
                let mpos = Pos::or(&map, apos);
                let mut out = BTreeMap::new();
                for (digits, reason) in map.value {
                    // Keys have no span of their own; the reason is on the same line.
                    let pos = Pos::or(&reason, mpos);
                    if digits.is_empty()
                        || digits.len() > 3
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                    {
                        self.d.at(
                            file,
                            pos,
                            format!("pause code `{digits}` is not 1 to 3 digits"),
                            format!(
                                "write the digits dialled after the pause code, quoted: \
                                 \"1\": break means {pause}1 pauses for a break"
                            ),
                        );
                        continue;
                    }
                    if !pause_reasons.contains(&reason.value) {
                        let hint = if reason.value == NO_ANSWER_REASON {
                            format!(
                                "`{NO_ANSWER_REASON}` is set by zentrale after max_missed_offers, \
                                 agents cannot choose it; remove this code"
                            )
                        } else {
                            let known: Vec<&str> =
                                pause_reasons.iter().map(String::as_str).collect();
                            match closest(&reason.value, &known) {
                                Some(c) => format!(
                                    "did you mean `{c}`? pause reasons are: {}",
                                    known.join(", ")
                                ),
                                None => format!(
                                    "use one of the pause reasons ({}) or add it to `pause_reasons`",
                                    known.join(", ")
                                ),
                            }
                        };
                        self.d.at(
                            file,
                            pos,
                            format!(
                                "pause code {digits}: `{}` is not a pause reason",
                                reason.value
                            ),
                            hint,
                        );
                    }
                    let full = format!("{pause}{digits}");
                    if let Some((other, _)) = dialled.get(&full) {
                        self.d.at(
                            file,
                            pos,
                            format!("pause code {digits} makes {full}, which is already `{other}`"),
                            "choose other digits or another feature code",
                        );
                    } else {
                        dialled.insert(full, (format!("pause {}", reason.value), pos));
                    }
                    out.insert(digits, reason.value);
                }
                out
            }
        };

        AcdConfig {
            login_on_register: raw
                .login_on_register
                .map_or(defaults.login_on_register, |v| v.value),
            max_missed_offers: match raw.max_missed_offers {
                Some(m) if m.value == 0 => None,
                Some(m) => Some(m.value),
                None => defaults.max_missed_offers,
            },
            wrap_up: raw
                .wrap_up_secs
                .map_or(defaults.wrap_up, |w| Duration::from_secs(w.value)),
            feature_codes: FeatureCodes {
                login,
                logout,
                pause,
                unpause,
            },
            pause_reasons,
            pause_codes,
        }
    }

    fn pause_reasons(&mut self, list: Spanned<Vec<Spanned<String>>>, apos: Pos) -> Vec<String> {
        let file = self.path;
        let lpos = Pos::or(&list, apos);
        if list.value.is_empty() {
            self.d.at(
                file,
                lpos,
                "pause_reasons is empty, so agents could not pause",
                "list at least one reason, e.g. [break, back-office, training]",
            );
        }
        let mut out: Vec<String> = Vec::new();
        for r in list.value {
            let pos = Pos::or(&r, lpos);
            if r.value == NO_ANSWER_REASON {
                self.d.at(
                    file,
                    pos,
                    format!("pause reason `{NO_ANSWER_REASON}` is built in"),
                    "remove it: zentrale sets it itself after max_missed_offers unanswered offers",
                );
            } else if !valid_id(&r.value) {
                self.d.at(
                    file,
                    pos,
                    format!("pause reason `{}` is not usable", r.value),
                    "use letters, digits, `-` and `_`, e.g. back-office",
                );
            } else if out.contains(&r.value) {
                self.d.at(
                    file,
                    pos,
                    format!("pause reason `{}` is listed twice", r.value),
                    "remove the second entry",
                );
            } else {
                out.push(r.value);
            }
        }
        out
    }

    /// The fixed ACD prompts must all be there; one error lists those missing.
    pub(super) fn acd_prompts(&mut self, sounds: &Sounds, pos: Pos) {
        let missing: Vec<String> = acd_prompts()
            .into_iter()
            .filter(|n| !sounds.names.contains(n))
            .collect();
        if missing.is_empty() {
            return;
        }
        let shown = if missing.len() > 8 {
            format!("{} and {} more", missing[..8].join(", "), missing.len() - 8)
        } else {
            missing.join(", ")
        };
        let mut hint = "the ACD plays them to callers and agents; run sounds/make-sounds.sh \
                        (it makes every prompt of sounds/prompts.tsv) or copy them from \
                        zentrale's sounds/ directory"
            .to_string();
        if !sounds.dir_exists {
            hint.push_str(&format!(
                "; the sounds directory {} does not exist (set `sounds:` in {})",
                sounds.dir.display(),
                self.path.display()
            ));
        }
        self.d.at(
            self.path,
            pos,
            format!(
                "{} ACD prompt{} missing from {}: {shown}",
                missing.len(),
                if missing.len() == 1 { " is" } else { "s are" },
                sounds.dir.display()
            ),
            hint,
        );
    }

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

            let mut targets = [
                ("on_timeout", Target::call_later()),
                ("on_no_agents", Target::call_later()),
                ("on_full", Target::call_later()),
            ];
            for ((kind, slot), raw) in
                targets
                    .iter_mut()
                    .zip([&q.on_timeout, &q.on_no_agents, &q.on_full])
            {
                let Some(raw) = raw else {
                    // The default prompt, checked where the queue is.
                    let p = Spanned::new(
                        "call-later".to_string(),
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    );
                    self.sound(file, &p, qpos, sounds);
                    continue;
                };
                let tpos = Pos::or(raw, qpos);
                let Some((target, qref_pos)) = self.target(file, &raw.value, tpos, tenant, sounds)
                else {
                    continue;
                };
                if let Target::Queue(r) = &target {
                    let pos = qref_pos.unwrap_or(tpos);
                    if *r == me {
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
            let [(_, on_timeout), (_, on_no_agents), (_, on_full)] = targets;

            if skill_ok {
                refs.skills.push(SkillNeed {
                    file: file.to_path_buf(),
                    pos: skill_pos,
                    what: format!("queue `{id}`"),
                    skill: skill.clone(),
                    level: min_level,
                    agents_from: agents_from.clone(),
                });
            }
            if let Some(w) = &q.widen {
                for (step, raw) in widen.iter().zip(&w.value) {
                    let pos = raw
                        .value
                        .skill
                        .as_ref()
                        .map(|s| Pos::or(s, qpos))
                        .or_else(|| raw.value.min_level.as_ref().map(|l| Pos::or(l, qpos)))
                        .unwrap_or_else(|| Pos::or(raw, qpos));
                    refs.skills.push(SkillNeed {
                        file: file.to_path_buf(),
                        pos,
                        what: format!(
                            "widen step after {} s of queue `{id}`",
                            step.after.as_secs()
                        ),
                        skill: step.skill.clone(),
                        level: step.min_level,
                        agents_from: agents_from.clone(),
                    });
                }
            }

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
                join_empty: q.join_empty.map_or(true, |j| j.value),
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
            refs.tenants.push(TenantUse {
                file: file.to_path_buf(),
                pos,
                tenant: t.value.clone(),
            });
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

    /// The widen steps, each resolved against the one before; checks order
    /// and that every step relaxes something.
    fn widen(
        &mut self,
        file: &Path,
        raw: &[Spanned<RawWiden>],
        lpos: Pos,
        (skill, level): (&str, u8),
        max_wait: Option<Duration>,
    ) -> Vec<WidenStep> {
        let mut out: Vec<WidenStep> = Vec::new();
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
            out.push(WidenStep {
                after: Duration::from_secs(after),
                skill: cur_skill.clone(),
                min_level: cur_level,
            });
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
    fn target(
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
                        Some(c) if c == "hangup" => "did you mean `hangup`?".to_string(),
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

    // ---- across files ------------------------------------------------------------

    /// The checks that need every file read: queue references, tenants in
    /// `agents_from`, whether some agent can serve each queue, and loops.
    /// `tenant_ids` and `agents` are `None` when their lists had errors, so
    /// the checks against them would only echo those.
    pub(super) fn cross_check(
        &mut self,
        tenants: &[Tenant],
        refs: &Refs,
        tenant_ids: Option<&BTreeSet<String>>,
        agents: Option<&[(Agent, Option<Pos>)]>,
    ) {
        let queues: HashMap<QueueRef, &Queue> = tenants
            .iter()
            .flat_map(|t| &t.dialplan.queues)
            .map(|q| (q.reference(), q))
            .collect();
        let tenant_list = |ids: &BTreeSet<String>| {
            ids.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };

        for u in &refs.queues {
            let t = &u.target.tenant;
            if let Some(ids) = tenant_ids
                && !ids.contains(t)
            {
                let known: Vec<&str> = ids.iter().map(String::as_str).collect();
                let hint = match closest(t, &known) {
                    Some(c) => format!("did you mean `{c}`? tenants are: {}", tenant_list(ids)),
                    None => format!(
                        "write tenant/queue with one of the tenants: {}",
                        tenant_list(ids)
                    ),
                };
                self.d.at(
                    &u.file,
                    u.pos,
                    format!("{}: tenant `{t}` is not defined", u.what),
                    hint,
                );
                continue;
            }
            if !refs.known_queues.contains(t) || queues.contains_key(&u.target) {
                continue;
            }
            let theirs: Vec<&str> = tenants
                .iter()
                .filter(|x| x.id == *t)
                .flat_map(|x| &x.dialplan.queues)
                .map(|q| q.id.as_str())
                .collect();
            let same_tenant = u.from.as_ref().map(|(q, _)| &q.tenant) == Some(t)
                || tenants
                    .iter()
                    .any(|x| x.id == *t && x.dialplan_path == u.file);
            let whose = if same_tenant {
                "this tenant".to_string()
            } else {
                format!("tenant `{t}`")
            };
            let hint = match closest(&u.target.queue, &theirs) {
                Some(c) => format!(
                    "did you mean `{c}`? queues of {whose}: {}",
                    theirs.join(", ")
                ),
                None if theirs.is_empty() => {
                    format!("{whose} has no queues; define it under `queues:`")
                }
                None => format!(
                    "use one of the queues of {whose} ({}) or define it under `queues:`",
                    theirs.join(", ")
                ),
            };
            self.d.at(
                &u.file,
                u.pos,
                format!("{}: queue `{}` does not exist", u.what, u.target),
                hint,
            );
        }

        if let Some(ids) = tenant_ids {
            for u in &refs.tenants {
                if ids.contains(&u.tenant) {
                    continue;
                }
                let known: Vec<&str> = ids.iter().map(String::as_str).collect();
                let hint = match closest(&u.tenant, &known) {
                    Some(c) => format!("did you mean `{c}`? tenants are: {}", tenant_list(ids)),
                    None => format!("use tenant ids from zentrale.yaml: {}", tenant_list(ids)),
                };
                self.d.at(
                    &u.file,
                    u.pos,
                    format!("agents_from: tenant `{}` is not defined", u.tenant),
                    hint,
                );
            }
        }

        if let Some(agents) = agents {
            for need in &refs.skills {
                self.servable(need, agents);
            }
        }

        for edge in [Edge::Timeout, Edge::Join] {
            self.loops(refs, &queues, edge);
        }
    }

    /// Some agent of the queue's `agents_from` tenants has the skill at the
    /// level; else an error saying who has it.
    fn servable(&mut self, need: &SkillNeed, agents: &[(Agent, Option<Pos>)]) {
        let serving = |a: &Agent| need.agents_from.contains(&a.tenant);
        let all: Vec<&Agent> = agents.iter().map(|(a, _)| a).collect();
        let best = all
            .iter()
            .filter(|a| serving(a))
            .filter_map(|a| a.skills.get(&need.skill))
            .max()
            .copied();
        let from = need
            .agents_from
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let tenants_word = if need.agents_from.len() == 1 {
            "tenant"
        } else {
            "tenants"
        };
        match best {
            Some(b) if b >= need.level => {}
            Some(b) => self.d.at(
                &need.file,
                need.pos,
                format!(
                    "{}: no agent of {tenants_word} {from} has skill `{}` at level {} or more \
                     (the best has {b})",
                    need.what, need.skill, need.level
                ),
                format!(
                    "lower min_level to {b}, or raise an agent's `{}` level in the agents' \
                     skills in zentrale.yaml",
                    need.skill
                ),
            ),
            None => {
                let elsewhere: BTreeSet<&str> = all
                    .iter()
                    .filter(|a| !serving(a))
                    .filter(|a| a.skills.get(&need.skill).is_some_and(|l| *l >= need.level))
                    .map(|a| a.tenant.as_str())
                    .collect();
                let skills: BTreeSet<&str> = all
                    .iter()
                    .filter(|a| serving(a))
                    .flat_map(|a| a.skills.keys().map(String::as_str))
                    .collect();
                let add = format!(
                    "give agents of {from} the skill in zentrale.yaml (`skills: {{ {}: 5 }}`)",
                    need.skill
                );
                let hint = if !elsewhere.is_empty() {
                    let list = elsewhere
                        .iter()
                        .map(|t| format!("`{t}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!(
                        "agents of {list} have it: add {list} to the queue's `agents_from`, or {add}"
                    )
                } else if let Some(c) =
                    closest(&need.skill, &skills.iter().copied().collect::<Vec<_>>())
                {
                    format!("did you mean `{c}`? otherwise {add}")
                } else {
                    add
                };
                self.d.at(
                    &need.file,
                    need.pos,
                    format!(
                        "{}: no agent of {tenants_word} {from} has skill `{}`, so nobody could \
                         answer",
                        need.what, need.skill
                    ),
                    hint,
                );
            }
        }
    }

    /// Queues whose targets of one kind lead back to themselves. Each loop
    /// is reported once, at its first reference in file order.
    fn loops(&mut self, refs: &Refs, queues: &HashMap<QueueRef, &Queue>, edge: Edge) {
        let mut next: BTreeMap<&QueueRef, Vec<&QueueRef>> = BTreeMap::new();
        for u in &refs.queues {
            if let Some((from, e)) = &u.from
                && *e == edge
                && queues.contains_key(&u.target)
            {
                next.entry(from).or_default().push(&u.target);
            }
        }
        let mut reported: Vec<BTreeSet<&QueueRef>> = Vec::new();
        for u in &refs.queues {
            let Some((from, e)) = &u.from else {
                continue;
            };
            if *e != edge || !queues.contains_key(&u.target) {
                continue;
            }
            let Some(path) = path_between(&next, &u.target, from) else {
                continue;
            };
            let members: BTreeSet<&QueueRef> = path.iter().copied().collect();
            if reported.contains(&members) {
                continue;
            }
            let shown = std::iter::once(from)
                .chain(path.iter().copied())
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" → ");
            reported.push(members);
            let (what, hint) = match edge {
                Edge::Timeout => (
                    "callers who time out would be passed round these queues forever",
                    "end the chain: let one of them send callers to a prompt, a URI or hangup",
                ),
                Edge::Join => (
                    "a caller finding these queues full or unstaffed would never settle",
                    "end the chain: let one of them send callers to a prompt, a URI or hangup",
                ),
            };
            self.d.at(
                &u.file,
                u.pos,
                format!("{} leads round in a loop ({shown}): {what}", u.what),
                hint,
            );
        }
    }
}

/// The queues from `start` to `goal` following `next`, both ends included,
/// if `goal` can be reached.
fn path_between<'a>(
    next: &BTreeMap<&'a QueueRef, Vec<&'a QueueRef>>,
    start: &'a QueueRef,
    goal: &QueueRef,
) -> Option<Vec<&'a QueueRef>> {
    // Breadth-first with parent links; the graphs have a handful of nodes.
    let mut parent: HashMap<&QueueRef, &QueueRef> = HashMap::new();
    let mut todo = std::collections::VecDeque::from([start]);
    let mut seen: BTreeSet<&QueueRef> = BTreeSet::from([start]);
    while let Some(q) = todo.pop_front() {
        if q == goal {
            let mut path = vec![q];
            let mut cur = q;
            while let Some(p) = parent.get(cur) {
                path.push(p);
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for n in next.get(q).into_iter().flatten() {
            if seen.insert(n) {
                parent.insert(n, q);
                todo.push_back(n);
            }
        }
    }
    None
}

/// `*` or `#` followed by 1 to 8 digits.
fn valid_feature_code(s: &str) -> bool {
    let digits = s.strip_prefix(['*', '#']).unwrap_or("");
    (1..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

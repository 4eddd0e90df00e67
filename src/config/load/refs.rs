//! The checks that need every file read first: queue references across
//! tenants, tenants in `agents_from`, whether some agent can serve each
//! queue, and loops between queues.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::Loader;
use crate::config::error::{Pos, closest};
use crate::config::{Agent, Queue, Tenant};
use crate::dialplan::QueueRef;

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
    /// Each hotline's `queue:`, to find queues that several hotlines share.
    hotline_queues: Vec<HotlineQueue>,
    /// Queues that carry a hotline's overflow rules.
    overflows: Vec<HotlineQueue>,
    /// Each explicit `limits.slots.guaranteed`: file, position, tenant,
    /// value, in tenant order (they must fit together).
    pub slot_guarantees: Vec<(PathBuf, Pos, String, u32)>,
}

/// A hotline and a queue it waits in (or whose rules it sets).
struct HotlineQueue {
    file: PathBuf,
    pos: Pos,
    hotline: String,
    queue: QueueRef,
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
    /// A reference to queue `target`: from a hotline (`from` is `None`) or
    /// from a target (`on_timeout`, `on_full`, `on_no_agents`) of a queue.
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

    /// `tenant` is named in an `agents_from` list.
    pub(super) fn tenant(&mut self, file: &Path, pos: Pos, tenant: &str) {
        self.tenants.push(TenantUse {
            file: file.to_path_buf(),
            pos,
            tenant: tenant.to_string(),
        });
    }

    /// Hotline `hotline` of `file` waits in `queue`.
    pub(super) fn hotline_queue(&mut self, file: &Path, pos: Pos, hotline: &str, queue: &QueueRef) {
        self.hotline_queues.push(HotlineQueue {
            file: file.to_path_buf(),
            pos,
            hotline: hotline.to_string(),
            queue: queue.clone(),
        });
    }

    /// The overflow rules of hotline `hotline` of `file` became rules of `queue`.
    pub(super) fn overflow(&mut self, file: &Path, pos: Pos, hotline: &str, queue: &QueueRef) {
        self.overflows.push(HotlineQueue {
            file: file.to_path_buf(),
            pos,
            hotline: hotline.to_string(),
            queue: queue.clone(),
        });
    }

    /// Some agent of `agents_from` must have `skill` at `level` or more.
    pub(super) fn skill(
        &mut self,
        file: &Path,
        pos: Pos,
        what: String,
        skill: &str,
        level: u8,
        agents_from: &[String],
    ) {
        self.skills.push(SkillNeed {
            file: file.to_path_buf(),
            pos,
            what,
            skill: skill.to_string(),
            level,
            agents_from: agents_from.to_vec(),
        });
    }
}

impl Loader<'_> {
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

        // Overflow rules live in the hotline's queue, so they would apply to
        // every other hotline waiting there too.
        for o in &refs.overflows {
            let Some(other) = refs
                .hotline_queues
                .iter()
                .find(|h| h.queue == o.queue && !(h.file == o.file && h.hotline == o.hotline))
            else {
                continue;
            };
            self.d.at(
                &o.file,
                o.pos,
                format!(
                    "the overflow of hotline `{}` becomes a rule of queue `{}`, which hotline \
                     `{}` at {}:{} waits in too",
                    o.hotline,
                    o.queue,
                    other.hotline,
                    other.file.display(),
                    other.pos
                ),
                format!(
                    "give hotline `{}` a queue of its own, or set max_wait_secs/on_timeout, \
                     join_empty/on_no_agents and max_expected_wait_secs/on_full on queue `{}` \
                     for both hotlines",
                    o.hotline, o.queue
                ),
            );
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
    let mut todo = VecDeque::from([start]);
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

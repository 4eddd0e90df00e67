//! The bounded event log and the picture it keeps current.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::{
    AgentFigures, CallChange, CallFigures, CallKind, Change, Event, EventId, OverflowCount,
    QueueFigures, Snapshot,
};
use crate::acd::{AcdSnapshot, AgentSnapshot, AgentState, PendingChange};
use crate::cdr::{CallFacts, Disposition, Stage};
use crate::dialplan::{Origin, mask_number};

/// Where a client that saw events up to some id goes on from.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// The events it missed (none when it is up to date), in order.
    Events(Vec<Event>),
    /// The buffer no longer reaches back that far (or the id is from an
    /// earlier run, or it saw nothing yet): start from [`Log::snapshot`].
    Snapshot,
}

/// The current picture of queues, agents and live calls, and the last
/// `capacity` events that changed it.
#[derive(Debug)]
pub struct Log {
    capacity: usize,
    ring: VecDeque<Event>,
    last: EventId,
    /// In the ACD's spec order.
    queues: Vec<QueueFigures>,
    agents: Vec<AgentFigures>,
    calls: BTreeMap<u64, CallFigures>,
    overflowed: BTreeMap<(String, Arc<str>), u64>,
    /// Display names by extension; empty while names are not shown.
    names: HashMap<Arc<str>, Arc<str>>,
}

impl Log {
    /// An empty log keeping the last `capacity` events (at least one).
    pub fn new(capacity: usize) -> Log {
        Log {
            capacity: capacity.max(1),
            ring: VecDeque::with_capacity(capacity.clamp(1, 4096)),
            last: 0,
            queues: Vec::new(),
            agents: Vec::new(),
            calls: BTreeMap::new(),
            overflowed: BTreeMap::new(),
            names: HashMap::new(),
        }
    }

    /// The id of the last event (0 before the first).
    pub fn last_id(&self) -> EventId {
        self.last
    }

    /// What a client that saw events up to `after` missed.
    pub fn since(&self, after: Option<EventId>) -> Resume {
        let Some(after) = after else {
            return Resume::Snapshot;
        };
        if after > self.last {
            return Resume::Snapshot;
        }
        let first = self.ring.front().map_or(self.last + 1, |e| e.id);
        if after + 1 < first {
            return Resume::Snapshot;
        }
        let skip = usize::try_from(after + 1 - first).unwrap_or(usize::MAX);
        Resume::Events(self.ring.iter().skip(skip).cloned().collect())
    }

    /// The picture as of the last event.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            id: self.last,
            queues: self.queues.clone(),
            agents: self.agents.clone(),
            calls: self.calls.values().cloned().collect(),
            overflowed: self
                .overflowed
                .iter()
                .map(|((target, municipality), calls)| OverflowCount {
                    target: target.clone(),
                    municipality: municipality.clone(),
                    calls: *calls,
                })
                .collect(),
        }
    }

    /// Shows agents' display names (extension → name), or none with an
    /// empty map. Takes effect at the next [`Log::observe_acd`].
    pub fn set_names(&mut self, names: HashMap<Arc<str>, Arc<str>>) {
        self.names = names;
    }

    fn publish(&mut self, change: Change) -> EventId {
        self.last += 1;
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(Event {
            id: self.last,
            change,
        });
        self.last
    }

    /// Compares the ACD's figures with the picture and publishes what
    /// changed: a `queue` event per queue whose figures changed, an
    /// `agent` event per agent whose state changed, and a call's `offered`
    /// when an agent's phone starts to ring for it. Returns how many
    /// events it published.
    pub fn observe_acd(&mut self, snap: &AcdSnapshot, now: Instant) -> usize {
        let before = self.last;
        let queues: Vec<QueueFigures> = snap
            .queues
            .iter()
            .map(|q| QueueFigures {
                queue: q.clone(),
                at: now,
            })
            .collect();
        for q in &queues {
            let changed = self
                .queues
                .iter()
                .find(|o| o.queue.name == q.queue.name)
                .is_none_or(|o| !o.same(q));
            if changed {
                self.publish(Change::Queue(q.clone()));
            }
        }
        self.queues = queues;

        let agents: Vec<AgentFigures> = snap
            .agents
            .iter()
            .map(|a| agent(a, self.names.get(&a.id).cloned()))
            .collect();
        for (i, a) in agents.iter().enumerate() {
            // Both lists are in the ACD's spec order: the agent is at the
            // same place unless a reload moved it. Searching the list
            // for every agent instead cost 200 x 200 id comparisons per
            // sample, most of the stream's cost under load.
            let old = match self.agents.get(i) {
                Some(o) if o.id == a.id => Some(o),
                _ => self.agents.iter().find(|o| o.id == a.id),
            };
            if old == Some(a) {
                continue;
            }
            let newly_ringing = a.state == "ringing"
                && old.is_none_or(|o| o.state != "ringing" || o.call != a.call);
            self.publish(Change::Agent(a.clone()));
            if let Some(key) = a.call.filter(|_| newly_ringing)
                && let Some(call) = self.calls.get_mut(&key)
            {
                call.agent = Some(a.id.clone());
                let call = call.clone();
                self.publish(Change::Call(CallChange {
                    kind: CallKind::Offered,
                    call,
                    disposition: None,
                }));
            }
        }
        self.agents = agents;
        usize::try_from(self.last - before).unwrap_or(usize::MAX)
    }

    /// A hotline call's facts changed (the core's call facts, before the
    /// call ends): publishes `arrived`, `joined`, `answered`,
    /// `overflowed` or `changed` when what a client sees changed.
    pub fn call_changed(&mut self, key: u64, facts: &CallFacts, origin: &Origin, now: Instant) {
        let state = state_of(facts.stage);
        let old = self.calls.get(&key);
        let waiting = matches!(state, "queued" | "forwarding");
        let waiting_since = match old {
            Some(o) if o.state == state && o.queue == facts.queue => o.waiting_since,
            _ => waiting.then_some(now),
        };
        let agent = match facts.stage {
            Stage::Talking => facts.agent.as_deref().map(Arc::from),
            // Still ringing at the agent it was offered to.
            Stage::Queued => old
                .filter(|o| o.state == "queued" && o.queue == facts.queue)
                .and_then(|o| o.agent.clone()),
            _ => None,
        };
        let call = CallFigures {
            call: key,
            state,
            caller: facts.caller.as_deref().map(mask_number),
            tenant: origin.tenant.clone(),
            hotline: origin.hotline.clone(),
            municipality: origin.municipality.clone(),
            via_115: origin.via_115,
            queue: facts.queue.clone(),
            agent,
            overflow: facts.overflow.as_ref().map(|(_, target)| target.clone()),
            started: old.map_or(now, |o| o.started),
            waiting_since,
        };
        let kind = match old {
            None if state == "queued" => CallKind::Joined,
            None => CallKind::Arrived,
            Some(o) if o.overflow.is_none() && call.overflow.is_some() => CallKind::Overflowed,
            Some(o) if state == "queued" && (o.state != "queued" || o.queue != call.queue) => {
                CallKind::Joined
            }
            Some(o) if state == "talking" && o.state != "talking" => CallKind::Answered,
            Some(o) if *o == call => return,
            Some(_) => CallKind::Changed,
        };
        if kind == CallKind::Overflowed
            && let Some(target) = &call.overflow
        {
            *self
                .overflowed
                .entry((target.clone(), call.municipality.clone()))
                .or_default() += 1;
        }
        self.calls.insert(key, call.clone());
        self.publish(Change::Call(CallChange {
            kind,
            call,
            disposition: None,
        }));
    }

    /// A hotline call ended: publishes `abandoned` (the caller hung up
    /// while waiting) or `ended`, with the call record's disposition.
    pub fn call_ended(&mut self, key: u64, facts: &CallFacts, origin: &Origin, now: Instant) {
        if !self.calls.contains_key(&key) {
            self.call_changed(key, facts, origin, now);
        }
        let Some(mut call) = self.calls.remove(&key) else {
            return;
        };
        call.state = "ended";
        let disposition = facts.disposition();
        let kind = if disposition == Disposition::Abandoned {
            CallKind::Abandoned
        } else {
            CallKind::Ended
        };
        self.publish(Change::Call(CallChange {
            kind,
            call,
            disposition: Some(disposition.as_str()),
        }));
    }
}

/// The client's word for a call's stage.
fn state_of(stage: Stage) -> &'static str {
    match stage {
        Stage::Ringing | Stage::Greeting | Stage::Menu => "arriving",
        Stage::Waiting => "waiting",
        Stage::Queued => "queued",
        Stage::Forwarding => "forwarding",
        Stage::Talking => "talking",
        Stage::Forwarded => "forwarded",
        Stage::Ending(_) => "ending",
    }
}

fn agent(a: &AgentSnapshot, name: Option<Arc<str>>) -> AgentFigures {
    let (state, reason) = match &a.state {
        AgentState::LoggedOut => ("logged_out", None),
        // Available without a phone is not available: no call reaches it.
        AgentState::Available if !a.registered => ("unreachable", None),
        AgentState::Available => ("available", None),
        AgentState::Reserved => ("reserved", None),
        AgentState::Ringing => ("ringing", None),
        AgentState::Talking => ("talking", None),
        AgentState::WrapUp => ("wrap_up", None),
        AgentState::Paused(r) => ("paused", Some(Arc::from(r.name()))),
    };
    AgentFigures {
        id: a.id.clone(),
        tenant: a.tenant.clone(),
        name,
        state,
        reason,
        registered: a.registered,
        since: a.since,
        pending: a.pending.as_ref().map(|p| match p {
            PendingChange::Pause(r) => format!("pause:{}", r.name()),
            PendingChange::Logout => "logout".into(),
        }),
        queue: a.queue.clone(),
        call: a.call.map(|c| c.0),
        answered_today: a.answered_today,
    }
}

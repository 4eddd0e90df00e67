//! What the wallboard, `zentrale ctl watch` and any other client of
//! `GET /api/v1/events` see change: queues, agents and calls, as a log of
//! events with increasing ids. Sans-IO: no sockets, no threads, no clock;
//! time comes in as `now` arguments.
//!
//! - [`Log`] keeps the current picture (queues, agents, live calls) and
//!   the last `capacity` events. A client that reconnects with the id of
//!   the last event it saw gets what it missed ([`Log::since`]), or a
//!   [`Snapshot`] when the buffer no longer reaches back that far.
//! - Queue and agent events come from comparing the ACD's snapshots
//!   ([`Log::observe_acd`]): a queue's figures or an agent's state changed.
//!   The ACD stays free of any knowledge of clients.
//! - Call events come from the core's call facts ([`Log::call_changed`],
//!   [`Log::call_ended`]): joined a queue, answered, overflowed, abandoned.
//!   Caller numbers are masked as in the logs (`0561787xxx`) before they
//!   enter the log; a withheld number is never there.
//! - [`Hub`] shares a log between the core thread (which publishes, never
//!   waiting for a client) and the HTTP side (which reads behind a cursor
//!   and drops a client that falls behind the buffer).
//!
//! ```
//! use std::time::Instant;
//! use zentrale::events::{Log, Resume};
//!
//! let log = Log::new(1024);
//! // A client that saw nothing yet, or saw ids of an earlier run, starts
//! // from a snapshot.
//! assert!(matches!(log.since(Some(7)), Resume::Snapshot));
//! assert!(matches!(log.since(None), Resume::Snapshot));
//! let snap = log.snapshot();
//! assert_eq!(snap.id, 0);
//! let _json = snap.to_json(Instant::now());
//! ```

mod hub;
mod log;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use crate::acd::QueueSnapshot;

pub use hub::{Cursor, Hub, Next, StreamPermit};
pub use log::{Log, Resume};

/// An event's id: 1, 2, 3, ... in the order of publication; 0 is "before
/// the first event".
pub type EventId = u64;

/// One published change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub change: Change,
}

/// What changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A queue's figures (waiting, counters, service level, agents).
    Queue(QueueFigures),
    /// An agent's state.
    Agent(AgentFigures),
    /// A call joined, was offered, answered, overflowed or ended.
    Call(CallChange),
}

impl Change {
    /// The SSE event name: `queue`, `agent` or `call`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Queue(_) => "queue",
            Change::Agent(_) => "agent",
            Change::Call(_) => "call",
        }
    }

    /// The event's JSON, with durations as seconds before `now`.
    pub fn to_json(&self, now: Instant) -> Value {
        match self {
            Change::Queue(q) => q.to_json(now),
            Change::Agent(a) => a.to_json(now),
            Change::Call(c) => {
                let mut v = c.call.to_json(now);
                v["kind"] = json!(c.kind.as_str());
                if let Some(d) = c.disposition {
                    v["disposition"] = json!(d);
                }
                v
            }
        }
    }
}

/// Seconds from `since` to `now`, whole.
fn secs(since: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(since).as_secs()
}

/// A queue as the wallboard shows it: the ACD's figures as of `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub queue: QueueSnapshot,
    /// When the ACD gave them; the longest wait goes on growing from here.
    pub at: Instant,
}

impl QueueFigures {
    /// Whether a client would see the same, but for the longest wait,
    /// which grows by itself (a change of the waiting callers changes
    /// `waiting`). Figures a client is not shown (rejections, handle time)
    /// change nothing.
    fn same(&self, other: &QueueFigures) -> bool {
        let seen = |q: &QueueFigures| {
            let mut v = q.to_json(q.at);
            v["longest_wait_secs"] = json!(q.queue.longest_wait.is_some());
            v
        };
        seen(self) == seen(other)
    }

    fn to_json(&self, now: Instant) -> Value {
        let q = &self.queue;
        let agents: serde_json::Map<String, Value> = q
            .agents
            .by_state()
            .into_iter()
            .map(|(state, n)| (state.to_owned(), json!(n)))
            .collect();
        json!({
            "name": &*q.name,
            "tenant": &*q.tenant,
            "waiting": q.waiting,
            "ringing": q.offered,
            "longest_wait_secs": q
                .longest_wait
                .map(|w| (now.saturating_duration_since(self.at) + w).as_secs()),
            "expected_wait_secs": q.expected_wait.as_secs(),
            "entered": q.counters.entered,
            "answered": q.counters.answered,
            "answered_in_threshold": q.counters.answered_in_threshold,
            "abandoned": q.counters.abandoned,
            "timed_out": q.counters.timed_out,
            "moved_out": q.counters.moved_out,
            "service_level_percent": q.service_level.percent,
            "service_level_target_percent": q.service_level.target_percent,
            "service_level_threshold_secs": q.service_level.threshold.as_secs(),
            "by_origin": q.segments.iter().map(|s| json!({
                "municipality": &*s.segment.municipality,
                "via": crate::dialplan::via_label(s.segment.via_115),
                "entered": s.counters.entered,
                "answered": s.counters.answered,
                "abandoned": s.counters.abandoned,
                "service_level_percent": s.service_level.percent,
            })).collect::<Vec<_>>(),
            "agents": agents,
        })
    }
}

/// An agent as the wallboard and the supervisor see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFigures {
    /// The extension.
    pub id: Arc<str>,
    pub tenant: Arc<str>,
    /// The display name, only where the config shows names
    /// (`http.wallboard_agent_names`).
    pub name: Option<Arc<str>>,
    /// As in `GET /api/v1/agents`: `logged_out`, `available`,
    /// `unreachable`, `reserved`, `ringing`, `talking`, `wrap_up`, `paused`.
    pub state: &'static str,
    /// The pause reason while paused.
    pub reason: Option<Arc<str>>,
    pub registered: bool,
    pub since: Instant,
    /// `pause:<reason>` or `logout`, asked for during a call.
    pub pending: Option<String>,
    pub queue: Option<Arc<str>>,
    /// The call the agent is offered or talks to (the `call` of call events).
    pub call: Option<u64>,
    pub answered_today: u32,
}

impl AgentFigures {
    fn to_json(&self, now: Instant) -> Value {
        json!({
            "id": &*self.id,
            "tenant": &*self.tenant,
            "name": self.name.as_deref(),
            "state": self.state,
            "reason": self.reason.as_deref(),
            "registered": self.registered,
            "since_secs": secs(self.since, now),
            "pending": self.pending,
            "queue": self.queue.as_deref(),
            "call": self.call,
            "answered_today": self.answered_today,
        })
    }
}

/// A live hotline call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFigures {
    /// The daemon's key of the call (not the SIP Call-ID).
    pub call: u64,
    /// `arriving` (ringing, greeting, menu), `waiting` (a hotline without
    /// a queue), `queued`, `forwarding`, `talking`, `forwarded`, `ending`.
    pub state: &'static str,
    /// Masked (`0561787xxx`); `None` when withheld.
    pub caller: Option<String>,
    pub tenant: Arc<str>,
    pub hotline: Arc<str>,
    pub municipality: Arc<str>,
    pub via_115: bool,
    /// The queue it waits in or was answered from (`tenant/queue`).
    pub queue: Option<String>,
    /// The agent it talks to, or whose phone rings for it.
    pub agent: Option<Arc<str>>,
    /// Where it overflowed to (`tenant/queue`, `sip:...`, `prompt:...`).
    pub overflow: Option<String>,
    /// When the call came in.
    pub started: Instant,
    /// Since when it waits in the current queue (`queued`, `forwarding`).
    pub waiting_since: Option<Instant>,
}

impl CallFigures {
    fn to_json(&self, now: Instant) -> Value {
        json!({
            "call": self.call,
            "state": self.state,
            "caller": self.caller,
            "tenant": &*self.tenant,
            "hotline": &*self.hotline,
            "municipality": &*self.municipality,
            "via": crate::dialplan::via_label(self.via_115),
            "queue": self.queue.as_deref(),
            "agent": self.agent.as_deref(),
            "overflow": self.overflow,
            "duration_secs": secs(self.started, now),
            "waiting_secs": self.waiting_since.map(|s| secs(s, now)),
        })
    }
}

/// A call event: what happened, and the call as it is now (as it was,
/// for an ended call).
#[derive(Debug, Clone, PartialEq)]
pub struct CallChange {
    pub kind: CallKind,
    pub call: CallFigures,
    /// For `ended` and `abandoned`: the call record's disposition.
    pub disposition: Option<&'static str>,
}

/// What happened to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A hotline call was accepted (greeting, menu).
    Arrived,
    /// It joined a queue (also after overflowing into one).
    Joined,
    /// An agent's phone rings for it.
    Offered,
    /// An agent answered.
    Answered,
    /// It overflowed (the town hall did not answer, closed, ...).
    Overflowed,
    /// A forward target rings or answered, a last prompt plays, ...
    Changed,
    /// The caller hung up while waiting in a queue or for a forward.
    Abandoned,
    /// The call ended otherwise.
    Ended,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Arrived => "arrived",
            CallKind::Joined => "joined",
            CallKind::Offered => "offered",
            CallKind::Answered => "answered",
            CallKind::Overflowed => "overflowed",
            CallKind::Changed => "changed",
            CallKind::Abandoned => "abandoned",
            CallKind::Ended => "ended",
        }
    }
}

/// Everything a client needs to start from: the picture after event `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The last event the picture includes; the stream goes on after it.
    pub id: EventId,
    pub queues: Vec<QueueFigures>,
    pub agents: Vec<AgentFigures>,
    pub calls: Vec<CallFigures>,
    /// Calls overflowed since start, by target and the municipality the
    /// callers meant.
    pub overflowed: Vec<OverflowCount>,
}

/// Calls of one municipality overflowed to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverflowCount {
    pub target: String,
    pub municipality: Arc<str>,
    pub calls: u64,
}

impl Snapshot {
    /// The snapshot's JSON (the `snapshot` event and `GET /api/v1/snapshot`).
    pub fn to_json(&self, now: Instant) -> Value {
        json!({
            "id": self.id,
            "queues": self.queues.iter().map(|q| q.to_json(now)).collect::<Vec<_>>(),
            "agents": self.agents.iter().map(|a| a.to_json(now)).collect::<Vec<_>>(),
            "calls": self.calls.iter().map(|c| c.to_json(now)).collect::<Vec<_>>(),
            "overflowed": self.overflowed.iter().map(|o| json!({
                "target": o.target,
                "municipality": &*o.municipality,
                "calls": o.calls,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The Server-Sent Events form of one event: `id`, `event` and one
/// `data` line (JSON never holds a raw line break).
pub fn sse(id: EventId, name: &str, data: &Value) -> String {
    format!("id: {id}\nevent: {name}\ndata: {data}\n\n")
}

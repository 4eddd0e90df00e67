//! Call detail records: one record per hotline call when it ends, written
//! as one JSON line to the file `cdr.path` names.
//!
//! The core collects a call's [`CallFacts`] as the call moves on (answered,
//! menu, queued, talking, sent to a target) and, when the call is released,
//! [`CallRecord::build`] turns them, the call's route and origin and how it
//! ended into the record. That part is pure: no clock, no file. The
//! shell's writer (`daemon::cdr_writer`) appends the records' JSON on a
//! thread of its own, so a slow disk never holds up signalling.
//!
//! Privacy: a withheld caller number never reaches the facts (the dialplan
//! drops it), so a record of an anonymous call has no `caller` key at all;
//! other numbers are masked unless `cdr.caller_number: full`.
//!
//! ```
//! use jiff::Timestamp;
//! use zentrale::call::EndReason;
//! use zentrale::cdr::{CallFacts, CallRecord, CallerNumbers, Disposition, Stage};
//! use zentrale::dialplan::CallInput;
//! # use std::path::Path;
//! # use zentrale::config::{Config, Overrides};
//! # use zentrale::dialplan::Decision;
//! # let config = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml"), &Overrides::default()).unwrap();
//! # let dialplan = config.dialplan();
//! let t = |s: &str| -> Timestamp { s.parse().unwrap() };
//! let mut input = CallInput::to_number("0561115");
//! input.caller = Some("05617870123".into());
//! let Decision::Hotline(route) = dialplan.decide(&input, t("2026-11-24T09:00:00Z")) else { panic!() };
//!
//! let mut facts = CallFacts::new("a84b4c76e66710", t("2026-11-24T09:00:00Z"), input.caller.clone());
//! facts.answered(t("2026-11-24T09:00:00.3Z"));
//! facts.queued("kassel/115", t("2026-11-24T09:00:05Z"));
//! facts.connected("1001", t("2026-11-24T09:00:17Z"));
//! let record = CallRecord::build(
//!     &facts,
//!     &route,
//!     t("2026-11-24T09:03:17Z"),
//!     EndReason::CallerHangup,
//!     CallerNumbers::Masked,
//! );
//! assert_eq!(record.disposition, Disposition::Answered);
//! assert_eq!(record.caller.as_deref(), Some("05617870xxx"));
//! assert_eq!((record.wait_secs, record.talk_secs), (Some(12.0), Some(180.0)));
//! let line = serde_json::to_string(&record).unwrap();
//! assert!(line.contains(r#""municipality":"Kassel","via":"115""#), "{line}");
//! ```

use jiff::Timestamp;
use serde::Serialize;

use crate::call::EndReason;
use crate::dialplan::{CallRoute, MenuChoice, OverflowCause, mask_number};

/// How caller numbers go into records (`cdr.caller_number`). Withheld
/// numbers are never written either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallerNumbers {
    /// The last three digits masked, as in logs (`05617870xxx`): the
    /// default, because statistics need no more (DESIGN: privacy).
    #[default]
    Masked,
    /// The whole number, for centers that call back from the records.
    Full,
}

/// Why a call ended up with a last prompt or a hang-up instead of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The hotline was closed (its `closed` target, or a closed-hours
    /// overflow to a prompt).
    Closed,
    /// The tenant's surge limits (the `busy` target).
    Surge,
    /// The queue's maximum wait (`on_timeout`).
    TimedOut,
    /// The queue was full or its expected wait too long (`on_full`).
    QueueFull,
    /// Nobody was logged in (`on_no_agents`).
    NoAgents,
    /// The forward target did not take the call.
    ForwardFailed,
    /// A target the dialplan sends calls to on purpose (a menu key to a
    /// prompt, an announcement).
    Planned,
}

/// Where a call is, as far as its record goes; the core moves it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not answered by zentrale yet.
    Ringing,
    /// Answered; the greeting plays.
    Greeting,
    /// In the hotline's menu.
    Menu,
    /// A hotline without a queue: its waiting prompt loops.
    Waiting,
    /// Waiting in a queue (also while an agent's phone rings).
    Queued,
    /// A forward target's phone rings.
    Forwarding,
    /// Talking to an agent.
    Talking,
    /// Talking to a forward target.
    Forwarded,
    /// A last prompt plays (or the call is hung up) for this reason.
    Ending(Why),
}

/// How a call ended, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// An agent talked to the caller.
    Answered,
    /// Another center's system (a forward target) answered.
    Forwarded,
    /// The caller hung up while waiting in a queue or for a forward target.
    Abandoned,
    /// The caller hung up (or the call failed) before zentrale answered.
    Cancelled,
    /// The caller hung up during the greeting.
    LeftInGreeting,
    /// The caller hung up during the menu.
    LeftInMenu,
    /// Outside service hours: the closed prompt.
    Closed,
    /// Past the tenant's surge limits: the busy prompt.
    SurgeRejected,
    /// The queue's maximum wait ran out and its target was a prompt.
    TimedOut,
    /// The queue was full or its expected wait too long.
    QueueFull,
    /// Nobody who serves the queue was logged in.
    NoAgents,
    /// The forward target did not take the call.
    ForwardFailed,
    /// The call got what the dialplan planned without a person: a hotline
    /// without a queue, or a menu key leading to a prompt.
    Announced,
}

impl Disposition {
    /// The label of the `disposition` metric label and the JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Forwarded => "forwarded",
            Disposition::Abandoned => "abandoned",
            Disposition::Cancelled => "cancelled",
            Disposition::LeftInGreeting => "left_in_greeting",
            Disposition::LeftInMenu => "left_in_menu",
            Disposition::Closed => "closed",
            Disposition::SurgeRejected => "surge_rejected",
            Disposition::TimedOut => "timed_out",
            Disposition::QueueFull => "queue_full",
            Disposition::NoAgents => "no_agents",
            Disposition::ForwardFailed => "forward_failed",
            Disposition::Announced => "announced",
        }
    }

    fn of(stage: Stage) -> Disposition {
        match stage {
            Stage::Ringing => Disposition::Cancelled,
            Stage::Greeting => Disposition::LeftInGreeting,
            Stage::Menu => Disposition::LeftInMenu,
            Stage::Waiting => Disposition::Announced,
            Stage::Queued | Stage::Forwarding => Disposition::Abandoned,
            Stage::Talking => Disposition::Answered,
            Stage::Forwarded => Disposition::Forwarded,
            Stage::Ending(why) => match why {
                Why::Closed => Disposition::Closed,
                Why::Surge => Disposition::SurgeRejected,
                Why::TimedOut => Disposition::TimedOut,
                Why::QueueFull => Disposition::QueueFull,
                Why::NoAgents => Disposition::NoAgents,
                Why::ForwardFailed => Disposition::ForwardFailed,
                Why::Planned => Disposition::Announced,
            },
        }
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    Caller,
    Agent,
    /// The forward target (another center's system).
    Remote,
    /// zentrale: after a last prompt, on a timeout, at shutdown.
    Zentrale,
}

/// What the core learns about a call while it runs. Times are wall-clock
/// times (the daemon's clock, so `--clock` moves them too).
#[derive(Debug, Clone, PartialEq)]
pub struct CallFacts {
    pub call_id: String,
    pub started: Timestamp,
    /// The caller's number; `None` when withheld (then it was never known
    /// here) or not a number.
    pub caller: Option<String>,
    pub stage: Stage,
    /// When zentrale answered (the 200 OK).
    pub answered: Option<Timestamp>,
    /// `outside_hours`, `holiday` or `closure` when the call came in while
    /// its hotline was closed.
    pub closed: Option<&'static str>,
    pub menu: Option<MenuChoice>,
    /// The last queue the caller joined (`tenant/queue`).
    pub queue: Option<String>,
    /// Time spent in queues before the current stay.
    waited: jiff::SignedDuration,
    /// Since when the caller waits in a queue now.
    queued_since: Option<Timestamp>,
    /// The agent who answered.
    pub agent: Option<String>,
    /// When the agent (or forward target) answered.
    pub connected: Option<Timestamp>,
    /// Why and where to the call overflowed (cause, target label).
    pub overflow: Option<(OverflowCause, String)>,
    /// The carrier trunk the call came from.
    pub trunk: Option<String>,
}

impl CallFacts {
    /// A call accepted at `started`; `caller` is `None` for anonymous callers.
    pub fn new(call_id: &str, started: Timestamp, caller: Option<String>) -> CallFacts {
        CallFacts {
            call_id: call_id.to_owned(),
            started,
            caller,
            stage: Stage::Ringing,
            answered: None,
            closed: None,
            menu: None,
            queue: None,
            waited: jiff::SignedDuration::ZERO,
            queued_since: None,
            agent: None,
            connected: None,
            overflow: None,
            trunk: None,
        }
    }

    /// Moves the call to `stage` at `at`, keeping the time spent in queues.
    pub fn stage(&mut self, stage: Stage, at: Timestamp) {
        if let Some(since) = self.queued_since.take() {
            self.waited += at.duration_since(since);
        }
        if stage == Stage::Queued || stage == Stage::Forwarding {
            self.queued_since = Some(at);
        }
        self.stage = stage;
    }

    /// zentrale answered the call.
    pub fn answered(&mut self, at: Timestamp) {
        self.answered = Some(at);
        self.stage(Stage::Greeting, at);
    }

    /// The caller joined `queue`.
    pub fn queued(&mut self, queue: &str, at: Timestamp) {
        self.queue = Some(queue.to_owned());
        self.stage(Stage::Queued, at);
    }

    /// `agent` answered; the conversation starts.
    pub fn connected(&mut self, agent: &str, at: Timestamp) {
        self.agent = Some(agent.to_owned());
        self.connected = Some(at);
        self.stage(Stage::Talking, at);
    }

    /// The forward target answered.
    pub fn forward_answered(&mut self, at: Timestamp) {
        self.connected = Some(at);
        self.stage(Stage::Forwarded, at);
    }

    /// How the call ends if it ends now.
    pub fn disposition(&self) -> Disposition {
        Disposition::of(self.stage)
    }

    /// Seconds in queues (and waiting for a forward target) until `end`;
    /// `None` if the call never waited.
    fn wait_until(&self, end: Timestamp) -> Option<jiff::SignedDuration> {
        let current = self.queued_since.map(|s| end.duration_since(s));
        match current {
            Some(c) => Some(self.waited + c),
            None if self.queue.is_some() || !self.waited.is_zero() => Some(self.waited),
            None => None,
        }
    }
}

/// One call detail record, as written (one JSON object per line). Keys
/// without a value are left out; see the README for every key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    pub call_id: String,
    /// When the INVITE was accepted (RFC 3339, UTC, milliseconds).
    #[serde(serialize_with = "ms::one")]
    pub start: Timestamp,
    /// When zentrale answered.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ms::opt")]
    pub answer: Option<Timestamp>,
    /// When the agent (or forward target) answered.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ms::opt")]
    pub connect: Option<Timestamp>,
    #[serde(serialize_with = "ms::one")]
    pub end: Timestamp,
    /// The origin: tenant and hotline of the number the caller dialled.
    pub tenant: String,
    pub hotline: String,
    pub municipality: String,
    /// `115` or `local`.
    pub via: &'static str,
    /// The call reached zentrale with Diversion or History-Info.
    pub forwarded: bool,
    /// The number the caller dialled (national form).
    pub called: String,
    /// Where `called` came from: `request-uri`, `to`, `diversion` or
    /// `history-info`.
    pub called_from: &'static str,
    /// The hotline that handled the call, `tenant/hotline` (for a call
    /// forwarded to us it may differ from the origin's).
    pub handled_by: String,
    /// The caller's number (masked unless configured otherwise); absent
    /// for anonymous callers, always.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    pub anonymous: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
    /// `outside_hours`, `holiday` or `closure`: the hotline was closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<&'static str>,
    /// How the menu ended: the key, `timeout` or `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub menu: Option<String>,
    /// The last queue the caller waited in, `tenant/queue`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The agent's extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Seconds in queues until answered or gone (ms precision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<f64>,
    /// Seconds talking to the agent or forward target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub talk_secs: Option<f64>,
    /// Seconds from the INVITE to the end.
    pub duration_secs: f64,
    /// `closed`, `no_answer`, `no_agents` or `expected_wait`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow_cause: Option<&'static str>,
    /// Where the overflow went: `tenant/queue`, `sip:host` or `prompt:name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow_target: Option<String>,
    pub disposition: Disposition,
    pub hangup: HangupSide,
    /// zentrale's end reason (`caller_hangup`, `agent_hangup`, `completed`,
    /// `rtp_timeout`, ...), as in `zentrale_calls_ended_total`.
    pub end_reason: &'static str,
}

impl CallRecord {
    /// The record of a call of `route` that ended at `end` for `reason`.
    pub fn build(
        facts: &CallFacts,
        route: &CallRoute,
        end: Timestamp,
        reason: EndReason,
        numbers: CallerNumbers,
    ) -> CallRecord {
        let origin = &route.origin;
        let disposition = facts.disposition();
        let hangup = match reason {
            EndReason::CallerHangup | EndReason::Cancelled => HangupSide::Caller,
            EndReason::AgentHangup if facts.stage == Stage::Forwarded => HangupSide::Remote,
            EndReason::AgentHangup => HangupSide::Agent,
            EndReason::NoAck
            | EndReason::RtpTimeout
            | EndReason::SessionExpired
            | EndReason::Shutdown
            | EndReason::Completed
            | EndReason::InternalError
            | EndReason::NoRtpPort => HangupSide::Zentrale,
        };
        let talk = facts.connected.map(|c| secs(end.duration_since(c)));
        CallRecord {
            call_id: facts.call_id.clone(),
            start: facts.started,
            answer: facts.answered,
            connect: facts.connected,
            end,
            tenant: origin.tenant.to_string(),
            hotline: origin.hotline.to_string(),
            municipality: origin.municipality.to_string(),
            via: origin.via_label(),
            forwarded: origin.forwarded,
            called: origin.called.clone(),
            called_from: origin.called_from.as_str(),
            handled_by: format!("{}/{}", route.route.tenant, route.route.hotline),
            caller: facts.caller.as_deref().map(|n| match numbers {
                CallerNumbers::Masked => mask_number(n),
                CallerNumbers::Full => n.to_owned(),
            }),
            anonymous: facts.caller.is_none(),
            trunk: facts.trunk.clone(),
            closed: facts.closed,
            menu: facts.menu.map(MenuChoice::label),
            queue: facts.queue.clone(),
            agent: facts.agent.clone(),
            wait_secs: facts.wait_until(facts.connected.unwrap_or(end)).map(secs),
            talk_secs: talk,
            duration_secs: secs(end.duration_since(facts.started)),
            overflow_cause: facts.overflow.as_ref().map(|(c, _)| c.as_str()),
            overflow_target: facts.overflow.as_ref().map(|(_, t)| t.clone()),
            disposition,
            hangup,
            end_reason: reason.as_str(),
        }
    }
}

/// Timestamps as RFC 3339 in UTC with exactly three fractional digits, so
/// every record's times have one shape (`2026-11-24T09:00:00.300Z`).
mod ms {
    use jiff::Timestamp;
    use serde::Serializer;

    pub fn one<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{t:.3}"))
    }

    pub fn opt<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => one(t, s),
            None => s.serialize_none(),
        }
    }
}

/// Seconds with millisecond precision, never negative.
fn secs(d: jiff::SignedDuration) -> f64 {
    (d.as_millis().max(0) as f64) / 1000.0
}

#[cfg(test)]
mod tests;

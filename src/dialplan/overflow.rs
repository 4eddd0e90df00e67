//! Overflow, the Quickborn model: calls a town hall does not take go to
//! the district's service center, which answers in the town's name.
//!
//! A hotline's `overflow:` has four triggers. `when_closed` is decided by
//! the dialplan itself ([`Decision::Overflow`](super::Decision::Overflow)).
//! The other three are rules of the hotline's own queue, so the config
//! loader writes them into that queue and the ACD applies them with its
//! usual moves, which keep the caller's place in line:
//!
//! | `overflow:` key | becomes, on the hotline's queue |
//! |---|---|
//! | `after_secs: N` | `max_wait_secs: N`, `on_timeout: <target>` |
//! | `when_no_agents: true` | `join_empty: false`, `on_no_agents: <target>` |
//! | `when_expected_wait_over_secs: M` | `max_expected_wait_secs: M`, `on_full: <target>` |
//!
//! So the daemon has no timer of its own to run; it only labels the moves:
//! a caller whose route has an [`Overflow`] and who leaves its queue for
//! [`Overflow::target`] has overflowed, counted per
//! [`Origin::municipality`](super::Origin) and [`Overflow::target_label`].

use std::time::Duration;

use super::Target;

/// A hotline's overflow rules (`overflow:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    /// Ring the hotline's own queue this long, then overflow.
    pub after: Option<Duration>,
    /// Overflow outside the hotline's service hours (if the target is open).
    pub when_closed: bool,
    /// Overflow when no agent of the hotline's queue is logged in.
    pub when_no_agents: bool,
    /// Overflow when the expected wait in the hotline's queue is longer.
    pub when_expected_wait_over: Option<Duration>,
    /// Where overflowing calls go: usually another tenant's queue, or a SIP
    /// URI of another service center's system.
    pub target: Target,
}

/// Why a call overflowed, for metrics (`cause` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverflowCause {
    /// Outside the hotline's service hours.
    Closed,
    /// Nobody answered within `after_secs`.
    NoAnswer,
    /// Nobody was logged in.
    NoAgents,
    /// The expected wait was too long (or the queue full).
    ExpectedWait,
}

impl OverflowCause {
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowCause::Closed => "closed",
            OverflowCause::NoAnswer => "no_answer",
            OverflowCause::NoAgents => "no_agents",
            OverflowCause::ExpectedWait => "expected_wait",
        }
    }
}

impl Overflow {
    /// The `target` label of overflow metrics: `tenant/queue` for a queue,
    /// the host of a SIP URI (never its user part), `prompt:<name>` or
    /// `hangup`.
    ///
    /// ```
    /// # use zentrale::dialplan::{QueueRef, Target};
    /// # use zentrale::dialplan::Overflow;
    /// let o = |target| Overflow { after: None, when_closed: true, when_no_agents: false,
    ///                             when_expected_wait_over: None, target };
    /// let q = Target::Queue(QueueRef { tenant: "kreis-pinneberg".into(), queue: "115".into() });
    /// assert_eq!(o(q).target_label(), "kreis-pinneberg/115");
    /// assert_eq!(o(Target::Uri("sip:115@sc.example:5060;transport=tcp".into())).target_label(),
    ///            "sip:sc.example");
    /// ```
    pub fn target_label(&self) -> String {
        match &self.target {
            Target::Queue(q) => q.to_string(),
            Target::Uri(u) => {
                let rest = u.split_once(':').map_or(u.as_str(), |(_, r)| r);
                let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                let host = if let Some(v6) = host_part.strip_prefix('[') {
                    v6.split(']').next().unwrap_or("")
                } else {
                    host_part.split([':', ';', '?']).next().unwrap_or("")
                };
                format!("sip:{host}")
            }
            Target::Prompt(p) => format!("prompt:{p}"),
            Target::Hangup => "hangup".to_string(),
        }
    }

    /// The overflow cause of a queue rejection or timeout that sends the
    /// caller to `target`, if that is this overflow (and not, say, a
    /// queue's own `on_full: { prompt: call-later }`).
    pub fn cause_for(&self, target: &Target, event: QueueExit) -> Option<OverflowCause> {
        if *target != self.target {
            return None;
        }
        match event {
            QueueExit::Timeout if self.after.is_some() => Some(OverflowCause::NoAnswer),
            QueueExit::NoAgents if self.when_no_agents => Some(OverflowCause::NoAgents),
            QueueExit::Full if self.when_expected_wait_over.is_some() => {
                Some(OverflowCause::ExpectedWait)
            }
            _ => None,
        }
    }
}

/// How a caller left (or was kept out of) its queue, in the ACD's terms:
/// `Event::WaitTimeout`, `RejectReason::NoAgents`, and
/// `RejectReason::{QueueFull, WaitTooLong}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueExit {
    Timeout,
    NoAgents,
    Full,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialplan::QueueRef;

    fn pinneberg() -> Target {
        Target::Queue(QueueRef {
            tenant: "kreis-pinneberg".into(),
            queue: "115".into(),
        })
    }

    #[test]
    fn causes_only_for_the_overflow_target_and_its_triggers() {
        let o = Overflow {
            after: Some(Duration::from_secs(20)),
            when_closed: true,
            when_no_agents: true,
            when_expected_wait_over: None,
            target: pinneberg(),
        };
        assert_eq!(
            o.cause_for(&pinneberg(), QueueExit::Timeout),
            Some(OverflowCause::NoAnswer)
        );
        assert_eq!(
            o.cause_for(&pinneberg(), QueueExit::NoAgents),
            Some(OverflowCause::NoAgents)
        );
        assert_eq!(o.cause_for(&pinneberg(), QueueExit::Full), None);
        assert_eq!(o.cause_for(&Target::call_later(), QueueExit::Timeout), None);
        assert_eq!(OverflowCause::NoAnswer.as_str(), "no_answer");
    }

    #[test]
    fn labels_never_show_a_user_part() {
        let o = |u: &str| Overflow {
            after: None,
            when_closed: true,
            when_no_agents: false,
            when_expected_wait_over: None,
            target: Target::Uri(u.into()),
        };
        assert_eq!(
            o("sip:+49301234@[2001:db8::1]:5060").target_label(),
            "sip:2001:db8::1"
        );
        assert_eq!(o("sips:sc.example").target_label(), "sip:sc.example");
        assert_eq!(o("sip:a:pw@h?x=1").target_label(), "sip:h");
    }
}

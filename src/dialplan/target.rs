//! Where a call goes next: a queue, a prompt, another SIP address or the end.
//!
//! Targets appear wherever a call leaves one step for another: a queue's
//! `on_timeout`, `on_full` and `on_no_agents`, a dialplan's `closed` and
//! `busy`, menu keys and overflow rules. In YAML a target is one of
//!
//! ```yaml
//! on_timeout: { queue: general }                   # a queue of the same tenant
//! on_timeout: { queue: kreis-pinneberg/115 }       # a queue of another tenant
//! on_full: { prompt: call-later }                  # play <sounds>/call-later.wav, hang up
//! on_no_agents: { uri: "sip:zentrale@192.0.2.10" } # forward the call there
//! on_full: hangup                                  # end the call at once
//! ```

use std::fmt;

/// A queue named across tenants: `tenant/queue`, or just `queue` in the
/// referring tenant's own file (resolved to the full form when loading).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueRef {
    /// Id of the tenant whose dialplan defines the queue.
    pub tenant: String,
    /// The queue's id within that tenant.
    pub queue: String,
}

impl fmt::Display for QueueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.queue)
    }
}

impl QueueRef {
    /// Reads `queue` or `tenant/queue`; a bare id belongs to `own_tenant`.
    /// `None` if either part is empty or there is more than one `/`.
    ///
    /// ```
    /// use zentrale::dialplan::QueueRef;
    /// let r = QueueRef::parse("kreis-pinneberg/115", "quickborn").unwrap();
    /// assert_eq!(r.to_string(), "kreis-pinneberg/115");
    /// let r = QueueRef::parse("rathaus", "quickborn").unwrap();
    /// assert_eq!((r.tenant.as_str(), r.queue.as_str()), ("quickborn", "rathaus"));
    /// assert!(QueueRef::parse("a/b/c", "x").is_none());
    /// ```
    pub fn parse(text: &str, own_tenant: &str) -> Option<QueueRef> {
        let (tenant, queue) = match text.split_once('/') {
            Some((t, q)) => (t, q),
            None => (own_tenant, text),
        };
        (!tenant.is_empty() && !queue.is_empty() && !queue.contains('/')).then(|| QueueRef {
            tenant: tenant.to_string(),
            queue: queue.to_string(),
        })
    }
}

/// What happens to a call next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Join this queue (the call keeps its origin and priority).
    Queue(QueueRef),
    /// Play `<sounds>/<name>.wav` once, then hang up.
    Prompt(String),
    /// Forward the call to this SIP URI (`sip:` or `sips:`).
    Uri(String),
    /// Hang up at once.
    Hangup,
}

impl Target {
    /// The default for a queue's `on_timeout`, `on_full` and `on_no_agents`:
    /// tell the caller to call later.
    pub fn call_later() -> Target {
        Target::Prompt("call-later".to_string())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Queue(q) => write!(f, "queue {q}"),
            Target::Prompt(p) => write!(f, "prompt {p}"),
            Target::Uri(u) => write!(f, "uri {u}"),
            Target::Hangup => f.write_str("hangup"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_refs() {
        assert_eq!(QueueRef::parse("", "t"), None);
        assert_eq!(QueueRef::parse("/q", "t"), None);
        assert_eq!(QueueRef::parse("t/", "t"), None);
        assert_eq!(
            QueueRef::parse("a/q", "t"),
            Some(QueueRef {
                tenant: "a".into(),
                queue: "q".into()
            })
        );
    }
}

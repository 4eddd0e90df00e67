//! Surge protection: per tenant limits on concurrent calls and waiting
//! callers. Past them a new caller hears the tenant's busy prompt and the
//! call ends cleanly (answered, never a failed call).
//!
//! The daemon counts; the dialplan only holds the limits and says whether a
//! new call fits.

use super::Target;

/// A tenant's `limits:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurgeLimits {
    /// Concurrent calls of the tenant (all its hotlines), `None`: no limit.
    pub max_calls: Option<u32>,
    /// Callers of the tenant waiting in queues at once, `None`: no limit.
    pub max_waiting: Option<u32>,
    /// Where calls past a limit go (default `{ prompt: call-later }`).
    pub busy: Target,
    /// The tenant's share of the call slots (`slots:`), which callers
    /// hearing `busy` take too; past it, calls are refused.
    pub slots: super::SlotShare,
}

impl Default for SurgeLimits {
    fn default() -> Self {
        SurgeLimits {
            max_calls: None,
            max_waiting: None,
            busy: Target::call_later(),
            slots: super::SlotShare::default(),
        }
    }
}

/// Which limit a call hit (`reason` label of the busy metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BusyReason {
    MaxCalls,
    MaxWaiting,
}

impl BusyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BusyReason::MaxCalls => "max_calls",
            BusyReason::MaxWaiting => "max_waiting",
        }
    }
}

impl SurgeLimits {
    /// Whether a new call fits, given the tenant's calls and waiting
    /// callers before it (not counting the new one). On `Err`, send the call
    /// to [`busy`](SurgeLimits::busy).
    ///
    /// ```
    /// # use zentrale::dialplan::{BusyReason, SurgeLimits};
    /// let l = SurgeLimits { max_calls: Some(100), max_waiting: Some(60), ..Default::default() };
    /// assert_eq!(l.admit(99, 59), Ok(()));
    /// assert_eq!(l.admit(100, 0), Err(BusyReason::MaxCalls));
    /// assert_eq!(l.admit(80, 60), Err(BusyReason::MaxWaiting));
    /// ```
    pub fn admit(&self, calls: u32, waiting: u32) -> Result<(), BusyReason> {
        if self.max_calls.is_some_and(|m| calls >= m) {
            return Err(BusyReason::MaxCalls);
        }
        if self.max_waiting.is_some_and(|m| waiting >= m) {
            return Err(BusyReason::MaxWaiting);
        }
        Ok(())
    }
}

//! The wall clock service hours are evaluated on, as a value.
//!
//! Everything on the call path runs on [`Instant`]; only the dialplan, the
//! records and `Date` headers need the civil time. [`WallClock`] maps one
//! onto the other from a fixed pair it is given, so `--clock` can move the
//! starting point (tests, demos) while time still runs forward at the
//! normal rate. It reads no clock itself: the shell takes the pair once at
//! start (`daemon::clock::anchored`), and the core, the metrics and a test
//! harness all map through the same value.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// Maps monotonic instants to wall-clock timestamps.
///
/// ```
/// use std::time::{Duration, Instant};
/// use zentrale::wallclock::WallClock;
/// let start = Instant::now();
/// let clock = WallClock::new(start, "2026-11-23T10:00:00+01:00".parse().unwrap());
/// assert_eq!(clock.at(start + Duration::from_secs(90)).to_string(), "2026-11-23T09:01:30Z");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    started: Instant,
    base: Timestamp,
}

impl WallClock {
    /// A clock that reads `base` at `started`.
    pub fn new(started: Instant, base: Timestamp) -> WallClock {
        WallClock { started, base }
    }

    /// The pair the clock maps from: `started` reads `base`.
    pub fn anchor(&self) -> (Instant, Timestamp) {
        (self.started, self.base)
    }

    /// The wall-clock time at `now`.
    pub fn at(&self, now: Instant) -> Timestamp {
        let elapsed = now.saturating_duration_since(self.started);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX);
        self.base.saturating_add(elapsed).unwrap_or(self.base)
    }
}

//! The wall clock service hours are evaluated on.
//!
//! Everything on the call path runs on [`Instant`]; only the dialplan needs
//! the civil time. [`WallClock`] maps one onto the other from a fixed pair
//! taken at start, so `--clock` can move the starting point (tests, demos)
//! while time still runs forward at the normal rate.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// Maps monotonic instants to wall-clock timestamps.
///
/// ```
/// use std::time::{Duration, Instant};
/// use zentrale::daemon::clock::WallClock;
/// let start = Instant::now();
/// let clock = WallClock::new(start, Some("2026-11-23T10:00:00+01:00".parse().unwrap()));
/// assert_eq!(clock.at(start + Duration::from_secs(90)).to_string(), "2026-11-23T09:01:30Z");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    started: Instant,
    base: Timestamp,
}

impl WallClock {
    /// A clock that reads `base` at `started` (`None`: the real time now).
    pub fn new(started: Instant, base: Option<Timestamp>) -> WallClock {
        WallClock {
            started,
            base: base.unwrap_or_else(Timestamp::now),
        }
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

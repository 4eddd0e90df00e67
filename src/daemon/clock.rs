//! Where the daemon's wall clock is anchored: once at start, from
//! `--clock` or the system's real time. The mapping itself is a value
//! ([`WallClock`], layer 0) that reads no clock.

use std::time::Instant;

use jiff::Timestamp;

pub use crate::wallclock::WallClock;

/// A clock that reads `base` at `started`, or the real time now when
/// `--clock` gave none.
///
/// ```
/// use std::time::{Duration, Instant};
/// use zentrale::daemon::clock::anchored;
/// let start = Instant::now();
/// let clock = anchored(start, Some("2026-11-23T10:00:00+01:00".parse().unwrap()));
/// assert_eq!(clock.at(start + Duration::from_secs(90)).to_string(), "2026-11-23T09:01:30Z");
/// ```
pub fn anchored(started: Instant, base: Option<Timestamp>) -> WallClock {
    WallClock::new(started, base.unwrap_or_else(Timestamp::now))
}

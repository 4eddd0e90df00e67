//! Service-level accounting: counters, the sliding window, handle times.
//!
//! Counters are atomics bumped on the call path. The window and the
//! handle-time samples sit behind one short per-queue lock: it is taken only
//! when a call finishes (O(1) push, amortised pruning) and by snapshots, never
//! while another lock is held, so it does not serialise dispatch.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::spec::{ServiceLevelSpec, ShortAbandons};

/// Monotonic per-queue counters (since start; they survive spec reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounters {
    /// Callers that entered the queue (enqueued or moved in).
    pub entered: u64,
    pub answered: u64,
    /// Answered within the service-level threshold.
    pub answered_in_threshold: u64,
    pub abandoned: u64,
    /// Abandoned before the threshold (also counted in `abandoned`).
    pub abandoned_in_threshold: u64,
    /// Reached the queue's max wait.
    pub timed_out: u64,
    /// Moved to another queue.
    pub moved_out: u64,
    /// Offers an agent did not take (timeout, busy, declined, unreachable).
    pub offers_unanswered: u64,
    pub rejected_full: u64,
    pub rejected_wait_too_long: u64,
    pub rejected_no_agents: u64,
}

#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    pub entered: AtomicU64,
    pub answered: AtomicU64,
    pub answered_in_threshold: AtomicU64,
    pub abandoned: AtomicU64,
    pub abandoned_in_threshold: AtomicU64,
    pub timed_out: AtomicU64,
    pub moved_out: AtomicU64,
    pub offers_unanswered: AtomicU64,
    pub rejected_full: AtomicU64,
    pub rejected_wait_too_long: AtomicU64,
    pub rejected_no_agents: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl AtomicCounters {
    pub fn read(&self) -> QueueCounters {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QueueCounters {
            entered: r(&self.entered),
            answered: r(&self.answered),
            answered_in_threshold: r(&self.answered_in_threshold),
            abandoned: r(&self.abandoned),
            abandoned_in_threshold: r(&self.abandoned_in_threshold),
            timed_out: r(&self.timed_out),
            moved_out: r(&self.moved_out),
            offers_unanswered: r(&self.offers_unanswered),
            rejected_full: r(&self.rejected_full),
            rejected_wait_too_long: r(&self.rejected_wait_too_long),
            rejected_no_agents: r(&self.rejected_no_agents),
        }
    }
}

/// Where a caller comes from, as far as a queue's figures are split: the
/// municipality the caller meant and whether it dialled 115 or a local
/// number. A queue that serves several towns (a district's 115 taking a
/// town hall's overflow) keeps its counters and its service level per
/// segment too, with the queue's threshold and window, so each town's
/// promise can be checked on its own.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Instant;
/// use zentrale::acd::*;
///
/// let spec = AcdSpec {
///     queues: vec![QueueSpec::new("kreis-pinneberg/115", "kreis-pinneberg", "general")],
///     ..AcdSpec::default()
/// };
/// let t0 = Instant::now();
/// let acd = Acd::new(spec, t0)?;
/// let quickborn = Segment { municipality: Arc::from("Quickborn"), via_115: false };
/// acd.enqueue_segment(CallKey(1), "kreis-pinneberg/115", 0, t0, Some(quickborn.clone()), t0)?;
/// acd.abandon(CallKey(1), t0)?;
/// let queue = &acd.snapshot(t0).queues[0];
/// assert_eq!(queue.segments[0].segment, quickborn);
/// assert_eq!(queue.segments[0].counters.abandoned, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    pub municipality: Arc<str>,
    pub via_115: bool,
}

/// How a caller left a queue, as far as the service level cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Answered { waited: Duration },
    Abandoned { waited: Duration },
    TimedOut,
}

/// The service level of a queue over its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceLevel {
    /// `in_threshold / judged` in percent; `None` before any judged call.
    pub percent: Option<f64>,
    pub target_percent: u8,
    pub threshold: Duration,
    pub window: Duration,
    /// Calls answered within the threshold in the window.
    pub in_threshold: u64,
    /// Calls that count for the percentage in the window.
    pub judged: u64,
}

impl ServiceLevel {
    /// Whether the target is met; `None` without data.
    pub fn met(&self) -> Option<bool> {
        self.percent
            .map(|p| p + 1e-9 >= f64::from(self.target_percent))
    }
}

/// `Some(true)` counts as served in time, `Some(false)` as not, `None` not at all.
fn judge(outcome: Outcome, sl: &ServiceLevelSpec) -> Option<bool> {
    match outcome {
        Outcome::Answered { waited } => Some(waited <= sl.threshold),
        Outcome::TimedOut => Some(false),
        Outcome::Abandoned { waited } if waited > sl.threshold => Some(false),
        Outcome::Abandoned { .. } => match sl.short_abandons {
            ShortAbandons::Ignore => None,
            ShortAbandons::Missed => Some(false),
        },
    }
}

#[derive(Debug, Default)]
struct Window {
    /// (tick, served in time) of judged calls, oldest first.
    judged: VecDeque<(u64, bool)>,
    in_threshold: u64,
    handle: VecDeque<u64>,
    handle_sum: u128,
}

impl Window {
    fn prune(&mut self, now: u64, window: Duration) {
        let horizon = now.saturating_sub(window.as_nanos() as u64);
        while let Some(&(tick, ok)) = self.judged.front() {
            if tick >= horizon {
                break;
            }
            self.judged.pop_front();
            if ok {
                self.in_threshold -= 1;
            }
        }
    }
}

/// Counters, the service-level window and recent handle times of one queue.
#[derive(Debug, Default)]
pub(crate) struct QueueStats {
    pub counters: AtomicCounters,
    window: Mutex<Window>,
    /// Average handle time in ns of the recent samples; 0 before the first.
    avg_handle: AtomicU64,
}

impl QueueStats {
    /// Records a caller leaving the queue at `now` (tick).
    pub fn record(&self, now: u64, outcome: Outcome, sl: &ServiceLevelSpec) {
        let c = &self.counters;
        match outcome {
            Outcome::Answered { waited } => {
                bump(&c.answered);
                if waited <= sl.threshold {
                    bump(&c.answered_in_threshold);
                }
            }
            Outcome::Abandoned { waited } => {
                bump(&c.abandoned);
                if waited <= sl.threshold {
                    bump(&c.abandoned_in_threshold);
                }
            }
            Outcome::TimedOut => bump(&c.timed_out),
        }
        if let Some(ok) = judge(outcome, sl) {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            w.judged.push_back((now, ok));
            if ok {
                w.in_threshold += 1;
            }
            w.prune(now, sl.window);
        }
    }

    /// Adds one handle time (talk + wrap-up) to the sliding average.
    pub fn record_handle_time(&self, handle: Duration, samples: usize) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let ns = handle.as_nanos().min(u128::from(u64::MAX)) as u64;
        w.handle.push_back(ns);
        w.handle_sum += u128::from(ns);
        while w.handle.len() > samples.max(1) {
            let old = w.handle.pop_front().unwrap_or(0);
            w.handle_sum -= u128::from(old);
        }
        let avg = (w.handle_sum / w.handle.len() as u128).max(1) as u64;
        self.avg_handle.store(avg, Ordering::Relaxed);
    }

    /// The recent average handle time, or `default` before there is data.
    pub fn handle_time(&self, default: Duration) -> Duration {
        match self.avg_handle.load(Ordering::Relaxed) {
            0 => default,
            ns => Duration::from_nanos(ns),
        }
    }

    pub fn service_level(&self, now: u64, sl: &ServiceLevelSpec) -> ServiceLevel {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.prune(now, sl.window);
        let judged = w.judged.len() as u64;
        ServiceLevel {
            percent: (judged > 0).then(|| 100.0 * w.in_threshold as f64 / judged as f64),
            target_percent: sl.target_percent,
            threshold: sl.threshold,
            window: sl.window,
            in_threshold: w.in_threshold,
            judged,
        }
    }
}

/// Expected wait of the caller at `position` (1-based): that many handle
/// times spread over the logged-in eligible agents.
pub(crate) fn expected_wait(position: u32, handle: Duration, agents: usize) -> Duration {
    let agents = agents.max(1) as u128;
    let ns = handle.as_nanos() * u128::from(position) / agents;
    Duration::from_nanos(ns.min(u128::from(u64::MAX)) as u64)
}

/// Whole minutes for an announcement, at least one.
pub(crate) fn announced_minutes(wait: Duration) -> u32 {
    let minutes = (wait.as_secs() + 30) / 60;
    minutes.clamp(1, u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn sl(policy: ShortAbandons) -> ServiceLevelSpec {
        ServiceLevelSpec {
            short_abandons: policy,
            ..ServiceLevelSpec::default()
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn percentage_follows_the_documented_rule() {
        let spec = sl(ShortAbandons::Ignore);
        let q = QueueStats::default();
        q.record(10 * S, Outcome::Answered { waited: secs(5) }, &spec);
        q.record(11 * S, Outcome::Answered { waited: secs(30) }, &spec);
        q.record(12 * S, Outcome::Answered { waited: secs(31) }, &spec);
        q.record(13 * S, Outcome::Abandoned { waited: secs(10) }, &spec);
        q.record(14 * S, Outcome::Abandoned { waited: secs(50) }, &spec);
        q.record(15 * S, Outcome::TimedOut, &spec);
        let level = q.service_level(20 * S, &spec);
        // 2 in time of 5 judged; the short abandon is ignored.
        assert_eq!((level.in_threshold, level.judged), (2, 5));
        assert_eq!(level.percent, Some(40.0));
        assert_eq!(level.met(), Some(false));
        let c = q.counters.read();
        assert_eq!((c.answered, c.answered_in_threshold), (3, 2));
        assert_eq!(
            (c.abandoned, c.abandoned_in_threshold, c.timed_out),
            (2, 1, 1)
        );
    }

    #[test]
    fn short_abandons_can_count_as_missed() {
        let spec = sl(ShortAbandons::Missed);
        let q = QueueStats::default();
        q.record(S, Outcome::Answered { waited: secs(1) }, &spec);
        q.record(S, Outcome::Abandoned { waited: secs(1) }, &spec);
        assert_eq!(q.service_level(S, &spec).percent, Some(50.0));
    }

    #[test]
    fn the_window_slides() {
        let spec = ServiceLevelSpec {
            window: secs(60),
            ..sl(ShortAbandons::Ignore)
        };
        let q = QueueStats::default();
        q.record(0, Outcome::TimedOut, &spec);
        q.record(30 * S, Outcome::Answered { waited: secs(2) }, &spec);
        assert_eq!(q.service_level(59 * S, &spec).percent, Some(50.0));
        assert_eq!(q.service_level(61 * S, &spec).percent, Some(100.0));
        let empty = q.service_level(200 * S, &spec);
        assert_eq!((empty.percent, empty.met()), (None, None));
    }

    #[test]
    fn handle_time_is_a_sliding_average_with_a_default() {
        let q = QueueStats::default();
        assert_eq!(q.handle_time(secs(180)), secs(180));
        q.record_handle_time(secs(100), 2);
        q.record_handle_time(secs(200), 2);
        assert_eq!(q.handle_time(secs(180)), secs(150));
        q.record_handle_time(secs(400), 2);
        assert_eq!(q.handle_time(secs(180)), secs(300));
    }

    #[test]
    fn expected_wait_and_minutes() {
        assert_eq!(expected_wait(3, secs(120), 2), secs(180));
        assert_eq!(
            expected_wait(1, secs(120), 0),
            secs(120),
            "no agents counts as one"
        );
        assert_eq!(announced_minutes(secs(10)), 1);
        assert_eq!(announced_minutes(secs(89)), 1);
        assert_eq!(announced_minutes(secs(90)), 2);
    }
}

//! Per-source message rates, in the spirit of Kamailio's `pike` module.
//!
//! Each source address has a token bucket: it holds up to `burst` tokens,
//! gains `per_sec` tokens per second, and each message takes one. A message
//! that finds the bucket empty is refused; the daemon drops it before
//! parsing, so a flood from one address costs a map look-up per datagram
//! and nothing else. Trusted sources (the trunks' `sources`) get a budget
//! of their own, because a carrier brings every caller through one or two
//! addresses.
//!
//! The table of sources is bounded: spoofed UDP sources must not grow it
//! without limit. Buckets that have refilled (their source went quiet) are
//! swept out at most every [`SWEEP_EVERY`]; when the table is still full,
//! new sources share one overflow bucket with the burst of a single source,
//! so a spoofing flood is throttled as if it came from one address while
//! every source already known keeps its own budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often full buckets are swept out of the table at most.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A budget: `per_sec` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub per_sec: u32,
    pub burst: u32,
}

/// A source's bucket. Tokens are kept in millitokens so that rates below
/// one per millisecond still refill exactly.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: u64,
    at: Instant,
    budget: Budget,
}

impl Bucket {
    fn full(budget: Budget, now: Instant) -> Bucket {
        Bucket {
            milli: u64::from(budget.burst) * 1000,
            at: now,
            budget,
        }
    }

    /// Refills for the time since the last look, then takes a token.
    fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        // per_sec tokens per second = per_sec millitokens per millisecond.
        let gained = elapsed.as_micros() as u64 * u64::from(self.budget.per_sec) / 1000;
        let cap = u64::from(self.budget.burst) * 1000;
        if gained > 0 {
            self.milli = (self.milli + gained).min(cap);
            self.at = now;
        }
    }

    fn is_full(&self, now: Instant) -> bool {
        let mut b = *self;
        b.refill(now);
        b.milli >= u64::from(b.budget.burst) * 1000
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Over the source's budget: drop the message.
    Limited,
}

/// Token buckets per source address. See the module docs.
#[derive(Debug)]
pub struct SourceRates {
    untrusted: Budget,
    trusted: Budget,
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by new sources while the table is full.
    overflow: Bucket,
    capacity: usize,
    next_sweep: Instant,
}

impl SourceRates {
    /// A table of at most `capacity` sources.
    pub fn new(untrusted: Budget, trusted: Budget, capacity: usize, now: Instant) -> SourceRates {
        SourceRates {
            untrusted,
            trusted,
            buckets: HashMap::new(),
            overflow: Bucket::full(untrusted, now),
            capacity,
            next_sweep: now + SWEEP_EVERY,
        }
    }

    /// Takes one message from `source` at `now`; `trusted` says (asked
    /// only for a source not yet in the table) whether it gets the trusted
    /// budget.
    pub fn check(
        &mut self,
        source: IpAddr,
        trusted: impl FnOnce() -> bool,
        now: Instant,
    ) -> Verdict {
        let verdict = |ok: bool| if ok { Verdict::Pass } else { Verdict::Limited };
        if let Some(b) = self.buckets.get_mut(&source) {
            return verdict(b.take(now));
        }
        if self.buckets.len() >= self.capacity && now >= self.next_sweep {
            self.sweep(now);
        }
        if self.buckets.len() >= self.capacity {
            return verdict(self.overflow.take(now));
        }
        let budget = if trusted() {
            self.trusted
        } else {
            self.untrusted
        };
        let mut b = Bucket::full(budget, now);
        let ok = b.take(now);
        self.buckets.insert(source, b);
        verdict(ok)
    }

    /// Forgets the sources whose buckets have refilled: they have been
    /// quiet long enough that a fresh full bucket is the same thing.
    pub fn sweep(&mut self, now: Instant) {
        self.buckets.retain(|_, b| !b.is_full(now));
        self.next_sweep = now + SWEEP_EVERY;
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: Budget = Budget {
        per_sec: 10,
        burst: 20,
    };
    const FAST: Budget = Budget {
        per_sec: 1000,
        burst: 2000,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn passed(r: &mut SourceRates, src: IpAddr, trusted: bool, n: usize, now: Instant) -> usize {
        (0..n)
            .filter(|_| r.check(src, || trusted, now) == Verdict::Pass)
            .count()
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut r = SourceRates::new(SLOW, FAST, 100, t0);
        assert_eq!(passed(&mut r, ip(2), false, 100, t0), 20, "the burst");
        // One second later: ten more, not twenty.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(passed(&mut r, ip(2), false, 100, t1), 10);
        // A steady source at its rate is never refused.
        let mut at = t1;
        for _ in 0..50 {
            at += Duration::from_millis(100);
            assert_eq!(r.check(ip(2), || false, at), Verdict::Pass);
        }
    }

    #[test]
    fn sources_are_limited_apart_and_trusted_ones_get_their_budget() {
        let t0 = Instant::now();
        let mut r = SourceRates::new(SLOW, FAST, 100, t0);
        assert_eq!(passed(&mut r, ip(2), false, 1000, t0), 20);
        // A flood from .2 does not touch .3's budget.
        assert_eq!(passed(&mut r, ip(3), false, 5, t0), 5);
        assert_eq!(passed(&mut r, ip(1), true, 5000, t0), 2000);
    }

    #[test]
    fn fractions_of_a_token_add_up() {
        let t0 = Instant::now();
        let b = Budget {
            per_sec: 3,
            burst: 3,
        };
        let mut r = SourceRates::new(b, b, 10, t0);
        assert_eq!(passed(&mut r, ip(2), false, 10, t0), 3);
        // 3/s: one token every 333.3 ms, reached by 1 ms steps.
        let mut got = 0;
        for ms in 1..=1000 {
            got += passed(&mut r, ip(2), false, 1, t0 + Duration::from_millis(ms));
        }
        assert_eq!(got, 3);
    }

    #[test]
    fn the_table_is_bounded_and_new_sources_share_the_overflow_bucket() {
        let t0 = Instant::now();
        let mut r = SourceRates::new(SLOW, FAST, 4, t0);
        for last in 10..14 {
            assert_eq!(r.check(ip(last), || false, t0), Verdict::Pass);
        }
        assert_eq!(r.len(), 4);
        // A spoofing flood from ever new addresses: one burst between them.
        let spoofed = (0..200u8)
            .filter(|&i| r.check(IpAddr::from([127, 1, 0, i]), || false, t0) == Verdict::Pass)
            .count();
        assert_eq!(spoofed, SLOW.burst as usize);
        assert_eq!(r.len(), 4, "the table did not grow");
        // Known sources keep their own budget.
        assert_eq!(r.check(ip(10), || false, t0), Verdict::Pass);
    }

    #[test]
    fn quiet_sources_are_swept_out() {
        let t0 = Instant::now();
        let mut r = SourceRates::new(SLOW, FAST, 2, t0);
        r.check(ip(2), || false, t0);
        r.check(ip(3), || false, t0);
        // Full again after 0.1 s (one token at 10/s); the sweep waits for
        // its interval, then makes room for a new source.
        let later = t0 + SWEEP_EVERY;
        assert_eq!(r.check(ip(4), || false, later), Verdict::Pass);
        assert_eq!(r.len(), 1);
        // A source still draining its burst is kept.
        let mut r = SourceRates::new(SLOW, FAST, 2, t0);
        passed(&mut r, ip(2), false, 20, t0);
        r.sweep(t0 + Duration::from_millis(500));
        assert_eq!(r.len(), 1);
    }
}

//! Brute-force limits for digest authentication: failures counted per
//! source address and per account, and a lockout that doubles with each
//! repeat (sans-IO: every call takes the time).
//!
//! - A **source** (an IPv4 address, or an IPv6 /64: one host's privacy
//!   addresses share it) that gets `per_source` wrong answers is locked
//!   for `lockout`; an **account** (the digest user name, known or not, so
//!   the lockout does not tell which exist) after `per_account`.
//! - While locked, its requests are refused with 403 and not verified (no
//!   hashing), so a locked guesser costs almost nothing. After the lockout
//!   the next wrong answer locks it again, for twice as long, up to
//!   `max_lockout`. A key with no failure for `forget_after` starts over.
//! - **A phone is not locked out by someone else's guessing**: a source an
//!   account authenticated from in the last [`TRUST_FOR`] passes the
//!   account's and the source's lockout for that account (a town hall
//!   behind one NAT address keeps working while one of its PCs guesses).
//!   That trust ends after `per_account` wrong answers from the pair.
//! - **Log lines are rate-limited** per source (one per `log_interval`,
//!   with the count suppressed meanwhile) and in total (`log_burst` per
//!   interval), so a flood cannot fill the journal; lockouts are always
//!   reported (they are rare by construction), within the total budget.
//! - Every map is bounded by `max_entries`: when one is full the entry
//!   made longest ago goes (a flood of new sources could push an old lock
//!   out; each new source still starts with its own count).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a successful authentication vouches for its source.
pub const TRUST_FOR: Duration = Duration::from_secs(24 * 3600);

/// The longest account name kept (longer ones are cut; they are only
/// keys and log text).
const MAX_ACCOUNT_LEN: usize = 64;

/// The limits (`sip.auth_limits` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Wrong answers from one source before it is locked; 0 turns the
    /// per-source limit off.
    pub per_source: u32,
    /// Wrong answers for one account before it is locked; 0: off.
    pub per_account: u32,
    /// The first lockout.
    pub lockout: Duration,
    /// The longest lockout (each repeat doubles it up to this).
    pub max_lockout: Duration,
    /// A source or account with no failure for this long starts over.
    pub forget_after: Duration,
    /// At most one failure line per source per interval.
    pub log_interval: Duration,
    /// At most this many lines per interval in all.
    pub log_burst: u32,
    /// Bound of each map (sources, accounts, trusted pairs, log slots).
    pub max_entries: usize,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self {
            per_source: 10,
            per_account: 5,
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            forget_after: Duration::from_secs(900),
            log_interval: Duration::from_secs(1),
            log_burst: 50,
            max_entries: 100_000,
        }
    }
}

/// What a lockout is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The source address.
    Source,
    /// The account (digest user name).
    Account,
}

impl Scope {
    /// `source` or `account`, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Source => "source",
            Scope::Account => "account",
        }
    }
}

/// A refusal: what is locked and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    pub scope: Scope,
    pub until: Instant,
}

/// What one wrong answer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failure {
    /// It started a lockout: what, and for how long.
    pub locked: Option<(Scope, Duration)>,
    /// Whether to write a log line now, and how many lines for this
    /// source were suppressed since the last one (`None`: suppress this one).
    pub log: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    /// Lockouts so far; the next lasts `lockout * 2^strikes`.
    strikes: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Trust {
    until: Instant,
    failures: u32,
}

#[derive(Clone, Copy, Debug)]
struct LogSlot {
    next_at: Instant,
    suppressed: u64,
}

/// A map that forgets its oldest entry when full.
#[derive(Debug)]
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    max: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    fn new(max: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    fn get_or_insert(&mut self, k: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&k) {
            while self.map.len() >= self.max {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(k.clone());
            // `order` may hold keys removed since; drop them once they pile up.
            if self.order.len() > 2 * self.max {
                let map = &self.map;
                self.order.retain(|k| map.contains_key(k));
            }
        }
        self.map.entry(k).or_insert_with(make)
    }

    fn remove(&mut self, k: &K) {
        self.map.remove(k);
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The source key: an IPv4 address, or the /64 of an IPv6 one.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

fn account_key(account: &str) -> String {
    let mut end = account.len().min(MAX_ACCOUNT_LEN);
    while !account.is_char_boundary(end) {
        end -= 1;
    }
    account[..end].to_string()
}

/// The failure counts and lockouts. See the module docs.
///
/// ```
/// use std::time::{Duration, Instant};
/// use zentrale::sip::lockout::{Lockout, LockoutSettings, Scope};
///
/// let t0 = Instant::now();
/// let mut l = Lockout::new(LockoutSettings { per_account: 3, ..Default::default() });
/// let src = "127.0.0.9".parse().unwrap();
/// for _ in 0..2 {
///     assert!(l.check(src, Some("1001"), t0).is_ok());
///     assert_eq!(l.failed(src, "1001", t0).locked, None);
/// }
/// // The third wrong answer locks the account for a minute.
/// assert_eq!(l.failed(src, "1001", t0).locked, Some((Scope::Account, Duration::from_secs(60))));
/// assert_eq!(l.check(src, Some("1001"), t0).unwrap_err().scope, Scope::Account);
/// assert!(l.check(src, Some("1001"), t0 + Duration::from_secs(61)).is_ok());
/// ```
#[derive(Debug)]
pub struct Lockout {
    settings: LockoutSettings,
    sources: Bounded<IpAddr, Record>,
    accounts: Bounded<String, Record>,
    trusted: Bounded<(String, IpAddr), Trust>,
    log_slots: Bounded<IpAddr, LogSlot>,
    /// The start of the current total-budget interval and the lines
    /// written in it (none before the first line).
    log_window: Option<(Instant, u32)>,
}

impl Lockout {
    /// Empty counts under `settings`.
    pub fn new(settings: LockoutSettings) -> Self {
        let max = settings.max_entries;
        Self {
            settings,
            sources: Bounded::new(max),
            accounts: Bounded::new(max),
            trusted: Bounded::new(max),
            log_slots: Bounded::new(max),
            log_window: None,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &LockoutSettings {
        &self.settings
    }

    /// Whether a request from `source` for `account` (its digest user
    /// name; `None` when it has no credentials) may be verified at `now`.
    pub fn check(&self, source: IpAddr, account: Option<&str>, now: Instant) -> Result<(), Locked> {
        let ip = source_key(source);
        let account = account.map(account_key);
        if let Some(a) = &account
            && self
                .trusted
                .get(&(a.clone(), ip))
                .is_some_and(|t| t.until > now)
        {
            return Ok(());
        }
        let locked = |r: Option<&Record>| r.and_then(|r| r.locked_until).filter(|&u| u > now);
        if let Some(until) = locked(self.sources.get(&ip)) {
            return Err(Locked {
                scope: Scope::Source,
                until,
            });
        }
        if let Some(a) = &account
            && let Some(until) = locked(self.accounts.get(a))
        {
            return Err(Locked {
                scope: Scope::Account,
                until,
            });
        }
        Ok(())
    }

    /// A wrong answer from `source` for `account` at `now`.
    pub fn failed(&mut self, source: IpAddr, account: &str, now: Instant) -> Failure {
        let ip = source_key(source);
        let account = account_key(account);
        let s = self.settings;
        let pair = (account.clone(), ip);
        if let Some(t) = self.trusted.map.get_mut(&pair) {
            t.failures += 1;
            if s.per_account > 0 && t.failures >= s.per_account {
                self.trusted.remove(&pair);
            }
        }
        let mut locked = None;
        if s.per_source > 0 {
            let r = self.sources.get_or_insert(ip, || fresh(now));
            if let Some(d) = strike(r, s.per_source, &s, now) {
                locked = Some((Scope::Source, d));
            }
        }
        if s.per_account > 0 {
            let r = self.accounts.get_or_insert(account, || fresh(now));
            if let Some(d) = strike(r, s.per_account, &s, now) {
                locked = locked.or(Some((Scope::Account, d)));
            }
        }
        let log = self.log_line(ip, locked.is_some(), now);
        Failure { locked, log }
    }

    /// A request from `source` for a locked key was refused: whether to
    /// log it (rate-limited like failures) and how many were suppressed.
    pub fn refused(&mut self, source: IpAddr, now: Instant) -> Option<u64> {
        self.log_line(source_key(source), false, now)
    }

    /// `account` authenticated from `source`: the pair is trusted for
    /// [`TRUST_FOR`], past lockouts of either.
    pub fn succeeded(&mut self, source: IpAddr, account: &str, now: Instant) {
        let pair = (account_key(account), source_key(source));
        let t = self.trusted.get_or_insert(pair, || Trust {
            until: now,
            failures: 0,
        });
        t.until = now + TRUST_FOR;
        t.failures = 0;
    }

    /// Entries kept: sources, accounts, trusted pairs.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.sources.len(), self.accounts.len(), self.trusted.len())
    }

    fn log_line(&mut self, ip: IpAddr, always: bool, now: Instant) -> Option<u64> {
        let s = self.settings;
        let window = match self.log_window {
            Some((start, n)) if now.saturating_duration_since(start) < s.log_interval => (start, n),
            _ => (now, 0),
        };
        let slot = self.log_slots.get_or_insert(ip, || LogSlot {
            next_at: now,
            suppressed: 0,
        });
        let due = always || slot.next_at <= now;
        if !due || window.1 >= s.log_burst {
            slot.suppressed += 1;
            self.log_window = Some(window);
            return None;
        }
        let suppressed = std::mem::take(&mut slot.suppressed);
        slot.next_at = now + s.log_interval;
        self.log_window = Some((window.0, window.1 + 1));
        Some(suppressed)
    }
}

fn fresh(now: Instant) -> Record {
    Record {
        failures: 0,
        strikes: 0,
        last_failure: now,
        locked_until: None,
    }
}

/// Counts a failure on `r`; returns the lockout it starts, if any.
fn strike(r: &mut Record, limit: u32, s: &LockoutSettings, now: Instant) -> Option<Duration> {
    if now.saturating_duration_since(r.last_failure) > s.forget_after
        && r.locked_until.is_none_or(|u| u <= now)
    {
        *r = fresh(now);
    }
    r.last_failure = now;
    if r.locked_until.is_some_and(|u| u > now) {
        // Verified anyway (a trusted pair): counts, no new lockout.
        return None;
    }
    r.failures += 1;
    if r.failures < limit {
        return None;
    }
    let d = s
        .lockout
        .checked_mul(1u32.checked_shl(r.strikes).unwrap_or(u32::MAX))
        .unwrap_or(s.max_lockout)
        .min(s.max_lockout);
    r.strikes = r.strikes.saturating_add(1);
    r.locked_until = Some(now + d);
    // The next wrong answer after the lockout locks again, for longer.
    r.failures = limit - 1;
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn settings() -> LockoutSettings {
        LockoutSettings {
            per_source: 4,
            per_account: 3,
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(35),
            forget_after: Duration::from_secs(100),
            log_interval: Duration::from_secs(1),
            log_burst: 3,
            max_entries: 8,
        }
    }

    #[test]
    fn account_lockout_doubles_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutSettings {
            per_source: 100,
            ..settings()
        });
        let a = ip("127.0.0.2");
        let b = ip("127.0.0.3");
        // Two sources, so the source limit (4) is not reached first.
        assert_eq!(l.failed(a, "1001", t0).locked, None);
        assert_eq!(l.failed(b, "1001", t0).locked, None);
        assert_eq!(
            l.failed(a, "1001", t0).locked,
            Some((Scope::Account, Duration::from_secs(10)))
        );
        let locked = l.check(b, Some("1001"), t0).unwrap_err();
        assert_eq!(locked.scope, Scope::Account);
        assert_eq!(locked.until, t0 + Duration::from_secs(10));
        // Another account from the same sources is not locked.
        assert!(l.check(b, Some("1002"), t0).is_ok());
        // Locked until then, free after; the next failure locks for 20 s.
        assert!(
            l.check(b, Some("1001"), t0 + Duration::from_secs(9))
                .is_err()
        );
        let t1 = t0 + Duration::from_secs(10);
        assert!(l.check(b, Some("1001"), t1).is_ok());
        assert_eq!(
            l.failed(b, "1001", t1).locked,
            Some((Scope::Account, Duration::from_secs(20)))
        );
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(
            l.failed(b, "1001", t2).locked,
            Some((Scope::Account, Duration::from_secs(35))),
            "40 s capped at the maximum"
        );
        let t3 = t2 + Duration::from_secs(35);
        assert_eq!(
            l.failed(b, "1001", t3).locked,
            Some((Scope::Account, Duration::from_secs(35)))
        );
    }

    #[test]
    fn source_lockout_covers_every_account() {
        let t0 = Instant::now();
        let mut l = Lockout::new(settings());
        let a = ip("127.0.0.2");
        for (i, user) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(l.failed(a, user, t0).locked, None, "{i}");
        }
        assert_eq!(
            l.failed(a, "d", t0).locked,
            Some((Scope::Source, Duration::from_secs(10)))
        );
        assert_eq!(l.check(a, Some("e"), t0).unwrap_err().scope, Scope::Source);
        assert_eq!(l.check(a, None, t0).unwrap_err().scope, Scope::Source);
        assert!(l.check(ip("127.0.0.4"), Some("e"), t0).is_ok());
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_period() {
        let t0 = Instant::now();
        let mut l = Lockout::new(settings());
        let a = ip("127.0.0.2");
        l.failed(a, "1001", t0);
        l.failed(a, "1001", t0);
        let later = t0 + Duration::from_secs(101);
        assert_eq!(
            l.failed(a, "1001", later).locked,
            None,
            "count started over"
        );
        assert_eq!(l.failed(a, "1001", later).locked, None);
        assert!(l.failed(a, "1001", later).locked.is_some());
    }

    #[test]
    fn a_trusted_phone_is_not_locked_out_by_a_guesser() {
        let t0 = Instant::now();
        let mut l = Lockout::new(settings());
        let phone = ip("127.0.0.10");
        let guesser = ip("127.0.0.66");
        l.succeeded(phone, "1001", t0);
        for _ in 0..3 {
            l.failed(guesser, "1001", t0);
        }
        assert_eq!(
            l.check(guesser, Some("1001"), t0).unwrap_err().scope,
            Scope::Account
        );
        assert!(l.check(phone, Some("1001"), t0).is_ok());
        // The phone itself failing as often ends the trust.
        for _ in 0..3 {
            l.failed(phone, "1001", t0);
        }
        assert!(l.check(phone, Some("1001"), t0).is_err());
    }

    #[test]
    fn ipv6_sources_are_keyed_by_their_64() {
        // Only the key is computed here; no address is ever contacted.
        let host = |last: u16| IpAddr::from(std::net::Ipv6Addr::new(0, 0, 0, 1, 0, 0, 0, last));
        assert_eq!(source_key(host(1)), source_key(host(99)));
        let other = IpAddr::from(std::net::Ipv6Addr::new(0, 0, 0, 2, 0, 0, 0, 1));
        assert_ne!(source_key(host(1)), source_key(other));
        // A v4-mapped address counts as its IPv4 address.
        assert_eq!(source_key(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
    }

    #[test]
    fn log_lines_are_rate_limited_per_source_and_in_total() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutSettings {
            per_source: 0,
            per_account: 0,
            ..settings()
        });
        let a = ip("127.0.0.2");
        assert_eq!(l.failed(a, "x", t0).log, Some(0));
        assert_eq!(l.failed(a, "x", t0).log, None);
        assert_eq!(l.failed(a, "x", t0).log, None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.failed(a, "x", t1).log, Some(2), "two suppressed");
        // The total budget: 3 lines per interval, whatever the source.
        let t2 = t1 + Duration::from_secs(1);
        let logged = (0..6)
            .filter(|i| l.failed(ip(&format!("127.0.1.{i}")), "x", t2).log.is_some())
            .count();
        assert_eq!(logged, 3);
    }

    #[test]
    fn maps_stay_bounded() {
        let t0 = Instant::now();
        let mut l = Lockout::new(settings());
        for i in 0..100u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 + i));
            l.failed(src, &format!("user{i}"), t0);
            l.succeeded(src, &format!("user{i}"), t0);
        }
        let (s, a, t) = l.sizes();
        assert!(s <= 8 && a <= 8 && t <= 8, "{s} {a} {t}");
        // A very long account name is cut, not kept whole.
        l.failed(ip("127.0.0.1"), &"x".repeat(10_000), t0);
        assert!(l.accounts.map.keys().all(|k| k.len() <= MAX_ACCOUNT_LEN));
    }
}

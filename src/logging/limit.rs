//! Rate-limited log lines: a warning that can repeat at the rate of the
//! traffic that causes it (a failing `accept`, a peer that cannot be
//! reached, a flood of refused requests) is written at most `burst` times
//! per interval; the lines left out are counted and the count rides on the
//! next line that is written, as the field `suppressed`.
//!
//! Without this a flood of bad requests is also a flood of log lines: 5 s
//! of unauthenticated POSTs once wrote 212,000 lines. With it, each call
//! site (or each key of a call site, such as a source address) costs at
//! most `burst` lines per interval, whatever the rate.
//!
//! Use the [`limited!`](crate::limited) macro at a call site; it keeps one
//! [`LogLimit`] per call site and writes the `suppressed` field only when
//! lines were left out:
//!
//! ```
//! # let e = std::io::Error::other("too many open files");
//! // At most one line per 10 s from this call site:
//! zentrale::limited!(warn, every = 10, error = %e, "TCP accept failed");
//! // At most 5 lines per 10 s:
//! zentrale::limited!(warn, every = 10, burst = 5, error = %e, "TCP accept failed");
//! ```
//!
//! A line that depends on a key (one line per source address and interval,
//! not one for all sources) uses a [`KeyedLogLimit`] in a `static` or a
//! struct; [`Admit::suppressed`] is what to log:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//! use zentrale::logging::limit::KeyedLogLimit;
//!
//! static BY_SOURCE: KeyedLogLimit<SocketAddr> = KeyedLogLimit::new(Duration::from_secs(10), 1);
//! let peer: SocketAddr = "127.0.0.1:5062".parse().unwrap();
//! if let Some(admit) = BY_SOURCE.admit(peer, Instant::now()) {
//!     tracing::warn!(%peer, suppressed = admit.suppressed, "request refused");
//! }
//! ```
//!
//! The limiters are sans-IO: they take the time as an argument (the macro
//! passes `Instant::now()`), so their tests run on a virtual clock. A
//! count left over when a call site falls silent is written with its next
//! line, however much later that is.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The answer of a limiter that lets a line through: how many lines of the
/// same call site (or key) were left out since the last one written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admit {
    /// Lines left out before this one; 0 when none were.
    pub suppressed: u64,
}

/// The bookkeeping of one call site or key: a fixed window of `interval`
/// that opens at its first line.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl Window {
    const NEW: Window = Window {
        opened: None,
        written: 0,
        suppressed: 0,
    };

    fn admit(&mut self, now: Instant, interval: Duration, burst: u32) -> Option<Admit> {
        let expired = match self.opened {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= interval,
        };
        if expired {
            self.opened = Some(now);
            self.written = 0;
        }
        if self.written < burst.max(1) {
            self.written += 1;
            let suppressed = std::mem::take(&mut self.suppressed);
            Some(Admit { suppressed })
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// Whether the window has run out with nothing left to report, so
    /// forgetting it loses nothing.
    fn idle(&self, now: Instant, interval: Duration) -> bool {
        self.suppressed == 0
            && self
                .opened
                .is_none_or(|t| now.saturating_duration_since(t) >= interval)
    }
}

/// A limiter for one call site: at most `burst` lines per `interval`.
/// `const`, so it can live in a `static` next to the line it guards (the
/// [`limited!`](crate::limited) macro does that).
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    burst: u32,
    window: Mutex<Window>,
}

impl LogLimit {
    /// At most `burst` lines (at least 1) per `interval`.
    pub const fn new(interval: Duration, burst: u32) -> LogLimit {
        LogLimit {
            interval,
            burst,
            window: Mutex::new(Window::NEW),
        }
    }

    /// `Some` when a line may be written at `now`, with the count of lines
    /// left out since the last one; `None`: leave this one out (counted).
    pub fn admit(&self, now: Instant) -> Option<Admit> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.admit(now, self.interval, self.burst)
    }
}

/// How many keys a [`KeyedLogLimit`] tracks; past this, keys share one
/// window, so a flood from many sources still costs `burst` lines per
/// interval and bounded memory.
pub const MAX_KEYS: usize = 1024;

/// A limiter per key (a source address, an account): each key gets its own
/// `burst` lines per `interval`. At most [`MAX_KEYS`] keys are tracked; the
/// keys beyond share one window.
#[derive(Debug)]
pub struct KeyedLogLimit<K> {
    interval: Duration,
    burst: u32,
    state: Mutex<Keyed<K>>,
}

#[derive(Debug)]
struct Keyed<K> {
    windows: Option<HashMap<K, Window>>,
    overflow: Window,
}

impl<K: Hash + Eq> KeyedLogLimit<K> {
    /// At most `burst` lines (at least 1) per `interval` and key.
    pub const fn new(interval: Duration, burst: u32) -> KeyedLogLimit<K> {
        KeyedLogLimit {
            interval,
            burst,
            state: Mutex::new(Keyed {
                windows: None,
                overflow: Window::NEW,
            }),
        }
    }

    /// As [`LogLimit::admit`], for the line of `key`.
    pub fn admit(&self, key: K, now: Instant) -> Option<Admit> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        let windows = state.windows.get_or_insert_with(HashMap::new);
        if !windows.contains_key(&key) && windows.len() >= MAX_KEYS {
            let interval = self.interval;
            windows.retain(|_, w| !w.idle(now, interval));
            if windows.len() >= MAX_KEYS {
                return state.overflow.admit(now, self.interval, self.burst);
            }
        }
        windows
            .entry(key)
            .or_insert(Window::NEW)
            .admit(now, self.interval, self.burst)
    }
}

/// Writes a tracing event at most `burst` times per `every` seconds from
/// this call site, with `suppressed = N` when lines were left out:
/// `limited!(LEVEL, every = SECS, [burst = N,] fields and message as for
/// tracing::LEVEL!)`. See the [module](crate::logging::limit) for examples.
#[macro_export]
macro_rules! limited {
    ($level:ident, every = $secs:expr, burst = $burst:expr, $($rest:tt)+) => {{
        static LIMIT: $crate::logging::limit::LogLimit = $crate::logging::limit::LogLimit::new(
            ::std::time::Duration::from_secs($secs),
            $burst,
        );
        if let Some(admit) = LIMIT.admit(::std::time::Instant::now()) {
            if admit.suppressed == 0 {
                ::tracing::$level!($($rest)+);
            } else {
                ::tracing::$level!(suppressed = admit.suppressed, $($rest)+);
            }
        }
    }};
    ($level:ident, every = $secs:expr, $($rest:tt)+) => {
        $crate::limited!($level, every = $secs, burst = 1, $($rest)+)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn one_line_per_interval_then_the_count() {
        let l = LogLimit::new(10 * SEC, 1);
        let t0 = Instant::now();
        assert_eq!(l.admit(t0), Some(Admit { suppressed: 0 }));
        for i in 1..=99 {
            assert_eq!(l.admit(t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(l.admit(t0 + 9 * SEC), None);
        // The window has run out: the next line carries the 100 left out.
        assert_eq!(l.admit(t0 + 10 * SEC), Some(Admit { suppressed: 100 }));
        assert_eq!(l.admit(t0 + 11 * SEC), None);
        // A quiet spell: the count waits for the next line, however late.
        assert_eq!(l.admit(t0 + 3600 * SEC), Some(Admit { suppressed: 1 }));
        assert_eq!(l.admit(t0 + 7200 * SEC), Some(Admit { suppressed: 0 }));
    }

    #[test]
    fn a_burst_passes_whole() {
        let l = LogLimit::new(10 * SEC, 3);
        let t0 = Instant::now();
        let passed: Vec<_> = (0..10).map(|i| l.admit(t0 + i * SEC / 10)).collect();
        assert_eq!(passed.iter().filter(|a| a.is_some()).count(), 3);
        assert!(passed[..3].iter().all(Option::is_some));
        assert_eq!(l.admit(t0 + 10 * SEC), Some(Admit { suppressed: 7 }));
        assert_eq!(l.admit(t0 + 10 * SEC), Some(Admit { suppressed: 0 }));
    }

    #[test]
    fn a_burst_of_zero_still_writes_one() {
        let l = LogLimit::new(SEC, 0);
        let t0 = Instant::now();
        assert!(l.admit(t0).is_some());
        assert!(l.admit(t0).is_none());
    }

    #[test]
    fn keys_are_limited_apart() {
        let l: KeyedLogLimit<u32> = KeyedLogLimit::new(10 * SEC, 1);
        let t0 = Instant::now();
        assert!(l.admit(1, t0).is_some());
        assert!(l.admit(2, t0).is_some());
        assert!(l.admit(1, t0 + SEC).is_none());
        assert!(l.admit(1, t0 + SEC).is_none());
        assert!(l.admit(2, t0 + SEC).is_none());
        assert_eq!(l.admit(1, t0 + 10 * SEC), Some(Admit { suppressed: 2 }));
        assert_eq!(l.admit(2, t0 + 10 * SEC), Some(Admit { suppressed: 1 }));
    }

    #[test]
    fn many_keys_share_one_window_and_bounded_memory() {
        let l: KeyedLogLimit<u32> = KeyedLogLimit::new(10 * SEC, 1);
        let t0 = Instant::now();
        for k in 0..MAX_KEYS as u32 {
            assert!(l.admit(k, t0).is_some());
        }
        // Every tracked key is inside its window: newcomers share one.
        let extra: Vec<_> = (0..500u32)
            .map(|k| l.admit(MAX_KEYS as u32 + k, t0 + SEC))
            .collect();
        assert_eq!(extra.iter().filter(|a| a.is_some()).count(), 1);
        assert!(l.state.lock().unwrap().windows.as_ref().unwrap().len() <= MAX_KEYS);
        // Once the old windows have run out, a new key gets its own again.
        assert!(l.admit(9_999_999, t0 + 20 * SEC).is_some());
        assert!(l.admit(9_999_999, t0 + 21 * SEC).is_none());
    }

    /// A sink for the test subscriber: every line it gets.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_macro_limits_its_call_site_and_reports_the_count() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                crate::limited!(warn, every = 3600, burst = 2, attempt = i, "accept failed");
            }
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let written: Vec<&str> = text.lines().collect();
        assert_eq!(written.len(), 2, "{text}");
        assert!(written[0].contains("attempt=0") && written[1].contains("attempt=1"));
        assert!(!text.contains("suppressed"), "{text}");
    }
}

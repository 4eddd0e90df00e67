//! The log shared between the publishers (the core thread, the ACD
//! sampler) and the event streams.
//!
//! Publishing takes the log's lock for the time of a push and wakes the
//! streams with [`tokio::sync::Notify`]; it never waits for a client.
//! Each stream keeps only a [`Cursor`], the id of the last event it sent:
//! a client costs no memory of its own, and one that reads too slowly
//! finds its cursor behind the buffer and is dropped
//! (`zentrale_event_streams_dropped_total`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

use super::{Event, EventId, Log, Resume, Snapshot};
use crate::acd::AcdSnapshot;
use crate::cdr::CallFacts;
use crate::dialplan::Origin;

/// Events kept for clients that reconnect.
pub const DEFAULT_CAPACITY: usize = 4096;

/// The shared log, the count of open streams and their metrics.
#[derive(Debug)]
pub struct Hub {
    log: Mutex<Log>,
    notify: Notify,
    streams: AtomicUsize,
    max_streams: AtomicUsize,
    /// A quiet stream's comment interval, in milliseconds.
    keep_alive_ms: AtomicU64,
    /// `zentrale_event_streams`: open event streams.
    pub open: Gauge,
    /// `zentrale_event_streams_refused_total`: refused at the cap.
    pub refused: Counter,
    /// `zentrale_event_streams_dropped_total`: dropped for reading too slowly.
    pub dropped: Counter,
    /// `zentrale_events_published_total`.
    pub published: Counter,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new(DEFAULT_CAPACITY, 32)
    }
}

impl Hub {
    /// A hub keeping `capacity` events, admitting `max_streams` streams.
    pub fn new(capacity: usize, max_streams: usize) -> Hub {
        Hub {
            log: Mutex::new(Log::new(capacity)),
            notify: Notify::new(),
            streams: AtomicUsize::new(0),
            max_streams: AtomicUsize::new(max_streams),
            keep_alive_ms: AtomicU64::new(15_000),
            open: Gauge::default(),
            refused: Counter::default(),
            dropped: Counter::default(),
            published: Counter::default(),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock leaves a consistent log: every
        // method finishes its push before anything can panic.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the log and wakes the streams if it published.
    fn publish_with(&self, f: impl FnOnce(&mut Log)) {
        let published = {
            let mut log = self.log();
            let before = log.last_id();
            f(&mut log);
            log.last_id() - before
        };
        if published > 0 {
            self.published.inc_by(published);
            self.notify.notify_waiters();
        }
    }

    /// See [`Log::observe_acd`].
    pub fn observe_acd(&self, snap: &AcdSnapshot, now: Instant) {
        self.publish_with(|log| {
            log.observe_acd(snap, now);
        });
    }

    /// See [`Log::call_changed`].
    pub fn call_changed(&self, key: u64, facts: &CallFacts, origin: &Origin, now: Instant) {
        self.publish_with(|log| log.call_changed(key, facts, origin, now));
    }

    /// See [`Log::call_ended`].
    pub fn call_ended(&self, key: u64, facts: &CallFacts, origin: &Origin, now: Instant) {
        self.publish_with(|log| log.call_ended(key, facts, origin, now));
    }

    /// See [`Log::set_names`].
    pub fn set_names(&self, names: HashMap<Arc<str>, Arc<str>>) {
        self.log().set_names(names);
    }

    /// The most streams open at once; past it [`Hub::open_stream`] refuses.
    pub fn set_max_streams(&self, max: usize) {
        self.max_streams.store(max, Ordering::Relaxed);
    }

    /// How often a quiet stream gets a comment line (at least 100 ms).
    pub fn set_keep_alive(&self, every: Duration) {
        let ms = u64::try_from(every.as_millis())
            .unwrap_or(u64::MAX)
            .max(100);
        self.keep_alive_ms.store(ms, Ordering::Relaxed);
    }

    /// See [`Hub::set_keep_alive`].
    pub fn keep_alive(&self) -> Duration {
        Duration::from_millis(self.keep_alive_ms.load(Ordering::Relaxed))
    }

    /// The picture as of the last event.
    pub fn snapshot(&self) -> Snapshot {
        self.log().snapshot()
    }

    /// See [`Log::since`].
    pub fn since(&self, after: Option<EventId>) -> Resume {
        self.log().since(after)
    }

    /// A place for one more stream, or `None` at the cap (counted).
    pub fn open_stream(self: &Arc<Self>) -> Option<StreamPermit> {
        let max = self.max_streams.load(Ordering::Relaxed);
        let taken = self
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                self.open.inc();
                Some(StreamPermit { hub: self.clone() })
            }
            Err(_) => {
                self.refused.inc();
                None
            }
        }
    }
}

/// One open stream's place; dropping it gives the place back.
#[derive(Debug)]
pub struct StreamPermit {
    hub: Arc<Hub>,
}

impl StreamPermit {
    /// A cursor after event `after`.
    pub fn cursor(self, after: EventId) -> Cursor {
        Cursor {
            permit: self,
            after,
        }
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.hub.streams.fetch_sub(1, Ordering::AcqRel);
        self.hub.open.dec();
    }
}

/// Where one stream is in the log.
#[derive(Debug)]
pub struct Cursor {
    permit: StreamPermit,
    after: EventId,
}

/// What a stream sends next.
#[derive(Debug)]
pub enum Next {
    /// Events after the cursor, in order.
    Events(Vec<Event>),
    /// Nothing happened for the keep-alive interval.
    Idle,
    /// The stream fell behind the buffer: it is dropped (counted).
    Behind,
}

impl Cursor {
    /// The id of the last event this stream sent.
    pub fn after(&self) -> EventId {
        self.after
    }

    /// Waits up to `keep_alive` for events after the cursor.
    pub async fn next(&mut self, keep_alive: Duration) -> Next {
        let hub = self.permit.hub.clone();
        let deadline = tokio::time::Instant::now() + keep_alive;
        loop {
            let notified = hub.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so an event published in between
            // still wakes this stream.
            notified.as_mut().enable();
            match hub.since(Some(self.after)) {
                Resume::Events(events) if !events.is_empty() => {
                    self.after = events.last().map_or(self.after, |e| e.id);
                    return Next::Events(events);
                }
                Resume::Events(_) => {}
                Resume::Snapshot => {
                    hub.dropped.inc();
                    return Next::Behind;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Next::Idle;
            }
        }
    }
}

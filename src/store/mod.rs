//! The persistent store: tickets with their history, call records (one
//! row per call and one per leg), and the tables later steps fill
//! (pending callbacks, dispositions, agent states, registrations, daily
//! counters).
//!
//! All SQL lives below this module, behind [`Backend`]: a handful of typed
//! operations ([`Write`], [`Backend::load_tickets`]) that a PostgreSQL
//! backend can implement later. The SQL is kept portable (`INSERT ... ON
//! CONFLICT`, `BIGINT`, `BOOLEAN`, composite keys instead of
//! auto-increment); what is SQLite's own stays in [`sqlite`] (the pragmas,
//! the error codes).
//!
//! Writes go through one writer thread ([`Store`]) fed by a bounded
//! channel. It commits in batches: when a batch is full, at most
//! [`Options::window`] (1 s) after its first write, or at once when a write
//! waits for its commit (a new ticket: the API answers only when it is on
//! disk). A failed commit (a locked database, a full disk) is logged,
//! counted (`zentrale_store_errors_total{kind}`) and retried with the
//! same batch, so nothing is dropped; meanwhile the channel fills, and a
//! full channel refuses new writes at once ([`Full`]) — the API answers
//! 503 for a ticket rather than lose it.
//!
//! SQLite runs in WAL mode and every batch is one transaction, so
//! `kill -9` loses at most the batch not yet committed and never leaves a
//! half-written file.

pub mod sqlite;
#[cfg(test)]
mod tests;

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::oneshot;

use crate::cdr::CallRecord;
use crate::tickets::{HistoryEntry, State, Ticket};

/// One change to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new ticket with its first history entry.
    NewTicket(Box<Ticket>),
    /// A ticket's state changed: the new state and the history line.
    TicketChanged {
        id: u64,
        state: State,
        entry: Box<HistoryEntry>,
    },
    /// A call ended: one row for the call, one per leg.
    Call(Box<CallRecord>),
}

impl Write {
    fn what(&self) -> String {
        match self {
            Write::NewTicket(t) => format!("new ticket {}", t.id),
            Write::TicketChanged { id, state, .. } => format!("ticket {id} becoming {state}"),
            Write::Call(r) => format!("call record {}", r.call_id),
        }
    }
}

/// Why the store failed, by what can be done about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Another process holds the database's write lock: wait and retry.
    Locked,
    /// The disk (or quota) is full: free space; the batch is retried.
    Full,
    /// A read or write of the file failed.
    Io,
    /// The database refused the data (a constraint): retrying cannot help.
    Rejected,
    /// The write channel was full: the write was refused, not queued.
    QueueFull,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Locked,
        ErrorKind::Full,
        ErrorKind::Io,
        ErrorKind::Rejected,
        ErrorKind::QueueFull,
        ErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Locked => "locked",
            ErrorKind::Full => "disk_full",
            ErrorKind::Io => "io",
            ErrorKind::Rejected => "rejected",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Other => "other",
        }
    }

    /// Whether the same batch may succeed later.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Locked | ErrorKind::Full | ErrorKind::Io)
    }

    fn index(self) -> usize {
        ErrorKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// A failed store operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.as_str())
    }
}

impl std::error::Error for StoreError {}

/// What a store backend does: apply a batch of writes as one transaction,
/// and read the tickets back at start.
pub trait Backend: Send + 'static {
    /// Applies every write of `batch` or none of them.
    fn apply(&mut self, batch: &[Write]) -> Result<(), StoreError>;
    /// Every ticket with its history, by id.
    fn load_tickets(&mut self) -> Result<Vec<Ticket>, StoreError>;
}

/// How the writer batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Writes the channel holds before it refuses more.
    pub capacity: usize,
    /// A batch is committed when it has this many writes...
    pub batch: usize,
    /// ...or this long after its first write.
    pub window: Duration,
    /// The first wait before retrying a failed commit; it doubles up to
    /// [`Options::max_backoff`].
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            capacity: 4096,
            batch: 256,
            window: Duration::from_secs(1),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The write channel was full: the write was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the store's write queue is full (the database is slow or failing); try again shortly",
        )
    }
}

enum Msg {
    Write(Write, Option<oneshot::Sender<()>>),
    Flush(oneshot::Sender<()>),
    Stop,
}

/// What the writer has done so far; read by tests and the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Transactions committed.
    pub batches: u64,
    /// Writes committed.
    pub writes: u64,
    /// Failures by [`ErrorKind::index`].
    pub errors: [u64; 6],
}

impl Counts {
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }
}

/// The writer's counts, with a way to wait for them to change.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<Counts>,
    changed: Condvar,
}

impl Stats {
    pub fn snapshot(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `done` holds for the counts (or `limit` passes); the
    /// counts then.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&Counts) -> bool) -> Counts {
        let until = Instant::now() + limit;
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        while !done(&c) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            c = self
                .changed
                .wait_timeout(c, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        c.clone()
    }

    fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_all();
    }

    fn error(&self, kind: ErrorKind) {
        self.update(|c| c.errors[kind.index()] += 1);
    }
}

/// The handle to the writer thread. Cheap to share behind an `Arc`.
pub struct Store {
    tx: SyncSender<Msg>,
    stats: Arc<Stats>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Store {
    /// Starts the writer thread on `backend`.
    pub fn start(backend: impl Backend, options: Options) -> std::io::Result<Store> {
        let (tx, rx) = mpsc::sync_channel(options.capacity.max(1));
        let stats = Arc::new(Stats::default());
        let writer = Writer {
            backend,
            options,
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("zentrale-store".into())
            .spawn(move || writer.run(rx))?;
        Ok(Store {
            tx,
            stats,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `write` for the next batch; never blocks. `Err(Full)` when
    /// the channel is full (counted as `queue_full`).
    pub fn submit(&self, write: Write) -> Result<(), Full> {
        self.send(Msg::Write(write, None))
    }

    /// Queues `write` and commits its batch without waiting for the
    /// window; the receiver answers once it is committed (it is dropped,
    /// unanswered, only if the store stops first).
    pub fn submit_durable(&self, write: Write) -> Result<oneshot::Receiver<()>, Full> {
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Write(write, Some(tx)))?;
        Ok(rx)
    }

    fn send(&self, msg: Msg) -> Result<(), Full> {
        match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.error(ErrorKind::QueueFull);
                Err(Full)
            }
        }
    }

    /// Commits everything queued so far; answers once it is on disk.
    /// Blocks while the channel is full.
    pub fn flush(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Flush(tx));
        rx
    }

    /// Commits what is queued and ends the writer thread; waits for it.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The store's metrics, for the registry.
    pub fn collector(&self) -> StoreCollector {
        StoreCollector(self.stats.clone())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How many failed attempts a batch gets at shutdown before the writer
/// gives up on it (logging every write it could not store): a database
/// that stays locked must not keep the daemon from exiting.
const ATTEMPTS_AT_STOP: u32 = 5;

struct Writer<B> {
    backend: B,
    options: Options,
    stats: Arc<Stats>,
}

struct Batch {
    writes: Vec<Write>,
    acks: Vec<oneshot::Sender<()>>,
    since: Option<Instant>,
    urgent: bool,
}

impl<B: Backend> Writer<B> {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut batch = Batch {
            writes: Vec::new(),
            acks: Vec::new(),
            since: None,
            urgent: false,
        };
        let mut stopping = false;
        while !stopping {
            let msg = match batch.since {
                None if !batch.urgent => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                _ => {
                    let due = batch
                        .since
                        .map_or(Instant::now(), |s| s + self.options.window);
                    if batch.urgent {
                        rx.try_recv().map_err(|e| match e {
                            mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                            mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                        })
                    } else {
                        rx.recv_timeout(due.saturating_duration_since(Instant::now()))
                    }
                }
            };
            match msg {
                Ok(Msg::Write(w, ack)) => {
                    batch.since.get_or_insert_with(Instant::now);
                    batch.writes.push(w);
                    if let Some(ack) = ack {
                        batch.acks.push(ack);
                        batch.urgent = true;
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    batch.acks.push(ack);
                    batch.urgent = true;
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
                Err(RecvTimeoutError::Timeout) => {
                    // The window is over, or an urgent batch has taken
                    // everything that was already waiting.
                    self.commit(&mut batch, false);
                    continue;
                }
            }
            let full = batch.writes.len() >= self.options.batch;
            let late = batch
                .since
                .is_some_and(|s| s.elapsed() >= self.options.window);
            if full || late || stopping {
                self.commit(&mut batch, stopping);
            }
        }
    }

    /// Commits `batch`, retrying failures that may pass; answers its acks.
    fn commit(&mut self, batch: &mut Batch, stopping: bool) {
        let mut backoff = self.options.backoff;
        let mut attempts = 0;
        while !batch.writes.is_empty() {
            attempts += 1;
            match self.backend.apply(&batch.writes) {
                Ok(()) => {
                    let n = batch.writes.len() as u64;
                    self.stats.update(|c| {
                        c.batches += 1;
                        c.writes += n;
                    });
                    batch.writes.clear();
                }
                Err(e) if e.kind.is_transient() => {
                    self.stats.error(e.kind);
                    if stopping && attempts >= ATTEMPTS_AT_STOP {
                        for w in &batch.writes {
                            tracing::error!(error = %e, "the store could not write the {} before exit; it is lost", w.what());
                        }
                        batch.writes.clear();
                        break;
                    }
                    tracing::warn!(
                        error = %e,
                        writes = batch.writes.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "the store could not commit a batch; retrying it (nothing is dropped; new tickets are refused with 503 while the queue is full)"
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
                Err(e) => {
                    // Retrying the batch cannot help: find the writes the
                    // database refuses, log them, and keep the others.
                    tracing::warn!(error = %e, "the store could not commit a batch; storing its writes one by one");
                    let writes = std::mem::take(&mut batch.writes);
                    let mut kept = Vec::with_capacity(writes.len());
                    for w in writes {
                        match self.backend.apply(std::slice::from_ref(&w)) {
                            Ok(()) => kept.push(()),
                            Err(one) if one.kind.is_transient() => {
                                batch.writes.push(w);
                            }
                            Err(one) => {
                                self.stats.error(ErrorKind::Rejected);
                                tracing::error!(error = %one, "the store refused the {}; it is not stored", w.what());
                            }
                        }
                    }
                    let n = kept.len() as u64;
                    self.stats.update(|c| {
                        c.batches += n;
                        c.writes += n;
                    });
                }
            }
        }
        for ack in batch.acks.drain(..) {
            let _ = ack.send(());
        }
        batch.since = None;
        batch.urgent = false;
    }
}

/// `zentrale_store_errors_total{kind}`, `zentrale_store_batches_total`
/// and `zentrale_store_writes_total`, read at scrape time.
#[derive(Debug)]
pub struct StoreCollector(Arc<Stats>);

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.snapshot();
        let errors: Family<KindLabel, Counter> = Family::default();
        for kind in ErrorKind::ALL {
            errors
                .get_or_create(&KindLabel {
                    kind: kind.as_str(),
                })
                .inc_by(c.errors(kind));
        }
        let m = encoder.encode_descriptor(
            "store_errors",
            "Store failures by kind: locked, disk_full, io (retried), rejected (not stored), queue_full (a write refused), other",
            None,
            errors.metric_type(),
        )?;
        errors.encode(m)?;
        for (name, help, value) in [
            (
                "store_batches",
                "Transactions the store committed",
                c.batches,
            ),
            (
                "store_writes",
                "Writes (tickets, changes, call records) the store committed",
                c.writes,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(m)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

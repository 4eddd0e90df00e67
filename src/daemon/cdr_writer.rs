//! Appends call records to their file on a thread of its own.
//!
//! The core hands each record over a bounded channel and never waits: if
//! the writer has fallen [`QUEUE`] records behind (a stuck disk, an NFS
//! mount gone away), the record is dropped, counted
//! (`zentrale_cdr_records_total{result="dropped"}`) and logged, and calls
//! go on. The thread serialises the records, appends what is waiting (up
//! to [`BATCH`]) with one `write` and counts `written` or, on an I/O error,
//! `failed`. The file is opened with `O_APPEND`, so lines of one batch land
//! whole even when another process appends too. The records and their
//! JSON are `cdr`'s; this is the file side, which belongs to the shell.
//!
//! ```
//! # use jiff::Timestamp;
//! # use zentrale::call::EndReason;
//! # use zentrale::cdr::{CallFacts, CallRecord, CallerNumbers};
//! # use zentrale::daemon::cdr_writer::CdrWriter;
//! # use zentrale::dialplan::{CallInput, Decision};
//! # use zentrale::config::{Config, Overrides};
//! # use zentrale::metrics::Metrics;
//! # use std::path::Path;
//! # let config = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml"), &Overrides::default()).unwrap();
//! # let at: Timestamp = "2026-11-24T09:00:00Z".parse().unwrap();
//! # let Decision::Hotline(route) = config.dialplan().decide(&CallInput::to_number("115"), at) else { panic!() };
//! # let record = CallRecord::build(&CallFacts::new("c1", at, None), &route, at, EndReason::Cancelled, CallerNumbers::Masked);
//! let dir = std::env::temp_dir().join(format!("zentrale-doc-cdr-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("cdr.jsonl");
//! let metrics = Metrics::new();
//! let mut writer = CdrWriter::start(&path, metrics.cdr_records.clone()).unwrap();
//! assert!(writer.write(record));
//! drop(writer); // the thread writes what is queued, then ends
//! let text = std::fs::read_to_string(&path).unwrap();
//! assert!(text.ends_with("\"end_reason\":\"cancelled\"}\n"), "{text}");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tracing::{info, warn};

use crate::cdr::CallRecord;
use crate::metrics::ResultLabel;

/// Records the writer may fall behind before new ones are dropped: at a
/// few hundred bytes each, about a megabyte, and minutes of calls at the
/// call rates of a service center.
pub const QUEUE: usize = 4096;

/// Records appended with one write at most: what the writer holds beyond
/// the queue stays bounded too, and a batch stays a few hundred KiB.
pub const BATCH: usize = 256;

/// At most one warning per this interval for dropped or failed records.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Opens `path` for appending, creating it if missing (mode 0640: records
/// hold caller numbers, masked or not). The config loader checks the path
/// beforehand without creating it (`config::check_appendable`); the two
/// must fail alike.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path)
}

enum Msg {
    Record(Box<CallRecord>),
    /// Look at the reopen request (it is not lost when the queue is full).
    Wake,
}

/// The writer: a thread and the sending end of its queue. Dropping it
/// lets the thread write what is queued and waits for it.
pub struct CdrWriter {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    reopen: Arc<Mutex<Option<PathBuf>>>,
    records: Family<ResultLabel, Counter>,
    dropped_since_warning: u64,
    warned: Option<Instant>,
}

impl CdrWriter {
    /// Opens `path` (see [`open_append`]) and starts the thread; the error
    /// is the file's, for the caller to report with the config position.
    pub fn start(path: &Path, records: Family<ResultLabel, Counter>) -> io::Result<CdrWriter> {
        let file = open_append(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let reopen = Arc::new(Mutex::new(None));
        let thread = {
            let (reopen, records) = (reopen.clone(), records.clone());
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("zentrale-cdr".into())
                .spawn(move || run(rx, file, path, reopen, records))?
        };
        Ok(CdrWriter {
            tx: Some(tx),
            thread: Some(thread),
            reopen,
            records,
            dropped_since_warning: 0,
            warned: None,
        })
    }

    /// Queues `record` for the file without waiting; `false` when it was
    /// dropped because the writer is too far behind.
    pub fn write(&mut self, record: CallRecord) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        match tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.count("dropped", 1);
                self.dropped_since_warning += 1;
                let now = Instant::now();
                if self
                    .warned
                    .is_none_or(|w| now.duration_since(w) >= WARN_EVERY)
                {
                    warn!(
                        dropped = self.dropped_since_warning,
                        queue = QUEUE,
                        "call records dropped: the CDR writer is behind (is the disk slow or full?)"
                    );
                    self.warned = Some(now);
                    self.dropped_since_warning = 0;
                }
                false
            }
        }
    }

    /// Closes the file and opens `path` (the same after log rotation, or
    /// a new one from a reloaded config) before the next record.
    pub fn reopen(&self, path: PathBuf) {
        *self.reopen.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
        if let Some(tx) = &self.tx {
            // Full: the thread is busy and looks at the request after its batch.
            let _ = tx.try_send(Msg::Wake);
        }
    }

    fn count(&self, result: &str, n: u64) {
        self.records
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc_by(n);
    }
}

impl Drop for CdrWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: waits for a record, takes whatever else is queued, and
/// appends the batch with one write.
fn run(
    rx: Receiver<Msg>,
    mut file: File,
    mut path: PathBuf,
    reopen: Arc<Mutex<Option<PathBuf>>>,
    records: Family<ResultLabel, Counter>,
) {
    let count = |result: &str, n: u64| {
        if n > 0 {
            records
                .get_or_create(&ResultLabel {
                    result: result.into(),
                })
                .inc_by(n);
        }
    };
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut warned: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        let mut n = 0u64;
        for msg in std::iter::once(first).chain(rx.try_iter().take(BATCH - 1)) {
            if let Msg::Record(record) = msg {
                // Serialising plain data into a Vec cannot fail.
                if serde_json::to_writer(&mut batch, &record).is_ok() {
                    batch.push(b'\n');
                    n += 1;
                }
            }
        }
        let request = reopen.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(new) = request {
            match open_append(&new) {
                Ok(f) => {
                    info!(path = %new.display(), "call record file reopened");
                    file = f;
                    path = new;
                }
                Err(e) => warn!(
                    path = %new.display(), error = %e,
                    "cannot reopen the call record file; writing on to the old one"
                ),
            }
        }
        if n == 0 {
            continue;
        }
        match file.write_all(&batch) {
            Ok(()) => count("written", n),
            Err(e) => {
                count("failed", n);
                let now = Instant::now();
                if warned.is_none_or(|w| now.duration_since(w) >= WARN_EVERY) {
                    warn!(path = %path.display(), error = %e, records = n, "cannot write call records");
                    warned = Some(now);
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests;

//! Where log lines go: stdout, written in batches by a thread of its own,
//! and how `--log-json` writes them ([`JsonLines`]).
//!
//! tracing-subscriber's own stdout writer makes one `write` system call per
//! line, on the thread that logs. At the `info` level the core thread logs
//! two lines per call ("call accepted", "call ended"): two system calls per
//! call on the thread the signalling target is about. Here a formatted line
//! is appended to a buffer under a lock; the `zentrale-log` thread wakes
//! when the first line arrives, lets more gather for [`GATHER`], and writes
//! them all in one `write`. A line therefore reaches the journal at most
//! [`GATHER`] later, and under load one `write` carries a few dozen lines
//! (BENCHMARKS.md's git history, session 8).
//!
//! Nothing is lost on the way out: [`LogGuard`] writes what is buffered when
//! `main` returns, and a panic writes it before the panic message. If
//! stdout stops taking lines (a stalled journal), at most [`MAX_BUFFERED`]
//! octets wait; lines beyond that are dropped and counted, and the count is
//! written as a line of its own once stdout moves again, so the daemon never
//! blocks on its log and never grows without bound.
//!
//! ```
//! use std::io::Write;
//! use tracing_subscriber::fmt::MakeWriter;
//!
//! let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//! let (writer, guard) = zentrale::logging::start_with(SharedSink(sink.clone()));
//! writer.make_writer().write_all(b"call accepted\n").unwrap();
//! drop(guard); // writes what is buffered
//! assert_eq!(&sink.lock().unwrap()[..], b"call accepted\n");
//!
//! # struct SharedSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
//! # impl Write for SharedSink {
//! #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
//! #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! # }
//! ```

pub mod limit;

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How long the log thread lets lines gather after the first before it
/// writes them.
pub const GATHER: Duration = Duration::from_millis(50);

/// Octets of lines that may wait for stdout; beyond this, lines are
/// dropped and counted.
pub const MAX_BUFFERED: usize = 4 << 20;

/// Starts the log thread writing to stdout.
pub fn start() -> (LogWriter, LogGuard) {
    start_with(io::stdout())
}

/// Starts the log thread writing to `sink` (tests give it a buffer).
pub fn start_with(sink: impl Write + Send + 'static) -> (LogWriter, LogGuard) {
    start_limited(sink, MAX_BUFFERED)
}

fn start_limited(sink: impl Write + Send + 'static, limit: usize) -> (LogWriter, LogGuard) {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        arrived: Condvar::new(),
        sink: Mutex::new(Box::new(sink)),
        limit,
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("zentrale-log".into())
            .spawn(move || shared.run())
            .expect("spawning the log thread")
    };
    // A panic's message goes to stderr; the lines that led up to it must
    // not stay behind in the buffer.
    let previous = std::panic::take_hook();
    let on_panic = Arc::downgrade(&shared);
    std::panic::set_hook(Box::new(move |info| {
        if let Some(shared) = on_panic.upgrade() {
            shared.write_pending_on_panic();
        }
        previous(info);
    }));
    (
        LogWriter {
            shared: shared.clone(),
        },
        LogGuard {
            shared,
            thread: Some(thread),
        },
    )
}

/// Hands formatted lines to the log thread; give it to
/// `tracing_subscriber::fmt().with_writer(..)`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Writes what is buffered and ends the log thread when dropped: keep it
/// until `main` returns.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// Lines dropped since the last write, because `limit` was reached.
    dropped: u64,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    arrived: Condvar,
    /// Locked while writing, so the panic hook and the thread never write
    /// at the same time.
    sink: Mutex<Box<dyn Write + Send>>,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves the buffer usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: &[u8]) {
        let mut p = self.lock();
        if p.lines.len() + line.len() > self.limit {
            p.dropped += 1;
            return;
        }
        let first = p.lines.is_empty();
        p.lines.extend_from_slice(line);
        drop(p);
        // Only the first line wakes the thread; the rest join its write.
        if first {
            self.arrived.notify_one();
        }
    }

    fn run(&self) {
        loop {
            {
                let mut p = self.lock();
                while p.lines.is_empty() && p.dropped == 0 && !p.closed {
                    p = self.arrived.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                if p.closed {
                    drop(p);
                    self.write_pending();
                    return;
                }
            }
            std::thread::sleep(GATHER);
            self.write_pending();
        }
    }

    /// Writes what is buffered, and how many lines were dropped.
    fn write_pending(&self) {
        let sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let taken = {
            let mut p = self.lock();
            (std::mem::take(&mut p.lines), std::mem::take(&mut p.dropped))
        };
        Self::write_out(sink, taken);
    }

    /// [`Shared::write_pending`] from a panic hook, which may run on a
    /// thread that holds a lock already: then it leaves the lines to the
    /// log thread rather than wait for itself.
    fn write_pending_on_panic(&self) {
        let Ok(sink) = self.sink.try_lock() else {
            return;
        };
        let Ok(mut p) = self.pending.try_lock() else {
            return;
        };
        let taken = (std::mem::take(&mut p.lines), std::mem::take(&mut p.dropped));
        drop(p);
        Self::write_out(sink, taken);
    }

    fn write_out(
        mut sink: MutexGuard<'_, Box<dyn Write + Send>>,
        (lines, dropped): (Vec<u8>, u64),
    ) {
        // Nowhere to report a failed write to: the log is where it would go.
        let _ = sink.write_all(&lines);
        if dropped > 0 {
            let _ = writeln!(
                sink,
                "zentrale: {dropped} log lines dropped: stdout did not take them in time"
            );
        }
        let _ = sink.flush();
    }
}

/// One event's formatted line(s), handed over in one piece.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink the test reads, and can hold shut.
    #[derive(Clone, Default)]
    struct Sink {
        data: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            *self.writes.lock().unwrap() += 1;
            self.data.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_several_threads_arrive_whole_and_in_few_writes() {
        let sink = Sink::default();
        let (writer, guard) = start_with(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let line = format!("thread {t} line {i}\n");
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.data.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let want: Vec<String> = (0..250).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, want, "thread {t}: every line, whole and in order");
        }
        assert!(*sink.writes.lock().unwrap() < 100, "batched");
    }

    #[test]
    fn a_lone_line_is_written_within_the_gather_time() {
        let sink = Sink::default();
        let (writer, _guard) = start_with(sink.clone());
        writer.make_writer().write_all(b"call ended\n").unwrap();
        let deadline = std::time::Instant::now() + GATHER * 20;
        while sink.data.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&sink.data.lock().unwrap()[..], b"call ended\n");
    }

    /// A sink that takes nothing until told to.
    struct Stalled {
        open: mpsc::Receiver<()>,
        data: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let _ = self.open.recv();
            self.data.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stdout_drops_and_counts_lines_and_never_blocks_the_caller() {
        let (open, gate) = mpsc::channel();
        let data = Arc::new(Mutex::new(Vec::new()));
        let (writer, guard) = start_limited(
            Stalled {
                open: gate,
                data: data.clone(),
            },
            64,
        );
        // The first line is taken by the thread and stalls in the sink.
        writer.make_writer().write_all(b"first\n").unwrap();
        std::thread::sleep(GATHER * 3);
        // 16 octets each: four fit in the 64, six are dropped.
        for i in 0..10 {
            writer
                .make_writer()
                .write_all(format!("waiting line {i:02}\n").as_bytes())
                .unwrap();
        }
        for _ in 0..10 {
            open.send(()).unwrap();
        }
        drop(open);
        drop(guard);
        let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("first\n"), "{text}");
        assert!(
            text.contains("waiting line 00\nwaiting line 01\nwaiting line 02\n"),
            "{text}"
        );
        assert!(!text.contains("waiting line 04"), "{text}");
        assert!(text.contains("zentrale: 6 log lines dropped"), "{text}");
    }
}

/// `--log-json`: one JSON object per line, in the shape of
/// tracing-subscriber's own JSON format (`timestamp` in RFC 3339 UTC with
/// microseconds, `level`, `fields` with `message` and the event's fields,
/// `target`), written straight into the line. tracing-subscriber builds a
/// `serde_json` map per event for the same line: a call's two lines cost
/// the daemon about 34,000 instructions that way and 13,000 this way
/// (BENCHMARKS.md's git history, session 8). Spans are not written: zentrale opens none.
///
/// ```
/// use tracing_subscriber::fmt;
/// let subscriber = fmt().event_format(zentrale::logging::JsonLines).finish();
/// # let _ = subscriber;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = jiff::Timestamp::now();
        write!(
            w,
            "{{\"timestamp\":\"{now:.6}\",\"level\":\"{}\",\"fields\":{{",
            meta.level()
        )?;
        let mut fields = JsonFields {
            w: &mut w,
            first: true,
            result: Ok(()),
            log_target: None,
        };
        event.record(&mut fields);
        fields.result?;
        // A record of the `log` crate (from a dependency) names its own
        // target; tracing-subscriber writes that one, and so do we.
        let target = fields.log_target.take();
        w.write_str("},\"target\":")?;
        json_string(&mut w, target.as_deref().unwrap_or(meta.target()))?;
        w.write_str("}\n")
    }
}

/// Writes an event's fields as JSON members.
struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
    /// `log.target` of a record of the `log` crate.
    log_target: Option<String>,
}

impl JsonFields<'_, '_> {
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        // The `log` bridge's metadata fields, which tracing-subscriber
        // leaves out too.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.w.write_char(',')?;
            }
            json_string(self.w, field.name())?;
            self.w.write_char(':')?;
            value(self.w)
        })();
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.log_target = Some(value.to_owned());
        }
        self.member(field, |w| json_string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes them as null.
        self.member(field, |w| match value.is_finite() {
            true => write!(w, "{value}"),
            false => w.write_str("null"),
        });
    }
}

fn json_string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what is written through it as the inside of a JSON string.
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;
    use tracing::{info, warn};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn events() {
        let call_id = "2-9246@127.0.0.1";
        info!(call_id = %call_id, tenant = "kassel", caller = ?"0561999xxx", "call accepted");
        info!(%call_id, reason = "caller_hangup", secs = 0u64, "call ended");
        warn!(
            delta = -3i64, ok = true, ratio = 0.25, list = ?vec![1, 2],
            text = "quote \" backslash \\ newline \n tab \t bell \u{7} umlaut \u{e4}",
            "odd \"message\"\nwith a second line"
        );
        info!(target: "zentrale::custom", n = u64::MAX, "{} formatted", 42);
    }

    fn lines(format_json: bool) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let builder = tracing_subscriber::fmt().with_writer(buffer.clone());
        if format_json {
            tracing::subscriber::with_default(builder.event_format(JsonLines).finish(), events);
        } else {
            tracing::subscriber::with_default(builder.json().finish(), events);
        }
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn json_lines_read_as_tracing_subscribers_own_json() {
        let (ours, theirs) = (lines(true), lines(false));
        assert_eq!(ours.len(), 4);
        for (mut ours, mut theirs) in ours.into_iter().zip(theirs) {
            let stamp = ours["timestamp"].as_str().unwrap().to_owned();
            let parsed: jiff::Timestamp = stamp.parse().unwrap();
            assert!(
                (jiff::Timestamp::now() - parsed).get_seconds().abs() < 60,
                "{stamp}"
            );
            assert_eq!(stamp.len(), "2026-12-07T01:37:58.825977Z".len(), "{stamp}");
            ours.as_object_mut().unwrap().remove("timestamp");
            theirs.as_object_mut().unwrap().remove("timestamp");
            assert_eq!(ours, theirs);
        }
    }
}

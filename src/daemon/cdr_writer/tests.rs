//! The writer with real files (a FIFO for a stuck disk, `/dev/full` for a
//! full one), and the config's check of a path against opening it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::*;
use crate::call::EndReason;
use crate::cdr::{CallFacts, CallRecord, CallerNumbers};
use crate::config::{Config, Overrides, check_appendable};
use crate::dialplan::{CallInput, Decision};
use crate::metrics::Metrics;

/// Tuesday 2026-11-24 at `hhmmss` UTC.
fn at(hhmmss: &str) -> Timestamp {
    format!("2026-11-24T{hhmmss}Z").parse().unwrap()
}

struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "zentrale-cdr-{label}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record(call_id: &str) -> CallRecord {
    let config = Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml"),
        &Overrides::default(),
    )
    .unwrap();
    let Decision::Hotline(route) = config
        .dialplan()
        .decide(&CallInput::to_number("115"), at("09:00:00"))
    else {
        panic!("115 is a hotline at 10:00 on a Tuesday");
    };
    let f = CallFacts::new(call_id, at("09:00:00"), Some("05617870123".into()));
    CallRecord::build(
        &f,
        &route,
        at("09:00:01"),
        EndReason::Cancelled,
        CallerNumbers::Masked,
    )
}

fn counted(m: &Metrics, result: &str) -> u64 {
    m.cdr_records
        .get_or_create(&crate::metrics::ResultLabel {
            result: result.into(),
        })
        .get()
}

#[test]
fn the_writer_appends_one_line_per_record_and_reopens_on_request() {
    let dir = Dir::new("append");
    let first = dir.0.join("cdr.jsonl");
    std::fs::write(&first, "{\"earlier\":true}\n").unwrap();
    let m = Metrics::new();
    let mut w = CdrWriter::start(&first, m.cdr_records.clone()).unwrap();
    assert!(w.write(record("a")));
    assert!(w.write(record("b")));
    let rotated = dir.0.join("cdr.jsonl.1");
    // Rotation: the file is renamed, then zentrale asked to reopen its path.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counted(&m, "written") < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::rename(&first, &rotated).unwrap();
    w.reopen(first.clone());
    assert!(w.write(record("c")));
    drop(w);
    let old = std::fs::read_to_string(&rotated).unwrap();
    let lines: Vec<&str> = old.lines().collect();
    assert_eq!(lines.len(), 3, "{old}");
    assert_eq!(lines[0], "{\"earlier\":true}");
    for (line, id) in lines[1..].iter().zip(["a", "b"]) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["call_id"], id);
    }
    let new = std::fs::read_to_string(&first).unwrap();
    assert!(
        new.starts_with("{\"call_id\":\"c\"") && new.ends_with("}\n"),
        "{new}"
    );
    assert_eq!(new.lines().count(), 1);
    assert_eq!((counted(&m, "written"), counted(&m, "dropped")), (3, 0));
}

#[test]
fn a_full_disk_counts_failed_records_and_the_writer_goes_on() {
    let m = Metrics::new();
    let mut w = CdrWriter::start(Path::new("/dev/full"), m.cdr_records.clone()).unwrap();
    assert!(w.write(record("a")));
    drop(w);
    assert_eq!((counted(&m, "failed"), counted(&m, "written")), (1, 0));
}

#[test]
fn an_unopenable_path_is_an_error_at_start() {
    let m = Metrics::new();
    let err = CdrWriter::start(
        Path::new("/nonexistent-dir/cdr.jsonl"),
        m.cdr_records.clone(),
    )
    .err()
    .expect("a missing directory cannot hold the file");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

/// The check the config loader runs answers as opening would, error text
/// included, and leaves nothing behind where opening would create a file.
#[test]
fn the_check_answers_as_opening_would_and_creates_nothing() {
    let dir = Dir::new("check");
    std::fs::write(dir.0.join("plain"), "x").unwrap();
    std::fs::create_dir(dir.0.join("sub")).unwrap();
    let cases = [
        "new.jsonl",       // a missing file in a writable directory
        "plain",           // an existing file
        "sub",             // a directory where the file should be
        "missing/a.jsonl", // a missing directory
        "plain/a.jsonl",   // a file where a directory should be
    ];
    for name in cases {
        let path = dir.0.join(name);
        let checked = check_appendable(&path).map_err(|e| e.to_string());
        assert!(
            name != "new.jsonl" || !path.exists(),
            "the check created {name}"
        );
        let opened = open_append(&path).map(drop).map_err(|e| e.to_string());
        assert_eq!(checked, opened, "{name}");
    }
    assert_eq!(std::fs::read(dir.0.join("plain")).unwrap(), b"x");
}

/// A file that blocks (a FIFO nobody reads: a hung disk) must not block
/// the caller of `write`: once the queue and the batch in hand are full,
/// records are dropped and counted, and each `write` still returns at once.
#[test]
fn a_stuck_file_drops_records_instead_of_blocking() {
    let dir = Dir::new("fifo");
    let fifo = dir.0.join("cdr.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("running mkfifo");
    assert!(made.success());
    // A reader that does not read yet, so opening for writing does not
    // block but writes do once the pipe's buffer (64 KiB) is full.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&fifo)
        .unwrap();
    let m = Metrics::new();
    let mut w = CdrWriter::start(&fifo, m.cdr_records.clone()).unwrap();
    let started = std::time::Instant::now();
    // More than the queue, a batch and a pipe full of records together.
    let total = 2 * QUEUE as u64;
    let one = record("r");
    let accepted = (0..total).filter(|_| w.write(one.clone())).count() as u64;
    let took = started.elapsed();
    let dropped = counted(&m, "dropped");
    // Unblock before judging, so a failing check cannot leave the writer
    // stuck in its write (and the test hanging in its drop).
    let drain = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 1 << 16];
        let mut lines = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        lines
    });
    drop(w);
    let lines = drain.join().unwrap();
    assert!(took < Duration::from_secs(5), "writing took {took:?}");
    assert!(dropped > 0, "nothing dropped of {total}");
    assert!(
        accepted <= (QUEUE + BATCH) as u64 + 200,
        "{accepted} of {total} accepted: more than the queue, a batch and a pipe hold"
    );
    assert_eq!(accepted + dropped, total);
    assert_eq!(lines, accepted);
    assert_eq!(counted(&m, "written"), accepted);
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK on Linux: opening the read end must not wait for a writer.
        self.custom_flags(0o4000)
    }
}

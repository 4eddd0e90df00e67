//! The store on real SQLite files in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::Connection;

use super::sqlite::{SqliteBackend, has_table, schema_version};
use super::*;
use crate::call::EndReason;
use crate::cdr::{CallFacts, CallerNumbers};
use crate::dialplan::{CallInput, Decision, Schedule};
use crate::tickets::{Book, Draft, TenantInfo, Tenants};

/// Generous: the writer is a thread on a shared machine, and these bound
/// waits for conditions, they do not measure anything.
const PATIENCE: Duration = Duration::from_secs(30);

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "zentrale-store-{label}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("zentrale.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tenants() -> Tenants {
    let mut s = Schedule::new("Europe/Berlin").unwrap();
    s.add_weekly(&"mon-fri 08:00-18:00".parse().unwrap())
        .unwrap();
    let mut t = Tenants::default();
    t.insert(
        "kassel",
        TenantInfo {
            municipality: "Kassel".into(),
            queues: vec!["115".into()],
            schedule: Some(s),
        },
    );
    t
}

fn ticket(book: &Book, topic: &str) -> Ticket {
    book.prepare(
        Draft {
            tenant: "kassel".into(),
            queue: Some("115".into()),
            callback_number: Some("05617870123".into()),
            topic: topic.into(),
            created_by: "1001".into(),
            ..Draft::default()
        },
        &tenants(),
        "2026-11-24T09:00:00Z".parse().unwrap(),
    )
    .unwrap()
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn wait(rx: oneshot::Receiver<()>) {
    rx.blocking_recv()
        .expect("the writer dropped the acknowledgement");
}

fn options() -> Options {
    Options {
        // Windows far longer than any test: a batch ends because it is
        // full or flushed, never because a test happened to be slow.
        window: Duration::from_secs(3600),
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..Options::default()
    }
}

#[test]
fn migrations_create_every_table_from_an_empty_file_and_are_kept_on_reopen() {
    let dir = TempDir::new("migrate");
    let backend = SqliteBackend::open(&dir.db()).unwrap();
    let conn = backend.connection();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version as usize, schema_version());
    for table in [
        "tickets",
        "ticket_history",
        "callbacks",
        "calls",
        "call_legs",
        "dispositions",
        "agent_states",
        "registrations",
        "daily_counters",
    ] {
        assert!(has_table(conn, table).unwrap(), "{table} missing");
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    conn.execute(
        "INSERT INTO daily_counters (day, scope, name, value) VALUES ('2026-11-24', 'kassel/115', 'offered', 7)",
        [],
    )
    .unwrap();
    drop(backend);
    // Opening again migrates nothing and keeps the data.
    let again = SqliteBackend::open(&dir.db()).unwrap();
    assert_eq!(count(again.connection(), "daily_counters"), 1);
}

#[test]
fn a_full_batch_is_committed_as_one_transaction() {
    let dir = TempDir::new("batch");
    let store = Store::start(
        SqliteBackend::open(&dir.db()).unwrap(),
        Options {
            batch: 3,
            ..options()
        },
    )
    .unwrap();
    let mut book = Book::default();
    for topic in ["a", "b", "c"] {
        let t = ticket(&book, topic);
        book.insert(t.clone());
        store.submit(Write::NewTicket(Box::new(t))).unwrap();
    }
    let counts = store.stats().wait_for(PATIENCE, |c| c.writes >= 3);
    assert_eq!((counts.batches, counts.writes), (1, 3));
    let reader = Connection::open(dir.db()).unwrap();
    assert_eq!(count(&reader, "tickets"), 3);
    assert_eq!(count(&reader, "ticket_history"), 3);
}

#[test]
fn writes_wait_for_the_window_until_flushed_and_tickets_read_back_whole() {
    let dir = TempDir::new("flush");
    let store = Store::start(SqliteBackend::open(&dir.db()).unwrap(), options()).unwrap();
    let mut book = Book::default();
    let t = ticket(&book, "Personalausweis");
    book.insert(t.clone());
    store.submit(Write::NewTicket(Box::new(t))).unwrap();
    let t2 = ticket(&book, "Müllabfuhr");
    book.insert(t2.clone());
    store.submit(Write::NewTicket(Box::new(t2))).unwrap();
    // Within the (hour-long) window nothing is committed yet...
    let reader = Connection::open(dir.db()).unwrap();
    assert_eq!(count(&reader, "tickets"), 0);
    // ...a change that must be durable commits the batch with it.
    let entry = book
        .plan_change(
            1,
            State::InProgress,
            "1002",
            Some("rufe an".into()),
            "2026-11-24T10:00:00Z".parse().unwrap(),
        )
        .unwrap();
    book.apply_change(1, entry.clone());
    wait(
        store
            .submit_durable(Write::TicketChanged {
                id: 1,
                state: State::InProgress,
                entry: Box::new(entry),
            })
            .unwrap(),
    );
    assert_eq!(store.stats().snapshot().batches, 1);
    assert_eq!(count(&reader, "tickets"), 2);
    store.stop();
    let loaded = SqliteBackend::open(&dir.db())
        .unwrap()
        .load_tickets()
        .unwrap();
    let expected: Vec<Ticket> = book
        .list(&Default::default(), Timestamp::MAX)
        .cloned()
        .collect();
    assert_eq!(loaded, expected);
    assert_eq!(loaded[0].history.len(), 2);
}

#[test]
fn a_locked_database_is_counted_and_the_batch_retried_until_it_lands() {
    let dir = TempDir::new("locked");
    let store = Store::start(SqliteBackend::open(&dir.db()).unwrap(), options()).unwrap();
    // Another process (here: another connection) holds the write lock.
    let other = Connection::open(dir.db()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let book = Book::default();
    let acked = store
        .submit_durable(Write::NewTicket(Box::new(ticket(&book, "gesperrt"))))
        .unwrap();
    let counts = store
        .stats()
        .wait_for(PATIENCE, |c| c.errors(ErrorKind::Locked) >= 2);
    assert!(
        counts.errors(ErrorKind::Locked) >= 2,
        "the writer did not retry against the lock: {counts:?}"
    );
    assert_eq!(counts.writes, 0);
    other.execute_batch("COMMIT").unwrap();
    wait(acked);
    assert_eq!(count(&other, "tickets"), 1);
    let text = {
        let mut registry = prometheus_client::registry::Registry::default();
        registry
            .sub_registry_with_prefix("zentrale")
            .register_collector(Box::new(store.collector()));
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &registry).unwrap();
        s
    };
    assert!(
        text.contains("zentrale_store_errors_total{kind=\"locked\"}"),
        "{text}"
    );
    assert!(text.contains("zentrale_store_writes_total 1"), "{text}");
}

#[test]
fn a_full_queue_refuses_at_once_instead_of_blocking() {
    let dir = TempDir::new("full");
    let store = Store::start(
        SqliteBackend::open(&dir.db()).unwrap(),
        Options {
            capacity: 2,
            ..options()
        },
    )
    .unwrap();
    let other = Connection::open(dir.db()).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let book = Book::default();
    // The writer takes the first and hangs on the lock; two more fill the
    // channel; the next is refused.
    let first = store
        .submit_durable(Write::NewTicket(Box::new(ticket(&book, "1"))))
        .unwrap();
    store
        .stats()
        .wait_for(PATIENCE, |c| c.errors(ErrorKind::Locked) >= 1);
    let mut refused = 0;
    for i in 0..5 {
        if store
            .submit(Write::NewTicket(Box::new(Ticket {
                id: 10 + i,
                ..ticket(&book, "more")
            })))
            .is_err()
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 3);
    assert_eq!(store.stats().snapshot().errors(ErrorKind::QueueFull), 3);
    other.execute_batch("COMMIT").unwrap();
    wait(first);
    wait(store.flush());
    assert_eq!(count(&other, "tickets"), 3);
}

#[test]
fn a_write_the_database_refuses_is_logged_and_the_others_are_kept() {
    let dir = TempDir::new("rejected");
    let store = Store::start(SqliteBackend::open(&dir.db()).unwrap(), options()).unwrap();
    let book = Book::default();
    let t = ticket(&book, "doppelt");
    store.submit(Write::NewTicket(Box::new(t.clone()))).unwrap();
    // The same id again: the primary key refuses it.
    store.submit(Write::NewTicket(Box::new(t))).unwrap();
    let t2 = Ticket {
        id: 2,
        ..ticket(&book, "zweiter")
    };
    store.submit(Write::NewTicket(Box::new(t2))).unwrap();
    wait(store.flush());
    let c = store.stats().snapshot();
    assert_eq!(c.errors(ErrorKind::Rejected), 1, "{c:?}");
    let reader = Connection::open(dir.db()).unwrap();
    assert_eq!(count(&reader, "tickets"), 2);
}

fn call_record(caller: &str, agent: bool) -> CallRecord {
    let config = crate::config::Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml"),
        &Default::default(),
    )
    .unwrap();
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let mut input = CallInput::to_number("0561115");
    input.caller = Some(caller.into());
    let Decision::Hotline(route) = config.dialplan().decide(&input, t("2026-11-24T09:00:00Z"))
    else {
        panic!("the demo's Kassel 115 is open on a Tuesday morning")
    };
    let mut facts = CallFacts::new(
        &format!("call-{caller}"),
        t("2026-11-24T09:00:00Z"),
        input.caller.clone(),
    );
    facts.answered(t("2026-11-24T09:00:00.3Z"));
    facts.queued("kassel/115", t("2026-11-24T09:00:05Z"));
    if agent {
        facts.connected("1001", t("2026-11-24T09:00:17Z"));
    }
    CallRecord::build(
        &facts,
        &route,
        t("2026-11-24T09:03:17Z"),
        EndReason::CallerHangup,
        CallerNumbers::Masked,
    )
}

#[test]
fn call_records_become_a_call_row_and_a_row_per_leg() {
    let dir = TempDir::new("calls");
    let store = Store::start(SqliteBackend::open(&dir.db()).unwrap(), options()).unwrap();
    let answered = call_record("05617870123", true);
    let abandoned = call_record("05617870456", false);
    store
        .submit(Write::Call(Box::new(answered.clone())))
        .unwrap();
    store.submit(Write::Call(Box::new(abandoned))).unwrap();
    // The same record again (a retried batch) is not a second call.
    store.submit(Write::Call(Box::new(answered))).unwrap();
    wait(store.flush());
    let reader = Connection::open(dir.db()).unwrap();
    assert_eq!(count(&reader, "calls"), 2);
    let (caller, disposition, agent, wait_secs, via): (String, String, Option<String>, f64, String) = reader
        .query_row(
            "SELECT caller, disposition, agent, wait_secs, via FROM calls WHERE call_id = 'call-05617870123'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(caller, "05617870xxx");
    assert_eq!(disposition, "answered");
    assert_eq!(agent.as_deref(), Some("1001"));
    assert_eq!(wait_secs, 12.0);
    assert_eq!(via, "115");
    let legs: Vec<(String, String, Option<String>)> = reader
        .prepare("SELECT call_id, kind, party FROM call_legs ORDER BY call_id, leg")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        legs,
        [
            (
                "call-05617870123".into(),
                "caller".into(),
                Some("05617870xxx".into())
            ),
            (
                "call-05617870123".into(),
                "agent".into(),
                Some("1001".into())
            ),
            (
                "call-05617870456".into(),
                "caller".into(),
                Some("05617870xxx".into())
            ),
        ]
    );
}

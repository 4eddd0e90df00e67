//! The SQLite backend: the bundled SQLite through `rusqlite`, in WAL mode,
//! with versioned migrations (`rusqlite_migration`, the schema version in
//! `PRAGMA user_version`).
//!
//! The statements are portable SQL; the pragmas and the mapping of
//! SQLite's error codes are this file's own.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};

use super::{Backend, ErrorKind, StoreError, Write};
use crate::cdr::CallRecord;
use crate::dialplan::QueueRef;
use crate::tickets::{Action, Channel, Destination, HistoryEntry, State, Ticket, TicketOrigin};

/// How long a statement waits for another connection's write lock before
/// it fails as `locked` (and the writer retries the batch).
const BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// The schema, one migration per version; never edit a released one, add
/// the next.
const MIGRATIONS: &[M<'static>] = &[M::up(
    r#"
CREATE TABLE tickets (
    id BIGINT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    municipality TEXT NOT NULL,
    via_115 BOOLEAN NOT NULL,
    queue TEXT,
    department TEXT,
    callback_number TEXT,
    channel TEXT NOT NULL,
    email TEXT,
    topic TEXT NOT NULL,
    leika TEXT,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    due_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX tickets_by_state ON tickets (state, due_ms);
CREATE INDEX tickets_by_tenant ON tickets (tenant, state);

CREATE TABLE ticket_history (
    ticket_id BIGINT NOT NULL REFERENCES tickets (id),
    seq INTEGER NOT NULL,
    at_ms BIGINT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    note TEXT,
    PRIMARY KEY (ticket_id, seq)
);

CREATE TABLE callbacks (
    ticket_id BIGINT NOT NULL PRIMARY KEY REFERENCES tickets (id),
    tenant TEXT NOT NULL,
    queue TEXT NOT NULL,
    number TEXT NOT NULL,
    arrived_ms BIGINT NOT NULL,
    priority INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT,
    UNIQUE (queue, number)
);
CREATE INDEX callbacks_in_order ON callbacks (queue, priority, arrived_ms);

CREATE TABLE calls (
    call_id TEXT NOT NULL,
    start_ms BIGINT NOT NULL,
    answer_ms BIGINT,
    connect_ms BIGINT,
    end_ms BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    hotline TEXT NOT NULL,
    municipality TEXT NOT NULL,
    via TEXT NOT NULL,
    forwarded BOOLEAN NOT NULL,
    called TEXT NOT NULL,
    called_from TEXT NOT NULL,
    handled_by TEXT NOT NULL,
    caller TEXT,
    anonymous BOOLEAN NOT NULL,
    trunk TEXT,
    closed TEXT,
    menu TEXT,
    queue TEXT,
    agent TEXT,
    wait_secs DOUBLE PRECISION,
    talk_secs DOUBLE PRECISION,
    duration_secs DOUBLE PRECISION NOT NULL,
    overflow_cause TEXT,
    overflow_target TEXT,
    disposition TEXT NOT NULL,
    hangup TEXT NOT NULL,
    end_reason TEXT NOT NULL,
    cut_off BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (call_id, start_ms)
);
CREATE INDEX calls_by_start ON calls (start_ms);

CREATE TABLE call_legs (
    call_id TEXT NOT NULL,
    call_start_ms BIGINT NOT NULL,
    leg INTEGER NOT NULL,
    kind TEXT NOT NULL,
    party TEXT,
    start_ms BIGINT NOT NULL,
    answer_ms BIGINT,
    end_ms BIGINT NOT NULL,
    PRIMARY KEY (call_id, call_start_ms, leg),
    FOREIGN KEY (call_id, call_start_ms) REFERENCES calls (call_id, start_ms)
);

CREATE TABLE dispositions (
    call_id TEXT NOT NULL,
    call_start_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_via TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (call_id, call_start_ms)
);

CREATE TABLE agent_states (
    agent TEXT NOT NULL PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT,
    changed_by TEXT,
    since_ms BIGINT NOT NULL
);

CREATE TABLE registrations (
    aor TEXT NOT NULL,
    contact TEXT NOT NULL,
    source TEXT,
    transport TEXT,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (aor, contact)
);

CREATE TABLE daily_counters (
    day DATE NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (day, scope, name)
);
"#,
)];

/// The schema version [`SqliteBackend::open`] migrates to.
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// A store in one SQLite file.
pub struct SqliteBackend {
    conn: Connection,
}

impl SqliteBackend {
    /// Opens (creating if missing) the database at `path`, switches it to
    /// WAL and migrates it to the latest schema.
    pub fn open(path: &Path) -> Result<SqliteBackend, StoreError> {
        let mut conn = Connection::open(path)
            .map_err(|e| error(e).context(&format!("opening the database {}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
        // WAL: readers do not block the writer, and a crash mid-write
        // leaves the last committed state. NORMAL syncs at checkpoints,
        // which a process kill cannot undo (only a power loss can, for
        // the last transactions).
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError {
                kind: ErrorKind::Other,
                message: format!(
                    "{}: SQLite keeps journal mode `{mode}` instead of WAL; put the database on a local file system",
                    path.display()
                ),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(error)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(error)?;
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .map_err(|e| StoreError {
                kind: ErrorKind::Other,
                message: format!("migrating {} to the current schema: {e}", path.display()),
            })?;
        Ok(SqliteBackend { conn })
    }

    /// The connection, for reads in tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Backend for SqliteBackend {
    fn apply(&mut self, batch: &[Write]) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock first, so a locked database fails
        // here, before any statement ran.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(error)?;
        for w in batch {
            match w {
                Write::NewTicket(t) => insert_ticket(&tx, t)?,
                Write::TicketChanged { id, state, entry } => {
                    let changed = tx
                        .execute(
                            "UPDATE tickets SET state = ?1, updated_ms = ?2 WHERE id = ?3",
                            params![state.as_str(), ms(entry.at), *id as i64],
                        )
                        .map_err(error)?;
                    if changed == 0 {
                        return Err(StoreError {
                            kind: ErrorKind::Rejected,
                            message: format!("ticket {id} is not in the store"),
                        });
                    }
                    insert_history(&tx, *id, entry)?;
                }
                Write::Call(r) => insert_call(&tx, r)?,
            }
        }
        tx.commit().map_err(error)
    }

    fn load_tickets(&mut self) -> Result<Vec<Ticket>, StoreError> {
        let mut tickets = Vec::new();
        {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT id, tenant, municipality, via_115, queue, department, callback_number, \
                     channel, email, topic, leika, created_by, created_ms, due_ms, state \
                     FROM tickets ORDER BY id",
                )
                .map_err(error)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, Option<String>>(8)?,
                        r.get::<_, String>(9)?,
                        r.get::<_, Option<String>>(10)?,
                        r.get::<_, String>(11)?,
                        r.get::<_, i64>(12)?,
                        r.get::<_, i64>(13)?,
                        r.get::<_, String>(14)?,
                    ))
                })
                .map_err(error)?;
            for row in rows {
                let (
                    id,
                    tenant,
                    municipality,
                    via_115,
                    queue,
                    department,
                    callback_number,
                    channel,
                    email,
                    topic,
                    leika,
                    created_by,
                    created_ms,
                    due_ms,
                    state,
                ) = row.map_err(error)?;
                let bad = |what: &str| StoreError {
                    kind: ErrorKind::Other,
                    message: format!("ticket {id} in the store has {what}"),
                };
                let destination = match (queue, department) {
                    (Some(q), _) => Destination::Queue(
                        QueueRef::parse(&q, &tenant).ok_or_else(|| bad("a bad queue"))?,
                    ),
                    (None, Some(d)) => Destination::Department(d),
                    (None, None) => return Err(bad("neither queue nor department")),
                };
                let channel = match (channel.as_str(), email) {
                    ("callback", _) => Channel::Callback,
                    ("email", Some(a)) => Channel::Email(a),
                    _ => return Err(bad("an unknown channel")),
                };
                tickets.push(Ticket {
                    id: id as u64,
                    tenant,
                    origin: TicketOrigin {
                        municipality,
                        via_115,
                    },
                    destination,
                    callback_number,
                    channel,
                    topic,
                    leika,
                    created_by,
                    created_at: from_ms(created_ms).ok_or_else(|| bad("a bad creation time"))?,
                    due_at: from_ms(due_ms).ok_or_else(|| bad("a bad due time"))?,
                    state: State::parse(&state).ok_or_else(|| bad("an unknown state"))?,
                    history: Vec::new(),
                });
            }
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT ticket_id, seq, at_ms, who, action, from_state, to_state, note \
                 FROM ticket_history ORDER BY ticket_id, seq",
            )
            .map_err(error)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(error)?;
        let by_id: std::collections::HashMap<u64, usize> =
            tickets.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        for row in rows {
            let (id, seq, at, who, action, from, to, note) = row.map_err(error)?;
            let bad = |what: &str| StoreError {
                kind: ErrorKind::Other,
                message: format!("history line {seq} of ticket {id} has {what}"),
            };
            let action = match action.as_str() {
                "created" => Action::Created,
                "state" => Action::StateChanged {
                    from: from
                        .as_deref()
                        .and_then(State::parse)
                        .ok_or_else(|| bad("no earlier state"))?,
                    to: to
                        .as_deref()
                        .and_then(State::parse)
                        .ok_or_else(|| bad("no new state"))?,
                },
                _ => return Err(bad("an unknown action")),
            };
            let Some(&i) = by_id.get(&(id as u64)) else {
                return Err(bad("no ticket"));
            };
            tickets[i].history.push(HistoryEntry {
                seq: seq as u32,
                at: from_ms(at).ok_or_else(|| bad("a bad time"))?,
                who,
                action,
                note,
            });
        }
        Ok(tickets)
    }
}

fn insert_ticket(tx: &rusqlite::Transaction<'_>, t: &Ticket) -> Result<(), StoreError> {
    let (queue, department) = match &t.destination {
        Destination::Queue(q) => (Some(q.to_string()), None),
        Destination::Department(d) => (None, Some(d.as_str())),
    };
    tx.execute(
        "INSERT INTO tickets (id, tenant, municipality, via_115, queue, department, \
         callback_number, channel, email, topic, leika, created_by, created_ms, due_ms, state, \
         updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            t.id as i64,
            t.tenant,
            t.origin.municipality,
            t.origin.via_115,
            queue,
            department,
            t.callback_number,
            t.channel.as_str(),
            t.channel.email(),
            t.topic,
            t.leika,
            t.created_by,
            ms(t.created_at),
            ms(t.due_at),
            t.state.as_str(),
            ms(t.created_at),
        ],
    )
    .map_err(error)?;
    for entry in &t.history {
        insert_history(tx, t.id, entry)?;
    }
    Ok(())
}

fn insert_history(
    tx: &rusqlite::Transaction<'_>,
    id: u64,
    e: &HistoryEntry,
) -> Result<(), StoreError> {
    let (from, to) = match e.action {
        Action::Created => (None, None),
        Action::StateChanged { from, to } => (Some(from.as_str()), Some(to.as_str())),
    };
    tx.execute(
        "INSERT INTO ticket_history (ticket_id, seq, at_ms, who, action, from_state, to_state, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id as i64,
            e.seq,
            ms(e.at),
            e.who,
            e.action.as_str(),
            from,
            to,
            e.note
        ],
    )
    .map_err(error)?;
    Ok(())
}

/// One row for the call, one per leg: the caller's leg from the INVITE to
/// the end, and the leg of whoever talked to the caller (an agent, or a
/// forward target) from its answer to the end. A record seen again (a
/// retried batch after an unknown outcome) is not written twice.
fn insert_call(tx: &rusqlite::Transaction<'_>, r: &CallRecord) -> Result<(), StoreError> {
    let start = ms(r.start);
    let inserted = tx
        .execute(
            "INSERT INTO calls (call_id, start_ms, answer_ms, connect_ms, end_ms, tenant, hotline, \
             municipality, via, forwarded, called, called_from, handled_by, caller, anonymous, \
             trunk, closed, menu, queue, agent, wait_secs, talk_secs, duration_secs, \
             overflow_cause, overflow_target, disposition, hangup, end_reason, cut_off) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29) \
             ON CONFLICT (call_id, start_ms) DO NOTHING",
            params![
                r.call_id,
                start,
                r.answer.map(ms),
                r.connect.map(ms),
                ms(r.end),
                r.tenant,
                r.hotline,
                r.municipality,
                r.via,
                r.forwarded,
                r.called,
                r.called_from,
                r.handled_by,
                r.caller,
                r.anonymous,
                r.trunk,
                r.closed,
                r.menu,
                r.queue,
                r.agent,
                r.wait_secs,
                r.talk_secs,
                r.duration_secs,
                r.overflow_cause,
                r.overflow_target,
                r.disposition.as_str(),
                hangup(r),
                r.end_reason,
                r.end_reason == "shutdown",
            ],
        )
        .map_err(error)?;
    if inserted == 0 {
        return Ok(());
    }
    let mut legs: Vec<(&str, Option<&str>, i64, Option<i64>)> =
        vec![("caller", r.caller.as_deref(), start, r.answer.map(ms))];
    if let Some(connect) = r.connect {
        let (kind, party) = match (&r.agent, &r.overflow_target) {
            (Some(agent), _) => ("agent", Some(agent.as_str())),
            (None, target) => ("forward", target.as_deref()),
        };
        legs.push((kind, party, ms(connect), Some(ms(connect))));
    }
    for (i, (kind, party, leg_start, answer)) in legs.into_iter().enumerate() {
        tx.execute(
            "INSERT INTO call_legs (call_id, call_start_ms, leg, kind, party, start_ms, answer_ms, end_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![r.call_id, start, i as i64, kind, party, leg_start, answer, ms(r.end)],
        )
        .map_err(error)?;
    }
    Ok(())
}

fn hangup(r: &CallRecord) -> String {
    // The JSON value of the record's `hangup`, one spelling everywhere.
    serde_json::to_value(r.hangup)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

/// The kind of a SQLite failure, by what can be done about it.
fn error(e: rusqlite::Error) -> StoreError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ErrorKind::Locked,
        Some(ErrorCode::DiskFull) => ErrorKind::Full,
        Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen | ErrorCode::ReadOnly) => {
            ErrorKind::Io
        }
        Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig) => {
            ErrorKind::Rejected
        }
        _ => ErrorKind::Other,
    };
    StoreError {
        kind,
        message: e.to_string(),
    }
}

impl StoreError {
    fn context(mut self, what: &str) -> StoreError {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

/// Whether a table exists, for tests and checks.
pub fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map(|n| n.is_some())
}

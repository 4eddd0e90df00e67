//! Tickets and the store against the real binary: tickets taken over the
//! API survive a graceful restart and a `kill -9` with their history and
//! due time, and a SIPp call's record lands in the SQLite file.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{CDR_ON, Daemon, Options, TempDir, sipp_ok};
use serde_json::{Value, json};

const TOKEN: &str = "demo-token-change-me";

/// Friday 2026-11-20, 12:00 in Germany: the issue's example. A Krefeld
/// ticket taken now is due Wednesday 13:00 (12:00 UTC).
const FRIDAY_NOON: &str = "2026-11-20T12:00:00+01:00";

/// One HTTP/1.1 request with the demo token (or none): status and body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    auth: bool,
) -> (u16, String) {
    let timeout = Duration::from_secs(15);
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(timeout)).expect("read timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = if auth {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("writing the request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("reading the response");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (status, body.to_owned())
}

fn json_of(d: &Daemon, status: u16, body: &str) -> Value {
    serde_json::from_str(body)
        .unwrap_or_else(|e| d.fail(format!("answer {status} is not JSON ({e}): {body}")))
}

/// Takes a ticket; it must be answered 201 (in the store).
fn take(d: &Daemon, topic: &str) -> Value {
    let (status, body) = request(
        d.http,
        "POST",
        "/api/v1/tickets",
        Some(&json!({
            "tenant": "krefeld",
            "queue": "serviceportal",
            "callback_number": "02151 86-1234",
            "topic": topic,
            "created_by": "1001",
            "note": "Abteilung nicht erreichbar",
        })),
        true,
    );
    d.check(status == 201, || {
        format!("POST /api/v1/tickets answered {status}: {body}")
    });
    json_of(d, status, &body)
}

fn change(d: &Daemon, id: u64, state: &str, note: &str) -> (u16, Value) {
    let (status, body) = request(
        d.http,
        "POST",
        &format!("/api/v1/tickets/{id}/state"),
        Some(&json!({ "state": state, "note": note, "by": "1002" })),
        true,
    );
    (status, json_of(d, status, &body))
}

fn ticket(d: &Daemon, id: u64) -> Value {
    let (status, body) = request(d.http, "GET", &format!("/api/v1/tickets/{id}"), None, true);
    d.check(status == 200, || {
        format!("GET ticket {id} answered {status}: {body}")
    });
    json_of(d, status, &body)
}

/// The demo config with the store at `db` (an absolute path, so every
/// daemon of a test opens the same file) and call records on.
fn on_store(db: &Path) -> Options {
    Options {
        clock: Some(FRIDAY_NOON.into()),
        edits: vec![
            (
                "  path: target/zentrale-demo.db\n".into(),
                format!("  path: {}\n", db.display()),
            ),
            (CDR_ON.0.into(), CDR_ON.1.into()),
        ],
        ..Options::default()
    }
}

#[test]
fn tickets_survive_a_graceful_restart_and_a_kill_9() {
    let dir = TempDir::new("tickets");
    let db = dir.path().join("state/zentrale.db");

    let mut d = Daemon::start_with(on_store(&db));
    let first = take(&d, "Personalausweis beantragen");
    let id1 = first["id"].as_u64().expect("an id");
    // The issue's example: Friday 12:00 in Krefeld is due Wednesday 13:00.
    let due = first["due_at"].as_str().unwrap_or_default();
    d.check(due.starts_with("2026-11-25T12:0"), || {
        format!("due {due}, want Wednesday 2026-11-25 13:00 in Krefeld: {first}")
    });
    d.check(
        first["history"][0]["note"] == "Abteilung nicht erreichbar",
        || format!("the note is not in the history: {first}"),
    );
    let second = take(&d, "Hundesteuer");
    let id2 = second["id"].as_u64().unwrap();
    d.check(id2 == id1 + 1, || format!("ids {id1} then {id2}"));
    let (status, after) = change(&d, id1, "in_progress", "rufe an");
    d.check(status == 200, || {
        format!("state change answered {status}: {after}")
    });
    // A change the state does not allow: 409, and nothing changes.
    let (status, refused) = change(&d, id1, "in_progress", "noch einmal");
    d.check(status == 409, || {
        format!("illegal change answered {status}: {refused}")
    });
    let (status, _) = change(&d, 999, "closed", "x");
    d.check(status == 404, || {
        format!("unknown ticket answered {status}")
    });
    // What is wrong is said: 400 with the problems.
    let (status, body) = request(
        d.http,
        "POST",
        "/api/v1/tickets",
        Some(&json!({ "tenant": "krefeld", "queue": "nope", "topic": "" })),
        true,
    );
    d.check(
        status == 400 && body.contains("unknown queue `nope`"),
        || format!("a bad ticket answered {status}: {body}"),
    );
    let (status, body) = request(d.http, "POST", "/api/v1/tickets", None, true);
    d.check(status == 400, || {
        format!("no body answered {status}: {body}")
    });
    // Taking a ticket needs a token.
    let (status, _) = request(
        d.http,
        "POST",
        "/api/v1/tickets",
        Some(&json!({ "tenant": "krefeld" })),
        false,
    );
    d.check(status == 401, || format!("no token answered {status}"));
    let before: Vec<Value> = [id1, id2].iter().map(|&id| ticket(&d, id)).collect();
    d.check(
        before[0]["history"].as_array().map(Vec::len) == Some(2),
        || format!("history after one change: {}", before[0]),
    );
    let open = d.metric_sum("zentrale_tickets_open{tenant=\"krefeld\"}");
    d.check(open == 2.0, || {
        format!("zentrale_tickets_open for krefeld is {open}")
    });

    // Graceful restart.
    d.terminate();
    let exited = d.wait_exit(Duration::from_secs(20)).is_some();
    d.check(exited, || "zentrale did not exit after SIGTERM".into());
    let d = Daemon::start_with(on_store(&db));
    for (id, want) in [id1, id2].iter().zip(&before) {
        let got = ticket(&d, *id);
        d.check(got == *want, || {
            format!("ticket {id} after a restart:\n{got}\nwant:\n{want}")
        });
    }
    let third = take(&d, "Wohngeld");
    let id3 = third["id"].as_u64().unwrap();
    d.check(id3 == id2 + 1, || {
        format!("after a restart the next id is {id3}")
    });
    let (status, closed) = change(&d, id2, "closed", "erledigt");
    d.check(status == 200, || {
        format!("closing answered {status}: {closed}")
    });
    let before: Vec<Value> = [id1, id2, id3].iter().map(|&id| ticket(&d, id)).collect();

    // kill -9: what the API confirmed (201, 200) is in the file.
    let pid = d.pid();
    drop(d); // SIGKILL
    let d = Daemon::start_with(on_store(&db));
    for (id, want) in [id1, id2, id3].iter().zip(&before) {
        let got = ticket(&d, *id);
        d.check(got == *want, || {
            format!("ticket {id} after kill -9 of {pid}:\n{got}\nwant:\n{want}")
        });
    }
    let (status, body) = request(d.http, "GET", "/api/v1/tickets?state=closed", None, true);
    let closed = json_of(&d, status, &body);
    d.check(
        closed
            .as_array()
            .map(|a| a.iter().map(|t| t["id"].clone()).collect::<Vec<_>>())
            == Some(vec![json!(id2)]),
        || format!("closed tickets: {closed}"),
    );
    // `zentrale ctl`: the table masks the number; one ticket shows its history.
    let table = ctl(&d, &["tickets", "--tenant", "krefeld"]);
    d.check(
        table.contains("Personalausweis beantragen")
            && table.contains("in_progress")
            && table.contains("02151861xxx")
            && !table.contains("02151861234"),
        || format!("zentrale ctl tickets:\n{table}"),
    );
    let one = ctl(&d, &["ticket", &id1.to_string()]);
    d.check(
        one.contains("open -> in_progress") && one.contains("rufe an"),
        || format!("zentrale ctl ticket {id1}:\n{one}"),
    );
    let (status, body) = request(d.http, "GET", "/api/v1/tickets?state=bogus", None, true);
    d.check(status == 400, || {
        format!("a bad filter answered {status}: {body}")
    });
    let open = d.metric_sum("zentrale_tickets_open{tenant=\"krefeld\"}");
    d.check(open == 2.0, || {
        format!("zentrale_tickets_open after kill -9 is {open}")
    });
    // The file is whole.
    let conn = rusqlite::Connection::open(&db).expect("opening the store");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    d.check(check == "ok", || format!("integrity_check: {check}"));
}

/// `zentrale ctl ARGS` against `d`; its standard output.
fn ctl(d: &Daemon, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .arg("ctl")
        .args(["--http", &d.http.to_string(), "--token", TOKEN])
        .args(args)
        .output()
        .unwrap_or_else(|e| d.fail(format!("running zentrale ctl: {e}")));
    d.check(out.status.success(), || {
        format!(
            "zentrale ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_sipp_call_lands_in_the_store_as_a_call_and_its_legs() {
    let dir = TempDir::new("store-calls");
    let db = dir.path().join("zentrale.db");
    let mut d = Daemon::start_with(Options {
        clock: None,
        ..on_store(&db)
    });
    sipp_ok(
        &d,
        "uac_call",
        &["-s", "0561115", "-m", "1", "-r", "1"],
        Duration::from_secs(20),
    );
    let records = d.cdr_records(1, Duration::from_secs(10));
    d.check(records.len() == 1, || format!("call records: {records:?}"));
    let record = &records[0];
    // A graceful stop commits what the writer holds.
    d.terminate();
    let exited = d.wait_exit(Duration::from_secs(20)).is_some();
    d.check(exited, || "zentrale did not exit after SIGTERM".into());
    let conn = rusqlite::Connection::open(&db).expect("opening the store");
    let (call_id, tenant, disposition, caller): (String, String, String, Option<String>) = conn
        .query_row(
            "SELECT call_id, tenant, disposition, caller FROM calls",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap_or_else(|e| panic!("no call row in the store: {e}"));
    assert_eq!(Some(call_id.as_str()), record["call_id"].as_str());
    assert_eq!(tenant, "kassel");
    assert_eq!(Some(disposition.as_str()), record["disposition"].as_str());
    assert_eq!(caller.as_deref(), record["caller"].as_str());
    let legs: Vec<String> = conn
        .prepare("SELECT kind FROM call_legs WHERE call_id = ?1 ORDER BY leg")
        .unwrap()
        .query_map([&call_id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want: Vec<&str> = if record["agent"].is_string() {
        vec!["caller", "agent"]
    } else {
        vec!["caller"]
    };
    assert_eq!(legs, want, "legs of {record}");
}

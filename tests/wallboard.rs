//! The event stream, `zentrale ctl` and the wallboard against the real
//! binary: Server-Sent Events with `Last-Event-ID`, snapshots, masked
//! numbers, access, the stream cap; ctl's tables and JSON; the page in
//! headless Chromium through WebDriver.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use zentrale::ctl::http::{Client, SseEvent};

const READER: &str = "reader-secret-0123456789";

fn client(d: &Daemon, token: Option<&str>) -> Client {
    api_client(d.http, token, Duration::from_secs(10))
}

/// Events of one stream from `last` on, until `done` says so or `limit`
/// passes (then the test fails with what came).
fn events_until(
    d: &Daemon,
    last: Option<&str>,
    limit: Duration,
    mut done: impl FnMut(&[SseEvent]) -> bool,
) -> Vec<SseEvent> {
    let mut got = Vec::new();
    let until = Instant::now() + limit;
    let answer = client(d, None).events("/api/v1/events", last, limit, |e| {
        got.push(e);
        !done(&got) && Instant::now() < until
    });
    match answer {
        Ok(None) => {}
        Ok(Some(r)) => d.fail(format!(
            "the event stream answered {}: {}",
            r.status,
            r.text()
        )),
        // A read timeout ends a quiet wait.
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut => {}
        Err(e) => d.fail(format!("reading the event stream: {e}")),
    }
    got
}

fn data(e: &SseEvent) -> Value {
    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("not JSON ({err}): {}", e.data))
}

fn post(d: &Daemon, path: &str, body: &str) -> (u16, String) {
    let c = client(d, Some(DEMO_TOKEN));
    let r = c
        .request("POST", path, &[], Some(body.as_bytes()))
        .unwrap_or_else(|e| d.fail(format!("POST {path}: {e}")));
    (r.status, r.text())
}

/// A stream starts with a snapshot; a client that comes back with the id
/// of the last event it saw gets exactly what it missed; an id the buffer
/// does not hold (an earlier run) gets a snapshot again.
#[test]
fn event_stream_resumes_after_last_event_id_or_starts_from_a_snapshot() {
    let d = Daemon::start();
    let first = events_until(&d, None, Duration::from_secs(5), |e| !e.is_empty());
    d.check(first.first().is_some_and(|e| e.event == "snapshot"), || {
        format!("the first event is not a snapshot: {first:?}")
    });
    let snap = data(&first[0]);
    let seen = first[0].id.clone().expect("the snapshot has an id");
    d.check(
        snap["id"].as_u64().map(|i| i.to_string()) == Some(seen.clone()),
        || format!("snapshot id {} vs event id {seen}", snap["id"]),
    );
    d.check(
        snap["agents"].as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["id"] == "1001" && a["state"] == "logged_out")
        }),
        || format!("agent 1001 logged out missing from the snapshot: {snap}"),
    );

    // While no client listens, 1001 logs in and pauses.
    let (code, body) = post(&d, "/api/v1/agents/1001/login", "");
    d.check(code == 200, || format!("login answered {code} {body}"));
    let (code, body) = post(&d, "/api/v1/agents/1001/pause", r#"{"reason":"training"}"#);
    d.check(code == 200, || format!("pause answered {code} {body}"));

    // Back with the last id: the missed events, no snapshot, in order.
    let missed = events_until(&d, Some(&seen), Duration::from_secs(5), |e| {
        e.iter()
            .any(|e| e.event == "agent" && data(e)["state"] == "paused")
    });
    d.check(
        !missed.is_empty() && missed.iter().all(|e| e.event != "snapshot"),
        || format!("resuming after {seen} brought {missed:?}"),
    );
    let ids: Vec<u64> = missed
        .iter()
        .filter_map(|e| e.id.as_deref()?.parse().ok())
        .collect();
    let from: u64 = seen.parse().unwrap();
    d.check(
        ids.first() == Some(&(from + 1)) && ids.windows(2).all(|w| w[1] == w[0] + 1),
        || format!("ids after {from} are not the next ones in order: {ids:?}"),
    );
    let paused = missed
        .iter()
        .find(|e| e.event == "agent" && data(e)["id"] == "1001" && data(e)["state"] == "paused");
    d.check(
        paused.is_some_and(|e| data(e)["reason"] == "training"),
        || format!("no agent event with 1001 paused for training: {missed:?}"),
    );
    d.check(
        missed
            .iter()
            .any(|e| e.event == "queue" && data(e)["name"] == "kassel/115"),
        || format!("no queue event for kassel/115 (its agents changed): {missed:?}"),
    );

    // An id from an earlier run: a snapshot, and it shows the pause.
    let again = events_until(&d, Some("987654321"), Duration::from_secs(5), |e| {
        !e.is_empty()
    });
    d.check(again.first().is_some_and(|e| e.event == "snapshot"), || {
        format!("an unknown Last-Event-ID brought {again:?}, want a snapshot")
    });
    let agents = data(&again[0])["agents"].clone();
    d.check(
        agents.as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["id"] == "1001" && a["state"] == "paused")
        }),
        || format!("the snapshot does not show 1001 paused: {agents}"),
    );
}

/// A trunk call shows up as call events with the caller's number masked as
/// in the logs (never the whole number), joins the queue, and is gone
/// from the live calls when the caller hangs up.
#[test]
fn call_events_carry_masked_numbers() {
    let d = Daemon::start();
    let start = events_until(&d, None, Duration::from_secs(5), |e| !e.is_empty());
    let seen = start[0].id.clone().unwrap();
    let mut caller = Caller::new(&d, "0561115");
    caller.connect(&d);
    let joined = events_until(&d, Some(&seen), Duration::from_secs(20), |e| {
        e.iter()
            .any(|e| e.event == "call" && data(e)["kind"] == "joined")
    });
    let calls: Vec<Value> = joined
        .iter()
        .filter(|e| e.event == "call")
        .map(data)
        .collect();
    d.check(
        calls
            .iter()
            .any(|c| c["kind"] == "joined" && c["queue"] == "kassel/115"),
        || format!("no `joined` call event for kassel/115: {calls:?}"),
    );
    for c in &calls {
        d.check(c["caller"] == "0301234xxx", || {
            format!("caller not masked as in the logs: {c}")
        });
    }
    let all: String = joined.iter().map(|e| e.data.as_str()).collect();
    d.check(!all.contains("0301234567"), || {
        format!("the whole number is in the stream: {all}")
    });
    let live = client(&d, None).get("/api/v1/calls").unwrap();
    let live: Value = serde_json::from_slice(&live.body).unwrap();
    d.check(
        live.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["state"] == "queued" && a[0]["via"] == "115"),
        || format!("GET /api/v1/calls: {live}"),
    );

    let last = joined.last().and_then(|e| e.id.clone()).unwrap();
    caller.hang_up(&d);
    let gone = events_until(&d, Some(&last), Duration::from_secs(10), |e| {
        e.iter().any(|e| {
            e.event == "call" && matches!(data(e)["kind"].as_str(), Some("abandoned" | "ended"))
        })
    });
    let end = gone.iter().map(data).find(|c| c["kind"] == "abandoned");
    d.check(
        end.as_ref()
            .is_some_and(|c| c["disposition"] == "abandoned"),
        || format!("hanging up in the queue did not publish `abandoned`: {gone:?}"),
    );
    let live = client(&d, None).get("/api/v1/calls").unwrap();
    d.check(live.text().trim() == "[]", || {
        format!("calls after the hang-up: {}", live.text())
    });
}

/// With reads closed: no token or a wrong one get the same 401 (nothing
/// says whether a token exists), a read token streams, a read token may
/// not pause (403), `GET /api/v1/token` names the token's role.
#[test]
fn event_stream_needs_a_read_token() {
    let d = Daemon::start_with(Options {
        edits: vec![
            (
                "      role: admin            # read | supervisor | admin\n".into(),
                format!(
                    "      role: admin\n    - {{ name: wallboard, token: {READER}, role: read }}\n"
                ),
            ),
            ("  open_reads: true ".into(), "  open_reads: false ".into()),
        ],
        ..Options::default()
    });
    let stream = |token: Option<&str>| {
        Client::new(&d.http.to_string(), token.map(str::to_owned))
            .unwrap()
            .events("/api/v1/events", None, Duration::from_secs(5), |_| false)
            .unwrap_or_else(|e| d.fail(format!("event stream: {e}")))
    };
    let nobody = stream(None).unwrap_or_else(|| d.fail("no token: the stream was served"));
    let wrong =
        stream(Some("reader-secret-012345678X")).unwrap_or_else(|| d.fail("a wrong token: served"));
    d.check(
        nobody.status == 401 && wrong.status == 401 && nobody.body == wrong.body,
        || {
            format!(
                "no token {} {:?}, wrong token {} {:?}: want the same 401",
                nobody.status,
                nobody.text(),
                wrong.status,
                wrong.text()
            )
        },
    );
    d.check(stream(Some(READER)).is_none(), || {
        "the read token was refused".into()
    });
    let reader = client(&d, Some(READER));
    let who = reader.get("/api/v1/token").unwrap();
    d.check(
        who.status == 200 && who.text().contains("\"role\":\"read\""),
        || {
            format!(
                "GET /api/v1/token with the read token: {} {}",
                who.status,
                who.text()
            )
        },
    );
    let r = reader
        .request("POST", "/api/v1/agents/1001/pause", &[], None)
        .unwrap();
    d.check(r.status == 403, || {
        format!("pause with a read token answered {} {}", r.status, r.text())
    });
    let r = client(&d, None).get("/api/v1/snapshot").unwrap();
    d.check(r.status == 401, || {
        format!("the snapshot without a token answered {}", r.status)
    });
    // The page itself is open: it holds no data.
    let r = client(&d, None).get("/").unwrap();
    d.check(r.status == 200 && r.text().contains("Wallboard"), || {
        format!("GET / answered {}", r.status)
    });
}

/// Past `http.event_streams` a new stream gets 503 with `Retry-After`,
/// counted; a closed stream frees its place; calls go on meanwhile.
#[test]
fn event_streams_are_capped_with_a_metric() {
    let d = Daemon::start_with(Options {
        edits: vec![("  event_streams: 32 ".into(), "  event_streams: 2 ".into())],
        ..Options::default()
    });
    let hold = |d: &Daemon| {
        let mut s = std::net::TcpStream::connect(d.http).unwrap();
        use std::io::{Read, Write};
        write!(s, "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\n\r\n", d.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        d.check(head.starts_with("HTTP/1.1 200"), || {
            format!("stream refused below the cap: {head}")
        });
        s
    };
    let a = hold(&d);
    let _b = hold(&d);
    d.wait_metric("zentrale_event_streams", Duration::from_secs(5), |v| {
        v == 2.0
    });
    let third = client(&d, None)
        .events("/api/v1/events", None, Duration::from_secs(5), |_| false)
        .unwrap()
        .unwrap_or_else(|| d.fail("a third stream was served past the cap of 2"));
    d.check(
        third.status == 503 && third.header("retry-after").is_some(),
        || {
            format!(
                "past the cap: {} {:?} {}",
                third.status,
                third.headers,
                third.text()
            )
        },
    );
    d.check(
        d.metric_sum("zentrale_event_streams_refused_total") == 1.0,
        || "refusal not counted".into(),
    );
    // Calls are served meanwhile.
    let mut caller = Caller::new(&d, "0561115");
    caller.connect(&d);
    caller.hang_up(&d);
    drop(a);
    d.wait_metric("zentrale_event_streams", Duration::from_secs(5), |v| {
        v == 1.0
    });
    let again = client(&d, None)
        .events("/api/v1/events", None, Duration::from_secs(5), |_| false)
        .unwrap();
    d.check(again.is_none(), || {
        format!(
            "after a stream closed, a new one got {:?}",
            again.map(|r| r.status)
        )
    });
}

/// A quiet stream outlives the HTTP idle timeout: its keep-alive comments
/// come at half that timeout, and octets leaving count as activity.
#[test]
fn a_quiet_stream_outlives_the_http_idle_timeout() {
    let d = Daemon::start_with(Options {
        edits: vec![(
            "    idle_timeout_secs: 60 ".into(),
            "    idle_timeout_secs: 2 ".into(),
        )],
        ..Options::default()
    });
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(d.http).unwrap();
    write!(s, "GET /api/v1/events HTTP/1.1\r\nHost: {}\r\n\r\n", d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => d.fail(format!(
                "the stream closed after {} octets, within 5 s of a 2 s idle timeout: {}",
                got.len(),
                String::from_utf8_lossy(&got)
            )),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => d.fail(format!("reading the stream: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&got);
    d.check(text.starts_with("HTTP/1.1 200"), || {
        format!("not served: {text}")
    });
    let comments = text.matches(": keep-alive").count();
    d.check(comments >= 3, || {
        format!("{comments} keep-alive comments in 5 s at a 2 s idle timeout: {text}")
    });
}

/// `zentrale ctl ARGS` against `d`, the token from the demo config.
fn ctl(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .arg("ctl")
        .arg("--config")
        .arg(repo().join("zentrale.yaml"))
        .args(["--http", &d.http.to_string()])
        .args(args)
        .env_remove("ZENTRALE_TOKEN")
        .output()
        .expect("running zentrale ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Where `column` ends in the header line of `table`.
fn column_end(d: &Daemon, table: &str, column: &str) -> usize {
    let header = table.lines().next().unwrap_or_default();
    header
        .find(column)
        .map(|i| i + column.len())
        .unwrap_or_else(|| d.fail(format!("no column {column} in:\n{table}")))
}

/// Tables with aligned columns, `--json` with the API's JSON, agent
/// changes with the config's token, live calls, reload, and `watch`.
#[test]
fn ctl_prints_tables_and_json() {
    let d = Daemon::start();
    let (ok, queues, err) = ctl(&d, &["queues"]);
    d.check(ok && queues.starts_with("QUEUE "), || {
        format!("ctl queues: {err}\n{queues}")
    });
    // Figures are right-aligned under their heading.
    let end = column_end(&d, &queues, "WAITING");
    for line in queues.lines().skip(1) {
        let cell = line.get(..end).unwrap_or_default();
        d.check(cell.ends_with('0') && line[end..].starts_with(' '), || {
            format!("WAITING is not aligned in line {line:?}:\n{queues}")
        });
    }
    d.check(
        queues
            .lines()
            .any(|l| l.starts_with("kassel/115 ") && l.contains("in 30 s (target 75 %)")),
        || format!("no kassel/115 row with its service level:\n{queues}"),
    );
    let (ok, json, _) = ctl(&d, &["queues", "--json"]);
    let v: Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| d.fail(format!("--json is not JSON ({e}): {json}")));
    d.check(
        ok && v
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["name"] == "kassel/115")),
        || json.clone(),
    );

    // Agent changes take the admin token from the config.
    let (ok, out, err) = ctl(&d, &["login", "1001"]);
    d.check(ok, || format!("ctl login: {err}{out}"));
    let (ok, out, err) = ctl(&d, &["pause", "1001", "--reason", "training"]);
    d.check(
        ok && out.lines().nth(1).is_some_and(|l| {
            l.starts_with("1001 ") && l.contains("paused") && l.contains("training")
        }),
        || format!("ctl pause: {err}\n{out}"),
    );
    let (_, agents, _) = ctl(&d, &["agents", "--json"]);
    let v: Value = serde_json::from_str(&agents).unwrap();
    let a = v
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "1001"))
        .cloned()
        .unwrap_or_default();
    d.check(a["state"] == "paused" && a["reason"] == "training", || {
        format!("agents --json: {a}")
    });
    let (ok, out, err) = ctl(&d, &["pause", "1001", "--reason", "kaffee"]);
    d.check(
        !ok && out.is_empty() && err.contains("422") && err.contains("pause_reasons"),
        || format!("a reason not configured: ok={ok} {out} {err}"),
    );
    let (ok, out, _) = ctl(&d, &["unpause", "1001"]);
    d.check(ok && out.contains("unreachable"), || {
        format!("ctl unpause (no phone registered):\n{out}")
    });
    let (ok, out, err) = ctl(&d, &["pause", "9999"]);
    d.check(!ok && err.contains("404"), || {
        format!("an unknown agent: {out} {err}")
    });

    // Live calls: none, then the caller waiting in kassel/115.
    let (ok, out, _) = ctl(&d, &["calls"]);
    d.check(ok && out == "no calls\n", || {
        format!("ctl calls with no call: {out:?}")
    });
    let mut caller = Caller::new(&d, "0561115");
    caller.connect(&d);
    let until = Instant::now() + Duration::from_secs(20);
    let calls = loop {
        let (_, out, _) = ctl(&d, &["calls"]);
        if out.contains("queued") || Instant::now() > until {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    d.check(
        calls.starts_with("CALL ")
            && calls.lines().nth(1).is_some_and(|l| {
                l.contains("0301234xxx") && l.contains("Kassel (115)") && l.contains("kassel/115")
            }),
        || format!("ctl calls with a waiting caller:\n{calls}"),
    );
    caller.hang_up(&d);

    let (ok, out, err) = ctl(&d, &["reload"]);
    d.check(ok && out.starts_with("reloaded"), || {
        format!("ctl reload: {out} {err}")
    });

    // Without a token: 401, and what to do about it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .args([
            "ctl",
            "--config",
            "/nonexistent/zentrale.yaml",
            "--http",
            &d.http.to_string(),
            "unpause",
            "1001",
        ])
        .env_remove("ZENTRALE_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    d.check(
        !out.status.success() && err.contains("401") && err.contains("--token"),
        || format!("without a token: {err}"),
    );

    // watch: a snapshot first, then events as lines.
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .arg("ctl")
        .arg("--config")
        .arg(repo().join("zentrale.yaml"))
        .args(["--http", &d.http.to_string(), "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut got = Vec::new();
        while let Some(Ok(l)) = lines.next() {
            let done = l.starts_with("agent 1002 ");
            got.push(l);
            if done {
                break;
            }
        }
        got
    });
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _, err) = ctl(&d, &["login", "1002"]);
    d.check(ok, || err.clone());
    let until = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let lines = reader.join().unwrap();
    d.check(
        lines.first().is_some_and(|l| l.starts_with("snapshot: "))
            && lines.iter().any(|l| l == "agent 1002 unreachable"),
        || format!("ctl watch printed {lines:?}"),
    );
}

/// Headless Chromium driven over the W3C WebDriver protocol (JSON over
/// HTTP to Debian's chromedriver), with a fresh profile; both end on drop.
struct Browser {
    driver: std::process::Child,
    http: Client,
    session: String,
    _profile: TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = free_tcp_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting chromedriver ({e}): install chromium-driver (tests/run.sh does)")
            });
        let mut http = Client::new(&format!("127.0.0.1:{port}"), None).unwrap();
        http.timeout = Duration::from_secs(60);
        let until = Instant::now() + Duration::from_secs(10);
        while http.get("/status").map(|r| r.status != 200).unwrap_or(true) {
            assert!(
                Instant::now() < until,
                "chromedriver did not come up on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = TempDir::new("chromium");
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1920,1080",
                ],
            },
        }}});
        let r = http
            .json("POST", "/session", &caps)
            .expect("creating the WebDriver session");
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {} {}", r.status, r.text()))
            .to_owned();
        Browser {
            driver,
            http,
            session,
            _profile: profile,
        }
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let r = if method == "GET" {
            self.http.get(&path)
        } else {
            self.http.json(method, &path, &body)
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert!(
            r.status == 200,
            "WebDriver {method} {path} answered {}: {}",
            r.status,
            r.text()
        );
        v["value"].clone()
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", serde_json::json!({ "url": url }));
    }

    /// Runs `script` in the page and returns what it returns.
    fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            serde_json::json!({ "script": script, "args": [] }),
        )
    }

    fn element(&self, css: &str) -> String {
        let v = self.command(
            "POST",
            "/element",
            serde_json::json!({ "using": "css selector", "value": css }),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.command(
            "POST",
            &format!("/element/{e}/click"),
            serde_json::json!({}),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.command(
            "POST",
            &format!("/element/{e}/value"),
            serde_json::json!({ "text": text }),
        );
    }

    /// The text of the first element matching `css`, or `None`.
    fn text(&self, css: &str) -> Option<String> {
        let css = serde_json::to_string(css).unwrap();
        self.eval(&format!(
            "const e = document.querySelector({css}); return e ? e.textContent : null;"
        ))
        .as_str()
        .map(str::to_owned)
    }

    /// Waits until `css`'s text is `want`; when it was first seen.
    fn wait_text(&self, css: &str, want: &str, limit: Duration) -> Result<Instant, String> {
        let until = Instant::now() + limit;
        loop {
            let got = self.text(css);
            if got.as_deref() == Some(want) {
                return Ok(Instant::now());
            }
            if Instant::now() > until {
                return Err(format!(
                    "{css} shows {got:?}, want {want:?} within {limit:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG of the page under target/.
    fn screenshot(&self, name: &str) -> std::path::PathBuf {
        use base64::Engine as _;
        let png = self.command("GET", "/screenshot", Value::Null);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        let dir = repo().join("target").join("wallboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .request("DELETE", &format!("/session/{}", self.session), &[], None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The queue's waiting count as the API has it.
fn api_waiting(d: &Daemon, queue: &str) -> u64 {
    let r = client(d, None).get("/api/v1/queues").unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v.as_array()
        .and_then(|q| q.iter().find(|q| q["name"] == queue))
        .and_then(|q| q["waiting"].as_u64())
        .unwrap_or(0)
}

/// The page follows the stream: a SIPp caller who waits shows up within
/// 2 s of joining the queue, and goes when an agent answers. A screenshot
/// with the live figures is saved under target/wallboard-screenshots/.
#[test]
fn wallboard_in_chromium_shows_a_sipp_caller_waiting_and_answered() {
    require_sipp();
    let d = Daemon::start();
    let mut phone = Phone::registered(&d, "1001"); // logs 1001 in (demo)
    let (code, body) = post(&d, "/api/v1/agents/1001/pause", "");
    d.check(code == 200, || format!("pause answered {code} {body}"));
    let browser = Browser::start();
    browser.open(&format!("http://{}/", d.http));
    let waiting = r#"[data-queue="kassel/115"] [data-field="waiting"]"#;
    browser
        .wait_text(waiting, "0", Duration::from_secs(10))
        .unwrap_or_else(|e| d.fail(e));
    browser
        .wait_text("#status", "live", Duration::from_secs(5))
        .unwrap_or_else(|e| d.fail(e));

    // A SIPp caller (built-in uac) dials 115 and stays on the line.
    let local = free_port();
    let mut sipp = std::process::Command::new("sipp")
        .args(["-sn", "uac", "-s", "115", "-m", "1", "-d", "60000"])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &local.to_string(),
            "-mi",
            "127.0.0.1",
        ])
        .args(["-nostdin", "-timeout", "90s"])
        .arg(d.sip.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .current_dir(d.dir.path())
        .spawn()
        .expect("running sipp");
    let until = Instant::now() + Duration::from_secs(30);
    while api_waiting(&d, "kassel/115") == 0 {
        d.check(Instant::now() < until, || {
            "the SIPp caller never waited in kassel/115".into()
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    let joined = Instant::now();
    let shown = browser
        .wait_text(waiting, "1", Duration::from_secs(2))
        .unwrap_or_else(|e| d.fail(e));
    eprintln!(
        "the page showed the waiting caller {:?} after the API",
        shown - joined
    );
    std::thread::sleep(Duration::from_millis(1500)); // the longest wait ticks on
    let shot = browser.screenshot("wallboard-caller-waiting.png");
    eprintln!("screenshot: {}", shot.display());

    // The agent comes back and answers: the count falls.
    let (code, body) = post(&d, "/api/v1/agents/1001/unpause", "");
    d.check(code == 200, || format!("unpause answered {code} {body}"));
    let invite = phone.expect_offer(&d, Duration::from_secs(10));
    phone.answer(&d, &invite);
    let answered = Instant::now();
    let gone = browser
        .wait_text(waiting, "0", Duration::from_secs(2))
        .unwrap_or_else(|e| d.fail(e));
    eprintln!("the page showed the answer {:?} after it", gone - answered);
    browser
        .wait_text(
            r#"[data-count="talking"] .value"#,
            "1",
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| d.fail(e));
    browser.screenshot("wallboard-caller-answered.png");
    phone.hang_up(&d);
    let _ = sipp.kill();
    let _ = sipp.wait();
}

/// A supervisor logs in on the page with a supervisor token and pauses an
/// agent with a reason; the API shows the agent paused. The live calls
/// table names a waiting caller by masked number and origin.
#[test]
fn supervisor_pauses_an_agent_from_the_page() {
    let d = Daemon::start_with(Options {
        edits: vec![(
            "      role: admin            # read | supervisor | admin\n".into(),
            "      role: admin\n    - { name: leitstand, token: leitstand-secret-0123456789, role: supervisor }\n".into(),
        )],
        ..Options::default()
    });
    let _phone = Phone::registered(&d, "1002"); // 1002 available
    let browser = Browser::start();
    browser.open(&format!("http://{}/", d.http));
    browser
        .wait_text("#status", "live", Duration::from_secs(10))
        .unwrap_or_else(|e| d.fail(e));
    d.check(
        browser.eval("return document.getElementById('supervisor').hidden") == true,
        || "the supervisor panel shows before any login".into(),
    );
    browser.click("#login-open");
    browser.type_into("#token", "leitstand-secret-0123456789");
    browser.click("#login-submit");
    let row = r#"tr[data-agent="1002"]"#;
    browser
        .wait_text(&format!("{row} .state"), "Frei", Duration::from_secs(5))
        .unwrap_or_else(|e| d.fail(e));
    browser.type_into(&format!("{row} .reason"), "training");
    browser.click(&format!("{row} .pause"));
    browser
        .wait_text(&format!("{row} .state"), "Pause", Duration::from_secs(5))
        .unwrap_or_else(|e| d.fail(e));
    let r = client(&d, None).get("/api/v1/agents").unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let a = v
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == "1002"))
        .cloned()
        .unwrap_or_default();
    d.check(a["state"] == "paused" && a["reason"] == "training", || {
        format!("the API after the page's pause: {a}")
    });
    d.check(
        d.log_tail(200)
            .contains("agent 1002 changed by the API: pause"),
        || "the change is not logged".into(),
    );

    // A caller waits: the live calls show the masked number and origin.
    let mut caller = Caller::new(&d, "0561115");
    caller.connect(&d);
    let call = r#"#calls tbody tr td:first-child"#;
    browser
        .wait_text(call, "0301234xxx", Duration::from_secs(20))
        .unwrap_or_else(|e| d.fail(e));
    let origin = browser.text("#calls tbody tr td:nth-child(2)");
    d.check(origin.as_deref() == Some("Kassel (115)"), || {
        format!("origin cell: {origin:?}")
    });
    browser.screenshot("wallboard-supervisor.png");
    // Unpause from the page: the agent takes the caller.
    browser.click(&format!("{row} .unpause"));
    browser
        .wait_text(&format!("{row} .state"), "Klingelt", Duration::from_secs(5))
        .unwrap_or_else(|e| d.fail(e));
    caller.hang_up(&d);
}

//! The HTTP API against the real binary: bearer tokens and their roles,
//! Host and Origin checks, rate-limited refusal logs, tokens and prompts
//! on reload.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const WALLBOARD: &str = "wallboard-secret-0123456789";
const LEITSTAND: &str = "leitstand-secret-0123456789";

/// One HTTP/1.1 request; `headers` are whole lines ending in CRLF (a
/// `Host:` among them replaces the default): (status, header section, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    let body = (!body.is_empty()).then_some(body);
    let r = http_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{e}"));
    (r.status, head_of(&r), r.text())
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// The demo config with two more tokens: `wallboard` (read, inline) and
/// `leitstand` (supervisor, from the file `token_file`); reads closed.
fn with_tokens(token_file: &Path) -> Options {
    fs::write(token_file, format!("{LEITSTAND}\n")).expect("writing the token file");
    Options {
        edits: vec![
            (
                "      role: admin            # read | supervisor | admin\n".into(),
                format!(
                    "      role: admin\n    - {{ name: wallboard, token: {WALLBOARD}, role: read }}\n    - {{ name: leitstand, token_file: \"{}\", role: supervisor }}\n",
                    token_file.display()
                ),
            ),
            ("  open_reads: true ".into(), "  open_reads: false ".into()),
        ],
        ..Options::default()
    }
}

fn json(d: &Daemon, body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| d.fail(format!("not JSON ({e}): {body}")))
}

/// Every role against every kind of route; 401, 403 and 421 as documented;
/// each change logged with the token's name and the client, no secret in
/// the log.
#[test]
fn changes_need_a_token_of_their_role() {
    let keys = TempDir::new("api-keys");
    let d = Daemon::start_with(with_tokens(&keys.path().join("leitstand.token")));
    let login = "/api/v1/agents/1001/login";

    // No token, a wrong one, a non-bearer one: the same 401.
    let (code, head, nobody) = request(d.http, "POST", login, "", "");
    d.check(code == 401, || {
        format!("POST without a token answered {code}")
    });
    d.check(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer realm=\"zentrale\""),
        || format!("401 without `WWW-Authenticate: Bearer`:\n{head}"),
    );
    for wrong in [
        bearer("wallboard-secret-012345678"),
        bearer("no-such-token-at-all-here"),
        "Authorization: Basic ZGVtbzpkZW1v\r\n".to_string(),
    ] {
        let (code, _, body) = request(d.http, "POST", login, &wrong, "");
        d.check(code == 401 && body == nobody, || {
            format!("POST with {wrong:?} answered {code} {body}, want the same 401 as without one")
        });
    }

    // A read token may not change anything; a supervisor may.
    let (code, _, body) = request(d.http, "POST", login, &bearer(WALLBOARD), "");
    d.check(code == 403 && body.contains("supervisor"), || {
        format!("POST with the read token answered {code} {body}, want 403 naming the role")
    });
    let (code, _, body) = request(d.http, "POST", login, &bearer(LEITSTAND), "");
    d.check(code == 200, || {
        format!("login by the supervisor answered {code} {body}")
    });
    let (code, _, body) = request(
        d.http,
        "POST",
        "/api/v1/agents/1001/pause",
        &bearer(LEITSTAND),
        r#"{"reason":"training"}"#,
    );
    let v = json(&d, &body);
    d.check(
        code == 200 && v["state"] == "paused" && v["reason"] == "training",
        || format!("pause by the supervisor answered {code} {body}"),
    );

    // Reads are closed in this config: a read token opens them.
    let (code, _, _) = request(d.http, "GET", "/api/v1/agents", "", "");
    d.check(code == 401, || {
        format!("GET agents without a token answered {code}")
    });
    let (code, _, body) = request(d.http, "GET", "/api/v1/agents", &bearer(WALLBOARD), "");
    d.check(code == 200 && body.contains("\"paused\""), || {
        format!("GET agents with the read token answered {code} {body}")
    });
    for open in ["/metrics", "/healthz"] {
        let (code, _, _) = request(d.http, "GET", open, "", "");
        d.check(code == 200, || {
            format!("GET {open} without a token answered {code}")
        });
    }

    // Reload is the admin's.
    let (code, _, body) = request(d.http, "POST", "/api/v1/reload", &bearer(LEITSTAND), "");
    d.check(code == 403 && body.contains("admin"), || {
        format!("reload by the supervisor answered {code} {body}, want 403")
    });
    let (code, _, body) = request(d.http, "POST", "/api/v1/reload", DEMO_AUTH, "");
    d.check(code == 200 && body.contains("reloaded"), || {
        format!("reload by the admin answered {code} {body}")
    });

    // DNS rebinding: a name that is not this server's, with the right token.
    for (method, path, auth) in [
        ("GET", "/api/v1/queues", bearer(WALLBOARD)),
        ("GET", "/metrics", String::new()),
        ("POST", "/api/v1/agents/1001/unpause", bearer(LEITSTAND)),
    ] {
        let host = format!("Host: rebind.example:{}\r\n{auth}", d.http.port());
        let (code, _, body) = request(d.http, method, path, &host, "");
        d.check(code == 421, || {
            format!("{method} {path} with a foreign Host answered {code} {body}, want 421")
        });
    }
    let local = format!("Host: localhost:{}\r\n{}", d.http.port(), bearer(WALLBOARD));
    let (code, _, _) = request(d.http, "GET", "/api/v1/queues", &local, "");
    d.check(code == 200, || format!("Host: localhost answered {code}"));

    // A page of another origin may not change anything, the server's own may.
    let evil = format!("Origin: https://evil.example\r\n{}", bearer(LEITSTAND));
    let (code, _, body) = request(d.http, "POST", "/api/v1/agents/1001/unpause", &evil, "");
    d.check(code == 403 && body.contains("allowed_origins"), || {
        format!("a cross-origin POST answered {code} {body}, want 403")
    });
    let agent = request(d.http, "GET", "/api/v1/agents", &bearer(WALLBOARD), "").2;
    d.check(agent.contains("\"paused\""), || {
        format!("the cross-origin unpause changed the agent: {agent}")
    });
    let own = format!("Origin: http://{}\r\n{}", d.http, bearer(LEITSTAND));
    let (code, _, body) = request(d.http, "POST", "/api/v1/agents/1001/unpause", &own, "");
    d.check(code == 200 && !body.contains("\"paused\""), || {
        format!("a same-origin unpause answered {code} {body}")
    });

    let m = d.metrics();
    for (reason, want) in [
        ("no_token", 2.0),
        ("bad_token", 3.0),
        ("role", 2.0),
        ("host", 3.0),
        ("origin", 1.0),
    ] {
        let got = metric_value(
            &m,
            &format!("zentrale_http_refused_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0);
        d.check(got == want, || {
            format!("zentrale_http_refused_total{{reason=\"{reason}\"}} is {got}, want {want}")
        });
    }

    // Who changed what, from where; never a secret.
    let log = fs::read_to_string(&d.log).unwrap_or_default() + &d.log_tail(400);
    for change in [
        "agent 1001 changed by the API: pause",
        "config reload asked for",
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(change))
            .unwrap_or_else(|| d.fail(format!("no log line for `{change}`")));
        let who = if change.contains("reload") {
            "token=demo"
        } else {
            "token=leitstand"
        };
        d.check(
            line.contains(who) && line.contains("client=127.0.0.1:"),
            || format!("the log line of `{change}` does not name {who} and the client: {line}"),
        );
    }
    for secret in [
        WALLBOARD,
        LEITSTAND,
        DEMO_TOKEN,
        "wallboard-secret",
        "ZGVtbzpkZW1v",
    ] {
        d.check(!log.contains(secret), || {
            format!("the log shows the secret {secret}")
        });
    }
}

/// 500 unauthenticated POSTs: every one refused and counted, but the log
/// gets one line per client and 10 s, and the next line after the window
/// says how many were left out.
#[test]
fn refusals_are_logged_rate_limited() {
    let d = Daemon::start();
    let started = Instant::now();
    for i in 0..500 {
        let (code, _, _) = request(d.http, "POST", "/api/v1/agents/1001/pause", "", "");
        d.check(code == 401, || {
            format!("POST {i} without a token answered {code}")
        });
    }
    let flood = started.elapsed();
    let refused = d.metric_sum("zentrale_http_refused_total");
    d.check(refused == 500.0, || {
        format!("{refused} refusals counted, want 500")
    });
    let lines = |d: &Daemon| {
        d.log_tail(10_000)
            .lines()
            .filter(|l| l.contains("HTTP request refused"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let logged = lines(&d);
    let windows = flood.as_secs() / 10 + 1;
    d.check(!logged.is_empty() && logged.len() as u64 <= windows, || {
        format!(
            "500 refusals in {flood:?} wrote {} log lines, want at most {windows}:\n{}",
            logged.len(),
            logged.join("\n")
        )
    });
    // After the window, the next refusal's line carries the count.
    std::thread::sleep(Duration::from_millis(10_200));
    let (code, _, _) = request(d.http, "POST", "/api/v1/reload", "", "");
    d.check(code == 401, || {
        format!("POST reload without a token answered {code}")
    });
    let logged = lines(&d);
    let suppressed: u64 = logged
        .iter()
        .filter_map(|l| {
            l.split("suppressed=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    d.check(suppressed + logged.len() as u64 == 501, || {
        format!(
            "the refusal lines account for {suppressed} left out + {} written, want 501:\n{}",
            logged.len(),
            logged.join("\n")
        )
    });
}

/// A reload applies changed tokens: the old secret stops working at once,
/// the new one works, without a restart.
#[test]
fn reload_applies_new_tokens() {
    let keys = TempDir::new("api-keys");
    let file = keys.path().join("leitstand.token");
    let d = Daemon::start_with(with_tokens(&file));
    let path = "/api/v1/agents/1002/login";
    let (code, _, _) = request(d.http, "POST", path, &bearer(LEITSTAND), "");
    d.check(code == 200, || {
        format!("login with the first secret answered {code}")
    });
    let rotated = "rotated-secret-9876543210abcdef";
    fs::write(&file, rotated).expect("rotating the token");
    let (code, _, body) = request(d.http, "POST", "/api/v1/reload", DEMO_AUTH, "");
    d.check(code == 200, || format!("reload answered {code} {body}"));
    let (code, _, _) = request(
        d.http,
        "POST",
        "/api/v1/agents/1002/logout",
        &bearer(LEITSTAND),
        "",
    );
    d.check(code == 401, || {
        format!("the replaced secret answered {code}, want 401")
    });
    let (code, _, body) = request(
        d.http,
        "POST",
        "/api/v1/agents/1002/logout",
        &bearer(rotated),
        "",
    );
    d.check(code == 200, || {
        format!("the new secret answered {code} {body}")
    });
}

/// A prompt cut short on disk is refused by a reload (422 naming the file
/// and why); the running config keeps playing the whole greeting.
#[test]
fn reload_with_a_truncated_prompt_keeps_the_old_config() {
    let sounds = TempDir::new("api-sounds");
    for entry in fs::read_dir(repo().join("sounds")).expect("reading sounds/") {
        let p = entry.expect("sounds entry").path();
        std::os::unix::fs::symlink(&p, sounds.path().join(p.file_name().unwrap()))
            .expect("linking a sound");
    }
    let d = Daemon::start_with(Options {
        edits: vec![(
            "sounds: sounds\n".into(),
            format!("sounds: \"{}\"\n", sounds.path().display()),
        )],
        ..Options::default()
    });
    // The greeting as a copy that did not finish: its header, 100 ms of audio.
    let greeting = sounds.path().join("greeting-kassel.wav");
    let whole = fs::read(repo().join("sounds/greeting-kassel.wav")).expect("reading the greeting");
    fs::remove_file(&greeting).expect("unlinking the greeting");
    fs::write(&greeting, &whole[..44 + 1600]).expect("writing the cut greeting");
    let (code, _, body) = request(d.http, "POST", "/api/v1/reload", DEMO_AUTH, "");
    d.check(
        code == 422 && body.contains("greeting-kassel.wav") && body.contains("cut short"),
        || format!("reload with a cut greeting answered {code} {body}, want 422 naming the file"),
    );
    let rejected = metric_value(
        &d.metrics(),
        "zentrale_config_reloads_total{result=\"rejected\"}",
    );
    d.check(rejected == Some(1.0), || {
        format!("rejected reloads: {rejected:?}")
    });

    // Callers still hear the whole greeting (the old config's prompts).
    let mut caller = Caller::new(&d, "0561115").with_pts(&[8, 101]);
    caller.connect(&d);
    let frames = prompt_frames(&d, "greeting-kassel", 8);
    let want = frames.len().min(100);
    let until = Instant::now() + Duration::from_secs(10);
    while caller.rtp.heard().len() < want + 20 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let heard = caller.rtp.heard();
    let Some(at) = find_frame(&heard, &frames[0], 0) else {
        d.fail(format!(
            "the caller never heard the greeting's first frame ({} packets)",
            heard.len()
        ));
    };
    expect_frames(
        &d,
        &heard,
        at,
        &frames[..want],
        "the greeting after the refused reload",
    );
    caller.hang_up(&d);
}

/// 300 malformed SIP requests from one source: each answered 400 and
/// counted, but the log gets one `SIP request refused` line for them, not
/// 300 (the rate-limited log facility on the core's refusals).
#[test]
fn refused_sip_requests_are_logged_rate_limited() {
    let d = Daemon::start();
    let peer = SipUdp::new(d.sip);
    let started = Instant::now();
    let mut answered = 0;
    for i in 0..300 {
        // No Call-ID: screening answers 400. One at a time: the answers
        // would overflow this socket's receive buffer otherwise.
        peer.send(&format!(
            "OPTIONS sip:zentrale@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-bad-{i}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{i}\r\nTo: <sip:zentrale@{sip}>\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            sip = d.sip,
            me = peer.local
        ));
        if peer.recv(SIP_WAIT).is_some_and(|m| m.status() == Some(400)) {
            answered += 1;
        }
    }
    let flood = started.elapsed();
    d.check(answered == 300, || {
        format!("{answered} of 300 malformed requests answered 400")
    });
    let counted = d.wait_metric(
        "zentrale_sip_rejected_total{reason=\"malformed\"}",
        Duration::from_secs(5),
        |v| v >= 300.0,
    );
    d.check(counted == 300.0, || {
        format!("{counted} malformed requests counted, want 300")
    });
    let lines: Vec<String> = d
        .log_tail(10_000)
        .lines()
        .filter(|l| l.contains("SIP request refused"))
        .map(str::to_owned)
        .collect();
    let windows = flood.as_secs() / 10 + 1;
    d.check(!lines.is_empty() && lines.len() as u64 <= windows, || {
        format!(
            "300 refusals in {flood:?} wrote {} log lines, want 1 to {windows}:\n{}",
            lines.len(),
            lines.join("\n")
        )
    });
    d.check(
        lines[0].contains("reason=\"malformed\"") || lines[0].contains("reason=malformed"),
        || format!("the refusal line does not give the reason: {}", lines[0]),
    );
}

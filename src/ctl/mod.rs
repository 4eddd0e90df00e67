//! `zentrale ctl`: the HTTP API from a terminal, for the people who know
//! `asterisk -rx "queue show"`. Aligned tables by default, the API's JSON
//! with `--json`; `watch` follows the event stream.
//!
//! The address and the token come from flags (`--http`, `--token`), the
//! environment (`ZENTRALE_TOKEN`), or the config (`--config`, default
//! `zentrale.yaml`): `http.listen` and the token of the highest role in
//! `http.tokens` (inline, `token_file` or `token_env`). Only the `http:`
//! section is read, so `ctl` works where the rest of the config (prompts,
//! dialplans) is not readable.
//!
//! ```text
//! $ zentrale ctl queues
//! QUEUE               WAITING  RINGING  LONGEST  SERVICE LEVEL         ANSWERED  ABANDONED  FREE  LOGGED IN
//! kassel/115                2        1     0:42  78 % in 30 s (75 %)         41          3     0          4
//! ```

pub mod http;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use http::{Client, Response};

/// What `zentrale ctl` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Queues,
    Agents,
    Calls,
    Login(String),
    Logout(String),
    Pause {
        agent: String,
        reason: Option<String>,
    },
    Unpause(String),
    Reload,
    Watch,
    /// `tickets`: the list, with the API's filters.
    Tickets {
        state: Option<String>,
        tenant: Option<String>,
        overdue: bool,
    },
    /// `ticket ID`: one ticket with its history.
    Ticket(String),
}

/// Where to reach zentrale and how to print.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--config`: where `http.listen` and the tokens are read from.
    pub config: PathBuf,
    /// `--http`: the API's address, instead of the config's `http.listen`.
    pub http: Option<String>,
    /// `--token` or `ZENTRALE_TOKEN`, instead of the config's.
    pub token: Option<String>,
    /// `--json`: the API's JSON instead of tables.
    pub json: bool,
}

/// A failure with what to do about it (printed on stderr, exit 1).
#[derive(Debug)]
pub struct CtlError(pub String);

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The part of the config `ctl` reads.
#[derive(Deserialize, Default)]
struct LooseConfig {
    #[serde(default)]
    http: LooseHttp,
}

#[derive(Deserialize, Default)]
struct LooseHttp {
    listen: Option<String>,
    #[serde(default)]
    tokens: Vec<LooseToken>,
}

#[derive(Deserialize)]
struct LooseToken {
    token: Option<String>,
    token_file: Option<String>,
    token_env: Option<String>,
    #[serde(default)]
    role: String,
}

fn rank(role: &str) -> u8 {
    match role {
        "admin" => 3,
        "supervisor" => 2,
        "read" => 1,
        _ => 0,
    }
}

/// The address and token: flags first, then the config.
fn connect(target: &Target) -> Result<Client, CtlError> {
    let loose = match std::fs::read_to_string(&target.config) {
        Ok(text) => serde_saphyr::from_str::<LooseConfig>(&text).map_err(|e| {
            CtlError(format!(
                "{}: cannot read `http:` ({e}); pass --http and --token instead",
                target.config.display()
            ))
        })?,
        // Without a config file the flags must say everything.
        Err(_) if target.http.is_some() => LooseConfig::default(),
        Err(e) => {
            return Err(CtlError(format!(
                "{}: {e}; pass --config with zentrale's config, or --http ADDR and --token",
                target.config.display()
            )));
        }
    };
    let addr = target
        .http
        .clone()
        .or(loose.http.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    // ctl reaches a listener on any address through loopback.
    let addr = addr
        .strip_prefix("0.0.0.0:")
        .map(|p| format!("127.0.0.1:{p}"))
        .unwrap_or(addr);
    let token = match &target.token {
        Some(t) => Some(t.clone()),
        None => {
            let mut tokens = loose.http.tokens;
            tokens.sort_by_key(|t| std::cmp::Reverse(rank(&t.role)));
            tokens.iter().find_map(|t| secret(t, &target.config))
        }
    };
    Client::new(&addr, token).map_err(|e| {
        CtlError(format!(
            "cannot resolve `{addr}`: {e}; pass --http 127.0.0.1:8080"
        ))
    })
}

fn secret(t: &LooseToken, config: &Path) -> Option<String> {
    if let Some(s) = &t.token {
        return Some(s.clone());
    }
    if let Some(f) = &t.token_file {
        let dir = config.parent().unwrap_or(Path::new("."));
        return std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim().to_owned());
    }
    t.token_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
        .map(|s| s.trim().to_owned())
}

/// Runs `action`; what it prints goes to `out`.
pub fn run(action: &Action, target: &Target, out: &mut dyn std::io::Write) -> Result<(), CtlError> {
    let client = connect(target)?;
    let write = |out: &mut dyn std::io::Write, text: &str| {
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| CtlError(format!("writing the output: {e}")))
    };
    let text = match action {
        Action::Queues => {
            let v = call(&client, "GET", "/api/v1/queues", None)?;
            if target.json {
                pretty(&v)
            } else {
                queues_table(&v)
            }
        }
        Action::Agents => {
            let v = call(&client, "GET", "/api/v1/agents", None)?;
            if target.json {
                pretty(&v)
            } else {
                agents_table(&v)
            }
        }
        Action::Calls => {
            let v = call(&client, "GET", "/api/v1/calls", None)?;
            if target.json {
                pretty(&v)
            } else {
                calls_table(&v)
            }
        }
        Action::Login(a)
        | Action::Logout(a)
        | Action::Unpause(a)
        | Action::Pause { agent: a, .. } => {
            let (verb, body) = match action {
                Action::Login(_) => ("login", None),
                Action::Logout(_) => ("logout", None),
                Action::Unpause(_) => ("unpause", None),
                Action::Pause { reason, .. } => (
                    "pause",
                    reason.as_ref().map(|r| serde_json::json!({ "reason": r })),
                ),
                _ => unreachable!("matched above"),
            };
            let path = format!("/api/v1/agents/{}/{verb}", encode(a));
            let v = call(&client, "POST", &path, body.as_ref())?;
            if target.json {
                pretty(&v)
            } else {
                agents_table(&Value::Array(vec![v]))
            }
        }
        Action::Reload => {
            let v = call(&client, "POST", "/api/v1/reload", None)?;
            if target.json {
                pretty(&v)
            } else {
                let restart: Vec<String> = v["restart_needed"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                if restart.is_empty() {
                    "reloaded\n".into()
                } else {
                    format!(
                        "reloaded; these need a restart to change: {}\n",
                        restart.join(", ")
                    )
                }
            }
        }
        Action::Watch => return watch(&client, target.json, out),
        Action::Tickets {
            state,
            tenant,
            overdue,
        } => {
            let mut query: Vec<String> = Vec::new();
            if let Some(s) = state {
                query.push(format!("state={}", encode(s)));
            }
            if let Some(t) = tenant {
                query.push(format!("tenant={}", encode(t)));
            }
            if *overdue {
                query.push("overdue=true".into());
            }
            let path = if query.is_empty() {
                "/api/v1/tickets".to_owned()
            } else {
                format!("/api/v1/tickets?{}", query.join("&"))
            };
            let v = call(&client, "GET", &path, None)?;
            if target.json {
                pretty(&v)
            } else {
                tickets_table(&v)
            }
        }
        Action::Ticket(id) => {
            let v = call(
                &client,
                "GET",
                &format!("/api/v1/tickets/{}", encode(id)),
                None,
            )?;
            if target.json {
                pretty(&v)
            } else {
                ticket_text(&v)
            }
        }
    };
    write(out, &text)
}

/// Path segments are extensions (`1001`); anything else is escaped.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn unreachable_daemon(client: &Client, e: std::io::Error) -> CtlError {
    CtlError(format!(
        "cannot reach zentrale at {}: {e}; is it running, and is that its `http.listen`? (--http ADDR)",
        client.authority
    ))
}

fn refusal(r: &Response) -> CtlError {
    let message = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| r.text());
    let hint = match r.status {
        401 => " (pass --token, set ZENTRALE_TOKEN, or name the config with the token: --config)",
        403 => " (this needs a token of a higher role)",
        _ => "",
    };
    CtlError(format!("zentrale answered {}: {message}{hint}", r.status))
}

fn call(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, CtlError> {
    let r = match body {
        Some(b) => client.json(method, path, b),
        None => client.request(method, path, &[], None),
    }
    .map_err(|e| unreachable_daemon(client, e))?;
    if !(200..300).contains(&r.status) {
        return Err(refusal(&r));
    }
    serde_json::from_slice(&r.body).map_err(|e| {
        CtlError(format!(
            "zentrale answered something that is not JSON ({e}): {}",
            r.text()
        ))
    })
}

/// Columns padded to their widest cell; numbers right-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    // The first column names things (queue, agent, call): always left.
    let numeric: Vec<bool> = (0..header.len())
        .map(|i| {
            i > 0
                && !rows.is_empty()
                && rows.iter().all(|r| {
                    r[i].chars()
                        .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
                })
        })
        .collect();
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = width[i] - cell.chars().count();
            if i > 0 {
                l.push_str("  ");
            }
            if numeric[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// The callback number as logs show it: the last three digits masked.
fn masked(v: &Value) -> String {
    v.as_str()
        .map(crate::dialplan::mask_number)
        .unwrap_or_else(|| "-".into())
}

fn tickets_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let state = if t["overdue"].as_bool() == Some(true) {
                        format!("{} (overdue)", text(&t["state"]))
                    } else {
                        text(&t["state"])
                    };
                    vec![
                        text(&t["id"]),
                        text(&t["tenant"]),
                        text(if t["queue"].is_null() {
                            &t["department"]
                        } else {
                            &t["queue"]
                        }),
                        state,
                        text(&t["due_at"]),
                        text(&t["channel"]),
                        masked(&t["callback_number"]),
                        text(&t["topic"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "ID", "TENANT", "FOR", "STATE", "DUE", "CHANNEL", "NUMBER", "TOPIC",
        ],
        &rows,
    )
}

fn ticket_text(t: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ticket {}: {}", text(&t["id"]), text(&t["topic"]));
    for (label, key) in [
        ("tenant", "tenant"),
        ("municipality", "municipality"),
        ("via", "via"),
        ("queue", "queue"),
        ("department", "department"),
        ("channel", "channel"),
        ("e-mail", "email"),
        ("callback number", "callback_number"),
        ("LeiKa", "leika"),
        ("created by", "created_by"),
        ("created", "created_at"),
        ("due", "due_at"),
        ("state", "state"),
    ] {
        if !t[key].is_null() {
            let _ = writeln!(out, "  {label:<16} {}", text(&t[key]));
        }
    }
    if t["overdue"].as_bool() == Some(true) {
        let _ = writeln!(out, "  OVERDUE");
    }
    let rows: Vec<Vec<String>> = t["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    let what = match (h["from"].as_str(), h["to"].as_str()) {
                        (Some(f), Some(to)) => format!("{f} -> {to}"),
                        _ => text(&h["action"]),
                    };
                    vec![text(&h["at"]), text(&h["who"]), what, text(&h["note"])]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push('\n');
    out.push_str(&table(&["WHEN", "WHO", "WHAT", "NOTE"], &rows));
    out
}

fn mmss(v: &Value) -> String {
    match v.as_u64() {
        Some(s) => format!("{}:{:02}", s / 60, s % 60),
        None => "-".into(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn queues_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|q| {
            let sl = match q["service_level_percent"].as_f64() {
                Some(p) => format!(
                    "{:.0} % in {} s (target {} %)",
                    p, q["service_level_threshold_secs"], q["service_level_target_percent"]
                ),
                None => format!(
                    "- in {} s (target {} %)",
                    q["service_level_threshold_secs"], q["service_level_target_percent"]
                ),
            };
            let a = &q["agents"];
            let logged_in: u64 = [
                "available",
                "unreachable",
                "offered",
                "talking",
                "wrap_up",
                "paused",
            ]
            .iter()
            .filter_map(|k| a[*k].as_u64())
            .sum();
            vec![
                text(&q["name"]),
                text(&q["waiting"]),
                text(&q["ringing"]),
                mmss(&q["longest_wait_secs"]),
                sl,
                text(&q["answered"]),
                text(&q["abandoned"]),
                text(&a["available"]),
                logged_in.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "QUEUE",
            "WAITING",
            "RINGING",
            "LONGEST",
            "SERVICE LEVEL",
            "ANSWERED",
            "ABANDONED",
            "FREE",
            "LOGGED IN",
        ],
        &rows,
    )
}

fn agents_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            vec![
                text(&a["id"]),
                text(&a["tenant"]),
                text(&a["state"]),
                text(&a["reason"]),
                mmss(&a["since_secs"]),
                if a["registered"] == true { "yes" } else { "no" }.into(),
                text(&a["pending"]),
                text(&a["answered_today"]),
            ]
        })
        .collect();
    table(
        &[
            "AGENT", "TENANT", "STATE", "REASON", "SINCE", "PHONE", "PENDING", "ANSWERED",
        ],
        &rows,
    )
}

fn calls_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                text(&c["call"]),
                c["caller"].as_str().unwrap_or("withheld").to_owned(),
                origin(c),
                text(&c["queue"]),
                text(&c["state"]),
                text(&c["agent"]),
                mmss(&c["waiting_secs"]),
                mmss(&c["duration_secs"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no calls\n".into();
    }
    table(
        &[
            "CALL", "CALLER", "ORIGIN", "QUEUE", "STATE", "AGENT", "WAITING", "DURATION",
        ],
        &rows,
    )
}

fn origin(c: &Value) -> String {
    format!("{} ({})", text(&c["municipality"]), text(&c["via"]))
}

/// One line per event (or its JSON with `--json`), until interrupted;
/// reconnects with `Last-Event-ID` when the stream ends.
fn watch(client: &Client, json: bool, out: &mut dyn std::io::Write) -> Result<(), CtlError> {
    let mut last: Option<String> = None;
    let mut failures = 0;
    loop {
        let mut broken = None;
        let resume = last.clone();
        let answer = client.events(
            "/api/v1/events",
            resume.as_deref(),
            Duration::from_secs(60),
            |e| {
                if e.id.is_some() {
                    last = e.id.clone();
                }
                let line = if json {
                    format!(
                        "{{\"id\":{},\"event\":\"{}\",\"data\":{}}}\n",
                        e.id.as_deref().unwrap_or("null"),
                        e.event,
                        e.data
                    )
                } else {
                    describe(&e.event, &e.data)
                };
                if let Err(err) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                    broken = Some(err);
                    return false;
                }
                true
            },
        );
        if let Some(e) = broken {
            // The reader went away (`| head`): done.
            return if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(CtlError(format!("writing the output: {e}")))
            };
        }
        match answer {
            Ok(Some(r)) if r.status == 503 => std::thread::sleep(Duration::from_secs(5)),
            Ok(Some(r)) => return Err(refusal(&r)),
            Ok(None) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures >= 3 {
                    return Err(unreachable_daemon(client, e));
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

/// A line for a person: `call joined 0561787xxx Kassel (115) kassel/115`.
pub fn describe(event: &str, data: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return format!("{event} {data}\n");
    };
    match event {
        "snapshot" => format!(
            "snapshot: {} queues, {} agents, {} calls\n",
            v["queues"].as_array().map_or(0, Vec::len),
            v["agents"].as_array().map_or(0, Vec::len),
            v["calls"].as_array().map_or(0, Vec::len)
        ),
        "queue" => format!(
            "queue {} waiting={} longest={} answered={} abandoned={} service_level={}\n",
            text(&v["name"]),
            text(&v["waiting"]),
            mmss(&v["longest_wait_secs"]),
            text(&v["answered"]),
            text(&v["abandoned"]),
            v["service_level_percent"]
                .as_f64()
                .map_or("-".into(), |p| format!("{p:.0}%"))
        ),
        "agent" => format!(
            "agent {} {}{}\n",
            text(&v["id"]),
            text(&v["state"]),
            v["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        "call" => {
            let mut line = format!(
                "call {} {} {} {}",
                text(&v["kind"]),
                v["caller"].as_str().unwrap_or("withheld"),
                origin(&v),
                text(&v["queue"])
            );
            if let Some(a) = v["agent"].as_str() {
                let _ = write!(line, " agent={a}");
            }
            if let Some(d) = v["disposition"].as_str() {
                let _ = write!(line, " disposition={d}");
            }
            line.push('\n');
            line
        }
        other => format!("{other} {data}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_figures_right() {
        let t = table(
            &["QUEUE", "WAITING"],
            &[
                vec!["kassel/115".into(), "2".into()],
                vec!["krefeld/serviceportal".into(), "12".into()],
            ],
        );
        assert_eq!(
            t,
            "QUEUE                  WAITING\nkassel/115                   2\nkrefeld/serviceportal       12\n"
        );
    }

    #[test]
    fn events_read_as_lines() {
        let line = describe(
            "call",
            r#"{"kind":"joined","caller":"0561787xxx","municipality":"Kassel","via":"115","queue":"kassel/115","agent":null}"#,
        );
        assert_eq!(line, "call joined 0561787xxx Kassel (115) kassel/115\n");
    }

    #[test]
    fn the_highest_role_is_taken_from_the_config() {
        let dir = std::env::temp_dir().join(format!("zentrale-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("zentrale.yaml");
        std::fs::write(dir.join("admin.token"), "admin-secret-0123456789\n").unwrap();
        std::fs::write(
            &config,
            "http:\n  listen: 0.0.0.0:9999\n  tokens:\n    - { name: w, token: read-secret-0123456789, role: read }\n    - { name: a, token_file: admin.token, role: admin }\nsip: {}\n",
        )
        .unwrap();
        let target = Target {
            config: config.clone(),
            ..Target::default()
        };
        let c = connect(&target).unwrap();
        assert_eq!(c.authority, "127.0.0.1:9999");
        assert_eq!(c.token_for_tests(), Some("admin-secret-0123456789"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

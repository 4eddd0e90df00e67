//! The files under `deploy/` and the `Containerfile`, checked against the
//! real binary and the real tools:
//!
//! - the Grafana dashboard and the Prometheus rules only query metrics (and
//!   label names) a running zentrale exports, after some traffic; their
//!   PromQL parses (`promtool check rules`), and the rules' unit tests pass
//!   (`promtool test rules`);
//! - `zentrale_hotline_open` / `zentrale_queue_open` follow the dialplans'
//!   hours on the daemon's clock;
//! - the systemd unit passes `systemd-analyze verify` and `security`;
//! - the Kubernetes manifests fit together, and their config passes
//!   `zentrale check` and starts the daemon;
//! - the Containerfile copies what exists, exposes the demo's ports and
//!   runs as the user the Kubernetes manifests expect.
//!
//! The image itself is not built here: that needs the base images from a
//! registry, which the test machines cannot reach.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------
// What zentrale exports
// ---------------------------------------------------------------------------

/// The series names a `/metrics` text (classic format) offers to PromQL,
/// each with the label names seen on its samples (empty for a family that
/// has no sample yet: its labels cannot be checked).
#[derive(Debug, Default)]
struct Exported {
    series: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    fn parse(text: &str) -> Exported {
        let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    continue;
                };
                let names: Vec<String> = match kind {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .map(|s| format!("{name}{s}"))
                        .collect(),
                    "summary" => vec![
                        name.to_string(),
                        format!("{name}_sum"),
                        format!("{name}_count"),
                    ],
                    _ => vec![name.to_string()],
                };
                for n in names {
                    series.entry(n).or_default();
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                let name_end = line.find(['{', ' ']).unwrap_or(line.len());
                let labels = series.entry(line[..name_end].to_string()).or_default();
                if line[name_end..].starts_with('{') {
                    let inner = &line[name_end + 1..line.find('}').unwrap_or(line.len())];
                    labels.extend(matcher_labels(inner));
                }
            }
        }
        Exported { series }
    }

    /// What is wrong with selecting `name{labels}`: an unknown series, or a
    /// label its samples do not carry.
    fn problem(&self, name: &str, labels: &[String], also: &[&str]) -> Option<String> {
        if also.contains(&name) {
            return None;
        }
        let Some(known) = self.series.get(name) else {
            return Some(format!("`{name}` is not a metric zentrale exports"));
        };
        // `instance` and `job` are Prometheus' own; a family without a
        // sample yet has no label names to compare with.
        let unknown: Vec<&String> = labels
            .iter()
            .filter(|l| !["instance", "job", "__name__"].contains(&l.as_str()))
            .filter(|l| !known.is_empty() && !known.contains(*l))
            .collect();
        (!unknown.is_empty())
            .then(|| format!("`{name}` has no label {unknown:?} (its labels: {known:?})"))
    }
}

/// The series of a demo daemon that has seen a call to a queue, a call to
/// an unknown number, a malformed request and a call from an address no
/// trunk allows, so that labelled families have samples to compare labels
/// with (every family is listed, with or without samples).
fn exported() -> &'static Exported {
    static EXPORTED: OnceLock<Exported> = OnceLock::new();
    EXPORTED.get_or_init(|| {
        require_sipp();
        let d = Daemon::start_with(Options {
            edits: vec![(
                "sources: [127.0.0.0/8]".into(),
                "sources: [127.0.0.1/32]".into(),
            )],
            ..Options::default()
        });
        sipp_ok(
            &d,
            "uac_call",
            &["-s", "115", "-m", "1", "-r", "1"],
            Duration::from_secs(20),
        );
        sipp_ok(
            &d,
            "uac_404",
            &["-s", "0999999999", "-m", "1", "-r", "1"],
            Duration::from_secs(15),
        );
        SipUdp::new(d.sip).send("INVITE nonsense\r\n\r\n");
        let stranger = SipUdp::bind("127.0.0.3", d.sip);
        let inv = invite(stranger.local, "UDP", d.sip, "115", stranger.local, &[0]);
        stranger.send(&inv.text);
        let refused = stranger
            .expect("INVITE", SIP_WAIT, |code| code >= 200)
            .unwrap_or_else(|e| d.fail(format!("the call from 127.0.0.3: {e}")));
        d.check(refused.status() == Some(403), || {
            format!("a call from 127.0.0.3 got {:?}, want 403", refused.status())
        });
        d.wait_metric("zentrale_calls_active", Duration::from_secs(5), |v| {
            v == 0.0
        });
        let text = d.metrics();
        let exported = Exported::parse(&text);
        for series in [
            "zentrale_sip_rejected_total",
            "zentrale_calls_ended_total",
            "zentrale_trunk_calls_total",
            "zentrale_origin_calls_ended_total",
        ] {
            d.check(
                exported.series.get(series).is_some_and(|l| !l.is_empty()),
                || format!("{series} has no sample after the traffic:\n{text}"),
            );
        }
        exported
    })
}

// ---------------------------------------------------------------------------
// Metric names in PromQL
// ---------------------------------------------------------------------------

/// A vector selector in a PromQL expression: the metric name and the label
/// names of its matchers.
#[derive(Debug, PartialEq)]
struct Selector {
    name: String,
    labels: Vec<String>,
}

const PROMQL_KEYWORDS: [&str; 14] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Index just past the quoted string that starts at `i`.
fn skip_string(c: &[char], i: usize) -> usize {
    let quote = c[i];
    let mut j = i + 1;
    while j < c.len() && c[j] != quote {
        if c[j] == '\\' && quote != '`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// Index just past the bracket closing the one at `i` (strings inside
/// skipped), and the text between them.
fn skip_group(c: &[char], i: usize, close: char) -> (usize, String) {
    let open = c[i];
    let mut depth = 0;
    let mut j = i;
    while j < c.len() {
        match c[j] {
            '"' | '\'' | '`' => {
                j = skip_string(c, j);
                continue;
            }
            ch if ch == open => depth += 1,
            ch if ch == close => {
                depth -= 1;
                if depth == 0 {
                    return (j + 1, c[i + 1..j].iter().collect());
                }
            }
            _ => {}
        }
        j += 1;
    }
    (c.len(), c[(i + 1).min(c.len())..].iter().collect())
}

/// The label names of a matcher list (`a="x", b=~"y|z"`) or of a
/// sample's label set.
fn matcher_labels(inner: &str) -> Vec<String> {
    let c: Vec<char> = inner.chars().collect();
    let mut labels = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(&c, i),
            ch if ch.is_ascii_alphabetic() || ch == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                labels.push(c[start..i].iter().collect());
            }
            _ => i += 1,
        }
    }
    labels
}

/// Every vector selector of a PromQL expression: names not followed by `(`
/// (functions, aggregations), not keywords, not in `by (...)`-style label
/// lists, strings, ranges or durations; Grafana's `$variables` are skipped.
fn promql_selectors(expr: &str) -> Vec<Selector> {
    let c: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if matches!(ch, '"' | '\'' | '`') {
            i = skip_string(&c, i);
        } else if ch == '#' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '[' {
            i = skip_group(&c, i, ']').0;
        } else if ch == '{' {
            // A selector without a name, `{__name__="x"}`: not used here.
            i = skip_group(&c, i, '}').0;
        } else if ch == '$' {
            i += 1;
            if c.get(i) == Some(&'{') {
                i = skip_group(&c, i, '}').0;
            } else {
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() || ch == '.' {
            // Numbers and durations: 0.9, 1e3, 0x1f, 5m, 1h30m.
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut next = i;
            while next < c.len() && c[next].is_whitespace() {
                next += 1;
            }
            let keyword = PROMQL_KEYWORDS.contains(&word.to_ascii_lowercase().as_str());
            // `sum by (x) (...)`: an aggregation whose grouping comes first.
            let following: String = c[next..]
                .iter()
                .take_while(|ch| ch.is_ascii_alphanumeric() || **ch == '_')
                .collect::<String>()
                .to_ascii_lowercase();
            let grouped_first = !keyword && (following == "by" || following == "without");
            if grouped_first {
                continue;
            }
            if keyword || c.get(next) == Some(&'(') {
                if keyword && c.get(next) == Some(&'(') {
                    // by (...), on (...), group_left (...): label names.
                    i = skip_group(&c, next, ')').0;
                }
                continue;
            }
            let mut labels = Vec::new();
            if c.get(next) == Some(&'{') {
                let (end, inner) = skip_group(&c, next, '}');
                labels = matcher_labels(&inner);
                i = end;
            }
            out.push(Selector { name: word, labels });
        } else {
            i += 1;
        }
    }
    out
}

/// What is wrong with the queries `(where, PromQL)`: every selector must
/// name an exported series (or one of `also`) with its labels.
fn check_queries(queries: &[(String, String)], exported: &Exported, also: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, expr) in queries {
        let selectors = promql_selectors(expr);
        if selectors.is_empty() {
            problems.push(format!("{place}: no metric found in `{expr}`"));
        }
        for s in selectors {
            if let Some(p) = exported.problem(&s.name, &s.labels, also) {
                problems.push(format!("{place}: {p}, in `{expr}`"));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// Runs `program args` (in `dir`) with a time limit; fails the test with
/// install advice when the program is missing.
fn run_tool(program: &str, args: &[&str], dir: &Path, package: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running {program} ({e}): install the Debian package {package} (tests/run.sh does it)")
        });
    let until = Instant::now() + Duration::from_secs(60);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    child
        .wait_with_output()
        .expect("collecting the tool's output")
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails unless every `--flag` in `args` is one `zentrale <subcommand>`
/// accepts (by its `--help`).
fn expect_known_flags(args: &[String], what: &str) {
    let sub = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| panic!("{what}: no subcommand in {args:?}"));
    let help = Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .args([sub.as_str(), "--help"])
        .output()
        .expect("running zentrale --help");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{what}: `zentrale {sub}` has no option {flag}:\n{help}"
        );
    }
}

// ---------------------------------------------------------------------------
// PromQL extraction
// ---------------------------------------------------------------------------

#[test]
fn promql_selectors_are_found_past_functions_labels_and_variables() {
    let names =
        |e: &str| -> Vec<String> { promql_selectors(e).into_iter().map(|s| s.name).collect() };
    assert_eq!(
        names(
            r#"histogram_quantile(0.9, sum by (le, tenant) (rate(zentrale_queue_wait_seconds_bucket{instance=~"$instance",queue=~"${queue}"}[$__rate_interval])))"#
        ),
        ["zentrale_queue_wait_seconds_bucket"]
    );
    assert_eq!(
        names(
            "a_total / on (instance) group_left(tenant) b unless ignoring(x) c offset 5m > bool 1e3 and time() - d"
        ),
        ["a_total", "b", "c", "d"]
    );
    assert_eq!(
        names(
            r#"label_replace(up{job="zentrale"}, "dst", "$1 and x", "src", "(.*)") or vector(0)"#
        ),
        ["up"]
    );
    assert_eq!(names("sum(x) by (le) * 60"), ["x"]);
    assert_eq!(
        names("sum without (a) (x) / count by(le)(y) > bool topk(3, z)"),
        ["x", "y", "z"]
    );
    assert_eq!(
        promql_selectors(r#"zentrale_agents{tenant=~"a|b",state!="logged_out"}"#),
        [Selector {
            name: "zentrale_agents".into(),
            labels: vec!["tenant".into(), "state".into()],
        }]
    );
}

// ---------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------

fn dashboard() -> Value {
    let path = deploy().join("grafana/dashboards/zentrale.json");
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every PromQL of a dashboard: the panels' `expr` and the query
/// variables' `label_values(...)` selectors, with where they are.
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, place: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let here = map
                    .get("title")
                    .or_else(|| map.get("name"))
                    .and_then(Value::as_str)
                    .map_or_else(|| place.to_string(), |t| format!("{place} / {t}"));
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((here.clone(), expr.to_string()));
                }
                if map.get("type").and_then(Value::as_str) == Some("query") {
                    let query = map
                        .get("query")
                        .and_then(|q| q.get("query").or(Some(q)))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let inner = query
                        .strip_prefix("label_values(")
                        .and_then(|q| q.rsplit_once(','))
                        .map(|(selector, _label)| selector.to_string())
                        .unwrap_or_else(|| query.to_string());
                    out.push((format!("{here} (variable)"), inner));
                }
                for (k, child) in map {
                    walk(child, &format!("{here}.{k}"), out);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, place, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dash, "dashboard", &mut out);
    out
}

/// The dashboard is Grafana 10/11 JSON with a Prometheus data source
/// variable and tenant/queue variables, and every metric (and label) it
/// queries is one a daemon that has taken calls exports.
#[test]
fn grafana_dashboard_queries_only_exported_metrics() {
    let dash = dashboard();
    assert!(
        dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion {} is older than Grafana 10's",
        dash["schemaVersion"]
    );
    let vars = dash["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no template variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for (name, label) in [("tenant", "tenant"), ("queue", "queue")] {
        let q = var(name)["query"]["query"].as_str().unwrap_or_default();
        assert!(
            q.starts_with("label_values(") && q.ends_with(&format!(", {label})")),
            "variable {name}: {q}"
        );
    }

    // Panels: unique ids, on the grid, each on the ${datasource} variable.
    let panels = dash["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut with_targets = 0;
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "duplicate id at {title}"
        );
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{title}: no gridPos");
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().map_or(&[][..], |t| t.as_slice());
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
        }
        with_targets += 1;
    }

    let queries = dashboard_queries(&dash);
    assert!(
        with_targets >= 20 && queries.len() >= 40,
        "{with_targets} panels with {} queries: is the dashboard complete?",
        queries.len()
    );
    let problems = check_queries(&queries, exported(), &[]);
    assert!(
        problems.is_empty(),
        "the dashboard queries what zentrale does not export:\n{}",
        problems.join("\n")
    );

    // The issue's panels, by the metrics they show.
    let used: BTreeSet<String> = queries
        .iter()
        .flat_map(|(_, e)| promql_selectors(e))
        .map(|s| s.name)
        .collect();
    for needed in [
        "zentrale_queue_service_level_ratio",
        "zentrale_queue_service_level_target_ratio",
        "zentrale_queue_origin_service_level_ratio",
        "zentrale_queue_waiting",
        "zentrale_queue_longest_wait_seconds",
        "zentrale_queue_calls_abandoned_total",
        "zentrale_agents",
        "zentrale_overflow_total",
        "zentrale_trunk_calls_total",
        "zentrale_sip_responses_total",
        "zentrale_sip_rejected_total",
        "zentrale_rtp_packets_sent_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }

    // Every query parses as PromQL: as recording rules, with Grafana's
    // variables replaced by what Grafana would send.
    let dir = TempDir::new("dashboard-promql");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "6h")
            .replace("$__interval", "15s")
            .replace("${queue}", ".*")
            .replace("$instance", ".*")
            .replace("$tenant", ".*")
            .replace("$queue", ".*");
        assert!(
            !expr.contains('$'),
            "a Grafana variable the test does not know: {expr}"
        );
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&expr).expect("a JSON string is a YAML string")
        ));
    }
    fs::write(dir.path().join("dashboard.rules.yml"), &rules).expect("writing the rules");
    let out = run_tool(
        "promtool",
        &["check", "rules", "dashboard.rules.yml"],
        dir.path(),
        "prometheus",
    );
    assert!(
        out.status.success(),
        "promtool finds the dashboard's PromQL invalid:\n{}\n{rules}",
        output_text(&out)
    );
}

/// The check above fails for a metric zentrale does not have, for a
/// histogram queried without its suffix, and for a label a family lacks.
#[test]
fn a_dashboard_naming_what_zentrale_lacks_fails_the_check() {
    let exported = exported();
    for (expr, wrong) in [
        (
            "rate(zentrale_calls_dropped_total[5m])",
            "zentrale_calls_dropped_total",
        ),
        (
            "sum(rate(zentrale_queue_wait_seconds[5m]))",
            "zentrale_queue_wait_seconds",
        ),
        (r#"zentrale_sip_rejected_total{cause="malformed"}"#, "cause"),
    ] {
        let dash = serde_json::json!({"panels": [{"title": "wrong", "targets": [{"expr": expr}]}]});
        let problems = check_queries(&dashboard_queries(&dash), exported, &[]);
        assert!(
            problems.len() == 1 && problems[0].contains(wrong),
            "`{expr}` should fail on {wrong}: {problems:?}"
        );
    }
    let fine = serde_json::json!({"panels": [{"targets": [{"expr": "sum(rate(zentrale_queue_wait_seconds_count[5m]))"}]}]});
    assert_eq!(
        check_queries(&dashboard_queries(&fine), exported, &[]),
        Vec::<String>::new()
    );
}

/// The provisioning files name the dashboard directory and a Prometheus
/// data source.
#[test]
fn grafana_provisioning_files_are_valid() {
    let ds = yaml(&deploy().join("grafana/provisioning/datasources/zentrale.yaml"));
    assert_eq!(ds["apiVersion"], 1);
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
    let boards = yaml(&deploy().join("grafana/provisioning/dashboards/zentrale.yaml"));
    assert_eq!(boards["apiVersion"], 1);
    assert_eq!(boards["providers"][0]["type"], "file");
    assert!(boards["providers"][0]["options"]["path"].as_str().is_some());
}

// ---------------------------------------------------------------------------
// Prometheus rules
// ---------------------------------------------------------------------------

/// `promtool check rules`, `promtool test rules` and `promtool check
/// config` (the example scrape config) pass; every rule and
/// every test series uses metrics (and labels) zentrale exports, besides
/// Prometheus' own `up`; every alert has a test where it fires and one
/// where it does not yet.
#[test]
fn alert_rules_pass_promtool_and_query_only_exported_metrics() {
    let dir = deploy().join("prometheus");
    for args in [
        ["check", "rules", "zentrale.rules.yml"],
        ["test", "rules", "zentrale.rules.test.yml"],
        ["check", "config", "prometheus.yml"],
    ] {
        let out = run_tool("promtool", &args, &dir, "prometheus");
        assert!(
            out.status.success(),
            "promtool {}:\n{}",
            args.join(" "),
            output_text(&out)
        );
    }

    let rules = yaml(&dir.join("zentrale.rules.yml"));
    let mut alerts = BTreeSet::new();
    let mut queries = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("an alert name").to_string();
            queries.push((
                name.clone(),
                rule["expr"].as_str().expect("expr").to_string(),
            ));
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{name}: no severity"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some(),
                "{name}: no summary"
            );
            alerts.insert(name);
        }
    }
    for needed in [
        "ZentraleDown",
        "ZentraleServiceLevelUnderTarget",
        "ZentraleCallersWaitingLong",
        "ZentraleNoAgentLoggedIn",
        "ZentraleSurgeRejections",
        "ZentraleTrunkCallsFailing",
    ] {
        assert!(alerts.contains(needed), "no rule {needed}");
    }

    let tests = yaml(&dir.join("zentrale.rules.test.yml"));
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for t in tests["tests"].as_array().expect("tests") {
        for s in t["input_series"].as_array().expect("input_series") {
            let series = s["series"].as_str().expect("series").to_string();
            queries.push(("a test's input series".into(), series));
        }
        for a in t["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = a["alertname"].as_str().expect("alertname").to_string();
            if a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()) {
                fires.insert(name);
            } else {
                quiet.insert(name);
            }
        }
    }
    for alert in &alerts {
        assert!(fires.contains(alert), "no test where {alert} fires");
        assert!(
            quiet.contains(alert),
            "no test where {alert} does not fire (yet)"
        );
    }
    let problems = check_queries(&queries, exported(), &["up"]);
    assert!(
        problems.is_empty(),
        "the rules query what zentrale does not export:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Service hours as metrics
// ---------------------------------------------------------------------------

/// On a Sunday morning the demo's hotlines and queues are closed, on a
/// Monday morning open; every configured trunk is counted from the start.
#[test]
fn hotline_and_queue_open_follow_the_daemons_clock() {
    for (clock, open) in [("2026-11-22T10:00:00+01:00", 0.0), (WEEKDAY_MORNING, 1.0)] {
        let d = Daemon::start_with(Options {
            clock: Some(clock.into()),
            ..Options::default()
        });
        let text = d.metrics();
        for sample in [
            r#"zentrale_hotline_open{tenant="kassel",hotline="115"}"#,
            r#"zentrale_hotline_open{tenant="quickborn",hotline="rathaus"}"#,
            r#"zentrale_queue_open{tenant="kassel",queue="115"}"#,
            r#"zentrale_queue_open{tenant="kreis-pinneberg",queue="115"}"#,
        ] {
            let v = metric_value(&text, sample);
            d.check(v == Some(open), || {
                format!("at {clock} {sample} is {v:?}, want {open}")
            });
        }
        let trunk = metric_value(&text, r#"zentrale_trunk_calls_total{trunk="demo-carrier"}"#);
        d.check(trunk == Some(0.0), || {
            format!("the idle trunk's counter is {trunk:?}, want 0")
        });
    }
}

/// A reload (SIGHUP) that gives the Quickborn town hall afternoon hours
/// opens its hotline and queue at once, on the same clock.
#[test]
fn hotline_open_follows_a_reload() {
    const QUICKBORN: &str = "dialplan: dialplans/quickborn.yaml";
    let d = Daemon::start_with(Options {
        clock: Some("2026-11-23T15:00:00+01:00".into()),
        edits: vec![(QUICKBORN.into(), QUICKBORN.into())],
        ..Options::default()
    });
    let hotline = r#"zentrale_hotline_open{tenant="quickborn",hotline="rathaus"}"#;
    let queue = r#"zentrale_queue_open{tenant="quickborn",queue="rathaus"}"#;
    let before = (
        metric_value(&d.metrics(), hotline),
        metric_value(&d.metrics(), queue),
    );
    d.check(before == (Some(0.0), Some(0.0)), || {
        format!("Monday 15:00 the town hall (mornings) is {before:?}, want closed")
    });

    let dialplan = repo().join("dialplans/quickborn.yaml");
    let longer = replace_once(
        &read(&dialplan),
        "\"mon-fri 08:00-12:00\"",
        "\"mon-wed 08:00-18:00\"",
        &dialplan,
    );
    fs::write(d.dir.path().join("quickborn-longer.yaml"), longer).expect("writing the dialplan");
    let config = d.dir.path().join("zentrale.yaml");
    let text = replace_once(
        &read(&config),
        QUICKBORN,
        "dialplan: quickborn-longer.yaml",
        &config,
    );
    fs::write(&config, text).expect("writing the config");
    let hup = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .expect("running kill -HUP");
    assert!(hup.success());

    let until = Instant::now() + Duration::from_secs(5);
    let mut after = (None, None);
    while Instant::now() < until {
        let text = d.metrics();
        after = (metric_value(&text, hotline), metric_value(&text, queue));
        if after == (Some(1.0), Some(1.0)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    d.fail(format!(
        "after the reload the town hall is {after:?}, want open"
    ));
}

// ---------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------

/// The unit is hardened, `systemd-analyze verify` finds nothing in it
/// (with ExecStart pointing at the built binary), `systemd-analyze
/// security` rates its exposure at most 2.0 of 10, the options it passes
/// exist, and its sysusers file creates the user it runs as.
#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = read(&deploy().join("zentrale.service"));
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let has = |k: &str, v: &str| settings.iter().any(|&(a, b)| a == k && b == v);
    for (k, v) in [
        ("User", "zentrale"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "zentrale"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert!(has(k, v), "the unit lacks {k}={v}");
    }
    for (key, line) in settings.iter().filter(|(k, _)| k.starts_with("Exec")) {
        if let Some(args) = line.strip_prefix("/usr/local/bin/zentrale ") {
            let args: Vec<String> = args.split_whitespace().map(String::from).collect();
            expect_known_flags(&args, key);
        }
    }

    let dir = TempDir::new("systemd");
    let bin = env!("CARGO_BIN_EXE_zentrale");
    assert!(unit.matches("/usr/local/bin/zentrale").count() >= 3);
    let path = dir.path().join("zentrale.service");
    fs::write(&path, unit.replace("/usr/local/bin/zentrale", bin)).expect("writing the unit");
    let path = path.to_str().expect("a UTF-8 temp path");
    let out = run_tool("systemd-analyze", &["verify", path], dir.path(), "systemd");
    let text = output_text(&out);
    // verify only warns about unknown or misspelt keys: any word about the
    // unit is a failure.
    assert!(
        out.status.success() && !text.contains("zentrale.service"),
        "systemd-analyze verify:\n{text}"
    );
    let out = run_tool(
        "systemd-analyze",
        &["security", "--offline=yes", "--threshold=20", path],
        dir.path(),
        "systemd",
    );
    assert!(
        out.status.success(),
        "systemd-analyze security rates the unit's exposure above 2.0:\n{}",
        output_text(&out)
    );

    let root = TempDir::new("sysusers");
    fs::create_dir_all(root.path().join("etc")).expect("etc");
    let root_arg = format!("--root={}", root.path().display());
    let sysusers = deploy().join("zentrale.sysusers");
    let out = run_tool(
        "systemd-sysusers",
        &[&root_arg, sysusers.to_str().expect("UTF-8 path")],
        dir.path(),
        "systemd",
    );
    let passwd = fs::read_to_string(root.path().join("etc/passwd")).unwrap_or_default();
    assert!(
        out.status.success() && passwd.starts_with("zentrale:"),
        "systemd-sysusers did not create the user zentrale:\n{}\n{passwd}",
        output_text(&out)
    );
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

fn k8s(name: &str) -> Value {
    yaml(&deploy().join("kubernetes").join(name))
}

/// Kustomization, Deployment, Secret, ConfigMap and Service fit together:
/// host networking, probes on /healthz at the HTTP port zentrale listens
/// on, resources, a non-root security context with the image's user; the
/// config the pod would see passes `zentrale check` and starts the daemon.
#[test]
fn kubernetes_manifests_fit_together_and_their_config_runs() {
    let kustomization = k8s("kustomization.yaml");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name").to_string())
        .collect();
    let present: BTreeSet<String> = fs::read_dir(deploy().join("kubernetes"))
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml lists other files than there are"
    );

    let deployment = k8s("deployment.yaml");
    let secret = k8s("secret.yaml");
    let configmap = k8s("configmap.yaml");
    let service = k8s("service.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(configmap["kind"], "ConfigMap");
    assert_eq!(service["kind"], "Service");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            &labels[k], v,
            "the selector does not match the pod's labels"
        );
        assert_eq!(
            &service["spec"]["selector"][k], v,
            "the Service does not select the pod"
        );
    }
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let uid = pod["securityContext"]["runAsUser"]
        .as_u64()
        .expect("runAsUser");
    assert_eq!(
        Some(uid),
        containerfile_uid(),
        "the pod's user is not the image's"
    );

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                !c["resources"][kind][res].is_null(),
                "no resources.{kind}.{res}"
            );
        }
    }
    let args: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string").to_string())
        .collect();
    expect_known_flags(&args, "the Deployment's args");
    let after = |flag: &str| -> String {
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
        args[i + 1].clone()
    };
    // zentrale advertises the address it listens on: never a wildcard.
    for flag in ["--sip-listen", "--http-listen"] {
        assert!(
            after(flag).starts_with("$(POD_IP):"),
            "{flag} {}",
            after(flag)
        );
    }
    assert!(
        c["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "POD_IP"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"),
        "POD_IP does not come from status.podIP"
    );
    let http_port: u64 = after("--http-listen")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let port_named = |name: &str| {
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].as_u64())
    };
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], "/healthz", "{probe}");
        let port = get["port"]
            .as_u64()
            .or_else(|| port_named(get["port"].as_str().unwrap_or_default()).flatten());
        assert_eq!(
            port,
            Some(http_port),
            "{probe} does not probe the HTTP listener"
        );
    }
    assert_eq!(
        port_named(
            service["spec"]["ports"][0]["targetPort"]
                .as_str()
                .unwrap_or_default()
        )
        .flatten(),
        Some(http_port),
        "the Service does not point at the HTTP port"
    );

    // The site volume: the Secret's and the ConfigMap's keys, laid out as
    // the pod sees them under the mount.
    let config_path = after("--config");
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let mount = mounts
        .iter()
        .find(|m| config_path.starts_with(m["mountPath"].as_str().unwrap_or("-")))
        .unwrap_or_else(|| panic!("nothing is mounted where {config_path} is"));
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    let site = TempDir::new("k8s-site");
    for source in volume["projected"]["sources"]
        .as_array()
        .expect("a projected volume")
    {
        let (kind, object, data) = if !source["secret"].is_null() {
            ("secret", &secret, "stringData")
        } else {
            ("configMap", &configmap, "data")
        };
        assert_eq!(
            source[kind]["name"], object["metadata"]["name"],
            "the volume names another {kind}"
        );
        for item in source[kind]["items"].as_array().expect("items") {
            let key = item["key"].as_str().expect("key");
            let text = object[data][key]
                .as_str()
                .unwrap_or_else(|| panic!("the {kind} has no key {key}"));
            // The image's prompts are the repository's sounds/.
            let text = text.replace(
                "/etc/zentrale/sounds",
                &repo().join("sounds").display().to_string(),
            );
            let to = site.path().join(item["path"].as_str().expect("path"));
            fs::create_dir_all(to.parent().expect("a parent")).expect("mkdir");
            fs::write(to, text).expect("writing a projected file");
        }
    }
    let mount_path = mount["mountPath"].as_str().expect("mountPath");
    let config = site.path().join(
        config_path
            .strip_prefix(mount_path)
            .expect("under the mount")
            .trim_start_matches('/'),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("running zentrale check");
    assert!(
        out.status.success(),
        "zentrale check on the Kubernetes config:\n{}",
        output_text(&out)
    );

    // And it runs: on loopback ports here, answering the probes' path.
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let sip = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let rtp = free_udp_range(20);
    let log = site.path().join("zentrale.log");
    let out_file = fs::File::create(&log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args([
            "--sip-listen",
            &sip.to_string(),
            "--http-listen",
            &http.to_string(),
        ])
        .args(["--rtp-ports", &format!("{}-{}", rtp.0, rtp.1)])
        .arg("--log-json")
        .stdout(out_file.try_clone().expect("clone"))
        .stderr(out_file)
        .spawn()
        .expect("starting zentrale");
    let until = Instant::now() + Duration::from_secs(10);
    let mut answer = Err("not asked yet".to_string());
    while Instant::now() < until {
        answer = http_get(http, "/healthz", Duration::from_millis(500));
        if matches!(answer, Ok((200, _))) || matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        matches!(answer, Ok((200, _))),
        "the Kubernetes config did not come up: {answer:?}\n{}",
        read(&log)
    );
}

// ---------------------------------------------------------------------------
// Containerfile
// ---------------------------------------------------------------------------

/// The `--uid` the Containerfile gives its user.
fn containerfile_uid() -> Option<u64> {
    let text = read(&repo().join("Containerfile"));
    let at = text.find("useradd")?;
    let rest = &text[at..];
    let uid = rest
        .split_whitespace()
        .skip_while(|w| *w != "--uid")
        .nth(1)?;
    uid.parse().ok()
}

/// The Containerfile's instructions, continuation lines joined.
fn containerfile() -> Vec<(String, String)> {
    let text = read(&repo().join("Containerfile"));
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_string(), args.trim().to_string()));
                current.clear();
            }
        }
    }
    out
}

/// Two stages (a `dist` build and Debian bookworm-slim), a non-root user,
/// a HEALTHCHECK on /healthz, the demo's SIP, HTTP and RTP ports exposed,
/// volumes for config and sounds; what it copies exists and is not
/// excluded from the build context; its command's options exist, and the
/// config it names is where it copied the demo config.
#[test]
fn containerfile_builds_from_what_exists_and_exposes_the_demo_ports() {
    let steps = containerfile();
    let of = |op: &str| -> Vec<&String> {
        steps
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a)
            .collect()
    };
    let from = of("FROM");
    assert_eq!(from.len(), 2, "FROM: {from:?}");
    assert!(from[0].ends_with(" AS build"), "{}", from[0]);
    assert_eq!(from[1], "docker.io/library/debian:bookworm-slim");
    assert!(
        of("RUN")
            .iter()
            .any(|r| r.contains("cargo build --locked --profile dist"))
    );
    let user = of("USER");
    assert!(
        user.last()
            .is_some_and(|u| !u.starts_with("root") && !u.starts_with('0')),
        "USER {user:?}"
    );
    assert!(
        containerfile_uid().is_some_and(|u| u >= 1000),
        "no useradd --uid"
    );
    assert!(
        of("HEALTHCHECK")
            .iter()
            .any(|h| h.contains("CMD curl -fsS") && h.contains("\"$ZENTRALE_HEALTH_URL\"")),
        "no HEALTHCHECK that asks ZENTRALE_HEALTH_URL"
    );
    let env = of("ENV")
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        env.contains("ZENTRALE_HEALTH_URL=http://127.0.0.1:8080/healthz"),
        "{env}"
    );
    let volumes = of("VOLUME").iter().map(|v| v.as_str()).collect::<String>();
    for v in ["\"/etc/zentrale\"", "\"/etc/zentrale/sounds\""] {
        assert!(volumes.contains(v), "no VOLUME {v}: {volumes}");
    }

    // The demo's ports, as its config has them.
    let demo = read(&repo().join("zentrale.yaml"));
    let sip_port = demo
        .split("udp: [127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .expect("the demo's SIP port");
    let http_port = demo
        .split("listen: 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the demo's HTTP port");
    let rtp = demo
        .split("ports: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the demo's RTP range");
    let exposed: Vec<&str> = of("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    for port in [
        format!("{sip_port}/udp"),
        format!("{sip_port}/tcp"),
        format!("{http_port}/tcp"),
        format!("{rtp}/udp"),
    ] {
        assert!(
            exposed.contains(&port.as_str()),
            "EXPOSE lacks {port}: {exposed:?}"
        );
    }

    // What the build context must hold.
    let ignored: Vec<String> = read(&repo().join(".dockerignore"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    assert!(
        ignored.iter().any(|i| i == "target"),
        "target/ would go into the build context"
    );
    let mut copied = BTreeMap::new();
    for args in of("COPY") {
        if args.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = args.split_whitespace().collect();
        let (dest, sources) = words.split_last().expect("COPY with a destination");
        for s in sources {
            assert!(repo().join(s).exists(), "COPY {s}: not in the repository");
            assert!(
                !ignored.iter().any(|i| i == s),
                "COPY {s}: excluded by .dockerignore"
            );
            copied.insert(dest.to_string(), s.to_string());
        }
    }
    let cmd: Vec<String> =
        serde_json::from_str(of("CMD").last().expect("CMD")).expect("CMD in exec form");
    expect_known_flags(&cmd, "the Containerfile's CMD");
    let config = &cmd[cmd.iter().position(|a| a == "--config").expect("--config") + 1];
    assert_eq!(
        copied.get(config).map(String::as_str),
        Some("zentrale.yaml"),
        "CMD's config is not the copied demo"
    );
}

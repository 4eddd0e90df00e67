//! Shared harness for zentrale's integration tests.
//!
//! Every test starts its own daemon on its own loopback ports (so tests run
//! in parallel), talks to it with real peers (SIPp) or with small raw-socket
//! clients, and reads `/metrics`. Every wait is bounded; a failure message
//! carries the tail of the daemon's log. Only 127.0.0.0/8 is used.
//!
//! No HTTP or SIP client crates: HTTP goes through zentrale's own client
//! (`zentrale::ctl::http`, the one `zentrale ctl` uses), and the digest
//! tests use the `md-5` and `sha2` crates the daemon already depends on.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod baresip;
mod caller;
mod phone;
pub mod surge;

// Not every test binary uses them (see `dead_code` above).
#[allow(unused_imports)]
pub use baresip::*;
#[allow(unused_imports)]
pub use caller::*;
#[allow(unused_imports)]
pub use phone::*;
#[allow(unused_imports)]
pub use zentrale::ctl::http::{Client, Response};

pub const LOCALHOST: &str = "127.0.0.1";

/// How long a raw SIP peer waits for one response or request.
pub const SIP_WAIT: Duration = Duration::from_secs(5);

/// The repository root (where `zentrale.yaml`, `dialplans/`, `sounds/` live).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/sipp/NAME.xml`.
pub fn scenario(name: &str) -> PathBuf {
    repo().join("tests/sipp").join(format!("{name}.xml"))
}

// ---------------------------------------------------------------------------
// Temp dirs and randomness (std only)
// ---------------------------------------------------------------------------

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A cheap, non-cryptographic random number: time, pid and a counter mixed.
pub fn random_u64() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A directory under the system temp dir, removed on drop unless the test
/// is failing (then it stays for inspection and its path is printed).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "zentrale-test-{label}-{}-{:x}",
            std::process::id(),
            random_u64() & 0xffff_ffff
        ));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test failed: keeping {} for inspection",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// A loopback port free for both UDP and TCP right now (bind port 0, release).
/// Racy by nature; [`Daemon::start`] retries with new ports if a bind fails.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind((LOCALHOST, 0)).expect("binding a UDP port on 127.0.0.1");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind((LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1 after 50 tries");
}

/// A loopback TCP port free right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind((LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding a TCP port on 127.0.0.1")
        .port()
}

fn udp_free(port: u16) -> bool {
    UdpSocket::bind((LOCALHOST, port)).is_ok()
}

/// `count` consecutive UDP ports from a random even base in 20000-59000 whose
/// first, middle and last few ports are free. Parallel tests get disjoint
/// ranges with high probability (and a clash only costs a retry).
pub fn free_udp_range(count: u16) -> (u16, u16) {
    for _ in 0..100 {
        let base = 20_000 + (random_u64() % (39_000 - u64::from(count))) as u16;
        let base = base & !1;
        let last = base + count - 1;
        let probes = [
            base,
            base + 1,
            base + 2,
            base + 3,
            base + count / 2,
            last - 1,
            last,
        ];
        if probes.iter().all(|&p| udp_free(p)) {
            return (base, last);
        }
    }
    panic!("no free UDP range of {count} ports found in 20000-59000");
}

// ---------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------

/// The wall clock every test daemon starts at unless a test sets another:
/// Monday 2026-11-23, 10:00 in Germany, when every demo hotline is open.
pub const WEEKDAY_MORNING: &str = "2026-11-23T10:00:00+01:00";

/// How to start the daemon.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--clock`: the wall-clock time at start (`None`: [`WEEKDAY_MORNING`]),
    /// so service hours never depend on when the tests run.
    pub clock: Option<String>,
    /// Overrides `rtp.timeout_secs` (in a copy of zentrale.yaml).
    pub rtp_timeout_secs: Option<u64>,
    /// Literal `(from, to)` replacements in the copy of zentrale.yaml, each
    /// of which must match exactly once (so a changed demo file fails loudly
    /// instead of silently testing the wrong config).
    pub edits: Vec<(String, String)>,
    /// How many RTP ports `--rtp-ports` gives (`None`: 400, 200 legs: the
    /// 178 caller slots of the demo's 22 agents leave one tenant 112 at
    /// once, enough for the bursts of the tests).
    pub rtp_port_count: Option<u16>,
}

/// A running `zentrale run`; killed on drop.
pub struct Daemon {
    child: Child,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub rtp: (u16, u16),
    pub dir: TempDir,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon with the demo config.
    pub fn start() -> Daemon {
        Daemon::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Daemon {
        let dir = TempDir::new("daemon");
        let config = prepare_config(dir.path(), &opts);
        let mut last = String::new();
        // Ports are picked free and then released, so another process may grab
        // one before the daemon binds it: retry with new ports (bind errors only).
        for attempt in 1..=3 {
            let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let http = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
            let rtp = free_udp_range(opts.rtp_port_count.unwrap_or(400));
            let log = dir.path().join(format!("zentrale-{attempt}.log"));
            let out = fs::File::create(&log).expect("creating the daemon log file");
            let err = out.try_clone().expect("cloning the log file handle");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_zentrale"));
            cmd.arg("run")
                .arg("--config")
                .arg(&config)
                .arg("--sip-listen")
                .arg(sip.to_string())
                .arg("--http-listen")
                .arg(http.to_string())
                .arg("--rtp-ports")
                .arg(format!("{}-{}", rtp.0, rtp.1))
                .arg("--clock")
                .arg(opts.clock.as_deref().unwrap_or(WEEKDAY_MORNING))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            if std::env::var_os("RUST_LOG").is_none() {
                cmd.env("RUST_LOG", "info,rsipstack=warn");
            }
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {}: {e}", env!("CARGO_BIN_EXE_zentrale")));
            match wait_healthy(&mut child, http, Duration::from_secs(10)) {
                Ok(()) => {
                    return Daemon {
                        child,
                        sip,
                        http,
                        rtp,
                        dir,
                        log,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let tail = tail_of(&log, 60);
                    let lower = tail.to_ascii_lowercase();
                    let bind_clash =
                        lower.contains("address already in use") || lower.contains("addrinuse");
                    last = format!(
                        "{why}\n--- zentrale log ({}) tail ---\n{tail}",
                        log.display()
                    );
                    if !bind_clash {
                        break;
                    }
                    eprintln!(
                        "zentrale start attempt {attempt}: port clash, retrying with new ports"
                    );
                }
            }
        }
        panic!("zentrale did not become healthy: {last}");
    }

    /// The last `lines` lines of the daemon's stdout/stderr, including
    /// what it logged just before: the daemon writes its log in batches
    /// (`zentrale::logging::GATHER` apart), so this waits for one first.
    pub fn log_tail(&self, lines: usize) -> String {
        std::thread::sleep(zentrale::logging::GATHER * 4);
        tail_of(&self.log, lines)
    }

    /// Panics with `msg` and the daemon log tail.
    #[track_caller]
    pub fn fail(&self, msg: impl std::fmt::Display) -> ! {
        panic!(
            "{msg}\n--- zentrale log ({}) tail ---\n{}",
            self.log.display(),
            self.log_tail(60)
        )
    }

    /// Asserts `cond`, failing with `msg` and the daemon log tail.
    #[track_caller]
    pub fn check(&self, cond: bool, msg: impl FnOnce() -> String) {
        if !cond {
            self.fail(msg());
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM to the daemon (graceful shutdown).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| self.fail(format!("running kill -TERM: {e}")));
        self.check(status.success(), || format!("kill -TERM exited {status}"));
    }

    /// Waits up to `limit` for the daemon to exit; its status, or None if
    /// it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the daemon process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `GET /metrics` as text.
    pub fn metrics(&self) -> String {
        match http_get(self.http, "/metrics", Duration::from_secs(5)) {
            Ok((200, body)) => body,
            Ok((code, body)) => self.fail(format!("GET /metrics answered {code}: {body}")),
            Err(e) => self.fail(format!("GET /metrics failed: {e}")),
        }
    }

    /// A daemon on the demo config changed by `edits` (see [`Options`]).
    pub fn start_edited(edits: Vec<(String, String)>) -> Daemon {
        Daemon::start_with(Options {
            edits,
            ..Options::default()
        })
    }

    /// `GET path` from the API, as JSON; fails the test on any answer but
    /// 200 with JSON.
    pub fn api_json(&self, path: &str) -> serde_json::Value {
        match http_get(self.http, path, Duration::from_secs(5)) {
            Ok((200, body)) => serde_json::from_str(&body)
                .unwrap_or_else(|e| self.fail(format!("GET {path} is not JSON ({e}): {body}"))),
            Ok((code, body)) => self.fail(format!("GET {path} answered {code}: {body}")),
            Err(e) => self.fail(format!("GET {path}: {e}")),
        }
    }

    /// Agent `id` as `GET /api/v1/agents` shows it; fails the test when it
    /// is not there.
    pub fn agent(&self, id: &str) -> serde_json::Value {
        let all = self.api_json("/api/v1/agents");
        all.as_array()
            .and_then(|list| list.iter().find(|a| a["id"] == id).cloned())
            .unwrap_or_else(|| self.fail(format!("agent {id} missing from /api/v1/agents: {all}")))
    }

    /// `zentrale_sip_rejected_total` for `reason`; `None` before the first.
    pub fn rejected(&self, reason: &str) -> Option<f64> {
        metric_value(
            &self.metrics(),
            &format!("zentrale_sip_rejected_total{{reason=\"{reason}\"}}"),
        )
    }

    /// Sum of every sample of a metric family (`name` or `name{...}`), 0 if absent.
    pub fn metric_sum(&self, name: &str) -> f64 {
        metric_sum(&self.metrics(), name)
    }

    /// Polls /metrics until `pred(metric_sum(name))` holds or `limit` passes;
    /// returns the last value either way.
    pub fn wait_metric(&self, name: &str, limit: Duration, pred: impl Fn(f64) -> bool) -> f64 {
        let until = Instant::now() + limit;
        loop {
            let v = self.metric_sum(name);
            if pred(v) || Instant::now() >= until {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The call records the daemon wrote (with [`CDR_ON`]), one JSON object
    /// per line; waits up to `limit` until there are at least `n`.
    pub fn cdr_records(&self, n: usize, limit: Duration) -> Vec<serde_json::Value> {
        let path = self.dir.path().join("cdr.jsonl");
        let until = Instant::now() + limit;
        loop {
            let text = fs::read_to_string(&path).unwrap_or_default();
            // Only whole lines: the writer may be between two writes.
            let lines: Vec<&str> = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .collect();
            if lines.len() >= n || Instant::now() >= until {
                return lines
                    .iter()
                    .map(|l| {
                        serde_json::from_str(l).unwrap_or_else(|e| {
                            self.fail(format!("a call record is not JSON ({e}): {l}"))
                        })
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The edit to zentrale.yaml that turns call records on: `cdr.jsonl` next
/// to the daemon's copy of the config (see [`Daemon::cdr_records`]).
pub const CDR_ON: (&str, &str) = (
    "# cdr:\n#   path: /var/log/zentrale/cdr.jsonl\n",
    "cdr:\n  path: cdr.jsonl\n",
);

/// With [`CDR_ON`]: whole caller numbers in the records.
pub const CDR_FULL_NUMBERS: (&str, &str) = ("#   caller_number: masked", "  caller_number: full");

/// Polls `GET /healthz` until it answers `ok`, the child exits, or `limit`.
fn wait_healthy(child: &mut Child, http: SocketAddr, limit: Duration) -> Result<(), String> {
    let until = Instant::now() + limit;
    let mut last = String::from("no answer yet");
    while Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("zentrale exited early with {status}"));
        }
        match http_get(http, "/healthz", Duration::from_millis(500)) {
            Ok((200, body)) if body.trim() == "ok" => return Ok(()),
            Ok((code, body)) => last = format!("/healthz answered {code}: {body:?}"),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("/healthz not ok within {limit:?} ({last})"))
}

fn tail_of(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("zentrale log kept at {}", self.log.display());
        }
    }
}

/// Writes the config the daemon runs with into `dir` and returns its path.
///
/// Without overrides that is the demo config itself. With overrides it is a
/// copy of `zentrale.yaml` with the values changed, next to symlinks to the
/// repo's `dialplans/` and `sounds/` so relative paths in it still resolve.
fn prepare_config(dir: &Path, opts: &Options) -> PathBuf {
    let demo = repo().join("zentrale.yaml");
    assert!(
        demo.exists(),
        "the demo config {} is missing",
        demo.display()
    );
    if opts.rtp_timeout_secs.is_none() && opts.edits.is_empty() {
        return demo;
    }
    let mut text =
        fs::read_to_string(&demo).unwrap_or_else(|e| panic!("reading {}: {e}", demo.display()));
    if let Some(secs) = opts.rtp_timeout_secs {
        text = set_rtp_timeout(&text, secs);
    }
    for (from, to) in &opts.edits {
        text = replace_once(&text, from, to, &demo);
    }
    for sub in ["dialplans", "sounds"] {
        let target = repo().join(sub);
        if target.exists() {
            std::os::unix::fs::symlink(&target, dir.join(sub))
                .unwrap_or_else(|e| panic!("symlinking {}: {e}", target.display()));
        }
    }
    let path = dir.join("zentrale.yaml");
    fs::write(&path, text).expect("writing the modified config");
    path
}

/// `text` with the single occurrence of `from` replaced by `to`; panics
/// (naming `file`) if `from` occurs zero or several times.
pub fn replace_once(text: &str, from: &str, to: &str, file: &Path) -> String {
    let n = text.matches(from).count();
    assert!(
        n == 1,
        "{from:?} occurs {n} times in {}, the test needs exactly one",
        file.display()
    );
    text.replacen(from, to, 1)
}

/// A `(from, to)` edit of the demo config.
pub fn edit(from: &str, to: &str) -> (String, String) {
    (from.to_owned(), to.to_owned())
}

/// The demo trunk's `sources:` line: every loopback address is the carrier.
pub const TRUNK_SOURCES: &str =
    "    sources: [127.0.0.0/8]   # the carrier's signalling addresses\n";

/// The demo trunk takes only 127.0.0.1, so other loopback addresses are
/// ordinary (untrusted) sources.
pub fn trunk_only_127_0_0_1() -> (String, String) {
    edit(TRUNK_SOURCES, "    sources: [127.0.0.1/32]\n")
}

/// The demo trunk with more keys (`lines`, indented as its keys, each
/// ending in a newline).
pub fn trunk_with(lines: &str) -> (String, String) {
    edit(TRUNK_SOURCES, &format!("{TRUNK_SOURCES}{lines}"))
}

/// One `sip.limits` key of the demo config from its value `from` to `to`.
pub fn sip_limit(key: &str, from: &str, to: &str) -> (String, String) {
    edit(&format!("    {key}: {from} "), &format!("    {key}: {to} "))
}

/// Sets `rtp.timeout_secs` in a YAML text by lines, keeping everything else
/// byte for byte: replaces the key in the top-level `rtp:` block (block or
/// flow style), or adds it to that block, or appends an `rtp:` block.
pub fn set_rtp_timeout(yaml: &str, secs: u64) -> String {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 2);
    let mut i = 0;
    let mut done = false;
    while i < lines.len() {
        let line = lines[i];
        let is_rtp = !done && (line.starts_with("rtp:") || line.starts_with("rtp :"));
        if !is_rtp {
            out.push(line.to_owned());
            i += 1;
            continue;
        }
        done = true;
        let rest = line.split_once(':').map(|x| x.1).unwrap_or("").trim();
        if rest.starts_with('{') {
            // Flow style: rtp: { ports: "...", timeout_secs: 60 }
            let inner = rest.trim_start_matches('{').trim_end_matches('}');
            let mut items: Vec<String> = inner
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && !s.starts_with("timeout_secs"))
                .collect();
            items.push(format!("timeout_secs: {secs}"));
            out.push(format!("rtp: {{ {} }}", items.join(", ")));
            i += 1;
            continue;
        }
        out.push(line.to_owned());
        i += 1;
        // Block style: the indented lines that follow.
        let mut indent = String::from("  ");
        let mut replaced = false;
        while i < lines.len() {
            let l = lines[i];
            let trimmed = l.trim_start();
            let is_child =
                trimmed.is_empty() || trimmed.starts_with('#') || l.len() > trimmed.len();
            if !is_child {
                break;
            }
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                indent = l[..l.len() - trimmed.len()].to_owned();
            }
            if trimmed.starts_with("timeout_secs:") {
                out.push(format!("{indent}timeout_secs: {secs}"));
                replaced = true;
            } else {
                out.push(l.to_owned());
            }
            i += 1;
        }
        if !replaced {
            out.push(format!("{indent}timeout_secs: {secs}"));
        }
    }
    if !done {
        out.push("rtp:".to_owned());
        out.push(format!("  timeout_secs: {secs}"));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------
// HTTP and metrics
// ---------------------------------------------------------------------------

/// The demo config's API token (role admin): every POST to the API needs it.
pub const DEMO_TOKEN: &str = "demo-token-change-me";

/// The header line (with CRLF) that carries [`DEMO_TOKEN`].
pub const DEMO_AUTH: &str = "Authorization: Bearer demo-token-change-me\r\n";

/// zentrale's own HTTP client (`zentrale ctl`'s) for the API at `addr`,
/// with `token` as bearer and `timeout` for connecting and each read.
pub fn api_client(addr: SocketAddr, token: Option<&str>, timeout: Duration) -> Client {
    let mut client = Client::new(&addr.to_string(), token.map(str::to_owned))
        .unwrap_or_else(|e| panic!("a client of {addr}: {e}"));
    client.timeout = timeout;
    client
}

/// One request to the API at `addr` with extra header lines (`Name:
/// value`, each ending in CRLF, a `Host:` among them replacing the
/// default) and a JSON body; the whole response.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    header_lines: &str,
    body: Option<&str>,
) -> Result<Response, String> {
    let extra: Vec<(&str, &str)> = header_lines
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    api_client(addr, None, Duration::from_secs(10))
        .request(method, path, &extra, body.map(str::as_bytes))
        .map_err(|e| format!("{method} {path} to {addr}: {e}"))
}

/// The header section of a response as it came (names in lower case),
/// one `name: value` line each, for messages and `contains` checks.
pub fn head_of(r: &Response) -> String {
    r.headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect()
}

/// `GET path` from the API at `addr` (any content type): (status, body).
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let r = api_client(addr, None, timeout)
        .request("GET", path, &[("Accept", "*/*")], None)
        .map_err(|e| format!("GET {path} from {addr}: {e}"))?;
    Ok((r.status, r.text()))
}

/// The value of one exact sample, e.g. `zentrale_calls_active` or
/// `zentrale_sip_rejected_total{reason="source_not_allowed"}`.
pub fn metric_value(text: &str, name_with_labels: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let rest = l.strip_prefix(name_with_labels)?;
        let value = rest.strip_prefix(' ')?.split_whitespace().next()?;
        value.parse().ok()
    })
}

/// Sum of every sample named `name` (any labels); 0 if there is none.
/// `name` may be the family or the sample name (`x` matches `x` and `x_total`
/// only if given as such: pass exactly what appears before `{` or space).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let rest = if rest.starts_with('{') {
                &rest[rest.find('}')? + 1..]
            } else {
                rest
            };
            rest.strip_prefix(' ')?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

// ---------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------

/// What a SIPp run produced.
#[derive(Debug)]
pub struct SippRun {
    pub status: ExitStatus,
    /// SIPp's exit code: 0 all calls succeeded, 1 some failed, 97 internal
    /// exit, 99 no call processed, 255 (-1) fatal error, 254 (-2) bind error.
    pub code: Option<i32>,
    pub successful: u64,
    pub failed: u64,
    pub dir: PathBuf,
    /// Screen output, error log and the last stats line, for messages.
    pub report: String,
}

impl SippRun {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Fails the test with install advice when `sipp` is not on PATH.
pub fn require_sipp() {
    match Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "sipp not found ({e}): install sip-tester (the README test command does it: tests/run.sh)"
        ),
    }
}

/// One SIPp UAC run against the daemon.
///
/// Fixed flags: `-sf tests/sipp/NAME.xml SIP -i 127.0.0.1 -p <free> -mi
/// 127.0.0.1 -mp <free> -nostdin -timeout <limit>s -timeout_error
/// -max_retrans 5 -trace_stat -stf -fd 1 -trace_err -error_file
/// -trace_screen -screen_file` (all files in a temp dir, sipp runs there;
/// tone.ulaw/tone.alaw are written there for rtp_stream). `args` adds the
/// rest (`-s NUMBER -m N -r RATE -l LIMIT -t t1`). The process is killed if
/// it outlives `limit` by 15 s.
pub fn sipp(daemon: &Daemon, name: &str, args: &[&str], limit: Duration) -> SippRun {
    require_sipp();
    let sf = scenario(name);
    assert!(sf.exists(), "scenario {} is missing", sf.display());
    // Leak the dir on purpose only if the test fails (TempDir keeps it then).
    let dir = daemon
        .dir
        .path()
        .join(format!("sipp-{name}-{:x}", random_u64() & 0xff_ffff));
    fs::create_dir_all(&dir).expect("creating the sipp dir");
    write_tones(&dir);
    let stf = dir.join("stats.csv");
    let err = dir.join("errors.log");
    let screen = dir.join("screen.log");
    let out = dir.join("stdout.log");
    let local = free_port();
    let media = free_udp_range(16).0;
    let secs = limit.as_secs().max(1);
    let mut cmd = Command::new("sipp");
    cmd.arg("-sf")
        .arg(&sf)
        .arg(daemon.sip.to_string())
        .args(["-i", LOCALHOST, "-p", &local.to_string()])
        .args(["-mi", LOCALHOST, "-mp", &media.to_string()])
        .args([
            "-nostdin",
            "-timeout",
            &format!("{secs}s"),
            "-timeout_error",
        ])
        .args(["-max_retrans", "5", "-fd", "1"])
        .arg("-trace_stat")
        .arg("-stf")
        .arg(&stf)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&err)
        .arg("-trace_screen")
        .arg("-screen_file")
        .arg(&screen)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("sipp stdout file"))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "running sipp ({e}): install sip-tester (the README test command does it: tests/run.sh)"
        )
    });
    let until = Instant::now() + limit + Duration::from_secs(15);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let status = child.wait().expect("waiting for the killed sipp");
                eprintln!("sipp {name} outlived its {limit:?} limit and was killed");
                break status;
            }
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let (successful, failed, last_stats) = parse_stats(&stf);
    let mut report = String::new();
    let _ = writeln!(report, "sipp {name} {} -> {status}", args.join(" "));
    let _ = writeln!(
        report,
        "successful calls {successful}, failed calls {failed}"
    );
    if !stderr.trim().is_empty() {
        let _ = writeln!(report, "--- sipp stderr ---\n{}", stderr.trim());
    }
    for (label, path) in [("errors", &err), ("screen", &screen)] {
        if let Ok(t) = fs::read_to_string(path) {
            let t: Vec<&str> = t.lines().collect();
            let tail = t[t.len().saturating_sub(30)..].join("\n");
            let _ = writeln!(report, "--- sipp {label} ({}) ---\n{tail}", path.display());
        }
    }
    if !last_stats.is_empty() {
        let _ = writeln!(
            report,
            "--- stats: non-zero failure counters ---\n{last_stats}"
        );
    }
    SippRun {
        code: status.code(),
        status,
        successful,
        failed,
        dir,
        report,
    }
}

/// Runs sipp and fails the test (with both logs) unless it exited 0.
pub fn sipp_ok(daemon: &Daemon, name: &str, args: &[&str], limit: Duration) -> SippRun {
    let run = sipp(daemon, name, args, limit);
    if !run.ok() {
        daemon.fail(format!("SIPp scenario {name} failed\n{}", run.report));
    }
    run
}

/// (successful, failed, non-zero Failed* counters) from the last row of a
/// `-trace_stat` CSV (`;`-separated, cumulative `(C)` columns).
fn parse_stats(path: &Path) -> (u64, u64, String) {
    let Ok(text) = fs::read_to_string(path) else {
        return (0, 0, String::new());
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, 0, String::new());
    };
    let Some(last) = lines.next_back() else {
        return (0, 0, String::new());
    };
    let names: Vec<&str> = header.split(';').collect();
    let values: Vec<&str> = last.split(';').collect();
    let get = |col: &str| {
        names
            .iter()
            .position(|n| *n == col)
            .and_then(|i| values.get(i))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut failures = String::new();
    for (n, v) in names.iter().zip(&values) {
        if n.starts_with("Failed") && n.ends_with("(C)") && v.trim() != "0" && !v.trim().is_empty()
        {
            let _ = writeln!(failures, "{n} = {v}");
        }
    }
    (get("SuccessfulCall(C)"), get("FailedCall(C)"), failures)
}

/// 1 s of a 440 Hz tone as raw G.711 (tone.ulaw, tone.alaw), 8 kHz: what
/// uac_call.xml streams with rtp_stream.
pub fn write_tones(dir: &Path) {
    let samples: Vec<i16> = (0..8000)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16
        })
        .collect();
    fs::write(
        dir.join("tone.ulaw"),
        samples
            .iter()
            .map(|&s| linear_to_ulaw(s))
            .collect::<Vec<u8>>(),
    )
    .expect("writing tone.ulaw");
    fs::write(
        dir.join("tone.alaw"),
        samples
            .iter()
            .map(|&s| linear_to_alaw(s))
            .collect::<Vec<u8>>(),
    )
    .expect("writing tone.alaw");
}

/// G.711 mu-law encoder (ITU-T G.711, with bias 0x84).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// G.711 A-law encoder.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3; // 13-bit
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    let s = s.min(0x0fff);
    let (exponent, mantissa) = if s < 32 {
        (0, s >> 1)
    } else {
        let mut e = 1;
        while e < 7 && s >= (32 << e) {
            e += 1;
        }
        (e, (s >> e) & 0x0f)
    };
    ((sign | (exponent << 4) | mantissa) as u8) ^ 0x55
}

// ---------------------------------------------------------------------------
// A raw SIP client (UDP or TCP), enough for the tests that need the bytes
// ---------------------------------------------------------------------------

/// A parsed SIP message.
#[derive(Clone, Debug)]
pub struct SipMsg {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

const COMPACT: &[(&str, &str)] = &[
    ("v", "via"),
    ("f", "from"),
    ("t", "to"),
    ("i", "call-id"),
    ("m", "contact"),
    ("l", "content-length"),
    ("c", "content-type"),
    ("k", "supported"),
    ("s", "subject"),
    ("e", "content-encoding"),
];

fn canonical(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    COMPACT
        .iter()
        .find(|(c, _)| *c == n)
        .map(|(_, l)| (*l).to_owned())
        .unwrap_or(n)
}

impl SipMsg {
    /// Parses one message (header lines unfolded, compact names expanded).
    pub fn parse(data: &[u8]) -> Option<SipMsg> {
        let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&data[..end]);
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_owned();
        let mut headers: Vec<(String, String)> = Vec::new();
        for l in lines {
            if l.starts_with(' ') || l.starts_with('\t') {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(l.trim());
                }
                continue;
            }
            let (k, v) = l.split_once(':')?;
            headers.push((canonical(k), v.trim().to_owned()));
        }
        let mut body = data[end + 4..].to_vec();
        let m = SipMsg {
            start,
            headers,
            body: Vec::new(),
        };
        if let Some(n) = m
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            body.truncate(n);
        }
        Some(SipMsg { body, ..m })
    }

    pub fn is_response(&self) -> bool {
        self.start.starts_with("SIP/2.0 ")
    }

    /// The status code of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        if !self.is_response() {
            return None;
        }
        self.start.split_whitespace().nth(1)?.parse().ok()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        (!self.is_response())
            .then(|| self.start.split_whitespace().next())
            .flatten()
    }

    /// First value of a header (long or compact name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let n = canonical(name);
        self.headers
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let n = canonical(name);
        self.headers
            .iter()
            .filter(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The method in CSeq.
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("cseq")?.split_whitespace().nth(1)
    }

    /// A `;tag=` parameter of To or From.
    pub fn tag(&self, header: &str) -> Option<String> {
        let v = self.header(header)?;
        let after = v.rsplit_once('>').map(|x| x.1).unwrap_or(v);
        after
            .split(';')
            .find_map(|p| p.trim().strip_prefix("tag="))
            .map(|t| t.trim().to_owned())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The SDP's audio media: (connection address, port, payload types).
pub fn sdp_audio(sdp: &str) -> Option<(String, u16, Vec<u8>)> {
    let mut addr = None;
    let mut media = None;
    for l in sdp.lines() {
        let l = l.trim();
        if let Some(c) = l.strip_prefix("c=IN IP4 ") {
            // session- or media-level; the later (media-level) one wins
            addr = Some(c.split('/').next().unwrap_or(c).trim().to_owned());
        }
        if let Some(m) = l.strip_prefix("m=audio ") {
            let mut it = m.split_whitespace();
            let port = it.next()?.parse().ok()?;
            let _proto = it.next()?;
            let pts = it.filter_map(|p| p.parse().ok()).collect();
            media = Some((port, pts));
        }
    }
    let (port, pts) = media?;
    Some((addr?, port, pts))
}

/// The media address and payload types of an SDP body; fails the test
/// when it has none.
pub fn sdp_media(d: &Daemon, sdp: &str) -> (SocketAddr, Vec<u8>) {
    let Some((ip, port, pts)) = sdp_audio(sdp) else {
        d.fail(format!("no audio c=/m= line in the SDP:\n{sdp}"));
    };
    let addr = format!("{ip}:{port}")
        .parse()
        .unwrap_or_else(|_| d.fail(format!("bad media address {ip}:{port}")));
    (addr, pts)
}

/// A tiny SIP UDP endpoint on 127.0.0.1.
pub struct SipUdp {
    pub sock: UdpSocket,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl SipUdp {
    pub fn new(remote: SocketAddr) -> SipUdp {
        SipUdp::bind(LOCALHOST, remote)
    }

    /// An endpoint on another loopback address (e.g. `127.0.0.2`), for the
    /// tests of source-address rules.
    pub fn bind(ip: &str, remote: SocketAddr) -> SipUdp {
        let sock = UdpSocket::bind((ip, 0))
            .unwrap_or_else(|e| panic!("binding a SIP test socket on {ip}: {e}"));
        let local = sock.local_addr().expect("local addr");
        SipUdp {
            sock,
            local,
            remote,
        }
    }

    pub fn send(&self, text: &str) {
        self.sock
            .send_to(text.as_bytes(), self.remote)
            .expect("sending SIP over UDP");
    }

    pub fn send_bytes(&self, data: &[u8]) {
        self.sock
            .send_to(data, self.remote)
            .expect("sending SIP over UDP");
    }

    /// The next message within `limit` (None on timeout).
    pub fn recv(&self, limit: Duration) -> Option<SipMsg> {
        let until = Instant::now() + limit;
        let mut buf = vec![0u8; 65_535];
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Some(m) = SipMsg::parse(&buf[..n]) {
                        return Some(m);
                    }
                    // keep-alives and garbage: keep waiting
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for a response whose CSeq method is `method` and whose code
    /// satisfies `pred`, skipping others (e.g. 100, retransmissions).
    pub fn expect(
        &self,
        method: &str,
        limit: Duration,
        pred: impl Fn(u16) -> bool,
    ) -> Result<SipMsg, String> {
        let until = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let Some(m) = self.recv(left) else { break };
            if let Some(code) = m.status()
                && m.cseq_method() == Some(method)
            {
                if pred(code) {
                    return Ok(m);
                }
                seen.push(m.start.clone());
            } else {
                seen.push(m.start.clone());
            }
        }
        Err(format!(
            "no matching {method} response within {limit:?}; saw {seen:?}"
        ))
    }

    /// zentrale's final response to `method` within [`SIP_WAIT`]; fails
    /// the test (with the daemon's log) without one.
    pub fn final_response(&self, d: &Daemon, method: &str) -> SipMsg {
        self.expect(method, SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("{method}: {e}")))
    }

    /// A fresh branch, tag or Call-ID token.
    pub fn token() -> String {
        format!("{:016x}", random_u64())
    }
}

/// The text of an INVITE from a trunk caller to `number` at `to`, offering
/// `pts` (0 PCMU, 8 PCMA, 101 telephone-event) with media at `rtp`.
pub struct Invite {
    pub call_id: String,
    pub from_tag: String,
    pub branch: String,
    pub text: String,
}

pub fn invite(
    local: SocketAddr,
    transport: &str,
    to: SocketAddr,
    number: &str,
    rtp: SocketAddr,
    pts: &[u8],
) -> Invite {
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let from_tag = SipUdp::token();
    let branch = format!("z9hG4bK{}", SipUdp::token());
    let mut sdp = String::new();
    let _ = write!(
        sdp,
        "v=0\r\no=test 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n",
        ip = rtp.ip(),
        port = rtp.port(),
        pts = pts
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    for pt in pts {
        let _ = match pt {
            0 => write!(sdp, "a=rtpmap:0 PCMU/8000\r\n"),
            8 => write!(sdp, "a=rtpmap:8 PCMA/8000\r\n"),
            101 => write!(
                sdp,
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
            ),
            _ => Ok(()),
        };
    }
    sdp.push_str("a=ptime:20\r\na=sendrecv\r\n");
    let text = format!(
        "INVITE sip:{number}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Testanrufer\" <sip:0301234567@{local}>;tag={from_tag}\r\n\
         To: <sip:{number}@{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:0301234567@{local};transport={tl}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{sdp}",
        tl = transport.to_ascii_lowercase(),
        len = sdp.len()
    );
    Invite {
        call_id,
        from_tag,
        branch,
        text,
    }
}

/// An in-dialog request (ACK for a 2xx, BYE) after `answer` to `inv`.
pub fn in_dialog(
    method: &str,
    cseq: u32,
    inv: &Invite,
    answer: &SipMsg,
    local: SocketAddr,
    transport: &str,
) -> String {
    let to = answer.header("to").unwrap_or_default();
    let from = answer.header("from").unwrap_or_default();
    let target = answer
        .header("contact")
        .and_then(|c| Some(c.split_once('<')?.1.split_once('>')?.0.to_owned()))
        .unwrap_or_else(|| answer.header("to").unwrap_or_default().to_owned());
    // Record-Route, reversed, becomes our Route set (usually absent here).
    let mut routes: Vec<&str> = answer.headers_named("record-route");
    routes.reverse();
    let route = if routes.is_empty() {
        String::new()
    } else {
        format!("Route: {}\r\n", routes.join(", "))
    };
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {cid}\r\n\
         CSeq: {cseq} {method}\r\n\
         {route}Content-Length: 0\r\n\r\n",
        b = SipUdp::token(),
        cid = inv.call_id,
    )
}

/// A response to a request from zentrale (e.g. 200 for its BYE).
pub fn response_to(req: &SipMsg, code: u16, reason: &str) -> String {
    let mut s = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.headers_named("via") {
        let _ = write!(s, "Via: {v}\r\n");
    }
    for h in ["from", "to", "call-id", "cseq"] {
        if let Some(v) = req.header(h) {
            let name = match h {
                "from" => "From",
                "to" => "To",
                "call-id" => "Call-ID",
                _ => "CSeq",
            };
            let _ = write!(s, "{name}: {v}\r\n");
        }
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s
}

/// A SIP-over-TCP connection that frames messages by Content-Length.
pub struct SipTcp {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl SipTcp {
    pub fn connect(addr: SocketAddr) -> SipTcp {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .expect("connecting SIP over TCP");
        let _ = stream.set_nodelay(true);
        SipTcp {
            stream,
            buf: Vec::new(),
        }
    }

    /// An already connected stream (e.g. bound to another loopback
    /// address first).
    pub fn from_stream(stream: TcpStream) -> SipTcp {
        let _ = stream.set_nodelay(true);
        SipTcp {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(data)
    }

    /// The next whole message within `limit`; None on timeout or close.
    pub fn recv(&mut self, limit: Duration) -> Option<SipMsg> {
        let until = Instant::now() + limit;
        loop {
            // drop leading CRLF keep-alives
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let cl = head
                    .split("\r\n")
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        matches!(k.trim(), "content-length" | "l")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + cl {
                    let msg: Vec<u8> = self.buf.drain(..end + 4 + cl).collect();
                    return SipMsg::parse(&msg);
                }
            }
            let left = until.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Digest helpers (the tests compute their own answers to zentrale's challenges)
// ---------------------------------------------------------------------------

/// Lower-case hex MD5 of `s`, as RFC 2617 digests use it.
pub fn md5_hex(s: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(s.as_bytes()))
}

/// The value of parameter `name` in a `WWW-`/`Proxy-Authenticate` challenge,
/// quoted or not.
pub fn auth_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let i = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[i..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split([',', ' ']).next()
    }
}

// ---------------------------------------------------------------------------
// RTP: a peer that talks every 20 ms and records what it hears
// ---------------------------------------------------------------------------

/// One RTP packet as received.
#[derive(Debug, Clone, Copy)]
pub struct Pkt {
    pub at: Instant,
    pub marker: bool,
    pub pt: u8,
    pub seq: u16,
    pub ssrc: u32,
    /// The payload byte when every payload byte is the same (our test
    /// peers fill theirs with one byte; prompts never are).
    pub fill: Option<u8>,
}

#[derive(Default)]
struct RtpShared {
    target: Option<SocketAddr>,
    pt: u8,
    fill: u8,
    got: Vec<Pkt>,
    /// The payload of `got[i]` at index i (kept apart so `Pkt` stays `Copy`).
    payloads: Vec<Vec<u8>>,
}

/// An RTP endpoint on its own thread: sends a packet of 160 `fill` bytes
/// every 20 ms to the target (if any) and records every packet it gets.
pub struct RtpPeer {
    pub addr: SocketAddr,
    /// The same socket, for packets a test sends itself (DTMF events).
    out: UdpSocket,
    shared: Arc<Mutex<RtpShared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpPeer {
    pub fn new(ssrc: u32) -> RtpPeer {
        let sock = UdpSocket::bind((LOCALHOST, 0)).expect("binding an RTP test socket");
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("rtp read timeout");
        let addr = sock.local_addr().expect("rtp addr");
        let out = sock.try_clone().expect("cloning the RTP socket");
        let shared = Arc::new(Mutex::new(RtpShared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seq: u16 = 100;
                let mut ts: u32 = 8000;
                let mut next = Instant::now();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        next += Duration::from_millis(20);
                        let (target, pt, fill) = {
                            let s = shared.lock().unwrap();
                            (s.target, s.pt, s.fill)
                        };
                        if let Some(to) = target {
                            let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0];
                            p[2..4].copy_from_slice(&seq.to_be_bytes());
                            p[4..8].copy_from_slice(&ts.to_be_bytes());
                            p.extend_from_slice(&ssrc.to_be_bytes());
                            p.extend(std::iter::repeat_n(fill, 160));
                            let _ = sock.send_to(&p, to);
                            seq = seq.wrapping_add(1);
                            ts = ts.wrapping_add(160);
                        }
                    }
                    if let Ok((n, _)) = sock.recv_from(&mut buf) {
                        let p = &buf[..n];
                        if n > 12 && p[0] >> 6 == 2 {
                            let payload = &p[12..];
                            let pkt = Pkt {
                                at: Instant::now(),
                                marker: p[1] & 0x80 != 0,
                                pt: p[1] & 0x7f,
                                seq: u16::from_be_bytes([p[2], p[3]]),
                                ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
                                fill: payload
                                    .iter()
                                    .all(|b| *b == payload[0])
                                    .then_some(payload[0]),
                            };
                            let mut s = shared.lock().unwrap();
                            s.got.push(pkt);
                            s.payloads.push(payload.to_vec());
                        }
                    }
                }
            })
        };
        RtpPeer {
            addr,
            out,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Starts (or redirects, or with None stops) sending `fill` packets.
    pub fn talk(&self, to: Option<SocketAddr>, pt: u8, fill: u8) {
        let mut s = self.shared.lock().unwrap();
        s.target = to;
        s.pt = pt;
        s.fill = fill;
    }

    /// Sends one packet as it is, from the peer's port.
    pub fn send_raw(&self, packet: &[u8], to: SocketAddr) {
        let _ = self.out.send_to(packet, to);
    }

    /// Every packet received so far.
    pub fn got(&self) -> Vec<Pkt> {
        self.shared.lock().unwrap().got.clone()
    }

    /// Packets received after `t`.
    pub fn got_since(&self, t: Instant) -> Vec<Pkt> {
        self.got().into_iter().filter(|p| p.at > t).collect()
    }

    /// Every packet received so far, with its payload.
    pub fn heard(&self) -> Vec<(Pkt, Vec<u8>)> {
        let s = self.shared.lock().unwrap();
        s.got
            .iter()
            .copied()
            .zip(s.payloads.iter().cloned())
            .collect()
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Prompts as the caller hears them: G.711 frames of sounds/*.wav
// ---------------------------------------------------------------------------

/// RTP frame size of every prompt zentrale plays: 20 ms of 8 kHz G.711.
pub const FRAME: usize = 160;

/// The samples of `sounds/NAME.wav`, found by walking its RIFF chunks (so a
/// `LIST` or `fact` chunk before `data` would not shift the audio); fails
/// unless the format is 8 kHz mono 16-bit PCM, what zentrale loads.
pub fn wav_samples(name: &str) -> Vec<i16> {
    let path = repo().join("sounds").join(format!("{name}.wav"));
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let bad = |why: String| -> ! { panic!("{}: {why}", path.display()) };
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bad("not a RIFF/WAVE file".to_owned());
    }
    let le16 = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let le32 = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    // (format tag, channels, sample rate, bits per sample)
    let mut format = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = le32(&bytes, at + 4) as usize;
        let Some(body) = bytes.get(at + 8..at + 8 + size) else {
            bad(format!(
                "chunk {:?} of {size} bytes runs past the end of the file",
                String::from_utf8_lossy(id)
            ));
        };
        match id {
            b"fmt " if size >= 16 => {
                format = Some((le16(body, 0), le16(body, 2), le32(body, 4), le16(body, 14)));
            }
            b"fmt " => bad(format!("fmt chunk of {size} bytes, want at least 16")),
            b"data" => {
                if format != Some((1, 1, 8000, 16)) {
                    bad(format!(
                        "format (tag, channels, rate, bits) {format:?} before the data chunk, \
                         want (1, 1, 8000, 16)"
                    ));
                }
                return body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at += 8 + size + (size & 1);
    }
    bad("no data chunk".to_owned())
}

/// `sounds/NAME.wav` as zentrale sends it with payload type `pt`: G.711 in
/// 160-byte frames, the last one padded with the codec's silence (the next
/// prompt starts on a fresh frame).
pub fn prompt_frames(d: &Daemon, name: &str, pt: u8) -> Vec<Vec<u8>> {
    use zentrale::media::g711;
    type Encoder = fn(i16) -> u8;
    let (ours, theirs, silence): (Encoder, Encoder, u8) = match pt {
        0 => (linear_to_ulaw, g711::linear_to_ulaw, 0xFF),
        8 => (linear_to_alaw, g711::linear_to_alaw, 0xD5),
        _ => d.fail(format!("no G.711 encoder for payload type {pt}")),
    };
    let samples = wav_samples(name);
    // The harness encodes on its own, so a wrong daemon encoder cannot hide
    // behind it; where the two round differently the byte comparison would
    // blame the daemon for the harness, so say so here instead.
    let differ: Vec<i16> = samples
        .iter()
        .copied()
        .filter(|&s| ours(s) != theirs(s))
        .collect();
    d.check(differ.is_empty(), || {
        format!(
            "the harness's G.711 encoder for PT {pt} disagrees with src/media/g711.rs on {} \
             samples of {name}.wav (e.g. {:?}): fix tests/common/mod.rs or use the other law",
            differ.len(),
            &differ[..differ.len().min(5)]
        )
    });
    let mut bytes: Vec<u8> = samples.iter().map(|&s| ours(s)).collect();
    bytes.resize(bytes.len().div_ceil(FRAME) * FRAME, silence);
    bytes.chunks(FRAME).map(<[u8]>::to_vec).collect()
}

/// Index of the first payload in `heard[from..]` equal to `frame`.
pub fn find_frame(heard: &[(Pkt, Vec<u8>)], frame: &[u8], from: usize) -> Option<usize> {
    heard
        .get(from..)?
        .iter()
        .position(|(_, p)| p == frame)
        .map(|i| from + i)
}

/// Fails unless `heard[at..]` starts with `frames`, naming the first frame
/// that differs.
pub fn expect_frames(
    d: &Daemon,
    heard: &[(Pkt, Vec<u8>)],
    at: usize,
    frames: &[Vec<u8>],
    what: &str,
) {
    for (i, want) in frames.iter().enumerate() {
        match heard.get(at + i) {
            Some((_, got)) if got == want => {}
            Some((p, got)) => d.fail(format!(
                "{what}: frame {i} of {} (packet {}, seq {}) differs: got {:02x?}.., want {:02x?}..",
                frames.len(),
                at + i,
                p.seq,
                &got[..got.len().min(8)],
                &want[..8]
            )),
            None => d.fail(format!(
                "{what}: the caller heard only {} of its {} frames",
                i,
                frames.len()
            )),
        }
    }
}

/// Fails unless the packets form one stream: one SSRC, sequence +1 each.
pub fn expect_one_stream(d: &Daemon, heard: &[(Pkt, Vec<u8>)], what: &str) {
    let breaks: Vec<(usize, u16, u16)> = heard
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1].0.ssrc != w[0].0.ssrc || w[1].0.seq != w[0].0.seq.wrapping_add(1))
        .map(|(i, w)| (i + 1, w[0].0.seq, w[1].0.seq))
        .collect();
    d.check(breaks.is_empty(), || {
        format!(
            "{what}: the caller's stream ({} packets) breaks its SSRC or sequence at \
             (packet, seq before, seq after) {breaks:?}",
            heard.len()
        )
    });
}

/// Playing time of `frames`.
pub fn frames_duration(frames: &[Vec<u8>]) -> Duration {
    Duration::from_millis(20 * frames.len() as u64)
}

/// The media direction attribute of an SDP body (`sendrecv` when absent);
/// `several: [...]` if it names more than one, which no test expects.
pub fn sdp_direction(sdp: &str) -> String {
    let dirs: Vec<&str> = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|a| matches!(*a, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
        .collect();
    match dirs.as_slice() {
        [] => "sendrecv".to_owned(),
        [one] => (*one).to_owned(),
        more => format!("several: {more:?}"),
    }
}

/// The REGISTER requests of one registration of `user` from `sip` (one
/// Call-ID and tag): `request(cseq, auth)` where `auth` is empty or whole
/// header lines (`Authorization: ...\r\n`).
pub fn register_requests<'a>(
    d: &Daemon,
    sip: &'a SipUdp,
    user: &'a str,
    expires: u32,
) -> impl Fn(u32, &str) -> String + 'a {
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let tag = SipUdp::token();
    let (uri, remote) = (format!("sip:{}", d.sip), d.sip);
    move |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{remote}>;tag={tag}\r\n\
             To: <sip:{user}@{remote}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{l}>\r\n\
             Expires: {expires}\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            l = sip.local,
            b = SipUdp::token()
        )
    }
}

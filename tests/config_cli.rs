//! The `zentrale` command line against real files: `zentrale check` on the
//! demo and on broken copies of it (every problem one
//! `file:line:col: what; what to do` line on stderr), and `zentrale run`
//! refusing a bad config or demo passwords on a public address before it
//! opens any socket.

mod common;

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_zentrale");

/// Runs the binary with `args` to completion (at most 20 s).
fn zentrale(args: &[&str], dir: &Path) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {BIN}: {e}"));
    let until = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("polling zentrale").is_none() {
        if Instant::now() >= until {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting zentrale");
            panic!(
                "zentrale {args:?} still running after 20 s\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
        .wait_with_output()
        .expect("collecting zentrale's output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of the demo deployment in a temp dir: zentrale.yaml and the
/// dialplans copied (tests edit them), sounds linked.
fn demo_copy(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    fs::copy(
        repo().join("zentrale.yaml"),
        dir.path().join("zentrale.yaml"),
    )
    .expect("copying zentrale.yaml");
    fs::create_dir(dir.path().join("dialplans")).expect("creating dialplans/");
    for entry in fs::read_dir(repo().join("dialplans")).expect("reading dialplans/") {
        let p = entry.expect("dialplan entry").path();
        fs::copy(
            &p,
            dir.path().join("dialplans").join(p.file_name().unwrap()),
        )
        .unwrap_or_else(|e| panic!("copying {}: {e}", p.display()));
    }
    std::os::unix::fs::symlink(repo().join("sounds"), dir.path().join("sounds"))
        .expect("linking sounds/");
    dir
}

/// One deliberate problem: replace `from` by `to` in `file` (relative to
/// the deployment); zentrale must report it at the line of the edit and
/// the column where `marker` (a part of `to`) starts, with `says` in the
/// message.
struct Problem {
    file: &'static str,
    from: &'static str,
    to: &'static str,
    marker: &'static str,
    says: &'static str,
}

const PROBLEMS: &[Problem] = &[
    Problem {
        file: "zentrale.yaml",
        from: "  nonce_ttl_secs: 300 ",
        to: "  nonce_tll_secs: 300 ",
        marker: "nonce_tll_secs",
        says: "unknown key `nonce_tll_secs`",
    },
    Problem {
        file: "zentrale.yaml",
        from: "  - { extension: \"1002\"",
        to: "  - { extension: \"1001\"",
        marker: "\"1001\"",
        says: "extension `1001` is used twice",
    },
    Problem {
        file: "dialplans/kassel.yaml",
        from: "greeting: greeting-kassel-buergeramt",
        to: "greeting: greeting-kasel-buergeramt",
        marker: "greeting-kasel-buergeramt",
        says: "sound `greeting-kasel-buergeramt` not found",
    },
    Problem {
        file: "dialplans/krefeld.yaml",
        from: "\"02151860\"",
        to: "\"02151-860\"",
        marker: "\"02151-860\"",
        says: "bad number `02151-860`",
    },
    Problem {
        file: "dialplans/quickborn.yaml",
        from: "name: \"Stadt Quickborn Rathaus\"",
        to: "name: \"Stadt Quickborn Rathaus\" extra",
        marker: "extra",
        says: "fix the YAML syntax",
    },
];

impl Problem {
    /// Applies the edit in `dir`; returns the expected `file:line:col: `
    /// prefix of the error line.
    fn apply(&self, dir: &Path) -> String {
        let path = dir.join(self.file);
        let old = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let new = replace_once(&old, self.from, self.to, &path);
        fs::write(&path, &new).expect("writing the broken file");
        let (line_no, line) = new
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(self.to))
            .expect("the edited line");
        let byte = line.find(self.marker).expect("marker in the edited line");
        let column = line[..byte].chars().count() + 1;
        format!("{}:{}:{}: ", path.display(), line_no + 1, column)
    }
}

/// Checks that every stderr line has the form `file:line:col: what; what to
/// do` and that the lines are exactly `expected` (prefix, fragment), in order.
fn check_report(stderr: &str, expected: &[(String, &str)]) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "want one line per problem ({}), got:\n{stderr}",
        expected.len()
    );
    for (line, (prefix, says)) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(prefix.as_str()),
            "want a line starting {prefix:?}, got {line:?}\nall of stderr:\n{stderr}"
        );
        let rest = &line[prefix.len()..];
        let (what, todo) = rest
            .split_once("; ")
            .unwrap_or_else(|| panic!("no `; what to do` part in {line:?}"));
        assert!(
            !what.trim().is_empty() && !todo.trim().is_empty(),
            "empty message or hint in {line:?}"
        );
        assert!(line.contains(says), "{line:?} does not say {says:?}");
    }
}

#[test]
fn check_accepts_the_demo_config() {
    let config = repo().join("zentrale.yaml");
    let out = zentrale(
        &["check", "--config", config.to_str().expect("utf-8 path")],
        &repo(),
    );
    assert!(
        out.status.success(),
        "check of the demo config failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(": ok (4 tenants"),
        "check said {stdout:?}, want the ok summary"
    );
}

#[test]
fn check_reports_each_problem_at_its_file_line_and_column() {
    for p in PROBLEMS {
        let dir = demo_copy("check-one");
        let prefix = p.apply(dir.path());
        let config = dir.path().join("zentrale.yaml");
        let out = zentrale(
            &["check", "--config", config.to_str().expect("utf-8 path")],
            dir.path(),
        );
        assert!(
            !out.status.success(),
            "check accepted a config with `{}` in {}",
            p.to,
            p.file
        );
        check_report(&text(&out.stderr), &[(prefix, p.says)]);
    }
}

#[test]
fn check_reports_several_problems_one_line_each() {
    let dir = demo_copy("check-all");
    let expected: Vec<(String, &str)> = PROBLEMS
        .iter()
        .map(|p| (p.apply(dir.path()), p.says))
        .collect();
    let config = dir.path().join("zentrale.yaml");
    let out = zentrale(
        &["check", "--config", config.to_str().expect("utf-8 path")],
        dir.path(),
    );
    assert!(!out.status.success(), "check accepted five problems");
    // Main file first, then the dialplans in the order the tenants list them.
    check_report(&text(&out.stderr), &expected);
}

/// Repeatedly tries to reach `addrs` until `child` exits; panics if one
/// answers (zentrale must not listen with a config it refuses).
fn assert_never_listens(child: &mut std::process::Child, tcp: &[SocketAddr]) {
    let until = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("polling zentrale").is_none() {
        for a in tcp {
            if TcpStream::connect_timeout(a, Duration::from_millis(50)).is_ok() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("zentrale accepted a connection on {a} with a config it must refuse");
            }
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zentrale run with a refused config did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn run_with_a_bad_config_exits_without_listening() {
    let dir = demo_copy("run-bad");
    let prefix = PROBLEMS[1].apply(dir.path());
    let config = dir.path().join("zentrale.yaml");
    let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let (rtp_first, rtp_last) = free_udp_range(20);
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().expect("utf-8 path")])
        .args(["--sip-listen", &sip.to_string()])
        .args(["--http-listen", &http.to_string()])
        .args(["--rtp-ports", &format!("{rtp_first}-{rtp_last}")])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {BIN}: {e}"));
    assert_never_listens(&mut child, &[sip, http]);
    let out = child.wait_with_output().expect("collecting zentrale");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "zentrale run exited {} with a broken config",
        out.status
    );
    assert!(
        stderr.lines().any(|l| l.starts_with(&prefix)),
        "stderr does not point at {prefix:?}:\n{stderr}"
    );
    assert!(
        stderr.contains("did not start"),
        "stderr does not say zentrale did not start:\n{stderr}"
    );
    assert!(
        !stdout.contains("zentrale is up") && !stderr.contains("zentrale is up"),
        "zentrale came up with a broken config:\n{stdout}{stderr}"
    );
    // Nothing was left bound.
    assert!(
        UdpSocket::bind(sip).is_ok() && TcpListener::bind(sip).is_ok(),
        "the SIP port {sip} is taken after zentrale refused to start"
    );
}

/// `--sip-listen 0.0.0.0:PORT` with the demo passwords is refused while
/// loading the config, before any socket is opened (main.rs loads and
/// validates the config before `daemon::run` binds). As a guard, the test
/// holds 127.0.0.1:PORT on UDP and TCP while zentrale runs, so even a
/// zentrale that tried to bind 0.0.0.0:PORT would fail instead of listening
/// beyond loopback.
#[test]
fn demo_passwords_on_a_public_address_are_refused_before_binding() {
    let port = free_port();
    let guard_udp = UdpSocket::bind((LOCALHOST, port)).expect("holding the UDP port");
    let guard_tcp = TcpListener::bind((LOCALHOST, port)).expect("holding the TCP port");
    let http = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let (rtp_first, rtp_last) = free_udp_range(20);
    let config = repo().join("zentrale.yaml");
    let out = zentrale(
        &[
            "run",
            "--config",
            config.to_str().expect("utf-8 path"),
            "--sip-listen",
            &format!("0.0.0.0:{port}"),
            "--http-listen",
            &http.to_string(),
            "--rtp-ports",
            &format!("{rtp_first}-{rtp_last}"),
        ],
        &repo(),
    );
    drop((guard_udp, guard_tcp));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "zentrale ran on 0.0.0.0 with demo passwords"
    );
    let demo = fs::read_to_string(&config).expect("reading the demo config");
    let line = demo
        .lines()
        .position(|l| l.contains("password: demo"))
        .expect("a demo password in zentrale.yaml")
        + 1;
    let prefix = format!("{}:{line}:", config.display());
    let refusal = stderr
        .lines()
        .find(|l| l.contains("(set by --sip-listen)"))
        .unwrap_or_else(|| panic!("no refusal naming --sip-listen in stderr:\n{stderr}"));
    assert!(
        refusal.starts_with(&prefix) && refusal.contains("password \"demo\""),
        "the refusal should point at the first demo password ({prefix}...): {refusal:?}"
    );
    assert!(
        !stderr.contains("cannot bind") && !stdout.contains("zentrale is up"),
        "zentrale tried to open sockets before refusing:\n{stdout}{stderr}"
    );
}

/// `zentrale run` with HTTP on 0.0.0.0 refuses to start, before it opens a
/// socket, when the config has no API token, and when it still has the
/// demo token.
#[test]
fn http_off_loopback_needs_a_real_token_before_binding() {
    let no_tokens = demo_copy("run-no-tokens");
    let config = no_tokens.path().join("zentrale.yaml");
    let yaml = fs::read_to_string(&config).expect("reading the copy");
    let start = yaml.find("  tokens:\n").expect("the tokens block");
    let end = yaml
        .find("  open_reads:")
        .expect("open_reads after the tokens");
    fs::write(&config, format!("{}{}", &yaml[..start], &yaml[end..])).expect("writing");
    // Real passwords, so that the only problem left is the token.
    let yaml = fs::read_to_string(&config).expect("reading the copy");
    fs::write(
        &config,
        yaml.replace("password: demo", "password: s3cret-1"),
    )
    .expect("writing");
    let demo_token = demo_copy("run-demo-token");
    let config2 = demo_token.path().join("zentrale.yaml");
    let yaml = fs::read_to_string(&config2).expect("reading the copy");
    fs::write(
        &config2,
        yaml.replace("password: demo", "password: s3cret-1"),
    )
    .expect("writing");

    for (dir, says) in [
        (&no_tokens, "no API token in `http.tokens`"),
        (&demo_token, "the demo API token"),
    ] {
        let config = dir.path().join("zentrale.yaml");
        let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let port = free_tcp_port();
        // Held on loopback: a zentrale that bound 0.0.0.0:PORT would fail
        // to bind rather than listen beyond loopback.
        let guard = TcpListener::bind((LOCALHOST, port)).expect("holding the HTTP port");
        let (rtp_first, rtp_last) = free_udp_range(20);
        let out = zentrale(
            &[
                "run",
                "--config",
                config.to_str().expect("utf-8 path"),
                "--sip-listen",
                &sip.to_string(),
                "--http-listen",
                &format!("0.0.0.0:{port}"),
                "--rtp-ports",
                &format!("{rtp_first}-{rtp_last}"),
            ],
            dir.path(),
        );
        drop(guard);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "zentrale ran on 0.0.0.0 ({says})");
        let line = stderr
            .lines()
            .find(|l| l.contains(says))
            .unwrap_or_else(|| panic!("no refusal saying {says:?} in stderr:\n{stderr}"));
        assert!(
            line.starts_with(&format!("{}:", config.display()))
                && line.contains(&format!("0.0.0.0:{port} (set by --http-listen)")),
            "the refusal should name the file and the address: {line:?}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.contains(": ")).count(),
            2,
            "want the one problem and the `did not start` line:\n{stderr}"
        );
        assert!(
            !stdout.contains("zentrale is up") && !stderr.contains("cannot bind"),
            "zentrale opened sockets before refusing:\n{stdout}{stderr}"
        );
        assert!(
            UdpSocket::bind(sip).is_ok(),
            "the SIP port {sip} is taken after zentrale refused to start"
        );
    }
}

/// `zentrale check` refuses a prompt cut short and one in the wrong format,
/// each at the place the dialplan names it, with the file and the reason.
#[test]
fn check_refuses_unplayable_prompts() {
    let dir = demo_copy("check-prompts");
    // Own sounds directory: links to the real prompts, two replaced.
    let sounds = dir.path().join("sounds");
    fs::remove_file(&sounds).expect("unlinking sounds/");
    fs::create_dir(&sounds).expect("creating sounds/");
    for entry in fs::read_dir(repo().join("sounds")).expect("reading sounds/") {
        let p = entry.expect("sounds entry").path();
        std::os::unix::fs::symlink(&p, sounds.join(p.file_name().unwrap())).expect("linking");
    }
    let whole = fs::read(repo().join("sounds/greeting-krefeld.wav")).expect("reading");
    fs::remove_file(sounds.join("greeting-krefeld.wav")).expect("unlinking");
    fs::write(sounds.join("greeting-krefeld.wav"), &whole[..44 + 8000]).expect("writing");
    // 16 kHz instead of 8 kHz: the bytes of the real one, the rate changed.
    let mut wide = fs::read(repo().join("sounds/greeting-quickborn.wav")).expect("reading");
    wide[24..28].copy_from_slice(&16000u32.to_le_bytes());
    fs::remove_file(sounds.join("greeting-quickborn.wav")).expect("unlinking");
    fs::write(sounds.join("greeting-quickborn.wav"), wide).expect("writing");

    let config = dir.path().join("zentrale.yaml");
    let out = zentrale(
        &["check", "--config", config.to_str().expect("utf-8 path")],
        dir.path(),
    );
    assert!(!out.status.success(), "check accepted a cut greeting");
    let place = |file: &str, name: &str| {
        let path = dir.path().join(file);
        let text = fs::read_to_string(&path).expect("reading a dialplan");
        let (i, l) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(&format!("greeting: {name}")))
            .expect("the greeting line");
        format!(
            "{}:{}:{}: ",
            path.display(),
            i + 1,
            l.find(name).unwrap() + 1
        )
    };
    check_report(
        &text(&out.stderr),
        &[
            (
                place("dialplans/krefeld.yaml", "greeting-krefeld"),
                "greeting-krefeld.wav it is cut short",
            ),
            (
                place("dialplans/quickborn.yaml", "greeting-quickborn"),
                "16000 Hz mono 16-bit PCM",
            ),
        ],
    );
}

//! Brute force against the registrar, before and after the limits: one UDP
//! socket on 127.0.0.1 guesses agent 1001's password as fast as zentrale
//! answers (a window of requests in flight, each guess answering the
//! newest challenge, so spent nonces do not slow it), first with
//! `sip.auth_limits` turned off, then with the defaults. Prints how many
//! passwords zentrale checked (its `zentrale_sip_auth_failures_total
//! {reason="bad_password"}`) per second, and what the guesser got back:
//! 401 (a checked guess, or a fresh challenge for a spent nonce) and 403
//! (locked out, nothing checked).
//!
//! `cargo bench --bench brute_force` runs each phase for 5 s (at most
//! 2,000,000 guesses); `cargo test --release --all-targets` runs it as a
//! smoke test, 1 s per phase, and checks that the limits cut the verified
//! guesses. Loopback only; the daemon is the release binary.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

const MAX_GUESSES: u64 = 2_000_000;
const WINDOW: usize = 32;

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port on 127.0.0.1")
}

/// The demo config with `limits` inserted under `sip:`, next to links to
/// the repository's dialplans and sounds.
fn config(dir: &Path, limits: &str) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(repo.join("zentrale.yaml")).expect("reading zentrale.yaml");
    let anchor = "  nonce_ttl_secs: 300 ";
    assert_eq!(text.matches(anchor).count(), 1, "zentrale.yaml changed");
    let text = text.replace(anchor, &format!("  auth_limits: {limits}\n{anchor}"));
    for sub in ["dialplans", "sounds"] {
        let _ = std::os::unix::fs::symlink(repo.join(sub), dir.join(sub));
    }
    let path = dir.join("zentrale.yaml");
    fs::write(&path, text).expect("writing the bench config");
    path
}

struct Daemon {
    child: Child,
    sip: SocketAddr,
    http: SocketAddr,
}

impl Daemon {
    /// The sum of the samples of `series` (e.g. one label set) in /metrics.
    fn metric(&self, series: &str) -> u64 {
        use std::io::{Read, Write};
        let mut conn = TcpStream::connect(self.http).expect("connecting to /metrics");
        let _ = write!(
            conn,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        );
        let mut text = String::new();
        let _ = conn.read_to_string(&mut text);
        text.lines()
            .filter_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Daemon {
    fn start(dir: &Path, limits: &str) -> Daemon {
        let sip_port = free_udp_port();
        let http_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free TCP port on 127.0.0.1");
        // Few calls: a small RTP range, placed by the process id.
        let rtp = 40_000 + (std::process::id() % 200) * 100;
        let sip: SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_zentrale"))
            .arg("run")
            .arg("--config")
            .arg(config(dir, limits))
            .arg("--sip-listen")
            .arg(sip.to_string())
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--rtp-ports")
            .arg(format!("{rtp}-{}", rtp + 99))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("zentrale.log")).expect("log file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("starting zentrale");
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if TcpStream::connect(("127.0.0.1", http_port)).is_ok() {
                return Daemon {
                    child,
                    sip,
                    http: SocketAddr::from(([127, 0, 0, 1], http_port)),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("zentrale did not start for the bench");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    challenge[start..].split('"').next()
}

struct Figures {
    secs: f64,
    sent: u64,
    /// Answered 401 (a verified wrong guess, or a fresh challenge for a
    /// spent nonce) and 403 (locked out), as the guesser saw them.
    challenged: u64,
    refused: u64,
    /// Wrong passwords zentrale checked (its own count).
    verified: u64,
}

/// Guesses for `secs` (or [`MAX_GUESSES`]) and counts the answers.
fn attack(target: SocketAddr, secs: f64) -> Figures {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("binding the guesser");
    sock.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let local = sock.local_addr().unwrap();
    let uri = format!("sip:{target}");
    let mut cseq: u64 = 0;
    let mut nonce = String::new();
    let mut realm = "zentrale".to_string();
    let request = |cseq: u64, auth: &str| {
        let mut s = String::with_capacity(600);
        let _ = write!(
            s,
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbf{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@{target}>;tag=bf\r\nTo: <sip:1001@{target}>\r\n\
             Call-ID: brute-force@{local}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:1001@{local}>\r\n{auth}Content-Length: 0\r\n\r\n"
        );
        s
    };
    let guess = |cseq: u64, nonce: &str, realm: &str| {
        let ha1 = md5_hex(&format!("1001:{realm}:guess{cseq}"));
        let ha2 = md5_hex(&format!("REGISTER:{uri}"));
        let resp = md5_hex(&format!("{ha1}:{nonce}:00000001:bf:auth:{ha2}"));
        request(
            cseq,
            &format!(
                "Authorization: Digest username=\"1001\", realm=\"{realm}\", nonce=\"{nonce}\", \
                 uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"bf\"\r\n"
            ),
        )
    };
    // A first challenge.
    cseq += 1;
    sock.send_to(request(cseq, "").as_bytes(), target).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("a first challenge");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    if let Some(c) = header(&first, "WWW-Authenticate") {
        nonce = param(c, "nonce").unwrap_or_default().to_string();
        realm = param(c, "realm").unwrap_or("zentrale").to_string();
    }
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let (mut sent, mut challenged, mut refused) = (0u64, 0u64, 0u64);
    let mut in_flight = 0usize;
    while Instant::now() < until && sent < MAX_GUESSES {
        while in_flight < WINDOW && sent < MAX_GUESSES {
            cseq += 1;
            sock.send_to(guess(cseq, &nonce, &realm).as_bytes(), target)
                .expect("sending a guess");
            sent += 1;
            in_flight += 1;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                in_flight = in_flight.saturating_sub(1);
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.starts_with("SIP/2.0 401") {
                    challenged += 1;
                    if let Some(n) =
                        header(&text, "WWW-Authenticate").and_then(|c| param(c, "nonce"))
                    {
                        nonce = n.to_string();
                    }
                } else if text.starts_with("SIP/2.0 403") {
                    refused += 1;
                }
            }
            // A lost answer: let the window refill.
            Err(_) => in_flight = 0,
        }
    }
    Figures {
        secs: start.elapsed().as_secs_f64(),
        sent,
        challenged,
        refused,
        verified: 0,
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let secs = if bench { 5.0 } else { 1.0 };
    let phases = [
        (
            "limits off",
            "{ per_source: 0, per_account: 0, nonce_failures: 1000000 }",
        ),
        ("default limits", "{}"),
    ];
    let mut rates = Vec::new();
    for (name, limits) in phases {
        let dir = std::env::temp_dir().join(format!(
            "zentrale-bench-brute-force-{}-{}",
            std::process::id(),
            rates.len()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("creating the bench dir");
        let f = {
            let d = Daemon::start(&dir, limits);
            let mut f = attack(d.sip, secs);
            f.verified = d.metric("zentrale_sip_auth_failures_total{reason=\"bad_password\"}");
            f
        };
        if std::env::var_os("KEEP").is_none() {
            let _ = fs::remove_dir_all(&dir);
        }
        let per_sec = |n: u64| n as f64 / f.secs;
        println!(
            "brute_force {name:>14}: {} guesses sent in {:.1} s; passwords checked: {} ({:.0}/s); answered 401: {:.0}/s, 403 (locked, unchecked): {:.0}/s",
            f.sent,
            f.secs,
            f.verified,
            per_sec(f.verified),
            per_sec(f.challenged),
            per_sec(f.refused),
        );
        rates.push(f);
    }
    // With the defaults an account locks after 5 wrong answers (the source
    // after 10); within one lockout period nothing more is checked.
    let (off, on) = (&rates[0], &rates[1]);
    assert!(
        off.verified > 100,
        "without limits guesses must be verified"
    );
    assert!(
        on.verified <= 5,
        "with the default limits {} guesses were verified",
        on.verified
    );
}

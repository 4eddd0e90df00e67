//! The dialplan core wired into the daemon, end to end: service hours on a
//! set clock, the Krefeld IVR menu with RFC 4733 and SIP INFO keys, surge
//! limits, `check --clock`, and live reload under load.
//!
//! Raw-socket callers and phones like tests/acd.rs (a trimmed copy of its
//! helpers: the caller sends keys, the phone only needs its offer), SIPp
//! for the load. Every daemon runs on a clock the test sets (`--clock`).

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const SIP_WAIT: Duration = Duration::from_secs(5);

/// Length of sounds/greeting-kassel.wav.
const GREETING_KASSEL: Duration = Duration::from_millis(4500);
/// Length of sounds/closed-kassel.wav.
const CLOSED_KASSEL: Duration = Duration::from_millis(10_700);
/// Length of sounds/greeting-quickborn.wav.
const GREETING_QUICKBORN: Duration = Duration::from_millis(2500);
/// Length of sounds/greeting-kreis-pinneberg.wav.
const GREETING_PINNEBERG: Duration = Duration::from_millis(5000);
/// Length of sounds/greeting-krefeld.wav (the menu starts after it).
const GREETING_KREFELD: Duration = Duration::from_millis(3200);
/// Length of sounds/call-later.wav (the default busy target).
const CALL_LATER: Duration = Duration::from_millis(6650);

/// Sunday 2026-11-22, 10:00 in Germany: Kassel's 115 is closed.
const SUNDAY_MORNING: &str = "2026-11-22T10:00:00+01:00";

// ---------------------------------------------------------------------------
// A daemon with edited dialplans it can reload
// ---------------------------------------------------------------------------

/// A daemon running on copies of demo dialplans (so a test can rewrite
/// them and reload).
struct PlanDaemon {
    d: Daemon,
    dialplans: TempDir,
}

impl std::ops::Deref for PlanDaemon {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.d
    }
}

impl PlanDaemon {
    /// The copy of `dialplans/<file>` the daemon reads.
    fn dialplan(&self, file: &str) -> PathBuf {
        self.dialplans.path().join(file)
    }
}

/// Starts the daemon at `clock` with copies of `files` from dialplans/,
/// each with its `(from, to)` edits.
fn start(clock: &str, files: &[(&str, &[(&str, &str)])]) -> PlanDaemon {
    let dialplans = TempDir::new("dialplans");
    let mut edits = Vec::new();
    for (file, changes) in files {
        let src = repo().join("dialplans").join(file);
        let mut text =
            fs::read_to_string(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
        for (from, to) in *changes {
            text = replace_once(&text, from, to, &src);
        }
        let copy = dialplans.path().join(file);
        fs::write(&copy, text).expect("writing the edited dialplan");
        edits.push((
            format!("dialplan: dialplans/{file}"),
            format!("dialplan: {}", copy.display()),
        ));
    }
    let d = Daemon::start_with(Options {
        clock: Some(clock.to_owned()),
        edits,
        ..Options::default()
    });
    PlanDaemon { d, dialplans }
}

fn metric(d: &Daemon, sample: &str) -> f64 {
    metric_value(&d.metrics(), sample).unwrap_or(0.0)
}

fn wait_no_calls(d: &Daemon, what: &str) {
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(5), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} {what}")
    });
}

/// One HTTP/1.1 POST without a body: (status, body).
fn http_post(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let timeout = Duration::from_secs(10);
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header end in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    Ok((status, body.to_owned()))
}

fn sighup(d: &Daemon) {
    let status = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .expect("running kill -HUP");
    assert!(status.success(), "kill -HUP {} failed", d.pid());
}

// ---------------------------------------------------------------------------
// A raw caller that can press keys
// ---------------------------------------------------------------------------

/// A trunk caller: INVITE with SDP (PCMU and telephone-event/101), ACK,
/// keys by RFC 4733 or SIP INFO, BYE.
struct Caller {
    sip: SipUdp,
    rtp: UdpSocket,
    call_id: String,
    from_tag: String,
    number: String,
    cseq: u32,
    to_tag: Option<String>,
    target: Option<String>,
    media: Option<SocketAddr>,
    seq: u16,
    ts: u32,
    /// Header lines (each ending in CRLF) added to the INVITE.
    extra: String,
}

impl Caller {
    fn new(d: &Daemon, number: &str) -> Caller {
        let rtp = UdpSocket::bind((LOCALHOST, 0)).expect("binding the caller's RTP socket");
        Caller {
            sip: SipUdp::new(d.sip),
            rtp,
            call_id: format!("{}@zentrale-test", SipUdp::token()),
            from_tag: SipUdp::token(),
            number: number.to_owned(),
            cseq: 0,
            to_tag: None,
            target: None,
            media: None,
            seq: 1000,
            ts: 16_000,
            extra: String::new(),
        }
    }

    fn request(&self, method: &str, cseq: u32, ctype: &str, body: &str) -> String {
        let local = self.sip.local;
        let uri = self
            .target
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}", self.number, self.sip.remote));
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let ctype = if ctype.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ctype}\r\n")
        };
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Testanrufer\" <sip:0301234567@{ip}>;tag={ftag}\r\n\
             To: <sip:{number}@{remote}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:0301234567@{local}>\r\n\
             {extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
            extra = if method == "INVITE" {
                self.extra.as_str()
            } else {
                ""
            },
            b = SipUdp::token(),
            ip = local.ip(),
            ftag = self.from_tag,
            number = self.number,
            remote = self.sip.remote,
            cid = self.call_id,
            len = body.len(),
        )
    }

    /// Calls and waits for the final response; on 200 ACKs it.
    fn call(&mut self, d: &Daemon) -> SipMsg {
        let rtp = self.rtp.local_addr().expect("rtp addr");
        let sdp = format!(
            "v=0\r\no=caller 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
            ip = rtp.ip(),
            port = rtp.port(),
        );
        self.cseq += 1;
        self.sip
            .send(&self.request("INVITE", self.cseq, "application/sdp", &sdp));
        let ok = self
            .sip
            .expect("INVITE", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("call to {}: {e}", self.number)));
        if ok.status() != Some(200) {
            return ok;
        }
        self.to_tag = ok.tag("to");
        self.target = ok
            .header("contact")
            .and_then(|c| Some(c.split_once('<')?.1.split_once('>')?.0.to_owned()));
        let cseq = self.cseq;
        self.sip.send(&self.request("ACK", cseq, "", ""));
        let Some((ip, port, _)) = sdp_audio(&ok.body_str()) else {
            d.fail(format!("no audio in zentrale's answer:\n{}", ok.body_str()));
        };
        self.media = Some(
            format!("{ip}:{port}")
                .parse()
                .unwrap_or_else(|_| d.fail(format!("bad media address {ip}:{port}"))),
        );
        ok
    }

    /// Presses `digit` the RFC 4733 way: three event packets, three ends.
    fn press_rtp(&mut self, digit: u8) {
        let to = self.media.expect("press a key after the call is up");
        self.ts = self.ts.wrapping_add(1600);
        for i in 0..6u16 {
            let end = i >= 3;
            let duration = 160 * (i.min(3) + 1);
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            p.extend_from_slice(&self.seq.to_be_bytes());
            p.extend_from_slice(&self.ts.to_be_bytes());
            p.extend_from_slice(&0x00ca_11e5u32.to_be_bytes());
            p.extend_from_slice(&[digit, if end { 0x8a } else { 0x0a }]);
            p.extend_from_slice(&duration.to_be_bytes());
            let _ = self.rtp.send_to(&p, to);
            self.seq = self.seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Presses `digit` by SIP INFO (`application/dtmf-relay`); expects 200.
    fn press_info(&mut self, d: &Daemon, digit: char) {
        self.cseq += 1;
        let body = format!("Signal={digit}\r\nDuration=160\r\n");
        self.sip
            .send(&self.request("INFO", self.cseq, "application/dtmf-relay", &body));
        let r = self
            .sip
            .expect("INFO", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("INFO {digit}: {e}")));
        d.check(r.status() == Some(200), || {
            format!("INFO {digit} answered {}, want 200", r.start)
        });
    }

    fn hang_up(&mut self, d: &Daemon) {
        self.cseq += 1;
        let cseq = self.cseq;
        self.sip.send(&self.request("BYE", cseq, "", ""));
        let r = self
            .sip
            .expect("BYE", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("BYE of the caller: {e}")));
        d.check(r.status() == Some(200), || {
            format!("the caller's BYE answered {}, want 200", r.start)
        });
    }

    /// Waits for zentrale's BYE, answers it 200, returns when it came.
    fn expect_bye(&mut self, d: &Daemon, limit: Duration) -> Instant {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(m) = self.sip.recv(left) else {
                d.fail(format!("the caller got no BYE within {limit:?}"));
            };
            if m.method() == Some("BYE") {
                let at = Instant::now();
                self.sip.send(&response_to(&m, 200, "OK"));
                d.check(m.header("call-id") == Some(self.call_id.as_str()), || {
                    format!("BYE for another call: {m:?}")
                });
                return at;
            }
        }
    }

    /// RTP packets zentrale sent to the caller so far (drains the socket).
    fn rtp_received(&self) -> usize {
        self.rtp
            .set_nonblocking(true)
            .expect("non-blocking RTP socket");
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while self.rtp.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    }
}

// ---------------------------------------------------------------------------
// An agent's phone: registers and takes offers
// ---------------------------------------------------------------------------

/// A softphone of an agent (password `demo`), registered with digest MD5.
struct Phone {
    sip: SipUdp,
}

impl Phone {
    fn registered(d: &Daemon, ext: &str) -> Phone {
        let p = Phone {
            sip: SipUdp::new(d.sip),
        };
        let call_id = format!("{}@zentrale-test", SipUdp::token());
        let tag = SipUdp::token();
        let uri = format!("sip:{}", d.sip);
        let req = |cseq: u32, auth: &str| {
            format!(
                "REGISTER {uri} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:{ext}@{r}>;tag={tag}\r\n\
                 To: <sip:{ext}@{r}>\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:{ext}@{l}>\r\n\
                 Expires: 300\r\n{auth}\
                 Content-Length: 0\r\n\r\n",
                l = p.sip.local,
                r = d.sip,
                b = SipUdp::token()
            )
        };
        p.sip.send(&req(1, ""));
        let chal = p
            .sip
            .expect("REGISTER", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("REGISTER {ext}: {e}")));
        let challenges = chal.headers_named("www-authenticate");
        let Some(c) = challenges.iter().find(|c| c.contains("algorithm=MD5")) else {
            d.fail(format!("REGISTER {ext}: no MD5 challenge: {challenges:?}"));
        };
        let (realm, nonce) = (
            auth_param(c, "realm").unwrap_or_default(),
            auth_param(c, "nonce").unwrap_or_default(),
        );
        let cnonce = SipUdp::token();
        let ha1 = md5_hex(&format!("{ext}:{realm}:demo"));
        let ha2 = md5_hex(&format!("REGISTER:{uri}"));
        let response = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        let mut auth = format!(
            "Authorization: Digest username=\"{ext}\", realm=\"{realm}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
             cnonce=\"{cnonce}\""
        );
        if let Some(o) = auth_param(c, "opaque") {
            let _ = write!(auth, ", opaque=\"{o}\"");
        }
        auth.push_str("\r\n");
        p.sip.send(&req(2, &auth));
        let ok = p
            .sip
            .expect("REGISTER", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("authenticated REGISTER {ext}: {e}")));
        d.check(ok.status() == Some(200), || {
            format!("REGISTER {ext} answered {}, want 200", ok.start)
        });
        p
    }

    /// The next INVITE within `limit`, if any.
    fn offer(&self, limit: Duration) -> Option<SipMsg> {
        let until = Instant::now() + limit;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            let m = self.sip.recv(left)?;
            if m.method() == Some("INVITE") {
                return Some(m);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Service hours
// ---------------------------------------------------------------------------

/// On a Sunday Kassel's 115 is closed: the caller is answered, hears the
/// greeting and `closed-kassel`, and zentrale hangs up; counted as closed.
#[test]
fn out_of_hours_caller_hears_the_closed_prompt_and_gets_a_bye() {
    let d = start(SUNDAY_MORNING, &[]);
    let mut caller = Caller::new(&d, "0561115");
    let ok = caller.call(&d);
    d.check(ok.status() == Some(200), || {
        format!("the closed hotline answered {}, want 200", ok.start)
    });
    let answered = Instant::now();
    let bye = caller.expect_bye(&d, GREETING_KASSEL + CLOSED_KASSEL + SIP_WAIT);
    let after = bye - answered;
    let prompts = GREETING_KASSEL + CLOSED_KASSEL;
    d.check(
        after + Duration::from_millis(800) >= prompts,
        || format!("BYE {after:?} after the answer: before greeting and closed prompt ({prompts:?}) were over"),
    );
    // Read only now, so the socket buffer caps the count (~250 packets).
    let heard = caller.rtp_received();
    d.check(heard >= 100, || {
        format!("the caller got only {heard} RTP packets in {after:?}: no prompt played")
    });
    let closed = metric(
        &d,
        "zentrale_calls_closed_total{tenant=\"kassel\",hotline=\"115\",reason=\"outside_hours\"}",
    );
    d.check(closed == 1.0, || {
        format!("zentrale_calls_closed_total for kassel/115 is {closed}, want 1")
    });
    let entered = metric(
        &d,
        "zentrale_queue_calls_entered_total{tenant=\"kassel\",queue=\"115\"}",
    );
    d.check(entered == 0.0, || {
        format!("a closed-hours caller entered kassel/115 ({entered})")
    });
    wait_no_calls(&d, "after the closed call");
}

/// `check --clock` says which hotlines are open at that instant.
#[test]
fn check_with_a_clock_lists_open_and_closed_hotlines() {
    let run = |clock: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_zentrale"))
            .args(["check", "--config"])
            .arg(repo().join("zentrale.yaml"))
            .args(["--clock", clock])
            .output()
            .expect("running zentrale check");
        assert!(
            out.status.success(),
            "zentrale check --clock {clock} failed: {out:?}"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let evening = run("2026-11-23T18:01:00+01:00");
    assert!(
        evening.contains("kassel/115: closed (OutsideHours), reopens 2026-11-24T06:00:00Z"),
        "Monday 18:01 should close Kassel's 115 until Tuesday 07:00:\n{evening}"
    );
    let morning = run(WEEKDAY_MORNING);
    assert!(
        morning.contains("kassel/115: open\n") && morning.contains("krefeld/serviceportal: open\n"),
        "Monday 10:00 should open Kassel's 115 and Krefeld:\n{morning}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_zentrale"))
        .args(["check", "--clock", "next monday"])
        .output()
        .expect("running zentrale check");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("2026-11-23T10:00:00+01:00"),
        "a bad --clock should fail with an example: {err}"
    );
}

// ---------------------------------------------------------------------------
// Origin and overflow
// ---------------------------------------------------------------------------

/// Monday 13:00 Quickborn's town hall is closed and the district open: the
/// caller goes to kreis-pinneberg/115 at once (`overflow.when_closed`), the
/// district agent sees Quickborn, and it counts as Quickborn's overflow.
#[test]
fn closed_town_hall_overflows_to_the_district_in_its_name() {
    let d = start("2026-11-23T13:00:00+01:00", &[]);
    let district = Phone::registered(&d, "3001");
    let mut caller = Caller::new(&d, "041066110");
    caller.call(&d);
    let Some(invite) = district.offer(GREETING_QUICKBORN + SIP_WAIT) else {
        d.fail("the district agent 3001 got no offer for the closed town hall's caller");
    };
    let queue = invite.header("x-zentrale-queue").unwrap_or_default();
    let from = invite.header("from").unwrap_or_default();
    let origin = invite.header("x-zentrale-origin").unwrap_or_default();
    d.check(
        queue == "kreis-pinneberg/115"
            && from.starts_with("\"Quickborn\"")
            && origin == "quickborn/rathaus;municipality=\"Quickborn\";via=local",
        || format!("the offer has X-Zentrale-Queue {queue:?}, From {from:?}, X-Zentrale-Origin {origin:?}"),
    );
    let overflow = metric(
        &d,
        "zentrale_overflow_total{from_municipality=\"Quickborn\",target=\"kreis-pinneberg/115\"}",
    );
    d.check(overflow == 1.0, || {
        format!("Quickborn's overflow counted {overflow} times, want 1")
    });
    let closed = metric(
        &d,
        "zentrale_calls_closed_total{tenant=\"quickborn\",hotline=\"rathaus\",reason=\"outside_hours\"}",
    );
    d.check(closed == 0.0, || {
        format!("an overflowed call also counted as closed ({closed})")
    });
    caller.hang_up(&d);
}

/// The town hall's PBX forwards a caller who withholds the number to the
/// district's 115 (`Diversion` names the town hall): the agent sees
/// Quickborn and `anonymous`, the origin says forwarded, and the number is
/// nowhere in the log.
#[test]
fn forwarded_withheld_caller_keeps_origin_and_privacy() {
    let d = start(WEEKDAY_MORNING, &[]);
    let district = Phone::registered(&d, "3001");
    let mut caller = Caller::new(&d, "04101115");
    caller.extra = "Diversion: <sip:041066110@192.0.2.10>;reason=no-answer;counter=1\r\n\
                    Privacy: id\r\n\
                    P-Asserted-Identity: <sip:+4930555123@192.0.2.20>\r\n"
        .to_owned();
    caller.call(&d);
    let Some(invite) = district.offer(GREETING_PINNEBERG + SIP_WAIT) else {
        d.fail("the district agent 3001 got no offer for the forwarded caller");
    };
    let from = invite.header("from").unwrap_or_default();
    let origin = invite.header("x-zentrale-origin").unwrap_or_default();
    d.check(
        from.starts_with("\"Quickborn\" <sip:anonymous@")
            && origin.ends_with(";via=local;forwarded")
            && origin.starts_with("quickborn/rathaus;"),
        || format!("the offer has From {from:?} and X-Zentrale-Origin {origin:?}"),
    );
    caller.hang_up(&d);
    let log = d.log_tail(200);
    d.check(
        !log.contains("4930555123") && !log.contains("0301234567") && !log.contains("0301234"),
        || "the withheld caller's number is in the log".to_owned(),
    );
}

// ---------------------------------------------------------------------------
// The Krefeld menu
// ---------------------------------------------------------------------------

/// The caller presses 1 (RFC 4733) during Krefeld's menu and reaches a
/// `kfz` agent (2001), not the `meldewesen` one (2004), announced as Krefeld.
#[test]
fn krefeld_caller_pressing_1_reaches_a_kfz_agent() {
    let d = start(WEEKDAY_MORNING, &[]);
    let kfz = Phone::registered(&d, "2001");
    let melde = Phone::registered(&d, "2004");
    let mut caller = Caller::new(&d, "02151860");
    let ok = caller.call(&d);
    d.check(ok.status() == Some(200), || {
        format!("Krefeld answered {}, want 200", ok.start)
    });
    std::thread::sleep(GREETING_KREFELD + Duration::from_millis(800));
    caller.press_rtp(1);
    let Some(invite) = kfz.offer(SIP_WAIT) else {
        d.fail("the kfz agent 2001 got no offer after the caller pressed 1");
    };
    let queue = invite.header("x-zentrale-queue").unwrap_or_default();
    let from = invite.header("from").unwrap_or_default();
    let origin = invite.header("x-zentrale-origin").unwrap_or_default();
    d.check(
        queue == "krefeld/kfz" && from.starts_with("\"Krefeld\"") && origin.starts_with("krefeld/serviceportal;"),
        || format!("the offer has X-Zentrale-Queue {queue:?}, From {from:?}, X-Zentrale-Origin {origin:?}"),
    );
    d.check(melde.offer(Duration::from_millis(500)).is_none(), || {
        "the meldewesen agent 2004 was offered a kfz call".to_owned()
    });
    let chose = metric(
        &d,
        "zentrale_menu_choices_total{tenant=\"krefeld\",hotline=\"serviceportal\",choice=\"1\"}",
    );
    d.check(chose == 1.0, || {
        format!("menu choice 1 counted {chose} times")
    });
    caller.hang_up(&d);
}

/// The same menu by SIP INFO: 2 leads to `meldewesen` (agent 2004).
#[test]
fn krefeld_menu_takes_sip_info_keys() {
    let d = start(WEEKDAY_MORNING, &[]);
    let kfz = Phone::registered(&d, "2001");
    let melde = Phone::registered(&d, "2004");
    let mut caller = Caller::new(&d, "02151860");
    caller.call(&d);
    std::thread::sleep(GREETING_KREFELD + Duration::from_millis(800));
    caller.press_info(&d, '2');
    let Some(invite) = melde.offer(SIP_WAIT) else {
        d.fail("the meldewesen agent 2004 got no offer after INFO 2");
    };
    let queue = invite.header("x-zentrale-queue").unwrap_or_default();
    d.check(queue == "krefeld/meldewesen", || {
        format!("the offer after INFO 2 has X-Zentrale-Queue {queue:?}")
    });
    d.check(kfz.offer(Duration::from_millis(500)).is_none(), || {
        "the kfz agent 2001 was offered a meldewesen call".to_owned()
    });
    caller.hang_up(&d);
}

// ---------------------------------------------------------------------------
// Surge limits
// ---------------------------------------------------------------------------

/// Krefeld limited to one call: the second caller is answered, hears
/// `call-later` without a greeting, and zentrale hangs up.
#[test]
fn past_max_calls_the_caller_hears_call_later_and_is_hung_up() {
    let d = start(
        WEEKDAY_MORNING,
        &[("krefeld.yaml", &[("max_calls: 80", "max_calls: 1")])],
    );
    let mut first = Caller::new(&d, "02151860");
    first.call(&d);
    let mut second = Caller::new(&d, "02151860");
    let ok = second.call(&d);
    d.check(ok.status() == Some(200), || {
        format!(
            "the call past the limit was answered {}, want 200 (never a failed call)",
            ok.start
        )
    });
    let answered = Instant::now();
    let bye = second.expect_bye(&d, CALL_LATER + SIP_WAIT);
    let after = bye - answered;
    d.check(
        after + Duration::from_millis(800) >= CALL_LATER && after < CALL_LATER + Duration::from_secs(2),
        || format!("the busy caller was hung up {after:?} after the answer, want right after call-later ({CALL_LATER:?})"),
    );
    let rejected = metric(
        &d,
        "zentrale_surge_rejected_total{tenant=\"krefeld\",reason=\"max_calls\"}",
    );
    d.check(rejected == 1.0, || {
        format!("zentrale_surge_rejected_total is {rejected}, want 1")
    });
    first.hang_up(&d);
    wait_no_calls(&d, "after both calls");
}

// ---------------------------------------------------------------------------
// Live reload
// ---------------------------------------------------------------------------

/// SIPp calls Kassel at 4 calls/s while a SIGHUP reloads a changed greeting
/// and ring time: no call fails. New calls ring the new time. Then a broken
/// dialplan is refused (422 with file:line:col, and by SIGHUP) and the
/// daemon keeps taking calls.
#[test]
fn reload_under_load_loses_no_call() {
    require_sipp();
    let d = start(WEEKDAY_MORNING, &[("kassel.yaml", &[])]);
    let kassel = d.dialplan("kassel.yaml");
    let original = fs::read_to_string(&kassel).expect("reading the kassel copy");
    let changed = replace_once(
        &replace_once(
            &original,
            "    greeting: greeting-kassel\n",
            "    greeting: greeting-kassel-buergeramt\n",
            &kassel,
        ),
        "    answer_after_ms: 300\n    queue: \"115\"",
        "    answer_after_ms: 1500\n    queue: \"115\"",
        &kassel,
    );
    let run = std::thread::scope(|s| {
        let load = s.spawn(|| {
            sipp(
                &d,
                "uac_call",
                &["-s", "0561115", "-m", "20", "-r", "4"],
                Duration::from_secs(60),
            )
        });
        std::thread::sleep(Duration::from_millis(2500));
        fs::write(&kassel, &changed).expect("writing the changed dialplan");
        sighup(&d);
        load.join().expect("the SIPp thread")
    });
    d.check(run.ok() && run.successful == 20, || {
        format!("calls failed around the reload:\n{}", run.report)
    });
    let reloaded = metric(&d, "zentrale_config_reloads_total{result=\"ok\"}");
    d.check(reloaded == 1.0, || {
        format!("zentrale_config_reloads_total{{result=\"ok\"}} is {reloaded}, want 1")
    });

    // New calls follow the new dialplan: 1.5 s of ringing now.
    let mut caller = Caller::new(&d, "0561115");
    let sent = Instant::now();
    caller.call(&d);
    let rang = sent.elapsed();
    d.check(rang >= Duration::from_millis(1400), || {
        format!("a call after the reload was answered after {rang:?}, want the new 1.5 s")
    });
    caller.hang_up(&d);

    // A broken dialplan is refused with its position; the old one stays.
    fs::write(
        &kassel,
        changed.replace("answer_after_ms: 1500", "answer_after_ms: soon"),
    )
    .expect("writing the broken dialplan");
    let (status, body) =
        http_post(d.http, "/api/v1/reload").unwrap_or_else(|e| d.fail(format!("POST reload: {e}")));
    let line = changed
        .lines()
        .position(|l| l.contains("answer_after_ms: 1500"))
        .map_or(0, |i| i + 1);
    d.check(
        status == 422
            && body.contains(&format!("kassel.yaml:{line}:"))
            && body.contains("whole number"),
        || format!("reloading a broken dialplan (line {line}) answered {status}: {body}"),
    );
    sighup(&d);
    let refused = d.wait_metric(
        "zentrale_config_reloads_total{result=\"rejected\"}",
        Duration::from_secs(5),
        |v| v >= 2.0,
    );
    d.check(refused == 2.0, || {
        format!("zentrale_config_reloads_total{{result=\"rejected\"}} is {refused}, want 2")
    });
    let after = sipp(
        &d,
        "uac_call",
        &["-s", "0561115", "-m", "2", "-r", "2"],
        Duration::from_secs(30),
    );
    d.check(after.ok() && after.successful == 2, || {
        format!("calls after the refused reload failed:\n{}", after.report)
    });
    let mut caller = Caller::new(&d, "0561115");
    let sent = Instant::now();
    caller.call(&d);
    let rang = sent.elapsed();
    d.check(rang >= Duration::from_millis(1400), || {
        format!("after the refused reload a call rang {rang:?}: the good config should still run (1.5 s)")
    });
    caller.hang_up(&d);
    wait_no_calls(&d, "after the reload test");
}

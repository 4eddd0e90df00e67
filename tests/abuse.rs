//! Floods and abusive connections against the real binary (issue 16,
//! items 2 and 3): the caps on live server transactions (stateless 503 with
//! Retry-After), OPTIONS answered without a transaction, the per-source
//! message rate, the Contacts limit of REGISTER, and the SIP-TCP and HTTP
//! connection caps and deadlines (idle, header completion, 413, a
//! registration keeping its connection with CRLF pings).
//!
//! Every test starts its own daemon with small limits on loopback; every
//! loop is bounded in count and time.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

fn options(local: SocketAddr, to: SocketAddr) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={t}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: {c}@zentrale-test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        b = SipUdp::token(),
        t = SipUdp::token(),
        c = SipUdp::token(),
    )
}

/// Answers received on `sip` within `limit` (stops at the first gap of
/// `limit`).
fn drain(sip: &SipUdp, limit: Duration) -> Vec<SipMsg> {
    let mut got = Vec::new();
    while let Some(m) = sip.recv(limit) {
        got.push(m);
    }
    got
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

/// OPTIONS are answered 200 without a transaction: after a hundred of them
/// `zentrale_sip_transactions` is still 0 (a stateful answer would keep
/// each for 32 s).
#[test]
fn options_leave_no_transaction() {
    let d = Daemon::start();
    let sip = SipUdp::new(d.sip);
    for _ in 0..100 {
        sip.send(&options(sip.local, d.sip));
    }
    let answers = drain(&sip, Duration::from_millis(500));
    let ok = answers.iter().filter(|m| m.status() == Some(200)).count();
    d.check(ok == 100, || format!("{ok} of 100 OPTIONS answered 200"));
    let live = metric_value(&d.metrics(), "zentrale_sip_transactions");
    d.check(live == Some(0.0), || {
        format!("zentrale_sip_transactions is {live:?} after 100 OPTIONS, want 0")
    });
    // Refusals keep none either: INVITEs from a source that is no trunk.
    let d2 = Daemon::start_edited(vec![trunk_only_127_0_0_1()]);
    let stranger = SipUdp::bind("127.0.0.7", d2.sip);
    let rtp: SocketAddr = "127.0.0.7:40000".parse().unwrap();
    for _ in 0..20 {
        let inv = invite(stranger.local, "UDP", d2.sip, "115", rtp, &[0]);
        stranger.send(&inv.text);
        let r = stranger.final_response(&d2, "INVITE");
        d2.check(r.status() == Some(403), || {
            format!("stranger got {}", r.start)
        });
    }
    let live = metric_value(&d2.metrics(), "zentrale_sip_transactions");
    d2.check(live == Some(0.0), || {
        format!("zentrale_sip_transactions is {live:?} after 20 refused INVITEs, want 0")
    });
}

/// Past `sip.limits.transactions`, a new INVITE gets a stateless 503 with
/// Retry-After, counted as `transaction_limit`; a retransmission of a live
/// transaction is still absorbed, and OPTIONS (stateless) still get 200.
#[test]
fn past_the_transaction_cap_new_requests_get_503_with_retry_after() {
    let d = Daemon::start_edited(vec![
        sip_limit("transactions", "20000", "3"),
        sip_limit("transactions_per_source", "2000", "3"),
    ]);
    // Three calls: each INVITE transaction lives 32 s after its 200.
    let mut callers = Vec::new();
    for _ in 0..3 {
        let mut c = Caller::new(&d, "115");
        let ok = c.call(&d);
        d.check(ok.status() == Some(200), || {
            format!("call got {}", ok.start)
        });
        callers.push(c);
    }
    let sip = SipUdp::new(d.sip);
    let rtp: SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let inv = invite(sip.local, "UDP", d.sip, "115", rtp, &[0]);
    sip.send(&inv.text);
    let r = sip.final_response(&d, "INVITE");
    d.check(r.status() == Some(503), || {
        format!("INVITE past the cap answered {}, want 503", r.start)
    });
    d.check(r.header("retry-after").is_some(), || {
        format!("the 503 has no Retry-After: {r:?}")
    });
    // Stateless: the INVITE's retransmission gets a 503 again, no 100.
    sip.send(&inv.text);
    let again = sip
        .recv(SIP_WAIT)
        .unwrap_or_else(|| d.fail("no answer to the retransmission"));
    d.check(again.status() == Some(503), || {
        format!("retransmission got {}", again.start)
    });
    sip.send(&options(sip.local, d.sip));
    let r = sip.final_response(&d, "OPTIONS");
    d.check(r.status() == Some(200), || {
        format!("OPTIONS at the cap got {}", r.start)
    });
    let refused = d.rejected("transaction_limit");
    d.check(refused == Some(2.0), || {
        format!("transaction_limit refusals: {refused:?}, want 2")
    });
    for c in &mut callers {
        c.hang_up(&d);
    }
}

/// One source that is no trunk may hold `transactions_per_source`; its
/// next new request gets 503 (`source_transaction_limit`) while the trunk
/// still places calls.
#[test]
fn the_per_source_transaction_cap_spares_other_sources() {
    let d = Daemon::start_edited(vec![
        trunk_only_127_0_0_1(),
        sip_limit("transactions_per_source", "2000", "2"),
    ]);
    // A registered phone on 127.0.0.2: each authenticated REGISTER's 200
    // keeps its transaction 32 s (the 401s keep none).
    let phone = SipUdp::bind("127.0.0.2", d.sip);
    let register = |n: u32| -> SipMsg {
        let req = register_requests(&d, &phone, "1001", 300);
        phone.send(&req(1, ""));
        let chal = phone.final_response(&d, "REGISTER");
        if chal.status() != Some(401) {
            return chal;
        }
        let uri = format!("sip:{}", d.sip);
        let auth = digest_md5(
            &chal.headers_named("www-authenticate"),
            "1001",
            "REGISTER",
            &uri,
        )
        .unwrap_or_else(|| d.fail(format!("REGISTER {n}: no MD5 challenge")));
        phone.send(&req(2, &format!("Authorization: {auth}\r\n")));
        phone.final_response(&d, "REGISTER")
    };
    for n in 1..=2 {
        let r = register(n);
        d.check(r.status() == Some(200), || {
            format!("REGISTER {n} got {}", r.start)
        });
    }
    let r = register(3);
    d.check(
        r.status() == Some(503) && r.header("retry-after").is_some(),
        || format!("REGISTER past the per-source cap got {r:?}, want 503 with Retry-After"),
    );
    answered_call(&d, "115", "with one source at its transaction cap");
    let refused = d.rejected("source_transaction_limit");
    d.check(refused == Some(1.0), || {
        format!("source_transaction_limit: {refused:?}")
    });
}

// ---------------------------------------------------------------------------
// Rates and REGISTER
// ---------------------------------------------------------------------------

/// A source over `requests_per_sec`/`requests_burst` has its messages
/// dropped (`rate_limited`); another source and the trunk are answered as
/// usual.
#[test]
fn a_flooding_source_is_rate_limited_and_others_are_not() {
    let d = Daemon::start_edited(vec![
        trunk_only_127_0_0_1(),
        sip_limit("requests_per_sec", "200", "20"),
        sip_limit("requests_burst", "400", "40"),
    ]);
    let flood = SipUdp::bind("127.0.0.3", d.sip);
    let started = Instant::now();
    // Paced a little, so that the kernel's receive buffer drops none.
    for _ in 0..50 {
        for _ in 0..10 {
            flood.send(&options(flood.local, d.sip));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let answered = drain(&flood, Duration::from_millis(500)).len();
    let secs = started.elapsed().as_secs_f64();
    // The burst, plus what the rate refilled meanwhile.
    let most = 40 + (20.0 * secs).ceil() as usize + 1;
    d.check(answered >= 40 && answered <= most, || {
        format!("{answered} of 500 OPTIONS answered in {secs:.2} s, want 40..={most}")
    });
    let normal = SipUdp::bind("127.0.0.4", d.sip);
    for _ in 0..10 {
        normal.send(&options(normal.local, d.sip));
        let r = normal
            .expect("OPTIONS", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("the quiet source: {e}")));
        d.check(r.status() == Some(200), || {
            format!("quiet source got {}", r.start)
        });
    }
    answered_call(&d, "115", "while a source floods");
    let limited = d.rejected("rate_limited").unwrap_or(0.0);
    d.check(
        limited >= 400.0 && limited as usize + answered <= 500,
        || format!("rate_limited counts {limited} with {answered} answered of 500"),
    );
}

/// A REGISTER with 2,000 Contacts gets 403 with a Warning before any
/// digest check (not the 401 every unauthenticated REGISTER gets), counted
/// as `too_many_contacts`; one within the limit is challenged as usual.
#[test]
fn a_register_with_too_many_contacts_is_refused_before_authentication() {
    let d = Daemon::start();
    let sip = SipUdp::new(d.sip);
    let req = register_requests(&d, &sip, "1001", 300);
    let one = req(1, "");
    let contacts: String = (0..2000)
        .map(|i| format!("<sip:1001@127.0.0.1:{}>", 10000 + i))
        .collect::<Vec<_>>()
        .join(",");
    let many = one.replacen("Contact: ", &format!("Contact: {contacts}\r\nContact: "), 1);
    d.check(many.len() < 65_000, || {
        format!("{} octets do not fit a datagram", many.len())
    });
    let sent = Instant::now();
    sip.send(&many);
    let r = sip.final_response(&d, "REGISTER");
    let took = sent.elapsed();
    d.check(r.status() == Some(403), || {
        format!("REGISTER with 2001 Contacts answered {}, want 403", r.start)
    });
    d.check(
        r.header("warning")
            .is_some_and(|w| w.contains("too many Contacts")),
        || format!("the 403 has no Warning naming the Contacts: {r:?}"),
    );
    sip.send(&req(2, ""));
    let r = sip.final_response(&d, "REGISTER");
    d.check(r.status() == Some(401), || {
        format!("a normal REGISTER got {}", r.start)
    });
    let refused = d.rejected("too_many_contacts");
    d.check(refused == Some(1.0), || {
        format!("too_many_contacts: {refused:?}")
    });
    eprintln!("REGISTER with 2001 Contacts answered in {took:?} (round trip)");
}

// ---------------------------------------------------------------------------
// SIP over TCP
// ---------------------------------------------------------------------------

fn tcp_limits(max: u32, per_source: u32, header: u32, idle: u32) -> Vec<(String, String)> {
    vec![
        sip_limit("max", "1024", &max.to_string()),
        sip_limit("per_source", "64", &per_source.to_string()),
        sip_limit("header_timeout_secs", "10", &header.to_string()),
        sip_limit("idle_timeout_secs", "120", &idle.to_string()),
    ]
}

/// A TCP connection from loopback address `ip` (bound before connecting).
fn tcp_from(ip: &str, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime to connect");
    let s = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(SocketAddr::new(ip.parse().expect("an IP"), 0))?;
            s.connect(to).await?.into_std()
        })
        .unwrap_or_else(|e| panic!("connecting from {ip} to {to}: {e}"));
    s.set_nonblocking(false).expect("blocking mode");
    s
}

/// How long until the server closes `s` (reads return 0 or fail), reading
/// and discarding what comes; `None` if it is still open after `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// A connection idle after its request closes after `idle_timeout_secs`;
/// one that starts a message and trickles it, or sends nothing at all,
/// closes after `header_timeout_secs`.
#[test]
fn tcp_idle_and_partial_connections_are_closed() {
    let d = Daemon::start_edited(tcp_limits(16, 8, 2, 3));
    let mut idle = SipTcp::connect(d.sip);
    let local = idle.stream.local_addr().unwrap();
    let opt = options(local, d.sip).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    idle.send(opt.as_bytes()).unwrap();
    let r = idle
        .recv(SIP_WAIT)
        .unwrap_or_else(|| d.fail("no answer over TCP"));
    d.check(r.status() == Some(200), || {
        format!("OPTIONS got {}", r.start)
    });
    let mut idle = idle.stream;
    let mut silent = tcp_from("127.0.0.1", d.sip);
    let mut slow = tcp_from("127.0.0.1", d.sip);
    slow.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK1\r\n")
        .unwrap();
    // Slowloris: a header line every half second.
    let slow_closed = (0..12).find_map(|i| {
        let line = format!("X-Slow-{i}: a\r\n");
        if slow.write_all(line.as_bytes()).is_err() {
            return Some(());
        }
        closed_within(&mut slow, Duration::from_millis(500)).map(|_| ())
    });
    d.check(slow_closed.is_some(), || {
        "a trickled header was held 6 s".into()
    });
    let silent_closed = closed_within(&mut silent, Duration::from_secs(3));
    d.check(silent_closed.is_some(), || {
        "a silent connection was held 5 s".into()
    });
    let idle_closed = closed_within(&mut idle, Duration::from_secs(6));
    d.check(idle_closed.is_some(), || {
        "an idle connection was held 6 s".into()
    });
    let m = d.metrics();
    for (reason, want) in [("idle", 1.0), ("header_timeout", 2.0)] {
        let n = metric_value(
            &m,
            &format!(
                "zentrale_connections_closed_total{{listener=\"sip_tcp\",reason=\"{reason}\"}}"
            ),
        );
        d.check(n == Some(want), || {
            format!("closed for {reason}: {n:?}, want {want}")
        });
    }
    let open = metric_value(&m, "zentrale_connections{listener=\"sip_tcp\"}");
    d.check(open == Some(0.0), || {
        format!("{open:?} connections still counted")
    });
}

/// Past `per_source` a source's new connection is closed at once, while
/// another source connects; the last slot of `max` is for a source with
/// nothing open; past `max` everyone's new connection is closed.
#[test]
fn tcp_connection_caps_in_total_and_per_source() {
    let d = Daemon::start_edited(tcp_limits(7, 3, 10, 60));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from("127.0.0.1", d.sip));
    }
    let mut fourth = tcp_from("127.0.0.1", d.sip);
    d.check(
        closed_within(&mut fourth, Duration::from_secs(2)).is_some(),
        || "a fourth connection from one source was kept".into(),
    );
    for _ in 0..3 {
        held.push(tcp_from("127.0.0.2", d.sip));
    }
    // The held ones work: an OPTIONS over one is answered.
    let mut sip = SipTcp::from_stream(held.pop().unwrap());
    let local = sip.stream.local_addr().unwrap();
    let opt = options(local, d.sip).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    sip.send(opt.as_bytes()).unwrap();
    let r = sip
        .recv(SIP_WAIT)
        .unwrap_or_else(|| d.fail("no answer over a held connection"));
    d.check(r.status() == Some(200), || {
        format!("OPTIONS over TCP got {}", r.start)
    });
    held.push(sip.stream);
    // Six open: .2 may have no fourth, but .3 gets the reserved slot.
    let mut more = tcp_from("127.0.0.2", d.sip);
    d.check(
        closed_within(&mut more, Duration::from_secs(2)).is_some(),
        || "a seventh connection from a source with three open was kept".into(),
    );
    let mut reserved = tcp_from("127.0.0.3", d.sip);
    d.check(
        closed_within(&mut reserved, Duration::from_secs(1)).is_none(),
        || "the reserved slot was refused to a new source".into(),
    );
    held.push(reserved);
    let mut eighth = tcp_from("127.0.0.4", d.sip);
    d.check(
        closed_within(&mut eighth, Duration::from_secs(2)).is_some(),
        || "an eighth connection past max 7 was kept".into(),
    );
    let m = d.metrics();
    for (reason, want) in [("source_connection_limit", 1.0), ("connection_limit", 2.0)] {
        let n = metric_value(
            &m,
            &format!(
                "zentrale_connections_refused_total{{listener=\"sip_tcp\",reason=\"{reason}\"}}"
            ),
        );
        d.check(n == Some(want), || {
            format!("refused for {reason}: {n:?}, want {want}")
        });
    }
    answered_call(&d, "115", "with SIP-TCP at its connection caps");
}

/// A header section of 70 KB on one line without an end gets 413 (with
/// the request's Call-ID) and the connection closes.
#[test]
fn tcp_endless_header_line_gets_413() {
    let d = Daemon::start();
    let mut tcp = SipTcp::connect(d.sip);
    let local = tcp.stream.local_addr().unwrap();
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let mut head = format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{b}\r\n\
         From: <sip:probe@{local}>;tag=1\r\nTo: <sip:{to}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nX-Pad: ",
        to = d.sip,
        b = SipUdp::token()
    );
    head.push_str(&"a".repeat(70_000));
    // The server may close while we still write; that is the point.
    let _ = tcp.send(head.as_bytes());
    let r = tcp
        .recv(SIP_WAIT)
        .unwrap_or_else(|| d.fail("no answer to a 70 KB header line"));
    d.check(r.status() == Some(413), || {
        format!("70 KB header line got {}", r.start)
    });
    d.check(r.header("call-id") == Some(call_id.as_str()), || {
        format!("the 413 names Call-ID {:?}", r.header("call-id"))
    });
    d.check(closed_within(&mut tcp.stream, SIP_WAIT).is_some(), || {
        "the connection stayed open after the 413".into()
    });
}

/// A connection over which a phone registered stays open past the idle
/// timeout while the registration lasts, answering its CRLF pings; a
/// connection without one is closed on time even while it pings.
#[test]
fn tcp_registration_keeps_its_connection_and_pings_are_answered() {
    let d = Daemon::start_edited(tcp_limits(16, 8, 2, 2));
    let mut phone = SipTcp::connect(d.sip);
    let local = phone.stream.local_addr().unwrap();
    let uri = format!("sip:{}", d.sip);
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let req = |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK{b}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1001@{to}>;tag=7\r\nTo: <sip:1001@{to}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:1001@{local};transport=tcp>\r\nExpires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            to = d.sip,
            b = SipUdp::token()
        )
    };
    phone.send(req(1, "").as_bytes()).unwrap();
    let chal = phone
        .recv(SIP_WAIT)
        .unwrap_or_else(|| d.fail("no 401 over TCP"));
    let auth = digest_md5(
        &chal.headers_named("www-authenticate"),
        "1001",
        "REGISTER",
        &uri,
    )
    .unwrap_or_else(|| d.fail(format!("no MD5 challenge: {chal:?}")));
    phone
        .send(req(2, &format!("Authorization: {auth}\r\n")).as_bytes())
        .unwrap();
    let ok = phone
        .recv(SIP_WAIT)
        .unwrap_or_else(|| d.fail("no answer to REGISTER"));
    d.check(ok.status() == Some(200), || {
        format!("REGISTER over TCP got {}", ok.start)
    });

    let mut other = tcp_from("127.0.0.1", d.sip);
    let mut other_closed = None;
    let start = Instant::now();
    // Five seconds of pings, past the idle timeout of two.
    for _ in 0..5 {
        phone.stream.write_all(b"\r\n\r\n").unwrap();
        let _ = other.write_all(b"\r\n\r\n");
        let mut pong = [0u8; 2];
        phone
            .stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        phone
            .stream
            .read_exact(&mut pong)
            .unwrap_or_else(|e| d.fail(format!("no pong after {:?}: {e}", start.elapsed())));
        d.check(&pong == b"\r\n", || format!("pong {pong:?}"));
        if other_closed.is_none() {
            other_closed =
                closed_within(&mut other, Duration::from_secs(1)).map(|_| start.elapsed());
        } else {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    d.check(other_closed.is_some(), || {
        "a connection without a registration was kept by its pings".into()
    });
    // The registered connection still carries requests.
    let opt = options(local, d.sip).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    phone.send(opt.as_bytes()).unwrap();
    let r = phone
        .recv(SIP_WAIT)
        .unwrap_or_else(|| d.fail("the registered connection is gone"));
    d.check(r.status() == Some(200), || {
        format!("OPTIONS got {}", r.start)
    });
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

fn http_limits() -> Vec<(String, String)> {
    vec![
        edit("    max: 64 ", "    max: 6 "),
        edit("    per_source: 16 ", "    per_source: 3 "),
        edit("    header_timeout_secs: 5 ", "    header_timeout_secs: 2 "),
        edit("    idle_timeout_secs: 60 ", "    idle_timeout_secs: 3 "),
    ]
}

/// The status a connection from `ip` is greeted with before it sends
/// anything (the 503 of a connection past the caps).
fn greeting_from(ip: &str, to: SocketAddr) -> Result<u16, String> {
    let mut s = tcp_from(ip, to);
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))
}

/// `GET /healthz` from loopback address `ip`: the status, or why not.
fn healthz_from(ip: &str, to: SocketAddr) -> Result<u16, String> {
    let mut s = tcp_from(ip, to);
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {text:?}"))
}

/// Past `per_source` HTTP connections a source gets 503 and a close,
/// another source's `/healthz` is answered; a request head that does not
/// complete is closed after the header timeout and a keep-alive connection
/// after the idle timeout, after which the source is served again.
#[test]
fn http_connection_caps_and_timeouts() {
    let d = Daemon::start_edited(http_limits());
    // Three keep-alive connections, each idle after one request.
    let mut idle: Vec<TcpStream> = (0..3).map(|_| tcp_from("127.0.0.1", d.http)).collect();
    for s in &mut idle {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        d.check(buf[..n].starts_with(b"HTTP/1.1 200"), || {
            format!(
                "keep-alive /healthz got {:?}",
                String::from_utf8_lossy(&buf[..n])
            )
        });
    }
    let busy = greeting_from("127.0.0.1", d.http);
    d.check(busy == Ok(503), || {
        format!("a fourth connection got {busy:?}, want 503")
    });
    let other = healthz_from("127.0.0.2", d.http);
    d.check(other == Ok(200), || {
        format!("/healthz from another source: {other:?}")
    });
    let mut partial = tcp_from("127.0.0.3", d.http);
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let took = closed_within(&mut partial, Duration::from_secs(5));
    d.check(took.is_some_and(|t| t < Duration::from_secs(3)), || {
        format!("a partial request head was closed after {took:?}, want about 2 s")
    });
    for s in &mut idle {
        let took = closed_within(s, Duration::from_secs(6));
        d.check(took.is_some(), || {
            "an idle HTTP connection was held 6 s".into()
        });
    }
    let again = healthz_from("127.0.0.1", d.http);
    d.check(again == Ok(200), || {
        format!("/healthz after the idle closes: {again:?}")
    });
    let m = d.metrics();
    for (metric, want) in [
        (
            "zentrale_connections_refused_total{listener=\"http\",reason=\"source_connection_limit\"}",
            1.0,
        ),
        (
            "zentrale_connections_closed_total{listener=\"http\",reason=\"header_timeout\"}",
            1.0,
        ),
        (
            "zentrale_connections_closed_total{listener=\"http\",reason=\"idle\"}",
            3.0,
        ),
    ] {
        let n = metric_value(&m, metric);
        d.check(n == Some(want), || format!("{metric}: {n:?}, want {want}"));
    }
}

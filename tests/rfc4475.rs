//! RFC 4475 torture messages against a running zentrale, over UDP (one
//! datagram each) and over TCP (one connection each). The expected reaction
//! per file follows the "expectation" column of
//! ../shared/testdata/rfc4475/README.md; afterwards the daemon must still
//! answer OPTIONS and place a normal call.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/testdata/rfc4475"
    ))
}

/// What zentrale must do with one torture message.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A valid request: processed, so some final response that is not 400.
    Valid,
    /// An invalid or application-layer-refused request: one of these codes.
    Status(&'static [u16]),
    /// Either of the codes or any processing (the RFC allows both): any final
    /// response at all.
    Any,
    /// A response (or one to be discarded): nothing comes back.
    Silence,
}

use Expect::*;

/// The README's table.
const TABLE: &[(&str, Expect)] = &[
    ("wsinv.dat", Valid),
    ("intmeth.dat", Status(&[501, 405])),
    ("esc01.dat", Valid),
    ("escnull.dat", Valid),
    ("esc02.dat", Valid),
    ("lwsdisp.dat", Valid),
    ("longreq.dat", Valid),
    ("dblreq.dat", Valid),
    ("semiuri.dat", Valid),
    ("transports.dat", Valid),
    ("mpart01.dat", Valid),
    ("unreason.dat", Silence),
    ("noreason.dat", Silence),
    ("badinv01.dat", Status(&[400])),
    ("clerr.dat", Status(&[400])),
    ("ncl.dat", Status(&[400])),
    ("scalar02.dat", Status(&[400])),
    ("scalarlg.dat", Silence),
    ("quotbal.dat", Status(&[400])),
    ("ltgtruri.dat", Status(&[400])),
    ("lwsruri.dat", Status(&[400])),
    ("lwsstart.dat", Status(&[400])),
    ("trws.dat", Status(&[400])),
    ("escruri.dat", Status(&[400])),
    ("baddate.dat", Any),
    ("regbadct.dat", Status(&[400])),
    ("badaspec.dat", Status(&[400])),
    ("baddn.dat", Status(&[400])),
    ("badvers.dat", Status(&[505])),
    ("mismatch01.dat", Status(&[400])),
    ("mismatch02.dat", Status(&[400, 501])),
    ("bigcode.dat", Silence),
    ("badbranch.dat", Valid),
    ("insuf.dat", Status(&[400])),
    ("unkscm.dat", Status(&[416])),
    ("novelsc.dat", Any),
    ("unksm2.dat", Valid),
    ("bext01.dat", Status(&[420])),
    ("invut.dat", Status(&[415])),
    ("regaut01.dat", Status(&[401])),
    ("multi01.dat", Status(&[400])),
    ("mcl01.dat", Status(&[400])),
    ("bcast.dat", Silence),
    ("zeromf.dat", Status(&[483, 200])),
    ("cparam01.dat", Valid),
    ("cparam02.dat", Valid),
    ("regescrt.dat", Any),
    ("sdp01.dat", Status(&[406])),
    ("inv2543.dat", Valid),
];

/// Every corpus file with its expectation; a file missing from the table (or
/// a table entry without a file) fails the test rather than being skipped.
fn corpus() -> Vec<(String, Vec<u8>, Expect)> {
    let dir = corpus_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    names.sort();
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !TABLE.iter().any(|(t, _)| t == n))
        .collect();
    assert!(
        unknown.is_empty(),
        "corpus files without an expectation in the table: {unknown:?}"
    );
    let missing: Vec<&str> = TABLE
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| !names.iter().any(|n| n == t))
        .collect();
    assert!(
        missing.is_empty(),
        "table entries without a corpus file: {missing:?}"
    );
    TABLE
        .iter()
        .map(|(name, exp)| {
            let data = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"));
            ((*name).to_owned(), data, *exp)
        })
        .collect()
}

/// Whether the header section has a Via (long or compact form).
fn has_via(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    text.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .any(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| matches!(n.trim().to_ascii_lowercase().as_str(), "via" | "v"))
        })
}

/// Rewrites the sent-by of the first Via header to `sent_by` and adds
/// `;rport`, leaving every other byte as it was. Returns None when there is
/// no Via to rewrite (the message then goes out unchanged).
fn rewrite_top_via(data: &[u8], sent_by: &str) -> Option<Vec<u8>> {
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    let mut pos = data.iter().position(|&b| b == b'\n')? + 1; // skip the start line
    while pos < head_end {
        let next_crlf = |from: usize| {
            data[from..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(data.len(), |i| from + i)
        };
        let mut line_end = next_crlf(pos);
        // A folded header continues on lines that start with SP or HT
        // (wsinv.dat folds its Via over three lines).
        while line_end + 2 < head_end && matches!(data[line_end + 2], b' ' | b'\t') {
            line_end = next_crlf(line_end + 2);
        }
        let line = &data[pos..line_end];
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon])
                .trim()
                .to_ascii_lowercase();
            if name == "via" || name == "v" {
                // value: SIP / 2.0 / UDP <sent-by> ;params
                let value = &line[colon + 1..];
                let text = String::from_utf8_lossy(value);
                let upper = text.to_ascii_uppercase();
                let proto = upper.find("SIP")?;
                // after the protocol triple: skip "SIP/2.0/XXX" allowing LWS around '/'
                let mut i = proto;
                let bytes = upper.as_bytes();
                let mut slashes = 0;
                while i < bytes.len() && slashes < 2 {
                    if bytes[i] == b'/' {
                        slashes += 1;
                    }
                    i += 1;
                }
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1; // the transport token
                }
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                let start = i;
                while i < bytes.len()
                    && !matches!(bytes[i], b';' | b',' | b' ' | b'\t' | b'\r' | b'\n')
                {
                    i += 1;
                }
                if start == i || text.len() != value.len() {
                    return None; // odd bytes in the Via: leave the message alone
                }
                let abs_start = pos + colon + 1 + start;
                let abs_end = pos + colon + 1 + i;
                let mut out = Vec::with_capacity(data.len() + 32);
                out.extend_from_slice(&data[..abs_start]);
                out.extend_from_slice(sent_by.as_bytes());
                out.extend_from_slice(b";rport");
                out.extend_from_slice(&data[abs_end..]);
                return Some(out);
            }
        }
        pos = line_end + 2;
    }
    None
}

/// Checks one reaction; `Err` describes the mismatch.
fn judge(name: &str, exp: Expect, got: Option<u16>, tcp: bool) -> Result<(), String> {
    let ok = match (exp, got) {
        (Silence, None) => true,
        (Silence, Some(_)) => false,
        // RFC 3261 §18.3: Content-Length is mandatory on streams, and the
        // RFC 2543 INVITE has none, so over TCP it cannot be framed: 400.
        (Valid, Some(400)) if tcp && name == "inv2543.dat" => true,
        (Valid, Some(c)) => c != 400 && c >= 200,
        (Status(codes), Some(c)) => codes.contains(&c),
        (Any, Some(_)) => true,
        // On a stream a Content-Length beyond the data, or a header section
        // without its closing blank line (baddn.dat as shipped), means "wait
        // for more bytes": silence is the right reaction.
        (Status(_), None) if tcp && (name == "clerr.dat" || name == "baddn.dat") => true,
        (_, None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name} over {}: expected {exp:?}, got {}",
            if tcp { "TCP" } else { "UDP" },
            got.map_or("no response".to_owned(), |c| c.to_string())
        ))
    }
}

/// The first final response on a fresh socket (None on timeout).
fn final_code_udp(sip: &SipUdp, limit: Duration) -> Option<u16> {
    let until = Instant::now() + limit;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let m = sip.recv(left)?;
        match m.status() {
            Some(c) if c >= 200 => return Some(c),
            _ => continue,
        }
    }
    None
}

fn final_code_tcp(conn: &mut SipTcp, limit: Duration) -> Option<u16> {
    let until = Instant::now() + limit;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let m = conn.recv(left)?;
        match m.status() {
            Some(c) if c >= 200 => return Some(c),
            _ => continue,
        }
    }
    None
}

fn wait_for(exp: Expect) -> Duration {
    match exp {
        Silence => Duration::from_secs(1),
        _ => Duration::from_secs(2),
    }
}

/// After the corpus the daemon still answers OPTIONS and places a call.
fn still_healthy(d: &mut Daemon) {
    {
        let alive = d.alive();
        d.check(alive, || {
            "zentrale exited during the torture corpus".to_owned()
        });
    }
    let sip = SipUdp::new(d.sip);
    let options = format!(
        "OPTIONS sip:{r} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@{l}>;tag={t}\r\nTo: <sip:{r}>\r\nCall-ID: {c}@zentrale-test\r\nCSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
        r = d.sip,
        l = sip.local,
        b = SipUdp::token(),
        t = SipUdp::token(),
        c = SipUdp::token()
    );
    sip.send(&options);
    let code = final_code_udp(&sip, Duration::from_secs(3));
    d.check(code == Some(200), || {
        format!("OPTIONS after the corpus answered {code:?}, want 200")
    });

    // A normal call: INVITE -> 200, ACK, BYE -> 200.
    let rtp = std::net::UdpSocket::bind((LOCALHOST, 0)).expect("rtp socket");
    let inv = invite(
        sip.local,
        "UDP",
        d.sip,
        "115",
        rtp.local_addr().expect("rtp addr"),
        &[0, 8, 101],
    );
    sip.send(&inv.text);
    let ok = sip
        .expect("INVITE", Duration::from_secs(5), |c| c >= 200)
        .unwrap_or_else(|e| d.fail(format!("call after the corpus: {e}")));
    d.check(ok.status() == Some(200), || {
        format!("call after the corpus answered {}", ok.start)
    });
    sip.send(&in_dialog("ACK", 1, &inv, &ok, sip.local, "UDP"));
    std::thread::sleep(Duration::from_millis(300));
    sip.send(&in_dialog("BYE", 2, &inv, &ok, sip.local, "UDP"));
    let bye = sip
        .expect("BYE", Duration::from_secs(5), |c| c >= 200)
        .unwrap_or_else(|e| d.fail(format!("BYE after the corpus: {e}")));
    d.check(bye.status() == Some(200), || {
        format!("BYE after the corpus answered {}", bye.start)
    });
}

#[test]
fn torture_messages_over_udp() {
    let mut d = Daemon::start();
    let mut failures = Vec::new();
    for (name, data, exp) in corpus() {
        // A fresh socket per message: retransmitted responses to one file
        // must not be read as the reaction to the next.
        let sip = SipUdp::new(d.sip);
        // A request whose Via cannot be pointed back at us would make
        // zentrale answer to the documentation address in it; only
        // responses (never answered) and Via-less requests go out as they are.
        let msg = match rewrite_top_via(&data, &sip.local.to_string()) {
            Some(m) => m,
            None if data.starts_with(b"SIP/") || !has_via(&data) => data,
            None => panic!("{name}: cannot rewrite its Via to loopback; refusing to send it"),
        };
        sip.send_bytes(&msg);
        let got = final_code_udp(&sip, wait_for(exp));
        if let Err(e) = judge(&name, exp, got, false) {
            failures.push(e);
        }
        {
            let alive = d.alive();
            d.check(alive, || format!("zentrale died on {name} over UDP"));
        }
    }
    still_healthy(&mut d);
    d.check(failures.is_empty(), || {
        format!(
            "{} RFC 4475 reactions wrong over UDP:\n{}",
            failures.len(),
            failures.join("\n")
        )
    });
}

#[test]
fn torture_messages_over_tcp() {
    let mut d = Daemon::start();
    let mut failures = Vec::new();
    for (name, data, exp) in corpus() {
        let mut conn = SipTcp::connect(d.sip);
        // Responses go back on this connection whatever the Via says.
        let got = match conn.send(&data) {
            Ok(()) => final_code_tcp(
                &mut conn,
                wait_for(exp)
                    .min(Duration::from_secs(1))
                    .max(Duration::from_millis(1000)),
            ),
            Err(e) => {
                failures.push(format!("{name} over TCP: write failed: {e}"));
                continue;
            }
        };
        if let Err(e) = judge(&name, exp, got, true) {
            failures.push(e);
        }
        {
            let alive = d.alive();
            d.check(alive, || format!("zentrale died on {name} over TCP"));
        }
    }
    still_healthy(&mut d);
    d.check(failures.is_empty(), || {
        format!(
            "{} RFC 4475 reactions wrong over TCP:\n{}",
            failures.len(),
            failures.join("\n")
        )
    });
}

#[test]
fn via_rewrite_keeps_other_bytes() {
    let msg = b"OPTIONS sip:x@y SIP/2.0\r\nv:  SIP / 2.0 / UDP host.example.com:5061;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=2\r\nContent-Length: 4\r\n\r\n\x00\x01\x02\x03";
    let out = rewrite_top_via(msg, "127.0.0.1:4000").expect("a Via to rewrite");
    let want = b"OPTIONS sip:x@y SIP/2.0\r\nv:  SIP / 2.0 / UDP 127.0.0.1:4000;rport;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=2\r\nContent-Length: 4\r\n\r\n\x00\x01\x02\x03";
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    assert!(rewrite_top_via(b"SIP/2.0 200 OK\r\nTo: a\r\n\r\n", "x").is_none());
}

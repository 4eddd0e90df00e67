//! Phones that register out of the box, and brute force slowed and
//! visible: Debian's baresip as a real agent (register, answer a queued
//! call, audio both ways, hold and resume, feature codes, un-register), the
//! digest algorithms offered, OPTIONS with any Accept, and the lockouts,
//! spent nonces, digest-uri check and fail2ban line of failed logins.
//! Everything on 127.0.0.1.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use zentrale::media::g711;

fn require_baresip() {
    if let Err(e) = Command::new("baresip").arg("-h").output() {
        panic!("baresip not found ({e}): install baresip (tests/run.sh does it)");
    }
}

/// Waits until agent `id` is in `state` (and `registered` if given).
fn wait_agent(d: &Daemon, id: &str, state: &str, registered: Option<bool>, limit: Duration) {
    let until = Instant::now() + limit;
    let mut last = serde_json::Value::Null;
    while Instant::now() < until {
        last = d.agent(id);
        if last["state"] == state && registered.is_none_or(|r| last["registered"] == r) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    d.fail(format!(
        "agent {id} not {state} (registered {registered:?}) within {limit:?}: {last}"
    ));
}

/// The G.711 frames of `samples` as an aligned 20 ms source sends them.
fn frames_of(samples: &[i16], pt: u8) -> HashSet<Vec<u8>> {
    let enc: fn(i16) -> u8 = if pt == 8 {
        linear_to_alaw
    } else {
        linear_to_ulaw
    };
    samples
        .chunks_exact(FRAME)
        .map(|c| c.iter().map(|&s| enc(s)).collect())
        .collect()
}

/// How many packets the caller heard in `[from, to)` that are frames of
/// baresip's source, and how many packets in all.
fn tone_heard(
    caller: &Caller,
    tone: &HashSet<Vec<u8>>,
    from: Instant,
    to: Instant,
) -> (usize, usize) {
    let heard: Vec<(Pkt, Vec<u8>)> = caller
        .rtp
        .heard()
        .into_iter()
        .filter(|(p, _)| p.at >= from && p.at < to)
        .collect();
    let hits = heard.iter().filter(|(_, b)| tone.contains(b)).count();
    (hits, heard.len())
}

#[test]
fn baresip_registers_answers_a_queued_call_holds_resumes_and_dials_feature_codes() {
    require_baresip();
    // The demo config, with a short wrap-up so the test need not wait 30 s.
    let d = Daemon::start_with(Options {
        edits: vec![("  wrap_up_secs: 30 ".into(), "  wrap_up_secs: 3 ".into())],
        ..Default::default()
    });
    let mut phone = Baresip::start(&d, "1001", "demo", 600);
    // The demo config: MD5 alone, which baresip 1.0 answers.
    phone.wait_log(&d, "200 OK", Duration::from_secs(10));
    wait_agent(&d, "1001", "available", Some(true), Duration::from_secs(5));

    // *42 pauses, *43 ends the pause (each a call to zentrale that plays a
    // prompt and hangs up); the digest uri of baresip's INVITE is checked.
    phone.command(&d, "dial", "*42");
    wait_agent(&d, "1001", "paused", None, Duration::from_secs(10));
    d.wait_metric("zentrale_calls_active", Duration::from_secs(10), |v| {
        v == 0.0
    });
    phone.command(&d, "dial", "*43");
    wait_agent(&d, "1001", "available", Some(true), Duration::from_secs(10));
    d.wait_metric("zentrale_calls_active", Duration::from_secs(10), |v| {
        v == 0.0
    });

    // A trunk caller of 115 waits in the queue and baresip answers.
    let mut caller = Caller::new(&d, "115");
    caller.connect(&d);
    wait_agent(&d, "1001", "talking", None, Duration::from_secs(30));
    let talking = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let pt = caller.rtp.got_since(talking).last().map_or(0, |p| p.pt);
    let tone = frames_of(&phone.source, pt);
    let (hits, all) = tone_heard(
        &caller,
        &tone,
        talking + Duration::from_millis(500),
        Instant::now(),
    );
    d.check(hits >= 50, || {
        format!(
            "the caller heard {hits} frames of baresip's WAV among {all} packets in 2.5 s of talk (PT {pt}); want >= 50"
        )
    });
    // baresip heard the caller: its recording holds the caller's constant
    // fill, decoded, for at least a second.
    let fill = if pt == 8 {
        g711::alaw_to_linear(CALLER_FILL)
    } else {
        g711::ulaw_to_linear(CALLER_FILL)
    };
    let heard = phone.recorded("dec");
    let of_caller = heard.iter().filter(|&&s| s == fill).count();
    d.check(of_caller >= 8000, || {
        format!(
            "baresip's recording has {of_caller} samples of the caller's audio ({fill}) among {}; want >= 8000",
            heard.len()
        )
    });

    // Hold from baresip: the caller hears zentrale's music, not baresip.
    phone.command(&d, "hold", "");
    let held = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let (hits, all) = tone_heard(
        &caller,
        &tone,
        held + Duration::from_millis(500),
        Instant::now(),
    );
    d.check(hits == 0 && all >= 50, || {
        format!("on hold the caller heard {hits} frames of baresip among {all} packets; want 0 among >= 50")
    });
    // The music's frames as zentrale encodes them (`prompt_frames` refuses
    // moh.wav under PCMU: the harness's encoder and g711.rs round some of
    // its samples differently, which is not what this test is about).
    let moh: HashSet<Vec<u8>> = wav_samples("moh")
        .chunks_exact(FRAME)
        .map(|c| {
            c.iter()
                .map(|&s| {
                    if pt == 8 {
                        g711::linear_to_alaw(s)
                    } else {
                        g711::linear_to_ulaw(s)
                    }
                })
                .collect()
        })
        .collect();
    let heard_since: Vec<(Pkt, Vec<u8>)> = caller
        .rtp
        .heard()
        .into_iter()
        .filter(|(p, _)| p.at >= held)
        .collect();
    d.check(heard_since.iter().any(|(_, b)| moh.contains(b)), || {
        "on hold the caller heard no frame of the music".to_string()
    });
    d.check(d.agent("1001")["state"] == "talking", || {
        "on hold the agent should still be talking".to_string()
    });

    // Resume: baresip's audio again.
    phone.command(&d, "resume", "");
    let resumed = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let (hits, all) = tone_heard(
        &caller,
        &tone,
        resumed + Duration::from_millis(500),
        Instant::now(),
    );
    d.check(hits >= 50, || {
        format!(
            "after resume the caller heard {hits} frames of baresip among {all} packets; want >= 50"
        )
    });

    // The caller hangs up; the agent wraps up.
    caller.hang_up(&d);
    wait_agent(&d, "1001", "wrap_up", None, Duration::from_secs(5));

    // baresip un-registers on quit: unreachable in the API and the metrics,
    // never available.
    phone.quit(&d);
    let until = Instant::now() + Duration::from_secs(40);
    loop {
        let a = d.agent("1001");
        if a["registered"] == false && a["state"] != "wrap_up" {
            d.check(a["state"] == "unreachable", || {
                format!("an agent without a phone shows as {a}")
            });
            break;
        }
        if Instant::now() > until {
            d.fail(format!("agent 1001 still {a} 40 s after baresip quit"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = d.metrics();
    d.check(
        metric_value(
            &metrics,
            "zentrale_agents{tenant=\"kassel\",state=\"unreachable\"}",
        ) == Some(1.0),
        || {
            format!(
                "zentrale_agents unreachable is not 1:\n{}",
                grep(&metrics, "zentrale_agents{")
            )
        },
    );
    d.check(
        metric_value(
            &metrics,
            "zentrale_agents{tenant=\"kassel\",state=\"available\"}",
        ) == Some(0.0),
        || {
            format!(
                "zentrale_agents available is not 0:\n{}",
                grep(&metrics, "zentrale_agents{")
            )
        },
    );
}

fn grep(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn digest_algorithms_follow_the_config_globally_and_per_agent() {
    // The demo: MD5 alone.
    let d = Daemon::start();
    let sip = SipUdp::new(d.sip);
    let req = register_requests(&d, &sip, "1002", 300);
    sip.send(&req(1, ""));
    let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
    let ch = r.headers_named("www-authenticate");
    d.check(ch.len() == 1 && ch[0].contains("algorithm=MD5"), || {
        format!("the demo offers {ch:?}, want MD5 alone")
    });
    drop(d);

    // SHA-256 first for everyone, SHA-256 alone for 1002.
    let d = Daemon::start_with(Options {
        edits: vec![
            (
                "  nonce_ttl_secs: 300 ".into(),
                "  digest_algorithms: [SHA-256, MD5]\n  nonce_ttl_secs: 300 ".into(),
            ),
            (
                "skills: { general: 5 } }\n  - { extension: \"1003\"".into(),
                "skills: { general: 5 }, digest_algorithms: [SHA-256] }\n  - { extension: \"1003\""
                    .into(),
            ),
        ],
        ..Default::default()
    });
    let sip = SipUdp::new(d.sip);
    for (user, want) in [
        ("1001", vec!["SHA-256", "MD5"]),
        ("1002", vec!["SHA-256"]),
        ("nobody", vec!["SHA-256", "MD5"]),
    ] {
        let req = register_requests(&d, &sip, user, 300);
        sip.send(&req(1, ""));
        let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
        let got: Vec<&str> = r
            .headers_named("www-authenticate")
            .iter()
            .filter_map(|c| auth_param(c, "algorithm"))
            .collect();
        d.check(got == want, || {
            format!("{user} is offered {got:?}, want {want:?}")
        });
    }
    // MD5 credentials for 1002 are refused (not offered), for 1001 taken.
    let registers = |user: &str| {
        let sip = SipUdp::new(d.sip);
        let req = register_requests(&d, &sip, user, 300);
        sip.send(&req(1, ""));
        let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
        let ch = r.headers_named("www-authenticate");
        let md5 = [ch
            .iter()
            .find(|c| c.contains("algorithm=SHA-256"))
            .unwrap()
            .replace("SHA-256", "MD5")];
        let md5: Vec<&str> = md5.iter().map(String::as_str).collect();
        let auth = digest_md5(&md5, user, "REGISTER", &format!("sip:{}", d.sip)).unwrap();
        sip.send(&req(2, &format!("Authorization: {auth}\r\n")));
        sip.expect("REGISTER", SIP_WAIT, |c| c >= 200)
            .unwrap()
            .status()
    };
    d.check(registers("1001") == Some(200), || "1001 with MD5".into());
    d.check(registers("1002") == Some(401), || {
        "1002 with MD5 must get 401".into()
    });
}

/// A trunk with credentials is challenged (407) with its own algorithms.
#[test]
fn a_trunk_with_credentials_is_offered_its_own_algorithms() {
    let d = Daemon::start_with(Options {
        edits: vec![(
            "    # credentials: { username: carrier, password: change-me }\n".into(),
            "    credentials: { username: carrier, password: change-me }\n    digest_algorithms: [SHA-256]\n"
                .into(),
        )],
        ..Default::default()
    });
    let mut caller = Caller::new(&d, "115");
    let r = caller.call(&d);
    let got: Vec<&str> = r
        .headers_named("proxy-authenticate")
        .iter()
        .filter_map(|c| auth_param(c, "algorithm"))
        .collect();
    d.check(r.status() == Some(407) && got == ["SHA-256"], || {
        format!(
            "the trunk's INVITE answered {} offering {got:?}, want 407 with SHA-256 alone",
            r.start
        )
    });
}

#[test]
fn options_with_any_accept_gets_200_without_a_body() {
    let d = Daemon::start();
    let sip = SipUdp::new(d.sip);
    for accept in ["text/plain", "text/html, image/png", "application/sdp"] {
        let tag = SipUdp::token();
        sip.send(&format!(
            "OPTIONS sip:{remote} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:monitor@{l}>;tag={tag}\r\n\
             To: <sip:{remote}>\r\n\
             Call-ID: {tag}@monitor\r\n\
             CSeq: 1 OPTIONS\r\n\
             Accept: {accept}\r\n\
             Content-Length: 0\r\n\r\n",
            remote = d.sip,
            l = sip.local,
            b = SipUdp::token(),
        ));
        let r = sip.expect("OPTIONS", SIP_WAIT, |c| c >= 200).unwrap();
        d.check(r.status() == Some(200) && r.body.is_empty(), || {
            format!(
                "OPTIONS with Accept: {accept} answered {} with {} body bytes",
                r.start,
                r.body.len()
            )
        });
    }
}

/// An `Authorization` header for `user` with `password` answering the MD5
/// challenge `challenge`, for `uri`.
fn md5_auth(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: &str,
) -> String {
    let realm = auth_param(challenge, "realm").unwrap();
    let nonce = auth_param(challenge, "nonce").unwrap();
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:c0ffee:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\""
    )
}

#[test]
fn wrong_passwords_lock_the_account_out_counted_and_logged_for_fail2ban() {
    let d = Daemon::start();
    let sip = SipUdp::new(d.sip);
    let uri = format!("sip:{}", d.sip);
    let req = register_requests(&d, &sip, "1001", 300);
    let mut cseq = 0;
    let mut challenge = {
        cseq += 1;
        sip.send(&req(cseq, ""));
        let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
        r.headers_named("www-authenticate")[0].to_owned()
    };
    // Five wrong guesses (acd default per_account: 5): 401, 401, 401, 401, 403.
    let mut statuses = Vec::new();
    for i in 0..5 {
        cseq += 1;
        let auth = md5_auth(
            &challenge,
            "1001",
            &format!("guess{i}"),
            "REGISTER",
            &uri,
            "00000001",
        );
        sip.send(&req(cseq, &format!("Authorization: {auth}\r\n")));
        let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
        statuses.push(r.status().unwrap_or(0));
        if let Some(c) = r.headers_named("www-authenticate").first() {
            challenge = (*c).to_owned();
        }
    }
    d.check(statuses == [401, 401, 401, 401, 403], || {
        format!("wrong guesses answered {statuses:?}, want 401 x4 then 403")
    });
    // Locked: the right password gets 403 too, without a challenge.
    cseq += 1;
    let auth = md5_auth(&challenge, "1001", "demo", "REGISTER", &uri, "00000002");
    sip.send(&req(cseq, &format!("Authorization: {auth}\r\n")));
    let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
    d.check(
        r.status() == Some(403) && r.headers_named("www-authenticate").is_empty(),
        || format!("a locked account answered {}", r.start),
    );
    // Another account from elsewhere on the host is not affected.
    Phone::registered(&d, "1002");

    let m = d.metrics();
    for (series, want) in [
        (
            "zentrale_sip_auth_failures_total{reason=\"bad_password\"}",
            5.0,
        ),
        ("zentrale_sip_auth_failures_total{reason=\"locked\"}", 1.0),
        ("zentrale_sip_auth_lockouts_total{scope=\"account\"}", 1.0),
    ] {
        d.check(metric_value(&m, series) == Some(want), || {
            format!(
                "{series} is {:?}, want {want}\n{}",
                metric_value(&m, series),
                grep(&m, "auth")
            )
        });
    }

    // The log names source and account, and the shipped fail2ban filter
    // matches it (fail2ban-regex from Debian's fail2ban).
    std::thread::sleep(Duration::from_millis(200)); // the log thread writes every 50 ms
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("SIP authentication"))
        .collect();
    d.check(
        lines
            .iter()
            .any(|l| l.contains("source=127.0.0.1 account=\"1001\"")),
        || {
            format!(
                "no failure line naming source and account:\n{}",
                lines.join("\n")
            )
        },
    );
    d.check(
        lines
            .iter()
            .any(|l| l.contains("SIP authentication locked out")),
        || format!("no lockout line:\n{}", lines.join("\n")),
    );
    let filter = repo().join("deploy/fail2ban/zentrale.conf");
    let out = Command::new("fail2ban-regex")
        .arg("-o")
        .arg("ip")
        .arg(&d.log)
        .arg(&filter)
        .output()
        .unwrap_or_else(|e| {
            panic!("fail2ban-regex not found ({e}): install fail2ban (tests/run.sh does it)")
        });
    let ips = String::from_utf8_lossy(&out.stdout);
    let hits: Vec<&str> = ips
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    d.check(
        hits.len() >= 2 && hits.iter().all(|ip| *ip == "127.0.0.1"),
        || {
            format!(
                "fail2ban-regex matched {hits:?} in the daemon log (want >= 2 lines, all 127.0.0.1):\n{}\n{}",
                lines.join("\n"),
                String::from_utf8_lossy(&out.stderr)
            )
        },
    );
}

#[test]
fn a_nonce_is_spent_after_three_wrong_answers_and_the_digest_uri_is_checked() {
    let d = Daemon::start();
    let sip = SipUdp::new(d.sip);
    let uri = format!("sip:{}", d.sip);
    let req = register_requests(&d, &sip, "1003", 300);
    sip.send(&req(1, ""));
    let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
    let first = r.headers_named("www-authenticate")[0].to_owned();
    // A correct response computed for another URI: 400.
    let other = md5_auth(
        &first,
        "1003",
        "demo",
        "REGISTER",
        "sip:127.0.0.2",
        "00000001",
    );
    sip.send(&req(2, &format!("Authorization: {other}\r\n")));
    let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
    d.check(r.status() == Some(400), || {
        format!(
            "a digest uri other than the Request-URI answered {}",
            r.start
        )
    });
    // Three wrong answers to one nonce, then the right one to the same
    // nonce: a fresh challenge (401), not 200.
    for i in 0..3 {
        let auth = md5_auth(
            &first,
            "1003",
            &format!("x{i}"),
            "REGISTER",
            &uri,
            "00000001",
        );
        sip.send(&req(3 + i, &format!("Authorization: {auth}\r\n")));
        let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
        d.check(r.status() == Some(401), || {
            format!("wrong answer {i}: {}", r.start)
        });
    }
    let right = md5_auth(&first, "1003", "demo", "REGISTER", &uri, "00000002");
    sip.send(&req(6, &format!("Authorization: {right}\r\n")));
    let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
    d.check(r.status() == Some(401), || {
        format!(
            "the right password on a spent nonce answered {}, want 401",
            r.start
        )
    });
    let fresh = r.headers_named("www-authenticate")[0].to_owned();
    d.check(
        auth_param(&fresh, "nonce") != auth_param(&first, "nonce"),
        || "the challenge after a spent nonce must carry a new nonce".into(),
    );
    let right = md5_auth(&fresh, "1003", "demo", "REGISTER", &uri, "00000001");
    sip.send(&req(7, &format!("Authorization: {right}\r\n")));
    let r = sip.expect("REGISTER", SIP_WAIT, |c| c >= 200).unwrap();
    d.check(r.status() == Some(200), || {
        format!("fresh nonce: {}", r.start)
    });
    let m = d.metrics();
    d.check(
        metric_value(
            &m,
            "zentrale_sip_auth_failures_total{reason=\"spent_nonce\"}",
        ) == Some(1.0)
            && metric_value(
                &m,
                "zentrale_sip_auth_failures_total{reason=\"uri_mismatch\"}",
            ) == Some(1.0),
        || grep(&m, "auth_failures"),
    );
}

//! End-to-end tests of the SIP core's rules against the real binary:
//! agent authentication (407), trunk source addresses (403), hold and
//! resume re-INVITEs, 488 for unusable offers, RFC 4028 session timers,
//! 413/400 for oversized or mis-framed messages, and BYEs zentrale sends
//! itself (session expiry, shutdown).
//!
//! The peer is a small raw SIP client ([`Caller`]) because these tests look
//! at exact headers and SDP lines. Every test starts its own daemon on free
//! loopback ports, so they run in parallel; every wait is bounded.

mod common;

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;

const SIP_WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A raw caller: one dialog over UDP, with an RTP socket
// ---------------------------------------------------------------------------

/// One caller leg towards zentrale, driven by hand.
struct Caller {
    sip: SipUdp,
    rtp: UdpSocket,
    call_id: String,
    from_user: String,
    from_tag: String,
    number: String,
    cseq: u32,
    /// zentrale's To tag, once a 2xx (or 1xx with tag) arrived.
    to_tag: Option<String>,
    /// Where in-dialog requests go: zentrale's Contact URI.
    target: Option<String>,
    sdp_version: u32,
    rtp_seq: u16,
}

/// What was sent with an INVITE, for the ACK of a non-2xx answer.
struct SentInvite {
    branch: String,
    uri: String,
    cseq: u32,
}

impl Caller {
    /// A caller on loopback address `ip` calling `number` as `from_user`.
    fn new(d: &Daemon, ip: &str, from_user: &str, number: &str) -> Caller {
        let sip = SipUdp::bind(ip, d.sip);
        let rtp = UdpSocket::bind((ip, 0)).expect("binding the RTP test socket");
        Caller {
            sip,
            rtp,
            call_id: format!("{}@zentrale-test", SipUdp::token()),
            from_user: from_user.to_owned(),
            from_tag: SipUdp::token(),
            number: number.to_owned(),
            cseq: 0,
            to_tag: None,
            target: None,
            sdp_version: 1,
            rtp_seq: 1000,
        }
    }

    fn rtp_addr(&self) -> SocketAddr {
        self.rtp.local_addr().expect("rtp addr")
    }

    /// An SDP offer for `pts` with direction `dir`; the o= version moves
    /// with each call (RFC 3264 §8).
    fn offer(&mut self, pts: &[u8], dir: &str) -> String {
        self.sdp_version += 1;
        let rtp = self.rtp_addr();
        let mut sdp = format!(
            "v=0\r\no=test 4711 {v} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pts}\r\n",
            v = self.sdp_version,
            ip = rtp.ip(),
            port = rtp.port(),
            pts = pts.iter().map(u8::to_string).collect::<Vec<_>>().join(" ")
        );
        for pt in pts {
            let _ = match pt {
                0 => write!(sdp, "a=rtpmap:0 PCMU/8000\r\n"),
                8 => write!(sdp, "a=rtpmap:8 PCMA/8000\r\n"),
                9 => write!(sdp, "a=rtpmap:9 G722/8000\r\n"),
                101 => write!(
                    sdp,
                    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
                ),
                _ => Ok(()),
            };
        }
        let _ = write!(sdp, "a=ptime:20\r\na={dir}\r\n");
        sdp
    }

    fn request_uri(&self) -> String {
        self.target
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}", self.number, self.sip.remote))
    }

    /// The text of a request in this dialog (or the initial INVITE before
    /// there is one).
    fn request(
        &self,
        method: &str,
        uri: &str,
        branch: &str,
        cseq: u32,
        extra: &str,
        body: Option<&str>,
    ) -> String {
        let local = self.sip.local;
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let (ctype, body) = match body {
            Some(b) => ("Content-Type: application/sdp\r\n", b),
            None => ("", ""),
        };
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag={ftag}\r\n\
             To: <sip:{number}@{remote}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             {extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
            user = self.from_user,
            host = local.ip(),
            ftag = self.from_tag,
            number = self.number,
            remote = self.sip.remote,
            cid = self.call_id,
            len = body.len(),
        )
    }

    /// Sends an INVITE (initial or re-INVITE) with `extra` header lines
    /// (each ending in CRLF) and an SDP body.
    fn invite(&mut self, extra: &str, sdp: Option<&str>) -> SentInvite {
        self.cseq += 1;
        let branch = format!("z9hG4bK{}", SipUdp::token());
        let uri = self.request_uri();
        let text = self.request("INVITE", &uri, &branch, self.cseq, extra, sdp);
        self.sip.send(&text);
        SentInvite {
            branch,
            uri,
            cseq: self.cseq,
        }
    }

    /// Sends an in-dialog request (BYE, UPDATE, ...); returns its CSeq.
    fn send_in_dialog(&mut self, method: &str, extra: &str, sdp: Option<&str>) -> u32 {
        self.cseq += 1;
        let branch = format!("z9hG4bK{}", SipUdp::token());
        let uri = self.request_uri();
        let text = self.request(method, &uri, &branch, self.cseq, extra, sdp);
        self.sip.send(&text);
        self.cseq
    }

    /// The final response to our `method` request number `cseq`, skipping
    /// provisional ones. On a 2xx to an INVITE the dialog is set up.
    fn final_response(&mut self, d: &Daemon, method: &str, cseq: u32) -> SipMsg {
        let want = format!("{cseq} {method}");
        let m = self
            .sip
            .expect(method, SIP_WAIT, |c| c >= 200)
            .and_then(|m| {
                if m.header("cseq") == Some(want.as_str()) {
                    Ok(m)
                } else {
                    Err(format!(
                        "answer for CSeq {:?}, want {want}",
                        m.header("cseq")
                    ))
                }
            })
            .unwrap_or_else(|e| d.fail(format!("{method} {cseq} of {}: {e}", self.call_id)));
        if method == "INVITE" && m.status().is_some_and(|c| (200..300).contains(&c)) {
            self.to_tag = m.tag("to");
            if let Some(c) = m.header("contact")
                && let Some((_, rest)) = c.split_once('<')
                && let Some((uri, _)) = rest.split_once('>')
            {
                self.target = Some(uri.to_owned());
            }
        }
        m
    }

    /// ACKs a 2xx to the INVITE with CSeq `cseq` (a new transaction).
    fn ack_2xx(&self, cseq: u32) {
        let branch = format!("z9hG4bK{}", SipUdp::token());
        let text = self.request("ACK", &self.request_uri(), &branch, cseq, "", None);
        self.sip.send(&text);
    }

    /// ACKs a non-2xx final response (same branch and Request-URI as the
    /// INVITE, To tag of the response; RFC 3261 §17.1.1.3).
    fn ack_error(&self, sent: &SentInvite, resp: &SipMsg) {
        let to = resp.header("to").unwrap_or_default();
        let text = format!(
            "ACK {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag={ftag}\r\n\
             To: {to}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n",
            uri = sent.uri,
            local = self.sip.local,
            branch = sent.branch,
            user = self.from_user,
            host = self.sip.local.ip(),
            ftag = self.from_tag,
            cid = self.call_id,
            cseq = sent.cseq,
        );
        self.sip.send(&text);
    }

    /// Places the call and returns zentrale's 200 (ACKed).
    fn call(&mut self, d: &Daemon, extra: &str) -> SipMsg {
        let sdp = self.offer(&[0, 8, 101], "sendrecv");
        let sent = self.invite(extra, Some(&sdp));
        let ok = self.final_response(d, "INVITE", sent.cseq);
        d.check(ok.status() == Some(200), || {
            format!("call to {} answered {}, want 200", self.number, ok.start)
        });
        self.ack_2xx(sent.cseq);
        ok
    }

    /// Sends a BYE and checks the 200.
    fn hang_up(&mut self, d: &Daemon) {
        let cseq = self.send_in_dialog("BYE", "", None);
        let r = self.final_response(d, "BYE", cseq);
        d.check(r.status() == Some(200), || {
            format!("BYE of {} answered {}, want 200", self.call_id, r.start)
        });
    }

    /// Sends one 20 ms PCMU packet of silence to `to`.
    fn send_rtp(&mut self, to: SocketAddr) {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0xad, 0xca, 0xfe];
        p[2..4].copy_from_slice(&self.rtp_seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(self.rtp_seq) * 160).to_be_bytes());
        p.extend(std::iter::repeat_n(0xff, 160));
        let _ = self.rtp.send_to(&p, to);
        self.rtp_seq = self.rtp_seq.wrapping_add(1);
    }

    /// RTP packets from zentrale during `window`, answering each with one
    /// of ours when `talk` (so zentrale sees a live caller).
    fn rtp_during(&mut self, window: Duration, talk: Option<SocketAddr>) -> Vec<Rtp> {
        self.rtp
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("rtp timeout");
        let until = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < until {
            if let Ok((n, _)) = self.rtp.recv_from(&mut buf)
                && let Some(p) = Rtp::parse(&buf[..n])
            {
                got.push(p);
            }
            if let Some(to) = talk {
                self.send_rtp(to);
            }
        }
        got
    }
}

/// The RTP header fields the checks use.
#[derive(Debug, Clone, Copy)]
struct Rtp {
    marker: bool,
    pt: u8,
    seq: u16,
    ssrc: u32,
}

impl Rtp {
    fn parse(p: &[u8]) -> Option<Rtp> {
        (p.len() >= 12 && p[0] >> 6 == 2).then(|| Rtp {
            marker: p[1] & 0x80 != 0,
            pt: p[1] & 0x7f,
            seq: u16::from_be_bytes([p[2], p[3]]),
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        })
    }
}

/// (session id, version) of the SDP's o= line.
fn sdp_origin(sdp: &str) -> Option<(String, u64)> {
    let o = sdp.lines().find_map(|l| l.trim().strip_prefix("o="))?;
    let mut it = o.split_whitespace();
    let _user = it.next()?;
    let id = it.next()?.to_owned();
    let version = it.next()?.parse().ok()?;
    Some((id, version))
}

/// zentrale's media address from the SDP of a 200.
fn media_addr(d: &Daemon, resp: &SipMsg) -> SocketAddr {
    let sdp = resp.body_str();
    let Some((ip, port, _)) = sdp_audio(&sdp) else {
        d.fail(format!("no audio c=/m= line in zentrale's SDP:\n{sdp}"));
    };
    format!("{ip}:{port}")
        .parse()
        .unwrap_or_else(|_| d.fail(format!("bad media address {ip}:{port}")))
}

fn metric(d: &Daemon, sample: &str) -> f64 {
    metric_value(&d.metrics(), sample).unwrap_or(0.0)
}

fn wait_no_calls(d: &Daemon, what: &str) {
    let active = d.wait_metric("zentrale_calls_active", Duration::from_secs(3), |v| {
        v == 0.0
    });
    d.check(active == 0.0, || {
        format!("zentrale_calls_active is {active} {what}")
    });
}

// ---------------------------------------------------------------------------
// Digest
// ---------------------------------------------------------------------------

fn hash(algorithm: &str, s: &str) -> String {
    if algorithm == "MD5" {
        use md5::Digest;
        hex::encode(md5::Md5::digest(s.as_bytes()))
    } else {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(s.as_bytes()))
    }
}

/// The credentials (header value) answering the `algorithm` challenge among
/// `challenges` for `method uri` as `user` with `password`.
fn digest_answer(
    d: &Daemon,
    challenges: &[&str],
    algorithm: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let Some(c) = challenges
        .iter()
        .find(|c| c.contains(&format!("algorithm={algorithm}")))
    else {
        d.fail(format!("no {algorithm} challenge in {challenges:?}"));
    };
    let realm = auth_param(c, "realm").unwrap_or_default();
    let nonce = auth_param(c, "nonce").unwrap_or_default();
    let cnonce = SipUdp::token();
    let nc = "00000001";
    let ha1 = hash(algorithm, &format!("{user}:{realm}:{password}"));
    let ha2 = hash(algorithm, &format!("{method}:{uri}"));
    let response = hash(
        algorithm,
        &format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"),
    );
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={algorithm}, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    );
    if let Some(o) = auth_param(c, "opaque") {
        let _ = write!(v, ", opaque=\"{o}\"");
    }
    v
}

/// Checks a 407 and returns its challenges.
fn challenges_of(d: &Daemon, resp: &SipMsg, what: &str) -> Vec<String> {
    d.check(resp.status() == Some(407), || {
        format!("{what}: answered {}, want 407", resp.start)
    });
    let ch: Vec<String> = resp
        .headers_named("proxy-authenticate")
        .into_iter()
        .map(str::to_owned)
        .collect();
    d.check(
        ch.iter()
            .any(|c| c.starts_with("Digest") && c.contains("realm=\"zentrale\"")),
        || format!("{what}: 407 without a Digest challenge for realm zentrale: {ch:?}"),
    );
    ch
}

/// REGISTERs `user` from `sip` (its source address becomes the binding's).
fn register_from(d: &Daemon, sip: &SipUdp, user: &str) {
    let uri = format!("sip:{}", d.sip);
    let req = register_requests(d, sip, user, 300);
    sip.send(&req(1, ""));
    let chal = sip
        .expect("REGISTER", SIP_WAIT, |c| c >= 200)
        .unwrap_or_else(|e| d.fail(format!("REGISTER {user}: {e}")));
    let challenges = chal.headers_named("www-authenticate");
    let auth = digest_answer(d, &challenges, "MD5", user, "demo", "REGISTER", &uri);
    sip.send(&req(2, &format!("Authorization: {auth}\r\n")));
    let ok = sip
        .expect("REGISTER", SIP_WAIT, |c| c >= 200)
        .unwrap_or_else(|e| d.fail(format!("authenticated REGISTER {user}: {e}")));
    d.check(ok.status() == Some(200), || {
        format!("REGISTER {user} answered {}, want 200", ok.start)
    });
}

// ---------------------------------------------------------------------------
// 1. Agents authenticate: 407
// ---------------------------------------------------------------------------

/// An INVITE from an agent extension with Proxy-Authorization gets 407
/// until its credentials are right, then is routed by the dialplan like any
/// call (200 with SDP for 115), counted for the hotline but not as a trunk
/// call. Right password, wrong identity: 403.
#[test]
fn agent_invite_with_credentials_is_challenged_then_routed() {
    // SHA-256 is offered where configured (the demo offers MD5 alone).
    let d = Daemon::start_with(Options {
        edits: vec![(
            "  nonce_ttl_secs: 300 ".into(),
            "  digest_algorithms: [MD5, SHA-256]\n  nonce_ttl_secs: 300 ".into(),
        )],
        ..Default::default()
    });
    let mut c = Caller::new(&d, LOCALHOST, "1001", "115");
    let uri = c.request_uri();
    let sdp = c.offer(&[0, 8], "sendrecv");

    // Credentials for a nonce zentrale never issued: challenged.
    let bogus = format!(
        "Proxy-Authorization: Digest username=\"1001\", realm=\"zentrale\", nonce=\"bogus\", \
         uri=\"{uri}\", response=\"{}\", algorithm=MD5\r\n",
        "0".repeat(32)
    );
    let sent = c.invite(&bogus, Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    let ch = challenges_of(&d, &r, "INVITE with a bogus nonce");
    c.ack_error(&sent, &r);
    let ch: Vec<&str> = ch.iter().map(String::as_str).collect();

    // A fresh nonce, wrong password: challenged again and counted.
    let failed_before = metric(&d, "zentrale_sip_rejected_total{reason=\"auth_failed\"}");
    let wrong = digest_answer(&d, &ch, "MD5", "1001", "not-demo", "INVITE", &uri);
    let sent = c.invite(&format!("Proxy-Authorization: {wrong}\r\n"), Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    let ch = challenges_of(&d, &r, "INVITE with a wrong password");
    c.ack_error(&sent, &r);
    let failed = metric(&d, "zentrale_sip_rejected_total{reason=\"auth_failed\"}");
    d.check(failed == failed_before + 1.0, || {
        format!("auth_failed went from {failed_before} to {failed}, want +1")
    });
    let ch: Vec<&str> = ch.iter().map(String::as_str).collect();

    // Right password, but for another extension than the From user: 403.
    let other = digest_answer(&d, &ch, "MD5", "1002", "demo", "INVITE", &uri);
    let sent = c.invite(&format!("Proxy-Authorization: {other}\r\n"), Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    d.check(r.status() == Some(403), || {
        format!(
            "From 1001 authenticated as 1002 answered {}, want 403",
            r.start
        )
    });
    c.ack_error(&sent, &r);
    d.check(
        metric(
            &d,
            "zentrale_sip_rejected_total{reason=\"auth_identity_mismatch\"}",
        ) == 1.0,
        || "auth_identity_mismatch not counted".to_owned(),
    );

    // Right password for 1001 (SHA-256 this time) on a fresh nonce (the
    // last one was used up by the 403): the call is routed.
    let sent = c.invite(&bogus, Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    let ch = challenges_of(&d, &r, "INVITE with a bogus nonce, again");
    c.ack_error(&sent, &r);
    let ch: Vec<&str> = ch.iter().map(String::as_str).collect();
    let right = digest_answer(&d, &ch, "SHA-256", "1001", "demo", "INVITE", &uri);
    let sent = c.invite(&format!("Proxy-Authorization: {right}\r\n"), Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    d.check(r.status() == Some(200), || {
        format!("authenticated agent INVITE answered {}, want 200", r.start)
    });
    c.ack_2xx(sent.cseq);
    d.check(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/sdp")),
        || format!("agent call 200 without SDP: {r:?}"),
    );
    let offered = metric(
        &d,
        "zentrale_calls_offered_total{tenant=\"kassel\",hotline=\"115\"}",
    );
    d.check(offered == 1.0, || {
        format!("calls offered to kassel/115 is {offered}, want 1 (the agent call)")
    });
    let trunk = d.metric_sum("zentrale_trunk_calls_total");
    d.check(trunk == 0.0, || {
        format!("zentrale_trunk_calls_total is {trunk}: the agent call was taken as a trunk call")
    });
    c.hang_up(&d);
    wait_no_calls(&d, "after the agent hung up");
}

/// An INVITE from an agent extension without credentials but from the
/// address the agent registered from is challenged (407) and, answered,
/// routed. The same From user from any other address is a trunk caller
/// (README "Trunks and agents", rule 2): it cannot pose as the agent.
#[test]
fn agent_invite_from_registered_source_is_challenged() {
    let d = Daemon::start();
    let mut c = Caller::new(&d, LOCALHOST, "1003", "02151860");
    register_from(&d, &c.sip, "1003");
    let uri = c.request_uri();
    let sdp = c.offer(&[8], "sendrecv");

    let sent = c.invite("", Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    let ch = challenges_of(&d, &r, "INVITE from the registered source");
    c.ack_error(&sent, &r);
    let ch: Vec<&str> = ch.iter().map(String::as_str).collect();

    let wrong = digest_answer(&d, &ch, "MD5", "1003", "wrong", "INVITE", &uri);
    let sent = c.invite(&format!("Proxy-Authorization: {wrong}\r\n"), Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    let ch = challenges_of(&d, &r, "INVITE from the registered source, wrong password");
    c.ack_error(&sent, &r);
    let ch: Vec<&str> = ch.iter().map(String::as_str).collect();

    let right = digest_answer(&d, &ch, "MD5", "1003", "demo", "INVITE", &uri);
    let sent = c.invite(&format!("Proxy-Authorization: {right}\r\n"), Some(&sdp));
    let ok = c.final_response(&d, "INVITE", sent.cseq);
    d.check(ok.status() == Some(200), || {
        format!("authenticated INVITE answered {}, want 200", ok.start)
    });
    c.ack_2xx(sent.cseq);
    d.check(d.metric_sum("zentrale_trunk_calls_total") == 0.0, || {
        "the agent's call was counted as a trunk call".to_owned()
    });
    c.hang_up(&d);

    // Same From user, another source, no credentials: a trunk call.
    let mut poser = Caller::new(&d, LOCALHOST, "1003", "02151860");
    poser.call(&d, "");
    let trunk = metric(&d, "zentrale_trunk_calls_total{trunk=\"demo-carrier\"}");
    d.check(trunk == 1.0, || {
        format!("trunk calls from demo-carrier: {trunk}, want 1 (the unregistered 1003)")
    });
    poser.hang_up(&d);
    let offered = metric(
        &d,
        "zentrale_calls_offered_total{tenant=\"krefeld\",hotline=\"serviceportal\"}",
    );
    d.check(offered == 2.0, || {
        format!("calls offered to krefeld/serviceportal: {offered}, want 2")
    });
    wait_no_calls(&d, "after both calls");
}

// ---------------------------------------------------------------------------
// 2. Trunk sources: 403 and the metric
// ---------------------------------------------------------------------------

/// With the trunk narrowed to 127.0.0.2, calls from 127.0.0.1 and 127.0.0.3
/// get 403 with a Warning and count as `source_not_allowed`; a call from
/// 127.0.0.2 is answered.
#[test]
fn trunk_source_not_allowed_gets_403_and_is_counted() {
    let d = Daemon::start_with(Options {
        edits: vec![(
            "sources: [127.0.0.0/8]".into(),
            "sources: [127.0.0.2/32]".into(),
        )],
        ..Options::default()
    });
    let sample = "zentrale_sip_rejected_total{reason=\"source_not_allowed\"}";
    for (i, ip) in ["127.0.0.1", "127.0.0.3"].into_iter().enumerate() {
        let mut c = Caller::new(&d, ip, "0301234567", "115");
        let sdp = c.offer(&[0], "sendrecv");
        let sent = c.invite("", Some(&sdp));
        let r = c.final_response(&d, "INVITE", sent.cseq);
        d.check(r.status() == Some(403), || {
            format!("INVITE from {ip} answered {}, want 403", r.start)
        });
        let warning = r.header("warning").unwrap_or_default();
        d.check(warning.contains("trunk source"), || {
            format!("403 from {ip} lacks the Warning that says why: {warning:?}")
        });
        c.ack_error(&sent, &r);
        let n = metric(&d, sample);
        d.check(n == (i + 1) as f64, || {
            format!("{sample} is {n} after {} refused calls", i + 1)
        });
    }
    let mut ok = Caller::new(&d, "127.0.0.2", "0301234567", "115");
    ok.call(&d, "");
    d.check(
        metric(&d, "zentrale_trunk_calls_total{trunk=\"demo-carrier\"}") == 1.0,
        || "the call from 127.0.0.2 was not counted for demo-carrier".to_owned(),
    );
    ok.hang_up(&d);
    d.check(metric(&d, sample) == 2.0, || {
        format!("{sample} moved on an allowed call")
    });
    wait_no_calls(&d, "after the allowed call");
}

// ---------------------------------------------------------------------------
// 3. Hold and resume
// ---------------------------------------------------------------------------

/// re-INVITE a=sendonly → 200 a=recvonly and zentrale stops sending;
/// a=inactive → a=inactive; a=sendrecv → a=sendrecv and RTP flows again in
/// the same stream (same SSRC, next sequence number, marker set).
#[test]
fn hold_and_resume_with_reinvite() {
    let d = Daemon::start();
    let mut c = Caller::new(&d, LOCALHOST, "0301234567", "115");
    let ok = c.call(&d, "");
    let media = media_addr(&d, &ok);
    let first_origin = sdp_origin(&ok.body_str())
        .unwrap_or_else(|| d.fail(format!("no o= line in\n{}", ok.body_str())));

    let before = c.rtp_during(Duration::from_millis(1000), Some(media));
    d.check(before.len() >= 25, || {
        format!(
            "only {} RTP packets in the first second of the call",
            before.len()
        )
    });
    let ssrc = before[0].ssrc;

    let mut last_version = first_origin.1;
    let mut last_seq = before.last().map(|p| p.seq).unwrap_or(0);
    for (offer_dir, want_dir, talk) in [
        ("sendonly", "recvonly", true),
        ("inactive", "inactive", false),
        ("sendrecv", "sendrecv", true),
    ] {
        let sdp = c.offer(&[0, 8, 101], offer_dir);
        let sent = c.invite("", Some(&sdp));
        let r = c.final_response(&d, "INVITE", sent.cseq);
        d.check(r.status() == Some(200), || {
            format!("re-INVITE {offer_dir} answered {}, want 200", r.start)
        });
        c.ack_2xx(sent.cseq);
        let answer = r.body_str();
        let dir = sdp_direction(&answer);
        d.check(dir == want_dir, || {
            format!("re-INVITE {offer_dir} answered a={dir}, want a={want_dir}:\n{answer}")
        });
        let origin = sdp_origin(&answer).unwrap_or_default();
        d.check(
            origin.0 == first_origin.0 && origin.1 > last_version,
            || {
                format!(
                    "o= of the answer to {offer_dir} is {origin:?}: want session id {} and a version above {last_version}",
                    first_origin.0
                )
            },
        );
        last_version = origin.1;
        d.check(media_addr(&d, &r) == media, || {
            format!("the media address moved on re-INVITE {offer_dir}")
        });

        let talk = talk.then_some(media);
        // Packets already on their way when the direction changed.
        let in_flight = c.rtp_during(Duration::from_millis(200), talk);
        if want_dir == "sendrecv" {
            let after = c.rtp_during(Duration::from_millis(1000), talk);
            d.check(after.len() >= 25, || {
                format!(
                    "only {} RTP packets in the second after resume",
                    after.len()
                )
            });
            let all: Vec<Rtp> = in_flight.iter().chain(&after).copied().collect();
            let first = all[0];
            d.check(first.ssrc == ssrc && first.pt == before[0].pt, || {
                format!(
                    "after resume the stream changed: {first:?}, before {:?}",
                    before[0]
                )
            });
            d.check(first.marker, || {
                format!("first packet after resume lacks the marker bit: {first:?}")
            });
            d.check(first.seq == last_seq.wrapping_add(1), || {
                format!(
                    "sequence jumps over the hold: last before {last_seq}, first after {}",
                    first.seq
                )
            });
        } else {
            if let Some(p) = in_flight.last() {
                last_seq = p.seq;
            }
            let silent = c.rtp_during(Duration::from_millis(800), talk);
            d.check(silent.is_empty(), || {
                format!(
                    "zentrale sent {} RTP packets while the caller held the call ({offer_dir})",
                    silent.len()
                )
            });
        }
    }
    c.hang_up(&d);
    wait_no_calls(&d, "after the held call hung up");
}

// ---------------------------------------------------------------------------
// 4. 488 Not Acceptable Here
// ---------------------------------------------------------------------------

/// An offer of G.722 only, or of video only, gets 488 with a Warning and
/// leaves nothing behind; a mid-call re-INVITE with G.722 only gets 488 and
/// the call stays up as it was (RFC 3261 §14.2).
#[test]
fn unusable_offer_gets_488_and_leaves_no_call() {
    let d = Daemon::start();
    let video_only = |c: &Caller| {
        let rtp = c.rtp_addr();
        format!(
            "v=0\r\no=test 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
            ip = rtp.ip(),
            port = rtp.port()
        )
    };
    for (what, warn) in [
        ("G.722 only", "no common codec"),
        ("video only", "no audio"),
    ] {
        let mut c = Caller::new(&d, LOCALHOST, "0301234567", "115");
        let sdp = if what == "G.722 only" {
            c.offer(&[9], "sendrecv")
        } else {
            video_only(&c)
        };
        let sent = c.invite("", Some(&sdp));
        let r = c.final_response(&d, "INVITE", sent.cseq);
        d.check(r.status() == Some(488), || {
            format!("INVITE offering {what} answered {}, want 488", r.start)
        });
        let warning = r.header("warning").unwrap_or_default();
        d.check(
            warning.starts_with("399 ") && warning.contains(warn),
            || format!("488 for {what}: Warning is {warning:?}, want 399 ... {warn:?}"),
        );
        c.ack_error(&sent, &r);
    }
    for sample in [
        "zentrale_calls_active",
        "zentrale_rtp_ports_in_use",
        "zentrale_calls_offered_total",
        "zentrale_calls_ended_total",
    ] {
        let v = d.metric_sum(sample);
        d.check(v == 0.0, || {
            format!("{sample} is {v} after two 488s, want 0")
        });
    }

    // Mid-call: the re-offer is refused, the call carries on.
    let mut c = Caller::new(&d, LOCALHOST, "0301234567", "115");
    let ok = c.call(&d, "");
    let media = media_addr(&d, &ok);
    let sdp = c.offer(&[9], "sendrecv");
    let sent = c.invite("", Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    d.check(r.status() == Some(488), || {
        format!(
            "re-INVITE offering G.722 only answered {}, want 488",
            r.start
        )
    });
    c.ack_error(&sent, &r);
    let rtp = c.rtp_during(Duration::from_millis(600), Some(media));
    d.check(
        rtp.len() >= 10 && rtp.iter().all(|p| p.pt == 0 || p.pt == 8),
        || format!("after the refused re-INVITE zentrale sent {rtp:?}, want G.711 going on"),
    );
    d.check(d.metric_sum("zentrale_calls_active") == 1.0, || {
        "the call did not survive the refused re-INVITE".to_owned()
    });
    c.hang_up(&d);
    wait_no_calls(&d, "after the call hung up");
}

// ---------------------------------------------------------------------------
// 5. Session timers (RFC 4028): the negotiation on the wire; refreshes and
// expiry over minutes run on the virtual network in the crate
// (src/harness/tests/calls.rs).
// ---------------------------------------------------------------------------

/// Session-Expires below Min-SE is 422 with Min-SE; the 200 to an accepted
/// Session-Expires carries it back with the refresher and, when the caller
/// refreshes, `Require: timer`.
#[test]
fn session_timer_negotiation() {
    let d = Daemon::start();
    let mut c = Caller::new(&d, LOCALHOST, "0301234567", "115");
    let sdp = c.offer(&[0], "sendrecv");
    let sent = c.invite("Supported: timer\r\nSession-Expires: 30\r\n", Some(&sdp));
    let r = c.final_response(&d, "INVITE", sent.cseq);
    d.check(r.status() == Some(422), || {
        format!("Session-Expires 30 answered {}, want 422", r.start)
    });
    let min_se = r.header("min-se").unwrap_or_default();
    d.check(min_se.trim() == "90", || {
        format!("422 Min-SE is {min_se:?}, want 90 (sip.min_se of the demo)")
    });
    c.ack_error(&sent, &r);
    wait_no_calls(&d, "after the 422");

    // The retry with a larger interval, no refresher named: the caller
    // supports timers, so it refreshes (RFC 4028 §9).
    let sent = c.invite(
        "Supported: timer\r\nSession-Expires: 1800\r\nMin-SE: 90\r\n",
        Some(&sdp),
    );
    let ok = c.final_response(&d, "INVITE", sent.cseq);
    d.check(ok.status() == Some(200), || {
        format!("Session-Expires 1800 answered {}, want 200", ok.start)
    });
    c.ack_2xx(sent.cseq);
    let se = ok.header("session-expires").unwrap_or_default();
    d.check(se.replace(' ', "") == "1800;refresher=uac", || {
        format!("200 Session-Expires is {se:?}, want 1800;refresher=uac")
    });
    let require = ok.header("require").unwrap_or_default();
    d.check(require.contains("timer"), || {
        format!("200 Require is {require:?}, want timer")
    });
    c.hang_up(&d);

    // A caller without timer support (a proxy asked for the timer): zentrale
    // refreshes itself and must not require the caller to understand timers.
    let mut p = Caller::new(&d, LOCALHOST, "0301234567", "115");
    let sdp = p.offer(&[0], "sendrecv");
    let sent = p.invite("Session-Expires: 1800;refresher=uac\r\n", Some(&sdp));
    let ok = p.final_response(&d, "INVITE", sent.cseq);
    d.check(ok.status() == Some(200), || {
        format!(
            "Session-Expires without Supported: timer answered {}",
            ok.start
        )
    });
    p.ack_2xx(sent.cseq);
    let se = ok.header("session-expires").unwrap_or_default();
    d.check(se.replace(' ', "") == "1800;refresher=uas", || {
        format!("200 Session-Expires is {se:?}, want 1800;refresher=uas")
    });
    let require = ok.header("require").unwrap_or_default();
    d.check(!require.contains("timer"), || {
        format!("200 requires timer from a caller that does not support it: {require:?}")
    });
    p.hang_up(&d);
    wait_no_calls(&d, "after both calls");
}

// ---------------------------------------------------------------------------
// 6. Oversized TCP messages (413) and a lying Content-Length on UDP (400)
// ---------------------------------------------------------------------------

/// The header section of an INVITE over TCP from `local`, without the
/// final empty line.
fn tcp_invite_head(local: SocketAddr, to: SocketAddr, call_id: &str) -> String {
    format!(
        "INVITE sip:115@{to} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK{b}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:0301234567@{local}>;tag={t}\r\n\
         To: <sip:115@{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:0301234567@{local};transport=tcp>\r\n",
        b = SipUdp::token(),
        t = SipUdp::token(),
    )
}

/// Reads until the peer closes the connection (EOF or reset) or `limit`
/// passes; true if it closed.
fn closed_within(tcp: &mut SipTcp, limit: Duration) -> bool {
    use std::io::Read;
    let until = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let _ = tcp
            .stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))));
        match tcp.stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

/// Over TCP, a Content-Length above 64 KiB and a header section that never
/// ends within 64 KiB both get 413 and the connection is closed; a call in
/// progress and new calls over TCP and UDP are not disturbed. Over UDP a
/// Content-Length larger than the datagram's body gets 400.
#[test]
fn oversized_tcp_message_gets_413_and_close() {
    let d = Daemon::start();
    let mut up = Caller::new(&d, LOCALHOST, "0301234567", "115");
    up.call(&d, "");

    // (a) Content-Length beyond the limit; the body is never sent.
    let mut tcp = SipTcp::connect(d.sip);
    let local = tcp.stream.local_addr().expect("tcp local addr");
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let head = tcp_invite_head(local, d.sip, &call_id);
    let msg = format!("{head}Content-Type: application/sdp\r\nContent-Length: 70000\r\n\r\n");
    tcp.send(msg.as_bytes()).expect("sending over TCP");
    let Some(r) = tcp.recv(SIP_WAIT) else {
        d.fail("no answer to a Content-Length of 70000 over TCP");
    };
    d.check(r.status() == Some(413), || {
        format!(
            "Content-Length 70000 over TCP answered {}, want 413",
            r.start
        )
    });
    d.check(r.header("call-id") == Some(call_id.as_str()), || {
        format!(
            "the 413 is for Call-ID {:?}, want {call_id}",
            r.header("call-id")
        )
    });
    d.check(r.header("warning").is_some(), || {
        format!("the 413 has no Warning: {r:?}")
    });
    d.check(closed_within(&mut tcp, Duration::from_secs(6)), || {
        "zentrale kept the TCP connection open after the 413".to_owned()
    });

    // (b) A header section with no end: 65 KiB of one header.
    let mut tcp = SipTcp::connect(d.sip);
    let local = tcp.stream.local_addr().expect("tcp local addr");
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let mut msg = tcp_invite_head(local, d.sip, &call_id);
    msg.push_str("X-Filler: ");
    msg.push_str(&"a".repeat(65 * 1024));
    tcp.send(msg.as_bytes()).expect("sending over TCP");
    let Some(r) = tcp.recv(SIP_WAIT) else {
        d.fail("no answer to a 65 KiB header section over TCP");
    };
    d.check(r.status() == Some(413), || {
        format!("endless header section answered {}, want 413", r.start)
    });
    d.check(r.header("call-id") == Some(call_id.as_str()), || {
        format!(
            "the 413 is for Call-ID {:?}, want {call_id}",
            r.header("call-id")
        )
    });
    d.check(closed_within(&mut tcp, Duration::from_secs(6)), || {
        "zentrale kept the TCP connection open after the 413".to_owned()
    });

    // (c) UDP: Content-Length 300, body 20 octets.
    let udp = SipUdp::new(d.sip);
    let call_id = format!("{}@zentrale-test", SipUdp::token());
    let msg = format!(
        "INVITE sip:115@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:0301234567@{l}>;tag={t}\r\n\
         To: <sip:115@{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:0301234567@{l}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 300\r\n\r\nv=0\r\no=x 1 1 IN IP4",
        to = d.sip,
        l = udp.local,
        b = SipUdp::token(),
        t = SipUdp::token(),
    );
    let malformed_before = metric(&d, "zentrale_sip_rejected_total{reason=\"malformed\"}");
    udp.send(&msg);
    let r = udp
        .expect("INVITE", SIP_WAIT, |c| c >= 200)
        .unwrap_or_else(|e| d.fail(format!("short UDP body: {e}")));
    d.check(r.status() == Some(400), || {
        format!(
            "Content-Length beyond the UDP body answered {}, want 400",
            r.start
        )
    });
    let warning = r.header("warning").unwrap_or_default();
    d.check(warning.contains("Content-Length"), || {
        format!("the 400 Warning does not name Content-Length: {warning:?}")
    });
    let malformed = metric(&d, "zentrale_sip_rejected_total{reason=\"malformed\"}");
    d.check(malformed == malformed_before + 1.0, || {
        format!("malformed went from {malformed_before} to {malformed}, want +1")
    });

    // zentrale still serves: the call in progress, a new TCP call, a new UDP call.
    d.check(d.metric_sum("zentrale_calls_active") == 1.0, || {
        "the call in progress is gone after the bad messages".to_owned()
    });
    up.hang_up(&d);
    let mut tcp = SipTcp::connect(d.sip);
    let local = tcp.stream.local_addr().expect("tcp local addr");
    let rtp = UdpSocket::bind((LOCALHOST, 0)).expect("rtp socket");
    let inv = invite(
        local,
        "TCP",
        d.sip,
        "115",
        rtp.local_addr().expect("rtp addr"),
        &[0],
    );
    tcp.send(inv.text.as_bytes()).expect("sending over TCP");
    let ok = loop {
        let Some(m) = tcp.recv(SIP_WAIT) else {
            d.fail("no answer to a good INVITE over TCP after the 413s");
        };
        match m.status() {
            Some(c) if c < 200 => continue,
            Some(200) => break m,
            _ => d.fail(format!("good INVITE over TCP answered {}", m.start)),
        }
    };
    tcp.send(in_dialog("ACK", 1, &inv, &ok, local, "TCP").as_bytes())
        .expect("sending the ACK");
    tcp.send(in_dialog("BYE", 2, &inv, &ok, local, "TCP").as_bytes())
        .expect("sending the BYE");
    let bye = loop {
        let Some(m) = tcp.recv(SIP_WAIT) else {
            d.fail("no answer to the BYE over TCP");
        };
        if m.cseq_method() == Some("BYE") {
            break m;
        }
    };
    d.check(bye.status() == Some(200), || {
        format!("BYE over TCP answered {}", bye.start)
    });
    let mut again = Caller::new(&d, LOCALHOST, "0301234567", "115");
    again.call(&d, "");
    again.hang_up(&d);
    wait_no_calls(&d, "after the calls around the bad messages");
}

// ---------------------------------------------------------------------------
// 8. BYE from zentrale's side: shutdown
// ---------------------------------------------------------------------------

/// SIGTERM: zentrale sends a BYE (Reason 503) to every call, and exits 0
/// once they are answered. (The RTP-timeout test in sip_calls.rs and the
/// session-expiry test above cover the other BYEs zentrale sends.)
#[test]
fn shutdown_sends_bye_to_every_call() {
    let mut d = Daemon::start();
    let mut callers: Vec<Caller> = ["115", "02151860"]
        .into_iter()
        .map(|n| Caller::new(&d, LOCALHOST, "0301234567", n))
        .collect();
    for c in &mut callers {
        c.call(&d, "");
    }
    d.terminate();
    for c in &callers {
        let until = Instant::now() + SIP_WAIT;
        let bye = loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(m) = c.sip.recv(left) else {
                d.fail(format!(
                    "{}: no BYE within {SIP_WAIT:?} of SIGTERM",
                    c.number
                ));
            };
            if m.method() == Some("BYE") {
                break m;
            }
        };
        c.sip.send(&response_to(&bye, 200, "OK"));
        let reason = bye.header("reason").unwrap_or_default();
        d.check(reason.contains("cause=503"), || {
            format!(
                "{}: shutdown BYE Reason is {reason:?}, want cause=503",
                c.number
            )
        });
        d.check(
            bye.header("call-id") == Some(c.call_id.as_str()) && bye.tag("from") == c.to_tag,
            || format!("{}: the BYE is not in the call's dialog: {bye:?}", c.number),
        );
    }
    let Some(status) = d.wait_exit(Duration::from_secs(5)) else {
        d.fail("zentrale did not exit within 5 s of SIGTERM");
    };
    d.check(status.success(), || {
        format!("zentrale exited with {status} after SIGTERM, want 0")
    });
}

/// SIGTERM with call records on: the call whose BYE is answered and the
/// one whose BYE is not both leave a record (`shutdown`, ended by zentrale)
/// before the process exits.
#[test]
fn shutdown_writes_the_record_of_every_call() {
    let mut d = Daemon::start_with(Options {
        edits: vec![(CDR_ON.0.to_owned(), CDR_ON.1.to_owned())],
        ..Options::default()
    });
    let mut answering = Caller::new(&d, LOCALHOST, "0301234567", "115");
    let mut silent = Caller::new(&d, LOCALHOST, "0301234567", "02151860");
    answering.call(&d, "");
    silent.call(&d, "");
    d.terminate();
    let until = Instant::now() + SIP_WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Some(m) = answering.sip.recv(left) else {
            d.fail("no BYE within 5 s of SIGTERM");
        };
        if m.method() == Some("BYE") {
            answering.sip.send(&response_to(&m, 200, "OK"));
            break;
        }
    }
    let Some(status) = d.wait_exit(Duration::from_secs(5)) else {
        d.fail("zentrale did not exit within 5 s of SIGTERM");
    };
    d.check(status.success(), || {
        format!("zentrale exited with {status}")
    });
    let records = d.cdr_records(2, Duration::ZERO);
    for c in [&answering, &silent] {
        let r = records.iter().find(|r| r["call_id"] == c.call_id.as_str());
        d.check(
            r.is_some_and(|r| r["end_reason"] == "shutdown" && r["hangup"] == "zentrale"),
            || {
                format!(
                    "the record of {} at shutdown: {r:?} (all: {records:?})",
                    c.number
                )
            },
        );
    }
}

/// The same hold, inactive and resume with SIPp as the caller (a real peer's
/// re-INVITEs, over UDP and TCP); SIPp fails the call on a wrong direction.
/// (SIPp quietly absorbs a 200 retransmitted after its ACK; the raw-client
/// test above is the one that catches those.)
#[test]
fn sipp_hold_and_resume() {
    let d = Daemon::start();
    sipp_ok(
        &d,
        "uac_hold",
        &["-s", "115", "-m", "1", "-r", "1"],
        Duration::from_secs(20),
    );
    sipp_ok(
        &d,
        "uac_hold",
        &["-t", "t1", "-s", "0561115", "-m", "1", "-r", "1"],
        Duration::from_secs(20),
    );
    wait_no_calls(&d, "after SIPp's held calls");
    let ended = metric(&d, "zentrale_calls_ended_total{reason=\"caller_hangup\"}");
    d.check(ended == 2.0, || {
        format!("caller_hangup is {ended} after two SIPp calls, want 2")
    });
}

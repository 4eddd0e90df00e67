//! Messages that would make a dialog nobody can send a request in, against
//! the real binary: an INVITE whose Contact or Record-Route is no usable
//! SIP URI gets 400 with a `Warning` naming the header (it used to be
//! answered 200, and the BYE zentrale later built in that dialog crashed
//! the daemon), and an agent's 2xx with such a Contact is acknowledged
//! and hung up. Afterwards the daemon answers a normal call and shuts
//! down cleanly (SIGTERM sends a BYE to every call it still has).

mod common;

use std::time::Duration;

use common::*;

/// (header line that replaces the INVITE's Contact or is added to it,
/// the header the Warning must name).
const BAD_INVITES: &[(&str, &str)] = &[
    ("Contact: <sip:caller@>", "Contact"),
    ("Contact: <sip:>", "Contact"),
    ("Contact: <sip:caller@127.0.0.1:70000>", "Contact"),
    ("Contact: <sip:caller@127.0.0.1:0>", "Contact"),
    ("Contact: <sip:caller@[::1>", "Contact"),
    ("Contact: <sip:@127.0.0.1>", "Contact"),
    ("Contact: <sip:caller@bad_host.example>", "Contact"),
    ("Contact: <tel:+495611234567>", "Contact"),
    ("Contact: *", "Contact"),
    ("Record-Route: <sip:;lr>", "Record-Route"),
    ("Record-Route: <sip:proxy@;lr>", "Record-Route"),
    (
        "Record-Route: <sip:127.0.0.1;lr>, <sip:127.0.0.1:99999;lr>",
        "Record-Route",
    ),
];

/// The INVITE of a trunk call to 115 with `line` in place of its Contact
/// (a `Contact:` line) or added (any other line).
fn bad_invite(sip: &SipUdp, rtp: std::net::SocketAddr, d: &Daemon, line: &str) -> Invite {
    let mut inv = invite(sip.local, "UDP", d.sip, "115", rtp, &[0, 101]);
    let contact = format!("Contact: <sip:0301234567@{};transport=udp>", sip.local);
    assert!(inv.text.contains(&contact), "the test INVITE changed");
    inv.text = if line.starts_with("Contact:") {
        inv.text.replace(&contact, line)
    } else {
        inv.text.replace(&contact, &format!("{contact}\r\n{line}"))
    };
    inv
}

/// The ACK of a non-2xx final response (same branch, the response's To).
fn ack_error(sip: &SipUdp, d: &Daemon, inv: &Invite, resp: &SipMsg) {
    sip.send(&format!(
        "ACK sip:115@{remote} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        remote = d.sip,
        local = sip.local,
        branch = inv.branch,
        from = resp.header("from").unwrap_or_default(),
        to = resp.header("to").unwrap_or_default(),
        cid = inv.call_id,
    ));
}

/// SIGTERM, then: exits 0 within 5 s and never panicked.
fn shuts_down_cleanly(d: &mut Daemon, problems: &mut Vec<String>) {
    d.terminate();
    match d.wait_exit(Duration::from_secs(5)) {
        Some(status) if status.success() => {}
        Some(status) => problems.push(format!("zentrale exited with {status} after SIGTERM")),
        None => problems.push("zentrale did not exit within 5 s of SIGTERM".into()),
    }
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    if log.contains("panicked") {
        problems.push("zentrale panicked".into());
    }
}

#[test]
fn invite_with_unusable_contact_or_record_route_gets_400_and_the_daemon_stays_up() {
    let mut d = Daemon::start();
    let mut problems = Vec::new();
    for (line, header) in BAD_INVITES {
        let sip = SipUdp::new(d.sip);
        let rtp = std::net::UdpSocket::bind((LOCALHOST, 0)).expect("an RTP socket");
        let inv = bad_invite(&sip, rtp.local_addr().expect("rtp addr"), &d, line);
        sip.send(&inv.text);
        let resp = match sip.expect("INVITE", SIP_WAIT, |c| c >= 200) {
            Ok(resp) => resp,
            Err(e) => {
                problems.push(format!("{line}: {e}"));
                continue;
            }
        };
        match resp.status() {
            Some(400) => {
                ack_error(&sip, &d, &inv, &resp);
                let warning = resp.header("warning").unwrap_or_default();
                if !warning.contains(header) {
                    problems.push(format!(
                        "{line}: 400 with Warning {warning:?}, want one naming {header}"
                    ));
                }
            }
            Some(code) if (200..300).contains(&code) => {
                // Acknowledged, so the call lives on until shutdown BYEs it.
                let ack = in_dialog("ACK", 1, &inv, &resp, sip.local, "UDP");
                sip.send(&ack);
                problems.push(format!("{line}: answered {code}, want 400"));
            }
            _ => problems.push(format!("{line}: answered {}, want 400", resp.start)),
        }
    }
    let bad_dialog = d.metric_sum("zentrale_sip_rejected_total{reason=\"bad_dialog\"}");
    // A normal call afterwards is answered and hung up.
    let mut caller = Caller::new(&d, "115");
    let ok = caller.call(&d);
    if ok.status() == Some(200) {
        caller.hang_up(&d);
    } else {
        problems.push(format!("a normal call afterwards got {}", ok.start));
    }
    shuts_down_cleanly(&mut d, &mut problems);
    if bad_dialog < 1.0 {
        problems.push(format!(
            "zentrale_sip_rejected_total{{reason=\"bad_dialog\"}} is {bad_dialog}"
        ));
    }
    if !problems.is_empty() {
        d.fail(problems.join("\n"));
    }
}

/// An agent answers its offer with a 200 whose Contact has no host:
/// zentrale acknowledges it and hangs that leg up with a BYE to the
/// phone's flow, the caller stays queued, and the next offer goes out.
#[test]
fn agent_answer_with_unusable_contact_is_acked_and_hung_up() {
    let mut d = Daemon::start();
    let mut problems = Vec::new();
    let phone = Phone::registered(&d, "1001");
    let mut caller = Caller::new(&d, "115");
    caller.connect(&d);
    let offer = phone.expect_offer(&d, Duration::from_secs(15));
    // The 200 as Phone::reply builds it, with the broken Contact.
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for v in offer.headers_named("via") {
        ok.push_str(&format!("Via: {v}\r\n"));
    }
    let sdp = phone.sdp(1, 0, "sendrecv");
    ok.push_str(&format!(
        "From: {}\r\nTo: {};tag={}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         Contact: <sip:1001@>\r\nRecord-Route: <sip:127.0.0.1;lr>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        offer.header("from").unwrap_or_default(),
        offer.header("to").unwrap_or_default(),
        phone.tag,
        offer.header("call-id").unwrap_or_default(),
        offer.header("cseq").unwrap_or_default(),
        sdp.len(),
    ));
    phone.sip.send(&ok);
    let mut acked = false;
    let mut bye = None;
    while let Some(m) = phone.sip.recv(SIP_WAIT) {
        match m.method() {
            Some("ACK") => acked = m.header("call-id") == offer.header("call-id"),
            Some("BYE") => {
                phone.sip.send(&response_to(&m, 200, "OK"));
                bye = Some(m);
                break;
            }
            _ => {}
        }
    }
    if !acked {
        problems.push("the agent's 200 was not acknowledged".into());
    }
    match &bye {
        None => problems.push("no BYE for the agent's broken 200".into()),
        Some(b) if b.header("call-id") != offer.header("call-id") => {
            problems.push(format!("a BYE for another call: {b:?}"))
        }
        Some(b) if !b.start.starts_with("BYE sip:1001@") => problems.push(format!(
            "the BYE goes to {}, want the URI zentrale called",
            b.start
        )),
        _ => {}
    }
    // The caller is still waiting: the phone gets the call offered again
    // (after the no-answer pause rules allow) or the caller hangs up fine.
    caller.hang_up(&d);
    shuts_down_cleanly(&mut d, &mut problems);
    if !problems.is_empty() {
        d.fail(problems.join("\n"));
    }
}

//! Fuzz target `dialogs`: making dialogs from what came off the wire and
//! building every request zentrale sends in them.
//!
//! The first byte splits the rest: even, the input is an INVITE from a
//! caller ([`Dialog::from_invite`], then BYE, UPDATE and INFO in that
//! dialog); odd, it is an agent's response to zentrale's INVITE
//! ([`AgentLeg::on_invite_response`], then hang-up, CANCEL and BYE).
//! A dialog that was made must build its requests: the checks at its
//! making are what keeps [`Dialog::request`] from failing later.

use std::net::SocketAddr;

use crate::call::Dialog;
use crate::call::agent_leg::{AgentLeg, LegAction, LegRequest};
use crate::sip::Transport;
use crate::sip::message::{Method, Outgoing, Request};
use crate::sip::screen::{Screened, screen};
use crate::sip::transaction::Peer;

fn peer(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        local: SocketAddr::from(([127, 0, 0, 1], 5060)),
    }
}

pub fn run(data: &[u8]) {
    let Some((kind, message)) = data.split_first() else {
        return;
    };
    let message = super::loopback_only(message);
    if kind % 2 == 0 {
        caller_leg(&message);
    } else {
        agent_leg(&message);
    }
}

fn caller_leg(message: &[u8]) {
    let Screened::Request(invite) = screen(message, Transport::Udp) else {
        return;
    };
    let Ok(mut dialog) =
        Dialog::from_invite(&invite, peer(5070), &mut crate::rng::SeededRng::from_u64(1))
    else {
        return;
    };
    let _ = dialog.next_hop();
    for (method, extra, body) in [
        (
            Method::Bye,
            vec![("Reason", "SIP;cause=200".to_owned())],
            None,
        ),
        (
            Method::Update,
            vec![("Session-Expires", "90;refresher=uas".to_owned())],
            None,
        ),
        (
            Method::Info,
            Vec::new(),
            Some(("application/dtmf-relay", &b"Signal=5\r\n"[..])),
        ),
    ] {
        let req = dialog.request(method, &extra, body);
        assert!(
            req.is_some(),
            "{method} does not build in a dialog that was made: target {:?}, routes {:?}",
            dialog.remote_target(),
            dialog.route_set()
        );
        req.iter().for_each(assert_is_request);
    }
}

/// The agent leg zentrale would place to a phone on 127.0.0.1:5072.
pub fn agent_leg_for_test() -> AgentLeg {
    AgentLeg::new(
        LegRequest {
            contact: "sip:1001@127.0.0.1:5072".into(),
            to: "sip:1001@127.0.0.1:5060".into(),
            caller: "0561123456".into(),
            display: "Kassel 115".into(),
            headers: vec![("X-Zentrale-Queue", "kassel/115".into())],
            sdp: b"v=0\r\n".to_vec(),
            peer: peer(5072),
        },
        &mut crate::rng::SeededRng::from_u64(1),
    )
    .expect("a fixed, valid contact")
}

fn agent_leg(message: &[u8]) {
    // The response is matched to our INVITE by the transaction layer, which
    // looks at Via and CSeq only: the rest is whatever the phone sent.
    let Screened::Response(resp) = screen(message, Transport::Udp) else {
        return;
    };
    let mut leg = agent_leg_for_test();
    let mut actions = leg.on_invite_response(&resp);
    // The same again (a retransmission), then our side ends the leg.
    actions.extend(leg.on_invite_response(&resp));
    actions.extend(leg.cancel_or_hang_up());
    actions.extend(leg.on_bye());
    for action in &actions {
        if let LegAction::SendAck(req) | LegAction::SendBye(req) | LegAction::SendCancel(req) =
            action
        {
            assert_is_request(req);
        }
    }
    if let Some(dialog) = leg.dialog.as_mut() {
        let _ = dialog.next_hop();
        let bye = dialog.request(Method::Bye, &[], None);
        assert!(
            bye.is_some(),
            "a BYE does not build in the agent's dialog: target {:?}, routes {:?}",
            dialog.remote_target(),
            dialog.route_set()
        );
        bye.iter().for_each(assert_is_request);
    }
}

fn assert_is_request(req: &Outgoing) {
    assert!(
        Request::try_from(req.as_bytes()).is_ok(),
        "a request zentrale built does not read back: {req}"
    );
}

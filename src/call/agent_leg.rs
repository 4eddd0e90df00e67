//! The leg zentrale places towards an agent's softphone (the B side of the
//! B2BUA), sans-IO.
//!
//! The ACD picks an agent; the daemon builds an [`AgentLeg`] with the INVITE
//! ([`AgentLeg::new`]), sends it through a client transaction and feeds the
//! leg what comes back. The leg answers with [`LegAction`]s: send the ACK of
//! a 2xx, send CANCEL or BYE, report the answer or the failure. Its own
//! Call-ID, tags and CSeq make it a separate dialog from the caller's.
//!
//! ```text
//!   Calling ──1xx──► Early ──2xx/ACK──► Talking ──BYE either way──► Ended
//!      │               │
//!      └──cancel()─────┴──► Cancelling ──487──► Ended   (a 2xx racing the
//!                                                       CANCEL: ACK + BYE)
//! ```
//!
//! ```
//! use zentrale::call::agent_leg::{AgentLeg, LegRequest};
//! use zentrale::sip::Transport;
//! use zentrale::sip::transaction::Peer;
//! use zentrale::rng::SeededRng;
//!
//! let peer = Peer {
//!     transport: Transport::Udp,
//!     addr: "127.0.0.1:5072".parse().unwrap(),
//!     local: "127.0.0.1:5060".parse().unwrap(),
//! };
//! let leg = AgentLeg::new(LegRequest {
//!     contact: "sip:1001@127.0.0.1:5072".into(),
//!     to: "sip:1001@127.0.0.1:5060".into(),
//!     caller: "0561123456".into(),
//!     display: "Kassel 115".into(),
//!     headers: vec![("X-Zentrale-Queue", "kassel/115".into())],
//!     sdp: b"v=0\r\n".to_vec(),
//!     peer,
//! }, &mut SeededRng::from_u64(1))
//! .unwrap();
//! assert!(leg.invite.to_string().starts_with("INVITE sip:1001@127.0.0.1:5072 SIP/2.0\r\n"));
//! ```

use std::sync::Arc;

use crate::rng::{SeededRng, keyed_token};
use crate::sip::headers;
use crate::sip::message::{Method, Outgoing, PRODUCT, RequestWriter, Response};
use crate::sip::transaction::Peer;
use crate::sip::via::MAGIC_COOKIE;

use super::dialog::Dialog;

/// Where the agent leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegState {
    /// INVITE sent, nothing heard yet.
    Calling,
    /// A provisional response came: the phone rings.
    Early,
    /// 2xx received and acknowledged: the agent talks.
    Talking,
    /// We want the leg gone before it was answered.
    Cancelling,
    /// We sent a BYE.
    Ending,
    Ended,
}

/// Why an offer to an agent did not become a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegFailure {
    /// 486 / 600: the phone is busy.
    Busy,
    /// 603 or another explicit refusal by the agent.
    Declined,
    /// No response at all (transaction timeout), or 408 / 480.
    Unreachable,
    /// We cancelled it (ring timeout, caller gone, another agent answered).
    Cancelled,
}

/// What the daemon must do for an agent leg.
#[derive(Debug, Clone, PartialEq)]
pub enum LegAction {
    /// The phone rings (first provisional response).
    Ringing,
    /// Send this request statelessly: the ACK of a 2xx (RFC 3261 §13.2.2.4).
    SendAck(Outgoing),
    /// Send this CANCEL in a client transaction of its own.
    SendCancel(Outgoing),
    /// Send this BYE in a client transaction of its own.
    SendBye(Outgoing),
    /// The agent answered; the body is its SDP answer.
    Answered(Vec<u8>),
    /// The leg will not be answered.
    Failed(LegFailure),
    /// The leg is over: free its media and forget it.
    Release,
}

/// What the INVITE towards an agent carries.
#[derive(Debug, Clone)]
pub struct LegRequest {
    /// The registered Contact URI (the Request-URI).
    pub contact: String,
    /// The To URI: the agent's address, or the forward target.
    pub to: String,
    /// The caller's number as the agent should see it (From user).
    pub caller: String,
    /// Shown before the number: who the call is for (tenant and queue).
    pub display: String,
    /// Extra headers, e.g. the queue and origin for the softphone.
    pub headers: Vec<(&'static str, String)>,
    /// Our SDP offer.
    pub sdp: Vec<u8>,
    /// Where to send: the flow the phone registered from.
    pub peer: Peer,
}

/// One outbound leg to an agent. See the module docs.
#[derive(Debug)]
pub struct AgentLeg {
    pub state: LegState,
    /// The INVITE as sent.
    pub invite: Outgoing,
    pub call_id: String,
    /// The dialog, once the agent answered.
    pub dialog: Option<Dialog>,
    pub peer: Peer,
    /// The dialog as the INVITE begins it (Call-ID, our tag and URI, the
    /// agent's URI, the Contact we called): what the CANCEL copies and the
    /// agent's 2xx completes.
    early: Dialog,
    /// The ACK we sent, resent when the 2xx is retransmitted.
    ack: Option<Outgoing>,
    /// Whether a CANCEL went out (it may only go after a provisional).
    cancel_sent: bool,
}

impl AgentLeg {
    /// Builds the INVITE for `req`; send [`AgentLeg::invite`] in a client
    /// transaction to [`AgentLeg::peer`]. `None` when the Contact (the
    /// registered one, or a forward target) is not a usable Request-URI
    /// ([`super::dialog::check_target`]).
    /// Call-ID, tag and branches come from `rng`.
    pub fn new(req: LegRequest, rng: &mut SeededRng) -> Option<AgentLeg> {
        if let Err(problem) = super::dialog::check_target(&req.contact) {
            tracing::warn!(contact = %req.contact, problem, "no INVITE to an unusable contact");
            return None;
        }
        let call_id = format!("{}@zentrale", rng.token());
        let mut host = String::with_capacity(48);
        crate::ascii::push_socket_addr(&mut host, req.peer.local);
        // A phone registered with a SIPS Contact gets a SIPS Contact back.
        let sips = req.peer.transport == crate::sip::Transport::Tls
            && crate::call::dialog::is_sips(&req.contact);
        let (scheme, transport_param) = if sips {
            ("sips", "")
        } else {
            ("sip", req.peer.transport.uri_param())
        };
        let display = req.display.replace(['"', '\\'], "");
        let caller = sip_user(&req.caller);
        let branch = [MAGIC_COOKIE, &rng.token()].concat();
        let local_tag = rng.token();
        let local_uri = ["\"", &display, "\" <sip:", &caller, "@", &host, ">"].concat();
        let remote_uri = ["<", &req.to.replace(['<', '>', '\r', '\n'], ""), ">"].concat();

        let mut w = RequestWriter::new(Method::Invite, &req.contact);
        w.via(req.peer.transport.as_str(), &host, &branch);
        w.header("Max-Forwards", &["70"]);
        w.header("From", &[&local_uri, ";tag=", &local_tag]);
        w.header("To", &[&remote_uri]);
        w.header("Call-ID", &[&call_id]);
        w.cseq(1, Method::Invite);
        w.header(
            "Contact",
            &["<", scheme, ":zentrale@", &host, transport_param, ">"],
        );
        w.header(
            "Allow",
            &["INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"],
        );
        w.header("User-Agent", &[PRODUCT]);
        for (name, value) in &req.headers {
            w.header(name, &[&value.replace(['\r', '\n'], " ")]);
        }
        // Written even for an empty offer, as the phone expects one.
        w.header("Content-Type", &["application/sdp"]);
        let Some(invite) = w.finish(None, &req.sdp) else {
            tracing::warn!(contact = %req.contact, "agent INVITE with a line break in a value");
            return None;
        };
        let early = Dialog {
            call_id: Arc::from(call_id.as_str()),
            local_tag,
            remote_tag: String::new(),
            local_uri,
            remote_uri,
            remote_target: req.contact,
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: 0,
            source: req.peer,
            pinned: true,
            // Keys the branches of the dialog's requests once the agent answers.
            branch_key: rng.next_u64(),
        };
        Some(AgentLeg {
            state: LegState::Calling,
            invite,
            call_id,
            dialog: None,
            peer: req.peer,
            early,
            ack: None,
            cancel_sent: false,
        })
    }

    /// A response to our INVITE (the first of each, retransmissions too).
    pub fn on_invite_response(&mut self, resp: &Response) -> Vec<LegAction> {
        let code = resp.status_code.code();
        match (self.state, code) {
            (LegState::Calling, 100) => Vec::new(),
            (LegState::Calling, 101..=199) => {
                self.state = LegState::Early;
                vec![LegAction::Ringing]
            }
            (LegState::Cancelling, 101..=199) if !self.cancel_sent => {
                // Now a CANCEL may go (RFC 3261 §9.1).
                self.cancel_sent = true;
                self.send_cancel()
            }
            (LegState::Calling | LegState::Early, 200..=299) => match self.confirm(resp) {
                (ack, true) => {
                    self.state = LegState::Talking;
                    let mut actions: Vec<_> = ack.map(LegAction::SendAck).into_iter().collect();
                    actions.push(LegAction::Answered(resp.body.clone()));
                    actions
                }
                (ack, false) => {
                    // An answer whose Contact or Record-Route cannot make
                    // a dialog: acknowledged (or the phone retransmits it
                    // for 32 s) and hung up at once, an offer not taken.
                    let mut actions: Vec<_> = ack.map(LegAction::SendAck).into_iter().collect();
                    let hang_up = self.hang_up_now();
                    let released = hang_up.contains(&LegAction::Release);
                    actions.extend(hang_up.into_iter().filter(|a| *a != LegAction::Release));
                    // Reported while the leg still exists; released last.
                    actions.push(LegAction::Failed(LegFailure::Declined));
                    if released {
                        actions.push(LegAction::Release);
                    }
                    actions
                }
            },
            (LegState::Cancelling, 200..=299) => {
                // The answer crossed our CANCEL: acknowledge and hang up.
                let (ack, _) = self.confirm(resp);
                let mut actions: Vec<_> = ack.map(LegAction::SendAck).into_iter().collect();
                actions.extend(self.hang_up_now());
                actions
            }
            (LegState::Talking | LegState::Ending, 200..=299) => {
                // A retransmitted 2xx: our ACK was lost.
                self.ack
                    .clone()
                    .map(LegAction::SendAck)
                    .into_iter()
                    .collect()
            }
            (LegState::Calling | LegState::Early, 300..) => {
                self.state = LegState::Ended;
                vec![LegAction::Failed(failure_of(code)), LegAction::Release]
            }
            (LegState::Cancelling, 300..) => {
                self.state = LegState::Ended;
                vec![LegAction::Failed(LegFailure::Cancelled), LegAction::Release]
            }
            _ => Vec::new(),
        }
    }

    /// The INVITE transaction got no final response (timer B).
    pub fn on_invite_timeout(&mut self) -> Vec<LegAction> {
        match self.state {
            LegState::Calling | LegState::Early => {
                self.state = LegState::Ended;
                vec![
                    LegAction::Failed(LegFailure::Unreachable),
                    LegAction::Release,
                ]
            }
            LegState::Cancelling => {
                self.state = LegState::Ended;
                vec![LegAction::Failed(LegFailure::Cancelled), LegAction::Release]
            }
            _ => Vec::new(),
        }
    }

    /// Stop ringing (ring timeout, caller gone, someone else answered), or
    /// hang up if the agent already answered.
    pub fn cancel_or_hang_up(&mut self) -> Vec<LegAction> {
        match self.state {
            LegState::Calling => {
                // No provisional yet: the CANCEL waits for one; a final
                // response or timer B ends the leg otherwise.
                self.state = LegState::Cancelling;
                Vec::new()
            }
            LegState::Early => {
                self.state = LegState::Cancelling;
                self.cancel_sent = true;
                self.send_cancel()
            }
            LegState::Talking => self.hang_up_now(),
            LegState::Cancelling | LegState::Ending | LegState::Ended => Vec::new(),
        }
    }

    /// The agent hung up (BYE received and answered).
    pub fn on_bye(&mut self) -> Vec<LegAction> {
        if self.state == LegState::Ended {
            return Vec::new();
        }
        self.state = LegState::Ended;
        vec![LegAction::Release]
    }

    /// Our BYE was answered or timed out.
    pub fn on_bye_done(&mut self) -> Vec<LegAction> {
        self.on_bye()
    }

    /// Whether an in-dialog request from the agent belongs to this leg.
    pub fn matches(&self, from_tag: Option<&str>, to_tag: Option<&str>) -> bool {
        self.dialog
            .as_ref()
            .is_some_and(|d| d.matches(from_tag, to_tag))
    }

    /// Turns the 2xx into our dialog and builds its ACK (`None` if even
    /// that does not parse), and `false` when the 2xx's Contact or
    /// Record-Route is unusable: the dialog then keeps the URI we called and no route
    /// set, enough to acknowledge the 2xx and hang up.
    fn confirm(&mut self, resp: &Response) -> (Option<Outgoing>, bool) {
        let (dialog, usable) = match Dialog::from_answer(&self.early, resp) {
            Ok(dialog) => (dialog, true),
            Err(e) => {
                tracing::warn!(leg_call_id = %self.call_id, error = %e, "agent's answer cannot make a dialog");
                (self.early.clone(), false)
            }
        };
        let ack = dialog.ack();
        self.dialog = Some(dialog);
        self.ack.clone_from(&ack);
        (ack, usable)
    }

    /// Sends a BYE in the dialog; without one (or if it does not build)
    /// the leg is simply over.
    fn hang_up_now(&mut self) -> Vec<LegAction> {
        match self
            .dialog
            .as_mut()
            .and_then(|d| d.request(Method::Bye, &[], None))
        {
            Some(bye) => {
                self.state = LegState::Ending;
                vec![LegAction::SendBye(bye)]
            }
            None => {
                self.state = LegState::Ended;
                vec![LegAction::Release]
            }
        }
    }

    fn send_cancel(&mut self) -> Vec<LegAction> {
        match self.cancel() {
            Some(cancel) => vec![LegAction::SendCancel(cancel)],
            // Nothing to stop the ringing with: the INVITE's own timer
            // (B) or the final response ends the leg.
            None => Vec::new(),
        }
    }

    /// RFC 3261 §9.1: the CANCEL copies Request-URI, the top Via (same
    /// branch), From, To, Call-ID and the CSeq number of the INVITE.
    fn cancel(&self) -> Option<Outgoing> {
        let e = &self.early;
        let mut sent_by = String::with_capacity(48);
        crate::ascii::push_socket_addr(&mut sent_by, e.source.local);
        let mut w = RequestWriter::new(Method::Cancel, &e.remote_target);
        w.via(e.source.transport.as_str(), &sent_by, self.invite.branch());
        w.header("From", &[&e.local_uri, ";tag=", &e.local_tag]);
        w.header("To", &[&e.remote_uri]);
        w.header("Call-ID", &[&e.call_id]);
        w.cseq(1, Method::Cancel);
        w.header("Max-Forwards", &["70"]);
        w.header("User-Agent", &[PRODUCT]);
        w.finish(None, b"")
    }
}

fn failure_of(code: u16) -> LegFailure {
    match code {
        486 | 600 => LegFailure::Busy,
        408 | 480 | 500..=599 => LegFailure::Unreachable,
        _ => LegFailure::Declined,
    }
}

/// Keeps a user part to the characters a SIP user may carry unescaped.
fn sip_user(s: &str) -> String {
    let user: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(*c))
        .collect();
    if user.is_empty() {
        "anonymous".to_owned()
    } else {
        user
    }
}

impl Dialog {
    /// Builds the UAC dialog from the one our INVITE began (`early`) and
    /// its 2xx (RFC 3261 §12.1.2): remote tag and target from the answer,
    /// route set from its Record-Route in reverse. Requests go to the
    /// agent's registered flow (`early` is pinned), whatever the Contact
    /// says, so agents behind NAT work. The Contact and every Record-Route
    /// entry are checked as for [`Dialog::from_invite`]; a missing To tag
    /// or Contact is tolerated.
    pub fn from_answer(
        early: &Dialog,
        answer: &Response,
    ) -> Result<Dialog, super::dialog::DialogError> {
        let h = headers::dialog_headers(&answer.headers);
        let mut route_set = Vec::new();
        for value in &h.record_route {
            for entry in headers::route_entries(value) {
                route_set.push(super::dialog::checked_route(entry)?);
            }
        }
        route_set.reverse();
        let mut dialog = early.clone();
        // A 2xx without To tag or Contact is broken but usable: keep
        // talking to the flow we used and the URI we called.
        if let Some(tag) = h.to.and_then(headers::tag_of) {
            dialog.remote_tag = tag.to_owned();
        }
        if let Some(contact) = h.contact {
            dialog.remote_target = super::dialog::checked_contact(contact)?;
        }
        dialog.route_set = route_set;
        Ok(dialog)
    }

    /// The ACK of the 2xx to our INVITE (CSeq number of the INVITE, new branch).
    fn ack(&self) -> Option<Outgoing> {
        // The INVITE's CSeq with the top bit: never one of `request`'s.
        let branch = keyed_token(self.branch_key, u64::from(self.local_cseq) | 1 << 63);
        self.write(Method::Ack, self.local_cseq, &branch, &[], None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;
    use crate::sip::message::{Reply, Request, StatusCode, encode_reply};

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5072".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        }
    }

    fn leg() -> AgentLeg {
        AgentLeg::new(
            LegRequest {
                contact: "sip:1001@127.0.0.10:5072".into(),
                to: "sip:1001@127.0.0.1:5060".into(),
                caller: "+49 561 123456".into(),
                display: "Kassel \"115\"".into(),
                headers: vec![("X-Zentrale-Queue", "kassel/115".into())],
                sdp: b"v=0\r\n".to_vec(),
                peer: peer(),
            },
            &mut SeededRng::from_u64(1),
        )
        .unwrap()
    }

    /// The agent's answer to the leg's INVITE: tagged, with a Contact and
    /// two Record-Routes.
    fn answer(leg: &AgentLeg, code: u16) -> Response {
        let invite = Request::try_from(leg.invite.as_bytes()).unwrap();
        let reply = Reply {
            status: StatusCode::from(code),
            to_tag: Some("agent"),
            extra: &[
                ("Contact", "<sip:1001@127.0.0.10:5072>"),
                ("Record-Route", "<sip:127.0.0.11;lr>"),
                ("Record-Route", "<sip:127.0.0.12;lr>"),
            ],
            body: None,
        };
        Response::try_from(encode_reply(&invite, &reply)).unwrap()
    }

    #[test]
    fn invite_shows_caller_and_queue_and_goes_to_contact() {
        let l = leg();
        l.invite.assert_reads_back();
        let text = l.invite.to_string();
        assert!(
            text.starts_with("INVITE sip:1001@127.0.0.10:5072 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("From: \"Kassel 115\" <sip:+49561123456@127.0.0.1:5060>;tag="),
            "{text}"
        );
        assert!(text.contains("X-Zentrale-Queue: kassel/115\r\n"), "{text}");
        assert!(text.contains("Content-Type: application/sdp\r\n"), "{text}");
    }

    #[test]
    fn answer_is_acked_and_retransmissions_reacked() {
        let mut l = leg();
        assert_eq!(
            l.on_invite_response(&answer(&l, 180)),
            vec![LegAction::Ringing]
        );
        let ok = answer(&l, 200);
        let actions = l.on_invite_response(&ok);
        let LegAction::SendAck(ack) = &actions[0] else {
            panic!("{actions:?}")
        };
        ack.assert_reads_back();
        let text = ack.to_string();
        // §13.2.2.4: to the Contact, CSeq number of the INVITE, with the route set reversed.
        assert!(
            text.starts_with("ACK sip:1001@127.0.0.10:5072 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("CSeq: 1 ACK\r\n"));
        assert!(
            text.contains("Route: <sip:127.0.0.12;lr>\r\nRoute: <sip:127.0.0.11;lr>\r\n"),
            "{text}"
        );
        assert!(text.contains(";tag=agent\r\n"));
        assert!(matches!(actions[1], LegAction::Answered(_)));
        assert_eq!(l.state, LegState::Talking);
        // Pinned to the registered flow, not the Contact's address.
        assert_eq!(l.dialog.as_ref().unwrap().next_hop().addr, peer().addr);
        assert_eq!(
            l.on_invite_response(&ok),
            vec![LegAction::SendAck(ack.clone())]
        );
    }

    #[test]
    fn cancel_waits_for_a_provisional_and_copies_the_branch() {
        let mut l = leg();
        assert!(l.cancel_or_hang_up().is_empty());
        let actions = l.on_invite_response(&answer(&l, 180));
        let LegAction::SendCancel(cancel) = &actions[0] else {
            panic!("{actions:?}")
        };
        let inv = l.invite.to_string();
        let via = inv.lines().find(|l| l.starts_with("Via:")).unwrap();
        cancel.assert_reads_back();
        assert_eq!(cancel.branch(), l.invite.branch());
        let text = cancel.to_string();
        assert!(text.contains(via), "{text}");
        assert!(text.contains("CSeq: 1 CANCEL\r\n"));
        assert_eq!(
            l.on_invite_response(&answer(&l, 487)),
            vec![LegAction::Failed(LegFailure::Cancelled), LegAction::Release]
        );
    }

    #[test]
    fn answer_crossing_cancel_is_acked_and_hung_up() {
        let mut l = leg();
        l.on_invite_response(&answer(&l, 180));
        l.cancel_or_hang_up();
        let actions = l.on_invite_response(&answer(&l, 200));
        assert!(matches!(actions[0], LegAction::SendAck(_)));
        let LegAction::SendBye(bye) = &actions[1] else {
            panic!("{actions:?}")
        };
        bye.assert_reads_back();
        assert!(bye.to_string().contains("CSeq: 2 BYE\r\n"));
        assert_eq!(l.on_bye_done(), vec![LegAction::Release]);
    }

    #[test]
    fn refusals_map_to_failures() {
        for (code, failure) in [
            (486, LegFailure::Busy),
            (603, LegFailure::Declined),
            (480, LegFailure::Unreachable),
            (404, LegFailure::Declined),
        ] {
            let mut l = leg();
            assert_eq!(
                l.on_invite_response(&answer(&l, code)),
                vec![LegAction::Failed(failure), LegAction::Release],
                "{code}"
            );
        }
        let mut l = leg();
        assert_eq!(
            l.on_invite_timeout(),
            vec![
                LegAction::Failed(LegFailure::Unreachable),
                LegAction::Release
            ]
        );
    }

    #[test]
    fn hang_up_after_answer_sends_bye() {
        let mut l = leg();
        l.on_invite_response(&answer(&l, 200));
        let actions = l.cancel_or_hang_up();
        assert!(matches!(actions[0], LegAction::SendBye(_)));
        assert_eq!(l.state, LegState::Ending);
        assert!(l.cancel_or_hang_up().is_empty());
    }

    /// A 2xx whose Contact no request could go to: ACKed (to the flow,
    /// Request-URI the one we called), hung up, an offer not taken; no panic.
    #[test]
    fn answer_with_unusable_contact_is_acked_hung_up_and_failed() {
        for (bad, good) in [
            (
                "Contact: <sip:1001@127.0.0.10:5072>",
                "Contact: <sip:1001@>",
            ),
            (
                "Record-Route: <sip:127.0.0.11;lr>",
                "Record-Route: <sip:;lr>",
            ),
        ] {
            let mut l = leg();
            let text = answer(&l, 200).to_string().replace(bad, good);
            let ok = Response::try_from(text.as_str()).unwrap();
            let actions = l.on_invite_response(&ok);
            let [
                LegAction::SendAck(ack),
                LegAction::SendBye(bye),
                LegAction::Failed(LegFailure::Declined),
            ] = &actions[..]
            else {
                panic!("{good}: {actions:?}")
            };
            assert!(
                ack.to_string()
                    .starts_with("ACK sip:1001@127.0.0.10:5072 SIP/2.0\r\n"),
                "{ack}"
            );
            assert!(!ack.to_string().contains("Route:"), "{ack}");
            assert!(
                bye.to_string().starts_with("BYE sip:1001@127.0.0.10:5072 "),
                "{bye}"
            );
            assert_eq!(l.state, LegState::Ending);
            // A retransmitted 2xx is ACKed again, nothing else.
            assert!(matches!(
                &l.on_invite_response(&ok)[..],
                [LegAction::SendAck(_)]
            ));
            assert_eq!(l.on_bye_done(), vec![LegAction::Release]);
        }
    }

    #[test]
    fn no_invite_to_an_unusable_contact() {
        let req = LegRequest {
            contact: "sip:1001@".into(),
            to: "sip:1001@127.0.0.1:5060".into(),
            caller: "0561".into(),
            display: "x".into(),
            headers: Vec::new(),
            sdp: Vec::new(),
            peer: peer(),
        };
        assert!(AgentLeg::new(req, &mut SeededRng::from_u64(1)).is_none());
    }
}

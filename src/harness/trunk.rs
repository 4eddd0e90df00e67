//! The carrier trunk: a small user agent that places callers' calls
//! (INVITE with SDP), ACKs what zentrale answers, hangs up, cancels,
//! holds and resumes (re-INVITE), refreshes sessions (UPDATE), sends
//! keys by SIP INFO, and answers zentrale's BYE and UPDATE, each by the
//! state of its dialog.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sip::message::{Method, Request, Response};

use super::wire::{self, Received};

/// A call the trunk placed, by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub usize);

/// Where a trunk call stands, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerState {
    /// INVITE sent, no answer beyond 100 yet.
    Calling,
    /// 180 (or 183) came.
    Ringing,
    /// 200 came and was ACKed.
    Up,
    /// A final error to the INVITE (487 after our CANCEL included).
    Refused(u16),
    /// Over: `by_zentrale` if zentrale sent the BYE.
    Ended { by_zentrale: bool },
}

/// One call of the trunk.
#[derive(Debug, Clone)]
pub struct TrunkCall {
    pub number: String,
    pub call_id: String,
    pub state: CallerState,
    pub placed_at: Instant,
    pub answered_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    /// The `Reason` of zentrale's BYE.
    pub bye_reason: Option<String>,
    /// Session-Expires of zentrale's last 2xx to an INVITE.
    pub session_expires: Option<String>,
    /// The direction zentrale answered the last re-INVITE with.
    pub answered_direction: Option<String>,
    /// zentrale's RTP port, from its SDP.
    pub media_port: Option<u16>,
    /// When zentrale sent us an UPDATE (its session refresh).
    pub refreshes: Vec<Instant>,
    /// Final responses to our in-dialog requests: (method, code).
    pub finals: Vec<(String, u16)>,
    /// The caller's number.
    pub caller: String,
    /// The caller hangs up this long after the answer, if set.
    pub talk: Option<Duration>,
    bye_due: Option<Instant>,
    from_tag: String,
    to_tag: Option<String>,
    target: Option<String>,
    cseq: u32,
    invite_branch: String,
    sdp_version: u32,
}

/// See the module docs.
#[derive(Debug)]
pub struct Trunk {
    pub addr: SocketAddr,
    zentrale: SocketAddr,
    pub calls: Vec<TrunkCall>,
    /// The caller's number on every call.
    pub caller_number: String,
    counter: u64,
}

impl Trunk {
    pub fn new(addr: SocketAddr, zentrale: SocketAddr) -> Trunk {
        Trunk {
            addr,
            zentrale,
            calls: Vec::new(),
            caller_number: "0301234567".into(),
            counter: 0,
        }
    }

    fn token(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("t{what}{}", self.counter)
    }

    /// The call `c`.
    pub fn call(&self, c: CallRef) -> &TrunkCall {
        &self.calls[c.0]
    }

    fn caller_header(&self, call: &TrunkCall) -> String {
        format!(
            "\"Anrufer\" <sip:{}@{}>;tag={}",
            call.caller, self.addr, call.from_tag
        )
    }

    fn called_header(&self, call: &TrunkCall) -> String {
        let mut to = format!("<sip:{}@{}>", call.number, self.zentrale);
        if let Some(t) = &call.to_tag {
            to.push_str(&format!(";tag={t}"));
        }
        to
    }

    /// A new call to `number`, with `extra` header lines (e.g.
    /// `Session-Expires: 90`): the INVITE.
    pub fn invite(&mut self, number: &str, extra: &[&str], now: Instant) -> (CallRef, Vec<u8>) {
        let tag = self.token("f");
        let call = TrunkCall {
            number: number.to_owned(),
            call_id: format!("{tag}@trunk"),
            state: CallerState::Calling,
            placed_at: now,
            answered_at: None,
            ended_at: None,
            bye_reason: None,
            session_expires: None,
            answered_direction: None,
            media_port: None,
            refreshes: Vec::new(),
            finals: Vec::new(),
            caller: self.caller_number.clone(),
            talk: None,
            bye_due: None,
            from_tag: tag.clone(),
            to_tag: None,
            target: None,
            cseq: 1,
            invite_branch: format!("z9hG4bK{tag}i"),
            sdp_version: 1,
        };
        let port = 40000 + (self.calls.len() as u16 % 5000) * 2;
        let mut lines = vec![
            format!(
                "Via: SIP/2.0/UDP {};branch={};rport",
                self.addr, call.invite_branch
            ),
            "Max-Forwards: 70".into(),
            format!("From: {}", self.caller_header(&call)),
            format!("To: {}", self.called_header(&call)),
            format!("Call-ID: {}", call.call_id),
            "CSeq: 1 INVITE".into(),
            format!("Contact: <sip:trunk@{}>", self.addr),
        ];
        lines.extend(extra.iter().map(|l| l.to_string()));
        let bytes = wire::request(
            &format!("INVITE sip:{number}@{} SIP/2.0", self.zentrale),
            &lines,
            Some(&wire::sdp(port, 1, "sendrecv")),
        );
        self.calls.push(call);
        (CallRef(self.calls.len() - 1), bytes)
    }

    /// An in-dialog request of call `c` (new CSeq and branch).
    fn in_dialog(
        &mut self,
        c: CallRef,
        method: &str,
        extra: &[String],
        body: Option<&str>,
    ) -> Vec<u8> {
        let branch = self.token("b");
        let call = &mut self.calls[c.0];
        call.cseq += 1;
        let call = call.clone();
        let target = call
            .target
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}", call.number, self.zentrale));
        let mut lines = vec![
            format!(
                "Via: SIP/2.0/UDP {};branch=z9hG4bK{branch};rport",
                self.addr
            ),
            "Max-Forwards: 70".into(),
            format!("From: {}", self.caller_header(&call)),
            format!("To: {}", self.called_header(&call)),
            format!("Call-ID: {}", call.call_id),
            format!("CSeq: {} {method}", call.cseq),
        ];
        if matches!(method, "INVITE" | "UPDATE") {
            lines.push(format!("Contact: <sip:trunk@{}>", self.addr));
        }
        lines.extend(extra.iter().cloned());
        wire::request(&format!("{method} {target} SIP/2.0"), &lines, body)
    }

    /// The caller hangs up an answered call: BYE.
    pub fn bye(&mut self, c: CallRef) -> Vec<u8> {
        self.calls[c.0].bye_due = None;
        self.in_dialog(c, "BYE", &[], None)
    }

    /// When [`Trunk::handle_timeout`] must run: a caller's talk is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls.iter().filter_map(|c| c.bye_due).min()
    }

    /// The BYEs of callers whose talk time is over at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let due: Vec<usize> = (0..self.calls.len())
            .filter(|&i| {
                self.calls[i].bye_due.is_some_and(|t| t <= now)
                    && self.calls[i].state == CallerState::Up
            })
            .collect();
        for c in &mut self.calls {
            if c.bye_due.is_some_and(|t| t <= now) {
                c.bye_due = None;
            }
        }
        due.into_iter().map(|i| self.bye(CallRef(i))).collect()
    }

    /// The caller gives up before the answer: CANCEL of the INVITE.
    pub fn cancel(&mut self, c: CallRef) -> Vec<u8> {
        let call = self.calls[c.0].clone();
        let lines = vec![
            format!(
                "Via: SIP/2.0/UDP {};branch={};rport",
                self.addr, call.invite_branch
            ),
            "Max-Forwards: 70".into(),
            format!("From: {}", self.caller_header(&call)),
            format!("To: <sip:{}@{}>", call.number, self.zentrale),
            format!("Call-ID: {}", call.call_id),
            "CSeq: 1 CANCEL".into(),
        ];
        wire::request(
            &format!("CANCEL sip:{}@{} SIP/2.0", call.number, self.zentrale),
            &lines,
            None,
        )
    }

    /// A re-INVITE offering `direction` (`sendonly` holds, `sendrecv`
    /// resumes), with `extra` header lines.
    pub fn reinvite(&mut self, c: CallRef, direction: &str, extra: &[&str]) -> Vec<u8> {
        let call = &mut self.calls[c.0];
        call.sdp_version += 1;
        let sdp = wire::sdp(40000 + (c.0 as u16 % 5000) * 2, call.sdp_version, direction);
        let extra: Vec<String> = extra.iter().map(|l| l.to_string()).collect();
        self.in_dialog(c, "INVITE", &extra, Some(&sdp))
    }

    /// An UPDATE without SDP, with `extra` header lines (a session refresh).
    pub fn update(&mut self, c: CallRef, extra: &[&str]) -> Vec<u8> {
        let extra: Vec<String> = extra.iter().map(|l| l.to_string()).collect();
        self.in_dialog(c, "UPDATE", &extra, None)
    }

    /// A key by SIP INFO (`application/dtmf-relay`).
    pub fn info(&mut self, c: CallRef, digit: char) -> Vec<u8> {
        let body = format!("Signal={digit}\r\nDuration=160\r\n");
        let mut bytes = self.in_dialog(c, "INFO", &[], None);
        // Replace the empty body with the DTMF one.
        let head = String::from_utf8_lossy(&bytes).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        bytes = head.into_bytes();
        bytes
    }

    /// What zentrale sent: the trunk's answers (ACKs, 200s).
    pub fn on_message(&mut self, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
        match Received::parse(bytes) {
            Some(Received::Response(r)) => self.on_response(&r, now),
            Some(Received::Request(r)) => self.on_request(&r, now),
            None => Vec::new(),
        }
    }

    fn find(&self, call_id: &str) -> Option<usize> {
        self.calls.iter().position(|c| c.call_id == call_id)
    }

    fn on_response(&mut self, r: &Response, now: Instant) -> Vec<Vec<u8>> {
        let Some(i) = self.find(&wire::call_id(&r.headers)) else {
            return Vec::new();
        };
        let code = r.status_code.code();
        let (cseq, method) = wire::cseq(&r.headers);
        if method != "INVITE" {
            if code >= 200 {
                self.calls[i].finals.push((method.clone(), code));
                if method == "BYE" {
                    let call = &mut self.calls[i];
                    call.state = CallerState::Ended { by_zentrale: false };
                    call.ended_at.get_or_insert(now);
                }
            }
            return Vec::new();
        }
        let initial = cseq == 1;
        let call = &mut self.calls[i];
        match code {
            100 => Vec::new(),
            101..=199 => {
                if call.state == CallerState::Calling {
                    call.state = CallerState::Ringing;
                }
                Vec::new()
            }
            200..=299 => {
                let to = wire::header(&r.headers, "To").unwrap_or_default();
                call.to_tag = wire::tag(&to);
                if let Some(contact) = wire::header(&r.headers, "Contact") {
                    call.target = Some(wire::uri(&contact));
                }
                call.session_expires = wire::header(&r.headers, "Session-Expires");
                if initial {
                    if matches!(call.state, CallerState::Calling | CallerState::Ringing) {
                        call.state = CallerState::Up;
                        call.answered_at = Some(now);
                        call.bye_due = call.talk.map(|t| now + t);
                    }
                    call.media_port = media_port(&r.body);
                } else {
                    call.answered_direction = Some(wire::sdp_direction(&r.body));
                    call.finals.push(("INVITE".into(), code));
                }
                vec![self.ack(i, cseq)]
            }
            _ => {
                if initial {
                    call.state = CallerState::Refused(code);
                    call.ended_at.get_or_insert(now);
                    let to = wire::header(&r.headers, "To").unwrap_or_default();
                    // The ACK of a final error belongs to the INVITE's transaction.
                    let call = call.clone();
                    let lines = vec![
                        format!(
                            "Via: SIP/2.0/UDP {};branch={};rport",
                            self.addr, call.invite_branch
                        ),
                        "Max-Forwards: 70".into(),
                        format!("From: {}", self.caller_header(&call)),
                        format!("To: {to}"),
                        format!("Call-ID: {}", call.call_id),
                        "CSeq: 1 ACK".into(),
                    ];
                    vec![wire::request(
                        &format!("ACK sip:{}@{} SIP/2.0", call.number, self.zentrale),
                        &lines,
                        None,
                    )]
                } else {
                    call.finals.push(("INVITE".into(), code));
                    Vec::new()
                }
            }
        }
    }

    /// The ACK of a 2xx to the INVITE with CSeq `cseq`.
    fn ack(&mut self, i: usize, cseq: u32) -> Vec<u8> {
        let branch = self.token("a");
        let call = self.calls[i].clone();
        let target = call.target.clone().unwrap_or_default();
        let lines = vec![
            format!(
                "Via: SIP/2.0/UDP {};branch=z9hG4bK{branch};rport",
                self.addr
            ),
            "Max-Forwards: 70".into(),
            format!("From: {}", self.caller_header(&call)),
            format!("To: {}", self.called_header(&call)),
            format!("Call-ID: {}", call.call_id),
            format!("CSeq: {cseq} ACK"),
        ];
        wire::request(&format!("ACK {target} SIP/2.0"), &lines, None)
    }

    fn on_request(&mut self, r: &Request, now: Instant) -> Vec<Vec<u8>> {
        let found = self.find(&wire::call_id(&r.headers));
        let Some(i) = found else {
            return vec![wire::respond(
                r,
                481,
                "Call Does Not Exist",
                None,
                &[],
                None,
            )];
        };
        match r.method {
            Method::Bye => {
                let call = &mut self.calls[i];
                call.bye_reason = wire::header(&r.headers, "Reason");
                if !matches!(call.state, CallerState::Ended { .. }) {
                    call.state = CallerState::Ended { by_zentrale: true };
                    call.ended_at = Some(now);
                }
                vec![wire::respond(r, 200, "OK", None, &[], None)]
            }
            Method::Update => {
                let call = &mut self.calls[i];
                call.refreshes.push(now);
                let mut extra = vec!["Supported: timer".to_owned()];
                if let Some(se) = wire::header(&r.headers, "Session-Expires") {
                    extra.push(format!("Session-Expires: {se}"));
                }
                vec![wire::respond(r, 200, "OK", None, &extra, None)]
            }
            Method::Ack => Vec::new(),
            _ => vec![wire::respond(r, 200, "OK", None, &[], None)],
        }
    }
}

/// The port of the first `m=audio` line of an SDP body.
pub fn media_port(body: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

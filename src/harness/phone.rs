//! An agent's softphone: registers with digest credentials (and
//! refreshes its registration at half its lifetime), rings on zentrale's
//! INVITE and answers, ignores or rejects it after a chosen delay,
//! answers CANCEL and BYE by the state of the offer, and hangs up, holds
//! and resumes a call it took.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::sip::message::{Method, Request, Response};

use super::wire::{self, Received};

/// What the phone does with an offer (zentrale's INVITE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 180 at once, 200 with SDP after this long.
    After(Duration),
    /// 180 at once, then ring until cancelled.
    Never,
    /// 180 at once, then this final error (486, 603 ...) after the delay.
    Reject { code: u16, after: Duration },
    /// Not a word: no 180 either.
    Silent,
}

/// Where an offer stands, as the phone sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferState {
    Ringing,
    /// Answered 200 (the ACK may still be on its way).
    Answered,
    /// Answered with a final error.
    Rejected(u16),
    /// zentrale cancelled it while it rang (487 sent).
    Cancelled,
    /// Over after an answer: `by_zentrale` if zentrale sent the BYE.
    Ended {
        by_zentrale: bool,
    },
}

/// One INVITE zentrale sent the phone.
#[derive(Debug, Clone)]
pub struct Offer {
    pub call_id: String,
    pub state: OfferState,
    pub received_at: Instant,
    pub answered_at: Option<Instant>,
    pub ended_at: Option<Instant>,
    /// When zentrale's CANCEL came, if it did.
    pub cancelled_at: Option<Instant>,
    /// `X-Zentrale-Queue` of the INVITE.
    pub queue: String,
    /// `From` of the INVITE (the caller's display and number).
    pub from: String,
    /// `X-Zentrale-Origin` of the INVITE.
    pub origin: Option<String>,
    /// ACK of our 200 came.
    pub acked: bool,
    /// Our 200 crossed zentrale's CANCEL (the CANCEL came after it).
    pub cancel_after_answer: bool,
    invite: Request,
    our_tag: String,
    target: String,
    cseq: u32,
    due: Option<(Instant, Due)>,
    last_response: Option<Vec<u8>>,
    sdp_version: u32,
}

impl Offer {
    /// The SDP zentrale offered the phone: the INVITE's body.
    pub fn sdp(&self) -> &str {
        std::str::from_utf8(&self.invite.body).unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Answer,
    Reject(u16),
}

/// See the module docs.
#[derive(Debug)]
pub struct Phone {
    pub extension: String,
    pub addr: SocketAddr,
    password: String,
    zentrale: SocketAddr,
    /// What the next offers get.
    pub answer: Answer,
    pub offers: Vec<Offer>,
    pub registered: bool,
    /// Expires asked for in REGISTER.
    pub expires: u32,
    reg_cseq: u32,
    refresh_at: Option<Instant>,
    counter: u64,
}

impl Phone {
    pub fn new(extension: &str, password: &str, addr: SocketAddr, zentrale: SocketAddr) -> Phone {
        Phone {
            extension: extension.to_owned(),
            addr,
            password: password.to_owned(),
            zentrale,
            answer: Answer::Never,
            offers: Vec::new(),
            registered: false,
            expires: 3600,
            reg_cseq: 0,
            refresh_at: None,
            counter: 0,
        }
    }

    fn token(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("p{}{what}{}", self.extension, self.counter)
    }

    /// The offer it is talking on (answered, not ended), if any.
    pub fn current(&self) -> Option<usize> {
        self.offers
            .iter()
            .rposition(|o| o.state == OfferState::Answered)
    }

    /// REGISTER, with credentials when `challenge` is given.
    pub fn register(&mut self, challenge: Option<&str>) -> Vec<u8> {
        self.reg_cseq += 1;
        let uri = format!("sip:{}", self.zentrale);
        let branch = self.token("r");
        let mut lines = vec![
            format!(
                "Via: SIP/2.0/UDP {};branch=z9hG4bK{branch};rport",
                self.addr
            ),
            "Max-Forwards: 70".into(),
            format!(
                "From: <sip:{}@{}>;tag=reg{}",
                self.extension, self.zentrale, self.extension
            ),
            format!("To: <sip:{}@{}>", self.extension, self.zentrale),
            format!("Call-ID: reg-{}@phone", self.extension),
            format!("CSeq: {} REGISTER", self.reg_cseq),
            format!("Contact: <sip:{}@{}>", self.extension, self.addr),
            format!("Expires: {}", self.expires),
        ];
        if let Some(c) = challenge
            && let Some(auth) =
                wire::digest_md5(c, &self.extension, &self.password, "REGISTER", &uri)
        {
            lines.push(format!("Authorization: {auth}"));
        }
        wire::request(&format!("REGISTER {uri} SIP/2.0"), &lines, None)
    }

    /// When [`Phone::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.offers
            .iter()
            .filter_map(|o| o.due.map(|(t, _)| t))
            .chain(self.refresh_at)
            .min()
    }

    /// Answers and rejections due at `now`, and the registration refresh.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            out.push(self.register(None));
        }
        for i in 0..self.offers.len() {
            let Some((at, what)) = self.offers[i].due else {
                continue;
            };
            if at > now {
                continue;
            }
            self.offers[i].due = None;
            if self.offers[i].state != OfferState::Ringing {
                continue;
            }
            let bytes = match what {
                Due::Answer => {
                    let port = self.addr.port() + 1000;
                    let o = &mut self.offers[i];
                    o.state = OfferState::Answered;
                    o.answered_at = Some(now);
                    let contact = format!("Contact: <sip:{}@{}>", self.extension, self.addr);
                    wire::respond(
                        &o.invite,
                        200,
                        "OK",
                        Some(&o.our_tag),
                        &[contact],
                        Some(&wire::sdp(port, 1, "sendrecv")),
                    )
                }
                Due::Reject(code) => {
                    let o = &mut self.offers[i];
                    o.state = OfferState::Rejected(code);
                    o.ended_at = Some(now);
                    wire::respond(&o.invite, code, "Rejected", Some(&o.our_tag), &[], None)
                }
            };
            self.offers[i].last_response = Some(bytes.clone());
            out.push(bytes);
        }
        out
    }

    /// A silent phone starts ringing on its last offer: 180.
    pub fn ring(&mut self) -> Option<Vec<u8>> {
        let o = self
            .offers
            .iter_mut()
            .rev()
            .find(|o| o.state == OfferState::Ringing && o.last_response.is_none())?;
        let contact = format!("Contact: <sip:{}@{}>", self.extension, self.addr);
        let bytes = wire::respond(
            &o.invite,
            180,
            "Ringing",
            Some(&o.our_tag),
            &[contact],
            None,
        );
        o.last_response = Some(bytes.clone());
        Some(bytes)
    }

    /// The agent hangs up the call it talks on: BYE.
    pub fn bye(&mut self) -> Option<Vec<u8>> {
        self.in_dialog("BYE", None)
    }

    /// A re-INVITE offering `direction` (`sendonly` holds the caller,
    /// `sendrecv` takes them back).
    pub fn reinvite(&mut self, direction: &str) -> Option<Vec<u8>> {
        let i = self.current()?;
        self.offers[i].sdp_version += 1;
        let sdp = wire::sdp(
            self.addr.port() + 1000,
            self.offers[i].sdp_version,
            direction,
        );
        self.in_dialog("INVITE", Some(&sdp))
    }

    fn in_dialog(&mut self, method: &str, body: Option<&str>) -> Option<Vec<u8>> {
        let i = self.current()?;
        let branch = self.token("b");
        let o = &mut self.offers[i];
        o.cseq += 1;
        if method == "BYE" {
            o.state = OfferState::Ended { by_zentrale: false };
        }
        let from = wire::header(&o.invite.headers, "From").unwrap_or_default();
        let to = wire::header(&o.invite.headers, "To").unwrap_or_default();
        let mut lines = vec![
            format!(
                "Via: SIP/2.0/UDP {};branch=z9hG4bK{branch};rport",
                self.addr
            ),
            "Max-Forwards: 70".into(),
            format!("From: {to};tag={}", o.our_tag),
            format!("To: {from}"),
            format!("Call-ID: {}", o.call_id),
            format!("CSeq: {} {method}", o.cseq),
        ];
        if method == "INVITE" {
            lines.push(format!("Contact: <sip:{}@{}>", self.extension, self.addr));
        }
        Some(wire::request(
            &format!("{method} {} SIP/2.0", o.target),
            &lines,
            body,
        ))
    }

    /// What zentrale sent: the phone's answers.
    pub fn on_message(&mut self, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
        match Received::parse(bytes) {
            Some(Received::Response(r)) => self.on_response(&r, now),
            Some(Received::Request(r)) => self.on_request(r, now),
            None => Vec::new(),
        }
    }

    fn on_response(&mut self, r: &Response, now: Instant) -> Vec<Vec<u8>> {
        let code = r.status_code.code();
        let (cseq, method) = wire::cseq(&r.headers);
        match method.as_str() {
            "REGISTER" if code == 401 => {
                let challenge = wire::header(&r.headers, "WWW-Authenticate").unwrap_or_default();
                vec![self.register(Some(&challenge))]
            }
            "REGISTER" if (200..300).contains(&code) => {
                self.registered = self.expires > 0;
                if self.registered {
                    self.refresh_at = Some(now + Duration::from_secs(u64::from(self.expires) / 2));
                }
                Vec::new()
            }
            "INVITE" if (200..300).contains(&code) => {
                // The ACK of our re-INVITE's 2xx.
                let call_id = wire::call_id(&r.headers);
                let Some(o) = self.offers.iter().find(|o| o.call_id == call_id) else {
                    return Vec::new();
                };
                let branch = format!("z9hG4bK{}ack{cseq}", o.our_tag);
                let from = wire::header(&r.headers, "From").unwrap_or_default();
                let to = wire::header(&r.headers, "To").unwrap_or_default();
                let lines = vec![
                    format!("Via: SIP/2.0/UDP {};branch={branch};rport", self.addr),
                    "Max-Forwards: 70".into(),
                    format!("From: {from}"),
                    format!("To: {to}"),
                    format!("Call-ID: {call_id}"),
                    format!("CSeq: {cseq} ACK"),
                ];
                vec![wire::request(
                    &format!("ACK {} SIP/2.0", o.target),
                    &lines,
                    None,
                )]
            }
            _ => Vec::new(),
        }
    }

    fn on_request(&mut self, r: Request, now: Instant) -> Vec<Vec<u8>> {
        let call_id = wire::call_id(&r.headers);
        let found = self.offers.iter().position(|o| o.call_id == call_id);
        match (&r.method, found) {
            (Method::Invite, Some(i)) => {
                // A retransmission: the last answer again.
                self.offers[i].last_response.clone().into_iter().collect()
            }
            (Method::Invite, None) => self.on_offer(r, now),
            (Method::Cancel, Some(i)) => {
                let o = &mut self.offers[i];
                o.cancelled_at = Some(now);
                let mut out = vec![wire::respond(&r, 200, "OK", None, &[], None)];
                match o.state {
                    OfferState::Ringing => {
                        o.state = OfferState::Cancelled;
                        o.ended_at = Some(now);
                        o.due = None;
                        let t = wire::respond(
                            &o.invite,
                            487,
                            "Request Terminated",
                            Some(&o.our_tag),
                            &[],
                            None,
                        );
                        o.last_response = Some(t.clone());
                        out.push(t);
                    }
                    OfferState::Answered => o.cancel_after_answer = true,
                    _ => {}
                }
                out
            }
            (Method::Ack, Some(i)) => {
                self.offers[i].acked = true;
                Vec::new()
            }
            (Method::Bye, Some(i)) => {
                let o = &mut self.offers[i];
                if o.state == OfferState::Answered {
                    o.state = OfferState::Ended { by_zentrale: true };
                    o.ended_at = Some(now);
                }
                vec![wire::respond(&r, 200, "OK", None, &[], None)]
            }
            (Method::Ack, None) => Vec::new(),
            (_, None) => vec![wire::respond(
                &r,
                481,
                "Call Does Not Exist",
                None,
                &[],
                None,
            )],
            (_, Some(_)) => vec![wire::respond(&r, 200, "OK", None, &[], None)],
        }
    }

    fn on_offer(&mut self, r: Request, now: Instant) -> Vec<Vec<u8>> {
        let our_tag = self.token("t");
        let target = wire::header(&r.headers, "Contact")
            .map(|c| wire::uri(&c))
            .unwrap_or_else(|| format!("sip:{}", self.zentrale));
        let due = match self.answer {
            Answer::After(d) => Some((now + d, Due::Answer)),
            Answer::Reject { code, after } => Some((now + after, Due::Reject(code))),
            Answer::Never | Answer::Silent => None,
        };
        let ringing = (self.answer != Answer::Silent).then(|| {
            let contact = format!("Contact: <sip:{}@{}>", self.extension, self.addr);
            wire::respond(&r, 180, "Ringing", Some(&our_tag), &[contact], None)
        });
        self.offers.push(Offer {
            call_id: wire::call_id(&r.headers),
            state: OfferState::Ringing,
            received_at: now,
            answered_at: None,
            ended_at: None,
            cancelled_at: None,
            queue: wire::header(&r.headers, "X-Zentrale-Queue").unwrap_or_default(),
            from: wire::header(&r.headers, "From").unwrap_or_default(),
            origin: wire::header(&r.headers, "X-Zentrale-Origin"),
            acked: false,
            cancel_after_answer: false,
            invite: r,
            our_tag,
            target,
            cseq: 0,
            due,
            last_response: ringing.clone(),
            sdp_version: 1,
        });
        ringing.into_iter().collect()
    }
}

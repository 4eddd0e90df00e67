//! A registered agent softphone: REGISTER with digest MD5, offers (INVITEs)
//! from zentrale, ringing, answering, RTP, re-INVITE (hold), hang-up, one
//! leg at a time.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::{
    Daemon, RtpPeer, SIP_WAIT, SipMsg, SipUdp, auth_param, md5_hex, register_requests, sdp_media,
};

/// Payload byte of the agent's RTP: a PCMU/PCMA value no prompt is made of
/// for 20 ms (the caller's is [`super::CALLER_FILL`]).
pub const AGENT_FILL: u8 = 0x2a;

/// MD5 credentials answering the MD5 challenge among `challenges`.
pub fn digest_md5(challenges: &[&str], user: &str, method: &str, uri: &str) -> Option<String> {
    let c = challenges.iter().find(|c| c.contains("algorithm=MD5"))?;
    let realm = auth_param(c, "realm")?;
    let nonce = auth_param(c, "nonce")?;
    let cnonce = SipUdp::token();
    let nc = "00000001";
    let ha1 = md5_hex(&format!("{user}:{realm}:demo"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    );
    if let Some(o) = auth_param(c, "opaque") {
        let _ = write!(v, ", opaque=\"{o}\"");
    }
    Some(v)
}

/// The phone's side of an answered agent leg.
pub struct Leg {
    pub call_id: String,
    /// Our To (with our tag): the From of our requests.
    pub local: String,
    /// zentrale's From (with its tag): the To of our requests.
    pub remote: String,
    /// zentrale's Contact URI: the Request-URI of our requests.
    pub target: String,
    pub cseq: u32,
    pub sdp_version: u32,
}

/// A softphone of agent `ext`: registers with digest MD5, gets offers,
/// rings, answers, talks RTP, holds and hangs up, one leg at a time.
pub struct Phone {
    pub ext: String,
    pub sip: SipUdp,
    pub rtp: RtpPeer,
    pub tag: String,
    pub leg: Option<Leg>,
}

impl Phone {
    pub fn new(d: &Daemon, ext: &str) -> Phone {
        Phone {
            ext: ext.to_owned(),
            sip: SipUdp::new(d.sip),
            rtp: RtpPeer::new(0xa6e0_0000 | ext.parse::<u32>().unwrap_or(0)),
            tag: SipUdp::token(),
            leg: None,
        }
    }

    /// A phone that registers at once.
    pub fn registered(d: &Daemon, ext: &str) -> Phone {
        let p = Phone::new(d, ext);
        p.register(d);
        p
    }

    pub fn port(&self) -> u16 {
        self.sip.local.port()
    }

    /// REGISTER, 401, REGISTER with MD5 credentials, 200.
    pub fn register(&self, d: &Daemon) {
        let uri = format!("sip:{}", d.sip);
        let user = &self.ext;
        let req = register_requests(d, &self.sip, user, 300);
        self.sip.send(&req(1, ""));
        let chal = self
            .sip
            .expect("REGISTER", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("REGISTER {user}: {e}")));
        let challenges = chal.headers_named("www-authenticate");
        let Some(auth) = digest_md5(&challenges, user, "REGISTER", &uri) else {
            d.fail(format!(
                "REGISTER {user}: no MD5 challenge in {}: {challenges:?}",
                chal.start
            ));
        };
        self.sip
            .send(&req(2, &format!("Authorization: {auth}\r\n")));
        let ok = self
            .sip
            .expect("REGISTER", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("authenticated REGISTER {user}: {e}")));
        d.check(ok.status() == Some(200), || {
            format!("REGISTER {user} answered {}, want 200", ok.start)
        });
    }

    /// The next request `method` from zentrale within `limit`, skipping
    /// responses and retransmissions of other requests; None on timeout.
    pub fn next_request(&self, method: &str, limit: Duration) -> Option<SipMsg> {
        let until = Instant::now() + limit;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            let m = self.sip.recv(left)?;
            if m.method() == Some(method) {
                return Some(m);
            }
        }
    }

    /// Like [`Phone::next_request`], failing the test on timeout.
    pub fn expect_request(&self, d: &Daemon, method: &str, limit: Duration) -> SipMsg {
        self.next_request(method, limit).unwrap_or_else(|| {
            d.fail(format!(
                "agent {}: no {method} from zentrale within {limit:?}",
                self.ext
            ))
        })
    }

    /// The next offer (the INVITE of an agent leg) within `limit`, if any.
    pub fn offer(&self, limit: Duration) -> Option<SipMsg> {
        self.next_request("INVITE", limit)
    }

    /// An offer: the INVITE of an agent leg.
    pub fn expect_offer(&self, d: &Daemon, limit: Duration) -> SipMsg {
        self.expect_request(d, "INVITE", limit)
    }

    /// A response to `req` from zentrale, with our To tag.
    pub fn reply(&self, req: &SipMsg, code: u16, reason: &str, sdp: Option<&str>) {
        let mut s = format!("SIP/2.0 {code} {reason}\r\n");
        for v in req.headers_named("via") {
            let _ = write!(s, "Via: {v}\r\n");
        }
        let to = req.header("to").unwrap_or_default();
        let to = if to.contains(";tag=") {
            to.to_owned()
        } else {
            format!("{to};tag={}", self.tag)
        };
        let _ = write!(
            s,
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:{}@{}>\r\n",
            req.header("from").unwrap_or_default(),
            req.header("call-id").unwrap_or_default(),
            req.header("cseq").unwrap_or_default(),
            self.ext,
            self.sip.local,
        );
        match sdp {
            Some(b) => {
                let _ = write!(
                    s,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.sip.send(&s);
    }

    pub fn ring(&self, invite: &SipMsg) {
        self.reply(invite, 180, "Ringing", None);
    }

    /// Our SDP with payload type `pt` and direction `dir`.
    pub fn sdp(&self, version: u32, pt: u8, dir: &str) -> String {
        let name = if pt == 8 { "PCMA" } else { "PCMU" };
        format!(
            "v=0\r\no=agent 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\na=ptime:20\r\na={dir}\r\n",
            port = self.rtp.addr.port()
        )
    }

    /// Answers `invite` (200 with the offer's first codec), waits for the
    /// ACK and starts talking RTP to zentrale. Returns the codec's PT.
    pub fn answer(&mut self, d: &Daemon, invite: &SipMsg) -> u8 {
        let offer = invite.body_str();
        let (media, pts) = sdp_media(d, &offer);
        let pt = pts[0];
        let sdp = self.sdp(1, pt, "sendrecv");
        self.reply(invite, 200, "OK", Some(&sdp));
        let ack = self.expect_request(d, "ACK", SIP_WAIT);
        d.check(ack.header("call-id") == invite.header("call-id"), || {
            format!("agent {}: ACK for another call: {ack:?}", self.ext)
        });
        let target = invite
            .header("contact")
            .and_then(|c| Some(c.split_once('<')?.1.split_once('>')?.0.to_owned()))
            .unwrap_or_else(|| d.fail(format!("the agent INVITE has no Contact: {invite:?}")));
        self.leg = Some(Leg {
            call_id: invite.header("call-id").unwrap_or_default().to_owned(),
            local: format!(
                "{};tag={}",
                invite.header("to").unwrap_or_default(),
                self.tag
            ),
            remote: invite.header("from").unwrap_or_default().to_owned(),
            target,
            cseq: 0,
            sdp_version: 1,
        });
        self.rtp.talk(Some(media), pt, AGENT_FILL);
        pt
    }

    /// Rings, then waits for zentrale's CANCEL and answers it (200, then
    /// 487 to the INVITE) and checks that zentrale ACKs the 487.
    pub fn ring_until_cancel(&self, d: &Daemon, invite: &SipMsg, limit: Duration) -> Instant {
        let cancel = self.expect_request(d, "CANCEL", limit);
        let at = Instant::now();
        d.check(cancel.header("call-id") == invite.header("call-id"), || {
            format!("agent {}: CANCEL for another call: {cancel:?}", self.ext)
        });
        let branch = |m: &SipMsg| m.header("via").unwrap_or_default().to_owned();
        d.check(branch(&cancel) == branch(invite), || {
            format!(
                "agent {}: the CANCEL's Via {:?} is not the INVITE's {:?}",
                self.ext,
                branch(&cancel),
                branch(invite)
            )
        });
        self.reply(&cancel, 200, "OK", None);
        self.reply(invite, 487, "Request Terminated", None);
        let ack = self.expect_request(d, "ACK", SIP_WAIT);
        d.check(
            ack.header("cseq")
                .is_some_and(|c| c.split_whitespace().next() == Some("1"))
                && branch(&ack) == branch(invite),
            || {
                format!(
                    "agent {}: the ACK of the 487 is not in the INVITE's transaction: {ack:?}",
                    self.ext
                )
            },
        );
        at
    }

    /// A request in our answered leg (BYE, re-INVITE).
    pub fn in_leg(&mut self, method: &str, extra: &str, sdp: Option<&str>) -> (u32, String) {
        let leg = self.leg.as_mut().expect("an answered leg");
        leg.cseq += 1;
        let (ctype, body) = match sdp {
            Some(b) => ("Content-Type: application/sdp\r\n", b),
            None => ("", ""),
        };
        let text = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:{ext}@{l}>\r\n\
             {extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
            target = leg.target,
            l = self.sip.local,
            b = SipUdp::token(),
            from = leg.local,
            to = leg.remote,
            cid = leg.call_id,
            cseq = leg.cseq,
            ext = self.ext,
            len = body.len(),
        );
        self.sip.send(&text);
        (leg.cseq, text)
    }

    /// The final response to our request `cseq method`.
    pub fn final_response(&self, d: &Daemon, method: &str, cseq: u32) -> SipMsg {
        let want = format!("{cseq} {method}");
        let until = Instant::now() + SIP_WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(m) = self.sip.recv(left) else {
                d.fail(format!(
                    "agent {}: no final response to {want} within {SIP_WAIT:?}",
                    self.ext
                ));
            };
            if m.status().is_some_and(|c| c >= 200) && m.header("cseq") == Some(want.as_str()) {
                return m;
            }
        }
    }

    /// Hangs up the answered leg: BYE, 200.
    pub fn hang_up(&mut self, d: &Daemon) {
        self.rtp.talk(None, 0, 0);
        let (cseq, _) = self.in_leg("BYE", "", None);
        let r = self.final_response(d, "BYE", cseq);
        d.check(r.status() == Some(200), || {
            format!("agent {}: BYE answered {}, want 200", self.ext, r.start)
        });
        self.leg = None;
    }

    /// A re-INVITE with direction `dir`; returns zentrale's 200 (ACKed).
    pub fn reinvite(&mut self, d: &Daemon, pt: u8, dir: &str) -> SipMsg {
        let version = {
            let leg = self.leg.as_mut().expect("an answered leg");
            leg.sdp_version += 1;
            leg.sdp_version
        };
        let sdp = self.sdp(version, pt, dir);
        let (cseq, _) = self.in_leg("INVITE", "", Some(&sdp));
        let r = self.final_response(d, "INVITE", cseq);
        d.check(r.status() == Some(200), || {
            format!("agent {}: re-INVITE {dir} answered {}", self.ext, r.start)
        });
        // The ACK: same CSeq number, a new branch.
        let leg = self.leg.as_ref().expect("an answered leg");
        let ack = format!(
            "ACK {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {l};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n",
            target = leg.target,
            l = self.sip.local,
            b = SipUdp::token(),
            from = leg.local,
            to = leg.remote,
            cid = leg.call_id,
        );
        self.sip.send(&ack);
        r
    }
}

//! A raw trunk caller over UDP with its own RTP peer: INVITE with SDP, ACK,
//! keys by RFC 4733 or SIP INFO, BYE from either side.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Daemon, RtpPeer, SIP_WAIT, SipMsg, SipUdp, response_to, sdp_audio, sdp_media};

/// Payload byte of the caller's RTP: a PCMU/PCMA value no prompt is made of
/// for 20 ms (the agent's is [`super::AGENT_FILL`]).
pub const CALLER_FILL: u8 = 0x3c;

/// A trunk caller: one dialog over UDP, from "Testanrufer" 0301234567.
/// Offers PCMU and telephone-event/101 unless told otherwise
/// ([`Caller::with_pts`]); records every RTP packet zentrale sends it and,
/// once [`Caller::connect`]ed, talks RTP of [`CALLER_FILL`] from its own
/// thread.
pub struct Caller {
    pub sip: SipUdp,
    pub rtp: RtpPeer,
    /// Offered payload types, in order.
    pts: Vec<u8>,
    pub call_id: String,
    from_tag: String,
    pub number: String,
    cseq: u32,
    to_tag: Option<String>,
    target: Option<String>,
    /// zentrale's media address for this call.
    pub media: Option<SocketAddr>,
    /// RFC 4733 sequence number and timestamp of the next key press.
    seq: u16,
    ts: u32,
    /// Header lines (each ending in CRLF) added to the INVITE.
    extra: String,
}

/// A trunk call to `number` that must be answered (200), hung up at once:
/// the daemon still serves callers (`what` says when, in a failure).
pub fn answered_call(d: &Daemon, number: &str, what: &str) {
    let mut c = Caller::new(d, number);
    let ok = c.call(d);
    d.check(ok.status() == Some(200), || {
        format!("{what}: a trunk call got {}", ok.start)
    });
    c.hang_up(d);
}

impl Caller {
    pub fn new(d: &Daemon, number: &str) -> Caller {
        Caller {
            sip: SipUdp::new(d.sip),
            rtp: RtpPeer::new(0xca11_e500),
            pts: vec![0, 101],
            call_id: format!("{}@zentrale-test", SipUdp::token()),
            from_tag: SipUdp::token(),
            number: number.to_owned(),
            cseq: 0,
            to_tag: None,
            target: None,
            media: None,
            seq: 1000,
            ts: 16_000,
            extra: String::new(),
        }
    }

    /// Offers the payload types `pts` in this order (0 PCMU, 8 PCMA, 101
    /// telephone-event) instead of `[0, 101]`.
    pub fn with_pts(mut self, pts: &[u8]) -> Caller {
        self.pts = pts.to_vec();
        self
    }

    /// Adds header line `line` (without CRLF) to the INVITE.
    pub fn with_header(mut self, line: &str) -> Caller {
        self.extra.push_str(line);
        self.extra.push_str("\r\n");
        self
    }

    /// Request `method` in our dialog; `ctype` empty for no Content-Type.
    pub fn request(&self, method: &str, cseq: u32, ctype: &str, body: &str) -> String {
        let local = self.sip.local;
        let uri = self
            .target
            .clone()
            .unwrap_or_else(|| format!("sip:{}@{}", self.number, self.sip.remote));
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let ctype = if ctype.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {ctype}\r\n")
        };
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Testanrufer\" <sip:0301234567@{ip}>;tag={ftag}\r\n\
             To: <sip:{number}@{remote}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:0301234567@{local}>\r\n\
             {extra}{ctype}Content-Length: {len}\r\n\r\n{body}",
            extra = if method == "INVITE" {
                self.extra.as_str()
            } else {
                ""
            },
            b = SipUdp::token(),
            ip = local.ip(),
            ftag = self.from_tag,
            number = self.number,
            remote = self.sip.remote,
            cid = self.call_id,
            len = body.len(),
        )
    }

    /// Our SDP offer.
    fn offer(&self) -> String {
        let rtp = self.rtp.addr;
        let list: Vec<String> = self.pts.iter().map(u8::to_string).collect();
        let maps: String = self
            .pts
            .iter()
            .map(|pt| match pt {
                0 => "a=rtpmap:0 PCMU/8000\r\n",
                8 => "a=rtpmap:8 PCMA/8000\r\n",
                101 => "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
                _ => "",
            })
            .collect();
        format!(
            "v=0\r\no=caller 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {list}\r\n{maps}a=ptime:20\r\na=sendrecv\r\n",
            ip = rtp.ip(),
            port = rtp.port(),
            list = list.join(" "),
        )
    }

    /// Calls and waits for the final response; on 200 ACKs it and notes
    /// zentrale's media address. Sends no RTP (see [`Caller::connect`]).
    pub fn call(&mut self, d: &Daemon) -> SipMsg {
        let sdp = self.offer();
        self.cseq += 1;
        self.sip
            .send(&self.request("INVITE", self.cseq, "application/sdp", &sdp));
        let ok = self
            .sip
            .expect("INVITE", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("call to {}: {e}", self.number)));
        if ok.status() != Some(200) {
            return ok;
        }
        self.to_tag = ok.tag("to");
        self.target = ok
            .header("contact")
            .and_then(|c| Some(c.split_once('<')?.1.split_once('>')?.0.to_owned()));
        let cseq = self.cseq;
        self.sip.send(&self.request("ACK", cseq, "", ""));
        let Some((ip, port, _)) = sdp_audio(&ok.body_str()) else {
            d.fail(format!("no audio in zentrale's answer:\n{}", ok.body_str()));
        };
        self.media = Some(
            format!("{ip}:{port}")
                .parse()
                .unwrap_or_else(|_| d.fail(format!("bad media address {ip}:{port}"))),
        );
        ok
    }

    /// Calls, wants zentrale's 200 (after its ~300 ms of ringing), ACKs it
    /// and starts talking RTP in the answer's first payload type.
    pub fn connect(&mut self, d: &Daemon) -> SipMsg {
        let ok = self.call(d);
        d.check(ok.status() == Some(200), || {
            format!("call to {} answered {}, want 200", self.number, ok.start)
        });
        let (media, answer_pts) = sdp_media(d, &ok.body_str());
        self.rtp.talk(Some(media), answer_pts[0], CALLER_FILL);
        ok
    }

    /// Presses `digit` the RFC 4733 way: three event packets, three ends.
    pub fn press_rtp(&mut self, digit: u8) {
        let to = self.media.expect("press a key after the call is up");
        self.ts = self.ts.wrapping_add(1600);
        for i in 0..6u16 {
            let end = i >= 3;
            let duration = 160 * (i.min(3) + 1);
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            p.extend_from_slice(&self.seq.to_be_bytes());
            p.extend_from_slice(&self.ts.to_be_bytes());
            p.extend_from_slice(&0x00ca_11e5u32.to_be_bytes());
            p.extend_from_slice(&[digit, if end { 0x8a } else { 0x0a }]);
            p.extend_from_slice(&duration.to_be_bytes());
            self.rtp.send_raw(&p, to);
            self.seq = self.seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Presses `digit` by SIP INFO (`application/dtmf-relay`); expects 200.
    pub fn press_info(&mut self, d: &Daemon, digit: char) {
        self.cseq += 1;
        let body = format!("Signal={digit}\r\nDuration=160\r\n");
        self.sip
            .send(&self.request("INFO", self.cseq, "application/dtmf-relay", &body));
        let r = self
            .sip
            .expect("INFO", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("INFO {digit}: {e}")));
        d.check(r.status() == Some(200), || {
            format!("INFO {digit} answered {}, want 200", r.start)
        });
    }

    /// Hangs up: stops talking, BYE, 200.
    pub fn hang_up(&mut self, d: &Daemon) {
        self.rtp.talk(None, 0, 0);
        self.cseq += 1;
        let cseq = self.cseq;
        self.sip.send(&self.request("BYE", cseq, "", ""));
        let want = format!("{cseq} BYE");
        let r = self
            .sip
            .expect("BYE", SIP_WAIT, |c| c >= 200)
            .unwrap_or_else(|e| d.fail(format!("BYE of the caller: {e}")));
        d.check(
            r.status() == Some(200) && r.header("cseq") == Some(want.as_str()),
            || format!("the caller's BYE answered {r:?}, want 200"),
        );
    }

    /// Waits for zentrale's BYE in our call, stops talking and answers it
    /// 200. Returns the BYE and when it came.
    pub fn expect_bye(&mut self, d: &Daemon, limit: Duration) -> (SipMsg, Instant) {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(m) = self.sip.recv(left) else {
                d.fail(format!("the caller got no BYE within {limit:?}"));
            };
            if m.method() == Some("BYE") {
                let at = Instant::now();
                self.rtp.talk(None, 0, 0);
                self.sip.send(&response_to(&m, 200, "OK"));
                d.check(m.header("call-id") == Some(self.call_id.as_str()), || {
                    format!("BYE for another call: {m:?}")
                });
                return (m, at);
            }
        }
    }
}

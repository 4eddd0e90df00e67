//! CPU of the SIP message path per message and per call, on the messages
//! SIPp sends in `benches/load.sh signalling` (captured with `-trace_msg`).
//!
//! `cargo bench --bench sip_message`; figures in BENCHMARKS.md.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group};
use zentrale::media::sdp::{self, SdpSession};
use zentrale::sip::Transport;
use zentrale::sip::message::{
    Request, StatusCode, encode_response, response, set_body, with_to_tag,
};
use zentrale::sip::screen::{Screened, screen};
use zentrale::sip::via::{TopVia, stamp_received};

const INVITE: &[u8] = b"INVITE sip:115@127.0.0.1:25060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-7827-1-0;rport\r\n\
From: <sip:0561999000@127.0.0.1:25070>;tag=7827SIPpTag001\r\n\
To: <sip:115@127.0.0.1:25060>\r\n\
Call-ID: 1-7827@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:trunk@127.0.0.1:25070>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   205\r\n\
\r\n\
v=0\r\n\
o=trunk 1 1 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n";

const ACK: &[u8] = b"ACK sip:zentrale@127.0.0.1:25060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-7827-1-4;rport\r\n\
From: <sip:0561999000@127.0.0.1:25070>;tag=7827SIPpTag001\r\n\
To: <sip:115@127.0.0.1:25060>;tag=db26e73b61550e21\r\n\
Call-ID: 1-7827@127.0.0.1\r\n\
CSeq: 1 ACK\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\
\r\n";

const BYE: &[u8] = b"BYE sip:zentrale@127.0.0.1:25060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-7827-1-5;rport\r\n\
From: <sip:0561999000@127.0.0.1:25070>;tag=7827SIPpTag001\r\n\
To: <sip:115@127.0.0.1:25060>;tag=db26e73b61550e21\r\n\
Call-ID: 1-7827@127.0.0.1\r\n\
CSeq: 2 BYE\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\
\r\n";

const TAG: &str = "db26e73b61550e21";
const CONTACT: &str = "<sip:zentrale@127.0.0.1:25060>";

fn source() -> SocketAddr {
    "127.0.0.1:25070".parse().unwrap()
}

/// What the core does with a request before dispatching it: screen, stamp
/// the Via, find where responses go.
fn receive(data: &[u8]) -> Request {
    let Screened::Request(req) = screen(data, Transport::Udp) else {
        panic!("the bench message must be a valid request");
    };
    let mut req = *req;
    stamp_received(&mut req.headers, source());
    let via = TopVia::of(&req.headers).expect("Via");
    black_box(via.response_target(source()));
    req
}

/// What the core does with an ACK: screening borrows it; its Via is read
/// for the transaction match.
fn receive_ack(data: &[u8]) -> TopVia {
    let Screened::Ack(ack) = screen(data, Transport::Udp) else {
        panic!("the bench ACK must be a valid, borrowed ACK");
    };
    TopVia::parse(&ack.via).expect("Via")
}

fn trying(invite: &Request) -> Vec<u8> {
    encode_response(&response(invite, StatusCode::Trying))
}

fn ringing(invite: &Request) -> Vec<u8> {
    let mut r = with_to_tag(response(invite, StatusCode::Ringing), TAG);
    r.headers
        .push(zentrale::sip::message::Header::Contact(CONTACT.into()));
    encode_response(&r)
}

fn answer_sdp(invite: &Request, session: &mut SdpSession) -> Vec<u8> {
    sdp::answer(&invite.body, "127.0.0.1".parse().unwrap(), 40000, session)
        .expect("answerable offer")
        .sdp
}

fn ok_with_sdp(invite: &Request, body: Vec<u8>) -> Vec<u8> {
    use zentrale::sip::message::{ALLOW, Header};
    let mut r = with_to_tag(response(invite, StatusCode::OK), TAG);
    r.headers.push(Header::Contact(CONTACT.into()));
    r.headers.push(Header::Allow(ALLOW.into()));
    r.headers.push(Header::Accept("application/sdp".into()));
    r.headers.push(Header::Supported("timer".into()));
    let body = set_body(&mut r, "application/sdp", body);
    r.body = body;
    encode_response(&r)
}

fn ok(req: &Request) -> Vec<u8> {
    encode_response(&response(req, StatusCode::OK))
}

fn benches(c: &mut Criterion) {
    let invite = receive(INVITE);
    let bye = receive(BYE);
    let mut session = SdpSession::new(&mut zentrale::rng::SeededRng::from_u64(1));

    let mut g = c.benchmark_group("screen");
    g.bench_function("invite", |b| {
        b.iter(|| screen(black_box(INVITE), Transport::Udp))
    });
    g.bench_function("ack", |b| b.iter(|| screen(black_box(ACK), Transport::Udp)));
    g.bench_function("bye", |b| b.iter(|| screen(black_box(BYE), Transport::Udp)));
    g.finish();

    let mut g = c.benchmark_group("receive");
    g.bench_function("invite", |b| b.iter(|| receive(black_box(INVITE))));
    g.finish();

    let mut g = c.benchmark_group("response");
    g.bench_function("trying", |b| b.iter(|| trying(black_box(&invite))));
    g.bench_function("ringing", |b| b.iter(|| ringing(black_box(&invite))));
    g.bench_function("ok_sdp", |b| {
        let body = answer_sdp(&invite, &mut session);
        b.iter(|| ok_with_sdp(black_box(&invite), body.clone()))
    });
    g.bench_function("ok_bye", |b| b.iter(|| ok(black_box(&bye))));
    g.finish();

    let mut g = c.benchmark_group("sdp");
    g.bench_function("answer", |b| {
        b.iter(|| answer_sdp(black_box(&invite), &mut session))
    });
    g.finish();

    c.bench_function("call", |b| b.iter(one_call));
}

/// The message work of one call of the signalling load: three requests in,
/// four responses out, one SDP answer.
fn one_call() {
    let invite = receive(INVITE);
    let mut session = SdpSession::with_id(1, 1, &mut zentrale::rng::SeededRng::from_u64(1));
    black_box(trying(&invite));
    black_box(ringing(&invite));
    let body = answer_sdp(&invite, &mut session);
    black_box(ok_with_sdp(&invite, body));
    black_box(receive_ack(ACK));
    let bye = receive(BYE);
    black_box(ok(&bye));
}

criterion_group! {
    name = sip_message;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}

/// `SIP_MESSAGE_CALLS=N` runs `N` calls and nothing else, for counting
/// instructions on a busy machine where wall time is noise:
/// `SIP_MESSAGE_CALLS=100000 perf stat -e instructions:u target/release/deps/sip_message-*`
/// (subtract a run with `SIP_MESSAGE_CALLS=0`).
fn main() {
    if let Some(n) = std::env::var("SIP_MESSAGE_CALLS")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        for _ in 0..n {
            one_call();
        }
        return;
    }
    sip_message();
    Criterion::default().configure_from_args().final_summary();
}

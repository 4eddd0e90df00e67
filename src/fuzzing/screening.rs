//! Fuzz target `screening`: raw octets as a UDP datagram and as a TCP
//! byte stream (cut by [`StreamFramer`], in chunks the input chooses).

use crate::sip::Transport;
use crate::sip::framing::{Frame, StreamFramer};
use crate::sip::message::{Request, Response};
use crate::sip::screen::{Screened, answer_framing_error, screen};

/// The largest TCP message, as the daemon's transport sets it.
const MAX_MESSAGE: usize = 64 * 1024;

/// Screens `data` as one datagram, then as a stream: the first byte
/// chooses the chunk size the stream arrives in.
pub fn run(data: &[u8]) {
    check(data, Transport::Udp);
    let Some((chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(*chunk).max(1);
    let mut framer = StreamFramer::new(MAX_MESSAGE);
    for piece in stream.chunks(chunk) {
        framer.push(piece);
        loop {
            match framer.next_message() {
                Ok(Some(Frame::Message(msg))) => check(&msg, Transport::Tcp),
                Ok(Some(Frame::Ping)) => {}
                Ok(None) => break,
                Err(e) => {
                    if let Some(answer) = answer_framing_error(&e) {
                        assert_is_response(&answer);
                    }
                    // The transport closes the connection here.
                    return;
                }
            }
        }
    }
}

/// One message through screening; what it hands on or answers must be
/// SIP that the message model reads back.
fn check(data: &[u8], transport: Transport) {
    match screen(data, transport) {
        Screened::Request(req) => {
            let bytes = req.to_string().into_bytes();
            assert!(
                Request::try_from(bytes.as_slice()).is_ok(),
                "a screened request does not read back: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Screened::Response(resp) => {
            let _ = resp.to_string();
        }
        Screened::Reject { status, response } => {
            assert!((400..700).contains(&status), "rejected with {status}");
            assert_is_response(&response);
        }
        Screened::Ack(_) | Screened::Drop(_) => {}
    }
}

fn assert_is_response(bytes: &[u8]) {
    assert!(
        Response::try_from(bytes).is_ok(),
        "an answer of screening is no response: {}",
        String::from_utf8_lossy(bytes)
    );
}

//! Framing of SIP messages on a byte stream (TCP), RFC 3261 §18.3.
//!
//! A [`StreamFramer`] collects the bytes a connection delivers and cuts them
//! into messages. It does not check the messages: each frame goes through
//! [`crate::sip::screen::screen`] next.
//!
//! Choices:
//! - **Content-Length is mandatory** on a stream (RFC 3261 §18.3). A header
//!   section without it gives [`FramingError::MissingContentLength`]; the
//!   transport answers 400 (see [`crate::sip::screen::answer_framing_error`])
//!   and closes: without a length the stream cannot be resynchronised.
//! - A Content-Length that is not a plain decimal number, or several
//!   Content-Length headers with different values, give
//!   [`FramingError::BadContentLength`] (answer 400, close) for the same reason.
//!   The compact form `l:` is recognised, header names case-insensitively.
//! - A header section longer than `max_message` without its end, or a
//!   message whose header section plus Content-Length exceeds `max_message`,
//!   gives [`FramingError::TooLarge`] (answer 413 if possible, close).
//! - CRLF keep-alives (RFC 5626 §3.5.1): a double CRLF `"\r\n\r\n"` between
//!   messages is a ping and is reported as [`Frame::Ping`]; the transport
//!   answers with a single CRLF pong. A single CRLF before a message is
//!   skipped silently (RFC 3261 §7.5); a lone `"\r\n"` at the end of the
//!   buffer is kept until the next bytes show whether it starts a ping.
//! - LF-only line endings are accepted for the end of the header section
//!   (`"\n\n"`), as in the screening step.
//! - After an error the framer's state is undefined: close the connection.

use bytes::{Buf, Bytes, BytesMut};

/// What [`StreamFramer::next_message`] found in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message: header section and exactly Content-Length
    /// octets of body.
    Message(Bytes),
    /// A CRLF keep-alive ping (`"\r\n\r\n"`); answer `"\r\n"`.
    Ping,
}

/// Why a stream cannot be framed any further. Each variant carries the
/// header section (or its first `max_message` octets) so that the transport
/// can answer the request it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The header section or the announced body is over the limit (413).
    #[error("message larger than the limit")]
    TooLarge { head: Bytes },
    /// A header section without Content-Length (400, RFC 3261 §18.3).
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength { head: Bytes },
    /// Content-Length not a decimal number, or conflicting values (400).
    #[error("invalid or conflicting Content-Length")]
    BadContentLength { head: Bytes },
}

impl FramingError {
    /// The header section the error was found in (possibly truncated).
    pub fn head(&self) -> &Bytes {
        match self {
            FramingError::TooLarge { head }
            | FramingError::MissingContentLength { head }
            | FramingError::BadContentLength { head } => head,
        }
    }
}

/// Cuts a TCP byte stream into SIP messages by Content-Length.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max_message: usize,
}

impl StreamFramer {
    /// A framer that refuses messages longer than `max_message` octets
    /// (64 KiB is a good value).
    pub fn new(max_message: usize) -> Self {
        StreamFramer {
            buf: BytesMut::new(),
            max_message,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Octets received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Frame>, FramingError> {
        // Keep-alives and stray CRLFs before a message.
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                return Ok(Some(Frame::Ping));
            }
            if b"\r\n\r\n".starts_with(&self.buf) && !self.buf.is_empty() {
                // Could still become a ping.
                return Ok(None);
            }
            if self.buf.starts_with(b"\r\n") {
                self.buf.advance(2);
            } else if self.buf.first() == Some(&b'\n') {
                self.buf.advance(1);
            } else {
                break;
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some((head_len, body_start)) = find_head_end(&self.buf) else {
            if self.buf.len() > self.max_message {
                let head = Bytes::copy_from_slice(&self.buf[..self.max_message]);
                return Err(FramingError::TooLarge { head });
            }
            return Ok(None);
        };
        let head = &self.buf[..head_len];
        let content_length = match content_length(head) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Err(FramingError::MissingContentLength {
                    head: Bytes::copy_from_slice(head),
                });
            }
            Err(()) => {
                return Err(FramingError::BadContentLength {
                    head: Bytes::copy_from_slice(head),
                });
            }
        };
        let total = match body_start.checked_add(content_length) {
            Some(t) if t <= self.max_message => t,
            _ => {
                let n = head_len.min(self.max_message);
                return Err(FramingError::TooLarge {
                    head: Bytes::copy_from_slice(&self.buf[..n]),
                });
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }
}

/// The end of the header section: (length of the header lines, start of
/// the body). Accepts CRLF and bare LF line ends.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() && line_start > 0 {
            return Some((line_start, i + 1));
        }
        line_start = i + 1;
    }
    None
}

/// The Content-Length of a header section: `Ok(None)` when absent,
/// `Err(())` when malformed or given twice with different values.
fn content_length(head: &[u8]) -> Result<Option<usize>, ()> {
    let mut found: Option<usize> = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = line[colon + 1..].trim_ascii();
        if value.is_empty() || value.len() > 10 || !value.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let n: usize = std::str::from_utf8(value)
            .map_err(|_| ())?
            .parse()
            .map_err(|_| ())?;
        match found {
            Some(m) if m != n => return Err(()),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
        Content-Length: 4\r\n\r\nabcd";

    fn frame(f: &mut StreamFramer) -> Frame {
        f.next_message().unwrap().unwrap()
    }

    #[test]
    fn a_message_split_across_pushes_is_joined() {
        for cut in 1..MSG.len() {
            let mut f = StreamFramer::new(65536);
            f.push(&MSG[..cut]);
            assert_eq!(f.next_message().unwrap(), None, "cut at {cut}");
            f.push(&MSG[cut..]);
            assert_eq!(frame(&mut f), Frame::Message(Bytes::from_static(MSG)));
            assert_eq!(f.next_message().unwrap(), None);
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn two_messages_in_one_push() {
        let mut f = StreamFramer::new(65536);
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        two.extend_from_slice(&MSG[..10]);
        f.push(&two);
        assert_eq!(frame(&mut f), Frame::Message(Bytes::from_static(MSG)));
        assert_eq!(frame(&mut f), Frame::Message(Bytes::from_static(MSG)));
        assert_eq!(f.next_message().unwrap(), None);
        assert_eq!(f.buffered(), 10);
    }

    #[test]
    fn keepalive_ping_is_reported_and_single_crlf_skipped() {
        let mut f = StreamFramer::new(65536);
        f.push(b"\r\n\r\n");
        assert_eq!(frame(&mut f), Frame::Ping);
        assert_eq!(f.next_message().unwrap(), None);
        f.push(b"\r\n");
        assert_eq!(f.next_message().unwrap(), None, "may become a ping");
        f.push(MSG);
        assert_eq!(frame(&mut f), Frame::Message(Bytes::from_static(MSG)));
        f.push(b"\r\n\r\n\r\n\r\n");
        assert_eq!(frame(&mut f), Frame::Ping);
        assert_eq!(frame(&mut f), Frame::Ping);
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn compact_and_case_insensitive_content_length() {
        for name in [
            "l",
            "L",
            "content-length",
            "CONTENT-LENGTH",
            "Content-Length ",
        ] {
            let msg = format!("BYE sip:a@b SIP/2.0\r\nVia: x\r\n{name}: 2\r\n\r\nxy");
            let mut f = StreamFramer::new(65536);
            f.push(msg.as_bytes());
            f.push(b"NEXT");
            assert_eq!(frame(&mut f), Frame::Message(Bytes::from(msg)));
        }
    }

    #[test]
    fn lf_only_header_section() {
        let msg = b"BYE sip:a@b SIP/2.0\nVia: x\nl: 2\n\nxy";
        let mut f = StreamFramer::new(65536);
        f.push(msg);
        assert_eq!(frame(&mut f), Frame::Message(Bytes::from_static(msg)));
    }

    #[test]
    fn too_large() {
        let mut f = StreamFramer::new(100);
        f.push(&[b'a'; 101]);
        assert!(matches!(
            f.next_message(),
            Err(FramingError::TooLarge { head }) if head.len() == 100
        ));
        let mut f = StreamFramer::new(100);
        f.push(b"BYE sip:a@b SIP/2.0\r\nl: 200\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::TooLarge { .. })
        ));
        let mut f = StreamFramer::new(100);
        f.push(b"BYE sip:a@b SIP/2.0\r\nl: 99999999999999999999\r\n\r\n");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::BadContentLength { .. })
        ));
        // Just under the limit waits for more.
        let mut f = StreamFramer::new(100);
        f.push(&[b'a'; 100]);
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn missing_or_bad_content_length() {
        let mut f = StreamFramer::new(65536);
        f.push(b"BYE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        let e = f.next_message().unwrap_err();
        assert!(matches!(e, FramingError::MissingContentLength { .. }));
        assert!(e.head().starts_with(b"BYE "));
        for bad in ["-1", "1 2", "x", "", "+3"] {
            let mut f = StreamFramer::new(65536);
            f.push(format!("BYE sip:a@b SIP/2.0\r\nl: {bad}\r\n\r\n").as_bytes());
            assert!(
                matches!(f.next_message(), Err(FramingError::BadContentLength { .. })),
                "{bad:?}"
            );
        }
        let mut f = StreamFramer::new(65536);
        f.push(b"BYE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nxy");
        assert!(matches!(
            f.next_message(),
            Err(FramingError::BadContentLength { .. })
        ));
        // The same value twice is harmless for framing.
        let mut f = StreamFramer::new(65536);
        f.push(b"BYE sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nxy");
        assert!(matches!(f.next_message(), Ok(Some(Frame::Message(_)))));
    }
}

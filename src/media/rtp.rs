//! RTP (RFC 3550) headers and RFC 4733 telephone-event payloads.
//!
//! We only ever send the fixed 12-byte header, so writing is a handful of
//! stores; parsing accepts what peers send (CSRCs, extensions, padding) and
//! returns `None` instead of failing on garbage.
//!
//! ```
//! use zentrale::media::rtp::{self, RtpHeader};
//! let h = RtpHeader { marker: true, payload_type: 8, sequence: 7, timestamp: 160, ssrc: 0xdead_beef };
//! let mut buf = [0u8; 14];
//! h.write(&mut buf);
//! buf[12..].copy_from_slice(&[0xd5, 0xd5]);
//! let p = rtp::parse(&buf).unwrap();
//! assert_eq!((p.header, p.payload), (h, &[0xd5, 0xd5][..]));
//! ```

/// Length of the header we send (no CSRCs, no extension).
pub const HEADER_LEN: usize = 12;

/// The fields of an RTP header we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Start of a talkspurt (first packet, and first after a pause).
    pub marker: bool,
    /// 0..=127.
    pub payload_type: u8,
    /// Increments by one per packet.
    pub sequence: u16,
    /// Sampling instant, in 8 kHz units for G.711.
    pub timestamp: u32,
    /// Synchronisation source: fixed for the whole stream.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header (version 2, no padding, extension or CSRC)
    /// to the start of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`HEADER_LEN`] (a bug in the caller, never input).
    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        out[0] = 0x80;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// A parsed packet borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    /// The payload without CSRCs, extension and padding.
    pub payload: &'a [u8],
}

/// True if the datagram looks like RTCP multiplexed on the RTP port
/// (RFC 5761 §4: second byte 192..=223 means RTCP packet types 192-223).
#[inline]
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

/// Parses an RTP packet; `None` if it is not RTP version 2 or is cut short.
pub fn parse(datagram: &[u8]) -> Option<RtpPacket<'_>> {
    let (header, payload) = parse_in_place(datagram)?;
    Some(RtpPacket {
        header,
        payload: &datagram[payload],
    })
}

/// Like [`parse`], but returns where the payload sits in the datagram, so
/// the caller may rewrite the datagram in place afterwards (the relay writes
/// its own 12-byte header just before the payload). The payload always
/// starts at [`HEADER_LEN`] or later.
///
/// ```
/// use zentrale::media::rtp::{self, RtpHeader};
/// let mut buf = [0u8; 16];
/// RtpHeader { marker: false, payload_type: 0, sequence: 1, timestamp: 2, ssrc: 3 }.write(&mut buf);
/// let (header, payload) = rtp::parse_in_place(&buf).unwrap();
/// assert_eq!((header.sequence, payload), (1, 12..16));
/// ```
pub fn parse_in_place(datagram: &[u8]) -> Option<(RtpHeader, std::ops::Range<usize>)> {
    if datagram.len() < HEADER_LEN || datagram[0] >> 6 != 2 || is_rtcp(datagram) {
        return None;
    }
    let b0 = datagram[0];
    let csrc_count = usize::from(b0 & 0x0F);
    let mut start = HEADER_LEN + 4 * csrc_count;
    if b0 & 0x10 != 0 {
        // Extension: 2 bytes profile, 2 bytes length in 32-bit words.
        let ext = datagram.get(start..start + 4)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        start += 4 + 4 * words;
    }
    let mut end = datagram.len();
    if b0 & 0x20 != 0 {
        let pad = usize::from(*datagram.last()?);
        if pad == 0 {
            return None;
        }
        end = end.checked_sub(pad)?;
    }
    if start > end {
        return None;
    }
    let header = RtpHeader {
        marker: datagram[1] & 0x80 != 0,
        payload_type: datagram[1] & 0x7F,
        sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
        timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
        ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
    };
    Some((header, start..end))
}

/// An RFC 4733 telephone-event payload (§2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0-9, 10 `*`, 11 `#`, 12-15 A-D, 16 flash.
    pub event: u8,
    /// The E bit: this is (a retransmission of) the last packet of the event.
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first 4-byte event block of a payload. Further blocks
    /// (RFC 4733 §2.5.1.5 redundancy) repeat earlier events; we do not need them.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let b = payload.get(..4)?;
        Some(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Writes the 4-byte payload.
    pub fn write(&self, out: &mut [u8; 4]) {
        out[0] = self.event;
        out[1] = (u8::from(self.end) << 7) | (self.volume & 0x3F);
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }

    /// The key the event stands for: `0`-`9`, `*`, `#`, `A`-`D`, and `!` for
    /// flash (the SIP INFO dtmf-relay convention); `None` for other events.
    pub fn digit(&self) -> Option<char> {
        event_digit(self.event)
    }
}

/// See [`TelephoneEvent::digit`].
pub fn event_digit(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        16 => '!',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = RtpHeader {
            marker: false,
            payload_type: 101,
            sequence: 0xFFFF,
            timestamp: u32::MAX,
            ssrc: 1,
        };
        let mut buf = [0u8; 16];
        h.write(&mut buf);
        assert_eq!(buf[0], 0x80);
        assert_eq!(buf[1], 101);
        let p = parse(&buf).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload.len(), 4);
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        let mut pkt = vec![0x80 | 0x20 | 0x10 | 2, 0x88, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0xAA; 8]); // two CSRCs
        pkt.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // one-word extension
        pkt.extend_from_slice(&[7, 8, 9]); // payload
        pkt.extend_from_slice(&[0, 0, 3]); // padding, count 3
        let p = parse(&pkt).unwrap();
        assert!(p.header.marker);
        assert_eq!(p.header.payload_type, 8);
        assert_eq!(p.header.ssrc, 9);
        assert_eq!(p.payload, [7, 8, 9]);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse(&[]).is_none());
        assert!(parse(&[0x80; 11]).is_none());
        assert!(parse(&[0x40; 20]).is_none()); // version 1
        let mut bad_pad = [0u8; 13];
        bad_pad[0] = 0xA0;
        bad_pad[12] = 200;
        assert!(parse(&bad_pad).is_none());
        let mut bad_ext = [0u8; 16];
        bad_ext[0] = 0x90;
        bad_ext[14] = 0xFF;
        assert!(parse(&bad_ext).is_none());
        let mut too_many_csrc = [0u8; 20];
        too_many_csrc[0] = 0x8F;
        assert!(parse(&too_many_csrc).is_none());
        // RTCP receiver report on a muxed port.
        assert!(parse(&[0x81, 201, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        for len in 0..40 {
            for first in [0x80u8, 0xBF, 0xFF] {
                let mut d = vec![0xFFu8; len];
                if let Some(b) = d.first_mut() {
                    *b = first;
                }
                let _ = parse(&d);
            }
        }
    }

    #[test]
    fn telephone_event_payload() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1280,
        };
        let mut b = [0u8; 4];
        ev.write(&mut b);
        assert_eq!(b, [11, 0x8A, 0x05, 0x00]);
        assert_eq!(TelephoneEvent::parse(&b), Some(ev));
        assert_eq!(ev.digit(), Some('#'));
        assert_eq!(TelephoneEvent::parse(&b[..3]), None);
        let digits: String = (0..=17).filter_map(event_digit).collect();
        assert_eq!(digits, "0123456789*#ABCD!");
    }
}

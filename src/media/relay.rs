//! Relaying RTP between two bridged legs, sans-IO: the per-packet rewrite
//! that turns what one peer sends into the stream we send the other.
//!
//! zentrale is a B2BUA with media anchored at itself, so each leg keeps one
//! continuous RTP stream (DESIGN.md, "Principles") whatever feeds it: a
//! prompt, music on hold, or the other leg. [`OutboundRtp`] is that stream's
//! header state; a [`Relay`] maps one source onto it:
//!
//! - **SSRC** stays the destination leg's own.
//! - **Sequence** is +1 per packet sent, continuing from whatever was sent
//!   before. A packet lost on the way to us therefore shows as a timestamp
//!   gap, not a sequence gap; receivers conceal by timestamp either way.
//! - **Timestamp** is the source's plus an offset fixed when the relay
//!   *anchors*: at its first packet, whenever the source SSRC changes, and
//!   when the source's timestamps move more than [`MAX_SOURCE_SKEW`] away
//!   from what the wall clock says (a restarted source). The anchor puts the
//!   packet where the destination stream stands ([`OutboundRtp::resume_point`]),
//!   so timestamps never go back and a source restart is no jump. Between
//!   anchors the source's own spacing is kept, so any packet duration (10,
//!   20, 30 ms ...) and silence suppression come out right.
//! - **Marker** is the source's, and also set on the first packet after an
//!   anchor or a [`pause`](Relay::pause).
//! - **Payload type** becomes the destination's; G.711 is transcoded between
//!   µ-law and A-law in place when the legs differ.
//! - **RFC 4733 events** get the destination's telephone-event payload type,
//!   or are dropped if it negotiated none. All packets of one event share
//!   one offset, so they keep sharing one timestamp.
//! - Anything else (comfort noise, a codec nobody negotiated) is dropped.
//!
//! ```
//! use std::time::Instant;
//! use zentrale::media::relay::{LegFormat, OutboundRtp, Relay};
//! use zentrale::media::rtp::{self, RtpHeader};
//! use zentrale::media::Codec;
//!
//! let caller = LegFormat { codec: Codec::Pcmu, payload_type: 0, dtmf_payload_type: Some(101) };
//! let agent = LegFormat { codec: Codec::Pcma, payload_type: 8, dtmf_payload_type: Some(96) };
//! // What we sent the agent so far (a ringback prompt, say).
//! let mut to_agent = OutboundRtp { ssrc: 7, sequence: 100, clock: 16_000, end: 16_000 };
//! let mut relay = Relay::new();
//!
//! let mut datagram = vec![0u8; 12 + 160];
//! RtpHeader { marker: false, payload_type: 0, sequence: 9, timestamp: 555, ssrc: 42 }
//!     .write(&mut datagram);
//! datagram[12..].fill(0xFF); // µ-law silence
//! let (header, payload) = rtp::parse_in_place(&datagram).unwrap();
//! let out = relay
//!     .rewrite(&mut datagram, header, payload, &caller, &agent, &mut to_agent, Instant::now())
//!     .unwrap();
//! let sent = rtp::parse(&datagram[out]).unwrap();
//! assert_eq!(
//!     sent.header,
//!     RtpHeader { marker: true, payload_type: 8, sequence: 100, timestamp: 16_000, ssrc: 7 }
//! );
//! assert!(sent.payload.iter().all(|&b| b == 0xD5)); // A-law silence
//! assert_eq!(to_agent.sequence, 101);
//! ```

use std::ops::Range;
use std::time::Instant;

use super::codec::{Codec, SAMPLE_RATE};
use super::rtp::{HEADER_LEN, RtpHeader, TelephoneEvent};
use crate::rng::SeededRng;

/// How far (in samples; one second) a source's timestamps may drift from
/// the wall clock between two of its audio packets before the relay treats
/// the source as restarted and re-anchors. Network jitter and silence
/// suppression stay far inside it; a restart with a fresh random timestamp
/// lands outside it with near certainty.
pub const MAX_SOURCE_SKEW: u32 = SAMPLE_RATE;

/// What one leg negotiated: the codec and payload types we send it and
/// expect from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegFormat {
    pub codec: Codec,
    /// The audio payload type, usually the codec's static one.
    pub payload_type: u8,
    /// The RFC 4733 telephone-event payload type, if negotiated.
    pub dtmf_payload_type: Option<u8>,
}

/// The header state of the RTP stream we send towards one peer. One per
/// leg, shared by everything that feeds it, so the peer sees one continuous
/// stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboundRtp {
    /// Our SSRC towards this peer, fixed for the stream's life.
    pub ssrc: u32,
    /// Sequence number of the next packet.
    pub sequence: u16,
    /// The timestamp due now: moves with real time, one frame per tick,
    /// whether or not anything is sent.
    pub clock: u32,
    /// Just past the media sent last (its timestamp plus its duration), or
    /// the clock if that is later.
    pub end: u32,
}

impl OutboundRtp {
    /// A fresh stream: random SSRC, sequence and timestamp (RFC 3550 §5.1),
    /// drawn from `rng` (the media worker's, forked by the shell from the
    /// seeded generator).
    pub fn random(rng: &mut SeededRng) -> OutboundRtp {
        let timestamp = rng.next_u32();
        OutboundRtp {
            ssrc: rng.next_u32(),
            sequence: rng.next_u32() as u16,
            clock: timestamp,
            end: timestamp,
        }
    }

    /// Moves the clock on by `samples` of real time.
    #[inline]
    pub fn advance(&mut self, samples: u32) {
        self.clock = self.clock.wrapping_add(samples);
        // Keeps `end` within reach of serial-number comparison however long
        // nothing is sent.
        self.end = later(self.end, self.clock);
    }

    /// Where new media may start: the later of the clock and the end of
    /// what was sent, so a change of source never moves timestamps back.
    pub fn resume_point(&self) -> u32 {
        later(self.clock, self.end)
    }

    /// Sets the clock to the [`resume_point`](Self::resume_point): the player
    /// takes over from the relay, whose source may have run ahead of our clock.
    pub fn resume(&mut self) {
        self.clock = self.resume_point();
    }

    /// The header for the next packet, carrying media from `timestamp` for
    /// `samples`; takes a sequence number.
    #[inline]
    pub fn next_header(
        &mut self,
        marker: bool,
        payload_type: u8,
        timestamp: u32,
        samples: u32,
    ) -> RtpHeader {
        let header = RtpHeader {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.end = later(self.end, timestamp.wrapping_add(samples));
        header
    }
}

/// The later of two RTP timestamps in serial-number arithmetic (RFC 3550
/// timestamps wrap).
#[inline]
fn later(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) > 0 { b } else { a }
}

/// One direction of a bridge: maps packets of the source leg onto the
/// destination leg's [`OutboundRtp`]. See the module docs for the rules.
#[derive(Clone, Debug)]
pub struct Relay {
    anchor: Option<Anchor>,
    /// The next packet sent starts a talkspurt (RFC 3551 §4.1).
    marker_pending: bool,
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    source_ssrc: u32,
    /// Added to source timestamps.
    offset: u32,
    /// Source timestamp and arrival of the last audio packet, to spot a
    /// restarted source. Events are left out: their timestamp stands still
    /// while a key is held.
    last_audio: Option<(u32, Instant)>,
}

impl Anchor {
    fn jumped(&self, timestamp: u32, now: Instant) -> bool {
        let Some((last, at)) = self.last_audio else {
            return false;
        };
        let moved = i64::from(timestamp.wrapping_sub(last) as i32);
        let elapsed = now.saturating_duration_since(at).as_millis();
        let expected = i64::try_from(elapsed * u128::from(SAMPLE_RATE) / 1000).unwrap_or(i64::MAX);
        moved.abs_diff(expected) > u64::from(MAX_SOURCE_SKEW)
    }
}

impl Default for Relay {
    fn default() -> Relay {
        Relay::new()
    }
}

impl Relay {
    /// A relay that anchors on the first packet and marks it.
    pub fn new() -> Relay {
        Relay {
            anchor: None,
            marker_pending: true,
        }
    }

    /// Notes a packet that was not sent (the destination is on hold or its
    /// address unknown): the next packet sent starts a talkspurt.
    pub fn pause(&mut self) {
        self.marker_pending = true;
    }

    /// Rewrites the packet `datagram` (parsed by
    /// [`rtp::parse_in_place`](crate::media::rtp::parse_in_place) into
    /// `header` and `payload`) in place for the destination and returns the
    /// part to send, or `None` if it is not to be relayed (a payload type
    /// `from` did not negotiate, an event `to` cannot take, a short event).
    /// Takes a sequence number from `out` only when it returns `Some`.
    ///
    /// The work is a 12-byte header write just before the payload (over the
    /// source's CSRCs and extension, if any) and, between µ-law and A-law, one
    /// table lookup per payload byte.
    #[allow(clippy::too_many_arguments)] // each is a distinct input of one rewrite
    #[inline]
    pub fn rewrite(
        &mut self,
        datagram: &mut [u8],
        header: RtpHeader,
        payload: Range<usize>,
        from: &LegFormat,
        to: &LegFormat,
        out: &mut OutboundRtp,
        now: Instant,
    ) -> Option<Range<usize>> {
        debug_assert!(payload.start >= HEADER_LEN && payload.end <= datagram.len());
        let (audio, payload_type, samples) = if header.payload_type == from.payload_type {
            // G.711: one byte per sample.
            (true, to.payload_type, payload.len() as u32)
        } else if Some(header.payload_type) == from.dtmf_payload_type {
            let dtmf = to.dtmf_payload_type?;
            let event = TelephoneEvent::parse(&datagram[payload.clone()])?;
            (false, dtmf, u32::from(event.duration))
        } else {
            return None;
        };
        let offset = self.offset(&header, audio, out, now);
        let marker = header.marker || self.marker_pending;
        let timestamp = header.timestamp.wrapping_add(offset);
        let start = payload.start - HEADER_LEN;
        out.next_header(marker, payload_type, timestamp, samples)
            .write(&mut datagram[start..payload.start]);
        if audio {
            from.codec
                .transcode(to.codec, &mut datagram[payload.clone()]);
        }
        self.marker_pending = false;
        Some(start..payload.end)
    }

    /// The timestamp offset for this packet, anchoring anew if needed.
    fn offset(&mut self, header: &RtpHeader, audio: bool, out: &OutboundRtp, now: Instant) -> u32 {
        let anchor = match &mut self.anchor {
            Some(a)
                if a.source_ssrc == header.ssrc && !(audio && a.jumped(header.timestamp, now)) =>
            {
                a
            }
            slot => {
                if let Some(old) = slot {
                    tracing::debug!(
                        old_ssrc = old.source_ssrc,
                        new_ssrc = header.ssrc,
                        "relay source restarted; re-anchoring timestamps"
                    );
                }
                self.marker_pending = true;
                slot.insert(Anchor {
                    source_ssrc: header.ssrc,
                    offset: out.resume_point().wrapping_sub(header.timestamp),
                    last_audio: None,
                })
            }
        };
        if audio {
            anchor.last_audio = Some((header.timestamp, now));
        }
        anchor.offset
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::media::rtp;

    const PCMA: LegFormat = LegFormat {
        codec: Codec::Pcma,
        payload_type: 8,
        dtmf_payload_type: Some(101),
    };
    const PCMU: LegFormat = LegFormat {
        codec: Codec::Pcmu,
        payload_type: 0,
        dtmf_payload_type: Some(96),
    };

    fn packet(pt: u8, ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + payload.len()];
        RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc,
        }
        .write(&mut b);
        b[HEADER_LEN..].copy_from_slice(payload);
        b
    }

    /// Relays `datagram` and returns the header and payload that would be sent.
    fn relay(
        r: &mut Relay,
        mut datagram: Vec<u8>,
        from: &LegFormat,
        to: &LegFormat,
        out: &mut OutboundRtp,
        now: Instant,
    ) -> Option<(RtpHeader, Vec<u8>)> {
        let (h, p) = rtp::parse_in_place(&datagram).unwrap();
        let range = r.rewrite(&mut datagram, h, p, from, to, out, now)?;
        let sent = rtp::parse(&datagram[range]).unwrap();
        Some((sent.header, sent.payload.to_vec()))
    }

    fn stream_at(ts: u32) -> OutboundRtp {
        OutboundRtp {
            ssrc: 0xABCD,
            sequence: 65534,
            clock: ts,
            end: ts,
        }
    }

    #[test]
    fn keeps_source_spacing_and_wraps() {
        let t0 = Instant::now();
        let mut out = stream_at(u32::MAX - 100);
        let mut r = Relay::new();
        // 30 ms packets with one lost (ts 480 missing).
        let mut got = Vec::new();
        for (i, ts) in [0u32, 240, 720].into_iter().enumerate() {
            let now = t0 + Duration::from_millis(u64::from(ts) / 8);
            let p = packet(8, 1, i as u16, ts, &[0xD5; 240]);
            got.push(relay(&mut r, p, &PCMA, &PCMA, &mut out, now).unwrap().0);
        }
        let want_ts = [u32::MAX - 100, 139, 619];
        for (i, h) in got.iter().enumerate() {
            assert_eq!(h.timestamp, want_ts[i], "packet {i}");
            assert_eq!(h.ssrc, 0xABCD);
            assert_eq!(h.marker, i == 0);
        }
        assert_eq!(
            got.iter().map(|h| h.sequence).collect::<Vec<_>>(),
            [65534, 65535, 0]
        );
        assert_eq!(out.end, 619 + 240);
        assert_eq!(out.resume_point(), 859);
    }

    #[test]
    fn source_restart_is_no_jump_but_a_new_talkspurt() {
        let t0 = Instant::now();
        let mut out = stream_at(1000);
        let mut r = Relay::new();
        let a = packet(8, 1, 0, 5000, &[0xD5; 160]);
        let b = packet(8, 1, 1, 5160, &[0xD5; 160]);
        relay(&mut r, a, &PCMA, &PCMA, &mut out, t0).unwrap();
        let t = t0 + Duration::from_millis(20);
        let (h, _) = relay(&mut r, b, &PCMA, &PCMA, &mut out, t).unwrap();
        assert_eq!((h.timestamp, h.marker), (1160, false));

        // New SSRC: continues right after what was sent.
        let t = t + Duration::from_millis(20);
        let c = packet(8, 2, 0, 777_777, &[0xD5; 160]);
        let (h, _) = relay(&mut r, c, &PCMA, &PCMA, &mut out, t).unwrap();
        assert_eq!((h.timestamp, h.marker), (1320, true));

        // Same SSRC, timestamps restarted far back: also re-anchored.
        let t = t + Duration::from_millis(20);
        let d = packet(8, 2, 1, 3, &[0xD5; 160]);
        let (h, _) = relay(&mut r, d, &PCMA, &PCMA, &mut out, t).unwrap();
        assert_eq!((h.timestamp, h.marker), (1480, true));

        // Silence suppression for 5 s: the gap is real time, kept as is.
        let t = t + Duration::from_secs(5);
        let e = packet(8, 2, 2, 3 + 160 + 40_000, &[0xD5; 160]);
        let (h, _) = relay(&mut r, e, &PCMA, &PCMA, &mut out, t).unwrap();
        assert_eq!((h.timestamp, h.marker), (1480 + 160 + 40_000, false));
    }

    #[test]
    fn transcodes_between_laws() {
        let mut out = stream_at(0);
        let mut r = Relay::new();
        let ulaw: Vec<u8> = (0..=255).collect();
        let p = packet(0, 1, 0, 0, &ulaw);
        let (h, payload) = relay(&mut r, p, &PCMU, &PCMA, &mut out, Instant::now()).unwrap();
        assert_eq!(h.payload_type, 8);
        let want: Vec<u8> = ulaw
            .iter()
            .map(|&u| crate::media::g711::ulaw_to_alaw(u))
            .collect();
        assert_eq!(payload, want);
        assert_eq!(
            (payload[0xFF], payload[0x80], payload[0x00]),
            (0xD5, 0xAA, 0x2A)
        );
        // And back.
        let p = packet(8, 1, 1, 160, &payload);
        let (h, back) = relay(&mut r, p, &PCMA, &PCMU, &mut out, Instant::now()).unwrap();
        assert_eq!(h.payload_type, 0);
        assert_eq!((back[0xFF], back[0x80], back[0x00]), (0xFE, 0x80, 0x00));
    }

    #[test]
    fn events_share_one_timestamp_and_take_the_destination_type() {
        let t0 = Instant::now();
        let mut out = stream_at(8000);
        let mut r = Relay::new();
        let ev = |seq, dur, end| {
            let mut p = [0u8; 4];
            TelephoneEvent {
                event: 5,
                end,
                volume: 10,
                duration: dur,
            }
            .write(&mut p);
            packet(101, 1, seq, 90_000, &p)
        };
        let mut stamps = Vec::new();
        for (i, (dur, end)) in [(160, false), (320, false), (480, true), (480, true)]
            .into_iter()
            .enumerate()
        {
            let now = t0 + Duration::from_millis(20 * i as u64);
            let (h, payload) =
                relay(&mut r, ev(i as u16, dur, end), &PCMA, &PCMU, &mut out, now).unwrap();
            assert_eq!(h.payload_type, 96);
            assert_eq!(TelephoneEvent::parse(&payload).unwrap().duration, dur);
            stamps.push(h.timestamp);
        }
        assert_eq!(stamps, [8000; 4]);
        assert_eq!(out.end, 8480);
        // Audio after the event keeps the source's spacing.
        let a = packet(8, 1, 4, 90_480, &[0xD5; 160]);
        let now = t0 + Duration::from_millis(80);
        let (h, _) = relay(&mut r, a, &PCMA, &PCMU, &mut out, now).unwrap();
        assert_eq!(h.timestamp, 8480);

        // A destination without telephone-event gets none, and loses no
        // sequence number for it.
        let mut plain = PCMU;
        plain.dtmf_payload_type = None;
        let seq = out.sequence;
        assert!(relay(&mut r, ev(5, 160, false), &PCMA, &plain, &mut out, now).is_none());
        assert_eq!(out.sequence, seq);
    }

    #[test]
    fn drops_what_the_source_did_not_negotiate_and_marks_after_a_pause() {
        let now = Instant::now();
        let mut out = stream_at(0);
        let mut r = Relay::new();
        // Comfort noise (13) and PCMU on a PCMA leg.
        assert!(
            relay(
                &mut r,
                packet(13, 1, 0, 0, &[40]),
                &PCMA,
                &PCMA,
                &mut out,
                now
            )
            .is_none()
        );
        assert!(
            relay(
                &mut r,
                packet(0, 1, 0, 0, &[0xFF; 160]),
                &PCMA,
                &PCMA,
                &mut out,
                now
            )
            .is_none()
        );
        let (h, _) = relay(
            &mut r,
            packet(8, 1, 1, 0, &[0xD5; 160]),
            &PCMA,
            &PCMA,
            &mut out,
            now,
        )
        .unwrap();
        assert!(h.marker);
        let (h, _) = relay(
            &mut r,
            packet(8, 1, 2, 160, &[0xD5; 160]),
            &PCMA,
            &PCMA,
            &mut out,
            now,
        )
        .unwrap();
        assert!(!h.marker);
        r.pause();
        let (h, _) = relay(
            &mut r,
            packet(8, 1, 3, 320, &[0xD5; 160]),
            &PCMA,
            &PCMA,
            &mut out,
            now,
        )
        .unwrap();
        assert!(h.marker);
        assert_eq!(h.timestamp, 320);
    }

    #[test]
    fn header_goes_over_csrcs_and_extension() {
        let mut d = vec![0x80 | 0x10 | 1, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        d.extend_from_slice(&[0xAA; 4]); // one CSRC
        d.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension
        d.extend_from_slice(&[0xD5; 160]);
        let mut out = stream_at(0);
        let (h, p) = relay(&mut Relay::new(), d, &PCMA, &PCMA, &mut out, Instant::now()).unwrap();
        assert_eq!((h.ssrc, h.timestamp, p.len()), (0xABCD, 0, 160));
    }

    #[test]
    fn clock_and_end() {
        let mut out = stream_at(0);
        out.advance(160);
        assert_eq!((out.clock, out.end), (160, 160));
        out.next_header(false, 0, 160, 480);
        out.advance(160);
        assert_eq!((out.clock, out.end, out.resume_point()), (320, 640, 640));
        out.resume();
        assert_eq!(out.clock, 640);
        assert_eq!(later(u32::MAX, 1), 1);
        assert_eq!(later(1, u32::MAX), 1);
    }
}

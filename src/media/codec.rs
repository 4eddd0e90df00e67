//! The audio codecs zentrale speaks: G.711 µ-law and A-law at 8000 Hz.

use super::g711;

/// Samples per second of every codec we support (and of RFC 4733 events).
pub const SAMPLE_RATE: u32 = 8000;

/// A G.711 codec. Both have static RTP payload types (RFC 3551).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8 (the usual one on German trunks).
    Pcma,
}

impl Codec {
    /// The static payload type from RFC 3551.
    ///
    /// ```
    /// use zentrale::media::Codec;
    /// assert_eq!(Codec::Pcma.static_payload_type(), 8);
    /// ```
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name as written in `a=rtpmap`.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for an `a=rtpmap` encoding name (case-insensitive, RFC 4566).
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// The codec a static payload type stands for when no rtpmap names it.
    pub const fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The byte that encodes digital silence (linear 0) in this codec.
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Encodes one linear sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => g711::linear_to_ulaw(sample),
            Codec::Pcma => g711::linear_to_alaw(sample),
        }
    }

    /// Decodes one byte to a linear sample.
    #[inline]
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => g711::ulaw_to_linear(byte),
            Codec::Pcma => g711::alaw_to_linear(byte),
        }
    }

    /// Rewrites a payload of this codec into `to`, in place: one table
    /// lookup per byte, nothing when the codecs are the same.
    ///
    /// ```
    /// use zentrale::media::Codec;
    /// let mut payload = [0xFF, 0x80];
    /// Codec::Pcmu.transcode(Codec::Pcma, &mut payload);
    /// assert_eq!(payload, [0xD5, 0xAA]); // silence and full scale
    /// ```
    #[inline]
    pub fn transcode(self, to: Codec, payload: &mut [u8]) {
        // Two loops rather than a function pointer, so each inlines its table.
        match (self, to) {
            (Codec::Pcmu, Codec::Pcma) => {
                payload.iter_mut().for_each(|b| *b = g711::ulaw_to_alaw(*b))
            }
            (Codec::Pcma, Codec::Pcmu) => {
                payload.iter_mut().for_each(|b| *b = g711::alaw_to_ulaw(*b))
            }
            _ => {}
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_payload_types() {
        assert_eq!(Codec::from_encoding_name("pcmu"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_encoding_name("PCMA"), Some(Codec::Pcma));
        assert_eq!(Codec::from_encoding_name("G722"), None);
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_static_payload_type(18), None);
        for c in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(c.encode(0), c.silence());
        }
    }
}

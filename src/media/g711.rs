//! ITU-T G.711 µ-law and A-law.
//!
//! Decoding uses 256-entry tables built at compile time. Encoding computes the
//! segment with `leading_zeros` instead of a search: it is branch-light and
//! only runs when prompts are loaded, never per packet.
//!
//! ```
//! use zentrale::media::g711;
//! assert_eq!(g711::linear_to_ulaw(0), 0xFF);
//! assert_eq!(g711::alaw_to_linear(0xD5), 8);
//! ```

const ULAW_BIAS: i32 = 0x84;
/// 14-bit magnitude clip (8159 = 32635 >> 2): the largest value µ-law encodes.
const ULAW_CLIP: i32 = 8159;

/// Encodes a 16-bit linear sample to µ-law (G.711 table 2a).
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // Work on 14 bits like the reference: µ-law has 14-bit precision.
    let mut v = i32::from(sample) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > ULAW_CLIP {
        v = ULAW_CLIP;
    }
    v += ULAW_BIAS >> 2;
    // v is now in 33..=8192; segment 0 holds values below 64 (6 bits).
    let bits = 32 - v.leading_zeros() as i32;
    let seg = (bits - 6).max(0);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) as u8;
    code ^ mask
}

/// Encodes a 16-bit linear sample to A-law (G.711 table 1a).
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law has 13-bit precision.
    let mut v = i32::from(sample) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    // v is in 0..=4095; segment 0 holds values below 32 (5 bits).
    let bits = 32 - v.leading_zeros() as i32;
    let seg = (bits - 5).max(0);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let quant = if seg < 2 { v >> 1 } else { v >> seg } & 0x0F;
    (((seg << 4) | quant) as u8) ^ mask
}

/// Decodes a µ-law byte to a 16-bit linear sample.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Decodes an A-law byte to a 16-bit linear sample.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

static ULAW_TABLE: [i16; 256] = build_ulaw_table();
static ALAW_TABLE: [i16; 256] = build_alaw_table();

const fn ulaw_decode(code: u8) -> i16 {
    let u = !code as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (ULAW_BIAS - t) as i16
    } else {
        (t - ULAW_BIAS) as i16
    }
}

const fn alaw_decode(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode(i as u8);
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic reference encoder (Sun g711.c) with its segment search,
    /// to check the `leading_zeros` shortcut over every input.
    fn ref_ulaw(pcm: i16) -> u8 {
        const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
        let mut v = i32::from(pcm) >> 2;
        let mask: i32 = if v < 0 {
            v = -v;
            0x7F
        } else {
            0xFF
        };
        v = v.min(8159) + (0x84 >> 2);
        let seg = SEG_UEND.iter().position(|&e| v <= e).unwrap_or(8) as i32;
        if seg >= 8 {
            (0x7F ^ mask) as u8
        } else {
            (((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask) as u8
        }
    }

    fn ref_alaw(pcm: i16) -> u8 {
        const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
        let mut v = i32::from(pcm) >> 3;
        let mask = if v >= 0 {
            0xD5
        } else {
            v = -v - 1;
            0x55
        };
        let seg = SEG_AEND.iter().position(|&e| v <= e).unwrap_or(8) as i32;
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        let q = if seg < 2 {
            (v >> 1) & 0xF
        } else {
            (v >> seg) & 0xF
        };
        (((seg << 4) | q) ^ mask) as u8
    }

    #[test]
    fn known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(-1), 0x7E);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xF0), 120);

        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn encoders_match_reference_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(linear_to_ulaw(s), ref_ulaw(s), "ulaw {s}");
            assert_eq!(linear_to_alaw(s), ref_alaw(s), "alaw {s}");
        }
    }

    #[test]
    fn code_round_trips() {
        for c in 0..=255u8 {
            // 0x7F is µ-law "negative zero"; it decodes to 0, which encodes as 0xFF.
            if c != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), c, "ulaw {c:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw {c:#x}");
        }
    }

    #[test]
    fn sample_round_trip_error_is_bounded() {
        // Quantisation error grows with the segment: at most half a step.
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let s = i32::from(s);
            // Steps are 1/16 of the value at a segment's start, halved by the
            // mid-point decoding; the 16 covers the smallest segments.
            let limit = s.abs() / 16 + 16;
            assert!((u - s).abs() <= limit, "ulaw {s} -> {u}");
            assert!((a - s).abs() <= limit, "alaw {s} -> {a}");
        }
    }
}

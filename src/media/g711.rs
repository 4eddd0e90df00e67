//! ITU-T G.711 µ-law and A-law.
//!
//! Decoding uses 256-entry tables built at compile time. Encoding computes the
//! segment with `leading_zeros` instead of a search: it is branch-light and
//! only runs when prompts are loaded, never per packet. Relaying between a
//! µ-law and an A-law leg uses two more 256-entry tables (one lookup per
//! byte, no linear detour at run time).
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
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    // Work on 14 bits like the reference: µ-law has 14-bit precision.
    let mut v = (sample as i32) >> 2;
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
    let seg = if bits > 6 { bits - 6 } else { 0 };
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let code = ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) as u8;
    code ^ mask
}

/// Encodes a 16-bit linear sample to A-law (G.711 table 1a).
#[inline]
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // A-law has 13-bit precision.
    let mut v = (sample as i32) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    // v is in 0..=4095; segment 0 holds values below 32 (5 bits).
    let bits = 32 - v.leading_zeros() as i32;
    let seg = if bits > 5 { bits - 5 } else { 0 };
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

/// Converts a µ-law byte to the A-law byte nearest in value. Plain decode
/// then encode (what most soft switches do) is off by one step at some
/// segment edges, because a value at the bottom of an interval is nearer
/// the level below; the table is built at compile time by searching all 256
/// codes, ties going to what the encoder picks (so µ-law silence, 0, which
/// lies midway between A-law's ±8, becomes A-law's usual silence 0xD5).
#[inline]
pub fn ulaw_to_alaw(code: u8) -> u8 {
    ULAW_TO_ALAW[code as usize]
}

/// Converts an A-law byte to the µ-law byte nearest in value.
#[inline]
pub fn alaw_to_ulaw(code: u8) -> u8 {
    ALAW_TO_ULAW[code as usize]
}

static ULAW_TABLE: [i16; 256] = build_ulaw_table();
static ALAW_TABLE: [i16; 256] = build_alaw_table();
static ULAW_TO_ALAW: [u8; 256] = build_transcode_table(true);
static ALAW_TO_ULAW: [u8; 256] = build_transcode_table(false);

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

const fn build_transcode_table(from_ulaw: bool) -> [u8; 256] {
    // `to` decodes the target law; fn pointers cannot be called in const fn.
    const fn to(code: u8, to_alaw: bool) -> i32 {
        (if to_alaw {
            alaw_decode(code)
        } else {
            ulaw_decode(code)
        }) as i32
    }
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let (value, guess) = if from_ulaw {
            let v = ulaw_decode(i as u8);
            (v as i32, linear_to_alaw(v))
        } else {
            let v = alaw_decode(i as u8);
            (v as i32, linear_to_ulaw(v))
        };
        let mut best = guess;
        let mut best_dist = (to(guess, from_ulaw) - value).abs();
        let mut c = 0;
        while c < 256 {
            let dist = (to(c as u8, from_ulaw) - value).abs();
            if dist < best_dist {
                best = c as u8;
                best_dist = dist;
            }
            c += 1;
        }
        table[i] = best;
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
    fn transcoding_picks_the_nearest_code_of_the_other_law() {
        // Brute force over the other law's 256 codes: the table's choice must
        // be at least as close to the original value as any other code.
        fn check(value: i16, chosen: i16, all: &[i16; 256], what: &str) {
            let best = all
                .iter()
                .map(|&x| (i32::from(x) - i32::from(value)).abs())
                .min()
                .unwrap();
            let got = (i32::from(chosen) - i32::from(value)).abs();
            assert_eq!(got, best, "{what}: {value} became {chosen}");
        }
        for c in 0..=255u8 {
            check(
                ulaw_to_linear(c),
                alaw_to_linear(ulaw_to_alaw(c)),
                &ALAW_TABLE,
                "ulaw->alaw",
            );
            check(
                alaw_to_linear(c),
                ulaw_to_linear(alaw_to_ulaw(c)),
                &ULAW_TABLE,
                "alaw->ulaw",
            );
        }
        // Silence stays (near) silence, full scale stays full scale.
        assert_eq!(ulaw_to_alaw(0xFF), 0xD5);
        assert_eq!(ulaw_to_alaw(0x7F), 0xD5);
        assert_eq!(alaw_to_ulaw(0xD5), 0xFE); // +8: µ-law has that level exactly
        // Where plain decode-then-encode is a step off: A-law 8064 lies
        // nearer µ-law's 7932 than 8316.
        assert_eq!(ulaw_to_linear(alaw_to_ulaw(0x8A)), 7932);
        assert_eq!(ulaw_to_alaw(0x80), 0xAA);
        assert_eq!(ulaw_to_alaw(0x00), 0x2A);
        assert_eq!(alaw_to_ulaw(0xAA), 0x80);
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

//! SRTP (RFC 3711) with keys exchanged in SDP (SDES, RFC 4568): the
//! `AES_CM_128_HMAC_SHA1_80` and `_32` suites, which every SIP phone with
//! SRTP speaks.
//!
//! A [`Context`] protects or unprotects one direction of one stream in
//! place: AES-128 in counter mode over the payload, HMAC-SHA1 over header,
//! payload and rollover counter, the tag truncated to 80 or 32 bits. The
//! session keys are derived once from the master key and salt (key
//! derivation rate 0, the SDES default); the rollover counter follows the
//! sequence numbers (RFC 3711 §3.3.1) and a 64-packet replay window drops
//! repeats (§3.3.2). Sans-IO: the media worker calls it per packet.
//!
//! Not covered: SRTCP (zentrale sends no RTCP and reads none, so a phone's
//! SRTCP goes unanswered, which RFC 3711 allows), MKI, key lifetimes and
//! the other suites (an offer with only those is answered as if it had no
//! crypto line).
//!
//! ```
//! use zentrale::media::srtp::{Context, MasterKey, Suite};
//! use zentrale::rng::SeededRng;
//! let key = MasterKey::random(&mut SeededRng::from_u64(7));
//! let mut tx = Context::new(Suite::AesCm128HmacSha1_80, &key);
//! let mut rx = Context::new(Suite::AesCm128HmacSha1_80, &key);
//! let mut packet = [0u8; 12 + 160 + 10];
//! packet[0] = 0x80;
//! packet[12..172].fill(0xff);
//! let len = tx.protect(&mut packet, 172).unwrap();
//! assert_eq!(len, 182);
//! assert_ne!(packet[12..172], [0xff; 160]);
//! assert_eq!(rx.unprotect(&mut packet[..len]), Ok(172));
//! assert_eq!(packet[12..172], [0xff; 160]);
//! ```

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::rng::SeededRng;

type HmacSha1 = Hmac<Sha1>;

/// Whether a leg uses SRTP (`srtp:` of an agent or a trunk).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SrtpPolicy {
    /// Plain RTP only: crypto lines are ignored, an `RTP/SAVP` offer is
    /// refused (no common codec).
    Off,
    /// SRTP when the peer wants it: an offer with a usable crypto line is
    /// answered with SRTP; zentrale's own offers carry a crypto line on
    /// `RTP/AVP`, so a phone may take it or answer plain.
    #[default]
    Offer,
    /// SRTP only: an offer without a usable crypto line is refused, and
    /// zentrale's own offers are `RTP/SAVP`.
    Require,
}

impl SrtpPolicy {
    /// Reads the config word (`off`, `offer`, `require`).
    pub fn parse(s: &str) -> Option<SrtpPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Some(SrtpPolicy::Off),
            "offer" => Some(SrtpPolicy::Offer),
            "require" => Some(SrtpPolicy::Require),
            _ => None,
        }
    }
}

/// A crypto suite of RFC 4568 §6.2 that zentrale speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// 80-bit tag, the usual one.
    AesCm128HmacSha1_80,
    /// 32-bit tag.
    AesCm128HmacSha1_32,
}

impl Suite {
    /// The name in `a=crypto`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Reads a suite name.
    pub fn from_name(name: &str) -> Option<Suite> {
        [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Bytes of the authentication tag after each packet.
    pub fn tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// The most an SRTP packet is longer than its RTP packet.
pub const MAX_OVERHEAD: usize = 10;

/// A master key and salt (30 bytes, `inline:` in base64).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; 16],
    pub salt: [u8; 14],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh key drawn from `rng` (the core's generator, seeded from the
    /// system's entropy in production and fixed in tests, so a call with
    /// SDES keys replays).
    pub fn random(rng: &mut SeededRng) -> MasterKey {
        let mut bytes = [0u8; 30];
        rng.fill(&mut bytes);
        MasterKey::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8; 30]) -> MasterKey {
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        key.copy_from_slice(&bytes[..16]);
        salt.copy_from_slice(&bytes[16..]);
        MasterKey { key, salt }
    }

    /// The base64 of key and salt, as written after `inline:`.
    pub fn inline(&self) -> String {
        let mut bytes = [0u8; 30];
        bytes[..16].copy_from_slice(&self.key);
        bytes[16..].copy_from_slice(&self.salt);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads the base64 of key and salt.
    pub fn from_inline(b64: &str) -> Option<MasterKey> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let bytes: [u8; 30] = bytes.try_into().ok()?;
        Some(MasterKey::from_bytes(&bytes))
    }
}

/// One `a=crypto` line we can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoLine {
    /// The tag that the answer repeats.
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
}

impl CryptoLine {
    /// Reads the value of an `a=crypto` attribute (RFC 4568 §9.1). `None`
    /// for a suite we do not speak, several keys, an MKI, session
    /// parameters or a malformed line: such a line is skipped, as §7.1.1
    /// allows.
    pub fn parse(value: &str) -> Option<CryptoLine> {
        let mut parts = value.split_ascii_whitespace();
        let tag = parts.next()?.parse::<u32>().ok()?;
        let suite = Suite::from_name(parts.next()?)?;
        let key_params = parts.next()?;
        if parts.next().is_some() || key_params.contains(';') {
            return None;
        }
        let inline = key_params.strip_prefix("inline:")?;
        let mut fields = inline.split('|');
        let key = MasterKey::from_inline(fields.next()?)?;
        for field in fields {
            // A lifetime (`2^31` or a number) is fine; an MKI (`1:4`) would
            // prefix every packet's tag and is not supported.
            if field.contains(':') {
                return None;
            }
        }
        Some(CryptoLine { tag, suite, key })
    }

    /// The attribute value to write.
    pub fn value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            self.key.inline()
        )
    }
}

/// The keys both ways of one SRTP leg: what we send with, what the peer
/// sends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrtpKeys {
    pub suite: Suite,
    /// Ours: packets we send are protected with it.
    pub local: MasterKey,
    /// The peer's: packets we receive are checked and decrypted with it.
    pub remote: MasterKey,
}

/// Why a packet was not unprotected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    #[error("packet too short for SRTP")]
    TooShort,
    #[error("authentication tag does not match")]
    BadTag,
    #[error("replayed or too old")]
    Replayed,
}

/// RFC 3711 §4.3.1 labels.
const LABEL_ENCRYPTION: u8 = 0;
const LABEL_AUTH: u8 = 1;
const LABEL_SALT: u8 = 2;

/// How far back out-of-order packets are still taken (§3.3.2's minimum is 64).
const REPLAY_WINDOW: u64 = 64;

/// The session keys of one direction (derived once).
struct SessionKeys {
    cipher: Aes128,
    salt: [u8; 14],
    auth: HmacSha1,
}

/// The per-SSRC state of one direction: rollover counter, highest sequence
/// number and the replay window.
#[derive(Clone, Copy, Debug)]
struct IndexState {
    ssrc: u32,
    roc: u32,
    /// Highest sequence number seen (`s_l`).
    last: u16,
    /// Bit `n` set: index `highest - n` was seen.
    window: u64,
}

impl IndexState {
    fn new(ssrc: u32, seq: u16) -> IndexState {
        IndexState {
            ssrc,
            roc: 0,
            last: seq,
            window: 0,
        }
    }

    fn highest(&self) -> u64 {
        (u64::from(self.roc) << 16) | u64::from(self.last)
    }

    /// RFC 3711 Appendix A: the packet index a sequence number most likely
    /// stands for, and its rollover counter.
    fn estimate(&self, seq: u16) -> (u64, u32) {
        let (s_l, roc) = (self.last, self.roc);
        let v = if s_l < 32768 {
            if seq > s_l && seq - s_l > 32768 {
                roc.wrapping_sub(1)
            } else {
                roc
            }
        } else if u32::from(s_l) > u32::from(seq) + 32768 {
            roc.wrapping_add(1)
        } else {
            roc
        };
        ((u64::from(v) << 16) | u64::from(seq), v)
    }

    /// Whether `index` may still be taken.
    fn fresh(&self, index: u64) -> bool {
        let highest = self.highest();
        if index > highest {
            return true;
        }
        let behind = highest - index;
        behind < REPLAY_WINDOW && self.window & (1 << behind) == 0
    }

    /// Records an authenticated `index`.
    fn accept(&mut self, index: u64) {
        let highest = self.highest();
        if index > highest {
            let ahead = index - highest;
            self.window = if ahead >= REPLAY_WINDOW {
                1
            } else {
                (self.window << ahead) | 1
            };
            self.roc = (index >> 16) as u32;
            self.last = index as u16;
        } else {
            self.window |= 1 << (highest - index);
        }
    }
}

/// One direction of one SRTP stream.
pub struct Context {
    suite: Suite,
    keys: SessionKeys,
    state: Option<IndexState>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("suite", &self.suite)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// RFC 3711 §4.3.3: AES-CM as the key derivation's PRF, `out.len()` bytes
/// for `label` with key derivation rate 0 (r = 0).
fn derive(master: &Aes128, master_salt: &[u8; 14], label: u8, out: &mut [u8]) {
    let mut x = [0u8; 16];
    x[..14].copy_from_slice(master_salt);
    // key_id = label || r (48 bits of zero), right-aligned under the salt.
    x[7] ^= label;
    keystream_xor(master, &x, out);
}

/// XORs `data` with the AES-CM keystream from the 16-byte counter block
/// `iv` (its last two bytes count the blocks, §4.1.1).
fn keystream_xor(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    const BATCH: usize = 16;
    let base = u16::from_be_bytes([iv[14], iv[15]]);
    let mut counter = 0u16;
    for chunk in data.chunks_mut(16 * BATCH) {
        let mut blocks = [Array::from([0u8; 16]); BATCH];
        let n = chunk.len().div_ceil(16);
        for block in blocks.iter_mut().take(n) {
            block[..14].copy_from_slice(&iv[..14]);
            block[14..].copy_from_slice(&base.wrapping_add(counter).to_be_bytes());
            counter = counter.wrapping_add(1);
        }
        cipher.encrypt_blocks(&mut blocks[..n]);
        for (bytes, block) in chunk.chunks_mut(16).zip(blocks.iter()) {
            for (b, k) in bytes.iter_mut().zip(block.iter()) {
                *b ^= k;
            }
        }
    }
}

/// The length of an RTP header with its CSRCs and extension, if `packet`
/// holds one.
fn header_len(packet: &[u8]) -> Option<usize> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= packet.len()).then_some(len)
}

impl Context {
    /// A context for one direction, keyed by `master`.
    pub fn new(suite: Suite, master: &MasterKey) -> Context {
        let master_cipher = Aes128::new(&Array::from(master.key));
        let mut key = [0u8; 16];
        let mut salt = [0u8; 14];
        let mut auth = [0u8; 20];
        derive(&master_cipher, &master.salt, LABEL_ENCRYPTION, &mut key);
        derive(&master_cipher, &master.salt, LABEL_SALT, &mut salt);
        derive(&master_cipher, &master.salt, LABEL_AUTH, &mut auth);
        let auth = <HmacSha1 as hmac::KeyInit>::new_from_slice(&auth)
            .expect("HMAC takes a key of any length");
        Context {
            suite,
            keys: SessionKeys {
                cipher: Aes128::new(&Array::from(key)),
                salt,
                auth,
            },
            state: None,
        }
    }

    /// The packet's counter block (§4.1.1): salt ⊕ SSRC ⊕ index, shifted 16 bits.
    fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.keys.salt);
        for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= s;
        }
        for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
            *b ^= i;
        }
        iv
    }

    fn mac(&self, authenticated: &[u8], roc: u32) -> HmacSha1 {
        let mut mac = self.keys.auth.clone();
        mac.update(authenticated);
        mac.update(&roc.to_be_bytes());
        mac
    }

    /// The index state for `ssrc`: a new SSRC (the peer restarted its
    /// stream) starts over at rollover counter 0, as RFC 4568 §6.4's
    /// late binding has it.
    fn state_for(&mut self, ssrc: u32, seq: u16) -> IndexState {
        match self.state {
            Some(s) if s.ssrc == ssrc => s,
            _ => IndexState::new(ssrc, seq),
        }
    }

    /// Protects the RTP packet in `buf[..len]` in place: encrypts its
    /// payload and appends the tag. `buf` needs [`Suite::tag_len`] bytes
    /// beyond `len`. Returns the SRTP length, `None` if `buf[..len]` is
    /// not an RTP packet or `buf` has no room.
    pub fn protect(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        let tag_len = self.suite.tag_len();
        let out_len = len + tag_len;
        if buf.len() < out_len {
            return None;
        }
        let hlen = header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let mut state = self.state_for(ssrc, seq);
        let (index, roc) = state.estimate(seq);
        let iv = self.iv(ssrc, index);
        keystream_xor(&self.keys.cipher, &iv, &mut buf[hlen..len]);
        let tag = self.mac(&buf[..len], roc).finalize().into_bytes();
        buf[len..out_len].copy_from_slice(&tag[..tag_len]);
        if state.fresh(index) {
            state.accept(index);
        }
        self.state = Some(state);
        Some(out_len)
    }

    /// Checks and decrypts the SRTP packet `buf` in place. Returns the
    /// length of the RTP packet now at its start. A packet that fails is
    /// left as it was and changes no state.
    pub fn unprotect(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.suite.tag_len();
        let len = buf.len().checked_sub(tag_len).ok_or(SrtpError::TooShort)?;
        let hlen = header_len(&buf[..len]).ok_or(SrtpError::TooShort)?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let mut state = self.state_for(ssrc, seq);
        let (index, roc) = state.estimate(seq);
        if !state.fresh(index) {
            return Err(SrtpError::Replayed);
        }
        let (packet, tag) = buf.split_at_mut(len);
        self.mac(packet, roc)
            .verify_truncated_left(tag)
            .map_err(|_| SrtpError::BadTag)?;
        let iv = self.iv(ssrc, index);
        keystream_xor(&self.keys.cipher, &iv, &mut packet[hlen..]);
        state.accept(index);
        self.state = Some(state);
        Ok(len)
    }
}

/// Both directions of one leg.
#[derive(Debug)]
pub struct SrtpSession {
    /// Protects what we send.
    pub outbound: Context,
    /// Unprotects what the peer sends.
    pub inbound: Context,
}

impl SrtpSession {
    /// The contexts for `keys`.
    pub fn new(keys: &SrtpKeys) -> SrtpSession {
        SrtpSession {
            outbound: Context::new(keys.suite, &keys.local),
            inbound: Context::new(keys.suite, &keys.remote),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn key16(s: &str) -> [u8; 16] {
        unhex(s).try_into().unwrap()
    }

    fn salt14(s: &str) -> [u8; 14] {
        unhex(s).try_into().unwrap()
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream.
    #[test]
    fn aes_cm_keystream_matches_rfc3711_b2() {
        let cipher = Aes128::new(&Array::from(key16("2B7E151628AED2A6ABF7158809CF4F3C")));
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&salt14("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
        let mut stream = vec![0u8; 48];
        keystream_xor(&cipher, &iv, &mut stream);
        assert_eq!(
            stream,
            unhex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB \
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
        // The same through a packet context: SSRC 0, index 0.
        let ctx = Context {
            suite: Suite::AesCm128HmacSha1_80,
            keys: SessionKeys {
                cipher,
                salt: salt14("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
                auth: <HmacSha1 as hmac::KeyInit>::new_from_slice(&[0; 20]).unwrap(),
            },
            state: None,
        };
        assert_eq!(ctx.iv(0, 0), iv);
        // Counter FEFF..FF01 (blocks 0xFEFF on), from the same vector.
        let mut far = vec![0u8; 48];
        let mut iv_far = iv;
        iv_far[14..].copy_from_slice(&0xFEFFu16.to_be_bytes());
        keystream_xor(&ctx.keys.cipher, &iv_far, &mut far);
        assert_eq!(
            far,
            unhex(
                "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE \
                 6A2CC3787889374FBEB4C81B17BA6C44"
            )
        );
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn key_derivation_matches_rfc3711_b3() {
        let master = Aes128::new(&Array::from(key16("E1F97A0D3E018BE0D64FA32C06DE4139")));
        let salt = salt14("0EC675AD498AFEEBB6960B3AABE6");
        let mut key = [0u8; 16];
        derive(&master, &salt, LABEL_ENCRYPTION, &mut key);
        assert_eq!(key.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        derive(&master, &salt, LABEL_SALT, &mut s);
        assert_eq!(s.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 94];
        derive(&master, &salt, LABEL_AUTH, &mut auth);
        assert_eq!(
            auth.to_vec(),
            unhex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE \
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25 \
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn protect(tx: &mut Context, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + MAX_OVERHEAD, 0);
        let n = tx.protect(&mut buf, plain.len()).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn round_trip_across_a_sequence_wrap() {
        let key = MasterKey::random(&mut SeededRng::from_u64(1));
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let (mut tx, mut rx) = (Context::new(suite, &key), Context::new(suite, &key));
            for i in 0..300u32 {
                let seq = 65_400u16.wrapping_add(i as u16);
                let plain = rtp(seq, 0x1234_5678, &[i as u8; 160]);
                let mut srtp = protect(&mut tx, &plain);
                assert_eq!(srtp.len(), plain.len() + suite.tag_len());
                assert_ne!(srtp[12..172], plain[12..]);
                let n = rx.unprotect(&mut srtp).unwrap();
                assert_eq!(&srtp[..n], &plain[..], "packet {i}");
            }
            assert_eq!(rx.state.unwrap().roc, 1);
        }
    }

    #[test]
    fn tampering_replay_and_wrong_key_are_refused() {
        let mut rng = SeededRng::from_u64(2);
        let key = MasterKey::random(&mut rng);
        let suite = Suite::AesCm128HmacSha1_80;
        let (mut tx, mut rx) = (Context::new(suite, &key), Context::new(suite, &key));
        let first = protect(&mut tx, &rtp(10, 7, &[1; 160]));
        let second = protect(&mut tx, &rtp(11, 7, &[2; 160]));
        let mut tampered = second.clone();
        tampered[20] ^= 1;
        assert_eq!(rx.unprotect(&mut tampered.clone()), Err(SrtpError::BadTag));
        assert_eq!(rx.unprotect(&mut second.clone()), Ok(172));
        // Late but inside the window: taken once, then a replay.
        assert_eq!(rx.unprotect(&mut first.clone()), Ok(172));
        assert_eq!(rx.unprotect(&mut first.clone()), Err(SrtpError::Replayed));
        assert_eq!(rx.unprotect(&mut second.clone()), Err(SrtpError::Replayed));
        let mut other = Context::new(suite, &MasterKey::random(&mut rng));
        assert_eq!(other.unprotect(&mut second.clone()), Err(SrtpError::BadTag));
        assert_eq!(rx.unprotect(&mut [0x80; 15]), Err(SrtpError::TooShort));
    }

    #[test]
    fn packets_older_than_the_window_are_refused() {
        let key = MasterKey::random(&mut SeededRng::from_u64(3));
        let suite = Suite::AesCm128HmacSha1_80;
        let (mut tx, mut rx) = (Context::new(suite, &key), Context::new(suite, &key));
        let old = protect(&mut tx, &rtp(1, 7, &[0; 20]));
        let mut newer = protect(&mut tx, &rtp(1 + REPLAY_WINDOW as u16, 7, &[0; 20]));
        rx.unprotect(&mut newer).unwrap();
        assert_eq!(rx.unprotect(&mut old.clone()), Err(SrtpError::Replayed));
    }

    #[test]
    fn crypto_lines() {
        let line = CryptoLine::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20",
        )
        .unwrap();
        assert_eq!(line.tag, 1);
        assert_eq!(line.suite, Suite::AesCm128HmacSha1_80);
        assert_eq!(
            CryptoLine::parse(&line.value()).unwrap(),
            CryptoLine { ..line.clone() }
        );
        for bad in [
            "1 AES_256_CM_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz UNENCRYPTED_SRTP",
            "x AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "1 AES_CM_128_HMAC_SHA1_80",
        ] {
            assert_eq!(CryptoLine::parse(bad), None, "{bad}");
        }
    }
}

//! The one random number generator of the core: tags, Call-IDs, branches,
//! CSeqs, nonces and SDP session ids are drawn from it.
//!
//! The core never asks the operating system for entropy. The shell
//! (`daemon`) seeds a [`SeededRng`] from the system's entropy once at start
//! and hands it to the core; a test or the fuzz harness passes a fixed
//! seed, so a run replays with the same identifiers. It is ChaCha12
//! (`rand`'s `StdRng`): identifiers that a peer sees (tags, nonces) must
//! not be guessable from earlier ones.
//!
//! Parts that keep state of their own and draw often (the digest server's
//! secret and nonces, a dialog's branches) get a [`SeededRng::fork`]: a
//! generator seeded from this one, so one seed still decides everything.
//!
//! ```
//! use zentrale::rng::SeededRng;
//! let mut a = SeededRng::from_u64(7);
//! let mut b = SeededRng::from_u64(7);
//! assert_eq!(a.token(), b.token());
//! assert_eq!(a.token().len(), 16);
//! ```

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A seeded, cryptographically strong generator. See the module docs.
#[derive(Debug)]
pub struct SeededRng(StdRng);

impl SeededRng {
    /// A generator seeded with `seed` (32 bytes of entropy in production).
    pub fn from_seed(seed: [u8; 32]) -> SeededRng {
        SeededRng(StdRng::from_seed(seed))
    }

    /// A generator for tests and replays: the same `seed`, the same draws.
    pub fn from_u64(seed: u64) -> SeededRng {
        SeededRng(StdRng::seed_from_u64(seed))
    }

    /// A generator seeded from the operating system's entropy. Only the
    /// shell (and standalone uses outside the core) call this.
    pub fn from_entropy() -> SeededRng {
        SeededRng::from_seed(rand::random())
    }

    /// A generator of its own, seeded from this one.
    pub fn fork(&mut self) -> SeededRng {
        let mut seed = [0u8; 32];
        self.0.fill_bytes(&mut seed);
        SeededRng::from_seed(seed)
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// Fills `bytes`.
    pub fn fill(&mut self, bytes: &mut [u8]) {
        self.0.fill_bytes(bytes);
    }

    /// 16 lower-case hex digits (64 bits): a tag, a branch, a Call-ID's
    /// local part.
    pub fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

/// The `n`th token of a stream keyed by `key` (drawn from a [`SeededRng`]):
/// distinct for distinct `n` under one key, and unguessable without it.
/// A dialog numbers its requests' branches this way, so it keeps eight
/// bytes instead of a generator of its own.
pub fn keyed_token(key: u64, n: u64) -> String {
    // SplitMix64's finaliser: a bijection of the 64-bit input.
    let mut z = key.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    format!("{:016x}", z ^ (z >> 31))
}

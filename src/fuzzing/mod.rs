//! The fuzz harness: what the `cargo fuzz` targets in `fuzz/` run, and
//! what the test suite replays in a bounded smoke run (see `tests.rs`
//! here), so both drive the same functions.
//!
//! Three targets, each a function from fuzz input to nothing; a panic is
//! a finding:
//!
//! - [`screening::run`]: raw octets through [`crate::sip::screen`] (UDP
//!   and TCP framing), and the answers it builds must be SIP.
//! - [`dialogs::run`]: a screened INVITE into [`crate::call::Dialog`] and
//!   every in-dialog request built from it, for the caller leg; a
//!   screened response as the agent's answer to our INVITE, for the agent
//!   leg. A dialog that was made must build its requests.
//! - [`core::run`]: the daemon's sans-IO core ([`crate::daemon::core::Core`])
//!   fed a sequence of messages and time steps decoded from the input
//!   ([`core::Op`]): calls from a trunk, agents that register and answer,
//!   mutated headers, media events, the clock moving so every timer fires
//!   (timer H included), and shutdown. This is the target that finds the
//!   remote crash of issue 16 (an INVITE with `Contact: <sip:caller@>`).
//!
//! Nothing leaves the process: the core's transmits are read and dropped,
//! its media handle has no worker ([`crate::media::engine::detached`]).
//! Every address in a generated message is rewritten into 127.0.0.0/8 all
//! the same ([`loopback_only`]).
//!
//! Built for the lib's tests and with the `fuzzing` feature (which the
//! `fuzz/` crate turns on); not part of the daemon.

pub mod core;
pub mod dialogs;
pub mod screening;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};

/// Reads fuzz input front to back; past its end every read is zero, so
/// any input decodes to something.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// One of `n` choices (`n` > 0).
    pub fn pick(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }

    /// Up to `max` octets, the count taken from the input first.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.byte()).min(max).min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Rewrites every IP address literal in `text` that is not in
/// 127.0.0.0/8 (any IPv6 address included) to `127.0.0.1`: fuzzed
/// messages and SDP bodies may only ever name loopback.
///
/// A candidate is a run of hex digits, `.`, `:` and brackets; inside it
/// any four dot-separated numbers forming an address count, so
/// `10.0.0.1.5` does not slip through.
///
/// ```
/// use zentrale::fuzzing::loopback_only;
/// assert_eq!(loopback_only(b"c=IN IP4 10.1.2.3\r\n"), b"c=IN IP4 127.0.0.1\r\n");
/// assert_eq!(loopback_only(b"sip:a@127.0.0.9:5060"), b"sip:a@127.0.0.9:5060");
/// assert_eq!(loopback_only(b"[2001:db8::1]:5060"), b"[127.0.0.1]:5060");
/// ```
pub fn loopback_only(text: &[u8]) -> Vec<u8> {
    let candidate = |b: u8| b.is_ascii_hexdigit() || matches!(b, b'.' | b':');
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut i = 0;
    while i < text.len() {
        if !candidate(text[i]) {
            out.push(text[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && candidate(text[i]) {
            i += 1;
        }
        let run = &text[start..i];
        if names_foreign_address(run) {
            // Keep a `:port` after an IPv4 address; an IPv6 run has none.
            let keep = std::str::from_utf8(run)
                .ok()
                .filter(|r| r.matches(':').count() == 1)
                .and_then(|r| r.split_once(':'))
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map(|(_, port)| port);
            out.extend_from_slice(b"127.0.0.1");
            if let Some(port) = keep {
                out.push(b':');
                out.extend_from_slice(port.as_bytes());
            }
        } else {
            out.extend_from_slice(run);
        }
    }
    out
}

fn names_foreign_address(run: &[u8]) -> bool {
    let Ok(run) = std::str::from_utf8(run) else {
        return false;
    };
    let loopback = |ip: Ipv4Addr| ip.octets()[0] == 127;
    if run.contains(':') && run.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    // Any IPv6 address inside the run (a port or junk around it).
    if run.matches(':').count() >= 2 {
        if run.len() > 64 {
            // Too long to search cheaply: treat as an address.
            return true;
        }
        for (s, _) in run.char_indices() {
            for (e, _) in run.char_indices().rev() {
                if e > s && run[s..e].parse::<std::net::Ipv6Addr>().is_ok() {
                    return true;
                }
            }
        }
    }
    for piece in run.split(':') {
        let parts: Vec<&str> = piece.split('.').collect();
        for window in parts.windows(4) {
            if let Ok(ip) = window.join(".").parse::<Ipv4Addr>()
                && !loopback(ip)
            {
                return true;
            }
        }
        if let Ok(IpAddr::V4(ip)) = piece.parse::<IpAddr>()
            && !loopback(ip)
        {
            return true;
        }
    }
    false
}

/// A deterministic pseudo-random source for the smoke run's mutations
/// (xorshift64*), so a failure names its seed and replays.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Tokens the mutator splices in: the shapes that broke SIP stacks before
/// (empty hosts, lone brackets, huge numbers, quotes, list commas).
pub const DICTIONARY: &[&str] = &[
    "",
    "<sip:caller@>",
    "<sip:>",
    "sip:",
    "*",
    "<sip:a@127.0.0.1:0>",
    "<sip:a@127.0.0.1:99999>",
    "<sip:a@[::1>",
    "<tel:+4956112345>",
    "\"a<b>\" <sip:a@127.0.0.1>",
    "<sip:a@127.0.0.1;lr>, ,<sip:b@127.0.0.1>",
    "<sip:a@127.0.0.1?X=y>",
    "<sip:@127.0.0.1>",
    "<sip:a@bad_host>",
    "4294967296",
    "2147483648",
    "-1",
    "0",
    ";tag=",
    ";lr",
    "\"",
    "<",
    ">",
    ",",
    ";",
    "\r\n",
    "\r\n\r\n",
    " ",
    "%00",
    "\u{fffd}",
    "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK;rport=",
    "SIP/2.0/TCP 127.0.0.1",
    "application/sdp",
    "multipart/mixed;boundary=x",
    "timer",
    "100rel",
    "90;refresher=uac",
    "m=audio 0 RTP/AVP 0",
    "c=IN IP4 127.0.0.1",
    "a=sendonly",
    "a=inactive",
    "a=rtpmap:101 telephone-event/8000",
];

/// One mutation of `data`: flip, insert, delete, duplicate a span or
/// splice a [`DICTIONARY`] token, as libFuzzer would, for the smoke run.
pub fn mutate(data: &mut Vec<u8>, rng: &mut Rng) {
    let len = data.len();
    match rng.below(6) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(len + 1);
            data.insert(i, rng.next_u64() as u8);
        }
        2 if len > 0 => {
            let i = rng.below(len);
            let n = rng.below(16).min(len - i);
            data.drain(i..i + n);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            let n = rng.below(32).min(len - i);
            let span: Vec<u8> = data[i..i + n].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, span);
        }
        4 => {
            let token = DICTIONARY[rng.below(DICTIONARY.len())].as_bytes();
            let i = rng.below(len + 1);
            data.splice(i..i, token.iter().copied());
        }
        _ if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        _ => data.push(rng.next_u64() as u8),
    }
}

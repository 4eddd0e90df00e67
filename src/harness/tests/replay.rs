//! A run replays from its seed: the same calls on two cores seeded alike
//! give the same identifiers and keys.

use super::{SEC, trace};
use crate::harness::Harness;
use crate::harness::phone::Answer;
use crate::media::srtp::SrtpPolicy;

/// The `a=crypto` line of zentrale's INVITE to agent 1001 for the `n`th
/// call to the Kassel hotline, on a core whose agents get SRTP offered.
fn sdes_lines(calls: usize) -> Vec<String> {
    let mut h = Harness::new(|c| {
        for agent in &mut c.agents {
            agent.srtp = SrtpPolicy::Offer;
        }
    });
    h.register("1001", Answer::After(SEC));
    let mut lines = Vec::new();
    for n in 0..calls {
        let c = h.call("0561115");
        let offered = h.run_within(30 * SEC, |h| h.phone("1001").offers.len() > n);
        assert!(offered, "call {n} reached no agent\n{}", trace(&h));
        let sdp = h.phone("1001").offers[n].sdp().to_owned();
        let crypto = sdp
            .lines()
            .find(|l| l.starts_with("a=crypto:"))
            .unwrap_or_else(|| panic!("no SDES key offered to the agent:\n{sdp}"));
        lines.push(crypto.to_owned());
        h.hang_up(c);
        // Past the wrap-up, so the agent is free for the next call.
        h.run_for(120 * SEC);
    }
    lines
}

/// The SRTP master keys zentrale offers are drawn from the core's seeded
/// generator: two cores with the same seed offer the same keys call for
/// call, and each leg still gets a key of its own.
#[test]
fn two_cores_with_the_same_seed_offer_the_same_sdes_keys() {
    let first = sdes_lines(2);
    let second = sdes_lines(2);
    assert_eq!(first, second, "the same seed, different keys");
    assert_ne!(first[0], first[1], "two legs got the same key");
}

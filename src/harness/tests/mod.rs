//! The call flows that depend on time, on the virtual network: each runs
//! minutes to hours of call time in milliseconds.

mod calls;
mod hour;
mod replay;
mod ringing;
mod routing;
mod sessions;

use std::time::{Duration, Instant};

use super::Harness;
use super::phone::Offer;

const SEC: Duration = Duration::from_secs(1);

/// Every offer to the phones `exts`, in the order they came: (extension, offer).
fn offers<'a>(h: &'a Harness, exts: &[&'a str]) -> Vec<(&'a str, &'a Offer)> {
    let mut all: Vec<(&str, &Offer)> = exts
        .iter()
        .flat_map(|e| h.phone(e).offers.iter().map(move |o| (*e, o)))
        .collect();
    all.sort_by_key(|(_, o)| o.received_at);
    all
}

/// Fails unless `a` and `b` are no further apart than `tolerance`.
fn near(a: Duration, b: Duration, tolerance: Duration) -> bool {
    a.abs_diff(b) <= tolerance
}

/// The SIP messages of the run, for a failure message.
fn trace(h: &Harness) -> String {
    h.sip
        .iter()
        .map(|r| {
            format!(
                "{:>10.3?} {} -> {} {}",
                h.since_start(r.at),
                r.from,
                r.to,
                r.line
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Time from `a` to `b`, for readable assertions.
fn between(a: Instant, b: Instant) -> Duration {
    b.saturating_duration_since(a)
}

//! Issue 16's surge against the real binary, as a load script that prints
//! its figures: SIPp sends `SURGE_RATE` calls/s (default 200) to Kassel's
//! 115 for `SURGE_SECONDS` (default 15) while a Krefeld caller talks to
//! Krefeld agent 2001 through zentrale's relay and Krefeld callers call in.
//!
//! The daemon runs the demo config with 1000 RTP ports (500 legs, as the
//! demo) and Kassel's surge limit lowered to `SURGE_KASSEL_MAX_CALLS`
//! (default 100) so that all three answers show: the normal greeting, the
//! busy prompt, and 486 once Kassel's call slots are full.
//!
//! ```sh
//! cargo bench --bench surge                      # 200 calls/s for 15 s
//! SURGE_RATE=100 SURGE_SECONDS=5 cargo bench --bench surge
//! ```
//!
//! Only 127.0.0.1. Bounded: SIPp places rate * seconds calls and is killed
//! 55 s after its last call at the latest. Under `cargo test` (`--test`)
//! it does nothing; tests/media_abuse.rs runs a short surge.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let filter = args.iter().find(|a| *a != "--bench" && !a.starts_with('-'));
    if filter.is_some_and(|f| !"surge".contains(f.as_str())) {
        return;
    }
    let rate = env_or("SURGE_RATE", 200).clamp(1, 500);
    let seconds = env_or("SURGE_SECONDS", 15).clamp(1, 60);
    let kassel_max = env_or("SURGE_KASSEL_MAX_CALLS", 100).max(1);
    let (d, _dialplans) = common::surge::start_daemon(kassel_max, 1000);
    let figures = common::surge::run(&d, rate, seconds, 10);
    println!("{}", figures.report());
    let metrics = d.metrics();
    for line in metrics.lines().filter(|l| {
        l.starts_with("zentrale_calls_refused_total")
            || l.starts_with("zentrale_surge_rejected_total")
            || l.starts_with("zentrale_sip_rejected_total")
            || l.starts_with("zentrale_sip_responses_total")
    }) {
        println!("  {line}");
    }
}

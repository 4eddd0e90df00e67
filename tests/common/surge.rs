//! The surge of issue 16 as a reusable run: SIPp floods Kassel's 115 while
//! a Krefeld caller talks to a Krefeld agent and more Krefeld callers call
//! in. Used by the short test (tests/media_abuse.rs) and the full load
//! script (benches/surge.rs), which prints [`SurgeFigures`].

use std::time::{Duration, Instant};

use super::{Caller, Daemon, Options, Phone, TempDir, metric_value, repo, sipp};

/// What a surge run measured.
#[derive(Debug, Default)]
pub struct SurgeFigures {
    pub rate: u32,
    pub seconds: u32,
    /// SIPp calls placed, and those that failed in SIPp's eyes (no clean
    /// answer: timeouts, unexpected messages).
    pub placed: u64,
    pub sipp_failed: u64,
    /// Kassel callers answered with the busy prompt
    /// (`zentrale_surge_rejected_total`).
    pub kassel_busy: f64,
    /// Kassel callers refused with 486 because Kassel's call slots were full.
    pub kassel_refused: f64,
    /// Refusals of any other tenant, or for want of RTP ports (must be 0).
    pub others_refused: f64,
    pub no_rtp_port: f64,
    /// 5xx responses zentrale sent.
    pub responses_5xx: f64,
    /// Krefeld callers placed during the surge, and those answered 200.
    pub krefeld_calls: usize,
    pub krefeld_answered: usize,
    /// The connected call (Krefeld caller and agent 2001): packets the
    /// caller got from the agent during the surge, packets lost (sequence
    /// gaps), the largest gap between two packets and the 99th percentile.
    pub connected_packets: usize,
    pub connected_lost: usize,
    pub connected_max_gap: Duration,
    pub connected_p99_gap: Duration,
    /// The agent's state after the surge (`available`, `talking`, ...).
    pub agent_state: String,
}

impl SurgeFigures {
    /// One line per figure, for the load script.
    pub fn report(&self) -> String {
        format!(
            "surge: {} calls/s on 115 (Kassel) for {} s, {} placed, {} failed in SIPp\n\
             kassel: {} answered with the busy prompt, {} refused 486 (slots full)\n\
             others: {} refused, {} for want of RTP ports, {} 5xx responses in all\n\
             krefeld during the surge: {}/{} calls answered 200\n\
             connected call (krefeld caller <-> agent 2001): {} packets, {} lost, largest gap {:.1} ms, p99 gap {:.1} ms; agent afterwards: {}",
            self.rate,
            self.seconds,
            self.placed,
            self.sipp_failed,
            self.kassel_busy,
            self.kassel_refused,
            self.others_refused,
            self.no_rtp_port,
            self.responses_5xx,
            self.krefeld_answered,
            self.krefeld_calls,
            self.connected_packets,
            self.connected_lost,
            self.connected_max_gap.as_secs_f64() * 1e3,
            self.connected_p99_gap.as_secs_f64() * 1e3,
            self.agent_state,
        )
    }
}

/// The demo config with Kassel's surge limit at `kassel_max_calls` (so the
/// busy prompt is reached) and `rtp_ports` RTP ports. Returns the daemon
/// and the dir holding the edited dialplan (keep it alive).
pub fn start_daemon(kassel_max_calls: u32, rtp_ports: u16) -> (Daemon, TempDir) {
    let dir = TempDir::new("surge-dialplan");
    let original = std::fs::read_to_string(repo().join("dialplans/kassel.yaml"))
        .expect("reading dialplans/kassel.yaml");
    let kassel = super::replace_once(
        &original,
        "  max_calls: 300 ",
        &format!("  max_calls: {kassel_max_calls} "),
        &repo().join("dialplans/kassel.yaml"),
    );
    let path = dir.path().join("kassel.yaml");
    std::fs::write(&path, kassel).expect("writing the edited Kassel dialplan");
    let d = Daemon::start_with(Options {
        edits: vec![(
            "dialplan: dialplans/kassel.yaml".into(),
            format!("dialplan: {}", path.display()),
        )],
        rtp_port_count: Some(rtp_ports),
        ..Options::default()
    });
    (d, dir)
}

/// Runs the surge on `d` (see [`start_daemon`]): `rate` calls/s on 115 for
/// `seconds`, `krefeld_calls` Krefeld callers spread over it.
pub fn run(d: &Daemon, rate: u32, seconds: u32, krefeld_calls: usize) -> SurgeFigures {
    // The connected call: a Krefeld caller presses 1 (Kfz) and agent 2001
    // answers; both talk RTP through zentrale's relay.
    let mut agent = Phone::registered(d, "2001");
    let mut caller = Caller::new(d, "02151860");
    caller.connect(d);
    // The menu listens once the greeting is over: press 1 until offered.
    let mut offer = None;
    for _ in 0..15 {
        caller.press_rtp(1);
        offer = agent.offer(Duration::from_millis(700));
        if offer.is_some() {
            break;
        }
    }
    let offer = offer.unwrap_or_else(|| d.fail("agent 2001 got no offer for the Krefeld caller"));
    agent.answer(d, &offer);
    std::thread::sleep(Duration::from_millis(500));

    let total = u64::from(rate) * u64::from(seconds);
    let surge_started = Instant::now();
    let surge = std::thread::scope(|scope| {
        let sipp_run = scope.spawn(|| {
            sipp(
                d,
                "uac_surge",
                &[
                    "-s",
                    "115",
                    "-m",
                    &total.to_string(),
                    "-r",
                    &rate.to_string(),
                    "-l",
                    &total.to_string(),
                ],
                Duration::from_secs(u64::from(seconds) + 40),
            )
        });
        // Krefeld callers call in while the surge runs.
        let mut answered = 0;
        let gap = Duration::from_secs(u64::from(seconds)) / (krefeld_calls as u32 + 1);
        for _ in 0..krefeld_calls {
            std::thread::sleep(gap);
            let mut c = Caller::new(d, "02151860");
            let ok = c.call(d);
            if ok.status() == Some(200) {
                answered += 1;
                c.hang_up(d);
            } else {
                eprintln!("krefeld caller during the surge got {}", ok.start);
            }
        }
        let run = sipp_run.join().expect("the sipp thread");
        (run, answered)
    });
    let surge_ended = surge_started + Duration::from_secs(u64::from(seconds));
    let (run, krefeld_answered) = surge;

    // The agent's audio as the caller heard it during the surge.
    let heard: Vec<_> = caller
        .rtp
        .got()
        .into_iter()
        .filter(|p| {
            p.at >= surge_started && p.at <= surge_ended && p.fill == Some(super::AGENT_FILL)
        })
        .collect();
    let mut lost = 0usize;
    let mut gaps: Vec<Duration> = Vec::new();
    for w in heard.windows(2) {
        lost += usize::from(w[1].seq.wrapping_sub(w[0].seq).saturating_sub(1));
        gaps.push(w[1].at.duration_since(w[0].at));
    }
    gaps.sort();
    let p99 = gaps
        .get(gaps.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    let metrics = d.metrics();
    let value = |name: &str| metric_value(&metrics, name).unwrap_or(0.0);
    let kassel_refused =
        value("zentrale_calls_refused_total{tenant=\"kassel\",reason=\"tenant_max\"}")
            + value("zentrale_calls_refused_total{tenant=\"kassel\",reason=\"shared_full\"}");
    let all_refused = super::metric_sum(&metrics, "zentrale_calls_refused_total");
    let agents = super::http_get(d.http, "/api/v1/agents", Duration::from_secs(2))
        .map(|(_, body)| body)
        .unwrap_or_default();
    let agent_state = serde_json::from_str::<serde_json::Value>(&agents)
        .ok()
        .and_then(|v| {
            let list = v
                .as_array()
                .cloned()
                .or_else(|| v["agents"].as_array().cloned())?;
            list.iter()
                .find(|a| a["id"] == "2001" || a["extension"] == "2001")
                .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
        })
        .unwrap_or_default();
    caller.hang_up(d);
    SurgeFigures {
        rate,
        seconds,
        placed: run.successful + run.failed,
        sipp_failed: run.failed,
        kassel_busy: super::metric_sum(&metrics, "zentrale_surge_rejected_total"),
        kassel_refused,
        others_refused: all_refused - kassel_refused,
        no_rtp_port: value("zentrale_sip_rejected_total{reason=\"no_rtp_port\"}"),
        responses_5xx: value("zentrale_sip_responses_total{class=\"5xx\"}"),
        krefeld_calls,
        krefeld_answered,
        connected_packets: heard.len(),
        connected_lost: lost,
        connected_max_gap: gaps.last().copied().unwrap_or_default(),
        connected_p99_gap: p99,
        agent_state,
    }
}

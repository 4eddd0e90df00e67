//! The running daemon: sockets, the core task, the media worker and the
//! HTTP listener, wired together.
//!
//! One task owns the [`core::Core`] and the first UDP socket and reads it
//! directly (no channel hop for the common case). TCP connections and any
//! further UDP sockets feed the core through a bounded channel; when it is
//! full, TCP readers wait (back-pressure) and extra UDP sockets drop, as a
//! busy UDP endpoint would.

pub mod clock;
pub mod core;
pub mod reload;
pub mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use crate::acd::Acd;
use crate::api::ReloadRequest;
use crate::config::{Config, Overrides};
use crate::media::engine::{self, EngineConfig};
use crate::media::ports::PortPool;
use crate::media::prompt::PromptLibrary;
use crate::metrics::Metrics;
use crate::sip::transaction::Transmit;
use crate::udp::Inbox;
use core::acd_spec;
use transport::batch::SipUdp;
use transport::{Inbound, Transports};

/// How the daemon was started, beyond the config itself: what a reload
/// needs to read the config again, and the `--clock`.
#[derive(Debug, Clone, Default)]
pub struct Startup {
    /// The main config file, read again on reload.
    pub config_path: PathBuf,
    /// The command-line overrides, applied again on reload.
    pub overrides: Overrides,
    /// `--clock`: the wall-clock time to assume at start (`None`: real time).
    pub clock: Option<jiff::Timestamp>,
}

/// Starts everything and runs until SIGINT or SIGTERM.
pub async fn run(config: Config, startup: Startup) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let prompts = PromptLibrary::load(&config.sounds_dir, config.sound_names())
        .context("loading the prompts")?;
    let mut metrics = Metrics::new();
    let (inbound_tx, mut inbound_rx) = mpsc::channel::<Inbound>(4096);
    let transports = Transports::bind(&config, inbound_tx)
        .await
        .context("opening the SIP listeners")?;
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("opening the HTTP listener on {}", config.http.listen))?;
    let ports =
        PortPool::new(config.rtp.first_port, config.rtp.last_port).context("the RTP port range")?;
    let (media, mut media_events) = engine::start(EngineConfig {
        rtp_timeout: config.rtp.timeout,
        tick: Duration::from_millis(20),
        recycle: Some(ports.recycler()),
    });
    let started = Instant::now();
    let acd = Arc::new(Acd::new(acd_spec(&config), started).context("the ACD configuration")?);
    metrics.watch_media(media.counters());
    metrics.watch_acd(acd.clone());
    let cdr = reload::start_cdr(&config, &metrics.cdr_records)?;
    let metrics = Arc::new(metrics);
    let acd_changed = Arc::new(Notify::new());
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    tokio::spawn(crate::api::serve(
        http,
        crate::api::ApiState {
            metrics: metrics.clone(),
            acd: acd.clone(),
            acd_changed: acd_changed.clone(),
            reload: reload_tx,
        },
    ));
    let wall = clock::WallClock::new(started, startup.clock);
    if let Some(at) = startup.clock {
        info!(clock = %at, "service hours follow --clock, not the real time");
    }
    let mut core = core::Core::new(
        config.clone(),
        prompts,
        media,
        ports,
        metrics,
        acd,
        wall,
        started,
    );
    if let Some(c) = &config.cdr {
        info!(path = %c.path.display(), "call records are appended to this file");
    }
    core.set_cdr(cdr);
    info!(
        udp = ?config.sip.udp, tcp = ?config.sip.tcp, http = %config.http.listen,
        rtp = %format!("{}-{}", config.rtp.first_port, config.rtp.last_port),
        "zentrale is up"
    );

    let mut out: Vec<Transmit> = Vec::with_capacity(16);
    let mut inbox = transport::batch::inbox();
    let primary = transports.primary_udp();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let (loaded_tx, mut loaded_rx) = mpsc::channel::<(reload::Loaded, Option<ReloadRequest>)>(4);
    // One timer, moved when the core's next deadline moves: registering a
    // fresh tokio timer per loop turn showed up in the per-call CPU profile.
    let timer = tokio::time::sleep_until(idle_deadline().into());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let deadline = core
            .poll_timeout()
            .map(|d| on_grid(d, started, Instant::now()));
        if needs_rearm(armed, deadline) {
            timer
                .as_mut()
                .reset(deadline.unwrap_or_else(idle_deadline).into());
            armed = deadline;
        }
        tokio::select! {
            // Fixed order: signalling first, and no random number per turn.
            biased;
            r = read(&primary, &mut inbox) => {
                deliver(r, &inbox, &transports, &mut core, &mut out);
            }
            Some(msg) = inbound_rx.recv() => {
                core.on_message(&msg.data, msg.peer, Instant::now(), &mut out);
            }
            Some(ev) = media_events.recv() => {
                core.on_media_event(ev, Instant::now(), &mut out);
            }
            _ = acd_changed.notified() => {
                core.acd_changed(Instant::now(), &mut out);
            }
            _ = &mut timer, if armed.is_some() => {
                core.handle_timeout(Instant::now(), &mut out);
                // The timer has fired; make sure the next turn re-arms it.
                armed = None;
            }
            _ = sighup.recv() => spawn_load(&startup, &core, &loaded_tx, None),
            Some(reply) = reload_rx.recv() => spawn_load(&startup, &core, &loaded_tx, Some(reply)),
            Some((loaded, reply)) = loaded_rx.recv() => {
                let trigger = if reply.is_some() { "api" } else { "SIGHUP" };
                let result = reload::apply(loaded, &mut core, trigger);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
                core.acd_changed(Instant::now(), &mut out);
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
        transports.send_all(&mut out);
    }

    let calls = core.hang_up_all(Instant::now(), &mut out);
    info!(calls, "shutting down: hanging up calls");
    transports.send_all(&mut out);
    // Give the BYEs a moment to be answered, without waiting for stragglers.
    let until = Instant::now() + Duration::from_secs(2);
    while core.active_calls() > 0 && Instant::now() < until {
        let deadline = core.poll_timeout().map(|d| d.min(until)).or(Some(until));
        tokio::select! {
            r = read(&primary, &mut inbox) => {
                deliver(r, &inbox, &transports, &mut core, &mut out);
            }
            Some(msg) = inbound_rx.recv() => core.on_message(&msg.data, msg.peer, Instant::now(), &mut out),
            _ = sleep_until(deadline) => core.handle_timeout(Instant::now(), &mut out),
        }
        transports.send_all(&mut out);
    }
    if core.active_calls() > 0 {
        warn!(calls = core.active_calls(), "calls still up at exit");
        core.record_remaining(Instant::now());
    }
    Ok(())
}

/// Reads the config for a reload on a blocking thread; the result comes
/// back to the core loop through `done`.
fn spawn_load(
    startup: &Startup,
    core: &core::Core,
    done: &mpsc::Sender<(reload::Loaded, Option<ReloadRequest>)>,
    reply: Option<ReloadRequest>,
) {
    let (startup, done) = (startup.clone(), done.clone());
    let records = core.metrics.cdr_records.clone();
    tokio::task::spawn_blocking(move || {
        let loaded = reload::load(&startup, &records);
        let _ = done.blocking_send((loaded, reply));
    });
}

/// Reads the datagrams queued on the core's own UDP socket (waits forever
/// without one).
async fn read(primary: &Option<Arc<SipUdp>>, inbox: &mut Inbox) -> std::io::Result<()> {
    match primary {
        Some(s) => transport::batch::read(inbox, s).await,
        None => std::future::pending().await,
    }
}

/// Hands the datagrams of the last read to the core.
fn deliver(
    read: std::io::Result<()>,
    inbox: &Inbox,
    transports: &Transports,
    core: &mut core::Core,
    out: &mut Vec<Transmit>,
) {
    // ICMP errors surface here on Linux; they are not fatal.
    if let Err(e) = read {
        tracing::debug!(error = %e, "UDP receive error");
    }
    for (data, from) in inbox.datagrams() {
        core.on_message(data, transports.udp_peer(0, from), Instant::now(), out);
    }
}

/// Timers fire on this grid. At 200 calls/s the transaction and call
/// timers of different calls lie a few milliseconds apart; rounding each
/// deadline up to the grid lets one wake-up serve several of them. Nothing
/// zentrale times needs better than 10 ms (the shortest are RFC 3261's
/// T1 = 500 ms retransmissions and the 20 ms media ticks, which run on the
/// media thread).
const TIMER_GRID: Duration = Duration::from_millis(10);

/// `deadline` rounded up to the next point of the [`TIMER_GRID`] counted
/// from `origin`; a deadline already due stays as it is.
fn on_grid(deadline: Instant, origin: Instant, now: Instant) -> Instant {
    if deadline <= now {
        return deadline;
    }
    let since = deadline.saturating_duration_since(origin).as_nanos();
    let grid = TIMER_GRID.as_nanos();
    let late = (grid - since % grid) % grid;
    deadline + Duration::from_nanos(late as u64)
}

/// Whether the core timer, armed for `armed`, must move for the core's
/// next `deadline`: only when the core needs to wake earlier. A deadline
/// that moved later leaves the timer where it is; it fires early, the core
/// finds nothing due and the next turn arms it anew. Under load that is
/// the common case (a new call's timers lie behind the armed one), and
/// each reset costs tokio's timer wheel a removal and an insert, plus a
/// write to its wake-up eventfd and an extra `epoll_wait` when the timer
/// had fired before (BENCHMARKS.md, session 5).
fn needs_rearm(armed: Option<Instant>, deadline: Option<Instant>) -> bool {
    match (armed, deadline) {
        (Some(armed), Some(deadline)) => deadline < armed,
        (None, Some(_)) => true,
        (_, None) => false,
    }
}

/// Stands in for "no deadline": far enough away never to fire.
fn idle_deadline() -> Instant {
    Instant::now() + Duration::from_secs(24 * 3600)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_rounded_up_to_the_timer_grid() {
        let origin = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(on_grid(origin + ms(301), origin, origin), origin + ms(310));
        assert_eq!(on_grid(origin + ms(310), origin, origin), origin + ms(310));
        assert_eq!(
            on_grid(
                origin + ms(32_000) + Duration::from_micros(1),
                origin,
                origin
            ),
            origin + ms(32_010)
        );
    }

    #[test]
    fn the_timer_moves_only_to_wake_earlier() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // Nothing armed (never, or it just fired): arm for any deadline.
        assert!(needs_rearm(None, Some(now + ms(500))));
        assert!(!needs_rearm(None, None));
        // Armed: only an earlier deadline moves it.
        assert!(needs_rearm(Some(now + ms(500)), Some(now + ms(20))));
        assert!(!needs_rearm(Some(now + ms(500)), Some(now + ms(500))));
        assert!(!needs_rearm(Some(now + ms(20)), Some(now + ms(32_000))));
        assert!(!needs_rearm(Some(now + ms(20)), None));
    }

    #[test]
    fn a_deadline_already_due_is_not_delayed() {
        let origin = Instant::now();
        let ms = Duration::from_millis;
        let now = origin + ms(505);
        assert_eq!(on_grid(origin + ms(503), origin, now), origin + ms(503));
    }
}

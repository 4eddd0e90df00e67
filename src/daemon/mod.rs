//! The running daemon: sockets, the core thread, the media worker and the
//! HTTP listener, wired together.
//!
//! The [`core::Core`] runs on a thread of its own ([`driver`]) that reads
//! the SIP UDP sockets itself and sleeps in its own epoll. A tokio
//! runtime (one thread) runs the TCP connections, the HTTP API, signals
//! and reloads, and hands their work to the core thread through a
//! [`driver::CoreHandle`]; the media worker is a third thread.

pub mod cdr_writer;
pub mod clock;
pub mod connections;
pub mod core;
pub mod driver;
pub mod reload;
pub mod rtp;
pub mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::info;

use crate::acd::Acd;
use crate::admission::fds;
use crate::api::ReloadRequest;
use crate::api::access;
use crate::config::{Config, Overrides};
use crate::media::engine::{self, EngineConfig};
use crate::media::ports::PortPool;
use crate::media::prompt::PromptLibrary;
use crate::metrics::{Metrics, ScrapeClock};
use connections::{Gate, GuardedListener};
use core::acd_spec;
use driver::{CoreHandle, Driver, Reload};
use transport::Transports;

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
    let (mut driver, handle) = Driver::new().context("creating the core thread's epoll")?;
    let fds = fd_budget(&config);
    let flows: core::TcpFlows = Default::default();
    let sip_gate = Gate::new("sip_tcp", config.sip.connections, fds.sip, &metrics);
    let transports = Transports::bind(&config, handle.clone(), sip_gate, flows.clone())
        .await
        .context("opening the SIP listeners")?;
    let http = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("opening the HTTP listener on {}", config.http.listen))?;
    let http = GuardedListener::new(
        http,
        Gate::new("http", config.http.connections, fds.http, &metrics),
    );
    let ports =
        PortPool::new(config.rtp.first_port, config.rtp.last_port).context("the RTP port range")?;
    // Every identifier and key the core and the media worker draw comes
    // from this generator; only its seed comes from the system's entropy.
    let mut rng = crate::rng::SeededRng::from_entropy();
    let (media, media_events) = engine::start(
        EngineConfig {
            rtp_timeout: config.rtp.timeout,
            tick: Duration::from_millis(20),
            recycle: Some(ports.recycler()),
            wake: Some(handle.doorbell()),
        },
        rng.fork(),
    );
    driver.media(media.clone(), media_events, rtp::RtpSockets::new(ports));
    let started = Instant::now();
    let acd = Arc::new(Acd::new(acd_spec(&config), started).context("the ACD configuration")?);
    metrics.watch_media(media.counters());
    // Scrapes read the figures at the time the core runs on: here the
    // monotonic clock it is handed too.
    let scrape_clock = ScrapeClock::new(Instant::now);
    metrics.watch_acd(acd.clone(), scrape_clock.clone());
    let cdr = reload::start_cdr(&config, &metrics.cdr_records)?;
    let wall = clock::anchored(started, startup.clock);
    let (store, tickets) = match &config.store {
        Some(s) => {
            let (store, tickets) = open_store(&config, &s.path, wall)?;
            metrics.watch(Box::new(store.collector()));
            metrics.watch(Box::new(tickets.collector()));
            (Some(store), Some(tickets))
        }
        None => (None, None),
    };
    crate::api::stream::configure(&metrics.events, &config);
    let metrics = Arc::new(metrics);
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let gate = access::Gate::new(&config.http, metrics.http_refused.clone());
    tokio::spawn(crate::api::serve(
        http,
        crate::api::ApiState {
            metrics: metrics.clone(),
            acd: acd.clone(),
            core: Arc::new(handle.clone()),
            reload: reload_tx,
            gate: gate.clone(),
            tickets,
        },
    ));
    metrics.hours.set(&config, wall, scrape_clock);
    // Every trunk's counter from the start, at 0: an idle trunk is then a
    // flat series, not a missing one ("no trunk calls" alert, dashboards).
    for trunk in &config.trunks {
        let _ = metrics
            .trunk_calls
            .get_or_create(&crate::metrics::TrunkLabel {
                trunk: trunk.name.clone(),
            });
    }
    if let Some(at) = startup.clock {
        info!(clock = %at, "service hours follow --clock, not the real time");
    }
    let mut core = core::Core::new(
        config.clone(),
        prompts,
        metrics.clone(),
        acd,
        wall,
        rng,
        started,
    );
    if let Some(c) = &config.cdr {
        info!(path = %c.path.display(), "call records are appended to this file");
    }
    driver.set_cdr(cdr);
    driver.set_store(store.clone());
    core.set_tcp_flows(flows);
    info!(
        udp = ?config.sip.udp, tcp = ?config.sip.tcp, tls = ?config.sip.tls, http = %config.http.listen,
        rtp = %format!("{}-{}", config.rtp.first_port, config.rtp.last_port),
        "zentrale is up"
    );
    let core_thread = std::thread::Builder::new()
        .name("zentrale-core".into())
        .spawn(move || driver.run(core, transports, started))
        .context("starting the core thread")?;
    let finished = tokio::task::spawn_blocking(move || core_thread.join());
    let result = control(&startup, &metrics, &handle, &gate, reload_rx, finished).await;
    if let Some(store) = store {
        // What is queued (the records of the calls hung up at exit too)
        // is committed before the process ends.
        tokio::task::spawn_blocking(move || store.stop()).await.ok();
        info!("the store is closed");
    }
    result
}

/// Opens the store at `path` (creating its directory), reads the tickets
/// back and starts the writer thread.
fn open_store(
    config: &Config,
    path: &std::path::Path,
    wall: clock::WallClock,
) -> anyhow::Result<(Arc<crate::store::Store>, Arc<crate::api::tickets::Desk>)> {
    use crate::store::{Backend, Options, Store, sqlite::SqliteBackend};
    let fail = |what: &str| {
        format!(
            "{}: store.path: {what} {}; check the directory's permissions and free space, or change `store.path`",
            config.path.display(),
            path.display()
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| fail("cannot create the directory of"))?;
    }
    let mut backend = SqliteBackend::open(path).with_context(|| fail("cannot open"))?;
    let loaded = backend
        .load_tickets()
        .with_context(|| fail("cannot read the tickets of"))?;
    info!(
        path = %path.display(),
        tickets = loaded.len(),
        "the store is open"
    );
    let book = crate::tickets::Book::from_tickets(loaded);
    let store = Arc::new(
        Store::start(backend, Options::default()).context("starting the store's writer thread")?,
    );
    let desk = Arc::new(crate::api::tickets::Desk::new(
        book,
        crate::api::tickets::tenants(config),
        store.clone(),
        wall,
    ));
    Ok((store, desk))
}

/// Raises the descriptor limit and fits the connection caps into it, so
/// that TCP and HTTP connections can never take the descriptors the RTP
/// range and the core need (see [`crate::admission::fds`]).
fn fd_budget(config: &Config) -> fds::Plan {
    let limit = connections::raise_fd_limit();
    let rtp = fds::rtp_sockets(config.rtp.first_port, config.rtp.last_port);
    let plan = fds::plan(
        limit,
        rtp,
        config.sip.connections.max,
        config.http.connections.max,
    );
    if plan.lowered {
        tracing::warn!(
            nofile = limit,
            rtp_sockets = rtp,
            reserved = fds::RESERVED,
            sip_tcp_connections = plan.sip,
            http_connections = plan.http,
            "the descriptor limit (RLIMIT_NOFILE) is too low for the RTP range and the connection caps; the caps are lowered so that calls keep their RTP sockets (raise LimitNOFILE= or lower sip.connections.max / http.connections.max)"
        );
    } else {
        info!(
            nofile = limit,
            rtp_sockets = rtp,
            sip_tcp_connections = plan.sip,
            http_connections = plan.http,
            "descriptor budget"
        );
    }
    plan
}

/// The runtime's side of the core thread: signals and reloads in, until
/// the core thread has ended (after SIGINT or SIGTERM told it to stop).
async fn control(
    startup: &Startup,
    metrics: &Metrics,
    core: &CoreHandle,
    gate: &access::Gate,
    mut api_reloads: mpsc::Receiver<ReloadRequest>,
    finished: tokio::task::JoinHandle<std::thread::Result<std::io::Result<()>>>,
) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    tokio::pin!(finished);
    loop {
        tokio::select! {
            ended = &mut finished => {
                return match ended {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(anyhow::Error::new(e).context("the core thread failed")),
                    Ok(Err(_)) | Err(_) => Err(anyhow::anyhow!("the core thread panicked")),
                };
            }
            _ = sighup.recv() => load(startup, metrics, core, gate, None),
            Some(reply) = api_reloads.recv() => load(startup, metrics, core, gate, Some(reply)),
            _ = sigint.recv() => core.stop(),
            _ = sigterm.recv() => core.stop(),
        }
    }
}

/// Reads the config for a reload on a blocking thread and hands the
/// result to the core thread, which swaps it in; once it has, the HTTP
/// access rules (`http.tokens` and the rest) follow.
fn load(
    startup: &Startup,
    metrics: &Metrics,
    core: &CoreHandle,
    gate: &access::Gate,
    reply: Option<ReloadRequest>,
) {
    let (startup, core, gate) = (startup.clone(), core.clone(), gate.clone());
    let records = metrics.cdr_records.clone();
    let events = metrics.events.clone();
    tokio::spawn(async move {
        let loaded = tokio::task::spawn_blocking(move || reload::load(&startup, &records)).await;
        match loaded {
            Ok(loaded) => {
                let http = loaded.as_ref().ok().map(|(c, _, _)| c.http.clone());
                if let Ok((c, _, _)) = &loaded {
                    crate::api::stream::configure(&events, c);
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                let reload = Reload {
                    loaded,
                    trigger: if reply.is_some() { "api" } else { "SIGHUP" },
                    reply: Some(tx),
                };
                if core.reload(reload).await.is_err() {
                    return; // shutting down: the API's request is dropped, which answers it
                }
                let Ok(result) = rx.await else { return };
                if let (Ok(_), Some(http)) = (&result, &http) {
                    gate.update(http);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the config for a reload failed"),
        }
    });
}

impl crate::api::AgentCommands for CoreHandle {
    fn agent_command(&self, command: crate::acd::AgentCommand) -> crate::api::CommandOutcome<'_> {
        Box::pin(async move { CoreHandle::agent_command(self, command).await.ok() })
    }
}

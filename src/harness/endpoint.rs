//! The one place that knows the core's interface: it builds a
//! [`Core`] (clocks and a seeded RNG as inputs), feeds it inputs (a
//! datagram, a media event, an agent command, the clock) and collects
//! what it gives back (transmits, media commands, call records, call
//! events) as
//! [`Outputs`]. Everything else in the harness, and the fuzz target
//! [`crate::fuzzing::core`], goes through [`Endpoint`], so a change of
//! the core's interface is adapted here alone.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::acd::{Acd, AcdSnapshot, AgentCommand, AgentError, AgentSnapshot};
use crate::cdr::CallRecord;
use crate::config::{Config, Overrides};
use crate::daemon::core::{self as core, Core, acd_spec};
use crate::media::engine::MediaEvent;
use crate::media::prompt::PromptLibrary;
use crate::metrics::Metrics;
use crate::rng::SeededRng;
use crate::sip::transaction::{Peer, Transmit};
use crate::wallclock::WallClock;

use super::media::MediaCommand;

/// The demo config (`zentrale.yaml` and its dialplans) with the RTP ports
/// `rtp_ports`, and its prompts; read from disk once per process.
pub fn demo(rtp_ports: (u16, u16)) -> (Config, PromptLibrary) {
    static DEMO: OnceLock<(Config, PromptLibrary)> = OnceLock::new();
    let (config, prompts) = DEMO.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = Config::load(&root.join("zentrale.yaml"), &Overrides::default())
            .unwrap_or_else(|e| panic!("the demo config: {e}"));
        let prompts = PromptLibrary::load(&config.sounds_dir, config.sound_names())
            .unwrap_or_else(|e| panic!("the demo prompts: {e}"));
        (config, prompts)
    });
    let mut config = config.clone();
    (config.rtp.first_port, config.rtp.last_port) = rtp_ports;
    (config, prompts.clone())
}

/// What the core gave back for one input.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Datagrams to send, in order.
    pub transmits: Vec<Transmit>,
    /// RTP ports to bind or let go. Nothing is bound on the virtual
    /// network: every bind succeeds.
    pub ports: Vec<core::PortRequest>,
    /// Commands for the media engine, in order.
    pub media: Vec<MediaCommand>,
    /// Records of hotline calls that ended (with a `cdr:` section).
    pub records: Vec<CallRecord>,
    /// Changes of hotline calls for the event stream, in order.
    pub events: Vec<core::CallEvent>,
}

/// The core behind its inputs and outputs.
pub struct Endpoint {
    core: Core,
    acd: Arc<Acd>,
    metrics: Arc<Metrics>,
}

impl Endpoint {
    /// A core for `config` whose monotonic clock starts at `start`, with
    /// the civil time `wall` at that instant (service hours, records),
    /// drawing its tags and nonces from `seed`.
    pub fn new(
        config: Arc<Config>,
        prompts: PromptLibrary,
        start: Instant,
        wall: jiff::Timestamp,
        seed: u64,
    ) -> Endpoint {
        let acd = Arc::new(Acd::new(acd_spec(&config), start).expect("the config's ACD"));
        let metrics = Arc::new(Metrics::new());
        let clock = WallClock::new(start, wall);
        let core = Core::new(
            config,
            prompts,
            metrics.clone(),
            acd.clone(),
            clock,
            SeededRng::from_u64(seed),
            start,
        );
        Endpoint { core, acd, metrics }
    }

    /// A datagram (or framed TCP message) from `from`.
    pub fn receive(&mut self, bytes: &[u8], from: Peer, now: Instant) -> Outputs {
        let mut out = core::Outputs::default();
        self.core.on_message(bytes, from, now, &mut out);
        self.collect(out, now)
    }

    /// An event of the media engine.
    pub fn media_event(&mut self, event: MediaEvent, now: Instant) -> Outputs {
        let mut out = core::Outputs::default();
        self.core.on_media_event(event, now, &mut out);
        self.collect(out, now)
    }

    /// The clock reached `now`: runs what is due.
    pub fn timeout(&mut self, now: Instant) -> Outputs {
        let mut out = core::Outputs::default();
        self.core.handle_timeout(now, &mut out);
        self.collect(out, now)
    }

    /// When [`Endpoint::timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Shutdown: hangs up every call.
    pub fn hang_up_all(&mut self, now: Instant) -> Outputs {
        let mut out = core::Outputs::default();
        self.core.hang_up_all(now, &mut out);
        self.collect(out, now)
    }

    /// An agent command (login, logout, pause, unpause, ready), as the
    /// HTTP API gives it: the agent as it left it, or why it was refused.
    pub fn agent_command(
        &mut self,
        command: AgentCommand,
        now: Instant,
    ) -> (Result<AgentSnapshot, AgentError>, Outputs) {
        let mut out = core::Outputs::default();
        let result = self.core.on_agent_command(command, now, &mut out);
        (result, self.collect(out, now))
    }

    /// A session without a caller waiting in `queue` (see
    /// `Core::queue_callerless`); returns its ACD call key.
    #[cfg(test)]
    pub fn queue_callerless(&mut self, queue: &str, now: Instant) -> (u64, Outputs) {
        let mut out = core::Outputs::default();
        let key = self.core.queue_callerless(queue, now, &mut out);
        (key, self.collect(out, now))
    }

    /// Calls alive in the core.
    pub fn active_calls(&self) -> usize {
        self.core.active_calls()
    }

    /// The ACD's queues and agents as they stand at `now`.
    pub fn snapshot(&self, now: Instant) -> AcdSnapshot {
        self.acd.snapshot(now)
    }

    /// The metrics as Prometheus text.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// The local address of zentrale's first UDP listener.
    pub fn sip_address(config: &Config) -> SocketAddr {
        config.sip.udp[0]
    }

    fn collect(&mut self, out: core::Outputs, now: Instant) -> Outputs {
        // Nothing is bound on the virtual network, so a released port's
        // "socket" is back at once.
        for request in &out.ports {
            if let core::PortRequest::Release(port) = request {
                self.core.on_port_returned(*port, now);
            }
        }
        let media = out
            .media
            .into_iter()
            .map(|c| match c {
                core::MediaCommand::Add {
                    stream,
                    port,
                    remote,
                    confirmed,
                    ..
                } => MediaCommand::Add {
                    stream,
                    port,
                    remote,
                    confirmed,
                },
                core::MediaCommand::Confirm(id) => MediaCommand::Confirm(id),
                core::MediaCommand::Play(id, p) => MediaCommand::play(id, &p),
                core::MediaCommand::SetRemote(id, r) => MediaCommand::Remote(id, r),
                core::MediaCommand::SetDirection(id, d) => MediaCommand::Direction(id, d),
                core::MediaCommand::Bridge(a, b) => MediaCommand::Bridge(a, b),
                core::MediaCommand::Unbridge(id) => MediaCommand::Unbridge(id),
                core::MediaCommand::Remove(id) => MediaCommand::Remove(id),
                core::MediaCommand::SetDtmf(id, _) | core::MediaCommand::SetSrtp(id, _) => {
                    MediaCommand::Other(id)
                }
            })
            .collect();
        Outputs {
            transmits: out.transmits,
            ports: out.ports,
            media,
            records: out.records,
            events: out.events,
        }
    }
}

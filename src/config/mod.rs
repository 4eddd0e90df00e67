//! The typed configuration: `zentrale.yaml` plus one dialplan file per tenant.
//!
//! [`Config::load`] reads and validates everything and returns either a clean
//! [`Config`] or every problem it found, each with file, line, column and a
//! hint saying what to change ([`ConfigErrors`]). Nothing here opens sockets.
//!
//! ```no_run
//! use std::path::Path;
//! use zentrale::config::{Config, Overrides};
//!
//! match Config::load(Path::new("zentrale.yaml"), &Overrides::default()) {
//!     Ok(cfg) => println!("{} tenants", cfg.tenants.len()),
//!     Err(errors) => eprintln!("{errors}"),
//! }
//! ```
//!
//! The schema is documented in the demo `zentrale.yaml` and `dialplans/*.yaml`
//! at the top of the source tree, which operators copy.

mod acd;
mod appendable;
mod cidr;
#[cfg(test)]
mod demo_dialplan;
mod error;
mod http;
mod limits;
mod load;
mod raw;
mod sip_uri;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use acd::{
    AcdConfig, Feature, FeatureCodes, NO_ANSWER_REASON, Queue, ServiceLevel, Strategy, WidenStep,
    acd_prompts,
};
pub use appendable::check_appendable;
pub use cidr::{Cidr, CidrError};
pub use error::{ConfigError, ConfigErrors};
pub use http::{ApiToken, DEMO_TOKEN, MIN_TOKEN_LEN, Role};
pub use limits::SipLimits;
pub use tls::TlsConfig;

pub use crate::media::srtp::SrtpPolicy;

use crate::admission::connections::ConnectionLimits;
use crate::dialplan::{Hotline, QueueRef, Schedule, SurgeLimits, Target};
use crate::sip::digest::Algorithm;
use crate::sip::lockout::LockoutSettings;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The main file, as given to [`Config::load`].
    pub path: PathBuf,
    /// SIP listeners and protocol limits (`sip:`).
    pub sip: SipConfig,
    /// RTP port range and timeout (`rtp:`).
    pub rtp: RtpConfig,
    /// The HTTP API and metrics listener (`http:`).
    pub http: HttpConfig,
    /// Engine-wide ACD settings (`acd:`, every key optional).
    pub acd: AcdConfig,
    /// Directory of the prompts, `<sounds_dir>/<name>.wav` (`sounds:`, default
    /// `sounds`; a relative path is resolved against the config file's directory).
    pub sounds_dir: PathBuf,
    /// Call detail records (`cdr:`); `None`: none are written.
    pub cdr: Option<CdrConfig>,
    /// The persistent store (`store:`); `None`: tickets are off and
    /// nothing outlives a restart.
    pub store: Option<StoreConfig>,
    /// Carrier trunks allowed to send calls (`trunks:`).
    pub trunks: Vec<Trunk>,
    /// Agents (softphones that register) (`agents:`).
    pub agents: Vec<Agent>,
    /// Tenants (town halls, service centers), each with its dialplan (`tenants:`).
    pub tenants: Vec<Tenant>,
    /// Certificate, key and trusted authorities for SIP over TLS
    /// (`sip.tls:`); `None` without that section.
    pub tls: Option<TlsConfig>,
}

/// SIP settings.
///
/// ```yaml
/// sip:
///   listen: { udp: [127.0.0.1:5060], tcp: [127.0.0.1:5060] }
///   realm: zentrale
///   max_calls: 2000
///   register: { min_expires: 60, max_expires: 3600, default_expires: 3600 }
///   nonce_ttl_secs: 300
///   min_se: 90
///   session_expires: 1800
///   digest_algorithms: [MD5]
///   auth_limits: { per_source: 10, per_account: 5, lockout_secs: 60 }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// UDP listen addresses (default `127.0.0.1:5060`).
    pub udp: Vec<SocketAddr>,
    /// TCP listen addresses (default `127.0.0.1:5060`).
    pub tcp: Vec<SocketAddr>,
    /// TLS listen addresses (`listen.tls`, default none; they need
    /// `sip.tls` with a certificate and key).
    pub tls: Vec<SocketAddr>,
    /// Digest authentication realm (default `zentrale`).
    pub realm: String,
    /// Concurrent calls; past it new INVITEs get 503 with Retry-After (default 2000).
    pub max_calls: usize,
    /// Bounds for REGISTER expiry.
    pub register: RegisterLimits,
    /// How long a digest nonce stays valid (`nonce_ttl_secs`, default 300 s).
    pub nonce_ttl: Duration,
    /// RFC 4028 Min-SE we accept, seconds (default 90, the RFC minimum).
    pub min_se: u32,
    /// Session-Expires we ask for, seconds (default 1800).
    pub session_expires: u32,
    /// Transaction caps, per-source rates, Contacts per REGISTER (`limits:`).
    pub limits: SipLimits,
    /// SIP-over-TCP connection limits (`connections:`).
    pub connections: ConnectionLimits,
    /// Digest algorithms offered, most preferred first (default
    /// [`crate::sip::digest::DEFAULT_ALGORITHMS`], MD5 alone); agents and
    /// trunks may set their own.
    pub digest_algorithms: Vec<Algorithm>,
    /// Brute-force limits (`auth_limits`).
    pub auth_limits: LockoutSettings,
    /// Wrong answers after which a nonce is spent (`auth_limits.nonce_failures`, default 3).
    pub nonce_failures: u32,
}

/// REGISTER expiry bounds in seconds: shorter requests get 423 Interval Too Brief,
/// longer ones are cut to `max_expires`, missing ones get `default_expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterLimits {
    /// Default 60.
    pub min_expires: u32,
    /// Default 3600.
    pub max_expires: u32,
    /// Default 3600.
    pub default_expires: u32,
}

/// RTP settings.
///
/// ```yaml
/// rtp:
///   ports: 30000-30999   # even first port; each call leg takes an even/odd pair
///   timeout_secs: 60     # hang up after this long without RTP; 0 = never
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpConfig {
    /// First port of the range (even).
    pub first_port: u16,
    /// Last port of the range (inclusive).
    pub last_port: u16,
    /// Media timeout; `None` when `timeout_secs: 0`.
    pub timeout: Option<Duration>,
}

/// HTTP API and metrics listener, and who may use it.
///
/// ```yaml
/// http:
///   listen: 127.0.0.1:8080
///   tokens: [ { name: wallboard, token_file: wallboard.token, role: read } ]
///   open_reads: false        # GET /api/v1/... without a token
///   open_metrics: true       # /metrics without a token
///   allowed_hosts: [zentrale.rathaus.example]
///   allowed_origins: [https://leitstand.rathaus.example]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Bearer tokens (`tokens:`); a change needs a token of its role, on
    /// loopback too.
    pub tokens: Vec<ApiToken>,
    /// `GET` of the API without a token (`open_reads`, default false).
    pub open_reads: bool,
    /// `/metrics` without a token (`open_metrics`, default true: metrics
    /// carry no numbers and no names).
    pub open_metrics: bool,
    /// Host names a request may name in `Host` besides IP addresses and
    /// `localhost` (`allowed_hosts`, lower case; `name` for any port or
    /// `name:port`). Keeps DNS rebinding out.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://host[:port]`, lower case) whose pages may send
    /// changes, besides the listener's own (`allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// Connection limits (`connections:`).
    pub connections: ConnectionLimits,
    /// Event streams (`GET /api/v1/events`) open at once (`event_streams`,
    /// default [`DEFAULT_EVENT_STREAMS`]); past it a new one gets 503.
    pub event_streams: usize,
    /// The wallboard shows agents' names on tiles of their own
    /// (`wallboard_agent_names`, default false: counts by state only,
    /// since staff councils commonly forbid showing individual performance).
    pub wallboard_agent_names: bool,
}

/// Default of `http.event_streams`.
pub const DEFAULT_EVENT_STREAMS: usize = 32;

/// Call detail records: one JSON line per hotline call when it ends (see
/// [`crate::cdr`] and the README for the keys of a record).
///
/// ```yaml
/// cdr:
///   path: /var/log/zentrale/cdr.jsonl   # appended to, created if missing
///   caller_number: masked               # or full; withheld numbers never
/// ```
///
/// The loader opens the file for appending (creating it, empty, when it
/// is missing), so a path that `zentrale check` accepts is one the daemon
/// can write; a relative path is resolved against the config file's
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrConfig {
    pub path: PathBuf,
    /// How caller numbers are written (default masked).
    pub caller_number: crate::cdr::CallerNumbers,
}

/// The persistent store: tickets, call records and what later survives
/// a restart, in one SQLite file.
///
/// ```yaml
/// store:
///   path: /var/lib/zentrale/zentrale.db
/// ```
///
/// A relative path is taken from the directory zentrale runs in (not the
/// config file's), so the demo's `target/zentrale-demo.db` lands in the
/// build directory git ignores. The daemon creates the file and its
/// directory at start; `zentrale check` only checks that it could.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub path: PathBuf,
}

/// A carrier trunk. Calls are accepted from a trunk when the source address is
/// in `sources` (and, if set, digest `credentials` match).
///
/// ```yaml
/// trunks:
///   - name: demo-carrier
///     sources: [127.0.0.0/8]
///     max_calls: 200
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Unique name, used in logs and metrics.
    pub name: String,
    /// Source networks the trunk's signalling comes from.
    pub sources: Vec<Cidr>,
    /// Digest credentials the trunk must authenticate with, if any.
    pub credentials: Option<Credentials>,
    /// Concurrent-call limit for this trunk, if any.
    pub max_calls: Option<u32>,
    /// Digest algorithms offered to the trunk (only with `credentials`);
    /// `None`: `sip.digest_algorithms`.
    pub digest_algorithms: Option<Vec<Algorithm>>,
    /// Where the trunk's media may go (`media_networks:`); empty: anywhere.
    /// An SDP naming an address outside is refused (488).
    pub media_networks: Vec<Cidr>,
    /// `transport: tls`: calls from this trunk are taken only over TLS
    /// (others get 403); default: any transport.
    pub tls_only: bool,
    /// SRTP towards this trunk (`srtp:`, default `offer`).
    pub srtp: SrtpPolicy,
}

/// Digest credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Digest user name.
    pub username: String,
    /// Digest password (plain; it is needed to verify digests).
    pub password: String,
}

// Hand-written so that a `{:?}` of the config never prints a password.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An agent: a softphone that registers as `extension` and takes calls by
/// skill from the queues of its tenant (and of queues that name its tenant
/// in `agents_from`).
///
/// ```yaml
/// agents:
///   - extension: "1001"
///     name: Kassel 1001
///     password: demo
///     tenant: kassel
///     skills: { general: 5 }
///     wrap_up_secs: 60        # optional, overrides the queue's
///     max_missed_offers: 5    # optional, overrides acd.max_missed_offers
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Agent {
    /// SIP user name the phone registers with; unique.
    pub extension: String,
    /// Display name.
    pub name: String,
    /// Digest password.
    pub password: String,
    /// Id of the tenant the agent works for.
    pub tenant: String,
    /// Skill name → level 1 (basic) ..= 10 (expert).
    pub skills: BTreeMap<String, u8>,
    /// The agent's own wrap-up (`wrap_up_secs`), overriding every queue's;
    /// `None` to use the queue's. See [`Agent::wrap_up_for`].
    pub wrap_up: Option<Duration>,
    /// Unanswered offers in a row before the agent is paused with
    /// [`NO_ANSWER_REASON`]: the agent's `max_missed_offers` or else
    /// `acd.max_missed_offers`, already resolved; `None` means never (0).
    pub max_missed_offers: Option<u32>,
    /// Digest algorithms offered to the agent's phone; `None`:
    /// `sip.digest_algorithms`.
    pub digest_algorithms: Option<Vec<Algorithm>>,
    /// Where the agent's phone may receive media (`media_networks:`);
    /// empty: anywhere. An SDP naming an address outside is refused.
    pub media_networks: Vec<Cidr>,
    /// SRTP towards the agent's phone (`srtp:`, default `offer`).
    pub srtp: SrtpPolicy,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("extension", &self.extension)
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("skills", &self.skills)
            .field("wrap_up", &self.wrap_up)
            .field("max_missed_offers", &self.max_missed_offers)
            .field("digest_algorithms", &self.digest_algorithms)
            .field("media_networks", &self.media_networks)
            .field("srtp", &self.srtp)
            .finish()
    }
}

/// A tenant: one body (city, district, town) with its own dialplan file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Short id agents refer to, e.g. `kassel`.
    pub id: String,
    /// Display name, e.g. `Stadt Kassel`.
    pub name: String,
    /// The dialplan file, resolved against the main file's directory.
    pub dialplan_path: PathBuf,
    /// Its contents.
    pub dialplan: Dialplan,
}

/// A tenant's dialplan file. Every key is documented, with its default, in
/// `dialplans/README.md`.
///
/// ```yaml
/// municipality: Kassel
/// hours:
///   time_zone: Europe/Berlin
///   state: HE
///   weekly: ["mon-fri 07:00-18:00", "sat 09:00-13:00"]
///   closures: ["12-24 from 12:00"]
///   closed: { prompt: closed-kassel }
/// limits: { max_calls: 120, max_waiting: 80, busy: { prompt: call-later } }
/// hotlines:
///   - id: "115"
///     name: Behördennummer 115 Kassel
///     numbers: ["115", "0561115"]
///     greeting: greeting-kassel
///     queue: "115"
/// queues:
///   - id: "115"
///     name: 115 Kassel
///     skill: general
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialplan {
    /// The hotlines, in file order.
    pub hotlines: Vec<Hotline>,
    /// The queues, in file order (`queues:`, optional). A hotline's
    /// `overflow:` rules are already written into its queue (see
    /// [`Overflow`](crate::dialplan::Overflow)).
    pub queues: Vec<Queue>,
    /// The tenant's municipality for origins (`municipality:`, default the
    /// tenant's name).
    pub municipality: String,
    /// The tenant's service hours (`hours:`); `None`: open around the clock.
    pub schedule: Option<Schedule>,
    /// Where calls go outside the tenant's hours (`hours.closed`, default
    /// `{ prompt: closed }`).
    pub closed: Target,
    /// Surge protection (`limits:`).
    pub limits: SurgeLimits,
}

/// Command-line overrides, applied before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replaces both the SIP UDP and TCP listen lists.
    pub sip_listen: Option<SocketAddr>,
    /// Replaces the HTTP listen address.
    pub http_listen: Option<SocketAddr>,
    /// Replaces the RTP port range (first, last).
    pub rtp_ports: Option<(u16, u16)>,
}

impl Config {
    /// Reads `path` and the dialplan files it names, applies `overrides` and
    /// validates the result. On failure returns every problem found.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
        load::load(path, overrides)
    }

    /// Sound names referenced anywhere (greetings, waiting prompts, menus,
    /// closed and busy prompts, queue music, prompt targets) plus the fixed ACD set ([`acd_prompts`]), for
    /// the media module to preload from `<sounds_dir>/<name>.wav`.
    pub fn sound_names(&self) -> BTreeSet<String> {
        fn prompt(t: &Target) -> Option<String> {
            match t {
                Target::Prompt(p) => Some(p.clone()),
                _ => None,
            }
        }
        let mut names: BTreeSet<String> = acd_prompts().into_iter().collect();
        for t in &self.tenants {
            let dp = &t.dialplan;
            names.extend(prompt(&dp.limits.busy));
            if dp.schedule.is_some() {
                names.extend(prompt(&dp.closed));
            }
            for h in &dp.hotlines {
                names.insert(h.greeting.clone());
                names.insert(h.waiting.clone());
                if h.schedule.is_some() {
                    names.extend(prompt(&h.closed));
                }
                if let Some(m) = &h.menu {
                    names.insert(m.prompt.clone());
                    names.insert(m.invalid_prompt.clone());
                    names.extend(m.digits.values().chain([&m.default]).filter_map(prompt));
                }
                if let Some(o) = &h.overflow {
                    names.extend(prompt(&o.target));
                }
            }
        }
        for q in self.queues() {
            names.insert(q.music.clone());
            names.extend(
                [&q.on_timeout, &q.on_no_agents, &q.on_full]
                    .into_iter()
                    .filter_map(prompt),
            );
        }
        names
    }

    /// Every queue of every tenant, tenants in file order.
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.tenants.iter().flat_map(|t| &t.dialplan.queues)
    }

    /// The queue a reference names, if it exists (references in a loaded
    /// config always resolve).
    pub fn queue(&self, r: &QueueRef) -> Option<&Queue> {
        self.tenants
            .iter()
            .find(|t| t.id == r.tenant)?
            .dialplan
            .queues
            .iter()
            .find(|q| q.id == r.queue)
    }

    /// The number table of every tenant's hotlines, with their hours and
    /// the hours of their queues (see [`crate::dialplan`]). Pure and cheap,
    /// so a reload builds a new one.
    pub fn dialplan(&self) -> crate::dialplan::Dialplan {
        let mut table = crate::dialplan::Dialplan::default();
        for tenant in &self.tenants {
            let dp = &tenant.dialplan;
            let limits = std::sync::Arc::new(dp.limits.clone());
            for hotline in &dp.hotlines {
                table.add_hotline((&tenant.id, &tenant.name), hotline, &limits);
            }
            // Queues no hotline of their tenant leads to follow the tenant's hours.
            if let Some(s) = &dp.schedule {
                for q in &dp.queues {
                    table.add_queue_hours(q.reference(), s);
                }
            }
        }
        table
    }

    /// The file of a sound.
    pub fn sound_path(&self, name: &str) -> PathBuf {
        self.sounds_dir.join(format!("{name}.wav"))
    }
}

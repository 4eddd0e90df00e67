//! The Prometheus registry and zentrale's metric families.
//!
//! Labels never carry caller numbers or agent names (DESIGN: privacy). The
//! families are cheap atomics; the call path updates them directly.

mod hours;
mod process;
mod queues;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use hours::ServiceHours;
pub use queues::{AcdCollector, QueueLabels};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::media::engine::MediaCounters;
use crate::sip::message::{METHODS, Method, method_index};

/// The time a scrape reads the live figures (queues, service hours) at,
/// handed in by the shell: the daemon's monotonic clock, or a virtual
/// clock a harness or test moves. A caller's wait or a sliding window is
/// then reckoned at the same `now` the core and the ACD run on, and the
/// metrics never read a clock of their own.
#[derive(Clone)]
pub struct ScrapeClock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl ScrapeClock {
    /// A clock that reads `now` at each scrape (the daemon: `Instant::now`).
    pub fn new(now: impl Fn() -> Instant + Send + Sync + 'static) -> ScrapeClock {
        ScrapeClock(Arc::new(now))
    }

    /// The time of the scrape under way.
    pub fn now(&self) -> Instant {
        (self.0)()
    }
}

impl std::fmt::Debug for ScrapeClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScrapeClock")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HotlineLabels {
    pub tenant: String,
    pub hotline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrunkLabel {
    pub trunk: String,
}

/// A call answered outside its hotline's service hours.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    pub tenant: String,
    pub hotline: String,
    /// `outside_hours`, `holiday` or `closure`.
    pub reason: String,
}

/// A call turned away by a tenant's surge limits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SurgeLabels {
    pub tenant: String,
    /// `max_calls` or `max_waiting`.
    pub reason: String,
}

/// A call refused (not answered) after routing: its tenant and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub tenant: String,
    /// `tenant_max` or `shared_full` (the tenant's call slots, 486),
    /// `no_rtp_port` (zentrale's own ports, 503), `trunk_limit` (503).
    pub reason: String,
}

/// A call handed from a town hall to its overflow target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverflowLabels {
    /// The municipality the caller meant, e.g. `Quickborn`.
    pub from_municipality: String,
    /// `tenant/queue`, `sip:host`, `prompt:name` or `hangup` (never a number).
    pub target: String,
}

/// How an IVR menu ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MenuLabels {
    pub tenant: String,
    pub hotline: String,
    /// The key pressed, `timeout` or `invalid`.
    pub choice: String,
}

/// Where a call comes from (see [`crate::dialplan::Origin`]): the tenant
/// and hotline of the number the caller dialled, its municipality, and
/// `via` = `115` or `local`. Every value comes from the config, never from
/// the caller, so the label sets stay as few as the configured hotlines.
///
/// The values are shared with the config (`Arc<str>`), not copied: a label
/// set is built two or three times for every call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabels {
    pub tenant: Arc<str>,
    pub hotline: Arc<str>,
    pub municipality: Arc<str>,
    pub via: &'static str,
}

impl OriginLabels {
    pub fn of(origin: &crate::dialplan::Origin) -> OriginLabels {
        OriginLabels {
            tenant: origin.tenant.clone(),
            hotline: origin.hotline.clone(),
            municipality: origin.municipality.clone(),
            via: origin.via_label(),
        }
    }
}

/// How a call of an origin ended: the call record's disposition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginEndLabels {
    pub tenant: Arc<str>,
    pub hotline: Arc<str>,
    pub municipality: Arc<str>,
    pub via: &'static str,
    /// `answered`, `abandoned`, `closed`, ... (see [`crate::cdr::Disposition`]).
    pub disposition: &'static str,
}

/// Every metric zentrale exports.
pub struct Metrics {
    registry: Registry,
    pub sip_requests: Family<MethodLabel, Counter>,
    pub sip_responses: Family<ClassLabel, Counter>,
    pub sip_rejected: Family<ReasonLabel, Counter>,
    pub sip_retransmissions: Counter,
    /// Inputs whose handling failed inside zentrale (a bug); the call it
    /// was for was ended, every other call went on.
    pub internal_errors: Counter,
    pub sip_transactions: Gauge,
    pub calls_active: Gauge,
    pub calls_offered: Family<HotlineLabels, Counter>,
    pub calls_ended: Family<ReasonLabel, Counter>,
    pub trunk_calls: Family<TrunkLabel, Counter>,
    pub registrations: Gauge,
    pub rtp_ports_in_use: Gauge,
    pub queue_wait: Family<QueueLabels, Histogram>,
    pub queue_talk: Family<QueueLabels, Histogram>,
    pub calls_closed: Family<ClosedLabels, Counter>,
    pub surge_rejected: Family<SurgeLabels, Counter>,
    /// Calls refused after routing (see [`RefusedLabels`]); the busy
    /// prompt is `surge_rejected`, never this.
    pub calls_refused: Family<RefusedLabels, Counter>,
    pub overflow: Family<OverflowLabels, Counter>,
    pub menu_choices: Family<MenuLabels, Counter>,
    pub config_reloads: Family<ResultLabel, Counter>,
    pub origin_offered: Family<OriginLabels, Counter>,
    pub origin_overflowed: Family<OriginLabels, Counter>,
    pub origin_ended: Family<OriginEndLabels, Counter>,
    /// Call records by `written`, `dropped` (the writer fell behind) and
    /// `failed` (the file could not be written).
    pub cdr_records: Family<ResultLabel, Counter>,
    /// HTTP requests refused by access control (`api::access`): `no_token`,
    /// `bad_token`, `role`, `host`, `origin`.
    pub http_refused: Family<ReasonLabel, Counter>,
    /// The event log behind `GET /api/v1/events` and its stream counts
    /// (`zentrale_event_streams*`, `zentrale_events_published_total`).
    pub events: Arc<crate::events::Hub>,
    /// Open stream connections by `listener` (`sip_tcp`, `http`).
    pub connections: Family<ListenerLabel, Gauge>,
    /// Connections closed at once on accept, by listener and reason
    /// (`connection_limit`, `source_connection_limit`).
    pub connections_refused: Family<ListenerReasonLabels, Counter>,
    /// Connections zentrale closed, by listener and reason (`idle`,
    /// `header_timeout`, `too_large`).
    pub connections_closed: Family<ListenerReasonLabels, Counter>,
    /// Failed or refused digest authentications, by reason
    /// ([`crate::sip::digest::AuthFailure::label`], or `locked`).
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// Lockouts started, by scope (`source`, `account`).
    pub auth_lockouts: Family<ScopeLabel, Counter>,
    per_message: PerMessage,
    /// Which hotlines and queues are open now (`zentrale_hotline_open`,
    /// `zentrale_queue_open`); the daemon sets the config and clock.
    pub hours: Arc<ServiceHours>,
}

/// What a brute-force lockout is on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    /// `source` or `account`.
    pub scope: &'static str,
}

/// The series of `sip_requests` (in [`METHODS`] order) and `sip_responses`
/// (1xx..6xx), resolved once.
#[derive(Default)]
struct PerMessage {
    requests: [Counter; 14],
    responses: [Counter; 6],
}

/// A stream listener: `sip_tcp` or `http`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

/// A stream listener and why a connection was refused or closed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerReasonLabels {
    pub listener: &'static str,
    pub reason: &'static str,
}

/// How something went: `ok` or `rejected` for reloads; `written`,
/// `dropped` or `failed` for call records.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        // `process_*` follows the Prometheus convention without our prefix;
        // everything of zentrale's own is `zentrale_*`.
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector::new()));
        let registry = root.sub_registry_with_prefix("zentrale");
        let m = Metrics {
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            sip_rejected: Family::default(),
            sip_retransmissions: Counter::default(),
            internal_errors: Counter::default(),
            sip_transactions: Gauge::default(),
            calls_active: Gauge::default(),
            calls_offered: Family::default(),
            calls_ended: Family::default(),
            trunk_calls: Family::default(),
            registrations: Gauge::default(),
            rtp_ports_in_use: Gauge::default(),
            // Waits: the service-level thresholds (20, 30, 60 s) are bucket edges.
            queue_wait: Family::new_with_constructor(|| {
                Histogram::new([
                    5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
                ])
            }),
            queue_talk: Family::new_with_constructor(|| {
                Histogram::new([30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0])
            }),
            calls_closed: Family::default(),
            surge_rejected: Family::default(),
            calls_refused: Family::default(),
            overflow: Family::default(),
            menu_choices: Family::default(),
            config_reloads: Family::default(),
            auth_failures: Family::default(),
            auth_lockouts: Family::default(),
            origin_offered: Family::default(),
            origin_overflowed: Family::default(),
            origin_ended: Family::default(),
            cdr_records: Family::default(),
            http_refused: Family::default(),
            events: Arc::new(crate::events::Hub::default()),
            connections: Family::default(),
            connections_refused: Family::default(),
            connections_closed: Family::default(),
            registry: Registry::default(),
            per_message: PerMessage::default(),
            hours: Arc::default(),
        };
        // Every message bumps one of these: the series are looked up once
        // here (a label `String` and a hash per message showed in the
        // per-call profile), which also exports them at 0 from the start.
        let m = Metrics {
            per_message: PerMessage {
                requests: METHODS.map(|method| {
                    m.sip_requests
                        .get_or_create(&MethodLabel {
                            method: method.to_string(),
                        })
                        .clone()
                }),
                responses: ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"].map(|class| {
                    m.sip_responses
                        .get_or_create(&ClassLabel {
                            class: class.into(),
                        })
                        .clone()
                }),
            },
            ..m
        };
        registry.register(
            "calls_closed",
            "Calls answered outside their hotline's service hours, by tenant, hotline and reason",
            Listed(m.calls_closed.clone()),
        );
        registry.register(
            "surge_rejected",
            "Calls past a tenant's surge limits: answered, told to call later, hung up",
            Listed(m.surge_rejected.clone()),
        );
        registry.register(
            "calls_refused",
            "Calls refused after routing: the tenant's call slots full (486), or no RTP port or the trunk's limit (503)",
            m.calls_refused.clone(),
        );
        registry.register(
            "overflow",
            "Calls handed from a town hall's queue (or closed hotline) to its overflow target",
            Listed(m.overflow.clone()),
        );
        registry.register(
            "menu_choices",
            "IVR menus finished, by the key pressed (or timeout, invalid)",
            Listed(m.menu_choices.clone()),
        );
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP, POST /api/v1/reload), by result",
            Listed(m.config_reloads.clone()),
        );
        registry.register(
            "event_streams",
            "Open event streams (GET /api/v1/events)",
            m.events.open.clone(),
        );
        registry.register(
            "event_streams_refused",
            "Event streams refused at the cap (http.event_streams)",
            m.events.refused.clone(),
        );
        registry.register(
            "event_streams_dropped",
            "Event streams dropped because the client read too slowly and fell behind the buffer",
            m.events.dropped.clone(),
        );
        registry.register(
            "events_published",
            "Events published to the event stream (queues, agents, calls)",
            m.events.published.clone(),
        );
        registry.register(
            "http_refused",
            "HTTP requests refused by access control, by reason (no_token, bad_token, role, host, origin)",
            m.http_refused.clone(),
        );
        registry.register(
            "origin_calls_offered",
            "Calls accepted, by origin: tenant and hotline of the number dialled, municipality, via 115 or local",
            Listed(m.origin_offered.clone()),
        );
        registry.register(
            "origin_calls_overflowed",
            "Calls handed to their hotline's overflow target, by origin",
            Listed(m.origin_overflowed.clone()),
        );
        registry.register(
            "origin_calls_ended",
            "Calls ended, by origin and disposition (answered, abandoned, closed, ...; as in the call records)",
            Listed(m.origin_ended.clone()),
        );
        registry.register(
            "cdr_records",
            "Call records, by result: written, dropped (the writer fell behind), failed (file error)",
            Listed(m.cdr_records.clone()),
        );
        registry.register(
            "connections",
            "Open stream connections, by listener (sip_tcp, http)",
            m.connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed on accept, by listener and reason (connection_limit, source_connection_limit)",
            m.connections_refused.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections zentrale closed, by listener and reason (idle, header_timeout, too_large)",
            m.connections_closed.clone(),
        );
        registry.register(
            "sip_requests",
            "SIP requests received, by method",
            Listed(m.sip_requests.clone()),
        );
        registry.register(
            "sip_responses",
            "SIP responses sent, by class (1xx..6xx)",
            Listed(m.sip_responses.clone()),
        );
        registry.register(
            "sip_rejected",
            "SIP messages refused before routing, by reason (malformed, source_not_allowed, overload, ...)",
            Listed(m.sip_rejected.clone()),
        );
        registry.register(
            "sip_auth_failures",
            "Digest authentications that failed or were refused, by reason (bad_password, unknown_user, locked, spent_nonce, uri_mismatch, ...)",
            m.auth_failures.clone(),
        );
        registry.register(
            "sip_auth_lockouts",
            "Brute-force lockouts started, by scope (source address or account)",
            m.auth_lockouts.clone(),
        );
        registry.register(
            "sip_retransmissions",
            "SIP messages retransmitted by zentrale's transactions",
            m.sip_retransmissions.clone(),
        );
        registry.register(
            "internal_errors",
            "Inputs whose handling failed inside zentrale (a bug): the call concerned was ended, the others went on",
            m.internal_errors.clone(),
        );
        registry.register(
            "sip_transactions",
            "SIP transactions currently alive",
            m.sip_transactions.clone(),
        );
        registry.register(
            "calls_active",
            "Calls currently up or ringing",
            m.calls_active.clone(),
        );
        registry.register(
            "calls_offered",
            "Calls accepted for a hotline",
            Listed(m.calls_offered.clone()),
        );
        registry.register(
            "calls_ended",
            "Calls ended, by reason",
            Listed(m.calls_ended.clone()),
        );
        registry.register(
            "trunk_calls",
            "Calls accepted from each trunk",
            Listed(m.trunk_calls.clone()),
        );
        registry.register(
            "registrations",
            "Agent extensions with at least one live registration",
            m.registrations.clone(),
        );
        registry.register(
            "rtp_ports_in_use",
            "RTP ports allocated to calls",
            m.rtp_ports_in_use.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "How long answered callers waited in the queue",
            Listed(m.queue_wait.clone()),
        );
        registry.register(
            "queue_talk_seconds",
            "How long answered calls talked to the agent",
            Listed(m.queue_talk.clone()),
        );
        registry.register_collector(Box::new(hours::HoursCollector(m.hours.clone())));
        Metrics {
            registry: root,
            ..m
        }
    }

    /// Exports the ACD's queue and agent figures, read at scrape time as
    /// they stand at `clock`'s now.
    pub fn watch_acd(&mut self, acd: Arc<crate::acd::Acd>, clock: ScrapeClock) {
        self.registry
            .sub_registry_with_prefix("zentrale")
            .register_collector(Box::new(AcdCollector { acd, clock }));
    }

    /// An answered caller's wait in `queue` (`tenant/queue`).
    pub fn observe_wait(&self, queue: &str, waited: Duration) {
        self.queue_wait
            .get_or_create(&QueueLabels::of(queue))
            .observe(waited.as_secs_f64());
    }

    /// An answered call's talk time.
    pub fn observe_talk(&self, queue: &str, talk: Duration) {
        self.queue_talk
            .get_or_create(&QueueLabels::of(queue))
            .observe(talk.as_secs_f64());
    }

    /// Exports a collector another module keeps (the store's counters,
    /// the tickets), read at scrape time under the `zentrale_` prefix.
    pub fn watch(&mut self, collector: Box<dyn Collector>) {
        self.registry
            .sub_registry_with_prefix("zentrale")
            .register_collector(collector);
    }

    /// Exports the media worker's packet counters (read at scrape time).
    pub fn watch_media(&mut self, counters: Arc<MediaCounters>) {
        self.registry
            .sub_registry_with_prefix("zentrale")
            .register_collector(Box::new(MediaCollector(counters)));
    }

    /// Counts a sent response by its class.
    pub fn response_sent(&self, code: u16) {
        let class = match code {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.per_message.responses[class].inc();
    }

    /// Counts a request received (after screening, so `method` is one
    /// the message model knows: the label set is closed).
    pub fn request_received(&self, method: &Method) {
        self.per_message.requests[method_index(method)].inc();
    }

    /// Counts a refused message.
    pub fn rejected(&self, reason: &'static str) {
        self.sip_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The OpenMetrics text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The classic Prometheus text exposition (format 0.0.4), for scrapers
    /// and tools that do not ask for OpenMetrics (`promtool check metrics`,
    /// `curl`). See [`to_prometheus_text`].
    pub fn encode_prometheus_text(&self) -> String {
        to_prometheus_text(&self.encode())
    }
}

/// Rewrites an OpenMetrics exposition as classic Prometheus text.
///
/// The formats differ where counters are concerned: OpenMetrics names the
/// family `x` and its sample `x_total`, the classic format names both
/// `x_total` (a classic parser sees an `x_total` sample under `# TYPE x` as
/// another, undocumented family). Counters' `_created` samples and the
/// `# UNIT` and `# EOF` lines have no classic form and are left out.
///
/// ```
/// let om = "# HELP calls Calls.\n# TYPE calls counter\ncalls_total 3\n# EOF\n";
/// assert_eq!(
///     zentrale::metrics::to_prometheus_text(om),
///     "# HELP calls_total Calls.\n# TYPE calls_total counter\ncalls_total 3\n"
/// );
/// ```
pub fn to_prometheus_text(openmetrics: &str) -> String {
    // HELP comes before TYPE: learn the counter families first.
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let counter_of = |name: &str| counters.contains(&name);
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|tag| Some((tag, line.strip_prefix(tag)?)));
        if let Some((tag, rest)) = meta {
            let (name, tail) = rest.split_at(rest.find(' ').unwrap_or(rest.len()));
            if counter_of(name) {
                out.push_str(&format!("{tag}{name}_total{tail}\n"));
                continue;
            }
        } else if let Some(family) = line
            .split(['{', ' '])
            .next()
            .and_then(|sample| sample.strip_suffix("_created"))
            && counter_of(family)
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A family exported with its HELP and TYPE before its first sample
/// (prometheus-client leaves empty families out), so that every family
/// zentrale has is in `/metrics` from the start: dashboards and alert
/// rules are checked against it (tests/deploy.rs), and a rule on a rare
/// event's counter sees the family before the event.
#[derive(Debug)]
struct Listed<M>(M);

impl<M: EncodeMetric> EncodeMetric for Listed<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

#[derive(Debug)]
struct MediaCollector(Arc<MediaCounters>);

impl Collector for MediaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "rtp_packets_sent",
                "RTP packets sent to callers",
                &self.0.sent,
            ),
            (
                "rtp_packets_received",
                "RTP packets accepted from callers",
                &self.0.received,
            ),
            (
                "rtp_packets_relayed",
                "RTP packets relayed between the caller and agent legs of a call",
                &self.0.relayed,
            ),
            (
                "rtp_srtp_rejected",
                "SRTP packets dropped because they failed authentication or were replays",
                &self.0.srtp_rejected,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_prefixed_families() {
        let m = Metrics::new();
        m.response_sent(404);
        m.rejected("source_not_allowed");
        let text = m.encode();
        assert!(
            text.contains("zentrale_sip_responses_total{class=\"4xx\"} 1"),
            "{text}"
        );
        assert!(text.contains("zentrale_sip_rejected_total{reason=\"source_not_allowed\"} 1"));
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    /// Families without a sample yet are listed with HELP and TYPE, so
    /// dashboards and rules can be checked against a fresh daemon.
    #[test]
    fn empty_families_are_listed() {
        let text = Metrics::new().encode_prometheus_text();
        for family in [
            "# TYPE zentrale_surge_rejected_total counter\n",
            "# TYPE zentrale_calls_ended_total counter\n",
            "# TYPE zentrale_queue_wait_seconds histogram\n",
            "# TYPE zentrale_hotline_open gauge\n",
        ] {
            assert!(text.contains(family), "{family} missing in:\n{text}");
        }
        assert!(!text.contains("zentrale_surge_rejected_total{"), "{text}");
    }

    #[test]
    fn every_method_is_counted_under_its_own_name() {
        for (i, method) in METHODS.iter().enumerate() {
            assert_eq!(method_index(method), i, "{method}");
        }
        let m = Metrics::new();
        m.request_received(&Method::Update);
        let text = m.encode();
        assert!(
            text.contains("zentrale_sip_requests_total{method=\"UPDATE\"} 1"),
            "{text}"
        );
        assert!(text.contains("zentrale_sip_requests_total{method=\"ACK\"} 0"));
    }

    /// A scrape clock that moves only when the test moves it.
    fn virtual_clock(start: Instant) -> (ScrapeClock, Arc<std::sync::Mutex<Instant>>) {
        let now = Arc::new(std::sync::Mutex::new(start));
        let read = now.clone();
        (ScrapeClock::new(move || *read.lock().unwrap()), now)
    }

    /// The per-origin figures of a queue come out with the origin's labels,
    /// before any judged call as NaN, then as the segment's own ratio.
    #[test]
    fn queue_origin_families_carry_municipality_and_via() {
        use crate::acd::{Acd, AcdSpec, CallKey, QueueSpec, Segment};
        let t0 = Instant::now();
        let spec = AcdSpec {
            queues: vec![QueueSpec::new(
                "kreis-pinneberg/115",
                "kreis-pinneberg",
                "general",
            )],
            ..AcdSpec::default()
        };
        let acd = Arc::new(Acd::new(spec, t0).unwrap());
        let quickborn = Segment {
            municipality: Arc::from("Quickborn"),
            via_115: false,
        };
        let labels =
            "{tenant=\"kreis-pinneberg\",queue=\"115\",municipality=\"Quickborn\",via=\"local\"}";
        acd.enqueue_segment(
            CallKey(1),
            "kreis-pinneberg/115",
            0,
            t0,
            Some(quickborn),
            t0,
        )
        .unwrap();
        let (clock, now) = virtual_clock(t0);
        let mut m = Metrics::new();
        m.watch_acd(acd.clone(), clock);
        let text = m.encode_prometheus_text();
        assert!(
            text.contains(&format!(
                "zentrale_queue_origin_calls_entered_total{labels} 1\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!(
            "zentrale_queue_origin_service_level_ratio{labels} NaN\n"
        )));
        *now.lock().unwrap() = t0 + Duration::from_secs(40);
        acd.abandon(CallKey(1), t0 + Duration::from_secs(40))
            .unwrap();
        let text = m.encode_prometheus_text();
        assert!(text.contains(&format!(
            "zentrale_queue_origin_calls_abandoned_total{labels} 1\n"
        )));
        assert!(text.contains(&format!(
            "zentrale_queue_origin_service_level_ratio{labels} 0.0\n"
        )));
        assert!(
            text.contains(
                "# TYPE zentrale_queue_origin_calls_answered_in_threshold_total counter\n"
            )
        );
    }

    /// Queue figures are read at the scrape clock's now, not the real
    /// time: a caller who joined at t0 has waited exactly what the virtual
    /// clock says, and a sliding window ends there.
    #[test]
    fn queue_figures_follow_the_scrape_clock() {
        use crate::acd::{Acd, AcdSpec, CallKey, QueueSpec, ServiceLevelSpec};
        let t0 = Instant::now();
        let spec = AcdSpec {
            queues: vec![QueueSpec {
                service_level: Some(ServiceLevelSpec {
                    window: Duration::from_secs(600),
                    ..ServiceLevelSpec::default()
                }),
                ..QueueSpec::new("kassel/115", "kassel", "general")
            }],
            ..AcdSpec::default()
        };
        let acd = Arc::new(Acd::new(spec, t0).unwrap());
        let (clock, now) = virtual_clock(t0);
        let mut m = Metrics::new();
        m.watch_acd(acd.clone(), clock);
        let labels = "{tenant=\"kassel\",queue=\"115\"}";
        let sample = |text: &str, family: &str| {
            let line = format!("zentrale_{family}{labels} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&line))
                .unwrap_or_else(|| panic!("no {line} in {text}"))
                .to_owned()
        };

        acd.enqueue(CallKey(1), "kassel/115", 0, t0).unwrap();
        *now.lock().unwrap() = t0 + Duration::from_secs(95);
        let text = m.encode_prometheus_text();
        assert_eq!(sample(&text, "queue_longest_wait_seconds"), "95.0");

        // Abandoned after 95 s (past the 30 s threshold): a judged call
        // out of time while inside the window, none once it slid past.
        acd.abandon(CallKey(1), t0 + Duration::from_secs(95))
            .unwrap();
        let text = m.encode_prometheus_text();
        assert_eq!(sample(&text, "queue_longest_wait_seconds"), "0.0");
        assert_eq!(sample(&text, "queue_service_level_ratio"), "0.0");
        *now.lock().unwrap() = t0 + Duration::from_secs(95 + 601);
        let text = m.encode_prometheus_text();
        assert_eq!(sample(&text, "queue_service_level_ratio"), "NaN");
    }

    #[test]
    fn prometheus_text_names_counter_families_with_total() {
        let m = Metrics::new();
        m.rejected("malformed");
        m.observe_wait("kassel/115", Duration::from_secs(12));
        let text = m.encode_prometheus_text();
        assert!(
            text.contains("# HELP zentrale_sip_rejected_total SIP messages refused before routing"),
            "{text}"
        );
        assert!(text.contains("# TYPE zentrale_sip_rejected_total counter\n"));
        assert!(text.contains("zentrale_sip_rejected_total{reason=\"malformed\"} 1\n"));
        // Other families keep their names.
        assert!(text.contains("# TYPE zentrale_calls_active gauge\n"));
        assert!(text.contains("# TYPE zentrale_queue_wait_seconds histogram\n"));
        assert!(
            text.contains("zentrale_queue_wait_seconds_count{tenant=\"kassel\",queue=\"115\"} 1\n")
        );
        assert!(!text.contains("# EOF"));
        // A family whose name only starts like a counter's is left alone,
        // and a counter's _created sample is dropped.
        let om = "# TYPE a counter\na_total 1\na_created 17\n# TYPE ab gauge\nab 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# TYPE a_total counter\na_total 1\n# TYPE ab gauge\nab 2\n"
        );
    }
}

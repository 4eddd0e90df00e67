//! Queue and agent figures, read from the ACD at scrape time.
//!
//! Labels are `tenant` and `queue` (the queue's id within its tenant);
//! agents appear only as counts by state, never by name (DESIGN: privacy,
//! wallboards show group figures).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::ScrapeClock;
use crate::acd::{Acd, QueueCounters, QueueSnapshot, Segment, ServiceLevel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub tenant: String,
    pub queue: String,
}

impl QueueLabels {
    /// Labels of an ACD queue name `tenant/queue`.
    pub fn of(name: &str) -> QueueLabels {
        match name.split_once('/') {
            Some((tenant, queue)) => QueueLabels {
                tenant: tenant.into(),
                queue: queue.into(),
            },
            None => QueueLabels {
                tenant: String::new(),
                queue: name.into(),
            },
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueReasonLabels {
    tenant: String,
    queue: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueStateLabels {
    tenant: String,
    queue: String,
    state: String,
}

/// A queue's figures for the callers of one origin segment.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueOriginLabels {
    tenant: String,
    queue: String,
    /// The municipality the callers meant.
    municipality: String,
    /// `115` or `local`.
    via: String,
}

impl QueueOriginLabels {
    fn of(queue: &str, segment: &Segment) -> QueueOriginLabels {
        let QueueLabels { tenant, queue } = QueueLabels::of(queue);
        QueueOriginLabels {
            tenant,
            queue,
            municipality: segment.municipality.to_string(),
            via: crate::dialplan::via_label(segment.via_115).into(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantStateLabels {
    tenant: String,
    state: String,
}

/// Exports the ACD's live figures as they stand at the clock's now.
#[derive(Debug)]
pub struct AcdCollector {
    pub acd: Arc<Acd>,
    pub clock: ScrapeClock,
}

type Pick = fn(&QueueSnapshot) -> f64;
type Count = fn(&QueueSnapshot) -> u64;
type SegmentCount = fn(&QueueCounters) -> u64;

/// The service level as a ratio; NaN before any judged call (a gauge
/// cannot be absent for one label set and present for another).
fn ratio(sl: &ServiceLevel) -> f64 {
    sl.percent.map_or(f64::NAN, |p| p / 100.0)
}

impl Collector for AcdCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.acd.snapshot(self.clock.now());
        let gauges: [(&str, &str, Pick); 6] = [
            (
                "queue_waiting",
                "Callers in the queue, including those ringing at an agent",
                |q| q.waiting as f64,
            ),
            (
                "queue_longest_wait_seconds",
                "Wait of the longest-waiting caller present",
                |q| q.longest_wait.map_or(0.0, |d| d.as_secs_f64()),
            ),
            (
                "queue_expected_wait_seconds",
                "Expected wait of a caller joining now",
                |q| q.expected_wait.as_secs_f64(),
            ),
            (
                "queue_service_level_ratio",
                "Share of judged calls answered within the threshold, over the sliding window (NaN before any)",
                |q| ratio(&q.service_level),
            ),
            (
                "queue_service_level_target_ratio",
                "The queue's service-level target",
                |q| f64::from(q.service_level.target_percent) / 100.0,
            ),
            (
                "queue_service_level_threshold_seconds",
                "Answered within this wait counts as in time",
                |q| q.service_level.threshold.as_secs_f64(),
            ),
        ];
        for (name, help, pick) in gauges {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for q in &snap.queues {
                let labels = QueueLabels::of(&q.name);
                metric.encode_family(&labels)?.encode_gauge(&pick(q))?;
            }
        }
        let counters: [(&str, &str, Count); 7] = [
            (
                "queue_calls_entered",
                "Callers that entered the queue",
                |q| q.counters.entered,
            ),
            (
                "queue_calls_answered",
                "Callers answered by an agent",
                |q| q.counters.answered,
            ),
            (
                "queue_calls_answered_in_threshold",
                "Callers answered within the service-level threshold",
                |q| q.counters.answered_in_threshold,
            ),
            (
                "queue_calls_abandoned",
                "Callers who hung up while waiting",
                |q| q.counters.abandoned,
            ),
            (
                "queue_calls_timed_out",
                "Callers who reached the queue's maximum wait",
                |q| q.counters.timed_out,
            ),
            (
                "queue_calls_moved_out",
                "Callers moved on to another queue",
                |q| q.counters.moved_out,
            ),
            (
                "queue_offers_unanswered",
                "Offers agents did not take (ring timeout, busy, declined, unreachable)",
                |q| q.counters.offers_unanswered,
            ),
        ];
        for (name, help, pick) in counters {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for q in &snap.queues {
                let labels = QueueLabels::of(&q.name);
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&pick(q), None)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "queue_calls_rejected",
            "Callers not admitted, by reason (full, wait_too_long, no_agents)",
            None,
            MetricType::Counter,
        )?;
        for q in &snap.queues {
            let QueueLabels { tenant, queue } = QueueLabels::of(&q.name);
            for (reason, value) in [
                ("full", q.counters.rejected_full),
                ("wait_too_long", q.counters.rejected_wait_too_long),
                ("no_agents", q.counters.rejected_no_agents),
            ] {
                let labels = QueueReasonLabels {
                    tenant: tenant.clone(),
                    queue: queue.clone(),
                    reason: reason.into(),
                };
                metric
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "queue_origin_service_level_ratio",
            "Share of judged calls of one origin (municipality, via 115 or local) answered within the queue's threshold, over the queue's window (NaN before any)",
            None,
            MetricType::Gauge,
        )?;
        for q in &snap.queues {
            for s in &q.segments {
                let labels = QueueOriginLabels::of(&q.name, &s.segment);
                metric
                    .encode_family(&labels)?
                    .encode_gauge(&ratio(&s.service_level))?;
            }
        }
        let segment_counters: [(&str, &str, SegmentCount); 5] = [
            (
                "queue_origin_calls_entered",
                "Callers of one origin that entered the queue",
                |c| c.entered,
            ),
            (
                "queue_origin_calls_answered",
                "Callers of one origin answered by an agent",
                |c| c.answered,
            ),
            (
                "queue_origin_calls_answered_in_threshold",
                "Callers of one origin answered within the queue's service-level threshold",
                |c| c.answered_in_threshold,
            ),
            (
                "queue_origin_calls_abandoned",
                "Callers of one origin who hung up while waiting",
                |c| c.abandoned,
            ),
            (
                "queue_origin_calls_timed_out",
                "Callers of one origin who reached the queue's maximum wait",
                |c| c.timed_out,
            ),
        ];
        for (name, help, pick) in segment_counters {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for q in &snap.queues {
                for s in &q.segments {
                    let labels = QueueOriginLabels::of(&q.name, &s.segment);
                    metric
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&pick(&s.counters), None)?;
                }
            }
        }
        let mut metric = encoder.encode_descriptor(
            "queue_agents",
            "Agents who can serve the queue, by state",
            None,
            MetricType::Gauge,
        )?;
        for q in &snap.queues {
            let QueueLabels { tenant, queue } = QueueLabels::of(&q.name);
            for (state, n) in q.agents.by_state() {
                let labels = QueueStateLabels {
                    tenant: tenant.clone(),
                    queue: queue.clone(),
                    state: state.into(),
                };
                metric.encode_family(&labels)?.encode_gauge(&(n as i64))?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "agents",
            "Agents of each tenant, by state",
            None,
            MetricType::Gauge,
        )?;
        for t in &snap.tenants {
            for (state, n) in t.agents.by_state() {
                let labels = TenantStateLabels {
                    tenant: t.tenant.to_string(),
                    state: state.into(),
                };
                metric.encode_family(&labels)?.encode_gauge(&(n as i64))?;
            }
        }
        Ok(())
    }
}

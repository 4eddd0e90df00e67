//! Which hotlines and queues are within their service hours, read at
//! scrape time: `zentrale_hotline_open{tenant,hotline}` and
//! `zentrale_queue_open{tenant,queue}` (1 open, 0 closed).
//!
//! Prometheus cannot know a dialplan's hours, holidays and closures, so
//! alert rules that only matter while callers can get through ("service
//! level under target", "no agent logged in") join on these gauges.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::ScrapeClock;
use crate::config::Config;
use crate::dialplan::QueueRef;
use crate::dialplan::{Dialplan, Openness, Schedule};
use crate::wallclock::WallClock;

/// The hours of the running config and the daemon's wall clock; empty
/// (no samples) until [`ServiceHours::set`].
#[derive(Debug, Default)]
pub struct ServiceHours {
    view: ArcSwapOption<HoursView>,
}

/// What a scrape needs of a config.
struct HoursView {
    clock: WallClock,
    /// When a scrape happens, on the monotonic clock `clock` maps from.
    now: ScrapeClock,
    /// `(tenant, hotline, hours)`; `None`: open around the clock.
    hotlines: Vec<(String, String, Option<Schedule>)>,
    queues: Vec<QueueRef>,
    /// For the queues' hours, decided as the overflow decides them.
    dialplan: Dialplan,
}

impl std::fmt::Debug for HoursView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoursView")
            .field("hotlines", &self.hotlines.len())
            .field("queues", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl ServiceHours {
    /// Starts exporting the hours of `config` on `clock` (the daemon's,
    /// which `--clock` may have moved), read at `now`'s time.
    pub fn set(&self, config: &Config, clock: WallClock, now: ScrapeClock) {
        self.view
            .store(Some(Arc::new(HoursView::of(config, clock, now))));
    }

    /// A reloaded config: its hotlines and hours replace the old ones (on
    /// the same clock). Nothing before [`ServiceHours::set`].
    pub fn update(&self, config: &Config) {
        if let Some(old) = self.view.load_full() {
            self.set(config, old.clock, old.now.clone());
        }
    }
}

impl HoursView {
    fn of(config: &Config, clock: WallClock, now: ScrapeClock) -> HoursView {
        HoursView {
            clock,
            now,
            hotlines: config
                .tenants
                .iter()
                .flat_map(|t| {
                    t.dialplan
                        .hotlines
                        .iter()
                        .map(|h| (t.id.clone(), h.id.clone(), h.schedule.clone()))
                })
                .collect(),
            queues: config.queues().map(|q| q.reference()).collect(),
            dialplan: config.dialplan(),
        }
    }
}

/// Exports [`ServiceHours`].
#[derive(Debug)]
pub(super) struct HoursCollector(pub(super) Arc<ServiceHours>);

impl Collector for HoursCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let view = self.0.view.load();
        let at = view.as_ref().map(|v| v.clock.at(v.now.now()));
        let mut metric = encoder.encode_descriptor(
            "hotline_open",
            "1 while the hotline is within its service hours (no holiday, no closure), else 0",
            None,
            MetricType::Gauge,
        )?;
        if let (Some(v), Some(at)) = (view.as_ref(), at) {
            for (tenant, hotline, hours) in &v.hotlines {
                let open = hours
                    .as_ref()
                    .is_none_or(|s| s.is_open(at) == Openness::Open);
                metric
                    .encode_family(&[("tenant", tenant.as_str()), ("hotline", hotline)])?
                    .encode_gauge(&i64::from(open))?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "queue_open",
            "1 while the queue is within its service hours (those of the hotline leading to it, else its tenant's), else 0",
            None,
            MetricType::Gauge,
        )?;
        if let (Some(v), Some(at)) = (view.as_ref(), at) {
            for q in &v.queues {
                let open = v.dialplan.queue_open(q, at);
                metric
                    .encode_family(&[("tenant", q.tenant.as_str()), ("queue", &q.queue)])?
                    .encode_gauge(&i64::from(open))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    fn demo() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml");
        Config::load(&path, &Overrides::default()).expect("the demo config loads")
    }

    fn exposition(hours: Arc<ServiceHours>) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(HoursCollector(hours)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    /// Monday morning everything is open; Monday afternoon the Quickborn
    /// town hall (mornings, and Thursday afternoons) is closed while the
    /// district's 115 is not; on Christmas Eve (a closure of the district)
    /// the district's hotline and queue are closed. The afternoon comes
    /// on the scrape clock, a virtual one that never runs by itself.
    #[test]
    fn open_follows_the_dialplans_hours_holidays_and_closures() {
        let config = demo();
        let hours = Arc::new(ServiceHours::default());
        let text = exposition(hours.clone());
        assert!(text.contains("# TYPE hotline_open gauge\n"), "{text}");
        assert!(
            !text.contains("hotline_open{"),
            "no samples before set: {text}"
        );

        let t0 = Instant::now();
        let now = Arc::new(Mutex::new(t0));
        let scrape = ScrapeClock::new({
            let now = now.clone();
            move || *now.lock().unwrap()
        });
        let at = |instant: &str| WallClock::new(t0, instant.parse().unwrap());
        hours.set(&config, at("2026-11-23T10:00:00+01:00"), scrape.clone());
        let text = exposition(hours.clone());
        assert!(text.contains("hotline_open{tenant=\"quickborn\",hotline=\"rathaus\"} 1\n"));
        assert!(text.contains("queue_open{tenant=\"quickborn\",queue=\"rathaus\"} 1\n"));
        assert!(text.contains("hotline_open{tenant=\"kreis-pinneberg\",hotline=\"115\"} 1\n"));

        *now.lock().unwrap() = t0 + Duration::from_secs(5 * 3600);
        let text = exposition(hours.clone());
        assert!(
            text.contains("hotline_open{tenant=\"quickborn\",hotline=\"rathaus\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("queue_open{tenant=\"quickborn\",queue=\"rathaus\"} 0\n"));
        assert!(text.contains("queue_open{tenant=\"kreis-pinneberg\",queue=\"115\"} 1\n"));

        *now.lock().unwrap() = t0;
        hours.set(&config, at("2026-12-24T10:00:00+01:00"), scrape);
        let text = exposition(hours.clone());
        assert!(
            text.contains("hotline_open{tenant=\"kreis-pinneberg\",hotline=\"115\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("queue_open{tenant=\"kreis-pinneberg\",queue=\"115\"} 0\n"));

        // A reload keeps the clock and takes the new hotlines.
        let mut fewer = config.clone();
        fewer.tenants.retain(|t| t.id != "quickborn");
        hours.update(&fewer);
        let text = exposition(hours);
        assert!(!text.contains("quickborn"), "{text}");
        assert!(text.contains("hotline_open{tenant=\"kreis-pinneberg\",hotline=\"115\"} 0\n"));
    }
}

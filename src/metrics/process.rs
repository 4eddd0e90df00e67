//! The standard `process_*` figures (CPU, memory, file descriptors, start
//! time), read from `/proc/self` at scrape time. On systems without `/proc`
//! the families are simply absent.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads `/proc/self` on every scrape.
#[derive(Debug)]
pub struct ProcessCollector {
    /// Wall-clock start, seconds since the epoch.
    start_time: f64,
}

impl ProcessCollector {
    pub fn new() -> ProcessCollector {
        let start_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        ProcessCollector { start_time }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// Fields of `/proc/self/stat` after the command name.
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; everything after its ')' splits cleanly.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn clock_ticks() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux we run on; the kernel's
    // USER_HZ is fixed at 100 for /proc.
    100.0
}

/// `VmRSS` of `/proc/self/status` (in kB there), independent of page size.
fn resident_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(f) = stat_fields() else {
            return Ok(());
        };
        // After ')': state is field 0, utime 11, stime 12, num_threads 17.
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let cpu = (num(11) + num(12)) / clock_ticks();
        let rss = resident_bytes().unwrap_or(0.0);
        let threads = num(17);
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64;

        let counter = ConstCounter::new(cpu);
        counter.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent",
            None,
            counter.metric_type(),
        )?)?;
        for (name, help, value) in [
            ("process_resident_memory_bytes", "Resident memory size", rss),
            ("process_open_fds", "Open file descriptors", fds),
            ("process_threads", "OS threads", threads),
            (
                "process_start_time_seconds",
                "Start time since the Unix epoch",
                self.start_time,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

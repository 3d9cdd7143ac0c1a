//! The process metrics etcd exports (Go's process collector), read from
//! /proc when scraped: CPU time, memory, file descriptors, start time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

const PAGE: u64 = 4096;

#[derive(Debug)]
pub struct Process {
    start_time: f64,
}

impl Process {
    pub fn new() -> Process {
        let start_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Process { start_time }
    }
}

/// RSS of this process from /proc/self/statm (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE)
}

fn virtual_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    Some(pages * PAGE)
}

/// User plus system CPU seconds (fields 14 and 15 of /proc/self/stat).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: count fields after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks per second are 100 on Linux.
    Some((utime + stime) / 100.0)
}

fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn put(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(v) = cpu_seconds() {
            put(
                &mut e,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                ConstCounter::new(v),
            )?;
        }
        if let Some(v) = resident_memory_bytes() {
            put(
                &mut e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                ConstGauge::new(v as i64),
            )?;
        }
        if let Some(v) = virtual_memory_bytes() {
            put(
                &mut e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                ConstGauge::new(v as i64),
            )?;
        }
        let fds = open_fds();
        let limit = max_fds();
        if let Some(v) = fds {
            put(
                &mut e,
                "process_open_fds",
                "Number of open file descriptors.",
                ConstGauge::new(v as i64),
            )?;
            put(
                &mut e,
                "os_fd_used",
                "The number of used file descriptors.",
                ConstGauge::new(v as i64),
            )?;
        }
        if let Some(v) = limit {
            put(
                &mut e,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                ConstGauge::new(v as i64),
            )?;
            put(
                &mut e,
                "os_fd_limit",
                "The file descriptor limit.",
                ConstGauge::new(v as i64),
            )?;
        }
        put(
            &mut e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            ConstGauge::new(self.start_time),
        )?;
        Ok(())
    }
}

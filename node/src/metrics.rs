//! Prometheus metrics under etcd's names, rendered in the text format on
//! `/metrics`. Only what ferrocd really measures is exported.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A cumulative histogram with fixed upper bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    inner: Mutex<(Vec<u64>, f64, u64)>,
}

impl Histogram {
    /// etcd's disk histograms: exponential buckets from 1 ms, factor 2, 14 buckets.
    pub fn disk() -> Histogram {
        let bounds: Vec<f64> = (0..14).map(|i| 0.001 * f64::powi(2.0, i)).collect();
        Histogram {
            inner: Mutex::new((vec![0; bounds.len()], 0.0, 0)),
            bounds,
        }
    }

    pub fn observe(&self, secs: f64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (i, b) in self.bounds.iter().enumerate() {
            if secs <= *b {
                g.0[i] += 1;
            }
        }
        g.1 += secs;
        g.2 += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in self.bounds.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", g.0[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", g.2);
        let _ = writeln!(out, "{name}_sum {}", g.1);
        let _ = writeln!(out, "{name}_count {}", g.2);
    }
}

/// Every metric a member exports.
#[derive(Debug)]
pub struct Metrics {
    pub proposals_committed: AtomicU64,
    pub proposals_applied: AtomicU64,
    pub proposals_failed: AtomicU64,
    pub proposals_pending: AtomicU64,
    pub range_total: AtomicU64,
    pub put_total: AtomicU64,
    pub delete_total: AtomicU64,
    pub txn_total: AtomicU64,
    pub watchers: AtomicU64,
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            proposals_committed: AtomicU64::new(0),
            proposals_applied: AtomicU64::new(0),
            proposals_failed: AtomicU64::new(0),
            proposals_pending: AtomicU64::new(0),
            range_total: AtomicU64::new(0),
            put_total: AtomicU64::new(0),
            delete_total: AtomicU64::new(0),
            txn_total: AtomicU64::new(0),
            watchers: AtomicU64::new(0),
            wal_fsync: Histogram::disk(),
            backend_commit: Histogram::disk(),
        }
    }
}

/// Values read at render time rather than counted.
pub struct Gauges {
    pub has_leader: bool,
    pub is_leader: bool,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub quota_bytes: u64,
    pub keys: Option<u64>,
}

impl Metrics {
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, v: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            u8::from(g.has_leader).to_string(),
        );
        gauge(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            u8::from(g.is_leader).to_string(),
        );
        gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            g.db_size.to_string(),
        );
        gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            g.db_size_in_use.to_string(),
        );
        gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            g.quota_bytes.to_string(),
        );
        gauge(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            self.proposals_pending.load(Ordering::Relaxed).to_string(),
        );
        if let Some(k) = g.keys {
            gauge(
                "etcd_debugging_mvcc_keys_total",
                "Total number of keys.",
                k.to_string(),
            );
        }
        gauge(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers.",
            self.watchers.load(Ordering::Relaxed).to_string(),
        );
        if let Some(rss) = resident_memory_bytes() {
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss.to_string(),
            );
        }
        let mut counter = |name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            &self.proposals_committed,
        );
        counter(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            &self.proposals_applied,
        );
        counter(
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
            &self.proposals_failed,
        );
        counter(
            "etcd_mvcc_range_total",
            "Total number of ranges seen by this member.",
            &self.range_total,
        );
        counter(
            "etcd_mvcc_put_total",
            "Total number of puts seen by this member.",
            &self.put_total,
        );
        counter(
            "etcd_mvcc_delete_total",
            "Total number of deletes seen by this member.",
            &self.delete_total,
        );
        counter(
            "etcd_mvcc_txn_total",
            "Total number of txns seen by this member.",
            &self.txn_total,
        );
        let _ = writeln!(
            out,
            "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n# TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{}\"}} 1",
            crate::ETCD_VERSION
        );
        self.wal_fsync.render(
            &mut out,
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
        );
        self.backend_commit.render(
            &mut out,
            "etcd_disk_backend_commit_duration_seconds",
            "The latency distributions of commit called by backend.",
        );
        out
    }
}

/// RSS of this process from /proc (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

//! The operator's own metrics, in Prometheus' text format: reconciles,
//! failures by error kind, reconcile duration, membership steps.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    steps: Mutex<BTreeMap<&'static str, u64>>,
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
    backup_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Per `namespace/cluster`: the last successful backup (Unix seconds).
    backup_last_success: Mutex<BTreeMap<(String, String), i64>>,
}

/// The `reason` label of a backup failure (a fixed set, as labels must be).
pub fn reason_label(reason: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "Credentials",
        "ObjectStore",
        "LocalDisk",
        "Cluster",
        "Snapshot",
        "ClusterNotFound",
        "JobFailed",
        "Verification",
        "Unexpected",
    ];
    KNOWN
        .iter()
        .find(|k| **k == reason)
        .copied()
        .unwrap_or("Other")
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    if let Ok(mut m) = map.lock() {
        *m.entry(label).or_default() += 1;
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn failed(&self, kind: &'static str) {
        bump(&self.failures, kind);
    }

    pub fn step(&self, kind: &'static str) {
        bump(&self.steps, kind);
    }

    pub fn backup_failed(&self, reason: &'static str) {
        bump(&self.backup_failures, reason);
    }

    pub fn backup_succeeded(&self, ns: &str, cluster: &str, at: k8s_openapi::jiff::Timestamp) {
        if let Ok(mut m) = self.backup_last_success.lock() {
            m.insert((ns.to_string(), cluster.to_string()), at.as_second());
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP ferrocd_operator_reconciles_total Reconciles run."
        );
        let _ = writeln!(out, "# TYPE ferrocd_operator_reconciles_total counter");
        let _ = writeln!(
            out,
            "ferrocd_operator_reconciles_total {}",
            self.reconciles.load(Ordering::Relaxed)
        );
        let labelled = |out: &mut String,
                        name: &str,
                        help: &str,
                        label: &str,
                        map: &Mutex<BTreeMap<&'static str, u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            if let Ok(m) = map.lock() {
                for (k, v) in m.iter() {
                    let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
                }
            }
        };
        labelled(
            &mut out,
            "ferrocd_operator_reconcile_failures_total",
            "Reconciles that failed, by error kind.",
            "error",
            &self.failures,
        );
        labelled(
            &mut out,
            "ferrocd_operator_membership_steps_total",
            "Membership steps carried out, by kind.",
            "step",
            &self.steps,
        );
        labelled(
            &mut out,
            "ferrocd_operator_backup_failures_total",
            "Backups that failed (or did not verify), by reason.",
            "reason",
            &self.backup_failures,
        );
        let name = "ferrocd_operator_backup_last_success_timestamp_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} When the last backup of a cluster succeeded (Unix time)."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        if let Ok(m) = self.backup_last_success.lock() {
            for ((ns, cluster), at) in m.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{ns}\",cluster=\"{cluster}\"}} {at}"
                );
            }
        }
        let name = "ferrocd_operator_reconcile_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time one reconcile took.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = self.duration_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {n}");
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(30));
        m.reconciled(Duration::from_secs(3));
        m.failed("kube");
        m.step("add_learner");
        m.backup_failed(reason_label("Credentials"));
        m.backup_failed(reason_label("something new"));
        m.backup_succeeded("ns", "demo", "2026-12-03T00:00:00Z".parse().unwrap());
        let text = m.render();
        assert!(text.contains("ferrocd_operator_backup_failures_total{reason=\"Credentials\"} 1\n"));
        assert!(text.contains("ferrocd_operator_backup_failures_total{reason=\"Other\"} 1\n"));
        assert!(text.contains(
            "ferrocd_operator_backup_last_success_timestamp_seconds{namespace=\"ns\",cluster=\"demo\"} 1796256000\n"
        ));
        assert!(
            text.contains("ferrocd_operator_reconciles_total 2\n"),
            "{text}"
        );
        assert!(text.contains("ferrocd_operator_reconcile_failures_total{error=\"kube\"} 1\n"));
        assert!(text.contains("ferrocd_operator_membership_steps_total{step=\"add_learner\"} 1\n"));
        assert!(
            text.contains("ferrocd_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 1\n")
        );
        assert!(text.contains("ferrocd_operator_reconcile_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("ferrocd_operator_reconcile_duration_seconds_count 2\n"));
    }
}

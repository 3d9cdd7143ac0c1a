//! The operator's own metrics, in the OpenMetrics text format: reconciles,
//! failures by error kind, reconcile duration, membership steps.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

type Labels = Vec<(&'static str, String)>;

/// The operator's metrics in a prometheus-client registry (OpenMetrics
/// text); the handles below record into it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<Labels, Counter>,
    steps: Family<Labels, Counter>,
    duration: Histogram,
    backup_failures: Family<Labels, Counter>,
    /// Per namespace and cluster: the last successful backup (Unix seconds).
    backup_last_success: Family<Labels, Gauge>,
    /// Per namespace, cluster and phase: 1 for the cluster's phase.
    cluster_phase: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let reconciles = Counter::default();
        let failures = Family::<Labels, Counter>::default();
        let steps = Family::<Labels, Counter>::default();
        let duration = Histogram::new(BUCKETS);
        let backup_failures = Family::<Labels, Counter>::default();
        let backup_last_success = Family::<Labels, Gauge>::default();
        let cluster_phase = Family::<Labels, Gauge>::default();
        // Counters are registered without `_total`: OpenMetrics adds it.
        registry.register(
            "ferrocd_operator_reconciles",
            "Reconciles run.",
            reconciles.clone(),
        );
        registry.register(
            "ferrocd_operator_reconcile_failures",
            "Reconciles that failed, by error kind.",
            failures.clone(),
        );
        registry.register(
            "ferrocd_operator_membership_steps",
            "Membership steps carried out, by kind.",
            steps.clone(),
        );
        registry.register(
            "ferrocd_operator_backup_failures",
            "Backups that failed (or did not verify), by reason.",
            backup_failures.clone(),
        );
        registry.register(
            "ferrocd_operator_backup_last_success_timestamp_seconds",
            "When the last backup of a cluster succeeded (Unix time).",
            backup_last_success.clone(),
        );
        registry.register(
            "ferrocd_operator_cluster_phase",
            "1 for the phase each EtcdCluster is in, 0 for the others.",
            cluster_phase.clone(),
        );
        registry.register(
            "ferrocd_operator_reconcile_duration_seconds",
            "Time one reconcile took.",
            duration.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            steps,
            duration,
            backup_failures,
            backup_last_success,
            cluster_phase,
        }
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

impl Metrics {
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, kind: &'static str) {
        self.failures
            .get_or_create(&vec![("error", kind.to_string())])
            .inc();
    }

    pub fn step(&self, kind: &'static str) {
        self.steps
            .get_or_create(&vec![("step", kind.to_string())])
            .inc();
    }

    pub fn backup_failed(&self, reason: &'static str) {
        self.backup_failures
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn backup_succeeded(&self, ns: &str, cluster: &str, at: k8s_openapi::jiff::Timestamp) {
        let labels = vec![
            ("namespace", ns.to_string()),
            ("cluster", cluster.to_string()),
        ];
        self.backup_last_success
            .get_or_create(&labels)
            .set(at.as_second());
    }

    /// The phase a cluster's status says (alerts watch `Degraded`).
    pub fn cluster_phase(&self, ns: &str, cluster: &str, phase: crate::crd::Phase) {
        use crate::crd::Phase;
        for p in [
            Phase::Pending,
            Phase::Creating,
            Phase::Running,
            Phase::Scaling,
            Phase::Degraded,
            Phase::Deleting,
        ] {
            let labels = vec![
                ("namespace", ns.to_string()),
                ("cluster", cluster.to_string()),
                ("phase", p.to_string()),
            ];
            self.cluster_phase
                .get_or_create(&labels)
                .set(i64::from(p == phase));
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not render the metrics");
        }
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
        m.cluster_phase("ns", "demo", crate::crd::Phase::Degraded);
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
        assert!(text.contains("ferrocd_operator_reconcile_duration_seconds_bucket{le=\"5.0\"} 2\n"));
        assert!(text.contains("ferrocd_operator_reconcile_duration_seconds_count 2\n"));
        assert!(text.contains(
            "ferrocd_operator_cluster_phase{namespace=\"ns\",cluster=\"demo\",phase=\"Degraded\"} 1\n"
        ));
        assert!(text.contains(
            "ferrocd_operator_cluster_phase{namespace=\"ns\",cluster=\"demo\",phase=\"Running\"} 0\n"
        ));
    }
}

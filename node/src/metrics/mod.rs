//! The member's Prometheus metrics under etcd 3.5's names, types, label
//! names and buckets, kept in a prometheus-client registry and rendered in
//! the OpenMetrics text format on `/metrics`. Recording takes no lock:
//! counters and gauges are atomics, histograms are [`Histogram`], and a
//! labelled series is resolved to its handle once (gRPC methods when the
//! member starts, a peer when its connection is made).

pub mod grpc;
pub mod histogram;
mod process;

pub use histogram::Histogram;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub type Counter = prometheus_client::metrics::counter::Counter;
pub type Gauge = prometheus_client::metrics::gauge::Gauge;
type Labels = Vec<(String, String)>;

/// What `--metrics` selects: etcd's `basic` set, or `extensive`, which adds
/// gRPC handling-time histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    #[default]
    Basic,
    Extensive,
}

/// A counter whose etcd name does not end in `_total` (`etcd_server_health_failures`):
/// OpenMetrics would append the suffix to a counter, so it goes out untyped
/// under etcd's exact name.
#[derive(Debug, Clone, Default)]
pub struct PlainCounter(Counter);

impl PlainCounter {
    pub fn inc(&self) {
        self.0.inc();
    }
}

impl EncodeMetric for PlainCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.0.get() as i64))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

/// A peer's series, resolved once per connection.
#[derive(Debug, Clone)]
pub struct PeerMetrics {
    pub sent_bytes: Counter,
    pub sent_failures: Counter,
    pub round_trip: Histogram,
    /// The member-wide `etcd_server_heartbeat_send_failures_total`.
    pub heartbeat_send_failures: Counter,
}

/// Every metric a member exports. Fields are the handles code records
/// into; the registry renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub proposals_committed: Gauge,
    pub proposals_applied: Gauge,
    pub proposals_failed: Counter,
    pub proposals_pending: Gauge,
    pub range_total: Counter,
    pub put_total: Counter,
    pub delete_total: Counter,
    pub txn_total: Counter,
    pub watchers: Gauge,
    pub watch_streams: Gauge,
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
    pub defrag_duration: Histogram,
    pub snapshot_duration: Histogram,
    pub leader_changes: Counter,
    pub heartbeat_send_failures: Counter,
    pub slow_apply: Counter,
    pub health_success: PlainCounter,
    pub health_failures: PlainCounter,
    pub learner_promote_successes: PlainCounter,
    pub lease_granted: Counter,
    pub lease_revoked: Counter,
    pub lease_renewed: Counter,
    pub grpc: grpc::GrpcMetrics,
    peer_sent_bytes: Family<Labels, Counter>,
    peer_received_bytes: Family<Labels, Counter>,
    peer_sent_failures: Family<Labels, Counter>,
    peer_received_failures: Family<Labels, Counter>,
    peer_round_trip: Family<Labels, Histogram, fn() -> Histogram>,
    // Read when rendered (see `Gauges`).
    has_leader: Gauge,
    is_leader: Gauge,
    is_learner: Gauge,
    db_size: Gauge,
    db_size_in_use: Gauge,
    quota_bytes: Gauge,
    keys: Gauge,
    current_revision: Gauge,
    compact_revision: Gauge,
    server_id: Family<Labels, Gauge>,
    cluster_version: Family<Labels, Gauge>,
    server_version: Family<Labels, Gauge>,
}

/// Values read when `/metrics` is served rather than counted.
pub struct Gauges {
    pub member_id: u64,
    pub has_leader: bool,
    pub is_leader: bool,
    pub is_learner: bool,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub quota_bytes: u64,
    pub keys: u64,
    pub current_revision: i64,
    pub compact_revision: i64,
}

fn round_trip_histogram() -> Histogram {
    // etcd's peer round-trip buckets: 0.1 ms doubling, 16 buckets.
    Histogram::new(histogram::exponential(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(Level::Basic)
    }
}

impl Metrics {
    pub fn new(level: Level) -> Metrics {
        let mut r = Registry::default();
        macro_rules! metric {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        // Counters are registered without `_total`: OpenMetrics adds it.
        let m = Metrics {
            proposals_committed: metric!(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
                Gauge::default()
            ),
            proposals_applied: metric!(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
                Gauge::default()
            ),
            proposals_failed: metric!(
                "etcd_server_proposals_failed",
                "The total number of failed proposals seen.",
                Counter::default()
            ),
            proposals_pending: metric!(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
                Gauge::default()
            ),
            range_total: metric!(
                "etcd_mvcc_range",
                "Total number of ranges seen by this member.",
                Counter::default()
            ),
            put_total: metric!(
                "etcd_mvcc_put",
                "Total number of puts seen by this member.",
                Counter::default()
            ),
            delete_total: metric!(
                "etcd_mvcc_delete",
                "Total number of deletes seen by this member.",
                Counter::default()
            ),
            txn_total: metric!(
                "etcd_mvcc_txn",
                "Total number of txns seen by this member.",
                Counter::default()
            ),
            watchers: metric!(
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
                Gauge::default()
            ),
            watch_streams: metric!(
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
                Gauge::default()
            ),
            wal_fsync: metric!(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                Histogram::disk()
            ),
            backend_commit: metric!(
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                Histogram::disk()
            ),
            defrag_duration: metric!(
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation.",
                // etcd: 100 ms doubling, 13 buckets.
                Histogram::new(histogram::exponential(0.1, 2.0, 13))
            ),
            snapshot_duration: metric!(
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                // etcd: 10 ms doubling, 17 buckets.
                Histogram::new(histogram::exponential(0.01, 2.0, 17))
            ),
            leader_changes: metric!(
                "etcd_server_leader_changes_seen",
                "The number of leader changes seen.",
                Counter::default()
            ),
            heartbeat_send_failures: metric!(
                "etcd_server_heartbeat_send_failures",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
                Counter::default()
            ),
            slow_apply: metric!(
                "etcd_server_slow_apply",
                "The total number of slow apply requests (likely overloaded from slow disk).",
                Counter::default()
            ),
            health_success: metric!(
                "etcd_server_health_success",
                "The total number of successful health checks",
                PlainCounter::default()
            ),
            health_failures: metric!(
                "etcd_server_health_failures",
                "The total number of failed health checks",
                PlainCounter::default()
            ),
            learner_promote_successes: metric!(
                "etcd_server_learner_promote_successes",
                "The total number of successful learner promotions while this member is leader.",
                PlainCounter::default()
            ),
            lease_granted: metric!(
                "etcd_debugging_lease_granted",
                "The total number of granted leases.",
                Counter::default()
            ),
            lease_revoked: metric!(
                "etcd_debugging_lease_revoked",
                "The total number of revoked leases.",
                Counter::default()
            ),
            lease_renewed: metric!(
                "etcd_debugging_lease_renewed",
                "The number of renewed leases seen by the leader.",
                Counter::default()
            ),
            grpc: grpc::GrpcMetrics::register(&mut r, level),
            peer_sent_bytes: metric!(
                "etcd_network_peer_sent_bytes",
                "The total number of bytes sent to peers.",
                Family::default()
            ),
            peer_received_bytes: metric!(
                "etcd_network_peer_received_bytes",
                "The total number of bytes received from peers.",
                Family::default()
            ),
            peer_sent_failures: metric!(
                "etcd_network_peer_sent_failures",
                "The total number of send failures from peers.",
                Family::default()
            ),
            peer_received_failures: metric!(
                "etcd_network_peer_received_failures",
                "The total number of receive failures from peers.",
                Family::default()
            ),
            peer_round_trip: metric!(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
                Family::new_with_constructor(round_trip_histogram as fn() -> Histogram)
            ),
            has_leader: metric!(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
                Gauge::default()
            ),
            is_leader: metric!(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                Gauge::default()
            ),
            is_learner: metric!(
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
                Gauge::default()
            ),
            db_size: metric!(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
                Gauge::default()
            ),
            db_size_in_use: metric!(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
                Gauge::default()
            ),
            quota_bytes: metric!(
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
                Gauge::default()
            ),
            keys: metric!(
                "etcd_debugging_mvcc_keys_total",
                "Total number of keys.",
                Gauge::default()
            ),
            current_revision: metric!(
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
                Gauge::default()
            ),
            compact_revision: metric!(
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
                Gauge::default()
            ),
            server_id: metric!(
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                Family::default()
            ),
            cluster_version: metric!(
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                Family::default()
            ),
            server_version: metric!(
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                Family::default()
            ),
            registry: Registry::default(),
        };
        r.register_collector(Box::new(process::Process::new()));
        Metrics { registry: r, ..m }
    }

    /// The series of the peer `to` (hex member ID), for its connection to keep.
    pub fn peer(&self, to: u64) -> PeerMetrics {
        let to = vec![("To".to_string(), format!("{to:x}"))];
        PeerMetrics {
            sent_bytes: self.peer_sent_bytes.get_or_create(&to).clone(),
            sent_failures: self.peer_sent_failures.get_or_create(&to).clone(),
            round_trip: self.peer_round_trip.get_or_create(&to).clone(),
            heartbeat_send_failures: self.heartbeat_send_failures.clone(),
        }
    }

    /// What arrived from the peer `from`: (bytes, failures) counters.
    pub fn peer_received(&self, from: u64) -> (Counter, Counter) {
        let from = vec![("From".to_string(), format!("{from:x}"))];
        (
            self.peer_received_bytes.get_or_create(&from).clone(),
            self.peer_received_failures.get_or_create(&from).clone(),
        )
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self, g: &Gauges) -> String {
        self.has_leader.set(i64::from(g.has_leader));
        self.is_leader.set(i64::from(g.is_leader));
        self.is_learner.set(i64::from(g.is_learner));
        self.db_size.set(g.db_size as i64);
        self.db_size_in_use.set(g.db_size_in_use as i64);
        self.quota_bytes.set(g.quota_bytes as i64);
        self.keys.set(g.keys as i64);
        self.current_revision.set(g.current_revision);
        self.compact_revision.set(g.compact_revision.max(0));
        let one = |f: &Family<Labels, Gauge>, k: &str, v: String| {
            f.get_or_create(&vec![(k.to_string(), v)]).set(1);
        };
        one(&self.server_id, "server_id", format!("{:x}", g.member_id));
        one(
            &self.cluster_version,
            "cluster_version",
            crate::ETCD_CLUSTER_VERSION.to_string(),
        );
        one(
            &self.server_version,
            "server_version",
            crate::ETCD_VERSION.to_string(),
        );
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not render the metrics");
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// RSS of this process from /proc (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    process::resident_memory_bytes()
}

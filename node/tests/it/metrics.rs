//! `/metrics` beside etcd 3.5's: a 3-member etcd and a 3-member ferrocd get
//! the same traffic (puts, ranges, a failed request, a watch, a lease, a
//! defrag, a snapshot, a leader move); every metric README lists is present
//! on ferrocd's leader and followers with etcd's type and label names, and
//! moves as etcd's does.

use crate::cluster::{connect_all, leader_index, status_of};
use crate::support::client::Client;
use crate::support::{http_get, Cluster, Kind};
use ferrocd_proto::etcdserverpb::{
    watch_request, DefragmentRequest, LeaseGrantRequest, LeaseKeepAliveRequest, MoveLeaderRequest,
    PutRequest, RangeRequest, SnapshotRequest, WatchCreateRequest, WatchRequest,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The metrics README's "Metrics" section lists (under etcd's sample names).
pub const LISTED: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_is_learner",
    "etcd_server_id",
    "etcd_server_version",
    "etcd_cluster_version",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_slow_apply_total",
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_server_learner_promote_successes",
    "etcd_server_quota_backend_bytes",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_mvcc_range_total",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_txn_total",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_current_revision",
    "etcd_debugging_mvcc_compact_revision",
    "etcd_debugging_lease_granted_total",
    "etcd_debugging_lease_revoked_total",
    "etcd_debugging_lease_renewed_total",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_disk_backend_defrag_duration_seconds",
    "etcd_disk_backend_snapshot_duration_seconds",
    "etcd_network_client_grpc_received_bytes_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_peer_sent_bytes_total",
    "etcd_network_peer_received_bytes_total",
    "etcd_network_peer_round_trip_time_seconds",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "os_fd_used",
    "os_fd_limit",
];

/// Counters whose etcd name lacks `_total`: OpenMetrics cannot call them
/// counters under that name, so ferrocd sends them untyped (README).
const UNTYPED: &[&str] = &[
    "etcd_server_health_success",
    "etcd_server_health_failures",
    "etcd_server_learner_promote_successes",
];

/// One exposition: per metric (etcd's sample name of the family), its type,
/// label names, and samples (labels rendered, value).
#[derive(Default, Debug)]
struct Exposition {
    types: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeSet<String>>,
    samples: BTreeMap<String, Vec<(String, f64)>>,
}

impl Exposition {
    /// Reads Prometheus' text format (etcd) or OpenMetrics (ferrocd): a
    /// counter family `x` of OpenMetrics is etcd's `x_total`.
    fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        let open_metrics = text.trim_end().ends_with("# EOF");
        let mut families: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let name = if open_metrics && kind == "counter" && !name.ends_with("_total") {
                    format!("{name}_total")
                } else {
                    name.to_string()
                };
                families.push((name.clone(), kind.to_string()));
                e.types.insert(name, kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
            let (sample, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let family = families
                .iter()
                .rev()
                .find(|(f, _)| {
                    sample == f
                        || sample
                            .strip_prefix(f.as_str())
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
                        || f.strip_suffix("_total") == Some(sample)
                })
                .map(|(f, _)| f.clone())
                .unwrap_or_else(|| sample.to_string());
            let names: BTreeSet<String> = labels
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
                .filter(|k| k != "le")
                .collect();
            e.labels.entry(family.clone()).or_default().extend(names);
            let value = value.parse::<f64>().unwrap_or(f64::NAN);
            e.samples
                .entry(family)
                .or_default()
                .push((format!("{sample}{{{labels}}}"), value));
        }
        e
    }

    /// The sum of a metric's samples whose rendering contains every `part`.
    fn sum(&self, metric: &str, parts: &[&str]) -> f64 {
        self.samples
            .get(metric)
            .map(|s| {
                s.iter()
                    .filter(|(l, _)| parts.iter().all(|p| l.contains(p)))
                    .map(|(_, v)| v)
                    .sum()
            })
            .unwrap_or(0.0)
    }
}

/// The same traffic on either cluster, then each member's exposition
/// (with the index of the leader before the move and of the target).
async fn traffic(cluster: &Cluster) -> (Vec<Exposition>, usize, usize) {
    let mut clients = connect_all(cluster).await;
    let leader = leader_index(&mut clients).await;
    let target = (leader + 1) % 3;
    let c: &mut Client = &mut clients[target];
    for i in 0..20 {
        c.kv.put(PutRequest {
            key: format!("m/{i}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .expect("put");
    }
    for _ in 0..10 {
        c.kv.range(RangeRequest {
            key: b"m/1".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range");
    }
    let failed =
        c.kv.range(RangeRequest {
            key: b"m/1".to_vec(),
            revision: 1000,
            ..Default::default()
        })
        .await
        .expect_err("a future revision");
    assert_eq!(failed.code(), tonic::Code::OutOfRange);
    // A watch that sees one event.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"w".to_vec(),
                ..Default::default()
            },
        )),
    })
    .await
    .expect("watch create");
    let mut watch = c
        .watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("watch")
        .into_inner();
    watch.message().await.expect("created").expect("created");
    c.kv.put(PutRequest {
        key: b"w".to_vec(),
        value: b"1".to_vec(),
        ..Default::default()
    })
    .await
    .expect("put w");
    watch.message().await.expect("event").expect("event");
    // A lease, kept alive once.
    let lease = c
        .lease
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .expect("grant")
        .into_inner()
        .id;
    let mut ka = c
        .lease
        .lease_keep_alive(futures::stream::iter([LeaseKeepAliveRequest { id: lease }]))
        .await
        .expect("keep alive")
        .into_inner();
    ka.message().await.expect("keep-alive answer");
    c.maintenance
        .defragment(DefragmentRequest {})
        .await
        .expect("defragment");
    let mut snap = c
        .maintenance
        .snapshot(SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    while snap.message().await.expect("snapshot chunk").is_some() {}
    // Move leadership to the target.
    let target_id = status_of(c)
        .await
        .expect("status")
        .header
        .expect("header")
        .member_id;
    clients[leader]
        .maintenance
        .move_leader(MoveLeaderRequest { target_id })
        .await
        .expect("move leader");
    let deadline = Instant::now() + Duration::from_secs(20);
    while leader_index(&mut clients).await != target {
        assert!(Instant::now() < deadline, "leadership did not move");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(watch);
    // etcd probes peers' round trips every few seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let expositions = cluster
        .members
        .iter()
        .map(|m| {
            let (code, text) = http_get(&m.endpoint(), "/metrics").expect("/metrics");
            assert_eq!(code, 200);
            Exposition::parse(&text)
        })
        .collect();
    (expositions, leader, target)
}

/// A property of the members' expositions, given the old and new leader.
type Check = Box<dyn Fn(&[Exposition], usize, usize) -> bool>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_etcds_in_name_type_labels_and_movement() {
    let etcd = tokio::task::spawn_blocking(|| Cluster::start(Kind::Etcd, 3, &[]))
        .await
        .expect("etcd");
    let ferrocd = tokio::task::spawn_blocking(|| Cluster::start(Kind::Ferrocd, 3, &[]))
        .await
        .expect("ferrocd");
    let (e, e_old, e_new) = traffic(&etcd).await;
    let (f, f_old, f_new) = traffic(&ferrocd).await;
    let mut problems = Vec::new();
    for name in LISTED {
        let etcd_type = e.iter().find_map(|x| x.types.get(*name));
        let Some(etcd_type) = etcd_type else {
            problems.push(format!("{name}: etcd 3.5 does not export it"));
            continue;
        };
        let etcd_labels = e
            .iter()
            .find_map(|x| x.labels.get(*name))
            .cloned()
            .unwrap_or_default();
        for (i, x) in f.iter().enumerate() {
            let Some(t) = x.types.get(*name) else {
                problems.push(format!("{name}: missing on ferrocd member {i}"));
                continue;
            };
            let want = if UNTYPED.contains(name) {
                "unknown"
            } else {
                etcd_type.as_str()
            };
            if t != want {
                problems.push(format!(
                    "{name}: type {t} on ferrocd member {i}, etcd's is {etcd_type}"
                ));
            }
            let labels = x.labels.get(*name).cloned().unwrap_or_default();
            if labels != etcd_labels {
                problems.push(format!(
                    "{name}: labels {labels:?} on ferrocd member {i}, etcd's {etcd_labels:?}"
                ));
            }
        }
    }
    // Values move as etcd's do.
    let checks: Vec<(&str, Check)> = vec![
        (
            "a leader change after the move (the new leader saw two leaders)",
            Box::new(|x, _, new| x[new].sum("etcd_server_leader_changes_seen_total", &[]) >= 2.0),
        ),
        (
            "the failed Range counted with code OutOfRange",
            Box::new(|x, old, _| {
                x[(old + 1) % 3].sum(
                    "grpc_server_handled_total",
                    &["grpc_code=\"OutOfRange\"", "grpc_method=\"Range\""],
                ) >= 1.0
            }),
        ),
        (
            "21 puts handled OK",
            Box::new(|x, old, _| {
                x[(old + 1) % 3].sum(
                    "grpc_server_handled_total",
                    &["grpc_code=\"OK\"", "grpc_method=\"Put\""],
                ) >= 21.0
            }),
        ),
        (
            "a Watch stream started",
            Box::new(|x, old, _| {
                x[(old + 1) % 3].sum(
                    "grpc_server_started_total",
                    &["grpc_method=\"Watch\"", "grpc_type=\"bidi_stream\""],
                ) >= 1.0
            }),
        ),
        (
            "messages received on the stream",
            Box::new(|x, old, _| {
                x[(old + 1) % 3].sum("grpc_server_msg_received_total", &["grpc_method=\"Watch\""])
                    >= 1.0
            }),
        ),
        (
            "bytes from clients",
            Box::new(|x, old, _| {
                x[(old + 1) % 3].sum("etcd_network_client_grpc_received_bytes_total", &[]) > 0.0
            }),
        ),
        (
            "a lease granted on every member",
            Box::new(|x, _, _| {
                x.iter()
                    .all(|m| m.sum("etcd_debugging_lease_granted_total", &[]) >= 1.0)
            }),
        ),
        (
            "a defragmentation timed",
            Box::new(|x, old, _| {
                x[(old + 1) % 3].sum("etcd_disk_backend_defrag_duration_seconds", &["_count"])
                    >= 1.0
            }),
        ),
        (
            "a snapshot timed",
            Box::new(|x, old, _| {
                x[(old + 1) % 3].sum("etcd_disk_backend_snapshot_duration_seconds", &["_count"])
                    >= 1.0
            }),
        ),
        (
            "peers' bytes counted both ways",
            Box::new(|x, old, _| {
                x[old].sum("etcd_network_peer_sent_bytes_total", &[]) > 0.0
                    && x[(old + 2) % 3].sum("etcd_network_peer_received_bytes_total", &[]) > 0.0
            }),
        ),
        (
            "one leader",
            Box::new(|x, _, new| {
                x.iter()
                    .map(|m| m.sum("etcd_server_is_leader", &[]))
                    .sum::<f64>()
                    == 1.0
                    && x[new].sum("etcd_server_is_leader", &[]) == 1.0
            }),
        ),
        (
            "keys counted",
            Box::new(|x, _, _| {
                x.iter()
                    .all(|m| m.sum("etcd_debugging_mvcc_keys_total", &[]) >= 21.0)
            }),
        ),
    ];
    for (what, check) in &checks {
        let on_etcd = check(&e, e_old, e_new);
        let on_ferrocd = check(&f, f_old, f_new);
        eprintln!("{what}: etcd {on_etcd}, ferrocd {on_ferrocd}");
        if on_etcd != on_ferrocd {
            problems.push(format!("{what}: etcd {on_etcd}, ferrocd {on_ferrocd}"));
        }
    }
    assert!(
        problems.is_empty(),
        "metrics differ from etcd 3.5's:\n{}",
        problems.join("\n")
    );
}

/// README's Metrics section names every metric the test above checks.
#[test]
fn readme_lists_the_checked_metrics() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let missing: Vec<&&str> = LISTED
        .iter()
        .filter(|m| !readme.contains(&format!("`{m}`")))
        .collect();
    assert!(missing.is_empty(), "README does not list {missing:?}");
}

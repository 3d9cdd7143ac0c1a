//! The short profile: etcd-like and Kubernetes-like traffic on 1- and
//! 3-member ferrocd clusters under kill -9, SIGSTOP, partitions, one-way
//! packet loss, a snapshot install after a partition, a member replaced, a
//! full disk and crashes at each fail point of ferrocd's test build (the
//! README's test command builds with `--features ferrocd/failpoints`),
//! checked for linearizability and watch guarantees; the same against etcd
//! 3.5 (the control); and ferrocd's deliberately broken mode, which the
//! checkers must catch.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrocd_robustness::cluster::Server;
use ferrocd_robustness::faults::{FailPoint, Fault};
use ferrocd_robustness::run::{run_in_network, Config, Report};
use ferrocd_robustness::traffic::Profile;
use std::time::Duration;

fn ferrocd() -> Server {
    let bin = ferrocd_testkit::bins::workspace_bin("ferrocd", false);
    Server::ferrocd(bin.unwrap_or_else(|e| panic!("{e}")))
}

fn config(mut server: Server, members: u8, profile: Profile, faults: &[Fault]) -> Config {
    if faults.contains(&Fault::DiskFull) {
        server.disk = Some("256m".into());
    }
    Config {
        server,
        members,
        profile,
        clients_per_member: 2,
        rate: 25.0,
        duration: Duration::from_secs(25),
        faults: faults.to_vec(),
        request_progress: true,
    }
}

fn run_one(cfg: Config) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let report = run_in_network(&cfg, dir.path())
        .unwrap_or_else(|e| panic!("the run did not complete: {e}"));
    eprint!("{report}");
    report
}

/// The run did real work under faults and nothing was violated.
fn assert_clean(r: &Report, min_faults: usize) {
    assert!(
        r.answered > 300 && r.last_revision > 100,
        "too little traffic to say anything: {r}"
    );
    let faults: usize = r.faults.values().sum();
    assert!(faults >= min_faults, "only {faults} faults injected: {r}");
    assert_eq!(r.findings.linearizability, "linearizable", "{r}");
    assert!(r.findings.violations.is_empty(), "{r}");
}

#[test]
fn ferrocd_3_members_etcd_like_traffic_under_kills_partitions_and_a_snapshot_install() {
    let faults = [
        Fault::KillLeader,
        Fault::PartitionFollower,
        Fault::SnapshotWhilePartitioned,
        Fault::PauseLeader,
        Fault::LeaderPacketLoss,
    ];
    let r = run_one(config(ferrocd(), 3, Profile::EtcdLike, &faults));
    assert_clean(&r, faults.len());
    assert!(r.snapshots_installed >= 1, "no snapshot was installed: {r}");
}

#[test]
fn ferrocd_3_members_kubernetes_like_traffic_under_pauses_a_partition_and_a_replaced_member() {
    let faults = [
        Fault::PauseFollower,
        Fault::ReplaceFollower,
        Fault::PartitionLeader,
        Fault::KillFollower,
    ];
    let r = run_one(config(ferrocd(), 3, Profile::KubernetesLike, &faults));
    assert_clean(&r, faults.len());
}

/// A crash at every fail point, on the leader or a follower, and a
/// follower's disk filled up.
#[test]
fn ferrocd_3_members_crash_at_every_fail_point_and_on_a_full_disk() {
    let mut faults: Vec<Fault> = FailPoint::ALL.map(Fault::Crash).to_vec();
    faults.push(Fault::DiskFull);
    let mut cfg = config(ferrocd(), 3, Profile::EtcdLike, &faults);
    cfg.duration = Duration::from_secs(15);
    let r = run_one(cfg);
    assert_clean(&r, faults.len());
    assert!(r.snapshots_installed >= 1, "no snapshot was installed: {r}");
}

#[test]
fn ferrocd_1_member_under_kills_pauses_crashes_and_a_full_disk() {
    let faults = [
        Fault::KillLeader,
        Fault::PauseLeader,
        Fault::Crash(FailPoint::RaftAfterSave),
        Fault::Crash(FailPoint::BeforeCommit),
        Fault::DiskFull,
    ];
    let mut cfg = config(ferrocd(), 1, Profile::EtcdLike, &faults);
    cfg.clients_per_member = 4;
    cfg.duration = Duration::from_secs(15);
    let r = run_one(cfg);
    assert_clean(&r, faults.len());
}

/// The control: etcd 3.5 passes the same checks under the same faults, but
/// a full disk. etcd 3.5.1 exits on one too ("failed to save snapshot ...
/// no space left"), and a crash in the middle of an apply can leave it with
/// a history that differs from its peers' (etcd-io/etcd#13766, fixed in
/// 3.5.3): a CI run of this control caught that, watchers disagreeing from
/// the restarted member's revision on. Its watchers do not ask for progress
/// while the traffic runs: etcd 3.5.1 answers such a request ahead of
/// queued events (etcd-io/etcd#15220, fixed in 3.5.8), which the
/// bookmarkable check reports.
#[test]
fn etcd_35_passes_the_same_suite() {
    let faults = [
        Fault::KillLeader,
        Fault::PartitionFollower,
        Fault::PauseLeader,
        Fault::ReplaceFollower,
        Fault::LeaderPacketLoss,
    ];
    let etcd = Server::etcd(ferrocd_testkit::bins::etcd());
    let mut cfg = config(etcd, 3, Profile::EtcdLike, &faults);
    cfg.request_progress = false;
    let r = run_one(cfg);
    assert_clean(&r, faults.len());
}

/// Linearizable reads served from a member's store without a read index
/// (ferrocd's test-only broken mode) are caught.
#[test]
fn serving_linearizable_reads_locally_is_caught() {
    let mut server = ferrocd();
    server.env = vec![("FERROCD_TEST_UNSAFE_LOCAL_READS".into(), "1".into())];
    let faults = [Fault::PauseFollower, Fault::PartitionFollower];
    let r = run_one(config(server, 3, Profile::EtcdLike, &faults));
    assert_eq!(r.findings.linearizability, "VIOLATION", "{r}");
    assert!(
        r.findings
            .violations
            .iter()
            .any(|v| v.contains("nothing explains") && v.contains("-> Get")
                || v.contains("nothing explains") && v.contains("-> List")),
        "{r}"
    );
}

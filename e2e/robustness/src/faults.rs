//! Faults injected while the traffic runs, each followed by a recovery:
//! the cluster must agree on a leader again before the next one.

use crate::cluster::Cluster;
use ferrocd_proto::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, maintenance_client::MaintenanceClient,
    CompactionRequest, DefragmentRequest, MemberAddRequest, MemberListRequest, MemberRemoveRequest,
    StatusRequest,
};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// kill -9 of the leader; started again a second later.
    KillLeader,
    /// kill -9 of a follower (of the only member in a 1-member cluster).
    KillFollower,
    /// SIGSTOP of the leader for longer than an election timeout.
    PauseLeader,
    /// SIGSTOP of a follower for as long.
    PauseFollower,
    /// The leader's peer traffic dropped both ways for a while.
    PartitionLeader,
    /// A follower's peer traffic dropped both ways for a while.
    PartitionFollower,
    /// Half the peer packets the leader sends dropped (one way, random).
    LeaderPacketLoss,
    /// A follower cut off until the leader is far enough ahead to have
    /// compacted its log past it: it catches up from a snapshot.
    SnapshotWhilePartitioned,
    /// A follower removed, its data wiped, added again and started empty.
    ReplaceFollower,
    /// A follower's disk filled up: it must stop (ferrocd and etcd exit);
    /// started again once there is room, it has every write it
    /// acknowledged. Needs `Server::disk`.
    DiskFull,
    /// A crash (abort) at a fail point of ferrocd's test build, started
    /// again a second later.
    Crash(FailPoint),
}

/// ferrocd's fail points (node/src, `--features failpoints`), named as
/// etcd's gofail points at the same steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailPoint {
    /// Before and after the raft log append (and its fsync).
    RaftBeforeSave,
    RaftAfterSave,
    /// Before and after a store transaction commits.
    BeforeCommit,
    AfterCommit,
    /// Installing a leader's snapshot: before and after the store swap.
    RaftBeforeApplySnap,
    RaftAfterApplySnap,
    /// A compaction's versions removed, the transaction not committed.
    CompactBeforeCommit,
    /// Before and after the store file is rewritten by a defragment.
    DefragBeforeCompact,
    DefragAfterCompact,
}

impl FailPoint {
    pub const ALL: [FailPoint; 9] = [
        FailPoint::RaftBeforeSave,
        FailPoint::RaftAfterSave,
        FailPoint::BeforeCommit,
        FailPoint::AfterCommit,
        FailPoint::RaftBeforeApplySnap,
        FailPoint::RaftAfterApplySnap,
        FailPoint::CompactBeforeCommit,
        FailPoint::DefragBeforeCompact,
        FailPoint::DefragAfterCompact,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailPoint::RaftBeforeSave => "raftBeforeSave",
            FailPoint::RaftAfterSave => "raftAfterSave",
            FailPoint::BeforeCommit => "beforeCommit",
            FailPoint::AfterCommit => "afterCommit",
            FailPoint::RaftBeforeApplySnap => "raftBeforeApplySnap",
            FailPoint::RaftAfterApplySnap => "raftAfterApplySnap",
            FailPoint::CompactBeforeCommit => "compactBeforeCommit",
            FailPoint::DefragBeforeCompact => "defragBeforeCompact",
            FailPoint::DefragAfterCompact => "defragAfterCompact",
        }
    }

    fn in_snapshot_install(self) -> bool {
        matches!(
            self,
            FailPoint::RaftBeforeApplySnap | FailPoint::RaftAfterApplySnap
        )
    }
}

impl Fault {
    /// Every fault that needs neither fail points nor a disk of its own.
    pub const BASIC: [Fault; 9] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::PartitionLeader,
        Fault::PartitionFollower,
        Fault::LeaderPacketLoss,
        Fault::SnapshotWhilePartitioned,
        Fault::ReplaceFollower,
    ];

    /// Every fault: the basic ones, a full disk, a crash at each fail point.
    pub fn all() -> Vec<Fault> {
        let mut all = Fault::BASIC.to_vec();
        all.push(Fault::DiskFull);
        all.extend(FailPoint::ALL.map(Fault::Crash));
        all
    }

    /// Whether the fault needs other members (peer traffic, a follower).
    pub fn needs_peers(self) -> bool {
        match self {
            Fault::KillLeader
            | Fault::KillFollower
            | Fault::PauseLeader
            | Fault::PauseFollower
            | Fault::DiskFull => false,
            Fault::Crash(p) => p.in_snapshot_install(),
            _ => true,
        }
    }
}

/// Longer than the election timeout (1 s, etcd's default).
const PAUSE: Duration = Duration::from_millis(2500);
const DOWN: Duration = Duration::from_secs(1);
const PARTITION: Duration = Duration::from_secs(3);
/// Raft entries a cut-off follower is left behind: more than the leader
/// keeps after a snapshot with the suite's `--snapshot-count` and
/// `--experimental-snapshot-catchup-entries` (ferrocd's; etcd 3.5.1 keeps
/// 5000, so there the fault is a longer partition).
const SNAPSHOT_LAG: u64 = 300;
/// At most this long, whatever the write rate.
const LONG_PARTITION: Duration = Duration::from_secs(30);

/// Waits until the leader's raft index is `lag` past the cut-off
/// member's (or LONG_PARTITION has passed).
async fn wait_until_behind(leader: &str, behind: &str, lag: u64) {
    let deadline = tokio::time::Instant::now() + LONG_PARTITION;
    let behind_at = raft_index(behind).await.unwrap_or(0);
    while tokio::time::Instant::now() < deadline {
        if raft_index(leader)
            .await
            .is_some_and(|i| i > behind_at + lag)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn compact(endpoint: &str, revision: i64) -> Result<(), String> {
    let ch = ferrocd_testkit::grpc::dial(endpoint, None).await?;
    KvClient::new(ch)
        .compact(CompactionRequest {
            revision,
            physical: false,
        })
        .await
        .map(|_| ())
        .map_err(|e| format!("compaction at {revision}: {}", e.message()))
}

async fn defragment(endpoint: &str) -> Result<(), String> {
    let ch = ferrocd_testkit::grpc::dial(endpoint, None).await?;
    MaintenanceClient::new(ch)
        .defragment(DefragmentRequest {})
        .await
        .map(|_| ())
        .map_err(|e| e.message().to_string())
}

async fn raft_index(endpoint: &str) -> Option<u64> {
    let ch = ferrocd_testkit::grpc::dial(endpoint, None).await.ok()?;
    let mut m = MaintenanceClient::new(ch);
    let s = tokio::time::timeout(Duration::from_secs(1), m.status(StatusRequest {}));
    Some(s.await.ok()?.ok()?.into_inner().raft_index)
}

/// How long an armed fail point or a full disk may take to stop a member.
const TO_STOP: Duration = Duration::from_secs(30);

/// Injects `fault` and waits for the cluster to recover. Compactions go no
/// further than `compactable` (what every watcher has delivered).
pub async fn inject(cluster: &mut Cluster, fault: Fault, compactable: i64) -> Result<(), String> {
    let leader = cluster.wait_healthy(Duration::from_secs(30)).await?;
    let n = cluster.members.len();
    if fault.needs_peers() && n < 2 {
        return Err(format!("{fault:?} needs more than one member"));
    }
    let victim = match fault {
        Fault::KillLeader | Fault::PauseLeader | Fault::PartitionLeader => leader,
        Fault::LeaderPacketLoss => leader,
        // The leader applies a compaction from its log; a follower may
        // get it inside a snapshot (it is often a few entries behind with
        // the suite's short catch-up log), never reaching the point.
        Fault::Crash(FailPoint::CompactBeforeCommit) => leader,
        // Crashes at the log and the store alternate between the leader
        // and a follower.
        Fault::Crash(p) if !p.in_snapshot_install() && rand::random::<bool>() => leader,
        _ => (leader + 1) % n,
    };
    eprintln!("fault: {fault:?} on {}", cluster.members[victim].name);
    let leader_url = cluster.members[leader].endpoint();
    let m = &mut cluster.members[victim];
    match fault {
        Fault::KillLeader | Fault::KillFollower => {
            m.kill();
            tokio::time::sleep(DOWN).await;
            m.start();
        }
        Fault::PauseLeader | Fault::PauseFollower => {
            m.pause();
            tokio::time::sleep(PAUSE).await;
            m.resume();
        }
        Fault::PartitionLeader | Fault::PartitionFollower => {
            m.cut_off()?;
            tokio::time::sleep(PARTITION).await;
            m.heal()?;
        }
        Fault::SnapshotWhilePartitioned => {
            m.cut_off()?;
            let behind = m.endpoint();
            wait_until_behind(&leader_url, &behind, SNAPSHOT_LAG).await;
            m.heal()?;
        }
        Fault::LeaderPacketLoss => {
            m.lose_outgoing(0.5)?;
            tokio::time::sleep(PARTITION).await;
            m.heal()?;
        }
        Fault::ReplaceFollower => {
            let peer_url = m.peer_url();
            let mut api = ClusterClient::new(ferrocd_testkit::grpc::dial(&leader_url, None).await?);
            let e = |s: tonic::Status| format!("replacing {peer_url}: {}", s.message());
            let listed = api
                .member_list(MemberListRequest::default())
                .await
                .map_err(e)?;
            let id = listed
                .into_inner()
                .members
                .iter()
                .find(|mem| mem.peer_ur_ls.contains(&peer_url))
                .map(|mem| mem.id)
                .ok_or_else(|| format!("{peer_url} not in the member list"))?;
            api.member_remove(MemberRemoveRequest { id })
                .await
                .map_err(e)?;
            m.kill();
            api.member_add(MemberAddRequest {
                peer_ur_ls: vec![peer_url.clone()],
                is_learner: false,
            })
            .await
            .map_err(e)?;
            m.rejoin();
        }
        Fault::DiskFull => {
            let filled = m.fill_disk()?;
            let exit = m.wait_exit(TO_STOP).await;
            m.free_disk();
            let Some(status) = exit else {
                return Err(format!(
                    "{} still running {TO_STOP:?} after its disk filled up ({filled} bytes written to fill it):\n{}",
                    m.name,
                    m.log_tail(10)
                ));
            };
            eprintln!("fault: {} stopped on a full disk ({status})", m.name);
            tokio::time::sleep(DOWN).await;
            m.start();
        }
        Fault::Crash(point) => {
            m.arm(point.name(), "panic").await?;
            // What brought the member there, for the error if nothing did.
            let mut how = String::from("traffic");
            match point {
                FailPoint::RaftBeforeApplySnap | FailPoint::RaftAfterApplySnap => {
                    m.cut_off()?;
                    let behind = m.endpoint();
                    wait_until_behind(&leader_url, &behind, SNAPSHOT_LAG).await;
                    m.heal()?;
                }
                FailPoint::CompactBeforeCommit => {
                    // Fails when the leader is the one to crash.
                    let rev = compactable.max(1);
                    how = match compact(&leader_url, rev).await {
                        Ok(()) => format!("a compaction at {rev}"),
                        Err(e) => e,
                    };
                }
                FailPoint::DefragBeforeCompact | FailPoint::DefragAfterCompact => {
                    // Answered or not: the member is to crash on it.
                    how = match defragment(&m.endpoint()).await {
                        Ok(()) => "a defragment".into(),
                        Err(e) => format!("a defragment: {e}"),
                    };
                }
                _ => {}
            }
            if m.wait_exit(TO_STOP).await.is_none() {
                return Err(format!(
                    "{} did not reach fail point {} within {TO_STOP:?} (after {how})",
                    m.name,
                    point.name()
                ));
            }
            tokio::time::sleep(DOWN).await;
            m.start();
        }
    }
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .map(|_| ())
        .map_err(|e| format!("no recovery after {fault:?}: {e}"))
}

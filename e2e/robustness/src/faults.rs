//! Faults injected while the traffic runs, each followed by a recovery:
//! the cluster must agree on a leader again before the next one.

use crate::cluster::Cluster;
use ferrocd_proto::etcdserverpb::{
    cluster_client::ClusterClient, maintenance_client::MaintenanceClient, MemberAddRequest,
    MemberListRequest, MemberRemoveRequest, StatusRequest,
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
}

impl Fault {
    pub const ALL: [Fault; 9] = [
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

    /// Whether the fault needs other members (peer traffic, a follower).
    pub fn needs_peers(self) -> bool {
        !matches!(
            self,
            Fault::KillLeader | Fault::KillFollower | Fault::PauseLeader | Fault::PauseFollower
        )
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

async fn raft_index(endpoint: &str) -> Option<u64> {
    let ch = ferrocd_testkit::grpc::dial(endpoint, None).await.ok()?;
    let mut m = MaintenanceClient::new(ch);
    let s = tokio::time::timeout(Duration::from_secs(1), m.status(StatusRequest {}));
    Some(s.await.ok()?.ok()?.into_inner().raft_index)
}

/// Injects `fault` and waits for the cluster to recover.
pub async fn inject(cluster: &mut Cluster, fault: Fault) -> Result<(), String> {
    let leader = cluster.wait_healthy(Duration::from_secs(30)).await?;
    let n = cluster.members.len();
    if fault.needs_peers() && n < 2 {
        return Err(format!("{fault:?} needs more than one member"));
    }
    let victim = match fault {
        Fault::KillLeader | Fault::PauseLeader | Fault::PartitionLeader => leader,
        Fault::LeaderPacketLoss => leader,
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
    }
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .map(|_| ())
        .map_err(|e| format!("no recovery after {fault:?}: {e}"))
}

//! Faults injected while the traffic runs, each followed by a recovery:
//! the cluster must agree on a leader again before the next one.

use crate::cluster::Cluster;
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
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::PauseLeader,
        Fault::PauseFollower,
    ];
}

/// Longer than the election timeout (1 s, etcd's default).
const PAUSE: Duration = Duration::from_millis(2500);
const DOWN: Duration = Duration::from_secs(1);

/// Injects `fault` and waits for the cluster to recover.
pub async fn inject(cluster: &mut Cluster, fault: Fault) -> Result<(), String> {
    let leader = cluster.wait_healthy(Duration::from_secs(30)).await?;
    let n = cluster.members.len();
    let victim = match fault {
        Fault::KillLeader | Fault::PauseLeader => leader,
        Fault::KillFollower | Fault::PauseFollower => (leader + 1) % n,
    };
    let m = &mut cluster.members[victim];
    eprintln!("fault: {fault:?} on {}", m.name);
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
    }
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .map(|_| ())
        .map_err(|e| format!("no recovery after {fault:?}: {e}"))
}

//! Leadership transfer: etcd's MoveLeader, and the hand-over of a leader
//! that shuts down.
//!
//! openraft 0.9 has no transfer call, and its followers refuse votes while
//! their leader lease (`election_timeout_max` since the last leader contact)
//! runs. So the leader goes quiet: it holds the gate every leader-initiated
//! exchange passes (writes, read-index confirmations), waits until the
//! transferee has its whole log, stops heartbeats, lets the followers' leases
//! run out, and then tells the transferee to campaign. The transferee has the
//! longest log and campaigns before any other follower's election timer
//! (lease + election timeout) fires, so it wins.

use super::leadership::Leadership;
use super::membership::Membership;
use super::RequestError;
use crate::peer::Forwarder;
use crate::raft::TypeConfig;
use openraft::Raft;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{RwLock, RwLockReadGuard};

/// openraft's timing from etcd's two knobs (`--heartbeat-interval`,
/// `--election-timeout` = E). A follower campaigns `lease + t` after its
/// leader fell silent, with lease = `election_timeout_max` and `t` drawn
/// from [min, max). With 0.4 E and 0.6 E that is 1.0–1.2 E, when the other
/// followers' leases have run out too: failover in about one election
/// timeout, and never two candidates at the same instant.
pub(super) struct RaftTiming {
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

impl RaftTiming {
    pub fn new(election: Duration) -> RaftTiming {
        let e = election.as_millis() as u64;
        RaftTiming {
            election_min_ms: e * 2 / 5,
            election_max_ms: (e * 3 / 5).max(e * 2 / 5 + 1),
        }
    }

    /// How long a follower refuses other candidates after its leader's last message.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.election_max_ms)
    }
}

/// Leader-initiated raft traffic holds a read guard; a transfer holds the
/// write guard while the leader must stay silent.
#[derive(Default)]
pub struct LeaderGate(RwLock<()>);

impl LeaderGate {
    pub async fn pass(&self) -> RwLockReadGuard<'_, ()> {
        self.0.read().await
    }
}

/// Moves leadership away from this member.
pub struct Transfer {
    pub(super) raft: Raft<TypeConfig>,
    pub(super) leadership: Arc<Leadership>,
    pub(super) membership: Arc<Membership>,
    pub(super) forwarder: Arc<Forwarder>,
    pub(super) election_timeout: Duration,
    pub(super) heartbeat_interval: Duration,
    pub(super) request_timeout: Duration,
}

impl Transfer {
    /// etcd's MoveLeader: makes `target` (a voting member) the leader.
    /// Only the leader can do this; moving to itself succeeds at once.
    pub async fn move_leader(&self, target: u64) -> Result<(), RequestError> {
        if !self.leadership.is_leader() {
            return Err(self.leadership.not_leader());
        }
        if target == self.leadership.member_id() {
            return Ok(());
        }
        let url = self
            .membership
            .members()
            .into_iter()
            .find(|m| m.id == target && !m.is_learner)
            .and_then(|m| m.peer_urls.first().cloned())
            .ok_or(RequestError::BadLeaderTransferee)?;
        let deadline = Instant::now() + self.request_timeout;
        let started = Instant::now();
        tracing::info!(transferee = %format!("{target:x}"), "leadership transfer starting");
        let quiet = tokio::time::timeout_at(deadline.into(), self.leadership.gate.0.write())
            .await
            .map_err(|_| RequestError::LeaderTransferTimeout)?;
        let outcome = self.hand_over(target, &url, deadline).await;
        self.raft.runtime_config().heartbeat(true);
        drop(quiet);
        match &outcome {
            Ok(()) => tracing::info!(
                transferee = %format!("{target:x}"),
                took = ?started.elapsed(),
                "leadership transfer finished"
            ),
            Err(e) => tracing::warn!(
                transferee = %format!("{target:x}"),
                error = %e,
                "leadership transfer failed"
            ),
        }
        outcome
    }

    async fn hand_over(
        &self,
        target: u64,
        url: &str,
        deadline: Instant,
    ) -> Result<(), RequestError> {
        let timeout = |_| RequestError::LeaderTransferTimeout;
        let left = || Some(deadline.saturating_duration_since(Instant::now()));
        // With writes held at the gate the log stops growing; the
        // transferee must hold all of it to win the election.
        self.raft
            .wait(left())
            .metrics(
                |m| {
                    let last = m.last_log_index;
                    m.replication.as_ref().is_some_and(|r| {
                        r.get(&target)
                            .is_some_and(|l| l.as_ref().map(|l| l.index) == last)
                    })
                },
                "transferee caught up",
            )
            .await
            .map_err(timeout)?;
        self.raft.runtime_config().heartbeat(false);
        // Past the lease, and a little more for messages still in flight;
        // well before any follower's own election timer (see RaftTiming).
        let lease = RaftTiming::new(self.election_timeout).lease();
        tokio::time::sleep(lease + self.heartbeat_interval / 2).await;
        self.forwarder
            .timeout_now(url)
            .await
            .map_err(RequestError::Relayed)?;
        self.raft
            .wait(left())
            .current_leader(target, "transferee leads")
            .await
            .map_err(timeout)?;
        Ok(())
    }

    /// On shutdown, a leader hands leadership to its most caught-up voter
    /// so that clients do not wait for an election.
    pub async fn hand_over_leadership(&self) {
        if !self.leadership.is_leader() {
            return;
        }
        let metrics = self.raft.metrics().borrow().clone();
        let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
        let best = metrics.replication.as_ref().and_then(|r| {
            voters
                .iter()
                .filter(|id| **id != self.leadership.member_id())
                .max_by_key(|id| r.get(id).copied().flatten().map(|l| l.index))
                .copied()
        });
        if let Some(target) = best {
            // Failure is logged by move_leader; the others will elect.
            let _ = self.move_leader(target).await;
        }
    }
}

//! Who leads, as this member sees it: raft's view plus etcd's check-quorum
//! (a leader no quorum confirmed within an election timeout reports no
//! leader), the leader's URL for forwarding, and the response headers every
//! answer carries (they name this member, its cluster and raft's term).

use super::transfer::LeaderGate;
use super::RequestError;
use crate::raft::{MemberInfo, TypeConfig};
use ferrocd_proto::etcdserverpb::ResponseHeader;
use openraft::Raft;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Leadership {
    member_id: u64,
    cluster_id: u64,
    raft: Raft<TypeConfig>,
    election_timeout: Duration,
    request_timeout: Duration,
    /// Held by a leadership transfer while the leader must stay silent.
    pub(super) gate: LeaderGate,
    /// When a quorum last confirmed this member's leadership (ms since `started`).
    quorum_confirmed_ms: AtomicU64,
    started: Instant,
}

/// openraft's answer to "do I still lead?": the read log ID, or who leads.
pub type Confirmation = Result<
    Option<openraft::LogId<u64>>,
    openraft::error::RaftError<u64, openraft::error::CheckIsLeaderError<u64, MemberInfo>>,
>;

impl Leadership {
    pub(super) fn new(
        member_id: u64,
        cluster_id: u64,
        raft: Raft<TypeConfig>,
        election_timeout: Duration,
        request_timeout: Duration,
    ) -> Leadership {
        Leadership {
            member_id,
            cluster_id,
            raft,
            election_timeout,
            request_timeout,
            gate: LeaderGate::default(),
            quorum_confirmed_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// A response header for `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term(),
        }
    }

    /// Fills the member fields of a header the apply layer made.
    pub fn fill(&self, h: &mut Option<ResponseHeader>) {
        let rev = h.as_ref().map_or(0, |h| h.revision);
        *h = Some(self.header(rev));
    }

    pub fn raft_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Index of the last entry in this member's raft log.
    pub fn raft_index(&self) -> u64 {
        self.raft.metrics().borrow().last_log_index.unwrap_or(0)
    }

    /// The leader's ID; 0 when there is none (a leader that lost its quorum
    /// counts as none, as etcd's check-quorum makes it step down).
    pub fn leader_id(&self) -> u64 {
        let leader = self.raft.metrics().borrow().current_leader;
        match leader {
            Some(id) if id == self.member_id && !self.quorum_is_fresh() => 0,
            Some(id) => id,
            None => 0,
        }
    }

    pub fn has_leader(&self) -> bool {
        self.leader_id() != 0
    }

    pub fn is_leader(&self) -> bool {
        self.leader_id() == self.member_id
    }

    /// Raft's own view, without check-quorum.
    pub(super) fn believes_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.member_id)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Called when a quorum has just confirmed this member's leadership.
    pub(super) fn quorum_confirmed(&self) {
        self.quorum_confirmed_ms
            .store(self.now_ms(), Ordering::Release);
    }

    fn quorum_is_fresh(&self) -> bool {
        let voters = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        if voters <= 1 {
            return true;
        }
        let last = self.quorum_confirmed_ms.load(Ordering::Acquire);
        last != 0 && self.now_ms().saturating_sub(last) <= self.election_timeout.as_millis() as u64
    }

    /// Confirms with a quorum that this member still leads (read index).
    /// Waits while a leadership transfer keeps the leader quiet.
    pub async fn confirm(&self) -> Confirmation {
        let _pass = self.gate.pass().await;
        self.raft.ensure_linearizable().await
    }

    /// The leader's peer URL when another member leads. Raft's own view,
    /// not `is_leader`: a leader waiting to hear from its quorum must not
    /// forward to itself.
    pub fn leader_elsewhere(&self) -> Option<String> {
        self.leader_peer_url(Some(self.member_id))
    }

    /// The leader's peer URL, when there is a leader.
    pub fn leader_url(&self) -> Option<String> {
        self.leader_peer_url(None)
    }

    /// Read under the metrics lock (called per forwarded request: no copy
    /// of the metrics and their membership).
    fn leader_peer_url(&self, except: Option<u64>) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let leader = m.current_leader.filter(|id| Some(*id) != except)?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .and_then(|n| n.peer_urls.first().cloned())
    }

    /// `NotLeader` naming the leader, for requests only the leader serves.
    pub fn not_leader(&self) -> RequestError {
        RequestError::NotLeader(self.leader_url())
    }

    /// Calls `f` with the leader's URL until it answers, up to the request
    /// timeout; a refusal that is not about leadership is relayed.
    pub async fn on_leader<T, F, Fut>(&self, f: F) -> Result<T, RequestError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            if let Some(url) = self.leader_url() {
                match f(url).await {
                    Ok(v) => return Ok(v),
                    Err(s) if ferrocd_proto::errors::leadership_in_flux(&s) => {}
                    Err(s) => return Err(RequestError::Relayed(s)),
                }
            }
            if Instant::now() >= deadline {
                return Err(RequestError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The leader's peer URL from raft's "forward to the leader" answers.
pub(super) fn forwarded_leader_url(node: Option<&MemberInfo>) -> Option<String> {
    node.and_then(|n| n.peer_urls.first().cloned())
}

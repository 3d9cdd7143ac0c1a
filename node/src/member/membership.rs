//! The cluster's members as etcd reports them: raft membership (voters and
//! learners with their peer URLs) plus the attributes each member published
//! through the log (name, client URLs); and runtime membership changes with
//! etcd's rules and errors. Changes run on the leader (followers forward
//! them); openraft commits them as joint-consensus configuration changes.

use super::leadership::{forwarded_leader_url, Leadership};
use super::RequestError;
use crate::apply::member_attributes_key;
use crate::mvcc::Store;
use crate::peer::Forwarder;
use crate::raft::{MemberInfo, TypeConfig};
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::Member;
use ferrocd_proto::ferrocdpb::{
    member_change_request::Change, MemberAttributes, MemberChangeResponse,
};
use openraft::{ChangeMembers, Raft};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// etcd's learner readiness: its log within 10% of the leader's.
const LEARNER_READY_PERCENT: f64 = 0.9;
/// How long a membership change waits for the previous one to commit.
const CHANGE_SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

pub fn to_proto(m: MemberView) -> Member {
    Member {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

fn valid_urls(urls: &[String]) -> Result<(), RequestError> {
    let ok = !urls.is_empty()
        && urls.iter().all(|u| {
            url::Url::parse(u)
                .map(|p| {
                    matches!(p.scheme(), "http" | "https")
                        && p.host_str().is_some()
                        && p.port().is_some()
                })
                .unwrap_or(false)
        });
    if ok {
        Ok(())
    } else {
        Err(RequestError::Refused(errors::MEMBER_BAD_URLS))
    }
}

pub struct Membership {
    member_id: u64,
    raft: Raft<TypeConfig>,
    store: Store,
    leadership: Arc<Leadership>,
    forwarder: Arc<Forwarder>,
}

impl Membership {
    pub(super) fn new(
        raft: Raft<TypeConfig>,
        store: Store,
        leadership: Arc<Leadership>,
        forwarder: Arc<Forwarder>,
    ) -> Membership {
        Membership {
            member_id: leadership.member_id(),
            raft,
            store,
            leadership,
            forwarder,
        }
    }

    /// Every member, by ID.
    pub fn members(&self) -> Vec<MemberView> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let view = self.store.read().ok();
        let mut out: Vec<MemberView> = membership
            .nodes()
            .map(|(id, node)| {
                let attrs = view
                    .as_ref()
                    .and_then(|v| v.state(&member_attributes_key(*id)).ok().flatten())
                    .and_then(|b| MemberAttributes::decode(b.as_slice()).ok());
                let (name, client_urls) = match attrs {
                    Some(a) => (a.name, a.client_urls),
                    None => (String::new(), Vec::new()),
                };
                MemberView {
                    id: *id,
                    name,
                    peer_urls: node.peer_urls.clone(),
                    client_urls,
                    is_learner: !voters.contains(id),
                }
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    pub fn is_learner(&self) -> bool {
        self.members()
            .iter()
            .any(|m| m.id == self.member_id && m.is_learner)
    }

    /// Runs a membership change on the leader, from wherever it was asked.
    pub async fn change_members(
        &self,
        change: Change,
    ) -> Result<MemberChangeResponse, RequestError> {
        if self.leadership.is_leader() {
            return self.change_members_here(change).await;
        }
        self.leadership
            .on_leader(|url| {
                let change = change.clone();
                async move { self.forwarder.member_change(&url, change).await }
            })
            .await
    }

    pub async fn change_members_here(
        &self,
        change: Change,
    ) -> Result<MemberChangeResponse, RequestError> {
        if !self.leadership.is_leader() {
            return Err(self.leadership.not_leader());
        }
        self.wait_for_change_in_progress().await;
        let members = self.members();
        let find = |id: u64| members.iter().find(|m| m.id == id).cloned();
        let not_found = || RequestError::Refused(errors::MEMBER_NOT_FOUND);
        let url_taken = |urls: &[String], except: u64| {
            members
                .iter()
                .filter(|m| m.id != except)
                .any(|m| m.peer_urls.iter().any(|u| urls.contains(u)))
        };
        let mut added = None;
        match change {
            Change::Add(a) => {
                valid_urls(&a.peer_ur_ls)?;
                if url_taken(&a.peer_ur_ls, 0) {
                    return Err(RequestError::Refused(errors::PEER_URL_EXISTS));
                }
                if a.is_learner && members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
                    return Err(RequestError::Refused(errors::TOO_MANY_LEARNERS));
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                // etcd: SHA-1 of the peer URLs and the time, no cluster token.
                let id = crate::ids::member_id(&a.peer_ur_ls, "", Some(now));
                let node = MemberInfo {
                    name: String::new(),
                    peer_urls: a.peer_ur_ls.clone(),
                    client_urls: Vec::new(),
                };
                self.raft
                    .add_learner(id, node, false)
                    .await
                    .map_err(raft_error)?;
                if !a.is_learner {
                    self.add_voter(id).await?;
                }
                added = Some(Member {
                    id,
                    name: String::new(),
                    peer_ur_ls: a.peer_ur_ls,
                    client_ur_ls: Vec::new(),
                    is_learner: a.is_learner,
                });
            }
            Change::Remove(r) => {
                let m = find(r.id).ok_or_else(not_found)?;
                let change = if m.is_learner {
                    ChangeMembers::RemoveNodes(BTreeSet::from([r.id]))
                } else {
                    ChangeMembers::RemoveVoters(BTreeSet::from([r.id]))
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map_err(raft_error)?;
            }
            Change::Promote(p) => {
                let m = find(p.id).ok_or_else(not_found)?;
                if !m.is_learner {
                    return Err(RequestError::Refused(errors::MEMBER_NOT_LEARNER));
                }
                if !self.learner_ready(p.id) {
                    return Err(RequestError::Refused(errors::LEARNER_NOT_READY));
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([p.id])), false)
                    .await
                    .map_err(raft_error)?;
            }
            Change::Update(u) => {
                let m = find(u.id).ok_or_else(not_found)?;
                valid_urls(&u.peer_ur_ls)?;
                if url_taken(&u.peer_ur_ls, u.id) {
                    return Err(RequestError::Refused(errors::PEER_URL_EXISTS));
                }
                let node = MemberInfo {
                    name: m.name,
                    peer_urls: u.peer_ur_ls,
                    client_urls: m.client_urls,
                };
                self.raft
                    .change_membership(
                        ChangeMembers::SetNodes(BTreeMap::from([(u.id, node)])),
                        false,
                    )
                    .await
                    .map_err(raft_error)?;
            }
        }
        Ok(MemberChangeResponse {
            added,
            members: self.members().into_iter().map(to_proto).collect(),
        })
    }

    /// Waits (a while) for a configuration change still committing: one
    /// MemberAdd right after another finds the first one's last step in
    /// flight, which openraft would refuse.
    async fn wait_for_change_in_progress(&self) {
        let settled = |m: &openraft::RaftMetrics<u64, MemberInfo>| {
            let c = &m.membership_config;
            c.membership().get_joint_config().len() == 1 && c.log_id() <= &m.last_applied
        };
        let mut metrics = self.raft.metrics();
        let _ = tokio::time::timeout(CHANGE_SETTLE_WAIT, async {
            while !settled(&metrics.borrow_and_update()) {
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Makes learner `id` a voter. Answers once the new configuration is in
    /// effect, as etcd answers once its conf change is applied: committing
    /// the change needs the new member itself when it leaves no quorum
    /// without it (one member growing to two, the first add after a forced
    /// new cluster), and it is started only after MemberAdd returns.
    async fn add_voter(&self, id: u64) -> Result<(), RequestError> {
        let raft = self.raft.clone();
        let mut change = tokio::spawn(async move {
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
        });
        let mut metrics = self.raft.metrics();
        let is_voter = |m: &openraft::RaftMetrics<u64, MemberInfo>| {
            m.membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id)
        };
        loop {
            if is_voter(&metrics.borrow_and_update()) {
                // The change goes on in its task until it commits.
                return Ok(());
            }
            tokio::select! {
                done = &mut change => {
                    return match done {
                        Ok(r) => r.map(|_| ()).map_err(raft_error),
                        Err(e) => Err(RequestError::Raft(e.to_string())),
                    };
                }
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return Err(RequestError::Stopped);
                    }
                }
            }
        }
    }

    /// Whether a learner's log is close enough to the leader's to promote it.
    fn learner_ready(&self, id: u64) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let leader_match = m.last_log_index.unwrap_or(0) as f64;
        let learner_match = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map_or(0, |l| l.index) as f64;
        learner_match >= leader_match * LEARNER_READY_PERCENT
    }
}

fn raft_error(
    e: openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, MemberInfo>>,
) -> RequestError {
    match e.forward_to_leader::<MemberInfo>() {
        Some(f) => RequestError::NotLeader(forwarded_leader_url(f.leader_node.as_ref())),
        None => RequestError::Raft(e.to_string()),
    }
}

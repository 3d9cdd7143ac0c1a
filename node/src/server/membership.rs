//! Runtime membership changes with etcd's rules and errors. They run on the
//! leader (followers forward them); openraft commits them as joint-consensus
//! configuration changes.

use super::{MemberView, Server, ServerError};
use crate::proto::etcdserverpb::Member;
use crate::proto::ferrocdpb::{member_change_request::Change, MemberChangeResponse};
use crate::raft::MemberInfo;
use openraft::ChangeMembers;
use std::collections::{BTreeMap, BTreeSet};

/// etcd's learner readiness: its log within 10% of the leader's.
const LEARNER_READY_PERCENT: f64 = 0.9;
/// etcd allows one learner at a time.
const MAX_LEARNERS: usize = 1;

fn membership_error(code: tonic::Code, text: &str) -> ServerError {
    ServerError::Refused {
        code: code as i32,
        message: format!("etcdserver: {text}"),
    }
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

fn valid_urls(urls: &[String]) -> Result<(), ServerError> {
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
        Err(membership_error(
            tonic::Code::InvalidArgument,
            "given member URLs are invalid",
        ))
    }
}

impl Server {
    /// Runs a membership change on the leader, from wherever it was asked.
    pub async fn change_members(
        &self,
        change: Change,
    ) -> Result<MemberChangeResponse, ServerError> {
        if self.is_leader() {
            return self.change_members_here(change).await;
        }
        self.on_leader(|url| {
            let change = change.clone();
            async move { self.forwarder.member_change(&url, change).await }
        })
        .await
    }

    pub async fn change_members_here(
        &self,
        change: Change,
    ) -> Result<MemberChangeResponse, ServerError> {
        if !self.is_leader() {
            return Err(ServerError::NotLeader(self.leader_url()));
        }
        let members = self.members();
        let find = |id: u64| members.iter().find(|m| m.id == id).cloned();
        let not_found = || membership_error(tonic::Code::NotFound, "member not found");
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
                    return Err(membership_error(
                        tonic::Code::FailedPrecondition,
                        "Peer URLs already exists",
                    ));
                }
                if a.is_learner && members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
                    return Err(membership_error(
                        tonic::Code::FailedPrecondition,
                        "too many learner members in cluster",
                    ));
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
                    self.raft
                        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                        .await
                        .map_err(raft_error)?;
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
                    return Err(membership_error(
                        tonic::Code::FailedPrecondition,
                        "can only promote a learner member",
                    ));
                }
                if !self.learner_ready(p.id) {
                    return Err(membership_error(
                        tonic::Code::FailedPrecondition,
                        "can only promote a learner member which is in sync with leader",
                    ));
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
                    return Err(membership_error(
                        tonic::Code::FailedPrecondition,
                        "Peer URLs already exists",
                    ));
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
) -> ServerError {
    match e.forward_to_leader::<MemberInfo>() {
        Some(f) => ServerError::NotLeader(
            f.leader_node
                .as_ref()
                .and_then(|n| n.peer_urls.first().cloned()),
        ),
        None => ServerError::Membership(format!("etcdserver: {e}")),
    }
}

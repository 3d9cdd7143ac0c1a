//! The member as its peers see it: the handles the peer service calls
//! (proposals, lease answers and membership changes on the leader, read
//! indexes, the member list).

use super::leadership::Leadership;
use super::leases::Leases;
use super::membership::{to_proto, Membership};
use super::proposer::Proposer;
use super::reader::Reader;
use super::RequestError;
use crate::mvcc::Store;
use crate::peer::LocalMember;
use ferrocd_proto::etcdserverpb::{
    HashKvResponse, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, Member,
};
use ferrocd_proto::ferrocdpb::{
    member_change_request::Change, ApplyResult, InternalRequest, MemberChangeResponse,
};
use std::sync::Arc;

pub(super) struct PeerSide {
    pub proposer: Arc<Proposer>,
    pub reader: Arc<Reader>,
    pub leases: Arc<Leases>,
    pub membership: Arc<Membership>,
    pub leadership: Arc<Leadership>,
    pub store: Store,
    pub fatal: Arc<super::Fatal>,
}

impl LocalMember for PeerSide {
    type Error = RequestError;

    async fn propose_here(&self, request: &InternalRequest) -> Result<ApplyResult, RequestError> {
        self.proposer.propose_here(request).await.map(Into::into)
    }

    fn applied_index(&self) -> u64 {
        self.reader.applied_index()
    }

    fn storage_failed(&self, reason: String) {
        self.fatal.stop_with(reason);
    }

    fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    fn lease_renew(&self, id: i64) -> LeaseKeepAliveResponse {
        self.leases.renew_here(id)
    }

    fn lease_time_to_live(&self, r: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
        self.leases.time_to_live_here(r)
    }

    async fn change_members(&self, change: Change) -> Result<MemberChangeResponse, RequestError> {
        self.membership.change_members_here(change).await
    }

    fn members(&self) -> Vec<Member> {
        self.membership
            .members()
            .into_iter()
            .map(to_proto)
            .collect()
    }

    async fn read_index(&self) -> Result<u64, RequestError> {
        self.reader.read_index().await
    }

    async fn hash_kv(&self, revision: i64) -> Result<HashKvResponse, RequestError> {
        let store = self.store.clone();
        let h = tokio::task::spawn_blocking(move || store.read()?.hash_kv_at(revision))
            .await
            .map_err(|e| RequestError::Raft(e.to_string()))??;
        Ok(HashKvResponse {
            header: Some(self.leadership.header(h.current_rev)),
            hash: h.hash,
            compact_revision: h.compact_rev,
            hash_revision: h.rev,
        })
    }
}

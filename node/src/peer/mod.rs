//! Member-to-member traffic on `--listen-peer-urls`: raft messages, and
//! followers forwarding writes and read-index requests to the leader. Every
//! message carries the cluster ID; a member of another cluster is refused.
//! The serving side reaches the member it serves only through
//! [`LocalMember`].

pub mod client;
pub mod service;

pub use client::{Forwarder, PeerDialer, PeerNetwork, Refusals};
pub use service::PeerService;

use ferrocd_proto::etcdserverpb::{
    HashKvResponse, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, Member,
};
use ferrocd_proto::ferrocdpb::{
    member_change_request::Change, ApplyResult, InternalRequest, MemberChangeResponse,
};
use std::future::Future;

/// What peers ask of the member this service runs in.
pub trait LocalMember: Send + Sync + 'static {
    /// A refusal, as the asking peer gets it.
    type Error: Into<tonic::Status> + Send;

    /// Proposes on this member only (it must lead); the apply result.
    fn propose_here(
        &self,
        request: &InternalRequest,
    ) -> impl Future<Output = Result<ApplyResult, Self::Error>> + Send;

    /// This member's applied index.
    fn applied_index(&self) -> u64;

    /// This member's disk failed while serving a peer (a snapshot could
    /// not be written): it stops, as when raft's own storage fails.
    fn storage_failed(&self, reason: String);

    fn is_leader(&self) -> bool;

    /// A keep-alive, answered here (this member leads).
    fn lease_renew(&self, id: i64) -> LeaseKeepAliveResponse;

    /// A lease's TTL, answered here (this member leads).
    fn lease_time_to_live(&self, r: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse;

    /// A membership change, run here (this member must lead).
    fn change_members(
        &self,
        change: Change,
    ) -> impl Future<Output = Result<MemberChangeResponse, Self::Error>> + Send;

    /// Every member as this member knows them.
    fn members(&self) -> Vec<Member>;

    /// A read index for a follower (this member must lead).
    fn read_index(&self) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// This member's HashKV at `revision` (0: its current one).
    fn hash_kv(
        &self,
        revision: i64,
    ) -> impl Future<Output = Result<HashKvResponse, Self::Error>> + Send;
}

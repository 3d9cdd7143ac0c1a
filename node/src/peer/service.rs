//! The receiving side of peer traffic.

use super::LocalMember;
use crate::raft::TypeConfig;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{
    HashKvResponse, LeaseKeepAliveResponse, LeaseTimeToLiveResponse,
};
use ferrocd_proto::ferrocdpb::{
    peer_server::Peer, propose_outcome, ClusterInfoRequest, ClusterInfoResponse, LeaseForward,
    MemberChangeRequest, MemberChangeResponse, PeerHashKvRequest, ProposeBatchRequest,
    ProposeBatchResponse, ProposeError, ProposeOutcome, RaftMessage, ReadIndexRequest,
    ReadIndexResponse, TimeoutNowRequest, TimeoutNowResponse,
};
use openraft::error::{Fatal, RaftError};
use openraft::Raft;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// A peer request that names the sender's cluster.
trait ClusterScoped {
    fn cluster_id(&self) -> u64;
}

macro_rules! cluster_scoped {
    ($($t:ty),*) => {$(
        impl ClusterScoped for $t {
            fn cluster_id(&self) -> u64 {
                self.cluster_id
            }
        }
    )*};
}
cluster_scoped!(
    RaftMessage,
    ProposeBatchRequest,
    LeaseForward,
    MemberChangeRequest,
    ReadIndexRequest,
    TimeoutNowRequest,
    PeerHashKvRequest
);

pub struct PeerService<M> {
    pub cluster_id: u64,
    pub raft: Raft<TypeConfig>,
    pub member: Arc<M>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// etcd's `From` series of the peer that sent the last message, kept for
/// the next one (a replication stream has one sender).
#[derive(Default)]
struct ReceivedFrom(Option<(u64, crate::metrics::Counter)>);

impl ReceivedFrom {
    fn count(&mut self, metrics: &crate::metrics::Metrics, from: Option<u64>, bytes: usize) {
        let Some(from) = from else { return };
        if self.0.as_ref().is_none_or(|(id, _)| *id != from) {
            self.0 = Some((from, metrics.peer_received(from).0));
        }
        if let Some((_, c)) = &self.0 {
            c.inc_by(bytes as u64);
        }
    }
}

/// A message from a member of `local`'s cluster, or its refusal (logged).
fn check_cluster(
    local: u64,
    cluster_id: u64,
    remote: Option<std::net::SocketAddr>,
) -> Result<(), Status> {
    if cluster_id == local {
        return Ok(());
    }
    tracing::warn!(
        remote = ?remote,
        local_cluster = %format!("{local:x}"),
        remote_cluster = %format!("{cluster_id:x}"),
        "rejected peer message from a member of another cluster"
    );
    Err(errors::cluster_mismatch(local, cluster_id))
}

/// A raft answer as it goes on the wire.
fn raft_message<T: serde::Serialize>(cluster_id: u64, v: &T) -> Result<RaftMessage, Status> {
    let payload = bincode::serialize(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(RaftMessage {
        cluster_id,
        payload,
    })
}

type AnswerStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<RaftMessage, Status>> + Send>>;

impl<M: LocalMember> PeerService<M> {
    /// A peer request from this cluster, or its refusal (logged).
    fn accept<Msg: ClusterScoped>(&self, req: Request<Msg>) -> Result<Msg, Status> {
        let remote = crate::tls::remote_addr(&req);
        let msg = req.into_inner();
        check_cluster(self.cluster_id, msg.cluster_id(), remote)?;
        Ok(msg)
    }

    /// The member, if it leads (lease requests are answered by the leader only).
    fn leader(&self) -> Result<&M, Status> {
        if !self.member.is_leader() {
            return Err(errors::NOT_LEADER.status());
        }
        Ok(&self.member)
    }

    fn decode<T: serde::de::DeserializeOwned>(msg: &RaftMessage) -> Result<T, Status> {
        bincode::deserialize(&msg.payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
    }

    fn encode<T: serde::Serialize>(&self, v: &T) -> Result<Response<RaftMessage>, Status> {
        raft_message(self.cluster_id, v).map(Response::new)
    }
}

#[tonic::async_trait]
impl<M: LocalMember> Peer for PeerService<M> {
    type AppendEntriesStream = AnswerStream;

    /// Answers each request of the leader's replication stream as it
    /// arrives, in order; a request from another cluster ends the stream
    /// with the refusal.
    async fn append_entries(
        &self,
        req: Request<tonic::Streaming<RaftMessage>>,
    ) -> Result<Response<AnswerStream>, Status> {
        use futures::StreamExt;
        let remote = crate::tls::remote_addr(&req);
        let (raft, local, metrics) = (self.raft.clone(), self.cluster_id, self.metrics.clone());
        let state = (req.into_inner(), ReceivedFrom::default());
        let answers = futures::stream::unfold(state, move |(mut inbound, mut from)| {
            let (raft, metrics) = (raft.clone(), metrics.clone());
            async move {
                let msg = inbound.next().await?;
                let answer = async {
                    let msg = msg?;
                    check_cluster(local, msg.cluster_id, remote)?;
                    let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = Self::decode(&msg)?;
                    from.count(
                        &metrics,
                        rpc.vote.leader_id().voted_for(),
                        msg.payload.len(),
                    );
                    raft_message(local, &raft.append_entries(rpc).await)
                }
                .await;
                Some((answer, (inbound, from)))
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let msg = self.accept(req)?;
        let rpc: openraft::raft::VoteRequest<u64> = Self::decode(&msg)?;
        ReceivedFrom::default().count(
            &self.metrics,
            rpc.vote.leader_id().voted_for(),
            msg.payload.len(),
        );
        self.encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let msg = self.accept(req)?;
        let rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> = Self::decode(&msg)?;
        ReceivedFrom::default().count(
            &self.metrics,
            rpc.vote.leader_id().voted_for(),
            msg.payload.len(),
        );
        let answer = self.raft.install_snapshot(rpc).await;
        // openraft's chunk receiver returns a failed write of a chunk to the
        // leader as the answer, and the leader only starts the transfer
        // again: a member whose disk is full would stay up forever.
        if let Err(RaftError::Fatal(Fatal::StorageError(e))) = &answer {
            self.member
                .storage_failed(format!("cannot receive a raft snapshot: {e}"));
        }
        self.encode(&answer)
    }

    async fn propose_batch(
        &self,
        req: Request<ProposeBatchRequest>,
    ) -> Result<Response<ProposeBatchResponse>, Status> {
        let batch = self.accept(req)?;
        let member = &self.member;
        // Proposed here only: a member that is no longer leader says so, and
        // the follower retries, so proposals never bounce between members.
        // Proposed together, the requests share the leader's next entries.
        let outcomes = futures::future::join_all(
            batch
                .requests
                .iter()
                .map(|request| member.propose_here(request)),
        )
        .await;
        let applied_index = member.applied_index();
        let outcomes = outcomes
            .into_iter()
            .map(|r| {
                let outcome = match r {
                    Ok(mut applied) => {
                        applied.applied_index = applied_index;
                        propose_outcome::Outcome::Applied(applied)
                    }
                    Err(e) => {
                        let status: Status = e.into();
                        propose_outcome::Outcome::Error(ProposeError {
                            code: status.code() as i32,
                            message: status.message().to_string(),
                        })
                    }
                };
                ProposeOutcome {
                    outcome: Some(outcome),
                }
            })
            .collect();
        Ok(Response::new(ProposeBatchResponse { outcomes }))
    }

    async fn lease_renew(
        &self,
        req: Request<LeaseForward>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        let f = self.accept(req)?;
        let member = self.leader()?;
        let id = f.request.map_or(0, |r| r.id);
        Ok(Response::new(member.lease_renew(id)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseForward>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let f = self.accept(req)?;
        let member = self.leader()?;
        Ok(Response::new(
            member.lease_time_to_live(&f.request.unwrap_or_default()),
        ))
    }

    async fn member_change(
        &self,
        req: Request<MemberChangeRequest>,
    ) -> Result<Response<MemberChangeResponse>, Status> {
        let r = self.accept(req)?;
        let change = r
            .change
            .ok_or_else(|| Status::invalid_argument("empty membership change"))?;
        let resp = self
            .member
            .change_members(change)
            .await
            .map_err(Into::into)?;
        Ok(Response::new(resp))
    }

    async fn cluster_info(
        &self,
        _req: Request<ClusterInfoRequest>,
    ) -> Result<Response<ClusterInfoResponse>, Status> {
        let members = self.member.members();
        // Started but not yet bootstrapped (or not yet reached by the
        // cluster it joins): it cannot say who is in the cluster.
        if members.is_empty() {
            return Err(Status::unavailable("this member has no membership yet"));
        }
        Ok(Response::new(ClusterInfoResponse {
            cluster_id: self.cluster_id,
            members,
        }))
    }

    async fn read_index(
        &self,
        req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        self.accept(req)?;
        let index = self.member.read_index().await.map_err(Into::into)?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn timeout_now(
        &self,
        req: Request<TimeoutNowRequest>,
    ) -> Result<Response<TimeoutNowResponse>, Status> {
        self.accept(req)?;
        tracing::info!("the leader hands leadership over to this member: campaigning");
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(TimeoutNowResponse {}))
    }

    async fn hash_kv(
        &self,
        req: Request<PeerHashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let req = self.accept(req)?;
        let resp = self
            .member
            .hash_kv(req.revision)
            .await
            .map_err(Into::into)?;
        Ok(Response::new(resp))
    }
}

//! The sending side: openraft's network (one lazily connected gRPC channel
//! per target) and the forwarding client followers use to reach the leader.

use crate::metrics::{Metrics, PeerMetrics};
use crate::raft::{MemberInfo, TypeConfig};
use crate::tls::{ClientTls, TlsConnector};
use ferrocd_proto::etcdserverpb::{
    HashKvResponse, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use ferrocd_proto::ferrocdpb::{
    member_change_request::Change, peer_client::PeerClient, propose_outcome, ApplyResult,
    ClusterInfoRequest, ClusterInfoResponse, InternalRequest, LeaseForward, MemberChangeRequest,
    MemberChangeResponse, PeerHashKvRequest, ProposeBatchRequest, RaftMessage, ReadIndexRequest,
    TimeoutNowRequest,
};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// How this member dials its peers: with its identity toward https peer
/// URLs (`--peer-*` TLS flags) when it has one; without, https peers
/// cannot be dialed. Each member owns its own.
#[derive(Clone, Default)]
pub struct PeerDialer {
    tls: Option<Arc<ClientTls>>,
}

impl std::fmt::Debug for PeerDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDialer")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl PeerDialer {
    pub fn new(tls: Option<Arc<ClientTls>>) -> PeerDialer {
        PeerDialer { tls }
    }

    /// The peers were found through `_etcd-server-ssl` records of `domain`.
    pub fn verify_peers_for_domain(&self, domain: &str) -> Result<(), crate::tls::TlsError> {
        match &self.tls {
            Some(tls) => tls.verify_peers_for_domain(domain),
            None => Ok(()),
        }
    }

    /// A gRPC channel to a peer URL; connects on first use and reconnects by itself.
    pub fn channel(&self, url: &str) -> Result<Channel, tonic::transport::Error> {
        if let (Some(rest), Some(tls)) = (url.strip_prefix("https://"), &self.tls) {
            // The connector does TLS; the endpoint's scheme only names the origin.
            let endpoint = Endpoint::from_shared(format!("http://{rest}"))?
                .connect_timeout(Duration::from_secs(1));
            return Ok(endpoint.connect_with_connector_lazy(TlsConnector { tls: tls.clone() }));
        }
        Ok(Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy())
    }

    /// Asks a member of a running cluster who is in it (a joining member
    /// does not know the cluster ID yet).
    pub async fn cluster_info(&self, peer_url: &str) -> Result<ClusterInfoResponse, tonic::Status> {
        let ch = self
            .channel(peer_url)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut c = PeerClient::new(ch);
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            c.cluster_info(ClusterInfoRequest {}),
        )
        .await
        .map_err(|_| tonic::Status::unavailable("timed out"))??;
        Ok(r.into_inner())
    }
}

/// openraft's view of the network.
#[derive(Clone)]
pub struct PeerNetwork {
    pub cluster_id: u64,
    pub dialer: PeerDialer,
    /// Peers that refused us as a member of another cluster.
    pub refusals: std::sync::Arc<Refusals>,
    pub metrics: Arc<Metrics>,
}

/// Which peers currently refuse this member's cluster ID, and theirs.
#[derive(Default, Debug)]
pub struct Refusals {
    inner: Mutex<HashMap<u64, String>>,
}

impl Refusals {
    fn record(&self, target: u64, status: &tonic::Status) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if ferrocd_proto::errors::is_cluster_mismatch(status) {
            m.insert(target, status.message().to_string());
        } else {
            m.remove(&target);
        }
    }

    fn accepted(&self, target: u64) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&target);
    }

    /// The refusing peers and one of their messages.
    pub fn current(&self) -> (usize, Option<String>) {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (m.len(), m.values().next().cloned())
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &MemberInfo) -> PeerConnection {
        PeerConnection {
            target,
            cluster_id: self.cluster_id,
            refusals: self.refusals.clone(),
            metrics: self.metrics.peer(target),
            client: node
                .peer_urls
                .first()
                .and_then(|u| self.dialer.channel(u).ok())
                .map(|c| {
                    PeerClient::new(c)
                        .max_decoding_message_size(usize::MAX)
                        .max_encoding_message_size(usize::MAX)
                }),
            replication: None,
        }
    }
}

pub struct PeerConnection {
    target: u64,
    cluster_id: u64,
    refusals: std::sync::Arc<Refusals>,
    /// etcd's `To` series of this peer.
    metrics: PeerMetrics,
    client: Option<PeerClient<Channel>>,
    /// The AppendEntries stream to the target, opened on first use and
    /// out of here while an exchange runs (`exchange_in`).
    replication: Option<ReplicationStream>,
}

/// openraft replicates to one follower one request at a time, so answers
/// pair with requests by order. A stream saves a unary call's per-request
/// HTTP/2 stream, headers and task hops.
struct ReplicationStream<A = tonic::Streaming<RaftMessage>> {
    requests: tokio::sync::mpsc::Sender<RaftMessage>,
    answers: A,
}

impl ReplicationStream {
    async fn open(client: &mut PeerClient<Channel>) -> Result<ReplicationStream, tonic::Status> {
        let (requests, rx) = tokio::sync::mpsc::channel(1);
        let answers = client
            .append_entries(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(ReplicationStream { requests, answers })
    }
}

impl<A> ReplicationStream<A>
where
    A: futures::Stream<Item = Result<RaftMessage, tonic::Status>> + Unpin,
{
    async fn exchange(&mut self, msg: RaftMessage) -> Result<RaftMessage, tonic::Status> {
        use futures::StreamExt;
        let closed = || tonic::Status::unavailable("the replication stream closed");
        self.requests.send(msg).await.map_err(|_| closed())?;
        self.answers.next().await.ok_or_else(closed)?
    }
}

/// Sends `msg` on the stream in `slot` (opened by `open` when there is
/// none) and reads its answer. The stream is out of the slot meanwhile and
/// goes back only after a complete exchange: one dropped midway (openraft
/// times out its RPCs itself) or failed takes its stream with it, so a
/// late answer is never read as the next request's.
async fn exchange_in<A>(
    slot: &mut Option<ReplicationStream<A>>,
    open: impl std::future::Future<Output = Result<ReplicationStream<A>, tonic::Status>>,
    msg: RaftMessage,
) -> Result<RaftMessage, tonic::Status>
where
    A: futures::Stream<Item = Result<RaftMessage, tonic::Status>> + Unpin,
{
    let mut stream = match slot.take() {
        Some(s) => s,
        None => open.await?,
    };
    let answer = stream.exchange(msg).await?;
    *slot = Some(stream);
    Ok(answer)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

type RpcResult<T, E> = Result<T, RPCError<u64, MemberInfo, RaftError<u64, E>>>;

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                format!("member {:x} has no peer URL", self.target),
            ))));
        };
        let payload =
            bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let msg = RaftMessage {
            cluster_id: self.cluster_id,
            payload,
        };
        self.metrics.sent_bytes.inc_by(msg.payload.len() as u64);
        let started = std::time::Instant::now();
        let replication = &mut self.replication;
        let call = async {
            match method {
                Method::AppendEntries => {
                    exchange_in(replication, ReplicationStream::open(client), msg).await
                }
                Method::Vote => client.vote(msg).await.map(tonic::Response::into_inner),
                Method::InstallSnapshot => client
                    .install_snapshot(msg)
                    .await
                    .map(tonic::Response::into_inner),
            }
        };
        // openraft's own timeout is the same and may drop this call first:
        // `exchange_in` makes that safe.
        let reply = tokio::time::timeout(option.hard_ttl(), call).await;
        let reply = match reply {
            Ok(Ok(r)) => {
                self.refusals.accepted(self.target);
                self.metrics
                    .round_trip
                    .observe(started.elapsed().as_secs_f64());
                r
            }
            Ok(Err(status)) => {
                self.metrics.sent_failures.inc();
                self.refusals.record(self.target, &status);
                return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                    format!("{}: {}", status.code(), status.message()),
                ))));
            }
            Err(_) => {
                self.metrics.sent_failures.inc();
                return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                    "timed out".into(),
                ))));
            }
        };
        let result: Result<Resp, RaftError<u64, E>> = bincode::deserialize(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        let heartbeat = rpc.entries.is_empty();
        let result = self.call(Method::AppendEntries, &rpc, &option).await;
        if heartbeat && result.is_err() {
            self.metrics.heartbeat_send_failures.inc();
        }
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(Method::Vote, &rpc, &option).await
    }
}

/// Followers' client to the leader: forwarded writes and read-index requests.
pub struct Forwarder {
    cluster_id: u64,
    dialer: PeerDialer,
    clients: Mutex<HashMap<String, PeerClient<Channel>>>,
}

impl Forwarder {
    pub fn new(cluster_id: u64, dialer: PeerDialer) -> Forwarder {
        Forwarder {
            cluster_id,
            dialer,
            clients: Mutex::default(),
        }
    }

    fn client(&self, url: &str) -> Result<PeerClient<Channel>, tonic::Status> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(url) {
            return Ok(c.clone());
        }
        let ch = self
            .dialer
            .channel(url)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let c = PeerClient::new(ch)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        clients.insert(url.to_string(), c.clone());
        Ok(c)
    }

    /// Proposes `requests` on the leader; one outcome per request, in order.
    pub async fn propose_batch(
        &self,
        leader_url: &str,
        requests: Vec<InternalRequest>,
    ) -> Result<Vec<Result<ApplyResult, tonic::Status>>, tonic::Status> {
        let mut c = self.client(leader_url)?;
        let sent = requests.len();
        let req = ProposeBatchRequest {
            cluster_id: self.cluster_id,
            requests,
        };
        let outcomes = c.propose_batch(req).await?.into_inner().outcomes;
        if outcomes.len() != sent {
            return Err(tonic::Status::internal(format!(
                "the leader answered {} of {sent} forwarded writes",
                outcomes.len()
            )));
        }
        Ok(outcomes
            .into_iter()
            .map(|o| match o.outcome {
                Some(propose_outcome::Outcome::Applied(r)) => Ok(r),
                Some(propose_outcome::Outcome::Error(e)) => {
                    Err(tonic::Status::new(tonic::Code::from_i32(e.code), e.message))
                }
                None => Err(tonic::Status::internal("the leader sent an empty outcome")),
            })
            .collect())
    }

    pub async fn lease_renew(
        &self,
        leader_url: &str,
        id: i64,
    ) -> Result<LeaseKeepAliveResponse, tonic::Status> {
        let mut c = self.client(leader_url)?;
        let req = LeaseForward {
            cluster_id: self.cluster_id,
            request: Some(LeaseTimeToLiveRequest { id, keys: false }),
        };
        Ok(c.lease_renew(req).await?.into_inner())
    }

    pub async fn lease_time_to_live(
        &self,
        leader_url: &str,
        request: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, tonic::Status> {
        let mut c = self.client(leader_url)?;
        let req = LeaseForward {
            cluster_id: self.cluster_id,
            request: Some(request),
        };
        Ok(c.lease_time_to_live(req).await?.into_inner())
    }

    pub async fn member_change(
        &self,
        leader_url: &str,
        change: Change,
    ) -> Result<MemberChangeResponse, tonic::Status> {
        let mut c = self.client(leader_url)?;
        let req = MemberChangeRequest {
            cluster_id: self.cluster_id,
            change: Some(change),
        };
        Ok(c.member_change(req).await?.into_inner())
    }

    pub async fn read_index(&self, leader_url: &str) -> Result<u64, tonic::Status> {
        let mut c = self.client(leader_url)?;
        let req = ReadIndexRequest {
            cluster_id: self.cluster_id,
        };
        Ok(c.read_index(req).await?.into_inner().index)
    }

    /// Tells `member_url` to campaign at once (the last step of a leadership transfer).
    pub async fn timeout_now(&self, member_url: &str) -> Result<(), tonic::Status> {
        let mut c = self.client(member_url)?;
        let req = TimeoutNowRequest {
            cluster_id: self.cluster_id,
        };
        c.timeout_now(req).await?;
        Ok(())
    }

    /// A member's HashKV at `revision`, for the corruption checks.
    pub async fn hash_kv(
        &self,
        member_url: &str,
        revision: i64,
    ) -> Result<HashKvResponse, tonic::Status> {
        let mut c = self.client(member_url)?;
        let req = PeerHashKvRequest {
            cluster_id: self.cluster_id,
            revision,
        };
        Ok(c.hash_kv(req).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    type Echo = ReplicationStream<
        tokio_stream::wrappers::ReceiverStream<Result<RaftMessage, tonic::Status>>,
    >;

    fn msg(tag: u8) -> RaftMessage {
        RaftMessage {
            cluster_id: 1,
            payload: vec![tag],
        }
    }

    /// A follower that answers each request with its payload after
    /// `delay` (the first one) or at once (the others).
    fn echoing_stream(first_delay: Duration) -> Echo {
        let (requests, mut rx) = tokio::sync::mpsc::channel::<RaftMessage>(1);
        let (answer_tx, answer_rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut delay = first_delay;
            while let Some(m) = rx.recv().await {
                tokio::time::sleep(delay).await;
                delay = Duration::ZERO;
                if answer_tx.send(Ok(m)).await.is_err() {
                    return;
                }
            }
        });
        ReplicationStream {
            requests,
            answers: tokio_stream::wrappers::ReceiverStream::new(answer_rx),
        }
    }

    async fn open(first_delay: Duration) -> Result<Echo, tonic::Status> {
        Ok(echoing_stream(first_delay))
    }

    /// openraft drops an AppendEntries call at its own timeout. The answer
    /// to that request still comes on the stream: reused, the stream hands
    /// it to the next request (a follower seemed to hold entries it did
    /// not, and the leader's raft core panicked on "follower log reversion":
    /// found by the long robustness run under packet loss).
    #[tokio::test]
    async fn a_stream_whose_exchange_was_dropped_is_not_reused() {
        let mut slot = None;
        let dropped = tokio::time::timeout(
            Duration::from_millis(20),
            exchange_in(&mut slot, open(Duration::from_millis(200)), msg(1)),
        )
        .await;
        assert!(dropped.is_err(), "the first exchange was cut off");
        assert!(slot.is_none(), "its stream went with it");
        // What reusing it would do: the second request gets the first's answer.
        let mut stream = echoing_stream(Duration::from_millis(200));
        let cut = tokio::time::timeout(Duration::from_millis(20), stream.exchange(msg(1))).await;
        assert!(cut.is_err());
        let stale = stream.exchange(msg(2)).await.unwrap();
        assert_eq!(stale.payload, [1]);
        // The next exchange opens a new stream; one that completes is kept.
        let answer = exchange_in(&mut slot, open(Duration::ZERO), msg(3)).await;
        assert_eq!(answer.unwrap().payload, [3]);
        assert!(slot.is_some(), "a stream whose exchanges completed is kept");
        let answer = exchange_in(&mut slot, open(Duration::ZERO), msg(4)).await;
        assert_eq!(answer.unwrap().payload, [4]);
    }
}

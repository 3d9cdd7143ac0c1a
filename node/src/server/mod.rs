//! A member's core: identity and bootstrap, the store, the raft node that
//! orders writes (with forwarding to the leader and read-index reads), the
//! lease table, the watch hub, and background duties (lease expiry,
//! auto-compaction, publishing this member's attributes).

mod background;
mod batcher;
mod bootstrap;
mod forwarding;
mod members;
mod membership;
mod read_index;
mod transfer;

pub use membership::to_proto as member_to_proto;

pub use bootstrap::Identity;
pub use members::MemberView;

use crate::apply::{ApplyError, Response};
use crate::config::Config;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::{MvccError, ReadView, Store};
use crate::peer::{Forwarder, PeerNetwork, PeerService};
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, LeaseKeepAliveResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader,
};
use crate::proto::ferrocdpb::{
    internal_request::Request, peer_server::PeerServer, InternalRequest,
};
use crate::raft::state_machine::Waiters;
use crate::raft::{Command, LogStore, StateMachine, TypeConfig};
use crate::watch::WatchHub;
use openraft::Raft;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a request could not be served (the API layer maps these to etcd's
/// gRPC codes and texts).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ServerError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("request is too large")]
    RequestTooLarge,
    #[error("server stopped")]
    Stopped,
    #[error("request timed out")]
    Timeout,
    /// This member is not the leader; the leader's peer URL when known.
    #[error("not leader")]
    NotLeader(Option<String>),
    /// A refusal to hand to the client as this gRPC status (from the
    /// leader for a forwarded request, or one of etcd's membership checks).
    #[error("{message}")]
    Refused { code: i32, message: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Membership(String),
    /// Discovery found the cluster complete without this member; the
    /// cluster's peer URLs (for `--discovery-fallback proxy`).
    #[error("failed to join discovery cluster (discovery: cluster is full)")]
    ClusterFull(Vec<String>),
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    #[error("request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
}

impl From<MvccError> for ServerError {
    fn from(e: MvccError) -> Self {
        ServerError::Apply(ApplyError::Mvcc(e))
    }
}

pub struct Server {
    pub identity: Identity,
    pub config: Arc<Config>,
    pub store: Store,
    pub lessor: Arc<Lessor>,
    pub hub: Arc<WatchHub>,
    pub metrics: Arc<Metrics>,
    pub raft: Raft<TypeConfig>,
    waiters: Arc<Waiters>,
    batcher: batcher::Batcher,
    /// Linearizable reads share read-index rounds.
    reads: read_index::ReadRounds,
    /// Held by a leadership transfer while the leader must stay silent.
    gate: Arc<transfer::LeaderGate>,
    pub(crate) forwarder: Arc<Forwarder>,
    forward_batcher: forwarding::ForwardBatcher,
    applied_index: Arc<crate::raft::AppliedIndex>,
    lease_ids: AtomicU64,
    request_ids: AtomicU64,
    /// Peers refusing this member's cluster ID.
    pub(crate) refusals: Arc<crate::peer::Refusals>,
    /// Set when this member must stop (it belongs to no cluster it can reach).
    fatal: tokio::sync::watch::Sender<Option<String>>,
    /// TLS of https client URLs (files or auto-tls), if configured.
    pub client_tls: Option<Arc<crate::tls::ServerTls>>,
    /// TLS of https peer URLs, if configured.
    peer_tls: Option<Arc<crate::tls::ServerTls>>,
    /// Tells the peer listeners to stop (after they finish what they serve).
    stop_peers: tokio::sync::watch::Sender<bool>,
    peer_listeners: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// When a quorum last confirmed this member's leadership (ms since `started`).
    quorum_confirmed_ms: AtomicU64,
    started: Instant,
}

impl Server {
    /// Opens the data dir, bootstraps or restarts the raft member, starts the
    /// peer listener and background tasks.
    pub async fn start(config: Config) -> Result<Arc<Server>, ServerError> {
        let config = Arc::new(config);
        let (client_tls, peer_tls) = tls_for(&config)?;
        let store = Store::open(&config.data_dir)?;
        let metrics = Arc::new(Metrics::default());
        let log = LogStore::open(&config.data_dir, metrics.clone())
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let boot = bootstrap::prepare(&config, &store).await?;
        let identity = boot.identity.clone();
        let lessor = Arc::new(Lessor::new(config.min_lease_ttl()));
        let hub = WatchHub::new(
            store.clone(),
            store.read()?.rev,
            tokio::runtime::Handle::current(),
        );
        let waiters: Arc<Waiters> = Arc::default();
        let applied_index: Arc<crate::raft::AppliedIndex> = Arc::default();
        let sm = StateMachine::open(
            store.clone(),
            lessor.clone(),
            hub.clone(),
            waiters.clone(),
            applied_index.clone(),
            metrics.clone(),
            config.data_dir.join("member"),
        )
        .map_err(|e| ServerError::Config(e.to_string()))?;
        let timing = transfer::RaftTiming::new(config.election_timeout);
        let raft_config = Arc::new(
            openraft::Config {
                cluster_name: format!("{:x}", identity.cluster_id),
                heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
                election_timeout_min: timing.election_min_ms,
                election_timeout_max: timing.election_max_ms,
                snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_count),
                max_in_snapshot_log_to_keep: 1000,
                // Installing a large snapshot takes far longer than a heartbeat.
                install_snapshot_timeout: 10 * config.election_timeout.as_millis() as u64,
                ..Default::default()
            }
            .validate()
            .map_err(|e| ServerError::Config(e.to_string()))?,
        );
        let refusals: Arc<crate::peer::Refusals> = Arc::default();
        let network = PeerNetwork {
            cluster_id: identity.cluster_id,
            refusals: refusals.clone(),
        };
        let raft = Raft::new(identity.member_id, raft_config, network, log, sm)
            .await
            .map_err(|e| ServerError::Config(format!("cannot start raft: {e}")))?;
        let gate: Arc<transfer::LeaderGate> = Arc::default();
        let (reads, read_queue) = read_index::ReadRounds::new();
        let forwarder = Arc::new(Forwarder::new(identity.cluster_id));
        let server = Arc::new(Server {
            reads,
            lease_ids: AtomicU64::new(id_seed()),
            request_ids: AtomicU64::new(id_seed()),
            forwarder: forwarder.clone(),
            forward_batcher: forwarding::ForwardBatcher::spawn(forwarder),
            batcher: batcher::Batcher::spawn(raft.clone(), gate.clone()),
            gate,
            identity,
            config,
            store,
            lessor,
            hub,
            metrics,
            raft,
            waiters,
            applied_index,
            quorum_confirmed_ms: AtomicU64::new(0),
            started: Instant::now(),
            refusals,
            fatal: tokio::sync::watch::channel(None).0,
            stop_peers: tokio::sync::watch::channel(false).0,
            client_tls,
            peer_tls,
            peer_listeners: std::sync::Mutex::default(),
        });
        tokio::spawn(read_index::run(Arc::downgrade(&server), read_queue));
        server.serve_peers().await?;
        if let Some(members) = boot.initialize {
            match server.raft.initialize(members).await {
                Ok(()) => {}
                Err(e) if e.api_error().is_some() => {
                    tracing::debug!(error = %e, "already initialized")
                }
                Err(e) => {
                    return Err(ServerError::Config(format!(
                        "cannot bootstrap the cluster: {e}"
                    )))
                }
            }
        }
        background::spawn(&server);
        tracing::info!(
            name = %server.identity.name,
            member_id = %format!("{:x}", server.identity.member_id),
            cluster_id = %format!("{:x}", server.identity.cluster_id),
            data_dir = %server.config.data_dir.display(),
            "ferrocd member started"
        );
        Ok(server)
    }

    async fn serve_peers(self: &Arc<Self>) -> Result<(), ServerError> {
        for url in &self.config.listen_peer_urls {
            let listener = crate::api::bind_url(url)
                .await
                .map_err(|e| ServerError::Config(e.to_string()))?;
            let service = PeerServer::new(PeerService {
                cluster_id: self.identity.cluster_id,
                raft: self.raft.clone(),
                server: Arc::downgrade(self),
            })
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(address = %addr, "serving peer traffic");
            let mut stop = self.stop_peers.subscribe();
            let tls = match (url.scheme(), &self.peer_tls) {
                ("https", Some(t)) => Some(t.clone()),
                _ => None,
            };
            let task = tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let r = tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .add_service(service)
                    .serve_with_incoming_shutdown(crate::tls::incoming(listener, tls), stopped)
                    .await;
                if let Err(e) = r {
                    tracing::error!(address = %addr, error = %e, "peer listener failed");
                }
            });
            self.peer_listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(task);
        }
        Ok(())
    }

    /// A response header for `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.identity.cluster_id,
            member_id: self.identity.member_id,
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

    /// The leader's ID; 0 when there is none (a leader that lost its quorum
    /// counts as none, as etcd's check-quorum makes it step down).
    pub fn leader_id(&self) -> u64 {
        let leader = self.raft.metrics().borrow().current_leader;
        match leader {
            Some(id) if id == self.identity.member_id && !self.quorum_is_fresh() => 0,
            Some(id) => id,
            None => 0,
        }
    }

    pub fn has_leader(&self) -> bool {
        self.leader_id() != 0
    }

    pub fn is_leader(&self) -> bool {
        self.leader_id() == self.identity.member_id
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Called when a quorum has just confirmed this member's leadership.
    pub(crate) fn quorum_confirmed(&self) {
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
        last != 0
            && self.now_ms().saturating_sub(last) <= self.config.election_timeout.as_millis() as u64
    }

    /// Index of the last entry in this member's raft log.
    pub fn raft_index(&self) -> u64 {
        self.raft.metrics().borrow().last_log_index.unwrap_or(0)
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.get()
    }

    /// A consistent snapshot for serializable reads.
    pub fn read(&self) -> Result<ReadView, ServerError> {
        Ok(self.store.read()?)
    }

    /// Waits until this member has applied everything committed before the
    /// call (read-index through the leader); then local reads are linearizable.
    pub async fn linearizable_read(&self) -> Result<(), ServerError> {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let index = match tokio::time::timeout(left, self.reads.next()).await {
                Ok(Ok(index)) => index,
                Ok(Err(ServerError::Stopped)) => return Err(ServerError::Stopped),
                Ok(Err(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                _ => return Err(ServerError::Timeout),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            return if self.applied_index.reached(index, left).await {
                Ok(())
            } else {
                Err(ServerError::Timeout)
            };
        }
    }

    /// A read index for a follower's reads (the leader answers in rounds).
    pub async fn read_index(&self) -> Result<u64, ServerError> {
        self.reads.next().await
    }

    /// Sends a write through the log (via the leader) and waits until it is
    /// committed and applied.
    pub async fn propose(&self, req: Request) -> Result<Response, ServerError> {
        let entry = InternalRequest { request: Some(req) };
        if entry.encoded_len() > self.config.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        self.metrics
            .proposals_pending
            .fetch_add(1, Ordering::Relaxed);
        let r = self.propose_until_deadline(entry).await;
        self.metrics
            .proposals_pending
            .fetch_sub(1, Ordering::Relaxed);
        if r.is_err() {
            self.metrics
                .proposals_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    async fn propose_until_deadline(
        &self,
        entry: InternalRequest,
    ) -> Result<Response, ServerError> {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            // A follower that knows the leader forwards at once; otherwise
            // raft decides whether this member leads.
            let leader_url = match self.leader_elsewhere() {
                Some(url) => Some(url),
                None => match self.propose_here(&entry).await {
                    Err(ServerError::NotLeader(url)) => url,
                    other => return other,
                },
            };
            if let Some(url) = leader_url {
                match self.forward_batcher.forward(url, entry.clone()).await {
                    Ok(r) => {
                        // As etcd: answer only once this member applied the write too.
                        let left = deadline.saturating_duration_since(Instant::now());
                        if !self.applied_index.reached(r.applied_index, left).await {
                            return Err(ServerError::Timeout);
                        }
                        return Response::from_wire(r).ok_or(ServerError::Stopped);
                    }
                    Err(status) if retryable(&status) => {}
                    Err(status) => {
                        return Err(ServerError::Refused {
                            code: status.code() as i32,
                            message: status.message().to_string(),
                        })
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ServerError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes on this member only; `NotLeader` when it does not lead.
    pub async fn propose_here(&self, entry: &InternalRequest) -> Result<Response, ServerError> {
        let id = self.next_request_id();
        let rx = self.waiters.register(id);
        let command = Command {
            id,
            entry: entry.encode_to_vec(),
        };
        // Without a quorum raft waits forever; a client gets etcd's timeout.
        let limit = self.config.request_timeout();
        let outcome = tokio::time::timeout(limit, async {
            self.batcher.submit(command).await?;
            match rx.await {
                Ok(r) => r.map_err(ServerError::from),
                Err(_) => Err(ServerError::Stopped),
            }
        })
        .await;
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.waiters.forget(id);
                Err(e)
            }
            Err(_) => {
                self.waiters.forget(id);
                Err(ServerError::Timeout)
            }
        }
    }

    /// Globally unique proposal IDs: this member's ID in the high bits.
    fn next_request_id(&self) -> u64 {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed) & ((1 << 40) - 1);
        ((self.identity.member_id & 0xff_ffff) << 40) | n
    }

    /// etcd's quota check before a write that grows the database by about
    /// `cost` bytes: past the quota, raise the NOSPACE alarm and refuse.
    pub async fn check_quota(&self, cost: u64) -> Result<(), ServerError> {
        let Some(quota) = self.config.quota_backend_bytes else {
            return Ok(());
        };
        if cost == 0 || self.store.file_size() + cost <= quota {
            return Ok(());
        }
        let alarm = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.identity.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = self.propose(Request::Alarm(alarm)).await {
            tracing::warn!(error = %e, "cannot raise the NOSPACE alarm");
        }
        Err(ApplyError::NoSpace.into())
    }

    /// A new lease ID: etcd's generator (member ID's low 16 bits, then a
    /// time-seeded counter), skipping IDs in use.
    pub fn next_lease_id(&self) -> i64 {
        let prefix = (self.identity.member_id & 0xffff) << 48;
        loop {
            let suffix = self.lease_ids.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
            let id = ((prefix | suffix) & (i64::MAX as u64)) as i64;
            if id != 0 && !self.lessor.exists(id) {
                return id;
            }
        }
    }

    /// The leader's peer URL when another member leads. Raft's own view,
    /// not `is_leader`: a leader waiting to hear from its quorum must not
    /// forward to itself.
    pub(super) fn leader_elsewhere(&self) -> Option<String> {
        self.leader_peer_url(Some(self.identity.member_id))
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

    /// Calls `f` with the leader's URL until it answers, up to the request timeout.
    pub(crate) async fn on_leader<T, F, Fut>(&self, f: F) -> Result<T, ServerError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.config.request_timeout();
        loop {
            if let Some(url) = self.leader_url() {
                match f(url).await {
                    Ok(v) => return Ok(v),
                    Err(s) if retryable(&s) => {}
                    Err(s) => {
                        return Err(ServerError::Refused {
                            code: s.code() as i32,
                            message: s.message().to_string(),
                        })
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ServerError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A keep-alive: the leader restarts the lease's deadline (TTL 0: no such lease).
    pub async fn lease_renew(&self, id: i64) -> Result<LeaseKeepAliveResponse, ServerError> {
        if self.is_leader() {
            return Ok(self.lease_renew_here(id));
        }
        self.on_leader(|url| async move { self.forwarder.lease_renew(&url, id).await })
            .await
    }

    pub fn lease_renew_here(&self, id: i64) -> LeaseKeepAliveResponse {
        LeaseKeepAliveResponse {
            header: Some(self.header(self.hub.rev())),
            id,
            ttl: self.lessor.keep_alive(id).unwrap_or(0),
        }
    }

    /// A lease's remaining TTL, as the leader (which runs expiry) sees it.
    pub async fn lease_time_to_live(
        &self,
        r: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ServerError> {
        if self.is_leader() {
            return Ok(self.lease_time_to_live_here(&r));
        }
        self.on_leader(|url| async move { self.forwarder.lease_time_to_live(&url, r).await })
            .await
    }

    pub fn lease_time_to_live_here(&self, r: &LeaseTimeToLiveRequest) -> LeaseTimeToLiveResponse {
        let header = Some(self.header(self.hub.rev()));
        match self.lessor.time_to_live(r.id) {
            Some(info) => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: info.remaining_ttl,
                granted_ttl: info.granted_ttl,
                keys: if r.keys { info.keys } else { Vec::new() },
            },
            // etcd answers an unknown lease with TTL -1, not an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
        }
    }

    /// Resolves with the reason once this member must stop on its own.
    pub async fn fatal(&self) -> String {
        let mut rx = self.fatal.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "server dropped".into();
            }
        }
    }

    pub(crate) fn stop_with(&self, reason: String) {
        tracing::error!(reason = %reason, "stopping this member");
        let _ = self.fatal.send(Some(reason));
    }

    /// Stops raft, after handing leadership over if this member leads
    /// (unless it stops because it is not part of a cluster).
    pub async fn shutdown(&self) {
        if self.fatal.borrow().is_none() {
            self.hand_over_leadership().await;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        // Peers' requests in flight get an answer (they retry elsewhere)
        // rather than a reset connection.
        let _ = self.stop_peers.send(true);
        let listeners = std::mem::take(
            &mut *self
                .peer_listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for l in listeners {
            if tokio::time::timeout(Duration::from_secs(2), l)
                .await
                .is_err()
            {
                tracing::warn!("peer requests still running at shutdown");
            }
        }
        if let Err(e) = self.store.sync() {
            tracing::warn!(error = %e, "cannot sync the store at shutdown");
        }
    }
}

/// The member's client and peer TLS (certificates made now for auto-tls);
/// the peer side also becomes this process's identity toward https peers.
#[allow(clippy::type_complexity)]
fn tls_for(
    config: &Config,
) -> Result<
    (
        Option<Arc<crate::tls::ServerTls>>,
        Option<Arc<crate::tls::ServerTls>>,
    ),
    ServerError,
> {
    let fixtures = config.data_dir.join("fixtures");
    let urls = |listen: &[url::Url], advertised: &[String]| -> Vec<String> {
        listen
            .iter()
            .map(|u| u.to_string())
            .chain(advertised.iter().cloned())
            .collect()
    };
    let tls_error = |e: crate::tls::TlsError| ServerError::Config(e.0);
    let client = crate::tls::for_member(
        &config.client_tls,
        &config.tls_policy,
        &urls(&config.listen_client_urls, &config.advertise_client_urls),
        &fixtures.join("client"),
    )
    .map_err(tls_error)?;
    let peer = crate::tls::for_member(
        &config.peer_tls,
        &config.tls_policy,
        &urls(
            &config.listen_peer_urls,
            &config.initial_advertise_peer_urls,
        ),
        &fixtures.join("peer"),
    )
    .map_err(tls_error)?;
    if let Some(p) = &peer {
        let dialer = crate::tls::ClientTls::new(p.files().clone(), config.tls_policy.clone())
            .map_err(tls_error)?;
        crate::peer::client::use_peer_tls(dialer);
    }
    Ok((client, peer))
}

/// Leadership moved or is being decided: try again.
fn retryable(s: &tonic::Status) -> bool {
    matches!(s.code(), tonic::Code::Unavailable) || s.message() == "etcdserver: not leader"
}

fn id_seed() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms << 8
}

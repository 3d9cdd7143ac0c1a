//! A member's core: its identity, the store, the write path (propose ->
//! apply thread), the lease table, the watch hub, and background duties
//! (lease expiry, auto-compaction). The API layer talks only to [`Server`].

mod background;
mod propose;

use crate::apply::{Applier, ApplyError, Response};
use crate::config::Config;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::{MvccError, ReadView, Store};
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, ResponseHeader,
};
use crate::proto::ferrocdpb::{internal_request::Request, InternalRequest};
use crate::watch::WatchHub;
use propose::Proposal;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Who this member is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub member_id: u64,
    pub cluster_id: u64,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

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
    #[error("no leader")]
    NoLeader,
    #[error("{0}")]
    Config(String),
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
    proposals: mpsc::Sender<Proposal>,
    applied_index: Arc<AtomicU64>,
    lease_ids: AtomicU64,
}

/// etcd's minimum lease TTL for the default election timeout (1000 ms):
/// ceil(1.5 * election timeout) seconds.
const MIN_LEASE_TTL: i64 = 2;

impl Server {
    /// Opens the data dir, starts the apply thread and background tasks.
    pub async fn start(config: Config) -> Result<Arc<Server>, ServerError> {
        let config = Arc::new(config);
        let identity = identity(&config)?;
        let store = Store::open(&config.data_dir)?;
        let identity = persist_identity(&store, identity)?;
        let lessor = Arc::new(Lessor::new(MIN_LEASE_TTL));
        let applier = Applier::open(store.clone(), lessor.clone())?;
        let hub = WatchHub::new(
            store.clone(),
            applier.rev(),
            tokio::runtime::Handle::current(),
        );
        let metrics = Arc::new(Metrics::default());
        let applied_index = Arc::new(AtomicU64::new(applier.applied_index()));
        let (tx, rx) = mpsc::channel(propose::QUEUE_LEN);
        propose::spawn_apply_loop(
            applier,
            hub.clone(),
            metrics.clone(),
            rx,
            applied_index.clone(),
        );
        let server = Arc::new(Server {
            lease_ids: AtomicU64::new(lease_id_seed()),
            identity,
            config,
            store,
            lessor,
            hub,
            metrics,
            proposals: tx,
            applied_index,
        });
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

    /// A single member leads from its start, in term 1.
    pub fn raft_term(&self) -> u64 {
        1
    }

    pub fn has_leader(&self) -> bool {
        true
    }

    pub fn leader_id(&self) -> u64 {
        self.identity.member_id
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    /// A consistent snapshot for reads. Every acknowledged write is in it.
    pub fn read(&self) -> Result<ReadView, ServerError> {
        Ok(self.store.read()?)
    }

    /// Sends a write through the log and waits until it is applied and durable.
    pub async fn propose(&self, req: Request) -> Result<Response, ServerError> {
        let entry = InternalRequest { request: Some(req) };
        if entry.encoded_len() > self.config.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        let (reply, rx) = oneshot::channel();
        self.metrics
            .proposals_pending
            .fetch_add(1, Ordering::Relaxed);
        let sent = self.proposals.send(Proposal { entry, reply }).await;
        let result = match sent {
            Ok(()) => rx.await.map_err(|_| ServerError::Stopped),
            Err(_) => Err(ServerError::Stopped),
        };
        self.metrics
            .proposals_pending
            .fetch_sub(1, Ordering::Relaxed);
        match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.metrics
                    .proposals_failed
                    .fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
            Err(e) => Err(e),
        }
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
}

fn lease_id_seed() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms << 8
}

/// The member's identity from the bootstrap flags.
fn identity(cfg: &Config) -> Result<Identity, ServerError> {
    let own = cfg
        .own_initial_peer_urls()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    let mut listed = own.to_vec();
    advertised.sort();
    listed.sort();
    if advertised != listed {
        return Err(ServerError::Config(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (\"{}\"(resolved from {:?}) != \"{}\"(resolved from {:?}))",
            cfg.name,
            own.join(","),
            cfg.initial_advertise_peer_urls.join(","),
            cfg.initial_advertise_peer_urls.join(","),
            cfg.initial_advertise_peer_urls,
            own.join(","),
            own
        )));
    }
    if cfg.initial_cluster.len() > 1 {
        return Err(ServerError::Config(
            "this ferrocd build serves single-member clusters only; --initial-cluster lists several members".into(),
        ));
    }
    let member_id = crate::ids::member_id(own, &cfg.initial_cluster_token, None);
    Ok(Identity {
        name: cfg.name.clone(),
        member_id,
        cluster_id: crate::ids::cluster_id(&[member_id]),
        peer_urls: own.to_vec(),
        client_urls: cfg.advertise_client_urls.clone(),
    })
}

/// The first start records the IDs; later starts keep them whatever the
/// bootstrap flags say (as etcd ignores them once it has data).
fn persist_identity(store: &Store, mut id: Identity) -> Result<Identity, ServerError> {
    const MEMBER: &str = "member_id";
    const CLUSTER: &str = "cluster_id";
    let (member, cluster) = store.write(|t| {
        let m = t.meta(MEMBER)?;
        if m != 0 {
            return Ok((m, t.meta(CLUSTER)?));
        }
        t.set_meta(MEMBER, id.member_id)?;
        t.set_meta(CLUSTER, id.cluster_id)?;
        Ok((id.member_id, id.cluster_id))
    })?;
    if member != id.member_id {
        tracing::info!("data dir already holds a member; ignoring the bootstrap flags");
    }
    id.member_id = member;
    id.cluster_id = cluster;
    Ok(id)
}

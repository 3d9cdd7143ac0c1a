//! A member's core, split by responsibility into handles the API layer
//! holds one by one:
//!
//! - [`Leadership`]: who leads (with check-quorum), response headers;
//! - [`Proposer`]: writes through the log (group commit, forwarding);
//! - [`Reader`]: serializable and linearizable reads (read index);
//! - [`Leases`]: lease IDs, keep-alives and TTLs at the leader;
//! - [`Membership`]: the member list and membership changes;
//! - [`Transfer`]: MoveLeader and the hand-over at shutdown;
//!
//! and [`Member`] itself, the lifecycle: identity and bootstrap, start-up
//! of raft and the peer listeners, the tasks it owns, shutdown.

mod authn;
mod background;
mod bootstrap;
mod corruption;
mod error;
pub mod leadership;
pub mod leases;
pub mod membership;
mod peer_side;
pub mod proposer;
pub mod reader;
mod tasks;
pub mod transfer;

pub use authn::Authenticator;
pub use bootstrap::Identity;
pub use error::{RequestError, StartError};
pub use leadership::Leadership;
pub use leases::Leases;
pub use membership::{MemberView, Membership};
pub use proposer::Proposer;
pub use reader::Reader;
pub use transfer::Transfer;

use crate::apply::machine::Machine;
use crate::auth::AuthStore;
use crate::config::Config;
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::Store;
use crate::peer::{Forwarder, PeerDialer, PeerNetwork, PeerService, Refusals};
use crate::raft::state_machine::Waiters;
use crate::raft::{AppliedIndex, LogStore, MemberInfo, StateMachine, TypeConfig};
use crate::tls::{ClientTls, ServerTls, TlsError};
use crate::watch::WatchHub;
use ferrocd_proto::ferrocdpb::peer_server::PeerServer;
use openraft::Raft;
use std::sync::Arc;
use std::time::Duration;
use tasks::Tasks;

/// How long shutdown waits for a task before aborting it.
const TASK_GRACE: Duration = Duration::from_secs(2);

pub struct Member {
    pub identity: Identity,
    pub config: Arc<Config>,
    pub store: Store,
    pub hub: Arc<WatchHub>,
    pub metrics: Arc<Metrics>,
    pub leadership: Arc<Leadership>,
    pub proposer: Arc<Proposer>,
    pub reader: Arc<Reader>,
    pub leases: Arc<Leases>,
    pub membership: Arc<Membership>,
    pub transfer: Arc<Transfer>,
    pub authn: Arc<Authenticator>,
    /// TLS of https client URLs (files or auto-tls), if configured.
    pub client_tls: Option<Arc<ServerTls>>,
    raft: Raft<TypeConfig>,
    fatal: Arc<Fatal>,
    /// Everything but the peer listeners.
    tasks: Tasks,
    /// The peer listeners stop last: peers' requests in flight during
    /// shutdown get an answer (they retry elsewhere), not a reset connection.
    peer_listeners: Tasks,
}

impl Member {
    /// Opens the data dir, bootstraps or restarts the raft member, starts the
    /// peer listener and background tasks.
    pub async fn start(config: Config) -> Result<Arc<Member>, StartError> {
        let config = Arc::new(config);
        let (client_tls, peer_tls) = tls_for(&config)?;
        let dialer = peer_dialer(&config, peer_tls.as_deref())?;
        let store = Store::open(&config.data_dir)?;
        let metrics = Arc::new(Metrics::new(if config.extensive_metrics {
            crate::metrics::Level::Extensive
        } else {
            crate::metrics::Level::Basic
        }));
        let applied_index: Arc<AppliedIndex> = Arc::default();
        let mut log = LogStore::open(&config.data_dir, metrics.clone(), applied_index.clone())
            .map_err(|e| StartError::Config(e.to_string()))?;
        let boot = bootstrap::prepare(&config, &store, &dialer).await?;
        let identity = boot.identity.clone();
        let lessor = Arc::new(Lessor::new(config.min_lease_ttl()));
        let hub = WatchHub::new(
            store.clone(),
            store.read()?.rev,
            tokio::runtime::Handle::current(),
        );
        let waiters: Arc<Waiters> = Arc::default();
        let auth = Arc::new(AuthStore::new(config.auth_token_ttl));
        let machine = Machine::open(store.clone(), lessor.clone(), auth.clone(), hub.clone())?;
        let mut sm = StateMachine::open(
            machine,
            waiters.clone(),
            applied_index.clone(),
            metrics.clone(),
            config.data_dir.join("member"),
        )
        .map_err(|e| StartError::Config(e.to_string()))?;
        let forwarder = Arc::new(Forwarder::new(identity.cluster_id, dialer.clone()));
        let member_dir = config.data_dir.join("member");
        let once = match &config.force_new_cluster_once {
            Some(token) if boot.restarted => {
                let forced = crate::raft::force::forced_with(&member_dir, token)
                    .map_err(|e| StartError::Config(format!("--force-new-cluster-once: {e}")))?;
                (!forced).then_some(token)
            }
            _ => None,
        };
        if (config.force_new_cluster || once.is_some()) && boot.restarted {
            let own = MemberInfo {
                name: identity.name.clone(),
                peer_urls: identity.peer_urls.clone(),
                client_urls: identity.client_urls.clone(),
            };
            let dropped =
                crate::raft::force_new_cluster(&mut log, &mut sm, identity.member_id, own)
                    .await
                    .map_err(|e| StartError::Config(format!("--force-new-cluster: {e}")))?;
            let dropped: Vec<String> = dropped.iter().map(|id| format!("{id:x}")).collect();
            tracing::warn!(
                member_id = %format!("{:x}", identity.member_id),
                cluster_id = %format!("{:x}", identity.cluster_id),
                removed = ?dropped,
                "forced a new one-member cluster from this member's data"
            );
            if let Some(token) = once {
                crate::raft::force::record_forced(&member_dir, token)
                    .map_err(|e| StartError::Config(format!("--force-new-cluster-once: {e}")))?;
            }
        }
        if config.corruption_checks.initial && boot.restarted {
            use openraft::storage::RaftStateMachine;
            let (_, membership) = sm
                .applied_state()
                .await
                .map_err(|e| StartError::Config(e.to_string()))?;
            let peers: Vec<(u64, Vec<String>)> = membership
                .membership()
                .nodes()
                .filter(|(id, _)| **id != identity.member_id)
                .map(|(id, n)| (*id, n.peer_urls.clone()))
                .collect();
            corruption::initial_check(
                &store,
                identity.member_id,
                &peers,
                &forwarder,
                config.request_timeout(),
            )
            .await
            .map_err(StartError::Config)?;
        }
        let refusals: Arc<Refusals> = Arc::default();
        let network = PeerNetwork {
            cluster_id: identity.cluster_id,
            dialer: dialer.clone(),
            refusals: refusals.clone(),
            metrics: metrics.clone(),
        };
        let raft = Raft::new(
            identity.member_id,
            raft_config(&identity, &config)?,
            network,
            log,
            sm,
        )
        .await
        .map_err(|e| StartError::Config(format!("cannot start raft: {e}")))?;
        let tasks = Tasks::default();
        let request_timeout = config.request_timeout();
        let leadership = Arc::new(Leadership::new(
            identity.member_id,
            identity.cluster_id,
            raft.clone(),
            config.election_timeout,
            request_timeout,
        ));
        let proposer = Arc::new(Proposer::start(
            proposer::ProposerParts {
                raft: raft.clone(),
                leadership: leadership.clone(),
                forwarder: forwarder.clone(),
                waiters,
                applied_index: applied_index.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                limits: proposer::WriteLimits {
                    max_request_bytes: config.max_request_bytes,
                    request_timeout,
                    quota_bytes: config.quota_backend_bytes,
                },
            },
            &tasks,
        ));
        let reader = Arc::new(Reader::start(
            store.clone(),
            leadership.clone(),
            forwarder.clone(),
            applied_index.clone(),
            request_timeout,
            config.unsafe_local_reads,
            &tasks,
        ));
        let jwt = match &config.auth_token {
            crate::config::AuthToken::Simple => None,
            crate::config::AuthToken::Jwt {
                sign_method,
                pub_key,
                priv_key,
                ttl,
            } => Some(
                crate::auth::JwtTokens::new(
                    sign_method,
                    pub_key.as_deref(),
                    priv_key.as_deref(),
                    *ttl,
                )
                .map_err(|e| StartError::Config(format!("--auth-token: {e}")))?,
            ),
        };
        let authn = Arc::new(Authenticator::new(
            auth,
            applied_index,
            request_timeout,
            config.bcrypt_cost,
            config.client_tls.client_cert_auth,
            jwt,
        ));
        let leases = Arc::new(Leases::new(
            lessor.clone(),
            leadership.clone(),
            forwarder.clone(),
            hub.clone(),
        ));
        let membership = Arc::new(Membership::new(
            raft.clone(),
            store.clone(),
            leadership.clone(),
            forwarder.clone(),
        ));
        let transfer = Arc::new(Transfer {
            raft: raft.clone(),
            leadership: leadership.clone(),
            membership: membership.clone(),
            forwarder: forwarder.clone(),
            election_timeout: config.election_timeout,
            heartbeat_interval: config.heartbeat_interval,
            request_timeout,
        });
        let member = Member {
            identity,
            config,
            store,
            hub,
            metrics,
            leadership,
            proposer,
            reader,
            leases,
            membership,
            transfer,
            authn,
            client_tls,
            raft,
            fatal: Arc::new(Fatal::default()),
            tasks,
            peer_listeners: Tasks::default(),
        };
        member.serve_peers(peer_tls).await?;
        if let Some(members) = boot.initialize {
            match member.raft.initialize(members).await {
                Ok(()) => {}
                Err(e) if e.api_error().is_some() => {
                    tracing::debug!(error = %e, "already initialized")
                }
                Err(e) => {
                    return Err(StartError::Config(format!(
                        "cannot bootstrap the cluster: {e}"
                    )))
                }
            }
        }
        background::spawn(
            background::Duties {
                identity: member.identity.clone(),
                config: member.config.clone(),
                store: member.store.clone(),
                lessor,
                hub: member.hub.clone(),
                leadership: member.leadership.clone(),
                proposer: member.proposer.clone(),
                membership: member.membership.clone(),
                refusals,
                fatal: member.fatal.clone(),
                raft: member.raft.clone(),
                metrics: member.metrics.clone(),
            },
            &member.tasks,
        );
        let checks = &member.config.corruption_checks;
        corruption::spawn(
            corruption::Checker {
                me: member.identity.member_id,
                store: member.store.clone(),
                leadership: member.leadership.clone(),
                membership: member.membership.clone(),
                proposer: member.proposer.clone(),
                reader: member.reader.clone(),
                forwarder,
                timeout: request_timeout,
            },
            checks.periodic,
            checks.compact_hash,
            &member.tasks,
        );
        tracing::info!(
            name = %member.identity.name,
            member_id = %format!("{:x}", member.identity.member_id),
            cluster_id = %format!("{:x}", member.identity.cluster_id),
            data_dir = %member.config.data_dir.display(),
            "ferrocd member started"
        );
        Ok(Arc::new(member))
    }

    async fn serve_peers(&self, peer_tls: Option<Arc<ServerTls>>) -> Result<(), StartError> {
        let side = Arc::new(peer_side::PeerSide {
            proposer: self.proposer.clone(),
            reader: self.reader.clone(),
            leases: self.leases.clone(),
            membership: self.membership.clone(),
            leadership: self.leadership.clone(),
            store: self.store.clone(),
            fatal: self.fatal.clone(),
        });
        for url in &self.config.listen_peer_urls {
            let listener = crate::listen::bind_url(url)
                .await
                .map_err(|e| StartError::Config(e.to_string()))?;
            let service = PeerServer::new(PeerService {
                cluster_id: self.identity.cluster_id,
                raft: self.raft.clone(),
                member: side.clone(),
                metrics: self.metrics.clone(),
            })
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(address = %addr, "serving peer traffic");
            let tls = match url.scheme() {
                "https" => peer_tls.clone(),
                _ => None,
            };
            let stop = self.peer_listeners.stopping();
            self.peer_listeners.spawn_graceful(async move {
                let r = tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        crate::tls::incoming(listener, tls),
                        stop.cancelled_owned(),
                    )
                    .await;
                if let Err(e) = r {
                    tracing::error!(address = %addr, error = %e, "peer listener failed");
                }
            });
        }
        Ok(())
    }

    /// Resolves with the reason once this member must stop on its own.
    pub async fn fatal(&self) -> String {
        self.fatal.wait().await
    }

    /// Tasks of this member still running (0 once `shutdown` returned).
    pub fn tasks_running(&self) -> usize {
        self.tasks.running() + self.peer_listeners.running()
    }

    /// Stops raft, after handing leadership over if this member leads
    /// (unless it stops because it is not part of a cluster), then every
    /// task of the member.
    pub async fn shutdown(&self) {
        if !self.fatal.is_set() {
            self.transfer.hand_over_leadership().await;
        }
        // Bounded: a raft core that already stopped on a storage error must
        // not keep the member from exiting.
        match tokio::time::timeout(TASK_GRACE, self.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "raft did not shut down cleanly"),
            Err(_) => tracing::warn!("raft did not shut down in time"),
        }
        self.peer_listeners.shutdown(TASK_GRACE).await;
        self.tasks.shutdown(TASK_GRACE).await;
        if let Err(e) = self.store.sync() {
            tracing::warn!(error = %e, "cannot sync the store at shutdown");
        }
    }
}

/// Set when this member must stop (it belongs to no cluster it can reach).
#[derive(Default)]
pub(crate) struct Fatal(tokio::sync::watch::Sender<Option<String>>);

impl Fatal {
    fn stop_with(&self, reason: String) {
        tracing::error!(reason = %reason, "stopping this member");
        self.0.send_replace(Some(reason));
    }

    fn is_set(&self) -> bool {
        self.0.borrow().is_some()
    }

    async fn wait(&self) -> String {
        let mut rx = self.0.subscribe();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "member dropped".into(),
        };
        reason
    }
}

fn raft_config(identity: &Identity, config: &Config) -> Result<Arc<openraft::Config>, StartError> {
    let timing = transfer::RaftTiming::new(config.election_timeout);
    let c = openraft::Config {
        cluster_name: format!("{:x}", identity.cluster_id),
        heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
        election_timeout_min: timing.election_min_ms,
        election_timeout_max: timing.election_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_count),
        max_in_snapshot_log_to_keep: config.snapshot_catchup_entries,
        // Installing a large snapshot takes far longer than a heartbeat.
        install_snapshot_timeout: 10 * config.election_timeout.as_millis() as u64,
        ..Default::default()
    };
    Ok(Arc::new(
        c.validate()
            .map_err(|e| StartError::Config(e.to_string()))?,
    ))
}

/// The member's client and peer TLS (certificates made now for auto-tls).
#[allow(clippy::type_complexity)]
fn tls_for(
    config: &Config,
) -> Result<(Option<Arc<ServerTls>>, Option<Arc<ServerTls>>), StartError> {
    let fixtures = config.data_dir.join("fixtures");
    let urls = |listen: &[url::Url], advertised: &[String]| -> Vec<String> {
        listen
            .iter()
            .map(|u| u.to_string())
            .chain(advertised.iter().cloned())
            .collect()
    };
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
    Ok((client, peer))
}

/// The peer side's certificate is also this member's identity toward https peers.
fn peer_dialer(config: &Config, peer_tls: Option<&ServerTls>) -> Result<PeerDialer, StartError> {
    let tls = match peer_tls {
        Some(p) => {
            Some(ClientTls::new(p.files().clone(), config.tls_policy.clone()).map_err(tls_error)?)
        }
        None => None,
    };
    Ok(PeerDialer::new(tls))
}

fn tls_error(e: TlsError) -> StartError {
    StartError::Config(e.0)
}

/// A time-based seed for ID counters (lease IDs, proposal IDs), as etcd's.
fn id_seed() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms << 8
}

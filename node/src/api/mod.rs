//! The client-facing API: etcd's gRPC services and HTTP endpoints, served
//! together on every `--listen-client-urls` address.

pub mod auth;
pub mod caller;
pub mod cluster;
mod concurrency;
pub mod election;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod http;
pub mod json;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod upstream;
pub mod v2keys;
pub mod watch;

use crate::apply::EntryResponse;
use crate::listen::{bind_url, ListenError};
use crate::member::{Leadership, Member};
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use ferrocd_proto::v3electionpb::election_server::ElectionServer;
use ferrocd_proto::v3lockpb::lock_server::LockServer;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::Status;
use upstream::Upstream;

/// How long stopping listeners wait for the requests they serve.
const LISTENER_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// gRPC's receive limit is the request limit plus etcd's 512 KiB overhead allowance.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// `hasleader=true` metadata: refuse when the cluster has no leader.
pub(crate) fn require_leader<T>(req: &tonic::Request<T>, l: &Leadership) -> Result<(), Status> {
    let wants = req
        .metadata()
        .get("hasleader")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "true");
    if wants && !l.has_leader() {
        return Err(errors::NO_LEADER.status());
    }
    Ok(())
}

pub(crate) fn unexpected(r: EntryResponse) -> Status {
    errors::internal(format_args!("unexpected apply result {r:?}"))
}

/// The gRPC services, the JSON gateway and the HTTP endpoints as one
/// router. The lock and election services call the core services and the
/// gateway calls them all, in-process (as etcd's own do); gRPC metrics count
/// what reaches the services from clients and the gateway.
pub fn routes(m: &Arc<Member>) -> Routes {
    let limit = m.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let core = core_services(m);
    let inner = Upstream::new(core.clone().into_axum_router());
    let grpc = core
        .add_service(
            LockServer::new(lock::LockService::new(inner.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ElectionServer::new(election::ElectionService::new(inner))
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            m.metrics.grpc.clone(),
            crate::metrics::grpc::record,
        ));
    let gateway = json::router(Upstream::new(grpc.clone()), limit);
    let http = http::router(m.clone()).layer(axum::middleware::map_response(json::add_cors));
    Routes::from(grpc.merge(gateway).merge(http))
}

/// etcd's own services: KV, Watch, Lease, Cluster, Maintenance, Auth.
fn core_services(m: &Arc<Member>) -> Routes {
    let limit = m.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    Routes::new(
        KvServer::new(kv::KvService::new(m))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        WatchServer::new(watch::WatchService::new(m))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        LeaseServer::new(lease::LeaseService::new(m))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        ClusterServer::new(cluster::ClusterService::new(m)).max_decoding_message_size(limit),
    )
    .add_service(
        MaintenanceServer::new(maintenance::MaintenanceService::new(m))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(AuthServer::new(auth::AuthService::new(m)).max_decoding_message_size(limit))
}

/// A bound client URL, with its TLS when the URL is https.
pub struct ClientListener {
    listener: TcpListener,
    tls: Option<Arc<crate::tls::ServerTls>>,
}

/// Every listener a member serves its clients on.
pub struct Listeners {
    client: Vec<ClientListener>,
    /// `--listen-metrics-urls`: plain HTTP, health and metrics only.
    metrics: Vec<TcpListener>,
}

/// Binds every client and metrics URL (so bind errors surface before
/// anything runs).
pub async fn bind_listeners(server: &Member) -> Result<Listeners, ListenError> {
    let mut metrics = Vec::new();
    for url in &server.config.listen_metrics_urls {
        metrics.push(bind_url(url).await?);
    }
    Ok(Listeners {
        client: bind_client_urls(server).await?,
        metrics,
    })
}

async fn bind_client_urls(server: &Member) -> Result<Vec<ClientListener>, ListenError> {
    let mut out = Vec::new();
    for url in &server.config.listen_client_urls {
        let tls = match url.scheme() {
            "https" => Some(
                server
                    .client_tls
                    .clone()
                    .ok_or_else(|| ListenError::Scheme(url.to_string()))?,
            ),
            _ => None,
        };
        out.push(ClientListener {
            listener: bind_url(url).await?,
            tls,
        });
    }
    Ok(out)
}

/// Serves the API on the listeners until `shutdown` resolves.
pub async fn serve(
    server: Arc<Member>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for listener in listeners.metrics {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(address = %addr, "serving metrics and health (HTTP)");
        let app = http::probes_router(server.clone());
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|v| *v).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(address = %addr, error = %e, "metrics listener failed");
            }
        }));
    }
    for ClientListener { listener, tls } in listeners.client {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(address = %addr, tls = tls.is_some(), "serving client traffic (gRPC and HTTP)");
        let routes = routes(&server);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|v| *v).await;
            };
            let result = tonic::transport::Server::builder()
                .accept_http1(true)
                .tcp_nodelay(true)
                .http2_keepalive_interval(Some(std::time::Duration::from_secs(7200)))
                .add_routes(routes)
                .serve_with_incoming_shutdown(crate::tls::incoming(listener, tls), stopped)
                .await;
            if let Err(e) = result {
                tracing::error!(address = %addr, error = %e, "client listener failed");
            }
        }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    // Requests in flight may finish; a client that keeps its connection or
    // a request that never ends must not keep the member from stopping.
    let deadline = tokio::time::Instant::now() + LISTENER_GRACE;
    for mut t in tasks {
        if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
            tracing::warn!("client connections still open at shutdown: closing them");
            t.abort();
            let _ = t.await;
        }
    }
}

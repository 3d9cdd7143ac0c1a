//! `ferrocd gateway start`: etcd's L4 gateway. A TCP proxy in front of a
//! cluster's client endpoints (given, or found through `_etcd-client` SRV
//! records): each client connection goes to the next live endpoint in
//! turn; an endpoint that refuses is set aside and retried every
//! `--retry-delay`.

mod proxy;

pub use proxy::TcpProxy;

use crate::config::gateway::{strip_scheme, GatewayConfig};
use crate::discovery::{srv, Dns};
use std::time::Duration;

/// Runs the gateway until the process stops.
pub async fn run(cfg: GatewayConfig) -> Result<(), String> {
    let mut endpoints = Vec::new();
    if let Some((domain, name)) = &cfg.discovery_srv {
        let dns = Dns::from_system().map_err(|e| e.0)?;
        let urls = srv::client_urls(&dns, domain, name)
            .await
            .map_err(|e| format!("failed to discover endpoints: {e}"))?;
        for u in urls {
            if u.starts_with("http://") && !cfg.insecure_discovery {
                tracing::warn!(endpoint = %u, "ignoring discovered insecure endpoint");
                continue;
            }
            endpoints.push(strip_scheme(&u));
        }
        tracing::info!(endpoints = ?endpoints, "discovered the cluster endpoints");
    }
    if endpoints.is_empty() {
        endpoints = cfg.endpoints.clone();
    }
    if endpoints.is_empty() {
        return Err("no endpoints found".into());
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen_addr)
        .await
        .map_err(|e| format!("listen tcp {}: {e}", cfg.listen_addr))?;
    tracing::info!(address = %cfg.listen_addr, endpoints = ?endpoints, "ready to proxy client requests");
    TcpProxy::new(endpoints, cfg.retry_delay)
        .run(listener)
        .await;
    Ok(())
}

/// `--discovery-fallback proxy`: a member that found its discovered
/// cluster full serves its client URLs by forwarding each connection to the
/// cluster's members (whose client URLs it asks a member for).
pub async fn serve_as_proxy(
    listen_client_urls: &[url::Url],
    cluster_peer_urls: Vec<String>,
    dialer: crate::peer::PeerDialer,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    tracing::warn!(peers = ?cluster_peer_urls, "discovery cluster is full, falling back to proxy");
    let mut pause = Duration::from_millis(250);
    let endpoints = loop {
        let mut found = Vec::new();
        for peer in &cluster_peer_urls {
            if let Ok(info) = dialer.cluster_info(peer).await {
                found = info
                    .members
                    .iter()
                    .flat_map(|m| m.client_ur_ls.iter().map(|u| strip_scheme(u)))
                    .collect();
                if !found.is_empty() {
                    break;
                }
            }
        }
        if !found.is_empty() {
            break found;
        }
        tracing::info!(retry_in = ?pause, "waiting for the cluster's client URLs");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    };
    let proxy = TcpProxy::new(endpoints.clone(), Duration::from_secs(30));
    for url in listen_client_urls {
        let listener = crate::listen::bind_url(url)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(address = %url, endpoints = ?endpoints, "proxying client requests to the cluster");
        tokio::spawn(proxy.clone().run(listener));
    }
    stop.await;
    Ok(())
}

//! `ferrocd gateway start`: etcd's L4 gateway. A TCP proxy in front of a
//! cluster's client endpoints (given, or found through `_etcd-client` SRV
//! records): each client connection goes to the next live endpoint in
//! turn; an endpoint that refuses is set aside and retried every
//! `--retry-delay`.

mod proxy;

pub use proxy::TcpProxy;

use crate::config::flags::{self, FlagSpec, Kind};
use crate::config::ConfigError;
use crate::discovery::{srv, Dns};
use std::time::Duration;

/// The gateway's flags, with etcd 3.5's names and defaults.
pub const FLAGS: &[FlagSpec] = &[
    spec("listen-addr", Kind::Str, "127.0.0.1:23790", "listen address"),
    spec("endpoints", Kind::Str, "127.0.0.1:2379", "comma separated etcd cluster endpoints"),
    spec("discovery-srv", Kind::Str, "", "DNS domain used to bootstrap initial cluster"),
    spec("discovery-srv-name", Kind::Str, "", "service name to query when using DNS discovery"),
    spec("insecure-discovery", Kind::Bool, "true", "accept insecure SRV records"),
    spec("insecure-skip-tls-verify", Kind::Bool, "false", "skip server certificate verify"),
    spec("trusted-ca-file", Kind::Str, "", "path to the client server TLS CA file for verifying the discovered endpoints when discovery-srv is provided."),
    spec("retry-delay", Kind::Duration, "1m0s", "duration of delay before retrying failed endpoints"),
];

const fn spec(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        default,
        help,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub listen_addr: String,
    /// `host:port` of each endpoint, schemes stripped.
    pub endpoints: Vec<String>,
    /// `--discovery-srv` domain and `--discovery-srv-name`.
    pub discovery_srv: Option<(String, String)>,
    pub insecure_discovery: bool,
    pub retry_delay: Duration,
}

impl GatewayConfig {
    /// Parses the arguments after `gateway start`.
    pub fn parse(args: &[String]) -> Result<GatewayConfig, ConfigError> {
        let v = flags::parse(FLAGS, args, &|_| None)?;
        let get = |name: &str| v.get_or_default(FLAGS, name);
        let endpoints = get("endpoints")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(strip_scheme)
            .collect();
        let domain = get("discovery-srv");
        Ok(GatewayConfig {
            listen_addr: get("listen-addr"),
            endpoints,
            discovery_srv: (!domain.is_empty()).then(|| (domain, get("discovery-srv-name"))),
            insecure_discovery: flags::parse_bool(&get("insecure-discovery")).unwrap_or(true),
            retry_delay: flags::parse_duration(&get("retry-delay"))
                .unwrap_or(Duration::from_secs(60)),
        })
    }
}

fn strip_scheme(e: &str) -> String {
    e.split_once("://")
        .map_or(e, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_string()
}

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
        let listener = crate::listen::bind_url(url).await.map_err(|e| e.to_string())?;
        tracing::info!(address = %url, endpoints = ?endpoints, "proxying client requests to the cluster");
        tokio::spawn(proxy.clone().run(listener));
    }
    stop.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_defaults_are_etcds() {
        let c = GatewayConfig::parse(&[]).unwrap();
        assert_eq!(c.listen_addr, "127.0.0.1:23790");
        assert_eq!(c.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(c.retry_delay, Duration::from_secs(60));
        let args: Vec<String> = [
            "--endpoints=http://10.0.0.1:2379,10.0.0.2:2379",
            "--retry-delay",
            "2s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = GatewayConfig::parse(&args).unwrap();
        assert_eq!(c.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(c.retry_delay, Duration::from_secs(2));
    }
}

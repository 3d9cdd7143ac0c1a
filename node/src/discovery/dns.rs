//! DNS through the system resolver configuration (`/etc/resolv.conf` and
//! the hosts file), without a cache: while a cluster forms its records
//! appear one by one, and a cached "no such record" would hide them.

use super::DiscoveryError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};

pub struct Dns {
    resolver: TokioResolver,
}

/// One SRV answer: a host (no trailing dot) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub host: String,
    pub port: u16,
}

impl Dns {
    pub fn from_system() -> Result<Dns, DiscoveryError> {
        let mut builder = TokioResolver::builder_tokio()
            .map_err(|e| DiscoveryError(format!("cannot read the resolver configuration: {e}")))?;
        builder.options_mut().cache_size = 0;
        let resolver = builder
            .build()
            .map_err(|e| DiscoveryError(format!("cannot make a DNS resolver: {e}")))?;
        Ok(Dns { resolver })
    }

    /// The targets of the SRV records at `name`, in the order served.
    pub async fn srv(&self, name: &str) -> Result<Vec<SrvTarget>, DiscoveryError> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let answer = self
            .resolver
            .srv_lookup(fqdn.as_str())
            .await
            .map_err(|e| DiscoveryError(format!("lookup {name}: {e}")))?;
        Ok(answer
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(SrvTarget {
                    host: s.target.to_utf8().trim_end_matches('.').to_string(),
                    port: s.port,
                }),
                _ => None,
            })
            .collect())
    }

    /// `host:port` as a socket address (IPv4 preferred, as Go's resolver
    /// does for "tcp"); an IP literal is taken as it is.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, DiscoveryError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let ips = self
            .resolver
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|e| DiscoveryError(format!("lookup {host}: {e}")))?;
        let all: Vec<IpAddr> = ips.iter().collect();
        all.iter()
            .find(|ip| ip.is_ipv4())
            .or(all.first())
            .map(|ip| SocketAddr::new(*ip, port))
            .ok_or_else(|| DiscoveryError(format!("lookup {host}: no address")))
    }

    /// The socket address a URL's host and port name.
    pub async fn resolve_url(&self, url: &str) -> Result<SocketAddr, DiscoveryError> {
        let u = url::Url::parse(url).map_err(|e| DiscoveryError(format!("{url}: {e}")))?;
        let host = u
            .host_str()
            .ok_or_else(|| DiscoveryError(format!("{url}: no host")))?;
        let port = u
            .port_or_known_default()
            .ok_or_else(|| DiscoveryError(format!("{url}: no port")))?;
        self.resolve(host, port).await
    }

    /// etcd's URL comparison: equal as strings, or naming the same schemes
    /// and resolved addresses (order does not matter).
    pub async fn same_urls(&self, a: &[String], b: &[String]) -> bool {
        let (mut sa, mut sb) = (a.to_vec(), b.to_vec());
        sa.sort();
        sb.sort();
        if sa == sb {
            return true;
        }
        if a.len() != b.len() {
            return false;
        }
        let (Some(ra), Some(rb)) = (self.resolved(a).await, self.resolved(b).await) else {
            return false;
        };
        ra == rb
    }

    async fn resolved(&self, urls: &[String]) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for u in urls {
            let scheme = u.split("://").next().unwrap_or_default();
            let addr = self.resolve_url(u).await.ok()?;
            out.push(format!("{scheme}://{addr}"));
        }
        out.sort();
        Some(out)
    }
}

//! etcd 3.5's SRV rules.
//!
//! Server side: `_etcd-server-ssl[-NAME]._tcp.DOMAIN` (https peer URLs)
//! and `_etcd-server[-NAME]._tcp.DOMAIN` (http) are both read and combined.
//! Each target becomes an initial-cluster entry; the one whose resolved
//! address equals a resolved `--initial-advertise-peer-urls` entry gets
//! this member's name, the others get placeholder names ("0", "1", ...)
//! until they publish their own. Client side: `_etcd-client-ssl` then
//! `_etcd-client`.

use super::{DiscoveryError, Dns};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The service names for a role ("etcd-server", "etcd-client") with the
/// optional `--discovery-srv-name` suffix: TLS first.
fn services(role: &str, suffix: &str) -> [(&'static str, String); 2] {
    let tail = if suffix.is_empty() {
        String::new()
    } else {
        format!("-{suffix}")
    };
    [
        ("https", format!("{role}-ssl{tail}")),
        ("http", format!("{role}{tail}")),
    ]
}

/// The initial cluster the SRV records of `domain` describe, as
/// `name=url` entries. Fails when no record of either service resolves.
pub async fn server_cluster(
    dns: &Dns,
    domain: &str,
    suffix: &str,
    name: &str,
    advertised_peer_urls: &[String],
) -> Result<Vec<(String, String)>, DiscoveryError> {
    let mut mine: HashMap<SocketAddr, &str> = HashMap::new();
    for u in advertised_peer_urls {
        mine.insert(dns.resolve_url(u).await?, u);
    }
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut placeholder = 0;
    for (scheme, service) in services("etcd-server", suffix) {
        let found = entries.len();
        let mut last_error = None;
        let targets = match dns.srv(&format!("_{service}._tcp.{domain}")).await {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("error querying DNS SRV records for _{service} {e}"));
                continue;
            }
        };
        for t in targets {
            let addr = match dns.resolve(&t.host, t.port).await {
                Ok(a) => a,
                Err(e) => {
                    last_error = Some(e.0);
                    continue;
                }
            };
            let url = format!("{scheme}://{}:{}", t.host, t.port);
            match mine.get(&addr) {
                Some(own) if !own.starts_with(&format!("{scheme}://")) => {
                    last_error = Some(format!(
                        "bootstrap at {url} from DNS for {service} has scheme mismatch with expected peer {own}"
                    ));
                }
                Some(_) => entries.push((name.to_string(), url)),
                None => {
                    entries.push((placeholder.to_string(), url));
                    placeholder += 1;
                }
            }
        }
        if entries.len() == found {
            let why = last_error.unwrap_or_else(|| "no usable records".into());
            errors.push(format!(
                "error querying DNS SRV records for _{service} {why}"
            ));
        }
    }
    if entries.is_empty() {
        return Err(DiscoveryError(errors.join("; ")));
    }
    Ok(entries)
}

/// Client URLs from `_etcd-client-ssl[-NAME]._tcp.DOMAIN` (https) and
/// `_etcd-client[-NAME]._tcp.DOMAIN` (http); fails only if both fail.
pub async fn client_urls(
    dns: &Dns,
    domain: &str,
    suffix: &str,
) -> Result<Vec<String>, DiscoveryError> {
    let mut urls = Vec::new();
    let mut errors = Vec::new();
    for (scheme, service) in services("etcd-client", suffix) {
        match dns.srv(&format!("_{service}._tcp.{domain}")).await {
            Ok(targets) => urls.extend(
                targets
                    .into_iter()
                    .map(|t| format!("{scheme}://{}:{}", t.host, t.port)),
            ),
            Err(e) => errors.push(e.0),
        }
    }
    if errors.len() == 2 {
        return Err(DiscoveryError(format!(
            "dns lookup errors: {} and {}",
            errors[0], errors[1]
        )));
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_follow_etcd() {
        assert_eq!(
            services("etcd-server", ""),
            [
                ("https", "etcd-server-ssl".to_string()),
                ("http", "etcd-server".to_string())
            ]
        );
        assert_eq!(
            services("etcd-client", "prod"),
            [
                ("https", "etcd-client-ssl-prod".to_string()),
                ("http", "etcd-client-prod".to_string())
            ]
        );
    }
}

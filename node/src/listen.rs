//! Binding listen URLs (client, peer and metrics URLs alike).

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Binding a listen URL failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("listen tcp {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("unsupported listen URL {0}: only http:// is served by this build")]
    Scheme(String),
}

/// Binds a listen URL; a host name is resolved, preferring IPv4 as Go's net.Listen does.
pub async fn bind_url(url: &url::Url) -> Result<TcpListener, ListenError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ListenError::Scheme(url.to_string()));
    }
    let host = url
        .host_str()
        .unwrap_or("localhost")
        .trim_matches(['[', ']']);
    let port = url.port_or_known_default().unwrap_or(2379);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| ListenError::Resolve(url.to_string()))?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| ListenError::Resolve(url.to_string()))?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind {
            addr: addr.to_string(),
            source,
        })
}

//! etcd's v2 discovery protocol (`--discovery URL`), as etcd 3.5 speaks it
//! to discovery.etcd.io or to any server of the v2 keys API:
//!
//! 1. `GET URL/_config/size`: how many members the cluster has;
//! 2. `PUT URL/<member-id-hex>?prevExist=false` with `name=peer-url,...`:
//!    register (refused if that ID registered before);
//! 3. `GET URL`: the registrations in creation order; if this member is not
//!    among the first `size`, the cluster is full;
//! 4. long-poll `GET URL?wait=true&recursive=true&waitIndex=N` until `size`
//!    members registered. Their values, joined, are the initial cluster.
//!
//! Unreachable servers are retried with exponential backoff, as etcd does.

use serde::Deserialize;
use std::time::Duration;

/// etcd's discovery errors, with its texts.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("discovery: cluster is full")]
    FullCluster,
    #[error("discovery: size key not found")]
    SizeNotFound,
    #[error("discovery: size key is bad")]
    BadSizeKey,
    #[error("discovery: found duplicate id")]
    DuplicateId,
    #[error("discovery: found duplicate name")]
    DuplicateName,
    #[error("discovery: invalid URL")]
    InvalidUrl,
    #[error("discovery: bad discovery endpoint")]
    BadEndpoint,
    #[error("discovery: {0}")]
    Other(String),
}

/// The v2 keys API's error body.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(rename = "errorCode")]
    code: u32,
}

const KEY_NOT_FOUND: u32 = 100;
const NODE_EXISTS: u32 = 105;

#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default, rename = "createdIndex")]
    pub created_index: u64,
    #[serde(default, rename = "modifiedIndex")]
    pub modified_index: u64,
}

#[derive(Debug, Deserialize)]
struct NodeResponse {
    node: Node,
}

/// One answer: a node and the server's index (`X-Etcd-Index`), or the
/// API's error code.
enum Answer {
    Node(Node, u64),
    Error(u32),
}

pub struct Discovery {
    http: reqwest::Client,
    /// The discovery URL without a trailing slash (its path names the token).
    url: String,
    member_id: u64,
    /// The token's key as the server names it (learned from its answer).
    dir_key: String,
    /// The registrations last read, in creation order.
    registered: Vec<Node>,
    /// Each retry waits twice as long, up to 2^8 s (etcd's schedule).
    retries: u32,
}

/// Longest single request except a watch (etcd's client.DefaultRequestTimeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_EXPONENTIAL_RETRIES: u32 = 8;

impl Discovery {
    pub fn new(url: &str, proxy: Option<&str>, member_id: u64) -> Result<Discovery, JoinError> {
        let parsed = url::Url::parse(url).map_err(|_| JoinError::InvalidUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(JoinError::InvalidUrl);
        }
        let mut builder = reqwest::Client::builder();
        if let Some(p) = proxy.filter(|p| !p.is_empty()) {
            let p = reqwest::Proxy::all(p)
                .map_err(|e| JoinError::Other(format!("bad --discovery-proxy {p:?}: {e}")))?;
            builder = builder.proxy(p);
        }
        let http = builder
            .build()
            .map_err(|e| JoinError::Other(format!("cannot make an HTTP client: {e}")))?;
        Ok(Discovery {
            http,
            url: url.trim_end_matches('/').to_string(),
            member_id,
            dir_key: String::new(),
            registered: Vec::new(),
            retries: 0,
        })
    }

    /// The peer URLs of the first `size` registrations last read (the
    /// cluster a member that found it full can serve as a proxy of).
    pub fn registered_peer_urls(&self) -> Vec<String> {
        peer_urls(self.registered.iter().map(|n| n.value.as_str()))
    }

    fn self_key(&self) -> String {
        format!("{:x}", self.member_id)
    }

    /// Registers this member (`entry` is its `name=peer-url,...`) and waits
    /// until the cluster is complete; returns the initial cluster.
    pub async fn join_cluster(&mut self, entry: &str) -> Result<String, JoinError> {
        // A full cluster is reported before registering.
        self.check_cluster().await?;
        self.create_self(entry).await?;
        let (nodes, size, index) = self.check_cluster().await?;
        let all = self.wait_nodes(nodes, size, index).await?;
        nodes_to_cluster(&all, size)
    }

    /// The registrations in creation order, the size, and the index to
    /// watch from; `FullCluster` if this member is not among the first `size`.
    async fn check_cluster(&mut self) -> Result<(Vec<Node>, usize, u64), JoinError> {
        let size = loop {
            match self.get(&format!("{}/_config/size", self.url)).await {
                Ok(Answer::Node(n, _)) => {
                    break n
                        .value
                        .parse::<usize>()
                        .map_err(|_| JoinError::BadSizeKey)?;
                }
                Ok(Answer::Error(KEY_NOT_FOUND)) => return Err(JoinError::SizeNotFound),
                Ok(Answer::Error(code)) => {
                    return Err(JoinError::Other(format!("unexpected error code {code}")))
                }
                Err(e) => self.backoff("size", e).await?,
            }
        };
        let (dir, index) = loop {
            match self.get(&self.url).await {
                Ok(Answer::Node(n, index)) => break (n, index),
                Ok(Answer::Error(code)) => {
                    return Err(JoinError::Other(format!("unexpected error code {code}")))
                }
                Err(e) => self.backoff("cluster", e).await?,
            }
        };
        self.dir_key = dir.key.clone();
        let mut nodes: Vec<Node> = dir
            .nodes
            .into_iter()
            .filter(|n| base(&n.key) != "_config")
            .collect();
        nodes.sort_by_key(|n| n.created_index);
        self.registered = nodes.clone();
        let me = self.self_key();
        for (i, n) in nodes.iter().enumerate() {
            if base(&n.key) == me {
                break;
            }
            if i + 1 >= size {
                return Err(JoinError::FullCluster);
            }
        }
        Ok((nodes, size, index))
    }

    async fn create_self(&mut self, entry: &str) -> Result<(), JoinError> {
        let url = format!("{}/{}?prevExist=false", self.url, self.self_key());
        loop {
            let sent = self
                .http
                .put(&url)
                .timeout(REQUEST_TIMEOUT)
                .form(&[("value", entry)])
                .send()
                .await;
            match read_answer(sent).await {
                Ok(Answer::Node(..)) => return Ok(()),
                Ok(Answer::Error(NODE_EXISTS)) => return Err(JoinError::DuplicateId),
                Ok(Answer::Error(code)) => {
                    return Err(JoinError::Other(format!("unexpected error code {code}")))
                }
                Err(e) => self.backoff("register", e).await?,
            }
        }
    }

    async fn wait_nodes(
        &mut self,
        mut nodes: Vec<Node>,
        size: usize,
        mut index: u64,
    ) -> Result<Vec<Node>, JoinError> {
        nodes.truncate(size);
        for n in &nodes {
            tracing::info!(peer = %n.value, "found peer from discovery server");
        }
        while nodes.len() < size {
            tracing::info!(
                have = nodes.len(),
                want = size,
                "found peers from discovery server; waiting for more"
            );
            let url = format!(
                "{}?wait=true&recursive=true&waitIndex={}",
                self.url,
                index + 1
            );
            match read_answer(self.http.get(&url).send().await).await {
                Ok(Answer::Node(n, _)) => {
                    index = index.max(n.modified_index);
                    // Only new registrations: not `_config`, not one seen already.
                    let path = n.key.strip_prefix(&self.dir_key).unwrap_or(&n.key);
                    if path.trim_start_matches('/').starts_with('_')
                        || nodes.iter().any(|m| m.key == n.key)
                    {
                        continue;
                    }
                    tracing::info!(peer = %n.value, "found peer from discovery server");
                    nodes.push(n);
                }
                Ok(Answer::Error(code)) => {
                    return Err(JoinError::Other(format!("unexpected error code {code}")))
                }
                Err(e) => self.backoff("watch", e).await?,
            }
        }
        tracing::info!(size, "found all needed peers from discovery server");
        Ok(nodes)
    }

    async fn get(&self, url: &str) -> Result<Answer, Transient> {
        read_answer(self.http.get(url).timeout(REQUEST_TIMEOUT).send().await).await
    }

    /// Waits before retrying after `what` failed (etcd: 2^n seconds, n <= 8).
    async fn backoff(&mut self, what: &str, e: Transient) -> Result<(), JoinError> {
        let why = match e {
            Transient::Fatal(err) => return Err(err),
            Transient::Retry(why) => why,
        };
        let n = self.retries.min(MAX_EXPONENTIAL_RETRIES);
        self.retries += 1;
        let wait = Duration::from_secs(1 << n);
        tracing::warn!(step = what, error = %why, retry_in = ?wait, url = %self.url, "discovery server unreachable; waiting for retry");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// A failure worth retrying (the server is unreachable or overloaded), or not.
#[derive(Debug)]
enum Transient {
    Retry(String),
    Fatal(JoinError),
}

async fn read_answer(sent: Result<reqwest::Response, reqwest::Error>) -> Result<Answer, Transient> {
    let resp = sent.map_err(|e| Transient::Retry(e.to_string()))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(Transient::Retry(format!("HTTP {status}")));
    }
    let index = resp
        .headers()
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = resp
        .bytes()
        .await
        .map_err(|e| Transient::Retry(e.to_string()))?;
    if status.is_success() {
        let r: NodeResponse =
            serde_json::from_slice(&body).map_err(|_| Transient::Fatal(JoinError::BadEndpoint))?;
        return Ok(Answer::Node(r.node, index));
    }
    match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => Ok(Answer::Error(e.code)),
        Err(_) => Err(Transient::Fatal(JoinError::BadEndpoint)),
    }
}

/// The URLs of `name=url,...` registration values.
pub fn peer_urls<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.split_once('=').map(|(_, u)| u.to_string()))
        .collect()
}

/// The last path element of a key.
fn base(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// The registrations' values as an initial cluster; as many distinct
/// names as the size, or `DuplicateName`.
fn nodes_to_cluster(nodes: &[Node], size: usize) -> Result<String, JoinError> {
    let joined = nodes
        .iter()
        .map(|n| n.value.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut names = std::collections::BTreeSet::new();
    for part in joined.split(',').filter(|p| !p.is_empty()) {
        let (name, url) = part.split_once('=').ok_or(JoinError::InvalidUrl)?;
        url::Url::parse(url).map_err(|_| JoinError::InvalidUrl)?;
        names.insert(name);
    }
    if names.len() != size {
        return Err(JoinError::DuplicateName);
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str, value: &str) -> Node {
        Node {
            key: key.into(),
            value: value.into(),
            nodes: Vec::new(),
            created_index: 0,
            modified_index: 0,
        }
    }

    #[test]
    fn registrations_become_the_initial_cluster() {
        let nodes = [
            node("/d/t/1", "infra0=http://10.0.1.10:2380"),
            node("/d/t/2", "infra1=http://10.0.1.11:2380"),
        ];
        assert_eq!(
            nodes_to_cluster(&nodes, 2).unwrap(),
            "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380"
        );
        let twice = [
            node("/d/t/1", "infra0=http://10.0.1.10:2380"),
            node("/d/t/2", "infra0=http://10.0.1.11:2380"),
        ];
        assert_eq!(nodes_to_cluster(&twice, 2), Err(JoinError::DuplicateName));
        assert_eq!(
            nodes_to_cluster(&[node("/d/t/1", "infra0")], 1),
            Err(JoinError::InvalidUrl)
        );
    }
}

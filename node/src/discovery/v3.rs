//! etcd's v3 discovery (`--discovery-token`, `--discovery-endpoints`):
//! the same idea as the v2 protocol, over the v3 API of any etcd-compatible
//! cluster (etcd 3.5, ferrocd). Keys under `/_etcd/registry/<token>/`:
//! `_config/size` holds the size, `members/<member-id-hex>` each member's
//! `name=peer-url,...`; the first `size` registrations by create revision
//! form the cluster, later ones find it full.

use super::v2::JoinError as DiscoveryError;
use ferrocd_proto::etcdserverpb::{
    kv_client::KvClient, watch_client::WatchClient, watch_request::RequestUnion, PutRequest,
    RangeRequest, WatchCreateRequest, WatchRequest,
};
use ferrocd_proto::keys::prefix_end;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

const MAX_EXPONENTIAL_RETRIES: u32 = 8;

pub struct Discovery {
    endpoints: Vec<String>,
    token: String,
    member_id: u64,
    dial_timeout: Duration,
    request_timeout: Duration,
    retries: u32,
    /// The registrations last read, in creation order.
    registered: Vec<Registration>,
}

/// One registration: its key, `name=url,...`, create revision.
#[derive(Debug, Clone)]
struct Registration {
    key: String,
    value: String,
    create_rev: i64,
}

impl Discovery {
    pub fn new(
        endpoints: &[String],
        token: &str,
        member_id: u64,
        dial_timeout: Duration,
        request_timeout: Duration,
    ) -> Discovery {
        Discovery {
            endpoints: endpoints
                .iter()
                .map(|e| {
                    if e.contains("://") {
                        e.clone()
                    } else {
                        format!("http://{e}")
                    }
                })
                .collect(),
            token: token.to_string(),
            member_id,
            dial_timeout,
            request_timeout,
            retries: 0,
            registered: Vec::new(),
        }
    }

    /// The peer URLs of the registrations last read.
    pub fn registered_peer_urls(&self) -> Vec<String> {
        super::v2::peer_urls(self.registered.iter().map(|r| r.value.as_str()))
    }

    fn prefix(&self) -> String {
        format!("/_etcd/registry/{}", self.token)
    }

    fn members_prefix(&self) -> String {
        format!("{}/members", self.prefix())
    }

    fn self_key(&self) -> String {
        format!("{}/{:x}", self.members_prefix(), self.member_id)
    }

    /// Registers this member and waits for the whole cluster; returns the
    /// initial cluster (`name=url,...`).
    pub async fn join_cluster(&mut self, entry: &str) -> Result<String, DiscoveryError> {
        self.check_cluster().await?;
        self.register(entry).await?;
        let (mut regs, size, rev) = self.check_cluster().await?;
        if regs.len() < size {
            self.wait_peers(&mut regs, size, rev).await?;
        }
        init_cluster_string(&regs, size)
    }

    async fn channel(&self) -> Result<Channel, String> {
        let mut last = String::from("no discovery endpoints");
        for e in &self.endpoints {
            let ep = Endpoint::from_shared(e.clone())
                .map_err(|err| format!("{e}: {err}"))?
                .connect_timeout(self.dial_timeout)
                .timeout(self.request_timeout);
            match ep.connect().await {
                Ok(ch) => return Ok(ch),
                Err(err) => last = format!("{e}: {err}"),
            }
        }
        Err(last)
    }

    async fn backoff(&mut self, step: &str, why: String) {
        self.retries += 1;
        let n = self.retries.min(MAX_EXPONENTIAL_RETRIES);
        let wait = Duration::from_secs(1 << n);
        tracing::warn!(reason = step, error = %why, backoff = ?wait, "retry connecting to discovery service");
        tokio::time::sleep(wait).await;
    }

    async fn check_cluster(&mut self) -> Result<(Vec<Registration>, usize, i64), DiscoveryError> {
        loop {
            match self.read_cluster().await {
                Ok(Ok(found)) => {
                    self.retries = 0;
                    self.registered = found.0.clone();
                    return self.position(found);
                }
                Ok(Err(e)) => return Err(e),
                Err(why) => self.backoff("cluster status check", why).await,
            }
        }
    }

    /// Outer error: worth retrying; inner: the answer.
    async fn read_cluster(
        &self,
    ) -> Result<Result<(Vec<Registration>, usize, i64), DiscoveryError>, String> {
        let mut kv = KvClient::new(self.channel().await?);
        let size_key = format!("{}/_config/size", self.prefix());
        let r = kv
            .range(RangeRequest {
                key: size_key.into_bytes(),
                ..Default::default()
            })
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        let Some(size_kv) = r.kvs.first() else {
            return Ok(Err(DiscoveryError::SizeNotFound));
        };
        let size = match String::from_utf8_lossy(&size_kv.value)
            .trim()
            .parse::<i64>()
        {
            Ok(n) if n > 0 => n as usize,
            _ => return Ok(Err(DiscoveryError::BadSizeKey)),
        };
        let prefix = self.members_prefix().into_bytes();
        let r = kv
            .range(RangeRequest {
                range_end: prefix_end(&prefix),
                key: prefix,
                ..Default::default()
            })
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        let rev = r.header.map_or(0, |h| h.revision);
        let mut regs = Vec::new();
        for kv in r.kvs {
            add(
                &mut regs,
                Registration {
                    key: String::from_utf8_lossy(&kv.key).trim().to_string(),
                    value: String::from_utf8_lossy(&kv.value).trim().to_string(),
                    create_rev: kv.create_revision,
                },
            );
        }
        Ok(Ok((regs, size, rev)))
    }

    fn position(
        &self,
        (regs, size, rev): (Vec<Registration>, usize, i64),
    ) -> Result<(Vec<Registration>, usize, i64), DiscoveryError> {
        let me = self.self_key();
        for (i, r) in regs.iter().enumerate() {
            if r.key == me {
                break;
            }
            if i + 1 >= size {
                return Err(DiscoveryError::FullCluster);
            }
        }
        Ok((regs, size, rev))
    }

    async fn register(&mut self, entry: &str) -> Result<(), DiscoveryError> {
        loop {
            let put = async {
                let mut kv = KvClient::new(self.channel().await?);
                kv.put(PutRequest {
                    key: self.self_key().into_bytes(),
                    value: entry.as_bytes().to_vec(),
                    ..Default::default()
                })
                .await
                .map_err(|s| s.message().to_string())
            };
            match put.await {
                Ok(_) => {
                    self.retries = 0;
                    tracing::info!(member_key = %self.self_key(), member_info = %entry, "register member itself successfully");
                    return Ok(());
                }
                Err(why) => self.backoff("register member itself", why).await,
            }
        }
    }

    async fn wait_peers(
        &mut self,
        regs: &mut Vec<Registration>,
        size: usize,
        mut rev: i64,
    ) -> Result<(), DiscoveryError> {
        while regs.len() < size {
            tracing::info!(
                cluster_size = size,
                found_peers = regs.len(),
                "waiting for peers from discovery service"
            );
            match self.watch_once(regs, size, rev).await {
                Ok(last) => rev = rev.max(last),
                Err(why) => self.backoff("watch peers", why).await,
            }
        }
        tracing::info!(
            cluster_size = size,
            "found all needed peers from discovery service"
        );
        Ok(())
    }

    /// Watches the members prefix after `rev` until `size` registrations
    /// are known or the stream ends; the last revision seen.
    async fn watch_once(
        &self,
        regs: &mut Vec<Registration>,
        size: usize,
        rev: i64,
    ) -> Result<i64, String> {
        let ch = self.channel().await?;
        let mut watch = WatchClient::new(ch);
        let prefix = self.members_prefix().into_bytes();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        // The create request goes first: some servers answer nothing before it.
        let _ = tx
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    range_end: prefix_end(&prefix),
                    key: prefix,
                    start_revision: rev + 1,
                    ..Default::default()
                })),
            })
            .await;
        let mut stream = watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        let mut last = rev;
        while regs.len() < size {
            let Some(resp) = stream
                .message()
                .await
                .map_err(|s| s.message().to_string())?
            else {
                return Ok(last);
            };
            for ev in resp.events {
                let Some(kv) = ev.kv else { continue };
                last = last.max(kv.mod_revision);
                add(
                    regs,
                    Registration {
                        key: String::from_utf8_lossy(&kv.key).trim().to_string(),
                        value: String::from_utf8_lossy(&kv.value).trim().to_string(),
                        create_rev: kv.create_revision,
                    },
                );
            }
        }
        drop(tx);
        Ok(last)
    }
}

/// Adds a well-formed, new registration, keeping creation order.
fn add(regs: &mut Vec<Registration>, r: Registration) {
    if !r.value.contains('=') || regs.iter().any(|x| x.key == r.key) {
        tracing::warn!(member_key = %r.key, member_info = %r.value, "ignoring a bad or duplicate peer from discovery service");
        return;
    }
    tracing::info!(member_key = %r.key, member_info = %r.value, "found peer from discovery service");
    regs.push(r);
    regs.sort_by_key(|r| r.create_rev);
}

fn init_cluster_string(regs: &[Registration], size: usize) -> Result<String, DiscoveryError> {
    let joined = regs
        .iter()
        .take(size)
        .map(|r| r.value.as_str())
        .collect::<Vec<_>>()
        .join(",");
    for part in joined.split(',') {
        let (_, url) = part.split_once('=').ok_or(DiscoveryError::InvalidUrl)?;
        url::Url::parse(url).map_err(|_| DiscoveryError::InvalidUrl)?;
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(key: &str, value: &str, rev: i64) -> Registration {
        Registration {
            key: key.into(),
            value: value.into(),
            create_rev: rev,
        }
    }

    #[test]
    fn the_first_registrations_by_revision_form_the_cluster() {
        let mut regs = Vec::new();
        add(&mut regs, reg("/m/b", "infra1=http://10.0.1.11:2380", 7));
        add(&mut regs, reg("/m/a", "infra0=http://10.0.1.10:2380", 5));
        add(&mut regs, reg("/m/a", "infra0=http://10.0.1.10:2380", 5));
        add(&mut regs, reg("/m/c", "no-equals-sign", 9));
        add(&mut regs, reg("/m/d", "infra2=http://10.0.1.12:2380", 11));
        assert_eq!(
            init_cluster_string(&regs, 2).unwrap(),
            "infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380"
        );
        assert_eq!(prefix_end(b"/a"), b"/b");
    }

    #[test]
    fn a_member_after_the_first_size_finds_the_cluster_full() {
        let d = Discovery::new(&[], "tok", 0xd, Duration::ZERO, Duration::ZERO);
        let regs = vec![
            reg("/_etcd/registry/tok/members/a", "infra0=http://a:2380", 1),
            reg("/_etcd/registry/tok/members/b", "infra1=http://b:2380", 2),
        ];
        assert_eq!(
            d.position((regs.clone(), 2, 2)).unwrap_err(),
            DiscoveryError::FullCluster
        );
        assert!(d.position((regs[..1].to_vec(), 2, 2)).is_ok());
    }
}

//! Who this member is, and whether it bootstraps a new cluster, joins one,
//! or restarts from its data dir (which then wins over the bootstrap flags).

use super::StartError;
use crate::config::{ClusterState, Config, SrvDiscovery, UrlDiscovery, V3Discovery};
use crate::discovery::v2::JoinError;
use crate::discovery::{srv, v2, v3, Dns};
use crate::mvcc::Store;
use crate::peer::PeerDialer;
use crate::raft::MemberInfo;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Who this member is.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub member_id: u64,
    pub cluster_id: u64,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

pub(super) struct Boot {
    pub identity: Identity,
    /// The initial membership, when this member bootstraps a new cluster.
    pub initialize: Option<BTreeMap<u64, MemberInfo>>,
    /// The data dir held this member already (not a first start).
    pub restarted: bool,
}

use crate::mvcc::store::{META_CLUSTER_ID as META_CLUSTER, META_MEMBER_ID as META_MEMBER};

pub(super) async fn prepare(
    cfg: &Config,
    store: &Store,
    dialer: &PeerDialer,
) -> Result<Boot, StartError> {
    let (stored_member, stored_cluster) =
        store.write(|t| Ok((t.meta(META_MEMBER)?, t.meta(META_CLUSTER)?)))?;
    if stored_member != 0 {
        tracing::info!(
            data_dir = %cfg.data_dir.display(),
            "the data dir holds a member; restarting from it and ignoring the bootstrap flags"
        );
        return Ok(Boot {
            identity: Identity {
                name: cfg.name.clone(),
                member_id: stored_member,
                cluster_id: stored_cluster,
                peer_urls: cfg.initial_advertise_peer_urls.clone(),
                client_urls: cfg.advertise_client_urls.clone(),
            },
            initialize: None,
            restarted: true,
        });
    }
    let dns = Dns::from_system().map_err(|e| StartError::Config(e.0))?;
    let initial = if let Some(srv) = &cfg.discovery_srv {
        discover_through_srv(cfg, srv, &dns, dialer).await?
    } else if let Some(d) = &cfg.discovery_url {
        discover_through_url(cfg, d, dialer).await?
    } else if let Some(d) = &cfg.discovery_v3 {
        discover_through_v3(cfg, d, dialer).await?
    } else {
        Initial {
            members: cfg.initial_cluster.clone(),
            running: None,
            token: cfg.initial_cluster_token.clone(),
        }
    };
    let own = match initial.members.iter().find(|(n, _)| *n == cfg.name) {
        Some((_, urls)) => urls.clone(),
        None if cfg.discovery_srv.is_some() => {
            return Err(StartError::Config(format!(
                "cannot find local etcd member {:?} in SRV records",
                cfg.name
            )))
        }
        None => {
            return Err(StartError::Config(format!(
                "couldn't find local name {:?} in the initial cluster configuration",
                cfg.name
            )))
        }
    };
    check_advertised(cfg, &own, &dns).await?;
    let mut seen = HashSet::new();
    for (_, urls) in &initial.members {
        for u in urls {
            if !seen.insert(u.as_str()) {
                return Err(StartError::Config(format!(
                    "--initial-cluster has duplicate url {u}"
                )));
            }
        }
    }
    let token = &initial.token;
    let members: BTreeMap<u64, MemberInfo> = initial
        .members
        .iter()
        .map(|(name, urls)| {
            let id = crate::ids::member_id(urls, token, None);
            let client_urls = if *name == cfg.name {
                cfg.advertise_client_urls.clone()
            } else {
                Vec::new()
            };
            (
                id,
                MemberInfo {
                    name: name.clone(),
                    peer_urls: urls.clone(),
                    client_urls,
                },
            )
        })
        .collect();
    let ids: Vec<u64> = members.keys().copied().collect();
    let (member_id, cluster_id) = match (initial.running, cfg.initial_cluster_state) {
        (Some(running), _) => running,
        (None, ClusterState::New) => (
            crate::ids::member_id(&own, token, None),
            crate::ids::cluster_id(&ids),
        ),
        (None, ClusterState::Existing) => {
            join_running_cluster(&initial.members, &cfg.name, &own, &dns, dialer).await?
        }
    };
    store.write(|t| {
        t.set_meta(META_MEMBER, member_id)?;
        t.set_meta(META_CLUSTER, cluster_id)
    })?;
    // Joining: the running cluster's leader replicates the membership to us.
    let joins = initial.running.is_some() || cfg.initial_cluster_state == ClusterState::Existing;
    Ok(Boot {
        identity: Identity {
            name: cfg.name.clone(),
            member_id,
            cluster_id,
            peer_urls: own,
            client_urls: cfg.advertise_client_urls.clone(),
        },
        initialize: (!joins).then_some(members),
        restarted: false,
    })
}

/// A new member's initial cluster: name -> peer URLs, and the (member,
/// cluster) IDs of a running cluster that already lists this member.
struct Initial {
    members: Vec<(String, Vec<String>)>,
    running: Option<(u64, u64)>,
    /// What member IDs are hashed with: `--initial-cluster-token`, or the
    /// discovery URL or token (as etcd does).
    token: String,
}

/// This member's registration for discovery: `name=url,...`, URLs sorted.
fn own_entry(cfg: &Config) -> String {
    let mut urls = cfg.initial_advertise_peer_urls.clone();
    urls.sort();
    urls.iter()
        .map(|u| format!("{}={u}", cfg.name))
        .collect::<Vec<_>>()
        .join(",")
}

/// What joining through a discovery service gave: the initial cluster, or
/// etcd's error (a full cluster carries the peers a proxy would serve).
fn discovered(
    dialer: &PeerDialer,
    joined: Result<String, JoinError>,
    registered_peer_urls: Vec<String>,
    token: &str,
) -> Result<Initial, StartError> {
    let text = match joined {
        Ok(text) => text,
        Err(JoinError::FullCluster) => {
            return Err(StartError::ClusterFull(
                registered_peer_urls,
                dialer.clone(),
            ))
        }
        Err(e) => {
            return Err(StartError::Config(format!(
                "failed to join discovery cluster ({e})"
            )))
        }
    };
    let members = crate::config::parse_initial_cluster(&text)
        .map_err(|e| StartError::Config(format!("discovery returned a bad cluster: {e}")))?;
    Ok(Initial {
        members,
        running: None,
        token: token.to_string(),
    })
}

/// `--discovery URL`: etcd's v2 discovery protocol.
async fn discover_through_url(
    cfg: &Config,
    d: &UrlDiscovery,
    dialer: &PeerDialer,
) -> Result<Initial, StartError> {
    let member_id = crate::ids::member_id(&cfg.initial_advertise_peer_urls, &d.url, None);
    let mut discovery = v2::Discovery::new(&d.url, d.proxy.as_deref(), member_id)
        .map_err(|e| StartError::Config(e.to_string()))?;
    let joined = discovery.join_cluster(&own_entry(cfg)).await;
    discovered(dialer, joined, discovery.registered_peer_urls(), &d.url)
}

/// `--discovery-token --discovery-endpoints`: v3 discovery.
async fn discover_through_v3(
    cfg: &Config,
    d: &V3Discovery,
    dialer: &PeerDialer,
) -> Result<Initial, StartError> {
    let member_id = crate::ids::member_id(&cfg.initial_advertise_peer_urls, &d.token, None);
    let mut discovery = v3::Discovery::new(
        &d.endpoints,
        &d.token,
        member_id,
        d.dial_timeout,
        d.request_timeout,
    );
    let joined = discovery.join_cluster(&own_entry(cfg)).await;
    discovered(dialer, joined, discovery.registered_peer_urls(), &d.token)
}

/// `--discovery-srv`: reads the SRV records until they list
/// `--initial-cluster-size` members (if given). A running cluster found
/// at one of the listed peers that already has this member (it started
/// earlier from the same records, or MemberAdd put us in) is joined.
async fn discover_through_srv(
    cfg: &Config,
    srv: &SrvDiscovery,
    dns: &Dns,
    dialer: &PeerDialer,
) -> Result<Initial, StartError> {
    let mut pause = Duration::from_millis(200);
    loop {
        let found = srv::server_cluster(
            dns,
            &srv.domain,
            &srv.service_name,
            &cfg.name,
            &cfg.initial_advertise_peer_urls,
        )
        .await;
        let entries = match found {
            Ok(entries) => entries,
            Err(e) if srv.wait_for_size == 0 => {
                return Err(StartError::Config(format!(
                    "error setting up initial cluster: {e}"
                )))
            }
            Err(e) => {
                tracing::info!(domain = %srv.domain, error = %e, "waiting for SRV records");
                Vec::new()
            }
        };
        for (name, url) in &entries {
            tracing::info!(node = %format!("{name}={url}"), "got bootstrap from DNS for etcd-server");
        }
        if entries.iter().any(|(_, url)| url.starts_with("https://")) {
            dialer
                .verify_peers_for_domain(&srv.domain)
                .map_err(|e| StartError::Config(e.0))?;
        }
        let mut members: Vec<(String, Vec<String>)> = Vec::new();
        for (name, url) in entries {
            match members.iter_mut().find(|(n, _)| *n == name) {
                Some((_, urls)) => urls.push(url),
                None => members.push((name, vec![url])),
            }
        }
        // A member no target names is refused as etcd refuses it (below),
        // also when a cluster already runs: joining one is for listed members.
        let listed = members.iter().any(|(name, _)| *name == cfg.name);
        if listed {
            if let Some(running) = running_cluster_listing_us(cfg, &members, dns, dialer).await? {
                return Ok(Initial {
                    members,
                    running: Some(running),
                    token: cfg.initial_cluster_token.clone(),
                });
            }
        } else if srv.wait_for_size == 0 {
            return Ok(Initial {
                members,
                running: None,
                token: cfg.initial_cluster_token.clone(),
            });
        }
        if members.len() >= srv.wait_for_size {
            return Ok(Initial {
                members,
                running: None,
                token: cfg.initial_cluster_token.clone(),
            });
        }
        tracing::info!(
            domain = %srv.domain,
            want = srv.wait_for_size,
            have = members.len(),
            "waiting until the SRV records list --initial-cluster-size members"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Asks the other listed members whether they already run a cluster; if
/// one does and lists this member's advertised peer URLs, its IDs.
async fn running_cluster_listing_us(
    cfg: &Config,
    members: &[(String, Vec<String>)],
    dns: &Dns,
    dialer: &PeerDialer,
) -> Result<Option<(u64, u64)>, StartError> {
    let own = &cfg.initial_advertise_peer_urls;
    for (name, urls) in members {
        if *name == cfg.name {
            continue;
        }
        for url in urls {
            let Ok(info) = dialer.cluster_info(url).await else {
                continue;
            };
            for m in &info.members {
                if dns.same_urls(&m.peer_ur_ls, own).await {
                    // A member that already started (it published its name)
                    // and now has no data lost its log: joining as itself
                    // would break raft's promises. etcd refuses the same way;
                    // the member must be removed and added again.
                    if !m.name.is_empty() {
                        return Err(StartError::Config(format!(
                            "member {:x} has already been bootstrapped",
                            m.id
                        )));
                    }
                    tracing::info!(
                        peer = %url,
                        cluster_id = %format!("{:x}", info.cluster_id),
                        "found a running cluster that lists this member: joining it"
                    );
                    return Ok(Some((m.id, info.cluster_id)));
                }
            }
            return Err(StartError::Config(format!(
                "member {} is not in the running cluster found through SRV records at {url} (add it with `etcdctl member add` first)",
                own.join(",")
            )));
        }
    }
    Ok(None)
}

/// etcd: the advertised peer URLs must be this member's initial-cluster
/// entry (compared as resolved addresses, so hostnames and IPs may mix).
async fn check_advertised(cfg: &Config, own: &[String], dns: &Dns) -> Result<(), StartError> {
    if dns.same_urls(&cfg.initial_advertise_peer_urls, own).await {
        return Ok(());
    }
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    let mut listed = own.to_vec();
    advertised.sort();
    listed.sort();
    Err(StartError::Config(format!(
        "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (\"{}\"(resolved from {:?}) != \"{}\"(resolved from {:?}))",
        cfg.name,
        own.join(","),
        cfg.initial_advertise_peer_urls.join(","),
        advertised.join(","),
        cfg.initial_advertise_peer_urls,
        listed.join(","),
        own
    )))
}

/// `--initial-cluster-state existing`: the running cluster (reached through
/// the other members' peer URLs) knows the cluster ID and the member ID that
/// MemberAdd gave this member's peer URLs.
async fn join_running_cluster(
    members: &[(String, Vec<String>)],
    name: &str,
    own: &[String],
    dns: &Dns,
    dialer: &PeerDialer,
) -> Result<(u64, u64), StartError> {
    let others: Vec<&String> = members
        .iter()
        .filter(|(n, _)| *n != name)
        .flat_map(|(_, urls)| urls)
        .collect();
    for url in &others {
        let info = match dialer.cluster_info(url).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(peer = %url, error = %e, "cannot reach a member of the cluster to join");
                continue;
            }
        };
        for m in &info.members {
            if dns.same_urls(&m.peer_ur_ls, own).await {
                return Ok((m.id, info.cluster_id));
            }
        }
        return Err(StartError::Config(format!(
            "error validating peerURLs: member with peer URLs {} is not in the running cluster (add it with `etcdctl member add` first)",
            own.join(",")
        )));
    }
    Err(StartError::Config(format!(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs ({})",
        others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    )))
}

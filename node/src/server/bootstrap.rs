//! Who this member is, and whether it bootstraps a new cluster, joins one,
//! or restarts from its data dir (which then wins over the bootstrap flags).

use super::ServerError;
use crate::config::{ClusterState, Config};
use crate::mvcc::Store;
use crate::raft::MemberInfo;
use std::collections::{BTreeMap, HashSet};

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
}

const META_MEMBER: &str = "member_id";
const META_CLUSTER: &str = "cluster_id";

pub(super) async fn prepare(cfg: &Config, store: &Store) -> Result<Boot, ServerError> {
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
        });
    }
    let own = cfg
        .own_initial_peer_urls()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    check_advertised(cfg, own)?;
    let mut seen = HashSet::new();
    for (_, urls) in &cfg.initial_cluster {
        for u in urls {
            if !seen.insert(u.as_str()) {
                return Err(ServerError::Config(format!(
                    "--initial-cluster has duplicate url {u}"
                )));
            }
        }
    }
    let token = &cfg.initial_cluster_token;
    let members: BTreeMap<u64, MemberInfo> = cfg
        .initial_cluster
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
    let (member_id, cluster_id) = match cfg.initial_cluster_state {
        ClusterState::New => (
            crate::ids::member_id(own, token, None),
            crate::ids::cluster_id(&ids),
        ),
        ClusterState::Existing => join_running_cluster(cfg, own).await?,
    };
    store.write(|t| {
        t.set_meta(META_MEMBER, member_id)?;
        t.set_meta(META_CLUSTER, cluster_id)
    })?;
    let initialize = match cfg.initial_cluster_state {
        ClusterState::New => Some(members),
        // Joining: the running cluster's leader replicates the membership to us.
        ClusterState::Existing => None,
    };
    Ok(Boot {
        identity: Identity {
            name: cfg.name.clone(),
            member_id,
            cluster_id,
            peer_urls: own.to_vec(),
            client_urls: cfg.advertise_client_urls.clone(),
        },
        initialize,
    })
}

/// etcd: the advertised peer URLs must be exactly this member's initial-cluster entry.
fn check_advertised(cfg: &Config, own: &[String]) -> Result<(), ServerError> {
    let mut advertised = cfg.initial_advertise_peer_urls.clone();
    let mut listed = own.to_vec();
    advertised.sort();
    listed.sort();
    if advertised == listed {
        return Ok(());
    }
    Err(ServerError::Config(format!(
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
async fn join_running_cluster(cfg: &Config, own: &[String]) -> Result<(u64, u64), ServerError> {
    let mut own_sorted = own.to_vec();
    own_sorted.sort();
    let others: Vec<&String> = cfg
        .initial_cluster
        .iter()
        .filter(|(n, _)| *n != cfg.name)
        .flat_map(|(_, urls)| urls)
        .collect();
    for url in &others {
        let info = match crate::peer::client::cluster_info(url).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(peer = %url, error = %e, "cannot reach a member of the cluster to join");
                continue;
            }
        };
        let me = info.members.iter().find(|m| {
            let mut urls = m.peer_ur_ls.clone();
            urls.sort();
            urls == own_sorted
        });
        return match me {
            Some(m) => Ok((m.id, info.cluster_id)),
            None => Err(ServerError::Config(format!(
                "error validating peerURLs: member with peer URLs {} is not in the running cluster (add it with `etcdctl member add` first)",
                own.join(",")
            ))),
        };
    }
    Err(ServerError::Config(format!(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs ({})",
        others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    )))
}

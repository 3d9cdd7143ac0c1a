//! Talking to a cluster through the etcd v3 API only (the Cluster and
//! Maintenance services), so the same code drives etcd 3.5 and ferrocd:
//! observe the member list with each member's health and the leader, and
//! carry out one membership step.

use super::plan::Member;
use ferrocd_proto::etcdserverpb::{
    cluster_client::ClusterClient, maintenance_client::MaintenanceClient, MemberAddRequest,
    MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, MoveLeaderRequest, StatusRequest,
};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long one request to one member may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no member answered at {0}")]
    Unreachable(String),
    #[error("invalid endpoint {0}: {1}")]
    Endpoint(String, String),
    /// The cluster refused the request; the text is etcd's.
    #[error("{}", .0.message())]
    Refused(tonic::Status),
}

impl EtcdError {
    /// A refusal that only means "not yet" (a learner still catching up,
    /// a leadership change under way): retry later, no failure.
    pub fn is_transient(&self) -> bool {
        match self {
            EtcdError::Unreachable(_) => true,
            EtcdError::Endpoint(..) => false,
            EtcdError::Refused(s) => ferrocd_proto::errors::is_transient(s),
        }
    }
}

/// Maps peer URLs to StatefulSet ordinals and back.
pub trait Placement {
    fn peer_url(&self, ordinal: u32) -> String;
    fn ordinal_of_peer_url(&self, url: &str) -> Option<u32>;
}

impl Placement for crate::names::ClusterNames {
    fn peer_url(&self, ordinal: u32) -> String {
        crate::names::ClusterNames::peer_url(self, ordinal)
    }
    fn ordinal_of_peer_url(&self, url: &str) -> Option<u32> {
        let host = url.split("://").nth(1)?.split(':').next()?;
        let pod = host.strip_suffix(&format!(".{}", self.srv_domain()))?;
        self.ordinal_of(pod)
    }
}

/// One member as listed, with what its own status said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedMember {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
    pub healthy: bool,
}

/// The cluster as seen in one observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: u64,
    pub leader: Option<u64>,
    pub members: Vec<ListedMember>,
}

impl ClusterView {
    /// The planner's view: members placed on ordinals.
    pub fn planned(&self, placement: &dyn Placement) -> Vec<Member> {
        self.members
            .iter()
            .map(|m| Member {
                id: m.id,
                ordinal: m
                    .peer_urls
                    .iter()
                    .find_map(|u| placement.ordinal_of_peer_url(u)),
                learner: m.learner,
                healthy: m.healthy,
                started: !m.name.is_empty(),
            })
            .collect()
    }

    fn client_urls_of(&self, id: u64) -> Vec<String> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.client_urls.clone())
            .unwrap_or_default()
    }
}

/// What the operator presents to, and trusts in, a TLS cluster (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A client for one cluster, given the client URLs to try.
#[derive(Clone, Debug)]
pub struct EtcdMembers {
    endpoints: Vec<String>,
    tls: Option<ClientTls>,
}

async fn channel(url: &str, tls: Option<&ClientTls>) -> Result<Channel, EtcdError> {
    let mut ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| EtcdError::Endpoint(url.into(), e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if let (true, Some(t)) = (url.starts_with("https://"), tls) {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&t.ca_pem))
            .identity(Identity::from_pem(&t.cert_pem, &t.key_pem));
        ep = ep
            .tls_config(config)
            .map_err(|e| EtcdError::Endpoint(url.into(), e.to_string()))?;
    }
    ep.connect()
        .await
        .map_err(|_| EtcdError::Unreachable(url.into()))
}

fn refused(s: tonic::Status) -> EtcdError {
    if s.code() == tonic::Code::Unavailable && s.message().contains("transport") {
        EtcdError::Unreachable(s.message().into())
    } else {
        EtcdError::Refused(s)
    }
}

impl EtcdMembers {
    pub fn new(endpoints: Vec<String>) -> EtcdMembers {
        EtcdMembers {
            endpoints,
            tls: None,
        }
    }

    /// Talks TLS (with this identity) to `https://` endpoints.
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> EtcdMembers {
        self.tls = tls;
        self
    }

    async fn channel(&self, url: &str) -> Result<Channel, EtcdError> {
        channel(url, self.tls.as_ref()).await
    }

    /// A member's own status, or `None` when it does not answer.
    async fn status_of(
        &self,
        client_urls: Vec<String>,
    ) -> Option<ferrocd_proto::etcdserverpb::StatusResponse> {
        for url in client_urls {
            let Ok(ch) = self.channel(&url).await else {
                continue;
            };
            if let Ok(r) = MaintenanceClient::new(ch).status(StatusRequest {}).await {
                return Some(r.into_inner());
            }
        }
        None
    }

    /// The first endpoint that connects.
    async fn any(&self) -> Result<Channel, EtcdError> {
        for e in &self.endpoints {
            if let Ok(c) = self.channel(e).await {
                return Ok(c);
            }
        }
        Err(EtcdError::Unreachable(self.endpoints.join(",")))
    }

    /// Lists the members (linearizably, so a step just taken is seen) and
    /// asks each started member for its status.
    pub async fn observe(&self) -> Result<ClusterView, EtcdError> {
        let mut last = EtcdError::Unreachable(self.endpoints.join(","));
        for e in &self.endpoints {
            let ch = match self.channel(e).await {
                Ok(c) => c,
                Err(err) => {
                    last = err;
                    continue;
                }
            };
            let listed = ClusterClient::new(ch)
                .member_list(MemberListRequest { linearizable: true })
                .await;
            let resp = match listed {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    last = refused(s);
                    continue;
                }
            };
            let cluster_id = resp.header.map(|h| h.cluster_id).unwrap_or_default();
            let statuses = futures::future::join_all(
                resp.members
                    .iter()
                    .map(|m| self.status_of(m.client_ur_ls.clone())),
            )
            .await;
            let leader = statuses
                .iter()
                .flatten()
                .map(|s| s.leader)
                .find(|l| *l != 0);
            let members = resp
                .members
                .into_iter()
                .zip(statuses)
                .map(|(m, st)| ListedMember {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_ur_ls,
                    client_urls: m.client_ur_ls,
                    learner: m.is_learner,
                    healthy: st.is_some_and(|s| s.leader != 0 && s.errors.is_empty()),
                })
                .collect();
            return Ok(ClusterView {
                cluster_id,
                leader,
                members,
            });
        }
        Err(last)
    }

    /// MemberAdd as a learner; returns the new member's ID.
    pub async fn add_learner(&self, peer_url: &str) -> Result<u64, EtcdError> {
        let r = ClusterClient::new(self.any().await?)
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![peer_url.to_string()],
                is_learner: true,
            })
            .await
            .map_err(refused)?;
        Ok(r.into_inner().member.map(|m| m.id).unwrap_or_default())
    }

    pub async fn promote(&self, id: u64) -> Result<(), EtcdError> {
        ClusterClient::new(self.any().await?)
            .member_promote(MemberPromoteRequest { id })
            .await
            .map_err(refused)?;
        Ok(())
    }

    pub async fn remove(&self, id: u64) -> Result<(), EtcdError> {
        ClusterClient::new(self.any().await?)
            .member_remove(MemberRemoveRequest { id })
            .await
            .map_err(refused)?;
        Ok(())
    }

    /// MoveLeader goes to the leader itself, at its own client URLs.
    pub async fn move_leader(
        &self,
        view: &ClusterView,
        from: u64,
        to: u64,
    ) -> Result<(), EtcdError> {
        let mut last = EtcdError::Unreachable(format!("leader {from:x}"));
        for url in view.client_urls_of(from) {
            match self.channel(&url).await {
                Ok(ch) => {
                    return MaintenanceClient::new(ch)
                        .move_leader(MoveLeaderRequest { target_id: to })
                        .await
                        .map(|_| ())
                        .map_err(refused)
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::ClusterNames;

    #[test]
    fn peer_urls_map_to_ordinals_of_this_cluster_only() {
        let n = ClusterNames {
            name: "c".into(),
            namespace: "ns".into(),
            domain: "cluster.local".into(),
            tls: false,
        };
        assert_eq!(
            n.ordinal_of_peer_url("http://c-3.c.ns.svc.cluster.local:2380"),
            Some(3)
        );
        assert_eq!(
            n.ordinal_of_peer_url("http://c-3.c.other.svc.cluster.local:2380"),
            None
        );
        assert_eq!(n.ordinal_of_peer_url("http://10.0.0.1:2380"), None);
        assert_eq!(n.ordinal_of_peer_url(&Placement::peer_url(&n, 7)), Some(7));
    }

    #[test]
    fn not_in_sync_and_no_leader_are_transient() {
        use ferrocd_proto::errors::{LEARNER_NOT_READY, NO_LEADER, PEER_URL_EXISTS};
        assert!(EtcdError::Refused(LEARNER_NOT_READY.status()).is_transient());
        assert!(EtcdError::Refused(NO_LEADER.status()).is_transient());
        assert!(!EtcdError::Refused(PEER_URL_EXISTS.status()).is_transient());
        assert!(EtcdError::Unreachable("x".into()).is_transient());
    }
}

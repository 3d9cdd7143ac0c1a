//! Talking to a cluster through the etcd v3 API only (the Cluster and
//! Maintenance services), so the same code drives etcd 3.5 and ferrocd:
//! observe the member list with each member's health and the leader, and
//! carry out one membership step.

use super::plan::Member;
use crate::etcd_auth::{self, AuthedChannel, Credentials, Token, ROOT};
use ferrocd_proto::errors::{COMPACTED, ROLE_ALREADY_EXIST, USER_ALREADY_EXIST, USER_EMPTY};
use ferrocd_proto::etcdserverpb::alarm_request::AlarmAction;
use ferrocd_proto::etcdserverpb::{
    auth_client::AuthClient, cluster_client::ClusterClient, maintenance_client::MaintenanceClient,
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthStatusRequest,
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserGrantRoleRequest, DefragmentRequest,
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MoveLeaderRequest, StatusRequest,
};
use ferrocd_proto::etcdserverpb::{
    kv_client::KvClient, AlarmRequest, AlarmType, CompactionRequest, RangeRequest,
};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// How long one request to one member may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A defragmentation rewrites the whole file: a large one takes minutes.
const DEFRAG_TIMEOUT: Duration = Duration::from_secs(600);
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
    /// Its database file and the part in use (bytes), when it answered.
    pub db_size: Option<(i64, i64)>,
    /// Its raft applied index (0 when it did not answer).
    pub applied: u64,
    /// Its store revision (0 when it did not answer).
    pub revision: i64,
}

impl ListedMember {
    /// It answered a status request (with or without a leader).
    pub fn answered(&self) -> bool {
        self.db_size.is_some()
    }
}

/// The cluster as seen in one observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: u64,
    pub leader: Option<u64>,
    pub members: Vec<ListedMember>,
    /// The member list came through the cluster's quorum. Without one it
    /// is one member's own (possibly stale) list: good for telling a lost
    /// quorum, not for membership steps.
    pub linearizable: bool,
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
                applied: m.applied,
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
#[derive(Debug)]
pub struct EtcdMembers {
    endpoints: Vec<String>,
    tls: Option<ClientTls>,
    /// Who the requests that need a user authenticate as (root).
    credentials: Option<Credentials>,
    /// Authenticated on first need, once per client.
    token: tokio::sync::OnceCell<Token>,
}

async fn channel(url: &str, tls: Option<&ClientTls>) -> Result<Channel, EtcdError> {
    dial(url, tls, REQUEST_TIMEOUT).await
}

async fn dial(url: &str, tls: Option<&ClientTls>, timeout: Duration) -> Result<Channel, EtcdError> {
    let mut ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| EtcdError::Endpoint(url.into(), e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout);
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
            credentials: None,
            token: tokio::sync::OnceCell::new(),
        }
    }

    /// Authenticates as root with this password where auth is on.
    pub fn with_root_password(mut self, password: Option<String>) -> EtcdMembers {
        self.credentials = password.map(|password| Credentials {
            user: ROOT.into(),
            password,
        });
        self
    }

    /// `ch` with the token on each request.
    async fn authed(&self, ch: Channel) -> Result<AuthedChannel, EtcdError> {
        let token = self
            .token
            .get_or_try_init(|| etcd_auth::token(&ch, self.credentials.as_ref()))
            .await
            .map_err(refused)?;
        Ok(etcd_auth::authed(ch, token.clone()))
    }

    /// Talks TLS (with this identity) to `https://` endpoints.
    pub fn with_tls(mut self, tls: Option<ClientTls>) -> EtcdMembers {
        self.tls = tls;
        self
    }

    async fn channel(&self, url: &str) -> Result<Channel, EtcdError> {
        channel(url, self.tls.as_ref()).await
    }

    /// A member's own status, or `None` when it does not answer. Asked as
    /// root where auth is on: etcd after 3.5.1 (and ferrocd) want a user.
    async fn status_of(
        &self,
        client_urls: Vec<String>,
    ) -> Option<ferrocd_proto::etcdserverpb::StatusResponse> {
        for url in client_urls {
            let Ok(ch) = self.channel(&url).await else {
                continue;
            };
            let Ok(ch) = self.authed(ch).await else {
                continue;
            };
            if let Ok(r) = MaintenanceClient::new(ch).status(StatusRequest {}).await {
                return Some(r.into_inner());
            }
        }
        None
    }

    /// The endpoint of the member that says it leads, else any.
    async fn leader_or_any(&self) -> Result<AuthedChannel, EtcdError> {
        for e in &self.endpoints {
            let Ok(ch) = self.channel(e).await else {
                continue;
            };
            let ch = self.authed(ch).await?;
            if let Ok(s) = MaintenanceClient::new(ch.clone())
                .status(StatusRequest {})
                .await
            {
                let s = s.into_inner();
                if s.leader != 0 && s.header.is_some_and(|h| h.member_id == s.leader) {
                    return Ok(ch);
                }
            }
        }
        self.any().await
    }

    /// The first endpoint that connects, authenticated.
    async fn any(&self) -> Result<AuthedChannel, EtcdError> {
        for e in &self.endpoints {
            if let Ok(c) = self.channel(e).await {
                return self.authed(c).await;
            }
        }
        Err(EtcdError::Unreachable(self.endpoints.join(",")))
    }

    /// Lists the members (linearizably, so a step just taken is seen) and
    /// asks each started member for its status.
    pub async fn observe(&self) -> Result<ClusterView, EtcdError> {
        match self.observe_with(true).await {
            Ok(v) => Ok(v),
            // No quorum answers: what the members still say on their own.
            Err(e) => self.observe_with(false).await.map_err(|_| e),
        }
    }

    async fn observe_with(&self, linearizable: bool) -> Result<ClusterView, EtcdError> {
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
                .member_list(MemberListRequest { linearizable })
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
                    healthy: st
                        .as_ref()
                        .is_some_and(|s| s.leader != 0 && s.errors.is_empty()),
                    applied: st.as_ref().map_or(0, |s| s.raft_applied_index),
                    revision: st
                        .as_ref()
                        .and_then(|s| s.header.as_ref())
                        .map_or(0, |h| h.revision),
                    db_size: st.map(|s| (s.db_size, s.db_size_in_use)),
                })
                .collect();
            return Ok(ClusterView {
                cluster_id,
                leader,
                members,
                linearizable,
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

    /// MemberPromote goes to the leader where it can be found: etcd 3.5.1
    /// forwards one made on a follower to the leader without the caller's
    /// user, which with auth on is refused until the request times out.
    pub async fn promote(&self, id: u64) -> Result<(), EtcdError> {
        ClusterClient::new(self.leader_or_any().await?)
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
                    return MaintenanceClient::new(self.authed(ch).await?)
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

impl EtcdMembers {
    /// Defragments member `id`, at its own client URLs.
    pub async fn defragment(&self, view: &ClusterView, id: u64) -> Result<(), EtcdError> {
        let mut last = EtcdError::Unreachable(format!("member {id:x}"));
        for url in view.client_urls_of(id) {
            match dial(&url, self.tls.as_ref(), DEFRAG_TIMEOUT).await {
                Ok(ch) => {
                    return MaintenanceClient::new(self.authed(ch).await?)
                        .defragment(DefragmentRequest {})
                        .await
                        .map(|_| ())
                        .map_err(refused)
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The members that raised a NOSPACE alarm.
    pub async fn nospace_alarms(&self) -> Result<Vec<u64>, EtcdError> {
        let r = MaintenanceClient::new(self.any().await?)
            .alarm(AlarmRequest {
                action: AlarmAction::Get as i32,
                member_id: 0,
                alarm: AlarmType::Nospace as i32,
            })
            .await
            .map_err(refused)?;
        Ok(r.into_inner().alarms.iter().map(|a| a.member_id).collect())
    }

    /// Compacts the history up to the current revision (what a full
    /// database can still do); that revision.
    pub async fn compact_all(&self) -> Result<i64, EtcdError> {
        let ch = self.any().await?;
        let revision = KvClient::new(ch.clone())
            .range(RangeRequest {
                key: vec![0],
                limit: 1,
                count_only: true,
                ..RangeRequest::default()
            })
            .await
            .map_err(refused)?
            .into_inner()
            .header
            .map(|h| h.revision)
            .unwrap_or_default();
        match KvClient::new(ch)
            .compact(CompactionRequest {
                revision,
                physical: true,
            })
            .await
        {
            Ok(_) => Ok(revision),
            // Already compacted there: nothing more to free.
            Err(s) if s.message() == COMPACTED.message() => Ok(revision),
            Err(s) => Err(refused(s)),
        }
    }

    /// Disarms the NOSPACE alarms of these members.
    pub async fn disarm_nospace(&self, ids: &[u64]) -> Result<(), EtcdError> {
        let mut m = MaintenanceClient::new(self.any().await?);
        for &member_id in ids {
            m.alarm(AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id,
                alarm: AlarmType::Nospace as i32,
            })
            .await
            .map_err(refused)?;
        }
        Ok(())
    }

    /// Whether the cluster has auth on. AuthStatus itself needs a user
    /// while auth is on: a refusal for lack of one also says "on".
    pub async fn auth_enabled(&self) -> Result<bool, EtcdError> {
        let asked = AuthClient::new(self.any().await?)
            .auth_status(AuthStatusRequest {})
            .await;
        match asked {
            Ok(r) => Ok(r.into_inner().enabled),
            Err(s) if s.message() == USER_EMPTY.message() => Ok(true),
            Err(s) => Err(refused(s)),
        }
    }

    /// What `etcdctl user add root` and `etcdctl auth enable` do: root with
    /// this password and the root role, then auth on.
    pub async fn enable_auth(&self, password: &str) -> Result<(), EtcdError> {
        let mut auth = AuthClient::new(self.any().await?);
        let exists =
            |s: &tonic::Status, e: ferrocd_proto::errors::EtcdError| s.message() == e.message();
        match auth
            .role_add(AuthRoleAddRequest { name: ROOT.into() })
            .await
        {
            Err(s) if !exists(&s, ROLE_ALREADY_EXIST) => return Err(refused(s)),
            _ => {}
        }
        let added = auth
            .user_add(AuthUserAddRequest {
                name: ROOT.into(),
                password: password.into(),
                ..Default::default()
            })
            .await;
        match added {
            Ok(_) => {}
            // A root from before: it takes the password the Secret holds.
            Err(s) if exists(&s, USER_ALREADY_EXIST) => {
                auth.user_change_password(AuthUserChangePasswordRequest {
                    name: ROOT.into(),
                    password: password.into(),
                    ..Default::default()
                })
                .await
                .map_err(refused)?;
            }
            Err(s) => return Err(refused(s)),
        }
        auth.user_grant_role(AuthUserGrantRoleRequest {
            user: ROOT.into(),
            role: ROOT.into(),
        })
        .await
        .map_err(refused)?;
        auth.auth_enable(AuthEnableRequest {})
            .await
            .map_err(refused)?;
        Ok(())
    }

    pub async fn disable_auth(&self) -> Result<(), EtcdError> {
        AuthClient::new(self.any().await?)
            .auth_disable(AuthDisableRequest {})
            .await
            .map_err(refused)?;
        Ok(())
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

//! The cluster-facing side of a reconcile (the etcd v3 API, through
//! `EtcdMembers`), behind a trait so that unit tests run reconciles
//! against a model cluster.

use crate::membership::{ClientTls, ClusterView, EtcdError, EtcdMembers};
use futures::future::BoxFuture;
use std::sync::Arc;

/// The cluster-facing side of a reconcile, behind a trait so unit tests can
/// run reconciles against a model cluster.
pub trait MemberApi: Send + Sync {
    fn observe(&self) -> BoxFuture<'_, Result<ClusterView, EtcdError>>;
    fn add_learner<'a>(&'a self, peer_url: &'a str) -> BoxFuture<'a, Result<u64, EtcdError>>;
    fn promote(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>>;
    fn remove(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>>;
    fn move_leader<'a>(
        &'a self,
        view: &'a ClusterView,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), EtcdError>>;
    fn defragment<'a>(
        &'a self,
        view: &'a ClusterView,
        id: u64,
    ) -> BoxFuture<'a, Result<(), EtcdError>>;
    fn nospace_alarms(&self) -> BoxFuture<'_, Result<Vec<u64>, EtcdError>>;
    fn compact_all(&self) -> BoxFuture<'_, Result<i64, EtcdError>>;
    fn disarm_nospace<'a>(&'a self, ids: &'a [u64]) -> BoxFuture<'a, Result<(), EtcdError>>;
    fn auth_enabled(&self) -> BoxFuture<'_, Result<bool, EtcdError>>;
    fn enable_auth<'a>(&'a self, root_password: &'a str) -> BoxFuture<'a, Result<(), EtcdError>>;
    fn disable_auth(&self) -> BoxFuture<'_, Result<(), EtcdError>>;
}

impl MemberApi for EtcdMembers {
    fn observe(&self) -> BoxFuture<'_, Result<ClusterView, EtcdError>> {
        Box::pin(EtcdMembers::observe(self))
    }
    fn add_learner<'a>(&'a self, peer_url: &'a str) -> BoxFuture<'a, Result<u64, EtcdError>> {
        Box::pin(EtcdMembers::add_learner(self, peer_url))
    }
    fn promote(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>> {
        Box::pin(EtcdMembers::promote(self, id))
    }
    fn remove(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>> {
        Box::pin(EtcdMembers::remove(self, id))
    }
    fn move_leader<'a>(
        &'a self,
        view: &'a ClusterView,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), EtcdError>> {
        Box::pin(EtcdMembers::move_leader(self, view, from, to))
    }
    fn defragment<'a>(
        &'a self,
        view: &'a ClusterView,
        id: u64,
    ) -> BoxFuture<'a, Result<(), EtcdError>> {
        Box::pin(EtcdMembers::defragment(self, view, id))
    }
    fn nospace_alarms(&self) -> BoxFuture<'_, Result<Vec<u64>, EtcdError>> {
        Box::pin(EtcdMembers::nospace_alarms(self))
    }
    fn compact_all(&self) -> BoxFuture<'_, Result<i64, EtcdError>> {
        Box::pin(EtcdMembers::compact_all(self))
    }
    fn disarm_nospace<'a>(&'a self, ids: &'a [u64]) -> BoxFuture<'a, Result<(), EtcdError>> {
        Box::pin(EtcdMembers::disarm_nospace(self, ids))
    }
    fn auth_enabled(&self) -> BoxFuture<'_, Result<bool, EtcdError>> {
        Box::pin(EtcdMembers::auth_enabled(self))
    }
    fn enable_auth<'a>(&'a self, root_password: &'a str) -> BoxFuture<'a, Result<(), EtcdError>> {
        Box::pin(EtcdMembers::enable_auth(self, root_password))
    }
    fn disable_auth(&self) -> BoxFuture<'_, Result<(), EtcdError>> {
        Box::pin(EtcdMembers::disable_auth(self))
    }
}

/// How the operator reaches one cluster.
#[derive(Clone, Debug, Default)]
pub struct Dial {
    /// The members' client URLs.
    pub endpoints: Vec<String>,
    /// For a TLS cluster, the operator's identity.
    pub tls: Option<ClientTls>,
    /// With `spec.auth`, root's password.
    pub root_password: Option<String>,
}

/// Makes the member client for a cluster.
pub type Connect = Arc<dyn Fn(Dial) -> Box<dyn MemberApi> + Send + Sync>;

pub fn connect_etcd() -> Connect {
    Arc::new(|dial| {
        Box::new(
            EtcdMembers::new(dial.endpoints)
                .with_tls(dial.tls)
                .with_root_password(dial.root_password),
        )
    })
}

//! Names and addresses derived from an `EtcdCluster`: its Services, its pods'
//! DNS names and member URLs, its SRV domain. One place, so the rendered
//! objects, the membership steps and the status agree.

use crate::crd::{EtcdCluster, TlsMode};
use kube::ResourceExt;
use std::collections::BTreeMap;

pub const PEER_PORT: i32 = 2380;
pub const CLIENT_PORT: i32 = 2379;
/// Plain-HTTP health and metrics (`--listen-metrics-urls`), for probes,
/// which present no client certificate.
pub const METRICS_PORT: i32 = 2381;
/// The label every object of one cluster carries (selector of its pods).
pub const CLUSTER_LABEL: &str = "ferrocd.dev/cluster";
pub const APP_LABEL: &str = "app.kubernetes.io/name";
pub const APP_NAME: &str = "ferrocd";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "ferrocd-operator";
/// Approves a quorum-loss recovery from the named survivor pod.
pub const RECOVER_ANNOTATION: &str = "ferrocd.dev/recover-quorum-from";

/// Where one cluster's members live and how they are named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNames {
    pub name: String,
    pub namespace: String,
    pub domain: String,
    pub tls: bool,
}

impl ClusterNames {
    pub fn of(c: &EtcdCluster) -> ClusterNames {
        ClusterNames {
            name: c.name_any(),
            namespace: c.namespace().unwrap_or_else(|| "default".into()),
            domain: c.spec.cluster_domain.clone(),
            tls: c
                .spec
                .tls
                .as_ref()
                .is_some_and(|t| t.mode != TlsMode::Disabled),
        }
    }

    /// The ConfigMap whose `done` key tells the restore step of a restored
    /// cluster's pods that the cluster has formed.
    pub fn restore_config(&self) -> String {
        format!("{}-restore", self.name)
    }

    /// The headless Service (and StatefulSet) name.
    pub fn headless_service(&self) -> String {
        self.name.clone()
    }

    pub fn client_service(&self) -> String {
        format!("{}-client", self.name)
    }

    pub fn pdb(&self) -> String {
        self.name.clone()
    }

    /// The domain of the SRV records: `C.N.svc.D`.
    pub fn srv_domain(&self) -> String {
        format!("{}.{}.svc.{}", self.name, self.namespace, self.domain)
    }

    pub fn pod_name(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// The ordinal of a pod (or member) named `C-<i>`.
    pub fn ordinal_of(&self, pod_name: &str) -> Option<u32> {
        let rest = pod_name.strip_prefix(&self.name)?.strip_prefix('-')?;
        if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
            return None;
        }
        rest.parse().ok()
    }

    pub fn pod_host(&self, ordinal: u32) -> String {
        format!("{}.{}", self.pod_name(ordinal), self.srv_domain())
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    pub fn peer_url(&self, ordinal: u32) -> String {
        format!("{}://{}:{PEER_PORT}", self.scheme(), self.pod_host(ordinal))
    }

    pub fn client_url(&self, ordinal: u32) -> String {
        format!(
            "{}://{}:{CLIENT_PORT}",
            self.scheme(),
            self.pod_host(ordinal)
        )
    }

    /// Port names the SRV records are published under.
    pub fn server_port_name(&self) -> &'static str {
        if self.tls {
            "etcd-server-ssl"
        } else {
            "etcd-server"
        }
    }

    pub fn client_port_name(&self) -> &'static str {
        if self.tls {
            "etcd-client-ssl"
        } else {
            "etcd-client"
        }
    }

    /// Labels selecting this cluster's pods.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (APP_LABEL.to_string(), APP_NAME.to_string()),
            (CLUSTER_LABEL.to_string(), self.name.clone()),
        ])
    }

    /// The selector as a string (`k=v,k=v`), for the scale subresource.
    pub fn selector_string(&self) -> String {
        self.selector_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Labels on every object the operator creates.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector_labels();
        l.insert(MANAGED_BY_LABEL.into(), MANAGER.into());
        l
    }

    /// The Secret holding root's password (`password`) when the spec names
    /// none.
    pub fn root_secret(&self) -> String {
        format!("{}-root", self.name)
    }

    /// The Secret holding the operator-managed CA (`tls.crt`, `tls.key`).
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.name)
    }

    /// The Secret holding the operator-issued member certificate
    /// (`tls.crt`, `tls.key`, `ca.crt`).
    pub fn tls_secret(&self) -> String {
        format!("{}-tls", self.name)
    }

    /// Every name a member certificate must be valid for: each pod, the SRV
    /// domain (checked by peers that found each other through SRV), the
    /// client Service, and loopback for clients inside the pod.
    pub fn certificate_names(&self) -> Vec<String> {
        let svc = format!("{}.{}.svc", self.name, self.namespace);
        let client = self.client_service();
        vec![
            format!("*.{}", self.srv_domain()),
            self.srv_domain(),
            format!("*.{svc}"),
            client.clone(),
            format!("{client}.{}", self.namespace),
            format!("{client}.{}.svc", self.namespace),
            format!("{client}.{}.svc.{}", self.namespace, self.domain),
            "localhost".into(),
            "127.0.0.1".into(),
        ]
    }

    /// The claim the StatefulSet made for a member (`data-C-i`).
    pub fn pvc_name(&self, ordinal: u32) -> String {
        format!("data-{}", self.pod_name(ordinal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tls: bool) -> ClusterNames {
        ClusterNames {
            name: "web".into(),
            namespace: "prod".into(),
            domain: "cluster.local".into(),
            tls,
        }
    }

    #[test]
    fn urls_follow_the_headless_service() {
        let n = names(false);
        assert_eq!(n.srv_domain(), "web.prod.svc.cluster.local");
        assert_eq!(
            n.peer_url(2),
            "http://web-2.web.prod.svc.cluster.local:2380"
        );
        assert_eq!(
            n.client_url(0),
            "http://web-0.web.prod.svc.cluster.local:2379"
        );
        assert_eq!(n.server_port_name(), "etcd-server");
        let t = names(true);
        assert_eq!(
            t.peer_url(1),
            "https://web-1.web.prod.svc.cluster.local:2380"
        );
        assert_eq!(t.client_port_name(), "etcd-client-ssl");
    }

    #[test]
    fn ordinals_parse_only_this_clusters_pods() {
        let n = names(false);
        assert_eq!(n.ordinal_of("web-0"), Some(0));
        assert_eq!(n.ordinal_of("web-12"), Some(12));
        assert_eq!(n.ordinal_of("web-01"), None);
        assert_eq!(n.ordinal_of("web-"), None);
        assert_eq!(n.ordinal_of("webx-1"), None);
        assert_eq!(n.ordinal_of("web-a"), None);
        assert_eq!(n.ordinal_of("other-1"), None);
    }
}

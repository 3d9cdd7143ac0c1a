//! The settings a cluster runs with where its spec is silent. A new
//! cluster without `tls` gets OperatorManaged TLS; a cluster that already
//! ran before that default existed keeps what its members run. The choice
//! is recorded in `status.tls` so that it never changes afterwards, and
//! every controller renders from the copy this module returns.

use crate::crd::{EtcdCluster, TlsMode, TlsSpec};
use k8s_openapi::api::apps::v1::StatefulSet;

/// The TLS mode in effect: the spec's, else the recorded one, else what
/// the running StatefulSet serves, else (a new cluster) OperatorManaged.
pub fn tls_mode(c: &EtcdCluster, running: Option<&StatefulSet>) -> TlsMode {
    if let Some(tls) = &c.spec.tls {
        return tls.mode;
    }
    if let Some(recorded) = c.status.as_ref().and_then(|s| s.tls) {
        return recorded;
    }
    match running.and_then(member_args) {
        Some(args) if args.iter().any(|a| a == "--client-cert-auth") => TlsMode::OperatorManaged,
        Some(_) => TlsMode::Disabled,
        None => TlsMode::OperatorManaged,
    }
}

fn member_args(sts: &StatefulSet) -> Option<&Vec<String>> {
    sts.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .args
        .as_ref()
}

/// `c` with `spec.tls` filled in as it takes effect.
pub fn cluster(c: &EtcdCluster, running: Option<&StatefulSet>) -> EtcdCluster {
    let mut copy = c.clone();
    if copy.spec.tls.is_none() {
        copy.spec.tls = Some(TlsSpec {
            mode: tls_mode(c, running),
            ..TlsSpec::default()
        });
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EtcdClusterStatus;

    fn running(args: &[&str]) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo"},
            "spec": {
                "selector": {},
                "serviceName": "demo",
                "template": {"spec": {"containers": [{
                    "name": "ferrocd",
                    "args": args,
                }]}},
            },
        }))
        .unwrap()
    }

    fn cluster_with(tls: Option<TlsMode>, recorded: Option<TlsMode>) -> EtcdCluster {
        let mut c: EtcdCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrocd.dev/v1alpha1",
            "kind": "EtcdCluster",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": {"replicas": 3},
        }))
        .unwrap();
        c.spec.tls = tls.map(|mode| TlsSpec {
            mode,
            ..TlsSpec::default()
        });
        c.status = recorded.map(|tls| EtcdClusterStatus {
            tls: Some(tls),
            ..EtcdClusterStatus::default()
        });
        c
    }

    #[test]
    fn a_new_cluster_without_tls_gets_operator_managed_tls() {
        let c = cluster_with(None, None);
        assert_eq!(tls_mode(&c, None), TlsMode::OperatorManaged);
        let tls = cluster(&c, None).spec.tls.unwrap();
        assert_eq!(tls.mode, TlsMode::OperatorManaged);
    }

    #[test]
    fn an_older_cluster_keeps_what_its_members_run() {
        let c = cluster_with(None, None);
        let plain = running(&["--name=$(POD_NAME)"]);
        assert_eq!(tls_mode(&c, Some(&plain)), TlsMode::Disabled);
        let secure = running(&["--name=$(POD_NAME)", "--client-cert-auth"]);
        assert_eq!(tls_mode(&c, Some(&secure)), TlsMode::OperatorManaged);
    }

    #[test]
    fn the_spec_wins_then_the_recorded_choice() {
        let plain = running(&[]);
        let c = cluster_with(Some(TlsMode::OperatorManaged), Some(TlsMode::Disabled));
        assert_eq!(tls_mode(&c, Some(&plain)), TlsMode::OperatorManaged);
        // Recorded OperatorManaged while the StatefulSet still renders plain
        // (the switch is under way): the record holds.
        let c = cluster_with(None, Some(TlsMode::OperatorManaged));
        assert_eq!(tls_mode(&c, Some(&plain)), TlsMode::OperatorManaged);
        let c = cluster_with(None, Some(TlsMode::Disabled));
        assert_eq!(tls_mode(&c, None), TlsMode::Disabled);
    }

    #[test]
    fn a_tls_object_without_a_mode_is_operator_managed() {
        let c: EtcdCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrocd.dev/v1alpha1",
            "kind": "EtcdCluster",
            "metadata": {"name": "demo"},
            "spec": {"replicas": 1, "tls": {"clientSecrets": [{"name": "app"}]}},
        }))
        .unwrap();
        let tls = c.spec.tls.as_ref().unwrap();
        assert_eq!(tls.mode, TlsMode::OperatorManaged);
        assert_eq!(tls.client_secrets[0].common_name(), "app");
    }
}

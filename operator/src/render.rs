//! The objects an `EtcdCluster` becomes: the headless Service (whose ports
//! make cluster DNS publish the SRV records), the client Service, the
//! StatefulSet running `ferrocd --discovery-srv ...`, and a
//! PodDisruptionBudget keeping quorum. Pure functions of the resource.

use crate::crd::{AutoCompactionMode, EtcdCluster, MemberOptions, TlsMode};
use crate::names::{ClusterNames, CLIENT_PORT, METRICS_PORT, PEER_PORT};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use std::collections::BTreeMap;

pub const DATA_DIR: &str = "/var/lib/ferrocd";
pub const DEFAULT_STORAGE: &str = "1Gi";
/// The image run when the spec names none: the operator's own version.
pub fn default_image() -> String {
    format!("ferrocd:{}", env!("CARGO_PKG_VERSION"))
}

fn meta(c: &EtcdCluster, n: &ClusterNames, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(n.namespace.clone()),
        labels: Some(n.labels()),
        owner_references: c.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        // Server-side apply keys ports by (port, protocol); 1.20 has no
        // default for the key, so it must be sent.
        protocol: Some("TCP".into()),
        target_port: Some(IntOrString::Int(number)),
        ..ServicePort::default()
    }
}

/// Headless Service `C`: one DNS name per pod and the SRV records
/// `_etcd-server._tcp.C.N.svc.D` / `_etcd-client._tcp...`, not-ready pods
/// included so members can find each other before they are ready.
pub fn headless_service(c: &EtcdCluster) -> Service {
    let n = ClusterNames::of(c);
    Service {
        metadata: meta(c, &n, n.headless_service()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(n.selector_labels()),
            ports: Some(vec![
                port(n.server_port_name(), PEER_PORT),
                port(n.client_port_name(), CLIENT_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Client Service `C-client`: a stable address over the ready members.
pub fn client_service(c: &EtcdCluster) -> Service {
    let n = ClusterNames::of(c);
    Service {
        metadata: meta(c, &n, n.client_service()),
        spec: Some(ServiceSpec {
            selector: Some(n.selector_labels()),
            ports: Some(vec![port(n.client_port_name(), CLIENT_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Voluntary disruptions may take members down only while a quorum stays.
pub fn pod_disruption_budget(c: &EtcdCluster) -> PodDisruptionBudget {
    let n = ClusterNames::of(c);
    let replicas = c.spec.replicas.max(1);
    let quorum = replicas / 2 + 1;
    PodDisruptionBudget {
        metadata: meta(c, &n, n.pdb()),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(quorum)),
            selector: Some(LabelSelector {
                match_labels: Some(n.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// A Secret holding `tls.crt`, `tls.key` and `ca.crt`, mounted in the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsMount {
    pub secret: String,
    pub dir: String,
}

/// Where a member finds its client-side and peer-side certificates, when
/// the cluster runs TLS: the operator's Secret for both, or the user's two.
pub fn tls_mounts(c: &EtcdCluster) -> Option<(TlsMount, TlsMount)> {
    let tls = c.spec.tls.as_ref()?;
    let n = ClusterNames::of(c);
    match tls.mode {
        TlsMode::Disabled => None,
        TlsMode::OperatorManaged => {
            let m = TlsMount {
                secret: n.tls_secret(),
                dir: "/etc/ferrocd/tls".into(),
            };
            Some((m.clone(), m))
        }
        TlsMode::UserSecrets => {
            let s = tls.secrets.clone().unwrap_or_default();
            Some((
                TlsMount {
                    secret: s.client,
                    dir: "/etc/ferrocd/client-tls".into(),
                },
                TlsMount {
                    secret: s.peer,
                    dir: "/etc/ferrocd/peer-tls".into(),
                },
            ))
        }
    }
}

/// etcd's TLS flags for these mounts; both sides demand client certificates.
fn tls_args(client: &TlsMount, peer: &TlsMount) -> Vec<String> {
    let (c, p) = (&client.dir, &peer.dir);
    vec![
        format!("--cert-file={c}/tls.crt"),
        format!("--key-file={c}/tls.key"),
        format!("--trusted-ca-file={c}/ca.crt"),
        "--client-cert-auth".into(),
        format!("--peer-cert-file={p}/tls.crt"),
        format!("--peer-key-file={p}/tls.key"),
        format!("--peer-trusted-ca-file={p}/ca.crt"),
        "--peer-client-cert-auth".into(),
    ]
}

/// The member flags of the spec's options, in etcd's spelling.
fn option_args(o: &MemberOptions) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(q) = o.quota_backend_bytes {
        a.push(format!("--quota-backend-bytes={q}"));
    }
    if let Some(m) = o.auto_compaction_mode {
        let m = match m {
            AutoCompactionMode::Periodic => "periodic",
            AutoCompactionMode::Revision => "revision",
        };
        a.push(format!("--auto-compaction-mode={m}"));
    }
    if let Some(r) = &o.auto_compaction_retention {
        a.push(format!("--auto-compaction-retention={r}"));
    }
    if let Some(s) = o.snapshot_count {
        a.push(format!("--snapshot-count={s}"));
    }
    if let Some(h) = o.heartbeat_interval {
        a.push(format!("--heartbeat-interval={h}"));
    }
    if let Some(e) = o.election_timeout {
        a.push(format!("--election-timeout={e}"));
    }
    a
}

/// The cluster's `--initial-cluster-token`.
pub fn cluster_token(c: &EtcdCluster) -> String {
    let n = ClusterNames::of(c);
    match c.meta().uid.as_deref() {
        // The UID keeps a recreated cluster of the same name from ever
        // talking to members of the old one.
        Some(uid) => format!("{}-{}", n.name, &uid[..uid.len().min(8)]),
        None => n.name.clone(),
    }
}

/// The restore init container of a cluster created from a backup, with
/// the volumes it needs (see `backup::pod::RestoreStep`).
fn restore_step(c: &EtcdCluster, bootstrap_replicas: i32) -> Option<(Container, Vec<Volume>)> {
    let restore = c.status.as_ref()?.restore.as_ref()?;
    let n = ClusterNames::of(c);
    let image = c.spec.image.clone().unwrap_or_else(default_image);
    let initial_cluster = (0..bootstrap_replicas.max(1) as u32)
        .map(|i| format!("{}={}", n.pod_name(i), n.peer_url(i)))
        .collect::<Vec<_>>()
        .join(",");
    let scheme = if n.tls { "https" } else { "http" };
    let step = crate::backup::pod::RestoreStep {
        restore,
        image: &image,
        data_mount: DATA_DIR,
        data_dir: &format!("{DATA_DIR}/data"),
        initial_cluster,
        token: cluster_token(c),
        peer_url: format!("{scheme}://$(POD_NAME).{}:{PEER_PORT}", n.srv_domain()),
        bootstrap_members: bootstrap_replicas,
        restore_config: n.restore_config(),
    };
    Some(step.container())
}

/// The member's command line (DESIGN.md): its name is the pod's, it finds
/// its peers through the SRV records of the headless Service, and a fresh
/// member waits until the records list the bootstrap size.
pub fn member_args(c: &EtcdCluster, bootstrap_replicas: i32) -> Vec<String> {
    let n = ClusterNames::of(c);
    let scheme = if n.tls { "https" } else { "http" };
    let host = format!("$(POD_NAME).{}", n.srv_domain());
    let token = cluster_token(c);
    let mut a = vec![
        "--name=$(POD_NAME)".to_string(),
        format!("--data-dir={DATA_DIR}/data"),
        format!("--discovery-srv={}", n.srv_domain()),
        format!("--initial-advertise-peer-urls={scheme}://{host}:{PEER_PORT}"),
        format!("--advertise-client-urls={scheme}://{host}:{CLIENT_PORT}"),
        format!("--listen-peer-urls={scheme}://0.0.0.0:{PEER_PORT}"),
        format!("--listen-client-urls={scheme}://0.0.0.0:{CLIENT_PORT}"),
        format!("--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}"),
        format!("--initial-cluster-token={token}"),
        "--initial-cluster-state=new".to_string(),
        format!("--initial-cluster-size={bootstrap_replicas}"),
    ];
    if let Some((client, peer)) = tls_mounts(c) {
        a.extend(tls_args(&client, &peer));
    }
    if let Some(o) = &c.spec.options {
        a.extend(option_args(o));
    }
    // A quorum-loss recovery under way: only the survivor acts on the
    // force, once; a member with an empty volume may only join, never
    // bootstrap anew (later flags win).
    let lost = c.status.as_ref().and_then(|s| s.quorum_loss.as_ref());
    if let Some(once) = crate::membership::quorum::force_once(lost) {
        a.push(format!("--force-new-cluster-once={once}"));
        a.push("--initial-cluster-state=existing".into());
    }
    a
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(METRICS_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Probe::default()
    }
}

/// StatefulSet `C` with `replicas` pods; `bootstrap_replicas` is the size
/// the cluster was created with (fixed, so scaling never rolls the pods).
pub fn stateful_set(c: &EtcdCluster, replicas: i32, bootstrap_replicas: i32) -> StatefulSet {
    let n = ClusterNames::of(c);
    let overrides = c.spec.pod.clone().unwrap_or_default();
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(n.labels());
    let storage = &c.spec.storage;
    let mut volumes = Vec::new();
    let mut mounts = vec![VolumeMount {
        name: "data".into(),
        mount_path: DATA_DIR.into(),
        ..VolumeMount::default()
    }];
    if let Some((client, peer)) = tls_mounts(c) {
        let mut seen = Vec::new();
        for (name, m) in [("client-tls", client), ("peer-tls", peer)] {
            if seen.contains(&m) {
                continue;
            }
            volumes.push(Volume {
                name: name.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(m.secret.clone()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: name.into(),
                mount_path: m.dir.clone(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
            seen.push(m);
        }
    }
    let claims = if storage.empty_dir {
        volumes.push(Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        None
    } else {
        let size = storage
            .size
            .clone()
            .unwrap_or_else(|| DEFAULT_STORAGE.into());
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                labels: Some(n.labels()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), Quantity(size))])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        };
        Some(vec![claim])
    };
    let container = Container {
        name: "ferrocd".into(),
        image: Some(c.spec.image.clone().unwrap_or_else(default_image)),
        command: Some(vec!["ferrocd".into()]),
        args: Some(member_args(c, bootstrap_replicas)),
        env: Some(vec![EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        ports: Some(vec![
            ContainerPort {
                name: Some("peer".into()),
                container_port: PEER_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("client".into()),
                container_port: CLIENT_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("metrics".into()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        // A fresh member may wait for its peers' records before it serves.
        startup_probe: Some(http_probe("/livez", 5, 120)),
        liveness_probe: Some(http_probe("/livez", 10, 3)),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        resources: c.spec.resources.clone(),
        // A member that cannot start says why in its last log lines; the
        // operator reads them here (a member that lost its data).
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let mut init_containers = Vec::new();
    if let Some((step, extra)) = restore_step(c, bootstrap_replicas) {
        init_containers.push(step);
        volumes.extend(extra);
    }
    let non_empty = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone());
    StatefulSet {
        metadata: meta(c, &n, n.headless_service()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(n.headless_service()),
            pod_management_policy: Some("Parallel".into()),
            // The operator replaces pods itself, one member at a time with
            // health gates and the leader last (membership/rollout.rs).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(n.selector_labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: non_empty(&overrides.annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    init_containers: (!init_containers.is_empty()).then_some(init_containers),
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    // The member hands leadership over on SIGTERM first.
                    termination_grace_period_seconds: Some(30),
                    affinity: overrides.affinity.clone(),
                    tolerations: (!overrides.tolerations.is_empty())
                        .then(|| overrides.tolerations.clone()),
                    node_selector: non_empty(&overrides.node_selector),
                    topology_spread_constraints: (!overrides
                        .topology_spread_constraints
                        .is_empty())
                    .then(|| overrides.topology_spread_constraints.clone()),
                    priority_class_name: overrides.priority_class_name.clone(),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: claims,
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::{EtcdClusterSpec, Storage};

    pub fn cluster(replicas: i32) -> EtcdCluster {
        let mut c = EtcdCluster::new(
            "demo",
            EtcdClusterSpec {
                replicas,
                image: Some("ferrocd:test".into()),
                storage: Storage::default(),
                resources: None,
                pod: None,
                cluster_domain: "cluster.local".into(),
                options: Some(MemberOptions {
                    quota_backend_bytes: Some(8 << 30),
                    auto_compaction_mode: Some(AutoCompactionMode::Periodic),
                    auto_compaction_retention: Some("1h".into()),
                    ..MemberOptions::default()
                }),
                tls: None,
                pvc_retention: Default::default(),
                backup: None,
                bootstrap: None,
                auth: None,
                paused: false,
                recovery: None,
                maintenance: None,
            },
        );
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("0123456789abcdef".into());
        c
    }

    #[test]
    fn headless_service_publishes_srv_ports_for_unready_pods() {
        let s = headless_service(&cluster(3));
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let ports: Vec<_> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("etcd-server".to_string(), 2380),
                ("etcd-client".to_string(), 2379)
            ]
        );
        assert_eq!(s.metadata.owner_references.unwrap()[0].kind, "EtcdCluster");
    }

    #[test]
    fn statefulset_runs_the_design_command_line() {
        let s = stateful_set(&cluster(3), 3, 3);
        let spec = s.spec.unwrap();
        assert_eq!(spec.service_name.as_deref(), Some("demo"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let pod = spec.template.spec.unwrap();
        let args = pod.containers[0].args.clone().unwrap();
        for want in [
            "--name=$(POD_NAME)",
            "--discovery-srv=demo.ns.svc.cluster.local",
            "--initial-advertise-peer-urls=http://$(POD_NAME).demo.ns.svc.cluster.local:2380",
            "--advertise-client-urls=http://$(POD_NAME).demo.ns.svc.cluster.local:2379",
            "--initial-cluster-size=3",
            "--initial-cluster-token=demo-01234567",
            "--quota-backend-bytes=8589934592",
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=1h",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
    }

    #[test]
    fn scaling_changes_only_the_replicas() {
        let a = stateful_set(&cluster(3), 3, 3);
        let b = stateful_set(&cluster(5), 4, 3);
        assert_eq!(
            a.spec.as_ref().unwrap().template,
            b.spec.as_ref().unwrap().template
        );
        assert_eq!(b.spec.unwrap().replicas, Some(4));
    }

    #[test]
    fn probes_use_the_plain_http_metrics_port() {
        let s = stateful_set(&cluster(3), 3, 3);
        let pod = s.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let probe_port =
            |p: &Option<Probe>| p.as_ref().unwrap().http_get.as_ref().unwrap().port.clone();
        for p in [&c.startup_probe, &c.liveness_probe, &c.readiness_probe] {
            assert_eq!(probe_port(p), IntOrString::Int(2381));
        }
        assert!(c
            .args
            .as_ref()
            .unwrap()
            .contains(&"--listen-metrics-urls=http://0.0.0.0:2381".to_string()));
    }

    #[test]
    fn operator_managed_tls_mounts_one_secret_for_both_sides() {
        let mut c = cluster(3);
        c.spec.tls = Some(crate::crd::TlsSpec {
            mode: TlsMode::OperatorManaged,
            ..Default::default()
        });
        let spec = stateful_set(&c, 3, 3).spec.unwrap();
        let pod = spec.template.spec.unwrap();
        let args = pod.containers[0].args.clone().unwrap();
        for want in [
            "--initial-advertise-peer-urls=https://$(POD_NAME).demo.ns.svc.cluster.local:2380",
            "--listen-client-urls=https://0.0.0.0:2379",
            "--cert-file=/etc/ferrocd/tls/tls.crt",
            "--trusted-ca-file=/etc/ferrocd/tls/ca.crt",
            "--client-cert-auth",
            "--peer-key-file=/etc/ferrocd/tls/tls.key",
            "--peer-client-cert-auth",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        let volumes = pod.volumes.unwrap();
        let secrets: Vec<_> = volumes
            .iter()
            .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
            .collect();
        assert_eq!(secrets, vec!["demo-tls".to_string()]);
        let ports: Vec<_> = headless_service(&c)
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| p.name.unwrap())
            .collect();
        assert_eq!(ports, vec!["etcd-server-ssl", "etcd-client-ssl"]);
    }

    #[test]
    fn user_secrets_mount_separately() {
        let mut c = cluster(3);
        c.spec.tls = Some(crate::crd::TlsSpec {
            mode: TlsMode::UserSecrets,
            secrets: Some(crate::crd::TlsSecrets {
                client: "cli".into(),
                peer: "peers".into(),
            }),
            ..Default::default()
        });
        let pod = stateful_set(&c, 3, 3).spec.unwrap().template.spec.unwrap();
        let args = pod.containers[0].args.clone().unwrap();
        assert!(args.contains(&"--cert-file=/etc/ferrocd/client-tls/tls.crt".to_string()));
        assert!(args.contains(&"--peer-cert-file=/etc/ferrocd/peer-tls/tls.crt".to_string()));
        let secrets: Vec<_> = pod
            .volumes
            .unwrap()
            .iter()
            .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
            .collect();
        assert_eq!(secrets, vec!["cli".to_string(), "peers".to_string()]);
    }

    #[test]
    fn empty_dir_storage_has_no_claims() {
        let mut c = cluster(1);
        c.spec.storage.empty_dir = true;
        let spec = stateful_set(&c, 1, 1).spec.unwrap();
        assert!(spec.volume_claim_templates.is_none());
        assert!(spec.template.spec.unwrap().volumes.unwrap()[0]
            .empty_dir
            .is_some());
    }

    #[test]
    fn pdb_keeps_a_quorum() {
        for (replicas, quorum) in [(1, 1), (3, 2), (4, 3), (5, 3)] {
            let p = pod_disruption_budget(&cluster(replicas));
            assert_eq!(
                p.spec.unwrap().min_available,
                Some(IntOrString::Int(quorum))
            );
        }
    }
}

//! Scenarios on the local Kubernetes-shaped cluster (ferrocd_e2e::harness):
//! `kubectl apply` the operator's manifests and an EtcdCluster, and the
//! operator (itself a pod, with its service account and RBAC) runs ferrocd
//! members as pods that find each other through the cluster DNS's SRV
//! records. Each scenario prints its timeline on stderr.

use ferrocd_e2e::harness::{with_cluster, LocalCluster};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn etcdctl() -> PathBuf {
    let etcd = ferrocd_e2e::cluster::find_etcd(None).expect("etcd 3.5");
    etcd.with_file_name("etcdctl")
}

/// Installs deploy/operator.yaml and waits until the operator pod is ready.
fn install_operator(c: &LocalCluster) {
    let manifest = repo().join("deploy/operator.yaml");
    // Kubernetes 1.20 knows no CEL rules (x-kubernetes-validations): its
    // kubectl refuses them unless --validate=false and its server-side apply
    // refuses them outright; a client-side apply drops them (README).
    c.kubectl(&[
        "apply",
        "--validate=false",
        "-f",
        &manifest.display().to_string(),
    ]);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/etcdclusters.ferrocd.dev",
        "--timeout=60s",
    ]);
    c.kubectl(&[
        "-n",
        "ferrocd-system",
        "rollout",
        "status",
        "deployment/ferrocd-operator",
        "--timeout=120s",
    ]);
    c.say("operator running (deploy/operator.yaml)");
}

fn get_json(c: &LocalCluster, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&c.kubectl(&full)).expect("kubectl json")
}

/// Polls the EtcdCluster until `done` holds for its status; the status.
async fn wait_status(
    c: &LocalCluster,
    ns: &str,
    name: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let obj = get_json(c, &["etcd", name, "-n", ns]);
        if done(&obj["status"]) {
            return obj["status"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {secs} s; status: {}",
            serde_json::to_string_pretty(&obj["status"]).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn running_with(n: usize) -> impl Fn(&Value) -> bool {
    move |s: &Value| {
        s["phase"] == "Running"
            && s["readyReplicas"] == n
            && s["members"].as_array().is_some_and(|m| {
                m.len() == n
                    && m.iter()
                        .all(|m| m["healthy"] == true && m["learner"] != true)
            })
    }
}

fn cluster_manifest(ns: &str, name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: ferrocd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  storage:\n    size: 1Gi\n"
    )
}

fn apply(c: &LocalCluster, yaml: &str) {
    let path = c
        .root()
        .join(format!("manifest-{:08x}.yaml", rand::random::<u32>()));
    std::fs::write(&path, yaml).expect("manifest");
    c.kubectl(&["apply", "-f", &path.display().to_string()]);
}

/// etcdctl 3.5 from a client namespace on the cluster network, finding the
/// members through `_etcd-client._tcp.<srv>`.
fn etcdctl_srv(c: &LocalCluster, kube_ns: &str, srv: &str, args: &[&str]) -> String {
    let client = c.client_net(kube_ns);
    let out = client
        .command(etcdctl())
        .arg(format!("--discovery-srv={srv}"))
        .args(args)
        .output()
        .expect("etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn create_3_members_that_form_one_cluster_reachable_through_srv() {
    with_cluster(|c| async move {
        install_operator(&c);
        c.kubectl(&["create", "namespace", "apps"]);
        apply(&c, &cluster_manifest("apps", "demo", 3));
        c.say("EtcdCluster apps/demo applied (3 members)");
        let status = wait_status(
            &c,
            "apps",
            "demo",
            180,
            "3 members Running",
            running_with(3),
        )
        .await;
        c.say("all 3 members Ready and healthy");
        assert!(
            status["clusterId"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{status}"
        );
        assert!(
            status["leader"]
                .as_str()
                .is_some_and(|l| l.starts_with("demo-")),
            "{status}"
        );

        let srv = "demo.apps.svc.cluster.local";
        let list: Value = serde_json::from_str(&etcdctl_srv(
            &c,
            "apps",
            srv,
            &["member", "list", "-w", "json"],
        ))
        .expect("json");
        let members = list["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{list}");
        let mut names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["demo-0", "demo-1", "demo-2"]);
        // One cluster: every member reports the same cluster ID.
        let health = etcdctl_srv(
            &c,
            "apps",
            srv,
            &["endpoint", "status", "--cluster", "-w", "json"],
        );
        let statuses: Value = serde_json::from_str(&health).expect("json");
        let ids: std::collections::BTreeSet<u64> = statuses
            .as_array()
            .expect("statuses")
            .iter()
            .filter_map(|s| s["Status"]["header"]["cluster_id"].as_u64())
            .collect();
        assert_eq!(ids.len(), 1, "{health}");
        etcdctl_srv(&c, "apps", srv, &["put", "greeting", "hello"]);
        let got = etcdctl_srv(&c, "apps", srv, &["get", "greeting", "--print-value-only"]);
        assert_eq!(got.trim(), "hello");
        c.say("etcdctl --discovery-srv: member list, endpoint status, put/get");
    });
}

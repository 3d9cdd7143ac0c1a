//! The operator against a real Kubernetes API server and controller-manager
//! (1.20.2, see ferrocd_k8s_harness::control_plane): the CRD installs and is
//! established; the operator, authenticated as the chart's service account
//! with the chart's RBAC, renders an EtcdCluster into Services, a
//! StatefulSet and status; the real StatefulSet controller creates the pods;
//! the scale subresource works; deletion runs the finalizer and the garbage
//! collector removes the children; the leader Lease admits one holder.
//!
//! Kubernetes 1.20 serves no policy/v1 PodDisruptionBudget and ignores CEL
//! rules (x-kubernetes-validations): the PDB shows up as a condition here,
//! and the CEL rules are checked only by the offline schema validation
//! (tests/manifests.rs) until a newer API server is available.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrocd_k8s_harness::control_plane::ControlPlane;
use ferrocd_operator::controller::{self, connect_etcd, Context};
use ferrocd_operator::crd::{EtcdCluster, Phase};
use ferrocd_operator::leader::LeaderElection;
use ferrocd_operator::metrics::Metrics;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const OPERATOR_NS: &str = "ferrocd-system";

/// Polls `f` until it returns Some, for at most `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create<K>(api: Api<K>, doc: serde_yaml::Value)
where
    K: Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_yaml::from_value(doc).expect("manifest");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create");
}

/// Installs the CRD and everything of deploy/operator.yaml but the
/// Deployment (there is no kubelet to run it; the test runs the operator).
async fn install(admin: &Client) {
    let text =
        std::fs::read_to_string(root().join("deploy/operator.yaml")).expect("deploy/operator.yaml");
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let doc = serde_yaml::Value::deserialize(doc).expect("yaml");
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let ns = doc["metadata"]["namespace"]
            .as_str()
            .unwrap_or(OPERATOR_NS)
            .to_string();
        match kind.as_str() {
            "Namespace" => create(Api::<Namespace>::all(admin.clone()), doc).await,
            "CustomResourceDefinition" => {
                create(Api::<CustomResourceDefinition>::all(admin.clone()), doc).await
            }
            "ServiceAccount" => {
                create(Api::<ServiceAccount>::namespaced(admin.clone(), &ns), doc).await
            }
            "ClusterRole" => create(Api::<ClusterRole>::all(admin.clone()), doc).await,
            "ClusterRoleBinding" => {
                create(Api::<ClusterRoleBinding>::all(admin.clone()), doc).await
            }
            "Role" => create(Api::<Role>::namespaced(admin.clone(), &ns), doc).await,
            "RoleBinding" => create(Api::<RoleBinding>::namespaced(admin.clone(), &ns), doc).await,
            "Deployment" => {}
            other => panic!("deploy/operator.yaml has a {other} the test does not install"),
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    eventually(30, "the CRD to be established", || async {
        let crd = crds.get("etcdclusters.ferrocd.dev").await.ok()?;
        let established = crd
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established.then_some(())
    })
    .await;
}

/// The operator's service-account token, minted by the token controller.
async fn operator_token(admin: &Client) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), OPERATOR_NS);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), OPERATOR_NS);
    eventually(30, "the operator's token", || async {
        let sa = sas.get("ferrocd-operator").await.ok()?;
        let name = sa.secrets?.first()?.name.clone()?;
        let secret = secrets.get(&name).await.ok()?;
        let token = secret.data?.get("token")?.0.clone();
        String::from_utf8(token).ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_against_a_real_api_server() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ferrocd_operator=info")),
        )
        .with_test_writer()
        .try_init();
    let etcd = ferrocd_testkit::bins::etcd();
    let cp = ControlPlane::start(&etcd).await;
    let admin = cp.admin_client();
    install(&admin).await;
    let op = cp.client_with_token(&operator_token(&admin).await);

    // The service account may do what the operator needs and no more.
    let foreign: Api<Secret> = Api::namespaced(op.clone(), "default");
    match foreign.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("the operator could list Secrets: {other:?}"),
    }

    let metrics = Arc::new(Metrics::default());
    let ctx = Arc::new(Context::new(op.clone(), metrics.clone(), connect_etcd()));
    let operator = tokio::spawn(controller::run(ctx, None));

    let ns = "apps";
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace");
    let clusters: Api<EtcdCluster> = Api::namespaced(admin.clone(), ns);
    let manifest: EtcdCluster = serde_yaml::from_str(
        "apiVersion: ferrocd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: demo\nspec:\n  replicas: 3\n  pvcRetention: Delete\n",
    )
    .expect("manifest");
    clusters
        .create(&PostParams::default(), &manifest)
        .await
        .expect("create EtcdCluster");

    // Children, rendered by the operator.
    let services: Api<Service> = Api::namespaced(admin.clone(), ns);
    let headless = eventually(30, "the headless Service", || async {
        services.get("demo").await.ok()
    })
    .await;
    let spec = headless.spec.expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    eventually(10, "the client Service", || async {
        services.get("demo-client").await.ok()
    })
    .await;
    let sets: Api<StatefulSet> = Api::namespaced(admin.clone(), ns);
    let sts = eventually(10, "the StatefulSet", || async {
        sets.get("demo").await.ok()
    })
    .await;
    assert_eq!(sts.spec.as_ref().and_then(|s| s.replicas), Some(3));

    // The real StatefulSet controller makes the pods, all at once (Parallel).
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let made = eventually(30, "three pods", || async {
        let list = pods
            .list(&ListParams::default().labels("ferrocd.dev/cluster=demo"))
            .await
            .ok()?;
        (list.items.len() == 3).then_some(list.items)
    })
    .await;
    let pod = made
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("demo-0"))
        .expect("demo-0");
    let pod_spec = pod.spec.as_ref().expect("pod spec");
    assert_eq!(pod_spec.hostname.as_deref(), Some("demo-0"));
    assert_eq!(pod_spec.subdomain.as_deref(), Some("demo"));
    let args = pod_spec.containers[0].args.clone().unwrap_or_default();
    assert!(
        args.contains(&"--discovery-srv=demo.apps.svc.cluster.local".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--initial-cluster-size=3".to_string()),
        "{args:?}"
    );

    // Status: created, no member reachable (no kubelet runs the pods), and
    // 1.20's missing policy/v1 reported as a condition.
    let status = eventually(30, "a status with three pods", || async {
        let c = clusters.get("demo").await.ok()?;
        c.status.filter(|s| s.replicas == 3)
    })
    .await;
    assert_eq!(status.phase, Phase::Creating);
    assert_eq!(
        status.endpoints.as_ref().map(|e| e.discovery_srv.as_str()),
        Some("demo.apps.svc.cluster.local")
    );
    let pdb = status
        .conditions
        .iter()
        .find(|c| c.type_ == "DisruptionBudget")
        .expect("DisruptionBudget condition");
    assert_eq!(pdb.reason, "PolicyV1Unavailable");
    let c = clusters.get("demo").await.expect("get");
    assert_eq!(
        c.metadata.finalizers,
        Some(vec![controller::FINALIZER.to_string()])
    );

    // The printer columns, through the real kubectl.
    let (ok, table, err) = cp.kubectl(&["get", "etcd", "demo", "-n", ns]);
    assert!(ok, "kubectl get etcd: {err}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "REPLICAS", "READY", "LEADER", "PHASE", "AGE"],
        "{table}"
    );
    assert!(table.contains("Creating"), "{table}");

    // kubectl scale etcdcluster: the scale subresource.
    let (ok, out, err) = cp.kubectl(&["scale", "etcdcluster", "demo", "-n", ns, "--replicas=5"]);
    assert!(ok, "kubectl scale: {err}");
    assert!(out.contains("scaled"), "{out}");
    let scale = clusters.get_scale("demo").await.expect("get scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(5));
    let scale_status = scale.status.expect("scale status");
    assert_eq!(scale_status.replicas, 3);
    assert_eq!(
        scale_status.selector.as_deref(),
        Some("app.kubernetes.io/name=ferrocd,ferrocd.dev/cluster=demo")
    );
    // No member answers, so no member is added and the StatefulSet stays.
    let waiting = eventually(30, "the scale request to be observed", || async {
        let c = clusters.get("demo").await.ok()?;
        let s = c.status?;
        (s.observed_generation == c.metadata.generation).then_some(s)
    })
    .await;
    let progressing = waiting
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .expect("Progressing");
    assert!(
        progressing.message.starts_with("waiting"),
        "{progressing:?}"
    );
    assert_eq!(
        sets.get("demo")
            .await
            .expect("sts")
            .spec
            .and_then(|s| s.replicas),
        Some(3)
    );

    // Events from the operator.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), ns);
    let created = events.list(&ListParams::default()).await.expect("events");
    assert!(
        created
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Created")),
        "{:?}",
        created.items
    );

    // A TLS cluster: the operator (with only get/create/patch on Secrets)
    // makes its CA and member certificate and mounts them.
    let secure: EtcdCluster = serde_yaml::from_str(
        "apiVersion: ferrocd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: secure\nspec:\n  replicas: 1\n  tls:\n    mode: OperatorManaged\n",
    )
    .expect("manifest");
    clusters
        .create(&PostParams::default(), &secure)
        .await
        .expect("create TLS EtcdCluster");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
    let member_secret = eventually(30, "the member certificate Secret", || async {
        secrets.get("secure-tls").await.ok()
    })
    .await;
    assert_eq!(member_secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<String> = member_secret.data.unwrap_or_default().into_keys().collect();
    assert_eq!(keys, vec!["ca.crt", "tls.crt", "tls.key"]);
    let secure_sts = eventually(30, "the TLS StatefulSet", || async {
        sets.get("secure").await.ok()
    })
    .await;
    let volumes = secure_sts
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.volumes)
        .unwrap_or_default();
    assert!(volumes
        .iter()
        .any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("secure-tls")));
    let headless = services.get("secure").await.expect("headless Service");
    let port_names: Vec<String> = headless
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.name)
        .collect();
    assert_eq!(port_names, vec!["etcd-server-ssl", "etcd-client-ssl"]);

    // Deletion: the finalizer runs, then the garbage collector removes children.
    clusters
        .delete("demo", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(30, "the EtcdCluster to go", || async {
        clusters.get_opt("demo").await.ok()?.is_none().then_some(())
    })
    .await;
    eventually(
        60,
        "the garbage collector to remove the StatefulSet",
        || async { sets.get_opt("demo").await.ok()?.is_none().then_some(()) },
    )
    .await;
    // The operator's own metrics counted its reconciles.
    let text = metrics.render();
    let reconciles: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ferrocd_operator_reconciles_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        text.contains("ferrocd_operator_reconciles_total") && reconciles > 0,
        "{text}"
    );
    operator.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_lease_holder_at_a_time() {
    let etcd = ferrocd_testkit::bins::etcd();
    let cp = ControlPlane::start(&etcd).await;
    let admin = cp.admin_client();
    install(&admin).await;
    let op = cp.client_with_token(&operator_token(&admin).await);
    let lease = Duration::from_secs(3);
    let first = LeaderElection::new(op.clone(), OPERATOR_NS, "ferrocd-operator", "first", lease);
    let second = LeaderElection::new(op.clone(), OPERATOR_NS, "ferrocd-operator", "second", lease);
    first.acquire().await;
    // While the first renews, the second waits.
    let keeper = tokio::spawn(async move { first.keep().await });
    let started = Instant::now();
    let second_won = tokio::time::timeout(Duration::from_secs(6), second.acquire()).await;
    assert!(second_won.is_err(), "second replica took a held lease");
    // Once the first stops renewing, the second takes over within a lease or two.
    keeper.abort();
    tokio::time::timeout(Duration::from_secs(10), second.acquire())
        .await
        .expect("second replica never took the lease");
    let held = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(op, OPERATOR_NS)
        .get("ferrocd-operator")
        .await
        .expect("lease");
    let spec = held.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("second"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(started.elapsed() >= Duration::from_secs(6));
}

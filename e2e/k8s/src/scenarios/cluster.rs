//! The EtcdCluster `demo` and its members as the scenarios see them:
//! creating it, waiting for its status, its pods, and reading and writing
//! keys through whichever member answers.

use super::{Target, CLIENT_PORT, NAME};
use ferrocd_operator::crd::{EtcdCluster, EtcdClusterStatus, Phase};
use ferrocd_proto::etcdserverpb as pb;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, ClientTlsConfig};

pub fn clusters(t: &impl Target, ns: &str) -> Api<EtcdCluster> {
    Api::namespaced(t.client(), ns)
}

/// Creates EtcdCluster `demo` with `replicas` members (operator-managed TLS
/// when `tls`).
pub async fn create_cluster(t: &impl Target, ns: &str, replicas: u32, tls: bool) {
    // Without `tls` a new cluster gets the default, OperatorManaged TLS.
    let extra = if tls {
        serde_json::json!({"tls": null})
    } else {
        serde_json::json!({})
    };
    create_cluster_with(t, ns, replicas, extra).await;
}

/// Creates EtcdCluster `demo` with `replicas` members and the spec fields
/// in `extra`; plain HTTP (`tls.mode: Disabled`) unless `extra` has a
/// `tls` key (`null` for the default).
pub async fn create_cluster_with(
    t: &impl Target,
    ns: &str,
    replicas: u32,
    extra: serde_json::Value,
) {
    let mut spec = serde_json::json!({"replicas": replicas, "storage": {"size": "1Gi"}});
    if let Some(image) = t.member_image() {
        spec["image"] = image.into();
    }
    let tls = extra.get("tls").is_some();
    if !tls {
        spec["tls"] = serde_json::json!({"mode": "Disabled"});
    }
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let object: EtcdCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrocd.dev/v1alpha1",
        "kind": "EtcdCluster",
        "metadata": {"name": NAME, "namespace": ns},
        "spec": spec,
    }))
    .expect("EtcdCluster");
    clusters(t, ns)
        .create(&PostParams::default(), &object)
        .await
        .expect("create the EtcdCluster");
    t.say(&format!(
        "EtcdCluster {ns}/{NAME} created ({replicas} members{})",
        if tls { ", TLS" } else { "" }
    ));
}

/// Polls the EtcdCluster's status until `done` holds; that status.
pub async fn wait_status(
    t: &impl Target,
    ns: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&EtcdClusterStatus) -> bool,
) -> EtcdClusterStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    loop {
        let status = clusters(t, ns)
            .get_opt(NAME)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.status)
            .unwrap_or_default();
        if done(&status) {
            return status;
        }
        // Each change of the short form is a line of the timeline.
        let now = summary(&status);
        if now != last {
            t.say(&now);
            last = now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {secs} s; status: {}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(crate) fn summary(s: &EtcdClusterStatus) -> String {
    let learners = s.members.iter().filter(|m| m.learner).count();
    let healthy = s.members.iter().filter(|m| m.healthy).count();
    format!(
        "  phase {:?}, pods {} ({} ready), members {} ({healthy} healthy, {learners} learners)",
        s.phase,
        s.replicas,
        s.ready_replicas,
        s.members.len()
    )
}

/// `n` pods, all Ready, `n` healthy voting members.
pub fn running_with(n: usize) -> impl Fn(&EtcdClusterStatus) -> bool {
    move |s| {
        s.phase == Phase::Running
            && s.replicas == n as i32
            && s.ready_replicas == n as i32
            && s.members.len() == n
            && s.members.iter().all(|m| m.healthy && !m.learner)
    }
}

/// The member pods not being deleted, by name.
pub async fn member_pods(t: &impl Target, ns: &str) -> Vec<Pod> {
    let lp = ListParams::default().labels(&format!(
        "{}={NAME}",
        ferrocd_operator::names::CLUSTER_LABEL
    ));
    let mut pods: Vec<Pod> = Api::<Pod>::namespaced(t.client(), ns)
        .list(&lp)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

pub(crate) fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// The pod's Ready condition holds (its readiness probe passed).
pub(crate) fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A channel to `pod`'s client port (TLS when `tls` is given).
pub(crate) async fn channel(
    t: &impl Target,
    ns: &str,
    pod: &Pod,
    tls: Option<ClientTlsConfig>,
) -> Option<Channel> {
    let addr = t.member_addr(ns, pod, CLIENT_PORT).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ep = ferrocd_testkit::grpc::endpoint(&format!("{scheme}://{addr}"))
        .ok()?
        .timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        ep = ep.tls_config(tls).ok()?;
    }
    ep.connect().await.ok()
}

pub(crate) async fn kv(
    t: &impl Target,
    ns: &str,
    pod: &Pod,
) -> Option<pb::kv_client::KvClient<Channel>> {
    Some(pb::kv_client::KvClient::new(
        channel(t, ns, pod, None).await?,
    ))
}

pub(crate) async fn kv_by_name(
    t: &impl Target,
    ns: &str,
    name: &str,
) -> Option<pb::kv_client::KvClient<Channel>> {
    let pods = member_pods(t, ns).await;
    let pod = pods.iter().find(|p| pod_name(p) == name)?;
    kv(t, ns, pod).await
}

/// Reads `key` linearizably from any member that answers.
pub async fn read_key(t: &impl Target, ns: &str, key: &str) -> Option<Vec<u8>> {
    for pod in member_pods(t, ns).await {
        let Some(mut kv) = kv(t, ns, &pod).await else {
            continue;
        };
        let req = pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        if let Ok(r) = kv.range(req).await {
            return Some(
                r.into_inner()
                    .kvs
                    .first()
                    .map(|kv| kv.value.clone())
                    .unwrap_or_default(),
            );
        }
    }
    None
}

/// One put through the first member that takes it: its revision.
pub async fn put(t: &impl Target, ns: &str, key: &str, value: &str) -> Option<i64> {
    for pod in member_pods(t, ns).await {
        let Some(mut kv) = kv(t, ns, &pod).await else {
            continue;
        };
        let req = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        if let Ok(r) = kv.put(req).await {
            return r.into_inner().header.map(|h| h.revision);
        }
    }
    None
}

/// Writes through any member that takes it; whether one did.
pub async fn write_key(t: &impl Target, ns: &str, key: &str, value: &str) -> bool {
    put(t, ns, key, value).await.is_some()
}

/// Waits until `pod`'s own store (a serializable read, answered by the
/// member itself) holds `want` keys in [start, end).
pub async fn wait_local_count(
    t: &impl Target,
    ns: &str,
    pod: &str,
    start: &[u8],
    end: &[u8],
    want: i64,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = pb::RangeRequest {
            key: start.to_vec(),
            range_end: end.to_vec(),
            serializable: true,
            count_only: true,
            ..Default::default()
        };
        let count = match kv_by_name(t, ns, pod).await {
            Some(mut kv) => kv
                .range(req)
                .await
                .map(|r| r.into_inner().count)
                .unwrap_or(-1),
            None => -1,
        };
        if count == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pod} holds {count} of {want} keys"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates `demo` with `n` members and waits until it runs.
pub async fn running_cluster(t: &impl Target, ns: &str, n: u32) {
    create_cluster(t, ns, n, false).await;
    wait_status(t, ns, 240, "members Running", running_with(n as usize)).await;
    t.say(&format!("{ns}/{NAME} running with {n} members"));
}

/// A merge patch of the EtcdCluster's spec, as `kubectl patch` makes it.
pub(crate) async fn patch_spec(t: &impl Target, ns: &str, spec: serde_json::Value) {
    clusters(t, ns)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": spec })),
        )
        .await
        .unwrap_or_else(|e| panic!("patch the spec with {spec}: {e}"));
}

pub(crate) async fn set_replicas(t: &impl Target, ns: &str, replicas: u32) {
    patch_spec(t, ns, serde_json::json!({ "replicas": replicas })).await;
}

/// The notes of the events with `reason` in `ns` (the operator's events
/// about its clusters).
pub(crate) async fn events_of(t: &impl Target, ns: &str, reason: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    Api::<Event>::namespaced(t.client(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

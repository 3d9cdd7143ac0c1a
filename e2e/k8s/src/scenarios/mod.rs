//! The operator's end-to-end scenarios, written once against a [`Target`]:
//! the local Kubernetes-shaped cluster ([`crate::harness`], every test run)
//! or a real cluster named by `KUBECONFIG` ([`real`]). A scenario talks to
//! the API through the kube client and to the members through addresses
//! the target gives it; what only a target can do (kill a process, lose a
//! disk, cut a pod off the network) is a target method.
//!
//! Every scenario runs in a namespace of its own, creates an EtcdCluster
//! named `demo` there, and prints its timeline through [`Target::say`].

pub mod backup;
mod cluster;
pub mod local;
pub mod real;

use ferrocd_proto::etcdserverpb as pb;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::ClientTlsConfig;

/// The EtcdCluster every scenario creates.
pub const NAME: &str = "demo";
const CLIENT_PORT: u16 = 2379;

pub use cluster::*;

/// Where the scenarios run.
pub trait Target: Send + Sync + 'static {
    fn client(&self) -> kube::Client;
    /// A line of the timeline on stderr.
    fn say(&self, what: &str);
    /// The member image EtcdClusters name (None: the operator's default).
    fn member_image(&self) -> Option<String>;
    /// `host:port` at which the test reaches port `port` of `pod`.
    fn member_addr(
        &self,
        ns: &str,
        pod: &Pod,
        port: u16,
    ) -> impl Future<Output = Option<String>> + Send;
    /// Kills the member's process with SIGKILL (or, where the test cannot
    /// reach processes, deletes the pod with no grace period).
    fn kill_member(&self, ns: &str, pod: &str) -> impl Future<Output = ()> + Send;
    /// The member's disk fails: its volume comes back empty.
    fn lose_volume(&self, ns: &str, pod: &str) -> impl Future<Output = ()> + Send;
    /// Cuts the pod off the network (`true`) or heals it (`false`).
    fn isolate(&self, ns: &str, pod: &str, cut: bool) -> impl Future<Output = ()> + Send;
    /// Makes each new pod start up to `max` late, in random order; false
    /// where the target cannot.
    fn delay_pod_starts(&self, max: Duration) -> bool;
    /// Runs etcdctl as a pod in `ns` would (cluster DNS); None where the
    /// test cannot run a process inside the cluster network.
    fn etcdctl_in_cluster(&self, ns: &str, args: &[String]) -> Option<Result<String, String>>;
}

/// Runs `scenario` in a fresh namespace of `target`, then deletes the
/// namespace, also when the scenario panics (its panic is re-raised).
pub async fn run<T, F, Fut>(target: Arc<T>, scenario: F)
where
    T: Target,
    F: FnOnce(Arc<T>, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let ns = format!("ferrocd-e2e-{:08x}", rand::random::<u32>());
    let namespaces = Api::<Namespace>::all(target.client());
    let object: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": ns, "labels": {"app.kubernetes.io/part-of": "ferrocd-e2e"}}
    }))
    .expect("namespace");
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create namespace {ns}: {e}"));
    target.say(&format!("namespace {ns}"));
    let outcome = tokio::spawn(scenario(target.clone(), ns.clone())).await;
    if let Err(e) = namespaces.delete(&ns, &DeleteParams::default()).await {
        eprintln!("could not delete namespace {ns}: {e}");
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("scenario task: {e}"),
        }
    }
}

// ---- the scenarios ----

/// Create 3: all Ready, one cluster ID, a leader, the members' names; a
/// client finding them through `_etcd-client._tcp` (where the target lets a
/// process into the cluster network).
pub async fn create_3_members_that_form_one_cluster<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    create_cluster(t, &ns, 3, false).await;
    let status = wait_status(t, &ns, 240, "3 members Running", running_with(3)).await;
    t.say("all 3 members Ready and healthy");
    assert!(
        status
            .cluster_id
            .as_deref()
            .is_some_and(|id| !id.is_empty()),
        "{status:?}"
    );
    assert!(
        status
            .leader
            .as_deref()
            .is_some_and(|l| l.starts_with("demo-")),
        "{status:?}"
    );
    let pods = member_pods(t, &ns).await;
    let mut cluster_ids = BTreeSet::new();
    let mut names = Vec::new();
    for pod in &pods {
        let ch = channel(t, &ns, pod, None)
            .await
            .unwrap_or_else(|| panic!("{} unreachable", pod_name(pod)));
        let list = pb::cluster_client::ClusterClient::new(ch)
            .member_list(pb::MemberListRequest { linearizable: true })
            .await
            .expect("member list")
            .into_inner();
        cluster_ids.insert(list.header.map(|h| h.cluster_id));
        names = list.members.into_iter().map(|m| m.name).collect();
    }
    names.sort_unstable();
    assert_eq!(names, ["demo-0", "demo-1", "demo-2"]);
    assert_eq!(cluster_ids.len(), 1, "members in different clusters");
    assert!(write_key(t, &ns, "greeting", "hello").await);
    assert_eq!(
        read_key(t, &ns, "greeting").await.as_deref(),
        Some(&b"hello"[..])
    );
    t.say("one cluster ID on every member; put/get");
    let srv = format!("--discovery-srv={NAME}.{ns}.svc.cluster.local");
    let etcdctl = |args: &[&str]| {
        let mut all = vec![srv.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        t.etcdctl_in_cluster(&ns, &all)
    };
    match etcdctl(&["get", "greeting", "--print-value-only"]) {
        None => t.say("(this target runs no etcdctl inside the cluster: SRV check skipped)"),
        Some(got) => {
            assert_eq!(got.expect("etcdctl --discovery-srv get").trim(), "hello");
            let list = etcdctl(&["member", "list", "-w", "json"])
                .expect("in cluster")
                .expect("etcdctl --discovery-srv member list");
            let list: serde_json::Value = serde_json::from_str(&list).expect("json");
            assert_eq!(list["members"].as_array().map(Vec::len), Some(3), "{list}");
            t.say("etcdctl --discovery-srv: get, member list");
        }
    }
}

/// Pods start in random order and late; the members still form one cluster.
pub async fn create_with_pods_starting_in_random_order_and_late<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    if !t.delay_pod_starts(Duration::from_secs(6)) {
        t.say("(this target cannot delay pod starts: a plain create)");
    }
    create_cluster(t, &ns, 3, false).await;
    let status = wait_status(t, &ns, 300, "3 members Running", running_with(3)).await;
    t.say("all 3 members Ready and healthy");
    let mut ids = BTreeSet::new();
    for pod in member_pods(t, &ns).await {
        let mut kv = kv(t, &ns, &pod).await.expect("member reachable");
        let r = kv
            .range(pb::RangeRequest {
                key: b"x".to_vec(),
                serializable: true,
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        ids.insert(r.header.map(|h| h.cluster_id));
    }
    assert_eq!(ids.len(), 1, "members in different clusters: {ids:?}");
    assert!(status.cluster_id.is_some());
}

/// 3 -> 5 -> 3 by editing `spec.replicas`; the data stays and the
/// remaining pods are demo-0..2.
pub async fn scale_3_to_5_to_3_by_editing_replicas<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    running_cluster(t, &ns, 3).await;
    assert!(write_key(t, &ns, "before-scaling", "kept").await);
    for replicas in [5u32, 3] {
        let started = Instant::now();
        set_replicas(t, &ns, replicas).await;
        t.say(&format!("spec.replicas = {replicas}"));
        wait_status(t, &ns, 300, &format!("scaled to {replicas}"), |s| {
            running_with(replicas as usize)(s)
        })
        .await;
        t.say(&format!(
            "scaled to {replicas} in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    assert_eq!(
        read_key(t, &ns, "before-scaling").await.as_deref(),
        Some(&b"kept"[..])
    );
    let names: Vec<String> = member_pods(t, &ns).await.iter().map(pod_name).collect();
    assert_eq!(names, ["demo-0", "demo-1", "demo-2"]);
}

/// (uid, restart count) of a pod: either changes when its member restarts.
async fn incarnation(t: &impl Target, ns: &str, pod: &str) -> Option<(String, i32)> {
    let p = Api::<Pod>::namespaced(t.client(), ns)
        .get_opt(pod)
        .await
        .ok()??;
    let restarts = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.restart_count)
        .unwrap_or(0);
    Some((p.metadata.uid?, restarts))
}

/// SIGKILL one member; it restarts with its data and rejoins.
pub async fn a_member_killed_with_sigkill_restarts_with_its_data<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    running_cluster(t, &ns, 3).await;
    assert!(write_key(t, &ns, "survives", "yes").await);
    let before = incarnation(t, &ns, "demo-1").await.expect("demo-1");
    t.kill_member(&ns, "demo-1").await;
    t.say("demo-1 killed");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let now = incarnation(t, &ns, "demo-1").await;
        if now.is_some_and(|n| n != before) {
            break;
        }
        assert!(Instant::now() < deadline, "demo-1 was not restarted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_status(t, &ns, 180, "3 members healthy again", running_with(3)).await;
    t.say("demo-1 restarted and healthy again");
    wait_local_count(t, &ns, "demo-1", b"survives", b"survivet", 1).await;
    assert_eq!(
        read_key(t, &ns, "survives").await.as_deref(),
        Some(&b"yes"[..])
    );
}

/// A member whose volume was lost is removed and added back as a new member.
pub async fn a_member_whose_volume_was_lost_is_replaced<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    running_cluster(t, &ns, 3).await;
    for i in 0..20 {
        assert!(write_key(t, &ns, &format!("k{i:02}"), "v").await);
    }
    let old_id = clusters(t, &ns)
        .get(NAME)
        .await
        .expect("EtcdCluster")
        .status
        .and_then(|s| s.members.into_iter().find(|m| m.name == "demo-1"))
        .map(|m| m.id)
        .expect("demo-1's member ID");
    t.lose_volume(&ns, "demo-1").await;
    t.say("demo-1's volume lost");
    let status = wait_status(t, &ns, 240, "demo-1 replaced by a new member", |s| {
        running_with(3)(s)
            && s.members
                .iter()
                .any(|m| m.name == "demo-1" && m.id != old_id)
    })
    .await;
    t.say("demo-1 replaced: removed, added back as a learner, promoted");
    assert_eq!(status.members.len(), 3);
    wait_local_count(t, &ns, "demo-1", b"k", b"l", 20).await;
    t.say("the new demo-1 holds all 20 keys");
}

/// One member cut off: the majority takes writes, the operator reports it
/// unhealthy; healed, it catches up.
pub async fn a_partitioned_member_catches_up_after_healing<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    running_cluster(t, &ns, 3).await;
    t.isolate(&ns, "demo-2", true).await;
    t.say("demo-2 cut off the network");
    let others: Vec<Pod> = member_pods(t, &ns)
        .await
        .into_iter()
        .filter(|p| pod_name(p) != "demo-2")
        .collect();
    let mut written = 0;
    for i in 0..20 {
        for pod in &others {
            if let Some(mut kv) = kv(t, &ns, pod).await {
                let put = pb::PutRequest {
                    key: format!("p{i:02}").into(),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                if kv.put(put).await.is_ok() {
                    written += 1;
                    break;
                }
            }
        }
    }
    assert_eq!(written, 20, "the majority side did not take writes");
    t.say("20 writes on the majority side");
    let what = "demo-2 reported unhealthy (on a real cluster the CNI must enforce NetworkPolicy)";
    wait_status(t, &ns, 90, what, |s| {
        s.members.iter().any(|m| m.name == "demo-2" && !m.healthy)
    })
    .await;
    t.isolate(&ns, "demo-2", false).await;
    t.say("demo-2 healed");
    wait_status(t, &ns, 180, "3 members Running again", running_with(3)).await;
    wait_local_count(t, &ns, "demo-2", b"p", b"q", 20).await;
    t.say("demo-2 caught up: 20 of 20 keys in its own store");
}

/// `kubectl rollout restart` of the StatefulSet while a client writes: no
/// acknowledged write is lost on any member.
pub async fn rolling_restart_while_clients_write_loses_no_acknowledged_write<T: Target>(
    t: Arc<T>,
    ns: String,
) {
    running_cluster(&*t, &ns, 3).await;
    let uids = |pods: Vec<Pod>| -> Vec<String> {
        pods.into_iter()
            .filter_map(|p| p.metadata.uid)
            .collect::<Vec<_>>()
    };
    let before = uids(member_pods(&*t, &ns).await);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (t, ns, stop) = (t.clone(), ns.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0u32);
            let mut client = None;
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // One connection until it fails, then any member again.
                if client.is_none() {
                    for pod in member_pods(&*t, &ns).await {
                        client = kv(&*t, &ns, &pod).await;
                        if client.is_some() {
                            break;
                        }
                    }
                }
                let key = format!("w{i:05}");
                let put = pb::PutRequest {
                    key: key.clone().into(),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                let ok = match client.as_mut() {
                    Some(c) => c.put(put).await.is_ok(),
                    None => false,
                };
                if ok {
                    acked.push(key);
                } else {
                    failed += 1;
                    client = None;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, failed)
        })
    };
    // What `kubectl rollout restart` does: a new template annotation.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Api::<StatefulSet>::namespaced(t.client(), &ns)
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                    "kubectl.kubernetes.io/restartedAt": format!("{now}")
                }}}}}),
            ),
        )
        .await
        .expect("restart the StatefulSet");
    t.say("rollout restart of statefulset/demo");
    let deadline = Instant::now() + Duration::from_secs(360);
    loop {
        let pods = member_pods(&*t, &ns).await;
        // The pods' own readiness too: the operator's status may still
        // describe the pods just replaced.
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let now = uids(pods);
        let replaced = now.iter().filter(|u| !before.contains(u)).count();
        let status = clusters(&*t, &ns)
            .get(NAME)
            .await
            .ok()
            .and_then(|c| c.status)
            .unwrap_or_default();
        if replaced == 3 && ready == 3 && running_with(3)(&status) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rolling restart not done: {replaced} of 3 pods replaced, {ready} ready"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    t.say("every pod replaced, cluster healthy");
    stop.store(true, Ordering::Relaxed);
    let (acked, failed) = writer.await.expect("writer");
    t.say(&format!(
        "{} writes acknowledged, {failed} failed during the restart",
        acked.len()
    ));
    assert!(acked.len() > 10, "the writer made no progress");
    // One linearizable range over the writer's keys, on every member.
    for pod in member_pods(&*t, &ns).await {
        let name = pod_name(&pod);
        let mut kv = kv(&*t, &ns, &pod)
            .await
            .unwrap_or_else(|| panic!("{name} unreachable"));
        let req = pb::RangeRequest {
            key: b"w".to_vec(),
            range_end: b"x".to_vec(),
            keys_only: true,
            ..Default::default()
        };
        let stored: BTreeSet<String> = kv
            .range(req)
            .await
            .expect("range")
            .into_inner()
            .kvs
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect();
        let lost: Vec<&String> = acked.iter().filter(|k| !stored.contains(*k)).collect();
        assert!(lost.is_empty(), "{name} lacks acknowledged writes {lost:?}");
    }
}

/// Operator-managed TLS: members serve clients holding a certificate from
/// the cluster's CA and refuse clients without one.
pub async fn a_tls_cluster_serves_clients_with_certificates_from_its_ca<T: Target>(
    t: Arc<T>,
    ns: String,
) {
    let t = &*t;
    create_cluster(t, &ns, 3, true).await;
    wait_status(t, &ns, 240, "3 TLS members Running", running_with(3)).await;
    t.say("3 TLS members Ready; the operator reached them with its client certificate");
    let secret = Api::<Secret>::namespaced(t.client(), &ns)
        .get(&format!("{NAME}-tls"))
        .await
        .expect("Secret demo-tls");
    let data = secret.data.unwrap_or_default();
    let part = |k: &str| data.get(k).map(|b| b.0.clone()).expect(k);
    let (cert, key, ca) = (part("tls.crt"), part("tls.key"), part("ca.crt"));
    let pods = member_pods(t, &ns).await;
    let pod = &pods[0];
    let server_name = format!("{}.{NAME}.{ns}.svc.cluster.local", pod_name(pod));
    let tls = |with_identity: bool| {
        let mut c = ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
            .domain_name(server_name.clone());
        if with_identity {
            c = c.identity(tonic::transport::Identity::from_pem(&cert, &key));
        }
        c
    };
    let ch = channel(t, &ns, pod, Some(tls(true)))
        .await
        .expect("TLS connection with a client certificate");
    let list = pb::cluster_client::ClusterClient::new(ch.clone())
        .member_list(pb::MemberListRequest { linearizable: true })
        .await
        .expect("member list")
        .into_inner();
    assert_eq!(list.members.len(), 3);
    assert!(
        list.members
            .iter()
            .all(|m| m.client_ur_ls.iter().all(|u| u.starts_with("https://"))),
        "{:?}",
        list.members
    );
    pb::kv_client::KvClient::new(ch)
        .put(pb::PutRequest {
            key: b"secure".to_vec(),
            value: b"yes".to_vec(),
            ..Default::default()
        })
        .await
        .expect("put over TLS");
    t.say("served over TLS with a CA-issued client certificate");
    // Without a client certificate the handshake or the first call fails.
    let refused = match channel(t, &ns, pod, Some(tls(false))).await {
        None => true,
        Some(ch) => pb::kv_client::KvClient::new(ch)
            .range(pb::RangeRequest {
                key: b"secure".to_vec(),
                ..Default::default()
            })
            .await
            .is_err(),
    };
    assert!(refused, "served a client without a certificate");
    let srv = format!("--discovery-srv={NAME}.{ns}.svc.cluster.local");
    let dir = tempfile::tempdir().expect("temp dir");
    for (f, bytes) in [("tls.crt", &cert), ("tls.key", &key), ("ca.crt", &ca)] {
        std::fs::write(dir.path().join(f), bytes).expect("write");
    }
    let path = |f: &str| dir.path().join(f).display().to_string();
    let args = vec![
        srv,
        format!("--cacert={}", path("ca.crt")),
        format!("--cert={}", path("tls.crt")),
        format!("--key={}", path("tls.key")),
        "get".into(),
        "secure".into(),
        "--print-value-only".into(),
    ];
    match t.etcdctl_in_cluster(&ns, &args) {
        None => t.say("(this target runs no etcdctl inside the cluster: SRV check skipped)"),
        Some(out) => {
            assert_eq!(out.expect("etcdctl through _etcd-client-ssl").trim(), "yes");
            t.say("etcdctl --discovery-srv found the members through _etcd-client-ssl");
        }
    }
    t.say("refused without a client certificate");
}

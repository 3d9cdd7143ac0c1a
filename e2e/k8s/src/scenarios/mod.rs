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
mod maintenance;
mod quorum;
pub mod real;
mod rollout;
mod security;

use ferrocd_proto::etcdserverpb as pb;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The EtcdCluster every scenario creates.
pub const NAME: &str = "demo";
const CLIENT_PORT: u16 = 2379;

pub use cluster::*;
pub use maintenance::*;
pub use quorum::*;
pub use rollout::*;
pub use security::*;

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

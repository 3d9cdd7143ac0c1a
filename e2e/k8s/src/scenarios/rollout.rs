//! Rolling changes while a client writes: `kubectl rollout restart`, a new
//! member image (the local harness runs the same binary under any image
//! name), and a member option that keeps the replaced member from starting
//! (the rollout halts and says why; reverting the option heals it).

use super::{
    clusters, kv, member_pods, patch_spec, pod_name, pod_ready, running_cluster, running_with,
    wait_status, Target, NAME,
};
use ferrocd_operator::crd::Phase;
use ferrocd_proto::etcdserverpb as pb;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// A client putting keys `w00000`, `w00001`, ... through one member until
/// a put fails, then through any member that answers.
struct Writer {
    stop: Arc<AtomicBool>,
    task: JoinHandle<(Vec<String>, u32)>,
}

impl Writer {
    fn start<T: Target>(t: Arc<T>, ns: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, halt) = (ns.to_string(), stop.clone());
        let task = tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0u32);
            let mut client = None;
            let mut i = 0u32;
            while !halt.load(Ordering::Relaxed) {
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
        });
        Writer { stop, task }
    }

    /// Stops writing; every member must hold every acknowledged write (one
    /// linearizable range over the writer's keys on each).
    async fn stop_and_check(self, t: &impl Target, ns: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let (acked, failed) = self.task.await.expect("writer");
        t.say(&format!(
            "{} writes acknowledged, {failed} failed while pods were replaced",
            acked.len()
        ));
        assert!(acked.len() > 10, "the writer made no progress");
        for pod in member_pods(t, ns).await {
            let name = pod_name(&pod);
            let mut kv = kv(t, ns, &pod)
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
}

/// What a watcher sampling every 100 ms saw during a rollout.
#[derive(Default, Debug)]
struct Seen {
    /// The most member pods the rollout had down at once: missing,
    /// terminating, or replaced and not Ready yet (never seen Ready).
    most_down: usize,
    /// The most other pods (not replaced yet, or replaced and seen Ready
    /// before) that were not Ready at once while the rollout had one down:
    /// a readiness probe failing under load or during a leader move, which
    /// can follow the step's start; the operator starts no step while a pod
    /// is unready, which its own tests check.
    most_unready_beside: usize,
    /// The raft term at the first and the last answer.
    terms: Option<(u64, u64)>,
    /// The status said Updating with a member being replaced.
    updating: bool,
}

struct Watcher {
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
    seen: Arc<Mutex<Seen>>,
}

impl Watcher {
    fn start<T: Target>(t: Arc<T>, ns: &str, n: usize, before: Vec<String>) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ns, halt, out) = (ns.to_string(), stop.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let mut ever_ready: Vec<String> = Vec::new();
            let mut sample = 0u64;
            while !halt.load(Ordering::Relaxed) {
                sample += 1;
                // Pods every 100 ms, the term and status every 4th time: a
                // new channel to a pod can take a second under load, and a
                // replaced pod's Ready time before the next step must not
                // fall between two samples.
                let slow = sample % 4 == 1;
                let pods = member_pods(&*t, &ns).await;
                let ready: Vec<&Pod> = pods.iter().filter(|p| pod_ready(p)).collect();
                for p in &ready {
                    if let Some(uid) = &p.metadata.uid {
                        if !ever_ready.contains(uid) {
                            ever_ready.push(uid.clone());
                        }
                    }
                }
                let term = match ready.first() {
                    Some(p) if slow => term_of(&*t, &ns, p).await,
                    _ => None,
                };
                let status = match slow {
                    true => clusters(&*t, &ns)
                        .get(NAME)
                        .await
                        .ok()
                        .and_then(|c| c.status),
                    false => None,
                };
                let live: Vec<&Pod> = pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                // Replaced and not Ready since: still coming up.
                let coming_up = |p: &Pod| {
                    p.metadata
                        .uid
                        .as_ref()
                        .is_some_and(|u| !before.contains(u) && !ever_ready.contains(u))
                };
                let unready = |want_coming_up: bool| {
                    live.iter()
                        .filter(|p| coming_up(p) == want_coming_up && !pod_ready(p))
                        .count()
                };
                let down = n.saturating_sub(live.len()) + unready(true);
                {
                    let mut s = out.lock().unwrap();
                    s.most_down = s.most_down.max(down);
                    if down > 0 {
                        s.most_unready_beside = s.most_unready_beside.max(unready(false));
                    }
                    if let Some(term) = term {
                        s.terms = Some(s.terms.map_or((term, term), |(a, _)| (a, term)));
                    }
                    s.updating |= status.is_some_and(|s| {
                        s.phase == Phase::Updating
                            && s.rollout.is_some_and(|r| r.current.is_some() && !r.done)
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Watcher { stop, task, seen }
    }

    async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("watcher");
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

async fn term_of(t: &impl Target, ns: &str, pod: &Pod) -> Option<u64> {
    let ch = super::channel(t, ns, pod, None).await?;
    let mut m = pb::maintenance_client::MaintenanceClient::new(ch);
    let status = m.status(pb::StatusRequest {}).await.ok()?.into_inner();
    Some(status.header?.raft_term)
}

async fn wait_all_ready(t: &impl Target, ns: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = member_pods(t, ns)
            .await
            .iter()
            .filter(|p| pod_ready(p))
            .count();
        if ready == n {
            return;
        }
        assert!(Instant::now() < deadline, "only {ready} of {n} pods Ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn uids(pods: &[Pod]) -> Vec<String> {
    pods.iter().filter_map(|p| p.metadata.uid.clone()).collect()
}

/// Waits until all `n` pods are new (not in `before`), Ready, and the
/// cluster is Running with its rollout done.
async fn wait_replaced(t: &impl Target, ns: &str, n: usize, before: &[String], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let pods = member_pods(t, ns).await;
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        let replaced = uids(&pods).iter().filter(|u| !before.contains(u)).count();
        let status = clusters(t, ns)
            .get(NAME)
            .await
            .ok()
            .and_then(|c| c.status)
            .unwrap_or_default();
        let done = status.rollout.as_ref().is_some_and(|r| r.done);
        if replaced == n && ready == n && done && running_with(n)(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "rollout not done in {secs} s: {replaced} of {n} pods replaced, {ready} ready, \
             status {}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs `change` on a running `n`-member cluster under writes and checks
/// the rollout it starts: every pod replaced, one at a time, at most one
/// leader change per member, no acknowledged write lost.
async fn roll_under_writes<T: Target>(t: Arc<T>, ns: &str, n: usize, change: serde_json::Value) {
    running_cluster(&*t, ns, n as u32).await;
    // The status says Running once the members answer; their pods turn
    // Ready a little later, and a pod not yet Ready is not one the rollout
    // took down.
    wait_all_ready(&*t, ns, n).await;
    let before = uids(&member_pods(&*t, ns).await);
    let writer = Writer::start(t.clone(), ns);
    let watcher = Watcher::start(t.clone(), ns, n, before.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    match change {
        serde_json::Value::Null => restart_statefulset(&*t, ns).await,
        spec => {
            t.say(&format!("spec changed: {spec}"));
            patch_spec(&*t, ns, spec).await;
        }
    }
    wait_replaced(&*t, ns, n, &before, 120 * n as u64).await;
    t.say(&format!("all {n} pods replaced, cluster healthy"));
    let seen = watcher.stop().await;
    t.say(&format!("watcher saw: {seen:?}"));
    writer.stop_and_check(&*t, ns).await;
    assert!(seen.updating, "the status never showed the rollout");
    assert!(
        seen.most_down <= 1,
        "{} member pods were down at once",
        seen.most_down
    );
    let (first, last) = seen.terms.expect("no member answered the watcher");
    assert!(
        last - first <= n as u64,
        "raft term went from {first} to {last}: more than one leader change per member"
    );
}

/// What `kubectl rollout restart` does: a new template annotation.
async fn restart_statefulset(t: &impl Target, ns: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Api::<StatefulSet>::namespaced(t.client(), ns)
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
}

/// `kubectl rollout restart` of the StatefulSet while a client writes: the
/// operator replaces the pods; no acknowledged write is lost.
pub async fn rolling_restart_while_clients_write_loses_no_acknowledged_write<T: Target>(
    t: Arc<T>,
    ns: String,
) {
    roll_under_writes(t, &ns, 3, serde_json::Value::Null).await;
}

fn new_image() -> serde_json::Value {
    serde_json::json!({"image": "registry.example/ferrocd:rolled"})
}

/// A new member image on 3 members, under writes.
pub async fn a_new_image_rolls_3_members_one_at_a_time<T: Target>(t: Arc<T>, ns: String) {
    roll_under_writes(t, &ns, 3, new_image()).await;
}

/// A new member image on 5 members, under writes.
pub async fn a_new_image_rolls_5_members_one_at_a_time<T: Target>(t: Arc<T>, ns: String) {
    roll_under_writes(t, &ns, 5, new_image()).await;
}

/// An election timeout below 5 heartbeats makes the member refuse to
/// start: the first replaced member does not come back, the rollout halts
/// with the reason, the other two keep serving; reverting heals it.
pub async fn a_member_that_does_not_start_halts_the_rollout<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    running_cluster(t, &ns, 3).await;
    let before = uids(&member_pods(t, &ns).await);
    let bad = serde_json::json!({"options": {"heartbeatInterval": 100, "electionTimeout": 200}});
    patch_spec(t, &ns, bad).await;
    t.say("spec.options: electionTimeout 200 ms, heartbeat 100 ms");
    let halted = wait_status(t, &ns, 180, "Degraded RolloutHalted", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.reason == "RolloutHalted")
    })
    .await;
    let why = halted
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    t.say(&format!("halted: {why}"));
    // Held there: one pod replaced (a follower), the others keep theirs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pods = member_pods(t, &ns).await;
    let is_new = |p: &&Pod| !before.contains(p.metadata.uid.as_ref().unwrap_or(&String::new()));
    let replaced: Vec<String> = pods.iter().filter(is_new).map(pod_name).collect();
    assert_eq!(replaced.len(), 1, "replaced while halted: {replaced:?}");
    let ordinal = replaced[0].trim_start_matches("demo-");
    assert!(
        why.contains(&format!("member {ordinal} ")) && why.contains("election-timeout"),
        "{why}"
    );
    assert!(
        super::write_key(t, &ns, "/during-halt", "v").await,
        "no write while halted"
    );
    let events = super::events_of(t, &ns, "RolloutHalted").await;
    assert!(!events.is_empty(), "no RolloutHalted event");

    patch_spec(t, &ns, serde_json::json!({"options": null})).await;
    t.say("spec.options removed");
    wait_status(t, &ns, 240, "Running again, not degraded", |s| {
        running_with(3)(s)
            && s.rollout.as_ref().is_some_and(|r| r.done)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status == "False")
    })
    .await;
    assert_eq!(
        super::read_key(t, &ns, "/during-halt").await.as_deref(),
        Some(&b"v"[..])
    );
    t.say(&format!(
        "reverted: {} replaced again and healthy",
        replaced[0]
    ));
}

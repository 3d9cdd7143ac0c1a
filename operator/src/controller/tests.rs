//! Reconciles against a mock Kubernetes API (tower-test) that keeps the
//! objects it was sent, and a model cluster behind `MemberApi`. Every test
//! builds a fresh `Context` per reconcile, as an operator restarted between
//! any two reconciles would; each `Scenario` is one situation.

use super::*;
use crate::crd::{EtcdClusterSpec, Storage};
use crate::membership::etcd::ListedMember;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

const NS: &str = "ns";
const NAME: &str = "demo";

/// The API server's side: objects by path, every request seen, failures to inject.
#[derive(Default)]
struct ApiState {
    objects: BTreeMap<String, Value>,
    requests: Vec<String>,
    /// Bodies of server-side applies, by path.
    applied: Vec<(String, Value)>,
    /// Answer 404 for policy/v1 (an API server older than 1.21).
    no_policy_v1: bool,
    /// Fail the next request whose "METHOD path" contains this text.
    fail_next: Option<String>,
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": reason, "reason": reason, "code": code})
}

impl ApiState {
    fn handle(&mut self, method: &Method, path: &str, query: &str, body: &[u8]) -> (u16, Value) {
        let line = format!("{method} {path}");
        self.requests.push(format!("{line}?{query}"));
        if self
            .fail_next
            .as_ref()
            .is_some_and(|f| line.contains(f.as_str()))
        {
            self.fail_next = None;
            return (500, status(500, "InternalError"));
        }
        if self.no_policy_v1 && path.starts_with("/apis/policy/v1/") {
            return (404, status(404, "NotFound"));
        }
        // Status subresource writes land on the object itself.
        let key = path.strip_suffix("/status").unwrap_or(path).to_string();
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if *method == Method::PATCH && query.contains("fieldManager") {
            self.applied.push((path.to_string(), body.clone()));
        }
        match *method {
            Method::GET if path.ends_with("/persistentvolumeclaims") || path.ends_with("/pods") => {
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&format!("{path}/")))
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    200,
                    json!({"kind": "PersistentVolumeClaimList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            Method::GET => match self.objects.get(&key) {
                Some(v) => (200, v.clone()),
                None => (404, status(404, "NotFound")),
            },
            Method::POST => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("event")
                    .to_string();
                self.objects.insert(format!("{path}/{name}"), body.clone());
                (201, body)
            }
            Method::DELETE => match self.objects.remove(&key) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => (404, status(404, "NotFound")),
            },
            Method::PATCH => {
                let name = key.rsplit('/').next().unwrap_or_default().to_string();
                let obj = self.objects.entry(key.clone()).or_insert_with(|| {
                    json!({"metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}")}})
                });
                if let Value::Array(mut ops) = body {
                    // A JSON patch `test` of an absent path against null
                    // passes on Kubernetes (kube's finalizer relies on it).
                    ops.retain(|op| {
                        !(op["op"] == "test"
                            && op["value"].is_null()
                            && obj.pointer(op["path"].as_str().unwrap_or("")).is_none())
                    });
                    let patch: json_patch::Patch =
                        serde_json::from_value(Value::Array(ops)).expect("json patch");
                    if json_patch::patch(obj, &patch).is_err() {
                        return (422, status(422, "Invalid"));
                    }
                } else {
                    merge(obj, &body);
                }
                let obj = obj.clone();
                // Kubernetes forgets an object once its last finalizer goes.
                if obj["metadata"]["deletionTimestamp"].is_string()
                    && obj["metadata"]["finalizers"]
                        .as_array()
                        .is_none_or(|f| f.is_empty())
                {
                    self.objects.remove(&key);
                }
                (200, obj)
            }
            _ => (405, status(405, "MethodNotAllowed")),
        }
    }
}

type Shared<T> = Arc<Mutex<T>>;

/// Starts the mock API server; returns a client talking to it.
fn mock_api(state: Shared<ApiState>) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let (code, value) = state.lock().unwrap().handle(
                &parts.method,
                parts.uri.path(),
                parts.uri.query().unwrap_or_default(),
                &bytes,
            );
            let resp = Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .body(Body::from(serde_json::to_vec(&value).unwrap()))
                .unwrap();
            send.send_response(resp);
        }
    });
    Client::new(service, NS)
}

/// The model cluster: what `MemberApi` sees and changes.
#[derive(Default)]
struct Model {
    members: Vec<ListedMember>,
    leader: Option<u64>,
    next_id: u64,
}

struct ModelApi(Shared<Model>);

fn peer(i: u32) -> String {
    format!("http://{NAME}-{i}.{NAME}.{NS}.svc.cluster.local:2380")
}

impl MemberApi for ModelApi {
    fn observe(&self) -> BoxFuture<'_, Result<ClusterView, EtcdError>> {
        let m = self.0.lock().unwrap();
        let r = if m.members.is_empty() {
            Err(EtcdError::Unreachable("model".into()))
        } else {
            Ok(ClusterView {
                cluster_id: 0xc1,
                leader: m.leader,
                members: m.members.clone(),
            })
        };
        Box::pin(async move { r })
    }
    fn add_learner<'a>(&'a self, peer_url: &'a str) -> BoxFuture<'a, Result<u64, EtcdError>> {
        let mut m = self.0.lock().unwrap();
        m.next_id += 1;
        let id = 0x1000 + m.next_id;
        m.members.push(ListedMember {
            id,
            name: String::new(),
            peer_urls: vec![peer_url.into()],
            client_urls: vec![],
            learner: true,
            healthy: false,
        });
        Box::pin(async move { Ok(id) })
    }
    fn promote(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>> {
        let mut m = self.0.lock().unwrap();
        if let Some(x) = m.members.iter_mut().find(|x| x.id == id) {
            x.learner = false;
        }
        Box::pin(async { Ok(()) })
    }
    fn remove(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>> {
        self.0.lock().unwrap().members.retain(|x| x.id != id);
        Box::pin(async { Ok(()) })
    }
    fn move_leader<'a>(
        &'a self,
        _: &'a ClusterView,
        _: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), EtcdError>> {
        self.0.lock().unwrap().leader = Some(to);
        Box::pin(async { Ok(()) })
    }
}

/// Situations the tests start from.
enum Scenario {
    /// A new EtcdCluster; nothing exists yet.
    Fresh { replicas: i32 },
    /// A running cluster of `members` voters at `replicas`, spec asking for `desired`.
    Running {
        members: u32,
        desired: i32,
        retention: PvcRetention,
    },
}

struct Harness {
    api: Shared<ApiState>,
    model: Shared<Model>,
    /// The TLS identity the last reconcile dialed the members with.
    dialed_with: Shared<Option<ClientTls>>,
}

const CLUSTER_PATH: &str = "/apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdclusters/demo";
const STS_PATH: &str = "/apis/apps/v1/namespaces/ns/statefulsets/demo";
const PVC_PATH: &str = "/api/v1/namespaces/ns/persistentvolumeclaims";

impl Harness {
    fn new(s: Scenario) -> Harness {
        let h = Harness {
            api: Arc::default(),
            model: Arc::default(),
            dialed_with: Arc::default(),
        };
        let (replicas, desired, retention) = match s {
            Scenario::Fresh { replicas } => (None, replicas, PvcRetention::Keep),
            Scenario::Running {
                members,
                desired,
                retention,
            } => (Some(members), desired, retention),
        };
        let mut c = EtcdCluster::new(
            NAME,
            EtcdClusterSpec {
                replicas: desired,
                image: None,
                storage: Storage::default(),
                resources: None,
                pod: None,
                cluster_domain: "cluster.local".into(),
                options: None,
                tls: None,
                pvc_retention: retention,
            },
        );
        c.metadata.namespace = Some(NS.into());
        c.metadata.uid = Some("6f1c0de2-0000".into());
        c.metadata.generation = Some(1);
        let mut obj = serde_json::to_value(&c).unwrap();
        if let Some(n) = replicas {
            obj["metadata"]["finalizers"] = json!([FINALIZER]);
            let mut sts =
                serde_json::to_value(render::stateful_set(&c, n as i32, n as i32)).unwrap();
            sts["status"] = json!({"replicas": n, "readyReplicas": n});
            let mut api = h.api.lock().unwrap();
            api.objects.insert(STS_PATH.into(), sts);
            let mut model = h.model.lock().unwrap();
            for i in 0..n {
                api.objects.insert(
                    format!("{PVC_PATH}/data-{NAME}-{i}"),
                    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": format!("data-{NAME}-{i}"), "namespace": NS}}),
                );
                model.members.push(ListedMember {
                    id: 0x100 + u64::from(i),
                    name: format!("{NAME}-{i}"),
                    peer_urls: vec![peer(i)],
                    client_urls: vec![format!(
                        "http://{NAME}-{i}.{NAME}.{NS}.svc.cluster.local:2379"
                    )],
                    learner: false,
                    healthy: true,
                });
            }
            model.leader = Some(0x100);
        }
        h.api
            .lock()
            .unwrap()
            .objects
            .insert(CLUSTER_PATH.into(), obj);
        h
    }

    fn cluster(&self) -> Option<EtcdCluster> {
        let api = self.api.lock().unwrap();
        api.objects
            .get(CLUSTER_PATH)
            .map(|v| serde_json::from_value(v.clone()).unwrap())
    }

    fn sts_replicas(&self) -> Option<i64> {
        self.api
            .lock()
            .unwrap()
            .objects
            .get(STS_PATH)
            .and_then(|s| s["spec"]["replicas"].as_i64())
    }

    /// One reconcile with a brand-new context: nothing carries over but
    /// what the API server and the cluster hold.
    async fn reconcile(&self) -> Result<Action, Error> {
        let client = mock_api(self.api.clone());
        let model = self.model.clone();
        let dialed_with = self.dialed_with.clone();
        let connect: Connect = Arc::new(move |_, tls| {
            *dialed_with.lock().unwrap() = tls;
            Box::new(ModelApi(model.clone()))
        });
        let ctx = Arc::new(Context::new(client, Arc::default(), connect));
        let c = self.cluster().expect("cluster exists");
        reconcile(Arc::new(c), ctx).await
    }

    /// What the StatefulSet controller and kubelet would do: pods below the
    /// replica count run, so their members start and answer.
    fn pods_follow(&self) {
        let n = self.sts_replicas().unwrap_or(0) as u32;
        let mut api = self.api.lock().unwrap();
        if let Some(sts) = api.objects.get_mut(STS_PATH) {
            sts["status"] = json!({"replicas": n, "readyReplicas": n});
        }
        for i in 0..n {
            let key = format!("{PVC_PATH}/data-{NAME}-{i}");
            api.objects.entry(key).or_insert_with(|| {
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": format!("data-{NAME}-{i}"), "namespace": NS}})
            });
        }
        let mut model = self.model.lock().unwrap();
        for m in model.members.iter_mut() {
            let ordinal = (0..n).find(|i| m.peer_urls.contains(&peer(*i)));
            if let Some(i) = ordinal {
                m.healthy = true;
                m.name = format!("{NAME}-{i}");
            } else {
                m.healthy = false;
            }
        }
    }

    fn requests(&self, needle: &str) -> Vec<String> {
        let api = self.api.lock().unwrap();
        api.requests
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }

    fn set_replicas(&self, n: i32) {
        let mut api = self.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["spec"]["replicas"] = json!(n);
        c["metadata"]["generation"] = json!(c["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    }

    fn voters_and_learners(&self) -> (usize, usize) {
        let m = self.model.lock().unwrap();
        let learners = m.members.iter().filter(|x| x.learner).count();
        (m.members.len() - learners, learners)
    }

    fn status(&self) -> EtcdClusterStatus {
        self.cluster()
            .and_then(|c| c.status)
            .expect("status written")
    }

    fn condition(&self, type_: &str) -> Condition {
        self.status()
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }
}

#[tokio::test]
async fn create_renders_children_then_reports_the_running_cluster() {
    let h = Harness::new(Scenario::Fresh { replicas: 3 });
    h.reconcile().await.unwrap();
    let c = h.cluster().unwrap();
    assert_eq!(c.metadata.finalizers, Some(vec![FINALIZER.to_string()]));
    h.reconcile().await.unwrap();
    for path in [
        "PATCH /api/v1/namespaces/ns/services/demo",
        "PATCH /api/v1/namespaces/ns/services/demo-client",
        "PATCH /apis/apps/v1/namespaces/ns/statefulsets/demo",
        "PATCH /apis/policy/v1/namespaces/ns/poddisruptionbudgets/demo",
        "POST /apis/events.k8s.io/v1/namespaces/ns/events",
    ] {
        assert!(!h.requests(path).is_empty(), "no {path}");
    }
    assert!(h
        .requests("PATCH /apis/apps/v1/namespaces/ns/statefulsets/demo?")
        .iter()
        .all(|r| r.contains("fieldManager=ferrocd-operator")));
    assert_eq!(h.sts_replicas(), Some(3));
    assert_eq!(h.status().phase, Phase::Creating);
    assert_eq!(h.condition("Available").reason, "Unreachable");

    // The pods start and bootstrap through SRV: three voters.
    {
        let mut m = h.model.lock().unwrap();
        for i in 0..3 {
            m.members.push(ListedMember {
                id: 0x100 + i,
                name: String::new(),
                peer_urls: vec![peer(i as u32)],
                client_urls: vec![],
                learner: false,
                healthy: false,
            });
        }
        m.leader = Some(0x101);
    }
    h.pods_follow();
    h.reconcile().await.unwrap();
    let s = h.status();
    assert_eq!(s.phase, Phase::Running, "{s:?}");
    assert_eq!(s.replicas, 3);
    assert_eq!(s.ready_replicas, 3);
    assert_eq!(s.leader.as_deref(), Some("demo-1"));
    assert_eq!(s.cluster_id.as_deref(), Some("c1"));
    assert_eq!(s.members.len(), 3);
    assert_eq!(
        s.selector.as_deref(),
        Some("app.kubernetes.io/name=ferrocd,ferrocd.dev/cluster=demo")
    );
    assert_eq!(
        s.endpoints.unwrap().discovery_srv,
        "demo.ns.svc.cluster.local"
    );
    assert_eq!(h.condition("Available").status, "True");
    assert_eq!(h.condition("Degraded").status, "False");
}

#[tokio::test]
async fn an_api_server_without_policy_v1_gets_a_condition_not_a_failure() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.api.lock().unwrap().no_policy_v1 = true;
    h.reconcile().await.unwrap();
    let c = h.condition("DisruptionBudget");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "PolicyV1Unavailable")
    );
    assert_eq!(h.status().phase, Phase::Running);
}

/// Reconciles (each with a fresh context, the pods following the
/// StatefulSet) until the status says Running; returns the STS replica
/// counts seen after each reconcile.
async fn settle(h: &Harness, max: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    for _ in 0..max {
        h.reconcile().await.unwrap();
        h.pods_follow();
        seen.push(h.sts_replicas().unwrap());
        let s = h.status();
        if s.phase == Phase::Running
            && s.members.iter().all(|m| !m.learner)
            && h.condition("Progressing").status == "False"
        {
            return seen;
        }
    }
    panic!(
        "not settled after {max} reconciles: {seen:?}, {:?}",
        h.status()
    );
}

#[tokio::test]
async fn scale_3_to_5_to_3_one_member_at_a_time() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 5,
        retention: PvcRetention::Delete,
    });
    let seen = settle(&h, 20).await;
    // add learner 3, raise to 4, promote; add learner 4, raise to 5, promote.
    assert_eq!(seen, vec![3, 4, 4, 4, 5, 5, 5], "{seen:?}");
    assert_eq!(h.voters_and_learners(), (5, 0));
    // Server-side apply owns what it sends: every apply of the StatefulSet
    // must carry the whole object, or Kubernetes drops the rest.
    {
        let api = h.api.lock().unwrap();
        let sts_applies: Vec<&Value> = api
            .applied
            .iter()
            .filter(|(p, _)| p == STS_PATH)
            .map(|(_, b)| b)
            .collect();
        assert!(sts_applies.len() >= 9);
        for body in sts_applies {
            assert!(
                body["spec"]["selector"].is_object()
                    && body["spec"]["template"]["spec"]["containers"].is_array(),
                "partial apply: {body}"
            );
        }
    }
    assert_eq!(
        h.requests("PATCH /apis/apps/v1/namespaces/ns/statefulsets/demo")
            .len(),
        7 + 2
    );

    h.model.lock().unwrap().leader = Some(0x1002); // member 4 leads
    h.set_replicas(3);
    let seen = settle(&h, 20).await;
    // move leader, remove 4, lower to 4, remove 3, lower to 3, delete both claims.
    assert_eq!(seen, vec![5, 5, 4, 4, 3, 3, 3, 3], "{seen:?}");
    assert_eq!(h.voters_and_learners(), (3, 0));
    assert_ne!(h.model.lock().unwrap().leader, Some(0x1002));
    assert_eq!(
        h.requests("DELETE /api/v1/namespaces/ns/persistentvolumeclaims/")
            .len(),
        2
    );
    assert_eq!(h.status().observed_generation, Some(2));
}

#[tokio::test]
async fn an_operator_crash_after_any_step_resumes_where_it_stopped() {
    // The status write after each step fails (as if the operator died right
    // after the step); the next reconcile must continue, not redo or skip.
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 4,
        retention: PvcRetention::Keep,
    });
    let mut steps = 0;
    for _ in 0..12 {
        h.api.lock().unwrap().fail_next = Some(format!("PATCH {CLUSTER_PATH}/status"));
        let _ = h.reconcile().await;
        h.pods_follow();
        steps += 1;
        let m = h.model.lock().unwrap();
        if m.members.len() == 4 && m.members.iter().all(|x| !x.learner) {
            break;
        }
    }
    assert!(steps <= 4, "took {steps} reconciles");
    assert_eq!(h.voters_and_learners(), (4, 0));
    assert_eq!(h.sts_replicas(), Some(4));
    // Exactly one add: no member was added twice.
    assert_eq!(h.model.lock().unwrap().next_id, 1);
    settle(&h, 3).await;
}

#[tokio::test]
async fn a_scale_in_that_would_lose_quorum_is_refused() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 2,
        retention: PvcRetention::Keep,
    });
    h.model.lock().unwrap().members[1].healthy = false;
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(h.voters_and_learners(), (3, 0), "a member was removed");
    assert_eq!(h.sts_replicas(), Some(3));
    let d = h.condition("Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "QuorumAtRisk")
    );
    assert_eq!(h.status().phase, Phase::Degraded);
    let api = h.api.lock().unwrap();
    let refused = api
        .objects
        .iter()
        .filter(|(k, _)| k.contains("/events/"))
        .any(|(_, e)| e["reason"] == "Refused" && e["type"] == "Warning");
    assert!(refused, "no Refused warning event");
}

#[tokio::test]
async fn deletion_removes_claims_then_the_finalizer() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Delete,
    });
    {
        let mut api = h.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["metadata"]["deletionTimestamp"] = json!("2026-11-30T10:00:00Z");
    }
    h.reconcile().await.unwrap();
    assert_eq!(
        h.requests("DELETE /api/v1/namespaces/ns/persistentvolumeclaims/")
            .len(),
        3
    );
    assert!(h.cluster().is_none(), "finalizer not removed");
}

#[tokio::test]
async fn deletion_keeps_claims_when_asked() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    {
        let mut api = h.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["metadata"]["deletionTimestamp"] = json!("2026-11-30T10:00:00Z");
    }
    h.reconcile().await.unwrap();
    assert!(h.requests("DELETE").is_empty());
    assert!(h.cluster().is_none());
}

const SECRETS: &str = "/api/v1/namespaces/ns/secrets";

fn secret_text(h: &Harness, name: &str, key: &str) -> Option<String> {
    let api = h.api.lock().unwrap();
    let s: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(api.objects.get(&format!("{SECRETS}/{name}"))?.clone()).ok()?;
    String::from_utf8(s.data?.get(key)?.0.clone()).ok()
}

fn set_tls(h: &Harness, tls: Value) {
    let mut api = h.api.lock().unwrap();
    api.objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["tls"] = tls;
}

#[tokio::test]
async fn operator_managed_tls_issues_certificates_and_renews_them() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    set_tls(&h, json!({"mode": "OperatorManaged"}));
    h.reconcile().await.unwrap();
    let ca = secret_text(&h, "demo-ca", "tls.crt").expect("CA Secret");
    let cert = secret_text(&h, "demo-tls", "tls.crt").expect("member certificate Secret");
    assert_eq!(
        secret_text(&h, "demo-tls", "ca.crt").as_deref(),
        Some(ca.as_str())
    );
    assert!(crate::pki::signed_by(&cert, &ca));
    let names = crate::pki::subject_alt_names(&cert).unwrap();
    assert!(
        names.contains(&"*.demo.ns.svc.cluster.local".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"demo.ns.svc.cluster.local".to_string()),
        "{names:?}"
    );
    // The operator dials the members with a client certificate from that CA.
    let dialed = h.dialed_with.lock().unwrap().clone().expect("TLS identity");
    assert_eq!(dialed.ca_pem, ca);
    assert!(crate::pki::signed_by(&dialed.cert_pem, &ca));
    let sts = h.api.lock().unwrap().objects[STS_PATH].clone();
    assert_eq!(
        sts["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "demo-tls"
    );

    // A current certificate is left alone.
    h.reconcile().await.unwrap();
    assert_eq!(
        secret_text(&h, "demo-tls", "tls.crt").as_deref(),
        Some(cert.as_str())
    );
    // One that no longer verifies (or is about to expire) is reissued by the same CA.
    {
        let mut api = h.api.lock().unwrap();
        let garbage = k8s_openapi::ByteString(b"expired".to_vec());
        api.objects.get_mut(&format!("{SECRETS}/demo-tls")).unwrap()["data"]["tls.crt"] =
            serde_json::to_value(garbage).unwrap();
    }
    h.reconcile().await.unwrap();
    let renewed = secret_text(&h, "demo-tls", "tls.crt").unwrap();
    assert_ne!(renewed, cert);
    assert!(crate::pki::signed_by(&renewed, &ca));
    assert_eq!(
        secret_text(&h, "demo-ca", "tls.crt").as_deref(),
        Some(ca.as_str()),
        "the CA changed"
    );
    assert_eq!(
        h.requests(&format!("POST {SECRETS}")).len(),
        1,
        "the CA was made more than once"
    );
}

#[tokio::test]
async fn missing_user_secrets_render_nothing_and_say_why() {
    let h = Harness::new(Scenario::Fresh { replicas: 3 });
    set_tls(
        &h,
        json!({"mode": "UserSecrets", "secrets": {"client": "cli", "peer": "peers"}}),
    );
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert!(
        h.sts_replicas().is_none(),
        "a StatefulSet was rendered without its Secrets"
    );
    let d = h.condition("Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "TLSSecretMissing")
    );
    assert!(d.message.contains("peers"), "{d:?}");
}

#[tokio::test]
async fn a_member_that_lost_its_volume_is_replaced_by_a_new_one() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.model.lock().unwrap().members[1].healthy = false;
    h.api.lock().unwrap().objects.insert(
        "/api/v1/namespaces/ns/pods/demo-1".into(),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "demo-1", "namespace": NS},
               "status": {"containerStatuses": [{
                   "name": "ferrocd", "ready": false, "restartCount": 3, "image": "ferrocd", "imageID": "",
                   "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                   "lastState": {"terminated": {"exitCode": 1,
                       "message": "ferrocd: member 101 has already been bootstrapped\n"}}}]}}),
    );
    h.reconcile().await.unwrap();
    assert!(
        !h.model
            .lock()
            .unwrap()
            .members
            .iter()
            .any(|m| m.id == 0x101),
        "the lost member stayed"
    );
    h.reconcile().await.unwrap();
    let m = h.model.lock().unwrap();
    let added = m
        .members
        .iter()
        .find(|x| x.peer_urls == vec![peer(1)])
        .expect("demo-1 added again");
    assert!(added.learner && added.id != 0x101);
    drop(m);
    assert!(
        h.requests("DELETE /api/v1/namespaces/ns/persistentvolumeclaims/data-demo-1")
            .is_empty(),
        "its fresh claim was deleted"
    );
}

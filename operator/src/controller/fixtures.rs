//! Test fixtures for reconciles: a mock Kubernetes API (tower-test) that
//! keeps the objects it was sent (server-side apply merges, status, finalizers,
//! injected failures), a model cluster behind `MemberApi`, and the `Harness`
//! that starts a reconcile from a `Scenario`.

use super::*;
use crate::crd::{EtcdClusterSpec, Storage};
use crate::membership::etcd::ListedMember;
use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::client::Body;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

pub(super) const NS: &str = "ns";
pub(super) const NAME: &str = "demo";

/// The API server's side: objects by path, every request seen, failures to inject.
#[derive(Default)]
pub(super) struct ApiState {
    pub(super) objects: BTreeMap<String, Value>,
    pub(super) requests: Vec<String>,
    /// Bodies of server-side applies, by path.
    pub(super) applied: Vec<(String, Value)>,
    /// Answer 404 for policy/v1 (an API server older than 1.21).
    pub(super) no_policy_v1: bool,
    /// Fail the next request whose "METHOD path" contains this text.
    pub(super) fail_next: Option<String>,
}

pub(super) fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

pub(super) fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": reason, "reason": reason, "code": code})
}

impl ApiState {
    /// Missing pods below `n` start from `revision` (OnDelete: running ones
    /// keep theirs); pods from `n` up go.
    fn pods_follow(&mut self, n: u32, revision: &str) {
        self.objects.retain(|k, _| {
            k.strip_prefix(&format!("{POD_PATH}/{NAME}-"))
                .and_then(|i| i.parse::<u32>().ok())
                .is_none_or(|i| i < n)
        });
        for i in 0..n {
            let name = format!("{NAME}-{i}");
            self.objects
                .entry(format!("{POD_PATH}/{name}"))
                .or_insert_with(|| {
                    json!({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": name, "namespace": NS, "labels": {
                               "app.kubernetes.io/name": "ferrocd",
                               "ferrocd.dev/cluster": NAME,
                               "controller-revision-hash": revision}},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
                });
        }
    }

    pub(super) fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> (u16, Value) {
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
            Method::GET
                if path.ends_with("/persistentvolumeclaims")
                    || path.ends_with("/pods")
                    || path.ends_with("/etcdbackups") =>
            {
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
                } else if path.ends_with("/status") && query.contains("force=true") {
                    // The operator applies the whole status as its only
                    // manager: what it leaves out goes.
                    obj["status"] = body["status"].clone();
                } else {
                    merge(obj, &body);
                }
                if key.starts_with(STS_PREFIX) && !path.ends_with("/status") {
                    // The StatefulSet controller names each template.
                    obj["status"]["updateRevision"] = json!(revision_of(&obj["spec"]["template"]));
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

pub(super) type Shared<T> = Arc<Mutex<T>>;

/// Starts the mock API server; returns a client talking to it.
pub(super) fn mock_api(state: Shared<ApiState>) -> Client {
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
pub(super) struct Model {
    pub(super) members: Vec<ListedMember>,
    pub(super) leader: Option<u64>,
    pub(super) next_id: u64,
    /// Root's password while auth is on.
    pub(super) auth: Option<String>,
    /// Members defragmented, in order.
    pub(super) defragmented: Vec<u64>,
    /// Members with a NOSPACE alarm.
    pub(super) nospace: Vec<u64>,
    /// The revision the history was compacted at.
    pub(super) compacted: Option<i64>,
}

/// The model cluster as reached with one root password (or none).
pub(super) struct ModelApi(Shared<Model>, Option<String>);

impl ModelApi {
    /// What etcd answers a member or auth change: refused unless auth is
    /// off or the caller authenticated as root.
    fn as_root(&self) -> Result<std::sync::MutexGuard<'_, Model>, EtcdError> {
        let m = self.0.lock().unwrap();
        match &m.auth {
            Some(p) if self.1.as_ref() != Some(p) => Err(EtcdError::Refused(
                ferrocd_proto::errors::AUTH_FAILED.status(),
            )),
            _ => Ok(m),
        }
    }
}

pub(super) fn peer(i: u32) -> String {
    format!("http://{NAME}-{i}.{NAME}.{NS}.svc.cluster.local:2380")
}

impl MemberApi for ModelApi {
    fn observe(&self) -> BoxFuture<'_, Result<ClusterView, EtcdError>> {
        let m = self.0.lock().unwrap();
        let r = if m.members.is_empty() {
            Err(EtcdError::Unreachable("model".into()))
        } else {
            // A member list through the quorum needs a quorum of voters.
            let voters = m.members.iter().filter(|x| !x.learner);
            let up = voters.clone().filter(|x| x.healthy).count();
            Ok(ClusterView {
                cluster_id: 0xc1,
                leader: m.leader,
                members: m.members.clone(),
                linearizable: up > voters.count() / 2,
            })
        };
        Box::pin(async move { r })
    }
    fn add_learner<'a>(&'a self, peer_url: &'a str) -> BoxFuture<'a, Result<u64, EtcdError>> {
        let r = self.as_root().map(|mut m| {
            m.next_id += 1;
            let id = 0x1000 + m.next_id;
            m.members.push(ListedMember {
                id,
                name: String::new(),
                peer_urls: vec![peer_url.into()],
                client_urls: vec![],
                learner: true,
                healthy: false,
                db_size: None,
                applied: 0,
                revision: 0,
            });
            id
        });
        Box::pin(async move { r })
    }
    fn promote(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>> {
        let r = self.as_root().map(|mut m| {
            if let Some(x) = m.members.iter_mut().find(|x| x.id == id) {
                x.learner = false;
            }
        });
        Box::pin(async { r })
    }
    fn remove(&self, id: u64) -> BoxFuture<'_, Result<(), EtcdError>> {
        let r = self.as_root().map(|mut m| m.members.retain(|x| x.id != id));
        Box::pin(async { r })
    }
    fn move_leader<'a>(
        &'a self,
        _: &'a ClusterView,
        _: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), EtcdError>> {
        let r = self.as_root().map(|mut m| m.leader = Some(to));
        Box::pin(async { r })
    }
    fn defragment<'a>(
        &'a self,
        _: &'a ClusterView,
        id: u64,
    ) -> BoxFuture<'a, Result<(), EtcdError>> {
        let r = self.as_root().map(|mut m| {
            m.defragmented.push(id);
            if let Some(x) = m.members.iter_mut().find(|x| x.id == id) {
                x.db_size = x.db_size.map(|(_, in_use)| (in_use, in_use));
            }
        });
        Box::pin(async { r })
    }
    fn nospace_alarms(&self) -> BoxFuture<'_, Result<Vec<u64>, EtcdError>> {
        let alarmed = self.0.lock().unwrap().nospace.clone();
        Box::pin(async move { Ok(alarmed) })
    }
    fn compact_all(&self) -> BoxFuture<'_, Result<i64, EtcdError>> {
        let r = self.as_root().map(|mut m| *m.compacted.insert(100));
        Box::pin(async { r })
    }
    fn disarm_nospace<'a>(&'a self, ids: &'a [u64]) -> BoxFuture<'a, Result<(), EtcdError>> {
        let r = self.as_root().map(|mut m| {
            m.nospace.retain(|x| !ids.contains(x));
            if m.nospace.is_empty() {
                for x in m.members.iter_mut() {
                    x.healthy = true;
                }
            }
        });
        Box::pin(async { r })
    }
    fn auth_enabled(&self) -> BoxFuture<'_, Result<bool, EtcdError>> {
        let on = self.0.lock().unwrap().auth.is_some();
        Box::pin(async move { Ok(on) })
    }
    fn enable_auth<'a>(&'a self, root_password: &'a str) -> BoxFuture<'a, Result<(), EtcdError>> {
        let r = self
            .as_root()
            .map(|mut m| m.auth = Some(root_password.to_string()));
        Box::pin(async { r })
    }
    fn disable_auth(&self) -> BoxFuture<'_, Result<(), EtcdError>> {
        let r = self.as_root().map(|mut m| m.auth = None);
        Box::pin(async { r })
    }
}

/// Situations the tests start from.
pub(super) enum Scenario {
    /// A new EtcdCluster; nothing exists yet.
    Fresh { replicas: i32 },
    /// A running cluster of `members` voters at `replicas`, spec asking for `desired`.
    Running {
        members: u32,
        desired: i32,
        retention: PvcRetention,
    },
}

pub(super) struct Harness {
    pub(super) api: Shared<ApiState>,
    pub(super) model: Shared<Model>,
    /// How the last reconcile dialed the members.
    pub(super) dialed_with: Shared<Dial>,
}

pub(super) const CLUSTER_PATH: &str = "/apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdclusters/demo";
pub(super) const STS_PATH: &str = "/apis/apps/v1/namespaces/ns/statefulsets/demo";
pub(super) const PVC_PATH: &str = "/api/v1/namespaces/ns/persistentvolumeclaims";
pub(super) const POD_PATH: &str = "/api/v1/namespaces/ns/pods";
const STS_PREFIX: &str = "/apis/apps/v1/namespaces/ns/statefulsets/";

/// A template's revision, as the StatefulSet controller labels its pods.
fn revision_of(template: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut h);
    format!("{NAME}-{:x}", h.finish() & 0xffff_ffff)
}

impl Harness {
    pub(super) fn new(s: Scenario) -> Harness {
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
                // Plain unless a test asks otherwise (or for the default).
                tls: Some(crate::crd::TlsSpec {
                    mode: crate::crd::TlsMode::Disabled,
                    ..Default::default()
                }),
                pvc_retention: retention,
                backup: None,
                bootstrap: None,
                auth: None,
                paused: false,
                recovery: None,
                maintenance: None,
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
            let revision = revision_of(&sts["spec"]["template"]);
            sts["status"] = json!({"replicas": n, "readyReplicas": n, "updateRevision": revision});
            let mut api = h.api.lock().unwrap();
            api.objects.insert(STS_PATH.into(), sts);
            api.pods_follow(n, &revision);
            for i in 0..n {
                let key = format!("{PVC_PATH}/data-{NAME}-{i}");
                api.objects.entry(key).or_insert_with(|| {
                    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": format!("data-{NAME}-{i}"), "namespace": NS}})
                });
            }
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
                    // 4 MiB files, a quarter in use.
                    db_size: Some((4 << 20, 1 << 20)),
                    applied: 0,
                    revision: 0,
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

    pub(super) fn cluster(&self) -> Option<EtcdCluster> {
        let api = self.api.lock().unwrap();
        api.objects
            .get(CLUSTER_PATH)
            .map(|v| serde_json::from_value(v.clone()).unwrap())
    }

    pub(super) fn sts_replicas(&self) -> Option<i64> {
        self.api
            .lock()
            .unwrap()
            .objects
            .get(STS_PATH)
            .and_then(|s| s["spec"]["replicas"].as_i64())
    }

    /// One reconcile with a brand-new context: nothing carries over but
    /// what the API server and the cluster hold.
    pub(super) async fn reconcile(&self) -> Result<Action, Error> {
        self.reconcile_as(self.cluster().expect("cluster exists"))
            .await
    }

    /// One reconcile handed `c` (what a lagging watch cache holds).
    pub(super) async fn reconcile_as(&self, c: EtcdCluster) -> Result<Action, Error> {
        let client = mock_api(self.api.clone());
        let model = self.model.clone();
        let dialed_with = self.dialed_with.clone();
        let connect: Connect = Arc::new(move |dial: Dial| {
            let password = dial.root_password.clone();
            *dialed_with.lock().unwrap() = dial;
            Box::new(ModelApi(model.clone(), password))
        });
        let ctx = Arc::new(Context::new(client, Arc::default(), connect));
        reconcile(Arc::new(c), ctx).await
    }

    /// What the StatefulSet controller and kubelet would do: pods below the
    /// replica count run, so their members start and answer.
    pub(super) fn pods_follow(&self) {
        let n = self.sts_replicas().unwrap_or(0) as u32;
        let mut api = self.api.lock().unwrap();
        let mut revision = String::new();
        if let Some(sts) = api.objects.get_mut(STS_PATH) {
            sts["status"]["replicas"] = json!(n);
            sts["status"]["readyReplicas"] = json!(n);
            revision = sts["status"]["updateRevision"]
                .as_str()
                .unwrap_or("")
                .into();
        }
        api.pods_follow(n, &revision);
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

    /// The founding pods bootstrap through SRV: `n` voters (IDs 0x100..),
    /// not yet named or healthy, with `leader` leading.
    pub(super) fn members_bootstrap(&self, n: u64, leader: u64) {
        let mut m = self.model.lock().unwrap();
        for i in 0..n {
            m.members.push(ListedMember {
                id: 0x100 + i,
                name: String::new(),
                peer_urls: vec![peer(i as u32)],
                client_urls: vec![],
                learner: false,
                healthy: false,
                db_size: None,
                applied: 0,
                revision: 0,
            });
        }
        m.leader = Some(leader);
    }

    pub(super) fn requests(&self, needle: &str) -> Vec<String> {
        let api = self.api.lock().unwrap();
        api.requests
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }

    pub(super) fn set_replicas(&self, n: i32) {
        let mut api = self.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["spec"]["replicas"] = json!(n);
        c["metadata"]["generation"] = json!(c["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
    }

    pub(super) fn voters_and_learners(&self) -> (usize, usize) {
        let m = self.model.lock().unwrap();
        let learners = m.members.iter().filter(|x| x.learner).count();
        (m.members.len() - learners, learners)
    }

    pub(super) fn status(&self) -> EtcdClusterStatus {
        self.cluster()
            .and_then(|c| c.status)
            .expect("status written")
    }

    pub(super) fn has_event(&self, reason: &str) -> bool {
        let api = self.api.lock().unwrap();
        api.objects
            .iter()
            .any(|(k, e)| k.contains("/events/") && e["reason"] == reason)
    }

    pub(super) fn condition(&self, type_: &str) -> Condition {
        self.status()
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }
}

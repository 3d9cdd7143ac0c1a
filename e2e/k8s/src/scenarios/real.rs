//! The scenarios' target on a real cluster, the one `KUBECONFIG` names:
//! the operator is already installed (the chart; `e2e/kind.sh` installs
//! it), members are reached through port-forwards made with the kube
//! client, and faults are made the way a user makes them: a pod deleted
//! with no grace period, a claim deleted with its pod, a NetworkPolicy
//! that denies a pod all traffic.

use super::Target;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// (namespace, pod, port) -> the local address forwarding there and the
/// task accepting its connections.
type Forwards = HashMap<(String, String, u16), (String, tokio::task::JoinHandle<()>)>;

pub struct RealTarget {
    client: kube::Client,
    started: Instant,
    forwards: Mutex<Forwards>,
}

/// Runs `scenario` against the cluster `KUBECONFIG` names (`e2e/kind.sh`
/// makes one and runs these tests against it).
pub fn run<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<RealTarget>, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: these scenarios need a real cluster with the chart installed (e2e/kind.sh makes one)"
    );
    crate::scenario_runtime().block_on(async move {
        let target = Arc::new(RealTarget::connect().await);
        super::run(target, scenario).await;
    });
}

impl RealTarget {
    /// Connects with KUBECONFIG and checks the operator's CRD is installed.
    pub async fn connect() -> RealTarget {
        let client = kube::Client::try_default()
            .await
            .expect("a client from KUBECONFIG");
        let crd = Api::<CustomResourceDefinition>::all(client.clone())
            .get_opt("etcdclusters.ferrocd.dev")
            .await
            .expect("the API server answers");
        assert!(
            crd.is_some(),
            "the EtcdCluster CRD is not installed: install the chart first (helm install ferrocd-operator charts/ferrocd-operator; e2e/kind.sh does)"
        );
        let target = RealTarget {
            client,
            started: Instant::now(),
            forwards: Mutex::new(HashMap::new()),
        };
        target.say("connected to the cluster KUBECONFIG names; operator CRD installed");
        target
    }

    /// A local listener whose every connection is a new port-forward to
    /// `pod`'s `port` (found by name at connect time, so it follows the pod
    /// across restarts).
    async fn forward(&self, ns: &str, pod: &str, port: u16) -> Option<String> {
        let key = (ns.to_string(), pod.to_string(), port);
        if let Some((addr, _)) = self.forwards.lock().ok()?.get(&key) {
            return Some(addr.clone());
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.ok()?;
        let addr = listener.local_addr().ok()?.to_string();
        let pods = Api::<Pod>::namespaced(self.client.clone(), ns);
        let name = pod.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (pods, name) = (pods.clone(), name.clone());
                tokio::spawn(async move {
                    let Ok(mut pf) = pods.portforward(&name, &[port]).await else {
                        return;
                    };
                    if let Some(mut upstream) = pf.take_stream(port) {
                        let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                    }
                    let _ = pf.join().await;
                });
            }
        });
        self.forwards.lock().ok()?.insert(key, (addr.clone(), task));
        Some(addr)
    }
}

impl Drop for RealTarget {
    fn drop(&mut self) {
        if let Ok(f) = self.forwards.lock() {
            for (_, task) in f.values() {
                task.abort();
            }
        }
    }
}

impl Target for RealTarget {
    fn client(&self) -> kube::Client {
        self.client.clone()
    }

    fn say(&self, what: &str) {
        eprintln!("[{:7.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    fn member_image(&self) -> Option<String> {
        std::env::var("FERROCD_E2E_IMAGE").ok()
    }

    async fn member_addr(&self, ns: &str, pod: &Pod, port: u16) -> Option<String> {
        self.forward(ns, pod.metadata.name.as_deref()?, port).await
    }

    async fn kill_member(&self, ns: &str, pod: &str) {
        // No process access from here: the pod goes at once, without its
        // grace period, and the StatefulSet starts it again on its claim.
        let deleted = Api::<Pod>::namespaced(self.client.clone(), ns)
            .delete(
                pod,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                },
            )
            .await;
        match deleted {
            Ok(_) => {}
            // Between the StatefulSet's delete and create: nothing to kill.
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => panic!("delete pod {pod}: {e}"),
        }
    }

    async fn lose_volume(&self, ns: &str, pod: &str) {
        // The claim goes once no pod uses it (pvc-protection). The
        // StatefulSet may recreate the pod before that and bind it to the
        // dying claim; deleting the pod again until the old claim is gone
        // lets the StatefulSet make a fresh one.
        let claims = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns);
        let name = format!("data-{pod}");
        let old = claims
            .get(&name)
            .await
            .expect("the member's claim")
            .metadata
            .uid;
        claims
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete the claim");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            self.kill_member(ns, pod).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = claims.get_opt(&name).await.ok().flatten();
            if now.is_none_or(|c| c.metadata.uid != old) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "claim {name} was not deleted in 180 s"
            );
        }
    }

    async fn isolate(&self, ns: &str, pod: &str, cut: bool) {
        let policies = Api::<NetworkPolicy>::namespaced(self.client.clone(), ns);
        let name = format!("isolate-{pod}");
        if cut {
            let policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {
                    "podSelector": {"matchLabels": {"statefulset.kubernetes.io/pod-name": pod}},
                    "policyTypes": ["Ingress", "Egress"],
                }
            }))
            .expect("NetworkPolicy");
            policies
                .create(&PostParams::default(), &policy)
                .await
                .expect("create the NetworkPolicy (needs a CNI that enforces them)");
        } else {
            policies
                .delete(&name, &DeleteParams::default())
                .await
                .expect("delete the NetworkPolicy");
        }
        // Policies take effect asynchronously in the CNI.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    fn delay_pod_starts(&self, _max: Duration) -> bool {
        false
    }

    fn etcdctl_in_cluster(&self, _ns: &str, _args: &[String]) -> Option<Result<String, String>> {
        None
    }
}

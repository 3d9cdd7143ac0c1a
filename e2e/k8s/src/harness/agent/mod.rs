//! The node agent: a small kubelet. It registers one Node, binds every
//! unscheduled pod to it (there is no scheduler), and runs each pod as real
//! processes: a network namespace on the cluster bridge, the pod's hostname,
//! its volumes bind-mounted at their mount paths (claim directories that
//! outlive the pod, Secrets, emptyDirs), its environment (downward API
//! included, `$(VAR)` expanded) and its exact command and arguments, the
//! image's binaries being ours. It reports pod status and readiness from
//! the pod's probes, restarts crashed or unhealthy containers, and honours
//! graceful deletion.

use super::net::{pod_net, ClusterNet, PodNet, GATEWAY};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Node, PersistentVolumeClaim, Pod, Probe, Secret,
};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod env;
mod pod;
mod probe;
mod status;
mod volume;

pub use env::expand;

pub const NODE: &str = "harness-node";

/// Where the agent keeps pods' files and what it runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Pod directories, claim directories, logs.
    pub root: PathBuf,
    /// Directory whose entries stand for the image's binaries (`ferrocd`, ...).
    pub bin_dir: PathBuf,
    /// The API server as pods reach it.
    pub api_port: u16,
}

struct RunningContainer {
    spec: Container,
    child: Option<Child>,
    restarts: i32,
    started_at: Option<k8s_openapi::jiff::Timestamp>,
    next_start: Instant,
    ready: bool,
    liveness_failures: i32,
    /// Readiness probe failures in a row: as the kubelet, a Ready container
    /// turns unready only after `failureThreshold` of them.
    readiness_failures: i32,
    last_probe: Instant,
    started: bool,
    backoff: Duration,
    /// The last exit: code, message (the termination message file, else
    /// the log's tail after an error, as FallbackToLogsOnError), when.
    last_exit: Option<(i32, String, String)>,
    /// An init container (runs to completion, in order, before the others).
    init: bool,
    /// Exited and not to be restarted (a completed init container, or any
    /// container under restartPolicy Never / OnFailure after success).
    done: bool,
}

struct RunningPod {
    namespace: String,
    name: String,
    uid: String,
    net: PodNet,
    dir: PathBuf,
    containers: Vec<RunningContainer>,
    env: BTreeMap<String, String>,
    mounts: HashMap<String, PathBuf>,
    /// `env[].valueFrom` Secret and ConfigMap key values, read at pod start.
    object_env: HashMap<(String, String), String>,
    /// Always, OnFailure or Never.
    restart_policy: String,
    secrets_refreshed: Instant,
    last_status: Option<serde_json::Value>,
    start_time: k8s_openapi::jiff::Timestamp,
}

/// Everything the agent runs; shared so the harness can stop it all.
#[derive(Default)]
pub struct AgentState {
    pods: HashMap<String, RunningPod>,
    /// Each new pod's containers start after a random delay up to this
    /// (pods starting in random order, as on a busy cluster).
    pub start_jitter: Duration,
}

impl AgentState {
    /// Kills every container (SIGKILL) and removes every pod namespace.
    pub fn kill_all(&mut self) {
        for (_, mut p) in self.pods.drain() {
            for c in &mut p.containers {
                kill(&mut c.child);
            }
        }
    }

    /// PIDs of a pod's running containers (for fault tests).
    pub fn pids(&self, namespace: &str, name: &str) -> Vec<u32> {
        self.pods
            .values()
            .filter(|p| p.namespace == namespace && p.name == name)
            .flat_map(|p| {
                p.containers
                    .iter()
                    .filter_map(|c| c.child.as_ref().map(|c| c.id()))
            })
            .collect()
    }

    /// A disk failure: SIGKILLs the pod's containers and empties its claim
    /// directories; the agent restarts the containers as after any crash.
    pub fn lose_volumes(&mut self, namespace: &str, name: &str, claims_root: &Path) {
        for p in self
            .pods
            .values_mut()
            .filter(|p| p.namespace == namespace && p.name == name)
        {
            for c in p.containers.iter().filter_map(|c| c.child.as_ref()) {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGKILL) };
            }
            for dir in p.mounts.values().filter(|d| d.starts_with(claims_root)) {
                let _ = std::fs::remove_dir_all(dir);
                let _ = std::fs::create_dir_all(dir);
            }
        }
    }

    /// The network namespace of a pod.
    pub fn netns_of(&self, namespace: &str, name: &str) -> Option<String> {
        self.pods
            .values()
            .find(|p| p.namespace == namespace && p.name == name)
            .map(|p| p.net.name.clone())
    }
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

pub struct Agent {
    client: Client,
    net: Arc<ClusterNet>,
    config: AgentConfig,
    pub state: Arc<Mutex<AgentState>>,
}

impl Agent {
    pub fn new(client: Client, net: Arc<ClusterNet>, config: AgentConfig) -> Agent {
        Agent {
            client,
            net,
            config,
            state: Arc::default(),
        }
    }

    /// Registers the Node (ready, at the bridge address).
    pub async fn register(&self) -> Result<(), kube::Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        }))
        .expect("node");
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "harness node agent", "lastHeartbeatTime": now,
                            "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": GATEWAY.to_string()}, {"type": "Hostname", "address": NODE}],
            "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
        }});
        nodes
            .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    /// Runs sync rounds until the task is dropped.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.sync().await {
                tracing::debug!(error = %e, "agent sync");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// One round: bind, start, supervise, stop, report.
    pub async fn sync(&self) -> Result<(), kube::Error> {
        let all: Api<Pod> = Api::all(self.client.clone());
        let pods = all.list(&ListParams::default()).await?.items;
        let mut seen = Vec::new();
        for pod in &pods {
            let (Some(ns), Some(name), Some(uid)) = (
                pod.metadata.namespace.clone(),
                pod.metadata.name.clone(),
                pod.metadata.uid.clone(),
            ) else {
                continue;
            };
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            let spec = pod.spec.clone().unwrap_or_default();
            if spec.node_name.is_none() {
                let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                     "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}});
                let _ = api
                    .create_subresource::<_, serde_json::Value>(
                        "binding",
                        &name,
                        &PostParams::default(),
                        &binding,
                    )
                    .await;
                continue;
            }
            if spec.node_name.as_deref() != Some(NODE) {
                continue;
            }
            seen.push(uid.clone());
            if pod.metadata.deletion_timestamp.is_some() {
                let grace = pod
                    .metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .clamp(0, 60) as u64;
                self.stop(&uid, Duration::from_secs(grace)).await;
                let _ = api
                    .delete(
                        &name,
                        &DeleteParams {
                            grace_period_seconds: Some(0),
                            ..DeleteParams::default()
                        },
                    )
                    .await;
                continue;
            }
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phase == "Succeeded" || phase == "Failed" {
                continue;
            }
            let known = self
                .state
                .lock()
                .map(|s| s.pods.contains_key(&uid))
                .unwrap_or(true);
            if !known {
                if let Err(e) = self.start_pod(pod).await {
                    tracing::warn!(pod = %name, error = %e, "cannot start pod");
                    continue;
                }
            }
            if self.supervise(&uid) {
                self.refresh_secrets(&uid, pod).await;
            }
            let status = self.status_of(&uid);
            if let Some(status) = status {
                let _ = api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&json!({"status": status})),
                    )
                    .await;
            }
        }
        // Pods that are gone: stop what still runs.
        let gone: Vec<String> = self
            .state
            .lock()
            .map(|s| {
                s.pods
                    .keys()
                    .filter(|u| !seen.contains(u))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for uid in gone {
            self.stop(&uid, Duration::ZERO).await;
        }
        self.collect_claims().await?;
        Ok(())
    }

    /// SIGTERM, up to `grace` for the containers to exit, then SIGKILL; the
    /// pod's namespace goes with it.
    async fn stop(&self, uid: &str, grace: Duration) {
        let Some(mut p) = self.state.lock().ok().and_then(|mut s| s.pods.remove(uid)) else {
            return;
        };
        for c in &p.containers {
            if let Some(child) = &c.child {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && p.containers.iter_mut().any(|c| {
                c.child
                    .as_mut()
                    .is_some_and(|ch| matches!(ch.try_wait(), Ok(None)))
            })
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for c in &mut p.containers {
            kill(&mut c.child);
        }
        let _ = std::fs::remove_dir_all(&p.dir);
    }
}

//! The node agent: a small kubelet. It registers one Node, binds every
//! unscheduled pod to it (there is no scheduler), and runs each pod as real
//! processes: a network namespace on the cluster bridge, the pod's hostname,
//! its volumes bind-mounted at their mount paths (claim directories that
//! outlive the pod, Secrets, emptyDirs), its environment (downward API
//! included, `$(VAR)` expanded) and its exact command and arguments, the
//! image's binaries being ours. It reports pod status and readiness from
//! the pod's probes, restarts crashed or unhealthy containers, and honours
//! graceful deletion.

use super::net::{ClusterNet, PodNet, GATEWAY};
use k8s_openapi::api::core::v1::{Container, Node, PersistentVolumeClaim, Pod, Probe, Secret};
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
    last_probe: Instant,
    started: bool,
    backoff: Duration,
    /// The last exit: code, message (the log's tail, as
    /// FallbackToLogsOnError), when.
    last_exit: Option<(i32, String, String)>,
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

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` is a
/// literal `$`, anything else stays as written.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) if env.contains_key(&inner[..end]) => {
                    out.push_str(&env[&inner[..end]]);
                    rest = &inner[end + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// One HTTP GET; true for a 2xx/3xx answer.
fn http_ok(ip: Ipv4Addr, port: u16, path: &str, timeout: Duration) -> bool {
    let addr = SocketAddr::from((ip, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if s.read_exact(&mut head).is_err() {
        return false;
    }
    matches!(head.get(9), Some(b'2') | Some(b'3'))
}

fn probe_port(
    c: &Container,
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> Option<u16> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(p) => Some(*p as u16),
        IntOrString::String(name) => c
            .ports
            .as_ref()?
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port as u16),
    }
}

/// Runs one probe against the pod; `None` when the probe is of a kind the
/// agent does not run (counted as success).
fn run_probe(c: &Container, p: &Probe, ip: Ipv4Addr) -> bool {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(h) = &p.http_get {
        let Some(port) = probe_port(c, &h.port) else {
            return false;
        };
        return http_ok(ip, port, h.path.as_deref().unwrap_or("/"), timeout);
    }
    if let Some(t) = &p.tcp_socket {
        let Some(port) = probe_port(c, &t.port) else {
            return false;
        };
        return TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout).is_ok();
    }
    true
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

    /// Claim directories whose claim was deleted go too (a lost volume).
    async fn collect_claims(&self) -> Result<(), kube::Error> {
        let claims: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let list = claims.list(&ListParams::default()).await?.items;
        let live: Vec<PathBuf> = list
            .iter()
            .filter_map(|c| {
                Some(self.claim_dir(
                    c.metadata.namespace.as_deref()?,
                    c.metadata.name.as_deref()?,
                ))
            })
            .collect();
        let Ok(namespaces) = std::fs::read_dir(self.config.root.join("claims")) else {
            return Ok(());
        };
        for ns in namespaces.flatten() {
            for claim in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                if !live.contains(&claim.path()) {
                    let _ = std::fs::remove_dir_all(claim.path());
                }
            }
        }
        Ok(())
    }

    fn claim_dir(&self, ns: &str, claim: &str) -> PathBuf {
        self.config.root.join("claims").join(ns).join(claim)
    }

    async fn write_secret(&self, ns: &str, secret: &str, dir: &Path) -> Result<(), String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let s = api
            .get(secret)
            .await
            .map_err(|e| format!("Secret {secret}: {e}"))?;
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        for (k, v) in s.data.unwrap_or_default() {
            let path = dir.join(&k);
            if std::fs::read(&path).ok().as_deref() == Some(&v.0[..]) {
                continue;
            }
            // Replace atomically, as the kubelet's symlink swap does.
            let tmp = dir.join(format!(".{k}.tmp"));
            std::fs::write(&tmp, &v.0).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn start_pod(&self, pod: &Pod) -> Result<(), String> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let dir = self.config.root.join("pods").join(&uid);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

        // Volumes: every one is a directory on the host.
        let mut mounts = HashMap::new();
        for v in spec.volumes.clone().unwrap_or_default() {
            let path = if let Some(pvc) = &v.persistent_volume_claim {
                self.claim_dir(&ns, &pvc.claim_name)
            } else if let Some(s) = &v.secret {
                let d = dir.join("secrets").join(&v.name);
                self.write_secret(&ns, s.secret_name.as_deref().unwrap_or_default(), &d)
                    .await?;
                d
            } else {
                dir.join("volumes").join(&v.name)
            };
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            mounts.insert(v.name.clone(), path);
        }

        let hostname = spec.hostname.clone().unwrap_or_else(|| name.clone());
        let fqdn = spec
            .subdomain
            .as_ref()
            .map(|sub| format!("{hostname}.{sub}.{ns}.svc.{}", super::dns::DOMAIN));
        let ip = self.net.allocate();
        let net = PodNet::new(&self.net, ip, &ns, &hostname, fqdn.as_deref())?;

        let mut env = BTreeMap::new();
        env.insert("KUBERNETES_SERVICE_HOST".to_string(), GATEWAY.to_string());
        env.insert(
            "KUBERNETES_SERVICE_PORT".to_string(),
            self.config.api_port.to_string(),
        );
        env.insert("HOSTNAME".to_string(), hostname.clone());
        let jitter = self
            .state
            .lock()
            .map(|s| s.start_jitter)
            .unwrap_or_default();
        let delay = jitter.mul_f64(rand::random::<f64>());
        let mut containers = Vec::new();
        for c in spec.containers.clone() {
            containers.push(RunningContainer {
                spec: c,
                child: None,
                restarts: 0,
                started_at: None,
                next_start: Instant::now() + delay,
                ready: false,
                liveness_failures: 0,
                last_probe: Instant::now(),
                started: false,
                backoff: Duration::from_secs(1),
                last_exit: None,
            });
        }
        let running = RunningPod {
            namespace: ns,
            name,
            uid: uid.clone(),
            net,
            dir,
            containers,
            env,
            mounts,
            secrets_refreshed: Instant::now(),
            last_status: None,
            start_time: k8s_openapi::jiff::Timestamp::now(),
        };
        let mut state = self
            .state
            .lock()
            .map_err(|_| "agent state poisoned".to_string())?;
        state.pods.insert(uid, running);
        Ok(())
    }

    /// The environment of one container (pod-wide values, then its own).
    fn container_env(p: &RunningPod, c: &Container) -> BTreeMap<String, String> {
        let mut env = p.env.clone();
        env.insert(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
        for e in c.env.clone().unwrap_or_default() {
            let value = if let Some(v) = e.value {
                expand(&v, &env)
            } else if let Some(field) = e.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) {
                match field.field_path.as_str() {
                    "metadata.name" => p.name.clone(),
                    "metadata.namespace" => p.namespace.clone(),
                    "metadata.uid" => p.uid.clone(),
                    "status.podIP" => p.net.ip.to_string(),
                    "status.hostIP" => GATEWAY.to_string(),
                    "spec.nodeName" => NODE.to_string(),
                    _ => String::new(),
                }
            } else {
                String::new()
            };
            env.insert(e.name, value);
        }
        env
    }

    fn spawn_container(&self, p: &RunningPod, c: &RunningContainer) -> Result<Child, String> {
        let env = Self::container_env(p, &c.spec);
        let mut argv: Vec<String> = c.spec.command.clone().unwrap_or_default();
        argv.extend(c.spec.args.clone().unwrap_or_default());
        let argv: Vec<String> = argv.iter().map(|a| expand(a, &env)).collect();
        let Some(program) = argv.first() else {
            return Err(format!(
                "container {} has no command (the harness runs no image entrypoints)",
                c.spec.name
            ));
        };
        let bin = self
            .config
            .bin_dir
            .join(program.rsplit('/').next().unwrap_or(program));
        if !bin.exists() {
            return Err(format!("{} is not one of the harness's binaries", program));
        }
        let hostname = env.get("HOSTNAME").cloned().unwrap_or_default();
        let mut script = String::from("set -e\n");
        script.push_str(&format!("hostname {}\n", shell_quote(&hostname)));
        for m in c.spec.volume_mounts.clone().unwrap_or_default() {
            let Some(src) = p.mounts.get(&m.name) else {
                continue;
            };
            let dst = shell_quote(&m.mount_path);
            script.push_str(&format!(
                "mkdir -p {dst}\nmount --bind {} {dst}\n",
                shell_quote(&src.display().to_string())
            ));
            if m.read_only == Some(true) {
                script.push_str(&format!("mount -o remount,bind,ro {dst}\n"));
            }
        }
        script.push_str(&format!("exec {}", shell_quote(&bin.display().to_string())));
        for a in &argv[1..] {
            script.push(' ');
            script.push_str(&shell_quote(a));
        }
        script.push('\n');
        let script_path = p.dir.join(format!("{}.sh", c.spec.name));
        std::fs::write(&script_path, script).map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.dir.join(format!("{}.log", c.spec.name)))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd: Command = p.net.command("unshare");
        cmd.args(["--uts", "--", "/bin/sh"])
            .arg(&script_path)
            .env_clear()
            .envs(&env)
            .stdout(log)
            .stderr(err);
        cmd.spawn()
            .map_err(|e| format!("cannot start {}: {e}", c.spec.name))
    }

    /// Starts, restarts and probes a pod's containers; true when its Secret
    /// volumes are due to be rewritten.
    fn supervise(&self, uid: &str) -> bool {
        {
            let Ok(mut state) = self.state.lock() else {
                return false;
            };
            let Some(p) = state.pods.get_mut(uid) else {
                return false;
            };
            let ip = p.net.ip;
            let mut actions = Vec::new();
            for (i, c) in p.containers.iter_mut().enumerate() {
                if let Some(child) = c.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        tracing::info!(pod = %p.name, container = %c.spec.name, %status, "container exited; restarting");
                        let code = status.code().unwrap_or(137);
                        let log =
                            std::fs::read_to_string(p.dir.join(format!("{}.log", c.spec.name)))
                                .unwrap_or_default();
                        // The kubelet's fallback: the log's last lines, at most 2 KiB.
                        let tail: Vec<&str> = log.lines().rev().take(80).collect();
                        let mut message: String =
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                        if message.len() > 2048 {
                            message = message[message.len() - 2048..].to_string();
                        }
                        c.last_exit = Some((
                            code,
                            message,
                            k8s_openapi::jiff::Timestamp::now().to_string(),
                        ));
                        c.child = None;
                        c.restarts += 1;
                        c.ready = false;
                        c.started = false;
                        c.next_start = Instant::now() + c.backoff;
                        c.backoff = (c.backoff * 2).min(Duration::from_secs(10));
                    }
                }
                if c.child.is_none() && Instant::now() >= c.next_start {
                    actions.push(i);
                }
            }
            for i in actions {
                let spawned = self.spawn_container(p, &p.containers[i]);
                let c = &mut p.containers[i];
                match spawned {
                    Ok(child) => {
                        c.child = Some(child);
                        c.started_at = Some(k8s_openapi::jiff::Timestamp::now());
                        c.liveness_failures = 0;
                        c.last_probe = Instant::now();
                    }
                    Err(e) => {
                        tracing::warn!(pod = %p.name, error = %e, "container not started");
                        c.next_start = Instant::now() + c.backoff;
                    }
                }
            }
            // Probes, each at its period.
            for c in p.containers.iter_mut().filter(|c| c.child.is_some()) {
                let spec = c.spec.clone();
                let period =
                    |pr: &Probe| Duration::from_secs(pr.period_seconds.unwrap_or(10).max(1) as u64);
                let probe_every = [
                    &spec.startup_probe,
                    &spec.readiness_probe,
                    &spec.liveness_probe,
                ]
                .iter()
                .filter_map(|p| p.as_ref().map(period))
                .min()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(2));
                if c.last_probe.elapsed() < probe_every {
                    continue;
                }
                c.last_probe = Instant::now();
                if !c.started {
                    c.started = match &spec.startup_probe {
                        Some(pr) => run_probe(&spec, pr, ip),
                        None => true,
                    };
                    if !c.started {
                        continue;
                    }
                }
                if let Some(pr) = &spec.liveness_probe {
                    if run_probe(&spec, pr, ip) {
                        c.liveness_failures = 0;
                    } else {
                        c.liveness_failures += 1;
                        if c.liveness_failures >= pr.failure_threshold.unwrap_or(3) {
                            tracing::info!(pod = %p.name, container = %spec.name, "liveness probe failed; restarting");
                            kill(&mut c.child);
                            c.restarts += 1;
                            c.ready = false;
                            c.started = false;
                            c.next_start = Instant::now();
                            continue;
                        }
                    }
                }
                c.ready = match &spec.readiness_probe {
                    Some(pr) => run_probe(&spec, pr, ip),
                    None => true,
                };
            }
            if p.secrets_refreshed.elapsed() > Duration::from_secs(5) {
                p.secrets_refreshed = Instant::now();
                return true;
            }
        }
        false
    }

    /// Rewrites a pod's Secret volumes from the API (certificate renewal).
    async fn refresh_secrets(&self, uid: &str, pod: &Pod) {
        let dir = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.pods.get(uid).map(|p| p.dir.clone()));
        let Some(dir) = dir else { return };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        for v in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
        {
            if let Some(secret) = v.secret.and_then(|s| s.secret_name) {
                let _ = self
                    .write_secret(&ns, &secret, &dir.join("secrets").join(&v.name))
                    .await;
            }
        }
    }

    fn status_of(&self, uid: &str) -> Option<serde_json::Value> {
        let mut state = self.state.lock().ok()?;
        let p = state.pods.get_mut(uid)?;
        let ready = p.containers.iter().all(|c| c.ready && c.child.is_some());
        let cond =
            |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }});
        let containers: Vec<serde_json::Value> = p
            .containers
            .iter()
            .map(|c| {
                let state = match (&c.child, &c.started_at) {
                    (Some(_), Some(at)) => json!({"running": {"startedAt": at.to_string()}}),
                    _ => json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                };
                let last_state = match &c.last_exit {
                    Some((code, message, at)) => json!({"terminated": {"exitCode": code, "message": message, "finishedAt": at}}),
                    None => json!({}),
                };
                json!({"name": c.spec.name, "ready": c.ready && c.child.is_some(), "restartCount": c.restarts,
                       "image": c.spec.image.clone().unwrap_or_default(), "imageID": "", "started": c.started,
                       "state": state, "lastState": last_state})
            })
            .collect();
        let status = json!({
            "phase": "Running",
            "podIP": p.net.ip.to_string(),
            "podIPs": [{"ip": p.net.ip.to_string()}],
            "hostIP": GATEWAY.to_string(),
            "startTime": p.start_time.to_string(),
            "conditions": [cond("Initialized", true), cond("PodScheduled", true), cond("ContainersReady", ready), cond("Ready", ready)],
            "containerStatuses": containers,
        });
        if p.last_status.as_ref() == Some(&status) {
            return None;
        }
        p.last_status = Some(status.clone());
        Some(status)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let env = BTreeMap::from([("POD_NAME".to_string(), "demo-0".to_string())]);
        assert_eq!(expand("--name=$(POD_NAME)", &env), "--name=demo-0");
        assert_eq!(
            expand("http://$(POD_NAME).demo:2380", &env),
            "http://demo-0.demo:2380"
        );
        assert_eq!(expand("$(MISSING)", &env), "$(MISSING)");
        assert_eq!(expand("$$(POD_NAME)", &env), "$(POD_NAME)");
        assert_eq!(expand("cost $5", &env), "cost $5");
    }
}

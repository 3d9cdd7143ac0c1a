//! A Kubernetes-shaped local cluster without a container runtime: a real
//! kube-apiserver and kube-controller-manager (their StatefulSet,
//! Deployment, endpoints and garbage-collector controllers act), a node
//! agent that runs every pod as real processes in its own network
//! namespace, and a cluster DNS (dnsmasq) publishing what CoreDNS publishes.
//! Whatever the operator renders runs exactly as rendered.
//!
//! `with_cluster` runs a test inside the cluster's network namespace (the
//! test's sockets live there) and stops and removes everything afterwards,
//! also when the test panics.

pub mod agent;
pub mod dns;
pub mod net;

use crate::control_plane::ControlPlane;
use agent::{Agent, AgentConfig, AgentState};
use dns::ClusterDns;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use kube::api::{Api, ListParams};
use net::{cluster_net, pod_net, ClusterNet, PodNet, GATEWAY};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace's binary `name`, built in the same profile as the caller.
pub fn workspace_bin(name: &str) -> PathBuf {
    ferrocd_testkit::bins::workspace_bin(name, false).unwrap_or_else(|e| panic!("{e}"))
}

pub struct LocalCluster {
    pub cp: ControlPlane,
    pub net: Arc<ClusterNet>,
    pub root: tempfile::TempDir,
    pub agent: Arc<Mutex<AgentState>>,
    _dns: Arc<Mutex<ClusterDns>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
}

/// Runs `test` against a fresh local cluster, inside its network namespace.
pub fn with_cluster<F, Fut>(test: F)
where
    F: FnOnce(Arc<LocalCluster>) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let net = Arc::new(cluster_net().expect("cluster network namespace (needs root and iproute2)"));
    let ns = net.name.clone();
    net::in_netns(&ns, move || {
        // Worker threads are started from this thread, so they inherit its
        // network namespace.
        crate::scenario_runtime().block_on(async move {
            let cluster = Arc::new(LocalCluster::start(net).await);
            test(cluster.clone()).await;
            cluster.stop();
        });
    });
}

impl LocalCluster {
    async fn start(net: Arc<ClusterNet>) -> LocalCluster {
        let started = Instant::now();
        let etcd = ferrocd_testkit::bins::etcd();
        let root = tempfile::tempdir().expect("temp dir");
        let bin_dir = root.path().join("bin");
        std::fs::create_dir_all(&bin_dir).expect("bin dir");
        for name in ["ferrocd", "ferrocd-operator"] {
            std::os::unix::fs::symlink(workspace_bin(name), bin_dir.join(name)).expect("symlink");
        }
        let cp = ControlPlane::start_at(&etcd, Some(net.name.clone()), GATEWAY).await;
        let admin = cp.admin_client();
        let dns_net = net.clone();
        let dns = Arc::new(Mutex::new(ClusterDns::new(
            root.path().join("dns"),
            GATEWAY,
            move || dns_net.command("dnsmasq"),
        )));
        let agent = Agent::new(
            admin.clone(),
            net.clone(),
            AgentConfig {
                root: root.path().join("node"),
                bin_dir,
                api_port: 6443,
            },
        );
        agent.register().await.expect("register the node");
        let state = agent.state.clone();
        let mut tasks = vec![tokio::spawn(agent.run())];
        let publisher = dns.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let services = Api::<Service>::all(admin.clone())
                    .list(&ListParams::default())
                    .await;
                let endpoints = Api::<Endpoints>::all(admin.clone())
                    .list(&ListParams::default())
                    .await;
                if let (Ok(s), Ok(e)) = (services, endpoints) {
                    let records = dns::records(&s.items, &e.items);
                    if let Ok(mut d) = publisher.lock() {
                        d.publish(records);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
        let cluster = LocalCluster {
            cp,
            net,
            root,
            agent: state,
            _dns: dns,
            tasks,
            started,
        };
        cluster.say("control plane, node agent and cluster DNS up");
        cluster
    }

    /// A line of the scenario's timeline on stderr.
    pub fn say(&self, what: &str) {
        eprintln!("[{:7.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    pub fn client(&self) -> kube::Client {
        self.cp.admin_client()
    }

    /// kubectl as the admin; panics with its output when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cp.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\n{out}{err}");
        out
    }

    /// A namespace for clients (etcdctl) on the cluster network, resolving
    /// names as a pod in `kube_ns` does.
    pub fn client_net(&self, kube_ns: &str) -> PodNet {
        pod_net(&self.net, self.net.allocate(), kube_ns, "client", None).expect("client namespace")
    }

    /// A pod's container log.
    pub fn pod_log(&self, pod_uid: &str, container: &str) -> String {
        std::fs::read_to_string(
            self.root
                .path()
                .join("node/pods")
                .join(pod_uid)
                .join(format!("{container}.log")),
        )
        .unwrap_or_default()
    }

    /// Logs of every pod (for a failed test's output).
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        let pods = self.root.path().join("node/pods");
        for pod in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(pod.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if f.path().extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    out.push_str(&format!(
                        "--- {} ---\n{}\n",
                        f.path().display(),
                        lines[lines.len().saturating_sub(30)..].join("\n")
                    ));
                }
            }
        }
        out
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Stops the agent and DNS loops and every pod.
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Ok(mut s) = self.agent.lock() {
            s.kill_all();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs());
        }
        self.stop();
    }
}

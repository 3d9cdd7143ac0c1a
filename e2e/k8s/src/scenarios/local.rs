//! The scenarios' target on the local cluster: the operator installed from
//! deploy/operator.yaml, members reached at their pod addresses (the test
//! runs in the cluster's network namespace), faults made with the node
//! agent's processes, volumes and network namespaces.

use super::Target;
use crate::harness::net::GATEWAY;
use crate::harness::LocalCluster;
use k8s_openapi::api::core::v1::Pod;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct LocalTarget {
    pub cluster: Arc<LocalCluster>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn etcdctl() -> PathBuf {
    let etcd = ferrocd_testkit::bins::etcd();
    etcd.with_file_name("etcdctl")
}

impl LocalTarget {
    /// Installs deploy/operator.yaml and waits until the operator runs.
    pub fn new(cluster: Arc<LocalCluster>) -> LocalTarget {
        let manifest = repo().join("deploy/operator.yaml");
        // Kubernetes 1.20 knows no CEL rules (x-kubernetes-validations): its
        // kubectl refuses them unless --validate=false and its server-side
        // apply refuses them outright; a client-side apply drops them (README).
        cluster.kubectl(&[
            "apply",
            "--validate=false",
            "-f",
            &manifest.display().to_string(),
        ]);
        cluster.kubectl(&[
            "wait",
            "--for=condition=established",
            "crd/etcdclusters.ferrocd.dev",
            "crd/etcdbackups.ferrocd.dev",
            "--timeout=60s",
        ]);
        cluster.kubectl(&[
            "-n",
            "ferrocd-system",
            "rollout",
            "status",
            "deployment/ferrocd-operator",
            "--timeout=120s",
        ]);
        cluster.say("operator running (deploy/operator.yaml)");
        LocalTarget { cluster }
    }

    fn netns_of(&self, ns: &str, pod: &str) -> String {
        self.cluster
            .agent
            .lock()
            .expect("agent")
            .netns_of(ns, pod)
            .unwrap_or_else(|| panic!("{pod} does not run"))
    }
}

impl Target for LocalTarget {
    fn client(&self) -> kube::Client {
        self.cluster.client()
    }

    fn say(&self, what: &str) {
        self.cluster.say(what);
    }

    fn member_image(&self) -> Option<String> {
        None
    }

    async fn member_addr(&self, _ns: &str, pod: &Pod, port: u16) -> Option<String> {
        let ip = pod.status.as_ref()?.pod_ip.as_ref()?;
        Some(format!("{ip}:{port}"))
    }

    async fn kill_member(&self, ns: &str, pod: &str) {
        let pids = self.cluster.agent.lock().expect("agent").pids(ns, pod);
        assert_eq!(pids.len(), 1, "{pod}: one container process");
        // SAFETY: kill(2) on a process the harness started.
        unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGKILL) };
    }

    async fn lose_volume(&self, ns: &str, pod: &str) {
        let claims = self.cluster.root().join("node/claims");
        self.cluster
            .agent
            .lock()
            .expect("agent")
            .lose_volumes(ns, pod, &claims);
    }

    async fn isolate(&self, ns: &str, pod: &str, cut: bool) {
        let netns = self.netns_of(ns, pod);
        let gateway = GATEWAY.to_string();
        let steps: Vec<Vec<&str>> = if cut {
            vec![vec!["ip", "link", "set", "eth0", "down"]]
        } else {
            // The default route went with the link.
            vec![
                vec!["ip", "link", "set", "eth0", "up"],
                vec!["ip", "route", "add", "default", "via", &gateway],
            ]
        };
        for args in steps {
            let ok = std::process::Command::new("ip")
                .args(["netns", "exec", &netns])
                .args(&args)
                .status()
                .expect("ip")
                .success();
            assert!(ok, "{args:?} in {netns}");
        }
    }

    fn delay_pod_starts(&self, max: Duration) -> bool {
        self.cluster.agent.lock().expect("agent").start_jitter = max;
        true
    }

    fn etcdctl_in_cluster(&self, ns: &str, args: &[String]) -> Option<Result<String, String>> {
        let client = self.cluster.client_net(ns);
        let out = client
            .command(etcdctl())
            .args(["--dial-timeout=5s", "--command-timeout=10s"])
            .args(args)
            .output()
            .expect("etcdctl");
        Some(if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "etcdctl {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        })
    }
}

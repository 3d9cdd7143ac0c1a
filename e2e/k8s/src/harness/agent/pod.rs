//! Running a pod: its network namespace, hostname, mounts and containers;
//! supervising them (probes, restarts).

use super::env::shell_quote;
use super::probe::run_probe;
use super::*;

impl Agent {
    pub(super) async fn start_pod(&self, pod: &Pod) -> Result<(), String> {
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
            .map(|sub| format!("{hostname}.{sub}.{ns}.svc.{}", crate::harness::dns::DOMAIN));
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

    pub(super) fn spawn_container(
        &self,
        p: &RunningPod,
        c: &RunningContainer,
    ) -> Result<Child, String> {
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
    pub(super) fn supervise(&self, uid: &str) -> bool {
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
}

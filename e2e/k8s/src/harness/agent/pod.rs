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
                self.claim_dir(&ns, &pvc.claim_name).await?
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
        let net = pod_net(&self.net, ip, &ns, &hostname, fqdn.as_deref())?;

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
        let inits = spec.init_containers.clone().unwrap_or_default();
        let mut containers = Vec::new();
        let mut object_env = HashMap::new();
        for (c, init) in inits
            .into_iter()
            .map(|c| (c, true))
            .chain(spec.containers.clone().into_iter().map(|c| (c, false)))
        {
            for var in c.env.clone().unwrap_or_default() {
                if let Some(value) = self.env_from_object(&ns, &var).await? {
                    object_env.insert((c.name.clone(), var.name.clone()), value);
                }
            }
            containers.push(RunningContainer {
                spec: c,
                child: None,
                restarts: 0,
                started_at: None,
                next_start: Instant::now() + delay,
                ready: false,
                liveness_failures: 0,
                readiness_failures: 0,
                last_probe: Instant::now(),
                started: false,
                backoff: Duration::from_secs(1),
                last_exit: None,
                init,
                done: false,
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
            object_env,
            restart_policy: spec
                .restart_policy
                .clone()
                .unwrap_or_else(|| "Always".into()),
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

    /// An env var's value from a Secret or ConfigMap key (read at pod
    /// start, as the kubelet does); `None` for other sources and for a
    /// missing optional key. A missing required key keeps the pod from
    /// starting.
    async fn env_from_object(
        &self,
        ns: &str,
        var: &k8s_openapi::api::core::v1::EnvVar,
    ) -> Result<Option<String>, String> {
        let Some(from) = &var.value_from else {
            return Ok(None);
        };
        let (kind, name, key, optional, data) = if let Some(r) = &from.secret_key_ref {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            let data = api
                .get_opt(&r.name)
                .await
                .map_err(|e| e.to_string())?
                .map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect::<BTreeMap<_, _>>()
                });
            ("Secret", &r.name, &r.key, r.optional, data)
        } else if let Some(r) = &from.config_map_key_ref {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
            let data = api
                .get_opt(&r.name)
                .await
                .map_err(|e| e.to_string())?
                .map(|c| c.data.unwrap_or_default());
            ("ConfigMap", &r.name, &r.key, r.optional, data)
        } else {
            return Ok(None);
        };
        match data.and_then(|d| d.get(key).cloned()) {
            Some(v) => Ok(Some(v)),
            None if optional == Some(true) => Ok(None),
            None => Err(format!("{kind} {name} has no key {key} (env {})", var.name)),
        }
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
        // The termination message file: the pod's own, over the path the
        // container names (created empty on the host once, as a mount point).
        let message_path = c
            .spec
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let message_file = p.dir.join(format!("{}.termination-log", c.spec.name));
        std::fs::write(&message_file, b"").map_err(|e| e.to_string())?;
        let dst = shell_quote(&message_path);
        script.push_str(&format!(
            "[ -e {dst} ] || touch {dst}\nmount --bind {} {dst}\n",
            shell_quote(&message_file.display().to_string())
        ));
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
            let policy = p.restart_policy.clone();
            let mut actions = Vec::new();
            for c in p.containers.iter_mut() {
                let Some(child) = c.child.as_mut() else {
                    continue;
                };
                let Ok(Some(status)) = child.try_wait() else {
                    continue;
                };
                let code = status.code().unwrap_or(137);
                let message = termination_message(&p.dir, &c.spec, code);
                c.last_exit = Some((
                    code,
                    message,
                    k8s_openapi::jiff::Timestamp::now().to_string(),
                ));
                c.child = None;
                c.ready = false;
                c.started = false;
                let restart = match (c.init, policy.as_str()) {
                    (_, "Never") => false,
                    (true, _) | (false, "OnFailure") => code != 0,
                    (false, _) => true,
                };
                if restart {
                    tracing::info!(pod = %p.name, container = %c.spec.name, %status, "container exited; restarting");
                    c.restarts += 1;
                    c.next_start = Instant::now() + c.backoff;
                    c.backoff = (c.backoff * 2).min(Duration::from_secs(10));
                } else {
                    tracing::info!(pod = %p.name, container = %c.spec.name, %status, "container exited");
                    c.done = true;
                }
            }
            // Init containers one at a time, in order; the others once all
            // of them have succeeded.
            let next_init = p.containers.iter().position(|c| c.init && !c.done);
            let init_failed = p
                .containers
                .iter()
                .any(|c| c.init && c.done && exit_code(c) != Some(0));
            for (i, c) in p.containers.iter().enumerate() {
                let turn = match next_init {
                    Some(n) => i == n,
                    None => !c.init && !init_failed,
                };
                if turn && !c.done && c.child.is_none() && Instant::now() >= c.next_start {
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
                        c.readiness_failures = 0;
                        c.last_probe = Instant::now();
                    }
                    Err(e) => {
                        tracing::warn!(pod = %p.name, error = %e, "container not started");
                        c.next_start = Instant::now() + c.backoff;
                    }
                }
            }
            // Probes, each at its period.
            for c in p
                .containers
                .iter_mut()
                .filter(|c| c.child.is_some() && !c.init)
            {
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
                match &spec.readiness_probe {
                    Some(pr) if run_probe(&spec, pr, ip) => {
                        c.readiness_failures = 0;
                        c.ready = true;
                    }
                    Some(pr) => {
                        c.readiness_failures += 1;
                        if c.readiness_failures >= pr.failure_threshold.unwrap_or(3) {
                            c.ready = false;
                        }
                    }
                    None => c.ready = true,
                }
            }
            if p.secrets_refreshed.elapsed() > Duration::from_secs(5) {
                p.secrets_refreshed = Instant::now();
                return true;
            }
        }
        false
    }
}

/// The code of a container's last exit.
pub(super) fn exit_code(c: &RunningContainer) -> Option<i32> {
    c.last_exit.as_ref().map(|(code, _, _)| *code)
}

/// What the kubelet reports as a terminated container's message: the
/// termination message file, else (FallbackToLogsOnError, after a failure)
/// the log's last lines; at most 4 KiB, the kubelet's limit.
fn termination_message(dir: &Path, spec: &Container, code: i32) -> String {
    let file = std::fs::read_to_string(dir.join(format!("{}.termination-log", spec.name)))
        .unwrap_or_default();
    let mut message = if !file.is_empty() {
        file
    } else if code != 0
        && spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
    {
        let log =
            std::fs::read_to_string(dir.join(format!("{}.log", spec.name))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    } else {
        String::new()
    };
    if message.len() > 4096 {
        let cut = message.len() - 4096;
        let cut = (cut..message.len())
            .find(|i| message.is_char_boundary(*i))
            .unwrap_or(cut);
        message = message[cut..].to_string();
    }
    message
}

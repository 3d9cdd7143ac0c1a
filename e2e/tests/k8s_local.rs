//! Scenarios on the local Kubernetes-shaped cluster (ferrocd_e2e::harness):
//! `kubectl apply` the operator's manifests and an EtcdCluster, and the
//! operator (itself a pod, with its service account and RBAC) runs ferrocd
//! members as pods that find each other through the cluster DNS's SRV
//! records. Each scenario prints its timeline on stderr.

use ferrocd_e2e::harness::{with_cluster, LocalCluster};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn etcdctl() -> PathBuf {
    let etcd = ferrocd_e2e::cluster::find_etcd(None).expect("etcd 3.5");
    etcd.with_file_name("etcdctl")
}

/// Installs deploy/operator.yaml and waits until the operator pod is ready.
fn install_operator(c: &LocalCluster) {
    let manifest = repo().join("deploy/operator.yaml");
    // Kubernetes 1.20 knows no CEL rules (x-kubernetes-validations): its
    // kubectl refuses them unless --validate=false and its server-side apply
    // refuses them outright; a client-side apply drops them (README).
    c.kubectl(&[
        "apply",
        "--validate=false",
        "-f",
        &manifest.display().to_string(),
    ]);
    c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/etcdclusters.ferrocd.dev",
        "--timeout=60s",
    ]);
    c.kubectl(&[
        "-n",
        "ferrocd-system",
        "rollout",
        "status",
        "deployment/ferrocd-operator",
        "--timeout=120s",
    ]);
    c.say("operator running (deploy/operator.yaml)");
}

fn get_json(c: &LocalCluster, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&c.kubectl(&full)).expect("kubectl json")
}

/// Polls the EtcdCluster until `done` holds for its status; the status.
async fn wait_status(
    c: &LocalCluster,
    ns: &str,
    name: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let obj = get_json(c, &["etcd", name, "-n", ns]);
        if done(&obj["status"]) {
            return obj["status"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {secs} s; status: {}",
            serde_json::to_string_pretty(&obj["status"]).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn running_with(n: usize) -> impl Fn(&Value) -> bool {
    move |s: &Value| {
        s["phase"] == "Running"
            && s["readyReplicas"] == n
            && s["members"].as_array().is_some_and(|m| {
                m.len() == n
                    && m.iter()
                        .all(|m| m["healthy"] == true && m["learner"] != true)
            })
    }
}

fn cluster_manifest(ns: &str, name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: ferrocd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  storage:\n    size: 1Gi\n"
    )
}

fn apply(c: &LocalCluster, yaml: &str) {
    let path = c
        .root()
        .join(format!("manifest-{:08x}.yaml", rand::random::<u32>()));
    std::fs::write(&path, yaml).expect("manifest");
    c.kubectl(&["apply", "-f", &path.display().to_string()]);
}

/// etcdctl 3.5 from a client namespace on the cluster network, finding the
/// members through `_etcd-client._tcp.<srv>`.
fn etcdctl_srv(c: &LocalCluster, kube_ns: &str, srv: &str, args: &[&str]) -> String {
    let client = c.client_net(kube_ns);
    let out = client
        .command(etcdctl())
        .arg(format!("--discovery-srv={srv}"))
        .args(args)
        .output()
        .expect("etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn create_3_members_that_form_one_cluster_reachable_through_srv() {
    with_cluster(|c| async move {
        install_operator(&c);
        c.kubectl(&["create", "namespace", "apps"]);
        apply(&c, &cluster_manifest("apps", "demo", 3));
        c.say("EtcdCluster apps/demo applied (3 members)");
        let status = wait_status(
            &c,
            "apps",
            "demo",
            180,
            "3 members Running",
            running_with(3),
        )
        .await;
        c.say("all 3 members Ready and healthy");
        assert!(
            status["clusterId"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{status}"
        );
        assert!(
            status["leader"]
                .as_str()
                .is_some_and(|l| l.starts_with("demo-")),
            "{status}"
        );

        let srv = "demo.apps.svc.cluster.local";
        let list: Value = serde_json::from_str(&etcdctl_srv(
            &c,
            "apps",
            srv,
            &["member", "list", "-w", "json"],
        ))
        .expect("json");
        let members = list["members"].as_array().expect("members");
        assert_eq!(members.len(), 3, "{list}");
        let mut names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["demo-0", "demo-1", "demo-2"]);
        // One cluster: every member reports the same cluster ID.
        let health = etcdctl_srv(
            &c,
            "apps",
            srv,
            &["endpoint", "status", "--cluster", "-w", "json"],
        );
        let statuses: Value = serde_json::from_str(&health).expect("json");
        let ids: std::collections::BTreeSet<u64> = statuses
            .as_array()
            .expect("statuses")
            .iter()
            .filter_map(|s| s["Status"]["header"]["cluster_id"].as_u64())
            .collect();
        assert_eq!(ids.len(), 1, "{health}");
        etcdctl_srv(&c, "apps", srv, &["put", "greeting", "hello"]);
        let got = etcdctl_srv(&c, "apps", srv, &["get", "greeting", "--print-value-only"]);
        assert_eq!(got.trim(), "hello");
        c.say("etcdctl --discovery-srv: member list, endpoint status, put/get");
    });
}

/// Installs the operator and a running `apps/demo` of `n` members.
async fn running_cluster(c: &LocalCluster, n: u32) {
    install_operator(c);
    c.kubectl(&["create", "namespace", "apps"]);
    apply(c, &cluster_manifest("apps", "demo", n));
    wait_status(
        c,
        "apps",
        "demo",
        180,
        "members Running",
        running_with(n as usize),
    )
    .await;
    c.say(&format!("apps/demo running with {n} members"));
}

/// The member pods' addresses, by pod name.
fn pod_ips(c: &LocalCluster) -> Vec<(String, String)> {
    let pods = get_json(c, &["pods", "-n", "apps", "-l", "ferrocd.dev/cluster=demo"]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                p["status"]["podIP"].as_str()?.to_string(),
            ))
        })
        .collect()
}

async fn kv_at(
    ip: &str,
) -> Option<ferrocd::proto::etcdserverpb::kv_client::KvClient<tonic::transport::Channel>> {
    let ep = tonic::transport::Endpoint::from_shared(format!("http://{ip}:2379"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(3));
    Some(ferrocd::proto::etcdserverpb::kv_client::KvClient::new(
        ep.connect().await.ok()?,
    ))
}

/// Reads `key` linearizably from any member that answers.
async fn read_key(c: &LocalCluster, key: &str) -> Option<Vec<u8>> {
    for (_, ip) in pod_ips(c) {
        let Some(mut kv) = kv_at(&ip).await else {
            continue;
        };
        let req = ferrocd::proto::etcdserverpb::RangeRequest {
            key: key.into(),
            ..Default::default()
        };
        if let Ok(r) = kv.range(req).await {
            return Some(
                r.into_inner()
                    .kvs
                    .first()
                    .map(|kv| kv.value.clone())
                    .unwrap_or_default(),
            );
        }
    }
    None
}

async fn write_key(c: &LocalCluster, key: &str, value: &str) -> bool {
    for (_, ip) in pod_ips(c) {
        let Some(mut kv) = kv_at(&ip).await else {
            continue;
        };
        let req = ferrocd::proto::etcdserverpb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        if kv.put(req).await.is_ok() {
            return true;
        }
    }
    false
}

#[test]
fn scale_3_to_5_to_3_by_editing_replicas() {
    with_cluster(|c| async move {
        running_cluster(&c, 3).await;
        assert!(write_key(&c, "before-scaling", "kept").await);
        for (replicas, what) in [(5u32, "scaled out to 5"), (3, "scaled in to 3")] {
            c.kubectl(&[
                "-n",
                "apps",
                "patch",
                "etcd",
                "demo",
                "--type=merge",
                "-p",
                &format!("{{\"spec\":{{\"replicas\":{replicas}}}}}"),
            ]);
            let mut last = String::new();
            let deadline = Instant::now() + Duration::from_secs(240);
            loop {
                let obj = get_json(&c, &["etcd", "demo", "-n", "apps"]);
                let s = &obj["status"];
                let members = s["members"].as_array().map(|m| m.len()).unwrap_or(0);
                let learners = s["members"]
                    .as_array()
                    .map(|m| m.iter().filter(|m| m["learner"] == true).count())
                    .unwrap_or(0);
                let now = format!(
                    "phase {} sts {} members {members} learners {learners} ready {}",
                    s["phase"], s["replicas"], s["readyReplicas"]
                );
                if now != last {
                    c.say(&now);
                    last = now;
                }
                if running_with(replicas as usize)(s) && s["replicas"] == replicas {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: not done; {}",
                    serde_json::to_string_pretty(s).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            c.say(what);
        }
        assert_eq!(
            read_key(&c, "before-scaling").await.as_deref(),
            Some(&b"kept"[..])
        );
        let pods = pod_ips(&c);
        let mut names: Vec<&str> = pods.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["demo-0", "demo-1", "demo-2"]);
    });
}

#[test]
fn a_member_killed_with_sigkill_restarts_with_its_data() {
    with_cluster(|c| async move {
        running_cluster(&c, 3).await;
        assert!(write_key(&c, "survives", "yes").await);
        let pids = c.agent.lock().expect("agent").pids("apps", "demo-1");
        assert_eq!(pids.len(), 1);
        // SAFETY: kill(2) on a process the harness started.
        unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGKILL) };
        c.say("demo-1 killed with SIGKILL");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let pod = get_json(&c, &["pod", "demo-1", "-n", "apps"]);
            let restarts = pod["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0);
            let s = get_json(&c, &["etcd", "demo", "-n", "apps"])["status"].clone();
            if restarts >= 1 && running_with(3)(&s) {
                break;
            }
            assert!(Instant::now() < deadline, "demo-1 did not come back: {pod}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        c.say("demo-1 restarted by the node agent and healthy again");
        assert_eq!(read_key(&c, "survives").await.as_deref(), Some(&b"yes"[..]));
        let new_pid = c.agent.lock().expect("agent").pids("apps", "demo-1");
        assert_ne!(new_pid, pids, "no new process");
    });
}

#[test]
fn rolling_restart_while_clients_write_loses_no_acknowledged_write() {
    with_cluster(|c| async move {
        running_cluster(&c, 3).await;
        let before: Vec<String> = pod_uids(&c);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let c = c.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut acked, mut failed) = (Vec::new(), 0u32);
                let mut i = 0u32;
                let mut kv = None;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // One connection until it fails, then any member again.
                    if kv.is_none() {
                        for (_, ip) in pod_ips(&c) {
                            kv = kv_at(&ip).await;
                            if kv.is_some() {
                                break;
                            }
                        }
                    }
                    let key = format!("w{i:05}");
                    let put = ferrocd::proto::etcdserverpb::PutRequest {
                        key: key.clone().into(),
                        value: b"v".to_vec(),
                        ..Default::default()
                    };
                    let ok = match kv.as_mut() {
                        Some(client) => client.put(put).await.is_ok(),
                        None => false,
                    };
                    if ok {
                        acked.push(key);
                    } else {
                        failed += 1;
                        kv = None;
                    }
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (acked, failed)
            })
        };
        c.kubectl(&["-n", "apps", "rollout", "restart", "statefulset/demo"]);
        c.say("kubectl rollout restart statefulset/demo");
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let now = pod_uids(&c);
            let replaced = now.iter().filter(|u| !before.contains(u)).count();
            let s = get_json(&c, &["etcd", "demo", "-n", "apps"])["status"].clone();
            if replaced == 3 && running_with(3)(&s) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rolling restart not done: {replaced} of 3 pods replaced"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        c.say("every pod replaced, cluster healthy");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (acked, failed) = writer.await.expect("writer");
        c.say(&format!(
            "{} writes acknowledged, {failed} failed during the restart",
            acked.len()
        ));
        assert!(acked.len() > 10, "the writer made no progress");
        // One linearizable range over the writer's keys, on every member.
        for (pod, ip) in pod_ips(&c) {
            let mut kv = kv_at(&ip)
                .await
                .unwrap_or_else(|| panic!("{pod} unreachable"));
            let req = ferrocd::proto::etcdserverpb::RangeRequest {
                key: b"w".to_vec(),
                range_end: b"x".to_vec(),
                keys_only: true,
                ..Default::default()
            };
            let stored: std::collections::BTreeSet<String> = kv
                .range(req)
                .await
                .expect("range")
                .into_inner()
                .kvs
                .into_iter()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                .collect();
            let lost: Vec<&String> = acked.iter().filter(|k| !stored.contains(*k)).collect();
            assert!(lost.is_empty(), "{pod} lacks acknowledged writes {lost:?}");
        }
    });
}

/// Waits until `pod`'s own store (a serializable read, answered by the
/// member itself) holds `want` keys in [start, end).
async fn wait_local_count(c: &LocalCluster, pod: &str, start: &[u8], end: &[u8], want: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ip = pod_ips(c)
            .into_iter()
            .find(|(p, _)| p == pod)
            .map(|(_, ip)| ip);
        let req = ferrocd::proto::etcdserverpb::RangeRequest {
            key: start.to_vec(),
            range_end: end.to_vec(),
            serializable: true,
            count_only: true,
            ..Default::default()
        };
        let count = match ip {
            Some(ip) => match kv_at(&ip).await {
                Some(mut kv) => kv
                    .range(req)
                    .await
                    .map(|r| r.into_inner().count)
                    .unwrap_or(-1),
                None => -1,
            },
            None => -1,
        };
        if count == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pod} holds {count} of {want} keys"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pod_uids(c: &LocalCluster) -> Vec<String> {
    let pods = get_json(c, &["pods", "-n", "apps", "-l", "ferrocd.dev/cluster=demo"]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn create_with_pods_starting_in_random_order_and_late() {
    with_cluster(|c| async move {
        c.agent.lock().expect("agent").start_jitter = Duration::from_secs(6);
        install_operator(&c);
        c.kubectl(&["create", "namespace", "apps"]);
        apply(&c, &cluster_manifest("apps", "demo", 3));
        c.say("EtcdCluster applied; each pod starts up to 6 s late, in random order");
        let status = wait_status(
            &c,
            "apps",
            "demo",
            240,
            "3 members Running",
            running_with(3),
        )
        .await;
        c.say("all 3 members Ready and healthy");
        // Members that waited for each other's records formed one cluster.
        let ids: std::collections::BTreeSet<String> = pod_ips(&c)
            .into_iter()
            .map(|(pod, ip)| {
                let out = std::process::Command::new(etcdctl())
                    .args([
                        &format!("--endpoints=http://{ip}:2379"),
                        "endpoint",
                        "status",
                        "-w",
                        "json",
                    ])
                    .output()
                    .expect("etcdctl");
                let v: Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|_| panic!("{pod}: {}", String::from_utf8_lossy(&out.stderr)));
                v[0]["Status"]["header"]["cluster_id"].to_string()
            })
            .collect();
        assert_eq!(ids.len(), 1, "members in different clusters: {ids:?}");
        assert!(status["clusterId"].is_string());
    });
}

#[test]
fn a_partitioned_member_catches_up_after_healing() {
    with_cluster(|c| async move {
        running_cluster(&c, 3).await;
        let ns = c
            .agent
            .lock()
            .expect("agent")
            .netns_of("apps", "demo-2")
            .expect("demo-2 runs");
        let run_in = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(args)
                .status()
                .expect("ip")
                .success();
            assert!(ok, "{args:?}");
        };
        run_in(&["ip", "link", "set", "eth0", "down"]);
        c.say("demo-2 cut off (its link down)");
        let others: Vec<(String, String)> = pod_ips(&c)
            .into_iter()
            .filter(|(p, _)| p != "demo-2")
            .collect();
        let mut written = 0;
        for i in 0..20 {
            for (_, ip) in &others {
                if let Some(mut kv) = kv_at(ip).await {
                    let put = ferrocd::proto::etcdserverpb::PutRequest {
                        key: format!("p{i:02}").into(),
                        value: b"v".to_vec(),
                        ..Default::default()
                    };
                    if kv.put(put).await.is_ok() {
                        written += 1;
                        break;
                    }
                }
            }
        }
        assert_eq!(written, 20, "the majority side did not take writes");
        c.say("20 writes on the majority side");
        wait_status(&c, "apps", "demo", 60, "demo-2 reported unhealthy", |s| {
            s["members"].as_array().is_some_and(|m| {
                m.iter()
                    .any(|m| m["name"] == "demo-2" && m["healthy"] == false)
            })
        })
        .await;
        run_in(&["ip", "link", "set", "eth0", "up"]);
        run_in(&["ip", "route", "add", "default", "via", "10.77.0.1"]);
        c.say("demo-2 healed");
        wait_status(
            &c,
            "apps",
            "demo",
            120,
            "3 members Running again",
            running_with(3),
        )
        .await;
        // demo-2's own copy (a serializable read answered locally) has them all.
        wait_local_count(&c, "demo-2", b"p", b"q", 20).await;
        c.say("demo-2 caught up: 20 of 20 keys in its own store");
    });
}

#[test]
fn a_tls_cluster_serves_clients_with_certificates_from_its_ca() {
    with_cluster(|c| async move {
        install_operator(&c);
        c.kubectl(&["create", "namespace", "apps"]);
        apply(
            &c,
            "apiVersion: ferrocd.dev/v1alpha1\nkind: EtcdCluster\nmetadata:\n  name: demo\n  namespace: apps\nspec:\n  replicas: 3\n  tls:\n    mode: OperatorManaged\n",
        );
        c.say("TLS EtcdCluster applied");
        wait_status(
            &c,
            "apps",
            "demo",
            180,
            "3 TLS members Running",
            running_with(3),
        )
        .await;
        c.say("3 TLS members Ready; the operator reached them with its client certificate");
        let secret = get_json(&c, &["secret", "demo-tls", "-n", "apps"]);
        let dir = c.root().join("client-certs");
        std::fs::create_dir_all(&dir).expect("dir");
        for key in ["tls.crt", "tls.key", "ca.crt"] {
            let b64 = secret["data"][key].as_str().expect("secret key");
            let out = std::process::Command::new("base64")
                .arg("-d")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(b64.as_bytes())?;
                    child.wait_with_output()
                })
                .expect("base64");
            std::fs::write(dir.join(key), out.stdout).expect("write");
        }
        let path = |f: &str| dir.join(f).display().to_string();
        let srv = "demo.apps.svc.cluster.local";
        let args = [
            format!("--cacert={}", path("ca.crt")),
            format!("--cert={}", path("tls.crt")),
            format!("--key={}", path("tls.key")),
        ];
        let mut list_args: Vec<&str> = args.iter().map(String::as_str).collect();
        list_args.extend(["member", "list", "-w", "json"]);
        let list: Value =
            serde_json::from_str(&etcdctl_srv(&c, "apps", srv, &list_args)).expect("json");
        let urls: Vec<&str> = list["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter_map(|m| m["clientURLs"][0].as_str())
            .collect();
        assert_eq!(urls.len(), 3);
        assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");
        // Without a client certificate the members refuse.
        let client = c.client_net("apps");
        let refused = client
            .command(etcdctl())
            .args([
                &format!("--discovery-srv={srv}"),
                &args[0],
                "--dial-timeout=3s",
                "--command-timeout=5s",
                "get",
                "x",
            ])
            .output()
            .expect("etcdctl");
        assert!(
            !refused.status.success(),
            "served a client without a certificate"
        );
        c.say("etcdctl through _etcd-client-ssl: served with a CA-issued certificate, refused without");
    });
}

#[test]
fn a_member_whose_volume_was_lost_is_replaced_by_a_new_member() {
    with_cluster(|c| async move {
        running_cluster(&c, 3).await;
        for i in 0..20 {
            assert!(write_key(&c, &format!("k{i:02}"), "v").await);
        }
        let old_id = get_json(&c, &["etcd", "demo", "-n", "apps"])["status"]["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == "demo-1"))
            .and_then(|m| m["id"].as_str())
            .expect("demo-1's member ID")
            .to_string();
        let claims = c.root().join("node/claims");
        c.agent
            .lock()
            .expect("agent")
            .lose_volumes("apps", "demo-1", &claims);
        c.say("demo-1's volume lost (emptied) and its process killed");
        let status = wait_status(
            &c,
            "apps",
            "demo",
            180,
            "demo-1 replaced by a new member",
            |s| {
                running_with(3)(s)
                    && s["members"].as_array().is_some_and(|m| {
                        m.iter()
                            .any(|m| m["name"] == "demo-1" && m["id"] != old_id.as_str())
                    })
            },
        )
        .await;
        c.say("demo-1 replaced: removed, added back as a learner, promoted");
        assert_eq!(status["members"].as_array().map(Vec::len), Some(3));
        wait_local_count(&c, "demo-1", b"k", b"l", 20).await;
        c.say("the new demo-1 holds all 20 keys");
    });
}

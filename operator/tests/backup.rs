//! What backup Jobs and restore init containers run (`ferrocd-operator
//! backup save|verify|restore`), against real parts: a SeaweedFS S3 server,
//! 3-member ferrocd clusters under writes, etcd 3.5 (a migration's source),
//! all on loopback addresses of each test's own.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrocd_operator::backup::record::{Report, Taken};
use ferrocd_operator::backup::store::{Location, S3Target};
use ferrocd_proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use ferrocd_testkit::grpc::Client;
use ferrocd_testkit::process::Process;
use ferrocd_testkit::s3::{SeaweedFs, ACCESS_KEY, BUCKET, SECRET_KEY};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    ferrocd_testkit::bins::workspace_bin(name, false).unwrap_or_else(|e| panic!("{e}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A static cluster of `n` members of `server` (ferrocd or etcd 3.5) on
/// 127.a.b.1..n; processes killed and reaped on drop.
struct Members {
    ips: Vec<Ipv4Addr>,
    _procs: Vec<Process>,
}

impl Members {
    /// Starts members on the data dirs `dir/m<i>` (fresh, or restored:
    /// then the bootstrap flags are ignored), on `ips` or new addresses.
    fn start(server: &Path, n: u8, dir: &Path, ips: Option<Vec<Ipv4Addr>>) -> Members {
        let ips = ips.unwrap_or_else(|| ferrocd_testkit::addr::loopback_ips(n, &[2379, 2380]));
        std::fs::create_dir_all(dir).expect("members dir");
        let cluster = initial_cluster(&ips);
        let procs = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let mut cmd = Command::new(server);
                cmd.args([
                    format!("--name=m-{i}"),
                    format!("--data-dir={}", dir.join(format!("m{i}")).display()),
                    format!("--listen-peer-urls=http://{ip}:2380"),
                    format!("--initial-advertise-peer-urls=http://{ip}:2380"),
                    format!("--listen-client-urls=http://{ip}:2379"),
                    format!("--advertise-client-urls=http://{ip}:2379"),
                    format!("--initial-cluster={cluster}"),
                    "--initial-cluster-token=backup-test".into(),
                    "--initial-cluster-state=new".into(),
                ]);
                Process::spawn(cmd, &dir.join(format!("m{i}.log")))
            })
            .collect();
        Members { ips, _procs: procs }
    }

    fn endpoints(&self) -> String {
        self.ips
            .iter()
            .map(|ip| format!("http://{ip}:2379"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every member knows a leader.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for ip in &self.ips {
            loop {
                if let Ok(ch) = ferrocd_testkit::grpc::dial(&format!("{ip}:2379"), None).await {
                    let mut m =
                        ferrocd_proto::etcdserverpb::maintenance_client::MaintenanceClient::new(ch);
                    if let Ok(s) = m.status(StatusRequest {}).await {
                        if s.into_inner().leader != 0 {
                            break;
                        }
                    }
                }
                assert!(Instant::now() < deadline, "member {ip} not ready in 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn client(&self, i: usize) -> Client {
        Client::connect(&format!("{}:2379", self.ips[i])).await
    }
}

fn initial_cluster(ips: &[Ipv4Addr]) -> String {
    ips.iter()
        .enumerate()
        .map(|(i, ip)| format!("m-{i}=http://{ip}:2380"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A client putting keys until stopped; every acknowledged put with its
/// revision.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, String, i64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(client: Client) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut kv = client.kv.clone();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let (key, value) = (format!("/w/{i:06}"), format!("v{i}-{}", "x".repeat(200)));
                if let Ok(r) = kv
                    .put(PutRequest {
                        key: key.clone().into_bytes(),
                        value: value.clone().into_bytes(),
                        ..PutRequest::default()
                    })
                    .await
                {
                    let rev = r.into_inner().header.unwrap().revision;
                    a.lock().unwrap().push((key, value, rev));
                }
                i += 1;
            }
        });
        Writer { stop, acked, task }
    }

    async fn finish(self) -> Vec<(String, String, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// One SeaweedFS server on an address of this test's own.
fn s3_server(dir: &Path) -> SeaweedFs {
    let ip = ferrocd_testkit::addr::loopback_ip(&[]);
    SeaweedFs::start(IpAddr::V4(ip), &dir.join("weed"))
}

fn s3_args(s3: &SeaweedFs, key: &str) -> Vec<String> {
    vec![
        format!("--s3-bucket={BUCKET}"),
        format!("--s3-endpoint={}", s3.endpoint()),
        "--s3-path-style".into(),
        format!("--key={key}"),
    ]
}

fn s3_location(s3: &SeaweedFs, key: &str) -> Location {
    Location::S3 {
        target: S3Target {
            endpoint: Some(s3.endpoint()),
            bucket: BUCKET.into(),
            region: None,
            path_style: true,
            ca_file: None,
            keys: Some((ACCESS_KEY.into(), SECRET_KEY.into())),
        },
        key: key.into(),
    }
}

/// `ferrocd-operator backup ARGS` with the test key pair (or `secret`):
/// exit code, the report it printed, stderr.
fn agent(args: &[String], secret: &str, scratch: &Path) -> (i32, Option<Report>, String) {
    let result = scratch.join(format!("result-{}", rand::random::<u32>()));
    let out = Command::new(bin("ferrocd-operator"))
        .arg("backup")
        .args(args)
        .arg(format!("--result-file={}", result.display()))
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("RUST_LOG", "info")
        .output()
        .expect("run ferrocd-operator backup");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let file = std::fs::read_to_string(&result).unwrap_or_default();
    assert_eq!(
        printed.trim(),
        file.trim(),
        "stdout and the result file agree"
    );
    (
        out.status.code().unwrap_or(-1),
        Report::parse(&file),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn taken(report: Option<Report>, err: &str) -> Taken {
    match report {
        Some(Report::Taken(t)) => t,
        other => panic!("expected a stored backup, got {other:?}\n{err}"),
    }
}

/// `save` from `source`'s members through `scratch` to the place `to` names.
fn save_args(source: &Members, scratch: &Path, to: Vec<String>) -> Vec<String> {
    let mut a = vec![
        "save".to_string(),
        format!("--endpoints={}", source.endpoints()),
        format!("--scratch={}", scratch.display()),
    ];
    a.extend(to);
    a
}

fn verify_args(t: &Taken, from: Vec<String>, scratch: &Path) -> Vec<String> {
    let mut a = vec![
        "verify".to_string(),
        format!("--sha256={}", t.sha256),
        format!("--revision={}", t.revision),
        format!("--keys={}", t.keys),
        format!("--hash-kv={}", t.hash_kv),
        format!("--scratch={}", scratch.display()),
    ];
    a.extend(from);
    a
}

/// Restores 3 members from the backup with the agent's init-container step,
/// starts them, and returns the running cluster.
fn restore_three(from: Vec<String>, dir: &Path, sha256: Option<&str>) -> Members {
    let ips = ferrocd_testkit::addr::loopback_ips(3, &[2379, 2380]);
    let cluster = initial_cluster(&ips);
    std::fs::create_dir_all(dir).unwrap();
    for (i, ip) in ips.iter().enumerate() {
        let mut args = vec![
            "restore".to_string(),
            format!("--data-dir={}", dir.join(format!("m{i}")).display()),
            format!("--name=m-{i}"),
            format!("--initial-cluster={cluster}"),
            "--initial-cluster-token=restored".into(),
            format!("--initial-advertise-peer-urls=http://{ip}:2380"),
            "--bootstrap-members=3".into(),
        ];
        if let Some(sha) = sha256 {
            args.push(format!("--sha256={sha}"));
        }
        args.extend(from.clone());
        let (code, report, err) = agent(&args, SECRET_KEY, dir);
        assert_eq!(code, 0, "restore m{i}: {report:?}\n{err}");
        match report {
            Some(Report::Restored(r)) => assert!(r.revision.is_some(), "{r:?}"),
            other => panic!("restore m{i}: {other:?}"),
        }
    }
    Members::start(&bin("ferrocd"), 3, dir, Some(ips))
}

/// Every key acknowledged at or before `revision` is in the restored
/// cluster with its value; the cluster's revision is `revision`.
async fn assert_has_everything_up_to(
    restored: &Members,
    acked: &[(String, String, i64)],
    revision: i64,
) {
    let mut c = restored.client(1).await;
    let all =
        c.kv.range(RangeRequest {
            key: b"/w/".to_vec(),
            range_end: b"/w0".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.header.unwrap().revision, revision, "restored revision");
    let have: std::collections::HashMap<Vec<u8>, Vec<u8>> =
        all.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let before: Vec<_> = acked.iter().filter(|(_, _, r)| *r <= revision).collect();
    assert!(
        !before.is_empty(),
        "the writer had written before the snapshot"
    );
    for (k, v, r) in &before {
        assert_eq!(
            have.get(k.as_bytes()).map(|v| v.as_slice()),
            Some(v.as_bytes()),
            "{k} (acknowledged at revision {r}) missing after restore at {revision}"
        );
    }
    let after = acked.iter().filter(|(_, _, r)| *r > revision).count();
    eprintln!(
        "restored at revision {revision}: {} acknowledged keys present, {after} written after the snapshot",
        before.len()
    );
}

#[test]
fn a_backup_to_s3_under_writes_verifies_and_restores_into_three_members() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s3 = s3_server(dir.path());
        let source = Members::start(&bin("ferrocd"), 3, &dir.path().join("src"), None);
        source.wait_ready().await;
        let writer = Writer::start(source.client(0).await);
        tokio::time::sleep(Duration::from_secs(2)).await;

        let key = "prod/ns/demo/b1.db";
        let save = save_args(&source, dir.path(), s3_args(&s3, key));
        let scratch = dir.path().to_path_buf();
        let (code, report, err) =
            tokio::task::spawn_blocking(move || agent(&save, SECRET_KEY, &scratch))
                .await
                .unwrap();
        assert_eq!(code, 0, "{err}");
        let t = taken(report, &err);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let acked = writer.finish().await;
        assert!(
            !t.from_leader,
            "a follower answered, so it was taken from one: {t:?}"
        );
        assert_eq!(t.location, format!("s3://{BUCKET}/{key}"));
        assert!(t.revision > 1 && t.keys > 0 && t.size > 0, "{t:?}");
        eprintln!("stored {t:?}");

        // The object is what the report says.
        let local = dir.path().join("fetched.db");
        let sha = s3_location(&s3, key).download(&local).await.unwrap();
        assert_eq!(sha, t.sha256);
        assert_eq!(std::fs::metadata(&local).unwrap().len(), t.size);

        let (code, report, err) = agent(
            &verify_args(&t, s3_args(&s3, key), dir.path()),
            SECRET_KEY,
            dir.path(),
        );
        match report {
            Some(Report::Verified(v)) => assert!(v.verified && code == 0, "{v:?}\n{err}"),
            other => panic!("verify: {other:?}\n{err}"),
        }

        let restored = restore_three(
            s3_args(&s3, key),
            &dir.path().join("restored"),
            Some(&t.sha256),
        );
        restored.wait_ready().await;
        assert_has_everything_up_to(&restored, &acked, t.revision).await;
    });
}

#[test]
fn a_backup_to_a_volume_directory_appears_whole_and_verifies() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("volume");
        let from = vec![
            format!("--dir={}", volume.display()),
            "--key=ns/demo/b2.db".to_string(),
        ];
        // Asked for while no member is up: it waits, then says so.
        let ips = ferrocd_testkit::addr::loopback_ips(3, &[2379, 2380]);
        let endpoints = ips.iter().map(|ip| format!("http://{ip}:2379"));
        let mut early = vec![
            "save".to_string(),
            format!("--endpoints={}", endpoints.collect::<Vec<_>>().join(",")),
            format!("--scratch={}", dir.path().display()),
            format!("--dir={}", volume.display()),
            "--key=early.db".to_string(),
        ];
        let mut impatient = early.clone();
        impatient.push("--wait-for-member=2".into());
        let (code, report, err) = agent(&impatient, "", dir.path());
        match &report {
            Some(Report::Failed(f)) => {
                assert_eq!((code, f.reason.as_str()), (1, "Cluster"), "{f:?}");
                assert!(f.message.contains("within 2s"), "{f:?}");
            }
            other => panic!("no member up: {other:?}\n{err}"),
        }
        assert!(!volume.exists(), "nothing stored");

        // The same request made before the cluster starts is served once
        // it has formed (a backup created with its cluster).
        early.push("--wait-for-member=60".into());
        let scratch = dir.path().to_path_buf();
        let saving = tokio::task::spawn_blocking(move || agent(&early, SECRET_KEY, &scratch));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let source = Members::start(&bin("ferrocd"), 3, &dir.path().join("src"), Some(ips));
        let (code, report, err) = saving.await.unwrap();
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("no healthy member yet"), "it waited: {err}");
        let t = taken(report, &err);
        assert!(t.location.ends_with("/early.db") && t.keys == 0, "{t:?}");
        std::fs::remove_file(volume.join("early.db")).expect("the early backup is stored");

        source.wait_ready().await;
        let writer = Writer::start(source.client(2).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let save = save_args(&source, dir.path(), from.clone());
        let scratch = dir.path().to_path_buf();
        let (code, report, err) =
            tokio::task::spawn_blocking(move || agent(&save, SECRET_KEY, &scratch))
                .await
                .unwrap();
        let acked = writer.finish().await;
        assert_eq!(code, 0, "{err}");
        let t = taken(report, &err);
        // Only the finished file: no partial file left beside it.
        let names: Vec<String> = std::fs::read_dir(volume.join("ns/demo"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["b2.db".to_string()]);
        let (code, report, err) = agent(&verify_args(&t, from.clone(), dir.path()), "", dir.path());
        assert!(
            matches!(&report, Some(Report::Verified(v)) if v.verified) && code == 0,
            "{report:?}\n{err}"
        );
        let restored = restore_three(from, &dir.path().join("restored"), Some(&t.sha256));
        restored.wait_ready().await;
        assert_has_everything_up_to(&restored, &acked, t.revision).await;
    });
}

#[test]
fn a_backup_whose_object_was_damaged_in_s3_does_not_verify_or_restore() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s3 = s3_server(dir.path());
        let source = Members::start(&bin("ferrocd"), 1, &dir.path().join("src"), None);
        source.wait_ready().await;
        let mut c = source.client(0).await;
        for i in 0..200 {
            c.kv.put(PutRequest {
                key: format!("/w/{i:06}").into_bytes(),
                value: vec![b'v'; 100],
                ..PutRequest::default()
            })
            .await
            .unwrap();
        }
        let key = "b3.db";
        let save = save_args(&source, dir.path(), s3_args(&s3, key));
        let (code, report, err) = agent(&save, SECRET_KEY, dir.path());
        assert_eq!(code, 0, "{err}");
        let t = taken(report, &err);
        assert!(t.from_leader, "a one-member cluster has only its leader");

        // Flip bytes in the middle of the stored object.
        let local = dir.path().join("damaged.db");
        s3_location(&s3, key).download(&local).await.unwrap();
        let mut bytes = std::fs::read(&local).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 16] {
            *b ^= 0xff;
        }
        std::fs::write(&local, &bytes).unwrap();
        s3_location(&s3, key).upload(&local).await.unwrap();

        let (code, report, err) = agent(
            &verify_args(&t, s3_args(&s3, key), dir.path()),
            SECRET_KEY,
            dir.path(),
        );
        assert_eq!(
            code, 3,
            "a backup that does not verify exits 3: {report:?}\n{err}"
        );
        match report {
            Some(Report::Verified(v)) => {
                assert!(!v.verified);
                assert!(v.message.contains("SHA-256 is"), "{}", v.message);
            }
            other => panic!("verify: {other:?}"),
        }
        // The restore step refuses it too, and writes nothing.
        let data = dir.path().join("r0");
        let mut restore = vec![
            "restore".to_string(),
            format!("--data-dir={}", data.display()),
            "--name=r-0".into(),
            "--initial-cluster=r-0=http://127.0.0.1:2380".into(),
            "--initial-cluster-token=t".into(),
            "--initial-advertise-peer-urls=http://127.0.0.1:2380".into(),
            "--bootstrap-members=1".into(),
        ];
        restore.extend(s3_args(&s3, key));
        let (code, report, err) = agent(&restore, SECRET_KEY, dir.path());
        assert_eq!(code, 1, "{report:?}\n{err}");
        match report {
            Some(Report::Failed(f)) => assert!(
                f.message.contains("snapshot") || f.message.contains("hash"),
                "{f:?}"
            ),
            other => panic!("restore of a damaged file: {other:?}"),
        }
        assert!(!data.exists(), "nothing written for a damaged snapshot");
    });
}

#[test]
fn wrong_credentials_and_a_stopped_store_fail_with_a_clear_reason_and_store_nothing() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut s3 = s3_server(dir.path());
        let source = Members::start(&bin("ferrocd"), 1, &dir.path().join("src"), None);
        source.wait_ready().await;
        let mut c = source.client(0).await;
        // 24 MiB of values: the upload takes several parts.
        for i in 0..96 {
            c.kv.put(PutRequest {
                key: format!("/big/{i:03}").into_bytes(),
                value: vec![(i % 251) as u8; 256 * 1024],
                ..PutRequest::default()
            })
            .await
            .unwrap();
        }
        let endpoint = s3.endpoint();
        let save = |key: &str| {
            let to = vec![
                format!("--s3-bucket={BUCKET}"),
                format!("--s3-endpoint={endpoint}"),
                "--s3-path-style".into(),
                format!("--key={key}"),
            ];
            save_args(&source, dir.path(), to)
        };

        let (code, report, err) = agent(&save("wrong.db"), "not-the-secret", dir.path());
        assert_eq!(code, 1, "{err}");
        match &report {
            Some(Report::Failed(f)) => {
                assert_eq!(f.reason, "Credentials", "{f:?}");
                assert!(
                    f.message.contains(&format!("s3://{BUCKET}/wrong.db")),
                    "{f:?}"
                );
            }
            other => panic!("wrong credentials: {other:?}"),
        }
        let said: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("ferrocd-operator backup:"))
            .collect();
        assert_eq!(said.len(), 1, "one line says what failed: {err}");

        // The store dies while the agent uploads: killed once the agent
        // has handed two parts to the upload (one at least is on the wire).
        let result = dir.path().join("outage.result");
        let stderr = dir.path().join("outage.stderr");
        let mut child = Command::new(bin("ferrocd-operator"))
            .arg("backup")
            .args(save("outage.db"))
            .arg(format!("--result-file={}", result.display()))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !std::fs::read_to_string(&stderr)
            .unwrap_or_default()
            .matches("parts uploading")
            .count()
            < 2
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the agent never began to store"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the agent ended before storing"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s3.stop();
        let code = child.wait().unwrap().code();
        let report = Report::parse(&std::fs::read_to_string(&result).unwrap_or_default());
        let err = std::fs::read_to_string(&stderr).unwrap_or_default();
        eprintln!("outage: {report:?} after {:?}", started.elapsed());
        assert_eq!(code, Some(1), "{report:?}\n{err}");
        match &report {
            Some(Report::Failed(f)) => assert_eq!(f.reason, "ObjectStore", "{f:?}"),
            other => panic!("outage: {other:?}"),
        }
        s3.restart();
        let listed = list_keys(&s3).await;
        assert!(
            !listed
                .iter()
                .any(|k| k.contains("outage") || k.contains("wrong")),
            "a failed upload is never listed: {listed:?}"
        );
        // The next attempt (the next schedule) succeeds.
        let (code, report, err) = agent(&save("outage.db"), SECRET_KEY, dir.path());
        assert_eq!(code, 0, "{err}");
        let t = taken(report, &err);
        assert!(t.size > 24 << 20, "{t:?}");
        assert_eq!(list_keys(&s3).await, vec!["outage.db".to_string()]);
    });
}

async fn list_keys(s3: &SeaweedFs) -> Vec<String> {
    let Location::S3 { target, .. } = s3_location(s3, "") else {
        unreachable!("an S3 location")
    };
    target.list("").await.unwrap()
}

#[test]
fn a_snapshot_of_etcd_35_in_s3_restores_into_ferrocd_members() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let s3 = s3_server(dir.path());
        let etcd = Members::start(
            &ferrocd_testkit::bins::etcd(),
            1,
            &dir.path().join("etcd"),
            None,
        );
        etcd.wait_ready().await;
        let mut c = etcd.client(0).await;
        let mut acked = Vec::new();
        for i in 0..300 {
            let (k, v) = (format!("/w/{i:06}"), format!("etcd-{i}"));
            let r =
                c.kv.put(PutRequest {
                    key: k.clone().into_bytes(),
                    value: v.clone().into_bytes(),
                    ..PutRequest::default()
                })
                .await
                .unwrap();
            acked.push((k, v, r.into_inner().header.unwrap().revision));
        }
        let file = dir.path().join("etcd.db");
        let out = Command::new(ferrocd_testkit::bins::etcdctl35())
            .args([
                &format!("--endpoints={}", etcd.endpoints()),
                "snapshot",
                "save",
                &file.display().to_string(),
            ])
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = "migrate/etcd.db";
        s3_location(&s3, key).upload(&file).await.unwrap();
        let last = acked.last().unwrap().2;
        let restored = restore_three(s3_args(&s3, key), &dir.path().join("restored"), None);
        restored.wait_ready().await;
        assert_has_everything_up_to(&restored, &acked, last).await;
    });
}

#[test]
fn a_cluster_with_auth_is_backed_up_and_verified_as_root_only() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let source = Members::start(&bin("ferrocd"), 1, &dir.path().join("src"), None);
        source.wait_ready().await;
        let mut c = source.client(0).await;
        for i in 0..50 {
            c.kv.put(PutRequest {
                key: format!("/a/{i:03}").into_bytes(),
                value: b"v".to_vec(),
                ..PutRequest::default()
            })
            .await
            .unwrap();
        }
        ferrocd_testkit::grpc::enable_auth(c.channel.clone(), Some("s3cr3t"))
            .await
            .unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cr3t\n").unwrap();
        let root = vec![
            "--user=root".to_string(),
            format!("--password-file={}", password.display()),
        ];
        let volume = dir.path().join("volume");
        let to = |key: &str| {
            vec![
                format!("--dir={}", volume.display()),
                format!("--key={key}"),
            ]
        };

        // Without root the members refuse: reported, nothing stored.
        let mut anonymous = save_args(&source, dir.path(), to("anon.db"));
        anonymous.push("--wait-for-member=5".into());
        let (code, report, err) = agent(&anonymous, "", dir.path());
        assert_eq!(code, 1, "{report:?}\n{err}");
        match &report {
            Some(Report::Failed(f)) => assert!(
                f.message.contains("etcdserver: user name is empty"),
                "{f:?}"
            ),
            other => panic!("{other:?}\n{err}"),
        }
        assert!(!volume.join("anon.db").exists());

        let mut save = save_args(&source, dir.path(), to("auth.db"));
        save.extend(root.clone());
        let (code, report, err) = agent(&save, "", dir.path());
        assert_eq!(code, 0, "{err}");
        let t = taken(report, &err);
        assert_eq!(t.keys, 50, "{t:?}");

        // The restored member keeps the cluster's auth: verify reads it as root.
        let mut verify = verify_args(&t, to("auth.db"), dir.path());
        verify.extend(root);
        let (code, report, err) = agent(&verify, "", dir.path());
        assert!(
            matches!(&report, Some(Report::Verified(v)) if v.verified) && code == 0,
            "{report:?}\n{err}"
        );
    });
}

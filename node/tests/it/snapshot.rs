//! Snapshots both ways between etcd 3.5 and ferrocd: `etcdctl snapshot
//! save` from one, `etcdutl`/`ferrocd snapshot restore` into a new cluster
//! of the other, and everything a client can read compared field by field;
//! `snapshot status` against etcdutl's; damaged files refused.

use crate::support::{etcdctl35, ferrocd_bin, run, Cluster, Kind, Member};
use etcd_client::{
    Client, DeleteOptions, GetOptions, LeaseTimeToLiveOptions, Permission, PutOptions,
};
use ferrocd_testkit::bins::etcdutl;
use std::path::{Path, PathBuf};

/// Everything a client can read of a store at one revision.
#[derive(Debug, PartialEq, Eq)]
struct Dump {
    rev: i64,
    compact_rev: i64,
    kvs: Vec<Kv>,
    /// ID, granted TTL, attached keys.
    leases: Vec<(i64, i64, Vec<Vec<u8>>)>,
    /// Users with their roles; roles with their permissions.
    users: Vec<(String, Vec<String>)>,
    roles: Vec<(String, Vec<Perm>)>,
}

/// key, value, create_revision, mod_revision, version, lease.
type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);
/// type, key, range end.
type Perm = (i32, Vec<u8>, Vec<u8>);

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.expect("connect")
}

/// 1000 live keys and more, overwrites, deletes one by one and by range, a
/// compaction, leases with keys, users and roles, writes after compaction.
async fn populate(endpoint: &str) {
    let mut c = connect(endpoint).await;
    for i in 0..1100 {
        c.put(format!("k/{i:04}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    for i in 0..200 {
        c.put(format!("k/{i:04}"), format!("w{i}"), None)
            .await
            .unwrap();
    }
    for i in 900..950 {
        c.delete(format!("k/{i:04}"), None).await.unwrap();
    }
    let del = c
        .delete("k/0950", Some(DeleteOptions::new().with_range("k/1000")))
        .await
        .unwrap();
    assert_eq!(del.deleted(), 50);
    let rev = del.header().unwrap().revision();
    c.compact(rev - 120, None).await.unwrap();
    for l in 0..3i64 {
        let lease = c.lease_grant(600 + l, None).await.unwrap().id();
        for k in 0..5 {
            c.put(
                format!("leased/{l}/{k}"),
                "x",
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .unwrap();
        }
    }
    c.role_add("reader").await.unwrap();
    c.role_grant_permission("reader", Permission::read("k/").with_prefix())
        .await
        .unwrap();
    c.user_add("alice", "alicepw", None).await.unwrap();
    c.user_grant_role("alice", "reader").await.unwrap();
    for i in 0..10 {
        c.put(format!("after/{i}"), "y", None).await.unwrap();
    }
}

/// What `endpoint` serves at `rev` (0: its current revision).
async fn dump(endpoint: &str, rev: i64) -> Dump {
    let mut c = connect(endpoint).await;
    let got = c
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_revision(rev)),
        )
        .await
        .unwrap();
    let rev = if rev == 0 {
        got.header().unwrap().revision()
    } else {
        rev
    };
    let kvs = got
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                kv.value().to_vec(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease(),
            )
        })
        .collect();
    let compact_rev = c.hash_kv(rev).await.unwrap().compact_version();
    let mut leases = Vec::new();
    for l in c.leases().await.unwrap().leases() {
        let ttl = c
            .lease_time_to_live(l.id(), Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        let mut keys = ttl.keys().to_vec();
        keys.sort();
        leases.push((l.id(), ttl.granted_ttl(), keys));
    }
    leases.sort();
    let mut users = Vec::new();
    for u in c.user_list().await.unwrap().users() {
        let mut roles = c.user_get(u.as_str()).await.unwrap().roles().to_vec();
        roles.sort();
        users.push((u.clone(), roles));
    }
    let mut roles = Vec::new();
    for r in c.role_list().await.unwrap().roles() {
        let perms = c
            .role_get(r.as_str())
            .await
            .unwrap()
            .permissions()
            .iter()
            .map(|p| (p.get_type(), p.key().to_vec(), p.range_end().to_vec()))
            .collect();
        roles.push((r.clone(), perms));
    }
    Dump {
        rev,
        compact_rev,
        kvs,
        leases,
        users,
        roles,
    }
}

fn save_snapshot(endpoint: &str, path: &Path) {
    let (code, out, err) = run(
        &etcdctl35(),
        &[
            format!("--endpoints={endpoint}"),
            "snapshot".into(),
            "save".into(),
            path.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 0, "snapshot save: {out}{err}");
}

/// `ferrocd snapshot ...` or `etcdutl snapshot ...`: (exit code, stdout, stderr).
fn snapshot_cmd(kind: Kind, args: &[String]) -> (i32, String, String) {
    let (bin, mut all) = match kind {
        Kind::Ferrocd => (ferrocd_bin(), vec!["snapshot".to_string()]),
        Kind::Etcd | Kind::Etcd34 => (etcdutl(), vec!["snapshot".to_string()]),
    };
    all.extend(args.iter().cloned());
    run(&bin, &all, &[])
}

fn restore_with(kind: Kind, snap: &Path, flags: Vec<String>) {
    let mut args = vec!["restore".to_string(), snap.display().to_string()];
    args.extend(flags);
    let (code, out, err) = snapshot_cmd(kind, &args);
    assert_eq!(code, 0, "{} snapshot restore: {out}{err}", kind.name());
}

/// A cluster of `n` `kind` members restored from `snap`.
async fn restored(kind: Kind, n: u8, snap: &Path) -> Cluster {
    let snap = snap.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Cluster::start_prepared(kind, n, &[], |_, flags| restore_with(kind, &snap, flags))
    })
    .await
    .unwrap()
}

async fn etcd_snapshot_restores_into_ferrocd(source: Kind, source_members: u8) {
    let src = tokio::task::spawn_blocking(move || Cluster::start(source, source_members, &[]))
        .await
        .unwrap();
    let ep = src.members[0].endpoint();
    populate(&ep).await;
    let want = dump(&ep, 0).await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("etcd.db");
    save_snapshot(&ep, &snap);

    let dst = restored(Kind::Ferrocd, 3, &snap).await;
    for m in &dst.members {
        assert_eq!(
            dump(&m.endpoint(), 0).await,
            want,
            "member {}",
            m.endpoint()
        );
    }
    let mut c = connect(&dst.members[1].endpoint()).await;
    let put = c.put("next", "1", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), want.rev + 1);
    let got = c.get("next", None).await.unwrap();
    assert_eq!(got.kvs()[0].create_revision(), want.rev + 1);
}

#[tokio::test]
async fn a_one_member_etcd_snapshot_restores_into_a_three_member_ferrocd() {
    etcd_snapshot_restores_into_ferrocd(Kind::Etcd, 1).await;
}

#[tokio::test]
async fn a_three_member_etcd_snapshot_restores_into_a_three_member_ferrocd() {
    etcd_snapshot_restores_into_ferrocd(Kind::Etcd, 3).await;
}

#[tokio::test]
async fn an_etcd_3_4_snapshot_restores_into_a_three_member_ferrocd() {
    etcd_snapshot_restores_into_ferrocd(Kind::Etcd34, 1).await;
}

/// The member of `cluster` that is not the leader, by client endpoint.
async fn a_follower(cluster: &Cluster) -> String {
    for m in &cluster.members {
        let mut c = connect(&m.endpoint()).await;
        let s = c.status().await.unwrap();
        if s.leader() != s.header().unwrap().member_id() {
            return m.endpoint();
        }
    }
    panic!("no follower");
}

#[tokio::test]
async fn a_ferrocd_snapshot_taken_under_writes_restores_into_etcd_and_into_ferrocd() {
    let src = tokio::task::spawn_blocking(|| Cluster::start(Kind::Ferrocd, 3, &[]))
        .await
        .unwrap();
    let leader_ep = src.members[0].endpoint();
    populate(&leader_ep).await;

    // A writer goes on while a follower streams the snapshot.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let ep = leader_ep.clone();
        tokio::spawn(async move {
            let mut c = connect(&ep).await;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.put(format!("bg/{n}"), "z", None).await.unwrap();
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let follower = a_follower(&src).await;
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("ferrocd.db");
    let path = snap.clone();
    tokio::task::spawn_blocking(move || save_snapshot(&follower, &path))
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written > 0, "the writer wrote nothing during the snapshot");

    // Status: etcdutl and ferrocd read the same file the same way.
    for format in ["simple", "table", "json"] {
        let args = vec![
            "status".to_string(),
            snap.display().to_string(),
            format!("-w={format}"),
        ];
        let (ecode, eout, eerr) = snapshot_cmd(Kind::Etcd, &args);
        assert_eq!(ecode, 0, "etcdutl: {eerr}");
        let (fcode, fout, ferr) = snapshot_cmd(Kind::Ferrocd, &args);
        assert_eq!(fcode, 0, "ferrocd: {ferr}");
        assert_eq!(fout, eout, "-w {format}");
    }
    let (_, json, _) = snapshot_cmd(
        Kind::Etcd,
        &[
            "status".into(),
            snap.display().to_string(),
            "-w=json".into(),
        ],
    );
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rev = status["revision"].as_i64().unwrap();
    let want = dump(&leader_ep, rev).await;
    assert!(want.kvs.len() > 1000, "{} keys", want.kvs.len());

    let etcd = restored(Kind::Etcd, 1, &snap).await;
    assert_eq!(dump(&etcd.members[0].endpoint(), 0).await, want, "etcd");
    drop(etcd);

    let dst = restored(Kind::Ferrocd, 3, &snap).await;
    let source_hash = connect(&leader_ep).await.hash_kv(rev).await.unwrap().hash();
    for m in &dst.members {
        let ep = m.endpoint();
        assert_eq!(dump(&ep, 0).await, want, "ferrocd member {ep}");
        let hash = connect(&ep).await.hash_kv(rev).await.unwrap().hash();
        assert_eq!(hash, source_hash, "HashKV of {ep} at {rev}");
    }
}

/// The lines of a failed command's stderr a user reads, without the log
/// lines (ferrocd's JSON, etcdutl's timestamped console lines).
fn error_lines(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| !l.starts_with('{') && !l.starts_with(|c: char| c.is_ascii_digit()))
        .collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn damaged_snapshots_and_a_used_data_dir_are_refused_with_one_line_and_nothing_written() {
    let m = tokio::task::spawn_blocking(|| Member::start(Kind::Ferrocd, &[]))
        .await
        .unwrap();
    let mut c = connect(&m.endpoint()).await;
    for i in 0..300 {
        c.put(format!("k{i}"), vec![b'v'; 200], None).await.unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.db");
    save_snapshot(&m.endpoint(), &good);
    let bytes = std::fs::read(&good).unwrap();

    let write = |name: &str, b: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let mut wrong_hash = bytes.clone();
    let last = wrong_hash.len() - 1;
    wrong_hash[last] ^= 0xff;
    let mut no_hash = bytes[..bytes.len() - 32].to_vec();
    no_hash.truncate(no_hash.len() - 512);
    let cases = [
        (
            "truncated",
            write("truncated.db", &bytes[..bytes.len() / 2]),
            vec![],
        ),
        ("wrong hash", write("wrong.db", &wrong_hash), vec![]),
        (
            "not a snapshot",
            write("text.db", &b"hello, not a database\n".repeat(100)),
            vec!["--skip-hash-check"],
        ),
        (
            "truncated without hash",
            write("nohash.db", &no_hash),
            vec!["--skip-hash-check"],
        ),
        ("missing", tmp.path().join("missing.db"), vec![]),
    ];
    let out_root = tempfile::tempdir().unwrap();
    for (what, file, extra) in &cases {
        let data = out_root.path().join("restored");
        let mut args = vec![
            "restore".to_string(),
            file.display().to_string(),
            format!("--data-dir={}", data.display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (code, out, err) = snapshot_cmd(Kind::Ferrocd, &args);
        assert_ne!(code, 0, "{what}: restored anyway: {out}{err}");
        let lines = error_lines(&err);
        assert_eq!(lines.len(), 1, "{what}: {err}");
        assert!(lines[0].starts_with("Error: "), "{what}: {err}");
        assert!(
            entries(out_root.path()).is_empty(),
            "{what}: left {:?}",
            entries(out_root.path())
        );
        let (code, _, err) = snapshot_cmd(
            Kind::Ferrocd,
            &["status".into(), file.display().to_string()],
        );
        if *what != "wrong hash" {
            assert_ne!(code, 0, "{what}: status read it");
            assert_eq!(error_lines(&err).len(), 1, "{what}: {err}");
        }
    }

    // Where etcdutl's checks are the same, so is the text.
    let used = out_root.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("keep"), b"mine").unwrap();
    for (file, data, extra) in [
        (&cases[1].1, out_root.path().join("x"), None),
        (&good, used.clone(), None),
        (
            &cases[3].1,
            out_root.path().join("y"),
            Some("--skip-hash-check=false"),
        ),
    ] {
        let mut args = vec![
            "restore".to_string(),
            file.display().to_string(),
            format!("--data-dir={}", data.display()),
        ];
        args.extend(extra.map(String::from));
        let (fcode, _, ferr) = snapshot_cmd(Kind::Ferrocd, &args);
        let (ecode, _, eerr) = snapshot_cmd(Kind::Etcd, &args);
        assert_ne!(fcode, 0);
        assert_ne!(ecode, 0);
        assert_eq!(error_lines(&ferr), error_lines(&eerr), "{args:?}");
    }
    assert_eq!(std::fs::read(used.join("keep")).unwrap(), b"mine");
    assert_eq!(entries(&used).len(), 1);

    // And the good file restores.
    let data = out_root.path().join("ok");
    restore_with(
        Kind::Ferrocd,
        &good,
        vec![format!("--data-dir={}", data.display())],
    );
    assert!(data.join("member").join("db").exists());
}

/// etcdctl 3.5 against `endpoint`: (exit code, stdout, stderr).
fn etcdctl(endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![format!("--endpoints={endpoint}")];
    all.extend(args.iter().map(|s| s.to_string()));
    run(&etcdctl35(), &all, &[])
}

fn header_revision(json: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["header"]["revision"].as_i64().unwrap()
}

#[tokio::test]
async fn auth_stays_on_through_a_snapshot_and_a_restore_can_bump_the_revision() {
    let m = tokio::task::spawn_blocking(|| Member::start(Kind::Ferrocd, &[]))
        .await
        .unwrap();
    let ep = m.endpoint();
    for args in [
        &["put", "a", "1"][..],
        &["put", "b", "2"],
        &["user", "add", "root", "--new-user-password=rootpw"],
        &["auth", "enable"],
    ] {
        let (code, _, err) = etcdctl(&ep, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let root = "--user=root:rootpw";
    let (_, out, _) = etcdctl(&ep, &[root, "get", "a", "-w", "json"]);
    let rev = header_revision(&out);
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("auth.db");
    let (code, _, err) = etcdctl(
        &ep,
        &[root, "snapshot", "save", &snap.display().to_string()],
    );
    assert_eq!(code, 0, "{err}");

    // etcd 3.5 and ferrocd restored from it both refuse an anonymous read.
    let etcd = restored(Kind::Etcd, 1, &snap).await;
    let (ecode, _, eerr) = etcdctl(&etcd.members[0].endpoint(), &["get", "a"]);
    let (_, eout, _) = etcdctl(
        &etcd.members[0].endpoint(),
        &[root, "get", "a", "--print-value-only"],
    );
    drop(etcd);
    let snap_owned = snap.clone();
    let bumped = tokio::task::spawn_blocking(move || {
        Cluster::start_prepared(Kind::Ferrocd, 1, &[], |_, mut flags| {
            flags.extend([
                "--bump-revision=1000".to_string(),
                "--mark-compacted".to_string(),
            ]);
            restore_with(Kind::Ferrocd, &snap_owned, flags)
        })
    })
    .await
    .unwrap();
    let fep = bumped.members[0].endpoint();
    let (fcode, _, ferr) = etcdctl(&fep, &["get", "a"]);
    assert_ne!(ecode, 0);
    assert_eq!((fcode, error_lines(&ferr)), (ecode, error_lines(&eerr)));
    let (_, fout, _) = etcdctl(&fep, &[root, "get", "a", "--print-value-only"]);
    assert_eq!((fout.as_str(), eout.as_str()), ("1\n", "1\n"));

    // The revision moved on by 1000 and everything before is compacted.
    let (_, out, _) = etcdctl(&fep, &[root, "put", "c", "3", "-w", "json"]);
    assert_eq!(header_revision(&out), rev + 1000 + 1);
    let (code, _, err) = etcdctl(&fep, &[root, "get", "a", &format!("--rev={rev}")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
}

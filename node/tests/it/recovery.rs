//! Recovering from quorum loss: `--force-new-cluster` on the last member
//! standing, then members added back with MemberAdd, on ferrocd and on
//! etcd 3.5 side by side.

use crate::cluster::ctl;
use crate::support::{etcdctl35, run, start_added_member, unique_ip, Cluster, Kind, Member};
use etcd_client::{Client, GetOptions};
use std::time::Duration;

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.expect("connect")
}

/// `etcdctl member add`; retried while etcd refuses it as "unhealthy
/// cluster" (its reconfiguration check wants the last new member connected
/// for 5 s before the next may come).
async fn member_add(endpoints: &str, name: &str, peer: &str) -> String {
    let args = vec![
        format!("--endpoints={endpoints}"),
        "member".into(),
        "add".into(),
        name.into(),
        format!("--peer-urls={peer}"),
    ];
    for _ in 0..40 {
        let (code, out, err) = run(&etcdctl35(), &args, &[]);
        if code == 0 {
            return out;
        }
        assert!(err.contains("unhealthy cluster"), "member add: {err}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("member add {name} refused for 10 s");
}

/// What the scenario observed, to compare between etcd and ferrocd.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    members_after_force: usize,
    /// Acknowledged keys missing after the force, then on each new member.
    missing_after_force: Vec<String>,
    missing_on_new_members: Vec<Vec<String>>,
    members_at_end: usize,
    hashes_equal: bool,
}

async fn missing(endpoint: &str, acked: &[String]) -> Vec<String> {
    let mut c = connect(endpoint).await;
    let got = c
        .get("k/", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    let have: std::collections::HashSet<&[u8]> = got.kvs().iter().map(|kv| kv.key()).collect();
    acked
        .iter()
        .filter(|k| !have.contains(k.as_bytes()))
        .cloned()
        .collect()
}

/// Three members; a follower survives. The other follower dies first, so
/// that every later acknowledged write is in the survivor's log, then the
/// leader dies right after the last acknowledgement (`settle` later).
async fn quorum_loss(kind: Kind, settle: Duration) -> Outcome {
    let mut cluster = tokio::task::spawn_blocking(move || Cluster::start(kind, 3, &[]))
        .await
        .unwrap();
    let mut leader = None;
    for (i, m) in cluster.members.iter().enumerate() {
        let s = connect(&m.endpoint()).await.status().await.unwrap();
        if s.leader() == s.header().unwrap().member_id() {
            leader = Some(i);
        }
    }
    let leader = leader.expect("a leader");
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (survivor, doomed) = (followers[0], followers[1]);
    let mut c = connect(&cluster.members[leader].endpoint()).await;
    let mut acked = Vec::new();
    for i in 0..200 {
        let k = format!("k/{i:04}");
        c.put(k.clone(), "v", None).await.unwrap();
        acked.push(k);
    }
    cluster.members[doomed].kill9();
    for i in 200..300 {
        let k = format!("k/{i:04}");
        c.put(k.clone(), "v", None).await.unwrap();
        acked.push(k);
    }
    tokio::time::sleep(settle).await;
    cluster.members[leader].kill9();
    // Their data is gone: only the survivor's remains.
    for i in [leader, doomed] {
        std::fs::remove_dir_all(cluster.members[i].data_dir()).unwrap();
    }

    let m = &mut cluster.members[survivor];
    tokio::task::block_in_place(|| m.restart_with(&["--force-new-cluster"]));
    let ep = m.endpoint();
    let list = ctl(&ep, &["member", "list"]);
    let members_after_force = list.lines().count();
    let missing_after_force = missing(&ep, &acked).await;
    let mut c = connect(&ep).await;
    c.put("after-force", "1", None).await.unwrap();

    let mut added = Vec::new();
    let mut eps = ep.clone();
    for n in 0..2 {
        let ip = unique_ip();
        let out = member_add(&eps, &format!("new{n}"), &format!("http://{ip}:2380")).await;
        let mut member = start_added_member(kind, ip, &out);
        tokio::task::block_in_place(|| member.wait_healthy());
        eps = format!("{eps},{}", member.endpoint());
        added.push(member);
    }
    let mut missing_on_new_members = Vec::new();
    for m in &added {
        missing_on_new_members.push(missing(&m.endpoint(), &acked).await);
    }
    let list = ctl(&eps, &["member", "list"]);
    let rev = c
        .get("after-force", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut hashes = Vec::new();
    for e in eps.split(',') {
        // A new member may still be applying its last entries.
        let mut h = 0;
        for _ in 0..50 {
            match connect(e).await.hash_kv(rev).await {
                Ok(r) => {
                    h = r.hash();
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        hashes.push(h);
    }
    Outcome {
        members_after_force,
        missing_after_force,
        missing_on_new_members,
        members_at_end: list.lines().count(),
        hashes_equal: hashes.iter().all(|h| *h == hashes[0] && *h != 0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_new_cluster_after_quorum_loss_keeps_every_acknowledged_write_as_etcd_does() {
    let want = Outcome {
        members_after_force: 1,
        missing_after_force: Vec::new(),
        missing_on_new_members: vec![Vec::new(), Vec::new()],
        members_at_end: 3,
        hashes_equal: true,
    };
    // etcd 3.5 on the same history: the survivor serves every write, but
    // it trims its log at the commit index it last synced, and a follower
    // syncs that index only with new entries: the last acknowledged writes
    // are applied on the survivor and missing from the log the new members
    // replay (seen here: k/0299 missing on both, HashKV unequal). ferrocd
    // keeps and applies the survivor's whole log instead.
    let etcd = quorum_loss(Kind::Etcd, Duration::from_millis(500)).await;
    eprintln!("etcd after force-new-cluster: {etcd:?}");
    assert_eq!(
        (
            etcd.members_after_force,
            &etcd.missing_after_force,
            etcd.members_at_end
        ),
        (1, &Vec::new(), 3),
        "etcd: {etcd:?}"
    );
    let ferrocd = quorum_loss(Kind::Ferrocd, Duration::ZERO).await;
    assert_eq!(ferrocd, want, "ferrocd");
}

/// This member's name, as the member list gives it.
async fn own_name(endpoint: &str) -> String {
    let mut c = connect(endpoint).await;
    let me = c.status().await.unwrap().header().unwrap().member_id();
    let list = c.member_list().await.unwrap();
    let m = list
        .members()
        .iter()
        .find(|m| m.id() == me)
        .expect("listed");
    m.name().to_string()
}

/// The member list's length once every member in it has a name. A member
/// that has just restarted after joining through a snapshot can list an
/// older membership for a moment (seen: no member, or itself as a nameless
/// learner) until it has replayed its log.
async fn member_count(endpoint: &str) -> usize {
    let mut c = connect(endpoint).await;
    let mut members = Vec::new();
    for _ in 0..100 {
        members = c.member_list().await.unwrap().members().to_vec();
        if !members.is_empty() && members.iter().all(|m| !m.name().is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    members.len()
}

/// `--force-new-cluster-once NAME/TOKEN` (the operator's quorum-loss
/// recovery gives it to every pod): the named member forces a one-member
/// cluster on its first start with the token and never again; a member of
/// another name ignores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_new_cluster_once_forces_the_named_member_a_single_time() {
    let mut cluster = tokio::task::spawn_blocking(|| Cluster::start(Kind::Ferrocd, 3, &[]))
        .await
        .unwrap();
    let ep = cluster.members[0].endpoint();
    let mut c = connect(&ep).await;
    for i in 0..50 {
        c.put(format!("k/{i:04}"), "v", None).await.unwrap();
    }
    let name = own_name(&ep).await;
    for i in [1, 2] {
        cluster.members[i].kill9();
        std::fs::remove_dir_all(cluster.members[i].data_dir()).unwrap();
    }
    let once = format!("--force-new-cluster-once={name}/t1");
    let m = &mut cluster.members[0];
    tokio::task::block_in_place(|| m.restart_with(&[once.as_str()]));
    assert_eq!(member_count(&ep).await, 1, "forced into one member");
    let acked: Vec<String> = (0..50).map(|i| format!("k/{i:04}")).collect();
    assert_eq!(missing(&ep, &acked).await, Vec::<String>::new());

    let ip = unique_ip();
    let out = member_add(&ep, "new0", &format!("http://{ip}:2380")).await;
    let mut added = start_added_member(Kind::Ferrocd, ip, &out);
    tokio::task::block_in_place(|| added.wait_healthy());
    assert_eq!(member_count(&ep).await, 2);

    // The same token again: no second force.
    let m = &mut cluster.members[0];
    tokio::task::block_in_place(|| m.restart());
    assert_eq!(member_count(&ep).await, 2, "forced twice");
    // The flag names the survivor: the new member ignores it.
    tokio::task::block_in_place(|| added.restart_with(&[once.as_str()]));
    assert_eq!(member_count(&added.endpoint()).await, 2);
    // A new token forces again.
    let m = &mut cluster.members[0];
    let again = format!("--force-new-cluster-once={name}/t2");
    tokio::task::block_in_place(|| m.restart_with(&[again.as_str()]));
    assert_eq!(member_count(&ep).await, 1, "a new token forces again");
}

const CANARY: &[u8] = b"CANARY-VALUE-0123456789";

/// Where a member keeps the store its values are in.
fn store_file(m: &Member) -> std::path::PathBuf {
    match m.kind {
        Kind::Ferrocd => m.data_dir().join("member").join("db"),
        Kind::Etcd | Kind::Etcd34 => m.data_dir().join("member").join("snap").join("db"),
    }
}

/// Stops `m` cleanly (its store is flushed), flips one bit of the canary's
/// value in its store file, as a failing disk would.
fn damage(m: &mut Member) {
    m.terminate();
    assert!(
        m.wait_exit(Duration::from_secs(20)).is_some(),
        "did not stop"
    );
    let path = store_file(m);
    let mut bytes = std::fs::read(&path).unwrap();
    // Every copy: copy-on-write stores keep old pages until reused.
    let found: Vec<usize> = bytes
        .windows(CANARY.len())
        .enumerate()
        .filter(|(_, w)| *w == CANARY)
        .map(|(at, _)| at)
        .collect();
    assert!(!found.is_empty(), "the canary is not in {}", path.display());
    for at in found {
        bytes[at + 7] ^= 1;
    }
    std::fs::write(&path, bytes).unwrap();
}

/// A 3-member cluster holding the canary on every member, and member 2's ID.
async fn cluster_with_canary(kind: Kind, extra: &'static [&'static str]) -> (Cluster, String) {
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(kind, 3, extra))
        .await
        .unwrap();
    let mut c = connect(&cluster.members[0].endpoint()).await;
    for i in 0..50 {
        c.put(format!("k/{i}"), "v", None).await.unwrap();
    }
    c.put("canary", CANARY, None).await.unwrap();
    // Every member has applied it (a linearizable read through each).
    for m in &cluster.members {
        connect(&m.endpoint())
            .await
            .get("canary", None)
            .await
            .unwrap();
    }
    let s = connect(&cluster.members[2].endpoint())
        .await
        .status()
        .await
        .unwrap();
    let id = format!("{:x}", s.header().unwrap().member_id());
    (cluster, id)
}

/// (exit status success, the log names the check and the member).
async fn initial_check_refuses_a_damaged_member(kind: Kind) -> (bool, bool, bool) {
    // etcd 3.5 knows its peers at that point only from a raft snapshot
    // (without one its check finds no peer and passes): make it take some.
    let (mut cluster, id) = cluster_with_canary(kind, &["--snapshot-count=10"]).await;
    let m = &mut cluster.members[2];
    damage(m);
    m.respawn_with(&["--experimental-initial-corrupt-check"]);
    let status = m
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{} served with a damaged store", kind.name()));
    let log = m.log();
    (
        status.success(),
        log.contains("checkInitialHashKV failed"),
        log.contains(&format!("{id} found data inconsistency with peers")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_initial_corrupt_check_refuses_to_start_a_damaged_member_as_etcd_does() {
    let etcd = initial_check_refuses_a_damaged_member(Kind::Etcd).await;
    assert_eq!(etcd, (false, true, true), "etcd");
    let ferrocd = initial_check_refuses_a_damaged_member(Kind::Ferrocd).await;
    assert_eq!(ferrocd, etcd, "ferrocd");
}

/// What clients see once one of the leader's checks (enabled by `flags`)
/// found a follower damaged: the alarm list, a put's error, whether reads
/// still work. With `compact`, the history is compacted after the damage.
async fn leader_check_raises_corrupt(
    kind: Kind,
    flags: &'static [&'static str],
    compact: bool,
) -> (String, String, bool) {
    let (mut cluster, _) = cluster_with_canary(kind, flags).await;
    // A follower: the leader checks the others against itself.
    let mut victim = None;
    for (i, m) in cluster.members.iter().enumerate() {
        let s = connect(&m.endpoint()).await.status().await.unwrap();
        if s.leader() != s.header().unwrap().member_id() {
            victim = Some(i);
        }
    }
    let m = &mut cluster.members[victim.expect("a follower")];
    damage(m);
    tokio::task::block_in_place(|| m.restart());
    if compact {
        // Compacted only now: a check of a compaction made before the
        // damage may pass first, and each compaction is checked once.
        let mut c = connect(&cluster.members[0].endpoint()).await;
        let put = c.put("k/1", "v2", None).await.unwrap();
        c.compact(put.header().unwrap().revision(), None)
            .await
            .unwrap();
        c.put("k/2", "v2", None).await.unwrap();
    }
    let eps = cluster.endpoints();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let alarms = loop {
        let list = ctl(&eps, &["alarm", "list"]);
        if !list.is_empty() {
            break list;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: no alarm in 30 s",
            kind.name()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut c = connect(&cluster.members[0].endpoint()).await;
    let put = c.put("after", "x", None).await.unwrap_err().to_string();
    let read = c.get("k/1", None).await.is_ok();
    (alarms, put, read)
}

/// etcd 3.5's answers once CORRUPT is raised: the alarm (member ID 0, which
/// etcdctl leaves out), the refused write, reads still served.
fn assert_corrupt_outcome(what: &str, o: &(String, String, bool)) {
    assert_eq!(o.0, "alarm:CORRUPT \n", "{what}");
    assert!(
        o.1.contains("etcdserver: corrupt cluster"),
        "{what}: {}",
        o.1
    );
    assert!(o.2, "{what} refused a read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_periodic_corrupt_check_raises_the_corrupt_alarm_as_etcd_does() {
    let flags = &["--experimental-corrupt-check-time=1s"];
    let etcd = leader_check_raises_corrupt(Kind::Etcd, flags, false).await;
    assert_corrupt_outcome("etcd", &etcd);
    let ferrocd = leader_check_raises_corrupt(Kind::Ferrocd, flags, false).await;
    assert_eq!(ferrocd, etcd, "ferrocd");
}

/// etcd 3.5.1 (the reference here) predates the compact hash check (3.5.5):
/// ferrocd's ends as the periodic check does on etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compact_hash_check_raises_the_corrupt_alarm() {
    let flags = &[
        "--experimental-compact-hash-check-enabled",
        "--experimental-compact-hash-check-time=1s",
    ];
    let ferrocd = leader_check_raises_corrupt(Kind::Ferrocd, flags, true).await;
    assert_corrupt_outcome("ferrocd", &ferrocd);
}

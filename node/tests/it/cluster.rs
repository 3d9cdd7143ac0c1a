//! Multi-member clusters: static bootstrap as seed 001 does it, replication,
//! reads and writes on every member, and losing the leader.

use crate::support::client::Client;
use crate::support::{etcdctl35, run, Cluster, Kind};
use ferrocd::proto::etcdserverpb::{MemberListRequest, PutRequest, RangeRequest, StatusRequest};
use std::time::{Duration, Instant};

fn ctl(endpoints: &str, args: &[&str]) -> String {
    let mut a = vec![format!("--endpoints={endpoints}")];
    a.extend(args.iter().map(|s| s.to_string()));
    let (code, out, err) = run(&etcdctl35(), &a, &[]);
    assert_eq!(code, 0, "etcdctl {args:?}: {err}");
    out
}

/// Waits until every member has published its name (etcd does this right after start).
async fn wait_named(c: &mut Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ms = c
            .cluster
            .member_list(MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner()
            .members;
        if ms.len() == n && ms.iter().all(|m| !m.name.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members never all published their names: {ms:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_bootstrap_statically_and_serve_the_same_data() {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(Kind::Ferrocd, 3, &[]))
        .await
        .unwrap();
    let mut clients = Vec::new();
    for m in &cluster.members {
        clients.push(Client::connect(&m.endpoint()).await);
    }
    wait_named(&mut clients[0], 3).await;

    // One cluster ID, one leader, every member agrees on both.
    let mut leaders = Vec::new();
    let mut cluster_ids = Vec::new();
    for c in &mut clients {
        let s = c
            .maintenance
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        leaders.push(s.leader);
        cluster_ids.push(s.header.unwrap().cluster_id);
    }
    assert!(
        leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]),
        "{leaders:x?}"
    );
    assert!(cluster_ids.iter().all(|c| *c == cluster_ids[0]));

    // Writes on every member, read back linearizably on every other member.
    for (i, c) in clients.clone().iter_mut().enumerate() {
        let key = format!("from-{i}").into_bytes();
        let put =
            c.kv.put(PutRequest {
                key: key.clone(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let rev = put.into_inner().header.unwrap().revision;
        for (j, other) in clients.iter_mut().enumerate() {
            let got = other
                .kv
                .range(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                got.kvs.len(),
                1,
                "member {j} misses the write made on member {i}"
            );
            assert_eq!(got.kvs[0].mod_revision, rev);
        }
    }

    // etcdctl sees one cluster: member list with names, one leader, equal hashes.
    let eps = cluster.endpoints();
    let list = ctl(&eps, &["member", "list"]);
    for i in 0..3 {
        assert!(
            list.contains(&format!(
                ", started, infra{i}, http://{}:2380, http://{}:2379, false",
                cluster.members[i].ip, cluster.members[i].ip
            )),
            "{list}"
        );
    }
    let status = ctl(&eps, &["endpoint", "status", "--cluster", "-w", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let is_leader: Vec<bool> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"]["leader"] == s["Status"]["header"]["member_id"])
        .collect();
    assert_eq!(is_leader.iter().filter(|l| **l).count(), 1, "{status}");
    // Followers apply asynchronously; wait until every member has caught up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hashes = ctl(&eps, &["endpoint", "hashkv", "--cluster", "-w", "json"]);
        let hashes: serde_json::Value = serde_json::from_str(&hashes).unwrap();
        let values: Vec<&serde_json::Value> = hashes
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h["HashKV"]["hash"])
            .collect();
        if values.iter().all(|v| *v == values[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "hashkv differs: {hashes}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

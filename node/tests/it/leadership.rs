//! Moving leadership: etcd's MoveLeader (its refusals, `etcdctl
//! move-leader`) and a leader's hand-over when it gets SIGTERM, run on a
//! 3-member etcd 3.5 and a 3-member ferrocd and compared.

use crate::cluster::{connect_all, ctl, leader_index, status_of};
use crate::support::client::Client;
use crate::support::{Cluster, Kind};
use ferrocd_proto::etcdserverpb::{
    MemberAddRequest, MemberRemoveRequest, MoveLeaderRequest, PutRequest,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn move_leader(c: &mut Client, target: u64) -> String {
    match c
        .maintenance
        .move_leader(MoveLeaderRequest { target_id: target })
        .await
    {
        Ok(_) => "ok".into(),
        Err(s) => format!("{:?}: {}", s.code(), s.message()),
    }
}

/// The leader every reachable member reports, once they agree on one.
async fn agreed_leader(clients: &mut [Client]) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for c in clients.iter_mut() {
            if let Some(s) = status_of(c).await {
                seen.push((s.leader, s.raft_term));
            }
        }
        if !seen.is_empty() && seen[0].0 != 0 && seen.iter().all(|s| *s == seen[0]) {
            return seen[0];
        }
        assert!(
            Instant::now() < deadline,
            "members never agreed on a leader: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes through `c` until stopped; counts failed writes.
fn spawn_writer(
    mut c: Client,
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) {
            let put = PutRequest {
                key: format!("k{done}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            };
            match tokio::time::timeout(Duration::from_secs(15), c.kv.put(put)).await {
                Ok(Ok(_)) => done += 1,
                other => {
                    eprintln!("write failed: {other:?}");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        done
    })
}

/// MemberAdd of a learner; etcd refuses changes until its members have
/// been connected for 5 s ("unhealthy cluster"), so this retries.
async fn add_learner(c: &mut Client, peer_url: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c
            .cluster
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![peer_url.to_string()],
                is_learner: true,
            })
            .await;
        match r {
            Ok(r) => return r.into_inner().member.unwrap().id,
            Err(s) if s.message() == "etcdserver: unhealthy cluster" => {
                assert!(
                    Instant::now() < deadline,
                    "cluster never healthy enough to add"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(s) => panic!("member add: {s:?}"),
        }
    }
}

struct Outcome {
    observed: Vec<String>,
    failed_writes: usize,
    done_writes: usize,
    log_of_terminated: String,
}

async fn scenario(kind: Kind) -> Outcome {
    let mut cluster = tokio::task::spawn_blocking(move || Cluster::start(kind, 3, &[]))
        .await
        .unwrap();
    let mut clients = connect_all(&cluster).await;
    let mut observed = Vec::new();
    let l = leader_index(&mut clients).await;
    let (f1, f2) = ((l + 1) % 3, (l + 2) % 3);
    let mut ids = Vec::new();
    for c in clients.iter_mut() {
        ids.push(status_of(c).await.unwrap().header.unwrap().member_id);
    }
    let (_, term) = agreed_leader(&mut clients).await;

    // Refusals, in etcd's words.
    observed.push(format!(
        "unknown target: {}",
        move_leader(&mut clients[l], 0x1234).await
    ));
    observed.push(format!(
        "asked a follower: {}",
        move_leader(&mut clients[f1], ids[f2]).await
    ));
    observed.push(format!(
        "to itself: {}",
        move_leader(&mut clients[l], ids[l]).await
    ));
    let learner = add_learner(
        &mut clients[l],
        &format!("http://{}:2390", cluster.members[l].ip),
    )
    .await;
    observed.push(format!(
        "to a learner: {}",
        move_leader(&mut clients[l], learner).await
    ));
    clients[l]
        .cluster
        .member_remove(MemberRemoveRequest { id: learner })
        .await
        .unwrap();
    observed.push(format!(
        "after refusals: term +{}",
        agreed_leader(&mut clients).await.1 - term
    ));

    // etcdctl move-leader while a client writes through the third member.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writer(clients[f2].clone(), stop.clone(), failed.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let endpoints = cluster.endpoints();
    let target = format!("{:x}", ids[f1]);
    let out = tokio::task::spawn_blocking(move || ctl(&endpoints, &["move-leader", &target]))
        .await
        .unwrap();
    observed.push(
        out.trim()
            .replace(&format!("{:x}", ids[l]), "<leader>")
            .replace(&format!("{:x}", ids[f1]), "<transferee>"),
    );
    let (leader, after_move) = agreed_leader(&mut clients).await;
    observed.push(format!(
        "leads after move-leader: {}, term +{}",
        if leader == ids[f1] {
            "transferee"
        } else {
            "another"
        },
        after_move - term
    ));

    // SIGTERM the new leader: the others have a leader again without an election timeout.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = &mut cluster.members[f1];
    m.terminate();
    let exited = tokio::task::block_in_place(|| m.wait_exit(Duration::from_secs(20)));
    observed.push(format!("exits on SIGTERM: {}", exited.is_some()));
    let mut survivors = vec![clients[l].clone(), clients[f2].clone()];
    let (leader, _) = agreed_leader(&mut survivors).await;
    observed.push(format!(
        "a survivor leads after SIGTERM: {}",
        leader == ids[l] || leader == ids[f2]
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let done_writes = writer.await.unwrap();
    let log_of_terminated =
        std::fs::read_to_string(cluster.members[f1].log_path()).unwrap_or_default();
    Outcome {
        observed,
        failed_writes: failed.load(Ordering::Relaxed),
        done_writes,
        log_of_terminated,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn move_leader_and_sigterm_hand_leadership_over_as_etcd_does() {
    let etcd = scenario(Kind::Etcd).await;
    let ferrocd = scenario(Kind::Ferrocd).await;
    eprintln!(
        "etcd: {} writes, {} failed; ferrocd: {} writes, {} failed",
        etcd.done_writes, etcd.failed_writes, ferrocd.done_writes, ferrocd.failed_writes
    );
    assert_eq!(ferrocd.observed, etcd.observed);
    // ferrocd holds writes during a transfer and forwards them to the new
    // leader afterwards: not one fails.
    assert!(ferrocd.done_writes > 0);
    assert_eq!(ferrocd.failed_writes, 0);
    assert!(
        ferrocd
            .log_of_terminated
            .contains("leadership transfer finished"),
        "the terminated leader did not hand over:\n{}",
        ferrocd.log_of_terminated
    );
}

/// Defragmenting the leader holds its store for seconds (a debug build,
/// ~40 MB): reads and writes wait, but raft must go on, so the leader
/// keeps its leadership and no member calls an election. (Reads waiting on
/// the store used to occupy every runtime worker, heartbeats stopped and
/// the followers elected a new leader.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defragmenting_the_leader_under_reads_keeps_its_leadership() {
    use ferrocd_proto::etcdserverpb::{CompactionRequest, DefragmentRequest, RangeRequest};
    let cluster = Cluster::start(Kind::Ferrocd, 3, &[]);
    let mut clients = connect_all(&cluster).await;
    let (leader, term) = agreed_leader(&mut clients).await;
    let li = leader_index(&mut clients).await;
    let value = vec![b'v'; 4096];
    let mut rev = 0;
    for batch in 0..100 {
        let mut writes = Vec::new();
        for i in 0..100 {
            let mut kv = clients[li].kv.clone();
            let key = format!("defrag/{batch:03}/{i:03}").into_bytes();
            let value = value.clone();
            writes.push(tokio::spawn(async move {
                kv.put(PutRequest {
                    key,
                    value,
                    ..Default::default()
                })
                .await
            }));
        }
        for w in writes {
            let r = w.await.expect("writer").expect("put");
            rev = rev.max(r.into_inner().header.map_or(0, |h| h.revision));
        }
    }
    // Overwrite half of it, then compact, so there is space to reclaim.
    for i in 0..50 {
        let key = format!("defrag/{i:03}/000").into_bytes();
        clients[li]
            .kv
            .put(PutRequest {
                key,
                value: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .expect("put");
    }
    clients[li]
        .kv
        .compact(CompactionRequest {
            revision: rev,
            physical: true,
        })
        .await
        .expect("compact");
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let mut kv = clients[li].kv.clone();
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = kv
                    .range(RangeRequest {
                        key: b"defrag/000/001".to_vec(),
                        serializable: true,
                        ..Default::default()
                    })
                    .await;
            }
        }));
    }
    let started = Instant::now();
    clients[li]
        .maintenance
        .defragment(DefragmentRequest {})
        .await
        .expect("defragment the leader");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let _ = r.await;
    }
    let after = agreed_leader(&mut clients).await;
    eprintln!(
        "defragmenting the leader took {took:?}; leader and term before {:?}, after {after:?}",
        (leader, term)
    );
    assert_eq!(
        after,
        (leader, term),
        "the leader changed while it defragmented ({took:?})"
    );
}

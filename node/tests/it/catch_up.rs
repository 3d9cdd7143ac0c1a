//! A member far behind catches up from the leader's snapshot, and stays
//! itself when it restarts afterwards.

use crate::cluster::{connect_all, leader_index};
use crate::support::client::Client;
use crate::support::{Cluster, Kind};
use ferrocd_proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use std::time::{Duration, Instant};

/// A snapshot every 100 entries, 100 entries kept behind it.
const FLAGS: [&str; 2] = [
    "--snapshot-count=100",
    "--experimental-snapshot-catchup-entries=100",
];
const KEYS: i64 = 400;
/// Values large enough that the snapshot (8 MB) goes in several of
/// openraft's 3 MiB chunks, each written at its offset into one file.
const VALUE_BYTES: usize = 20_000;

async fn member_id(c: &mut Client) -> u64 {
    let s = c
        .maintenance
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    s.header.unwrap().member_id
}

/// Keys under `s/` and the revision, as the member `c` talks to sees them.
async fn count_s(c: &mut Client) -> (i64, i64) {
    let r =
        c.kv.range(RangeRequest {
            key: b"s/".to_vec(),
            range_end: b"s0".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (r.count, r.header.unwrap().revision)
}

/// More raft entries than the log keeps after a snapshot: one entry per
/// sequential write.
async fn write_keys(c: &mut Client) {
    for i in 0..KEYS {
        let put = PutRequest {
            key: format!("s/{i:05}").into_bytes(),
            value: vec![b'x'; VALUE_BYTES],
            ..Default::default()
        };
        c.kv.put(put).await.unwrap();
    }
}

/// Waits until `b` has the same HashKV at `rev` as `a`.
async fn wait_same_hash(a: &mut Client, b: &mut Client, rev: i64) {
    use ferrocd_proto::etcdserverpb::HashKvRequest;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let want = a
            .maintenance
            .hash_kv(HashKvRequest { revision: rev })
            .await
            .unwrap()
            .into_inner()
            .hash;
        let got = b
            .maintenance
            .hash_kv(HashKvRequest { revision: rev })
            .await
            .map(|r| r.into_inner().hash);
        if got.as_ref().ok() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "hashkv differs after catching up: {want} vs {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A 3-member cluster whose follower `behind` was killed while the
/// leader took `KEYS` writes, more than its log keeps after a snapshot.
struct Behind {
    cluster: Cluster,
    clients: Vec<Client>,
    leader: usize,
    behind: usize,
    /// The behind member's ID.
    own_id: u64,
    /// The revision after the writes.
    rev: i64,
}

async fn a_follower_left_behind() -> Behind {
    let mut cluster = tokio::task::spawn_blocking(|| Cluster::start(Kind::Ferrocd, 3, &FLAGS))
        .await
        .unwrap();
    let mut clients = connect_all(&cluster).await;
    let leader = leader_index(&mut clients).await;
    let behind = (leader + 1) % 3;
    let own_id = member_id(&mut clients[behind]).await;
    cluster.members[behind].kill9();
    write_keys(&mut clients[leader]).await;
    let (count, rev) = count_s(&mut clients[leader]).await;
    assert_eq!(count, KEYS);
    Behind {
        cluster,
        clients,
        leader,
        behind,
        own_id,
        rev,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_far_behind_catches_up_from_a_snapshot() {
    let Behind {
        mut cluster,
        mut clients,
        leader: writer,
        behind,
        own_id,
        rev,
    } = a_follower_left_behind().await;
    let m = &mut cluster.members[behind];
    tokio::task::block_in_place(|| m.restart());
    let mut c = Client::connect(&cluster.members[behind].endpoint()).await;
    let (got, _) = count_s(&mut c).await;
    assert_eq!(got, KEYS, "the restarted member has every key");
    wait_same_hash(&mut clients[writer], &mut c, rev).await;
    let log = cluster.members[behind].log_tail();
    let installed = log
        .lines()
        .find(|l| l.contains("installed a snapshot from the leader"))
        .unwrap_or_else(|| panic!("it caught up without a snapshot:\n{log}"));
    let bytes: u64 = installed
        .split("\"bytes\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {installed}"));
    assert!(
        bytes > 2 * (3 << 20),
        "a snapshot of {bytes} bytes came in one chunk"
    );
    assert!(
        !log.contains("\"level\":\"ERROR\""),
        "errors while catching up:\n{log}"
    );

    // Restarted again, it is still itself: the snapshot carried the
    // leader's member ID, which once became this member's own (two members
    // with one ID: the raft core panicked on the next append).
    let m = &mut cluster.members[behind];
    tokio::task::block_in_place(|| {
        m.kill9();
        m.restart();
    });
    let mut c = Client::connect(&cluster.members[behind].endpoint()).await;
    assert_eq!(
        member_id(&mut c).await,
        own_id,
        "the member's ID after a restart"
    );
    let put = PutRequest {
        key: b"s/after".to_vec(),
        value: b"restart".to_vec(),
        ..Default::default()
    };
    c.kv.put(put)
        .await
        .expect("the cluster takes writes through it");
    let log = cluster.members[behind].log_tail();
    assert!(!log.contains("panicked"), "{log}");
}

/// A follower that crashes while it installs the leader's snapshot, before
/// or after the store takes it, starts again and catches up. (It once
/// recorded the log purge up to the snapshot before the store had it:
/// restarted, its raft core found a log purged past its state and
/// panicked. Found by the robustness suite.)
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_while_installing_a_snapshot_loses_nothing() {
    for point in ["raftBeforeApplySnap", "raftAfterApplySnap"] {
        let Behind {
            mut cluster,
            mut clients,
            leader,
            behind,
            rev,
            ..
        } = a_follower_left_behind().await;
        let m = &mut cluster.members[behind];
        m.env = vec![("FAILPOINTS".into(), format!("{point}=panic"))];
        m.respawn();
        let crashed = tokio::task::block_in_place(|| m.wait_exit(Duration::from_secs(30)));
        assert!(
            crashed.is_some_and(|s| !s.success()),
            "{point}: no crash: {crashed:?}\n{}",
            m.log_tail()
        );
        m.env.clear();
        tokio::task::block_in_place(|| m.restart());
        let mut c = Client::connect(&cluster.members[behind].endpoint()).await;
        let (got, _) = count_s(&mut c).await;
        assert_eq!(got, KEYS, "{point}: the restarted member has every key");
        wait_same_hash(&mut clients[leader], &mut c, rev).await;
        let log = cluster.members[behind].log_tail();
        assert!(!log.contains("panicked"), "{point}:\n{log}");
    }
}

/// A follower whose disk fails while it receives the leader's snapshot
/// stops, and catches up once restarted with room. (openraft's receiver
/// answered the leader with each write error, the leader started the
/// transfer again, and the member stayed up, saying it was healthy.)
#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_cannot_write_a_snapshot_it_receives_stops() {
    let Behind {
        mut cluster,
        mut clients,
        leader,
        behind,
        rev,
        ..
    } = a_follower_left_behind().await;
    let m = &mut cluster.members[behind];
    m.env = vec![("FAILPOINTS".into(), "raftReceiveSnapChunk=return".into())];
    m.respawn();
    let stopped = tokio::task::block_in_place(|| m.wait_exit(Duration::from_secs(30)));
    assert!(
        stopped.is_some_and(|s| s.code() == Some(1)),
        "still running or not exit 1: {stopped:?}\n{}",
        m.log_tail()
    );
    let log = m.log_tail();
    assert!(
        log.contains("cannot receive a raft snapshot") && log.contains("raftReceiveSnapChunk"),
        "{log}"
    );
    m.env.clear();
    tokio::task::block_in_place(|| m.restart());
    let mut c = Client::connect(&cluster.members[behind].endpoint()).await;
    let (got, _) = count_s(&mut c).await;
    assert_eq!(got, KEYS, "the restarted member has every key");
    wait_same_hash(&mut clients[leader], &mut c, rev).await;
}

/// A watch open on a member that is cut off, falls behind the leader's
/// log and installs its snapshot goes on where it was: every event once,
/// in order. (Watchers once restarted from where they had joined: the
/// whole history again after the snapshot.)
/// Revisions of the watch's events until there are `want`.
async fn collect(
    stream: &mut tonic::Streaming<ferrocd_proto::etcdserverpb::WatchResponse>,
    revs: &mut Vec<i64>,
    want: usize,
) {
    use futures::StreamExt;
    while revs.len() < want {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("events within 30 s")
            .expect("the stream goes on")
            .unwrap();
        revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_on_a_member_that_installs_a_snapshot_goes_on_without_repeats() {
    use ferrocd_proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};
    use futures::StreamExt;
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(Kind::Ferrocd, 3, &FLAGS))
        .await
        .unwrap();
    let mut clients = connect_all(&cluster).await;
    let leader = leader_index(&mut clients).await;
    let behind = (leader + 1) % 3;
    let mut c = clients[leader].clone();
    let put = |i: i64| PutRequest {
        key: format!("w/{i:05}").into_bytes(),
        value: vec![b'x'; 100],
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchCreateRequest {
        key: b"w/".to_vec(),
        range_end: b"w0".to_vec(),
        ..Default::default()
    };
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    })
    .await
    .unwrap();
    let mut stream = clients[behind]
        .watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut revs = Vec::new();
    for i in 0..20 {
        c.kv.put(put(i)).await.unwrap();
    }
    collect(&mut stream, &mut revs, 20).await;
    cluster.members[behind].pause();
    for i in 20..KEYS {
        c.kv.put(put(i)).await.unwrap();
    }
    cluster.members[behind].resume();
    collect(&mut stream, &mut revs, KEYS as usize).await;
    // Nothing more comes (a repeat would).
    let more = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(more.is_err(), "more events: {more:?}");
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "events repeated or out of order: {revs:?}"
    );
    assert_eq!(revs.len(), KEYS as usize, "{revs:?}");
    assert!(
        cluster.members[behind]
            .log_tail()
            .contains("installed a snapshot from the leader"),
        "the member caught up without a snapshot"
    );
}

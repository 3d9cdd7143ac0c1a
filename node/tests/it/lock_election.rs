//! etcd's Lock and Election gRPC services, called directly, on etcd 3.5 and
//! on ferrocd: the same scenario on both, answers compared once member and
//! cluster IDs and terms are normalised.

use crate::support::{etcdctl35, Kind, Member};
use ferrocd_proto::etcdserverpb::{LeaseGrantRequest, ResponseHeader};
use ferrocd_proto::mvccpb::KeyValue;
use ferrocd_proto::v3electionpb::{
    election_client::ElectionClient, CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest,
    ResignRequest,
};
use ferrocd_proto::v3lockpb::{lock_client::LockClient, LockRequest, UnlockRequest};
use ferrocd_testkit::grpc::{dial, Client};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a scenario observed, in order, with IDs and terms taken out.
type Trace = Vec<String>;

fn header(h: Option<ResponseHeader>) -> String {
    format!("rev={}", h.map_or(0, |h| h.revision))
}

fn kv(kv: Option<KeyValue>) -> String {
    let kv = kv.unwrap_or_default();
    format!(
        "{}={} create={} mod={} lease={}",
        String::from_utf8_lossy(&kv.key),
        String::from_utf8_lossy(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.lease
    )
}

async fn grant(c: &Client, id: i64, ttl: i64) {
    c.lease
        .clone()
        .lease_grant(LeaseGrantRequest { ttl, id })
        .await
        .expect("lease grant");
}

/// Two lockers on one name: the second waits until the first unlocks,
/// then holds the lock; a locker on a lease that does not exist fails.
async fn lockers_serialize(m: &Member) -> Trace {
    let c = Client::connect(&m.endpoint()).await;
    let ch = dial(&m.endpoint(), None).await.expect("dial");
    let mut lock = LockClient::new(ch.clone());
    let mut t = Trace::new();
    grant(&c, 0x100, 60).await;
    grant(&c, 0x200, 60).await;
    let first = lock
        .lock(LockRequest {
            name: b"q".to_vec(),
            lease: 0x100,
        })
        .await
        .expect("first lock")
        .into_inner();
    t.push(format!(
        "first {} {}",
        header(first.header),
        String::from_utf8_lossy(&first.key)
    ));
    let mut second_client = LockClient::new(ch.clone());
    let second = tokio::spawn(async move {
        second_client
            .lock(LockRequest {
                name: b"q".to_vec(),
                lease: 0x200,
            })
            .await
            .map(|r| r.into_inner())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    t.push(format!("second waits: {}", !second.is_finished()));
    let unlocked = lock
        .unlock(UnlockRequest {
            key: first.key.clone(),
        })
        .await
        .expect("unlock")
        .into_inner();
    t.push(format!("unlock {}", header(unlocked.header)));
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("second lock in time")
        .expect("second task")
        .expect("second lock");
    t.push(format!(
        "second {} {}",
        header(second.header),
        String::from_utf8_lossy(&second.key)
    ));
    let err = lock
        .lock(LockRequest {
            name: b"q".to_vec(),
            lease: 0x999,
        })
        .await
        .expect_err("a lease that does not exist");
    t.push(format!("missing lease: {:?} {}", err.code(), err.message()));
    t
}

/// A holder killed -9 (etcdctl lock on a 2 s session) stops keeping its
/// lease alive: a Lock call waiting behind it gets the lock after the TTL.
async fn a_killed_holder_releases(m: &Member) -> Trace {
    let mut holder = Command::new(etcdctl35())
        .args([
            "--endpoints",
            &m.endpoint(),
            "lock",
            "--ttl",
            "2",
            "k9",
            "sleep",
            "600",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl lock");
    let c = Client::connect(&m.endpoint()).await;
    // Wait until the holder's key is there.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r =
            c.kv.clone()
                .range(ferrocd_proto::etcdserverpb::RangeRequest {
                    key: b"k9/".to_vec(),
                    range_end: b"k90".to_vec(),
                    ..Default::default()
                })
                .await
                .expect("range");
        if r.into_inner().count > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl lock never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    grant(&c, 0x300, 60).await;
    let ch = dial(&m.endpoint(), None).await.expect("dial");
    let mut lock = LockClient::new(ch);
    let waiter = tokio::spawn(async move {
        lock.lock(LockRequest {
            name: b"k9".to_vec(),
            lease: 0x300,
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut t = vec![format!(
        "waits while the holder lives: {}",
        !waiter.is_finished()
    )];
    // SIGKILL: the holder's keep-alives stop; its lease expires.
    let _ = holder.kill();
    let _ = holder.wait();
    let killed = Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(15), waiter)
        .await
        .expect("lock after the holder's TTL")
        .expect("waiter task")
        .expect("lock");
    let waited = killed.elapsed();
    t.push(format!(
        "acquired {}",
        String::from_utf8_lossy(&got.into_inner().key)
    ));
    t.push(format!(
        "after the TTL, not long after: {}",
        waited < Duration::from_secs(10)
    ));
    t
}

/// Campaign, Leader, Proclaim, Observe, Resign, and a second candidate
/// that takes over.
async fn an_election(m: &Member) -> Trace {
    let c = Client::connect(&m.endpoint()).await;
    let ch = dial(&m.endpoint(), None).await.expect("dial");
    let mut el = ElectionClient::new(ch.clone());
    let mut t = Trace::new();
    grant(&c, 0xa, 60).await;
    grant(&c, 0xb, 60).await;
    let none = el
        .leader(LeaderRequest {
            name: b"e".to_vec(),
        })
        .await
        .expect_err("no leader yet");
    t.push(format!(
        "leader before: {:?} {}",
        none.code(),
        none.message()
    ));
    let won = el
        .campaign(CampaignRequest {
            name: b"e".to_vec(),
            lease: 0xa,
            value: b"a1".to_vec(),
        })
        .await
        .expect("campaign")
        .into_inner();
    let leader: LeaderKey = won.leader.clone().expect("leader key");
    t.push(format!(
        "campaign {} key={} rev={} lease={}",
        header(won.header),
        String::from_utf8_lossy(&leader.key),
        leader.rev,
        leader.lease
    ));
    let mut observe = el
        .observe(LeaderRequest {
            name: b"e".to_vec(),
        })
        .await
        .expect("observe")
        .into_inner();
    let o = observe.message().await.expect("observe").expect("first");
    t.push(format!("observed {} {}", header(o.header), kv(o.kv)));
    let p = el
        .proclaim(ProclaimRequest {
            leader: Some(leader.clone()),
            value: b"a2".to_vec(),
        })
        .await
        .expect("proclaim")
        .into_inner();
    t.push(format!("proclaim {}", header(p.header)));
    let o = observe
        .message()
        .await
        .expect("observe")
        .expect("proclaimed");
    t.push(format!("observed {} {}", header(o.header), kv(o.kv)));
    let mut other = ElectionClient::new(ch.clone());
    let second = tokio::spawn(async move {
        other
            .campaign(CampaignRequest {
                name: b"e".to_vec(),
                lease: 0xb,
                value: b"b1".to_vec(),
            })
            .await
            .map(|r| r.into_inner())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    t.push(format!("second candidate waits: {}", !second.is_finished()));
    let l = el
        .leader(LeaderRequest {
            name: b"e".to_vec(),
        })
        .await
        .expect("leader")
        .into_inner();
    t.push(format!("leader {} {}", header(l.header), kv(l.kv)));
    let stale = LeaderKey {
        rev: leader.rev + 100,
        ..leader.clone()
    };
    let err = el
        .proclaim(ProclaimRequest {
            leader: Some(stale),
            value: b"x".to_vec(),
        })
        .await
        .expect_err("not the leader");
    t.push(format!(
        "stale proclaim: {:?} {}",
        err.code(),
        err.message()
    ));
    let r = el
        .resign(ResignRequest {
            leader: Some(leader),
        })
        .await
        .expect("resign")
        .into_inner();
    t.push(format!("resign {}", header(r.header)));
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("second leads in time")
        .expect("task")
        .expect("campaign");
    t.push(format!("second leads {}", header(second.header)));
    let o = observe
        .message()
        .await
        .expect("observe")
        .expect("new leader");
    t.push(format!("observed {} {}", header(o.header), kv(o.kv)));
    t
}

async fn compare<F, Fut>(what: &str, scenario: F)
where
    F: Fn(Member) -> Fut,
    Fut: std::future::Future<Output = Trace>,
{
    let etcd = scenario(Member::start(Kind::Etcd, &[])).await;
    let ferrocd = scenario(Member::start(Kind::Ferrocd, &[])).await;
    eprintln!("{what} on etcd 3.5:\n  {}", etcd.join("\n  "));
    assert_eq!(
        etcd, ferrocd,
        "{what}: ferrocd (right) differs from etcd 3.5 (left)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lockers_serialize_as_on_etcd() {
    compare("lockers", |m| async move { lockers_serialize(&m).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_killed_releases_after_its_ttl_as_on_etcd() {
    compare("killed holder", |m| async move {
        a_killed_holder_releases(&m).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_runs_as_on_etcd() {
    compare("election", |m| async move { an_election(&m).await }).await;
}

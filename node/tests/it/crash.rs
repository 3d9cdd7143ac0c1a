//! Crash safety: kill -9 while several clients write; after a restart every
//! acknowledged write is present with the revision it was acknowledged at,
//! and revisions continue from there.

use crate::support::client::Client;
use crate::support::{Kind, Member};
use ferrocd_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: usize = 8;

/// A write the server acknowledged, with the revision it was acknowledged at.
#[derive(Clone)]
struct Acked {
    key: Vec<u8>,
    value: Vec<u8>,
    rev: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_concurrent_writes_loses_no_acknowledged_write() {
    let mut m = tokio::task::spawn_blocking(|| Member::start(Kind::Ferrocd, &[]))
        .await
        .unwrap();
    let mut c = Client::connect(&m.endpoint()).await;
    let lease = c
        .lease
        .lease_grant(LeaseGrantRequest { ttl: 600, id: 77 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lease.id, 77);

    let mut total = 0;
    let mut max_rev = 0;
    for round in 0..3 {
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let acked = acked.clone();
            let mut c = Client::connect(&m.endpoint()).await;
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("r{round}/w{w}/{i:06}").into_bytes();
                    let value = format!("value-{round}-{w}-{i}").into_bytes();
                    let put = PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..Default::default()
                    };
                    match c.kv.put(put).await {
                        Ok(r) => {
                            let rev = r.into_inner().header.expect("header").revision;
                            acked.lock().unwrap().push(Acked { key, value, rev });
                        }
                        Err(_) => break,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + 300 * round as u64)).await;
        m.kill9();
        for w in writers {
            w.await.unwrap();
        }
        m = tokio::task::spawn_blocking(move || {
            m.restart();
            m
        })
        .await
        .unwrap();
        let mut c = Client::connect(&m.endpoint()).await;
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() > 50,
            "round {round}: only {} writes acknowledged before the kill",
            acked.len()
        );
        for Acked { key, value, rev } in &acked {
            let got =
                c.kv.range(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let kv = got.kvs.first().unwrap_or_else(|| {
                panic!("acknowledged key {:?} lost", String::from_utf8_lossy(key))
            });
            assert_eq!(&kv.value, value);
            assert_eq!(
                kv.mod_revision,
                *rev,
                "revision of {:?}",
                String::from_utf8_lossy(key)
            );
            max_rev = max_rev.max(*rev);
        }
        total += acked.len();
        let next =
            c.kv.put(PutRequest {
                key: b"after".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            next.header.unwrap().revision > max_rev,
            "revisions must continue after a crash"
        );
        let ttl = c
            .lease
            .lease_time_to_live(LeaseTimeToLiveRequest {
                id: 77,
                keys: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ttl.granted_ttl, 600, "the granted lease survives the crash");
    }
    eprintln!("crash test: {total} acknowledged writes over 3 kill -9 rounds, all present");
}

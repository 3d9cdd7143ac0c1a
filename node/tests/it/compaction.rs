//! Auto-compaction: `--auto-compaction-mode periodic` keeps the given window of history.

use crate::support::client::Client;
use crate::support::{Kind, Member};
use ferrocd_proto::etcdserverpb::{PutRequest, RangeRequest};
use std::time::{Duration, Instant};

#[tokio::test]
async fn periodic_auto_compaction_drops_history_older_than_the_retention() {
    let m = tokio::task::spawn_blocking(|| {
        Member::start(
            Kind::Ferrocd,
            &[
                "--auto-compaction-mode=periodic",
                "--auto-compaction-retention=2s",
            ],
        )
    })
    .await
    .unwrap();
    let mut c = Client::connect(&m.endpoint()).await;
    let first =
        c.kv.put(PutRequest {
            key: b"k".to_vec(),
            value: b"0".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let first_rev = first.into_inner().header.unwrap().revision;
    let started = Instant::now();
    let compacted = loop {
        c.kv.put(PutRequest {
            key: b"k".to_vec(),
            value: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
        let old =
            c.kv.range(RangeRequest {
                key: b"k".to_vec(),
                revision: first_rev,
                ..Default::default()
            })
            .await;
        match old {
            Err(e) => break e,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "no auto-compaction within 15 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(
        compacted.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "history younger than the retention was compacted"
    );
    // Recent history is still readable.
    let now =
        c.kv.range(RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let recent = now.header.unwrap().revision - 1;
    c.kv.range(RangeRequest {
        key: b"k".to_vec(),
        revision: recent,
        ..Default::default()
    })
    .await
    .expect("recent history kept");
}

//! Watch behaviour beyond single answers: slow consumers, progress.

use crate::support::client::Client;
use crate::support::{Kind, Member};
use ferrocd_proto::etcdserverpb::{
    watch_request, PutRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

const WRITERS: usize = 8;
const PUTS_PER_WRITER: usize = 300;
const VALUE_BYTES: usize = 4096;

async fn open_watch(
    c: &mut Client,
    prefix: &[u8],
) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>) {
    open_watch_from(c, prefix, 0).await
}

/// A watch on `prefix` from `start_revision` (0: now), its creation read.
async fn open_watch_from(
    c: &mut Client,
    prefix: &[u8],
    start_revision: i64,
) -> (mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>) {
    let (tx, rx) = mpsc::channel(4);
    let mut end = prefix.to_vec();
    *end.last_mut().unwrap() += 1;
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: prefix.to_vec(),
                range_end: end,
                start_revision,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut stream = c
        .watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created = stream.next().await.unwrap().unwrap();
    assert!(created.created);
    (tx, stream)
}

/// Reads events until `n` arrived; returns their mod revisions in order.
async fn read_events(stream: &mut tonic::Streaming<WatchResponse>, n: usize) -> Vec<i64> {
    let mut revs = Vec::with_capacity(n);
    while revs.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("events keep coming")
            .expect("stream open")
            .expect("no error");
        revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
    revs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_that_never_reads_stalls_neither_writers_nor_other_watchers() {
    let m = tokio::task::spawn_blocking(|| Member::start(Kind::Ferrocd, &[]))
        .await
        .unwrap();
    let mut c = Client::connect(&m.endpoint()).await;
    // A separate connection, so HTTP/2 flow control on the stalled stream is its own.
    let mut slow_client = Client::connect(&m.endpoint()).await;
    let (_slow_tx, mut slow) = open_watch(&mut slow_client, b"s/").await;
    let (_fast_tx, mut fast) = open_watch(&mut c, b"s/").await;
    let total = WRITERS * PUTS_PER_WRITER;
    let reader = tokio::spawn(async move { read_events(&mut fast, total).await });

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mut c = Client::connect(&m.endpoint()).await;
        writers.push(tokio::spawn(async move {
            for i in 0..PUTS_PER_WRITER {
                let put = PutRequest {
                    key: format!("s/{w}/{i}").into_bytes(),
                    value: vec![b'v'; VALUE_BYTES],
                    ..Default::default()
                };
                c.kv.put(put)
                    .await
                    .expect("writes are never blocked by watchers");
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        for w in writers {
            w.await.unwrap();
        }
    })
    .await
    .expect("writers finished while a watcher read nothing");

    let want: Vec<i64> = (2..2 + total as i64).collect();
    let fast_revs = reader.await.unwrap();
    assert_eq!(
        fast_revs, want,
        "the reading watcher got every event, in order"
    );
    // The stalled watcher now reads: everything, once, in order (caught up from history).
    let slow_revs = read_events(&mut slow, total).await;
    assert_eq!(
        slow_revs, want,
        "the slow watcher got every event once, in order"
    );
}

/// A progress notification never claims a revision below what a watch
/// asked to start from: on a member behind that revision (a member just
/// added, a watch resumed there) the request is answered once the member
/// has reached it. (etcd 3.5 answers at once with its lower revision; the
/// robustness suite saw progress go back from 477 to 1 after a resume.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_is_not_reported_below_a_watch_start_revision() {
    let m = tokio::task::spawn_blocking(|| Member::start(Kind::Ferrocd, &[]))
        .await
        .unwrap();
    let mut c = Client::connect(&m.endpoint()).await;
    // Revision 1 now: three writes ahead.
    let (tx, mut stream) = open_watch_from(&mut c, b"p/", 4).await;
    let progress = || WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            ferrocd_proto::etcdserverpb::WatchProgressRequest {},
        )),
    };
    tx.send(progress()).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(early.is_err(), "answered at revision 1: {early:?}");
    for i in 0..2 {
        let put = PutRequest {
            key: format!("other/{i}").into_bytes(),
            ..Default::default()
        };
        c.kv.put(put).await.unwrap();
    }
    // Revision 3: the watch has everything before its start.
    tx.send(progress()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("progress once the member reached the start revision")
        .unwrap()
        .unwrap();
    assert!(r.events.is_empty());
    assert_eq!(r.header.unwrap().revision, 3);
}

//! The store and the apply path without the network or raft: a batch of
//! puts applied in one transaction (what one raft entry of group-committed
//! writes costs the state machine), and reads from a loaded store.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrocd::apply::{Applier, LogEntry};
use ferrocd::lease::Lessor;
use ferrocd::mvcc::{KeyRange, RangeOptions, Store};
use ferrocd::proto::etcdserverpb::PutRequest;
use ferrocd::proto::ferrocdpb::{internal_request::Request, InternalRequest};
use std::sync::Arc;

fn put(i: u64) -> InternalRequest {
    InternalRequest {
        request: Some(Request::Put(PutRequest {
            key: format!("key-{:08}", i % 100_000).into_bytes(),
            value: vec![b'v'; 256],
            ..Default::default()
        })),
    }
}

fn apply_batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    for batch in [1u64, 64, 1024] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(format!("puts_per_entry_{batch}"), |b| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let mut applier = Applier::open(store, Arc::new(Lessor::new(2))).unwrap();
            let mut index = 0u64;
            b.iter_batched(
                || {
                    (0..batch)
                        .map(|_| {
                            index += 1;
                            LogEntry {
                                index,
                                request: Some(put(index)),
                            }
                        })
                        .collect::<Vec<_>>()
                },
                |entries| applier.apply_batch(&entries, |_| Ok(())).unwrap(),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut applier = Applier::open(store.clone(), Arc::new(Lessor::new(2))).unwrap();
    let entries: Vec<LogEntry> = (1..=10_000)
        .map(|i| LogEntry {
            index: i,
            request: Some(put(i)),
        })
        .collect();
    for chunk in entries.chunks(1000) {
        applier.apply_batch(chunk, |_| Ok(())).unwrap();
    }
    let mut group = c.benchmark_group("read");
    group.bench_function("get_one_key", |b| {
        let key = KeyRange::Single(b"key-00004242".to_vec());
        b.iter(|| {
            let view = store.read().unwrap();
            view.range(&key, RangeOptions::default()).unwrap()
        });
    });
    group.bench_function("range_100_keys", |b| {
        let range = KeyRange::Bounded(b"key-00001000".to_vec(), b"key-00001100".to_vec());
        b.iter(|| {
            let view = store.read().unwrap();
            view.range(&range, RangeOptions::default()).unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, apply_batches, reads);
criterion_main!(benches);

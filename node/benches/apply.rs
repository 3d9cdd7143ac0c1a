//! The store and the apply path without the network or raft: a batch of
//! puts applied in one transaction (what one raft entry of group-committed
//! writes costs the state machine), and reads from a loaded store.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrocd::apply::{Applier, LogEntry};
use ferrocd::lease::Lessor;
use ferrocd::mvcc::{KeyRange, RangeOptions, Store};
use ferrocd_proto::etcdserverpb::PutRequest;
use ferrocd_proto::ferrocdpb::{internal_request::Request, InternalRequest};
use std::sync::Arc;

/// A 256-byte put to key `key-<k>`, k < 100k.
fn put_to(k: u64) -> InternalRequest {
    InternalRequest {
        header: None,
        request: Some(Request::Put(PutRequest {
            key: format!("key-{:08}", k % 100_000).into_bytes(),
            value: vec![b'v'; 256],
            ..Default::default()
        })),
    }
}

/// Puts walking the 100k keys in order.
fn put(i: u64) -> InternalRequest {
    put_to(i)
}

/// A put to a key spread over 100k keys as the benchmark tool's random keys are.
fn scattered_put(i: u64) -> InternalRequest {
    put_to(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn apply_batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    for batch in [1u64, 64, 1024] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(format!("puts_per_entry_{batch}"), |b| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let mut applier = Applier::open(store, Arc::new(Lessor::new(2)), auth_store()).unwrap();
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
    // Over a store that already holds 100k keys, each entry's puts land on
    // leaves all over the tree (the throughput scenario's random keys).
    group.throughput(Throughput::Elements(512));
    group.bench_function("scattered_puts_per_entry_512_over_100k_keys", |b| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut applier = Applier::open(store, Arc::new(Lessor::new(2)), auth_store()).unwrap();
        let mut index = 0u64;
        let mut entries = |make: fn(u64) -> InternalRequest, n: u64| {
            (0..n)
                .map(|_| {
                    index += 1;
                    LogEntry {
                        index,
                        request: Some(make(index)),
                    }
                })
                .collect::<Vec<_>>()
        };
        for _ in 0..100 {
            applier
                .apply_batch(&entries(put, 1000), |_| Ok(()))
                .unwrap();
        }
        b.iter_batched(
            || entries(scattered_put, 512),
            |e| applier.apply_batch(&e, |_| Ok(())).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut applier = Applier::open(store.clone(), Arc::new(Lessor::new(2)), auth_store()).unwrap();
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

fn auth_store() -> Arc<ferrocd::auth::AuthStore> {
    Arc::new(ferrocd::auth::AuthStore::new(std::time::Duration::ZERO))
}

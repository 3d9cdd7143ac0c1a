//! Differential cases for Txn: every compare target and result, branches,
//! nesting, etcd's duplicate-key rule, limits and errors.

use super::dsl::*;
use ferrocd_proto::etcdserverpb::compare::{
    CompareResult as R, CompareTarget as T, TargetUnion as U,
};
use ferrocd_proto::etcdserverpb::*;

/// k1 (version 2, create 2, mod 3, value "v2", lease 0), k2 (version 1, create 4, value "b").
fn seed() -> Vec<Step> {
    vec![put("k1", "v1"), put("k1", "v2"), put("k2", "b")]
}

fn seeded(name: String, t: TxnRequest) -> Case {
    let mut steps = seed();
    steps.push(Step::Txn(t));
    steps.push(Step::Range(range_req("\0", &[0])));
    case(name, steps)
}

fn then_else() -> (Vec<RequestOp>, Vec<RequestOp>) {
    (
        vec![op_put("then", "1"), op_get("k1")],
        vec![op_put("else", "1"), op_get("k2")],
    )
}

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let targets: Vec<(&str, T, U, U)> = vec![
        // (name, target, equal value for k1, another value)
        ("version", T::Version, U::Version(2), U::Version(1)),
        (
            "create",
            T::Create,
            U::CreateRevision(2),
            U::CreateRevision(9),
        ),
        ("mod", T::Mod, U::ModRevision(3), U::ModRevision(2)),
        ("value", T::Value, U::Value(b("v2")), U::Value(b("v1"))),
        ("lease", T::Lease, U::Lease(0), U::Lease(7)),
    ];
    for (name, target, eq, other) in &targets {
        for result in [R::Equal, R::NotEqual, R::Greater, R::Less] {
            for (which, value) in [("same", eq.clone()), ("other", other.clone())] {
                let (s, f) = then_else();
                v.push(seeded(
                    format!("txn: {name} {result:?} {which} on k1"),
                    txn(vec![cmp("k1", *target, result, value)], s, f),
                ));
            }
        }
        let (s, f) = then_else();
        v.push(seeded(
            format!("txn: {name} equal on a missing key"),
            txn(vec![cmp("missing", *target, R::Equal, other.clone())], s, f),
        ));
    }
    let (s, f) = then_else();
    v.push(seeded(
        "txn: version equal 0 on a missing key".into(),
        txn(
            vec![cmp("missing", T::Version, R::Equal, U::Version(0))],
            s,
            f,
        ),
    ));
    let (s, f) = then_else();
    v.push(seeded(
        "txn: create equal 0 means absent".into(),
        txn(
            vec![cmp("new", T::Create, R::Equal, U::CreateRevision(0))],
            s,
            f,
        ),
    ));
    let (s, f) = then_else();
    v.push(seeded(
        "txn: compare over a range (all versions > 0)".into(),
        txn(
            vec![Compare {
                range_end: b("k3"),
                ..cmp("k1", T::Version, R::Greater, U::Version(0))
            }],
            s,
            f,
        ),
    ));
    let (s, f) = then_else();
    v.push(seeded(
        "txn: compare over a range (one fails)".into(),
        txn(
            vec![Compare {
                range_end: b("k3"),
                ..cmp("k1", T::Version, R::Equal, U::Version(2))
            }],
            s,
            f,
        ),
    ));
    let (s, f) = then_else();
    v.push(seeded(
        "txn: several compares, all true".into(),
        txn(
            vec![
                cmp("k1", T::Value, R::Equal, U::Value(b("v2"))),
                cmp("k2", T::Version, R::Equal, U::Version(1)),
            ],
            s,
            f,
        ),
    ));
    let (s, f) = then_else();
    v.push(seeded(
        "txn: several compares, second false".into(),
        txn(
            vec![
                cmp("k1", T::Value, R::Equal, U::Value(b("v2"))),
                cmp("k2", T::Version, R::Equal, U::Version(5)),
            ],
            s,
            f,
        ),
    ));
    let (s, f) = then_else();
    v.push(seeded(
        "txn: no compares takes success".into(),
        txn(vec![], s, f),
    ));
    v.push(seeded("txn: empty".into(), txn(vec![], vec![], vec![])));

    // kube-apiserver's shapes: optimistic create and update with an Else read.
    v.push(seeded(
        "txn: kube create-if-absent (absent)".into(),
        txn(
            vec![cmp("/registry/pods/a", T::Mod, R::Equal, U::ModRevision(0))],
            vec![op_put("/registry/pods/a", "pod")],
            vec![op_get("/registry/pods/a")],
        ),
    ));
    v.push(seeded(
        "txn: kube update with stale mod_revision".into(),
        txn(
            vec![cmp("k1", T::Mod, R::Equal, U::ModRevision(2))],
            vec![op_put("k1", "new")],
            vec![op_get("k1")],
        ),
    ));
    v.push(seeded(
        "txn: kube update with current mod_revision".into(),
        txn(
            vec![cmp("k1", T::Mod, R::Equal, U::ModRevision(3))],
            vec![op_put("k1", "new")],
            vec![op_get("k1")],
        ),
    ));
    v.push(seeded(
        "txn: kube delete with mod_revision".into(),
        txn(
            vec![cmp("k2", T::Mod, R::Equal, U::ModRevision(4))],
            vec![RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    DeleteRangeRequest {
                        prev_kv: true,
                        ..del_req("k2", b"")
                    },
                )),
            }],
            vec![op_get("k2")],
        ),
    ));

    // kube-apiserver's compactor: a txn on compact_rev_key's version, then Compact.
    let kube_compact = |version: i64| {
        Step::Txn(txn(
            vec![cmp(
                "compact_rev_key",
                T::Version,
                R::Equal,
                U::Version(version),
            )],
            vec![op_put("compact_rev_key", "5")],
            vec![op_get("compact_rev_key")],
        ))
    };
    v.push(case(
        "txn: kube compaction driven by compact_rev_key",
        vec![
            put("/registry/a", "1"),
            put("/registry/a", "2"),
            put("/registry/b", "1"),
            kube_compact(0),
            Step::Compact(4, false),
            kube_compact(0),
            kube_compact(1),
            Step::Compact(5, false),
            Step::Range(range_req("/registry/", &prefix_end("/registry/"))),
            Step::Range(RangeRequest {
                revision: 4,
                ..range_req("/registry/", &prefix_end("/registry/"))
            }),
        ],
    ));
    // kube-apiserver's paged LIST: limit, then continue after the last key at the first page's revision.
    let page = |start: &str, rev: i64| {
        Step::Range(RangeRequest {
            limit: 2,
            revision: rev,
            ..range_req(start, &prefix_end("/registry/pods/"))
        })
    };
    v.push(case(
        "txn: kube paged list at a fixed revision while writes go on",
        vec![
            put("/registry/pods/a", "1"),
            put("/registry/pods/b", "1"),
            put("/registry/pods/c", "1"),
            put("/registry/pods/d", "1"),
            put("/registry/pods/e", "1"),
            page("/registry/pods/", 0),
            put("/registry/pods/b", "2"),
            del("/registry/pods/d"),
            page("/registry/pods/b\0", 6),
            page("/registry/pods/d\0", 6),
            Step::Range(RangeRequest {
                count_only: true,
                ..range_req("/registry/pods/", &prefix_end("/registry/pods/"))
            }),
            Step::Range(RangeRequest {
                count_only: true,
                revision: 6,
                ..range_req("/registry/pods/", &prefix_end("/registry/pods/"))
            }),
        ],
    ));

    // Reads inside a write txn see earlier ops; one revision for all writes.
    v.push(seeded(
        "txn: read your own writes, one revision".into(),
        txn(
            vec![],
            vec![
                op_get("k1"),
                op_put("n1", "a"),
                op_get("n1"),
                op_del("k2", b""),
                op_range(range_req("\0", &[0])),
                op_put("n2", "b"),
            ],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: read-only txn".into(),
        txn(
            vec![],
            vec![op_get("k1"), op_range(range_req("k", &prefix_end("k")))],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: range at a past revision inside".into(),
        txn(
            vec![],
            vec![
                op_range(RangeRequest {
                    revision: 2,
                    ..get_req("k1")
                }),
                op_put("x", "y"),
            ],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: range at a future revision inside".into(),
        txn(
            vec![],
            vec![
                op_range(RangeRequest {
                    revision: 99,
                    ..get_req("k1")
                }),
                op_put("x", "y"),
            ],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: delete of a missing key only".into(),
        txn(vec![], vec![op_del("nope", b"")], vec![]),
    ));
    v.push(seeded(
        "txn: put with a missing lease".into(),
        txn(
            vec![],
            vec![
                op_put("x", "y"),
                RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        lease: 42,
                        ..put_req("z", "1")
                    })),
                },
            ],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: ignore_value on a missing key".into(),
        txn(
            vec![],
            vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    ignore_value: true,
                    ..put_req("nope", "")
                })),
            }],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: put with prev_kv".into(),
        txn(
            vec![],
            vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    prev_kv: true,
                    ..put_req("k1", "v3")
                })),
            }],
            vec![],
        ),
    ));

    // Nesting.
    let inner = txn(
        vec![cmp("k2", T::Value, R::Equal, U::Value(b("b")))],
        vec![op_put("inner-then", "1"), op_get("k2")],
        vec![op_put("inner-else", "1")],
    );
    v.push(seeded(
        "txn: nested txn in success".into(),
        txn(
            vec![],
            vec![op_put("outer", "1"), op_txn(inner.clone()), op_get("outer")],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: nested txn in failure".into(),
        txn(
            vec![cmp("k1", T::Version, R::Equal, U::Version(9))],
            vec![],
            vec![op_txn(inner.clone())],
        ),
    ));
    v.push(seeded(
        "txn: nested compares see the state before the outer ops".into(),
        txn(
            vec![],
            vec![
                op_put("k2", "changed"),
                op_txn(txn(
                    vec![cmp("k2", T::Value, R::Equal, U::Value(b("b")))],
                    vec![op_put("saw-old", "1")],
                    vec![op_put("saw-new", "1")],
                )),
            ],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: two levels of nesting".into(),
        txn(
            vec![],
            vec![op_txn(txn(vec![], vec![op_txn(inner)], vec![]))],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: nested read-only txn".into(),
        txn(
            vec![],
            vec![op_txn(txn(vec![], vec![op_get("k1")], vec![]))],
            vec![],
        ),
    ));

    // etcd's duplicate-key rule.
    v.push(seeded(
        "txn: same key put twice".into(),
        txn(vec![], vec![op_put("a", "1"), op_put("a", "2")], vec![]),
    ));
    v.push(seeded(
        "txn: put inside a deleted range".into(),
        txn(vec![], vec![op_del("a", b"c"), op_put("b", "2")], vec![]),
    ));
    v.push(seeded(
        "txn: put at the deleted range end is fine".into(),
        txn(vec![], vec![op_del("a", b"c"), op_put("c", "2")], vec![]),
    ));
    v.push(seeded(
        "txn: overlapping deletes are fine".into(),
        txn(vec![], vec![op_del("a", b"c"), op_del("b", b"d")], vec![]),
    ));
    v.push(seeded(
        "txn: same key in nested then and else is fine".into(),
        txn(
            vec![],
            vec![op_txn(txn(
                vec![],
                vec![op_put("a", "1")],
                vec![op_put("a", "2")],
            ))],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: nested put duplicates an outer put".into(),
        txn(
            vec![],
            vec![
                op_put("a", "0"),
                op_txn(txn(vec![], vec![op_put("a", "1")], vec![])),
            ],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: duplicate only in failure branch".into(),
        txn(
            vec![],
            vec![op_put("a", "1")],
            vec![op_put("b", "1"), op_put("b", "2")],
        ),
    ));

    // Limits and malformed requests.
    let ops = |n: usize| {
        (0..n)
            .map(|i| op_put(&format!("key{i:03}"), "v"))
            .collect::<Vec<_>>()
    };
    v.push(case(
        "txn: 128 ops (the default limit)",
        vec![
            Step::Txn(txn(vec![], ops(128), vec![])),
            Step::Range(RangeRequest {
                count_only: true,
                ..range_req("\0", &[0])
            }),
        ],
    ));
    v.push(case(
        "txn: 129 ops",
        vec![Step::Txn(txn(vec![], ops(129), vec![]))],
    ));
    let mut limited = case(
        "txn: --max-txn-ops 4",
        vec![
            Step::Txn(txn(vec![], ops(4), vec![])),
            Step::Txn(txn(vec![], ops(5), vec![])),
        ],
    );
    limited.args = vec!["--max-txn-ops=4".into()];
    v.push(limited);
    v.push(seeded(
        "txn: compare with an empty key".into(),
        txn(
            vec![cmp("", T::Version, R::Equal, U::Version(0))],
            vec![],
            vec![],
        ),
    ));
    v.push(seeded(
        "txn: op with an empty key".into(),
        txn(vec![], vec![op_put("", "x")], vec![]),
    ));
    v.push(seeded(
        "txn: empty request op".into(),
        txn(vec![], vec![RequestOp { request: None }], vec![]),
    ));
    v
}

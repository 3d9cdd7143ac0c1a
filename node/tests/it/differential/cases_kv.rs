//! Differential cases for Range, Put, DeleteRange, Compact and HashKV.

use super::dsl::*;
use ferrocd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use ferrocd_proto::etcdserverpb::*;

/// A store with history: versions, a deleted key, a prefix family.
/// Revisions: a=2, b=3, c=4, a=5, d=6, c deleted=7, e=8, foo=9, foo/bar=10, foo/baz=11, fop=12, b=13.
fn seed() -> Vec<Step> {
    vec![
        put("a", "1"),
        put("b", "2"),
        put("c", "3"),
        put("a", "11"),
        put("d", "4"),
        del("c"),
        put("e", "5"),
        put("foo", "x"),
        put("foo/bar", "y"),
        put("foo/baz", "z"),
        put("fop", "w"),
        put("b", "22"),
    ]
}

fn seeded(name: impl Into<String>, mut more: Vec<Step>) -> Case {
    let mut steps = seed();
    steps.append(&mut more);
    case(name, steps)
}

fn ranged(name: impl Into<String>, r: RangeRequest) -> Case {
    seeded(name.into(), vec![Step::Range(r)])
}

fn all() -> RangeRequest {
    range_req("\0", &[0])
}

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();

    // Key selection.
    let selections: Vec<(&str, RangeRequest)> = vec![
        ("single existing key", get_req("a")),
        ("single missing key", get_req("zz")),
        ("single deleted key", get_req("c")),
        ("half-open range", range_req("a", b"d")),
        ("range end equals key", range_req("b", b"b")),
        ("range end before key", range_req("d", b"a")),
        ("from key (range_end \\0)", range_req("d", &[0])),
        ("every key", all()),
        ("prefix foo", range_req("foo", &prefix_end("foo"))),
        ("prefix fo", range_req("fo", &prefix_end("fo"))),
        ("prefix foo/", range_req("foo/", &prefix_end("foo/"))),
        ("range over nothing", range_req("x", b"z")),
    ];
    for (name, r) in selections {
        v.push(ranged(format!("range: {name}"), r));
    }

    // Limits and `more`.
    for limit in [-1i64, 0, 1, 2, 7, 8, 100] {
        v.push(ranged(
            format!("range: every key, limit {limit}"),
            RangeRequest { limit, ..all() },
        ));
    }
    v.push(ranged(
        "range: prefix with limit 1",
        RangeRequest {
            limit: 1,
            ..range_req("foo", &prefix_end("foo"))
        },
    ));

    // Reads at revisions, including before creation, after deletion, and the future.
    for rev in [1i64, 2, 3, 4, 6, 7, 12, 13, 14, 100] {
        v.push(ranged(
            format!("range: every key at revision {rev}"),
            RangeRequest {
                revision: rev,
                ..all()
            },
        ));
    }
    for rev in [3i64, 4, 5, 7] {
        v.push(ranged(
            format!("range: key c at revision {rev}"),
            RangeRequest {
                revision: rev,
                ..get_req("c")
            },
        ));
    }
    v.push(ranged(
        "range: at revision with limit",
        RangeRequest {
            revision: 8,
            limit: 2,
            ..all()
        },
    ));

    // Sorting: every order and target over 4 keys [a, f).
    for order in [SortOrder::None, SortOrder::Ascend, SortOrder::Descend] {
        for target in [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ] {
            v.push(ranged(
                format!("range: sort {order:?} by {target:?}"),
                RangeRequest {
                    sort_order: order as i32,
                    sort_target: target as i32,
                    ..range_req("a", b"f")
                },
            ));
        }
    }
    v.push(ranged(
        "range: sort descending by mod with limit 2",
        RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Mod as i32,
            limit: 2,
            ..range_req("a", b"f")
        },
    ));
    v.push(ranged(
        "range: sort ascending by create with limit 3 at revision 8",
        RangeRequest {
            sort_order: SortOrder::Ascend as i32,
            sort_target: SortTarget::Create as i32,
            limit: 3,
            revision: 8,
            ..range_req("a", b"f")
        },
    ));

    // Flags.
    v.push(ranged(
        "range: serializable",
        RangeRequest {
            serializable: true,
            ..all()
        },
    ));
    v.push(ranged(
        "range: keys only",
        RangeRequest {
            keys_only: true,
            ..all()
        },
    ));
    v.push(ranged(
        "range: count only",
        RangeRequest {
            count_only: true,
            ..all()
        },
    ));
    v.push(ranged(
        "range: count only with limit",
        RangeRequest {
            count_only: true,
            limit: 1,
            ..all()
        },
    ));
    v.push(ranged(
        "range: keys only with limit",
        RangeRequest {
            keys_only: true,
            limit: 2,
            ..all()
        },
    ));
    v.push(ranged(
        "range: count only at revision 6",
        RangeRequest {
            count_only: true,
            revision: 6,
            ..all()
        },
    ));

    // Revision filters (with and without limit).
    let filters: Vec<(&str, RangeRequest)> = vec![
        (
            "min mod 8",
            RangeRequest {
                min_mod_revision: 8,
                ..all()
            },
        ),
        (
            "max mod 8",
            RangeRequest {
                max_mod_revision: 8,
                ..all()
            },
        ),
        (
            "min create 5",
            RangeRequest {
                min_create_revision: 5,
                ..all()
            },
        ),
        (
            "max create 5",
            RangeRequest {
                max_create_revision: 5,
                ..all()
            },
        ),
        (
            "mod window 6..10",
            RangeRequest {
                min_mod_revision: 6,
                max_mod_revision: 10,
                ..all()
            },
        ),
        (
            "min mod 8 limit 1",
            RangeRequest {
                min_mod_revision: 8,
                limit: 1,
                ..all()
            },
        ),
        (
            "max create 3 limit 1",
            RangeRequest {
                max_create_revision: 3,
                limit: 1,
                ..all()
            },
        ),
        (
            "min create 9 count only",
            RangeRequest {
                min_create_revision: 9,
                count_only: true,
                ..all()
            },
        ),
    ];
    for (name, r) in filters {
        v.push(ranged(format!("range: filter {name}"), r));
    }

    // Range errors.
    v.push(case(
        "range: empty key",
        vec![Step::Range(range_req("", b""))],
    ));
    // Put.
    v.push(case(
        "put: first put is revision 2",
        vec![put("k", "v"), get("k")],
    ));
    v.push(case(
        "put: overwrite bumps version, keeps create_revision",
        vec![put("k", "v1"), put("k", "v2"), put("k", "v3"), get("k")],
    ));
    v.push(case(
        "put: prev_kv of a new key",
        vec![Step::Put(PutRequest {
            prev_kv: true,
            ..put_req("k", "v")
        })],
    ));
    v.push(case(
        "put: prev_kv of an existing key",
        vec![
            put("k", "v1"),
            Step::Put(PutRequest {
                prev_kv: true,
                ..put_req("k", "v2")
            }),
        ],
    ));
    v.push(case(
        "put: ignore_value keeps the value",
        vec![
            put("k", "v1"),
            Step::Put(PutRequest {
                ignore_value: true,
                prev_kv: true,
                ..put_req("k", "")
            }),
            get("k"),
        ],
    ));
    v.push(case(
        "put: ignore_value on a missing key",
        vec![Step::Put(PutRequest {
            ignore_value: true,
            ..put_req("k", "")
        })],
    ));
    v.push(case(
        "put: ignore_value with a value",
        vec![
            put("k", "v"),
            Step::Put(PutRequest {
                ignore_value: true,
                ..put_req("k", "x")
            }),
        ],
    ));
    v.push(case(
        "put: ignore_lease with a lease",
        vec![
            put("k", "v"),
            Step::Put(PutRequest {
                ignore_lease: true,
                lease: 5,
                ..put_req("k", "x")
            }),
        ],
    ));
    v.push(case(
        "put: ignore_lease on a missing key",
        vec![Step::Put(PutRequest {
            ignore_lease: true,
            ..put_req("k", "x")
        })],
    ));
    v.push(case("put: empty key", vec![put("", "v")]));
    v.push(case("put: empty value", vec![put("k", ""), get("k")]));
    v.push(case(
        "put: binary key and value",
        vec![
            Step::Put(PutRequest {
                key: vec![0, 1, 255],
                value: vec![0, 0, 7],
                ..Default::default()
            }),
            Step::Range(range_req("\0", &[0])),
        ],
    ));
    v.push(case(
        "put: large value (1 MiB)",
        vec![
            Step::Put(PutRequest {
                key: b("big"),
                value: vec![b'x'; 1 << 20],
                ..Default::default()
            }),
            Step::Range(RangeRequest {
                count_only: true,
                ..get_req("big")
            }),
        ],
    ));
    v.push(case(
        "put: request too large (2 MiB)",
        vec![
            Step::Put(PutRequest {
                key: b("big"),
                value: vec![b'x'; 1_600_000],
                ..Default::default()
            }),
            get("big"),
        ],
    ));

    // DeleteRange.
    v.push(seeded(
        "delete: single key",
        vec![del("a"), Step::Range(all())],
    ));
    v.push(seeded(
        "delete: missing key keeps the revision",
        vec![del("zz"), Step::Range(all())],
    ));
    v.push(seeded(
        "delete: range with prev_kv",
        vec![
            Step::Delete(DeleteRangeRequest {
                prev_kv: true,
                ..del_req("a", b"e")
            }),
            Step::Range(all()),
        ],
    ));
    v.push(seeded(
        "delete: prefix",
        vec![
            Step::Delete(del_req("foo", &prefix_end("foo"))),
            Step::Range(all()),
        ],
    ));
    v.push(seeded(
        "delete: every key",
        vec![Step::Delete(del_req("\0", &[0])), Step::Range(all())],
    ));
    v.push(seeded(
        "delete: from key",
        vec![Step::Delete(del_req("e", &[0])), Step::Range(all())],
    ));
    v.push(seeded(
        "delete: range end before key",
        vec![Step::Delete(del_req("e", b"a")), Step::Range(all())],
    ));
    v.push(case(
        "delete: empty key",
        vec![Step::Delete(del_req("", b""))],
    ));
    v.push(seeded(
        "delete then recreate starts a new generation",
        vec![
            del("a"),
            put("a", "new"),
            get("a"),
            Step::Range(RangeRequest {
                revision: 13,
                ..get_req("a")
            }),
        ],
    ));

    // Compaction.
    v.push(seeded(
        "compact: then read below, at and above",
        vec![
            Step::Compact(7, false),
            Step::Range(RangeRequest {
                revision: 6,
                ..all()
            }),
            Step::Range(RangeRequest {
                revision: 7,
                ..all()
            }),
            Step::Range(RangeRequest {
                revision: 8,
                ..all()
            }),
            Step::Range(all()),
        ],
    ));
    v.push(seeded(
        "compact: physical",
        vec![
            Step::Compact(10, true),
            Step::Range(RangeRequest {
                revision: 10,
                ..all()
            }),
        ],
    ));
    v.push(seeded(
        "compact: future revision",
        vec![Step::Compact(100, false)],
    ));
    v.push(seeded(
        "compact: current revision",
        vec![Step::Compact(13, false), Step::Range(all())],
    ));
    v.push(seeded(
        "compact: twice at the same revision",
        vec![
            Step::Compact(5, false),
            Step::Compact(5, false),
            Step::Compact(4, false),
        ],
    ));
    v.push(seeded(
        "compact: keeps a deleted key deleted",
        vec![
            Step::Compact(8, false),
            Step::Range(RangeRequest {
                revision: 8,
                ..get_req("c")
            }),
            get("c"),
        ],
    ));
    v.push(seeded(
        "compact: then write and read history",
        vec![
            Step::Compact(12, false),
            put("a", "again"),
            Step::Range(RangeRequest {
                revision: 12,
                ..all()
            }),
            Step::Range(RangeRequest {
                revision: 14,
                ..get_req("a")
            }),
        ],
    ));
    v.push(seeded(
        "compact: revision 0 and 1 on a fresh history",
        vec![
            Step::Compact(1, false),
            Step::Range(RangeRequest {
                revision: 1,
                ..all()
            }),
        ],
    ));
    v.push(seeded(
        "hashkv: revisions and compaction",
        vec![
            Step::HashKv(0),
            Step::HashKv(5),
            Step::Compact(6, false),
            Step::HashKv(6),
            Step::HashKv(5),
            Step::HashKv(99),
        ],
    ));
    // etcdctl endpoint hashkv after a compaction at the current revision
    // (check datascale --auto-compact): revision 0 means the current one.
    v.push(case(
        "hashkv: revision 0 after a compaction at the current revision",
        vec![
            Step::Put(put_req("a", "1")),
            Step::Put(put_req("b", "2")),
            Step::Compact(3, false),
            Step::HashKv(0),
            Step::HashKv(3),
        ],
    ));
    v
}

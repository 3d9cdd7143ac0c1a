//! Differential cases for Watch: live and historical events, ranges,
//! filters, prev_kv, compaction, IDs, cancel, progress and fragments.

use super::dsl::*;
use ferrocd_proto::etcdserverpb::watch_create_request::FilterType;
use ferrocd_proto::etcdserverpb::*;

fn history() -> Vec<Step> {
    vec![
        put("a", "1"),
        put("b", "1"),
        put("a", "2"),
        del("b"),
        put("c", "1"),
        put("a", "3"),
    ]
}

fn with(mut first: Vec<Step>, rest: Vec<Step>) -> Vec<Step> {
    first.extend(rest);
    first
}

fn prefix(k: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        range_end: prefix_end(k),
        ..watch_key(k)
    }
}

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        case(
            "watch: one key, live put/put/delete",
            vec![
                watch_create(watch_key("a")),
                Step::WatchRecv(1),
                put("a", "1"),
                put("b", "x"),
                put("a", "2"),
                del("a"),
                Step::WatchRecv(3),
            ],
        ),
        case(
            "watch: prefix",
            vec![
                watch_create(prefix("foo")),
                Step::WatchRecv(1),
                put("foo/1", "a"),
                put("fop", "x"),
                put("foo/2", "b"),
                Step::WatchRecv(2),
            ],
        ),
        case(
            "watch: every key (empty key, range_end \\0)",
            vec![
                watch_create(WatchCreateRequest {
                    key: vec![],
                    range_end: vec![0],
                    ..Default::default()
                }),
                Step::WatchRecv(1),
                put("x", "1"),
                put("y", "1"),
                Step::WatchRecv(2),
            ],
        ),
        case(
            "watch: from a key on (range_end \\0)",
            vec![
                watch_create(WatchCreateRequest {
                    range_end: vec![0],
                    ..watch_key("m")
                }),
                Step::WatchRecv(1),
                put("a", "1"),
                put("m", "1"),
                put("z", "1"),
                Step::WatchRecv(2),
            ],
        ),
        case(
            "watch: history from revision 2",
            with(
                history(),
                vec![
                    watch_create(WatchCreateRequest {
                        start_revision: 2,
                        ..prefix("")
                    }),
                    Step::WatchRecv(2),
                ],
            ),
        ),
        case(
            "watch: history of one key from revision 3",
            with(
                history(),
                vec![
                    watch_create(WatchCreateRequest {
                        start_revision: 3,
                        ..watch_key("a")
                    }),
                    Step::WatchRecv(2),
                ],
            ),
        ),
        case(
            "watch: history with prev_kv",
            with(
                history(),
                vec![
                    watch_create(WatchCreateRequest {
                        start_revision: 2,
                        prev_kv: true,
                        range_end: vec![0],
                        ..watch_key("\0")
                    }),
                    Step::WatchRecv(2),
                ],
            ),
        ),
        case(
            "watch: live prev_kv",
            vec![
                watch_create(WatchCreateRequest {
                    prev_kv: true,
                    ..watch_key("a")
                }),
                Step::WatchRecv(1),
                put("a", "1"),
                put("a", "2"),
                del("a"),
                Step::WatchRecv(3),
            ],
        ),
        case(
            "watch: NOPUT filter",
            with(
                history(),
                vec![
                    watch_create(WatchCreateRequest {
                        start_revision: 1,
                        filters: vec![FilterType::Noput as i32],
                        range_end: vec![0],
                        ..watch_key("\0")
                    }),
                    Step::WatchRecv(2),
                    put("b", "2"),
                    del("b"),
                    Step::WatchRecv(1),
                ],
            ),
        ),
        case(
            "watch: NODELETE filter",
            with(
                history(),
                vec![
                    watch_create(WatchCreateRequest {
                        start_revision: 1,
                        filters: vec![FilterType::Nodelete as i32],
                        range_end: vec![0],
                        ..watch_key("\0")
                    }),
                    Step::WatchRecv(2),
                ],
            ),
        ),
        case(
            "watch: both filters send nothing",
            vec![
                watch_create(WatchCreateRequest {
                    filters: vec![0, 1],
                    ..watch_key("a")
                }),
                Step::WatchRecv(1),
                put("a", "1"),
                del("a"),
                Step::WatchQuiet(400),
            ],
        ),
        case(
            "watch: start revision compacted",
            with(
                history(),
                vec![
                    Step::Compact(5, true),
                    watch_create(WatchCreateRequest {
                        start_revision: 3,
                        ..watch_key("a")
                    }),
                    Step::WatchRecv(2),
                ],
            ),
        ),
        case(
            "watch: start revision at the compaction",
            with(
                history(),
                vec![
                    Step::Compact(5, true),
                    watch_create(WatchCreateRequest {
                        start_revision: 5,
                        range_end: vec![0],
                        ..watch_key("\0")
                    }),
                    Step::WatchRecv(2),
                ],
            ),
        ),
        case(
            "watch: future start revision",
            vec![
                watch_create(WatchCreateRequest {
                    start_revision: 4,
                    ..watch_key("a")
                }),
                Step::WatchRecv(1),
                put("a", "1"),
                put("a", "2"),
                put("a", "3"),
                put("a", "4"),
                Step::WatchRecv(2),
            ],
        ),
        case(
            "watch: client-chosen IDs and a duplicate",
            vec![
                watch_create(WatchCreateRequest {
                    watch_id: 7,
                    ..watch_key("a")
                }),
                Step::WatchRecv(1),
                watch_create(WatchCreateRequest {
                    watch_id: 7,
                    ..watch_key("b")
                }),
                Step::WatchRecv(1),
                put("a", "1"),
                Step::WatchRecv(1),
            ],
        ),
        case(
            "watch: server-chosen IDs on one stream",
            vec![
                watch_create(watch_key("a")),
                Step::WatchRecv(1),
                watch_create(watch_key("a")),
                Step::WatchRecv(1),
                watch_create(WatchCreateRequest {
                    watch_id: 2,
                    ..watch_key("b")
                }),
                Step::WatchRecv(1),
                watch_create(watch_key("b")),
                Step::WatchRecv(1),
            ],
        ),
        case(
            "watch: cancel, and cancel of an unknown ID",
            vec![
                watch_create(watch_key("a")),
                Step::WatchRecv(1),
                watch_cancel(0),
                Step::WatchRecv(1),
                put("a", "1"),
                watch_cancel(42),
                Step::WatchQuiet(400),
            ],
        ),
        case(
            "watch: progress request",
            vec![
                put("a", "1"),
                watch_create(watch_key("a")),
                Step::WatchRecv(1),
                watch_progress(),
                Step::WatchRecv(1),
            ],
        ),
        case(
            "watch: empty range",
            vec![
                watch_create(WatchCreateRequest {
                    range_end: b("a"),
                    ..watch_key("b")
                }),
                Step::WatchRecv(1),
            ],
        ),
        case(
            "watch: a txn's events arrive together",
            vec![
                watch_create(prefix("t")),
                Step::WatchRecv(1),
                Step::Txn(txn(
                    vec![],
                    vec![op_put("t1", "a"), op_put("t2", "b"), op_del("t0", b"")],
                    vec![],
                )),
                Step::WatchRecv(1),
            ],
        ),
        case(
            "watch: a range delete's events arrive together",
            vec![
                put("r1", "a"),
                put("r2", "b"),
                watch_create(WatchCreateRequest {
                    prev_kv: true,
                    ..prefix("r")
                }),
                Step::WatchRecv(1),
                Step::Delete(del_req("r", &prefix_end("r"))),
                Step::WatchRecv(1),
            ],
        ),
        case(
            "watch: lease revocation deletes",
            vec![
                Step::Grant(60, 9),
                Step::Put(PutRequest {
                    lease: 9,
                    ..put_req("l1", "a")
                }),
                watch_create(prefix("l")),
                Step::WatchRecv(1),
                Step::Revoke(9),
                Step::WatchRecv(1),
            ],
        ),
        case(
            "watch: kube-style watch from a revision with prev_kv and a progress request",
            with(
                history(),
                vec![
                    watch_create(WatchCreateRequest {
                        start_revision: 4,
                        prev_kv: true,
                        progress_notify: true,
                        range_end: prefix_end(""),
                        ..watch_key("")
                    }),
                    Step::WatchRecv(2),
                    watch_progress(),
                    Step::WatchRecv(1),
                    put("a", "4"),
                    Step::WatchRecv(1),
                    watch_progress(),
                    Step::WatchRecv(1),
                ],
            ),
        ),
        case(
            "watch: many watchers on one stream",
            (0..20)
                .map(|i| watch_create(watch_key(&format!("k{i:02}"))))
                .chain([Step::WatchRecv(20)])
                .chain((0..20).map(|i| put(&format!("k{i:02}"), "v")))
                .chain([Step::WatchRecv(20)])
                .collect(),
        ),
        case(
            "watch: two watchers on the same key",
            vec![
                watch_create(watch_key("a")),
                watch_create(watch_key("a")),
                Step::WatchRecv(2),
                put("a", "1"),
                Step::WatchRecv(2),
            ],
        ),
    ];
    let mut notify = case(
        "watch: progress notifications for an idle watcher",
        vec![
            watch_create(WatchCreateRequest {
                progress_notify: true,
                ..watch_key("a")
            }),
            Step::WatchRecv(1),
            put("b", "1"),
            Step::WatchRecv(1),
        ],
    );
    notify.args = vec!["--experimental-watch-progress-notify-interval=1s".into()];
    v.push(notify);
    let mut fragments = case(
        "watch: fragmented responses",
        vec![
            watch_create(WatchCreateRequest {
                fragment: true,
                ..prefix("f")
            }),
            Step::WatchRecv(1),
            Step::Txn(txn(
                vec![],
                vec![
                    op_put("f1", &"x".repeat(700)),
                    op_put("f2", &"y".repeat(700)),
                    op_put("f3", &"z".repeat(700)),
                ],
                vec![],
            )),
            Step::WatchRecv(3),
        ],
    );
    fragments.args = vec!["--max-request-bytes=3000".into()];
    v.push(fragments);
    v
}

//! Differential cases for leases: grant, revoke, time-to-live, keep-alive,
//! expiry, and keys attached to leases.

use super::dsl::*;
use ferrocd_proto::etcdserverpb::*;

fn put_lease(k: &str, v: &str, lease: i64) -> Step {
    Step::Put(PutRequest {
        lease,
        ..put_req(k, v)
    })
}

fn all() -> Step {
    Step::Range(range_req("\0", &[0]))
}

fn alarm(action: alarm_request::AlarmAction, alarm: AlarmType) -> Step {
    Step::Alarm(AlarmRequest {
        action: action as i32,
        member_id: 1234,
        alarm: alarm as i32,
    })
}

pub fn cases() -> Vec<Case> {
    use alarm_request::AlarmAction::{Activate, Deactivate, Get};
    vec![
        case("alarm: none raised", vec![alarm(Get, AlarmType::None)]),
        case(
            "alarm: NOSPACE refuses writes until disarmed",
            vec![
                put("a", "1"),
                Step::Grant(60, 5),
                alarm(Activate, AlarmType::Nospace),
                alarm(Get, AlarmType::None),
                alarm(Get, AlarmType::Nospace),
                put("b", "1"),
                Step::Txn(txn(vec![], vec![op_put("c", "1")], vec![])),
                Step::Txn(txn(vec![], vec![op_get("a")], vec![])),
                Step::Txn(txn(vec![], vec![op_del("a", b"")], vec![])),
                Step::Grant(60, 6),
                Step::Revoke(5),
                del("a"),
                Step::Compact(2, false),
                alarm(Deactivate, AlarmType::Nospace),
                alarm(Deactivate, AlarmType::Nospace),
                alarm(Get, AlarmType::None),
                put("b", "2"),
                all(),
            ],
        ),
        case(
            "alarm: CORRUPT is listed",
            vec![
                alarm(Activate, AlarmType::Corrupt),
                alarm(Get, AlarmType::None),
                alarm(Deactivate, AlarmType::Corrupt),
                alarm(Get, AlarmType::None),
            ],
        ),
        case(
            "lease: grant with an ID",
            vec![Step::Grant(60, 100), Step::Ttl(100, true), Step::Leases],
        ),
        case(
            "lease: grant below the minimum TTL",
            vec![Step::Grant(1, 100), Step::Ttl(100, false)],
        ),
        case(
            "lease: grant an existing ID",
            vec![Step::Grant(60, 100), Step::Grant(60, 100)],
        ),
        case(
            "lease: TTL too large",
            vec![Step::Grant(9_000_000_001, 100)],
        ),
        case("lease: largest TTL", vec![Step::Grant(9_000_000_000, 100)]),
        case("lease: revoke a missing lease", vec![Step::Revoke(77)]),
        case(
            "lease: time to live of a missing lease",
            vec![Step::Ttl(77, true)],
        ),
        case(
            "lease: keep-alive of a missing lease",
            vec![Step::KeepAlive(77)],
        ),
        case(
            "lease: keep-alive",
            vec![
                Step::Grant(60, 100),
                Step::KeepAlive(100),
                Step::Ttl(100, false),
            ],
        ),
        case(
            "lease: put with a missing lease",
            vec![put_lease("k", "v", 5), all()],
        ),
        case(
            "lease: keys attached, listed sorted",
            vec![
                Step::Grant(60, 100),
                put_lease("b", "1", 100),
                put_lease("a", "2", 100),
                put("c", "3"),
                Step::Ttl(100, true),
                Step::Ttl(100, false),
            ],
        ),
        case(
            "lease: revoke deletes attached keys in one revision",
            vec![
                Step::Grant(60, 100),
                put_lease("a", "1", 100),
                put_lease("b", "2", 100),
                put("c", "3"),
                Step::Revoke(100),
                all(),
                Step::Range(RangeRequest {
                    revision: 4,
                    ..range_req("\0", &[0])
                }),
                Step::Leases,
            ],
        ),
        case(
            "lease: revoke with no keys keeps the revision",
            vec![
                Step::Grant(60, 100),
                put("x", "1"),
                Step::Revoke(100),
                all(),
            ],
        ),
        case(
            "lease: overwrite moves a key off its lease",
            vec![
                Step::Grant(60, 100),
                Step::Grant(60, 200),
                put_lease("a", "1", 100),
                put_lease("a", "2", 200),
                Step::Ttl(100, true),
                Step::Ttl(200, true),
                put("a", "3"),
                Step::Ttl(200, true),
            ],
        ),
        case(
            "lease: ignore_lease keeps the lease",
            vec![
                Step::Grant(60, 100),
                put_lease("a", "1", 100),
                Step::Put(PutRequest {
                    ignore_lease: true,
                    ..put_req("a", "2")
                }),
                Step::Ttl(100, true),
                all(),
            ],
        ),
        case(
            "lease: delete detaches the key",
            vec![
                Step::Grant(60, 100),
                put_lease("a", "1", 100),
                del("a"),
                Step::Ttl(100, true),
            ],
        ),
        case(
            "lease: expiry deletes attached keys",
            vec![
                Step::Grant(2, 100),
                put_lease("a", "1", 100),
                put_lease("b", "1", 100),
                put("keep", "1"),
                Step::Sleep(4500),
                all(),
                Step::Ttl(100, false),
                Step::Leases,
            ],
        ),
        case(
            "lease: txn compare on lease",
            vec![
                Step::Grant(60, 100),
                put_lease("a", "1", 100),
                Step::Txn(txn(
                    vec![cmp(
                        "a",
                        compare::CompareTarget::Lease,
                        compare::CompareResult::Equal,
                        compare::TargetUnion::Lease(100),
                    )],
                    vec![op_put("matched", "1")],
                    vec![],
                )),
                all(),
            ],
        ),
        case(
            "lease: many leases listed",
            vec![
                Step::Grant(60, 3),
                Step::Grant(60, 1),
                Step::Grant(60, 2),
                Step::Revoke(2),
                Step::Leases,
            ],
        ),
    ]
}

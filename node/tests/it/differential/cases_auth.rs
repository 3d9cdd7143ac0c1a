//! Differential cases for auth: every Auth RPC with etcd's rules and
//! errors, permission intervals (key, range, prefix, from-key) on every KV
//! request (txn compares and nested ops included), watches, leases, the
//! RPCs etcd reserves for root, tokens (wrong, expired, invalidated).

use super::dsl::*;
use ferrocd_proto::authpb::{permission::Type as Perm, Permission, UserAddOptions};
use ferrocd_proto::etcdserverpb::*;

const ROOT_PW: &str = "rootpw";

// Answers of etcd releases after 3.5.1 (see `Step::Newer`).
const INVALID_MGMT: &str = "Err(InvalidArgument, \"etcdserver: invalid auth management\")";
const DENIED: &str = "Err(PermissionDenied, \"etcdserver: permission denied\")";
const USER_EMPTY: &str = "Err(InvalidArgument, \"etcdserver: user name is empty\")";
const OLD_REVISION: &str = "Err(InvalidArgument, \"etcdserver: revision of auth store is old\")";
const WATCH_DENIED: &str = "watch_id: -1, created: true, canceled: true, compact_revision: 0, \
                            cancel_reason: \"etcdserver: permission denied\"";

fn auth(op: AuthOp) -> Step {
    Step::Auth(op)
}

fn enable() -> Step {
    auth(AuthOp::Enable(AuthEnableRequest {}))
}

fn disable() -> Step {
    auth(AuthOp::Disable(AuthDisableRequest {}))
}

fn status() -> Step {
    auth(AuthOp::Status(AuthStatusRequest {}))
}

fn user_add(name: &str, password: &str) -> Step {
    auth(AuthOp::UserAdd(AuthUserAddRequest {
        name: name.into(),
        password: password.into(),
        ..Default::default()
    }))
}

fn user_add_no_password(name: &str) -> Step {
    auth(AuthOp::UserAdd(AuthUserAddRequest {
        name: name.into(),
        options: Some(UserAddOptions { no_password: true }),
        ..Default::default()
    }))
}

fn user_get(name: &str) -> Step {
    auth(AuthOp::UserGet(AuthUserGetRequest { name: name.into() }))
}

fn user_list() -> Step {
    auth(AuthOp::UserList(AuthUserListRequest {}))
}

fn user_delete(name: &str) -> Step {
    auth(AuthOp::UserDelete(AuthUserDeleteRequest {
        name: name.into(),
    }))
}

fn passwd(name: &str, password: &str) -> Step {
    auth(AuthOp::UserChangePassword(AuthUserChangePasswordRequest {
        name: name.into(),
        password: password.into(),
        ..Default::default()
    }))
}

fn grant_role(user: &str, role: &str) -> Step {
    auth(AuthOp::UserGrantRole(AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    }))
}

fn revoke_role(user: &str, role: &str) -> Step {
    auth(AuthOp::UserRevokeRole(AuthUserRevokeRoleRequest {
        name: user.into(),
        role: role.into(),
    }))
}

fn role_add(name: &str) -> Step {
    auth(AuthOp::RoleAdd(AuthRoleAddRequest { name: name.into() }))
}

fn role_get(name: &str) -> Step {
    auth(AuthOp::RoleGet(AuthRoleGetRequest { role: name.into() }))
}

fn role_list() -> Step {
    auth(AuthOp::RoleList(AuthRoleListRequest {}))
}

fn role_delete(name: &str) -> Step {
    auth(AuthOp::RoleDelete(AuthRoleDeleteRequest {
        role: name.into(),
    }))
}

fn grant(role: &str, t: Perm, key: &str, end: &[u8]) -> Step {
    auth(AuthOp::RoleGrantPermission(
        AuthRoleGrantPermissionRequest {
            name: role.into(),
            perm: Some(Permission {
                perm_type: t as i32,
                key: b(key),
                range_end: end.to_vec(),
            }),
        },
    ))
}

fn revoke(role: &str, key: &str, end: &[u8]) -> Step {
    auth(AuthOp::RoleRevokePermission(
        AuthRoleRevokePermissionRequest {
            role: role.into(),
            key: b(key),
            range_end: end.to_vec(),
        },
    ))
}

fn login(user: &str, password: &str) -> Step {
    Step::Login(user.into(), password.into())
}

fn as_user(user: &str) -> Step {
    Step::As(user.into())
}

fn anonymous() -> Step {
    Step::Token(None)
}

fn token(t: &str) -> Step {
    Step::Token(Some(t.into()))
}

/// A root user with the root role, auth on, later steps as root.
fn root_on() -> Vec<Step> {
    vec![
        role_add("root"),
        user_add("root", ROOT_PW),
        grant_role("root", "root"),
        enable(),
        login("root", ROOT_PW),
    ]
}

/// As root: user `name` (password `name`-pw) holding role `r-name` with
/// these permissions; then steps run as that user.
fn user_with(name: &str, perms: &[(Perm, &str, &[u8])]) -> Vec<Step> {
    let role = format!("r-{name}");
    let mut steps = vec![as_user("root"), role_add(&role)];
    for (t, k, e) in perms {
        steps.push(grant(&role, *t, k, e));
    }
    steps.push(user_add(name, &format!("{name}-pw")));
    steps.push(grant_role(name, &role));
    steps.push(login(name, &format!("{name}-pw")));
    steps
}

/// Root turns auth on, writes `keys`, then a user with `perms` runs `then`.
fn as_restricted(
    name: &str,
    keys: &[&str],
    perms: &[(Perm, &str, &[u8])],
    then: Vec<Step>,
) -> Case {
    let mut steps = root_on();
    for k in keys {
        steps.push(put(k, "v"));
    }
    steps.extend(user_with("alice", perms));
    steps.extend(then);
    case(name, steps)
}

fn on(mut setup: Vec<Step>, then: Vec<Step>) -> Vec<Step> {
    setup.extend(then);
    setup
}

fn put_lease(k: &str, lease: i64) -> Step {
    Step::Put(PutRequest {
        lease,
        ..put_req(k, "v")
    })
}

fn watch_range(k: &str, end: &[u8]) -> Step {
    watch_create(WatchCreateRequest {
        key: b(k),
        range_end: end.to_vec(),
        ..Default::default()
    })
}

fn all_keys() -> RangeRequest {
    range_req("\0", &[0])
}

pub fn cases() -> Vec<Case> {
    use compare::{CompareResult::Equal, CompareTarget::Value, TargetUnion::Value as V};
    use Perm::{Read, Readwrite, Write};
    let mut cases = vec![
        // The store and its rules, auth off.
        case("status of a new store", vec![status()]),
        case("enable without a root user", vec![enable(), status()]),
        case(
            "enable with root lacking the root role",
            vec![user_add("root", ROOT_PW), enable(), status()],
        ),
        case(
            "enable, then status as root and without credentials",
            on(root_on(), vec![status(), anonymous(), status()]),
        ),
        case("enable twice", on(root_on(), vec![enable(), status()])),
        case(
            "the root role may be granted before it exists",
            vec![
                user_add("root", ROOT_PW),
                grant_role("root", "root"),
                user_get("root"),
                role_list(),
                enable(),
                login("root", ROOT_PW),
                role_get("root"),
            ],
        ),
        case("user add: empty name", vec![user_add("", "x"), user_list()]),
        case(
            "user add: twice",
            vec![
                user_add("u", "x"),
                user_add("u", "y"),
                user_list(),
                status(),
            ],
        ),
        case(
            "user add: without password",
            vec![user_add_no_password("u"), user_get("u"), user_list()],
        ),
        case(
            "user add: a password beyond bcrypt's 72 bytes",
            vec![user_add("long", &"p".repeat(100)), user_list(), status()],
        ),
        case("role add: empty name", vec![role_add(""), role_list()]),
        case(
            "role add: twice",
            vec![role_add("r"), role_add("r"), role_list(), status()],
        ),
        case(
            "grant role: unknown user, unknown role",
            vec![
                role_add("r"),
                user_add("u", "x"),
                grant_role("nobody", "r"),
                grant_role("u", "nope"),
                user_get("u"),
                status(),
            ],
        ),
        case(
            "grant role: twice changes nothing",
            vec![
                role_add("r"),
                user_add("u", "x"),
                grant_role("u", "r"),
                status(),
                grant_role("u", "r"),
                status(),
                user_get("u"),
            ],
        ),
        case(
            "grant role: roles stay sorted",
            vec![
                role_add("zz"),
                role_add("aa"),
                role_add("mm"),
                user_add("u", "x"),
                grant_role("u", "zz"),
                grant_role("u", "aa"),
                grant_role("u", "mm"),
                user_get("u"),
            ],
        ),
        case(
            "revoke role: never granted, unknown user",
            vec![
                role_add("r"),
                user_add("u", "x"),
                revoke_role("u", "r"),
                revoke_role("nobody", "r"),
                status(),
            ],
        ),
        case(
            "revoke role",
            vec![
                role_add("r"),
                user_add("u", "x"),
                grant_role("u", "r"),
                revoke_role("u", "r"),
                user_get("u"),
                status(),
            ],
        ),
        case(
            "grant permission: none given",
            vec![
                role_add("r"),
                auth(AuthOp::RoleGrantPermission(
                    AuthRoleGrantPermissionRequest {
                        name: "r".into(),
                        perm: None,
                    },
                )),
                role_get("r"),
            ],
        ),
        case(
            "grant permission: invalid ranges",
            vec![
                role_add("r"),
                newer(grant("r", Read, "", b""), INVALID_MGMT),
                newer(grant("r", Read, "b", b"a"), INVALID_MGMT),
                newer(grant("r", Read, "b", b"b"), INVALID_MGMT),
            ],
        ),
        case(
            "grant permission: unknown role",
            vec![grant("nope", Read, "a", b""), status()],
        ),
        case(
            "grant permission: the same interval again updates its type",
            vec![
                role_add("r"),
                grant("r", Read, "a", b"c"),
                grant("r", Write, "a", b"c"),
                role_get("r"),
                status(),
            ],
        ),
        case(
            "grant permission: kept sorted by key",
            vec![
                role_add("r"),
                grant("r", Read, "m", b""),
                grant("r", Write, "c", b"d"),
                grant("r", Readwrite, "x", &[0]),
                grant("r", Read, "c", b""),
                grant("r", Read, "a", &prefix_end("a")),
                role_get("r"),
            ],
        ),
        case(
            "revoke permission: never granted, unknown role",
            vec![
                role_add("r"),
                grant("r", Read, "a", b"c"),
                revoke("r", "a", b""),
                revoke("r", "a", b"d"),
                revoke("nope", "a", b"c"),
                role_get("r"),
            ],
        ),
        case(
            "revoke permission",
            vec![
                role_add("r"),
                grant("r", Read, "a", b"c"),
                grant("r", Read, "k", b""),
                revoke("r", "a", b"c"),
                role_get("r"),
                status(),
            ],
        ),
        case(
            "role delete: unknown; removes the role from its users",
            vec![
                role_add("r"),
                role_add("s"),
                user_add("u", "x"),
                grant_role("u", "r"),
                grant_role("u", "s"),
                role_delete("nope"),
                role_delete("r"),
                user_get("u"),
                role_list(),
                status(),
            ],
        ),
        case(
            "user delete: unknown, then a known one",
            vec![
                user_add("u", "x"),
                user_delete("nope"),
                user_delete("u"),
                user_list(),
                user_get("u"),
                status(),
            ],
        ),
        case(
            "lists are sorted by name",
            vec![
                user_add("carol", "x"),
                user_add("alice", "x"),
                user_add("bob", "x"),
                role_add("w"),
                role_add("b"),
                user_list(),
                role_list(),
            ],
        ),
        case(
            "get unknown user and role",
            vec![user_get("x"), role_get("x")],
        ),
        case(
            "change password: unknown user",
            vec![passwd("nobody", "x"), status()],
        ),
        case(
            "root rules while auth is on",
            on(
                root_on(),
                vec![
                    user_delete("root"),
                    revoke_role("root", "root"),
                    role_delete("root"),
                    user_get("root"),
                    status(),
                ],
            ),
        ),
        case(
            "root rules do not hold while auth is off",
            vec![
                role_add("root"),
                user_add("root", ROOT_PW),
                grant_role("root", "root"),
                revoke_role("root", "root"),
                role_delete("root"),
                user_delete("root"),
                user_list(),
                role_list(),
            ],
        ),
        // Authenticate.
        case(
            "authenticate while auth is off",
            vec![user_add("u", "x"), login("u", "x")],
        ),
        case(
            "authenticate: wrong password, unknown user, empty name",
            on(
                root_on(),
                vec![login("root", "wrong"), login("nobody", "x"), login("", "")],
            ),
        ),
        case(
            "authenticate: a user without password",
            on(
                root_on(),
                vec![
                    user_add_no_password("np"),
                    login("np", ""),
                    login("np", "x"),
                ],
            ),
        ),
        case(
            "authenticate: a new password works, the old one not",
            on(
                root_on(),
                vec![
                    user_add("u", "old"),
                    passwd("u", "new"),
                    login("u", "old"),
                    login("u", "new"),
                    get("k"),
                ],
            ),
        ),
        case(
            "a password change drops the user's tokens",
            on(
                root_on(),
                on(
                    user_with("alice", &[(Readwrite, "k", b"")]),
                    vec![
                        get("k"),
                        as_user("root"),
                        passwd("alice", "other"),
                        as_user("alice"),
                        get("k"),
                        put("k", "v"),
                    ],
                ),
            ),
        ),
        case(
            "deleting a user drops its tokens",
            on(
                root_on(),
                on(
                    user_with("alice", &[(Readwrite, "k", b"")]),
                    vec![
                        put("k", "1"),
                        as_user("root"),
                        user_delete("alice"),
                        as_user("alice"),
                        put("k", "2"),
                        get("k"),
                    ],
                ),
            ),
        ),
        case(
            "invalid tokens",
            on(
                root_on(),
                vec![
                    token("bogus"),
                    get("k"),
                    token("abcdefghijklmnop.1"),
                    get("k"),
                    token("a.b.c"),
                    put("k", "v"),
                    token("abcdefghijklmnop.x"),
                    status(),
                ],
            ),
        ),
        case(
            "no credentials while auth is on",
            on(
                root_on(),
                vec![
                    put("k", "v"),
                    anonymous(),
                    get("k"),
                    put("k", "v"),
                    del("k"),
                    Step::Txn(txn(vec![], vec![op_put("k", "v")], vec![])),
                    Step::Txn(txn(vec![], vec![op_get("k")], vec![])),
                    Step::Compact(1, false),
                    user_list(),
                    status(),
                ],
            ),
        ),
        // Permissions on keys.
        as_restricted(
            "read one key",
            &["a", "a0", "b"],
            &[(Read, "a", b"")],
            vec![
                get("a"),
                get("a0"),
                Step::Range(range_req("a", b"b")),
                put("a", "x"),
            ],
        ),
        as_restricted(
            "read a range",
            &["a", "b", "c", "d"],
            &[(Read, "a", b"c")],
            vec![
                Step::Range(range_req("a", b"c")),
                Step::Range(range_req("b", b"c")),
                Step::Range(range_req("a", b"d")),
                get("b"),
                get("c"),
            ],
        ),
        as_restricted(
            "read a prefix",
            &["p/1", "p/2", "q"],
            &[(Read, "p/", &prefix_end("p/"))],
            vec![
                Step::Range(range_req("p/", &prefix_end("p/"))),
                Step::Range(range_req("p", &prefix_end("p"))),
                get("p/1"),
                get("q"),
            ],
        ),
        as_restricted(
            "read from a key on",
            &["a", "m", "z"],
            &[(Read, "m", &[0])],
            vec![
                Step::Range(range_req("m", &[0])),
                Step::Range(range_req("n", &[0])),
                Step::Range(range_req("a", &[0])),
                get("zzz"),
                Step::Range(all_keys()),
            ],
        ),
        as_restricted(
            "ranges covered by several permissions together",
            &["a", "b", "c", "d", "e"],
            &[(Read, "a", b"c"), (Read, "c", b"e")],
            vec![
                Step::Range(range_req("a", b"e")),
                Step::Range(range_req("a", b"f")),
                get("d"),
            ],
        ),
        as_restricted(
            "write only",
            &["w"],
            &[(Write, "w", b"")],
            vec![put("w", "x"), get("w"), put("w2", "x"), del("w")],
        ),
        as_restricted(
            "read and write",
            &["k"],
            &[(Readwrite, "k", &prefix_end("k"))],
            vec![put("k1", "x"), get("k1"), del("k1"), put("l", "x")],
        ),
        as_restricted(
            "delete: a range needs write on all of it; prev_kv needs read",
            &["a", "b", "c"],
            &[(Write, "a", b"c"), (Read, "a", b"b")],
            vec![
                Step::Delete(del_req("a", b"d")),
                Step::Delete(DeleteRangeRequest {
                    prev_kv: true,
                    ..del_req("a", b"c")
                }),
                Step::Delete(DeleteRangeRequest {
                    prev_kv: true,
                    ..del_req("a", b"")
                }),
                Step::Delete(del_req("a", b"c")),
            ],
        ),
        as_restricted(
            "put: prev_kv needs read",
            &["k"],
            &[(Write, "k", b""), (Write, "j", b""), (Read, "j", b"")],
            vec![
                Step::Put(PutRequest {
                    prev_kv: true,
                    ..put_req("k", "x")
                }),
                Step::Put(PutRequest {
                    prev_kv: true,
                    ..put_req("j", "x")
                }),
            ],
        ),
        as_restricted(
            "txn: a compare outside the permissions",
            &["a", "b"],
            &[(Readwrite, "a", b"")],
            vec![Step::Txn(txn(
                vec![cmp("b", Value, Equal, V(b("v")))],
                vec![op_put("a", "x")],
                vec![],
            ))],
        ),
        as_restricted(
            "txn: an op of the branch that does not run",
            &["a", "b"],
            &[(Readwrite, "a", b"")],
            vec![
                Step::Txn(txn(
                    vec![cmp("a", Value, Equal, V(b("v")))],
                    vec![op_put("a", "x")],
                    vec![op_put("b", "x")],
                )),
                get("a"),
            ],
        ),
        as_restricted(
            "txn: a nested txn inside the permissions",
            &["a", "b"],
            &[(Readwrite, "a", b"")],
            vec![
                Step::Txn(txn(
                    vec![],
                    vec![op_txn(txn(
                        vec![],
                        vec![op_get("a")],
                        vec![op_put("a", "y")],
                    ))],
                    vec![],
                )),
                get("a"),
            ],
        ),
        as_restricted(
            "txn: a nested txn outside the permissions",
            &["a", "b"],
            &[(Readwrite, "a", b"")],
            vec![newer(
                Step::Txn(txn(
                    vec![],
                    vec![
                        op_put("a", "x"),
                        op_txn(txn(vec![], vec![op_get("a")], vec![op_del("b", b"")])),
                    ],
                    vec![],
                )),
                DENIED,
            )],
        ),
        as_restricted(
            "txn: read-only, inside and outside",
            &["a", "b"],
            &[(Read, "a", b"")],
            vec![
                Step::Txn(txn(vec![], vec![op_get("a")], vec![])),
                Step::Txn(txn(vec![], vec![op_get("a"), op_get("b")], vec![])),
                Step::Txn(txn(
                    vec![cmp("a", Value, Equal, V(b("v")))],
                    vec![op_get("a")],
                    vec![],
                )),
            ],
        ),
        as_restricted(
            "txn: delete with prev_kv needs read",
            &["a"],
            &[(Write, "a", b"")],
            vec![
                Step::Txn(txn(
                    vec![],
                    vec![RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(
                            DeleteRangeRequest {
                                prev_kv: true,
                                ..del_req("a", b"")
                            },
                        )),
                    }],
                    vec![],
                )),
                Step::Txn(txn(vec![], vec![op_del("a", b"")], vec![])),
            ],
        ),
        as_restricted(
            "permissions change at once for a logged-in user",
            &["k"],
            &[(Read, "k", b"")],
            vec![
                get("k"),
                as_user("root"),
                revoke("r-alice", "k", b""),
                as_user("alice"),
                get("k"),
                as_user("root"),
                grant("r-alice", Readwrite, "k", b""),
                as_user("alice"),
                put("k", "x"),
                as_user("root"),
                revoke_role("alice", "r-alice"),
                as_user("alice"),
                get("k"),
            ],
        ),
        // Watch.
        as_restricted(
            "watch inside the permissions",
            &[],
            &[(Readwrite, "w", &prefix_end("w"))],
            vec![
                watch_range("w", &prefix_end("w")),
                Step::WatchRecv(1),
                put("w1", "x"),
                Step::WatchRecv(1),
            ],
        ),
        as_restricted(
            "watch outside the permissions",
            &[],
            &[(Readwrite, "w", b"")],
            vec![
                watch_create(watch_key("x")),
                newer(Step::WatchRecv(1), WATCH_DENIED),
                watch_range("w", b"x"),
                newer(Step::WatchRecv(1), WATCH_DENIED),
                watch_create(watch_key("w")),
                Step::WatchRecv(1),
            ],
        ),
        as_restricted(
            "watch from a key on is checked as the key alone",
            &[],
            &[(Read, "m", b"")],
            vec![
                watch_range("m", &[0]),
                Step::WatchRecv(1),
                put("zz", "1"),
                Step::WatchQuiet(300),
            ],
        ),
        case(
            "watch without credentials while auth is on",
            on(
                root_on(),
                vec![
                    anonymous(),
                    watch_create(watch_key("k")),
                    newer(
                        Step::WatchRecv(1),
                        "watch_id: -1, created: true, canceled: true, compact_revision: 0, \
                         cancel_reason: \"etcdserver: user name is empty\"",
                    ),
                ],
            ),
        ),
        case(
            "watch with an invalid token",
            on(
                root_on(),
                vec![
                    token("bogus"),
                    watch_create(watch_key("k")),
                    newer(
                        Step::WatchRecv(1),
                        "watch_id: -1, created: true, canceled: true, compact_revision: 0, \
                         cancel_reason: \"etcdserver: invalid auth token\"",
                    ),
                ],
            ),
        ),
        // Leases.
        as_restricted(
            "lease: revoke needs write on every attached key",
            &[],
            &[(Readwrite, "a", b"")],
            vec![
                as_user("root"),
                Step::Grant(60, 7),
                put_lease("a", 7),
                put_lease("b", 7),
                as_user("alice"),
                Step::Revoke(7),
                as_user("root"),
                Step::Revoke(7),
                Step::Range(all_keys()),
            ],
        ),
        as_restricted(
            "lease: a put through a lease needs write on its keys",
            &[],
            &[(Readwrite, "a", b"")],
            vec![
                as_user("root"),
                Step::Grant(60, 8),
                put_lease("b", 8),
                as_user("alice"),
                put_lease("a", 8),
                Step::Grant(60, 9),
                put_lease("a", 9),
                Step::Ttl(9, true),
            ],
        ),
        as_restricted(
            "lease: time-to-live with keys needs read on them",
            &[],
            &[(Read, "a", b"")],
            vec![
                as_user("root"),
                Step::Grant(60, 10),
                put_lease("b", 10),
                as_user("alice"),
                Step::Ttl(10, false),
                newer(Step::Ttl(10, true), DENIED),
                newer(Step::Leases, DENIED),
            ],
        ),
        case(
            "lease: grant and revoke without credentials",
            on(
                root_on(),
                vec![
                    Step::Grant(60, 11),
                    anonymous(),
                    newer(Step::Grant(60, 12), USER_EMPTY),
                    newer(Step::Revoke(11), USER_EMPTY),
                ],
            ),
        ),
        case(
            "lease: keep-alive with and without credentials",
            on(
                root_on(),
                vec![
                    Step::Grant(60, 13),
                    Step::KeepAlive(13),
                    anonymous(),
                    newer(
                        Step::KeepAlive(13),
                        "code: InvalidArgument, message: \"etcdserver: user name is empty\"",
                    ),
                ],
            ),
        ),
        // What etcd reserves for root, or for a known user.
        as_restricted(
            "compaction as a user and without credentials",
            &["a", "a"],
            &[(Readwrite, "a", b"")],
            vec![
                Step::Compact(2, false),
                anonymous(),
                Step::Compact(3, false),
            ],
        ),
        as_restricted(
            "maintenance: hashkv and alarms",
            &[],
            &[(Readwrite, "a", b"")],
            vec![
                Step::HashKv(0),
                Step::Alarm(AlarmRequest {
                    action: alarm_request::AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: AlarmType::None as i32,
                }),
                newer(
                    Step::Alarm(AlarmRequest {
                        action: alarm_request::AlarmAction::Activate as i32,
                        member_id: 1,
                        alarm: AlarmType::Nospace as i32,
                    }),
                    DENIED,
                ),
                as_user("root"),
                Step::HashKv(0),
            ],
        ),
        as_restricted(
            "maintenance: status as a user and without credentials",
            &[],
            &[(Readwrite, "a", b"")],
            vec![Step::Status, anonymous(), newer(Step::Status, USER_EMPTY)],
        ),
        case(
            "member list without credentials",
            on(root_on(), vec![anonymous(), Step::MemberList]),
        ),
        as_restricted(
            "a user reads itself and its roles, nothing else",
            &[],
            &[(Read, "a", b"")],
            vec![
                user_get("alice"),
                user_get("root"),
                role_get("r-alice"),
                role_get("root"),
                user_list(),
                role_list(),
                status(),
            ],
        ),
        as_restricted(
            "a user may not manage auth",
            &[],
            &[(Read, "a", b"")],
            vec![
                user_add("mallory", "x"),
                role_add("x"),
                grant_role("alice", "root"),
                grant("r-alice", Readwrite, "\0", &[0]),
                passwd("root", "x"),
                disable(),
                as_user("root"),
                user_list(),
                status(),
            ],
        ),
        case(
            "disable, then everything works without credentials",
            on(
                root_on(),
                vec![
                    put("k", "1"),
                    disable(),
                    // 3.5.1 still checked a token it had dropped.
                    newer(status(), "enabled: false"),
                    anonymous(),
                    get("k"),
                    put("k", "2"),
                    status(),
                    login("root", ROOT_PW),
                ],
            ),
        ),
        case(
            "enable again after disable keeps users and roles",
            on(
                root_on(),
                vec![
                    user_add("u", "x"),
                    disable(),
                    anonymous(),
                    enable(),
                    status(),
                    login("root", ROOT_PW),
                    user_list(),
                    status(),
                ],
            ),
        ),
        case(
            "every change raises the auth revision",
            vec![
                status(),
                role_add("r"),
                status(),
                grant("r", Read, "a", b""),
                status(),
                revoke("r", "a", b""),
                status(),
                user_add("u", "x"),
                status(),
                grant_role("u", "r"),
                status(),
                passwd("u", "y"),
                status(),
                revoke_role("u", "r"),
                status(),
                role_delete("r"),
                status(),
                user_delete("u"),
                status(),
            ],
        ),
        case(
            "root reads and writes everything",
            on(
                root_on(),
                vec![
                    put("a", "1"),
                    Step::Range(all_keys()),
                    Step::Txn(txn(
                        vec![cmp("a", Value, Equal, V(b("1")))],
                        vec![op_put("b", "2")],
                        vec![op_del("\0", &[0])],
                    )),
                    Step::HashKv(0),
                    Step::Compact(2, false),
                    Step::Leases,
                ],
            ),
        ),
    ];
    let mut ttl = case(
        "an unused simple token expires after --auth-token-ttl",
        on(
            root_on(),
            vec![
                get("k"),
                Step::Sleep(3500),
                get("k"),
                login("root", ROOT_PW),
                get("k"),
            ],
        ),
    );
    ttl.args = vec!["--auth-token-ttl=1".into()];
    cases.push(ttl);
    cases
}

/// Key files for JWT tokens, made with openssl for one test run.
pub struct JwtKeys {
    dir: tempfile::TempDir,
}

impl JwtKeys {
    pub fn generate() -> JwtKeys {
        let dir = tempfile::tempdir().unwrap();
        let sh = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-ec")
                .arg(script)
                .current_dir(dir.path())
                .output()
                .expect("sh");
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
            openssl pkey -in rsa.key -pubout -out rsa.pub
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other.key 2>/dev/null
            openssl pkey -in other.key -pubout -out other.pub
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec256.key
            openssl pkey -in ec256.key -pubout -out ec256.pub
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.key
            openssl pkey -in ec384.key -pubout -out ec384.pub
            head -c 32 /dev/urandom > hmac.key",
        );
        JwtKeys { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn flag(&self, method: &str, public: Option<&str>, private: Option<&str>) -> String {
        let mut f = format!("--auth-token=jwt,sign-method={method}");
        if let Some(p) = public {
            f.push_str(&format!(",pub-key={}", self.path(p)));
        }
        if let Some(p) = private {
            f.push_str(&format!(",priv-key={}", self.path(p)));
        }
        f
    }
}

fn with_args(mut c: Case, args: Vec<String>) -> Case {
    c.args = args;
    c
}

/// JWT tokens with each signing method etcd 3.5 has: what they claim, that
/// a token signed at an older auth revision is refused, tampered tokens.
pub fn jwt_cases(keys: &JwtKeys) -> Vec<Case> {
    use Perm::Readwrite;
    let methods: [(&str, Option<&str>, &str); 7] = [
        ("RS256", Some("rsa.pub"), "rsa.key"),
        ("RS512", Some("rsa.pub"), "rsa.key"),
        ("PS256", Some("rsa.pub"), "rsa.key"),
        ("PS384", Some("rsa.pub"), "rsa.key"),
        ("ES256", Some("ec256.pub"), "ec256.key"),
        ("ES384", Some("ec384.pub"), "ec384.key"),
        ("HS256", None, "hmac.key"),
    ];
    let mut cases = Vec::new();
    for (method, public, private) in methods {
        let steps = on(
            root_on(),
            on(
                user_with("alice", &[(Readwrite, "a", &prefix_end("a"))]),
                vec![
                    put("a1", "x"),
                    get("a1"),
                    put("b", "x"),
                    // Any auth change makes earlier tokens stale.
                    as_user("root"),
                    role_add("other"),
                    as_user("alice"),
                    // 3.5.1 sent this error untranslated (code Unknown).
                    newer(get("a1"), OLD_REVISION),
                    newer(put("a2", "x"), OLD_REVISION),
                    login("alice", "alice-pw"),
                    get("a1"),
                    Step::Tamper,
                    get("a1"),
                    watch_create(watch_key("a1")),
                    newer(
                        Step::WatchRecv(1),
                        "watch_id: -1, created: true, canceled: true, compact_revision: 0, \
                         cancel_reason: \"etcdserver: invalid auth token\"",
                    ),
                ],
            ),
        );
        cases.push(with_args(
            case(format!("jwt {method}"), steps),
            vec![keys.flag(method, public, Some(private))],
        ));
    }
    cases.push(with_args(
        case(
            "jwt: a member with only the public key cannot sign",
            vec![
                role_add("root"),
                user_add("root", ROOT_PW),
                grant_role("root", "root"),
                enable(),
                login("root", ROOT_PW),
                status(),
            ],
        ),
        vec![keys.flag("RS256", Some("rsa.pub"), None)],
    ));
    cases
}

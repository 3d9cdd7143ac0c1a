//! A small language for differential cases: steps and request builders.

use ferrocd_proto::etcdserverpb::*;
pub use ferrocd_proto::ferrocdpb::auth_request::Op as AuthOp;

pub enum Step {
    Put(PutRequest),
    Range(RangeRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    /// revision, physical
    Compact(i64, bool),
    /// TTL, ID
    Grant(i64, i64),
    Revoke(i64),
    /// ID, keys
    Ttl(i64, bool),
    KeepAlive(i64),
    Leases,
    HashKv(i64),
    Alarm(AlarmRequest),
    Sleep(u64),
    /// Sends on the case's watch stream (opened on first use).
    WatchSend(WatchRequest),
    /// Collects this many watch responses (5 s at most).
    WatchRecv(usize),
    /// Collects what arrives within this many milliseconds.
    WatchQuiet(u64),
    /// An Auth RPC (Authenticate is `Login`).
    Auth(AuthOp),
    /// Authenticate; on success later steps carry the token (kept under
    /// the user's name for `As`).
    Login(String, String),
    /// Later steps carry the token this user last got.
    As(String),
    /// Later steps carry this token (None: no credentials).
    Token(Option<String>),
    /// Later steps carry the current token with one character changed.
    Tamper,
    /// Status, as a non-root user may call it.
    Status,
    /// MemberList.
    MemberList,
    /// A step etcd 3.5.1 (the reference binary) answers as etcd did before
    /// a later 3.5 release fixed it (mostly auth holes): ferrocd's answer
    /// must contain this text, the fixed releases' answer, read from
    /// etcd's release-3.5 source.
    Newer(Box<Step>, &'static str),
}

impl Step {
    pub fn label(&self) -> String {
        let s = match self {
            Step::Put(_) => "put",
            Step::Range(_) => "range",
            Step::Delete(_) => "delete",
            Step::Txn(_) => "txn",
            Step::Compact(..) => "compact",
            Step::Grant(..) => "lease grant",
            Step::Revoke(_) => "lease revoke",
            Step::Ttl(..) => "lease timetolive",
            Step::KeepAlive(_) => "lease keepalive",
            Step::Leases => "lease list",
            Step::HashKv(_) => "hashkv",
            Step::Alarm(_) => "alarm",
            Step::Sleep(_) => "sleep",
            Step::WatchSend(_) => "watch send",
            Step::WatchRecv(_) => "watch recv",
            Step::WatchQuiet(_) => "watch quiet",
            Step::Auth(op) => return format!("auth {}", auth_op_name(op)),
            Step::Login(u, _) => return format!("authenticate as {u}"),
            Step::As(u) => return format!("as {u}"),
            Step::Token(_) => "set token",
            Step::Tamper => "tamper with the token",
            Step::Status => "status",
            Step::MemberList => "member list",
            Step::Newer(inner, _) => return format!("{} (as etcd after 3.5.1)", inner.label()),
        };
        s.to_string()
    }
}

pub struct Case {
    pub name: String,
    pub steps: Vec<Step>,
    /// Extra flags for both servers.
    pub args: Vec<String>,
}

pub fn case(name: impl Into<String>, steps: Vec<Step>) -> Case {
    Case {
        name: name.into(),
        steps,
        args: Vec::new(),
    }
}

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The range end covering every key with this prefix.
pub fn prefix_end(p: &str) -> Vec<u8> {
    let mut e = b(p);
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0]
}

pub fn put(k: &str, v: &str) -> Step {
    Step::Put(put_req(k, v))
}

pub fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: b(k),
        value: b(v),
        ..Default::default()
    }
}

pub fn get_req(k: &str) -> RangeRequest {
    RangeRequest {
        key: b(k),
        ..Default::default()
    }
}

pub fn range_req(k: &str, end: &[u8]) -> RangeRequest {
    RangeRequest {
        key: b(k),
        range_end: end.to_vec(),
        ..Default::default()
    }
}

pub fn get(k: &str) -> Step {
    Step::Range(get_req(k))
}

pub fn del(k: &str) -> Step {
    Step::Delete(del_req(k, b""))
}

pub fn del_req(k: &str, end: &[u8]) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b(k),
        range_end: end.to_vec(),
        ..Default::default()
    }
}

pub fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_req(k, v))),
    }
}

pub fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

pub fn op_get(k: &str) -> RequestOp {
    op_range(get_req(k))
}

pub fn op_del(k: &str, end: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(del_req(k, end))),
    }
}

pub fn op_txn(t: TxnRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestTxn(t)),
    }
}

pub fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

pub fn cmp(
    key: &str,
    target: compare::CompareTarget,
    result: compare::CompareResult,
    value: compare::TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: b(key),
        target_union: Some(value),
        range_end: Vec::new(),
    }
}

pub fn watch_create(c: WatchCreateRequest) -> Step {
    Step::WatchSend(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(c)),
    })
}

pub fn watch_key(k: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: b(k),
        ..Default::default()
    }
}

pub fn watch_cancel(id: i64) -> Step {
    Step::WatchSend(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: id },
        )),
    })
}

pub fn watch_progress() -> Step {
    Step::WatchSend(WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    })
}

fn auth_op_name(op: &AuthOp) -> &'static str {
    match op {
        AuthOp::Enable(_) => "enable",
        AuthOp::Disable(_) => "disable",
        AuthOp::Status(_) => "status",
        AuthOp::Authenticate(_) => "authenticate",
        AuthOp::UserAdd(_) => "user add",
        AuthOp::UserGet(_) => "user get",
        AuthOp::UserList(_) => "user list",
        AuthOp::UserDelete(_) => "user delete",
        AuthOp::UserChangePassword(_) => "user passwd",
        AuthOp::UserGrantRole(_) => "user grant-role",
        AuthOp::UserRevokeRole(_) => "user revoke-role",
        AuthOp::RoleAdd(_) => "role add",
        AuthOp::RoleGet(_) => "role get",
        AuthOp::RoleList(_) => "role list",
        AuthOp::RoleDelete(_) => "role delete",
        AuthOp::RoleGrantPermission(_) => "role grant-permission",
        AuthOp::RoleRevokePermission(_) => "role revoke-permission",
    }
}

/// See [`Step::Newer`].
pub fn newer(step: Step, answer: &'static str) -> Step {
    Step::Newer(Box::new(step), answer)
}

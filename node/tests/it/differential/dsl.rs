//! A small language for differential cases: steps and request builders.

use ferrocd_proto::etcdserverpb::*;

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

//! The KV requests' semantics, as etcd's `applierV3backend` defines them:
//! range options, put flags, deletes, and transactions (compares, the chosen
//! path through nested transactions, pre-checks, execution).

use super::ApplyError;
use crate::lease::Lessor;
use crate::mvcc::{KeyRange, KvView, MvccError, RangeOptions, TxnWrite};
use ferrocd_proto::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use ferrocd_proto::mvccpb::KeyValue;
use std::cmp::Ordering;

pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// Range with etcd's handling of limit, filters, sorting, keys_only and `more`.
pub fn range(view: &dyn KvView, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
    use range_request::{SortOrder, SortTarget};
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    // Sorting or filtering needs every key; otherwise fetch one extra for `more`.
    let mut limit = if r.sort_order != SortOrder::None as i32 || filtered {
        0
    } else {
        r.limit.max(0)
    };
    if limit > 0 {
        limit += 1;
    }
    let rr = view.range(
        &KeyRange::new(&r.key, &r.range_end),
        RangeOptions {
            limit: limit as usize,
            rev: r.revision,
            count_only: r.count_only,
        },
    )?;
    let mut kvs = rr.kvs;
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    let mut order = r.sort_order;
    if r.sort_target != SortTarget::Key as i32 && order == SortOrder::None as i32 {
        // Results come in key order already; other targets sort ascending by default.
        order = SortOrder::Ascend as i32;
    }
    if order != SortOrder::None as i32 {
        let target = r.sort_target;
        let cmp = move |a: &KeyValue, b: &KeyValue| -> Ordering {
            match SortTarget::try_from(target).unwrap_or(SortTarget::Key) {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            }
        };
        if order == SortOrder::Descend as i32 {
            kvs.sort_by(|a, b| cmp(b, a));
        } else {
            kvs.sort_by(cmp);
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: header(rr.rev),
        kvs,
        more,
        count: rr.count,
    })
}

/// A top-level Put (not inside a txn): the lease must exist first.
pub fn put_top(
    w: &mut TxnWrite,
    lessor: &Lessor,
    p: &PutRequest,
) -> Result<PutResponse, ApplyError> {
    if p.lease != 0 && !lessor.exists(p.lease) {
        return Err(ApplyError::LeaseNotFound);
    }
    put(w, lessor, p)
}

fn put(w: &mut TxnWrite, lessor: &Lessor, p: &PutRequest) -> Result<PutResponse, ApplyError> {
    let mut prev = None;
    if p.ignore_value || p.ignore_lease || p.prev_kv {
        prev = w
            .range(&KeyRange::Single(p.key.clone()), RangeOptions::default())?
            .kvs
            .pop();
    }
    if (p.ignore_value || p.ignore_lease) && prev.is_none() {
        return Err(ApplyError::KeyNotFound);
    }
    let value: &[u8] = match (&prev, p.ignore_value) {
        (Some(kv), true) => &kv.value,
        _ => &p.value,
    };
    let lease = match (&prev, p.ignore_lease) {
        (Some(kv), true) => kv.lease,
        _ => p.lease,
    };
    let old = w.put(&p.key, value, lease)?;
    if let Some(old) = &old {
        if old.lease != 0 {
            lessor.detach(old.lease, &p.key);
        }
    }
    if lease != 0 {
        lessor.attach(lease, &p.key);
    }
    Ok(PutResponse {
        header: header(w.begin_rev() + 1),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

pub fn delete_range(
    w: &mut TxnWrite,
    lessor: &Lessor,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ApplyError> {
    let deleted = w.delete_range(&KeyRange::new(&d.key, &d.range_end))?;
    for kv in &deleted {
        if kv.lease != 0 {
            lessor.detach(kv.lease, &kv.key);
        }
    }
    let rev = if !deleted.is_empty() || w.has_changes() {
        w.begin_rev() + 1
    } else {
        w.begin_rev()
    };
    Ok(DeleteRangeResponse {
        header: header(rev),
        deleted: deleted.len() as i64,
        prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
    })
}

/// Which branch every (nested) transaction takes, decided before any op runs.
#[derive(Debug)]
struct Path {
    succeeded: bool,
    /// One entry per nested txn op of the chosen branch, in order.
    nested: Vec<Path>,
}

fn compare_to_path(view: &dyn KvView, t: &TxnRequest) -> Result<Path, MvccError> {
    let mut succeeded = true;
    for c in &t.compare {
        if !apply_compare(view, c)? {
            succeeded = false;
            break;
        }
    }
    let ops = if succeeded { &t.success } else { &t.failure };
    let mut nested = Vec::new();
    for op in ops {
        if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
            nested.push(compare_to_path(view, inner)?);
        }
    }
    Ok(Path { succeeded, nested })
}

fn apply_compare(view: &dyn KvView, c: &Compare) -> Result<bool, MvccError> {
    let kvs = view
        .range(
            &KeyRange::new(&c.key, &c.range_end),
            RangeOptions::default(),
        )?
        .kvs;
    if kvs.is_empty() {
        if c.target == compare::CompareTarget::Value as i32 {
            // A missing key has no value to compare; such compares always fail.
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ord = match CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version) {
        CompareTarget::Value => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        CompareTarget::Create => kv.create_revision.cmp(&match c.target_union {
            Some(TargetUnion::CreateRevision(r)) => r,
            _ => 0,
        }),
        CompareTarget::Mod => kv.mod_revision.cmp(&match c.target_union {
            Some(TargetUnion::ModRevision(r)) => r,
            _ => 0,
        }),
        CompareTarget::Version => kv.version.cmp(&match c.target_union {
            Some(TargetUnion::Version(r)) => r,
            _ => 0,
        }),
        CompareTarget::Lease => kv.lease.cmp(&match c.target_union {
            Some(TargetUnion::Lease(r)) => r,
            _ => 0,
        }),
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(CompareResult::Greater) => ord == Ordering::Greater,
        Ok(CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

/// True when no branch, at any depth, writes.
pub fn is_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestPut(_))
            | Some(request_op::Request::RequestDeleteRange(_)) => false,
            Some(request_op::Request::RequestTxn(inner)) => is_read_only(inner),
            _ => true,
        })
}

/// etcd's pre-checks along the chosen path: puts (key must exist for
/// ignore_value/ignore_lease, lease must exist) and range revisions.
fn check_path(
    view: &dyn KvView,
    lessor: Option<&Lessor>,
    t: &TxnRequest,
    path: &Path,
) -> Result<(), ApplyError> {
    let ops = if path.succeeded {
        &t.success
    } else {
        &t.failure
    };
    let mut nested = path.nested.iter();
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                if let Some(lessor) = lessor {
                    if p.ignore_value || p.ignore_lease {
                        let found = view
                            .range(&KeyRange::Single(p.key.clone()), RangeOptions::default())?
                            .count;
                        if found == 0 {
                            return Err(ApplyError::KeyNotFound);
                        }
                    }
                    if p.lease != 0 && !lessor.exists(p.lease) {
                        return Err(ApplyError::LeaseNotFound);
                    }
                }
            }
            Some(request_op::Request::RequestRange(r)) => {
                if r.revision != 0 && r.revision > view.rev() {
                    return Err(MvccError::FutureRev.into());
                }
                if r.revision != 0 && r.revision < view.compact_rev() {
                    return Err(MvccError::Compacted.into());
                }
            }
            Some(request_op::Request::RequestTxn(inner)) => {
                if let Some(p) = nested.next() {
                    check_path(view, lessor, inner, p)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A transaction with no writes, served from a read view.
pub fn txn_read_only(view: &dyn KvView, t: &TxnRequest) -> Result<TxnResponse, ApplyError> {
    let path = compare_to_path(view, t)?;
    check_path(view, None, t, &path)?;
    let mut resp = exec_read(view, t, &path)?;
    resp.header = header(view.rev());
    Ok(resp)
}

fn exec_read(view: &dyn KvView, t: &TxnRequest, path: &Path) -> Result<TxnResponse, ApplyError> {
    let ops = if path.succeeded {
        &t.success
    } else {
        &t.failure
    };
    let mut nested = path.nested.iter();
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let r = match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                response_op::Response::ResponseRange(range(view, r)?)
            }
            Some(request_op::Request::RequestTxn(inner)) => match nested.next() {
                Some(p) => response_op::Response::ResponseTxn(exec_read(view, inner, p)?),
                None => continue,
            },
            _ => continue,
        };
        responses.push(ResponseOp { response: Some(r) });
    }
    Ok(TxnResponse {
        header: Some(ResponseHeader::default()),
        succeeded: path.succeeded,
        responses,
    })
}

/// A transaction that may write: one revision for all its writes.
pub fn txn_write(
    w: &mut TxnWrite,
    lessor: &Lessor,
    t: &TxnRequest,
) -> Result<TxnResponse, ApplyError> {
    let path = compare_to_path(w, t)?;
    check_path(w, Some(lessor), t, &path)?;
    let mut resp = exec_write(w, lessor, t, &path)?;
    resp.header = header(KvView::rev(w));
    Ok(resp)
}

fn exec_write(
    w: &mut TxnWrite,
    lessor: &Lessor,
    t: &TxnRequest,
    path: &Path,
) -> Result<TxnResponse, ApplyError> {
    let ops = if path.succeeded {
        &t.success
    } else {
        &t.failure
    };
    let mut nested = path.nested.iter();
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let r = match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                response_op::Response::ResponseRange(range(w, r)?)
            }
            Some(request_op::Request::RequestPut(p)) => {
                response_op::Response::ResponsePut(put(w, lessor, p)?)
            }
            Some(request_op::Request::RequestDeleteRange(d)) => {
                response_op::Response::ResponseDeleteRange(delete_range(w, lessor, d)?)
            }
            Some(request_op::Request::RequestTxn(inner)) => match nested.next() {
                Some(p) => response_op::Response::ResponseTxn(exec_write(w, lessor, inner, p)?),
                None => continue,
            },
            None => continue,
        };
        responses.push(ResponseOp { response: Some(r) });
    }
    Ok(TxnResponse {
        // etcd gives nested transactions an empty header.
        header: Some(ResponseHeader::default()),
        succeeded: path.succeeded,
        responses,
    })
}

/// Puts' cost in bytes for the quota (etcd's `costPut`), max over branches for a txn.
pub fn quota_cost_put(p: &PutRequest) -> u64 {
    256 + p.key.len() as u64 + p.value.len() as u64
}

pub fn quota_cost_txn(t: &TxnRequest) -> u64 {
    let branch = |ops: &[RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => quota_cost_put(p),
                Some(request_op::Request::RequestTxn(inner)) => quota_cost_txn(inner),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

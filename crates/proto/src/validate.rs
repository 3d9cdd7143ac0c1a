//! etcd's request checks (its `checkRangeRequest`, `checkPutRequest`,
//! `checkTxnRequest`, `checkIntervals`), shared by the member and anything
//! that wants to refuse a request before sending it.

use crate::errors;
use crate::etcdserverpb::{
    range_request, request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use std::collections::HashSet;
use tonic::Status;

pub fn range(r: &RangeRequest) -> Result<(), Status> {
    check_range(r)
}

pub fn put(r: &PutRequest) -> Result<(), Status> {
    check_put(r)
}

pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::EMPTY_KEY.status());
    }
    Ok(())
}

/// A txn's shape, every op in it (nested txns included) and etcd's
/// duplicate-key rule, with at most `max_ops` ops per level.
pub fn txn(r: &TxnRequest, max_ops: usize) -> Result<(), Status> {
    check_txn(r, max_ops)?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn check_range(r: &RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::EMPTY_KEY.status());
    }
    if range_request::SortOrder::try_from(r.sort_order).is_err()
        || range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(errors::INVALID_SORT_OPTION.status());
    }
    Ok(())
}

fn check_put(r: &PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(errors::EMPTY_KEY.status());
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(errors::VALUE_PROVIDED.status());
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(errors::LEASE_PROVIDED.status());
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: the op budget is shared with nested txns.
fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<(), Status> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_ops {
        return Err(errors::TOO_MANY_OPS.status());
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(errors::EMPTY_KEY.status());
    }
    for op in r.success.iter().chain(&r.failure) {
        check_op(op, max_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: usize) -> Result<(), Status> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => check_range(r),
        Some(request_op::Request::RequestPut(p)) => check_put(p),
        Some(request_op::Request::RequestDeleteRange(d)) => delete_range(d),
        Some(request_op::Request::RequestTxn(t)) => check_txn(t, max_ops),
        None => Err(errors::KEY_NOT_FOUND.status()),
    }
}

/// A key interval `[start, end)`; `end: None` is unbounded. A single key
/// `k` is `[k, k\0)`.
#[derive(Debug, Clone)]
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn contains(&self, k: &[u8]) -> bool {
        self.start.as_slice() <= k && self.end.as_ref().is_none_or(|e| k < e.as_slice())
    }
}

fn point(k: &[u8]) -> Interval {
    let mut end = k.to_vec();
    end.push(0);
    Interval {
        start: k.to_vec(),
        end: Some(end),
    }
}

/// etcd's `checkIntervals`: within one branch (nested txns included) a key
/// may be put once and not also fall in a deleted range; puts in the then
/// and else branches of one nested txn may repeat each other.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), Status> {
    let mut dels: Vec<Interval> = Vec::new();
    for op in ops {
        if let Some(request_op::Request::RequestDeleteRange(d)) = &op.request {
            dels.push(if d.range_end.is_empty() {
                point(&d.key)
            } else {
                Interval {
                    start: d.key.clone(),
                    end: Some(d.range_end.clone()),
                }
            });
        }
    }
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|i| i.contains(k));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(errors::DUPLICATE_KEY.status());
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(errors::DUPLICATE_KEY.status());
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(errors::DUPLICATE_KEY.status());
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: k.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }
    fn txn(then: Vec<RequestOp>, otherwise: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                compare: vec![],
                success: then,
                failure: otherwise,
            })),
        }
    }

    #[test]
    fn duplicate_puts_and_put_in_deleted_range_are_refused() {
        assert!(check_intervals(&[put("a"), put("a")]).is_err());
        assert!(check_intervals(&[put("b"), del("a", "c")]).is_err());
        assert!(check_intervals(&[put("c"), del("a", "c")]).is_ok());
        assert!(check_intervals(&[del("a", ""), del("a", "z")]).is_ok());
    }

    #[test]
    fn nested_then_else_may_repeat_but_not_the_outer_level() {
        assert!(check_intervals(&[txn(vec![put("a")], vec![put("a")])]).is_ok());
        assert!(check_intervals(&[txn(vec![put("a")], vec![]), put("a")]).is_err());
        assert!(check_intervals(&[txn(vec![del("a", "")], vec![]), put("a")]).is_err());
    }
}

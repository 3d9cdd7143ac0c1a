//! The KV service: etcd's request checks, then reads from a snapshot or
//! writes through the log.

use super::error::{self, status};
use super::{require_leader, unexpected};
use crate::apply::{kv, Response as Applied};
use crate::proto::etcdserverpb::{
    kv_server::Kv, range_request, request_op, CompactionRequest, CompactionResponse,
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, TxnRequest, TxnResponse,
};
use crate::proto::ferrocdpb::internal_request::Request as Entry;
use crate::server::Server;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct KvService {
    pub server: Arc<Server>,
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        require_leader(&req, &self.server)?;
        let r = req.into_inner();
        check_range(&r)?;
        self.server
            .metrics
            .range_total
            .fetch_add(1, Ordering::Relaxed);
        if !r.serializable {
            self.server.linearizable_read().await?;
        }
        let view = self.server.read()?;
        let mut resp = kv::range(&view, &r)?;
        self.server.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        require_leader(&req, &self.server)?;
        let r = req.into_inner();
        check_put(&r)?;
        self.server.check_quota(kv::quota_cost_put(&r)).await?;
        self.server
            .metrics
            .put_total
            .fetch_add(1, Ordering::Relaxed);
        match self.server.propose(Entry::Put(r)).await.map_err(status)? {
            Applied::Put(mut resp) => {
                self.server.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        require_leader(&req, &self.server)?;
        let r = req.into_inner();
        if r.key.is_empty() {
            return Err(error::empty_key());
        }
        self.server
            .metrics
            .delete_total
            .fetch_add(1, Ordering::Relaxed);
        match self
            .server
            .propose(Entry::DeleteRange(r))
            .await
            .map_err(status)?
        {
            Applied::DeleteRange(mut resp) => {
                self.server.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        require_leader(&req, &self.server)?;
        let r = req.into_inner();
        check_txn(&r, self.server.config.max_txn_ops)?;
        check_intervals(&r.success)?;
        check_intervals(&r.failure)?;
        self.server
            .metrics
            .txn_total
            .fetch_add(1, Ordering::Relaxed);
        if kv::is_read_only(&r) {
            self.server.linearizable_read().await?;
            let view = self.server.read()?;
            let mut resp = kv::txn_read_only(&view, &r).map_err(|e| status(e.into()))?;
            self.server.fill(&mut resp.header);
            return Ok(Response::new(resp));
        }
        self.server.check_quota(kv::quota_cost_txn(&r)).await?;
        match self.server.propose(Entry::Txn(r)).await.map_err(status)? {
            Applied::Txn(mut resp) => {
                self.server.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        require_leader(&req, &self.server)?;
        let r = req.into_inner();
        match self
            .server
            .propose(Entry::Compaction(r))
            .await
            .map_err(status)?
        {
            Applied::Compaction(mut resp) => {
                self.server.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }
}

fn check_range(r: &RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(error::empty_key());
    }
    if range_request::SortOrder::try_from(r.sort_order).is_err()
        || range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(error::invalid_sort_option());
    }
    Ok(())
}

fn check_put(r: &PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(error::empty_key());
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(error::value_provided());
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(error::lease_provided());
    }
    Ok(())
}

/// etcd's `checkTxnRequest`: the op budget is shared with nested txns.
fn check_txn(r: &TxnRequest, max_ops: usize) -> Result<(), Status> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len());
    if opc > max_ops {
        return Err(error::too_many_ops());
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(error::empty_key());
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
        Some(request_op::Request::RequestDeleteRange(d)) => {
            if d.key.is_empty() {
                Err(error::empty_key())
            } else {
                Ok(())
            }
        }
        Some(request_op::Request::RequestTxn(t)) => check_txn(t, max_ops),
        None => Err(error::key_not_found()),
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
                return Err(error::duplicate_key());
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(error::duplicate_key());
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
            return Err(error::duplicate_key());
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::DeleteRangeRequest;

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

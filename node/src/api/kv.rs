//! The KV service: etcd's request checks, then reads from a snapshot or
//! writes through the log.

use super::caller::{self, caller};
use super::error::status;
use super::{require_leader, unexpected};
use crate::apply::{kv, EntryResponse};
use crate::auth::Access;
use crate::member::{Authenticator, Leadership, Member, Proposer, Reader};
use crate::metrics::Metrics;
use ferrocd_proto::etcdserverpb::{
    kv_server::Kv, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use ferrocd_proto::ferrocdpb::internal_request::Request as Entry;
use ferrocd_proto::validate;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct KvService {
    leadership: Arc<Leadership>,
    reader: Arc<Reader>,
    proposer: Arc<Proposer>,
    metrics: Arc<Metrics>,
    authn: Arc<Authenticator>,
    max_txn_ops: usize,
}

impl KvService {
    pub fn new(m: &Member) -> KvService {
        KvService {
            leadership: m.leadership.clone(),
            reader: m.reader.clone(),
            proposer: m.proposer.clone(),
            metrics: m.metrics.clone(),
            authn: m.authn.clone(),
            max_txn_ops: m.config.max_txn_ops,
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        let r = req.into_inner();
        validate::range(&r)?;
        self.metrics.range_total.inc();
        if !r.serializable {
            self.reader.linearizable_read().await?;
        }
        caller::check(
            &self.authn,
            who.as_ref(),
            Access::Read,
            &r.key,
            &r.range_end,
        )?;
        let view = self.reader.read()?;
        let mut resp = kv::range(&view, &r)?;
        caller::still_current(&self.authn, who.as_ref())?;
        self.leadership.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        let r = req.into_inner();
        validate::put(&r)?;
        self.proposer.check_quota(kv::quota_cost_put(&r)).await?;
        self.metrics.put_total.inc();
        match self
            .proposer
            .propose(Entry::Put(r), who.as_ref())
            .await
            .map_err(status)?
        {
            EntryResponse::Put(mut resp) => {
                self.leadership.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        let r = req.into_inner();
        validate::delete_range(&r)?;
        self.metrics.delete_total.inc();
        match self
            .proposer
            .propose(Entry::DeleteRange(r), who.as_ref())
            .await
            .map_err(status)?
        {
            EntryResponse::DeleteRange(mut resp) => {
                self.leadership.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        let r = req.into_inner();
        validate::txn(&r, self.max_txn_ops)?;
        self.metrics.txn_total.inc();
        if kv::is_read_only(&r) {
            self.reader.linearizable_read().await?;
            caller::txn(&self.authn, who.as_ref(), &r)?;
            let view = self.reader.read()?;
            let mut resp = kv::txn_read_only(&view, &r).map_err(|e| status(e.into()))?;
            caller::still_current(&self.authn, who.as_ref())?;
            self.leadership.fill(&mut resp.header);
            return Ok(Response::new(resp));
        }
        self.proposer.check_quota(kv::quota_cost_txn(&r)).await?;
        match self
            .proposer
            .propose(Entry::Txn(r), who.as_ref())
            .await
            .map_err(status)?
        {
            EntryResponse::Txn(mut resp) => {
                self.leadership.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        let r = req.into_inner();
        match self
            .proposer
            .propose(Entry::Compaction(r), who.as_ref())
            .await
            .map_err(status)?
        {
            EntryResponse::Compaction(mut resp) => {
                self.leadership.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }
}

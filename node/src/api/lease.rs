//! The Lease service: grant and revoke go through the log; keep-alives and
//! time-to-live are answered from the member's lease table.

use super::caller::{self, caller};
use super::error::status;
use super::{require_leader, unexpected};
use crate::apply::EntryResponse;
use crate::auth::Access;
use crate::member::{Authenticator, Leadership, Leases, Member, Proposer};
use crate::watch::WatchHub;
use ferrocd_proto::etcdserverpb::{
    lease_server::Lease, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use ferrocd_proto::ferrocdpb::internal_request::Request as Entry;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// etcd's quota cost of a lease grant.
const LEASE_GRANT_COST: u64 = 64;

pub struct LeaseService {
    leadership: Arc<Leadership>,
    proposer: Arc<Proposer>,
    leases: Arc<Leases>,
    hub: Arc<WatchHub>,
    authn: Arc<Authenticator>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl LeaseService {
    pub fn new(m: &Member) -> LeaseService {
        LeaseService {
            leadership: m.leadership.clone(),
            proposer: m.proposer.clone(),
            leases: m.leases.clone(),
            hub: m.hub.clone(),
            authn: m.authn.clone(),
            metrics: m.metrics.clone(),
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        caller::required(&self.authn, who.as_ref())?;
        let mut r = req.into_inner();
        if r.id == 0 {
            r.id = self.leases.next_lease_id();
        }
        self.proposer.check_quota(LEASE_GRANT_COST).await?;
        match self
            .proposer
            .propose(Entry::LeaseGrant(r), who.as_ref())
            .await
            .map_err(status)?
        {
            EntryResponse::LeaseGrant(mut resp) => {
                self.leadership.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        caller::required(&self.authn, who.as_ref())?;
        let r = req.into_inner();
        match self
            .proposer
            .propose(Entry::LeaseRevoke(r), who.as_ref())
            .await
            .map_err(status)?
        {
            EntryResponse::LeaseRevoke(mut resp) => {
                self.leadership.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        require_leader(&req, &self.leadership)?;
        let credentials = caller::Credentials::of(&req);
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let leases = self.leases.clone();
        let authn = self.authn.clone();
        let renewed = self.metrics.lease_renewed.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                // etcd checks every renewal: write access to the lease's keys.
                if authn.enabled() {
                    let checked = async {
                        let who = credentials.sender(&authn).await?;
                        let rev = authn.store().revision();
                        caller::lease_keys(
                            &authn,
                            who.as_ref(),
                            Access::Write,
                            &leases.keys(r.id),
                        )?;
                        caller::unchanged_since(&authn, rev)
                    };
                    if let Err(e) = checked.await {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
                // Keep-alives go to the leader; an unknown lease answers TTL 0, as etcd does.
                let resp = leases.renew(r.id).await.map_err(status);
                if resp.as_ref().is_ok_and(|r| r.ttl > 0) {
                    renewed.inc();
                }
                if tx.send(resp).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        caller::required(&self.authn, who.as_ref())?;
        let r = req.into_inner();
        let (rev, keys) = (self.authn.store().revision(), r.keys);
        if keys {
            caller::lease_keys(
                &self.authn,
                who.as_ref(),
                Access::Read,
                &self.leases.keys(r.id),
            )?;
        }
        let resp = self.leases.time_to_live(r).await.map_err(status)?;
        // As etcd: the revision matters only when keys were checked.
        if keys {
            caller::unchanged_since(&self.authn, rev)?;
        }
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        let who = caller(&req, &self.authn).await?;
        let ids = self.leases.ids();
        if self.authn.enabled() {
            let keys: Vec<Vec<u8>> = ids.iter().flat_map(|id| self.leases.keys(*id)).collect();
            caller::lease_keys(&self.authn, who.as_ref(), Access::Read, &keys)?;
        }
        let leases = ids.into_iter().map(|id| LeaseStatus { id }).collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.leadership.header(self.hub.rev())),
            leases,
        }))
    }
}

//! The Cluster service: the raft membership with the attributes members
//! published; membership changes run on the leader (see member::membership).

use super::caller;
use super::error::status;
use super::require_leader;
use crate::member::membership::to_proto;
use crate::member::{Authenticator, Leadership, Member, Membership, Reader};
use ferrocd_proto::etcdserverpb::{
    cluster_server::Cluster, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use ferrocd_proto::ferrocdpb::member_change_request::Change;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ClusterService {
    leadership: Arc<Leadership>,
    membership: Arc<Membership>,
    reader: Arc<Reader>,
    authn: Arc<Authenticator>,
}

impl ClusterService {
    pub fn new(m: &Member) -> ClusterService {
        ClusterService {
            leadership: m.leadership.clone(),
            membership: m.membership.clone(),
            reader: m.reader.clone(),
            authn: m.authn.clone(),
        }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root(&req, &self.authn).await?;
        let r = self
            .membership
            .change_members(Change::Add(req.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.leadership.header(0)),
            member: r.added,
            members: r.members,
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root(&req, &self.authn).await?;
        let r = self
            .membership
            .change_members(Change::Remove(req.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.leadership.header(0)),
            members: r.members,
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root(&req, &self.authn).await?;
        let r = self
            .membership
            .change_members(Change::Update(req.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.leadership.header(0)),
            members: r.members,
        }))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        if req.get_ref().linearizable {
            self.reader.linearizable_read().await?;
        }
        Ok(Response::new(MemberListResponse {
            // etcd's Cluster service headers carry no revision.
            header: Some(self.leadership.header(0)),
            members: self
                .membership
                .members()
                .into_iter()
                .map(to_proto)
                .collect(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root(&req, &self.authn).await?;
        let r = self
            .membership
            .change_members(Change::Promote(req.into_inner()))
            .await
            .map_err(status)?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.leadership.header(0)),
            members: r.members,
        }))
    }
}

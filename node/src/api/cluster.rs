//! The Cluster service: the raft membership with the attributes members
//! published. Runtime membership changes are not wired yet: they answer
//! Unimplemented, except where etcd's own checks already decide (unknown
//! member, promoting a voter).

use super::error;
use super::require_leader;
use crate::proto::etcdserverpb::{
    cluster_server::Cluster, Member, MemberAddRequest, MemberAddResponse, MemberListRequest,
    MemberListResponse, MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest,
    MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use crate::server::Server;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ClusterService {
    pub server: Arc<Server>,
}

impl ClusterService {
    fn members(&self) -> Vec<Member> {
        self.server
            .members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                is_learner: m.is_learner,
            })
            .collect()
    }

    fn known(&self, id: u64) -> Result<(), Status> {
        if self.server.members().iter().any(|m| m.id == id) {
            Ok(())
        } else {
            Err(error::member_not_found())
        }
    }
}

const NEEDS_REPLICATION: &str =
    "membership changes need replication, which this build does not have yet";

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        require_leader(&req, &self.server)?;
        Err(error::unimplemented(NEEDS_REPLICATION))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        require_leader(&req, &self.server)?;
        self.known(req.into_inner().id)?;
        Err(error::unimplemented(NEEDS_REPLICATION))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        require_leader(&req, &self.server)?;
        self.known(req.into_inner().id)?;
        Err(error::unimplemented(NEEDS_REPLICATION))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        require_leader(&req, &self.server)?;
        if req.get_ref().linearizable {
            self.server.linearizable_read().await?;
        }
        Ok(Response::new(MemberListResponse {
            // etcd's Cluster service headers carry no revision.
            header: Some(self.server.header(0)),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        require_leader(&req, &self.server)?;
        self.known(req.into_inner().id)?;
        Err(error::member_not_learner())
    }
}

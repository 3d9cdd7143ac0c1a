//! The Auth service. Authentication is not implemented yet: AuthStatus
//! reports it disabled (which is true), every other RPC answers Unimplemented.

use crate::member::{Leadership, Member};
use crate::watch::WatchHub;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{auth_server::Auth, *};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AuthService {
    leadership: Arc<Leadership>,
    hub: Arc<WatchHub>,
}

impl AuthService {
    pub fn new(m: &Member) -> AuthService {
        AuthService {
            leadership: m.leadership.clone(),
            hub: m.hub.clone(),
        }
    }
}

const NOT_YET: &str = "authentication (users, roles, tokens) is not supported yet";

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_status(
        &self,
        _req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        Ok(Response::new(AuthStatusResponse {
            header: Some(self.leadership.header(self.hub.rev())),
            enabled: false,
            auth_revision: 0,
        }))
    }

    async fn auth_enable(
        &self,
        _req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn auth_disable(
        &self,
        _req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn authenticate(
        &self,
        _req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn user_add(
        &self,
        _req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn user_get(
        &self,
        _req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn user_list(
        &self,
        _req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn user_delete(
        &self,
        _req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn user_change_password(
        &self,
        _req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn user_grant_role(
        &self,
        _req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn user_revoke_role(
        &self,
        _req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn role_add(
        &self,
        _req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn role_get(
        &self,
        _req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn role_list(
        &self,
        _req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn role_delete(
        &self,
        _req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn role_grant_permission(
        &self,
        _req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }

    async fn role_revoke_permission(
        &self,
        _req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        Err(errors::unimplemented(NOT_YET))
    }
}

//! The Auth service, as etcd 3.5 serves it: every request but
//! Authenticate's password check goes through the log and is answered by
//! the auth store at apply (root only, except reading one's own user and
//! roles). Passwords are hashed here; only hashes enter the log.

use super::caller::caller;
use super::error::status;
use super::{require_leader, unexpected};
use crate::apply::EntryResponse;
use crate::auth::AuthInfo;
use crate::member::{Authenticator, Leadership, Member, Proposer, Reader};
use crate::watch::WatchHub;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{auth_server::Auth, *};
use ferrocd_proto::ferrocdpb::{
    auth_request::Op, auth_result::Result as R, internal_request::Request as Entry, AuthRequest,
    InternalAuthenticate,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AuthService {
    leadership: Arc<Leadership>,
    proposer: Arc<Proposer>,
    reader: Arc<Reader>,
    authn: Arc<Authenticator>,
    hub: Arc<WatchHub>,
}

impl AuthService {
    pub fn new(m: &Member) -> AuthService {
        AuthService {
            leadership: m.leadership.clone(),
            proposer: m.proposer.clone(),
            reader: m.reader.clone(),
            authn: m.authn.clone(),
            hub: m.hub.clone(),
        }
    }

    /// Sends `op` through the log as `who`; the store's answer.
    async fn run(&self, op: Op, who: Option<&AuthInfo>) -> Result<R, Status> {
        let entry = Entry::Auth(AuthRequest { op: Some(op) });
        match self.proposer.propose(entry, who).await.map_err(status)? {
            EntryResponse::Auth(a) => a
                .result
                .ok_or_else(|| errors::internal("empty auth result")),
            other => Err(unexpected(other)),
        }
    }

    /// The sender of `req`, then `op` through the log.
    async fn call<T>(&self, req: &Request<T>, op: Op) -> Result<R, Status> {
        require_leader(req, &self.leadership)?;
        let who = caller(req, &self.authn).await?;
        self.run(op, who.as_ref()).await
    }

    /// etcd fills an auth answer's header after apply: the revision now.
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.leadership.header(self.hub.rev()))
    }

    /// The hash of a password for the log (bcrypt off the async threads).
    async fn hash(&self, password: &str) -> Result<String, Status> {
        self.authn
            .hash_password(password)
            .await
            .map_err(Status::unknown)
    }
}

/// Answers with the response of the expected kind, its header filled.
macro_rules! answer {
    ($self:ident, $result:expr, $variant:ident) => {
        match $result {
            R::$variant(mut resp) => {
                resp.header = $self.header();
                Ok(Response::new(resp))
            }
            other => Err(errors::internal(format_args!(
                "unexpected auth result {other:?}"
            ))),
        }
    };
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let r = self.call(&req, Op::Enable(*req.get_ref())).await?;
        answer!(self, r, Enable)
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let r = self.call(&req, Op::Disable(*req.get_ref())).await?;
        answer!(self, r, Disable)
    }

    async fn auth_status(
        &self,
        req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let r = self.call(&req, Op::Status(*req.get_ref())).await?;
        answer!(self, r, Status)
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        self.reader.linearizable_read().await.map_err(status)?;
        let r = req.into_inner();
        loop {
            let checked = self
                .authn
                .check_password(&r.name, &r.password)
                .await
                .map_err(|e| e.status())?;
            let op = Op::Authenticate(InternalAuthenticate {
                name: r.name.clone(),
                simple_token: self.authn.token_prefix(),
            });
            let mut result = self.run(op, None).await?;
            // The password was checked against the store as it was then;
            // if the store changed meanwhile, check again.
            if checked == self.authn.store().revision() {
                if let (R::Authenticate(resp), Some(jwt)) =
                    (&mut result, self.authn.jwt_token(&r.name))
                {
                    resp.token = jwt.map_err(|e| e.status())?;
                }
                return answer!(self, result, Authenticate);
            }
        }
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let mut r = req.get_ref().clone();
        if !r.options.is_some_and(|o| o.no_password) {
            r.hashed_password = self.hash(&r.password).await?;
        }
        r.password.clear();
        let r = self.call(&req, Op::UserAdd(r)).await?;
        answer!(self, r, UserAdd)
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let r = self.call(&req, Op::UserGet(req.get_ref().clone())).await?;
        answer!(self, r, UserGet)
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let r = self.call(&req, Op::UserList(*req.get_ref())).await?;
        answer!(self, r, UserList)
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let r = self
            .call(&req, Op::UserDelete(req.get_ref().clone()))
            .await?;
        answer!(self, r, UserDelete)
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let mut r = req.get_ref().clone();
        if !r.password.is_empty() {
            r.hashed_password = self.hash(&r.password).await?;
            r.password.clear();
        }
        let r = self.call(&req, Op::UserChangePassword(r)).await?;
        answer!(self, r, UserChangePassword)
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let r = self
            .call(&req, Op::UserGrantRole(req.get_ref().clone()))
            .await?;
        answer!(self, r, UserGrantRole)
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let r = self
            .call(&req, Op::UserRevokeRole(req.get_ref().clone()))
            .await?;
        answer!(self, r, UserRevokeRole)
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let r = self.call(&req, Op::RoleAdd(req.get_ref().clone())).await?;
        answer!(self, r, RoleAdd)
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let r = self.call(&req, Op::RoleGet(req.get_ref().clone())).await?;
        answer!(self, r, RoleGet)
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let r = self.call(&req, Op::RoleList(*req.get_ref())).await?;
        answer!(self, r, RoleList)
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let r = self
            .call(&req, Op::RoleDelete(req.get_ref().clone()))
            .await?;
        answer!(self, r, RoleDelete)
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let r = self
            .call(&req, Op::RoleGrantPermission(req.get_ref().clone()))
            .await?;
        answer!(self, r, RoleGrantPermission)
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let r = self
            .call(&req, Op::RoleRevokePermission(req.get_ref().clone()))
            .await?;
        answer!(self, r, RoleRevokePermission)
    }
}

//! Auth at apply, as etcd's `authApplierV3`: requests to the auth store
//! (root only, but for Authenticate and reading one's own user or roles),
//! and the permission checks of writes, made against the auth state as of
//! this entry, with the revision the sender's credentials were checked at
//! (a request that raced an auth change fails instead of slipping through).

use super::ApplyError;
use crate::auth::{self, Access, AuthInfo, AuthState, Changed, SimpleTokens};
use ferrocd_proto::errors::{self, EtcdError};
use ferrocd_proto::etcdserverpb::{
    request_op, AuthDisableResponse, AuthEnableResponse, AuthRoleAddResponse,
    AuthRoleDeleteResponse, AuthRoleGetResponse, AuthRoleGrantPermissionResponse,
    AuthRoleListResponse, AuthRoleRevokePermissionResponse, AuthStatusResponse,
    AuthUserAddResponse, AuthUserChangePasswordResponse, AuthUserDeleteResponse,
    AuthUserGetResponse, AuthUserGrantRoleResponse, AuthUserListResponse,
    AuthUserRevokeRoleResponse, AuthenticateResponse, PutRequest, RequestOp, TxnRequest,
};
use ferrocd_proto::ferrocdpb::{
    auth_request::Op, auth_result::Result as R, internal_request::Request, AuthHeader, AuthRequest,
    AuthResult,
};

/// The keys attached to a lease.
pub type LeaseKeys<'a> = &'a dyn Fn(i64) -> Vec<Vec<u8>>;

/// The sender of an entry: None for the member's own duties (unchecked).
pub fn sender(header: Option<&AuthHeader>) -> Option<AuthInfo> {
    match header {
        Some(h) if h.member => None,
        Some(h) => Some(AuthInfo {
            username: h.username.clone(),
            revision: h.auth_revision,
        }),
        None => Some(AuthInfo::default()),
    }
}

/// etcd's checks of a write before it runs.
pub fn check_write(
    s: &AuthState,
    lease_keys: LeaseKeys<'_>,
    who: &AuthInfo,
    req: &Request,
) -> Result<(), EtcdError> {
    match req {
        Request::Put(p) => check_put(s, lease_keys, who, p),
        Request::DeleteRange(d) => {
            auth::check_in(s, who, Access::Write, &d.key, &d.range_end)?;
            if d.prev_kv {
                auth::check_in(s, who, Access::Read, &d.key, &d.range_end)?;
            }
            Ok(())
        }
        Request::Txn(t) => check_txn(s, lease_keys, who, t),
        Request::LeaseRevoke(r) => check_lease_keys(s, lease_keys, who, r.id),
        _ => Ok(()),
    }
}

fn check_put(
    s: &AuthState,
    lease_keys: LeaseKeys<'_>,
    who: &AuthInfo,
    p: &PutRequest,
) -> Result<(), EtcdError> {
    auth::check_in(s, who, Access::Write, &p.key, &[])?;
    check_lease_keys(s, lease_keys, who, p.lease)?;
    if p.prev_kv {
        auth::check_in(s, who, Access::Read, &p.key, &[])?;
    }
    Ok(())
}

/// Writing through a lease (revoking it, or attaching a key to it) needs
/// write permission on every key already attached, unless root.
fn check_lease_keys(
    s: &AuthState,
    lease_keys: LeaseKeys<'_>,
    who: &AuthInfo,
    lease: i64,
) -> Result<(), EtcdError> {
    if lease == 0 || auth::check_admin_in(s, Some(who)).is_ok() {
        return Ok(());
    }
    for key in lease_keys(lease) {
        auth::check_in(s, who, Access::Write, &key, &[])?;
    }
    Ok(())
}

/// Every compare and every op of both branches, nested transactions
/// included: a txn is refused if any part of it is, whichever branch runs.
pub fn check_txn(
    s: &AuthState,
    lease_keys: LeaseKeys<'_>,
    who: &AuthInfo,
    t: &TxnRequest,
) -> Result<(), EtcdError> {
    for c in &t.compare {
        auth::check_in(s, who, Access::Read, &c.key, &c.range_end)?;
    }
    check_ops(s, lease_keys, who, &t.success)?;
    check_ops(s, lease_keys, who, &t.failure)
}

fn check_ops(
    s: &AuthState,
    lease_keys: LeaseKeys<'_>,
    who: &AuthInfo,
    ops: &[RequestOp],
) -> Result<(), EtcdError> {
    use request_op::Request as Op;
    for op in ops {
        match &op.request {
            Some(Op::RequestRange(r)) => {
                auth::check_in(s, who, Access::Read, &r.key, &r.range_end)?
            }
            Some(Op::RequestPut(p)) => check_put(s, lease_keys, who, p)?,
            Some(Op::RequestDeleteRange(d)) => {
                if d.prev_kv {
                    auth::check_in(s, who, Access::Read, &d.key, &d.range_end)?;
                }
                auth::check_in(s, who, Access::Write, &d.key, &d.range_end)?;
            }
            Some(Op::RequestTxn(t)) => check_txn(s, lease_keys, who, t)?,
            None => {}
        }
    }
    Ok(())
}

/// The outcome of one auth request: the answer, and the new state if it changed.
pub struct AuthApplied {
    pub result: AuthResult,
    pub new_state: Option<AuthState>,
}

/// Applies one request to the auth store as of `current`; `index` is the
/// entry's log index (simple tokens name it).
pub fn apply(
    current: &AuthState,
    tokens: &SimpleTokens,
    who: Option<&AuthInfo>,
    req: &AuthRequest,
    index: u64,
) -> Result<AuthApplied, ApplyError> {
    let op = req
        .op
        .as_ref()
        .ok_or(ApplyError::Refused(errors::INVALID_AUTH_MGMT))?;
    let admin = || match who {
        Some(w) => auth::check_admin_in(current, Some(w)),
        None => Ok(()),
    };
    let mut s = current.clone();
    let unchanged = |result| AuthApplied {
        result: AuthResult {
            result: Some(result),
        },
        new_state: None,
    };
    // Reads and Authenticate change nothing.
    match op {
        Op::Authenticate(a) => {
            if !s.enabled() {
                return Err(ApplyError::Refused(errors::AUTH_NOT_ENABLED));
            }
            match s.user(&a.name) {
                Some(u) if !u.options.is_some_and(|o| o.no_password) => {}
                _ => return Err(ApplyError::Refused(errors::AUTH_FAILED)),
            }
            // No prefix: JWT, which the answering member signs.
            let token = if a.simple_token.is_empty() {
                String::new()
            } else {
                let t = SimpleTokens::token_for(&a.simple_token, index);
                tokens.assign(t.clone(), &a.name);
                t
            };
            return Ok(unchanged(R::Authenticate(AuthenticateResponse {
                header: None,
                token,
            })));
        }
        Op::UserGet(g) => {
            let mine = who.is_some_and(|w| w.username == g.name);
            if !mine {
                admin()?;
            }
            let u = s.user(&g.name).ok_or(errors::USER_NOT_FOUND)?;
            return Ok(unchanged(R::UserGet(AuthUserGetResponse {
                header: None,
                roles: u.roles.clone(),
            })));
        }
        Op::RoleGet(g) => {
            let mine = who.is_some_and(|w| s.has_role(&w.username, &g.role));
            if !mine {
                admin()?;
            }
            let r = s.role(&g.role).ok_or(errors::ROLE_NOT_FOUND)?;
            return Ok(unchanged(R::RoleGet(AuthRoleGetResponse {
                header: None,
                perm: r.key_permission.clone(),
            })));
        }
        _ => admin()?,
    }
    let (changed, result) = match op {
        Op::Status(_) => (
            Changed::No,
            R::Status(AuthStatusResponse {
                header: None,
                enabled: s.enabled(),
                auth_revision: s.revision(),
            }),
        ),
        Op::UserList(_) => (
            Changed::No,
            R::UserList(AuthUserListResponse {
                header: None,
                users: s.user_names(),
            }),
        ),
        Op::RoleList(_) => (
            Changed::No,
            R::RoleList(AuthRoleListResponse {
                header: None,
                roles: s.role_names(),
            }),
        ),
        Op::Enable(_) => (s.enable()?, R::Enable(AuthEnableResponse::default())),
        Op::Disable(_) => (s.disable()?, R::Disable(AuthDisableResponse::default())),
        Op::UserAdd(r) => (s.user_add(r)?, R::UserAdd(AuthUserAddResponse::default())),
        Op::UserDelete(r) => {
            let c = s.user_delete(&r.name)?;
            tokens.invalidate_user(&r.name);
            (c, R::UserDelete(AuthUserDeleteResponse::default()))
        }
        Op::UserChangePassword(r) => {
            let c = s.user_change_password(r)?;
            tokens.invalidate_user(&r.name);
            (
                c,
                R::UserChangePassword(AuthUserChangePasswordResponse::default()),
            )
        }
        Op::UserGrantRole(r) => (
            s.user_grant_role(&r.user, &r.role)?,
            R::UserGrantRole(AuthUserGrantRoleResponse::default()),
        ),
        Op::UserRevokeRole(r) => (
            s.user_revoke_role(&r.name, &r.role)?,
            R::UserRevokeRole(AuthUserRevokeRoleResponse::default()),
        ),
        Op::RoleAdd(r) => (
            s.role_add(&r.name)?,
            R::RoleAdd(AuthRoleAddResponse::default()),
        ),
        Op::RoleDelete(r) => (
            s.role_delete(&r.role)?,
            R::RoleDelete(AuthRoleDeleteResponse::default()),
        ),
        Op::RoleGrantPermission(r) => (
            s.role_grant_permission(r)?,
            R::RoleGrantPermission(AuthRoleGrantPermissionResponse::default()),
        ),
        Op::RoleRevokePermission(r) => (
            s.role_revoke_permission(r)?,
            R::RoleRevokePermission(AuthRoleRevokePermissionResponse::default()),
        ),
        Op::Authenticate(_) | Op::UserGet(_) | Op::RoleGet(_) => {
            return Err(ApplyError::Refused(errors::INVALID_AUTH_MGMT))
        }
    };
    Ok(AuthApplied {
        result: AuthResult {
            result: Some(result),
        },
        new_state: (changed == Changed::Yes).then_some(s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocd_proto::authpb::{permission::Type, Permission};
    use ferrocd_proto::etcdserverpb::{
        AuthRoleGrantPermissionRequest, AuthUserAddRequest, DeleteRangeRequest,
    };

    /// Auth on; `alice` may write `k`; the state's revision.
    fn state() -> AuthState {
        let mut s = AuthState::default();
        for name in ["root", "alice"] {
            s.user_add(&AuthUserAddRequest {
                name: name.into(),
                options: Some(ferrocd_proto::authpb::UserAddOptions { no_password: true }),
                ..Default::default()
            })
            .unwrap();
        }
        s.user_grant_role("root", "root").unwrap();
        s.role_add("w").unwrap();
        s.role_grant_permission(&AuthRoleGrantPermissionRequest {
            name: "w".into(),
            perm: Some(Permission {
                perm_type: Type::Write as i32,
                key: b"k".to_vec(),
                range_end: Vec::new(),
            }),
        })
        .unwrap();
        s.user_grant_role("alice", "w").unwrap();
        s.enable().unwrap();
        s
    }

    fn put(key: &str, lease: i64) -> Request {
        Request::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            lease,
            ..Default::default()
        })
    }

    #[test]
    fn a_write_checked_at_an_older_auth_revision_is_refused() {
        let s = state();
        let none = |_| Vec::new();
        let alice = |revision| AuthInfo {
            username: "alice".into(),
            revision,
        };
        let now = s.revision();
        assert_eq!(check_write(&s, &none, &alice(now), &put("k", 0)), Ok(()));
        assert_eq!(
            check_write(&s, &none, &alice(now - 1), &put("k", 0)),
            Err(errors::AUTH_OLD_REVISION)
        );
        assert_eq!(
            check_write(&s, &none, &AuthInfo::default(), &put("k", 0)),
            Err(errors::USER_EMPTY)
        );
        assert_eq!(
            check_write(&s, &none, &alice(now), &put("j", 0)),
            Err(errors::PERMISSION_DENIED)
        );
        // A lease with a key alice may not write.
        let attached = |_| vec![b"other".to_vec()];
        assert_eq!(
            check_write(&s, &attached, &alice(now), &put("k", 7)),
            Err(errors::PERMISSION_DENIED)
        );
        let delete = Request::DeleteRange(DeleteRangeRequest {
            key: b"k".to_vec(),
            prev_kv: true,
            ..Default::default()
        });
        assert_eq!(
            check_write(&s, &none, &alice(now), &delete),
            Err(errors::PERMISSION_DENIED),
            "prev_kv needs read"
        );
    }

    #[test]
    fn the_members_own_entries_are_not_checked() {
        let header = AuthHeader {
            member: true,
            ..Default::default()
        };
        assert_eq!(sender(Some(&header)), None);
        assert_eq!(sender(None), Some(AuthInfo::default()));
    }
}

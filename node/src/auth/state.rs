//! The auth store's content and etcd's rules for changing it: users (with
//! bcrypt hashes), roles and their key permissions, whether auth is on, and
//! the auth revision every change raises. Deterministic: every member
//! applies the same requests to the same state.

use super::perms::{is_valid_range, UserPerms};
use base64::Engine;
use ferrocd_proto::authpb::{Permission, Role, User, UserAddOptions};
use ferrocd_proto::errors::{self, EtcdError};
use ferrocd_proto::etcdserverpb::{
    AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest,
};
use ferrocd_proto::ferrocdpb::AuthRecord;
use prost::Message;
use std::collections::{BTreeMap, HashMap};

pub const ROOT_USER: &str = "root";
pub const ROOT_ROLE: &str = "root";

/// A change was refused, or it left the state as it was.
pub type Change = Result<Changed, EtcdError>;

/// Whether a change that was allowed altered the state (then it is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Yes,
    No,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuthState {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Derived from users and roles.
    perms: HashMap<String, UserPerms>,
}

impl Default for AuthState {
    /// A new store: auth off at revision 1, as etcd starts.
    fn default() -> Self {
        AuthState {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            perms: HashMap::new(),
        }
    }
}

impl AuthState {
    pub fn decode(bytes: &[u8]) -> Result<AuthState, prost::DecodeError> {
        let r = AuthRecord::decode(bytes)?;
        let mut s = AuthState {
            enabled: r.enabled,
            revision: r.revision,
            users: r
                .users
                .into_iter()
                .map(|u| (String::from_utf8_lossy(&u.name).into_owned(), u))
                .collect(),
            roles: r
                .roles
                .into_iter()
                .map(|r| (String::from_utf8_lossy(&r.name).into_owned(), r))
                .collect(),
            perms: HashMap::new(),
        };
        s.refresh_perms();
        Ok(s)
    }

    pub fn encode(&self) -> Vec<u8> {
        AuthRecord {
            enabled: self.enabled,
            revision: self.revision,
            users: self.users.values().cloned().collect(),
            roles: self.roles.values().cloned().collect(),
        }
        .encode_to_vec()
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn user_names(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    pub fn perms(&self, user: &str) -> Option<&UserPerms> {
        self.perms.get(user)
    }

    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// Every change raises the revision and recomputes the permissions.
    fn changed(&mut self) -> Change {
        self.revision += 1;
        self.refresh_perms();
        Ok(Changed::Yes)
    }

    fn refresh_perms(&mut self) {
        let roles = &self.roles;
        self.perms = self
            .users
            .iter()
            .map(|(name, u)| {
                let perms = u
                    .roles
                    .iter()
                    .filter_map(|r| roles.get(r))
                    .flat_map(|r| r.key_permission.iter());
                (name.clone(), UserPerms::merge(perms))
            })
            .collect();
    }

    /// Auth on: needs a root user holding the root role. Does not raise the
    /// revision (as etcd).
    pub fn enable(&mut self) -> Change {
        if self.enabled {
            return Ok(Changed::No);
        }
        let root = self
            .users
            .get(ROOT_USER)
            .ok_or(errors::ROOT_USER_NOT_EXIST)?;
        if !root.roles.iter().any(|r| r == ROOT_ROLE) {
            return Err(errors::ROOT_ROLE_NOT_EXIST);
        }
        self.enabled = true;
        Ok(Changed::Yes)
    }

    pub fn disable(&mut self) -> Change {
        if !self.enabled {
            return Ok(Changed::No);
        }
        self.enabled = false;
        self.changed()
    }

    /// The stored password: the hash the request carries (base64), none
    /// for a user without password.
    fn password_of(hashed: &str, no_password: bool) -> Result<Vec<u8>, EtcdError> {
        if no_password {
            return Ok(Vec::new());
        }
        base64::engine::general_purpose::STANDARD
            .decode(hashed)
            .map_err(|_| errors::AUTH_FAILED)
    }

    pub fn user_add(&mut self, r: &AuthUserAddRequest) -> Change {
        if r.name.is_empty() {
            return Err(errors::USER_EMPTY);
        }
        if self.users.contains_key(&r.name) {
            return Err(errors::USER_ALREADY_EXIST);
        }
        let options = r.options.unwrap_or(UserAddOptions { no_password: false });
        let password = Self::password_of(&r.hashed_password, options.no_password)?;
        self.users.insert(
            r.name.clone(),
            User {
                name: r.name.as_bytes().to_vec(),
                password,
                roles: Vec::new(),
                options: Some(options),
            },
        );
        self.changed()
    }

    pub fn user_delete(&mut self, name: &str) -> Change {
        if self.enabled && name == ROOT_USER {
            return Err(errors::INVALID_AUTH_MGMT);
        }
        self.users.remove(name).ok_or(errors::USER_NOT_FOUND)?;
        self.changed()
    }

    pub fn user_change_password(&mut self, r: &AuthUserChangePasswordRequest) -> Change {
        let user = self.users.get_mut(&r.name).ok_or(errors::USER_NOT_FOUND)?;
        let no_password = user.options.is_some_and(|o| o.no_password);
        user.password = Self::password_of(&r.hashed_password, no_password)?;
        self.changed()
    }

    pub fn user_grant_role(&mut self, user: &str, role: &str) -> Change {
        if !self.users.contains_key(user) {
            return Err(errors::USER_NOT_FOUND);
        }
        // The root role may be granted before it exists (etcdctl's `auth enable` relies on it).
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(errors::ROLE_NOT_FOUND);
        }
        let Some(u) = self.users.get_mut(user) else {
            return Err(errors::USER_NOT_FOUND);
        };
        match u.roles.binary_search_by(|r| r.as_str().cmp(role)) {
            Ok(_) => Ok(Changed::No),
            Err(at) => {
                u.roles.insert(at, role.to_string());
                self.changed()
            }
        }
    }

    pub fn user_revoke_role(&mut self, user: &str, role: &str) -> Change {
        if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
            return Err(errors::INVALID_AUTH_MGMT);
        }
        let u = self.users.get_mut(user).ok_or(errors::USER_NOT_FOUND)?;
        let before = u.roles.len();
        u.roles.retain(|r| r != role);
        if u.roles.len() == before {
            return Err(errors::ROLE_NOT_GRANTED);
        }
        self.changed()
    }

    pub fn role_add(&mut self, name: &str) -> Change {
        if name.is_empty() {
            return Err(errors::ROLE_EMPTY);
        }
        if self.roles.contains_key(name) {
            return Err(errors::ROLE_ALREADY_EXIST);
        }
        self.roles.insert(
            name.to_string(),
            Role {
                name: name.as_bytes().to_vec(),
                key_permission: Vec::new(),
            },
        );
        self.changed()
    }

    pub fn role_delete(&mut self, name: &str) -> Change {
        if self.enabled && name == ROOT_ROLE {
            return Err(errors::INVALID_AUTH_MGMT);
        }
        self.roles.remove(name).ok_or(errors::ROLE_NOT_FOUND)?;
        for u in self.users.values_mut() {
            u.roles.retain(|r| r != name);
        }
        self.changed()
    }

    pub fn role_grant_permission(&mut self, r: &AuthRoleGrantPermissionRequest) -> Change {
        let perm = r.perm.as_ref().ok_or(errors::PERMISSION_NOT_GIVEN)?;
        if !is_valid_range(&perm.key, &perm.range_end) {
            return Err(errors::INVALID_AUTH_MGMT);
        }
        let role = self.roles.get_mut(&r.name).ok_or(errors::ROLE_NOT_FOUND)?;
        let perms = &mut role.key_permission;
        match perms
            .iter_mut()
            .find(|p| p.key == perm.key && p.range_end == perm.range_end)
        {
            Some(p) => p.perm_type = perm.perm_type,
            None => {
                // Sorted by key; a new one goes after those with the same key.
                let at = perms.partition_point(|p| p.key <= perm.key);
                perms.insert(
                    at,
                    Permission {
                        perm_type: perm.perm_type,
                        key: perm.key.clone(),
                        range_end: perm.range_end.clone(),
                    },
                );
            }
        }
        self.changed()
    }

    pub fn role_revoke_permission(&mut self, r: &AuthRoleRevokePermissionRequest) -> Change {
        let role = self.roles.get_mut(&r.role).ok_or(errors::ROLE_NOT_FOUND)?;
        let before = role.key_permission.len();
        role.key_permission
            .retain(|p| p.key != r.key || p.range_end != r.range_end);
        if role.key_permission.len() == before {
            return Err(errors::PERMISSION_NOT_GRANTED);
        }
        self.changed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocd_proto::authpb::permission::Type;

    fn with_root() -> AuthState {
        let mut s = AuthState::default();
        s.user_add(&AuthUserAddRequest {
            name: "root".into(),
            options: Some(UserAddOptions { no_password: true }),
            ..Default::default()
        })
        .unwrap();
        s
    }

    #[test]
    fn enable_needs_root_with_the_root_role() {
        let mut s = AuthState::default();
        assert_eq!(s.enable(), Err(errors::ROOT_USER_NOT_EXIST));
        let mut s = with_root();
        assert_eq!(s.enable(), Err(errors::ROOT_ROLE_NOT_EXIST));
        s.user_grant_role("root", "root").unwrap();
        let rev = s.revision();
        assert_eq!(s.enable(), Ok(Changed::Yes));
        assert_eq!(s.revision(), rev, "enabling keeps the revision");
        assert_eq!(s.user_delete("root"), Err(errors::INVALID_AUTH_MGMT));
        assert_eq!(
            s.user_revoke_role("root", "root"),
            Err(errors::INVALID_AUTH_MGMT)
        );
        assert_eq!(s.disable(), Ok(Changed::Yes));
        assert_eq!(s.revision(), rev + 1);
    }

    #[test]
    fn refusals_change_nothing() {
        let mut s = with_root();
        let before = s.clone();
        assert_eq!(
            s.user_grant_role("root", "nope"),
            Err(errors::ROLE_NOT_FOUND)
        );
        assert_eq!(
            s.user_revoke_role("root", "x"),
            Err(errors::ROLE_NOT_GRANTED)
        );
        assert_eq!(s.role_add(""), Err(errors::ROLE_EMPTY));
        assert_eq!(s.role_delete("x"), Err(errors::ROLE_NOT_FOUND));
        assert_eq!(
            s.role_grant_permission(&AuthRoleGrantPermissionRequest {
                name: "x".into(),
                perm: None
            }),
            Err(errors::PERMISSION_NOT_GIVEN)
        );
        assert_eq!(s, before);
    }

    #[test]
    fn permissions_follow_roles_and_survive_encoding() {
        let mut s = with_root();
        s.role_add("r").unwrap();
        s.role_grant_permission(&AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: Some(Permission {
                perm_type: Type::Read as i32,
                key: b"a".to_vec(),
                range_end: b"c".to_vec(),
            }),
        })
        .unwrap();
        s.user_grant_role("root", "r").unwrap();
        let p = s.perms("root").unwrap();
        assert!(p.permits(super::super::perms::Access::Read, b"b", b""));
        let back = AuthState::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        s.role_delete("r").unwrap();
        assert!(!s.has_role("root", "r"));
    }
}

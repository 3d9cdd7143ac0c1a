//! Authentication and RBAC as etcd 3.5 has them: the auth store's state
//! (changed only by applying log entries), the permission checks requests
//! pass, simple tokens, and bcrypt password hashes. While auth is off every
//! check passes at the cost of one atomic load.

pub mod jwt;
pub mod perms;
pub mod state;
pub mod tokens;

pub use jwt::JwtTokens;
pub use perms::Access;
pub use state::{AuthState, Changed, ROOT_ROLE, ROOT_USER};
pub use tokens::SimpleTokens;

use base64::Engine;
use ferrocd_proto::errors::{self, EtcdError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// etcd's `--bcrypt-cost` default.
pub const DEFAULT_BCRYPT_COST: u32 = 10;

/// Who sends a request, and the auth revision their credentials were
/// checked at (etcd's `AuthInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

/// The auth store of one member: the applied state, shared with every
/// request that checks permissions.
#[derive(Debug)]
pub struct AuthStore {
    state: RwLock<Arc<AuthState>>,
    /// Copies of the state's flag and revision, read without the lock.
    enabled: AtomicBool,
    revision: AtomicU64,
    tokens: SimpleTokens,
}

impl AuthStore {
    pub fn new(token_ttl: Duration) -> AuthStore {
        AuthStore {
            state: RwLock::new(Arc::new(AuthState::default())),
            enabled: AtomicBool::new(false),
            revision: AtomicU64::new(AuthState::default().revision()),
            tokens: SimpleTokens::new(token_ttl),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    pub fn state(&self) -> Arc<AuthState> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Publishes a new applied state (after a change, a restart or a
    /// snapshot); tokens of a disabled store are dropped.
    pub fn publish(&self, s: AuthState) {
        let (enabled, revision) = (s.enabled(), s.revision());
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
        self.revision.store(revision, Ordering::Release);
        self.enabled.store(enabled, Ordering::Release);
        if !enabled {
            self.tokens.clear();
        }
    }

    pub fn tokens(&self) -> &SimpleTokens {
        &self.tokens
    }

    /// etcd's `isOpPermitted`: may `who` access the key or range?
    pub fn check(
        &self,
        who: &AuthInfo,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        if !self.enabled() {
            return Ok(());
        }
        check_in(&self.state(), who, access, key, range_end)
    }

    /// etcd's `IsAdminPermitted`: is `who` a user with the root role?
    pub fn check_admin(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        if !self.enabled() {
            return Ok(());
        }
        check_admin_in(&self.state(), who)
    }

    /// etcd's `CheckPassword`: the revision at which `password` was found
    /// right for `name`. Runs bcrypt: call it off the async threads.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, EtcdError> {
        let s = self.state();
        if !s.enabled() {
            return Err(errors::AUTH_NOT_ENABLED);
        }
        let user = s.user(name).ok_or(errors::AUTH_FAILED)?;
        if user.options.is_some_and(|o| o.no_password) {
            return Err(errors::NO_PASSWORD_USER);
        }
        let hash = String::from_utf8_lossy(&user.password);
        match bcrypt::verify(password, &hash) {
            Ok(true) => Ok(s.revision()),
            _ => Err(errors::AUTH_FAILED),
        }
    }
}

/// The permission check against one state.
pub fn check_in(
    s: &AuthState,
    who: &AuthInfo,
    access: Access,
    key: &[u8],
    range_end: &[u8],
) -> Result<(), EtcdError> {
    if !s.enabled() {
        return Ok(());
    }
    if who.revision == 0 {
        return Err(errors::USER_EMPTY);
    }
    if who.revision < s.revision() {
        return Err(errors::AUTH_OLD_REVISION);
    }
    if s.has_role(&who.username, ROOT_ROLE) {
        return Ok(());
    }
    match s.perms(&who.username) {
        Some(p) if p.permits(access, key, range_end) => Ok(()),
        _ => Err(errors::PERMISSION_DENIED),
    }
}

/// The root check against one state.
pub fn check_admin_in(s: &AuthState, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
    if !s.enabled() {
        return Ok(());
    }
    let who = who
        .filter(|w| !w.username.is_empty())
        .ok_or(errors::USER_EMPTY)?;
    if s.user(&who.username).is_none() {
        return Err(errors::USER_NOT_FOUND);
    }
    if !s.has_role(&who.username, ROOT_ROLE) {
        return Err(errors::PERMISSION_DENIED);
    }
    Ok(())
}

/// The bcrypt hash of `password` as UserAdd's `hashedPassword` carries it
/// (base64 of the `$2a$` string). Runs bcrypt: call it off the async threads.
pub fn hash_password(password: &str, cost: u32) -> Result<String, String> {
    let hash = bcrypt::hash_with_result(password, cost).map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::STANDARD
        .encode(hash.format_for_version(bcrypt::Version::TwoA)))
}

//! Who sends a request: the user a token stands for, or a client
//! certificate's Common Name, checked against this member's auth store.
//! Passwords are checked and hashed here, off the async threads, so that
//! only hashes enter the log.

use crate::auth::{self, AuthInfo, AuthStore, JwtTokens, SimpleTokens};
use crate::raft::AppliedIndex;
use ferrocd_proto::errors::{self, EtcdError};
use std::sync::Arc;
use std::time::Duration;

pub struct Authenticator {
    store: Arc<AuthStore>,
    applied_index: Arc<AppliedIndex>,
    /// How long a token made at a log index this member has not applied
    /// yet may wait for it (a client authenticated through another member).
    wait: Duration,
    bcrypt_cost: u32,
    /// `--client-cert-auth`: a verified certificate's Common Name is a user.
    cert_auth: bool,
    /// `--auth-token jwt,...`; simple tokens otherwise.
    jwt: Option<JwtTokens>,
}

impl Authenticator {
    pub(super) fn new(
        store: Arc<AuthStore>,
        applied_index: Arc<AppliedIndex>,
        wait: Duration,
        bcrypt_cost: u32,
        cert_auth: bool,
        jwt: Option<JwtTokens>,
    ) -> Authenticator {
        Authenticator {
            store,
            applied_index,
            wait,
            bcrypt_cost,
            cert_auth,
            jwt,
        }
    }

    /// The prefix an Authenticate entry carries: a fresh one for simple
    /// tokens, none for JWT (the answering member signs, see `jwt_token`).
    pub fn token_prefix(&self) -> String {
        match self.jwt {
            Some(_) => String::new(),
            None => SimpleTokens::new_prefix(),
        }
    }

    /// With JWT, the token for a user who just authenticated (signed at the
    /// current auth revision); None with simple tokens.
    pub fn jwt_token(&self, name: &str) -> Option<Result<String, EtcdError>> {
        self.jwt
            .as_ref()
            .map(|j| j.sign(name, self.store.revision()))
    }

    /// etcd's CN auth: with `--client-cert-auth`, the Common Name of the
    /// client's verified certificate is the user (when no token is sent).
    pub fn from_common_name(&self, cn: &str) -> Option<AuthInfo> {
        (self.cert_auth && !cn.is_empty()).then(|| AuthInfo {
            username: cn.to_string(),
            revision: self.store.revision(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.store.enabled()
    }

    pub fn store(&self) -> &AuthStore {
        &self.store
    }

    /// The sender a token names: a simple token as of this member's auth
    /// revision, a JWT as of the revision it was signed at.
    pub async fn from_token(&self, token: &str) -> Result<AuthInfo, EtcdError> {
        if let Some(jwt) = &self.jwt {
            let (username, revision) = jwt.verify(token).ok_or(errors::INVALID_AUTH_TOKEN)?;
            return Ok(AuthInfo { username, revision });
        }
        let index = SimpleTokens::index_of(token).ok_or(errors::INVALID_AUTH_TOKEN)?;
        if !self.applied_index.reached(index, self.wait).await {
            return Err(errors::INVALID_AUTH_TOKEN);
        }
        let username = self
            .store
            .tokens()
            .user_of(token)
            .ok_or(errors::INVALID_AUTH_TOKEN)?;
        Ok(AuthInfo {
            username,
            revision: self.store.revision(),
        })
    }

    /// etcd's `CheckPassword`, on a blocking thread (bcrypt is slow on
    /// purpose): the auth revision the password was right at.
    pub async fn check_password(&self, name: &str, password: &str) -> Result<u64, EtcdError> {
        let store = self.store.clone();
        let (name, password) = (name.to_string(), password.to_string());
        tokio::task::spawn_blocking(move || store.check_password(&name, &password))
            .await
            .unwrap_or(Err(errors::AUTH_FAILED))
    }

    /// The hash UserAdd and UserChangePassword put in the log instead of
    /// the password.
    pub async fn hash_password(&self, password: &str) -> Result<String, String> {
        let cost = self.bcrypt_cost;
        let password = password.to_string();
        tokio::task::spawn_blocking(move || auth::hash_password(&password, cost))
            .await
            .map_err(|e| e.to_string())?
    }
}

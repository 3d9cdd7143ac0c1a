//! The sender of a request, as etcd finds it: the `token` metadata (or
//! `authorization: Bearer ...`), and the checks reads pass before and after
//! they run. While auth is off there is no sender and nothing to check.

use crate::apply::auth::check_txn;
use crate::auth::{Access, AuthInfo};
use crate::member::Authenticator;
use crate::tls::ConnInfo;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::TxnRequest;
use tonic::{Request, Status};

/// What a request carries to say who sends it: a token in its metadata, a
/// verified client certificate on its connection. Streams keep it to check
/// every message.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    token: Option<String>,
    common_name: Option<String>,
}

impl Credentials {
    pub fn of<T>(req: &Request<T>) -> Credentials {
        let md = req.metadata();
        let token = md
            .get("token")
            .or_else(|| md.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).to_string());
        Credentials {
            token,
            common_name: ConnInfo::of(req).and_then(|c| c.common_name.clone()),
        }
    }

    /// The sender; None while auth is off or when the request carries no
    /// credentials (auth then refuses what needs a user). A token wins over
    /// a certificate, as in etcd.
    pub async fn sender(&self, authn: &Authenticator) -> Result<Option<AuthInfo>, Status> {
        if !authn.enabled() {
            return Ok(None);
        }
        if let Some(t) = &self.token {
            return authn.from_token(t).await.map(Some).map_err(|e| e.status());
        }
        Ok(self
            .common_name
            .as_deref()
            .and_then(|cn| authn.from_common_name(cn)))
    }
}

/// The sender of `req` (see [`Credentials::sender`]).
pub async fn caller<T>(
    req: &Request<T>,
    authn: &Authenticator,
) -> Result<Option<AuthInfo>, Status> {
    if !authn.enabled() {
        return Ok(None);
    }
    Credentials::of(req).sender(authn).await
}

/// A read check before a local read (an absent sender is an empty user).
pub fn check(
    authn: &Authenticator,
    who: Option<&AuthInfo>,
    access: Access,
    key: &[u8],
    range_end: &[u8],
) -> Result<(), Status> {
    if !authn.enabled() {
        return Ok(());
    }
    let empty = AuthInfo::default();
    authn
        .store()
        .check(who.unwrap_or(&empty), access, key, range_end)
        .map_err(|e| e.status())
}

/// etcd's check after a local read: the auth store must not have changed
/// since the sender's credentials were checked.
pub fn still_current(authn: &Authenticator, who: Option<&AuthInfo>) -> Result<(), Status> {
    match who {
        Some(w) if w.revision != 0 && w.revision != authn.store().revision() => {
            Err(errors::AUTH_OLD_REVISION.status())
        }
        _ => Ok(()),
    }
}

/// etcd's check after a lease read or renewal: the auth store is still at
/// `revision`, the one the checks before it ran against.
pub fn unchanged_since(authn: &Authenticator, revision: u64) -> Result<(), Status> {
    if authn.enabled() && revision != authn.store().revision() {
        return Err(errors::AUTH_OLD_REVISION.status());
    }
    Ok(())
}

/// etcd's check of a read-only txn served locally: every compare and op.
pub fn txn(authn: &Authenticator, who: Option<&AuthInfo>, t: &TxnRequest) -> Result<(), Status> {
    if !authn.enabled() {
        return Ok(());
    }
    let empty = AuthInfo::default();
    let state = authn.store().state();
    // Read-only: no puts, so no lease keys to look at.
    check_txn(&state, &|_| Vec::new(), who.unwrap_or(&empty), t).map_err(|e| e.status())
}

/// etcd's root check for the RPCs it reserves for root.
pub fn admin(authn: &Authenticator, who: Option<&AuthInfo>) -> Result<(), Status> {
    authn.store().check_admin(who).map_err(|e| e.status())
}

/// etcd's `requireAuthInfo`: with auth on, some sender must be known.
pub fn required(authn: &Authenticator, who: Option<&AuthInfo>) -> Result<(), Status> {
    if authn.enabled() && who.is_none() {
        return Err(errors::USER_EMPTY.status());
    }
    Ok(())
}

/// etcd's lease checks: with auth on, a known sender who is root or may
/// access every key attached to the lease.
pub fn lease_keys(
    authn: &Authenticator,
    who: Option<&AuthInfo>,
    access: Access,
    keys: &[Vec<u8>],
) -> Result<(), Status> {
    if !authn.enabled() {
        return Ok(());
    }
    required(authn, who)?;
    if admin(authn, who).is_ok() {
        return Ok(());
    }
    for key in keys {
        check(authn, who, access, key, &[])?;
    }
    Ok(())
}

/// The sender, who must be root (Maintenance and Cluster changes).
pub async fn root<T>(req: &Request<T>, authn: &Authenticator) -> Result<(), Status> {
    if !authn.enabled() {
        return Ok(());
    }
    let who = caller(req, authn).await?;
    admin(authn, who.as_ref())
}

/// As `root`, with the untranslated errors etcd's Defragment, Snapshot,
/// Hash and HashKV answer.
pub async fn root_untranslated<T>(req: &Request<T>, authn: &Authenticator) -> Result<(), Status> {
    if !authn.enabled() {
        return Ok(());
    }
    let who = match caller(req, authn).await {
        Ok(w) => w,
        Err(s) if errors::INVALID_AUTH_TOKEN.is(&s) => {
            return Err(errors::auth_untranslated(errors::INVALID_AUTH_TOKEN))
        }
        Err(s) => return Err(s),
    };
    authn
        .store()
        .check_admin(who.as_ref())
        .map_err(errors::auth_untranslated)
}

/// The sender, who must be known (Status, reading alarms).
pub async fn known<T>(req: &Request<T>, authn: &Authenticator) -> Result<(), Status> {
    if !authn.enabled() {
        return Ok(());
    }
    let who = caller(req, authn).await?;
    required(authn, who.as_ref())
}

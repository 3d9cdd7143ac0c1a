//! Talking to a cluster that has etcd auth on: Authenticate once, then
//! etcd's `token` metadata on every request. With auth off, Authenticate
//! answers "authentication is not enabled" and requests go without a
//! token. The operator's member client and the backup agent share it.

use ferrocd_proto::errors::AUTH_NOT_ENABLED;
use ferrocd_proto::etcdserverpb::{auth_client::AuthClient, AuthenticateRequest};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;

/// The user etcd's admin requests (membership, snapshots, auth) need.
pub const ROOT: &str = "root";

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.user)
    }
}

/// Puts the token (if any) on each request.
#[derive(Clone, Debug, Default)]
pub struct Token(Option<MetadataValue<Ascii>>);

impl Interceptor for Token {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            r.metadata_mut().insert("token", t.clone());
        }
        Ok(r)
    }
}

/// A channel whose requests carry the token.
pub type AuthedChannel = InterceptedService<Channel, Token>;

/// Authenticates on `ch` as `who`; no token without credentials or when
/// the cluster has auth off.
pub async fn token(ch: &Channel, who: Option<&Credentials>) -> Result<Token, tonic::Status> {
    let Some(who) = who else {
        return Ok(Token::default());
    };
    let asked = AuthClient::new(ch.clone())
        .authenticate(AuthenticateRequest {
            name: who.user.clone(),
            password: who.password.clone(),
        })
        .await;
    match asked {
        Ok(r) => {
            let value = r
                .into_inner()
                .token
                .parse()
                .map_err(|_| tonic::Status::internal("the token is not valid metadata"))?;
            Ok(Token(Some(value)))
        }
        Err(s) if s.message() == AUTH_NOT_ENABLED.message() => Ok(Token::default()),
        Err(s) => Err(s),
    }
}

pub fn authed(ch: Channel, token: Token) -> AuthedChannel {
    InterceptedService::new(ch, token)
}

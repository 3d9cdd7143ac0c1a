//! A raw etcd v3 gRPC client built from the project's own protos, so tests
//! see every field exactly as the server sent it.

use ferrocd_proto::etcdserverpb::{
    auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use std::time::Duration;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// An endpoint for `url` (`host:port` means plain HTTP): Nagle off, a 2 s
/// connect timeout. Callers add TLS or a request timeout.
pub fn endpoint(url: &str) -> Result<Endpoint, String> {
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    Ok(Endpoint::from_shared(url.clone())
        .map_err(|e| format!("{url}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2)))
}

/// A connected channel to `url`, with TLS when `tls` is given.
pub async fn dial(url: &str, tls: Option<ClientTlsConfig>) -> Result<Channel, String> {
    let mut ep = endpoint(url)?;
    if let Some(tls) = tls {
        ep = ep.tls_config(tls).map_err(|e| format!("{url}: {e}"))?;
    }
    ep.connect().await.map_err(|e| format!("{url}: {e}"))
}

#[derive(Clone)]
pub struct Client {
    pub kv: KvClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub cluster: ClusterClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
    pub auth: AuthClient<Channel>,
    pub channel: Channel,
}

impl Client {
    pub async fn connect(endpoint: &str) -> Client {
        let ch = dial(endpoint, None)
            .await
            .unwrap_or_else(|e| panic!("connect {e}"));
        let limit = 64 * 1024 * 1024;
        Client {
            kv: KvClient::new(ch.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            watch: WatchClient::new(ch.clone()).max_decoding_message_size(limit),
            lease: LeaseClient::new(ch.clone()),
            cluster: ClusterClient::new(ch.clone()),
            maintenance: MaintenanceClient::new(ch.clone()).max_decoding_message_size(limit),
            auth: AuthClient::new(ch.clone()),
            channel: ch,
        }
    }
}

/// Turns auth on as etcdctl's `auth enable` does after `user add root`:
/// the root role, user `root` (with `password`, or none: certificate users),
/// the role granted, auth enabled.
pub async fn enable_auth(channel: Channel, password: Option<&str>) -> Result<(), String> {
    use ferrocd_proto::authpb::UserAddOptions;
    use ferrocd_proto::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthUserAddRequest, AuthUserGrantRoleRequest,
    };
    let mut auth = AuthClient::new(channel);
    let e = |s: tonic::Status| format!("turning auth on: {}", s.message());
    auth.role_add(AuthRoleAddRequest {
        name: "root".into(),
    })
    .await
    .map_err(e)?;
    auth.user_add(AuthUserAddRequest {
        name: "root".into(),
        password: password.unwrap_or_default().into(),
        options: Some(UserAddOptions {
            no_password: password.is_none(),
        }),
        ..Default::default()
    })
    .await
    .map_err(e)?;
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .map_err(e)?;
    auth.auth_enable(AuthEnableRequest {}).await.map_err(e)?;
    Ok(())
}

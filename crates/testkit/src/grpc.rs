//! A raw etcd v3 gRPC client built from the project's own protos, so tests
//! see every field exactly as the server sent it.

use ferrocd_proto::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use tonic::transport::{Channel, Endpoint};

#[derive(Clone)]
pub struct Client {
    pub kv: KvClient<Channel>,
    pub watch: WatchClient<Channel>,
    pub lease: LeaseClient<Channel>,
    pub cluster: ClusterClient<Channel>,
    pub maintenance: MaintenanceClient<Channel>,
}

impl Client {
    pub async fn connect(endpoint: &str) -> Client {
        let ch = Endpoint::from_shared(format!("http://{endpoint}"))
            .expect("endpoint")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect {endpoint}: {e}"));
        let limit = 64 * 1024 * 1024;
        Client {
            kv: KvClient::new(ch.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            watch: WatchClient::new(ch.clone()).max_decoding_message_size(limit),
            lease: LeaseClient::new(ch.clone()),
            cluster: ClusterClient::new(ch.clone()),
            maintenance: MaintenanceClient::new(ch).max_decoding_message_size(limit),
        }
    }
}

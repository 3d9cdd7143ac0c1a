//! etcd's gRPC services called in-process, as etcd's JSON gateway and its
//! lock and election services call the member's own server: every request
//! passes the same checks, limits and auth as one from a gRPC client.

use axum::Router;
use ferrocd_proto::etcdserverpb::watch_client::WatchClient;
use ferrocd_proto::etcdserverpb::{kv_client::KvClient, lease_client::LeaseClient};
use http::uri::PathAndQuery;
use tonic::client::Grpc;
use tonic::{Request, Status, Streaming};
use tonic_prost::ProstCodec;

/// The member's gRPC router, seen as a client sees a server.
#[derive(Clone)]
pub struct Upstream {
    router: Router,
}

impl Upstream {
    pub fn new(router: Router) -> Upstream {
        Upstream { router }
    }

    /// A client ready for one call.
    async fn grpc(&self) -> Result<Grpc<Router>, Status> {
        let mut grpc = Grpc::new(self.router.clone())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(grpc)
    }

    pub fn kv(&self) -> KvClient<Router> {
        KvClient::new(self.router.clone()).max_decoding_message_size(usize::MAX)
    }

    pub fn lease(&self) -> LeaseClient<Router> {
        LeaseClient::new(self.router.clone())
    }

    pub fn watch(&self) -> WatchClient<Router> {
        WatchClient::new(self.router.clone()).max_decoding_message_size(usize::MAX)
    }

    /// One unary call by its gRPC path (`/etcdserverpb.KV/Range`).
    pub async fn unary<Req, Resp>(
        &self,
        path: &'static str,
        req: Request<Req>,
    ) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let codec = ProstCodec::<Req, Resp>::default();
        let path = PathAndQuery::from_static(path);
        let resp = self.grpc().await?.unary(req, path, codec).await?;
        Ok(resp.into_inner())
    }

    /// A call whose answer is a stream (Snapshot, Observe).
    pub async fn server_streaming<Req, Resp>(
        &self,
        path: &'static str,
        req: Request<Req>,
    ) -> Result<Streaming<Resp>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let codec = ProstCodec::<Req, Resp>::default();
        let path = PathAndQuery::from_static(path);
        let resp = self
            .grpc()
            .await?
            .server_streaming(req, path, codec)
            .await?;
        Ok(resp.into_inner())
    }

    /// A stream both ways (Watch, LeaseKeepAlive).
    pub async fn streaming<S, Req, Resp>(
        &self,
        path: &'static str,
        req: Request<S>,
    ) -> Result<Streaming<Resp>, Status>
    where
        S: futures::Stream<Item = Req> + Send + 'static,
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let codec = ProstCodec::<Req, Resp>::default();
        let path = PathAndQuery::from_static(path);
        let resp = self.grpc().await?.streaming(req, path, codec).await?;
        Ok(resp.into_inner())
    }
}

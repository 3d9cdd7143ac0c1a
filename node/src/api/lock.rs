//! etcd's Lock service (v3lockpb): `Lock` queues a key `<name>/<lease>` on
//! the caller's lease (a new 60 s lease when it names none) and answers
//! once every key created before it is gone; `Unlock` deletes the key.

use super::concurrency::{
    create_revision_is, first_created, get_op, put_op, queue_key, range_kvs, range_op, Client,
};
use super::upstream::Upstream;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{RangeRequest, TxnRequest};
use ferrocd_proto::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use tonic::{Request, Response, Status};

pub struct LockService {
    up: Upstream,
}

impl LockService {
    pub fn new(up: Upstream) -> LockService {
        LockService { up }
    }
}

/// Deletes a queued key unless disarmed: a caller that gives up while
/// waiting leaves no key behind (etcd's mutex unlocks then too).
struct Withdraw {
    client: Option<Client>,
    key: Vec<u8>,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let key = std::mem::take(&mut self.key);
            tokio::spawn(async move {
                if let Err(e) = client.delete(key).await {
                    tracing::warn!(error = %e, "could not withdraw an abandoned lock key");
                }
            });
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let client = Client::new(&self.up, &req);
        let LockRequest { name, lease } = req.into_inner();
        let lease = client.session_lease(lease).await?;
        let (prefix, key) = queue_key(&name, lease);
        let txn = TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put_op(&key, b"", lease), range_op(first_created(&prefix))],
            failure: vec![get_op(&key), range_op(first_created(&prefix))],
        };
        let resp = client.txn(txn).await?;
        let mut my_rev = super::concurrency::header(&resp.header);
        if !resp.succeeded {
            my_rev = range_kvs(&resp, 0)
                .first()
                .map_or(my_rev, |kv| kv.create_revision);
        }
        let owner = range_kvs(&resp, 1).first();
        if owner.is_none_or(|kv| kv.create_revision == my_rev) {
            return Ok(Response::new(LockResponse {
                header: resp.header,
                key,
            }));
        }
        let mut withdraw = Withdraw {
            client: Some(client.clone()),
            key: key.clone(),
        };
        client.wait_deletes(&prefix, my_rev - 1).await?;
        // The key may have gone with its lease while we waited.
        let mine = client
            .range(RangeRequest {
                key: key.clone(),
                ..Default::default()
            })
            .await?;
        withdraw.client = None;
        if mine.kvs.is_empty() {
            return Err(errors::LOCK_SESSION_EXPIRED.status());
        }
        Ok(Response::new(LockResponse {
            header: mine.header,
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let client = Client::new(&self.up, &req);
        let resp = client.delete(req.into_inner().key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}

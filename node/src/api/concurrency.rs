//! What etcd's lock and election services build on (its client's
//! concurrency package), over the member's own KV, lease and watch
//! services: keys `<name>/<lease in hex>` queued by create revision, and
//! waiting for the keys ahead to go by watching them, not by polling.

use super::upstream::Upstream;
use ferrocd_proto::etcdserverpb::{
    compare, range_request::SortOrder, range_request::SortTarget, request_op, response_op,
    watch_request, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, PutRequest,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
    WatchCreateRequest, WatchRequest, WatchResponse,
};
use ferrocd_proto::keys::prefix_end;
use ferrocd_proto::mvccpb::{event::EventType, KeyValue};
use tokio::sync::mpsc;
use tonic::{Request, Status, Streaming};

/// The lease etcd's sessions take when the caller names none.
const SESSION_TTL: i64 = 60;

/// The member's services acting for one caller (its token goes along).
/// Errors come back as etcd's services return their client's errors: code
/// Unknown with the error's text.
#[derive(Clone)]
pub struct Client {
    up: Upstream,
    credentials: tonic::metadata::MetadataMap,
}

fn relay(s: Status) -> Status {
    Status::unknown(s.message())
}

impl Client {
    pub fn new<T>(up: &Upstream, caller: &Request<T>) -> Client {
        let mut credentials = tonic::metadata::MetadataMap::new();
        for name in ["token", "authorization"] {
            if let Some(v) = caller.metadata().get(name) {
                credentials.insert(name, v.clone());
            }
        }
        Client {
            up: up.clone(),
            credentials,
        }
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        *req.metadata_mut() = self.credentials.clone();
        req
    }

    /// The caller's lease, or a new one of etcd's session TTL for 0.
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let grant = LeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        };
        let resp = self
            .up
            .lease()
            .lease_grant(self.request(grant))
            .await
            .map_err(relay)?;
        Ok(resp.into_inner().id)
    }

    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        let resp = self.up.kv().txn(self.request(txn)).await.map_err(relay)?;
        Ok(resp.into_inner())
    }

    pub async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        let resp = self.up.kv().range(self.request(r)).await.map_err(relay)?;
        Ok(resp.into_inner())
    }

    pub async fn delete(&self, key: Vec<u8>) -> Result<DeleteRangeResponse, Status> {
        let req = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        let resp = self
            .up
            .kv()
            .delete_range(self.request(req))
            .await
            .map_err(relay)?;
        Ok(resp.into_inner())
    }

    /// A watch on `key` (a prefix when `prefix`) from `rev` on.
    pub async fn watch(&self, key: &[u8], prefix: bool, rev: i64) -> Result<Watch, Status> {
        let (tx, rx) = mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: key.to_vec(),
                    range_end: if prefix { prefix_end(key) } else { Vec::new() },
                    start_revision: rev,
                    ..Default::default()
                },
            )),
        };
        tx.send(create)
            .await
            .map_err(|_| Status::unknown("watch closed"))?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let resp = self
            .up
            .watch()
            .watch(self.request(stream))
            .await
            .map_err(relay)?;
        Ok(Watch {
            stream: resp.into_inner(),
            _requests: tx,
        })
    }

    /// Waits until no key under `prefix` created at or before `max_rev`
    /// is left (etcd's waitDeletes): each time, the newest of them.
    pub async fn wait_deletes(&self, prefix: &[u8], max_rev: i64) -> Result<(), Status> {
        loop {
            let newest = RangeRequest {
                max_create_revision: max_rev,
                ..last_created(prefix)
            };
            let resp = self.range(newest).await?;
            let Some(kv) = resp.kvs.first() else {
                return Ok(());
            };
            let rev = resp.header.map_or(0, |h| h.revision);
            let mut watch = self.watch(&kv.key, false, rev).await?;
            while let Some(events) = watch.next().await? {
                if events.iter().any(|(t, _)| *t == EventType::Delete) {
                    break;
                }
            }
        }
    }
}

/// An open watch; dropping it ends the stream.
pub struct Watch {
    stream: Streaming<WatchResponse>,
    _requests: mpsc::Sender<WatchRequest>,
}

impl Watch {
    /// The next batch of events with the response header; None when the
    /// stream ends.
    pub async fn next_response(&mut self) -> Result<Option<WatchResponse>, Status> {
        loop {
            let Some(resp) = self.stream.message().await.map_err(relay)? else {
                return Ok(None);
            };
            if resp.canceled {
                return Err(Status::unknown(resp.cancel_reason));
            }
            if !resp.events.is_empty() {
                return Ok(Some(resp));
            }
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<(EventType, KeyValue)>>, Status> {
        let Some(resp) = self.next_response().await? else {
            return Ok(None);
        };
        Ok(Some(events(resp)))
    }
}

pub fn events(resp: WatchResponse) -> Vec<(EventType, KeyValue)> {
    resp.events
        .into_iter()
        .map(|e| {
            let t = EventType::try_from(e.r#type).unwrap_or(EventType::Put);
            (t, e.kv.unwrap_or_default())
        })
        .collect()
}

fn sorted_by_create(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The oldest key under a prefix (the owner of a lock or an election).
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    sorted_by_create(prefix, SortOrder::Ascend)
}

fn last_created(prefix: &[u8]) -> RangeRequest {
    sorted_by_create(prefix, SortOrder::Descend)
}

/// `key` with `<name>/` and the lease in lower-case hex, as etcd names them.
pub fn queue_key(name: &[u8], lease: i64) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    let mut key = prefix.clone();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    (prefix, key)
}

pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

pub fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

pub fn range_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

pub fn get_op(key: &[u8]) -> RequestOp {
    range_op(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

pub fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// The key-values of a txn's `i`th answer, when it is a range.
pub fn range_kvs(resp: &TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

pub fn header(h: &Option<ResponseHeader>) -> i64 {
    h.as_ref().map_or(0, |h| h.revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_as_etcd_names_them() {
        let (prefix, key) = queue_key(b"l", 0x313fa23c87fa7d12);
        assert_eq!(prefix, b"l/");
        assert_eq!(key, b"l/313fa23c87fa7d12");
    }
}

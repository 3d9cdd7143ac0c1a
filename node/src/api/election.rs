//! etcd's Election service (v3electionpb): candidates queue keys
//! `<name>/<lease>` holding their value; the oldest is the leader.
//! Campaign waits until the caller leads, Proclaim changes the leader's
//! value, Resign steps down, Leader and Observe tell who leads.

use super::concurrency::{
    create_revision_is, delete_op, first_created, get_op, header, put_op, queue_key, range_kvs,
    Client,
};
use super::upstream::Upstream;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{ResponseHeader, TxnRequest, TxnResponse};
use ferrocd_proto::mvccpb::event::EventType;
use ferrocd_proto::v3electionpb::{
    election_server::Election, CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest,
    LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use std::pin::Pin;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

pub struct ElectionService {
    up: Upstream,
}

impl ElectionService {
    pub fn new(up: Upstream) -> ElectionService {
        ElectionService { up }
    }
}

/// The leader's value is `value` if it still holds `key` created at `rev`.
async fn proclaim(client: &Client, l: &LeaderKey, value: &[u8]) -> Result<TxnResponse, Status> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(&l.key, l.rev)],
            success: vec![put_op(&l.key, value, l.lease)],
            failure: vec![],
        })
        .await?;
    if !resp.succeeded {
        return Err(errors::ELECTION_NOT_LEADER.status());
    }
    Ok(resp)
}

async fn resign(client: &Client, l: &LeaderKey) -> Result<TxnResponse, Status> {
    client
        .txn(TxnRequest {
            compare: vec![create_revision_is(&l.key, l.rev)],
            success: vec![delete_op(&l.key)],
            failure: vec![],
        })
        .await
}

/// Resigns unless disarmed: a candidate that gives up leaves no key.
struct Withdraw {
    client: Option<Client>,
    leader: LeaderKey,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let leader = std::mem::take(&mut self.leader);
            tokio::spawn(async move {
                if let Err(e) = resign(&client, &leader).await {
                    tracing::warn!(error = %e, "could not withdraw an abandoned candidate");
                }
            });
        }
    }
}

type Observed = Pin<Box<dyn futures::Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let client = Client::new(&self.up, &req);
        let CampaignRequest { name, lease, value } = req.into_inner();
        let lease = client.session_lease(lease).await?;
        let (prefix, key) = queue_key(&name, lease);
        let resp = client
            .txn(TxnRequest {
                compare: vec![create_revision_is(&key, 0)],
                success: vec![put_op(&key, &value, lease)],
                failure: vec![get_op(&key)],
            })
            .await?;
        let mut leader = LeaderKey {
            name,
            key,
            rev: header(&resp.header),
            lease,
        };
        let mut withdraw = Withdraw {
            client: Some(client.clone()),
            leader: leader.clone(),
        };
        if !resp.succeeded {
            if let Some(kv) = range_kvs(&resp, 0).first() {
                leader.rev = kv.create_revision;
                withdraw.leader.rev = kv.create_revision;
                if kv.value != value {
                    proclaim(&client, &leader, &value).await?;
                }
            }
        }
        client.wait_deletes(&prefix, leader.rev - 1).await?;
        withdraw.client = None;
        Ok(Response::new(CampaignResponse {
            header: resp.header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let client = Client::new(&self.up, &req);
        let ProclaimRequest { leader, value } = req.into_inner();
        let leader = leader.ok_or_else(|| errors::ELECTION_MISSING_LEADER.status())?;
        let resp = proclaim(&client, &leader, &value).await?;
        Ok(Response::new(ProclaimResponse {
            header: resp.header,
        }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let client = Client::new(&self.up, &req);
        let (prefix, _) = queue_key(&req.into_inner().name, 0);
        let resp = client.range(first_created(&prefix)).await?;
        let kv = resp
            .kvs
            .into_iter()
            .next()
            .ok_or_else(|| errors::ELECTION_NO_LEADER.status())?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = Observed;

    async fn observe(&self, req: Request<LeaderRequest>) -> Result<Response<Observed>, Status> {
        let client = Client::new(&self.up, &req);
        let (prefix, _) = queue_key(&req.into_inner().name, 0);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            // An observer that goes away ends the watches at once.
            let result = tokio::select! {
                r = observe(&client, &prefix, &tx) => r,
                _ = tx.closed() => Ok(()),
            };
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let client = Client::new(&self.up, &req);
        let leader = req
            .into_inner()
            .leader
            .ok_or_else(|| errors::ELECTION_MISSING_LEADER.status())?;
        let resp = resign(&client, &leader).await?;
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}

/// Sends the leader, then each change of its value, then the next leader,
/// until the observer goes away (etcd's Election.Observe).
async fn observe(
    client: &Client,
    prefix: &[u8],
    tx: &mpsc::Sender<Result<LeaderResponse, Status>>,
) -> Result<(), Status> {
    loop {
        let resp = client.range(first_created(prefix)).await?;
        let (mut hdr, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header.unwrap_or_default(), kv),
            None => {
                // No leader yet: the first key put under the prefix leads.
                let mut watch = client.watch(prefix, true, header(&resp.header)).await?;
                loop {
                    let Some(w) = watch.next_response().await? else {
                        return Ok(());
                    };
                    let hdr = w.header.unwrap_or_default();
                    let put = super::concurrency::events(w)
                        .into_iter()
                        .find(|(t, _)| *t == EventType::Put);
                    if let Some((_, kv)) = put {
                        let hdr = ResponseHeader {
                            revision: kv.mod_revision,
                            ..hdr
                        };
                        break (hdr, kv);
                    }
                }
            }
        };
        let key = kv.key.clone();
        if tx
            .send(Ok(LeaderResponse {
                header: Some(hdr),
                kv: Some(kv),
            }))
            .await
            .is_err()
        {
            return Ok(());
        }
        let mut watch = client.watch(&key, false, hdr.revision + 1).await?;
        'leader: loop {
            let Some(w) = watch.next_response().await? else {
                return Ok(());
            };
            hdr = w.header.unwrap_or_default();
            for (t, kv) in super::concurrency::events(w) {
                if t == EventType::Delete {
                    break 'leader;
                }
                let msg = LeaderResponse {
                    header: Some(hdr),
                    kv: Some(kv),
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

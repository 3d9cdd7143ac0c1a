//! Clients that send a traffic profile to one member each and record
//! every request with its call and return time. Every written value is
//! unique (`c<client>-<n>`), so a write whose answer was lost can be found
//! in the watch history later.

use crate::history::{Kv, Operation, Recorder, Request, Response};
use ferrocd_proto::etcdserverpb::{
    compare, kv_client::KvClient, lease_client::LeaseClient, maintenance_client::MaintenanceClient,
    request_op, Compare, DefragmentRequest, DeleteRangeRequest, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use ferrocd_proto::mvccpb::KeyValue;
use rand::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

/// What the clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Gets (linearizable and stale), lists, puts, deletes, transactions,
    /// puts on leases, lease revokes, defragmentation.
    EtcdLike,
    /// Paginated lists, creates, optimistic updates and deletes by mod
    /// revision (the watches are the suite's).
    KubernetesLike,
}

impl Profile {
    /// The key prefix the profile writes under.
    pub fn prefix(self) -> &'static str {
        match self {
            Profile::EtcdLike => "/key/",
            Profile::KubernetesLike => "/registry/pods/",
        }
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const ETCD_KEYS: u32 = 10;
const PODS: u32 = 20;
const PAGE: i64 = 4;

/// One client: its own connection to one member, its own counter.
pub struct TrafficClient {
    pub id: usize,
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    maintenance: MaintenanceClient<Channel>,
    recorder: Recorder,
    written: u64,
    /// Its lease, when it holds one.
    lease_id: Option<i64>,
    leases_granted: i64,
    /// The mod revision each key had when this client last saw it.
    seen: std::collections::HashMap<String, i64>,
}

impl TrafficClient {
    pub fn new(id: usize, endpoint: &str, recorder: Recorder) -> Result<TrafficClient, String> {
        let ch = ferrocd_testkit::grpc::endpoint(endpoint)?.connect_lazy();
        Ok(TrafficClient {
            id,
            kv: KvClient::new(ch.clone()),
            lease: LeaseClient::new(ch.clone()),
            maintenance: MaintenanceClient::new(ch),
            recorder,
            written: 0,
            lease_id: None,
            leases_granted: 0,
            seen: Default::default(),
        })
    }

    /// Sends `profile` until `stop`, at most `rate` requests a second.
    pub async fn run(&mut self, profile: Profile, rate: f64, stop: Arc<AtomicBool>) {
        let pause = Duration::from_secs_f64(1.0 / rate);
        while !stop.load(Ordering::Relaxed) {
            let started = tokio::time::Instant::now();
            match profile {
                Profile::EtcdLike => self.etcd_like().await,
                Profile::KubernetesLike => self.kubernetes_like().await,
            }
            tokio::time::sleep_until(started + pause).await;
        }
    }

    fn next_value(&mut self) -> String {
        self.written += 1;
        format!("c{}-{}", self.id, self.written)
    }

    async fn etcd_like(&mut self) {
        let key = format!("/key/{}", rand::rng().random_range(0..ETCD_KEYS));
        let roll = rand::rng().random_range(0..100);
        let request = match roll {
            0..20 => Request::Get { key },
            20..30 => Request::StaleGet { key },
            30..38 => Request::List {
                prefix: "/key/".into(),
                from: String::new(),
                limit: if roll < 34 { 0 } else { 3 },
                revision: 0,
            },
            38..62 => Request::Put {
                key,
                value: self.next_value(),
                lease: 0,
            },
            62..68 => Request::Delete { key },
            68..80 => Request::PutIfModRev {
                expected: self.seen.get(&key).copied().unwrap_or(0),
                key,
                value: self.next_value(),
            },
            80..92 => match self.lease_id {
                Some(lease) => Request::Put {
                    key,
                    value: self.next_value(),
                    lease,
                },
                None => {
                    self.leases_granted += 1;
                    Request::LeaseGrant {
                        id: ((self.id as i64 + 1) << 24) + self.leases_granted,
                    }
                }
            },
            92..99 => match self.lease_id.take() {
                Some(id) => Request::LeaseRevoke { id },
                None => Request::Get { key },
            },
            _ => Request::Defragment,
        };
        self.send(request).await;
    }

    async fn kubernetes_like(&mut self) {
        let key = format!("/registry/pods/p{:02}", rand::rng().random_range(0..PODS));
        let roll = rand::rng().random_range(0..100);
        match roll {
            0..20 => {
                self.paginated_list().await;
            }
            20..45 => {
                let value = self.next_value();
                self.send(Request::PutIfModRev {
                    key,
                    expected: 0,
                    value,
                })
                .await;
            }
            45..85 => {
                // Read, then update what was read (as a controller does).
                let read = self.send(Request::Get { key: key.clone() }).await;
                if let Response::Get { kv: Some(kv), .. } = read {
                    let value = self.next_value();
                    self.send(Request::PutIfModRev {
                        key,
                        expected: kv.mod_rev,
                        value,
                    })
                    .await;
                }
            }
            _ => {
                if let Some(&expected) = self.seen.get(&key) {
                    self.send(Request::DeleteIfModRev { key, expected }).await;
                }
            }
        }
    }

    /// A list in pages: the first at the current revision, the others at
    /// the first one's, as the Kubernetes API server lists. The revision of
    /// the whole list, when every page came back.
    pub async fn paginated_list(&mut self) -> Option<i64> {
        let mut revision = 0;
        let mut from = String::new();
        loop {
            let r = self
                .send(Request::List {
                    prefix: "/registry/pods/".into(),
                    from: from.clone(),
                    limit: PAGE,
                    revision,
                })
                .await;
            let Response::List { rev, kvs, more, .. } = r else {
                return None;
            };
            match (more, kvs.last()) {
                (true, Some(last)) => {
                    revision = rev;
                    from = format!("{}\0", last.key);
                }
                _ => return Some(rev),
            }
        }
    }

    /// Sends one request, records it, returns what came back.
    pub async fn send(&mut self, request: Request) -> Response {
        let call = self.recorder.now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.execute(&request)).await;
        let ret = self.recorder.now();
        let response = match answer {
            Ok(Ok(r)) => r,
            Ok(Err(status)) if ferrocd_proto::errors::LEASE_NOT_FOUND.is(&status) => {
                Response::LeaseNotFound
            }
            Ok(Err(status)) => Response::Unknown {
                error: format!("{:?}: {}", status.code(), status.message()),
            },
            Err(_) => Response::Unknown {
                error: "timed out".into(),
            },
        };
        self.learn(&request, &response);
        let known = !matches!(response, Response::Unknown { .. });
        self.recorder.record(Operation {
            client: self.id,
            call,
            ret: known.then_some(ret),
            request,
            response: response.clone(),
        });
        response
    }

    /// Keeps what later requests build on: mod revisions seen, the lease.
    fn learn(&mut self, request: &Request, response: &Response) {
        match (request, response) {
            (Request::Get { key } | Request::StaleGet { key }, Response::Get { kv, .. }) => {
                self.seen
                    .insert(key.clone(), kv.as_ref().map(|kv| kv.mod_rev).unwrap_or(0));
            }
            (Request::List { .. }, Response::List { kvs, .. }) => {
                for kv in kvs {
                    self.seen.insert(kv.key.clone(), kv.mod_rev);
                }
            }
            (
                Request::Put { key, .. } | Request::PutIfModRev { key, .. },
                Response::Put { rev }
                | Response::Txn {
                    rev,
                    succeeded: true,
                },
            ) => {
                self.seen.insert(key.clone(), *rev);
            }
            (Request::LeaseGrant { id }, Response::LeaseGrant { .. }) => self.lease_id = Some(*id),
            (Request::Put { lease, .. }, Response::LeaseNotFound) if *lease != 0 => {
                self.lease_id = None
            }
            _ => {}
        }
    }

    async fn execute(&mut self, request: &Request) -> Result<Response, tonic::Status> {
        Ok(match request {
            Request::Get { key } | Request::StaleGet { key } => {
                let r = self
                    .kv
                    .range(RangeRequest {
                        key: key.clone().into_bytes(),
                        serializable: matches!(request, Request::StaleGet { .. }),
                        ..RangeRequest::default()
                    })
                    .await?
                    .into_inner();
                Response::Get {
                    rev: rev_of(&r.header),
                    kv: r.kvs.first().map(kv_of),
                }
            }
            Request::List {
                prefix,
                from,
                limit,
                revision,
            } => {
                let start = crate::model::range_start(prefix, from);
                let r = self
                    .kv
                    .range(RangeRequest {
                        key: start.as_bytes().to_vec(),
                        range_end: prefix_end(prefix),
                        limit: *limit,
                        revision: *revision,
                        ..RangeRequest::default()
                    })
                    .await?
                    .into_inner();
                Response::List {
                    rev: rev_of(&r.header),
                    kvs: r.kvs.iter().map(kv_of).collect(),
                    count: r.count,
                    more: r.more,
                }
            }
            Request::Put { key, value, lease } => {
                let r = self
                    .kv
                    .put(PutRequest {
                        key: key.clone().into_bytes(),
                        value: value.clone().into_bytes(),
                        lease: *lease,
                        ..PutRequest::default()
                    })
                    .await?
                    .into_inner();
                Response::Put {
                    rev: rev_of(&r.header),
                }
            }
            Request::Delete { key } => {
                let r = self
                    .kv
                    .delete_range(DeleteRangeRequest {
                        key: key.clone().into_bytes(),
                        ..DeleteRangeRequest::default()
                    })
                    .await?
                    .into_inner();
                Response::Delete {
                    rev: rev_of(&r.header),
                    deleted: r.deleted,
                }
            }
            Request::PutIfModRev {
                key,
                expected,
                value,
            } => {
                let put = request_op::Request::RequestPut(PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..PutRequest::default()
                });
                self.txn_if_mod_rev(key, *expected, put).await?
            }
            Request::DeleteIfModRev { key, expected } => {
                let delete = request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key: key.clone().into_bytes(),
                    ..DeleteRangeRequest::default()
                });
                self.txn_if_mod_rev(key, *expected, delete).await?
            }
            Request::LeaseGrant { id } => {
                let r = self
                    .lease
                    .lease_grant(LeaseGrantRequest { ttl: 600, id: *id })
                    .await?
                    .into_inner();
                Response::LeaseGrant {
                    rev: rev_of(&r.header),
                }
            }
            Request::LeaseRevoke { id } => {
                let r = self
                    .lease
                    .lease_revoke(LeaseRevokeRequest { id: *id })
                    .await?
                    .into_inner();
                Response::LeaseRevoke {
                    rev: rev_of(&r.header),
                }
            }
            Request::Defragment => {
                self.maintenance.defragment(DefragmentRequest {}).await?;
                Response::Defragment
            }
        })
    }

    async fn txn_if_mod_rev(
        &mut self,
        key: &str,
        expected: i64,
        then: request_op::Request,
    ) -> Result<Response, tonic::Status> {
        let r = self
            .kv
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Mod as i32,
                    key: key.as_bytes().to_vec(),
                    target_union: Some(compare::TargetUnion::ModRevision(expected)),
                    ..Compare::default()
                }],
                success: vec![RequestOp {
                    request: Some(then),
                }],
                failure: vec![],
            })
            .await?
            .into_inner();
        Ok(Response::Txn {
            rev: rev_of(&r.header),
            succeeded: r.succeeded,
        })
    }
}

fn rev_of(h: &Option<ferrocd_proto::etcdserverpb::ResponseHeader>) -> i64 {
    h.as_ref().map(|h| h.revision).unwrap_or(0)
}

pub fn kv_of(kv: &KeyValue) -> Kv {
    Kv {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        create_rev: kv.create_revision,
        mod_rev: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

/// The end of the range of keys starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    ferrocd_proto::keys::prefix_end(prefix.as_bytes())
}

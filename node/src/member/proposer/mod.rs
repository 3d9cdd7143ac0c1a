//! Writes: a request becomes a command in the raft log (batched with the
//! others that arrive meanwhile), proposed here when this member leads or
//! forwarded to the leader otherwise; the caller gets the apply result once
//! this member has applied it.

mod batcher;
mod forwarding;

use super::leadership::Leadership;
use super::tasks::Tasks;
use super::RequestError;
use crate::apply::{ApplyError, EntryResponse};
use crate::auth::AuthInfo;
use crate::metrics::Metrics;
use crate::mvcc::Store;
use crate::peer::Forwarder;
use crate::raft::state_machine::Waiters;
use crate::raft::{AppliedIndex, Command, TypeConfig};
use ferrocd_proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest, AlarmType};
use ferrocd_proto::ferrocdpb::{internal_request::Request, AuthHeader, InternalRequest};
use openraft::Raft;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The limits a write must respect.
pub struct WriteLimits {
    pub max_request_bytes: usize,
    pub request_timeout: Duration,
    /// `--quota-backend-bytes`, if set.
    pub quota_bytes: Option<u64>,
}

pub struct Proposer {
    leadership: Arc<Leadership>,
    batcher: batcher::Batcher,
    forwards: forwarding::ForwardBatcher,
    waiters: Arc<Waiters>,
    applied_index: Arc<AppliedIndex>,
    request_ids: AtomicU64,
    store: Store,
    metrics: Arc<Metrics>,
    limits: WriteLimits,
}

/// What the proposer works with.
pub(super) struct ProposerParts {
    pub raft: Raft<TypeConfig>,
    pub leadership: Arc<Leadership>,
    pub forwarder: Arc<Forwarder>,
    pub waiters: Arc<Waiters>,
    pub applied_index: Arc<AppliedIndex>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: WriteLimits,
}

impl Proposer {
    pub(super) fn start(p: ProposerParts, tasks: &Tasks) -> Proposer {
        Proposer {
            batcher: batcher::Batcher::spawn(tasks, p.raft, p.leadership.clone()),
            forwards: forwarding::ForwardBatcher::spawn(tasks, p.forwarder),
            leadership: p.leadership,
            waiters: p.waiters,
            applied_index: p.applied_index,
            request_ids: AtomicU64::new(super::id_seed()),
            store: p.store,
            metrics: p.metrics,
            limits: p.limits,
        }
    }

    /// Sends a client's write through the log (via the leader) and waits
    /// until it is committed and applied. `who` sent it (None: no
    /// credentials, or auth is off); apply checks its permissions.
    pub async fn propose(
        &self,
        req: Request,
        who: Option<&AuthInfo>,
    ) -> Result<EntryResponse, RequestError> {
        let header = who.map(|w| AuthHeader {
            username: w.username.clone(),
            auth_revision: w.revision,
            member: false,
        });
        self.propose_entry(InternalRequest {
            request: Some(req),
            header,
        })
        .await
    }

    /// A write of the member's own duties (lease expiry, alarms, its
    /// attributes): no client, nothing for auth to check.
    pub async fn propose_internal(&self, req: Request) -> Result<EntryResponse, RequestError> {
        self.propose_entry(InternalRequest {
            request: Some(req),
            header: Some(AuthHeader {
                member: true,
                ..Default::default()
            }),
        })
        .await
    }

    async fn propose_entry(&self, entry: InternalRequest) -> Result<EntryResponse, RequestError> {
        if entry.encoded_len() > self.limits.max_request_bytes {
            return Err(RequestError::TooLarge);
        }
        self.metrics.proposals_pending.inc();
        let r = self.propose_until_deadline(entry).await;
        self.metrics.proposals_pending.dec();
        if r.is_err() {
            self.metrics.proposals_failed.inc();
        }
        r
    }

    async fn propose_until_deadline(
        &self,
        entry: InternalRequest,
    ) -> Result<EntryResponse, RequestError> {
        let deadline = Instant::now() + self.limits.request_timeout;
        loop {
            // A follower that knows the leader forwards at once; otherwise
            // raft decides whether this member leads.
            let leader_url = match self.leadership.leader_elsewhere() {
                Some(url) => Some(url),
                None => match self.propose_here(&entry).await {
                    Err(RequestError::NotLeader(url)) => url,
                    other => return other,
                },
            };
            if let Some(url) = leader_url {
                match self.forwards.forward(url, entry.clone()).await {
                    Ok(r) => {
                        // As etcd: answer only once this member applied the write too.
                        let left = deadline.saturating_duration_since(Instant::now());
                        if !self.applied_index.reached(r.applied_index, left).await {
                            return Err(RequestError::Timeout);
                        }
                        return EntryResponse::from_wire(r).ok_or(RequestError::Stopped);
                    }
                    Err(status) if ferrocd_proto::errors::leadership_in_flux(&status) => {}
                    Err(status) => return Err(RequestError::Relayed(status)),
                }
            }
            if Instant::now() >= deadline {
                return Err(RequestError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes on this member only; `NotLeader` when it does not lead.
    pub async fn propose_here(
        &self,
        entry: &InternalRequest,
    ) -> Result<EntryResponse, RequestError> {
        let id = self.next_request_id();
        let rx = self.waiters.register(id);
        let command = Command {
            id,
            entry: entry.encode_to_vec(),
        };
        let applied =
            |r: Result<Result<EntryResponse, ApplyError>, oneshot::error::RecvError>| match r {
                Ok(r) => r.map_err(RequestError::from),
                Err(_) => Err(RequestError::Stopped),
            };
        // Without a quorum raft waits forever; a client gets etcd's timeout.
        let outcome = tokio::time::timeout(self.limits.request_timeout, async {
            let submitted = self.batcher.submit(command);
            tokio::pin!(submitted);
            let mut rx = rx;
            // The apply result is the answer: it comes straight from the
            // state machine, while raft's own acknowledgement of the write
            // travels back through its core and the batcher (three task
            // hops later). That acknowledgement matters only when it fails.
            tokio::select! {
                biased;
                r = &mut rx => applied(r),
                sent = &mut submitted => {
                    sent?;
                    applied(rx.await)
                }
            }
        })
        .await;
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.waiters.forget(id);
                Err(e)
            }
            Err(_) => {
                self.waiters.forget(id);
                Err(RequestError::Timeout)
            }
        }
    }

    /// Globally unique proposal IDs: this member's ID in the high bits.
    fn next_request_id(&self) -> u64 {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed) & ((1 << 40) - 1);
        ((self.leadership.member_id() & 0xff_ffff) << 40) | n
    }

    /// etcd's quota check before a write that grows the database by about
    /// `cost` bytes: past the quota, raise the NOSPACE alarm and refuse.
    pub async fn check_quota(&self, cost: u64) -> Result<(), RequestError> {
        let Some(quota) = self.limits.quota_bytes else {
            return Ok(());
        };
        if cost == 0 || self.store.file_size() + cost <= quota {
            return Ok(());
        }
        let alarm = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.leadership.member_id(),
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = self.propose_internal(Request::Alarm(alarm)).await {
            tracing::warn!(error = %e, "cannot raise the NOSPACE alarm");
        }
        Err(ApplyError::NoSpace.into())
    }
}

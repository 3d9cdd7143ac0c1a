//! The Maintenance service: status, hashes, alarms, defragment, snapshot.

use super::caller;
use super::error::status;
use super::{require_leader, unexpected};
use crate::apply::EntryResponse;
use crate::member::{Authenticator, Leadership, Member, Membership, Proposer, Reader, Transfer};
use crate::mvcc::{MvccError, Store};
use crate::snapshot::export::{self, ClusterInfo};
use crate::snapshot::layout;
use crate::snapshot::seal::Sealed;
use crate::snapshot::SnapshotError;
use crate::watch::WatchHub;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{
    alarm_request::AlarmAction, maintenance_server::Maintenance, AlarmMember, AlarmRequest,
    AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use ferrocd_proto::ferrocdpb::internal_request::Request as Entry;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Size of one Snapshot message's blob (etcd sends 32 KiB; larger chunks
/// cost fewer messages, and stay far below clients' 4 MiB receive limit).
const SNAPSHOT_CHUNK: usize = 256 * 1024;

pub struct MaintenanceService {
    leadership: Arc<Leadership>,
    proposer: Arc<Proposer>,
    reader: Arc<Reader>,
    membership: Arc<Membership>,
    transfer: Arc<Transfer>,
    store: Store,
    hub: Arc<WatchHub>,
    authn: Arc<Authenticator>,
    /// Where snapshots are staged.
    scratch: std::path::PathBuf,
    metrics: Arc<crate::metrics::Metrics>,
}

impl MaintenanceService {
    pub fn new(m: &Member) -> MaintenanceService {
        MaintenanceService {
            leadership: m.leadership.clone(),
            proposer: m.proposer.clone(),
            reader: m.reader.clone(),
            membership: m.membership.clone(),
            transfer: m.transfer.clone(),
            store: m.store.clone(),
            hub: m.hub.clone(),
            authn: m.authn.clone(),
            scratch: m.config.data_dir.join("member"),
            metrics: m.metrics.clone(),
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MvccError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::from)
}

/// How etcd prints an alarm in Status.errors.
pub fn alarm_text(a: &AlarmMember) -> String {
    let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
    format!("memberID:{} alarm:{} ", a.member_id, name)
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        if req.get_ref().action == AlarmAction::Get as i32 {
            caller::known(&req, &self.authn).await?;
        } else {
            caller::root(&req, &self.authn).await?;
        }
        let r = req.into_inner();
        if r.action == AlarmAction::Get as i32 {
            let view = self.reader.read()?;
            let alarms = view
                .alarms()?
                .into_iter()
                .filter(|(_, t)| r.alarm == AlarmType::None as i32 || *t == r.alarm)
                .map(|(member_id, alarm)| AlarmMember { member_id, alarm })
                .collect();
            return Ok(Response::new(AlarmResponse {
                header: Some(self.leadership.header(view.rev)),
                alarms,
            }));
        }
        match self
            .proposer
            .propose_internal(Entry::Alarm(r))
            .await
            .map_err(status)?
        {
            EntryResponse::Alarm(mut resp) => {
                self.leadership.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::known(&req, &self.authn).await?;
        let store = self.store.clone();
        let (view_rev, alarms, in_use) = blocking(move || {
            let view = store.read()?;
            Ok((view.rev, view.alarms()?, store.size_in_use()?))
        })
        .await?;
        let mut errors: Vec<String> = alarms
            .into_iter()
            .map(|(member_id, alarm)| alarm_text(&AlarmMember { member_id, alarm }))
            .collect();
        let l = &self.leadership;
        if !l.has_leader() {
            errors.insert(0, errors::NO_LEADER.message().to_string());
        }
        Ok(Response::new(StatusResponse {
            header: Some(l.header(view_rev)),
            version: crate::ETCD_VERSION.to_string(),
            db_size: self.store.file_size() as i64,
            leader: l.leader_id(),
            raft_index: l.raft_index(),
            raft_term: l.raft_term(),
            raft_applied_index: self.reader.applied_index(),
            errors,
            db_size_in_use: in_use as i64,
            is_learner: self.membership.is_learner(),
        }))
    }

    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root_untranslated(&req, &self.authn).await?;
        let store = self.store.clone();
        let started = std::time::Instant::now();
        blocking(move || store.defragment()).await?;
        self.metrics
            .defrag_duration
            .observe(started.elapsed().as_secs_f64());
        // etcd 3.5 answers a defragment with no header.
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root_untranslated(&req, &self.authn).await?;
        let store = self.store.clone();
        let (rev, hash) = blocking(move || {
            let v = store.read()?;
            Ok((v.rev, v.hash_all()?))
        })
        .await?;
        Ok(Response::new(HashResponse {
            header: Some(self.leadership.header(rev)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root_untranslated(&req, &self.authn).await?;
        let want = req.into_inner().revision;
        let store = self.store.clone();
        let h = blocking(move || store.read()?.hash_kv_at(want)).await?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.leadership.header(h.current_rev)),
            hash: h.hash,
            compact_revision: h.compact_rev,
            hash_revision: h.rev,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root_untranslated(&req, &self.authn).await?;
        let store = self.store.clone();
        let dir = self.scratch.clone();
        let cluster = ClusterInfo {
            members: self
                .membership
                .members()
                .into_iter()
                .map(|m| layout::Member {
                    id: m.id,
                    peer_urls: m.peer_urls,
                    is_learner: m.is_learner,
                    name: m.name,
                    client_urls: m.client_urls,
                })
                .collect(),
            term: self.leadership.raft_term(),
        };
        // The file is written from one read view (writers go on meanwhile),
        // then streamed from disk; it is unlinked at once, so it goes away
        // with the stream however that ends.
        let started = std::time::Instant::now();
        let (rev, mut sealed) = tokio::task::spawn_blocking(move || {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.join(format!("snapshot-{}-{n}.tmp", std::process::id()));
            let result = store.read().map_err(SnapshotError::from).and_then(|view| {
                export::write_db(&view, &cluster, &path)?;
                Ok((view.rev, Sealed::open(&path)?))
            });
            let _ = std::fs::remove_file(&path);
            result
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(format!("snapshot: {e}")))?;
        self.metrics
            .snapshot_duration
            .observe(started.elapsed().as_secs_f64());
        let (tx, rx) = mpsc::channel(4);
        let leadership = self.leadership.clone();
        tokio::task::spawn_blocking(move || {
            let mut left = sealed.total_len();
            loop {
                let chunk = match sealed.next_chunk(SNAPSHOT_CHUNK) {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!("snapshot: {e}"))));
                        break;
                    }
                };
                left -= chunk.len() as u64;
                let resp = SnapshotResponse {
                    header: Some(leadership.header(rev)),
                    remaining_bytes: left,
                    blob: chunk,
                };
                if tx.blocking_send(Ok(resp)).is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        require_leader(&req, &self.leadership)?;
        caller::root(&req, &self.authn).await?;
        let target = req.into_inner().target_id;
        self.transfer.move_leader(target).await.map_err(status)?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.leadership.header(self.hub.rev())),
        }))
    }

    async fn downgrade(
        &self,
        req: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        caller::root(&req, &self.authn).await?;
        Err(errors::unimplemented("cluster downgrade is not supported"))
    }
}

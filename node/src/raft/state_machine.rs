//! The raft state machine: committed entries go to the [`Applier`] (MVCC
//! store, leases, alarms) in one transaction per batch together with the
//! last applied log ID and membership; results reach the member that proposed
//! them through [`Waiters`]; events go to the watch hub. Snapshots are copies
//! of the store's database.

use super::{
    io_error, AppliedIndex, Batch, Entry, LogId, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use crate::apply::{Applier, ApplyError, LogEntry, Response};
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::proto::ferrocdpb::InternalRequest;
use crate::watch::WatchHub;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use prost::Message;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

const LAST_APPLIED: &str = "raft.last_applied";
const MEMBERSHIP: &str = "raft.membership";

/// Proposals waiting for their apply result on this member, by command ID.
#[derive(Default)]
pub struct Waiters {
    inner: Mutex<HashMap<u64, oneshot::Sender<Result<Response, ApplyError>>>>,
}

impl Waiters {
    pub fn register(&self, id: u64) -> oneshot::Receiver<Result<Response, ApplyError>> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        rx
    }

    pub fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn take(&self, id: u64) -> Option<oneshot::Sender<Result<Response, ApplyError>>> {
        self.lock().remove(&id)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<Response, ApplyError>>>>
    {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A snapshot kept for followers that need it.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

pub struct StateMachine {
    store: Store,
    applier: Applier,
    lessor: Arc<Lessor>,
    hub: Arc<WatchHub>,
    waiters: Arc<Waiters>,
    applied_index: Arc<AppliedIndex>,
    metrics: Arc<crate::metrics::Metrics>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    scratch: PathBuf,
}

fn sm_err(verb: ErrorVerb) -> impl Fn(crate::mvcc::MvccError) -> StorageError {
    move |e| io_error(ErrorSubject::StateMachine, verb, e)
}

fn read_raft_state(store: &Store) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    raft_state_in(&store.read().map_err(sm_err(ErrorVerb::Read))?)
}

/// The last applied log ID and membership recorded in a view of the store.
fn raft_state_in(
    view: &crate::mvcc::ReadView,
) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let decode_err = |e| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, e);
    let last_applied = match view.state(LAST_APPLIED).map_err(sm_err(ErrorVerb::Read))? {
        Some(b) => bincode::deserialize(&b).map_err(decode_err)?,
        None => None,
    };
    let membership = match view.state(MEMBERSHIP).map_err(sm_err(ErrorVerb::Read))? {
        Some(b) => bincode::deserialize(&b).map_err(decode_err)?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}

impl StateMachine {
    pub fn open(
        store: Store,
        lessor: Arc<Lessor>,
        hub: Arc<WatchHub>,
        waiters: Arc<Waiters>,
        applied_index: Arc<AppliedIndex>,
        metrics: Arc<crate::metrics::Metrics>,
        scratch: PathBuf,
    ) -> Result<StateMachine, StorageError> {
        let applier =
            Applier::open(store.clone(), lessor.clone()).map_err(sm_err(ErrorVerb::Read))?;
        let (last_applied, membership) = read_raft_state(&store)?;
        applied_index.advance(applier.applied_index());
        Ok(StateMachine {
            store,
            applier,
            lessor,
            hub,
            waiters,
            applied_index,
            metrics,
            last_applied,
            membership,
            current: Arc::default(),
            scratch,
        })
    }

    fn snapshot_path(&self, what: &str) -> PathBuf {
        self.scratch
            .join(format!("{what}-{}.snap", std::process::id()))
    }
}

fn encode_state<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serialize(v).map_err(|e| io_error(ErrorSubject::StateMachine, ErrorVerb::Write, e))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut log = Vec::new();
        let mut ids = Vec::new();
        let mut n = 0;
        for e in entries {
            n += 1;
            let index = e.log_id.index;
            self.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Normal(Batch { commands }) => {
                    for c in commands {
                        ids.push(Some(c.id));
                        let request = match InternalRequest::decode(c.entry.as_slice()) {
                            Ok(r) => Some(r),
                            Err(err) => {
                                tracing::error!(index, error = %err, "undecodable command skipped");
                                None
                            }
                        };
                        log.push(LogEntry { index, request });
                    }
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    ids.push(None);
                    log.push(LogEntry {
                        index,
                        request: None,
                    });
                }
                EntryPayload::Blank => {
                    ids.push(None);
                    log.push(LogEntry {
                        index,
                        request: None,
                    });
                }
            }
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let last = encode_state(&self.last_applied)?;
        let membership = encode_state(&self.membership)?;
        let started = std::time::Instant::now();
        let applied = self
            .applier
            .apply_batch(&log, |t| {
                t.set_state(LAST_APPLIED, &last)?;
                t.set_state(MEMBERSHIP, &membership)
            })
            .map_err(sm_err(ErrorVerb::Write))?;
        self.metrics
            .backend_commit
            .observe(started.elapsed().as_secs_f64());
        let requests = log.iter().filter(|e| e.request.is_some()).count() as u64;
        self.metrics
            .proposals_committed
            .fetch_add(requests, Ordering::Relaxed);
        self.metrics
            .proposals_applied
            .fetch_add(requests, Ordering::Relaxed);
        // Watchers learn the new revision first: a forwarded write or a read
        // released by the index may open a watch at once.
        self.hub.notify(&applied.events);
        self.applied_index.advance(self.applier.applied_index());
        for (id, result) in ids.into_iter().zip(applied.results) {
            if let (Some(id), Some(result)) = (id, result) {
                if let Some(w) = self.waiters.take(id) {
                    let _ = w.send(result);
                }
            }
        }
        Ok(vec![(); n])
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            path: self.snapshot_path("build"),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let path = self.snapshot_path("install");
        let snap_err = |e| {
            io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        };
        std::fs::write(&path, &data).map_err(snap_err)?;
        let restored = self.store.restore_from(&path);
        let _ = std::fs::remove_file(&path);
        restored.map_err(|e| {
            io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        self.lessor.clear();
        self.applier = Applier::open(self.store.clone(), self.lessor.clone())
            .map_err(sm_err(ErrorVerb::Read))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        // The snapshot's own record of the applied state may lag its meta; write the meta's.
        let last = encode_state(&self.last_applied)?;
        let membership = encode_state(&self.membership)?;
        self.store
            .write(|t| {
                t.set_state(LAST_APPLIED, &last)?;
                t.set_state(MEMBERSHIP, &membership)
            })
            .map_err(sm_err(ErrorVerb::Write))?;
        self.hub.reset(self.applier.rev());
        self.applied_index.advance(self.applier.applied_index());
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last_log_index = meta.last_log_id.map_or(0, |l| l.index),
            bytes = data.len(),
            "installed a snapshot from the leader"
        );
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(current.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Builds a snapshot from a consistent copy of the store.
pub struct SnapshotBuilder {
    store: Store,
    path: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let store = self.store.clone();
        let path = self.path.clone();
        let built = tokio::task::spawn_blocking(
            move || -> Result<(Vec<u8>, Option<LogId>, StoredMembership), StorageError> {
                let view = store.snapshot_to(&path).map_err(sm_err(ErrorVerb::Read))?;
                let data = std::fs::read(&path)
                    .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e));
                let _ = std::fs::remove_file(&path);
                let (last, membership) = raft_state_in(&view)?;
                Ok((data?, last, membership))
            },
        )
        .await
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))??;
        let (data, last_log_id, last_membership) = built;
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

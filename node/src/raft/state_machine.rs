//! The raft state machine: committed entries go to the store's
//! [`Machine`] (MVCC store, leases, alarms, then the watch hub) in one
//! transaction per batch together with the last applied log ID and
//! membership; results reach the member that proposed them through
//! [`Waiters`]. Snapshots are copies of the store's database, kept as
//! files ([`SnapshotFile`]).

use super::snapshot_file::{self, SnapshotFile};
use super::{
    io_error, AppliedIndex, Batch, Entry, LogId, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use crate::apply::machine::{Machine, Snapshotter};
use crate::apply::{ApplyError, EntryResponse as Response, LogEntry};
use ferrocd_proto::ferrocdpb::InternalRequest;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use prost::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

const LAST_APPLIED: &str = "raft.last_applied";
const MEMBERSHIP: &str = "raft.membership";

/// raft's records for a state that did not come through this log (a
/// restored snapshot, a forced new cluster): everything up to `applied` is
/// in the store, and `members` are the voters. At start openraft treats the
/// log before `applied` as purged.
pub fn fresh_records(
    applied: LogId,
    members: std::collections::BTreeMap<u64, super::MemberInfo>,
) -> Result<Vec<(&'static str, Vec<u8>)>, StorageError> {
    let stored = voters_only(applied, members);
    Ok(vec![
        (LAST_APPLIED, encode_state(&Some(applied))?),
        (MEMBERSHIP, encode_state(&stored)?),
    ])
}

fn voters_only(
    applied: LogId,
    members: std::collections::BTreeMap<u64, super::MemberInfo>,
) -> StoredMembership {
    let voters = members.keys().copied().collect();
    StoredMembership::new(
        Some(applied),
        openraft::Membership::new(vec![voters], members),
    )
}

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

/// A snapshot kept for followers that need it: its file in the scratch
/// directory, removed when a newer one replaces it.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    path: PathBuf,
}

type Current = Arc<Mutex<Option<StoredSnapshot>>>;

/// Makes `new` the current snapshot and removes the file of the one it
/// replaces (a transfer still reading it keeps its open handle).
fn replace_current(current: &Current, new: StoredSnapshot) {
    let old = current
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(new);
    if let Some(old) = old {
        if let Err(e) = std::fs::remove_file(&old.path) {
            tracing::warn!(path = %old.path.display(), error = %e, "cannot remove a replaced snapshot");
        }
    }
}

fn snapshot_err(
    meta: Option<&SnapshotMeta>,
    verb: ErrorVerb,
) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |e| io_error(ErrorSubject::Snapshot(meta.map(|m| m.signature())), verb, e)
}

pub struct StateMachine {
    machine: Machine,
    waiters: Arc<Waiters>,
    applied_index: Arc<AppliedIndex>,
    metrics: Arc<crate::metrics::Metrics>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    current: Current,
    /// Where snapshots are built and received.
    scratch: PathBuf,
    /// The file a leader's snapshot is being received into.
    receiving: Option<PathBuf>,
}

fn sm_err(verb: ErrorVerb) -> impl Fn(crate::apply::machine::StoreError) -> StorageError {
    move |e| io_error(ErrorSubject::StateMachine, verb, e)
}

/// The last applied log ID and membership from raft's records.
fn raft_state(
    last_applied: Option<Vec<u8>>,
    membership: Option<Vec<u8>>,
) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let decode_err = |e| io_error(ErrorSubject::StateMachine, ErrorVerb::Read, e);
    let last_applied = match last_applied {
        Some(b) => bincode::deserialize(&b).map_err(decode_err)?,
        None => None,
    };
    let membership = match membership {
        Some(b) => bincode::deserialize(&b).map_err(decode_err)?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}

impl StateMachine {
    /// Makes `members` the only voters as of the last applied entry, in the
    /// store and here (`--force-new-cluster`).
    pub(super) fn replace_membership(
        &mut self,
        members: std::collections::BTreeMap<u64, super::MemberInfo>,
    ) -> Result<LogId, StorageError> {
        let applied = self.last_applied.unwrap_or_default();
        let membership = voters_only(applied, members);
        let last = encode_state(&Some(applied))?;
        let encoded = encode_state(&membership)?;
        self.machine
            .write_records(&[(LAST_APPLIED, &last), (MEMBERSHIP, &encoded)])
            .map_err(sm_err(ErrorVerb::Write))?;
        self.last_applied = Some(applied);
        self.membership = membership;
        Ok(applied)
    }

    pub fn open(
        machine: Machine,
        waiters: Arc<Waiters>,
        applied_index: Arc<AppliedIndex>,
        metrics: Arc<crate::metrics::Metrics>,
        scratch: PathBuf,
    ) -> Result<StateMachine, StorageError> {
        let read = sm_err(ErrorVerb::Read);
        let (last_applied, membership) = raft_state(
            machine.record(LAST_APPLIED).map_err(&read)?,
            machine.record(MEMBERSHIP).map_err(&read)?,
        )?;
        snapshot_file::remove_leftovers(&scratch).map_err(snapshot_err(None, ErrorVerb::Delete))?;
        applied_index.advance(machine.applied_index());
        Ok(StateMachine {
            machine,
            waiters,
            applied_index,
            metrics,
            last_applied,
            membership,
            current: Arc::default(),
            scratch,
            receiving: None,
        })
    }

    /// Has the store take a leader's snapshot from its file.
    fn install_file(&mut self, meta: &SnapshotMeta, path: &Path) -> Result<(), StorageError> {
        // The snapshot's own record of the applied state may lag its meta;
        // write the meta's.
        let last = encode_state(&meta.last_log_id)?;
        let membership = encode_state(&meta.last_membership)?;
        let records: &[(&str, &[u8])] = &[(LAST_APPLIED, &last), (MEMBERSHIP, &membership)];
        fail::fail_point!("raftBeforeApplySnap");
        let installed = self.machine.install(path, records).map_err(|e| {
            io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        });
        fail::fail_point!("raftAfterApplySnap");
        installed
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
        let records: &[(&str, &[u8])] = &[(LAST_APPLIED, &last), (MEMBERSHIP, &membership)];
        // Watchers learn the new revision before the applied index moves: a
        // forwarded write or a read released by the index may open a watch at once.
        let results = self.machine.apply(&log, records).map_err(|e| {
            self.applied_index.stop();
            sm_err(ErrorVerb::Write)(e)
        })?;
        let took = started.elapsed();
        self.metrics.backend_commit.observe(took.as_secs_f64());
        // etcd's "slow apply" threshold.
        if took > std::time::Duration::from_millis(100) {
            self.metrics.slow_apply.inc();
        }
        // etcd's gauges of these names hold the raft indexes.
        let index = self.last_applied.map_or(0, |l| l.index) as i64;
        self.metrics.proposals_committed.set(index);
        self.metrics.proposals_applied.set(index);
        self.applied_index.advance(self.machine.applied_index());
        // etcd counts leases granted and revoked (expiry too) where applied.
        for result in results.iter().flatten() {
            match result {
                Ok(crate::apply::EntryResponse::LeaseGrant(_)) => self.metrics.lease_granted.inc(),
                Ok(crate::apply::EntryResponse::LeaseRevoke(_)) => self.metrics.lease_revoked.inc(),
                _ => continue,
            };
        }
        for (id, result) in ids.into_iter().zip(results) {
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
            snapshotter: self.machine.snapshotter(),
            scratch: self.scratch.clone(),
            current: self.current.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        // A transfer that did not finish leaves its file; a new one starts.
        if let Some(abandoned) = self.receiving.take() {
            let _ = std::fs::remove_file(abandoned);
        }
        let path = snapshot_file::unique_path(&self.scratch, "receive");
        let file =
            SnapshotFile::create(path.clone()).map_err(snapshot_err(None, ErrorVerb::Write))?;
        self.receiving = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        if self.receiving.as_deref() == Some(snapshot.path()) {
            self.receiving = None;
        }
        let path = snapshot.path().to_path_buf();
        // A failure stops the applied index: a log purge waiting for this
        // install (log_store.rs) gives up rather than hold the raft core,
        // which must see the failure and stop.
        let installed = match snapshot.finish_writing().await {
            Ok(()) => self.install_file(meta, &path),
            Err(e) => Err(snapshot_err(Some(meta), ErrorVerb::Write)(e)),
        };
        drop(snapshot);
        if let Err(e) = installed {
            let _ = std::fs::remove_file(&path);
            self.applied_index.stop();
            return Err(e);
        }
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied_index.advance(self.machine.applied_index());
        tracing::info!(
            snapshot = %meta.snapshot_id,
            last_log_index = meta.last_log_id.map_or(0, |l| l.index),
            bytes,
            "installed a snapshot from the leader"
        );
        replace_current(
            &self.current,
            StoredSnapshot {
                meta: meta.clone(),
                path,
            },
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        // Opened under the lock: a newer snapshot removes this one's file.
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = current.as_ref() else {
            return Ok(None);
        };
        let file = SnapshotFile::open(s.path.clone())
            .map_err(snapshot_err(Some(&s.meta), ErrorVerb::Read))?;
        Ok(Some(Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(file),
        }))
    }
}

/// Builds a snapshot from a consistent copy of the store.
pub struct SnapshotBuilder {
    snapshotter: Snapshotter,
    scratch: PathBuf,
    current: Current,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snapshotter = Snapshotter::clone(&self.snapshotter);
        let path = snapshot_file::unique_path(&self.scratch, "build");
        let target = path.clone();
        let built = tokio::task::spawn_blocking(
            move || -> Result<(u64, Option<LogId>, StoredMembership), StorageError> {
                let records = snapshotter
                    .write_to(&target, &[LAST_APPLIED, MEMBERSHIP])
                    .map_err(sm_err(ErrorVerb::Read))?;
                let size = std::fs::metadata(&target)
                    .map_err(snapshot_err(None, ErrorVerb::Read))?
                    .len();
                let mut records = records.into_iter();
                let (last, membership) =
                    raft_state(records.next().flatten(), records.next().flatten())?;
                Ok((size, last, membership))
            },
        )
        .await
        .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))
        .and_then(|built| built);
        let (size, last_log_id, last_membership) = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{size}", l.leader_id.term, l.index),
            None => format!("empty-{size}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let file =
            SnapshotFile::open(path.clone()).map_err(snapshot_err(Some(&meta), ErrorVerb::Read))?;
        replace_current(
            &self.current,
            StoredSnapshot {
                meta: meta.clone(),
                path,
            },
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

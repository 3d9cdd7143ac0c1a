//! The raft state machine: committed entries go to the store's
//! [`Machine`] (MVCC store, leases, alarms, then the watch hub) in one
//! transaction per batch together with the last applied log ID and
//! membership; results reach the member that proposed them through
//! [`Waiters`]. Snapshots are copies of the store's database.

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
use std::io::Cursor;
use std::path::PathBuf;
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

/// A snapshot kept for followers that need it.
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

pub struct StateMachine {
    machine: Machine,
    waiters: Arc<Waiters>,
    applied_index: Arc<AppliedIndex>,
    metrics: Arc<crate::metrics::Metrics>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
    scratch: PathBuf,
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
        })
    }

    /// Writes a leader's snapshot to a scratch file and has the store take
    /// it (the file goes either way).
    fn install_file(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let path = self.snapshot_path("install");
        let snap_err = |e: &dyn std::fmt::Display| {
            io_error(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        };
        let installed = std::fs::write(&path, data)
            .map_err(|e| snap_err(&e))
            .and_then(|()| {
                // The snapshot's own record of the applied state may lag
                // its meta; write the meta's.
                let last = encode_state(&meta.last_log_id)?;
                let membership = encode_state(&meta.last_membership)?;
                let records: &[(&str, &[u8])] = &[(LAST_APPLIED, &last), (MEMBERSHIP, &membership)];
                fail::fail_point!("raftBeforeApplySnap");
                let installed = self
                    .machine
                    .install(&path, records)
                    .map_err(|e| snap_err(&e));
                fail::fail_point!("raftAfterApplySnap");
                installed
            });
        let _ = std::fs::remove_file(&path);
        installed
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
        // A failure stops the applied index: a log purge waiting for this
        // install (log_store.rs) gives up rather than hold the raft core,
        // which must see the failure and stop.
        if let Err(e) = self.install_file(meta, &data) {
            self.applied_index.stop();
            return Err(e);
        }
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied_index.advance(self.machine.applied_index());
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
    snapshotter: Snapshotter,
    path: PathBuf,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snapshotter = Snapshotter::clone(&self.snapshotter);
        let path = self.path.clone();
        let built = tokio::task::spawn_blocking(
            move || -> Result<(Vec<u8>, Option<LogId>, StoredMembership), StorageError> {
                let records = snapshotter
                    .write_to(&path, &[LAST_APPLIED, MEMBERSHIP])
                    .map_err(sm_err(ErrorVerb::Read))?;
                let data = std::fs::read(&path)
                    .map_err(|e| io_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, e));
                let _ = std::fs::remove_file(&path);
                let mut records = records.into_iter();
                let (last, membership) =
                    raft_state(records.next().flatten(), records.next().flatten())?;
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

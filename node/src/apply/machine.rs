//! The state-machine interface the raft layer drives: apply committed
//! entries (the MVCC store, the lease table, then the watch hub), keep raft's
//! own records beside them in the same transaction, and copy or replace the
//! whole state for snapshots. raft knows the deterministic store only
//! through this.

use super::{Applier, ApplyError, EntryResponse, LogEntry};
use crate::auth::AuthStore;
use crate::lease::Lessor;
use crate::mvcc::{MvccError, Store};
use crate::watch::WatchHub;
use std::path::Path;
use std::sync::Arc;

/// Why the store failed (storage, or a record it cannot decode).
pub use crate::mvcc::MvccError as StoreError;

/// raft's records kept with the state (its last applied log ID, membership).
pub type Records<'a> = &'a [(&'a str, &'a [u8])];

pub struct Machine {
    store: Store,
    lessor: Arc<Lessor>,
    auth: Arc<AuthStore>,
    hub: Arc<WatchHub>,
    applier: Applier,
}

impl Machine {
    /// Loads the applied state from the store and rebuilds the lease table
    /// and the auth store.
    pub fn open(
        store: Store,
        lessor: Arc<Lessor>,
        auth: Arc<AuthStore>,
        hub: Arc<WatchHub>,
    ) -> Result<Machine, MvccError> {
        let applier = Applier::open(store.clone(), lessor.clone(), auth.clone())?;
        Ok(Machine {
            store,
            lessor,
            auth,
            hub,
            applier,
        })
    }

    pub fn applied_index(&self) -> u64 {
        self.applier.applied_index()
    }

    /// One of raft's records as last applied.
    pub fn record(&self, key: &str) -> Result<Option<Vec<u8>>, MvccError> {
        self.store.read()?.state(key)
    }

    /// Applies `entries` in order with `records` in one transaction, then
    /// lets watchers see the new revisions; one result per entry (none where
    /// the entry held no request). An `Err` means storage failed and nothing
    /// was applied.
    #[allow(clippy::type_complexity)]
    pub fn apply(
        &mut self,
        entries: &[LogEntry],
        records: Records<'_>,
    ) -> Result<Vec<Option<Result<EntryResponse, ApplyError>>>, MvccError> {
        let applied = self
            .applier
            .apply_batch(entries, |t| {
                for (key, value) in records {
                    t.set_state(key, value)?;
                }
                Ok(())
            })
            .map_err(|e| self.named(e))?;
        self.hub.notify(&applied.events);
        Ok(applied.results)
    }

    /// A storage failure naming the store's file (the line that stops the
    /// member says where).
    fn named(&self, e: MvccError) -> MvccError {
        match e {
            MvccError::Storage(m) => {
                MvccError::Storage(format!("{}: {m}", self.store.path().display()))
            }
            other => other,
        }
    }

    /// Something that copies the state to a file, usable off this thread.
    pub fn snapshotter(&self) -> Snapshotter {
        Snapshotter {
            store: self.store.clone(),
        }
    }

    /// Replaces the whole state with the copy at `path` (a snapshot from the
    /// leader), then writes `records` (the snapshot's own may lag them).
    pub fn install(&mut self, path: &Path, records: Records<'_>) -> Result<(), MvccError> {
        self.install_here(path, records).map_err(|e| self.named(e))
    }

    fn install_here(&mut self, path: &Path, records: Records<'_>) -> Result<(), MvccError> {
        self.store.restore_from(path)?;
        self.lessor.clear();
        // Tokens name users as of entries the snapshot replaces (a user
        // deleted or a password changed there): clients log in again.
        self.auth.tokens().clear();
        self.applier = Applier::open(self.store.clone(), self.lessor.clone(), self.auth.clone())?;
        self.write_records(records)?;
        self.hub.reset(self.applier.rev());
        Ok(())
    }

    /// Replaces raft's records alone (a forced new cluster's membership).
    pub fn write_records(&mut self, records: Records<'_>) -> Result<(), MvccError> {
        self.store
            .write(|t| {
                for (key, value) in records {
                    t.set_state(key, value)?;
                }
                Ok(())
            })
            .map_err(|e| self.named(e))
    }
}

#[derive(Clone)]
pub struct Snapshotter {
    store: Store,
}

impl Snapshotter {
    /// Writes a consistent copy of the state to `path`; raft's records
    /// `keys` as of that copy.
    pub fn write_to(&self, path: &Path, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, MvccError> {
        let view = self.store.snapshot_to(path)?;
        keys.iter().map(|k| view.state(k)).collect()
    }
}

//! Replication with openraft: the type configuration, the raft log kept in
//! append-only segment files (etcd's WAL, `member/wal/`), and the state
//! machine that feeds committed entries to the store's state-machine
//! interface, [`crate::apply::machine::Machine`].

// openraft's storage traits require its (large) StorageError; the helpers share it.
#![allow(clippy::result_large_err)]

pub mod applied;
pub mod force;
pub mod log_store;
pub mod recent_entries;
pub mod snapshot_file;
pub mod state_machine;
pub mod wal;

pub use applied::AppliedIndex;
pub use force::force_new_cluster;
pub use log_store::LogStore;
pub use snapshot_file::SnapshotFile;
pub use state_machine::{fresh_records, StateMachine};

use serde::{Deserialize, Serialize};

/// One raft entry: the client writes a member collected while its previous
/// entry was being committed (group commit: one append, one fsync).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub commands: Vec<Command>,
}

/// One client write as it travels through the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Chosen by the proposing member; its waiter gets the apply result.
    pub id: u64,
    /// A prost-encoded `ferrocdpb.InternalRequest`. Encoded as one byte
    /// string: raft messages must fit openraft's heartbeat-long RPC deadline.
    #[serde(with = "serde_bytes")]
    pub entry: Vec<u8>,
}

/// What openraft knows about a member: etcd's member attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

openraft::declare_raft_types!(
    /// ferrocd's raft types: etcd member IDs, etcd member attributes.
    pub TypeConfig:
        D = Batch,
        R = (),
        NodeId = u64,
        Node = MemberInfo,
        SnapshotData = SnapshotFile,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, MemberInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, MemberInfo>;

/// Storage failures as openraft wants them: they stop the raft node.
pub(crate) fn io_error(
    subject: openraft::ErrorSubject<u64>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    openraft::StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::machine::Machine;
    use crate::lease::Lessor;
    use crate::mvcc::Store;
    use crate::watch::WatchHub;
    use openraft::testing::{StoreBuilder, Suite};
    use std::sync::Arc;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().map_err(|e| {
                io_error(openraft::ErrorSubject::Store, openraft::ErrorVerb::Write, e)
            })?;
            let store = Store::open(dir.path()).map_err(|e| {
                io_error(openraft::ErrorSubject::Store, openraft::ErrorVerb::Write, e)
            })?;
            let metrics = Arc::new(crate::metrics::Metrics::default());
            // openraft's suite purges the log on its own, not behind the
            // state machine: nothing to wait for.
            let everything_applied = Arc::new(AppliedIndex::default());
            everything_applied.advance(u64::MAX);
            let log = LogStore::open(dir.path(), metrics.clone(), everything_applied)?;
            let hub = WatchHub::new(store.clone(), 1, tokio::runtime::Handle::current());
            let auth = Arc::new(crate::auth::AuthStore::new(std::time::Duration::ZERO));
            let machine =
                Machine::open(store, Arc::new(Lessor::new(2)), auth, hub).map_err(|e| {
                    io_error(openraft::ErrorSubject::Store, openraft::ErrorVerb::Read, e)
                })?;
            let sm = StateMachine::open(
                machine,
                Arc::default(),
                Arc::default(),
                metrics,
                dir.path().to_path_buf(),
            )?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_storage_suite() -> Result<(), StorageError> {
        Suite::test_all(Builder)
    }

    /// A snapshot install that fails (here: the file is no database, as
    /// when a full disk cut it short) stops the applied index, so a log purge
    /// waiting for the install gives up at once. (It held the raft core for
    /// its whole time limit, and the member stayed up without a store.)
    #[tokio::test]
    async fn a_failed_snapshot_install_stops_the_waits_for_it() {
        use openraft::storage::RaftStateMachine;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let hub = WatchHub::new(store.clone(), 1, tokio::runtime::Handle::current());
        let auth = Arc::new(crate::auth::AuthStore::new(std::time::Duration::ZERO));
        let machine = Machine::open(store, Arc::new(Lessor::new(2)), auth, hub).unwrap();
        let applied = Arc::new(AppliedIndex::default());
        let mut sm = StateMachine::open(
            machine,
            Arc::default(),
            applied.clone(),
            Arc::default(),
            dir.path().to_path_buf(),
        )
        .unwrap();
        let a = applied.clone();
        let purge =
            tokio::spawn(async move { a.reached(10, std::time::Duration::from_secs(300)).await });
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 10)),
            last_membership: StoredMembership::default(),
            snapshot_id: "1-10-1".into(),
        };
        let path = dir.path().join("receive-damaged.snap");
        std::fs::write(&path, [0u8; 64]).unwrap();
        let data = Box::new(SnapshotFile::open(path).unwrap());
        assert!(sm.install_snapshot(&meta, data).await.is_err());
        let gave_up = tokio::time::timeout(std::time::Duration::from_secs(5), purge).await;
        assert!(!gave_up.expect("the waiter gave up at once").unwrap());
    }
}

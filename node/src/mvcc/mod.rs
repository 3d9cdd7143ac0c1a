//! The MVCC key-value store with etcd's semantics, kept in redb.
//!
//! One global revision counts every write transaction; each key carries
//! create_revision, mod_revision and version; a delete writes a tombstone; old
//! versions stay readable until compaction.
//!
//! Versions live in the `events` table (see [`store`]), keyed by revision:
//! (main, sub) -> record, the history in revision order (reads, watch
//! catch-up, hashes). Which revision holds a key's version at a revision is
//! in the in-memory [`index`], rebuilt from `events` at start.

pub mod codec;
pub mod index;
pub mod range;
pub mod store;
pub mod write;

pub use range::{KeyRange, RangeOptions, RangeResult};
pub use store::{HashAt, ReadView, Store, WriteTables};
pub use write::{KvView, TxnWrite};

/// Errors the MVCC layer reports to clients (etcd's texts, without the
/// `etcdserver: ` prefix the API layer adds).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MvccError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("storage: {0}")]
    Storage(String),
}

impl From<redb::Error> for MvccError {
    fn from(e: redb::Error) -> Self {
        MvccError::Storage(e.to_string())
    }
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for MvccError {
            fn from(e: $t) -> Self {
                MvccError::Storage(e.to_string())
            }
        }
    )*};
}
storage_error_from!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    std::io::Error
);

//! Snapshots in etcd's format: the Maintenance.Snapshot body is an etcd 3.5
//! backend (a bbolt file with etcd's buckets, see [`layout`]) followed by a
//! SHA-256 trailer ([`seal`]), so `etcdutl` restores it; `ferrocd snapshot
//! restore` turns etcd's and ferrocd's snapshots into a ferrocd data dir
//! ([`import`], [`restore`]) and `ferrocd snapshot status` reports on them
//! as etcdutl does ([`status`]).

pub mod export;
pub mod import;
pub mod layout;
pub mod restore;
pub mod seal;
pub mod status;

use std::path::Path;

/// Why a snapshot could not be written, read or restored: one line.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error(transparent)]
    Bolt(#[from] ferrocd_bolt::Error),
    #[error(transparent)]
    Store(#[from] crate::mvcc::MvccError),
}

impl SnapshotError {
    pub fn io(path: &Path, error: std::io::Error) -> SnapshotError {
        SnapshotError::Io {
            path: path.display().to_string(),
            error,
        }
    }
}

impl From<std::io::Error> for SnapshotError {
    fn from(e: std::io::Error) -> Self {
        SnapshotError::Bolt(ferrocd_bolt::Error::Io(e))
    }
}

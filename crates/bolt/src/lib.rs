//! bbolt database files, the format of etcd's backend and of the snapshots
//! `etcdctl snapshot save` writes: [`Writer`] bulk-loads buckets into a new
//! file, [`Reader`] walks one without trusting it (every page id, size and
//! element is bounds-checked, so a damaged file is an [`Error`], never a
//! panic). Only what etcd uses: top-level buckets of plain key/value pairs.
//!
//! The layout (bbolt 1.3/1.4, format version 2, little-endian): pages 0 and
//! 1 hold the meta (the newer valid one wins), every other page is a branch,
//! leaf or freelist page, a value larger than a page spills into the
//! following "overflow" pages.

mod page;
mod read;
mod write;

pub use read::Reader;
pub use write::{BucketWriter, Writer};

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a bbolt database (bad magic number)")]
    NotBolt,
    #[error("unsupported bbolt format version {0} (want 2)")]
    Version(u32),
    #[error("bbolt meta pages are damaged (checksum mismatch)")]
    Checksum,
    #[error("invalid page size {0}")]
    PageSize(u32),
    #[error("file is truncated: {have} bytes, the database needs {need}")]
    Truncated { have: u64, need: u64 },
    #[error("page {id}: out of range (the database has {max} pages)")]
    PageOutOfRange { id: u64, max: u64 },
    #[error("page {id}: {what}")]
    BadPage { id: u64, what: String },
    #[error("bucket {0:?} not found")]
    NoBucket(String),
    #[error("bucket {bucket:?}: keys must be added in ascending order")]
    Unordered { bucket: String },
    #[error("bucket {0:?} added twice")]
    DuplicateBucket(String),
    #[error("{0}")]
    Check(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests;

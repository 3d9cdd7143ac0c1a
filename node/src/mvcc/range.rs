//! Reading keys at a revision, shared by read-only views and write transactions.

use super::codec::{decode_record, Record};
use super::index::{Revision, SharedIndex};
use super::MvccError;
use ferrocd_proto::mvccpb::KeyValue;
use redb::ReadableTable;

/// A key interval as etcd's `key`/`range_end` pair describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// `range_end` empty: exactly this key.
    Single(Vec<u8>),
    /// `[start, end)`.
    Bounded(Vec<u8>, Vec<u8>),
    /// `range_end == "\0"`: every key >= start.
    From(Vec<u8>),
}

impl KeyRange {
    /// etcd's interpretation of a request's key and range_end.
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::From(key.to_vec()),
            end => KeyRange::Bounded(key.to_vec(), end.to_vec()),
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(s) => k == s.as_slice(),
            KeyRange::Bounded(s, e) => k >= s.as_slice() && k < e.as_slice(),
            KeyRange::From(s) => k >= s.as_slice(),
        }
    }

    pub fn start(&self) -> &[u8] {
        match self {
            KeyRange::Single(s) | KeyRange::Bounded(s, _) | KeyRange::From(s) => s,
        }
    }

    /// True when the range cannot contain any key (end <= start).
    pub fn is_empty(&self) -> bool {
        matches!(self, KeyRange::Bounded(s, e) if e <= s)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// At most this many kvs (0: no limit). `count` still counts every key.
    pub limit: usize,
    /// Read at this revision (<= 0: the current one).
    pub rev: i64,
    /// Only count; return no kvs.
    pub count_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Number of keys in the range at the revision, ignoring the limit.
    pub count: i64,
    /// The store's current revision (what etcd puts in the response header).
    pub rev: i64,
}

pub(crate) type EventKey = (u64, u64);

/// Reads `range` as of `opts.rev`, given the store's current and compacted
/// revisions: etcd's mvcc `rangeKeys`. The index says which versions; `events`
/// holds them. `epoch` is the index epoch a read view was taken at (none for
/// the writer, whose index is always its own).
pub(crate) fn range<E>(
    index: &SharedIndex,
    epoch: Option<u64>,
    events: &E,
    current_rev: i64,
    compact_rev: i64,
    range: &KeyRange,
    opts: RangeOptions,
) -> Result<RangeResult, MvccError>
where
    E: ReadableTable<EventKey, &'static [u8]>,
{
    if opts.rev > current_rev {
        return Err(MvccError::FutureRev);
    }
    let rev = if opts.rev <= 0 { current_rev } else { opts.rev };
    if rev < compact_rev {
        return Err(MvccError::Compacted);
    }
    let found = {
        let index = index.read();
        if epoch.is_some_and(|e| e != index.epoch()) {
            return Err(MvccError::Storage(
                "the store was replaced by a snapshot during the read; retry".into(),
            ));
        }
        // A compaction applied after this view was taken has already
        // dropped what a read below it would need.
        if rev < index.compact_rev() {
            return Err(MvccError::Compacted);
        }
        index.range(range, rev.max(0) as u64, opts.limit, opts.count_only)
    };
    let mut out = RangeResult {
        rev: current_rev,
        count: found.count,
        kvs: Vec::with_capacity(found.revisions.len()),
    };
    for at in found.revisions {
        out.kvs.push(fetch(events, at)?.kv);
    }
    Ok(out)
}

/// The version stored at `at`, which the index says exists.
pub(crate) fn fetch<E>(events: &E, at: Revision) -> Result<Record, MvccError>
where
    E: ReadableTable<EventKey, &'static [u8]>,
{
    match events.get(at)? {
        Some(v) => decode_record(v.value()),
        None => Err(MvccError::Storage(format!(
            "the index names revision {}.{} but no version is stored there",
            at.0, at.1
        ))),
    }
}

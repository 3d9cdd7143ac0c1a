//! Reading keys at a revision, shared by read-only views and write transactions.

use super::codec::{decode_kv, decode_record};
use super::MvccError;
use crate::proto::mvccpb::KeyValue;
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

pub(crate) type LatestKey = &'static [u8];
pub(crate) type KeyRevKey = (&'static [u8], u64, u64);
pub(crate) type EventKey = (u64, u64);

/// Reads `range` as of `opts.rev`, given the store's current and compacted
/// revisions: etcd's mvcc `rangeKeys`.
pub(crate) fn range<L, K, E>(
    latest: &L,
    key_revs: &K,
    events: &E,
    current_rev: i64,
    compact_rev: i64,
    range: &KeyRange,
    opts: RangeOptions,
) -> Result<RangeResult, MvccError>
where
    L: ReadableTable<LatestKey, &'static [u8]>,
    K: ReadableTable<KeyRevKey, ()>,
    E: ReadableTable<EventKey, &'static [u8]>,
{
    if opts.rev > current_rev {
        return Err(MvccError::FutureRev);
    }
    let rev = if opts.rev <= 0 { current_rev } else { opts.rev };
    if rev < compact_rev {
        return Err(MvccError::Compacted);
    }
    let mut out = RangeResult {
        rev: current_rev,
        ..Default::default()
    };
    if range.is_empty() {
        return Ok(out);
    }
    let want =
        |out: &RangeResult| !opts.count_only && (opts.limit == 0 || out.kvs.len() < opts.limit);
    if rev == current_rev {
        match range {
            KeyRange::Single(k) => {
                if let Some(v) = latest.get(k.as_slice())? {
                    out.count = 1;
                    if want(&out) {
                        out.kvs.push(decode_kv(v.value())?);
                    }
                }
            }
            KeyRange::Bounded(s, e) => {
                for item in latest.range::<&[u8]>(s.as_slice()..e.as_slice())? {
                    let (_, v) = item?;
                    if want(&out) {
                        out.kvs.push(decode_kv(v.value())?);
                    }
                    out.count += 1;
                }
            }
            KeyRange::From(s) => {
                for item in latest.range::<&[u8]>(s.as_slice()..)? {
                    let (_, v) = item?;
                    if want(&out) {
                        out.kvs.push(decode_kv(v.value())?);
                    }
                    out.count += 1;
                }
            }
        }
        return Ok(out);
    }
    // A past revision: walk every version in the key range; per key, the
    // newest version at or below `rev` decides whether the key existed.
    let rev = rev as u64;
    let lo: (&[u8], u64, u64) = (range.start(), 0, 0);
    let iter = match range {
        KeyRange::Single(k) => {
            key_revs.range::<(&[u8], u64, u64)>(lo..=(k.as_slice(), rev, u64::MAX))?
        }
        KeyRange::Bounded(_, e) => key_revs.range::<(&[u8], u64, u64)>(lo..(e.as_slice(), 0, 0))?,
        KeyRange::From(_) => key_revs.range::<(&[u8], u64, u64)>(lo..)?,
    };
    // The key being walked and its newest version at or below `rev`.
    struct Newest {
        key: Vec<u8>,
        at: Option<(u64, u64)>,
    }
    let finish = |n: Option<Newest>, out: &mut RangeResult| -> Result<(), MvccError> {
        let Some(at) = n.and_then(|n| n.at) else {
            return Ok(());
        };
        if let Some(v) = events.get(at)? {
            let rec = decode_record(v.value())?;
            if !rec.tombstone {
                if want(out) {
                    out.kvs.push(rec.kv);
                }
                out.count += 1;
            }
        }
        Ok(())
    };
    let mut current: Option<Newest> = None;
    for item in iter {
        let (k, _) = item?;
        let (key, main, sub) = k.value();
        if current.as_ref().is_none_or(|c| c.key.as_slice() != key) {
            finish(current.take(), &mut out)?;
            current = Some(Newest {
                key: key.to_vec(),
                at: None,
            });
        }
        if main <= rev {
            if let Some(c) = current.as_mut() {
                c.at = Some((main, sub));
            }
        }
    }
    finish(current.take(), &mut out)?;
    Ok(out)
}

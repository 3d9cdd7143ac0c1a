//! Writing one revision: etcd's `storeTxnWrite`. Every put and delete of one
//! write transaction gets the same main revision and its own sub revision.

use super::codec::{decode_kv, decode_record, encode_record};
use super::range::{KeyRange, RangeOptions, RangeResult};
use super::store::WriteTables;
use super::MvccError;
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use redb::ReadableTable;

/// Something keys can be read from at a revision: a read view or a write in progress.
pub trait KvView {
    fn range(&self, r: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError>;
    /// The current revision as this view sees it.
    fn rev(&self) -> i64;
    fn compact_rev(&self) -> i64;
}

impl KvView for super::ReadView {
    fn range(&self, r: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        super::ReadView::range(self, r, opts)
    }
    fn rev(&self) -> i64 {
        self.rev
    }
    fn compact_rev(&self) -> i64 {
        self.compact_rev
    }
}

/// One write transaction (one revision if it changes anything).
pub struct TxnWrite<'a, 't> {
    tables: &'a mut WriteTables<'t>,
    begin_rev: i64,
    compact_rev: i64,
    sub: u64,
    changes: Vec<Event>,
}

impl<'a, 't> TxnWrite<'a, 't> {
    pub fn new(tables: &'a mut WriteTables<'t>, begin_rev: i64, compact_rev: i64) -> Self {
        TxnWrite {
            tables,
            begin_rev,
            compact_rev,
            sub: 0,
            changes: Vec::new(),
        }
    }

    pub fn begin_rev(&self) -> i64 {
        self.begin_rev
    }

    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    fn main(&self) -> u64 {
        (self.begin_rev + 1) as u64
    }

    /// Puts a key; returns its previous live version, if any.
    pub fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<Option<KeyValue>, MvccError> {
        let main = self.main();
        let sub = self.sub;
        self.sub += 1;
        let prev = match self.tables.latest.get(key)? {
            Some(v) => Some(decode_kv(v.value())?),
            None => None,
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(main as i64, |p| p.create_revision),
            mod_revision: main as i64,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.to_vec(),
            lease,
        };
        self.tables
            .events
            .insert((main, sub), encode_record(false, &kv).as_slice())?;
        self.tables.key_revs.insert((key, main, sub), ())?;
        self.tables.insert_latest(&kv)?;
        self.changes.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        });
        Ok(prev)
    }

    /// Deletes every live key in the range; returns the deleted versions.
    pub fn delete_range(&mut self, r: &KeyRange) -> Result<Vec<KeyValue>, MvccError> {
        let existing = self.range(r, RangeOptions::default())?.kvs;
        let main = self.main();
        for kv in &existing {
            let sub = self.sub;
            self.sub += 1;
            let tomb = KeyValue {
                key: kv.key.clone(),
                mod_revision: main as i64,
                ..Default::default()
            };
            self.tables
                .events
                .insert((main, sub), encode_record(true, &tomb).as_slice())?;
            self.tables
                .key_revs
                .insert((kv.key.as_slice(), main, sub), ())?;
            self.tables.latest.remove(kv.key.as_slice())?;
            self.changes.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(tomb),
                prev_kv: None,
            });
        }
        Ok(existing)
    }

    /// The revision this transaction ends at and the events it produced.
    pub fn finish(self) -> (i64, Vec<Event>) {
        (KvView::rev(&self), self.changes)
    }
}

impl KvView for TxnWrite<'_, '_> {
    fn range(&self, r: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        self.tables
            .range(KvView::rev(self), self.compact_rev, r, opts)
    }
    fn rev(&self) -> i64 {
        self.begin_rev + i64::from(!self.changes.is_empty())
    }
    fn compact_rev(&self) -> i64 {
        self.compact_rev
    }
}

/// Removes history made obsolete by compacting at `rev`: for every version in
/// `(prev_compact, rev]`, the versions of the same key before it go, and a
/// tombstone goes itself. What remains at or below `rev` is, per key, only
/// its live version as of `rev` (etcd's `keyIndex.keep`).
pub fn compact(
    tables: &mut WriteTables<'_>,
    prev_compact: i64,
    rev: i64,
) -> Result<usize, MvccError> {
    let mut versions: Vec<(Vec<u8>, u64, u64, bool)> = Vec::new();
    for item in tables
        .events
        .range::<(u64, u64)>(((prev_compact + 1).max(0) as u64, 0)..=(rev as u64, u64::MAX))?
    {
        let (k, v) = item?;
        let (main, sub) = k.value();
        let rec = decode_record(v.value())?;
        versions.push((rec.kv.key, main, sub, rec.tombstone));
    }
    let mut removed = 0;
    for (key, main, sub, tombstone) in versions {
        let older: Vec<(u64, u64)> = tables
            .key_revs
            .range::<(&[u8], u64, u64)>((key.as_slice(), 0, 0)..(key.as_slice(), main, sub))?
            .map(|item| item.map(|(k, _)| (k.value().1, k.value().2)))
            .collect::<Result<_, _>>()?;
        for (m, s) in older {
            tables.key_revs.remove((key.as_slice(), m, s))?;
            tables.events.remove((m, s))?;
            removed += 1;
        }
        if tombstone {
            tables.key_revs.remove((key.as_slice(), main, sub))?;
            tables.events.remove((main, sub))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Store;

    fn versions(store: &Store) -> usize {
        let view = store.read().unwrap();
        view.events(0, view.rev, usize::MAX).unwrap().0.len()
    }

    #[test]
    fn compaction_removes_superseded_versions_and_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // rev 2..4: a three times; 5: delete a; 6: b.
        let mut rev = 1;
        for step in 0..5 {
            store
                .write(|t| {
                    let mut w = TxnWrite::new(t, rev, -1);
                    match step {
                        0..=2 => {
                            w.put(b"a", &[step as u8], 0)?;
                        }
                        3 => {
                            w.delete_range(&KeyRange::Single(b"a".to_vec()))?;
                        }
                        _ => {
                            w.put(b"b", b"1", 0)?;
                        }
                    }
                    rev = w.finish().0;
                    t.set_meta(crate::mvcc::store::META_REV, rev as u64)
                })
                .unwrap();
        }
        assert_eq!(versions(&store), 5, "history is kept until compaction");
        // Compacting at 4 keeps a's version at 4 (live then) and drops 2 and 3.
        store.write(|t| compact(t, -1, 4).map(|_| ())).unwrap();
        assert_eq!(versions(&store), 3);
        // Compacting at 6 drops a's last version and its tombstone; b stays.
        store.write(|t| compact(t, 4, 6).map(|_| ())).unwrap();
        let view = store.read().unwrap();
        let (left, _) = view.events(0, view.rev, usize::MAX).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kv.as_ref().unwrap().key, b"b");
    }
}

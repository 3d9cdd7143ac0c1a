//! Writing one revision: etcd's `storeTxnWrite`. Every put and delete of one
//! write transaction gets the same main revision and its own sub revision.

use super::codec::encode_record;
use super::index::Live;
use super::range::{KeyRange, RangeOptions, RangeResult};
use super::store::WriteTables;
use super::MvccError;
use ferrocd_proto::mvccpb::{event::EventType, Event, KeyValue};

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

    /// Puts a key; returns what the index knew of the live version it
    /// replaces, if any (the index, not the database: no read per put).
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<Option<Live>, MvccError> {
        let main = self.main();
        let sub = self.sub;
        self.sub += 1;
        let (new, prev) = self
            .tables
            .index
            .write()
            .put(key, (main, sub), lease)
            .map_err(MvccError::Storage)?;
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: new.create_revision,
            mod_revision: main as i64,
            version: new.version,
            value: value.to_vec(),
            lease,
        };
        self.tables
            .events
            .insert((main, sub), encode_record(false, &kv).as_slice())?;
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
                .index
                .write()
                .delete(&kv.key, (main, sub))
                .map_err(MvccError::Storage)?;
            self.tables
                .events
                .insert((main, sub), encode_record(true, &tomb).as_slice())?;
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

/// Removes history made obsolete by compacting at `rev`: per key, every
/// version before its version live at `rev`, and a tombstone at or below
/// `rev` itself (etcd's `keyIndex.compact`). Returns how many versions went.
pub fn compact(tables: &mut WriteTables<'_>, rev: i64) -> Result<usize, MvccError> {
    let removed = tables.index.write().compact(rev);
    for at in &removed {
        tables.events.remove(*at)?;
    }
    // The versions are gone from the transaction, not yet from the file.
    fail::fail_point!("compactBeforeCommit");
    Ok(removed.len())
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
        store.write(|t| compact(t, 4).map(|_| ())).unwrap();
        assert_eq!(versions(&store), 3);
        // Compacting at 6 drops a's last version and its tombstone; b stays.
        store.write(|t| compact(t, 6).map(|_| ())).unwrap();
        let view = store.read().unwrap();
        let (left, _) = view.events(0, view.rev, usize::MAX).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kv.as_ref().unwrap().key, b"b");
    }

    /// Applies one write transaction on top of `rev` and records the new revision.
    fn step(
        store: &Store,
        rev: &mut i64,
        f: impl FnOnce(&mut TxnWrite<'_, '_>) -> Result<(), MvccError>,
    ) -> Result<(), MvccError> {
        store.write(|t| {
            let mut w = TxnWrite::new(t, *rev, -1);
            f(&mut w)?;
            let next = w.finish().0;
            t.set_meta(crate::mvcc::store::META_REV, next as u64)?;
            *rev = next;
            Ok(())
        })
    }

    fn everything_at(store: &Store, rev: i64) -> Result<RangeResult, MvccError> {
        let opts = RangeOptions {
            rev,
            ..Default::default()
        };
        store.read()?.range(&KeyRange::From(Vec::new()), opts)
    }

    #[test]
    fn reopening_rebuilds_the_index_that_answered_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut rev = 1;
        for i in 0..30u8 {
            let key = [b'k', i % 7];
            step(&store, &mut rev, |w| {
                if i % 5 == 4 {
                    w.delete_range(&KeyRange::Bounded(key.to_vec(), vec![b'k', 5]))?;
                } else {
                    w.put(&key, &[i], 0)?;
                }
                Ok(())
            })
            .unwrap();
        }
        store
            .write(|t| {
                compact(t, 12)?;
                t.set_meta(crate::mvcc::store::META_COMPACT_REV, 12)
            })
            .unwrap();
        let before: Vec<_> = (10..=rev).map(|r| everything_at(&store, r)).collect();
        assert_eq!(before[0], Err(MvccError::Compacted));
        assert!(before[2].as_ref().unwrap().count > 0);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let after: Vec<_> = (10..=rev).map(|r| everything_at(&store, r)).collect();
        assert_eq!(before, after);
        // The reloaded index carries on each key's generation: a put after
        // the restart continues the live key's version, a deleted key starts over.
        let live = everything_at(&store, 0).unwrap().kvs;
        for i in 0..7u8 {
            let key = [b'k', i];
            step(&store, &mut rev, |w| w.put(&key, b"again", 0).map(|_| ())).unwrap();
            let now = everything_at(&store, 0).unwrap().kvs;
            let kv = now.iter().find(|kv| kv.key == key).unwrap();
            match live.iter().find(|kv| kv.key == key) {
                Some(old) => assert_eq!(
                    (kv.create_revision, kv.version),
                    (old.create_revision, old.version + 1)
                ),
                None => assert_eq!((kv.create_revision, kv.version), (rev, 1)),
            }
        }
        assert!(live.len() < 7, "the history deletes some keys");
    }

    #[test]
    fn a_failed_write_leaves_nothing_in_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut rev = 1;
        step(&store, &mut rev, |w| w.put(b"a", b"1", 0).map(|_| ())).unwrap();
        let failed = step(&store, &mut rev, |w| {
            w.put(b"b", b"1", 0)?;
            w.put(b"a", b"2", 0)?;
            Err(MvccError::Storage("disk full".into()))
        });
        assert!(failed.is_err());
        assert_eq!(rev, 2);
        let now = everything_at(&store, 0).unwrap();
        assert_eq!(now.kvs.len(), 1);
        assert_eq!(now.kvs[0].value, b"1");
        // The next write sees a's committed version, not the aborted one.
        let mut prev = None;
        step(&store, &mut rev, |w| {
            prev = w.put(b"a", b"3", 0)?;
            Ok(())
        })
        .unwrap();
        let committed = Live {
            create_revision: 2,
            version: 1,
            lease: 0,
        };
        assert_eq!(prev, Some(committed));
    }

    #[test]
    fn key_tables_of_earlier_builds_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let path = dir.path().join("member/db");
        let legacy: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("latest");
        {
            let db = redb::Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(legacy)
                .unwrap()
                .insert(&b"k"[..], &b"v"[..])
                .unwrap();
            tx.commit().unwrap();
        }
        drop(Store::open(dir.path()).unwrap());
        let db = redb::Database::open(&path).unwrap();
        let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
        assert!(matches!(
            tx.open_table(legacy),
            Err(redb::TableError::TableDoesNotExist(_))
        ));
    }
}

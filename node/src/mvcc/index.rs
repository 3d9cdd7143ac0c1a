//! The in-memory key index (etcd's `treeIndex`): for every key, the
//! revisions of its versions in order. The database keeps versions only by
//! revision (`events`), so a put appends at the end of one table instead of
//! rewriting two random leaves of key-ordered tables; reads find the
//! revision here and fetch the version from `events`.
//!
//! The index runs ahead of committed data: a write adds its revisions before
//! its transaction commits, so readers only consider revisions at or below
//! their view's revision.

use super::range::KeyRange;
use ferrocd_proto::mvccpb::KeyValue;
use smallvec::{smallvec, SmallVec};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// (main, sub) revision: the key of a version in `events`.
pub type Revision = (u64, u64);

/// One version of a key as the index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    main: u64,
    // Sub revisions count the changes of one transaction; u32 keeps a
    // version at 16 bytes.
    sub: u32,
    tombstone: bool,
}

impl Version {
    fn revision(self) -> Revision {
        (self.main, u64::from(self.sub))
    }
}

/// The index shared by the store's writer and its read views.
#[derive(Debug, Default)]
pub struct SharedIndex(RwLock<KeyIndex>);

impl SharedIndex {
    // A poisoned lock means a panic elsewhere; the next write that fails
    // rebuilds the index from the database anyway.
    pub fn read(&self) -> RwLockReadGuard<'_, KeyIndex> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, KeyIndex> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a write needs of a key's newest version without reading it from
/// the database: the fields the next version derives from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
}

#[derive(Debug)]
struct History {
    /// Oldest first. Most keys have one version, kept inline: a vector's
    /// 16-byte allocation per key was 1.6 MB of 100k keys.
    versions: SmallVec<[Version; 1]>,
    /// The newest version's fields (stale when it is a tombstone).
    newest: Live,
}

impl History {
    /// The newest version's fields if it is live.
    fn live(&self) -> Option<Live> {
        let newest = self.versions.last()?;
        (!newest.tombstone).then_some(self.newest)
    }
}

#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Box<[u8]>, History>,
    /// Versions superseded at or below this revision are gone.
    compact_rev: i64,
    /// Bumped when the whole content is replaced (a snapshot install), so a
    /// read view taken before can tell that the index no longer matches it.
    epoch: u64,
}

/// What a range lookup found: the revisions to fetch (up to the limit) and
/// how many keys are live in the range.
#[derive(Debug, Default)]
pub struct Found {
    pub revisions: Vec<Revision>,
    pub count: i64,
}

fn new_version(revision: Revision, tombstone: bool) -> Result<Version, String> {
    let sub = u32::try_from(revision.1)
        .map_err(|_| format!("revision {} has too many changes", revision.0))?;
    Ok(Version {
        main: revision.0,
        sub,
        tombstone,
    })
}

/// The version live at `rev`: the newest at or below it, unless a tombstone.
fn live_at(versions: &[Version], rev: u64) -> Option<Version> {
    let n = versions.partition_point(|v| v.main <= rev);
    versions[..n].last().copied().filter(|v| !v.tombstone)
}

impl KeyIndex {
    /// How many keys are live now (etcd_debugging_mvcc_keys_total).
    pub fn live_keys(&self) -> u64 {
        self.keys.values().filter(|h| h.live().is_some()).count() as u64
    }

    pub fn compact_rev(&self) -> i64 {
        self.compact_rev
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The versions live at `rev` in `range`, in key order; at most `limit`
    /// revisions (0: all, `count_only`: none) while `count` counts them all.
    pub fn range(&self, range: &KeyRange, rev: u64, limit: usize, count_only: bool) -> Found {
        let mut found = Found::default();
        let mut visit = |history: &History| {
            if let Some(v) = live_at(&history.versions, rev) {
                found.count += 1;
                if !count_only && (limit == 0 || found.revisions.len() < limit) {
                    found.revisions.push(v.revision());
                }
            }
        };
        match range {
            KeyRange::Single(k) => {
                if let Some(history) = self.keys.get(k.as_slice()) {
                    visit(history);
                }
            }
            // An empty or inverted range would make BTreeMap::range panic.
            _ if range.is_empty() => {}
            KeyRange::Bounded(s, e) => {
                let bounds = (Bound::Included(s.as_slice()), Bound::Excluded(e.as_slice()));
                self.keys
                    .range::<[u8], _>(bounds)
                    .for_each(|(_, v)| visit(v));
            }
            KeyRange::From(s) => {
                let bounds = (Bound::Included(s.as_slice()), Bound::Unbounded);
                self.keys
                    .range::<[u8], _>(bounds)
                    .for_each(|(_, v)| visit(v));
            }
        }
        found
    }

    /// Records a put of `key` at `revision` (revisions only grow). Returns
    /// the new version's fields and those of the live version it replaces.
    pub fn put(
        &mut self,
        key: &[u8],
        revision: Revision,
        lease: i64,
    ) -> Result<(Live, Option<Live>), String> {
        let version = new_version(revision, false)?;
        let first = Live {
            create_revision: revision.0 as i64,
            version: 1,
            lease,
        };
        let Some(history) = self.keys.get_mut(key) else {
            let history = History {
                versions: smallvec![version],
                newest: first,
            };
            self.keys.insert(key.into(), history);
            return Ok((first, None));
        };
        let replaced = history.live();
        let new = match replaced {
            Some(prev) => Live {
                create_revision: prev.create_revision,
                version: prev.version + 1,
                lease,
            },
            None => first,
        };
        history.versions.push(version);
        history.newest = new;
        Ok((new, replaced))
    }

    /// Records a delete of `key` at `revision`.
    pub fn delete(&mut self, key: &[u8], revision: Revision) -> Result<(), String> {
        let version = new_version(revision, true)?;
        match self.keys.get_mut(key) {
            Some(history) => history.versions.push(version),
            None => return Err(format!("delete of a key never written at {}", revision.0)),
        }
        Ok(())
    }

    /// Records a stored version while loading, in revision order; the
    /// record carries the fields a put would have derived.
    pub fn load(
        &mut self,
        revision: Revision,
        tombstone: bool,
        kv: &KeyValue,
    ) -> Result<(), String> {
        let version = new_version(revision, tombstone)?;
        let newest = Live {
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        };
        match self.keys.get_mut(kv.key.as_slice()) {
            Some(history) => {
                history.versions.push(version);
                if !tombstone {
                    history.newest = newest;
                }
            }
            // A tombstone first only if the put it ended is missing
            // (compaction keeps that put); it then ends a key with no past.
            None => {
                let history = History {
                    versions: smallvec![version],
                    newest,
                };
                self.keys.insert(kv.key.as_slice().into(), history);
            }
        }
        Ok(())
    }

    /// Forgets what compacting at `rev` makes unreadable (etcd's
    /// `keyIndex.compact`): per key, every version below its version live at
    /// `rev`, and a tombstone at or below `rev` with what precedes it.
    /// Returns the revisions to delete from `events`.
    pub fn compact(&mut self, rev: i64) -> Vec<Revision> {
        let mut removed = Vec::new();
        let at = rev.max(0) as u64;
        self.keys.retain(|_, history| {
            let versions = &mut history.versions;
            let n = versions.partition_point(|v| v.main <= at);
            let drop = match versions[..n].last() {
                Some(v) if v.tombstone => n,
                Some(_) => n - 1,
                None => 0,
            };
            removed.extend(versions.drain(..drop).map(Version::revision));
            if versions.is_empty() {
                return false;
            }
            if versions.capacity() > 2 * versions.len() {
                versions.shrink_to_fit();
            }
            true
        });
        self.compact_rev = self.compact_rev.max(rev);
        removed
    }

    /// Starts over empty (before reloading from the database).
    pub fn reset(&mut self, compact_rev: i64) {
        self.keys = BTreeMap::new();
        self.compact_rev = compact_rev;
        self.epoch += 1;
    }

    /// Keys with at least one version kept.
    #[cfg(test)]
    fn key_count(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_with_its_one_version_inline_is_as_small_as_with_a_vector() {
        assert_eq!(std::mem::size_of::<SmallVec<[Version; 1]>>(), 24);
        assert_eq!(std::mem::size_of::<History>(), 48);
    }

    /// The revision of `key`'s version live at `rev`.
    fn get(idx: &KeyIndex, key: &[u8], rev: u64) -> Option<Revision> {
        let single = KeyRange::Single(key.to_vec());
        idx.range(&single, rev, 0, false).revisions.pop()
    }

    fn index(history: &[(&str, u64, bool)]) -> KeyIndex {
        let mut idx = KeyIndex::default();
        for &(k, main, tomb) in history {
            if tomb {
                idx.delete(k.as_bytes(), (main, 0)).unwrap();
            } else {
                idx.put(k.as_bytes(), (main, 0), 0).unwrap();
            }
        }
        idx
    }

    #[test]
    fn reads_the_version_live_at_a_revision() {
        // a: put 2, put 3, deleted 4, put 6. b: put 5.
        let idx = index(&[
            ("a", 2, false),
            ("a", 3, false),
            ("a", 4, true),
            ("b", 5, false),
            ("a", 6, false),
        ]);
        assert_eq!(get(&idx, b"a", 1), None);
        assert_eq!(get(&idx, b"a", 2), Some((2, 0)));
        assert_eq!(get(&idx, b"a", 3), Some((3, 0)));
        assert_eq!(get(&idx, b"a", 4), None, "deleted at 4");
        assert_eq!(get(&idx, b"a", 5), None);
        assert_eq!(get(&idx, b"a", u64::MAX), Some((6, 0)));
        let all = KeyRange::From(b"".to_vec());
        let at5 = idx.range(&all, 5, 0, false);
        assert_eq!((at5.revisions, at5.count), (vec![(5, 0)], 1));
        let at6 = idx.range(&all, 6, 1, false);
        assert_eq!((at6.revisions, at6.count), (vec![(6, 0)], 2), "limit 1");
        let counted = idx.range(&all, 6, 0, true);
        assert_eq!((counted.revisions.len(), counted.count), (0, 2));
        let inverted = KeyRange::Bounded(b"b".to_vec(), b"a".to_vec());
        assert_eq!(idx.range(&inverted, 6, 0, false).count, 0);
    }

    #[test]
    fn compaction_keeps_only_what_later_reads_need() {
        let mut idx = index(&[
            ("a", 2, false),
            ("a", 3, false),
            ("a", 4, true),
            ("b", 5, false),
            ("a", 6, false),
            ("c", 7, false),
            ("c", 8, true),
        ]);
        // At 5: a's versions 2, 3 and the tombstone 4 go; b's 5 stays.
        let mut removed = idx.compact(5);
        removed.sort();
        assert_eq!(removed, vec![(2, 0), (3, 0), (4, 0)]);
        assert_eq!(get(&idx, b"a", 6), Some((6, 0)));
        assert_eq!(get(&idx, b"b", 5), Some((5, 0)));
        // At 8: c is gone entirely, a and b keep their live versions.
        let mut removed = idx.compact(8);
        removed.sort();
        assert_eq!(removed, vec![(7, 0), (8, 0)]);
        assert_eq!(idx.key_count(), 2);
        assert_eq!(idx.compact_rev(), 8);
    }
}

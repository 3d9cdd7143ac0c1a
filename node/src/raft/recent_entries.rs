//! The newest raft log entries, kept in memory beside the WAL so that the
//! leader's replication streams read them without the WAL's lock. An
//! append holds that lock through its fsync: a stream reading the batch
//! the followers still miss waited for the next batch's sync, and blocked
//! a runtime worker while it waited. Also saves a pread, a checksum and a
//! decode per entry and follower.

use super::Entry;
use openraft::EntryPayload;
use std::collections::VecDeque;

/// Memory kept for entries (at least the newest one is kept, whatever its
/// size): many batches of small writes, a few of the largest.
pub const LIMIT_BYTES: usize = 4 << 20;

/// A suffix of the log without gaps: every entry the WAL holds from the
/// first one here on is here, none that it does not hold.
pub struct RecentEntries {
    entries: VecDeque<Entry>,
    bytes: usize,
    limit: usize,
}

/// What an entry costs in memory, roughly: its commands' bytes plus a
/// fixed overhead per command and per entry.
fn cost(entry: &Entry) -> usize {
    const OVERHEAD: usize = 64;
    match &entry.payload {
        EntryPayload::Normal(batch) => {
            OVERHEAD
                + batch
                    .commands
                    .iter()
                    .map(|c| OVERHEAD + c.entry.len())
                    .sum::<usize>()
        }
        // A membership: a few members' names and URLs.
        EntryPayload::Membership(_) => 16 * OVERHEAD,
        EntryPayload::Blank => OVERHEAD,
    }
}

impl RecentEntries {
    pub fn new(limit: usize) -> RecentEntries {
        RecentEntries {
            entries: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }

    /// The log's entries with index in `[start, end)`, if this suffix
    /// covers `start` (`None`: ask the WAL).
    pub fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        if start < first {
            return None;
        }
        let from = usize::try_from(start - first).unwrap_or(usize::MAX);
        let to = usize::try_from(end.saturating_sub(first))
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        Some(if from < to {
            self.entries.range(from..to).cloned().collect()
        } else {
            Vec::new()
        })
    }

    /// Adds entries the WAL has just made durable. Entries that do not
    /// follow the newest one here (the WAL started again after a snapshot
    /// install) replace everything.
    pub fn push(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            let follows = self
                .entries
                .back()
                .is_none_or(|last| last.log_id.index + 1 == entry.log_id.index);
            if !follows {
                self.clear();
            }
            self.bytes += cost(&entry);
            self.entries.push_back(entry);
        }
        while self.bytes > self.limit && self.entries.len() > 1 {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= cost(&e);
        }
    }

    /// Forgets the entries from `index` on (the WAL is truncating them).
    pub fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.log_id.index >= index) {
            if let Some(e) = self.entries.pop_back() {
                self.bytes -= cost(&e);
            }
        }
    }

    /// Forgets the entries up to `index`, inclusive (the WAL purges them).
    pub fn purge(&mut self, index: u64) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.log_id.index <= index)
        {
            self.pop_front();
        }
    }

    /// Forgets everything (the WAL failed: what it holds is unknown).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, size: usize) -> Entry {
        crate::raft::wal::recovery_check::entry(index, 1, size)
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|es| es.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn serves_only_ranges_starting_inside_the_suffix() {
        let mut r = RecentEntries::new(LIMIT_BYTES);
        assert_eq!(indexes(r.get(1, 5)), None, "empty: ask the WAL");
        r.push((5..10).map(|i| entry(i, 10)).collect());
        assert_eq!(indexes(r.get(4, 8)), None);
        assert_eq!(indexes(r.get(5, 8)), Some(vec![5, 6, 7]));
        assert_eq!(indexes(r.get(7, u64::MAX)), Some(vec![7, 8, 9]));
        assert_eq!(indexes(r.get(10, 20)), Some(vec![]), "past the end");
        assert_eq!(indexes(r.get(8, 8)), Some(vec![]));
    }

    #[test]
    fn truncate_purge_and_a_gap_keep_it_a_suffix_of_the_log() {
        let mut r = RecentEntries::new(LIMIT_BYTES);
        r.push((1..10).map(|i| entry(i, 10)).collect());
        r.truncate(7);
        assert_eq!(indexes(r.get(1, 20)), Some(vec![1, 2, 3, 4, 5, 6]));
        r.push(vec![entry(7, 10)]);
        r.purge(3);
        assert_eq!(indexes(r.get(3, 20)), None);
        assert_eq!(indexes(r.get(4, 20)), Some(vec![4, 5, 6, 7]));
        // A snapshot install: the WAL starts again further on.
        r.push(vec![entry(100, 10), entry(101, 10)]);
        assert_eq!(indexes(r.get(4, 20)), None);
        assert_eq!(indexes(r.get(100, 200)), Some(vec![100, 101]));
        r.truncate(0);
        assert_eq!(indexes(r.get(100, 200)), None);
    }

    #[test]
    fn memory_stays_bounded_and_the_newest_entry_stays() {
        let mut r = RecentEntries::new(10_000);
        r.push((1..=100).map(|i| entry(i, 1000)).collect());
        let first = r.first_index().unwrap();
        let kept = indexes(r.get(first, u64::MAX)).unwrap();
        assert_eq!(kept.last(), Some(&100));
        assert!(kept.len() < 10, "{} entries kept", kept.len());
        assert!(r.bytes <= 10_000, "{} bytes", r.bytes);
        r.push(vec![entry(101, 50_000)]);
        assert_eq!(indexes(r.get(101, 102)), Some(vec![101]), "alone, too big");
        assert_eq!(indexes(r.get(100, 102)), None);
    }
}

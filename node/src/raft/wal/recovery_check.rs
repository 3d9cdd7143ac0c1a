//! The raft log's recovery property, run by the fuzzer
//! (`fuzz/fuzz_targets/wal_recovery.rs`) and by unit tests: a log written
//! whole, then damaged (bytes changed inside what was written, or zeroed
//! from some offset on as a torn write leaves it), opens either refused or
//! as a prefix of what was written that holds at least every record ending
//! before the first damaged byte. Never a panic, never an entry that was
//! not written, never one past a damaged record.

use super::{encode_record, Wal, SEGMENT_BYTES};
use crate::raft::{Batch, Command, Entry, LogId};
use openraft::{CommittedLeaderId, EntryPayload};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// An entry of `size` command bytes (a blank one for 0); also the unit
/// tests' sample entry.
pub(crate) fn entry(index: u64, term: u64, size: usize) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: if size == 0 {
            EntryPayload::Blank
        } else {
            EntryPayload::Normal(Batch {
                commands: vec![Command {
                    id: index,
                    entry: vec![index as u8; size],
                }],
            })
        },
    }
}

/// A directory of its own per case, removed afterwards (also when the
/// property fails), on tmpfs when there is one: each case preallocates and
/// syncs a segment. (No tempfile: it is a dev-dependency, and the fuzzer
/// builds this module into the library.)
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static CASES: AtomicU64 = AtomicU64::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let name = format!(
            "ferrocd-wal-check-{}-{}",
            std::process::id(),
            CASES.fetch_add(1, Ordering::Relaxed)
        );
        Scratch(base.join(name))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bytes_of(e: &Entry) -> Vec<u8> {
    bincode::serialize(e).unwrap_or_default()
}

/// Runs the property on one input; panics when it does not hold.
pub fn check(data: &[u8]) {
    let mut input = data.iter().copied();
    let mut next = move || input.next();
    let count = 1 + usize::from(next().unwrap_or(0)) % 48;
    let scratch = Scratch::new();
    let dir = scratch.0.join("wal");

    let written: Vec<Entry> = (1..=count as u64)
        .map(|i| entry(i, 1 + i / 8, usize::from(next().unwrap_or(0)) * 3))
        .collect();
    let mut ends = Vec::with_capacity(count);
    let mut encoded = Vec::new();
    for e in &written {
        encode_record(e, &mut encoded).unwrap_or_else(|e| panic!("encode: {e}"));
        ends.push(encoded.len() as u64);
    }
    {
        let mut wal = Wal::open(&dir).unwrap_or_else(|e| panic!("open a new log: {e}"));
        // Appended in batches of one to four.
        let mut at = 0;
        while at < written.len() {
            let n = (1 + usize::from(next().unwrap_or(0)) % 4).min(written.len() - at);
            wal.append(&written[at..at + n])
                .unwrap_or_else(|e| panic!("append: {e}"));
            at += n;
        }
    }
    let tail = encoded.len() as u64;
    assert!(tail < SEGMENT_BYTES, "one segment");
    let segment = dir.join(super::segment_name(1));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap_or_else(|e| panic!("{}: {e}", segment.display()));

    // Damage: (offset, xor) pairs; xor 0 zeroes everything from the offset.
    let mut first_damage = tail;
    while let (Some(hi), Some(lo), Some(xor)) = (next(), next(), next()) {
        let offset = u64::from(u16::from_be_bytes([hi, lo])) % tail;
        first_damage = first_damage.min(offset);
        if xor == 0 {
            let zeros = vec![0u8; (tail - offset) as usize];
            file.write_all_at(&zeros, offset)
                .unwrap_or_else(|e| panic!("write: {e}"));
        } else {
            let mut b = [0u8];
            file.read_exact_at(&mut b, offset)
                .unwrap_or_else(|e| panic!("read: {e}"));
            file.write_all_at(&[b[0] ^ xor], offset)
                .unwrap_or_else(|e| panic!("write: {e}"));
        }
    }
    drop(file);

    let Ok(wal) = Wal::open(&dir) else {
        assert!(first_damage < tail, "an undamaged log was refused");
        return;
    };
    let last = wal.last().map_or(0, |l| l.index);
    let got = wal
        .read(1, last + 1)
        .unwrap_or_else(|e| panic!("reading the {last} entries it recovered: {e}"));
    assert_eq!(got.len() as u64, last, "entries 1..={last} without a gap");
    assert!(
        got.len() <= count,
        "{} entries from {count} written",
        got.len()
    );
    for (g, w) in got.iter().zip(&written) {
        assert_eq!(
            bytes_of(g),
            bytes_of(w),
            "entry {} is not the one written",
            w.log_id.index
        );
    }
    let intact = ends.iter().filter(|&&end| end <= first_damage).count();
    assert!(
        got.len() >= intact,
        "{} entries recovered; the first {intact} were untouched",
        got.len()
    );
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn an_undamaged_log_opens_whole() {
        check(&[20, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn damage_in_a_record_keeps_the_records_before_it() {
        // Ten entries; a bit flipped at offset 300, then a torn tail from 900.
        check(&[
            10, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 3, 3, 3, 0, 0x01, 0x2c, 0x40, 0x03, 0x84, 0,
        ]);
    }

    #[test]
    fn a_length_field_damaged_into_gigabytes_is_read_as_the_end() {
        // The highest byte of the second record's length.
        let first = 8 + 50; // header + a small entry, roughly: any offset in the header will do
        for offset in first..first + 16u16 {
            let [hi, lo] = offset.to_be_bytes();
            check(&[3, 0, 0, 0, 1, 1, 1, hi, lo, 0xff]);
        }
    }
}

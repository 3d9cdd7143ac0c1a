//! The raft log recovers from any damage to a segment as a prefix of what
//! was written, or refuses to open (node/src/raft/wal/recovery_check.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferrocd::raft::wal::recovery_check::check(data);
});

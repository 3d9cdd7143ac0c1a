//! The redb database behind a member: table definitions, opening, read views
//! and the set of tables a write batch works on.

use super::codec::{decode_record, encode_record, Record};
use super::index::{KeyIndex, SharedIndex};
use super::range::{self, EventKey, KeyRange, RangeOptions, RangeResult};
use super::MvccError;
use ferrocd_proto::mvccpb::{event::EventType, Event, KeyValue};
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Every version by revision; the key index is rebuilt from it at start.
pub(crate) const EVENTS: TableDefinition<EventKey, &[u8]> = TableDefinition::new("events");
/// Counters: current revision, compacted revision, applied log index.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Lease ID -> encoded `ferrocdpb.LeaseRecord`.
pub(crate) const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("leases");
/// (member ID, alarm type) of every raised alarm.
pub(crate) const ALARMS: TableDefinition<(u64, i32), ()> = TableDefinition::new("alarms");
/// Opaque state of the layers above, written atomically with what they apply
/// (the raft layer's last applied log ID and membership).
pub(crate) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

pub const META_REV: &str = "revision";
pub const META_COMPACT_REV: &str = "compact_revision";
pub const META_APPLIED_INDEX: &str = "applied_index";
/// Who this member is, set when it first starts (or by a restore).
pub const META_MEMBER_ID: &str = "member_id";
pub const META_CLUSTER_ID: &str = "cluster_id";

/// Key-ordered tables of earlier builds, which kept keys on disk; their
/// content is derivable from `events`, so opening drops them.
const LEGACY_TABLES: [&str; 2] = ["latest", "key_revs"];

/// redb's page cache for the MVCC store. Writes only append to `events` and
/// reads find their version through the in-memory index, so a smaller cache
/// costs little (RSS with 100k keys of 256 bytes: 75 MiB at 32 MiB, 56 at 16).
const STORE_CACHE_BYTES: usize = 16 << 20;

/// redb's builder with [`STORE_CACHE_BYTES`]: the store and the copies a
/// raft snapshot is built into and installed from (redb's default, 1 GiB
/// with half for writes, held a whole copy in memory until its commit).
fn small_cache() -> redb::Builder {
    let mut builder = Database::builder();
    builder.set_cache_size(STORE_CACHE_BYTES);
    builder
}

/// The database file, shared by readers and the single writer. The lock is
/// taken exclusively only by defragmentation.
#[derive(Clone)]
pub struct Store {
    db: Arc<RwLock<Database>>,
    path: PathBuf,
    /// Lazy commits not yet made durable by [`Store::sync`].
    dirty: Arc<std::sync::atomic::AtomicBool>,
    index: Arc<SharedIndex>,
}

impl Store {
    /// Opens (or creates) `dir/member/db`.
    pub fn open(dir: &Path) -> Result<Store, MvccError> {
        let member = dir.join("member");
        std::fs::create_dir_all(&member)?;
        let path = member.join("db");
        // redb caches up to 1 GiB by default; the kernel's page cache holds
        // the file anyway, so a small cache keeps resident memory low.
        let db = small_cache().create(&path)?;
        let tx = db.begin_write()?;
        {
            for name in LEGACY_TABLES {
                let legacy: TableDefinition<&[u8], &[u8]> = TableDefinition::new(name);
                tx.delete_table(legacy)?;
            }
            // Create every table so read transactions never meet a missing one.
            tx.open_table(EVENTS)?;
            let mut meta = tx.open_table(META)?;
            // etcd's empty store is at revision 1; the first write makes 2.
            if meta.get(META_REV)?.is_none() {
                meta.insert(META_REV, 1)?;
            }
            tx.open_table(LEASES)?;
            tx.open_table(ALARMS)?;
            tx.open_table(STATE)?;
        }
        tx.commit()?;
        let store = Store {
            db: Arc::new(RwLock::new(db)),
            path,
            dirty: Arc::default(),
            index: Arc::default(),
        };
        store.load_index(&mut store.index.write())?;
        Ok(store)
    }

    /// Rebuilds the key index from `events` (etcd's `restore`).
    fn load_index(&self, index: &mut KeyIndex) -> Result<(), MvccError> {
        let tx = self.db().begin_read()?;
        let compact_rev = match tx.open_table(META)?.get(META_COMPACT_REV)? {
            Some(v) => v.value() as i64,
            None => -1,
        };
        index.reset(compact_rev);
        for item in tx.open_table(EVENTS)?.iter()? {
            let (k, v) = item?;
            let rec = decode_record(v.value())?;
            index
                .load(k.value(), rec.tombstone, &rec.kv)
                .map_err(MvccError::Storage)?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many keys are live now.
    pub fn live_keys(&self) -> u64 {
        self.index.read().live_keys()
    }

    fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        // A poisoned lock only means a defragmentation panicked; the database
        // itself stays consistent (redb is transactional).
        match self.db.try_read() {
            Ok(db) => db,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            // A defragmentation holds the database: wait for it without
            // holding a runtime worker, on which raft (heartbeats included)
            // and every other request run.
            Err(std::sync::TryLockError::WouldBlock) => {
                off_the_runtime(|| self.db.read().unwrap_or_else(|e| e.into_inner()))
            }
        }
    }

    /// A consistent read-only snapshot of the store.
    pub fn read(&self) -> Result<ReadView, MvccError> {
        // Taken under the index lock so that a snapshot install cannot slip
        // between the transaction and the epoch it is read with.
        let (tx, epoch) = {
            let index = self.index.read();
            (self.db().begin_read()?, index.epoch())
        };
        let meta = tx.open_table(META)?;
        let rev = get_meta(&meta, META_REV)? as i64;
        // No compaction yet reads as -1, as in etcd, so that compacting at 0 is allowed once.
        let compact_rev = match meta.get(META_COMPACT_REV)? {
            Some(v) => v.value() as i64,
            None => -1,
        };
        let applied_index = get_meta(&meta, META_APPLIED_INDEX)?;
        Ok(ReadView {
            index: self.index.clone(),
            epoch,
            events: tx.open_table(EVENTS)?,
            tx,
            rev,
            compact_rev,
            applied_index,
        })
    }

    /// Runs `f` on one write transaction and commits it durably (fsync)
    /// unless `f` fails.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<T, MvccError>,
    ) -> Result<T, MvccError> {
        self.write_with(true, f)
    }

    /// Like [`Store::write`] without the fsync: visible at once, durable at
    /// the next [`Store::sync`]. For state that can be rebuilt after a crash
    /// (the raft log replays what a crash lost).
    pub fn write_lazy<T>(
        &self,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<T, MvccError>,
    ) -> Result<T, MvccError> {
        self.write_with(false, f)
    }

    /// Makes every lazy commit durable (one fsync); a no-op when there is none.
    pub fn sync(&self) -> Result<(), MvccError> {
        if !self.dirty.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let tx = self.db().begin_write()?;
        tx.commit()?;
        Ok(())
    }

    fn write_with<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&mut WriteTables<'_>) -> Result<T, MvccError>,
    ) -> Result<T, MvccError> {
        let mut tx = self.db().begin_write()?;
        if !durable {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| MvccError::Storage(e.to_string()))?;
        }
        let out = WriteTables::open(&tx, &self.index).and_then(|mut tables| f(&mut tables));
        let committed = match out {
            Ok(out) => {
                fail::fail_point!("beforeCommit");
                let done = tx.commit().map(|()| out).map_err(MvccError::from);
                fail::fail_point!("afterCommit");
                done
            }
            Err(e) => Err(e),
        };
        let out = match committed {
            Ok(out) => out,
            Err(e) => {
                // The index holds what the failed transaction recorded.
                let mut index = self.index.write();
                if let Err(reload) = self.load_index(&mut index) {
                    tracing::error!(error = %reload, "rebuilding the key index failed");
                }
                return Err(e);
            }
        };
        if !durable {
            self.dirty.store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(out)
    }

    /// Size of the database file (etcd's dbSize; the quota compares against it).
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Bytes of the file holding live data (etcd's dbSizeInUse).
    pub fn size_in_use(&self) -> Result<u64, MvccError> {
        let tx = self.db().begin_write()?;
        let stats = tx.stats()?;
        let used = stats.allocated_pages() * stats.page_size() as u64;
        tx.abort()?;
        Ok(used)
    }

    /// Rewrites the file without free space (etcd's defragment). Waits for
    /// in-flight transactions; blocks new ones while it runs.
    pub fn defragment(&self) -> Result<(), MvccError> {
        for _ in 0..200 {
            let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
            fail::fail_point!("defragBeforeCompact");
            match db.compact() {
                Ok(_) => {
                    fail::fail_point!("defragAfterCompact");
                    return Ok(());
                }
                Err(redb::CompactionError::TransactionInProgress) => {
                    drop(db);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(MvccError::Storage(e.to_string())),
            }
        }
        Err(MvccError::Storage(
            "defragment: transactions kept the database busy".into(),
        ))
    }

    /// Writes a consistent copy of every table into a new database file at
    /// `dest` (a Maintenance.Snapshot body, or a raft snapshot).
    pub fn snapshot_to(&self, dest: &Path) -> Result<ReadView, MvccError> {
        // What a snapshot covers must be durable here first: the raft log
        // up to it may be purged once the snapshot exists.
        self.sync()?;
        let view = self.read()?;
        let out = small_cache().create(dest)?;
        let tx = out.begin_write()?;
        {
            copy_table(&view.events, &mut tx.open_table(EVENTS)?)?;
            copy_table(&view.tx.open_table(META)?, &mut tx.open_table(META)?)?;
            copy_table(&view.tx.open_table(LEASES)?, &mut tx.open_table(LEASES)?)?;
            copy_table(&view.tx.open_table(ALARMS)?, &mut tx.open_table(ALARMS)?)?;
            copy_table(&view.tx.open_table(STATE)?, &mut tx.open_table(STATE)?)?;
        }
        tx.commit()?;
        Ok(view)
    }

    /// Replaces every table's content with a snapshot file's (raft snapshot install).
    pub fn restore_from(&self, src: &Path) -> Result<(), MvccError> {
        let snap = small_cache().open(src)?;
        let from = snap.begin_read()?;
        // Readers wait while the content is swapped; views taken before see
        // an epoch that no longer matches.
        let mut index = self.index.write();
        let tx = self.db().begin_write()?;
        {
            replace_table(&from.open_table(EVENTS)?, &mut tx.open_table(EVENTS)?)?;
            // The snapshot is the leader's: its member ID is not this
            // member's (a restart would take the leader's identity).
            let mut meta = tx.open_table(META)?;
            let own: Vec<(&str, Option<u64>)> = [META_MEMBER_ID, META_CLUSTER_ID]
                .into_iter()
                .map(|k| Ok((k, meta.get(k)?.map(|v| v.value()))))
                .collect::<Result<_, MvccError>>()?;
            replace_table(&from.open_table(META)?, &mut meta)?;
            for (k, v) in own {
                match v {
                    Some(v) => meta.insert(k, v)?,
                    None => meta.remove(k)?,
                };
            }
            drop(meta);
            replace_table(&from.open_table(LEASES)?, &mut tx.open_table(LEASES)?)?;
            replace_table(&from.open_table(ALARMS)?, &mut tx.open_table(ALARMS)?)?;
            replace_table(&from.open_table(STATE)?, &mut tx.open_table(STATE)?)?;
        }
        let committed = tx.commit();
        // Reloaded whether or not the commit went through: either way the
        // index must match what the database now holds.
        self.load_index(&mut index)?;
        committed?;
        Ok(())
    }
}

fn replace_table<K, V>(
    from: &ReadOnlyTable<K, V>,
    to: &mut Table<'_, K, V>,
) -> Result<(), MvccError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
{
    to.retain(|_, _| false)?;
    copy_table(from, to)
}

fn copy_table<K, V>(from: &ReadOnlyTable<K, V>, to: &mut Table<'_, K, V>) -> Result<(), MvccError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
{
    for item in from.iter()? {
        let (k, v) = item?;
        to.insert(k.value(), v.value())?;
    }
    Ok(())
}

pub(crate) fn get_meta<T: ReadableTable<&'static str, u64>>(
    t: &T,
    key: &str,
) -> Result<u64, MvccError> {
    Ok(t.get(key)?.map(|v| v.value()).unwrap_or(0))
}

/// A consistent read-only view: one redb read transaction plus the counters
/// that were committed with it. Only `events` is opened up front: every
/// range reads it, while the other tables serve rare calls, and opening a
/// table costs about as much as the point read itself.
pub struct ReadView {
    index: Arc<SharedIndex>,
    epoch: u64,
    events: ReadOnlyTable<EventKey, &'static [u8]>,
    tx: ReadTransaction,
    /// The current revision in this view.
    pub rev: i64,
    /// The compacted revision in this view.
    pub compact_rev: i64,
    /// The index of the last applied log entry.
    pub applied_index: u64,
}

impl ReadView {
    pub fn range(&self, r: &KeyRange, opts: RangeOptions) -> Result<RangeResult, MvccError> {
        range::range(
            &self.index,
            Some(self.epoch),
            &self.events,
            self.rev,
            self.compact_rev,
            r,
            opts,
        )
    }

    /// The key's value as of `rev`, if it existed then (a watch event's prev_kv).
    pub fn get_at(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>, MvccError> {
        if rev <= 0 || rev < self.compact_rev {
            return Ok(None);
        }
        let r = self.range(
            &KeyRange::Single(key.to_vec()),
            RangeOptions {
                rev,
                ..Default::default()
            },
        );
        match r {
            Ok(mut r) => Ok(r.kvs.pop()),
            Err(MvccError::Compacted | MvccError::FutureRev) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Events with main revision in `[from, to]`, oldest first, at most
    /// `max_revs` distinct revisions. Returns the events and the revision to
    /// continue from.
    pub fn events(
        &self,
        from: i64,
        to: i64,
        max_revs: usize,
    ) -> Result<(Vec<Event>, i64), MvccError> {
        let mut out = Vec::new();
        let mut revs = 0usize;
        let mut last_main = 0u64;
        let mut next = to + 1;
        for item in self
            .events
            .range::<EventKey>((from.max(0) as u64, 0)..=(to.max(0) as u64, u64::MAX))?
        {
            let (k, v) = item?;
            let (main, _) = k.value();
            if main != last_main {
                if revs == max_revs {
                    next = main as i64;
                    break;
                }
                revs += 1;
                last_main = main;
            }
            let rec = decode_record(v.value())?;
            out.push(Event {
                r#type: if rec.tombstone {
                    EventType::Delete as i32
                } else {
                    EventType::Put as i32
                },
                kv: Some(rec.kv),
                prev_kv: None,
            });
        }
        Ok((out, next))
    }

    /// Every version in revision order (a snapshot being written).
    pub fn for_each_event<E: From<MvccError>>(
        &self,
        mut f: impl FnMut(EventKey, Record) -> Result<(), E>,
    ) -> Result<(), E> {
        for item in self.events.iter().map_err(MvccError::from)? {
            let (k, v) = item.map_err(MvccError::from)?;
            f(k.value(), decode_record(v.value())?)?;
        }
        Ok(())
    }

    /// A value the layers above stored with [`WriteTables::set_state`].
    pub fn state(&self, key: &str) -> Result<Option<Vec<u8>>, MvccError> {
        Ok(self
            .tx
            .open_table(STATE)?
            .get(key)?
            .map(|v| v.value().to_vec()))
    }

    /// Every value whose state key starts with `prefix`.
    pub fn state_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MvccError> {
        let mut out = Vec::new();
        for item in self.tx.open_table(STATE)?.range::<&str>(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Every lease record (ID, encoded record).
    pub fn leases(&self) -> Result<Vec<(i64, Vec<u8>)>, MvccError> {
        let mut out = Vec::new();
        for item in self.tx.open_table(LEASES)?.iter()? {
            let (k, v) = item?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Every raised alarm: (member ID, alarm type).
    pub fn alarms(&self) -> Result<Vec<(u64, i32)>, MvccError> {
        let mut out = Vec::new();
        for item in self.tx.open_table(ALARMS)?.iter()? {
            let (k, _) = item?;
            out.push(k.value());
        }
        Ok(out)
    }

    /// Every live key with its lease, to rebuild lease attachments at start.
    pub fn keys_with_leases(&self) -> Result<Vec<(Vec<u8>, i64)>, MvccError> {
        // The revisions first, so the index lock is not held while reading.
        let everything = KeyRange::From(Vec::new());
        let live = self
            .index
            .read()
            .range(&everything, self.rev.max(0) as u64, 0, false);
        let mut out = Vec::new();
        for at in live.revisions {
            let kv = range::fetch(&self.events, at)?.kv;
            if kv.lease != 0 {
                out.push((kv.key, kv.lease));
            }
        }
        Ok(out)
    }

    /// CRC-32C over the history up to `rev` (etcd's HashKV: equal on members
    /// that applied the same log).
    pub fn hash_kv(&self, rev: i64) -> Result<u32, MvccError> {
        let mut h = 0u32;
        for item in self
            .events
            .range::<EventKey>(..=(rev.max(0) as u64, u64::MAX))?
        {
            let (k, v) = item?;
            let (main, sub) = k.value();
            h = crc32c_append(h, &main.to_be_bytes());
            h = crc32c_append(h, &sub.to_be_bytes());
            h = crc32c_append(h, v.value());
        }
        Ok(h)
    }

    /// HashKV as etcd answers it: at `want` (the current revision when 0
    /// or less), refused for a future or compacted revision.
    pub fn hash_kv_at(&self, want: i64) -> Result<HashAt, MvccError> {
        let rev = if want <= 0 { self.rev } else { want };
        if rev > self.rev {
            return Err(MvccError::FutureRev);
        }
        // Unlike Range, etcd refuses a hash at the compacted revision itself
        // when asked for it, not when 0 asks for the current one.
        if want > 0 && rev <= self.compact_rev {
            return Err(MvccError::Compacted);
        }
        Ok(HashAt {
            current_rev: self.rev,
            compact_rev: self.compact_rev,
            rev,
            hash: self.hash_kv(rev)?,
        })
    }

    /// CRC-32C over all data (etcd's Hash).
    pub fn hash_all(&self) -> Result<u32, MvccError> {
        let mut h = self.hash_kv(self.rev)?;
        for item in self.tx.open_table(LEASES)?.iter()? {
            let (k, v) = item?;
            h = crc32c_append(h, &k.value().to_be_bytes());
            h = crc32c_append(h, v.value());
        }
        Ok(h)
    }
}

/// Runs `f`, which may block for long, so that a multi-threaded runtime's
/// worker hands its other tasks to another thread first.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    // crc32fast implements IEEE CRC-32; HashKV only needs to agree between
    // ferrocd members, not with etcd's bolt-based hash.
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(data);
    h.finalize()
}

/// A HashKV answer: the hash of the history up to `rev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashAt {
    pub current_rev: i64,
    pub compact_rev: i64,
    pub rev: i64,
    pub hash: u32,
}

/// The tables one write batch works on. Every batch writes events and meta;
/// the others open on first use (opening a table is a B-tree lookup and
/// commit work, about a tenth of a single put's apply).
pub struct WriteTables<'t> {
    tx: &'t redb::WriteTransaction,
    pub(crate) index: &'t SharedIndex,
    pub(crate) events: Table<'t, EventKey, &'static [u8]>,
    pub(crate) meta: Table<'t, &'static str, u64>,
    leases: Option<Table<'t, i64, &'static [u8]>>,
    alarms: Option<Table<'t, (u64, i32), ()>>,
    state: Option<Table<'t, &'static str, &'static [u8]>>,
}

/// The table in `slot`, opened from `tx` the first time.
fn opened<'s, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &'t redb::WriteTransaction,
    slot: &'s mut Option<Table<'t, K, V>>,
    def: redb::TableDefinition<'static, K, V>,
) -> Result<&'s mut Table<'t, K, V>, MvccError> {
    match slot {
        Some(t) => Ok(t),
        None => Ok(slot.insert(tx.open_table(def)?)),
    }
}

impl<'t> WriteTables<'t> {
    fn open(tx: &'t redb::WriteTransaction, index: &'t SharedIndex) -> Result<Self, MvccError> {
        Ok(WriteTables {
            tx,
            index,
            events: tx.open_table(EVENTS)?,
            meta: tx.open_table(META)?,
            leases: None,
            alarms: None,
            state: None,
        })
    }

    fn leases(&mut self) -> Result<&mut Table<'t, i64, &'static [u8]>, MvccError> {
        opened(self.tx, &mut self.leases, LEASES)
    }

    fn alarms(&mut self) -> Result<&mut Table<'t, (u64, i32), ()>, MvccError> {
        opened(self.tx, &mut self.alarms, ALARMS)
    }

    fn state(&mut self) -> Result<&mut Table<'t, &'static str, &'static [u8]>, MvccError> {
        opened(self.tx, &mut self.state, STATE)
    }

    pub fn meta(&self, key: &str) -> Result<u64, MvccError> {
        get_meta(&self.meta, key)
    }

    pub fn set_meta(&mut self, key: &str, value: u64) -> Result<(), MvccError> {
        self.meta.insert(key, value)?;
        Ok(())
    }

    pub fn delete_state(&mut self, key: &str) -> Result<(), MvccError> {
        self.state()?.remove(key)?;
        Ok(())
    }

    pub fn set_state(&mut self, key: &str, value: &[u8]) -> Result<(), MvccError> {
        self.state()?.insert(key, value)?;
        Ok(())
    }

    pub fn put_lease(&mut self, id: i64, record: &[u8]) -> Result<(), MvccError> {
        self.leases()?.insert(id, record)?;
        Ok(())
    }

    pub fn delete_lease(&mut self, id: i64) -> Result<(), MvccError> {
        self.leases()?.remove(id)?;
        Ok(())
    }

    /// Raises an alarm; false if it was already raised.
    pub fn raise_alarm(&mut self, member: u64, alarm: i32) -> Result<bool, MvccError> {
        Ok(self.alarms()?.insert((member, alarm), ())?.is_none())
    }

    /// True when any member has this alarm raised.
    pub fn has_alarm(&mut self, alarm: i32) -> Result<bool, MvccError> {
        for item in self.alarms()?.iter()? {
            if item?.0.value().1 == alarm {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Clears an alarm; false if it was not raised.
    pub fn clear_alarm(&mut self, member: u64, alarm: i32) -> Result<bool, MvccError> {
        Ok(self.alarms()?.remove((member, alarm))?.is_some())
    }

    /// Adds one version as it comes from a snapshot being restored, in
    /// revision order, keeping the key index in step (so that a compaction
    /// in the same transaction sees it).
    pub fn load_event(
        &mut self,
        rev: EventKey,
        tombstone: bool,
        kv: &KeyValue,
    ) -> Result<(), MvccError> {
        self.index
            .write()
            .load(rev, tombstone, kv)
            .map_err(MvccError::Storage)?;
        self.events
            .insert(rev, encode_record(tombstone, kv).as_slice())?;
        Ok(())
    }

    /// Reads at the current state of this write transaction.
    pub fn range(
        &self,
        current_rev: i64,
        compact_rev: i64,
        r: &KeyRange,
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        range::range(
            self.index,
            None,
            &self.events,
            current_rev,
            compact_rev,
            r,
            opts,
        )
    }
}

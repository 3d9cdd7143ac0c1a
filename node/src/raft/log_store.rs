//! The raft log and vote in their own redb file, `member/wal/raft.db`, so that
//! log fsyncs never wait behind state-machine writes. Every append is durable
//! (fsync) before openraft is told it is flushed.

use super::{io_error, Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    metrics: Arc<crate::metrics::Metrics>,
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serialize(v).map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, e))
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StorageError> {
    bincode::deserialize(b).map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Read, e))
}

fn store_err(verb: ErrorVerb) -> impl Fn(redb::Error) -> StorageError {
    move |e| io_error(ErrorSubject::Store, verb, e)
}

impl LogStore {
    pub fn open(
        dir: &Path,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<LogStore, StorageError> {
        let wal = dir.join("member").join("wal");
        std::fs::create_dir_all(&wal)
            .map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        // Recent entries are read back while they replicate; little else.
        let db = Database::builder()
            .set_cache_size(8 << 20)
            .create(wal.join("raft.db"))
            .map_err(|e| store_err(ErrorVerb::Write)(e.into()))?;
        let s = LogStore {
            db: Arc::new(db),
            metrics,
        };
        s.write(|tx| {
            tx.open_table(LOG)?;
            tx.open_table(META)?;
            Ok(())
        })?;
        Ok(s)
    }

    /// Runs `f` in one durable write transaction.
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StorageError> {
        let run = || -> Result<T, redb::Error> {
            let tx = self.db.begin_write()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(store_err(ErrorVerb::Write))
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(META)?;
            Ok(t.get(key)?.map(|v| v.value().to_vec()))
        };
        match read().map_err(store_err(ErrorVerb::Read))? {
            Some(b) => Ok(Some(decode(&b)?)),
            None => Ok(None),
        }
    }

    fn set_meta<T: serde::Serialize>(&self, key: &'static str, v: &T) -> Result<(), StorageError> {
        let bytes = encode(v)?;
        self.write(|tx| {
            tx.open_table(META)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let read = || -> Result<Option<Vec<u8>>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(LOG)?;
            let last = t.last()?.map(|(_, v)| v.value().to_vec());
            Ok(last)
        };
        match read().map_err(store_err(ErrorVerb::Read))? {
            Some(b) => Ok(Some(decode::<Entry>(&b)?.log_id)),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => Bound::Included(*e),
            Bound::Excluded(e) => Bound::Excluded(*e),
            Bound::Unbounded => Bound::Unbounded,
        };
        let read = || -> Result<Vec<Vec<u8>>, redb::Error> {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(LOG)?;
            let mut out = Vec::new();
            for item in t.range::<u64>((Bound::Included(start), end))? {
                out.push(item?.1.value().to_vec());
            }
            Ok(out)
        };
        read()
            .map_err(store_err(ErrorVerb::Read))?
            .iter()
            .map(|b| decode(b))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.meta(LAST_PURGED)?;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let s = self.clone();
        let vote = *vote;
        tokio::task::spawn_blocking(move || s.set_meta(VOTE, &vote))
            .await
            .map_err(|e| io_error(ErrorSubject::Vote, ErrorVerb::Write, e))?
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // A hint for replay after a restart, not a promise: no fsync of its
        // own (the next append's fsync carries it).
        let bytes = encode(&committed)?;
        let write = || -> Result<(), redb::Error> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(redb::Durability::None)?;
            tx.open_table(META)?.insert(COMMITTED, bytes.as_slice())?;
            tx.commit()?;
            Ok(())
        };
        write().map_err(store_err(ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode(&e)?)))
            .collect::<Result<_, StorageError>>()?;
        let s = self.clone();
        // One transaction and one fsync for the whole batch.
        let result = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let r = s.write(|tx| {
                let mut t = tx.open_table(LOG)?;
                for (i, b) in &encoded {
                    t.insert(*i, b.as_slice())?;
                }
                Ok(())
            });
            s.metrics.wal_fsync.observe(started.elapsed().as_secs_f64());
            r
        })
        .await
        .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        callback.log_io_completed(result.clone().map_err(std::io::Error::other));
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write(|tx| {
            let mut t = tx.open_table(LOG)?;
            t.retain_in::<u64, _>(log_id.index.., |_, _| false)?;
            Ok(())
        })
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = encode(&log_id)?;
        self.write(|tx| {
            tx.open_table(META)?.insert(LAST_PURGED, bytes.as_slice())?;
            let mut t = tx.open_table(LOG)?;
            t.retain_in::<u64, _>(..=log_id.index, |_, _| false)?;
            Ok(())
        })
    }
}

//! The watch hub: one per member. Apply publishes each new revision's events
//! here; the hub hands them to matching *synced* watchers with a non-blocking
//! send into their stream's bounded buffer. A watcher whose buffer is full, or
//! that starts in the past, is *unsynced*: a task of its own reads the history
//! from the store and sends it (waiting as long as its client needs), then
//! rejoins the synced set. So a slow client never stalls writes or other
//! watchers (etcd's synced/unsynced groups).

use crate::mvcc::{KeyRange, Store};
use ferrocd_proto::mvccpb::{event::EventType, Event};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// At most this many revisions go into one catch-up response (etcd's watchBatchMaxRevs).
pub const MAX_REVS_PER_RESPONSE: usize = 1000;

/// What a watcher wants.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub watch_id: i64,
    pub range: KeyRange,
    pub no_put: bool,
    pub no_delete: bool,
}

impl WatchSpec {
    fn wants(&self, ev: &Event) -> bool {
        let Some(kv) = &ev.kv else { return false };
        if !self.range.contains(&kv.key) {
            return false;
        }
        if ev.r#type == EventType::Put as i32 {
            !self.no_put
        } else {
            !self.no_delete
        }
    }
}

/// What the hub sends to a watch stream.
#[derive(Debug, Clone)]
pub enum HubMsg {
    /// Events for one watcher; `revision` goes into the response header.
    Events {
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
    },
    /// The watcher's start revision was compacted; it is canceled.
    Compacted { watch_id: i64, compact_rev: i64 },
}

/// The stream's handle on one of its watchers.
#[derive(Debug)]
pub struct WatchHandle {
    key: u64,
    canceled: Arc<AtomicBool>,
}

struct Watcher {
    spec: Arc<WatchSpec>,
    /// The lowest revision still to deliver.
    min_rev: i64,
    tx: mpsc::Sender<HubMsg>,
    canceled: Arc<AtomicBool>,
}

#[derive(Default)]
struct Inner {
    /// The last revision published.
    rev: i64,
    synced: HashMap<u64, Watcher>,
    by_key: HashMap<Vec<u8>, HashSet<u64>>,
    ranges: HashSet<u64>,
    next_key: u64,
}

impl Inner {
    fn add(&mut self, key: u64, w: Watcher) {
        match &w.spec.range {
            KeyRange::Single(k) => {
                self.by_key.entry(k.clone()).or_default().insert(key);
            }
            _ => {
                self.ranges.insert(key);
            }
        }
        self.synced.insert(key, w);
    }

    fn remove(&mut self, key: u64) -> Option<Watcher> {
        let w = self.synced.remove(&key)?;
        if let KeyRange::Single(k) = &w.spec.range {
            if let Some(set) = self.by_key.get_mut(k) {
                set.remove(&key);
                if set.is_empty() {
                    self.by_key.remove(k);
                }
            }
        } else {
            self.ranges.remove(&key);
        }
        Some(w)
    }
}

pub struct WatchHub {
    inner: Mutex<Inner>,
    store: Store,
    runtime: tokio::runtime::Handle,
}

impl WatchHub {
    /// `rev` is the store's revision when the hub starts.
    pub fn new(store: Store, rev: i64, runtime: tokio::runtime::Handle) -> Arc<WatchHub> {
        Arc::new(WatchHub {
            inner: Mutex::new(Inner {
                rev,
                ..Default::default()
            }),
            store,
            runtime,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last revision whose events were published.
    pub fn rev(&self) -> i64 {
        self.lock().rev
    }

    /// Starts a watcher delivering events from `start_rev` on into `tx`.
    pub fn watch(
        self: &Arc<Self>,
        spec: WatchSpec,
        start_rev: i64,
        tx: mpsc::Sender<HubMsg>,
    ) -> WatchHandle {
        let canceled = Arc::new(AtomicBool::new(false));
        let mut inner = self.lock();
        let key = inner.next_key;
        inner.next_key += 1;
        let w = Watcher {
            spec: Arc::new(spec),
            min_rev: start_rev,
            tx,
            canceled: canceled.clone(),
        };
        if start_rev > inner.rev {
            inner.add(key, w);
        } else {
            drop(inner);
            self.spawn_catch_up(key, w);
        }
        WatchHandle { key, canceled }
    }

    /// The store was replaced (a raft snapshot was installed): publish its
    /// revision; watchers behind it catch up from the new history, or learn
    /// that their revision was compacted.
    pub fn reset(self: &Arc<Self>, rev: i64) {
        let mut inner = self.lock();
        // Synced watchers have everything published so far; their
        // `min_rev` is where they joined, not where they are.
        let delivered = inner.rev;
        inner.rev = rev;
        let keys: Vec<u64> = inner.synced.keys().copied().collect();
        for key in keys {
            if let Some(mut w) = inner.remove(key) {
                w.min_rev = w.min_rev.max(delivered + 1);
                self.spawn_catch_up(key, w);
            }
        }
    }

    pub fn cancel(&self, h: &WatchHandle) {
        h.canceled.store(true, Ordering::SeqCst);
        self.lock().remove(h.key);
    }

    /// True when the watcher has delivered (into its stream) everything published.
    pub fn is_synced(&self, h: &WatchHandle) -> bool {
        h.canceled.load(Ordering::SeqCst) || self.lock().synced.contains_key(&h.key)
    }

    /// Publishes the events of newly committed revisions (called by apply,
    /// in revision order). Never blocks on a watcher.
    pub fn notify(self: &Arc<Self>, batches: &[(i64, Vec<Event>)]) {
        let mut inner = self.lock();
        for (rev, events) in batches {
            inner.rev = *rev;
            if inner.synced.is_empty() {
                continue;
            }
            let mut per_watcher: HashMap<u64, Vec<Event>> = HashMap::new();
            for ev in events {
                let Some(kv) = &ev.kv else { continue };
                let single = inner.by_key.get(&kv.key).into_iter().flatten();
                for key in single.chain(inner.ranges.iter()) {
                    if let Some(w) = inner.synced.get(key) {
                        if w.min_rev <= *rev && w.spec.wants(ev) {
                            per_watcher.entry(*key).or_default().push(ev.clone());
                        }
                    }
                }
            }
            for (key, events) in per_watcher {
                let Some(w) = inner.synced.get(&key) else {
                    continue;
                };
                let msg = HubMsg::Events {
                    watch_id: w.spec.watch_id,
                    revision: *rev,
                    events,
                };
                match w.tx.try_send(msg) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // The client is slow: it catches up from history instead.
                        if let Some(mut w) = inner.remove(key) {
                            w.min_rev = *rev;
                            self.spawn_catch_up(key, w);
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        inner.remove(key);
                    }
                }
            }
        }
    }

    fn spawn_catch_up(self: &Arc<Self>, key: u64, w: Watcher) {
        let hub = self.clone();
        self.runtime
            .spawn(async move { hub.catch_up(key, w).await });
    }

    /// Sends history from `w.min_rev` until the watcher has everything that
    /// was published, then makes it synced again.
    async fn catch_up(self: Arc<Self>, key: u64, mut w: Watcher) {
        loop {
            if w.canceled.load(Ordering::SeqCst) {
                return;
            }
            {
                let mut inner = self.lock();
                if w.min_rev > inner.rev {
                    inner.add(key, w);
                    return;
                }
            }
            let store = self.store.clone();
            let spec = w.spec.clone();
            let from = w.min_rev;
            let read = tokio::task::spawn_blocking(move || -> Result<_, crate::mvcc::MvccError> {
                let view = store.read()?;
                if from < view.compact_rev {
                    return Ok(Err(view.compact_rev));
                }
                let (events, next) = view.events(from, view.rev, MAX_REVS_PER_RESPONSE)?;
                let events: Vec<Event> = events.into_iter().filter(|e| spec.wants(e)).collect();
                Ok(Ok((events, next, view.rev)))
            })
            .await;
            let msg = match read {
                Ok(Ok(Ok((events, next, rev)))) => {
                    w.min_rev = next;
                    if events.is_empty() {
                        continue;
                    }
                    HubMsg::Events {
                        watch_id: w.spec.watch_id,
                        revision: rev,
                        events,
                    }
                }
                Ok(Ok(Err(compact_rev))) => {
                    w.canceled.store(true, Ordering::SeqCst);
                    HubMsg::Compacted {
                        watch_id: w.spec.watch_id,
                        compact_rev,
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "watch catch-up cannot read the store");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "watch catch-up task failed");
                    return;
                }
            };
            if w.tx.send(msg).await.is_err() || w.canceled.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

//! This member's applied raft index, and the requests waiting for it to
//! reach theirs (a follower's linearizable reads and forwarded writes).
//! Only the waiters whose index is reached wake up: with openraft's metrics
//! watch every waiter woke at every metrics change (each AppendEntries
//! answer, each commit), hundreds of them under load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Default)]
pub struct AppliedIndex {
    index: AtomicU64,
    /// The state machine failed: the index moves no more.
    stopped: AtomicBool,
    /// By the index each waiter needs.
    waiting: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
}

impl AppliedIndex {
    pub fn get(&self) -> u64 {
        self.index.load(Ordering::Acquire)
    }

    /// Everything up to `index` is applied (and readable): wakes whoever
    /// waited for it.
    pub fn advance(&self, index: u64) {
        let index = self.index.fetch_max(index, Ordering::AcqRel).max(index);
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.first_key_value().is_none_or(|(&k, _)| k > index) {
            return;
        }
        let later = waiting.split_off(&(index + 1));
        let ready = std::mem::replace(&mut *waiting, later);
        drop(waiting);
        for tx in ready.into_values().flatten() {
            // A waiter that gave up dropped its receiver: nothing to do.
            let _ = tx.send(());
        }
    }

    /// The state machine failed (its storage): every waiter gives up now
    /// rather than at its time limit, and later ones do not wait.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        // Dropped senders wake their receivers with an error.
        drop(waiting);
    }

    /// Waits at most `limit` until `index` is applied; whether it was.
    pub async fn reached(&self, index: u64, limit: Duration) -> bool {
        if self.get() >= index {
            return true;
        }
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            // Checked again under the lock: `advance` stores the index
            // before it takes the lock, so no wake-up is missed.
            if self.get() >= index {
                return true;
            }
            if self.stopped.load(Ordering::Acquire) {
                return false;
            }
            waiting.entry(index).or_default().push(tx);
        }
        matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waiters_wake_when_their_index_is_applied_and_not_before() {
        let applied = Arc::new(AppliedIndex::default());
        applied.advance(3);
        assert!(applied.reached(3, Duration::ZERO).await, "already applied");
        let wait = |i| {
            let a = applied.clone();
            tokio::spawn(async move { a.reached(i, Duration::from_secs(10)).await })
        };
        let (five, seven) = (wait(5), wait(7));
        tokio::time::sleep(Duration::from_millis(50)).await;
        applied.advance(5);
        assert!(five.await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!seven.is_finished(), "woken before its index was applied");
        applied.advance(4); // never backwards
        assert_eq!(applied.get(), 5);
        applied.advance(9);
        assert!(seven.await.unwrap());
    }

    #[tokio::test]
    async fn a_waiter_gives_up_at_its_limit() {
        let applied = AppliedIndex::default();
        assert!(!applied.reached(1, Duration::from_millis(20)).await);
        applied.advance(1); // the abandoned waiter is dropped quietly
        assert!(applied.waiting.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn waiters_give_up_at_once_when_the_state_machine_stops() {
        let applied = Arc::new(AppliedIndex::default());
        let a = applied.clone();
        let waiter = tokio::spawn(async move { a.reached(5, Duration::from_secs(60)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        applied.stop();
        let woke = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(!woke.expect("woken by the stop").unwrap());
        assert!(!applied.reached(5, Duration::from_secs(60)).await);
        applied.advance(1);
        assert!(
            applied.reached(1, Duration::ZERO).await,
            "what was applied stays"
        );
    }
}

//! Every task a member runs belongs to its [`Tasks`]: shutdown cancels
//! them and waits until each has ended, so nothing of a stopped member
//! keeps running (or holding its files) in the process.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct Tasks {
    set: Mutex<JoinSet<()>>,
    stop: CancellationToken,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            set: Mutex::new(JoinSet::new()),
            stop: CancellationToken::new(),
        }
    }
}

impl Tasks {
    /// Runs `task` until it ends or the member stops, whichever is first.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.spawn_graceful(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Runs `task`, which ends by itself soon after [`Tasks::stopping`]
    /// fires (a listener finishing the requests it serves).
    pub fn spawn_graceful(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.lock();
        // Finished tasks stay in the set until joined: reap them here.
        while set.try_join_next().is_some() {}
        if self.stop.is_cancelled() {
            return;
        }
        set.spawn(task);
    }

    /// Fires once the member stops (for tasks that stop gracefully).
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Tasks not yet ended.
    pub fn running(&self) -> usize {
        let mut set = self.lock();
        while set.try_join_next().is_some() {}
        set.len()
    }

    /// Cancels every task and waits for each to end; one that does not end
    /// within `grace` is aborted (and then awaited too).
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        let mut set = std::mem::take(&mut *self.lock());
        let joined =
            tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
        if joined.is_err() {
            tracing::warn!(
                left = set.len(),
                "tasks still running at shutdown: aborting them"
            );
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn shutdown_ends_every_task_and_refuses_new_ones() {
        let tasks = Tasks::default();
        let ended = Arc::new(AtomicBool::new(false));
        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = SetOnDrop(ended.clone());
        tasks.spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        tasks.spawn(async {});
        tokio::task::yield_now().await;
        assert_eq!(tasks.running(), 1, "the finished task is reaped");
        tasks.shutdown(Duration::from_secs(1)).await;
        assert!(ended.load(Ordering::SeqCst), "the pending task was dropped");
        assert_eq!(tasks.running(), 0);
        tasks.spawn(std::future::pending());
        assert_eq!(tasks.running(), 0, "no task starts after shutdown");
    }
}

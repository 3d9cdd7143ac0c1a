//! The write path: proposals queue up while the apply thread commits the
//! previous batch, so many concurrent writes share one transaction and one
//! fsync (group commit). With replication, this queue becomes the raft log.

use crate::apply::{Applier, ApplyError, LogEntry, Response};
use crate::metrics::Metrics;
use crate::mvcc::MvccError;
use crate::proto::ferrocdpb::InternalRequest;
use crate::watch::WatchHub;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Proposals waiting for the apply thread.
pub(super) const QUEUE_LEN: usize = 8192;
/// Upper bound of entries applied in one transaction.
const MAX_BATCH: usize = 4096;

pub(super) struct Proposal {
    pub entry: InternalRequest,
    pub reply: oneshot::Sender<Result<Response, ApplyError>>,
}

pub(super) fn spawn_apply_loop(
    mut applier: Applier,
    hub: Arc<WatchHub>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Proposal>,
    applied_index: Arc<AtomicU64>,
) {
    let spawned = std::thread::Builder::new()
        .name("apply".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut entries = vec![first.entry];
                let mut replies = vec![first.reply];
                while entries.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => {
                            entries.push(p.entry);
                            replies.push(p.reply);
                        }
                        Err(_) => break,
                    }
                }
                let started = Instant::now();
                let first = applier.applied_index() + 1;
                let log: Vec<LogEntry> = entries
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| LogEntry {
                        index: first + i as u64,
                        request: Some(e),
                    })
                    .collect();
                match applier.apply_batch(&log, |_| Ok(())) {
                    Ok(applied) => {
                        let secs = started.elapsed().as_secs_f64();
                        metrics.wal_fsync.observe(secs);
                        metrics.backend_commit.observe(secs);
                        let n = log.len() as u64;
                        metrics.proposals_committed.fetch_add(n, Ordering::Relaxed);
                        metrics.proposals_applied.fetch_add(n, Ordering::Relaxed);
                        applied_index.store(applier.applied_index(), Ordering::Release);
                        hub.notify(&applied.events);
                        for (reply, result) in replies.into_iter().zip(applied.results) {
                            if let Some(result) = result {
                                let _ = reply.send(result);
                            }
                        }
                    }
                    Err(e) => {
                        // etcd stops on backend failures; so do we: nothing of
                        // this batch was applied, and no later write may be.
                        tracing::error!(error = %e, "cannot commit to the store; stopping the write path");
                        for reply in replies {
                            let _ = reply.send(Err(ApplyError::Mvcc(MvccError::Storage(e.to_string()))));
                        }
                        break;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the apply thread");
    }
}

//! Group forwarding: the writes a follower receives while its earlier
//! forwards are in flight go to the leader together, in one peer call,
//! instead of one call per client write.

use super::batcher::drain_queued;
use crate::member::tasks::Tasks;
use crate::peer::Forwarder;
use ferrocd_proto::errors;
use ferrocd_proto::ferrocdpb::{ApplyResult, InternalRequest};
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Calls to the leader in flight at once; further writes queue and go in
/// the next call that a finished one makes room for.
const MAX_IN_FLIGHT: usize = 4;
/// Upper bounds of one call.
const MAX_REQUESTS: usize = 1024;
const MAX_BYTES: usize = 4 << 20;

type Outcome = Result<ApplyResult, tonic::Status>;

struct Forward {
    leader_url: String,
    request: InternalRequest,
    done: oneshot::Sender<Outcome>,
}

pub(super) struct ForwardBatcher {
    tx: mpsc::Sender<Forward>,
}

impl ForwardBatcher {
    pub fn spawn(tasks: &Tasks, forwarder: Arc<Forwarder>) -> ForwardBatcher {
        let (tx, rx) = mpsc::channel(8192);
        tasks.spawn(run(forwarder, rx));
        ForwardBatcher { tx }
    }

    /// Proposes `request` on the leader at `leader_url`; its outcome there.
    pub async fn forward(&self, leader_url: String, request: InternalRequest) -> Outcome {
        let stopped = || errors::STOPPED.status();
        let (done, rx) = oneshot::channel();
        let f = Forward {
            leader_url,
            request,
            done,
        };
        self.tx.send(f).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn run(forwarder: Arc<Forwarder>, mut rx: mpsc::Receiver<Forward>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // Calls in flight end with this loop (dropping the set aborts them).
    let mut calls = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        while calls.try_join_next().is_some() {}
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Whatever queued while the calls in flight ran goes in this one.
        let queued = drain_queued(&mut rx, first, MAX_REQUESTS, MAX_BYTES, |f| {
            f.request.encoded_len()
        });
        // Normally all for one leader; around an election, maybe not.
        let mut by_leader: HashMap<String, (Vec<InternalRequest>, Vec<_>)> = HashMap::new();
        for f in queued {
            let (requests, waiters) = by_leader.entry(f.leader_url).or_default();
            requests.push(f.request);
            waiters.push(f.done);
        }
        let forwarder = forwarder.clone();
        calls.spawn(async move {
            for (url, (requests, waiters)) in by_leader {
                match forwarder.propose_batch(&url, requests).await {
                    Ok(outcomes) => {
                        for (w, o) in waiters.into_iter().zip(outcomes) {
                            let _ = w.send(o);
                        }
                    }
                    Err(status) => {
                        for w in waiters {
                            let _ = w.send(Err(status.clone()));
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

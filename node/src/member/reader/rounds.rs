//! Linearizable reads share read-index rounds, as etcd batches its
//! ReadIndex requests: every read waiting when a round starts is answered
//! by that round's one quorum confirmation (on the leader) or one ReadIndex
//! call to the leader (on a follower). A read that arrives during a round
//! waits for the next one, whose confirmation starts after it arrived: that
//! is what makes the answer linearizable.

use crate::member::leadership::{forwarded_leader_url, Leadership};
use crate::member::RequestError;
use crate::peer::Forwarder;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The commit index a read must see applied, or why there is none yet.
pub type RoundResult = Result<u64, RequestError>;

pub struct ReadRounds {
    tx: mpsc::UnboundedSender<oneshot::Sender<RoundResult>>,
}

impl ReadRounds {
    /// The queue; `run` serves it.
    pub fn new() -> (
        ReadRounds,
        mpsc::UnboundedReceiver<oneshot::Sender<RoundResult>>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ReadRounds { tx }, rx)
    }

    /// The read index of the next round to start.
    pub async fn next(&self) -> RoundResult {
        let (done, rx) = oneshot::channel();
        self.tx.send(done).map_err(|_| RequestError::Stopped)?;
        rx.await.map_err(|_| RequestError::Stopped)?
    }
}

/// Who a round asks.
pub struct RoundParts {
    pub leadership: Arc<Leadership>,
    pub forwarder: Arc<Forwarder>,
    pub request_timeout: Duration,
}

pub async fn run(parts: RoundParts, mut rx: mpsc::UnboundedReceiver<oneshot::Sender<RoundResult>>) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiting.push(w);
        }
        let result = tokio::time::timeout(parts.request_timeout, round(&parts))
            .await
            .unwrap_or(Err(RequestError::Timeout));
        for w in waiting {
            let _ = w.send(result.clone());
        }
    }
}

/// One round: confirm leadership with a quorum, or ask the leader.
async fn round(s: &RoundParts) -> RoundResult {
    // A follower that knows the leader asks it at once; otherwise raft
    // decides whether this member leads.
    let leader_url = match s.leadership.leader_elsewhere() {
        Some(url) => Some(url),
        None => match s.leadership.confirm().await {
            // openraft has applied up to the read log id before answering.
            Ok(read) => return Ok(read.map_or(0, |l| l.index)),
            Err(e) => e
                .forward_to_leader::<crate::raft::MemberInfo>()
                .and_then(|f| forwarded_leader_url(f.leader_node.as_ref())),
        },
    };
    match leader_url {
        Some(url) => s.forwarder.read_index(&url).await.map_err(|st| {
            tracing::debug!(leader = %url, error = %st, "read index from the leader failed");
            RequestError::NotLeader(Some(url))
        }),
        None => {
            // No leader known yet: let the caller retry shortly.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(RequestError::NotLeader(None))
        }
    }
}

//! Reads: serializable reads take a snapshot of this member's store;
//! linearizable reads first wait until this member has applied everything
//! committed before they arrived (a read index, from the leader).

mod rounds;

use super::leadership::Leadership;
use super::tasks::Tasks;
use super::RequestError;
use crate::mvcc::{ReadView, Store};
use crate::peer::Forwarder;
use crate::raft::AppliedIndex;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Reader {
    store: Store,
    rounds: rounds::ReadRounds,
    applied_index: Arc<AppliedIndex>,
    request_timeout: Duration,
    /// The robustness suite's broken mode (see `Config::unsafe_local_reads`).
    unsafe_local_reads: bool,
}

impl Reader {
    pub(super) fn start(
        store: Store,
        leadership: Arc<Leadership>,
        forwarder: Arc<Forwarder>,
        applied_index: Arc<AppliedIndex>,
        request_timeout: Duration,
        unsafe_local_reads: bool,
        tasks: &Tasks,
    ) -> Reader {
        if unsafe_local_reads {
            tracing::warn!("FERROCD_TEST_UNSAFE_LOCAL_READS: linearizable reads are NOT linearizable (a test mode)");
        }
        let (rounds, queue) = rounds::ReadRounds::new();
        let parts = rounds::RoundParts {
            leadership,
            forwarder,
            request_timeout,
        };
        tasks.spawn(rounds::run(parts, queue));
        Reader {
            store,
            rounds,
            applied_index,
            request_timeout,
            unsafe_local_reads,
        }
    }

    /// A consistent snapshot for serializable reads.
    pub fn read(&self) -> Result<ReadView, RequestError> {
        Ok(self.store.read()?)
    }

    /// Waits until this member has applied everything committed before the
    /// call (read-index through the leader); then local reads are linearizable.
    pub async fn linearizable_read(&self) -> Result<(), RequestError> {
        if self.unsafe_local_reads {
            return Ok(());
        }
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let index = match tokio::time::timeout(left, self.rounds.next()).await {
                Ok(Ok(index)) => index,
                Ok(Err(RequestError::Stopped)) => return Err(RequestError::Stopped),
                Ok(Err(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                _ => return Err(RequestError::Timeout),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            return if self.applied_index.reached(index, left).await {
                Ok(())
            } else {
                Err(RequestError::Timeout)
            };
        }
    }

    /// A read index for a follower's reads (the leader answers in rounds).
    pub async fn read_index(&self) -> Result<u64, RequestError> {
        self.rounds.next().await
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.get()
    }
}

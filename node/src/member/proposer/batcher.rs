//! Group commit: proposals arriving while the previous raft entry commits
//! are collected into the next entry, so many client writes share one log
//! append and one fsync.

use crate::member::leadership::{forwarded_leader_url, Leadership};
use crate::member::tasks::Tasks;
use crate::member::RequestError;
use crate::raft::{Batch, Command, MemberInfo, TypeConfig};
use openraft::Raft;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Upper bounds of one entry.
const MAX_COMMANDS: usize = 4096;
const MAX_BYTES: usize = 8 << 20;

struct Pending {
    command: Command,
    done: oneshot::Sender<Result<(), RequestError>>,
}

pub(super) struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    pub fn spawn(tasks: &Tasks, raft: Raft<TypeConfig>, leadership: Arc<Leadership>) -> Batcher {
        let (tx, rx) = mpsc::channel(8192);
        tasks.spawn(run(raft, leadership, rx));
        Batcher { tx }
    }

    /// Resolves once the command is committed and applied on this member
    /// (its result then waits in the state machine's waiters).
    pub async fn submit(&self, command: Command) -> Result<(), RequestError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Pending { command, done })
            .await
            .map_err(|_| RequestError::Stopped)?;
        rx.await.map_err(|_| RequestError::Stopped)?
    }
}

/// `first` and whatever else is queued already, up to `max_items` items or
/// `max_bytes` as `size` counts them: one group's worth.
pub(super) fn drain_queued<T>(
    rx: &mut mpsc::Receiver<T>,
    first: T,
    max_items: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut bytes = size(&first);
    let mut group = vec![first];
    while group.len() < max_items && bytes < max_bytes {
        match rx.try_recv() {
            Ok(item) => {
                bytes += size(&item);
                group.push(item);
            }
            Err(_) => break,
        }
    }
    group
}

async fn run(raft: Raft<TypeConfig>, leadership: Arc<Leadership>, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let batch = drain_queued(&mut rx, first, MAX_COMMANDS, MAX_BYTES, |p| {
            p.command.entry.len()
        });
        let (commands, waiters): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.command, p.done)).unzip();
        let pass = leadership.gate.pass().await;
        let written = raft.client_write(Batch { commands }).await;
        drop(pass);
        let outcome = match written {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.forward_to_leader::<MemberInfo>() {
                Some(f) => RequestError::NotLeader(forwarded_leader_url(f.leader_node.as_ref())),
                None => RequestError::Stopped,
            }),
        };
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

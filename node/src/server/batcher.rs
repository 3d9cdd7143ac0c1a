//! Group commit: proposals arriving while the previous raft entry commits
//! are collected into the next entry, so many client writes share one log
//! append and one fsync.

use super::transfer::LeaderGate;
use super::ServerError;
use crate::raft::{Batch, Command, MemberInfo, TypeConfig};
use openraft::Raft;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Upper bounds of one entry.
const MAX_COMMANDS: usize = 4096;
const MAX_BYTES: usize = 8 << 20;

struct Pending {
    command: Command,
    done: oneshot::Sender<Result<(), ServerError>>,
}

pub(super) struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    pub fn spawn(raft: Raft<TypeConfig>, gate: Arc<LeaderGate>) -> Batcher {
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(run(raft, gate, rx));
        Batcher { tx }
    }

    /// Resolves once the command is committed and applied on this member
    /// (its result then waits in the state machine's waiters).
    pub async fn submit(&self, command: Command) -> Result<(), ServerError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Pending { command, done })
            .await
            .map_err(|_| ServerError::Stopped)?;
        rx.await.map_err(|_| ServerError::Stopped)?
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

async fn run(raft: Raft<TypeConfig>, gate: Arc<LeaderGate>, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let batch = drain_queued(&mut rx, first, MAX_COMMANDS, MAX_BYTES, |p| {
            p.command.entry.len()
        });
        let (commands, waiters): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|p| (p.command, p.done)).unzip();
        let pass = gate.pass().await;
        let written = raft.client_write(Batch { commands }).await;
        drop(pass);
        let outcome = match written {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.forward_to_leader::<MemberInfo>() {
                Some(f) => ServerError::NotLeader(
                    f.leader_node
                        .as_ref()
                        .and_then(|n| n.peer_urls.first().cloned()),
                ),
                None => ServerError::Stopped,
            }),
        };
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

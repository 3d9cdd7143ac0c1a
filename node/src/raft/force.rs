//! `--force-new-cluster`: after quorum loss, a member restarts from its own
//! data as the only voter of its cluster (same member and cluster IDs), so
//! that others can be added back with MemberAdd.
//!
//! Unlike etcd, which drops the entries after the commit index it knows,
//! every entry the log holds is applied first: a follower learns of a
//! commit one heartbeat late, so an entry past its known commit index may
//! be a write the old leader acknowledged. Keeping it cannot lose an
//! acknowledged write; the entries that were never committed were never
//! acknowledged either, and a client that timed out cannot tell.

use super::{LogStore, MemberInfo, StateMachine, StorageError};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::RaftLogReader;
use std::collections::BTreeMap;

/// Rewrites the state so that `me` alone is a voter; returns the members
/// that were dropped.
pub async fn force_new_cluster(
    log: &mut LogStore,
    sm: &mut StateMachine,
    me: u64,
    own: MemberInfo,
) -> Result<Vec<u64>, StorageError> {
    let state = log.get_log_state().await?;
    let (applied, _) = sm.applied_state().await?;
    if let Some(last) = state.last_log_id {
        if Some(last) > applied {
            let from = applied.map_or(0, |l| l.index + 1);
            let entries = log.try_get_log_entries(from..=last.index).await?;
            tracing::info!(
                from,
                to = last.index,
                "applying every entry of the log before forcing a new cluster"
            );
            sm.apply(entries).await?;
        }
    }
    let (_, membership) = sm.applied_state().await?;
    let info = membership
        .membership()
        .get_node(&me)
        .cloned()
        .unwrap_or(own);
    let dropped: Vec<u64> = membership
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .filter(|id| *id != me)
        .collect();
    let applied = sm.replace_membership(BTreeMap::from([(me, info)]))?;
    // The log up to here is in the store; what it said about membership
    // must not override the new one at start.
    log.save_committed(Some(applied)).await?;
    log.purge(applied).await?;
    Ok(dropped)
}

/// Where `--force-new-cluster-once` records its token, in the member dir.
const ONCE_MARKER: &str = "forced-new-cluster";

/// Whether the data dir was forced with `token` before.
pub fn forced_with(member_dir: &std::path::Path, token: &str) -> std::io::Result<bool> {
    match std::fs::read(member_dir.join(ONCE_MARKER)) {
        Ok(b) => Ok(b == token.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Records that the data dir was forced with `token`. Written after the
/// force and before the member serves: a crash in between forces again,
/// which changes nothing while it is still the only member.
pub fn record_forced(member_dir: &std::path::Path, token: &str) -> std::io::Result<()> {
    super::log_store::write_durably(member_dir, ONCE_MARKER, token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_remembered_and_another_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!forced_with(dir.path(), "a").unwrap());
        record_forced(dir.path(), "a").unwrap();
        assert!(forced_with(dir.path(), "a").unwrap());
        assert!(!forced_with(dir.path(), "b").unwrap());
    }
}

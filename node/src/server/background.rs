//! Duties a member runs on its own: publishing its attributes through the
//! log, and, while it leads, revoking expired leases (through the log, as
//! etcd's leader does) and auto-compaction.

use super::Server;
use crate::apply::ApplyError;
use crate::config::AutoCompaction;
use crate::mvcc::MvccError;
use crate::proto::etcdserverpb::{CompactionRequest, LeaseRevokeRequest};
use crate::proto::ferrocdpb::internal_request::Request;
use crate::proto::ferrocdpb::MemberAttributes;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub(super) fn spawn(server: &Arc<Server>) {
    tokio::spawn(publish_attributes(Arc::downgrade(server)));
    tokio::spawn(check_quorum(Arc::downgrade(server)));
    tokio::spawn(flush_store(Arc::downgrade(server)));
    tokio::spawn(detect_foreign_cluster(Arc::downgrade(server)));
    tokio::spawn(expire_leases(Arc::downgrade(server)));
    if let Some(mode) = server.config.auto_compaction {
        tokio::spawn(auto_compact(Arc::downgrade(server), mode));
    }
}

/// A member whose peers (a majority of the others) refuse its cluster ID
/// belongs to another cluster: it stops with a clear error, as etcd does.
async fn detect_foreign_cluster(server: Weak<Server>) {
    let mut strikes = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(s) = server.upgrade() else { return };
        let others = s
            .members()
            .iter()
            .filter(|m| m.id != s.identity.member_id && !m.is_learner)
            .count();
        let (refusing, message) = s.refusals.current();
        strikes = if others > 0 && refusing * 2 > others {
            strikes + 1
        } else {
            0
        };
        if strikes >= 3 {
            s.stop_with(format!(
                "member {:x} is not part of the cluster its peers belong to (cluster {:x}): {}",
                s.identity.member_id,
                s.identity.cluster_id,
                message.unwrap_or_default()
            ));
            return;
        }
    }
}

/// Makes the state machine's lazy commits durable every 100 ms, as etcd's
/// backend commits its batch (the raft log already holds every acknowledged write).
async fn flush_store(server: Weak<Server>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        let store = s.store.clone();
        drop(s);
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot sync the store"),
            Err(e) => tracing::error!(error = %e, "store sync task failed"),
        }
    }
}

/// etcd's check-quorum: while this member believes it leads, confirm that
/// with a quorum every heartbeat; an unconfirmed leader reports no leader.
async fn check_quorum(server: Weak<Server>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let (heartbeat, timeout) = (s.config.heartbeat_interval, s.config.election_timeout);
        let believes_leader =
            s.raft.metrics().borrow().current_leader == Some(s.identity.member_id);
        if believes_leader {
            if let Ok(Ok(_)) = tokio::time::timeout(timeout, s.confirm_leadership()).await {
                s.quorum_confirmed();
            }
        }
        drop(s);
        tokio::time::sleep(heartbeat).await;
    }
}

/// etcd publishes each member's name and client URLs through raft once it runs.
async fn publish_attributes(server: Weak<Server>) {
    loop {
        let Some(s) = server.upgrade() else { return };
        let attrs = MemberAttributes {
            id: s.identity.member_id,
            name: s.identity.name.clone(),
            client_urls: s.identity.client_urls.clone(),
        };
        let published = s.members().iter().any(|m| {
            m.id == attrs.id && m.name == attrs.name && m.client_urls == attrs.client_urls
        });
        if published {
            return;
        }
        match s.propose(Request::MemberAttributes(attrs)).await {
            Ok(_) => {
                tracing::info!("published local member to cluster through raft");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "cannot publish member attributes yet"),
        }
        drop(s);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn expire_leases(server: Weak<Server>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut was_leader = false;
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        let leader = s.is_leader();
        if leader && !was_leader {
            // A new leader restarts every lease's deadline, as etcd's does.
            s.lessor.refresh_all();
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        for id in s.lessor.take_expired(Instant::now()) {
            let s = s.clone();
            tokio::spawn(async move {
                let r = s
                    .propose(Request::LeaseRevoke(LeaseRevokeRequest { id }))
                    .await;
                match r {
                    Ok(_) => tracing::debug!(lease = %format!("{id:x}"), "revoked expired lease"),
                    Err(crate::server::ServerError::Apply(ApplyError::LeaseNotFound)) => {}
                    Err(e) => {
                        tracing::warn!(lease = %format!("{id:x}"), error = %e, "cannot revoke expired lease");
                        s.lessor.revoke_failed(id);
                    }
                }
            });
        }
    }
}

/// etcd's compactors: `periodic` keeps the last `d` of history, checking
/// every d/10 (at most hourly); `revision` keeps the last N revisions,
/// checking every 5 minutes.
async fn auto_compact(server: Weak<Server>, mode: AutoCompaction) {
    let period = match mode {
        AutoCompaction::Periodic(d) => {
            (d / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
        }
        AutoCompaction::Revision(_) => Duration::from_secs(300),
    };
    let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
        if !s.is_leader() {
            continue;
        }
        let rev = s.hub.rev();
        let target = match mode {
            AutoCompaction::Periodic(d) => {
                samples.push_back((Instant::now(), rev));
                let mut target = None;
                while let Some((t, r)) = samples.front().copied() {
                    if t.elapsed() >= d {
                        target = Some(r);
                        samples.pop_front();
                    } else {
                        break;
                    }
                }
                target
            }
            AutoCompaction::Revision(keep) => Some(rev - keep),
        };
        let Some(target) = target.filter(|t| *t > 0) else {
            continue;
        };
        let req = Request::Compaction(CompactionRequest {
            revision: target,
            physical: false,
        });
        match s.propose(req).await {
            Ok(_) => tracing::info!(revision = target, "auto-compacted"),
            Err(crate::server::ServerError::Apply(ApplyError::Mvcc(MvccError::Compacted))) => {}
            Err(e) => tracing::warn!(revision = target, error = %e, "auto-compaction failed"),
        }
    }
}

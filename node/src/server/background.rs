//! Duties a member runs on its own: revoking expired leases (through the log,
//! as etcd's leader does) and auto-compaction.

use super::Server;
use crate::apply::ApplyError;
use crate::config::AutoCompaction;
use crate::mvcc::MvccError;
use crate::proto::etcdserverpb::{CompactionRequest, LeaseRevokeRequest};
use crate::proto::ferrocdpb::internal_request::Request;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

pub(super) fn spawn(server: &Arc<Server>) {
    tokio::spawn(expire_leases(Arc::downgrade(server)));
    if let Some(mode) = server.config.auto_compaction {
        tokio::spawn(auto_compact(Arc::downgrade(server), mode));
    }
}

async fn expire_leases(server: Weak<Server>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(s) = server.upgrade() else { return };
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

//! Duties a member runs on its own: publishing its attributes through the
//! log, and, while it leads, revoking expired leases (through the log, as
//! etcd's leader does) and auto-compaction.

use super::leadership::Leadership;
use super::membership::Membership;
use super::proposer::Proposer;
use super::tasks::Tasks;
use super::{Fatal, Identity, RequestError};
use crate::apply::ApplyError;
use crate::config::{AutoCompaction, Config};
use crate::lease::Lessor;
use crate::metrics::Metrics;
use crate::mvcc::{MvccError, Store};
use crate::peer::Refusals;
use crate::raft::TypeConfig;
use crate::watch::WatchHub;
use ferrocd_proto::etcdserverpb::{CompactionRequest, LeaseRevokeRequest};
use ferrocd_proto::ferrocdpb::internal_request::Request;
use ferrocd_proto::ferrocdpb::MemberAttributes;
use openraft::Raft;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the duties work with.
pub(super) struct Duties {
    pub identity: Identity,
    pub config: Arc<Config>,
    pub store: Store,
    pub lessor: Arc<Lessor>,
    pub hub: Arc<WatchHub>,
    pub leadership: Arc<Leadership>,
    pub proposer: Arc<Proposer>,
    pub membership: Arc<Membership>,
    pub refusals: Arc<Refusals>,
    pub fatal: Arc<Fatal>,
    pub raft: Raft<TypeConfig>,
    pub metrics: Arc<Metrics>,
}

pub(super) fn spawn(duties: Duties, tasks: &Tasks) {
    let d = Arc::new(duties);
    tasks.spawn(stop_when_raft_stops(d.clone()));
    tasks.spawn(count_leader_changes(d.clone()));
    tasks.spawn(export_peer_series(d.clone()));
    tasks.spawn(publish_attributes(d.clone()));
    tasks.spawn(check_quorum(d.clone()));
    tasks.spawn(flush_store(d.clone()));
    tasks.spawn(detect_foreign_cluster(d.clone()));
    if let Some(mode) = d.config.auto_compaction {
        tasks.spawn(auto_compact(d.clone(), mode));
    }
    tasks.spawn(expire_leases(d));
}

/// A member whose peers (a majority of the others) refuse its cluster ID
/// belongs to another cluster: it stops with a clear error, as etcd does.
async fn detect_foreign_cluster(s: Arc<Duties>) {
    let mut strikes = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let others = s
            .membership
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
            s.fatal.stop_with(format!(
                "member {:x} is not part of the cluster its peers belong to (cluster {:x}): {}",
                s.identity.member_id,
                s.identity.cluster_id,
                message.unwrap_or_default()
            ));
            return;
        }
    }
}

/// etcd_server_leader_changes_seen_total: each time raft names a leader
/// other than the one seen just before (the first leader counts, as in etcd).
async fn count_leader_changes(s: Arc<Duties>) {
    let mut metrics = s.raft.metrics();
    let mut last = None;
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != last {
            s.metrics.leader_changes.inc();
        }
        last = leader;
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The per-peer series (`To`/`From` labels) of every member in the
/// membership, from the moment it is known: etcd exports them on every
/// member, while raft here dials a peer only to lead or to campaign, so a
/// member that never did would otherwise export none.
async fn export_peer_series(s: Arc<Duties>) {
    let mut metrics = s.raft.metrics();
    let me = s.identity.member_id;
    let mut known = std::collections::BTreeSet::new();
    loop {
        let ids: Vec<u64> = metrics
            .borrow_and_update()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != me && !known.contains(id))
            .collect();
        for id in ids {
            drop(s.metrics.peer(id));
            drop(s.metrics.peer_received(id));
            known.insert(id);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// raft stops for good when its storage fails (the log cannot be appended,
/// the state machine cannot commit: a full or failing disk). Such a member
/// can serve nothing, so it exits with the error, as etcd does, instead
/// of staying up and answering health checks.
async fn stop_when_raft_stops(s: Arc<Duties>) {
    let mut metrics = s.raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            let reason = format!("raft stopped: {fatal}");
            s.fatal.stop_with(reason);
            return;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Makes the state machine's lazy commits durable every 100 ms, as etcd's
/// backend commits its batch (the raft log already holds every acknowledged write).
async fn flush_store(s: Arc<Duties>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let store = s.store.clone();
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => {}
            // The raft log still holds what the store could not make
            // durable; a member that cannot write its store stops.
            Ok(Err(e)) => {
                s.fatal.stop_with(format!(
                    "cannot sync the store {}: {e}",
                    s.store.path().display()
                ));
                return;
            }
            Err(e) => tracing::error!(error = %e, "store sync task failed"),
        }
    }
}

/// etcd's check-quorum: while this member believes it leads, confirm that
/// with a quorum every heartbeat; an unconfirmed leader reports no leader.
async fn check_quorum(s: Arc<Duties>) {
    let (heartbeat, timeout) = (s.config.heartbeat_interval, s.config.election_timeout);
    loop {
        if s.leadership.believes_leader() {
            if let Ok(Ok(_)) = tokio::time::timeout(timeout, s.leadership.confirm()).await {
                s.leadership.quorum_confirmed();
            }
        }
        tokio::time::sleep(heartbeat).await;
    }
}

/// etcd publishes each member's name and client URLs through raft once it runs.
async fn publish_attributes(s: Arc<Duties>) {
    loop {
        let attrs = MemberAttributes {
            id: s.identity.member_id,
            name: s.identity.name.clone(),
            client_urls: s.identity.client_urls.clone(),
        };
        let published = s.membership.members().iter().any(|m| {
            m.id == attrs.id && m.name == attrs.name && m.client_urls == attrs.client_urls
        });
        if published {
            return;
        }
        match s
            .proposer
            .propose_internal(Request::MemberAttributes(attrs))
            .await
        {
            Ok(_) => {
                tracing::info!("published local member to cluster through raft");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "cannot publish member attributes yet"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn expire_leases(s: Arc<Duties>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut was_leader = false;
    // Revocations in flight end with this loop (dropping the set aborts them).
    let mut revocations = tokio::task::JoinSet::new();
    loop {
        tick.tick().await;
        while revocations.try_join_next().is_some() {}
        let leader = s.leadership.is_leader();
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
            revocations.spawn(async move {
                let r = s
                    .proposer
                    .propose_internal(Request::LeaseRevoke(LeaseRevokeRequest { id }))
                    .await;
                match r {
                    Ok(_) => tracing::debug!(lease = %format!("{id:x}"), "revoked expired lease"),
                    Err(RequestError::Apply(ApplyError::LeaseNotFound)) => {}
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
async fn auto_compact(s: Arc<Duties>, mode: AutoCompaction) {
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
        if !s.leadership.is_leader() {
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
        match s.proposer.propose_internal(req).await {
            Ok(_) => tracing::info!(revision = target, "auto-compacted"),
            Err(RequestError::Apply(ApplyError::Mvcc(MvccError::Compacted))) => {}
            Err(e) => tracing::warn!(revision = target, error = %e, "auto-compaction failed"),
        }
    }
}

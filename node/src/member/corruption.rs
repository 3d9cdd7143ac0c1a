//! etcd 3.5's corruption checks, which compare HashKV between members that
//! applied the same history: before a restarting member serves
//! (`--experimental-initial-corrupt-check`: it refuses to start), and on the
//! leader, periodically at the current revision
//! (`--experimental-corrupt-check-time`) and at the last compaction
//! (`--experimental-compact-hash-check-*`): a mismatch raises the CORRUPT
//! alarm, after which writes, compactions and lease changes are refused
//! with etcd's `CORRUPT` error until it is disarmed.
//!
//! etcd keeps the hashes it computed while compacting; ferrocd computes
//! HashKV at the compaction revision when the check runs, which is the same
//! value while no later compaction happened (the check skips peers at
//! another compaction).

use super::leadership::Leadership;
use super::membership::Membership;
use super::proposer::Proposer;
use super::reader::Reader;
use super::tasks::Tasks;
use crate::mvcc::{HashAt, Store};
use crate::peer::Forwarder;
use ferrocd_proto::errors;
use ferrocd_proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmType, HashKvResponse,
};
use ferrocd_proto::ferrocdpb::internal_request::Request;
use std::sync::Arc;
use std::time::Duration;

/// A peer and what it answered.
struct PeerHash {
    id: u64,
    urls: Vec<String>,
    answer: Result<HashKvResponse, tonic::Status>,
}

/// Asks every peer for its HashKV at `rev`, trying each of its URLs.
async fn peer_hashes(
    forwarder: &Forwarder,
    peers: &[(u64, Vec<String>)],
    rev: i64,
    timeout: Duration,
) -> Vec<PeerHash> {
    let mut out = Vec::new();
    for (id, urls) in peers {
        let mut answer = Err(tonic::Status::unavailable("no peer URL"));
        for url in urls {
            answer = match tokio::time::timeout(timeout, forwarder.hash_kv(url, rev)).await {
                Ok(a) => a,
                Err(_) => Err(tonic::Status::deadline_exceeded("request timed out")),
            };
            if answer.is_ok() {
                break;
            }
        }
        if let Err(e) = &answer {
            tracing::warn!(
                remote_peer_id = %format!("{id:x}"),
                remote_peer_endpoints = ?urls,
                error = %e.message(),
                "failed hash kv request"
            );
        }
        out.push(PeerHash {
            id: *id,
            urls: urls.clone(),
            answer,
        });
    }
    out
}

async fn local_hash(store: &Store, rev: i64) -> Result<HashAt, String> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.read().and_then(|v| v.hash_kv_at(rev)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// The initial check of a restarting member, before it serves: an error
/// names the member and stops it, as etcd.
pub(super) async fn initial_check(
    store: &Store,
    me: u64,
    peers: &[(u64, Vec<String>)],
    forwarder: &Forwarder,
    timeout: Duration,
) -> Result<(), String> {
    let id = format!("{me:x}");
    tracing::info!(local_member_id = %id, timeout = ?timeout, "starting initial corruption check");
    let h = local_hash(store, 0)
        .await
        .map_err(|e| format!("{id} failed to fetch hash ({e})"))?;
    let mut mismatch = 0;
    for p in peer_hashes(forwarder, peers, h.rev, timeout).await {
        let peer_id = format!("{:x}", p.id);
        let resp = match &p.answer {
            Ok(resp) => resp,
            Err(e) => {
                if errors::FUTURE_REV.is(e) {
                    tracing::warn!(local_member_id = %id, local_member_revision = h.rev, remote_peer_id = %peer_id, remote_peer_endpoints = ?p.urls, "cannot fetch hash from slow remote peer");
                } else if errors::COMPACTED.is(e) {
                    tracing::warn!(local_member_id = %id, local_member_revision = h.rev, remote_peer_id = %peer_id, remote_peer_endpoints = ?p.urls, "cannot fetch hash from remote peer; local member is behind");
                }
                continue;
            }
        };
        if resp.hash == h.hash {
            continue;
        }
        if resp.compact_revision == h.compact_rev {
            tracing::warn!(
                local_member_id = %id,
                local_member_revision = h.rev,
                local_member_compact_revision = h.compact_rev,
                local_member_hash = h.hash,
                remote_peer_id = %peer_id,
                remote_peer_endpoints = ?p.urls,
                remote_peer_revision = resp.header.as_ref().map_or(0, |h| h.revision),
                remote_peer_compact_revision = resp.compact_revision,
                remote_peer_hash = resp.hash,
                "found different hash values from remote peer"
            );
            mismatch += 1;
        } else {
            tracing::warn!(
                local_member_id = %id,
                local_member_compact_revision = h.compact_rev,
                remote_peer_id = %peer_id,
                remote_peer_compact_revision = resp.compact_revision,
                "found different compact revision values from remote peer"
            );
        }
    }
    if mismatch > 0 {
        let e = errors::data_inconsistency(me);
        tracing::error!(error = %e, "checkInitialHashKV failed");
        return Err(e);
    }
    tracing::info!(local_member_id = %id, "initial corruption checking passed; no corruption");
    Ok(())
}

/// What the leader's checks work with.
pub(super) struct Checker {
    pub me: u64,
    pub store: Store,
    pub leadership: Arc<Leadership>,
    pub membership: Arc<Membership>,
    pub proposer: Arc<Proposer>,
    pub reader: Arc<Reader>,
    pub forwarder: Arc<Forwarder>,
    pub timeout: Duration,
}

pub(super) fn spawn(
    checker: Checker,
    periodic: Option<Duration>,
    compact_hash: Option<Duration>,
    tasks: &Tasks,
) {
    let c = Arc::new(checker);
    if let Some(every) = periodic {
        tracing::info!(local_member_id = %format!("{:x}", c.me), interval = ?every, "enabled corruption checking");
        let c = c.clone();
        tasks.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if c.leadership.is_leader() {
                    if let Err(e) = c.periodic_check().await {
                        tracing::warn!(error = %e, "failed to check hash KV");
                    }
                }
            }
        });
    }
    if let Some(every) = compact_hash {
        tasks.spawn(async move {
            let mut checked = 0i64;
            loop {
                tokio::time::sleep(every).await;
                if c.leadership.is_leader() {
                    c.compact_hash_check(&mut checked).await;
                }
            }
        });
    }
}

impl Checker {
    fn peers(&self) -> Vec<(u64, Vec<String>)> {
        self.membership
            .members()
            .into_iter()
            .filter(|m| m.id != self.me)
            .map(|m| (m.id, m.peer_urls))
            .collect()
    }

    /// etcd's PeriodicCheck: the leader's hash before and after a
    /// linearizable read, against every follower's at the same revision.
    async fn periodic_check(&self) -> Result<(), String> {
        let h = local_hash(&self.store, 0).await?;
        let peers = peer_hashes(&self.forwarder, &self.peers(), h.rev, self.timeout).await;
        self.reader
            .linearizable_read()
            .await
            .map_err(|e| e.to_string())?;
        let h2 = local_hash(&self.store, 0).await?;
        let mut alarmed = false;
        let mut mismatch = |why: &str, peer: Option<u64>| {
            tracing::warn!(
                leader_revision = h2.rev,
                leader_compact_revision = h2.compact_rev,
                leader_hash = h.hash,
                follower_peer_id = %peer.map(|p| format!("{p:x}")).unwrap_or_default(),
                "{why}"
            );
            alarmed = true;
        };
        if h2.hash != h.hash && h2.rev == h.rev && h.compact_rev == h2.compact_rev {
            mismatch("found hash mismatch", None);
        }
        let mut checked = 0;
        for p in &peers {
            let Ok(resp) = &p.answer else { continue };
            checked += 1;
            let peer_rev = resp.header.as_ref().map_or(0, |h| h.revision);
            if peer_rev > h2.rev {
                mismatch(
                    "revision from follower must be less than or equal to leader's",
                    Some(p.id),
                );
            }
            if resp.compact_revision > h2.compact_rev {
                mismatch(
                    "compact revision from follower must be less than or equal to leader's",
                    Some(p.id),
                );
            }
            if resp.compact_revision == h.compact_rev && resp.hash != h.hash {
                mismatch("same compact revision then hashes must match", Some(p.id));
            }
        }
        if alarmed {
            self.raise_corrupt_alarm().await;
        }
        tracing::info!(
            number_of_peers_checked = checked,
            "finished peer corruption check"
        );
        Ok(())
    }

    /// etcd's CompactHashCheck, at the last compaction not yet checked
    /// against every peer.
    async fn compact_hash_check(&self, checked: &mut i64) {
        let compact_rev = match self.store.read() {
            Ok(v) => v.compact_rev,
            Err(e) => {
                tracing::warn!(error = %e, "compact hash check: cannot read the store");
                return;
            }
        };
        // HashKV refuses the compacted revision itself: the first one after
        // it covers the same history.
        let rev = compact_rev + 1;
        if compact_rev <= 0 || rev <= *checked {
            return;
        }
        tracing::info!(local_member_id = %format!("{:x}", self.me), "starting compact hash check");
        let Ok(h) = local_hash(&self.store, rev).await else {
            return;
        };
        let peers = peer_hashes(&self.forwarder, &self.peers(), rev, self.timeout).await;
        let mut same = 0;
        for p in &peers {
            let Ok(resp) = &p.answer else { continue };
            if resp.compact_revision != h.compact_rev {
                continue;
            }
            if resp.hash != h.hash {
                tracing::error!(
                    revision = rev,
                    leader_compact_revision = h.compact_rev,
                    leader_hash = h.hash,
                    follower_compact_revision = resp.compact_revision,
                    follower_hash = resp.hash,
                    follower_peer_id = %format!("{:x}", p.id),
                    "failed compaction hash check"
                );
                self.raise_corrupt_alarm().await;
                return;
            }
            same += 1;
        }
        if same == peers.len() {
            tracing::info!(
                number_of_peers_checked = same,
                revision = rev,
                "successfully checked hash on whole cluster"
            );
            *checked = rev;
        } else {
            tracing::warn!(
                revision = rev,
                "skipped revision in compaction hash check; was not able to check all peers"
            );
        }
    }

    /// Raises CORRUPT through the log, as etcd 3.5 does (member ID 0).
    async fn raise_corrupt_alarm(&self) {
        let req = Request::Alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: 0,
            alarm: AlarmType::Corrupt as i32,
        });
        if let Err(e) = self.proposer.propose_internal(req).await {
            tracing::warn!(error = %e, "cannot raise the CORRUPT alarm");
        }
    }
}

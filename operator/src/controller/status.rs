//! The status an `EtcdCluster` reports after one reconcile: phase,
//! conditions, members and endpoints, from what the reconcile observed
//! (pure: no API calls).

use crate::crd::{Endpoints, EtcdCluster, EtcdClusterStatus, MemberStatus, Phase, StorageStatus};
use crate::membership::{ClusterView, Step};
use crate::names::{ClusterNames, CLIENT_PORT};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;

/// Findings of one reconcile that the status reports besides the cluster.
#[derive(Default)]
pub(super) struct Notes {
    pub degraded: Option<(&'static str, String)>,
    pub pdb_missing: bool,
    /// The schedule's record (carried from the last status when None).
    pub backup: Option<crate::crd::ClusterBackupStatus>,
    /// Where the cluster was restored from (carried likewise).
    pub restore: Option<crate::crd::RestoreStatus>,
    /// Whether auth is on, when the operator asked (carried likewise).
    pub auth_enabled: Option<bool>,
    /// A defragmentation that ran in this reconcile (carried likewise).
    pub defrag: Option<crate::crd::DefragStatus>,
    /// The rollout's record (carried likewise).
    pub rollout: Option<crate::crd::RolloutStatus>,
    /// The quorum-loss record as decided (`Some(None)` drops it; carried
    /// when `None`).
    pub quorum_loss: Option<Option<crate::crd::QuorumLossStatus>>,
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// A paused cluster's status: what was last observed, with a `Paused`
/// condition (the next reconcile after unpausing drops it).
pub(super) fn paused(c: &EtcdCluster) -> EtcdClusterStatus {
    let mut status = c.status.clone().unwrap_or_default();
    if !status.conditions.iter().any(|x| x.type_ == "Paused") {
        status.conditions.push(condition(
            "Paused",
            true,
            "SpecPaused",
            "spec.paused: changes wait until it is false".into(),
            c.metadata.generation,
        ));
    }
    status
}

/// etcd's default quota when `options.quotaBackendBytes` is not set.
const DEFAULT_QUOTA: i64 = 2 << 30;

/// The largest member database against the quota.
fn storage(c: &EtcdCluster, view: &ClusterView) -> Option<StorageStatus> {
    let (db_size, db_size_in_use) = view.members.iter().filter_map(|m| m.db_size).max()?;
    let quota = c
        .spec
        .options
        .as_ref()
        .and_then(|o| o.quota_backend_bytes)
        .filter(|q| *q > 0)
        .unwrap_or(DEFAULT_QUOTA);
    let percent = |part: i64, whole: i64| if whole > 0 { part * 100 / whole } else { 0 };
    Some(StorageStatus {
        db_size,
        db_size_in_use,
        quota_bytes: quota,
        quota_used_percent: percent(db_size, quota),
        fragmented_percent: percent(db_size - db_size_in_use, db_size),
    })
}

/// The count so far, plus one when the leader differs from the one the
/// status named (a first leader is no change).
fn leader_changes(c: &EtcdCluster, leader: Option<&str>) -> i64 {
    let old = c.status.as_ref();
    let before = old.map_or(0, |s| s.leader_changes);
    match (old.and_then(|s| s.leader.as_deref()), leader) {
        (Some(was), Some(now)) if was != now => before + 1,
        _ => before,
    }
}

pub(super) fn status_of(
    c: &EtcdCluster,
    names: &ClusterNames,
    view: Option<&ClusterView>,
    sts: Option<&StatefulSet>,
    step: &Step,
    notes: &Notes,
) -> EtcdClusterStatus {
    let generation = c.metadata.generation;
    let sts_status = sts.and_then(|s| s.status.as_ref());
    let members: Vec<MemberStatus> = view
        .map(|v| {
            v.members
                .iter()
                .map(|m| MemberStatus {
                    name: m.name.clone(),
                    id: format!("{:x}", m.id),
                    peer_url: m.peer_urls.first().cloned().unwrap_or_default(),
                    client_urls: m.client_urls.clone(),
                    learner: m.learner,
                    healthy: m.healthy,
                })
                .collect()
        })
        .unwrap_or_default();
    let voters = members.iter().filter(|m| !m.learner).count();
    let healthy_voters = members.iter().filter(|m| !m.learner && m.healthy).count();
    let quorate = view.is_some() && voters > 0 && healthy_voters > voters / 2;
    let leader = view.and_then(|v| {
        let l = v.leader?;
        v.members.iter().find(|m| m.id == l).map(|m| m.name.clone())
    });
    let changing = !matches!(step, Step::Steady | Step::Refuse(_));
    let rollout = notes
        .rollout
        .clone()
        .or_else(|| c.status.as_ref().and_then(|s| s.rollout.clone()));
    let updating = rollout.as_ref().is_some_and(|r| !r.done);
    // While a rollout runs, the steps taken (pod replacements, leader
    // moves) are its own.
    let scaling = c.spec.replicas != sts.and_then(|s| s.spec.as_ref()?.replicas).unwrap_or(0)
        || members.iter().any(|m| m.learner)
        || (step.is_action() && !updating);
    let unhealthy = members.iter().filter(|m| !m.healthy).count();
    let phase = if c.meta().deletion_timestamp.is_some() {
        Phase::Deleting
    } else if notes.degraded.is_some() {
        Phase::Degraded
    } else if view.is_none() {
        if c.status
            .as_ref()
            .and_then(|s| s.cluster_id.as_ref())
            .is_some()
        {
            Phase::Degraded
        } else {
            Phase::Creating
        }
    } else if scaling {
        Phase::Scaling
    } else if updating {
        Phase::Updating
    } else if unhealthy > 0 {
        Phase::Degraded
    } else {
        Phase::Running
    };
    let mut conditions = vec![
        condition(
            "Available",
            quorate,
            if quorate {
                "QuorumHealthy"
            } else if view.is_none() {
                "Unreachable"
            } else {
                "NoQuorum"
            },
            format!("{healthy_voters} of {voters} voting members healthy"),
            generation,
        ),
        condition(
            "Progressing",
            changing,
            if updating {
                "RollingUpdate"
            } else if scaling {
                "Scaling"
            } else if changing {
                "Reconciling"
            } else {
                "Steady"
            },
            step.to_string(),
            generation,
        ),
    ];
    let degraded = match &notes.degraded {
        Some((reason, why)) => condition("Degraded", true, reason, why.clone(), generation),
        None if view.is_some() && unhealthy > 0 => condition(
            "Degraded",
            true,
            "MembersUnhealthy",
            format!("{unhealthy} members not healthy"),
            generation,
        ),
        None => condition("Degraded", false, "AllHealthy", String::new(), generation),
    };
    conditions.push(degraded);
    if notes.pdb_missing {
        conditions.push(condition(
            "DisruptionBudget",
            false,
            "PolicyV1Unavailable",
            "the API server does not serve policy/v1 PodDisruptionBudgets (Kubernetes >= 1.21)"
                .into(),
            generation,
        ));
    }
    // A condition keeps its transition time while its status is unchanged.
    if let Some(old) = c.status.as_ref() {
        for cond in &mut conditions {
            if let Some(prev) = old
                .conditions
                .iter()
                .find(|o| o.type_ == cond.type_ && o.status == cond.status)
            {
                cond.last_transition_time = prev.last_transition_time.clone();
            }
        }
    }
    EtcdClusterStatus {
        observed_generation: generation,
        phase,
        conditions,
        replicas: sts_status.map(|s| s.replicas).unwrap_or(0),
        ready_replicas: sts_status.and_then(|s| s.ready_replicas).unwrap_or(0),
        selector: Some(names.selector_string()),
        cluster_id: view
            .map(|v| format!("{:x}", v.cluster_id))
            .or_else(|| c.status.as_ref().and_then(|s| s.cluster_id.clone())),
        leader_changes: leader_changes(c, leader.as_deref()),
        storage: view.and_then(|v| storage(c, v)),
        leader,
        members,
        endpoints: Some(Endpoints {
            discovery_srv: names.srv_domain(),
            client_service: format!(
                "{}.{}.svc:{CLIENT_PORT}",
                names.client_service(),
                names.namespace
            ),
        }),
        backup: notes
            .backup
            .clone()
            .or_else(|| c.status.as_ref().and_then(|s| s.backup.clone())),
        restore: notes
            .restore
            .clone()
            .or_else(|| c.status.as_ref().and_then(|s| s.restore.clone())),
        tls: c.spec.tls.as_ref().map(|t| t.mode),
        defrag: notes
            .defrag
            .clone()
            .or_else(|| c.status.as_ref().and_then(|s| s.defrag.clone())),
        auth_enabled: notes
            .auth_enabled
            .or_else(|| c.status.as_ref().and_then(|s| s.auth_enabled)),
        rollout,
        quorum_loss: notes
            .quorum_loss
            .clone()
            .unwrap_or_else(|| c.status.as_ref().and_then(|s| s.quorum_loss.clone())),
    }
}

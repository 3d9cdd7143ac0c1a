//! The status an `EtcdCluster` reports after one reconcile: phase,
//! conditions, members and endpoints, from what the reconcile observed
//! (pure: no API calls).

use crate::crd::{Endpoints, EtcdCluster, EtcdClusterStatus, MemberStatus, Phase};
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
    let scaling = c.spec.replicas != sts.and_then(|s| s.spec.as_ref()?.replicas).unwrap_or(0)
        || members.iter().any(|m| m.learner)
        || step.is_action();
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
            if scaling {
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
    }
}

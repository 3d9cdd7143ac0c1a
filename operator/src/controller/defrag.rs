//! `spec.maintenance.defrag` in a reconcile: when a run is due and every
//! member is healthy, each member is defragmented in turn (the leader
//! last), the cluster observed healthy again before the next one; the run
//! goes into `status.defrag` and an event.

use super::{publish, Context, MemberApi};
use crate::crd::{DefragStatus, EtcdCluster};
use crate::maintenance::{due, order, sequence};
use crate::membership::ClusterView;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::Resource;

pub(super) enum Outcome {
    Nothing,
    /// The schedule does not parse (why).
    Invalid(String),
    Ran(DefragStatus),
}

pub(super) async fn run(
    ctx: &Context,
    c: &EtcdCluster,
    reference: &ObjectReference,
    members: &dyn MemberApi,
    view: &ClusterView,
) -> Outcome {
    let Some(policy) = c.spec.maintenance.as_ref().and_then(|m| m.defrag.as_ref()) else {
        return Outcome::Nothing;
    };
    let now = Timestamp::now();
    let last_run = c
        .status
        .as_ref()
        .and_then(|s| s.defrag.as_ref())
        .and_then(|d| d.time.parse::<Timestamp>().ok());
    let created = c.meta().creation_timestamp.as_ref().map_or(now, |t| t.0);
    let why = match due(policy, view, last_run, created, now) {
        Ok(Some(why)) => why,
        Ok(None) => return Outcome::Nothing,
        Err(invalid) => return Outcome::Invalid(invalid),
    };
    let turn = match order(view) {
        Ok(turn) => turn,
        Err(not_now) => {
            // Due, but not on an unhealthy cluster: the next reconcile
            // asks again.
            tracing::info!(cluster = %c.meta().name.as_deref().unwrap_or_default(), %why, %not_now, "defragmentation waits");
            return Outcome::Nothing;
        }
    };
    let mut record = DefragStatus {
        time: now.to_string(),
        reason: why.reason().into(),
        result: "Succeeded".into(),
        message: String::new(),
        members: Vec::new(),
    };
    for (id, name) in turn {
        let failed = match members.defragment(view, id).await {
            Err(e) => Some(format!("{name}: {e}")),
            Ok(()) => match members.observe().await {
                Ok(v) if v.members.iter().all(|m| m.healthy) && v.leader.is_some() => None,
                Ok(_) | Err(_) => Some(format!(
                    "the cluster was not healthy after {name}'s defragmentation"
                )),
            },
        };
        if let Some(message) = failed {
            record.result = "Failed".into();
            record.message = message.clone();
            publish(
                ctx,
                reference,
                EventType::Warning,
                "DefragmentFailed",
                message,
            )
            .await;
            return Outcome::Ran(record);
        }
        record.members.push(name);
    }
    let note = format!("{} (the leader last): {why}", record.members.join(", "));
    publish(ctx, reference, EventType::Normal, "Defragmented", note).await;
    Outcome::Ran(record)
}

/// NOSPACE remediation (opt-in): compact the history to the current
/// revision, defragment every member (the leader last), disarm the alarm.
/// Runs when a member raised the alarm and every member answers.
pub(super) async fn remediate_nospace(
    ctx: &Context,
    c: &EtcdCluster,
    reference: &ObjectReference,
    members: &dyn MemberApi,
    view: &ClusterView,
) -> Option<DefragStatus> {
    let enabled = c
        .spec
        .maintenance
        .as_ref()
        .is_some_and(|m| m.nospace_remediation);
    if !enabled {
        return None;
    }
    let alarmed = match members.nospace_alarms().await {
        Ok(alarmed) if !alarmed.is_empty() => alarmed,
        Ok(_) => return None,
        Err(e) => {
            tracing::debug!(error = %e, "alarms not read");
            return None;
        }
    };
    let turn = match sequence(view) {
        Ok(turn) if view.members.iter().all(|m| m.db_size.is_some()) => turn,
        _ => {
            tracing::info!("NOSPACE remediation waits for every member to answer");
            return None;
        }
    };
    let time = Timestamp::now().to_string();
    let done = remediation_steps(members, view, &turn, &alarmed).await;
    let (result, message, reason) = match &done {
        Ok(revision) => (
            "Succeeded",
            format!(
                "NOSPACE on {} members: compacted at revision {revision}, defragmented {} (the leader last), alarm disarmed",
                alarmed.len(),
                names(&turn).join(", ")
            ),
            "AlarmRemediated",
        ),
        Err(why) => ("Failed", why.clone(), "AlarmRemediationFailed"),
    };
    let kind = if done.is_ok() {
        EventType::Normal
    } else {
        EventType::Warning
    };
    publish(ctx, reference, kind, reason, message.clone()).await;
    Some(DefragStatus {
        time,
        reason: "NoSpace".into(),
        result: result.into(),
        message,
        members: if done.is_ok() {
            names(&turn)
        } else {
            Vec::new()
        },
    })
}

fn names(turn: &[(u64, String)]) -> Vec<String> {
    turn.iter().map(|(_, n)| n.clone()).collect()
}

/// Compaction, each member's defragmentation in turn, disarming: the
/// revision compacted at, or what failed.
async fn remediation_steps(
    members: &dyn MemberApi,
    view: &ClusterView,
    turn: &[(u64, String)],
    alarmed: &[u64],
) -> Result<i64, String> {
    let revision = members
        .compact_all()
        .await
        .map_err(|e| format!("compaction: {e}"))?;
    for (id, name) in turn {
        members
            .defragment(view, *id)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
    }
    members
        .disarm_nospace(alarmed)
        .await
        .map_err(|e| format!("disarming the alarm: {e}"))?;
    Ok(revision)
}

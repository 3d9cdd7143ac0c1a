//! A cluster's backup schedule (`spec.backup`): creates the due run's
//! `EtcdBackup` (named after its time, so never twice), deletes what
//! retention no longer keeps (their snapshots go with them), and reports
//! the last run and the last success. The backups outlive the cluster.

use super::{Context, Error};
use crate::backup::schedule::{backup_name, due, expired, next_after, parse, Made};
use crate::crd::{
    BackupPhase, ClusterBackupStatus, DeletionPolicy, EtcdBackup, EtcdBackupSpec, EtcdCluster,
    Phase,
};
use crate::names::{ClusterNames, CLUSTER_LABEL, MANAGED_BY_LABEL, MANAGER};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Resource;
use std::collections::BTreeMap;
use std::time::Duration;

/// Label of the backups a schedule made.
pub const SCHEDULED_LABEL: &str = "ferrocd.dev/scheduled";

/// What the schedule did: the status to report and when to look again.
pub(super) struct Scheduled {
    pub status: ClusterBackupStatus,
    pub next: Option<Duration>,
    /// A schedule that cannot be read (reported as Degraded).
    pub invalid: Option<String>,
}

pub(super) async fn run(
    ctx: &Context,
    c: &EtcdCluster,
    names: &ClusterNames,
) -> Result<Option<Scheduled>, Error> {
    let Some(spec) = &c.spec.backup else {
        return Ok(None);
    };
    let mut status = c
        .status
        .as_ref()
        .and_then(|s| s.backup.clone())
        .unwrap_or_default();
    let cron = match parse(&spec.schedule) {
        Ok(c) => c,
        Err(why) => {
            return Ok(Some(Scheduled {
                status,
                next: None,
                invalid: Some(why),
            }))
        }
    };
    let now = Timestamp::now();
    let since = status
        .last_schedule_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| c.meta().creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let api: Api<EtcdBackup> = Api::namespaced(ctx.client.clone(), &names.namespace);
    // A cluster still forming has nothing to back up: its runs wait and
    // collapse into one once it is up.
    let forming = matches!(
        c.status.as_ref().map(|s| s.phase).unwrap_or_default(),
        Phase::Pending | Phase::Creating
    );
    if let Some(at) = due(&cron, since, now).filter(|_| !forming) {
        let name = backup_name(&names.name, at);
        let mut b = EtcdBackup::new(
            &name,
            EtcdBackupSpec {
                cluster_name: names.name.clone(),
                destination: spec.destination.clone(),
                verify: spec.verify,
                deletion_policy: DeletionPolicy::Delete,
            },
        );
        b.metadata.namespace = Some(names.namespace.clone());
        b.metadata.labels = Some(BTreeMap::from([
            (CLUSTER_LABEL.to_string(), names.name.clone()),
            (SCHEDULED_LABEL.to_string(), "true".to_string()),
            (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
        ]));
        // Not owned by the cluster: deleting the cluster must not delete
        // the backups it could be restored from.
        match api.create(&PostParams::default(), &b).await {
            Ok(_) => tracing::info!(cluster = %names.name, backup = %name, "scheduled backup"),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        status.last_schedule_time = Some(at.to_string());
    }

    let selector = format!("{CLUSTER_LABEL}={},{SCHEDULED_LABEL}=true", names.name);
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    let made: Vec<Made> = list
        .items
        .iter()
        .filter(|b| b.meta().deletion_timestamp.is_none())
        .map(|b| Made {
            name: b.meta().name.clone().unwrap_or_default(),
            phase: b.status.as_ref().map(|s| s.phase).unwrap_or_default(),
            created: b
                .meta()
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(now),
        })
        .collect();
    if let Some(retention) = &spec.retention {
        for name in expired(&made, retention, now) {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => tracing::info!(cluster = %names.name, backup = %name, "retention"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if let Some(newest) = list
        .items
        .iter()
        .filter(|b| b.status.as_ref().map(|s| s.phase) == Some(BackupPhase::Succeeded))
        .max_by_key(|b| b.meta().creation_timestamp.as_ref().map(|t| t.0))
    {
        status.last_successful_backup = newest.meta().name.clone();
        status.last_success_time = newest
            .status
            .as_ref()
            .and_then(|s| s.completion_time.clone());
    }
    let next = next_after(&cron, now)
        .map(|t| Duration::from_secs_f64(t.duration_since(now).as_secs_f64().max(1.0)));
    Ok(Some(Scheduled {
        status,
        next,
        invalid: None,
    }))
}

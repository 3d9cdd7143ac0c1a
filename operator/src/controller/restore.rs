//! A cluster created from a backup: which snapshot its founding members
//! restore (fixed in the status before the StatefulSet exists, so the
//! members' restore step never changes), and the moment the cluster has
//! formed on it (ConfigMap `C-restore` then tells the restore step of any
//! later pod to leave its empty data dir alone).

use super::{Context, Error};
use crate::backup::record::Report;
use crate::crd::{BackupPhase, EtcdBackup, EtcdCluster, RestoreStatus};
use crate::membership::ClusterView;
use crate::names::ClusterNames;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::Resource;
use std::collections::BTreeMap;

/// The restore source of a cluster: `Ok(None)` when it starts empty,
/// `Err(why)` while the named backup is not ready.
pub(super) async fn resolve(
    ctx: &Context,
    c: &EtcdCluster,
    created: bool,
) -> Result<Result<Option<RestoreStatus>, String>, Error> {
    if let Some(r) = c.status.as_ref().and_then(|s| s.restore.clone()) {
        return Ok(Ok(Some(r)));
    }
    let Some(from) = c
        .spec
        .bootstrap
        .as_ref()
        .and_then(|b| b.from_backup.clone())
    else {
        return Ok(Ok(None));
    };
    if created {
        // Members exist already: they keep their data.
        return Ok(Ok(None));
    }
    if let Some(name) = &from.backup_name {
        let names = ClusterNames::of(c);
        let api: Api<EtcdBackup> = Api::namespaced(ctx.client.clone(), &names.namespace);
        let Some(b) = api.get_opt(name).await? else {
            return Ok(Err(format!("EtcdBackup {name} not found")));
        };
        let s = b.status.clone().unwrap_or_default();
        return Ok(match (s.phase, s.key) {
            (BackupPhase::Succeeded, Some(key)) => Ok(Some(RestoreStatus {
                backup: Some(name.clone()),
                destination: b.spec.destination.clone(),
                key,
                sha256: s.sha256.clone(),
                skip_hash_check: false,
                revision: s.revision,
                done: false,
            })),
            (BackupPhase::Failed, _) => Err(format!(
                "EtcdBackup {name} failed: {}",
                s.message.unwrap_or_default()
            )),
            (phase, _) => Err(format!("EtcdBackup {name} is {phase}")),
        });
    }
    match (from.destination, from.key) {
        (Some(destination), Some(key)) => Ok(Ok(Some(RestoreStatus {
            backup: None,
            destination,
            key,
            sha256: from.sha256,
            skip_hash_check: from.skip_hash_check,
            revision: None,
            done: false,
        }))),
        _ => Ok(Err(
            "bootstrap.fromBackup names neither backupName nor destination and key".into(),
        )),
    }
}

/// Once every founding member is a healthy voter, the restore is done:
/// the ConfigMap says so and the status records the revision (from the
/// backup, or from what the first member's restore step reported).
pub(super) async fn finish(
    ctx: &Context,
    c: &EtcdCluster,
    names: &ClusterNames,
    r: &RestoreStatus,
    view: Option<&ClusterView>,
    bootstrap: i32,
) -> Result<Option<RestoreStatus>, Error> {
    if r.done {
        return Ok(None);
    }
    let Some(view) = view else { return Ok(None) };
    let formed = view.leader.is_some()
        && view
            .members
            .iter()
            .filter(|m| !m.learner && m.healthy)
            .count()
            >= bootstrap.max(1) as usize;
    if !formed {
        return Ok(None);
    }
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(names.restore_config()),
            namespace: Some(names.namespace.clone()),
            labels: Some(names.labels()),
            owner_references: c.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("done".to_string(), "true".to_string())])),
        ..ConfigMap::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &names.namespace);
    api.patch(
        &names.restore_config(),
        &PatchParams::apply(crate::names::MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await?;
    let mut done = r.clone();
    done.done = true;
    if done.revision.is_none() {
        done.revision = restored_revision(ctx, names).await?;
    }
    Ok(Some(done))
}

/// The revision member 0's restore step reported.
async fn restored_revision(ctx: &Context, names: &ClusterNames) -> Result<Option<i64>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let Some(p) = pods.get_opt(&names.pod_name(0)).await? else {
        return Ok(None);
    };
    Ok(p.status
        .and_then(|s| s.init_container_statuses)
        .unwrap_or_default()
        .iter()
        .find_map(|cs| {
            let t = cs.state.as_ref()?.terminated.as_ref()?;
            match Report::parse(t.message.as_deref()?)? {
                Report::Restored(r) => r.revision,
                _ => None,
            }
        }))
}

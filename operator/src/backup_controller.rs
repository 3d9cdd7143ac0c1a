//! Reconciles `EtcdBackup`s, one step per reconcile: start the save Job,
//! record its report (SHA-256, revision, size, keys, HashKV), start the
//! verify Job when asked and record its verdict; on deletion with policy
//! `Delete`, run the delete Job before letting the resource go. Job names
//! are fixed per backup, so an operator restarted at any point neither
//! runs a step twice nor marks anything good that no Job reported.

use crate::backup::pod::{job, job_name, location, object_key, JobKind};
use crate::backup::record::{Report, Verified};
use crate::controller::{publish, Context, Error};
use crate::crd::{
    BackupPhase, DeletionPolicy, EtcdBackup, EtcdBackupStatus, EtcdCluster, Verification,
};
use crate::names::{ClusterNames, MANAGED_BY_LABEL, MANAGER};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub const FINALIZER: &str = "ferrocd.dev/backup-object";

/// Runs the EtcdBackup controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let (backups, jobs) = match &namespace {
        Some(ns) => (
            Api::<EtcdBackup>::namespaced(client.clone(), ns),
            Api::<Job>::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let children = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    Controller::new(backups, watcher::Config::default())
        .owns(jobs, children)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "backup reconcile");
            }
        })
        .await;
}

pub async fn reconcile(cached: Arc<EtcdBackup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<EtcdBackup> = Api::namespaced(ctx.client.clone(), &ns);
    // The phase moves on from the status: start from the API's copy, not a
    // cache that may not have seen the last step yet.
    let Some(b) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let b = Arc::new(b);
    finalizer(&api, FINALIZER, b, |event| async {
        match event {
            Finalizer::Apply(b) => apply(&b, &ctx).await,
            Finalizer::Cleanup(b) => cleanup(&b, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

pub fn error_policy(b: Arc<EtcdBackup>, e: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(backup = %b.name_any(), error = %e, "backup reconcile failed");
    ctx.metrics.failed(e.metric_label());
    Action::requeue(Duration::from_secs(10))
}

/// Where a Job stands.
enum Outcome {
    Running,
    /// Finished; the report its pod left, or why there is none.
    Done(Result<Report, String>),
}

/// Creates the Job unless it exists; then what it came to.
async fn run_job(ctx: &Context, wanted: Job) -> Result<Outcome, Error> {
    let ns = wanted.metadata.namespace.clone().unwrap_or_default();
    let name = wanted.metadata.name.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = match jobs.get_opt(&name).await? {
        Some(j) => j,
        None => match jobs.create(&PostParams::default(), &wanted).await {
            Ok(j) => j,
            Err(kube::Error::Api(e)) if e.code == 409 => jobs.get(&name).await?,
            Err(e) => return Err(e.into()),
        },
    };
    let status = job.status.clone().unwrap_or_default();
    let failed_condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    let finished = status.succeeded.unwrap_or(0) > 0
        || status.failed.unwrap_or(0) > 0
        || failed_condition.is_some();
    if !finished {
        return Ok(Outcome::Running);
    }
    // The report is the pod's termination message.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await?;
    let report = list.items.iter().find_map(|p| {
        p.status
            .as_ref()?
            .container_statuses
            .iter()
            .flatten()
            .find_map(|cs| {
                let t = cs.state.as_ref()?.terminated.as_ref()?;
                Report::parse(t.message.as_deref()?)
            })
    });
    Ok(Outcome::Done(report.ok_or_else(|| {
        failed_condition
            .and_then(|c| c.message.clone().or(c.reason.clone()))
            .unwrap_or_else(|| format!("Job {name} ended without a report"))
    })))
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(Timestamp::now()),
    }
}

async fn write_status(
    ctx: &Context,
    b: &EtcdBackup,
    status: &EtcdBackupStatus,
) -> Result<(), Error> {
    if b.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<EtcdBackup> = Api::namespaced(
        ctx.client.clone(),
        &b.namespace().ok_or(Error::NoNamespace)?,
    );
    api.patch_status(
        &b.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// The cluster's image (it holds the agent); the operator's default when
/// the cluster is gone.
fn image_of(c: Option<&EtcdCluster>) -> String {
    c.and_then(|c| c.spec.image.clone())
        .unwrap_or_else(crate::render::default_image)
}

async fn apply(b: &EtcdBackup, ctx: &Context) -> Result<Action, Error> {
    let ns = b.namespace().ok_or(Error::NoNamespace)?;
    let mut status = b.status.clone().unwrap_or_default();
    if matches!(status.phase, BackupPhase::Failed | BackupPhase::Succeeded) {
        return Ok(Action::await_change());
    }
    let reference = b.object_ref(&());
    let clusters: Api<EtcdCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters.get_opt(&b.spec.cluster_name).await?;
    let key = status.key.clone().unwrap_or_else(|| {
        object_key(
            &b.spec.destination,
            &ns,
            &b.spec.cluster_name,
            &b.name_any(),
        )
    });
    let image = image_of(cluster.as_ref());

    if status.phase == BackupPhase::Verifying {
        let kind = JobKind::Verify {
            sha256: status.sha256.as_deref().unwrap_or_default(),
            revision: status.revision.unwrap_or_default(),
            keys: status.keys.unwrap_or_default(),
            hash_kv: status.hash_kv.unwrap_or_default(),
            root_secret: cluster.as_ref().and_then(crate::auth::root_secret),
        };
        let verdict = match run_job(ctx, job(b, &key, &image, kind)).await? {
            Outcome::Running => return Ok(Action::requeue(Duration::from_secs(3))),
            Outcome::Done(Ok(Report::Verified(v))) => v,
            Outcome::Done(Ok(Report::Failed(f))) => Verified {
                verified: false,
                message: format!("could not verify: {}", f.message),
            },
            Outcome::Done(Ok(other)) => Verified {
                verified: false,
                message: format!("unexpected report {other:?}"),
            },
            Outcome::Done(Err(why)) => Verified {
                verified: false,
                message: format!("could not verify: {why}"),
            },
        };
        let now = Timestamp::now().to_string();
        status.verification = Some(Verification {
            verified: verdict.verified,
            message: verdict.message.clone(),
            time: Some(now),
        });
        status.conditions.push(condition(
            "Verified",
            verdict.verified,
            if verdict.verified {
                "Restored"
            } else {
                "NotRestorable"
            },
            &verdict.message,
        ));
        if verdict.verified {
            status.phase = BackupPhase::Succeeded;
            publish(
                ctx,
                &reference,
                EventType::Normal,
                "Verified",
                verdict.message,
            )
            .await;
        } else {
            // A backup that does not restore is no backup.
            status.phase = BackupPhase::Failed;
            status.message = Some(format!("does not verify: {}", verdict.message));
            ctx.metrics.backup_failed("Verification");
            publish(
                ctx,
                &reference,
                EventType::Warning,
                "VerificationFailed",
                verdict.message,
            )
            .await;
        }
        write_status(ctx, b, &status).await?;
        return Ok(Action::await_change());
    }

    let Some(cluster) = cluster else {
        let why = format!("EtcdCluster {} not found", b.spec.cluster_name);
        fail(ctx, b, &mut status, "ClusterNotFound", &why).await?;
        return Ok(Action::await_change());
    };
    // The members' TLS as the cluster controller recorded it.
    let cluster = crate::effective::cluster(&cluster, None);
    let names = ClusterNames::of(&cluster);
    let endpoints: Vec<String> = (0..cluster.spec.replicas.max(1) as u32)
        .map(|i| names.client_url(i))
        .collect();
    let kind = JobKind::Save {
        endpoints: &endpoints,
        tls_secret: crate::render::tls_mounts(&cluster).map(|(client, _)| client.secret),
        root_secret: crate::auth::root_secret(&cluster),
    };
    match run_job(ctx, job(b, &key, &image, kind)).await? {
        Outcome::Running => {
            if status.phase == BackupPhase::Pending {
                status.phase = BackupPhase::Running;
                status.key = Some(key.clone());
                status.location = Some(location(&b.spec.destination, &key));
                status.start_time = Some(Timestamp::now().to_string());
                write_status(ctx, b, &status).await?;
                publish(
                    ctx,
                    &reference,
                    EventType::Normal,
                    "Started",
                    format!("Job {}", job_name(&b.name_any(), "save")),
                )
                .await;
            }
            Ok(Action::requeue(Duration::from_secs(3)))
        }
        Outcome::Done(Ok(Report::Taken(t))) => {
            status.key = Some(key.clone());
            status.location = Some(location(&b.spec.destination, &key));
            status.sha256 = Some(t.sha256.clone());
            status.size = Some(t.size as i64);
            status.revision = Some(t.revision);
            status.keys = Some(t.keys);
            status.hash_kv = Some(t.hash_kv as i64);
            status.member = Some(t.member.clone());
            status.cluster_id = Some(t.cluster_id.clone());
            status.completion_time = Some(Timestamp::now().to_string());
            status.message = None;
            let note = format!(
                "revision {} ({} keys, {} bytes) from member {}{} at {}",
                t.revision,
                t.keys,
                t.size,
                t.member,
                if t.from_leader { " (the leader)" } else { "" },
                status.location.clone().unwrap_or_default()
            );
            status
                .conditions
                .push(condition("Complete", true, "Stored", &note));
            status.phase = if b.spec.verify {
                BackupPhase::Verifying
            } else {
                BackupPhase::Succeeded
            };
            ctx.metrics
                .backup_succeeded(&ns, &b.spec.cluster_name, Timestamp::now());
            write_status(ctx, b, &status).await?;
            publish(ctx, &reference, EventType::Normal, "Stored", note).await;
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Outcome::Done(Ok(Report::Failed(f))) => {
            fail(ctx, b, &mut status, &f.reason, &f.message).await?;
            Ok(Action::await_change())
        }
        Outcome::Done(Ok(other)) => {
            fail(ctx, b, &mut status, "Unexpected", &format!("{other:?}")).await?;
            Ok(Action::await_change())
        }
        Outcome::Done(Err(why)) => {
            fail(ctx, b, &mut status, "JobFailed", &why).await?;
            Ok(Action::await_change())
        }
    }
}

/// Marks the backup failed: condition, event, metric.
async fn fail(
    ctx: &Context,
    b: &EtcdBackup,
    status: &mut EtcdBackupStatus,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    status.phase = BackupPhase::Failed;
    status.message = Some(message.to_string());
    status.completion_time = Some(Timestamp::now().to_string());
    status
        .conditions
        .push(condition("Complete", false, reason, message));
    ctx.metrics
        .backup_failed(crate::metrics::reason_label(reason));
    write_status(ctx, b, status).await?;
    publish(
        ctx,
        &b.object_ref(&()),
        EventType::Warning,
        "BackupFailed",
        format!("{reason}: {message}"),
    )
    .await;
    Ok(())
}

/// On deletion: with policy Delete, the stored object goes first (a Job
/// that reaches the destination); a failed delete is reported and does
/// not keep the resource.
async fn cleanup(b: &EtcdBackup, ctx: &Context) -> Result<Action, Error> {
    let status = b.status.clone().unwrap_or_default();
    let Some(key) = status.key.clone() else {
        return Ok(Action::await_change());
    };
    if b.spec.deletion_policy != DeletionPolicy::Delete {
        return Ok(Action::await_change());
    }
    let ns = b.namespace().ok_or(Error::NoNamespace)?;
    if status.phase == BackupPhase::Running {
        // A save still uploading would store its object after the delete.
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
        let save = jobs.get_opt(&job_name(&b.name_any(), "save")).await?;
        let finished = save
            .as_ref()
            .and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.succeeded.unwrap_or(0) > 0 || s.failed.unwrap_or(0) > 0);
        if save.is_some() && !finished {
            return Err(Error::Waiting("the save Job is still running".into()));
        }
    }
    let clusters: Api<EtcdCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters.get_opt(&b.spec.cluster_name).await?;
    let image = image_of(cluster.as_ref());
    match run_job(ctx, job(b, &key, &image, JobKind::Delete)).await? {
        Outcome::Running => Err(Error::Waiting("the delete Job is running".into())),
        Outcome::Done(Ok(Report::Deleted(_))) => Ok(Action::await_change()),
        Outcome::Done(other) => {
            publish(
                ctx,
                &b.object_ref(&()),
                EventType::Warning,
                "DeleteFailed",
                format!(
                    "{} may remain: {other:?}",
                    location(&b.spec.destination, &key)
                ),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

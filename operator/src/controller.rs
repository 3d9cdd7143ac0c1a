//! One reconcile of an `EtcdCluster`: apply its children (server-side
//! apply), observe the cluster through its members' client URLs, take at
//! most one membership step, write the status, publish an event for what
//! changed. Wrapped in a finalizer that removes claims on deletion when the
//! spec says so.

use crate::auth::RootPassword;
use crate::crd::{EtcdCluster, EtcdClusterStatus, PvcRetention};
use crate::membership::{next_step, ClusterView, EtcdError, Observed, Step};
use crate::metrics::Metrics;
use crate::names::{ClusterNames, MANAGER};
use crate::render;
use crate::tls::TlsState;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const FINALIZER: &str = "ferrocd.dev/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cluster: {0}")]
    Etcd(#[from] EtcdError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("EtcdCluster has no namespace")]
    NoNamespace,
    /// A step that must finish before this one can (retried).
    #[error("waiting: {0}")]
    Waiting(String),
}

impl Error {
    /// The `error` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Etcd(_) => "etcd",
            Error::Finalizer(_) => "finalizer",
            Error::Tls(_) => "tls",
            Error::NoNamespace => "spec",
            Error::Waiting(_) => "waiting",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub connect: Connect,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, connect: Connect) -> Context {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            connect,
        }
    }
}

/// Runs the controller until the stream ends (the process is asked to stop).
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let (clusters, sets, services) = match &namespace {
        Some(ns) => (
            Api::<EtcdCluster>::namespaced(client.clone(), ns),
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let children =
        watcher::Config::default().labels(&format!("{}={MANAGER}", crate::names::MANAGED_BY_LABEL));
    Controller::new(clusters, watcher::Config::default())
        .owns(sets, children.clone())
        .owns(services, children)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile");
            }
        })
        .await;
}

pub async fn reconcile(cached: Arc<EtcdCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<EtcdCluster> = Api::namespaced(ctx.client.clone(), &ns);
    // The status holds decisions (the restore source, the TLS mode) and is
    // written whole: a cache behind this operator's last write would undo
    // them, so each reconcile starts from the object as the API has it.
    let Some(c) = api.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let c = Arc::new(c);
    let result = finalizer(&api, FINALIZER, c, |event| async {
        match event {
            Finalizer::Apply(c) => apply(&c, &ctx).await,
            Finalizer::Cleanup(c) => cleanup(&c, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconciled(started.elapsed());
    result
}

pub fn error_policy(c: Arc<EtcdCluster>, e: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %c.name_any(), error = %e, "reconcile failed");
    ctx.metrics.failed(e.metric_label());
    Action::requeue(Duration::from_secs(10))
}

fn ssa() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Whether `sts` belongs to another (deleted) EtcdCluster object than `c`.
fn of_an_earlier_cluster(sts: &StatefulSet, c: &EtcdCluster) -> bool {
    let owners = sts.metadata.owner_references.as_deref().unwrap_or_default();
    let uid = c.metadata.uid.as_deref();
    !owners.is_empty() && uid.is_some() && !owners.iter().any(|o| Some(o.uid.as_str()) == uid)
}

/// The size the cluster was created with: the running StatefulSet's
/// `--initial-cluster-size`, else the spec's replicas (a new cluster).
fn bootstrap_replicas(c: &EtcdCluster, sts: Option<&StatefulSet>) -> i32 {
    sts.and_then(|s| s.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.args.as_ref())
        .and_then(|args| {
            args.iter()
                .find_map(|a| a.strip_prefix("--initial-cluster-size="))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(c.spec.replicas.max(1))
}

async fn apply(c: &EtcdCluster, ctx: &Context) -> Result<Action, Error> {
    if c.spec.paused {
        write_status(ctx, c, status::paused(c)).await?;
        // Unpausing is an edit, and an edit wakes the controller.
        return Ok(Action::await_change());
    }
    let ns = c.namespace().ok_or(Error::NoNamespace)?;
    let client = ctx.client.clone();
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let existing = sets.get_opt(&c.name_any()).await?;
    // Everything below renders from the settings in effect (a StatefulSet
    // left by a deleted cluster of this name says nothing about this one).
    let running = existing.as_ref().filter(|s| !of_an_earlier_cluster(s, c));
    let c = &crate::effective::cluster(c, running);
    let names = ClusterNames::of(c);
    let reference = c.object_ref(&());
    let mut notes = Notes::default();

    let tls = match crate::tls::ensure(&client, c, &names).await? {
        TlsState::Disabled => None,
        TlsState::Ready { client, issued } => {
            if issued {
                let note = format!("member certificate in Secret {}", names.tls_secret());
                publish(
                    ctx,
                    &reference,
                    EventType::Normal,
                    "CertificateIssued",
                    note,
                )
                .await;
            }
            Some(client)
        }
        TlsState::Missing(why) => {
            // Pods could not mount what is missing: render nothing yet.
            notes.degraded = Some(("TLSSecretMissing", why.clone()));
            publish(ctx, &reference, EventType::Warning, "TLSSecretMissing", why).await;
            let waiting = Step::Wait("TLS Secrets".into());
            let status = status_of(c, &names, None, None, &waiting, &notes);
            write_status(ctx, c, status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };

    let root = match crate::auth::root_password(&client, c, &names).await? {
        RootPassword::Missing(why) => {
            notes.degraded = Some(("AuthSecretMissing", why.clone()));
            publish(
                ctx,
                &reference,
                EventType::Warning,
                "AuthSecretMissing",
                why,
            )
            .await;
            let waiting = Step::Wait("the root password Secret".into());
            let status = status_of(c, &names, None, None, &waiting, &notes);
            write_status(ctx, c, status).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
        root => root,
    };

    if existing
        .as_ref()
        .is_some_and(|s| of_an_earlier_cluster(s, c))
    {
        // A cluster deleted and created again under its name: the old
        // members must be gone before new ones (maybe restored) start.
        let waiting = Step::Wait(format!(
            "StatefulSet {} of a deleted cluster of this name to be removed",
            names.headless_service()
        ));
        let status = status_of(c, &names, None, None, &waiting, &notes);
        write_status(ctx, c, status).await?;
        return Ok(Action::requeue(Duration::from_secs(3)));
    }
    let restore_from = match restore::resolve(ctx, c, existing.is_some()).await? {
        Ok(r) => r,
        Err(why) => {
            // No member may start before it knows what to restore.
            let waiting = Step::Wait(why);
            let status = status_of(c, &names, None, None, &waiting, &notes);
            write_status(ctx, c, status).await?;
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
    };
    // The members render from the recorded source (see restore.rs).
    if let Some(r) = &restore_from {
        if c.status.as_ref().and_then(|s| s.restore.as_ref()) != Some(r) {
            // Recorded before any member exists, so that every later
            // reconcile renders the same restore step.
            notes.restore = Some(r.clone());
            let waiting = Step::Wait(format!("members to restore {}", r.key));
            let status = status_of(c, &names, None, None, &waiting, &notes);
            write_status(ctx, c, status).await?;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    let bootstrap = bootstrap_replicas(c, existing.as_ref());
    let replicas = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(c.spec.replicas.max(1));

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    for svc in [render::headless_service(c), render::client_service(c)] {
        services
            .patch(&svc.name_any(), &ssa(), &Patch::Apply(&svc))
            .await?;
    }
    let sts = apply_stateful_set(ctx, c, &names, replicas, bootstrap).await?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    let pdb = render::pod_disruption_budget(c);
    match pdbs.patch(&names.pdb(), &ssa(), &Patch::Apply(&pdb)).await {
        Ok(_) => {}
        // policy/v1 arrived in Kubernetes 1.21: say so and carry on.
        Err(kube::Error::Api(e)) if e.code == 404 => notes.pdb_missing = true,
        Err(e) => return Err(e.into()),
    }
    if existing.is_none() {
        publish(
            ctx,
            &reference,
            EventType::Normal,
            "Created",
            format!("StatefulSet with {replicas} members"),
        )
        .await;
    }

    let endpoints: Vec<String> = (0..replicas.max(0) as u32)
        .map(|i| names.client_url(i))
        .collect();
    let members = (ctx.connect)(Dial {
        endpoints,
        tls,
        root_password: match &root {
            RootPassword::Ready { password, .. } => Some(password.clone()),
            _ => None,
        },
    });
    let view = match members.observe().await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(cluster = %names.name, error = %e, "cluster not reachable");
            None
        }
    };
    if let Some(r) = &restore_from {
        if let Some(done) = restore::finish(ctx, c, &names, r, view.as_ref(), bootstrap).await? {
            let note = format!(
                "{} members run on {} at revision {}",
                bootstrap,
                crate::backup::pod::location(&done.destination, &done.key),
                done.revision
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "?".into())
            );
            publish(ctx, &reference, EventType::Normal, "Restored", note).await;
            notes.restore = Some(done);
        }
    }
    let claims = claim_ordinals(ctx, &names).await?;
    let emptied = emptied_ordinals(ctx, &names).await?;
    let pods = rollout::observe(ctx, c, &names, &sts, replicas.max(0) as u32).await?;
    let lost = view.as_ref().map(|v| quorum::decide(c, &names, v, &pods));
    let observed = Observed {
        desired: c.spec.replicas.max(1) as u32,
        replicas: replicas.max(0) as u32,
        // Membership steps only from a list the quorum gave.
        members: view
            .as_ref()
            .filter(|v| v.linearizable)
            .map(|v| v.planned(&names)),
        leader: view.as_ref().and_then(|v| v.leader),
        claims,
        delete_claims: c.spec.pvc_retention == PvcRetention::Delete,
        emptied,
        rollout: pods,
    };
    let step = match lost.as_ref().and_then(|d| d.step.clone()) {
        Some(step) => step,
        None => next_step(&observed),
    };
    if let Some(d) = &lost {
        let prev = c.status.as_ref().and_then(|s| s.quorum_loss.as_ref());
        quorum::announce(ctx, &reference, prev, d.record.as_ref()).await;
        notes.quorum_loss = Some(d.record.clone());
    }
    tracing::info!(cluster = %names.name, %step, "reconcile");

    // Backups go on whatever the membership step does (a failing step
    // returns early below).
    let mut next_backup = None;
    if let Some(scheduled) = schedule::run(ctx, c, &names).await? {
        if let Some(why) = scheduled.invalid {
            notes.degraded = Some(("InvalidSchedule", why));
        }
        next_backup = scheduled.next;
        notes.backup = Some(scheduled.status);
    }

    let target = Target {
        c,
        names: &names,
        bootstrap,
    };
    let requeue = match take_step(ctx, &target, &*members, view.as_ref(), &step).await {
        Ok(()) => match &step {
            Step::Steady => Duration::from_secs(60),
            Step::Wait(_) | Step::Refuse(_) | Step::Halt(_) | Step::QuorumLost(_) => {
                Duration::from_secs(5)
            }
            _ => Duration::from_secs(1),
        },
        Err(Error::Etcd(e)) if e.is_transient() => {
            tracing::info!(cluster = %names.name, %step, error = %e, "step must wait");
            Duration::from_secs(3)
        }
        Err(e) => {
            publish(
                ctx,
                &reference,
                EventType::Warning,
                "StepFailed",
                format!("{step}: {e}"),
            )
            .await;
            return Err(e);
        }
    };
    // A full database makes every member report an error (so the step
    // waits): its remediation runs whenever no membership step does.
    if let (false, Some(view)) = (step.is_action(), &view) {
        if let Some(record) = defrag::remediate_nospace(ctx, c, &reference, &*members, view).await {
            notes.defrag = Some(record);
        }
    }
    // Auth and maintenance run only on a steady cluster: never in the
    // middle of a membership step.
    if let (Step::Steady, Some(view)) = (&step, &view) {
        if let RootPassword::Ready { enabled, password } = &root {
            notes.auth_enabled =
                Some(converge_auth(ctx, &reference, &*members, *enabled, password).await?);
        }
        match defrag::run(ctx, c, &reference, &*members, view).await {
            defrag::Outcome::Nothing => {}
            defrag::Outcome::Invalid(why) => notes.degraded = Some(("InvalidSchedule", why)),
            defrag::Outcome::Ran(record) => notes.defrag = Some(record),
        }
    }
    let requeue = match next_backup {
        Some(next) => requeue.min(next),
        None => requeue,
    };
    if let Step::Refuse(why) = &step {
        notes.degraded = Some(("QuorumAtRisk", why.clone()));
        publish(ctx, &reference, EventType::Warning, "Refused", why.clone()).await;
    }
    if let Step::QuorumLost(why) = &step {
        notes.degraded = Some(("QuorumLost", why.clone()));
    }
    if let Step::Halt(why) = &step {
        notes.degraded = Some(("RolloutHalted", why.clone()));
        publish(
            ctx,
            &reference,
            EventType::Warning,
            "RolloutHalted",
            why.clone(),
        )
        .await;
    }
    notes.rollout = rollout::record(c, &names, &sts, &observed.rollout, &step);
    let status = status_of(c, &names, view.as_ref(), Some(&sts), &step, &notes);
    write_status(ctx, c, status).await?;
    Ok(Action::requeue(requeue))
}

/// Turns auth on or off as asked; whether it is on afterwards.
async fn converge_auth(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    members: &dyn MemberApi,
    enabled: bool,
    root_password: &str,
) -> Result<bool, Error> {
    if members.auth_enabled().await? == enabled {
        return Ok(enabled);
    }
    let note = if enabled {
        members.enable_auth(root_password).await?;
        "user root with the password from its Secret; auth enabled"
    } else {
        members.disable_auth().await?;
        "auth disabled"
    };
    let reason = if enabled {
        "AuthEnabled"
    } else {
        "AuthDisabled"
    };
    publish(ctx, reference, EventType::Normal, reason, note.into()).await;
    Ok(enabled)
}

/// Carries out one step (the cluster's part through the member API, the
/// Kubernetes part through the API server) and tells about it.
/// The cluster a step acts on.
struct Target<'a> {
    c: &'a EtcdCluster,
    names: &'a ClusterNames,
    bootstrap: i32,
}

/// Server-side applies the whole StatefulSet. Always the whole object: an
/// apply that left fields out would give up (and so delete) them.
async fn apply_stateful_set(
    ctx: &Context,
    c: &EtcdCluster,
    names: &ClusterNames,
    replicas: i32,
    bootstrap: i32,
) -> Result<StatefulSet, Error> {
    let sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let sts = render::stateful_set(c, replicas, bootstrap);
    Ok(sets
        .patch(&names.headless_service(), &ssa(), &Patch::Apply(&sts))
        .await?)
}

async fn take_step(
    ctx: &Context,
    target: &Target<'_>,
    members: &dyn MemberApi,
    view: Option<&ClusterView>,
    step: &Step,
) -> Result<(), Error> {
    let Target {
        c,
        names,
        bootstrap,
    } = *target;
    let ns = &names.namespace;
    let (label, reason) = match step {
        Step::Steady | Step::Wait(_) | Step::Refuse(_) | Step::Halt(_) | Step::QuorumLost(_) => {
            return Ok(())
        }
        Step::Roll { ordinal } => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
            match pods
                .delete(&names.pod_name(*ordinal), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            ("roll", "RollingUpdate")
        }
        Step::AddLearner { ordinal } => {
            members.add_learner(&names.peer_url(*ordinal)).await?;
            ("add_learner", "Scaling")
        }
        Step::SetReplicas(n) => {
            apply_stateful_set(ctx, c, names, *n as i32, bootstrap).await?;
            ("set_replicas", "Scaling")
        }
        Step::Promote { id, .. } => {
            members.promote(*id).await?;
            ("promote", "Scaling")
        }
        Step::MoveLeader { from, to } => {
            let Some(view) = view else { return Ok(()) };
            members.move_leader(view, *from, *to).await?;
            ("move_leader", "Scaling")
        }
        Step::Remove { id, .. } => {
            members.remove(*id).await?;
            ("remove", "Scaling")
        }
        Step::DeleteClaim { ordinal } => {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
            match pvcs
                .delete(&names.pvc_name(*ordinal), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            ("delete_claim", "Scaling")
        }
    };
    ctx.metrics.step(label);
    publish(
        ctx,
        &c.object_ref(&()),
        EventType::Normal,
        reason,
        step.to_string(),
    )
    .await;
    Ok(())
}

/// Ordinals whose data claim (`data-C-i`) exists and is not being deleted.
async fn claim_ordinals(ctx: &Context, names: &ClusterNames) -> Result<Vec<u32>, Error> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let selector = names.selector_string();
    let list = pvcs.list(&ListParams::default().labels(&selector)).await?;
    let prefix = "data-";
    let mut ordinals: Vec<u32> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| names.ordinal_of(p.name_any().strip_prefix(prefix)?))
        .collect();
    ordinals.sort_unstable();
    Ok(ordinals)
}

/// What a member says when it starts on an empty data dir but cannot
/// join (read from its pod's termination message, the log's tail).
const EMPTIED: [&str; 2] = [
    "has already been bootstrapped",
    "is not in the running cluster found through SRV records",
];

/// Ordinals whose member process last stopped because its data dir was
/// empty and the cluster could not take it back as itself.
async fn emptied_ordinals(ctx: &Context, names: &ClusterNames) -> Result<Vec<u32>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let list = pods
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?;
    let mut out = Vec::new();
    for p in &list.items {
        let Some(ordinal) = names.ordinal_of(&p.name_any()) else {
            continue;
        };
        let statuses = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        // Only a container that is down now: a message from before a
        // successful restart is history.
        let said = statuses.iter().any(|cs| {
            if cs.state.as_ref().is_some_and(|s| s.running.is_some()) {
                return false;
            }
            let terminated = [
                cs.state.as_ref().and_then(|s| s.terminated.as_ref()),
                cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()),
            ];
            terminated.into_iter().flatten().any(|t| {
                let msg = t.message.as_deref().unwrap_or_default();
                EMPTIED.iter().any(|e| msg.contains(e))
            })
        });
        if said {
            out.push(ordinal);
        }
    }
    Ok(out)
}

async fn cleanup(c: &EtcdCluster, ctx: &Context) -> Result<Action, Error> {
    let names = ClusterNames::of(c);
    // Services, StatefulSet and budget go with their owner; claims do not.
    if c.spec.pvc_retention == PvcRetention::Delete {
        for ordinal in claim_ordinals(ctx, &names).await? {
            let pvcs: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &names.namespace);
            match pvcs
                .delete(&names.pvc_name(ordinal), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    publish(
        ctx,
        &c.object_ref(&()),
        EventType::Normal,
        "Deleted",
        "members and services removed".into(),
    )
    .await;
    Ok(Action::await_change())
}

pub(crate) async fn publish(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = KubeEvent {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, reference).await {
        tracing::debug!(error = %e, "event not published");
    }
}

async fn write_status(
    ctx: &Context,
    c: &EtcdCluster,
    status: EtcdClusterStatus,
) -> Result<(), Error> {
    ctx.metrics.cluster_phase(
        &c.namespace().unwrap_or_default(),
        &c.name_any(),
        status.phase,
    );
    if c.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<EtcdCluster> = Api::namespaced(
        ctx.client.clone(),
        &c.namespace().ok_or(Error::NoNamespace)?,
    );
    // Server-side apply: fields this manager set before and no longer sets
    // (a leader that went away) are removed.
    let body = json!({
        "apiVersion": "ferrocd.dev/v1alpha1", "kind": "EtcdCluster",
        "status": status,
    });
    api.patch_status(&c.name_any(), &ssa(), &Patch::Apply(&body))
        .await?;
    Ok(())
}

mod defrag;
mod member_api;
mod quorum;
mod restore;
mod rollout;
mod schedule;
mod status;

pub use member_api::{connect_etcd, Connect, Dial, MemberApi};
pub use schedule::SCHEDULED_LABEL;
use status::{status_of, Notes};

#[cfg(test)]
mod backup_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod quorum_tests;
#[cfg(test)]
mod rollout_tests;
#[cfg(test)]
mod tests;

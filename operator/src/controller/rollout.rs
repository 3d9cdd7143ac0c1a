//! What a rolling change needs from Kubernetes (see membership/rollout.rs
//! for the decisions): which member pods run an older template than the
//! StatefulSet's, why a replaced pod's member does not start, and the
//! rollout's record in the status.

use super::{Context, Error};
use crate::crd::{EtcdCluster, RolloutStatus};
use crate::membership::{RolloutObserved, Step};
use crate::names::ClusterNames;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, ListParams};
use kube::ResourceExt;

/// The label the StatefulSet controller puts on each pod: its revision.
const REVISION_LABEL: &str = "controller-revision-hash";

/// Pods below `replicas`, compared with the StatefulSet's update revision.
pub(super) async fn observe(
    ctx: &Context,
    c: &EtcdCluster,
    names: &ClusterNames,
    sts: &StatefulSet,
    replicas: u32,
) -> Result<RolloutObserved, Error> {
    let in_progress = c
        .status
        .as_ref()
        .and_then(|s| s.rollout.as_ref())
        .is_some_and(|r| !r.done);
    let status = sts.status.as_ref();
    let seen = status.and_then(|s| s.observed_generation) >= sts.metadata.generation;
    let Some(revision) = status
        .and_then(|s| s.update_revision.clone())
        .filter(|_| seen)
    else {
        return Ok(RolloutObserved {
            in_progress,
            template_pending: true,
            ..RolloutObserved::default()
        });
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let list = pods
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?;
    let mut observed = RolloutObserved {
        in_progress,
        ..RolloutObserved::default()
    };
    let mut ready = Vec::new();
    for p in &list.items {
        let Some(ordinal) = names.ordinal_of(&p.name_any()).filter(|i| *i < replicas) else {
            continue;
        };
        // A pod being deleted is the one replaced: its successor comes.
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if is_ready(p) {
            ready.push(ordinal);
        }
        if p.labels().get(REVISION_LABEL) != Some(&revision) {
            observed.outdated.push(ordinal);
        }
        if let Some(why) = failure(p) {
            observed.failures.insert(ordinal, why);
        }
    }
    observed.outdated.sort_unstable();
    observed.unready = (0..replicas).filter(|i| !ready.contains(i)).collect();
    Ok(observed)
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Why a pod's containers do not run: a container waiting after a failed
/// start (crash loop, image or configuration error), or an init container
/// that failed.
pub(super) fn failure(p: &Pod) -> Option<String> {
    let status = p.status.as_ref()?;
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    all.filter_map(failed).next()
}

fn failed(cs: &ContainerStatus) -> Option<String> {
    let state = cs.state.as_ref()?;
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let exit = |code: i32, message: Option<&String>| {
        let said = message
            .and_then(|m| m.lines().rev().find(|l| !l.trim().is_empty()))
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        format!("container {} exited with code {code}{said}", cs.name)
    };
    if let Some(t) = &state.terminated {
        return (t.exit_code != 0).then(|| exit(t.exit_code, t.message.as_ref()));
    }
    let waiting = state.waiting.as_ref()?;
    let reason = waiting.reason.as_deref().unwrap_or_default();
    match (reason, last) {
        ("ContainerCreating" | "PodInitializing", _) => None,
        (_, Some(t)) => Some(format!(
            "{} ({reason})",
            exit(t.exit_code, t.message.as_ref())
        )),
        (r, None) if r.contains("Image") || r.contains("Config") || r.contains("Error") => {
            Some(format!(
                "container {}: {r}{}",
                cs.name,
                waiting
                    .message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ))
        }
        _ => None,
    }
}

/// The rollout's record after this reconcile's step: a new one when pods
/// are outdated, the last one otherwise.
pub(super) fn record(
    c: &EtcdCluster,
    names: &ClusterNames,
    sts: &StatefulSet,
    observed: &RolloutObserved,
    step: &Step,
) -> Option<RolloutStatus> {
    let last = c.status.as_ref().and_then(|s| s.rollout.clone());
    if observed.template_pending || (observed.outdated.is_empty() && !observed.in_progress) {
        return last;
    }
    let revision = sts.status.as_ref()?.update_revision.clone()?;
    let total = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let done = observed.outdated.is_empty() && *step == Step::Steady;
    let current = match step {
        Step::Roll { ordinal } => Some(names.pod_name(*ordinal)),
        _ if done => None,
        _ => last
            .filter(|l| l.revision == revision)
            .and_then(|l| l.current),
    };
    Some(RolloutStatus {
        revision,
        updated: total - observed.outdated.len() as i32,
        total,
        current,
        done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "demo-2"}, "status": status}))
            .expect("pod")
    }

    #[test]
    fn a_crash_loop_says_the_last_exit_and_its_message() {
        let p = pod(json!({"containerStatuses": [{
            "name": "ferrocd", "ready": false, "restartCount": 2, "image": "", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2,
                "message": "starting\nerror: invalid value for --election-timeout\n"}}}]}));
        assert_eq!(
            failure(&p).as_deref(),
            Some("container ferrocd exited with code 2: error: invalid value for --election-timeout (CrashLoopBackOff)")
        );
    }

    #[test]
    fn starting_and_running_pods_have_no_failure() {
        let running = pod(json!({"containerStatuses": [{
            "name": "ferrocd", "ready": true, "restartCount": 1, "image": "", "imageID": "",
            "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 137}}}]}));
        assert_eq!(failure(&running), None);
        let creating = pod(json!({"containerStatuses": [{
            "name": "ferrocd", "ready": false, "restartCount": 0, "image": "", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(failure(&creating), None);
    }

    #[test]
    fn an_image_that_cannot_be_pulled_or_a_failed_init_container_is_a_failure() {
        let pull = pod(json!({"containerStatuses": [{
            "name": "ferrocd", "ready": false, "restartCount": 0, "image": "", "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}));
        assert_eq!(
            failure(&pull).as_deref(),
            Some("container ferrocd: ImagePullBackOff: no such image")
        );
        let init = pod(json!({"initContainerStatuses": [{
            "name": "restore", "ready": false, "restartCount": 0, "image": "", "imageID": "",
            "state": {"terminated": {"exitCode": 1, "message": "sha256 mismatch"}}}]}));
        assert_eq!(
            failure(&init).as_deref(),
            Some("container restore exited with code 1: sha256 mismatch")
        );
    }
}

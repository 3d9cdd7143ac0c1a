//! Quorum-loss recovery's Kubernetes side (see membership/quorum.rs for the
//! decisions): its inputs from the object and the pods, and events when
//! the stage changes.

use super::{publish, Context};
use crate::crd::{EtcdCluster, QuorumLossStatus};
use crate::membership::quorum::{self, Decision, QuorumInput, LOST, RECOVERED, RECOVERING};
use crate::membership::{ClusterView, RolloutObserved};
use crate::names::{ClusterNames, RECOVER_ANNOTATION};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::ResourceExt;

pub(super) fn decide(
    c: &EtcdCluster,
    names: &ClusterNames,
    view: &ClusterView,
    pods: &RolloutObserved,
) -> Decision {
    let current = |o: u32| !pods.outdated.contains(&o);
    quorum::decide(&QuorumInput {
        view,
        names,
        prev: c.status.as_ref().and_then(|s| s.quorum_loss.as_ref()),
        recovery: c.spec.recovery.clone().unwrap_or_default(),
        approved: c.annotations().get(RECOVER_ANNOTATION).map(String::as_str),
        now: Timestamp::now(),
        template_pending: pods.template_pending,
        pod_current: &current,
    })
}

/// An event for each new stage.
pub(super) async fn announce(
    ctx: &Context,
    reference: &ObjectReference,
    prev: Option<&QuorumLossStatus>,
    now: Option<&QuorumLossStatus>,
) {
    let Some(now) = now else { return };
    if prev.map(|p| p.stage.as_str()) == Some(now.stage.as_str()) {
        return;
    }
    let (type_, reason) = match now.stage.as_str() {
        LOST => (EventType::Warning, "QuorumLost"),
        RECOVERING => (EventType::Warning, "QuorumRecovery"),
        RECOVERED => (EventType::Normal, "QuorumRecovered"),
        _ => return,
    };
    publish(ctx, reference, type_, reason, now.message.clone()).await;
}

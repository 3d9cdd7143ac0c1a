//! Quorum loss: two of three members lose their volumes (killed, their
//! claims emptied). The operator reports the survivor and what a recovery
//! would lose; `Manual` waits for the approval annotation, `Automatic` goes
//! on by itself; the survivor restarts as a one-member cluster and the
//! others come back as new members holding every acknowledged write.

use super::{
    clusters, create_cluster_with, events_of, running_with, wait_local_count, wait_status,
    write_key, Target, NAME,
};
use ferrocd_operator::names::RECOVER_ANNOTATION;
use kube::api::{Patch, PatchParams};
use std::sync::Arc;
use std::time::Duration;

const KEYS: usize = 100;

async fn lose_two_of_three(t: &impl Target, ns: &str, mode: &str) {
    let recovery =
        serde_json::json!({"recovery": {"quorumLoss": mode, "quorumLossAfterSeconds": 10}});
    create_cluster_with(t, ns, 3, recovery).await;
    wait_status(t, ns, 240, "members Running", running_with(3)).await;
    for i in 0..KEYS {
        assert!(
            write_key(t, ns, &format!("q{i:03}"), "v").await,
            "put q{i:03}"
        );
    }
    t.say(&format!("{KEYS} writes acknowledged"));
    for pod in ["demo-1", "demo-2"] {
        t.lose_volume(ns, pod).await;
    }
    t.say("demo-1 and demo-2 lost their volumes");
    let lost = wait_status(t, ns, 180, "the quorum loss reported", |s| {
        s.quorum_loss
            .as_ref()
            .is_some_and(|q| q.stage == "Lost" && q.survivor.as_deref() == Some("demo-0"))
    })
    .await;
    let q = lost.quorum_loss.expect("status.quorumLoss");
    t.say(&format!("status.quorumLoss: {}", q.message));
    assert_eq!(q.lost, ["demo-1", "demo-2"]);
    assert!(q.revision > KEYS as i64, "survivor revision {}", q.revision);
}

async fn recovered(t: &impl Target, ns: &str) {
    let status = wait_status(t, ns, 300, "recovered, 3 voters again", |s| {
        running_with(3)(s)
            && s.quorum_loss
                .as_ref()
                .is_some_and(|q| q.stage == "Recovered")
    })
    .await;
    let q = status.quorum_loss.expect("status.quorumLoss");
    t.say(&format!("recovered: {}", q.message));
    for pod in ["demo-0", "demo-1", "demo-2"] {
        wait_local_count(t, ns, pod, b"q", b"r", KEYS as i64).await;
    }
    t.say(&format!(
        "every member holds all {KEYS} acknowledged writes"
    ));
    for reason in ["QuorumLost", "QuorumRecovery", "QuorumRecovered"] {
        assert!(
            !events_of(t, ns, reason).await.is_empty(),
            "no {reason} event"
        );
    }
}

/// `Manual`: reported, nothing done past the delay until the annotation
/// names the survivor.
pub async fn a_lost_quorum_is_recovered_once_approved<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    lose_two_of_three(t, &ns, "Manual").await;
    let waiting = wait_status(t, &ns, 60, "recovery offered", |s| {
        s.quorum_loss
            .as_ref()
            .is_some_and(|q| q.message.contains(RECOVER_ANNOTATION))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let still = clusters(t, &ns).get(NAME).await.expect("EtcdCluster");
    let q = still
        .status
        .and_then(|s| s.quorum_loss)
        .expect("quorumLoss");
    assert_eq!(q.stage, "Lost", "recovered without approval");
    assert_eq!(waiting.phase, ferrocd_operator::crd::Phase::Degraded);
    t.say("still Lost 10 s after the offer: waiting for the approval");
    let approve = serde_json::json!({"metadata": {"annotations": {RECOVER_ANNOTATION: "demo-0"}}});
    clusters(t, &ns)
        .patch(NAME, &PatchParams::default(), &Patch::Merge(approve))
        .await
        .expect("annotate");
    t.say(&format!("annotated {RECOVER_ANNOTATION}=demo-0"));
    recovered(t, &ns).await;
}

/// `Automatic`: recovered after the delay without an approval.
pub async fn a_lost_quorum_is_recovered_automatically<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    lose_two_of_three(t, &ns, "Automatic").await;
    recovered(t, &ns).await;
}

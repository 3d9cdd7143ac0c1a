//! Quorum-loss recovery against the fixtures' mock API: reported, held
//! until approved, the survivor's pod replaced once with the force on its
//! command line, recovered when it runs alone.

use super::fixtures::*;
use super::*;
use crate::crd::Phase;
use crate::names::RECOVER_ANNOTATION;
use serde_json::json;

const POD_DELETES: &str = "DELETE /api/v1/namespaces/ns/pods/";

fn member_args(h: &Harness) -> Vec<String> {
    let api = h.api.lock().unwrap();
    let args = &api.objects[STS_PATH]["spec"]["template"]["spec"]["containers"][0]["args"];
    serde_json::from_value(args.clone()).unwrap()
}

fn force_arg(h: &Harness) -> Option<String> {
    member_args(h)
        .into_iter()
        .find(|a| a.starts_with("--force-new-cluster-once="))
}

fn edit_cluster(h: &Harness, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut api = h.api.lock().unwrap();
    edit(api.objects.get_mut(CLUSTER_PATH).unwrap());
}

/// demo-1 and demo-2 are gone; demo-0 answers without a leader.
fn lose_two_of_three(h: &Harness) {
    let mut m = h.model.lock().unwrap();
    m.leader = None;
    for (i, member) in m.members.iter_mut().enumerate() {
        member.healthy = false;
        member.applied = 40;
        member.revision = 33;
        if i > 0 {
            member.db_size = None;
        }
    }
}

#[tokio::test]
async fn a_lost_quorum_is_reported_held_until_approved_then_recovered_from_the_survivor() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.model.lock().unwrap().leader = Some(0x100);
    h.reconcile().await.unwrap();
    h.pods_follow();
    edit_cluster(&h, |c| {
        c["spec"]["recovery"] = json!({"quorumLoss": "Manual", "quorumLossAfterSeconds": 0});
    });
    lose_two_of_three(&h);

    h.reconcile().await.unwrap();
    let s = h.status();
    assert_eq!(s.phase, Phase::Degraded);
    let q = s.quorum_loss.expect("status.quorumLoss");
    assert_eq!(q.stage, "Lost");
    assert_eq!(q.survivor.as_deref(), Some("demo-0"));
    assert_eq!((q.applied_index, q.revision), (40, 33));
    assert_eq!(q.lost, ["demo-1", "demo-2"]);
    let degraded = h.condition("Degraded");
    assert_eq!(degraded.reason, "QuorumLost");
    assert!(
        degraded
            .message
            .contains("annotate the EtcdCluster ferrocd.dev/recover-quorum-from=demo-0"),
        "{}",
        degraded.message
    );
    assert!(h.has_event("QuorumLost"));
    h.reconcile().await.unwrap();
    assert!(
        h.requests(POD_DELETES).is_empty(),
        "Manual acted unapproved"
    );
    assert_eq!(force_arg(&h), None);

    edit_cluster(&h, |c| {
        c["metadata"]["annotations"] = json!({ RECOVER_ANNOTATION: "demo-0" });
    });
    h.reconcile().await.unwrap();
    let q = h.status().quorum_loss.unwrap();
    assert_eq!(q.stage, "Recovering");
    let token = q.token.clone().expect("a token");
    assert!(h.has_event("QuorumRecovery"));

    // The template carries the force for demo-0 and lets no member
    // bootstrap anew; the lost members' pods restart on it, then demo-0's.
    h.reconcile().await.unwrap();
    assert_eq!(
        force_arg(&h),
        Some(format!("--force-new-cluster-once=demo-0/{token}"))
    );
    assert_eq!(
        member_args(&h).last().map(String::as_str),
        Some("--initial-cluster-state=existing")
    );
    for _ in 0..6 {
        // (The fixture starts a recreated pod's member; these stay lost.)
        h.pods_follow();
        lose_two_of_three(&h);
        h.reconcile().await.unwrap();
        if h.requests(POD_DELETES).len() == 3 {
            break;
        }
    }
    let deleted: Vec<String> = h
        .requests(POD_DELETES)
        .iter()
        .map(|r| {
            r[POD_DELETES.len()..]
                .split('?')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(deleted, ["demo-2", "demo-1", "demo-0"]);
    // Every pod runs the template: no further deletion.
    h.pods_follow();
    lose_two_of_three(&h);
    h.reconcile().await.unwrap();
    assert_eq!(h.requests(POD_DELETES).len(), 3);

    // demo-0 forced a one-member cluster.
    {
        let mut m = h.model.lock().unwrap();
        m.members.truncate(1);
        m.members[0].healthy = true;
        m.leader = Some(0x100);
    }
    h.reconcile().await.unwrap();
    let q = h.status().quorum_loss.unwrap();
    assert_eq!(q.stage, "Recovered");
    assert!(q.recovered.is_some());
    assert!(h.has_event("QuorumRecovered"));
    // The force leaves the template; the planner brings the others back.
    h.reconcile().await.unwrap();
    assert_eq!(force_arg(&h), None);
    assert_ne!(h.condition("Degraded").reason, "QuorumLost");
    let repaired = h
        .requests("DELETE /api/v1/namespaces/ns/persistentvolumeclaims/data-demo-1")
        .len()
        + h.model.lock().unwrap().members.len()
        - 1;
    assert!(repaired > 0, "nothing done to bring demo-1 back");
}

#[tokio::test]
async fn automatic_recovery_needs_no_approval() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.reconcile().await.unwrap();
    h.pods_follow();
    edit_cluster(&h, |c| {
        c["spec"]["recovery"] = json!({"quorumLoss": "Automatic", "quorumLossAfterSeconds": 0});
    });
    lose_two_of_three(&h);
    h.reconcile().await.unwrap();
    assert_eq!(h.status().quorum_loss.unwrap().stage, "Recovering");
    h.reconcile().await.unwrap();
    assert!(force_arg(&h).is_some_and(|a| a.contains("=demo-0/")));
}

//! Rolling changes against the fixtures' mock API: a changed template
//! replaces one pod at a time (followers first, the leader last after
//! handing leadership over), waits for each member to come back, and halts
//! with the reason when one does not.

use super::fixtures::*;
use super::*;
use crate::crd::Phase;
use serde_json::{json, Value};

const POD_DELETES: &str = "DELETE /api/v1/namespaces/ns/pods/";

fn deleted_pods(h: &Harness) -> Vec<String> {
    h.requests(POD_DELETES)
        .iter()
        .map(|r| {
            let name = r.trim_start_matches(POD_DELETES);
            name.split('?').next().unwrap_or_default().to_string()
        })
        .collect()
}

fn edit_spec(h: &Harness, field: &str, value: Value) {
    let mut api = h.api.lock().unwrap();
    let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
    c["spec"][field] = value;
    c["metadata"]["generation"] = json!(2);
}

fn running_3_led_by_1() -> Harness {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.model.lock().unwrap().leader = Some(0x101);
    h
}

/// The replaced pod's member is down until its pod runs again.
fn member_down(h: &Harness, ordinal: usize) {
    h.model.lock().unwrap().members[ordinal].healthy = false;
}

#[tokio::test]
async fn a_new_image_replaces_one_pod_at_a_time_followers_first_the_leader_last() {
    let h = running_3_led_by_1();
    h.reconcile().await.unwrap();
    assert_eq!(h.condition("Progressing").status, "False");
    assert!(deleted_pods(&h).is_empty(), "nothing to roll yet");

    edit_spec(&h, "image", json!("registry.example/ferrocd:v2"));
    let mut rolled = Vec::new();
    for _ in 0..12 {
        h.reconcile().await.unwrap();
        let deleted = deleted_pods(&h);
        if deleted.len() > rolled.len() {
            let pod = deleted.last().unwrap().clone();
            let ordinal: usize = pod.trim_start_matches("demo-").parse().unwrap();
            let s = h.status();
            assert_eq!(s.phase, Phase::Updating);
            let r = s.rollout.clone().expect("status.rollout");
            assert_eq!(r.current.as_deref(), Some(pod.as_str()));
            assert!(!r.done);
            // While the replaced member is down nothing else is touched.
            member_down(&h, ordinal);
            h.reconcile().await.unwrap();
            assert_eq!(
                deleted_pods(&h).len(),
                deleted.len(),
                "rolled past a down member"
            );
            assert_eq!(h.status().phase, Phase::Updating);
            rolled.push(pod);
        }
        h.pods_follow();
        if h.status().rollout.is_some_and(|r| r.done) {
            break;
        }
    }
    assert_eq!(rolled, ["demo-2", "demo-0", "demo-1"]);
    assert_eq!(
        h.model.lock().unwrap().leader,
        Some(0x100),
        "leadership moved to an updated member before the leader's pod went"
    );
    let r = h.status().rollout.expect("status.rollout");
    assert_eq!((r.updated, r.total, r.current, r.done), (3, 3, None, true));
    h.reconcile().await.unwrap();
    let s = h.status();
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(h.condition("Progressing").status, "False");
    assert!(h.has_event("RollingUpdate"));
    assert_eq!(
        deleted_pods(&h).len(),
        3,
        "a finished rollout rolls nothing again"
    );
}

#[tokio::test]
async fn a_lagging_member_holds_the_next_replacement_back() {
    let h = running_3_led_by_1();
    edit_spec(&h, "image", json!("registry.example/ferrocd:v2"));
    h.reconcile().await.unwrap();
    assert_eq!(deleted_pods(&h), ["demo-2"]);
    h.pods_follow();
    {
        // demo-2 runs again but has applied far less than the leader.
        let mut m = h.model.lock().unwrap();
        m.members[0].applied = 50_000;
        m.members[1].applied = 50_000;
        m.members[2].applied = 10;
    }
    h.reconcile().await.unwrap();
    assert_eq!(
        deleted_pods(&h),
        ["demo-2"],
        "rolled before demo-2 caught up"
    );
    assert!(
        h.condition("Progressing")
            .message
            .contains("member 2 is catching up"),
        "{:?}",
        h.condition("Progressing")
    );
    h.model.lock().unwrap().members[2].applied = 49_990;
    h.reconcile().await.unwrap();
    assert_eq!(deleted_pods(&h), ["demo-2", "demo-0"]);
}

#[tokio::test]
async fn a_replaced_member_that_does_not_start_halts_the_rollout_and_says_why() {
    let h = running_3_led_by_1();
    edit_spec(
        &h,
        "options",
        json!({"electionTimeout": 10, "heartbeatInterval": 100}),
    );
    h.reconcile().await.unwrap();
    assert_eq!(deleted_pods(&h), ["demo-2"]);
    h.pods_follow();
    // Its member exits at start, again and again.
    member_down(&h, 2);
    {
        let mut api = h.api.lock().unwrap();
        let pod = api.objects.get_mut(&format!("{POD_PATH}/demo-2")).unwrap();
        pod["status"] = json!({"containerStatuses": [{
            "name": "ferrocd", "ready": false, "restartCount": 3, "image": "", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 2,
                "message": "error: --election-timeout must be at least 5 times --heartbeat-interval"}}}]});
    }
    for _ in 0..3 {
        h.reconcile().await.unwrap();
    }
    assert_eq!(
        deleted_pods(&h),
        ["demo-2"],
        "the rollout went on past a failed member"
    );
    let d = h.condition("Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "RolloutHalted")
    );
    assert!(
        d.message.contains("member 2") && d.message.contains("exited with code 2"),
        "{}",
        d.message
    );
    assert!(h.has_event("RolloutHalted"));
    assert_eq!(h.status().rollout.map(|r| r.done), Some(false));

    // Reverting the change reaches the broken member: its pod is the only
    // one on another template now, and it is replaced though it is down.
    edit_spec(&h, "options", Value::Null);
    h.reconcile().await.unwrap();
    assert_eq!(deleted_pods(&h), ["demo-2", "demo-2"]);
    h.pods_follow();
    h.reconcile().await.unwrap();
    let s = h.status();
    assert_eq!(s.rollout.map(|r| r.done), Some(true));
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(h.condition("Degraded").status, "False");
    assert_eq!(deleted_pods(&h).len(), 2, "demo-0 and demo-1 never changed");
}

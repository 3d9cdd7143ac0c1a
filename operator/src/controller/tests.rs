//! Reconciles against the fixtures' stateful mock Kubernetes API and model
//! cluster. Every test builds a fresh `Context` per reconcile, as an
//! operator restarted between any two reconciles would; each `Scenario` is
//! one situation.

use super::fixtures::*;
use super::*;
use crate::crd::Phase;
use serde_json::Value;

#[tokio::test]
async fn create_renders_children_then_reports_the_running_cluster() {
    let h = Harness::new(Scenario::Fresh { replicas: 3 });
    h.reconcile().await.unwrap();
    let c = h.cluster().unwrap();
    assert_eq!(c.metadata.finalizers, Some(vec![FINALIZER.to_string()]));
    h.reconcile().await.unwrap();
    for path in [
        "PATCH /api/v1/namespaces/ns/services/demo",
        "PATCH /api/v1/namespaces/ns/services/demo-client",
        "PATCH /apis/apps/v1/namespaces/ns/statefulsets/demo",
        "PATCH /apis/policy/v1/namespaces/ns/poddisruptionbudgets/demo",
        "POST /apis/events.k8s.io/v1/namespaces/ns/events",
    ] {
        assert!(!h.requests(path).is_empty(), "no {path}");
    }
    assert!(h
        .requests("PATCH /apis/apps/v1/namespaces/ns/statefulsets/demo?")
        .iter()
        .all(|r| r.contains("fieldManager=ferrocd-operator")));
    assert_eq!(h.sts_replicas(), Some(3));
    assert_eq!(h.status().phase, Phase::Creating);
    assert_eq!(h.condition("Available").reason, "Unreachable");

    // The pods start and bootstrap through SRV: three voters.
    h.members_bootstrap(3, 0x101);
    h.pods_follow();
    h.reconcile().await.unwrap();
    let s = h.status();
    assert_eq!(s.phase, Phase::Running, "{s:?}");
    assert_eq!(s.replicas, 3);
    assert_eq!(s.ready_replicas, 3);
    assert_eq!(s.leader.as_deref(), Some("demo-1"));
    assert_eq!(s.cluster_id.as_deref(), Some("c1"));
    assert_eq!(s.members.len(), 3);
    assert_eq!(
        s.selector.as_deref(),
        Some("app.kubernetes.io/name=ferrocd,ferrocd.dev/cluster=demo")
    );
    assert_eq!(
        s.endpoints.unwrap().discovery_srv,
        "demo.ns.svc.cluster.local"
    );
    assert_eq!(h.condition("Available").status, "True");
    assert_eq!(h.condition("Degraded").status, "False");
}

#[tokio::test]
async fn an_api_server_without_policy_v1_gets_a_condition_not_a_failure() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.api.lock().unwrap().no_policy_v1 = true;
    h.reconcile().await.unwrap();
    let c = h.condition("DisruptionBudget");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "PolicyV1Unavailable")
    );
    assert_eq!(h.status().phase, Phase::Running);
}

/// Reconciles (each with a fresh context, the pods following the
/// StatefulSet) until the status says Running; returns the STS replica
/// counts seen after each reconcile.
async fn settle(h: &Harness, max: usize) -> Vec<i64> {
    let mut seen = Vec::new();
    for _ in 0..max {
        h.reconcile().await.unwrap();
        h.pods_follow();
        seen.push(h.sts_replicas().unwrap());
        let s = h.status();
        if s.phase == Phase::Running
            && s.members.iter().all(|m| !m.learner)
            && h.condition("Progressing").status == "False"
        {
            return seen;
        }
    }
    panic!(
        "not settled after {max} reconciles: {seen:?}, {:?}",
        h.status()
    );
}

#[tokio::test]
async fn scale_3_to_5_to_3_one_member_at_a_time() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 5,
        retention: PvcRetention::Delete,
    });
    let seen = settle(&h, 20).await;
    // add learner 3, raise to 4, promote; add learner 4, raise to 5, promote.
    assert_eq!(seen, vec![3, 4, 4, 4, 5, 5, 5], "{seen:?}");
    assert_eq!(h.voters_and_learners(), (5, 0));
    // Server-side apply owns what it sends: every apply of the StatefulSet
    // must carry the whole object, or Kubernetes drops the rest.
    {
        let api = h.api.lock().unwrap();
        let sts_applies: Vec<&Value> = api
            .applied
            .iter()
            .filter(|(p, _)| p == STS_PATH)
            .map(|(_, b)| b)
            .collect();
        assert!(sts_applies.len() >= 9);
        for body in sts_applies {
            assert!(
                body["spec"]["selector"].is_object()
                    && body["spec"]["template"]["spec"]["containers"].is_array(),
                "partial apply: {body}"
            );
        }
    }
    assert_eq!(
        h.requests("PATCH /apis/apps/v1/namespaces/ns/statefulsets/demo")
            .len(),
        7 + 2
    );

    h.model.lock().unwrap().leader = Some(0x1002); // member 4 leads
    h.set_replicas(3);
    let seen = settle(&h, 20).await;
    // move leader, remove 4, lower to 4, remove 3, lower to 3, delete both claims.
    assert_eq!(seen, vec![5, 5, 4, 4, 3, 3, 3, 3], "{seen:?}");
    assert_eq!(h.voters_and_learners(), (3, 0));
    assert_ne!(h.model.lock().unwrap().leader, Some(0x1002));
    assert_eq!(
        h.requests("DELETE /api/v1/namespaces/ns/persistentvolumeclaims/")
            .len(),
        2
    );
    assert_eq!(h.status().observed_generation, Some(2));
}

#[tokio::test]
async fn an_operator_crash_after_any_step_resumes_where_it_stopped() {
    // The status write after each step fails (as if the operator died right
    // after the step); the next reconcile must continue, not redo or skip.
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 4,
        retention: PvcRetention::Keep,
    });
    let mut steps = 0;
    for _ in 0..12 {
        h.api.lock().unwrap().fail_next = Some(format!("PATCH {CLUSTER_PATH}/status"));
        let _ = h.reconcile().await;
        h.pods_follow();
        steps += 1;
        let m = h.model.lock().unwrap();
        if m.members.len() == 4 && m.members.iter().all(|x| !x.learner) {
            break;
        }
    }
    assert!(steps <= 4, "took {steps} reconciles");
    assert_eq!(h.voters_and_learners(), (4, 0));
    assert_eq!(h.sts_replicas(), Some(4));
    // Exactly one add: no member was added twice.
    assert_eq!(h.model.lock().unwrap().next_id, 1);
    settle(&h, 3).await;
}

#[tokio::test]
async fn a_scale_in_that_would_lose_quorum_is_refused() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 2,
        retention: PvcRetention::Keep,
    });
    h.model.lock().unwrap().members[1].healthy = false;
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(h.voters_and_learners(), (3, 0), "a member was removed");
    assert_eq!(h.sts_replicas(), Some(3));
    let d = h.condition("Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "QuorumAtRisk")
    );
    assert_eq!(h.status().phase, Phase::Degraded);
    let api = h.api.lock().unwrap();
    let refused = api
        .objects
        .iter()
        .filter(|(k, _)| k.contains("/events/"))
        .any(|(_, e)| e["reason"] == "Refused" && e["type"] == "Warning");
    assert!(refused, "no Refused warning event");
}

#[tokio::test]
async fn deletion_removes_claims_then_the_finalizer() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Delete,
    });
    {
        let mut api = h.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["metadata"]["deletionTimestamp"] = json!("2026-11-30T10:00:00Z");
    }
    h.reconcile().await.unwrap();
    assert_eq!(
        h.requests("DELETE /api/v1/namespaces/ns/persistentvolumeclaims/")
            .len(),
        3
    );
    assert!(h.cluster().is_none(), "finalizer not removed");
}

#[tokio::test]
async fn deletion_keeps_claims_when_asked() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    {
        let mut api = h.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["metadata"]["deletionTimestamp"] = json!("2026-11-30T10:00:00Z");
    }
    h.reconcile().await.unwrap();
    assert!(h.requests("DELETE").is_empty());
    assert!(h.cluster().is_none());
}

const SECRETS: &str = "/api/v1/namespaces/ns/secrets";

fn secret_text(h: &Harness, name: &str, key: &str) -> Option<String> {
    let api = h.api.lock().unwrap();
    let s: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(api.objects.get(&format!("{SECRETS}/{name}"))?.clone()).ok()?;
    String::from_utf8(s.data?.get(key)?.0.clone()).ok()
}

fn set_tls(h: &Harness, tls: Value) {
    let mut api = h.api.lock().unwrap();
    api.objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["tls"] = tls;
}

#[tokio::test]
async fn operator_managed_tls_issues_certificates_and_renews_them() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    set_tls(&h, json!({"mode": "OperatorManaged"}));
    h.reconcile().await.unwrap();
    let ca = secret_text(&h, "demo-ca", "tls.crt").expect("CA Secret");
    let cert = secret_text(&h, "demo-tls", "tls.crt").expect("member certificate Secret");
    assert_eq!(
        secret_text(&h, "demo-tls", "ca.crt").as_deref(),
        Some(ca.as_str())
    );
    assert!(crate::pki::signed_by(&cert, &ca));
    let names = crate::pki::subject_alt_names(&cert).unwrap();
    assert!(
        names.contains(&"*.demo.ns.svc.cluster.local".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"demo.ns.svc.cluster.local".to_string()),
        "{names:?}"
    );
    // The operator dials the members with a client certificate from that CA.
    let dialed = h.dialed_with.lock().unwrap().clone().expect("TLS identity");
    assert_eq!(dialed.ca_pem, ca);
    assert!(crate::pki::signed_by(&dialed.cert_pem, &ca));
    let sts = h.api.lock().unwrap().objects[STS_PATH].clone();
    assert_eq!(
        sts["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"],
        "demo-tls"
    );

    // A current certificate is left alone.
    h.reconcile().await.unwrap();
    assert_eq!(
        secret_text(&h, "demo-tls", "tls.crt").as_deref(),
        Some(cert.as_str())
    );
    // One that no longer verifies (or is about to expire) is reissued by the same CA.
    {
        let mut api = h.api.lock().unwrap();
        let garbage = k8s_openapi::ByteString(b"expired".to_vec());
        api.objects.get_mut(&format!("{SECRETS}/demo-tls")).unwrap()["data"]["tls.crt"] =
            serde_json::to_value(garbage).unwrap();
    }
    h.reconcile().await.unwrap();
    let renewed = secret_text(&h, "demo-tls", "tls.crt").unwrap();
    assert_ne!(renewed, cert);
    assert!(crate::pki::signed_by(&renewed, &ca));
    assert_eq!(
        secret_text(&h, "demo-ca", "tls.crt").as_deref(),
        Some(ca.as_str()),
        "the CA changed"
    );
    assert_eq!(
        h.requests(&format!("POST {SECRETS}")).len(),
        1,
        "the CA was made more than once"
    );
}

#[tokio::test]
async fn missing_user_secrets_render_nothing_and_say_why() {
    let h = Harness::new(Scenario::Fresh { replicas: 3 });
    set_tls(
        &h,
        json!({"mode": "UserSecrets", "secrets": {"client": "cli", "peer": "peers"}}),
    );
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert!(
        h.sts_replicas().is_none(),
        "a StatefulSet was rendered without its Secrets"
    );
    let d = h.condition("Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "TLSSecretMissing")
    );
    assert!(d.message.contains("peers"), "{d:?}");
}

#[tokio::test]
async fn a_member_that_lost_its_volume_is_replaced_by_a_new_one() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.model.lock().unwrap().members[1].healthy = false;
    h.api.lock().unwrap().objects.insert(
        "/api/v1/namespaces/ns/pods/demo-1".into(),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "demo-1", "namespace": NS},
               "status": {"containerStatuses": [{
                   "name": "ferrocd", "ready": false, "restartCount": 3, "image": "ferrocd", "imageID": "",
                   "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                   "lastState": {"terminated": {"exitCode": 1,
                       "message": "ferrocd: member 101 has already been bootstrapped\n"}}}]}}),
    );
    h.reconcile().await.unwrap();
    assert!(
        !h.model
            .lock()
            .unwrap()
            .members
            .iter()
            .any(|m| m.id == 0x101),
        "the lost member stayed"
    );
    h.reconcile().await.unwrap();
    let m = h.model.lock().unwrap();
    let added = m
        .members
        .iter()
        .find(|x| x.peer_urls == vec![peer(1)])
        .expect("demo-1 added again");
    assert!(added.learner && added.id != 0x101);
    drop(m);
    assert!(
        h.requests("DELETE /api/v1/namespaces/ns/persistentvolumeclaims/data-demo-1")
            .is_empty(),
        "its fresh claim was deleted"
    );
}

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

/// The status reports the largest database against the quota, and counts
/// a leader change once it sees another leader than the one it named.
#[tokio::test]
async fn status_reports_storage_and_counts_leader_changes() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.reconcile().await.unwrap();
    let s = h.status();
    let storage = s.storage.clone().expect("storage status");
    assert_eq!(
        (storage.db_size, storage.db_size_in_use),
        (4 << 20, 1 << 20)
    );
    assert_eq!(storage.quota_bytes, 2 << 30);
    assert_eq!(
        (storage.quota_used_percent, storage.fragmented_percent),
        (0, 75)
    );
    assert_eq!(s.leader_changes, 0, "a first leader is no change");
    let first = s.leader.clone();
    h.model.lock().unwrap().leader = Some(0x102);
    h.reconcile().await.unwrap();
    let s = h.status();
    assert_ne!(s.leader, first);
    assert_eq!(s.leader_changes, 1);
    h.reconcile().await.unwrap();
    assert_eq!(
        h.status().leader_changes,
        1,
        "the same leader again is no change"
    );
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
    let dialed = h
        .dialed_with
        .lock()
        .unwrap()
        .tls
        .clone()
        .expect("TLS identity");
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
async fn a_new_cluster_without_tls_gets_operator_managed_tls_and_the_client_secrets_asked_for() {
    let h = Harness::new(Scenario::Fresh { replicas: 3 });
    set_tls(&h, Value::Null);
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    let status = h.cluster().unwrap().status.unwrap();
    assert_eq!(status.tls, Some(crate::crd::TlsMode::OperatorManaged));
    let ca = secret_text(&h, "demo-ca", "tls.crt").expect("CA Secret");
    let sts = h.api.lock().unwrap().objects[STS_PATH].clone();
    let args = sts["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--client-cert-auth"), "{args}");
    assert!(args.contains("--listen-client-urls=https://"), "{args}");
    assert_eq!(
        h.dialed_with.lock().unwrap().tls.as_ref().unwrap().ca_pem,
        ca
    );

    // A client certificate on request, from the cluster's CA, for the name asked.
    set_tls(
        &h,
        json!({"clientSecrets": [{"name": "app-etcd"}, {"name": "kube", "commonName": "root"}]}),
    );
    h.reconcile().await.unwrap();
    for (secret, cn) in [("app-etcd", "app-etcd"), ("kube", "root")] {
        let cert = secret_text(&h, secret, "tls.crt").expect(secret);
        assert!(crate::pki::signed_by(&cert, &ca));
        assert_eq!(crate::pki::common_name(&cert).as_deref(), Some(cn));
        assert_eq!(
            secret_text(&h, secret, "ca.crt").as_deref(),
            Some(ca.as_str())
        );
        assert!(secret_text(&h, secret, "tls.key").is_some());
    }
    let issued = secret_text(&h, "kube", "tls.crt");
    h.reconcile().await.unwrap();
    assert_eq!(
        secret_text(&h, "kube", "tls.crt"),
        issued,
        "a current one was reissued"
    );

    // Taking `tls` out again keeps what runs: the recorded choice holds.
    set_tls(&h, Value::Null);
    h.reconcile().await.unwrap();
    let args = h.api.lock().unwrap().objects[STS_PATH]["spec"]["template"]["spec"]["containers"][0]
        ["args"]
        .to_string();
    assert!(args.contains("--client-cert-auth"), "{args}");
}

#[tokio::test]
async fn a_cluster_from_before_the_default_keeps_serving_plain_http() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    // Its StatefulSet (rendered plain) runs; its spec names no `tls`.
    set_tls(&h, Value::Null);
    h.reconcile().await.unwrap();
    let status = h.cluster().unwrap().status.unwrap();
    assert_eq!(status.tls, Some(crate::crd::TlsMode::Disabled));
    assert!(
        h.dialed_with.lock().unwrap().tls.is_none(),
        "dialed with TLS"
    );
    let args = h.api.lock().unwrap().objects[STS_PATH]["spec"]["template"]["spec"]["containers"][0]
        ["args"]
        .to_string();
    assert!(!args.contains("https://"), "{args}");
    assert!(secret_text(&h, "demo-ca", "tls.crt").is_none());
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

fn set_auth(h: &Harness, auth: Value) {
    let mut api = h.api.lock().unwrap();
    api.objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["auth"] = auth;
}

#[tokio::test]
async fn spec_auth_makes_root_with_a_generated_password_and_the_operator_authenticates() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    set_auth(&h, json!({}));
    h.reconcile().await.unwrap();
    let password = secret_text(&h, "demo-root", "password").expect("root password Secret");
    assert_eq!(password.len(), 32);
    assert_eq!(
        h.model.lock().unwrap().auth.as_deref(),
        Some(password.as_str())
    );
    assert_eq!(h.status().auth_enabled, Some(true));
    assert!(h.has_event("AuthEnabled"), "no AuthEnabled event");
    // The next reconcile keeps the password and changes nothing.
    h.reconcile().await.unwrap();
    assert_eq!(
        secret_text(&h, "demo-root", "password"),
        Some(password.clone())
    );
    assert_eq!(h.requests(&format!("POST {SECRETS}")).len(), 1);

    // Membership steps now need root: scaling 3 -> 4 -> 3 goes through.
    h.set_replicas(4);
    settle(&h, 20).await;
    assert_eq!(h.voters_and_learners(), (4, 0));
    h.set_replicas(3);
    settle(&h, 20).await;
    assert_eq!(h.voters_and_learners(), (3, 0));

    // enabled: false turns it off again.
    set_auth(&h, json!({"enabled": false}));
    h.reconcile().await.unwrap();
    assert_eq!(h.model.lock().unwrap().auth, None);
    assert_eq!(h.status().auth_enabled, Some(false));
}

#[tokio::test]
async fn a_named_root_secret_that_is_missing_halts_and_says_why() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    set_auth(&h, json!({"rootPasswordSecret": "etcd-root"}));
    h.reconcile().await.unwrap();
    let d = h.condition("Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "AuthSecretMissing")
    );
    assert!(d.message.contains("etcd-root"), "{d:?}");
    assert_eq!(h.model.lock().unwrap().auth, None);
    // Given the Secret, auth goes on with its password.
    h.api.lock().unwrap().objects.insert(
        format!("{SECRETS}/etcd-root"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "etcd-root", "namespace": NS},
               "data": {"password": "czNjcjN0"}}),
    );
    h.reconcile().await.unwrap();
    assert_eq!(h.model.lock().unwrap().auth.as_deref(), Some("s3cr3t"));
}

#[tokio::test]
async fn a_wrong_root_password_fails_the_step_and_changes_nothing() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 4,
        retention: PvcRetention::Keep,
    });
    // Auth was turned on by hand with another password.
    h.model.lock().unwrap().auth = Some("by hand".into());
    set_auth(&h, json!({}));
    let e = h
        .reconcile()
        .await
        .expect_err("a step went through unauthenticated");
    assert!(e.to_string().contains("authentication failed"), "{e}");
    assert_eq!(h.voters_and_learners(), (3, 0));
    assert!(h.has_event("StepFailed"), "no StepFailed event");
}

#[tokio::test]
async fn a_paused_cluster_changes_nothing_until_it_is_unpaused() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.reconcile().await.unwrap();
    let before = h.api.lock().unwrap().requests.len();
    h.api.lock().unwrap().objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["paused"] = json!(true);
    h.set_replicas(5);
    for _ in 0..3 {
        h.reconcile().await.unwrap();
        h.pods_follow();
    }
    assert_eq!(h.sts_replicas(), Some(3));
    assert_eq!(h.voters_and_learners(), (3, 0));
    let changed: Vec<String> = h.api.lock().unwrap().requests[before..]
        .iter()
        .filter(|r| !r.starts_with("GET") && !r.contains("/status"))
        .cloned()
        .collect();
    assert!(
        changed.is_empty(),
        "a paused cluster was changed: {changed:?}"
    );
    let p = h.condition("Paused");
    assert_eq!(
        (p.status.as_str(), p.reason.as_str()),
        ("True", "SpecPaused")
    );
    assert_eq!(h.status().members.len(), 3, "the last observation is kept");

    h.api.lock().unwrap().objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["paused"] = json!(false);
    settle(&h, 20).await;
    assert_eq!(h.voters_and_learners(), (5, 0));
    assert!(
        !h.status().conditions.iter().any(|c| c.type_ == "Paused"),
        "Paused stayed after unpausing"
    );
}

#[tokio::test]
async fn a_fragmented_cluster_is_defragmented_one_member_at_a_time_the_leader_last() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    // 4 MiB files, three quarters free; demo-1 leads.
    h.model.lock().unwrap().leader = Some(0x101);
    h.api.lock().unwrap().objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["maintenance"] =
        json!({"defrag": {"fragmentedPercent": 50, "minDbSizeBytes": 1}});
    // Not while a member is unhealthy.
    h.model.lock().unwrap().members[2].healthy = false;
    h.reconcile().await.unwrap();
    assert!(h.model.lock().unwrap().defragmented.is_empty());
    h.model.lock().unwrap().members[2].healthy = true;

    h.reconcile().await.unwrap();
    assert_eq!(h.model.lock().unwrap().defragmented, [0x100, 0x102, 0x101]);
    let d = h.status().defrag.expect("status.defrag");
    assert_eq!(
        (d.reason.as_str(), d.result.as_str(), d.members.clone()),
        (
            "Fragmentation",
            "Succeeded",
            vec!["demo-0".into(), "demo-2".into(), "demo-1".into()]
        )
    );
    assert!(h.has_event("Defragmented"));
    // Done: the files are compact, nothing runs again.
    h.reconcile().await.unwrap();
    assert_eq!(h.model.lock().unwrap().defragmented.len(), 3);
}

#[tokio::test]
async fn an_invalid_defrag_schedule_is_a_degraded_condition() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    h.api.lock().unwrap().objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["maintenance"] =
        json!({"defrag": {"schedule": "nightly"}});
    h.reconcile().await.unwrap();
    let d = h.condition("Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "InvalidSchedule")
    );
    assert!(h.model.lock().unwrap().defragmented.is_empty());
}

#[tokio::test]
async fn a_nospace_alarm_is_remediated_only_when_asked() {
    let h = Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    });
    {
        // The alarm makes every member report an error.
        let mut m = h.model.lock().unwrap();
        m.nospace = vec![0x100, 0x102];
        m.members.iter_mut().for_each(|x| x.healthy = false);
    }
    h.reconcile().await.unwrap();
    assert_eq!(
        h.model.lock().unwrap().compacted,
        None,
        "remediated unasked"
    );
    assert_eq!(h.model.lock().unwrap().nospace.len(), 2);

    h.api.lock().unwrap().objects.get_mut(CLUSTER_PATH).unwrap()["spec"]["maintenance"] =
        json!({"nospaceRemediation": true});
    h.reconcile().await.unwrap();
    let m = h.model.lock().unwrap();
    assert_eq!(m.compacted, Some(100));
    // demo-0 leads: it goes last.
    assert_eq!(m.defragmented, [0x101, 0x102, 0x100]);
    assert!(m.nospace.is_empty(), "alarm not disarmed");
    drop(m);
    let d = h.status().defrag.expect("status.defrag");
    assert_eq!(
        (d.reason.as_str(), d.result.as_str()),
        ("NoSpace", "Succeeded")
    );
    assert!(d.message.contains("compacted at revision 100"), "{d:?}");
    assert!(h.has_event("AlarmRemediated"));
}

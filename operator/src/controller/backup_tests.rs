//! The backup and restore state machines against the fixtures' mock API:
//! an `EtcdBackup` through its save and verify Jobs (a fresh context per
//! reconcile, as after an operator restart), failures with their reasons,
//! and a cluster created from a backup.

use super::fixtures::*;
use super::*;
use crate::backup::record::{Failed, Report, Taken, Verified};
use crate::crd::{BackupPhase, EtcdBackup, EtcdBackupStatus};
use serde_json::Value;

const BACKUP_PATH: &str = "/apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdbackups/b1";
const JOBS: &str = "/apis/batch/v1/namespaces/ns/jobs";
const PODS: &str = "/api/v1/namespaces/ns/pods";

/// A running 3-member cluster at 3 replicas.
fn running_3() -> Harness {
    Harness::new(Scenario::Running {
        members: 3,
        desired: 3,
        retention: PvcRetention::Keep,
    })
}

fn add_backup(h: &Harness, verify: bool) {
    let b: Value = json!({
        "apiVersion": "ferrocd.dev/v1alpha1", "kind": "EtcdBackup",
        "metadata": {"name": "b1", "namespace": NS, "uid": "uid-b1"},
        "spec": {"clusterName": NAME, "verify": verify,
                 "destination": {"s3": {"bucket": "bk", "credentialsSecret": "keys"}}},
    });
    h.api.lock().unwrap().objects.insert(BACKUP_PATH.into(), b);
}

fn backup(h: &Harness) -> EtcdBackup {
    let api = h.api.lock().unwrap();
    serde_json::from_value(api.objects[BACKUP_PATH].clone()).unwrap()
}

fn backup_status(h: &Harness) -> EtcdBackupStatus {
    backup(h).status.unwrap_or_default()
}

async fn reconcile_backup(h: &Harness) -> Result<Action, Error> {
    let client = mock_api(h.api.clone());
    let connect: Connect = Arc::new(|_| unreachable!("a backup dials no member"));
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let ctx = Arc::new(Context::new(client, metrics, connect));
    crate::backup_controller::reconcile(Arc::new(backup(h)), ctx).await
}

/// The Job ends; its pod leaves `report` as its termination message.
fn job_ends(h: &Harness, job: &str, report: &Report, succeeded: bool) {
    let mut api = h.api.lock().unwrap();
    let j = api
        .objects
        .get_mut(&format!("{JOBS}/{job}"))
        .unwrap_or_else(|| panic!("no Job {job}"));
    j["status"] = if succeeded {
        json!({"succeeded": 1})
    } else {
        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})
    };
    api.objects
        .retain(|k, _| !k.starts_with(&format!("{PODS}/")));
    api.objects.insert(
        format!("{PODS}/{job}-x1"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("{job}-x1"), "namespace": NS, "labels": {"job-name": job}},
               "status": {"containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                   "image": "", "imageID": "",
                   "state": {"terminated": {"exitCode": if succeeded {0} else {1},
                                            "message": report.to_json()}}}]}}),
    );
}

fn taken() -> Taken {
    Taken {
        location: "s3://bk/ns/demo/b1.db".into(),
        sha256: "ab".repeat(32),
        size: 4096,
        revision: 42,
        keys: 17,
        hash_kv: 7,
        compact_revision: -1,
        member: "101".into(),
        from_leader: false,
        cluster_id: "c1".into(),
    }
}

#[tokio::test]
async fn a_backup_runs_one_save_job_records_its_report_then_verifies() {
    let h = running_3();
    add_backup(&h, true);
    reconcile_backup(&h).await.unwrap();
    assert_eq!(
        backup(&h).metadata.finalizers,
        Some(vec![crate::backup_controller::FINALIZER.to_string()])
    );
    reconcile_backup(&h).await.unwrap();
    let s = backup_status(&h);
    assert_eq!(s.phase, BackupPhase::Running);
    assert_eq!(s.key.as_deref(), Some("ns/demo/b1.db"));
    assert_eq!(s.location.as_deref(), Some("s3://bk/ns/demo/b1.db"));
    // A restarted operator finds the Job and makes no second one.
    reconcile_backup(&h).await.unwrap();
    assert_eq!(h.requests(&format!("POST {JOBS}")).len(), 1);
    let job = h.api.lock().unwrap().objects[&format!("{JOBS}/b1-save")].clone();
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(args
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--endpoints=http://demo-0.demo.ns.svc.cluster.local:2379,http://demo-1.demo.ns.svc.cluster.local:2379,http://demo-2.demo.ns.svc.cluster.local:2379"),
        "{args}");
    assert_eq!(backup_status(&h).phase, BackupPhase::Running);

    job_ends(&h, "b1-save", &Report::Taken(taken()), true);
    reconcile_backup(&h).await.unwrap();
    let s = backup_status(&h);
    assert_eq!(s.phase, BackupPhase::Verifying, "{s:?}");
    assert_eq!(
        (s.revision, s.keys, s.size, s.hash_kv),
        (Some(42), Some(17), Some(4096), Some(7))
    );
    assert_eq!(s.sha256.as_deref(), Some("ab".repeat(32).as_str()));

    reconcile_backup(&h).await.unwrap();
    let verify = h.api.lock().unwrap().objects[&format!("{JOBS}/b1-verify")].clone();
    let args = verify["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    for want in [
        "--revision=42",
        "--keys=17",
        "--hash-kv=7",
        "--key=ns/demo/b1.db",
    ] {
        assert!(args.contains(want), "{want} missing from {args}");
    }
    job_ends(
        &h,
        "b1-verify",
        &Report::Verified(Verified {
            verified: true,
            message: "restored: revision 42".into(),
        }),
        true,
    );
    reconcile_backup(&h).await.unwrap();
    let s = backup_status(&h);
    assert_eq!(s.phase, BackupPhase::Succeeded);
    assert!(s.verification.as_ref().is_some_and(|v| v.verified));
    // Done: nothing more happens.
    let before = h.requests("POST").len();
    reconcile_backup(&h).await.unwrap();
    assert_eq!(h.requests("POST").len(), before);
}

#[tokio::test]
async fn a_failed_save_marks_the_backup_failed_with_the_reason_it_reported() {
    let h = running_3();
    add_backup(&h, true);
    reconcile_backup(&h).await.unwrap();
    reconcile_backup(&h).await.unwrap();
    let failed = Failed {
        reason: "Credentials".into(),
        message: "object store s3://bk/ns/demo/b1.db: InvalidAccessKeyId".into(),
    };
    job_ends(&h, "b1-save", &Report::Failed(failed), false);
    reconcile_backup(&h).await.unwrap();
    let s = backup_status(&h);
    assert_eq!(s.phase, BackupPhase::Failed);
    assert!(s.message.as_deref().unwrap().contains("InvalidAccessKeyId"));
    let c = s.conditions.iter().find(|c| c.type_ == "Complete").unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "Credentials")
    );
    assert!(s.sha256.is_none(), "nothing recorded as stored");
    assert!(
        h.requests(&format!("POST {JOBS}")).len() == 1,
        "no verify Job"
    );
}

#[tokio::test]
async fn a_backup_that_does_not_verify_is_failed_and_a_job_without_report_says_why() {
    let h = running_3();
    add_backup(&h, true);
    for _ in 0..2 {
        reconcile_backup(&h).await.unwrap();
    }
    job_ends(&h, "b1-save", &Report::Taken(taken()), true);
    reconcile_backup(&h).await.unwrap();
    reconcile_backup(&h).await.unwrap();
    job_ends(
        &h,
        "b1-verify",
        &Report::Verified(Verified {
            verified: false,
            message: "SHA-256 is 00, the backup recorded abab".into(),
        }),
        false,
    );
    reconcile_backup(&h).await.unwrap();
    let s = backup_status(&h);
    assert_eq!(s.phase, BackupPhase::Failed);
    assert!(s
        .message
        .unwrap()
        .starts_with("does not verify: SHA-256 is 00"));
    assert_eq!(s.verification.map(|v| v.verified), Some(false));

    // A Job that ended with no report (deadline, never started).
    let h = running_3();
    add_backup(&h, false);
    for _ in 0..2 {
        reconcile_backup(&h).await.unwrap();
    }
    {
        let mut api = h.api.lock().unwrap();
        let j = api.objects.get_mut(&format!("{JOBS}/b1-save")).unwrap();
        j["status"] = json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
            "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]});
    }
    reconcile_backup(&h).await.unwrap();
    let s = backup_status(&h);
    assert_eq!(s.phase, BackupPhase::Failed);
    assert_eq!(
        s.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
}

#[tokio::test]
async fn a_cluster_from_a_backup_waits_for_it_then_restores_its_founding_members_once() {
    let h = Harness::new(Scenario::Fresh { replicas: 3 });
    add_backup(&h, false);
    {
        let mut api = h.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["spec"]["bootstrap"] = json!({"fromBackup": {"backupName": "b1"}});
        let b = api.objects.get_mut(BACKUP_PATH).unwrap();
        b["status"] = json!({"phase": "Running", "key": "ns/demo/b1.db"});
    }
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    assert_eq!(
        h.sts_replicas(),
        None,
        "no member starts before the backup is ready"
    );
    let s = h.status();
    assert!(s.restore.is_none());
    assert!(
        s.conditions
            .iter()
            .any(|c| c.message.contains("EtcdBackup b1 is Running")),
        "{:?}",
        s.conditions
    );

    {
        let mut api = h.api.lock().unwrap();
        let b = api.objects.get_mut(BACKUP_PATH).unwrap();
        b["status"] = json!({"phase": "Succeeded", "key": "ns/demo/b1.db", "revision": 42,
                             "sha256": "ab".repeat(32)});
        // The same name's earlier cluster was deleted; the garbage
        // collector has not removed its StatefulSet yet.
        api.objects.insert(
            STS_PATH.into(),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": NAME, "namespace": "ns", "ownerReferences": [
                       {"apiVersion": "ferrocd.dev/v1alpha1", "kind": "EtcdCluster",
                        "name": NAME, "uid": "an-earlier-uid", "controller": true}]},
                   "spec": {"replicas": 3, "serviceName": NAME,
                            "selector": {"matchLabels": {}}, "template": {}}}),
        );
    }
    h.reconcile().await.unwrap();
    let s = h.status();
    assert!(s.restore.is_none(), "not restored into the old members");
    assert!(
        s.conditions
            .iter()
            .any(|c| c.message.contains("of a deleted cluster of this name")),
        "{:?}",
        s.conditions
    );
    h.api.lock().unwrap().objects.remove(STS_PATH);
    let before = h.cluster().unwrap();
    h.reconcile().await.unwrap();
    let r = h.status().restore.expect("restore source recorded");
    assert_eq!(
        (r.backup.as_deref(), r.key.as_str(), r.revision, r.done),
        (Some("b1"), "ns/demo/b1.db", Some(42), false)
    );
    assert_eq!(h.sts_replicas(), None, "the source is recorded first");
    // A watch cache still holding the object from before that write: the
    // recorded source stands (the restore step must never change).
    h.reconcile_as(before.clone()).await.unwrap();
    h.reconcile_as(before).await.unwrap();
    assert_eq!(h.status().restore, Some(r));
    assert_eq!(h.sts_replicas(), Some(3));
    let sts = h.api.lock().unwrap().objects[STS_PATH].clone();
    let init = &sts["spec"]["template"]["spec"]["initContainers"][0];
    let args = init["args"].to_string();
    for want in [
        "\"restore\"",
        "--key=ns/demo/b1.db",
        "--s3-bucket=bk",
        "--bootstrap-members=3",
        "--name=$(POD_NAME)",
        "--initial-cluster=demo-0=http://demo-0.demo.ns.svc.cluster.local:2380,demo-1=",
        "--initial-cluster-token=demo-6f1c0de2",
        &format!("--sha256={}", "ab".repeat(32)),
    ] {
        assert!(args.contains(want), "{want} missing from {args}");
    }
    assert!(
        init["env"]
            .to_string()
            .contains("\"name\":\"demo-restore\""),
        "{}",
        init["env"]
    );
    assert!(!h
        .api
        .lock()
        .unwrap()
        .objects
        .keys()
        .any(|k| k.ends_with("/configmaps/demo-restore")));

    // The members come up on the restored data: the restore is done, and
    // later pods are told so; the members' template never changes.
    h.members_bootstrap(3, 0x100);
    h.pods_follow();
    h.reconcile().await.unwrap();
    let r = h.status().restore.unwrap();
    assert!(r.done);
    let api = h.api.lock().unwrap();
    let cm = &api.objects["/api/v1/namespaces/ns/configmaps/demo-restore"];
    assert_eq!(cm["data"]["done"], "true");
    assert_eq!(
        api.objects[STS_PATH]["spec"]["template"],
        sts["spec"]["template"]
    );
}

#[tokio::test]
async fn the_schedule_creates_the_due_run_once_and_retention_deletes_the_oldest() {
    let h = running_3();
    let now = k8s_openapi::jiff::Timestamp::now();
    let minutes_ago = |m: i64| {
        now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(60 * m))
            .unwrap()
    };
    let scheduled = |name: &str, created: k8s_openapi::jiff::Timestamp| {
        json!({"apiVersion": "ferrocd.dev/v1alpha1", "kind": "EtcdBackup",
               "metadata": {"name": name, "namespace": NS, "creationTimestamp": created.to_string(),
                            "labels": {"ferrocd.dev/cluster": NAME, "ferrocd.dev/scheduled": "true"}},
               "spec": {"clusterName": NAME, "destination": {"pvc": {"claimName": "v"}}, "deletionPolicy": "Delete"},
               "status": {"phase": "Succeeded", "key": format!("ns/demo/{name}.db"),
                          "completionTime": created.to_string()}})
    };
    {
        let mut api = h.api.lock().unwrap();
        let c = api.objects.get_mut(CLUSTER_PATH).unwrap();
        c["spec"]["backup"] = json!({"schedule": "* * * * *", "retention": {"count": 1},
                                     "destination": {"pvc": {"claimName": "v"}}});
        c["status"] = json!({"phase": "Running",
                             "backup": {"lastScheduleTime": minutes_ago(3).to_string()}});
        let path = "/apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdbackups";
        api.objects
            .insert(format!("{path}/old"), scheduled("old", minutes_ago(3)));
        api.objects
            .insert(format!("{path}/newer"), scheduled("newer", minutes_ago(2)));
    }
    h.reconcile().await.unwrap();
    let created = h.requests("POST /apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdbackups");
    assert_eq!(
        created.len(),
        1,
        "one run for the missed minutes: {created:?}"
    );
    let status = h.status().backup.expect("backup status");
    let last: k8s_openapi::jiff::Timestamp = status.last_schedule_time.unwrap().parse().unwrap();
    assert!(last > minutes_ago(1) && last <= now, "{last}");
    let made = h
        .api
        .lock()
        .unwrap()
        .objects
        .keys()
        .filter(|k| k.contains("/etcdbackups/demo-"))
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(made.len(), 1, "{made:?}");
    let b = h.api.lock().unwrap().objects[&made[0]].clone();
    assert_eq!(b["spec"]["deletionPolicy"], "Delete");
    assert!(
        b["metadata"]["ownerReferences"].is_null(),
        "a scheduled backup outlives its cluster"
    );
    assert_eq!(
        h.requests("DELETE /apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdbackups/old")
            .len(),
        1,
        "retention keeps one success"
    );
    assert!(h
        .requests("DELETE /apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdbackups/newer")
        .is_empty());
    assert_eq!(status.last_successful_backup.as_deref(), Some("newer"));

    // The same minute again: no second run.
    h.reconcile().await.unwrap();
    assert_eq!(
        h.requests("POST /apis/ferrocd.dev/v1alpha1/namespaces/ns/etcdbackups")
            .len(),
        1
    );
}

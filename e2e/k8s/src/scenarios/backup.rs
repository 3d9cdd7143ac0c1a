//! Backups end to end: a 3-member cluster under writes with an every-minute
//! schedule (retention 2) backs up to an S3-compatible store; on-demand
//! backups to S3 (verified) and to a PersistentVolumeClaim, one while a
//! member is down; then the cluster is deleted and created again from the
//! S3 backup, and holds every key written before the backup's revision.

use super::{
    clusters, create_cluster_with, member_pods, put, read_key, running_with, wait_status, Target,
    NAME,
};
use ferrocd_operator::backup::store::S3Target;
use ferrocd_operator::controller::SCHEDULED_LABEL;
use ferrocd_operator::crd::{BackupPhase, EtcdBackup, EtcdBackupStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An S3-compatible store the cluster's pods reach.
#[derive(Clone)]
pub struct S3Store {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Store {
    fn target(&self) -> S3Target {
        S3Target {
            endpoint: Some(self.endpoint.clone()),
            bucket: self.bucket.clone(),
            region: None,
            path_style: true,
            ca_file: None,
            keys: Some((self.access_key.clone(), self.secret_key.clone())),
        }
    }

    fn destination(&self, prefix: &str) -> serde_json::Value {
        serde_json::json!({"s3": {
            "bucket": self.bucket, "prefix": prefix, "endpoint": self.endpoint,
            "forcePathStyle": true, "credentialsSecret": "backup-s3",
        }})
    }
}

fn backups(t: &impl Target, ns: &str) -> Api<EtcdBackup> {
    Api::namespaced(t.client(), ns)
}

async fn create_backup(t: &impl Target, ns: &str, name: &str, spec: serde_json::Value) {
    let object: EtcdBackup = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrocd.dev/v1alpha1", "kind": "EtcdBackup",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))
    .expect("EtcdBackup");
    backups(t, ns)
        .create(&PostParams::default(), &object)
        .await
        .expect("create the EtcdBackup");
    t.say(&format!("EtcdBackup {name} created"));
}

/// Waits until the backup succeeded or failed; its status.
async fn wait_backup(t: &impl Target, ns: &str, name: &str, secs: u64) -> EtcdBackupStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    loop {
        let status = backups(t, ns)
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|b| b.status)
            .unwrap_or_default();
        if matches!(status.phase, BackupPhase::Succeeded | BackupPhase::Failed) {
            t.say(&format!(
                "EtcdBackup {name}: {} at revision {:?}, {:?} bytes, verified {:?} {}",
                status.phase,
                status.revision,
                status.size,
                status.verification.as_ref().map(|v| v.verified),
                status.message.clone().unwrap_or_default()
            ));
            return status;
        }
        if last != Some(status.phase) {
            t.say(&format!("  EtcdBackup {name}: {}", status.phase));
            last = Some(status.phase);
        }
        assert!(
            Instant::now() < deadline,
            "EtcdBackup {name} not done in {secs} s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes `/w/<i>` through any member until stopped; what was acknowledged
/// with its revision.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, i64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start<T: Target>(t: Arc<T>, ns: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut i = 0u32;
            while !s.load(Ordering::Relaxed) {
                let key = format!("/w/{i:06}");
                if let Some(rev) = put(&*t, &ns, &key, &format!("value of {key}")).await {
                    if let Ok(mut a) = a.lock() {
                        a.push((key, rev));
                    }
                    i += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Writer { stop, acked, task }
    }

    async fn finish(self) -> Vec<(String, i64)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.acked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

pub async fn backups_to_s3_and_a_volume_and_a_restore_from_them<T: Target>(
    t: Arc<T>,
    ns: String,
    s3: S3Store,
) {
    let secrets: Api<Secret> = Api::namespaced(t.client(), &ns);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "backup-s3"},
        "stringData": {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key},
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the S3 key Secret");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(t.client(), &ns);
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "backups"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .expect("claim");
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create the backup claim");

    // Every minute, the newest two kept; claims go with the cluster (it is
    // recreated under the same name below).
    let prefix = format!("sched-{ns}");
    create_cluster_with(
        &*t,
        &ns,
        3,
        serde_json::json!({
            "pvcRetention": "Delete",
            "backup": {"schedule": "* * * * *", "retention": {"count": 2},
                       "destination": s3.destination(&prefix)},
        }),
    )
    .await;
    wait_status(&*t, &ns, 240, "members Running", running_with(3)).await;
    let writer = Writer::start(t.clone(), ns.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    create_backup(
        &*t,
        &ns,
        "to-s3",
        serde_json::json!({"clusterName": NAME, "verify": true, "destination": s3.destination("manual")}),
    )
    .await;
    create_backup(
        &*t,
        &ns,
        "to-volume",
        serde_json::json!({"clusterName": NAME, "destination": {"pvc": {"claimName": "backups"}}}),
    )
    .await;
    let to_s3 = wait_backup(&*t, &ns, "to-s3", 180).await;
    assert_eq!(to_s3.phase, BackupPhase::Succeeded, "{to_s3:?}");
    let verification = to_s3.verification.clone().expect("verified");
    assert!(verification.verified, "{verification:?}");
    let key = to_s3.key.clone().expect("key");
    assert_eq!(key, format!("manual/{ns}/{NAME}/to-s3.db"));
    assert!(to_s3.revision.unwrap_or(0) > 1 && to_s3.size.unwrap_or(0) > 0);
    assert!(to_s3.sha256.as_ref().is_some_and(|s| s.len() == 64));
    let listed = s3.target().list("manual").await.expect("list");
    assert_eq!(listed, vec![key.clone()], "the S3 object is there");
    let to_volume = wait_backup(&*t, &ns, "to-volume", 180).await;
    assert_eq!(to_volume.phase, BackupPhase::Succeeded, "{to_volume:?}");
    assert_eq!(
        to_volume.location.as_deref(),
        Some(format!("pvc://backups/{ns}/{NAME}/to-volume.db").as_str())
    );

    // A member down: the backup comes from the others.
    let pods = member_pods(&*t, &ns).await;
    let victim = pods[2].metadata.name.clone().unwrap_or_default();
    t.kill_member(&ns, &victim).await;
    t.say(&format!("{victim} killed"));
    create_backup(
        &*t,
        &ns,
        "member-down",
        serde_json::json!({"clusterName": NAME, "destination": s3.destination("manual")}),
    )
    .await;
    let down = wait_backup(&*t, &ns, "member-down", 180).await;
    assert_eq!(down.phase, BackupPhase::Succeeded, "{down:?}");

    // The schedule: four runs at least; retention keeps two successes
    // (three for the moment between a new run's success and the next
    // pass), has deleted the first runs, and the objects under the
    // schedule's prefix are exactly the kept backups'.
    let started = Instant::now();
    let mut seen = BTreeSet::new();
    loop {
        let made = backups(&*t, &ns)
            .list(&ListParams::default().labels(&format!("{SCHEDULED_LABEL}=true")))
            .await
            .expect("list backups")
            .items;
        let status = clusters(&*t, &ns)
            .get(NAME)
            .await
            .expect("cluster")
            .status
            .unwrap_or_default();
        let runs = status
            .backup
            .as_ref()
            .and_then(|b| b.last_schedule_time.clone());
        let live: BTreeSet<String> = made
            .iter()
            .filter(|b| b.metadata.deletion_timestamp.is_none())
            .filter_map(|b| b.metadata.name.clone())
            .collect();
        seen.extend(live.iter().cloned());
        let mut kept: Vec<String> = made
            .iter()
            .filter(|b| b.metadata.deletion_timestamp.is_none())
            .filter(|b| b.status.as_ref().map(|s| s.phase) == Some(BackupPhase::Succeeded))
            .filter_map(|b| b.status.as_ref()?.key.clone())
            .collect();
        kept.sort();
        let objects = s3.target().list(&prefix).await.expect("list");
        let retired = seen.difference(&live).count();
        if seen.len() >= 4 && retired >= 1 && (2..=3).contains(&kept.len()) && objects == kept {
            t.say(&format!(
                "schedule: {} runs seen, {retired} retired, kept {kept:?}, last run {runs:?}, last success {:?}",
                seen.len(),
                status.backup.and_then(|b| b.last_successful_backup)
            ));
            break;
        }
        let states: Vec<String> = made
            .iter()
            .map(|b| {
                format!(
                    "{} {:?}{}",
                    b.metadata.name.clone().unwrap_or_default(),
                    b.status.as_ref().map(|s| s.phase),
                    if b.metadata.deletion_timestamp.is_some() {
                        " (deleting)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        assert!(
            started.elapsed() < Duration::from_secs(330),
            "schedule: backups {states:?}, objects {objects:?}, last run {runs:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let acked = writer.finish().await;
    let revision = to_s3.revision.unwrap_or_default();
    let before: Vec<&(String, i64)> = acked.iter().filter(|(_, r)| *r <= revision).collect();
    assert!(!before.is_empty(), "writes before the backup");
    t.say(&format!(
        "{} writes acknowledged, {} at or before revision {revision}",
        acked.len(),
        before.len()
    ));

    // Disaster: the cluster goes; a new one of the same name from the backup.
    clusters(&*t, &ns)
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete the cluster");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let cluster_left = clusters(&*t, &ns)
            .get_opt(NAME)
            .await
            .ok()
            .flatten()
            .is_some();
        let pods_left: Vec<String> = member_pods(&*t, &ns)
            .await
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let claims_left: Vec<String> = claims
            .list(&ListParams::default().labels(&format!(
                "{}={NAME}",
                ferrocd_operator::names::CLUSTER_LABEL
            )))
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter_map(|c| c.metadata.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        if !cluster_left && pods_left.is_empty() && claims_left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old cluster did not go: cluster {cluster_left}, pods {pods_left:?}, claims {claims_left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    t.say("cluster, pods and claims deleted");
    create_cluster_with(
        &*t,
        &ns,
        3,
        serde_json::json!({"bootstrap": {"fromBackup": {"backupName": "to-s3"}}}),
    )
    .await;
    let status = wait_status(&*t, &ns, 240, "restored members Running", |s| {
        running_with(3)(s) && s.restore.as_ref().is_some_and(|r| r.done)
    })
    .await;
    let restore = status.restore.expect("restore status");
    assert_eq!(restore.backup.as_deref(), Some("to-s3"));
    assert_eq!(restore.revision, Some(revision));
    for (key, rev) in &before {
        let value = read_key(&*t, &ns, key).await.expect("a member answers");
        assert_eq!(
            value,
            format!("value of {key}").into_bytes(),
            "{key} (acknowledged at revision {rev}) after the restore"
        );
    }
    t.say(&format!(
        "restored at revision {revision}: all {} keys acknowledged before it are there",
        before.len()
    ));
    let next = put(&*t, &ns, "/after", "restore")
        .await
        .expect("the restored cluster takes writes");
    assert_eq!(
        next,
        revision + 1,
        "the restored cluster goes on from the backup's revision"
    );
}

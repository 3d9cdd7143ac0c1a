//! Backups in the API: where they go ([`BackupDestination`]), the
//! `EtcdBackup` resource (one snapshot, on demand or made by a schedule),
//! a cluster's schedule ([`BackupSchedule`], `EtcdCluster.spec.backup`) and
//! where a new cluster restores from ([`Bootstrap`], `spec.bootstrap`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where backups are stored: an S3-compatible bucket or a
/// PersistentVolumeClaim (exactly one).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.s3) != has(self.pvc)").message("name exactly one of s3 and pvc"))]
pub struct BackupDestination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcDestination>,
}

/// An S3-compatible object store (AWS, MinIO, SeaweedFS, Ceph RGW, ...).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Destination {
    pub bucket: String,
    /// Keys start with this (`PREFIX/NAMESPACE/CLUSTER/BACKUP.db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `https://host:port` of a non-AWS store; AWS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region; `us-east-1` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Bucket in the URL path (MinIO, SeaweedFS) instead of the host name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_path_style: bool,
    /// Secret with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and
    /// optionally `AWS_SESSION_TOKEN`); the pod's own identity when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Secret whose `ca.crt` signed the endpoint's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<String>,
}

/// A PersistentVolumeClaim in the cluster's namespace; backups are files
/// under `PREFIX/` in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcDestination {
    pub claim_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl BackupDestination {
    /// The prefix of keys (or file paths) under this destination.
    pub fn prefix(&self) -> &str {
        let p = match (&self.s3, &self.pvc) {
            (Some(s3), _) => s3.prefix.as_deref(),
            (None, Some(pvc)) => pvc.prefix.as_deref(),
            (None, None) => None,
        };
        p.unwrap_or_default().trim_matches('/')
    }
}

/// One snapshot of an `EtcdCluster`, taken through the Snapshot RPC from a
/// healthy member (a follower when there is one) and stored whole or not
/// at all.
// printcolumn(...) repeats `type_ = ...`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrocd.dev",
    version = "v1alpha1",
    kind = "EtcdBackup",
    namespaced,
    shortname = "etcdbackup",
    status = "EtcdBackupStatus",
    derive = "PartialEq",
    doc = "A snapshot of an EtcdCluster in object storage or a volume",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision"),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.size"),
    printcolumn(
        name = "Verified",
        type_ = "string",
        json_path = ".status.verification.verified"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("an EtcdBackup's spec is immutable"))]
pub struct EtcdBackupSpec {
    /// The EtcdCluster (same namespace) to back up.
    pub cluster_name: String,
    pub destination: BackupDestination,
    /// Restore the snapshot into a throw-away member and compare revision,
    /// key count and HashKV with what was recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
    /// What happens to the stored snapshot when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// The snapshot stays (on-demand backups).
    #[default]
    Retain,
    /// The snapshot is deleted with the resource (scheduled backups, so
    /// retention frees the space).
    Delete,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum BackupPhase {
    #[default]
    Pending,
    Running,
    Verifying,
    Succeeded,
    Failed,
}

impl std::fmt::Display for BackupPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdBackupStatus {
    #[serde(default)]
    pub phase: BackupPhase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Key of the snapshot under the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `s3://bucket/key` or `pvc://claim/key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// SHA-256 (hex) of the stored file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// The snapshot's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Keys live at that revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<i64>,
    /// The source member's HashKV at that revision.
    #[serde(rename = "hashKV", default, skip_serializing_if = "Option::is_none")]
    pub hash_kv: Option<i64>,
    /// ID (hex) of the member it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Why the backup failed (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// The outcome of restoring the backup into a throw-away member.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub verified: bool,
    /// What matched, or the first thing that did not.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// Scheduled backups of a cluster (`EtcdCluster.spec.backup`): each run
/// creates an `EtcdBackup` named `C-YYYYMMDD-HHMMSS` that the retention
/// rules later delete (with its snapshot).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSchedule {
    /// A cron schedule, five fields (`0 * * * *`: hourly), in UTC.
    pub schedule: String,
    pub destination: BackupDestination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Verify every backup by restoring it (see `EtcdBackup.spec.verify`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
}

/// Which scheduled backups are kept. The newest successful one always is.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// At most this many successful backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<i32>,
    /// None older than this (`36h`, `7d`, `90m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// How a new cluster starts: empty (no bootstrap), or restored from a
/// backup into every founding member before it starts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<FromBackup>,
}

/// A backup to restore: a succeeded `EtcdBackup` by name, or a key under a
/// destination (for example a snapshot `etcdctl snapshot save` took from a
/// real etcd cluster).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.backupName) != (has(self.destination) && has(self.key))").message("name either backupName, or destination and key"))]
pub struct FromBackup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<BackupDestination>,
    /// Key (S3) or path under the claim (PVC) of the snapshot file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Refuse the file unless its SHA-256 (hex) is this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The file has no SHA-256 trailer (a copied `member/snap/db`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_hash_check: bool,
}

/// A cluster's record of its backups (`EtcdCluster.status.backup`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBackupStatus {
    /// When the schedule last created a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// The newest succeeded backup of the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<String>,
}

/// Where a restored cluster came from (`EtcdCluster.status.restore`); set
/// once, when the cluster is created, so the members' restore step never
/// changes afterwards.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// The EtcdBackup, when restored from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    pub destination: BackupDestination,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_hash_check: bool,
    /// The snapshot's revision, once the members have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// True once every founding member runs on the restored data: from
    /// then on a member that starts empty is not restored again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

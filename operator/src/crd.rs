//! The `EtcdCluster` custom resource (group `ferrocd.dev`, version
//! `v1alpha1`): what a user asks for (spec) and what the operator reports
//! (status). `crdgen` prints the CRD generated from these types.

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod backup;

pub use backup::{
    BackupDestination, BackupPhase, BackupSchedule, Bootstrap, ClusterBackupStatus, DeletionPolicy,
    EtcdBackup, EtcdBackupSpec, EtcdBackupStatus, FromBackup, PvcDestination, RestoreStatus,
    Retention, S3Destination, Verification,
};

/// An etcd-compatible ferrocd cluster: N members in a StatefulSet that find
/// each other through DNS SRV records, scaled one member at a time through
/// the cluster's own membership API.
// printcolumn(...) repeats `type_ = ...`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrocd.dev",
    version = "v1alpha1",
    kind = "EtcdCluster",
    namespaced,
    shortname = "etcd",
    status = "EtcdClusterStatus",
    derive = "PartialEq",
    doc = "An etcd-compatible ferrocd cluster",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClusterSpec {
    /// Number of members. Changed one member at a time, never below quorum.
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Container image holding `ferrocd`; defaults to the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Where members keep their data. Immutable once the cluster exists.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage is immutable"))]
    pub storage: Storage,
    /// CPU and memory of each member's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra settings of the member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
    /// The cluster's DNS domain, used in member names and SRV records.
    #[serde(default = "default_cluster_domain")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterDomain is immutable"))]
    pub cluster_domain: String,
    /// Member settings (etcd's flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<MemberOptions>,
    /// TLS for client and peer traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// etcd authentication, turned on and kept by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// What happens to a removed member's volume on scale-in.
    #[serde(default)]
    pub pvc_retention: PvcRetention,
    /// Day-2 maintenance the operator carries out (defragmentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    /// Scheduled backups, with retention and optional verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSchedule>,
    /// Create the cluster from a backup. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("bootstrap is immutable"))]
    pub bootstrap: Option<Bootstrap>,
    /// What the operator does when the cluster has lost its quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// Stop reconciling: nothing the spec says changes the cluster (scale,
    /// TLS, auth, backups) until this is false again. Deletion still works.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

pub fn default_cluster_domain() -> String {
    "cluster.local".into()
}

/// A member's data volume: a PersistentVolumeClaim per member, or an
/// emptyDir for throwaway clusters (data is lost with the pod).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Size of each member's volume (a Kubernetes quantity); default 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// StorageClass of the claims; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Use an emptyDir instead of claims.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_dir: bool,
}

/// Overrides merged into the member pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// Member settings passed as etcd's flags.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberOptions {
    /// `--quota-backend-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub quota_backend_bytes: Option<i64>,
    /// `--auto-compaction-mode`: periodic or revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "auto_compaction_mode_schema")]
    pub auto_compaction_mode: Option<AutoCompactionMode>,
    /// `--auto-compaction-retention`, e.g. `1h` or `1000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compaction_retention: Option<String>,
    /// `--snapshot-count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub snapshot_count: Option<i64>,
    /// `--heartbeat-interval` in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub heartbeat_interval: Option<i64>,
    /// `--election-timeout` in milliseconds (at least 5x the heartbeat, as etcd checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub election_timeout: Option<i64>,
}

/// The optional mode without the `null` schemars adds to an optional
/// enum: Kubernetes 1.20 cannot compare a schema whose enum holds null and
/// refuses the CRD.
fn auto_compaction_mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["periodic", "revision"],
        "nullable": true,
    })
}

fn tls_mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["Disabled", "OperatorManaged", "UserSecrets"],
        "nullable": true,
    })
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoCompactionMode {
    Periodic,
    Revision,
}

/// TLS for client and peer URLs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'UserSecrets' || has(self.secrets)").message("tls.secrets is required when tls.mode is UserSecrets"))]
pub struct TlsSpec {
    /// OperatorManaged (the default: the operator runs a CA and issues
    /// member and client certificates), UserSecrets (the Secrets named in
    /// `secrets`) or Disabled (plain HTTP).
    #[serde(default)]
    pub mode: TlsMode,
    /// Secrets holding `tls.crt`, `tls.key` and `ca.crt` (mode UserSecrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<TlsSecrets>,
    /// Client certificates the operator issues from the cluster's CA (mode
    /// OperatorManaged), each into a Secret of this namespace with
    /// `tls.crt`, `tls.key` and `ca.crt`, for pods that connect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_secrets: Vec<ClientSecret>,
}

/// Quorum-loss recovery: when fewer voters answer than a quorum needs
/// for `quorumLossAfterSeconds`, the status names the answering voter with
/// the highest applied index; recovering restarts it with
/// `--force-new-cluster` and adds the other members back as new learners.
/// Whatever only the lost members held (writes after the survivor's
/// revision) is gone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// `Manual` (the default): report and wait for the annotation
    /// `ferrocd.dev/recover-quorum-from: <survivor pod>`; `Automatic`:
    /// recover without it.
    #[serde(default)]
    pub quorum_loss: QuorumLossMode,
    /// How long the quorum must be lost before recovery is offered.
    #[serde(default = "default_quorum_loss_after")]
    #[schemars(range(min = 10))]
    pub quorum_loss_after_seconds: u32,
}

pub fn default_quorum_loss_after() -> u32 {
    120
}

impl Default for Recovery {
    fn default() -> Recovery {
        Recovery {
            quorum_loss: QuorumLossMode::Manual,
            quorum_loss_after_seconds: default_quorum_loss_after(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum QuorumLossMode {
    #[default]
    Manual,
    Automatic,
}

/// A lost quorum, and the recovery from it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuorumLossStatus {
    /// When the operator first saw fewer voters answer than a quorum
    /// needs (RFC 3339).
    pub since: String,
    /// `Lost` (reported), `Recovering` (the survivor restarts with
    /// `--force-new-cluster`), `Recovered` (it runs as a one-member
    /// cluster; the others are added back as learners).
    pub stage: String,
    /// The pod of the answering voter with the highest applied index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivor_id: Option<String>,
    /// Its raft applied index and store revision: every write up to this
    /// revision survives a recovery from it.
    #[serde(default)]
    pub applied_index: u64,
    #[serde(default)]
    pub revision: i64,
    /// The voters that do not answer: recovery replaces them, and what
    /// only they held is lost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
    /// What recovery would do, or did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The `--force-new-cluster-once` token of this recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the survivor ran as a one-member cluster (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

/// Maintenance the operator carries out on a healthy cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defrag: Option<DefragPolicy>,
    /// On a NOSPACE alarm: compact the history to the current revision,
    /// defragment every member (the leader last), disarm the alarm.
    /// Frees what old revisions held; live data over the quota raises the
    /// alarm again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nospace_remediation: bool,
}

/// When to defragment: on a schedule, when a member's file is mostly free
/// space, or both. One member at a time, the leader last, only while every
/// member is healthy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefragPolicy {
    /// A five-field cron schedule (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Defragment when a member's free space (dbSize - dbSizeInUse) is at
    /// least this percent of its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub fragmented_percent: Option<i64>,
    /// ...and its file at least this many bytes (default 64 MiB: a small
    /// file is not worth the pause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_db_size_bytes: Option<i64>,
}

/// The last defragmentation the operator ran.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefragStatus {
    /// When it started (RFC 3339).
    pub time: String,
    /// Why: `Schedule`, `Fragmentation` or `NoSpace` (alarm remediation).
    pub reason: String,
    /// `Succeeded` or `Failed`.
    pub result: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The members defragmented, in order (the leader last).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// etcd auth on the cluster: the operator makes user `root` (role
/// `root`) with the password from a Secret, turns auth on, and
/// authenticates as root itself. Other users and roles are the user's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Auth on (true) or off again (false).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// A Secret of this namespace holding root's password under
    /// `password`. Default: `<cluster>-root`, generated by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password_secret: Option<String>,
}

fn enabled_by_default() -> bool {
    true
}

/// One client certificate Secret the operator issues and renews.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecret {
    /// The Secret's name.
    pub name: String,
    /// The certificate's common name: the etcd user it authenticates as
    /// when auth is on (default: the Secret's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
}

impl ClientSecret {
    pub fn common_name(&self) -> &str {
        self.common_name.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TlsMode {
    // Not `Off`: YAML 1.1 readers (kubectl, PyYAML) take a bare Off for false.
    Disabled,
    #[default]
    OperatorManaged,
    UserSecrets,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSecrets {
    /// Serving certificate for client URLs (valid for every member's names).
    pub client: String,
    /// Certificate for peer URLs (server and client use).
    pub peer: String,
}

/// On scale-in: keep the removed member's claim, or delete it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PvcRetention {
    #[default]
    Keep,
    Delete,
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pods the StatefulSet runs.
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the member pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Cluster ID in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Name of the leading member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// Scheduled backups: the last run and the last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<ClusterBackupStatus>,
    /// The members' databases against the quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// Leader changes the operator has seen (one per reconcile that found
    /// a leader other than the one the status named).
    #[serde(default)]
    pub leader_changes: i64,
    /// The backup this cluster was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
    /// The TLS mode the members run with: `spec.tls.mode`, or when the
    /// spec names none, the one chosen when the operator first saw the
    /// cluster (OperatorManaged for a new one; what runs for an older one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "tls_mode_schema")]
    pub tls: Option<TlsMode>,
    /// The last defragmentation the operator ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defrag: Option<DefragStatus>,
    /// Whether etcd auth is on, as the operator last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_enabled: Option<bool>,
    /// The last rolling change of the members' template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// A lost quorum and its recovery (the last one, once recovered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_loss: Option<QuorumLossStatus>,
}

/// A rolling change of the members' pod template (image, resources,
/// options), one member at a time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The StatefulSet revision rolled out.
    pub revision: String,
    /// Member pods on that revision.
    pub updated: i32,
    /// Member pods in all.
    pub total: i32,
    /// The member replaced last (waited for until it is healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Every member runs the revision and is healthy.
    #[serde(default)]
    pub done: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Creating,
    Running,
    Scaling,
    /// A rolling change of the members' template is under way.
    Updating,
    Degraded,
    Deleting,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    pub name: String,
    /// Member ID in hex.
    pub id: String,
    #[serde(rename = "peerURL")]
    pub peer_url: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
    #[serde(default)]
    pub learner: bool,
    #[serde(default)]
    pub healthy: bool,
}

/// The largest member database, what of it is in use, the quota, and the
/// fragmentation that a defragmentation would reclaim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// Bytes of the largest member database file.
    pub db_size: i64,
    /// Bytes in use in that file.
    pub db_size_in_use: i64,
    /// `options.quotaBackendBytes`, or etcd's default of 2 GiB.
    pub quota_bytes: i64,
    /// Percent of the quota the largest database takes.
    pub quota_used_percent: i64,
    /// Percent of that file not in use.
    pub fragmented_percent: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Domain to give `etcdctl --discovery-srv` (its `_etcd-client._tcp` records).
    pub discovery_srv: String,
    /// The client Service, `C-client.N.svc:2379`.
    pub client_service: String,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::Value;

    /// Paths of the `enum`s that list `null` (Kubernetes 1.20 refuses
    /// such a CRD with "per-version schemas may not all be set to
    /// identical values").
    fn enums_with_null(v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(values)) = m.get("enum") {
                    if values.contains(&Value::Null) {
                        out.push(path.to_string());
                    }
                }
                for (k, v) in m {
                    enums_with_null(v, &format!("{path}.{k}"), out);
                }
            }
            Value::Array(items) => {
                for v in items {
                    enums_with_null(v, path, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn no_enum_lists_null() {
        for crd in [super::EtcdCluster::crd(), super::EtcdBackup::crd()] {
            let mut found = Vec::new();
            enums_with_null(&serde_json::to_value(&crd).unwrap(), "", &mut found);
            assert!(found.is_empty(), "{found:?}");
        }
    }
}

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
    /// What happens to a removed member's volume on scale-in.
    #[serde(default)]
    pub pvc_retention: PvcRetention,
    /// Scheduled backups, with retention and optional verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSchedule>,
    /// Create the cluster from a backup. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("bootstrap is immutable"))]
    pub bootstrap: Option<Bootstrap>,
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
    /// Disabled, OperatorManaged (the operator runs a CA and issues member
    /// certificates) or UserSecrets (the Secrets named in `secrets`).
    #[serde(default)]
    pub mode: TlsMode,
    /// Secrets holding `tls.crt`, `tls.key` and `ca.crt` (mode UserSecrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<TlsSecrets>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TlsMode {
    // Not `Off`: YAML 1.1 readers (kubectl, PyYAML) take a bare Off for false.
    #[default]
    Disabled,
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
    /// The backup this cluster was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum Phase {
    #[default]
    Pending,
    Creating,
    Running,
    Scaling,
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

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Domain to give `etcdctl --discovery-srv` (its `_etcd-client._tcp` records).
    pub discovery_srv: String,
    /// The client Service, `C-client.N.svc:2379`.
    pub client_service: String,
}

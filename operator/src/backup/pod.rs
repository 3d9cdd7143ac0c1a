//! The pods that run the agent (pure): the save, verify and delete Jobs of
//! an `EtcdBackup`, and the restore init container of a restored cluster's
//! members. Each reaches its destination the same way: S3 keys from the
//! named Secret as environment variables, a CA bundle mounted from a
//! Secret, or the claim mounted at [`VOLUME_DIR`].

use crate::crd::{BackupDestination, EtcdBackup, RestoreStatus};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PersistentVolumeClaimVolumeSource,
    PodSpec, PodTemplateSpec, SecretKeySelector, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Where the claim of a PVC destination is mounted.
pub const VOLUME_DIR: &str = "/backup";
/// Scratch space for a snapshot while it is checked or restored.
pub const SCRATCH: &str = "/scratch";
const S3_CA_DIR: &str = "/etc/ferrocd/s3-ca";
/// Label naming the EtcdBackup a Job works for.
pub const BACKUP_LABEL: &str = "ferrocd.dev/backup";
/// Label naming the cluster a Job backs up (not the members' own label:
/// Job pods are no members to anything selecting those).
pub const BACKUP_OF_LABEL: &str = "ferrocd.dev/backup-of";
/// Seconds a save or verify Job may run before Kubernetes stops it.
const JOB_DEADLINE: i64 = 3600;

/// The key of a backup under its destination:
/// `PREFIX/NAMESPACE/CLUSTER/BACKUP.db`.
pub fn object_key(dest: &BackupDestination, ns: &str, cluster: &str, backup: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let prefix = dest.prefix();
    if !prefix.is_empty() {
        parts.push(prefix);
    }
    parts.extend([ns, cluster]);
    format!("{}/{backup}.db", parts.join("/"))
}

/// `s3://bucket/key` or `pvc://claim/key`.
pub fn location(dest: &BackupDestination, key: &str) -> String {
    match (&dest.s3, &dest.pvc) {
        (Some(s3), _) => format!("s3://{}/{key}", s3.bucket),
        (None, Some(pvc)) => format!("pvc://{}/{key}", pvc.claim_name),
        (None, None) => key.to_string(),
    }
}

/// What a container needs to reach one object of a destination.
#[derive(Default)]
struct Access {
    args: Vec<String>,
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

fn secret_env(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: optional.then_some(true),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn access(dest: &BackupDestination, key: &str) -> Access {
    let mut a = Access::default();
    if let Some(s3) = &dest.s3 {
        a.args.push(format!("--s3-bucket={}", s3.bucket));
        if let Some(e) = &s3.endpoint {
            a.args.push(format!("--s3-endpoint={e}"));
        }
        if let Some(r) = &s3.region {
            a.args.push(format!("--s3-region={r}"));
        }
        if s3.force_path_style {
            a.args.push("--s3-path-style".into());
        }
        if let Some(secret) = &s3.credentials_secret {
            a.env.push(secret_env(
                "AWS_ACCESS_KEY_ID",
                secret,
                "AWS_ACCESS_KEY_ID",
                false,
            ));
            a.env.push(secret_env(
                "AWS_SECRET_ACCESS_KEY",
                secret,
                "AWS_SECRET_ACCESS_KEY",
                false,
            ));
            a.env.push(secret_env(
                "AWS_SESSION_TOKEN",
                secret,
                "AWS_SESSION_TOKEN",
                true,
            ));
        }
        if let Some(ca) = &s3.ca_secret {
            a.args.push(format!("--s3-ca-file={S3_CA_DIR}/ca.crt"));
            a.mount_secret("s3-ca", ca, S3_CA_DIR);
        }
    } else if let Some(pvc) = &dest.pvc {
        a.args.push(format!("--dir={VOLUME_DIR}"));
        a.volumes.push(Volume {
            name: "backup-volume".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc.claim_name.clone(),
                read_only: None,
            }),
            ..Volume::default()
        });
        a.mounts.push(VolumeMount {
            name: "backup-volume".into(),
            mount_path: VOLUME_DIR.into(),
            ..VolumeMount::default()
        });
    }
    a.args.push(format!("--key={key}"));
    a
}

fn scratch(a: &mut Access) {
    a.volumes.push(Volume {
        name: "scratch".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    });
    a.mounts.push(VolumeMount {
        name: "scratch".into(),
        mount_path: SCRATCH.into(),
        ..VolumeMount::default()
    });
    a.args.push(format!("--scratch={SCRATCH}"));
}

/// The agent's container: `ferrocd-operator backup <args>`.
fn agent_container(name: &str, image: &str, command: &[String], a: Access) -> Container {
    let mut args = vec!["backup".to_string()];
    args.extend(command.iter().cloned());
    args.extend(a.args);
    Container {
        name: name.into(),
        image: Some(image.into()),
        command: Some(vec!["ferrocd-operator".into()]),
        args: Some(args),
        env: (!a.env.is_empty()).then_some(a.env),
        volume_mounts: (!a.mounts.is_empty()).then_some(a.mounts),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// A Job name of at most 63 characters: `BACKUP-STEP`, shortened with a
/// hash when the backup's name is long.
pub fn job_name(backup: &str, step: &str) -> String {
    let full = format!("{backup}-{step}");
    if full.len() <= 63 {
        return full;
    }
    let hash: String = Sha256::digest(full.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = 63 - step.len() - 10;
    format!("{}-{hash}-{step}", backup[..keep].trim_end_matches('-'))
}

const CLIENT_TLS_DIR: &str = "/etc/ferrocd/client-tls";
const ROOT_DIR: &str = "/etc/ferrocd/root";

/// What a Job is for.
pub enum JobKind<'a> {
    /// Take the snapshot from these client URLs.
    Save {
        endpoints: &'a [String],
        /// A Secret with `tls.crt`, `tls.key`, `ca.crt` the Job presents
        /// to the members (TLS clusters).
        tls_secret: Option<String>,
        /// The Secret with root's `password` (clusters with spec.auth).
        root_secret: Option<String>,
    },
    /// Restore it and compare with what was recorded.
    Verify {
        sha256: &'a str,
        revision: i64,
        keys: i64,
        hash_kv: i64,
        /// The restored member has the cluster's auth: root's Secret.
        root_secret: Option<String>,
    },
    /// Remove the stored object (deletion policy Delete).
    Delete,
}

impl JobKind<'_> {
    pub fn step(&self) -> &'static str {
        match self {
            JobKind::Save { .. } => "save",
            JobKind::Verify { .. } => "verify",
            JobKind::Delete => "delete",
        }
    }
}

impl Access {
    /// Secret `secret` mounted read-only at `dir` as volume `volume`.
    fn mount_secret(&mut self, volume: &str, secret: &str, dir: &str) {
        self.volumes.push(Volume {
            name: volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        self.mounts.push(VolumeMount {
            name: volume.into(),
            mount_path: dir.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
}

/// The agent authenticates as root with the password in `secret`.
fn as_root(a: &mut Access, command: &mut Vec<String>, secret: &str) {
    command.extend([
        format!("--user={}", crate::etcd_auth::ROOT),
        format!("--password-file={ROOT_DIR}/password"),
    ]);
    a.mount_secret("root", secret, ROOT_DIR);
}

/// A Job running one agent command for backup `b` (owned by it, one pod,
/// no retries: a failed run is reported and the schedule tries again).
pub fn job(b: &EtcdBackup, key: &str, image: &str, kind: JobKind<'_>) -> Job {
    let name = job_name(&b.name_any(), kind.step());
    let mut a = access(&b.spec.destination, key);
    let mut command = vec![kind.step().to_string()];
    match &kind {
        JobKind::Save {
            endpoints,
            tls_secret,
            root_secret,
        } => {
            command.push(format!("--endpoints={}", endpoints.join(",")));
            if let Some(secret) = root_secret {
                as_root(&mut a, &mut command, secret);
            }
            if let Some(secret) = tls_secret {
                command.extend([
                    format!("--cacert={CLIENT_TLS_DIR}/ca.crt"),
                    format!("--cert={CLIENT_TLS_DIR}/tls.crt"),
                    format!("--key-file={CLIENT_TLS_DIR}/tls.key"),
                ]);
                a.mount_secret("client-tls", secret, CLIENT_TLS_DIR);
            }
            scratch(&mut a);
        }
        JobKind::Verify {
            sha256,
            revision,
            keys,
            hash_kv,
            root_secret,
        } => {
            if let Some(secret) = root_secret {
                as_root(&mut a, &mut command, secret);
            }
            command.extend([
                format!("--sha256={sha256}"),
                format!("--revision={revision}"),
                format!("--keys={keys}"),
                format!("--hash-kv={hash_kv}"),
            ]);
            scratch(&mut a);
        }
        JobKind::Delete => {}
    }
    let volumes = std::mem::take(&mut a.volumes);
    let container = agent_container(kind.step(), image, &command, a);
    let labels = BTreeMap::from([
        (
            crate::names::MANAGED_BY_LABEL.to_string(),
            crate::names::MANAGER.to_string(),
        ),
        (BACKUP_OF_LABEL.to_string(), b.spec.cluster_name.clone()),
        (BACKUP_LABEL.to_string(), b.name_any()),
    ]);
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: b.namespace(),
            labels: Some(labels.clone()),
            owner_references: b.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(JOB_DEADLINE),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The member pods' restore step and the volumes it needs besides the
/// data volume (mounted at `data_mount`): restores `DATA/data` from the
/// backup unless the pod has data, joined later, or the cluster formed
/// already (`FERROCD_RESTORE_DONE` from ConfigMap `restore_config`).
pub struct RestoreStep<'a> {
    pub restore: &'a RestoreStatus,
    pub image: &'a str,
    pub data_mount: &'a str,
    pub data_dir: &'a str,
    pub initial_cluster: String,
    pub token: String,
    pub peer_url: String,
    pub bootstrap_members: i32,
    pub restore_config: String,
}

impl RestoreStep<'_> {
    pub fn container(&self) -> (Container, Vec<Volume>) {
        let r = self.restore;
        let mut a = access(&r.destination, &r.key);
        let mut command = vec![
            "restore".to_string(),
            format!("--data-dir={}", self.data_dir),
            "--name=$(POD_NAME)".into(),
            format!("--initial-cluster={}", self.initial_cluster),
            format!("--initial-cluster-token={}", self.token),
            format!("--initial-advertise-peer-urls={}", self.peer_url),
            format!("--bootstrap-members={}", self.bootstrap_members),
        ];
        if let Some(sha) = &r.sha256 {
            command.push(format!("--sha256={sha}"));
        }
        if r.skip_hash_check {
            command.push("--skip-hash-check".into());
        }
        a.env.push(EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        a.env.push(EnvVar {
            name: "FERROCD_RESTORE_DONE".into(),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(k8s_openapi::api::core::v1::ConfigMapKeySelector {
                    name: self.restore_config.clone(),
                    key: "done".into(),
                    optional: Some(true),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        a.mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: self.data_mount.into(),
            ..VolumeMount::default()
        });
        let volumes = std::mem::take(&mut a.volumes);
        (agent_container("restore", self.image, &command, a), volumes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EtcdBackupSpec, PvcDestination, S3Destination};

    fn s3() -> BackupDestination {
        BackupDestination {
            s3: Some(S3Destination {
                bucket: "b".into(),
                prefix: Some("/etcd/".into()),
                endpoint: Some("http://s3:8333".into()),
                force_path_style: true,
                credentials_secret: Some("keys".into()),
                ..S3Destination::default()
            }),
            pvc: None,
        }
    }

    fn backup(dest: BackupDestination) -> EtcdBackup {
        let mut b = EtcdBackup::new(
            "demo-1",
            EtcdBackupSpec {
                cluster_name: "demo".into(),
                destination: dest,
                verify: true,
                deletion_policy: Default::default(),
            },
        );
        b.metadata.namespace = Some("ns".into());
        b.metadata.uid = Some("u1".into());
        b
    }

    #[test]
    fn keys_and_locations_name_namespace_cluster_and_backup() {
        assert_eq!(object_key(&s3(), "ns", "demo", "b1"), "etcd/ns/demo/b1.db");
        let pvc = BackupDestination {
            s3: None,
            pvc: Some(PvcDestination {
                claim_name: "vol".into(),
                prefix: None,
            }),
        };
        assert_eq!(object_key(&pvc, "ns", "demo", "b1"), "ns/demo/b1.db");
        assert_eq!(location(&pvc, "ns/demo/b1.db"), "pvc://vol/ns/demo/b1.db");
        assert_eq!(location(&s3(), "k"), "s3://b/k");
    }

    #[test]
    fn a_save_job_reads_keys_from_the_secret_and_never_retries() {
        let b = backup(s3());
        let endpoints = vec!["http://demo-0.demo.ns.svc.cluster.local:2379".to_string()];
        let j = job(
            &b,
            "etcd/ns/demo/demo-1.db",
            "ferrocd:1",
            JobKind::Save {
                endpoints: &endpoints,
                tls_secret: None,
                root_secret: None,
            },
        );
        assert_eq!(j.metadata.name.as_deref(), Some("demo-1-save"));
        assert_eq!(j.metadata.owner_references.unwrap()[0].kind, "EtcdBackup");
        let spec = j.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        let args = c.args.clone().unwrap();
        for want in [
            "backup",
            "save",
            "--endpoints=http://demo-0.demo.ns.svc.cluster.local:2379",
            "--s3-bucket=b",
            "--s3-endpoint=http://s3:8333",
            "--s3-path-style",
            "--key=etcd/ns/demo/demo-1.db",
            "--scratch=/scratch",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} missing: {args:?}");
        }
        let env = c.env.clone().unwrap();
        let from_secret: Vec<_> = env
            .iter()
            .filter_map(|e| {
                let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
                Some((e.name.as_str(), r.name.as_str(), r.optional))
            })
            .collect();
        assert_eq!(
            from_secret,
            vec![
                ("AWS_ACCESS_KEY_ID", "keys", None),
                ("AWS_SECRET_ACCESS_KEY", "keys", None),
                ("AWS_SESSION_TOKEN", "keys", Some(true)),
            ]
        );
    }

    #[test]
    fn on_a_cluster_with_auth_save_and_verify_authenticate_as_root() {
        let b = backup(s3());
        let endpoints = vec!["https://demo-0.demo.ns.svc.cluster.local:2379".to_string()];
        let kinds = [
            JobKind::Save {
                endpoints: &endpoints,
                tls_secret: Some("demo-tls".into()),
                root_secret: Some("demo-root".into()),
            },
            JobKind::Verify {
                sha256: "ab",
                revision: 5,
                keys: 3,
                hash_kv: 7,
                root_secret: Some("demo-root".into()),
            },
        ];
        for kind in kinds {
            let pod = job(&b, "k", "ferrocd:1", kind)
                .spec
                .unwrap()
                .template
                .spec
                .unwrap();
            let args = pod.containers[0].args.clone().unwrap();
            for want in ["--user=root", "--password-file=/etc/ferrocd/root/password"] {
                assert!(args.iter().any(|a| a == want), "{want} missing: {args:?}");
            }
            let secrets: Vec<_> = pod
                .volumes
                .unwrap()
                .iter()
                .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
                .collect();
            assert!(secrets.contains(&"demo-root".to_string()), "{secrets:?}");
        }
    }

    #[test]
    fn long_names_are_shortened_to_63_characters_and_stay_distinct() {
        let long = "a".repeat(70);
        let a = job_name(&long, "verify");
        let b = job_name(&format!("{}b", "a".repeat(69)), "verify");
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.ends_with("-verify"));
    }
}

//! What a backup Job or restore init container reports back, as JSON in
//! its termination message: the facts about the snapshot it stored, a
//! verification's outcome, a restore, or why it failed. The operator
//! copies them into the `EtcdBackup` and `EtcdCluster` statuses.

use serde::{Deserialize, Serialize};

/// One command's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Report {
    Taken(Taken),
    Verified(Verified),
    Restored(Restored),
    /// The location of an object removed (or already gone).
    Deleted(String),
    Failed(Failed),
}

/// A stored snapshot.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    /// `s3://bucket/key` or the file's path in the volume.
    pub location: String,
    /// SHA-256 (hex) of the stored object, as etcdctl would have saved it.
    pub sha256: String,
    pub size: u64,
    /// The snapshot's revision.
    pub revision: i64,
    /// Keys live at that revision.
    pub keys: i64,
    /// The source member's HashKV at that revision.
    #[serde(rename = "hashKV")]
    pub hash_kv: u32,
    /// The source member's compact revision then.
    pub compact_revision: i64,
    /// ID (hex) of the member the snapshot came from.
    pub member: String,
    /// That member was the leader (no healthy follower answered).
    pub from_leader: bool,
    /// Cluster ID (hex).
    pub cluster_id: String,
}

/// A verification: the snapshot restored into a one-member cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    pub verified: bool,
    /// What matched, or the first thing that did not.
    pub message: String,
}

/// A member's data dir restored (or left alone, and why).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// The snapshot's revision, when it was restored.
    pub revision: Option<i64>,
    pub message: String,
}

/// Why a command failed: a reason for metrics and conditions, one line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    pub reason: String,
    pub message: String,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a termination message; `None` for anything else (a log tail).
    pub fn parse(message: &str) -> Option<Report> {
        serde_json::from_str(message.trim()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_a_log_tail_is_none() {
        let r = Report::Failed(Failed {
            reason: "ObjectStore".into(),
            message: "s3://b/k: connection refused".into(),
        });
        let text = r.to_json();
        assert!(
            text.starts_with("{\"failed\":{\"reason\":\"ObjectStore\""),
            "{text}"
        );
        assert_eq!(Report::parse(&format!("{text}\n")), Some(r));
        assert_eq!(Report::parse("Error: something\nat line 3"), None);
    }
}

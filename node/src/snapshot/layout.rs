//! etcd 3.5's backend layout, as its snapshots hold it: bucket names, how a
//! revision becomes a `key` bucket key, the `meta` keys and the member
//! records' JSON.

use serde::{Deserialize, Serialize};

pub const KEY: &[u8] = b"key";
pub const META: &[u8] = b"meta";
pub const LEASE: &[u8] = b"lease";
pub const ALARM: &[u8] = b"alarm";
pub const CLUSTER: &[u8] = b"cluster";
pub const MEMBERS: &[u8] = b"members";
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const AUTH: &[u8] = b"auth";
pub const AUTH_USERS: &[u8] = b"authUsers";
pub const AUTH_ROLES: &[u8] = b"authRoles";

pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const META_TERM: &[u8] = b"term";
pub const META_CONF_STATE: &[u8] = b"confState";
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
pub const META_FINISHED_COMPACT: &[u8] = b"finishedCompactRev";

pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
pub const AUTH_ENABLED: &[u8] = b"authEnabled";
pub const AUTH_REVISION: &[u8] = b"authRevision";

/// `members_removed` values.
pub const REMOVED: &[u8] = b"removed";

/// A revision key: 8 bytes main, `_`, 8 bytes sub (big-endian), and a
/// trailing `t` on a tombstone.
pub const REV_KEY_LEN: usize = 17;
const TOMBSTONE_MARK: u8 = b't';

pub fn rev_key(main: u64, sub: u64, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(REV_KEY_LEN + 1);
    k.extend_from_slice(&main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        k.push(TOMBSTONE_MARK);
    }
    k
}

/// (main, sub, tombstone) of a revision key, or `None` if it is not one.
pub fn parse_rev_key(k: &[u8]) -> Option<(u64, u64, bool)> {
    let tombstone = match k.len() {
        REV_KEY_LEN => false,
        n if n == REV_KEY_LEN + 1 && k[REV_KEY_LEN] == TOMBSTONE_MARK => true,
        _ => return None,
    };
    if k[8] != b'_' {
        return None;
    }
    let main = u64::from_be_bytes(k[..8].try_into().ok()?);
    let sub = u64::from_be_bytes(k[9..17].try_into().ok()?);
    Some((main, sub, tombstone))
}

/// An 8-byte big-endian counter (`consistent_index`, `term`, a lease ID,
/// `authRevision`).
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// A member as etcd 3.5 stores it in `members` (its `membership.Member`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default, skip_serializing_if = "is_false")]
    pub is_learner: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A `members` key: the ID in lower-case hex, as etcd's `types.ID` prints it.
pub fn member_key(id: u64) -> Vec<u8> {
    format!("{id:x}").into_bytes()
}

/// raft's configuration as etcd keeps it in `meta` (raftpb.ConfState's JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfState {
    #[serde(default)]
    pub voters: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learners: Vec<u64>,
    #[serde(default)]
    pub auto_leave: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys_round_trip_and_sort_by_revision() {
        let a = rev_key(2, 0, false);
        let b = rev_key(2, 1, true);
        let c = rev_key(256, 0, false);
        assert_eq!(a.len(), REV_KEY_LEN);
        assert!(a < b && b < c);
        assert_eq!(parse_rev_key(&b), Some((2, 1, true)));
        assert_eq!(parse_rev_key(&c), Some((256, 0, false)));
        assert_eq!(parse_rev_key(b"consistent_index"), None);
        let mut bad = a.clone();
        bad[8] = b'x';
        assert_eq!(parse_rev_key(&bad), None);
    }

    #[test]
    fn members_are_written_as_etcd_writes_them() {
        let m = Member {
            id: 0x8e9e05c52164694d,
            peer_urls: vec!["http://localhost:2380".into()],
            is_learner: false,
            name: "default".into(),
            client_urls: vec!["http://localhost:2379".into()],
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}"#
        );
        assert_eq!(member_key(m.id), b"8e9e05c52164694d");
    }
}

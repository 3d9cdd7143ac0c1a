//! Writing a member's state as an etcd 3.5 backend file (the body of a
//! Maintenance.Snapshot stream), from one consistent read view: writers go
//! on while it is written.

use super::layout::{self, ConfState, Member};
use super::SnapshotError;
use crate::apply::AUTH_STATE_KEY;
use crate::mvcc::ReadView;
use ferrocd_bolt::Writer;
use ferrocd_proto::authpb::User;
use ferrocd_proto::etcdserverpb::AlarmMember;
use ferrocd_proto::ferrocdpb::AuthRecord;
use ferrocd_proto::mvccpb::KeyValue;
use prost::Message;
use std::collections::BTreeMap;
use std::path::Path;

/// What the view does not hold: the cluster as this member sees it.
pub struct ClusterInfo {
    pub members: Vec<Member>,
    /// The raft term (etcd's `meta/term`).
    pub term: u64,
}

/// Writes `view` to a new file at `path` (not synced); returns the
/// database size.
pub fn write_db(view: &ReadView, cluster: &ClusterInfo, path: &Path) -> Result<u64, SnapshotError> {
    let mut w = Writer::create(path)?;
    key_bucket(view, &mut w)?;
    meta_bucket(view, cluster, &mut w)?;
    lease_bucket(view, &mut w)?;
    alarm_bucket(view, &mut w)?;
    auth_buckets(view, &mut w)?;
    put_all(
        &mut w,
        layout::CLUSTER,
        [(
            layout::CLUSTER_VERSION.to_vec(),
            crate::ETCD_CLUSTER_VERSION.as_bytes().to_vec(),
        )],
    )?;
    // In key order: hex IDs of different lengths do not sort as numbers.
    let members: BTreeMap<Vec<u8>, Vec<u8>> = cluster
        .members
        .iter()
        .map(|m| {
            // Serializing plain strings and numbers cannot fail.
            let json = serde_json::to_vec(m).unwrap_or_default();
            (layout::member_key(m.id), json)
        })
        .collect();
    put_all(&mut w, layout::MEMBERS, members)?;
    put_all(&mut w, layout::MEMBERS_REMOVED, [])?;
    // Not synced: the file is scratch, streamed and removed (an fsync of
    // 1 GiB cost a fifth of the snapshot's time).
    let (_file, size) = w.finish()?;
    Ok(size)
}

fn key_bucket(view: &ReadView, w: &mut Writer) -> Result<(), SnapshotError> {
    let mut b = w.bucket(layout::KEY)?;
    view.for_each_event(|(main, sub), rec| {
        let kv = if rec.tombstone {
            // etcd's tombstone holds the key only; its revision is in the key.
            KeyValue {
                key: rec.kv.key,
                ..Default::default()
            }
        } else {
            rec.kv
        };
        b.put(
            &layout::rev_key(main, sub, rec.tombstone),
            &kv.encode_to_vec(),
        )
        .map_err(SnapshotError::from)
    })?;
    b.finish()?;
    Ok(())
}

fn meta_bucket(
    view: &ReadView,
    cluster: &ClusterInfo,
    w: &mut Writer,
) -> Result<(), SnapshotError> {
    let mut meta: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    meta.insert(
        layout::META_CONSISTENT_INDEX.to_vec(),
        view.applied_index.to_be_bytes().to_vec(),
    );
    meta.insert(
        layout::META_TERM.to_vec(),
        cluster.term.to_be_bytes().to_vec(),
    );
    let conf = ConfState {
        voters: voters(&cluster.members, false),
        learners: voters(&cluster.members, true),
        auto_leave: false,
    };
    meta.insert(
        layout::META_CONF_STATE.to_vec(),
        serde_json::to_vec(&conf).unwrap_or_default(),
    );
    if view.compact_rev > 0 {
        let rev = layout::rev_key(view.compact_rev as u64, 0, false);
        meta.insert(layout::META_SCHEDULED_COMPACT.to_vec(), rev.clone());
        meta.insert(layout::META_FINISHED_COMPACT.to_vec(), rev);
    }
    put_all(w, layout::META, meta)
}

fn voters(members: &[Member], learners: bool) -> Vec<u64> {
    let mut ids: Vec<u64> = members
        .iter()
        .filter(|m| m.is_learner == learners)
        .map(|m| m.id)
        .collect();
    ids.sort_unstable();
    ids
}

fn lease_bucket(view: &ReadView, w: &mut Writer) -> Result<(), SnapshotError> {
    // ferrocd's lease record has leasepb.Lease's fields and numbers: the
    // bytes are etcd's. Keys sort as etcd's do: the ID's bits, big-endian.
    let leases: BTreeMap<Vec<u8>, Vec<u8>> = view
        .leases()?
        .into_iter()
        .map(|(id, rec)| (id.to_be_bytes().to_vec(), rec))
        .collect();
    put_all(w, layout::LEASE, leases)
}

fn alarm_bucket(view: &ReadView, w: &mut Writer) -> Result<(), SnapshotError> {
    let alarms: BTreeMap<Vec<u8>, Vec<u8>> = view
        .alarms()?
        .into_iter()
        .map(|(member_id, alarm)| (AlarmMember { member_id, alarm }.encode_to_vec(), Vec::new()))
        .collect();
    put_all(w, layout::ALARM, alarms)
}

fn auth_buckets(view: &ReadView, w: &mut Writer) -> Result<(), SnapshotError> {
    let record = match view.state(AUTH_STATE_KEY)? {
        Some(b) => AuthRecord::decode(b.as_slice())
            .map_err(|e| SnapshotError::Refused(format!("auth record unreadable: {e}")))?,
        // A store that never changed auth: etcd's new auth store.
        None => AuthRecord {
            revision: 1,
            ..Default::default()
        },
    };
    put_all(
        w,
        layout::AUTH,
        [
            (
                layout::AUTH_ENABLED.to_vec(),
                vec![u8::from(record.enabled)],
            ),
            (
                layout::AUTH_REVISION.to_vec(),
                record.revision.to_be_bytes().to_vec(),
            ),
        ],
    )?;
    let users: BTreeMap<Vec<u8>, Vec<u8>> = record
        .users
        .iter()
        .map(|u: &User| (u.name.clone(), u.encode_to_vec()))
        .collect();
    put_all(w, layout::AUTH_USERS, users)?;
    let roles: BTreeMap<Vec<u8>, Vec<u8>> = record
        .roles
        .iter()
        .map(|r| (r.name.clone(), r.encode_to_vec()))
        .collect();
    put_all(w, layout::AUTH_ROLES, roles)
}

/// A bucket from pairs already in key order.
fn put_all(
    w: &mut Writer,
    bucket: &[u8],
    pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<(), SnapshotError> {
    let mut b = w.bucket(bucket)?;
    for (k, v) in pairs {
        b.put(&k, &v)?;
    }
    b.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Store;

    #[test]
    fn members_are_written_in_key_order_whatever_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let member = |id| Member {
            id,
            peer_urls: vec![format!("http://m{id}:2380")],
            is_learner: false,
            name: String::new(),
            client_urls: Vec::new(),
        };
        // Numeric order 0xfff < 0x1000..., key order "1000..." < "fff".
        let cluster = ClusterInfo {
            members: vec![member(0xfff), member(0x1000_0000_0000_0000), member(0x2)],
            term: 3,
        };
        let path = dir.path().join("snap.db");
        write_db(&store.read().unwrap(), &cluster, &path).unwrap();
        let db = ferrocd_bolt::Reader::open(&path).unwrap();
        db.check().unwrap();
        let mut keys = Vec::new();
        db.for_each::<ferrocd_bolt::Error>(layout::MEMBERS, |k, _| {
            keys.push(String::from_utf8_lossy(k).into_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(keys, ["1000000000000000", "2", "fff"]);
    }
}

//! Reading an etcd backend file (a snapshot from etcd 3.4, 3.5, 3.6 or
//! ferrocd) into a ferrocd store. Every record is decoded before it is
//! written: a file that is not what it claims to be is refused.

use super::layout;
use super::SnapshotError;
use crate::apply::AUTH_STATE_KEY;
use crate::mvcc::WriteTables;
use ferrocd_bolt::Reader;
use ferrocd_proto::authpb::{Role, User};
use ferrocd_proto::etcdserverpb::AlarmMember;
use ferrocd_proto::ferrocdpb::{AuthRecord, LeaseRecord};
use ferrocd_proto::mvccpb::KeyValue;
use prost::Message;

/// What a snapshot held, as the store reads it after the import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// The revision the restored store is at.
    pub rev: i64,
    /// The compacted revision (-1: never compacted).
    pub compact_rev: i64,
    /// Versions in the `key` bucket.
    pub versions: u64,
}

fn bad(bucket: &[u8], what: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Refused(format!(
        "snapshot bucket {:?}: {what}",
        String::from_utf8_lossy(bucket)
    ))
}

/// Copies every bucket ferrocd knows into `t`. `rev` and `compact_rev` are
/// not yet written: the caller may bump them first.
pub fn import(db: &Reader, t: &mut WriteTables<'_>) -> Result<Imported, SnapshotError> {
    for bucket in [layout::KEY, layout::META] {
        if !db.has_bucket(bucket)? {
            return Err(SnapshotError::Refused(format!(
                "not an etcd snapshot: it has no {:?} bucket",
                String::from_utf8_lossy(bucket)
            )));
        }
    }
    let mut last_main = 0u64;
    let mut versions = 0u64;
    db.for_each(layout::KEY, |k, v| {
        let (main, sub, tombstone) =
            layout::parse_rev_key(k).ok_or_else(|| bad(layout::KEY, "a key is not a revision"))?;
        let mut kv = KeyValue::decode(v).map_err(|e| bad(layout::KEY, e))?;
        if tombstone {
            // ferrocd's tombstones carry their revision (watch events show it).
            kv.mod_revision = main as i64;
        }
        t.load_event((main, sub), tombstone, &kv)?;
        last_main = main;
        versions += 1;
        Ok::<_, SnapshotError>(())
    })?;
    let mut compact_rev = -1i64;
    db.for_each(layout::META, |k, v| {
        if k == layout::META_SCHEDULED_COMPACT || k == layout::META_FINISHED_COMPACT {
            let (main, _, _) = layout::parse_rev_key(v)
                .ok_or_else(|| bad(layout::META, "a compaction revision is malformed"))?;
            // An interrupted compaction (scheduled > finished) is finished
            // here, as etcd finishes it when it starts.
            compact_rev = compact_rev.max(main as i64);
        }
        Ok::<_, SnapshotError>(())
    })?;
    if db.has_bucket(layout::LEASE)? {
        db.for_each(layout::LEASE, |_, v| {
            let lease = LeaseRecord::decode(v).map_err(|e| bad(layout::LEASE, e))?;
            t.put_lease(lease.id, &lease.encode_to_vec())?;
            Ok::<_, SnapshotError>(())
        })?;
    }
    if db.has_bucket(layout::ALARM)? {
        db.for_each(layout::ALARM, |k, _| {
            let a = AlarmMember::decode(k).map_err(|e| bad(layout::ALARM, e))?;
            t.raise_alarm(a.member_id, a.alarm)?;
            Ok::<_, SnapshotError>(())
        })?;
    }
    import_auth(db, t)?;
    Ok(Imported {
        rev: (last_main as i64).max(compact_rev).max(1),
        compact_rev,
        versions,
    })
}

fn import_auth(db: &Reader, t: &mut WriteTables<'_>) -> Result<(), SnapshotError> {
    let mut record = AuthRecord {
        revision: 1,
        ..Default::default()
    };
    if db.has_bucket(layout::AUTH)? {
        db.for_each(layout::AUTH, |k, v| {
            if k == layout::AUTH_ENABLED {
                record.enabled = v == [1];
            } else if k == layout::AUTH_REVISION {
                record.revision = layout::parse_u64(v)
                    .ok_or_else(|| bad(layout::AUTH, "authRevision is not 8 bytes"))?;
            }
            Ok::<_, SnapshotError>(())
        })?;
    }
    if db.has_bucket(layout::AUTH_USERS)? {
        db.for_each(layout::AUTH_USERS, |_, v| {
            record
                .users
                .push(User::decode(v).map_err(|e| bad(layout::AUTH_USERS, e))?);
            Ok::<_, SnapshotError>(())
        })?;
    }
    if db.has_bucket(layout::AUTH_ROLES)? {
        db.for_each(layout::AUTH_ROLES, |_, v| {
            record
                .roles
                .push(Role::decode(v).map_err(|e| bad(layout::AUTH_ROLES, e))?);
            Ok::<_, SnapshotError>(())
        })?;
    }
    t.set_state(AUTH_STATE_KEY, &record.encode_to_vec())?;
    Ok(())
}

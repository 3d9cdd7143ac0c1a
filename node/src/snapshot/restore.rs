//! `ferrocd snapshot restore`: a snapshot file becomes the data dir of one
//! member of a new cluster, as `etcdutl snapshot restore` makes etcd's. The
//! data dir is assembled beside its final place and renamed into it only
//! when complete: a refused or failed restore leaves nothing behind.

use super::import::{import, Imported};
use super::{seal, SnapshotError};
use crate::config::snapshot::RestoreConfig;
use crate::mvcc::store::{
    META_APPLIED_INDEX, META_CLUSTER_ID, META_COMPACT_REV, META_MEMBER_ID, META_REV,
};
use crate::mvcc::{MvccError, Store};
use crate::raft::{fresh_records, LogId, MemberInfo};
use ferrocd_bolt::Reader;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The log position a restored state starts at: as etcdutl's, a first term
/// whose entries (the initial membership) are all applied.
const RESTORED_TERM: u64 = 1;
const RESTORED_INDEX: u64 = 1;

/// What a restore produced.
#[derive(Debug, Clone)]
pub struct Restored {
    pub data_dir: PathBuf,
    pub member_id: u64,
    pub cluster_id: u64,
    pub imported: Imported,
}

pub fn restore(cfg: &RestoreConfig) -> Result<Restored, SnapshotError> {
    let members = initial_members(cfg)?;
    let own = crate::ids::member_id(&cfg.peer_urls, &cfg.initial_cluster_token, None);
    let ids: Vec<u64> = members.keys().copied().collect();
    let cluster_id = crate::ids::cluster_id(&ids);
    if !dir_is_empty(&cfg.data_dir) {
        return Err(SnapshotError::Refused(format!(
            "data-dir {:?} not empty or could not be read",
            cfg.data_dir.display().to_string()
        )));
    }
    seal::verify(&cfg.file, cfg.skip_hash_check)?;
    let db = Reader::open(&cfg.file).map_err(|e| refused(&cfg.file, e))?;
    if let Err(e) = db.check() {
        return Err(SnapshotError::Refused(format!(
            "snapshot file integrity check failed. {e}"
        )));
    }
    let staging = Staging::new(&cfg.data_dir)?;
    let store = Store::open(&staging.path)?;
    let mut failure = None;
    let imported = store.write(|t| {
        let mut got = match import(&db, t) {
            Ok(got) => got,
            Err(e) => {
                failure = Some(e);
                return Err(MvccError::Storage("import failed".into()));
            }
        };
        if cfg.bump_revision > 0 {
            got.rev += cfg.bump_revision as i64;
        }
        if cfg.mark_compacted {
            got.compact_rev = got.rev;
        }
        if got.compact_rev > 0 {
            crate::mvcc::write::compact(t, got.compact_rev)?;
            t.set_meta(META_COMPACT_REV, got.compact_rev as u64)?;
        }
        t.set_meta(META_REV, got.rev as u64)?;
        t.set_meta(META_APPLIED_INDEX, RESTORED_INDEX)?;
        t.set_meta(META_MEMBER_ID, own)?;
        t.set_meta(META_CLUSTER_ID, cluster_id)?;
        // The same log ID on every member (a leader ID names a member:
        // the first, as etcdutl's hard state votes for it).
        let applied = LogId::new(
            openraft::CommittedLeaderId::new(RESTORED_TERM, ids[0]),
            RESTORED_INDEX,
        );
        let records = fresh_records(applied, members.clone())
            .map_err(|e| MvccError::Storage(e.to_string()))?;
        for (key, value) in &records {
            t.set_state(key, value)?;
        }
        Ok(got)
    });
    let imported = match (imported, failure) {
        (_, Some(e)) => return Err(e),
        (r, None) => r?,
    };
    drop(store);
    let data_dir = staging.finish()?;
    Ok(Restored {
        data_dir,
        member_id: own,
        cluster_id,
        imported,
    })
}

fn refused(file: &Path, e: ferrocd_bolt::Error) -> SnapshotError {
    SnapshotError::Refused(format!("{}: {e}", file.display()))
}

/// The new cluster's members from `--initial-cluster`, after etcd's
/// bootstrap checks on this member's name and URLs.
fn initial_members(cfg: &RestoreConfig) -> Result<BTreeMap<u64, MemberInfo>, SnapshotError> {
    let Some((_, own_urls)) = cfg.initial_cluster.iter().find(|(n, _)| *n == cfg.name) else {
        return Err(SnapshotError::Refused(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        )));
    };
    let (mut want, mut have) = (own_urls.clone(), cfg.peer_urls.clone());
    want.sort();
    have.sort();
    if want != have {
        return Err(SnapshotError::Refused(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            cfg.name,
            own_urls.join(","),
            cfg.peer_urls.join(",")
        )));
    }
    let mut members = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (name, urls) in &cfg.initial_cluster {
        for u in urls {
            if !seen.insert(u.as_str()) {
                return Err(SnapshotError::Refused(format!(
                    "--initial-cluster has duplicate url {u}"
                )));
            }
        }
        let id = crate::ids::member_id(urls, &cfg.initial_cluster_token, None);
        members.insert(
            id,
            MemberInfo {
                name: name.clone(),
                peer_urls: urls.clone(),
                client_urls: Vec::new(),
            },
        );
    }
    Ok(members)
}

fn dir_is_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// A data dir being assembled next to where it goes; removed unless
/// [`Staging::finish`] moved it into place.
struct Staging {
    path: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Staging {
    fn new(target: &Path) -> Result<Staging, SnapshotError> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| SnapshotError::io(&parent, e))?;
        let path = parent.join(format!(".{name}.restoring-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| SnapshotError::io(&path, e))?;
        }
        Ok(Staging {
            path,
            target: target.to_path_buf(),
            done: false,
        })
    }

    fn finish(mut self) -> Result<PathBuf, SnapshotError> {
        if self.target.exists() {
            // Checked empty before: only an empty directory goes.
            std::fs::remove_dir(&self.target).map_err(|e| SnapshotError::io(&self.target, e))?;
        }
        std::fs::rename(&self.path, &self.target)
            .map_err(|e| SnapshotError::io(&self.target, e))?;
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The rename is durable once the parent directory is.
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| SnapshotError::io(parent, e))?;
        }
        self.done = true;
        Ok(self.target.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

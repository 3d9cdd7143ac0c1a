//! Leases: which exist, their TTLs, the keys attached to them, and when they
//! expire. Grants and revocations change this table only through the log
//! (`apply`); expiry deadlines and keep-alives live in memory on the member
//! that runs expiry, as in etcd (a restart or new leader refreshes them).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// etcd's largest TTL (seconds).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

#[derive(Debug)]
struct Lease {
    ttl: i64,
    expiry: Instant,
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    fn new(ttl: i64) -> Lease {
        Lease {
            ttl,
            expiry: Instant::now() + Duration::from_secs(ttl as u64),
            keys: BTreeSet::new(),
        }
    }
}

/// What TimeToLive reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub granted_ttl: i64,
    /// Whole seconds left (truncated, as etcd does).
    pub remaining_ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

/// The in-memory lease table; see the module doc.
#[derive(Debug)]
pub struct Lessor {
    min_ttl: i64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    leases: HashMap<i64, Lease>,
    /// Leases whose revocation was proposed and not yet applied.
    revoking: HashSet<i64>,
}

impl Lessor {
    /// `min_ttl` is etcd's minimum lease TTL (seconds), derived from the
    /// election timeout; shorter grants are raised to it.
    pub fn new(min_ttl: i64) -> Lessor {
        Lessor {
            min_ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Restarts every lease's deadline from now (a new leader's view).
    pub fn refresh_all(&self) {
        let now = Instant::now();
        for l in self.inner().leases.values_mut() {
            l.expiry = now + Duration::from_secs(l.ttl as u64);
        }
    }

    /// Forgets every lease (before the table is rebuilt from a snapshot).
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.leases.clear();
        inner.revoking.clear();
    }

    /// The TTL a grant of `ttl` ends up with.
    pub fn effective_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    pub fn exists(&self, id: i64) -> bool {
        self.inner().leases.contains_key(&id)
    }

    /// Adds a lease whose deadline starts now.
    pub fn grant(&self, id: i64, ttl: i64) {
        self.inner().leases.insert(id, Lease::new(ttl));
    }

    /// Removes a lease; returns its keys (sorted) if it existed.
    pub fn revoke(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        let mut inner = self.inner();
        inner.revoking.remove(&id);
        inner
            .leases
            .remove(&id)
            .map(|l| l.keys.into_iter().collect())
    }

    /// The keys attached to a lease (sorted); empty if it does not exist.
    pub fn keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.inner()
            .leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn attach(&self, id: i64, key: &[u8]) {
        if let Some(l) = self.inner().leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    pub fn detach(&self, id: i64, key: &[u8]) {
        if let Some(l) = self.inner().leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }

    /// Restarts the lease's deadline; returns its TTL, or None if it does not exist.
    pub fn keep_alive(&self, id: i64) -> Option<i64> {
        let mut inner = self.inner();
        if inner.revoking.contains(&id) {
            return None;
        }
        let l = inner.leases.get_mut(&id)?;
        l.expiry = Instant::now() + Duration::from_secs(l.ttl as u64);
        Some(l.ttl)
    }

    pub fn time_to_live(&self, id: i64) -> Option<LeaseInfo> {
        let inner = self.inner();
        let l = inner.leases.get(&id)?;
        let left = l.expiry.saturating_duration_since(Instant::now());
        Some(LeaseInfo {
            granted_ttl: l.ttl,
            remaining_ttl: left.as_secs() as i64,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Every lease ID, ascending.
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.inner().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Leases past their deadline that are not already being revoked; marks
    /// them as being revoked.
    pub fn take_expired(&self, now: Instant) -> Vec<i64> {
        let mut inner = self.inner();
        let mut out: Vec<i64> = inner
            .leases
            .iter()
            .filter(|(_, l)| l.expiry <= now)
            .map(|(id, _)| *id)
            .filter(|id| !inner.revoking.contains(id))
            .collect();
        out.sort_unstable();
        inner.revoking.extend(out.iter().copied());
        out
    }

    /// A proposed revocation failed; expiry may try again.
    pub fn revoke_failed(&self, id: i64) {
        self.inner().revoking.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_attach_revoke() {
        let l = Lessor::new(2);
        assert_eq!(l.effective_ttl(1), 2);
        l.grant(7, 10);
        l.attach(7, b"b");
        l.attach(7, b"a");
        l.attach(8, b"ignored");
        assert_eq!(
            l.time_to_live(7).unwrap().keys,
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        l.detach(7, b"b");
        assert_eq!(l.revoke(7), Some(vec![b"a".to_vec()]));
        assert_eq!(l.revoke(7), None);
        assert_eq!(l.keep_alive(7), None);
    }

    #[test]
    fn expiry_is_reported_once() {
        let l = Lessor::new(1);
        l.grant(1, 1);
        l.grant(2, 100);
        let later = Instant::now() + Duration::from_secs(2);
        assert_eq!(l.take_expired(later), vec![1]);
        assert!(l.take_expired(later).is_empty());
        assert_eq!(
            l.keep_alive(1),
            None,
            "a lease being revoked is not kept alive"
        );
        l.revoke_failed(1);
        assert_eq!(l.take_expired(later), vec![1]);
    }
}

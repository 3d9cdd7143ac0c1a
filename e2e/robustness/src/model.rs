//! etcd's key-value store as a sequential model: the state one member
//! would have after applying requests in some order, and what it would
//! answer. A request with an unknown outcome leaves a set of states (it
//! happened or it did not), as etcd's robustness tests model it.

use crate::history::{Kv, Request, Response};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub rev: i64,
    pub kvs: BTreeMap<String, Kv>,
    /// Lease ID -> keys attached to it.
    pub leases: BTreeMap<i64, BTreeSet<String>>,
}

impl State {
    /// A new cluster: revision 1, nothing stored.
    pub fn initial() -> State {
        State {
            rev: 1,
            kvs: BTreeMap::new(),
            leases: BTreeMap::new(),
        }
    }

    fn mod_rev(&self, key: &str) -> i64 {
        self.kvs.get(key).map(|kv| kv.mod_rev).unwrap_or(0)
    }

    fn detach(&mut self, key: &str) {
        if let Some(old) = self.kvs.get(key).map(|kv| kv.lease) {
            if let Some(keys) = self.leases.get_mut(&old) {
                keys.remove(key);
            }
        }
    }

    /// Writes `key` at a new revision (the caller bumps `rev` first).
    fn put_at_rev(&mut self, key: &str, value: &str, lease: i64) {
        self.detach(key);
        let (create_rev, version) = match self.kvs.get(key) {
            Some(kv) => (kv.create_rev, kv.version + 1),
            None => (self.rev, 1),
        };
        self.kvs.insert(
            key.to_string(),
            Kv {
                key: key.to_string(),
                value: value.to_string(),
                create_rev,
                mod_rev: self.rev,
                version,
                lease,
            },
        );
        if lease != 0 {
            self.leases
                .entry(lease)
                .or_default()
                .insert(key.to_string());
        }
    }

    fn delete_at_rev(&mut self, key: &str) {
        self.detach(key);
        self.kvs.remove(key);
    }

    /// The keys a List answers with, its count and whether more follow.
    pub fn list(&self, prefix: &str, from: &str, limit: i64) -> (Vec<Kv>, i64, bool) {
        let in_range = self
            .kvs
            .range(range_start(prefix, from).to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone());
        page(in_range.collect(), limit)
    }
}

/// Where a List of `prefix` continuing at `from` starts.
pub fn range_start<'a>(prefix: &'a str, from: &'a str) -> &'a str {
    if from.is_empty() {
        prefix
    } else {
        from
    }
}

/// A List's answer from the keys in its range: at most `limit` of them
/// (0: all), the count of all, whether more follow.
pub fn page(in_range: Vec<Kv>, limit: i64) -> (Vec<Kv>, i64, bool) {
    let count = in_range.len() as i64;
    let more = limit > 0 && count > limit;
    let take = if limit > 0 {
        limit as usize
    } else {
        in_range.len()
    };
    (in_range.into_iter().take(take).collect(), count, more)
}

/// Applies `request` to `state`: the next state and etcd's answer.
/// `None` for a request the model does not order (reads at a past
/// revision, serializable reads): the checkers verify those otherwise.
pub fn apply(state: &State, request: &Request) -> Option<(State, Response)> {
    let mut s = state.clone();
    let response = match request {
        Request::Get { key } => Response::Get {
            rev: s.rev,
            kv: s.kvs.get(key).cloned(),
        },
        Request::StaleGet { .. } => return None,
        Request::List {
            prefix,
            from,
            limit,
            revision,
        } => {
            if *revision != 0 {
                return None;
            }
            let (kvs, count, more) = s.list(prefix, from, *limit);
            Response::List {
                rev: s.rev,
                kvs,
                count,
                more,
            }
        }
        Request::Put { key, value, lease } => {
            if *lease != 0 && !s.leases.contains_key(lease) {
                return Some((s, Response::LeaseNotFound));
            }
            s.rev += 1;
            s.put_at_rev(key, value, *lease);
            Response::Put { rev: s.rev }
        }
        Request::Delete { key } => {
            let deleted = s.kvs.contains_key(key);
            if deleted {
                s.rev += 1;
                s.delete_at_rev(key);
            }
            Response::Delete {
                rev: s.rev,
                deleted: deleted as i64,
            }
        }
        Request::PutIfModRev {
            key,
            expected,
            value,
        } => {
            let succeeded = s.mod_rev(key) == *expected;
            if succeeded {
                s.rev += 1;
                s.put_at_rev(key, value, 0);
            }
            Response::Txn {
                rev: s.rev,
                succeeded,
            }
        }
        Request::DeleteIfModRev { key, expected } => {
            let succeeded = s.mod_rev(key) == *expected;
            if succeeded && s.kvs.contains_key(key) {
                s.rev += 1;
                s.delete_at_rev(key);
            }
            Response::Txn {
                rev: s.rev,
                succeeded,
            }
        }
        Request::LeaseGrant { id } => {
            s.leases.entry(*id).or_default();
            Response::LeaseGrant { rev: s.rev }
        }
        Request::LeaseRevoke { id } => {
            let Some(keys) = s.leases.remove(id) else {
                return Some((s, Response::LeaseNotFound));
            };
            if !keys.is_empty() {
                s.rev += 1;
                for k in keys {
                    s.kvs.remove(&k);
                }
            }
            Response::LeaseRevoke { rev: s.rev }
        }
        Request::Defragment => Response::Defragment,
    };
    Some((s, response))
}

/// The states possible after `request` answered `response` in any of
/// `states`; empty when no state explains the answer.
pub fn step(states: &[Arc<State>], request: &Request, response: &Response) -> Vec<Arc<State>> {
    let mut next: Vec<Arc<State>> = Vec::new();
    let mut add = |s: Arc<State>| {
        if !next.contains(&s) {
            next.push(s);
        }
    };
    for s in states {
        if let Response::Unknown { .. } = response {
            // A lease revoked with no key on it differs from one left in
            // place only by its ID, which no later request uses (clients
            // drop a lease they asked to revoke): one state is enough.
            let empty_lease = match request {
                Request::LeaseRevoke { id } => s.leases.get(id).is_some_and(|k| k.is_empty()),
                _ => false,
            };
            if !empty_lease {
                add(s.clone());
            }
            if let Some((after, _)) = apply(s, request) {
                add(Arc::new(after));
            }
            continue;
        }
        if let Some((after, expected)) = apply(s, request) {
            if &expected == response {
                add(if after == **s {
                    s.clone()
                } else {
                    Arc::new(after)
                });
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, lease: i64) -> Request {
        Request::Put {
            key: key.into(),
            value: value.into(),
            lease,
        }
    }

    #[test]
    fn revisions_versions_and_leases_follow_etcd() {
        let s0 = Arc::new(State::initial());
        let s1 = step(&[s0], &put("a", "1", 0), &Response::Put { rev: 2 });
        assert_eq!(s1.len(), 1);
        let s2 = step(&s1, &put("a", "2", 0), &Response::Put { rev: 3 });
        let kv = s2[0].kvs.get("a").cloned();
        assert_eq!(
            kv.map(|kv| (kv.create_rev, kv.mod_rev, kv.version)),
            Some((2, 3, 2))
        );
        // A put on a lease that does not exist is refused, nothing changes.
        let refused = step(&s2, &put("b", "x", 7), &Response::LeaseNotFound);
        assert_eq!(refused, s2);
        let granted = step(
            &s2,
            &Request::LeaseGrant { id: 7 },
            &Response::LeaseGrant { rev: 3 },
        );
        let on_lease = step(&granted, &put("b", "x", 7), &Response::Put { rev: 4 });
        let revoked = step(
            &on_lease,
            &Request::LeaseRevoke { id: 7 },
            &Response::LeaseRevoke { rev: 5 },
        );
        assert_eq!(revoked.len(), 1);
        assert!(!revoked[0].kvs.contains_key("b"));
        // The wrong revision explains nothing.
        assert!(step(&s2, &put("c", "y", 0), &Response::Put { rev: 9 }).is_empty());
    }

    #[test]
    fn an_unknown_outcome_keeps_both_states() {
        let s0 = Arc::new(State::initial());
        let both = step(
            &[s0],
            &put("a", "1", 0),
            &Response::Unknown {
                error: "timeout".into(),
            },
        );
        assert_eq!(both.len(), 2);
        let read = Request::Get { key: "a".into() };
        // Either answer is explained, only one state each.
        assert_eq!(
            step(&both, &read, &Response::Get { rev: 1, kv: None }).len(),
            1
        );
        let seen = step(
            &both,
            &read,
            &Response::Get {
                rev: 2,
                kv: Some(Kv {
                    key: "a".into(),
                    value: "1".into(),
                    create_rev: 2,
                    mod_rev: 2,
                    version: 1,
                    lease: 0,
                }),
            },
        );
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn conditional_writes_compare_the_mod_revision_absent_as_zero() {
        let s0 = Arc::new(State::initial());
        let create = Request::PutIfModRev {
            key: "k".into(),
            expected: 0,
            value: "v".into(),
        };
        let s1 = step(
            &[s0],
            &create,
            &Response::Txn {
                rev: 2,
                succeeded: true,
            },
        );
        assert_eq!(s1.len(), 1);
        let again = step(
            &s1,
            &create,
            &Response::Txn {
                rev: 2,
                succeeded: false,
            },
        );
        assert_eq!(again, s1);
        let list = s1[0].list("", "", 0);
        assert_eq!((list.1, list.2), (1, false));
    }
}

//! The store's whole write history as the watches saw it: every revision's
//! events, agreed on by every unfiltered watcher from revision 1. From it,
//! any key's value at any revision, to check reads at past revisions,
//! acknowledged writes, and each watch stream against.

use crate::history::{Event, Kv, Request, Response, WatchMessage, WatchStream};
use crate::model::{page, range_start};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
pub struct Reference {
    /// Revision -> its events in the order a watch delivered them.
    pub events: BTreeMap<i64, Vec<Event>>,
    /// Key -> (revision, value from then on; None when deleted).
    history: BTreeMap<String, Vec<(i64, Option<Kv>)>>,
    /// Written value -> the revision it was put at (values are unique).
    puts: HashMap<String, i64>,
}

impl Reference {
    /// Merges the unfiltered watchers' events; a revision two of them saw
    /// differently is a violation, as is a revision none of them saw.
    pub fn build(watches: &[WatchStream], last_rev: i64) -> Result<Reference, Vec<String>> {
        let mut r = Reference::default();
        let mut problems = Vec::new();
        for w in watches {
            if !w.spec.prefix.is_empty() || w.spec.no_delete || w.spec.start_rev != 1 {
                continue;
            }
            for m in &w.messages {
                let WatchMessage::Events { events, .. } = m else {
                    continue;
                };
                for (rev, group) in by_revision(events) {
                    match r.events.get(&rev) {
                        None => {
                            r.events.insert(rev, group);
                        }
                        Some(seen) if *seen != group => problems.push(format!(
                            "watchers disagree at revision {rev}: {seen:?} vs {group:?} ({})",
                            w.name
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
        for rev in 2..=last_rev {
            if !r.events.contains_key(&rev) {
                problems.push(format!("no watcher saw revision {rev} (last {last_rev})"));
            }
        }
        for (&rev, events) in &r.events {
            for e in events {
                if !e.delete {
                    r.puts.insert(e.kv.value.clone(), rev);
                }
                let h = r.history.entry(e.kv.key.clone()).or_default();
                h.push((rev, (!e.delete).then(|| e.kv.clone())));
            }
        }
        if problems.is_empty() {
            Ok(r)
        } else {
            Err(problems)
        }
    }

    pub fn last_rev(&self) -> i64 {
        self.events.keys().next_back().copied().unwrap_or(1)
    }

    /// `key`'s value at `rev`.
    pub fn kv_at(&self, key: &str, rev: i64) -> Option<Kv> {
        let h = self.history.get(key)?;
        let idx = h.partition_point(|(r, _)| *r <= rev);
        idx.checked_sub(1).and_then(|i| h[i].1.clone())
    }

    /// What a List at `rev` answers (keys, count, more).
    pub fn list_at(&self, prefix: &str, from: &str, limit: i64, rev: i64) -> (Vec<Kv>, i64, bool) {
        let live = self
            .history
            .range(range_start(prefix, from).to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, _)| self.kv_at(k, rev));
        page(live.collect(), limit)
    }

    /// The revision a put of `value` landed at, if any watcher saw it.
    pub fn put_of(&self, value: &str) -> Option<i64> {
        self.puts.get(value).copied()
    }

    /// Whether a revision after `rev` deleted `key`.
    pub fn deleted_after(&self, key: &str, rev: i64) -> bool {
        self.history
            .get(key)
            .is_some_and(|h| h.iter().any(|(at, kv)| *at > rev && kv.is_none()))
    }

    /// Each event's prev_kv and create flag against the history before it.
    pub fn self_check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (&rev, events) in &self.events {
            for e in events {
                let before = self.kv_at(&e.kv.key, rev - 1);
                if e.prev != before {
                    problems.push(format!(
                        "prev_kv of {} at {rev} is {:?}, the value before was {before:?}",
                        e.kv.key, e.prev
                    ));
                }
                if !e.delete {
                    let created = e.kv.create_rev == e.kv.mod_rev;
                    if created != before.is_none() || created != (e.kv.version == 1) {
                        problems.push(format!(
                            "is_create of {} at {rev} wrong: {:?} after {before:?}",
                            e.kv.key, e.kv
                        ));
                    }
                }
            }
        }
        problems
    }

    /// A completed request's answer against the history: reads at their
    /// revision, and acknowledged writes present at theirs.
    pub fn check_answer(&self, request: &Request, response: &Response) -> Option<String> {
        let bad = |what: String| Some(format!("{what}: {request:?} -> {response:?}"));
        match (request, response) {
            (Request::Get { key } | Request::StaleGet { key }, Response::Get { rev, kv }) => {
                let want = self.kv_at(key, *rev);
                if *kv == want {
                    None
                } else {
                    bad(format!("history at {rev} has {want:?}"))
                }
            }
            (
                Request::List {
                    prefix,
                    from,
                    limit,
                    revision,
                },
                Response::List {
                    rev,
                    kvs,
                    count,
                    more,
                },
            ) => {
                // A read at a past revision: the header has the current one.
                let at = if *revision != 0 { *revision } else { *rev };
                if at > *rev {
                    return bad(format!("answered at {rev}, before the revision asked"));
                }
                let want = self.list_at(prefix, from, *limit, at);
                if want == (kvs.clone(), *count, *more) {
                    None
                } else {
                    bad(format!("history at {at} has {want:?}"))
                }
            }
            (
                Request::Put { key, value, .. } | Request::PutIfModRev { key, value, .. },
                Response::Put { rev }
                | Response::Txn {
                    rev,
                    succeeded: true,
                },
            ) => {
                let landed = self.events.get(rev).is_some_and(|events| {
                    events
                        .iter()
                        .any(|e| !e.delete && e.kv.key == *key && e.kv.value == *value)
                });
                if landed {
                    None
                } else {
                    bad(format!("acknowledged put missing from revision {rev}"))
                }
            }
            (Request::Delete { key }, Response::Delete { rev, deleted: 1 }) => {
                let landed = self
                    .events
                    .get(rev)
                    .is_some_and(|events| events.iter().any(|e| e.delete && e.kv.key == *key));
                if landed {
                    None
                } else {
                    bad(format!("acknowledged delete missing from revision {rev}"))
                }
            }
            _ => None,
        }
    }
}

/// Events grouped by revision, in delivery order.
pub fn by_revision(events: &[Event]) -> Vec<(i64, Vec<Event>)> {
    let mut out: Vec<(i64, Vec<Event>)> = Vec::new();
    for e in events {
        match out.last_mut() {
            Some((rev, group)) if *rev == e.kv.mod_rev => group.push(e.clone()),
            _ => out.push((e.kv.mod_rev, vec![e.clone()])),
        }
    }
    out
}

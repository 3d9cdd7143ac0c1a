//! What the watches tell about requests whose outcome the client never
//! learned, applied to the history before the linearizability search.
//! An operation with an unknown outcome may take effect at any time after
//! its call, so the search tries it everywhere; a few dozen of them make
//! the search exponential. The watches saw every revision, so most of
//! them can be decided:
//! - a read, or a write that no watch saw, changed nothing: left out;
//! - a put whose (unique) value a watch saw landed at that revision, and
//!   before any answer that showed that revision or a later one returned;
//! - a delete of a key that no revision after its call deleted changed
//!   nothing: left out.

use crate::history::{Operation, Request, Response};
use crate::reference::Reference;

/// The operations the search orders. Reads at a past revision and stale
/// reads are left out (checked against the history at their revision).
pub fn prepare(ops: &[Operation], reference: &Reference) -> Vec<Operation> {
    let answers = Answers::new(ops);
    ops.iter()
        .filter(|op| match &op.request {
            Request::StaleGet { .. } | Request::Defragment => false,
            Request::List { revision, .. } => *revision == 0,
            _ => true,
        })
        .filter_map(|op| {
            let Response::Unknown { .. } = op.response else {
                return Some(op.clone());
            };
            // A lease granted or not: no later request names it (the
            // client asks for a new one), so it changes nothing seen.
            if !op.request.writes() || matches!(op.request, Request::LeaseGrant { .. }) {
                return None;
            }
            if let Request::Delete { key } | Request::DeleteIfModRev { key, .. } = &op.request {
                let before = answers.highest_before(op.call);
                return reference.deleted_after(key, before).then(|| op.clone());
            }
            let Some(value) = op.request.value_written() else {
                return Some(op.clone());
            };
            let rev = reference.put_of(value)?;
            let response = match op.request {
                Request::Put { .. } => Response::Put { rev },
                _ => Response::Txn {
                    rev,
                    succeeded: true,
                },
            };
            Some(Operation {
                response,
                ret: answers.first_return_showing(rev),
                ..op.clone()
            })
        })
        .collect()
}

/// The revisions that answers showed, and when they returned.
struct Answers {
    /// (return time, highest revision shown by any answer returned by then),
    /// by return time.
    by_return: Vec<(u64, i64)>,
    /// (revision, earliest return of an answer showing it or a later one),
    /// by revision.
    by_revision: Vec<(i64, u64)>,
}

impl Answers {
    fn new(ops: &[Operation]) -> Answers {
        let mut shown: Vec<(u64, i64)> = ops
            .iter()
            .filter_map(|op| Some((op.ret?, op.response.revision()?)))
            .collect();
        shown.sort_unstable();
        let mut by_return = Vec::with_capacity(shown.len());
        let mut highest = 0;
        for &(ret, rev) in &shown {
            highest = highest.max(rev);
            by_return.push((ret, highest));
        }
        let mut by_revision: Vec<(i64, u64)> = shown.iter().map(|&(ret, rev)| (rev, ret)).collect();
        by_revision.sort_unstable();
        let mut earliest = u64::MAX;
        for entry in by_revision.iter_mut().rev() {
            earliest = earliest.min(entry.1);
            entry.1 = earliest;
        }
        Answers {
            by_return,
            by_revision,
        }
    }

    /// The highest revision an answer returned before `time` showed.
    fn highest_before(&self, time: u64) -> i64 {
        let n = self.by_return.partition_point(|&(ret, _)| ret < time);
        n.checked_sub(1).map_or(0, |i| self.by_return[i].1)
    }

    /// When the first answer showing `rev` or a later revision returned: a
    /// write that landed at `rev` took effect before then.
    fn first_return_showing(&self, rev: i64) -> Option<u64> {
        let i = self.by_revision.partition_point(|&(r, _)| r < rev);
        self.by_revision.get(i).map(|&(_, ret)| ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{kv, Event, Kv, WatchMessage, WatchSpec, WatchStream};
    use crate::linearizability::{check, Verdict};
    use std::time::Duration;

    fn event(kv: Kv, prev: Option<Kv>) -> Event {
        Event {
            delete: kv.create_rev == 0,
            kv,
            prev,
        }
    }

    fn reference(events: Vec<Event>) -> Reference {
        let last = events.last().map_or(1, |e| e.kv.mod_rev);
        let watch = WatchStream {
            name: "w".into(),
            spec: WatchSpec {
                prefix: String::new(),
                start_rev: 1,
                no_delete: false,
            },
            messages: vec![WatchMessage::Events {
                header_rev: last,
                events,
            }],
        };
        Reference::build(&[watch], last).expect("reference")
    }

    fn op(call: u64, ret: Option<u64>, request: Request, response: Response) -> Operation {
        Operation {
            client: 0,
            call,
            ret,
            request,
            response,
        }
    }

    fn unknown() -> Response {
        Response::Unknown {
            error: "timeout".into(),
        }
    }

    fn put(value: &str) -> Request {
        Request::Put {
            key: "k".into(),
            value: value.into(),
            lease: 0,
        }
    }

    #[test]
    fn a_seen_put_gets_its_revision_and_returns_before_the_first_answer_showing_it() {
        let a = kv("k", "a", 2, 2, 1);
        let b = kv("k", "b", 2, 3, 2);
        let r = reference(vec![event(a.clone(), None), event(b.clone(), Some(a))]);
        let ops = vec![
            op(0, None, put("a"), unknown()),
            op(1, Some(9), put("b"), Response::Put { rev: 3 }),
            op(
                10,
                Some(20),
                Request::Get { key: "k".into() },
                Response::Get {
                    rev: 3,
                    kv: Some(b),
                },
            ),
            op(12, None, put("never seen"), unknown()),
        ];
        let prepared = prepare(&ops, &r);
        assert_eq!(prepared.len(), 3, "{prepared:?}");
        assert_eq!(prepared[0].response, Response::Put { rev: 2 });
        assert_eq!(prepared[0].ret, Some(9), "returned before the put at 3 did");
        assert_eq!(
            check(&prepared, Duration::from_secs(5)),
            Verdict::Linearizable
        );
    }

    #[test]
    fn an_unknown_delete_stays_only_if_a_later_revision_deleted_its_key() {
        let a = kv("k", "a", 2, 2, 1);
        // A delete event carries the key and its revision only.
        let deleted = kv("k", "", 0, 3, 0);
        let r = reference(vec![
            event(a.clone(), None),
            event(deleted, Some(a.clone())),
        ]);
        let delete = || Request::Delete { key: "k".into() };
        let ops = vec![
            op(0, Some(5), put("a"), Response::Put { rev: 2 }),
            // Called after revision 2 was seen: may have deleted at 3.
            op(6, None, delete(), unknown()),
            op(
                30,
                Some(40),
                Request::Get { key: "k".into() },
                Response::Get { rev: 3, kv: None },
            ),
            // Called after revision 3 was seen: nothing deleted the key since.
            op(50, None, delete(), unknown()),
        ];
        let prepared = prepare(&ops, &r);
        let calls: Vec<u64> = prepared.iter().map(|o| o.call).collect();
        assert_eq!(calls, [0, 6, 30]);
        assert_eq!(
            check(&prepared, Duration::from_secs(5)),
            Verdict::Linearizable
        );
    }
}

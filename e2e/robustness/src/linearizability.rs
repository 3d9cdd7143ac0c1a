//! Is there one order of all operations, consistent with real time (an
//! operation that returned before another was called comes first), in
//! which the sequential model answers what every client saw? Wing & Gong's
//! search as porcupine runs it: walk the calls in time order, linearize
//! one whose answer the model explains, backtrack at a return that nothing
//! explains, and remember (linearized set, model states) pairs already
//! explored. A set is remembered by a 128-bit Zobrist hash (the XOR of one
//! random number per operation in it), not as a bitset: a bitset per pair
//! grows with the history, and a 30-minute history has 10^5 operations. Operations with an unknown outcome never return (they may
//! take effect at any later time, or never: the model keeps both states).

use crate::history::Operation;
use crate::model::{step, State};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the history; says which operation could not be
    /// placed after the longest explained prefix.
    Violation(String),
    /// The search ran out of time: neither proven nor refuted.
    Unknown(String),
}

const END: usize = usize::MAX;

/// Call and return events in one doubly linked list, ordered by time.
struct Events {
    /// Per event: the operation and whether it is the call.
    op: Vec<usize>,
    is_call: Vec<bool>,
    /// The other event of the same operation.
    partner: Vec<usize>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl Events {
    /// Index 0 is the list's head; events follow from 1.
    fn new(ops: &[Operation]) -> Events {
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, 0, i));
            order.push((op.ret.unwrap_or(u64::MAX), 1, i));
        }
        // At equal times a call comes first (the two overlap).
        order.sort();
        let n = order.len() + 1;
        let mut e = Events {
            op: vec![END; n],
            is_call: vec![false; n],
            partner: vec![END; n],
            prev: vec![END; n],
            next: vec![END; n],
        };
        let mut call_at = vec![END; ops.len()];
        for (pos, &(_, kind, i)) in order.iter().enumerate() {
            let at = pos + 1;
            e.op[at] = i;
            e.is_call[at] = kind == 0;
            if kind == 0 {
                call_at[i] = at;
            } else {
                e.partner[at] = call_at[i];
                e.partner[call_at[i]] = at;
            }
        }
        for at in 0..n {
            e.prev[at] = if at == 0 { END } else { at - 1 };
            e.next[at] = if at + 1 < n { at + 1 } else { END };
        }
        e
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        if n != END {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = at;
        if n != END {
            self.prev[n] = at;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    /// Undoes the most recent `lift` of `call`.
    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }
}

/// A fixed pseudo-random number per operation (splitmix64, so a run can be
/// repeated).
fn zobrist(i: usize) -> u128 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let i = i as u64;
    (u128::from(mix(2 * i)) << 64) | u128::from(mix(2 * i + 1))
}

fn states_hash(states: &[Arc<State>]) -> u64 {
    let mut each: Vec<u64> = states
        .iter()
        .map(|s| {
            let mut h = DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        })
        .collect();
    each.sort_unstable();
    let mut h = DefaultHasher::new();
    each.hash(&mut h);
    h.finish()
}

/// Searches for a linearization of `ops` from a new cluster's state.
pub fn check(ops: &[Operation], budget: Duration) -> Verdict {
    let started = Instant::now();
    let mut events = Events::new(ops);
    let mut linearized = 0u128;
    let mut explored: HashSet<(u128, u64)> = HashSet::new();
    let mut calls: Vec<(usize, Vec<Arc<State>>)> = Vec::new();
    let mut states = vec![Arc::new(State::initial())];
    let mut longest = 0usize;
    let mut stuck_at = END;
    let mut at = events.next[0];
    let mut steps = 0u64;
    while events.next[0] != END {
        steps += 1;
        if steps.is_multiple_of(256) && started.elapsed() > budget {
            return Verdict::Unknown(format!(
                "no answer within {budget:?}; {}",
                describe(ops, longest, stuck_at)
            ));
        }
        if events.is_call[at] {
            let i = events.op[at];
            let next = step(&states, &ops[i].request, &ops[i].response);
            if !next.is_empty() {
                linearized ^= zobrist(i);
                if explored.insert((linearized, states_hash(&next))) {
                    calls.push((at, std::mem::replace(&mut states, next)));
                    events.lift(at);
                    if calls.len() > longest {
                        longest = calls.len();
                        stuck_at = END;
                    }
                    at = events.next[0];
                    continue;
                }
                linearized ^= zobrist(i);
            }
            at = events.next[at];
        } else {
            if calls.len() == longest && stuck_at == END {
                stuck_at = events.op[at];
            }
            let Some((call, before)) = calls.pop() else {
                return Verdict::Violation(describe(ops, longest, stuck_at));
            };
            linearized ^= zobrist(events.op[call]);
            states = before;
            events.unlift(call);
            at = events.next[call];
        }
    }
    Verdict::Linearizable
}

fn describe(ops: &[Operation], longest: usize, stuck: usize) -> String {
    let what = ops
        .get(stuck)
        .map(|op| {
            format!(
                "client {} at {:.3}s-{}: {:?} -> {:?}",
                op.client,
                op.call as f64 / 1e9,
                op.ret
                    .map(|r| format!("{:.3}s", r as f64 / 1e9))
                    .unwrap_or_else(|| "?".into()),
                op.request,
                op.response
            )
        })
        .unwrap_or_default();
    format!(
        "after {longest} of {} operations in order, nothing explains {what}",
        ops.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Kv, Request, Response};

    fn op(
        client: usize,
        call: u64,
        ret: Option<u64>,
        request: Request,
        response: Response,
    ) -> Operation {
        Operation {
            client,
            call,
            ret,
            request,
            response,
        }
    }

    fn put(v: &str) -> Request {
        Request::Put {
            key: "k".into(),
            value: v.into(),
            lease: 0,
        }
    }

    fn got(v: &str, rev: i64, version: i64) -> Response {
        Response::Get {
            rev,
            kv: Some(Kv {
                key: "k".into(),
                value: v.into(),
                create_rev: 2,
                mod_rev: rev,
                version,
                lease: 0,
            }),
        }
    }

    fn get() -> Request {
        Request::Get { key: "k".into() }
    }

    const BUDGET: Duration = Duration::from_secs(10);

    #[test]
    fn concurrent_writes_and_reads_in_some_order_are_linearizable() {
        let h = vec![
            op(0, 0, Some(10), put("a"), Response::Put { rev: 2 }),
            op(1, 1, Some(12), put("b"), Response::Put { rev: 3 }),
            // Overlaps both writes: sees the first only.
            op(2, 2, Some(11), get(), got("a", 2, 1)),
            op(2, 13, Some(14), get(), got("b", 3, 2)),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_write_returned_is_a_violation() {
        let h = vec![
            op(0, 0, Some(10), put("a"), Response::Put { rev: 2 }),
            op(0, 11, Some(20), put("b"), Response::Put { rev: 3 }),
            // Called after the second write returned, yet sees the first.
            op(1, 21, Some(30), get(), got("a", 2, 1)),
        ];
        match check(&h, BUDGET) {
            Verdict::Violation(why) => assert!(why.contains("client 1"), "{why}"),
            other => panic!("accepted a stale read: {other:?}"),
        }
    }

    #[test]
    fn a_write_with_an_unknown_outcome_may_land_late_or_never() {
        let unknown = || Response::Unknown {
            error: "timeout".into(),
        };
        let late = vec![
            op(0, 0, None, put("a"), unknown()),
            op(1, 5, Some(6), get(), Response::Get { rev: 1, kv: None }),
            op(1, 50, Some(60), get(), got("a", 2, 1)),
        ];
        assert_eq!(check(&late, BUDGET), Verdict::Linearizable);
        let never = vec![
            op(0, 0, None, put("a"), unknown()),
            op(1, 50, Some(60), get(), Response::Get { rev: 1, kv: None }),
        ];
        assert_eq!(check(&never, BUDGET), Verdict::Linearizable);
        // But it cannot be seen and then unseen.
        let flicker = vec![
            op(0, 0, None, put("a"), unknown()),
            op(1, 5, Some(6), get(), got("a", 2, 1)),
            op(1, 7, Some(8), get(), Response::Get { rev: 1, kv: None }),
        ];
        assert!(matches!(check(&flicker, BUDGET), Verdict::Violation(_)));
    }

    #[test]
    fn a_lost_acknowledged_write_is_a_violation() {
        let h = vec![
            op(0, 0, Some(10), put("a"), Response::Put { rev: 2 }),
            op(1, 20, Some(30), get(), Response::Get { rev: 1, kv: None }),
        ];
        assert!(matches!(check(&h, BUDGET), Verdict::Violation(_)));
    }
}

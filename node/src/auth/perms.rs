//! A user's key permissions merged over all its roles, and etcd's checks
//! against them: a single key must fall in one granted interval, a range
//! must be covered by the union of the granted intervals.

use ferrocd_proto::authpb::{permission::Type as PermType, Permission};
use std::cmp::Ordering;

/// The end of a key interval: a key (exclusive) or past every key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Key(Vec<u8>),
    Unbounded,
}

impl End {
    fn cmp_key(&self, key: &[u8]) -> Ordering {
        match self {
            End::Key(k) => k.as_slice().cmp(key),
            End::Unbounded => Ordering::Greater,
        }
    }

    fn max(self, other: End) -> End {
        match (&self, &other) {
            (End::Unbounded, _) | (_, End::Unbounded) => End::Unbounded,
            (End::Key(a), End::Key(b)) => {
                if a >= b {
                    self
                } else {
                    other
                }
            }
        }
    }

    fn covers(&self, other: &End) -> bool {
        match (self, other) {
            (End::Unbounded, _) => true,
            (End::Key(_), End::Unbounded) => false,
            (End::Key(a), End::Key(b)) => a >= b,
        }
    }
}

/// `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: End,
}

impl Interval {
    /// etcd's meaning of a key and range end: none is the key alone, `\0`
    /// every key from the key on.
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        let end = match range_end {
            [] => {
                let mut next = key.to_vec();
                next.push(0);
                End::Key(next)
            }
            [0] => End::Unbounded,
            e => End::Key(e.to_vec()),
        };
        Interval {
            start: key.to_vec(),
            end,
        }
    }
}

/// Sorted, disjoint, non-adjacent intervals.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct IntervalSet(Vec<Interval>);

impl IntervalSet {
    fn from_unsorted(mut v: Vec<Interval>) -> IntervalSet {
        v.sort_by(|a, b| a.start.cmp(&b.start));
        let mut out: Vec<Interval> = Vec::with_capacity(v.len());
        for ivl in v {
            if let Some(last) = out.last_mut() {
                // Overlapping or touching: one interval.
                if last.end.cmp_key(&ivl.start) != Ordering::Less {
                    let end = std::mem::replace(&mut last.end, End::Unbounded);
                    last.end = end.max(ivl.end);
                    continue;
                }
            }
            out.push(ivl);
        }
        IntervalSet(out)
    }

    /// The interval that starts at or before `key`, if any.
    fn last_starting_by(&self, key: &[u8]) -> Option<&Interval> {
        let i = self.0.partition_point(|ivl| ivl.start.as_slice() <= key);
        i.checked_sub(1).map(|i| &self.0[i])
    }

    fn contains_key(&self, key: &[u8]) -> bool {
        self.last_starting_by(key)
            .is_some_and(|ivl| ivl.end.cmp_key(key) == Ordering::Greater)
    }

    fn covers(&self, want: &Interval) -> bool {
        self.last_starting_by(&want.start)
            .is_some_and(|ivl| ivl.end.covers(&want.end))
    }
}

/// What one user may read and write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserPerms {
    read: IntervalSet,
    write: IntervalSet,
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl UserPerms {
    /// Merges the permissions of every role the user holds.
    pub fn merge<'a>(perms: impl IntoIterator<Item = &'a Permission>) -> UserPerms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for p in perms {
            let ivl = Interval::of(&p.key, &p.range_end);
            match PermType::try_from(p.perm_type) {
                Ok(PermType::Read) => read.push(ivl),
                Ok(PermType::Write) => write.push(ivl),
                Ok(PermType::Readwrite) => {
                    read.push(ivl.clone());
                    write.push(ivl);
                }
                Err(_) => {}
            }
        }
        UserPerms {
            read: IntervalSet::from_unsorted(read),
            write: IntervalSet::from_unsorted(write),
        }
    }

    /// Whether the user may access `key` (no range end) or every key of
    /// `[key, range_end)` (`\0`: every key from `key` on).
    pub fn permits(&self, access: Access, key: &[u8], range_end: &[u8]) -> bool {
        let set = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        if range_end.is_empty() {
            set.contains_key(key)
        } else {
            set.covers(&Interval::of(key, range_end))
        }
    }
}

/// etcd's rule for a grantable range: a key, and either no end, an end
/// after the key, or `\0`.
pub fn is_valid_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || key < range_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermType, key: &str, end: &[u8]) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.as_bytes().to_vec(),
            range_end: end.to_vec(),
        }
    }

    #[test]
    fn single_keys_need_an_interval_holding_them() {
        let p = UserPerms::merge(&[
            perm(PermType::Read, "a", b""),
            perm(PermType::Readwrite, "k", b"m"),
        ]);
        assert!(p.permits(Access::Read, b"a", b""));
        assert!(!p.permits(Access::Read, b"a\0", b""));
        assert!(!p.permits(Access::Write, b"a", b""));
        assert!(p.permits(Access::Write, b"k", b""));
        assert!(p.permits(Access::Write, b"lzzz", b""));
        assert!(!p.permits(Access::Write, b"m", b""));
        assert!(!p.permits(Access::Read, b"b", b""));
    }

    #[test]
    fn ranges_must_be_covered_by_the_union() {
        let p = UserPerms::merge(&[
            perm(PermType::Read, "a", b"c"),
            perm(PermType::Read, "c", b"e"),
            perm(PermType::Read, "x", &[0]),
        ]);
        assert!(p.permits(Access::Read, b"a", b"e"));
        assert!(p.permits(Access::Read, b"b", b"d"));
        assert!(!p.permits(Access::Read, b"a", b"f"));
        assert!(p.permits(Access::Read, b"y", &[0]));
        assert!(!p.permits(Access::Read, b"d", &[0]));
        // A point permission covers the range holding just that key.
        let q = UserPerms::merge(&[perm(PermType::Write, "k", b"")]);
        assert!(q.permits(Access::Write, b"k", b"k\0"));
        assert!(!q.permits(Access::Write, b"k", b"l"));
    }

    #[test]
    fn grantable_ranges() {
        assert!(is_valid_range(b"a", b""));
        assert!(is_valid_range(b"a", b"b"));
        assert!(is_valid_range(b"a", &[0]));
        assert!(!is_valid_range(b"", b""));
        assert!(!is_valid_range(b"b", b"a"));
        assert!(!is_valid_range(b"a", b"a"));
    }
}

//! Defragmentation, the pure part: whether one is due (a schedule fired,
//! or a member's file is mostly free space) and the order the members go
//! in (every follower, then the leader, so leadership moves at most once
//! and the cluster keeps a leader that is not paused). Nothing runs while
//! a member is unhealthy: a defragmenting member stops serving, and with
//! another one down that could cost the quorum.

use crate::backup::schedule::{due as fired, parse};
use crate::crd::DefragPolicy;
use crate::membership::ClusterView;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;

/// `minDbSizeBytes` when the spec names none.
pub const DEFAULT_MIN_DB_SIZE: i64 = 64 << 20;

/// A file stays fragmented when its free pages are reused rather than
/// returned: runs for fragmentation come at most this often.
pub const FRAGMENTATION_INTERVAL: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    Schedule,
    Fragmentation { member: String, percent: i64 },
}

impl Why {
    /// The status's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Why::Schedule => "Schedule",
            Why::Fragmentation { .. } => "Fragmentation",
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Schedule => write!(f, "the schedule fired"),
            Why::Fragmentation { member, percent } => {
                write!(f, "{member}'s database is {percent}% free space")
            }
        }
    }
}

/// Whether a run is due now, given the last run's start (none yet: the
/// schedule counts from the cluster's creation). An invalid schedule is an
/// error.
pub fn due(
    policy: &DefragPolicy,
    view: &ClusterView,
    last_run: Option<Timestamp>,
    created: Timestamp,
    now: Timestamp,
) -> Result<Option<Why>, String> {
    if let Some(schedule) = &policy.schedule {
        if fired(&parse(schedule)?, last_run.unwrap_or(created), now).is_some() {
            return Ok(Some(Why::Schedule));
        }
    }
    let Some(threshold) = policy.fragmented_percent else {
        return Ok(None);
    };
    let recent =
        last_run.is_some_and(|t| now.duration_since(t).unsigned_abs() < FRAGMENTATION_INTERVAL);
    if recent {
        return Ok(None);
    }
    let min = policy.min_db_size_bytes.unwrap_or(DEFAULT_MIN_DB_SIZE);
    let worst = view
        .members
        .iter()
        .filter_map(|m| {
            let (size, in_use) = m.db_size?;
            (size > 0 && size >= min).then(|| ((size - in_use) * 100 / size, m))
        })
        .max_by_key(|(percent, _)| *percent);
    Ok(match worst {
        Some((percent, m)) if percent >= threshold => Some(Why::Fragmentation {
            member: if m.name.is_empty() {
                format!("{:x}", m.id)
            } else {
                m.name.clone()
            },
            percent,
        }),
        _ => None,
    })
}

/// The members in the order they are defragmented, (ID, name): followers
/// by name, the leader last. Refused (why) unless every member is healthy
/// and a leader is known.
pub fn order(view: &ClusterView) -> Result<Vec<(u64, String)>, String> {
    if let Some(m) = view.members.iter().find(|m| !m.healthy) {
        let name = if m.name.is_empty() {
            format!("{:x}", m.id)
        } else {
            m.name.clone()
        };
        return Err(format!("member {name} is not healthy"));
    }
    sequence(view)
}

/// The same order whatever the members' health (a NOSPACE alarm makes
/// every member report an error): needs a known leader.
pub fn sequence(view: &ClusterView) -> Result<Vec<(u64, String)>, String> {
    let leader = view.leader.ok_or("no leader")?;
    let mut followers: Vec<(u64, String)> = view
        .members
        .iter()
        .filter(|m| m.id != leader)
        .map(|m| (m.id, m.name.clone()))
        .collect();
    followers.sort_by(|a, b| a.1.cmp(&b.1));
    let last = view
        .members
        .iter()
        .find(|m| m.id == leader)
        .map(|m| (m.id, m.name.clone()))
        .ok_or("the leader is not in the member list")?;
    followers.push(last);
    Ok(followers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::etcd::ListedMember;

    fn member(id: u64, name: &str, db: Option<(i64, i64)>) -> ListedMember {
        ListedMember {
            id,
            name: name.into(),
            peer_urls: vec![],
            client_urls: vec![],
            learner: false,
            healthy: true,
            db_size: db,
            applied: 0,
            revision: 0,
        }
    }

    fn view(leader: u64, members: Vec<ListedMember>) -> ClusterView {
        ClusterView {
            cluster_id: 1,
            leader: Some(leader),
            members,
            linearizable: true,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const MIB: i64 = 1 << 20;

    #[test]
    fn fragmentation_above_the_threshold_on_a_large_enough_file_is_due() {
        let policy = DefragPolicy {
            fragmented_percent: Some(50),
            ..DefragPolicy::default()
        };
        let v = view(
            1,
            vec![
                member(1, "demo-0", Some((100 * MIB, 90 * MIB))),
                member(2, "demo-1", Some((100 * MIB, 40 * MIB))),
                // Most of it free, but small.
                member(3, "demo-2", Some((MIB, 1))),
            ],
        );
        let (last, now) = (at("2026-12-01T00:00:00Z"), at("2026-12-01T01:00:00Z"));
        assert_eq!(
            due(&policy, &v, Some(last), last, now),
            Ok(Some(Why::Fragmentation {
                member: "demo-1".into(),
                percent: 60
            }))
        );
        // Not again right after a run.
        let soon = at("2026-12-01T00:05:00Z");
        assert_eq!(due(&policy, &v, Some(last), last, soon), Ok(None));
        // A first run needs no wait.
        assert!(due(&policy, &v, None, soon, soon).unwrap().is_some());
        let stricter = DefragPolicy {
            fragmented_percent: Some(61),
            ..policy
        };
        assert_eq!(due(&stricter, &v, None, last, now), Ok(None));
    }

    #[test]
    fn a_schedule_that_fired_since_the_last_run_is_due() {
        let policy = DefragPolicy {
            schedule: Some("0 3 * * *".into()),
            ..DefragPolicy::default()
        };
        let v = view(1, vec![member(1, "demo-0", Some((MIB, MIB)))]);
        let last = at("2026-12-01T03:00:00Z");
        let noon = at("2026-12-01T12:00:00Z");
        assert_eq!(due(&policy, &v, Some(last), last, noon), Ok(None));
        let next = at("2026-12-02T03:00:30Z");
        assert_eq!(
            due(&policy, &v, Some(last), last, next),
            Ok(Some(Why::Schedule))
        );
        // No run yet: counted from the creation.
        assert_eq!(due(&policy, &v, None, last, next), Ok(Some(Why::Schedule)));
        let bad = DefragPolicy {
            schedule: Some("every night".into()),
            ..DefragPolicy::default()
        };
        assert!(due(&bad, &v, None, last, last).is_err());
    }

    #[test]
    fn followers_go_first_by_name_and_the_leader_last_only_when_all_are_healthy() {
        let mut v = view(
            2,
            vec![
                member(3, "demo-2", None),
                member(2, "demo-1", None),
                member(1, "demo-0", None),
            ],
        );
        let names: Vec<String> = order(&v).unwrap().into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["demo-0", "demo-2", "demo-1"]);
        v.members[0].healthy = false;
        assert_eq!(order(&v), Err("member demo-2 is not healthy".into()));
        v.members[0].healthy = true;
        v.leader = None;
        assert_eq!(order(&v), Err("no leader".into()));
    }
}

//! Quorum-safe rolling changes. The StatefulSet updates no pod by itself
//! (`OnDelete`): when its template changes (image, resources, member
//! options), the operator replaces one member's pod at a time, followers
//! first (highest ordinal first), and moves leadership to an updated voter
//! before the leader's turn. A step starts only when every member is
//! healthy and caught up with the leader, so at least quorum + 1 voters are
//! healthy (all of a 1- or 2-member cluster, which cannot spare one). A
//! replaced member that does not come back halts the rollout.

use super::plan::{Member, Step};
use std::collections::BTreeMap;

/// How far (raft entries) a member's applied index may trail the leader's
/// and still count as caught up.
pub const CAUGHT_UP_ENTRIES: u64 = 1000;

/// What the rollout decides from, besides the members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutObserved {
    /// Ordinals whose pod runs an older template than the StatefulSet's.
    pub outdated: Vec<u32>,
    /// Why a pod's member does not start (its last exit, a waiting reason).
    pub failures: BTreeMap<u32, String>,
    /// Ordinals whose pod is missing, terminating or not Ready: a replaced
    /// pod's successor must be Ready before the next one goes.
    pub unready: Vec<u32>,
    /// A rollout began and has not completed (the status says so): its last
    /// replaced member may still fail to come back.
    pub in_progress: bool,
    /// The StatefulSet controller has not yet seen the latest template, so
    /// which pods are outdated is not known.
    pub template_pending: bool,
}

/// The rollout's next step, or `None` when there is nothing to roll.
pub fn next(r: &RolloutObserved, members: &[Member], leader: Option<u64>) -> Option<Step> {
    if r.template_pending {
        return Some(Step::Wait(
            "the StatefulSet controller has not seen the new template yet".into(),
        ));
    }
    if r.outdated.is_empty() && !r.in_progress {
        return None;
    }
    let name = |m: &Member| {
        m.ordinal
            .map_or_else(|| format!("{:x}", m.id), |i| i.to_string())
    };
    let outdated = |m: &&Member| m.ordinal.is_some_and(|i| r.outdated.contains(&i));
    // A member that is down already costs no health when replaced, if it
    // is the only one down: every other member healthy and every other pod
    // Ready. This is also how a corrected template reaches a member a bad
    // one broke. (Without the condition, a member unhealthy for a moment
    // after the previous step, during an election, went while the pod
    // replaced before it was not Ready yet: two down, seen in CI.)
    let alone = |down: &&Member| {
        members.iter().all(|m| m.id == down.id || m.healthy)
            && r.unready.iter().all(|i| Some(*i) == down.ordinal)
    };
    if let Some(down) = members
        .iter()
        .filter(|m| !m.healthy)
        .filter(alone)
        .find(outdated)
    {
        return Some(Step::Roll {
            ordinal: down.ordinal.unwrap_or_default(),
        });
    }
    for m in members.iter().filter(|m| !m.healthy) {
        if let Some(why) = m.ordinal.and_then(|i| r.failures.get(&i)) {
            return Some(Step::Halt(format!(
                "member {} does not come back: {why}",
                name(m)
            )));
        }
    }
    if let Some(m) = members.iter().find(|m| !m.healthy) {
        return Some(Step::Wait(format!(
            "member {} is not healthy; the rollout waits",
            name(m)
        )));
    }
    if let Some(i) = r.unready.first() {
        return Some(Step::Wait(format!(
            "the pod of member {i} is not ready; the rollout waits"
        )));
    }
    let lead = leader.and_then(|l| members.iter().find(|m| m.id == l));
    let Some(lead) = lead else {
        return Some(Step::Wait("no leader; the rollout waits".into()));
    };
    if let Some(m) = members
        .iter()
        .find(|m| lead.applied.saturating_sub(m.applied) > CAUGHT_UP_ENTRIES)
    {
        return Some(Step::Wait(format!(
            "member {} is catching up (applied {} of {})",
            name(m),
            m.applied,
            lead.applied
        )));
    }
    if let Some(follower) = members
        .iter()
        .filter(|m| m.id != lead.id)
        .filter(outdated)
        .max_by_key(|m| m.ordinal)
    {
        return Some(Step::Roll {
            ordinal: follower.ordinal.unwrap_or_default(),
        });
    }
    if outdated(&lead) {
        let updated = members
            .iter()
            .filter(|m| m.id != lead.id && !m.learner && !outdated(m))
            .min_by_key(|m| m.ordinal);
        return Some(match updated {
            Some(to) => Step::MoveLeader {
                from: lead.id,
                to: to.id,
            },
            // A single member: its restart is the rollout.
            None => Step::Roll {
                ordinal: lead.ordinal.unwrap_or_default(),
            },
        });
    }
    // Pods outside the member list (none here: membership comes first).
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u32, applied: u64) -> Member {
        Member {
            id: 0x100 + u64::from(i),
            ordinal: Some(i),
            learner: false,
            healthy: true,
            started: true,
            applied,
        }
    }
    fn id(i: u32) -> u64 {
        0x100 + u64::from(i)
    }
    fn outdated(o: &[u32]) -> RolloutObserved {
        RolloutObserved {
            outdated: o.to_vec(),
            ..RolloutObserved::default()
        }
    }

    /// Replays a rollout of `n` members led by member 0: each step applied
    /// to the model (a rolled pod comes back updated and healthy).
    fn drive(n: u32) -> Vec<Step> {
        let mut members: Vec<Member> = (0..n).map(|i| member(i, 50)).collect();
        let mut leader = id(0);
        let mut r = outdated(&(0..n).collect::<Vec<_>>());
        r.in_progress = true;
        let mut steps = Vec::new();
        for _ in 0..20 {
            let Some(step) = next(&r, &members, Some(leader)) else {
                break;
            };
            steps.push(step.clone());
            match step {
                Step::Roll { ordinal } => r.outdated.retain(|o| *o != ordinal),
                Step::MoveLeader { to, .. } => leader = to,
                other => panic!("unexpected {other}"),
            }
            members.iter_mut().for_each(|m| m.applied += 10);
            if r.outdated.is_empty() {
                r.in_progress = false;
            }
        }
        steps
    }

    #[test]
    fn followers_roll_first_then_leadership_moves_to_an_updated_voter() {
        assert_eq!(
            drive(3),
            vec![
                Step::Roll { ordinal: 2 },
                Step::Roll { ordinal: 1 },
                Step::MoveLeader {
                    from: id(0),
                    to: id(1)
                },
                Step::Roll { ordinal: 0 },
            ]
        );
        let five = drive(5);
        assert_eq!(five.len(), 6, "{five:?}");
        assert_eq!(
            five.iter()
                .filter(|s| matches!(s, Step::MoveLeader { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn a_single_member_is_restarted_in_place() {
        assert_eq!(drive(1), vec![Step::Roll { ordinal: 0 }]);
    }

    #[test]
    fn nothing_rolls_while_a_member_is_unhealthy_or_behind() {
        let mut members: Vec<Member> = (0..3).map(|i| member(i, 5000)).collect();
        // Member 1 already runs the new template but is down.
        members[1].healthy = false;
        let r = outdated(&[0, 2]);
        assert!(matches!(
            next(&r, &members, Some(id(0))),
            Some(Step::Wait(w)) if w.contains("member 1 is not healthy")
        ));
        members[1].healthy = true;
        // Its pod is not Ready yet (or is still terminating).
        let mut r = r;
        r.unready = vec![1];
        assert!(matches!(
            next(&r, &members, Some(id(0))),
            Some(Step::Wait(w)) if w.contains("pod of member 1 is not ready")
        ));
        r.unready.clear();
        members[2].applied = 5000 - CAUGHT_UP_ENTRIES - 1;
        assert!(matches!(
            next(&r, &members, Some(id(0))),
            Some(Step::Wait(w)) if w.contains("member 2 is catching up")
        ));
        members[2].applied = 5000 - CAUGHT_UP_ENTRIES;
        assert_eq!(
            next(&r, &members, Some(id(0))),
            Some(Step::Roll { ordinal: 2 })
        );
        assert!(matches!(next(&r, &members, None), Some(Step::Wait(_))));
    }

    #[test]
    fn a_member_that_does_not_come_back_halts_the_rollout() {
        let mut members: Vec<Member> = (0..3).map(|i| member(i, 9)).collect();
        members[2].healthy = false;
        let mut r = outdated(&[0, 1]);
        r.failures
            .insert(2, "exited with code 1: invalid flag".into());
        assert_eq!(
            next(&r, &members, Some(id(0))),
            Some(Step::Halt(
                "member 2 does not come back: exited with code 1: invalid flag".into()
            ))
        );
        // Also when it was the last one replaced.
        r.outdated.clear();
        r.in_progress = true;
        assert!(matches!(
            next(&r, &members, Some(id(0))),
            Some(Step::Halt(_))
        ));
        // Nothing outdated and no rollout: not the rollout's business.
        r.in_progress = false;
        assert_eq!(next(&r, &members, Some(id(0))), None);
        // The change is corrected: the broken member's pod is outdated
        // again and goes first, though it is down.
        r.outdated = vec![0, 1, 2];
        r.in_progress = true;
        assert_eq!(
            next(&r, &members, Some(id(0))),
            Some(Step::Roll { ordinal: 2 })
        );
    }

    #[test]
    fn a_down_member_is_replaced_at_once_only_when_nothing_else_is_down() {
        let mut members: Vec<Member> = (0..3).map(|i| member(i, 9)).collect();
        // Member 2 was just replaced; its pod is not Ready yet. Member 1,
        // outdated, fails its health check meanwhile (an election).
        members[1].healthy = false;
        let mut r = outdated(&[0, 1]);
        r.in_progress = true;
        r.unready = vec![2];
        assert!(matches!(
            next(&r, &members, Some(id(0))),
            Some(Step::Wait(w)) if w.contains("member 1 is not healthy")
        ));
        // Member 2's pod is Ready: member 1, down alone, goes.
        r.unready = vec![1];
        assert_eq!(
            next(&r, &members, Some(id(0))),
            Some(Step::Roll { ordinal: 1 })
        );
        // Two members down: neither goes.
        members[0].healthy = false;
        assert!(matches!(
            next(&r, &members, Some(id(0))),
            Some(Step::Wait(_))
        ));
    }

    #[test]
    fn a_completed_rollout_is_steady() {
        let members: Vec<Member> = (0..3).map(|i| member(i, 9)).collect();
        let r = RolloutObserved {
            in_progress: true,
            ..RolloutObserved::default()
        };
        assert_eq!(next(&r, &members, Some(id(0))), None);
    }
}

//! The membership planner: from what the operator observes (desired
//! replicas, the StatefulSet's replicas, the cluster's member list, claims
//! left behind) to the one next step. Pure, so every situation, including
//! an operator that crashed between two steps, is a unit test.
//!
//! Scale out: add the next ordinal as a learner, raise the StatefulSet,
//! promote once the learner runs. Scale in: move leadership off the highest
//! ordinal, remove it, lower the StatefulSet, delete its claim if asked.
//! One step at a time, and never one that leaves fewer healthy voters than
//! a quorum.

use super::rollout::{self, RolloutObserved};
use std::fmt;

/// One member as the cluster lists it, placed on a StatefulSet ordinal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// The ordinal its peer URL names; `None` for a URL outside the StatefulSet.
    pub ordinal: Option<u32>,
    pub learner: bool,
    /// Answered a status request (a started, reachable member).
    pub healthy: bool,
    /// Has run at least once (the member list names it); an unstarted
    /// member has no data to lose.
    pub started: bool,
    /// Its raft applied index (0 when it did not answer).
    pub applied: u64,
}

/// What the planner decides from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `spec.replicas`.
    pub desired: u32,
    /// The StatefulSet's replicas.
    pub replicas: u32,
    /// The member list, or `None` when no member answered.
    pub members: Option<Vec<Member>>,
    /// The leader's member ID, when known.
    pub leader: Option<u64>,
    /// Ordinals that still have a data claim.
    pub claims: Vec<u32>,
    /// Delete a removed member's claim right after scale-in.
    pub delete_claims: bool,
    /// Ordinals whose member process found its data dir empty and was
    /// refused (lost volume): they hold no data worth keeping.
    pub emptied: Vec<u32>,
    /// Pods on an older template, and how replaced ones fare.
    pub rollout: RolloutObserved,
}

/// The one next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Members and StatefulSet agree with the spec.
    Steady,
    /// Nothing to do until something changes (pods starting, a learner catching up).
    Wait(String),
    /// A step is needed but would lose quorum; report it and do nothing.
    Refuse(String),
    /// MemberAdd(learner) with the peer URL of this ordinal.
    AddLearner { ordinal: u32 },
    /// Set the StatefulSet's replicas.
    SetReplicas(u32),
    /// MemberPromote.
    Promote { id: u64, ordinal: u32 },
    /// MoveLeader from the member leaving to this one.
    MoveLeader { from: u64, to: u64 },
    /// MemberRemove.
    Remove { id: u64, ordinal: Option<u32> },
    /// Delete the data claim of an ordinal no pod uses.
    DeleteClaim { ordinal: u32 },
    /// Delete this ordinal's pod so that it comes back on the new template.
    Roll { ordinal: u32 },
    /// A rollout cannot go on (a replaced member does not come back).
    Halt(String),
    /// Fewer voters answer than a quorum needs (see quorum.rs).
    QuorumLost(String),
}

impl Step {
    /// Whether the step changes the cluster or the StatefulSet.
    pub fn is_action(&self) -> bool {
        !matches!(
            self,
            Step::Steady | Step::Wait(_) | Step::Refuse(_) | Step::Halt(_) | Step::QuorumLost(_)
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Steady => write!(f, "steady"),
            Step::Wait(why) => write!(f, "waiting: {why}"),
            Step::Refuse(why) => write!(f, "refused: {why}"),
            Step::AddLearner { ordinal } => write!(f, "add member {ordinal} as a learner"),
            Step::SetReplicas(n) => write!(f, "set StatefulSet replicas to {n}"),
            Step::Promote { id, ordinal } => write!(f, "promote member {ordinal} ({id:x})"),
            Step::MoveLeader { from, to } => write!(f, "move leadership from {from:x} to {to:x}"),
            Step::Remove {
                id,
                ordinal: Some(o),
            } => write!(f, "remove member {o} ({id:x})"),
            Step::Remove { id, ordinal: None } => write!(f, "remove member {id:x}"),
            Step::DeleteClaim { ordinal } => write!(f, "delete the data claim of member {ordinal}"),
            Step::Roll { ordinal } => {
                write!(f, "replace the pod of member {ordinal} (rolling update)")
            }
            Step::Halt(why) => write!(f, "rollout halted: {why}"),
            Step::QuorumLost(why) => write!(f, "{why}"),
        }
    }
}

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Decides the next step.
pub fn next_step(o: &Observed) -> Step {
    let Some(members) = &o.members else {
        return Step::Wait("no member answers yet".into());
    };
    let s = o.replicas;
    let r = o.desired.max(1);
    let at = |ordinal: u32| members.iter().find(|m| m.ordinal == Some(ordinal));
    let voters: Vec<&Member> = members.iter().filter(|m| !m.learner).collect();
    let healthy_voters = voters.iter().filter(|m| m.healthy).count();

    // A member whose pod the StatefulSet will not run: left by an add whose
    // scale-out was called off, or by someone else. The one ordinal just
    // past the StatefulSet is the pending add of a scale-out in progress.
    let pending_add = (r > s).then_some(s);
    if let Some(stray) = members
        .iter()
        .filter(|m| m.ordinal.is_some_and(|i| i >= s && Some(i) != pending_add))
        .max_by_key(|m| m.ordinal)
    {
        return remove_checked(stray, &voters, healthy_voters, o.leader);
    }

    // A member whose pod lost its volume can never rejoin as itself: remove
    // it, so the repair below adds the pod back as a new member. Not one
    // that never started: that is the replacement, added while the pod
    // still shows its last refusal (crash-loop back-off).
    if let Some(lost) = members
        .iter()
        .find(|m| m.started && m.ordinal.is_some_and(|i| i < s && o.emptied.contains(&i)))
    {
        return remove_checked(lost, &voters, healthy_voters, o.leader);
    }

    // Scale-in that removed its member but did not lower the StatefulSet yet.
    if r < s && at(s - 1).is_none() {
        return Step::SetReplicas(s - 1);
    }

    // A learner with a pod: promote it once it runs (one learner at a time).
    if let Some(l) = members
        .iter()
        .find(|m| m.learner && m.ordinal.is_some_and(|i| i < s))
    {
        let ordinal = l.ordinal.unwrap_or_default();
        if !l.healthy {
            return Step::Wait(format!("learner {ordinal} is starting"));
        }
        if healthy_voters + 1 < quorum(voters.len() + 1) {
            return Step::Refuse(format!(
                "promoting member {ordinal} needs {} healthy voters, {healthy_voters} of {} are",
                quorum(voters.len() + 1) - 1,
                voters.len()
            ));
        }
        return Step::Promote { id: l.id, ordinal };
    }

    // Repair: a pod within the StatefulSet that is no member (removed by
    // hand, or its member was lost): add it back as a learner.
    if let Some(missing) = (0..s.min(r)).find(|i| at(*i).is_none()) {
        // A claim may hold a removed member's data; an emptied one does not.
        if o.claims.contains(&missing) && !o.emptied.contains(&missing) {
            return Step::DeleteClaim { ordinal: missing };
        }
        return Step::AddLearner { ordinal: missing };
    }

    if r > s {
        if at(s).is_some() {
            return Step::SetReplicas(s + 1);
        }
        if healthy_voters < voters.len() {
            return Step::Wait(format!(
                "{healthy_voters} of {} voters are healthy; scaling out waits for all",
                voters.len()
            ));
        }
        // A claim left by an earlier scale-in holds a removed member's data.
        if o.claims.contains(&s) {
            return Step::DeleteClaim { ordinal: s };
        }
        return Step::AddLearner { ordinal: s };
    }

    if r < s {
        // at(s - 1) is a member here (checked above).
        if let Some(top) = at(s - 1) {
            return remove_checked(top, &voters, healthy_voters, o.leader);
        }
    }

    if o.delete_claims {
        if let Some(c) = o.claims.iter().copied().filter(|c| *c >= s).max() {
            return Step::DeleteClaim { ordinal: c };
        }
    }
    if let Some(step) = rollout::next(&o.rollout, members, o.leader) {
        return step;
    }
    if let Some(u) = members.iter().find(|m| !m.healthy) {
        return Step::Wait(match u.ordinal {
            Some(i) => format!("member {i} is not healthy"),
            None => format!("member {:x} is not healthy", u.id),
        });
    }
    Step::Steady
}

/// Removing `m`: first move leadership off it, and never leave fewer
/// healthy voters than the smaller cluster's quorum.
fn remove_checked(
    m: &Member,
    voters: &[&Member],
    healthy_voters: usize,
    leader: Option<u64>,
) -> Step {
    let name = m
        .ordinal
        .map_or_else(|| format!("{:x}", m.id), |i| i.to_string());
    if m.learner {
        return Step::Remove {
            id: m.id,
            ordinal: m.ordinal,
        };
    }
    if voters.len() <= 1 {
        return Step::Refuse(format!("member {name} is the last voter"));
    }
    if leader == Some(m.id) {
        let to = voters
            .iter()
            .filter(|v| v.id != m.id && v.healthy)
            .min_by_key(|v| (v.ordinal.is_none(), v.ordinal));
        return match to {
            Some(to) => Step::MoveLeader {
                from: m.id,
                to: to.id,
            },
            None => Step::Refuse(format!("member {name} leads and no other voter is healthy")),
        };
    }
    let remaining_healthy = healthy_voters - usize::from(m.healthy);
    if remaining_healthy < quorum(voters.len() - 1) {
        return Step::Refuse(format!(
            "removing member {name} leaves {remaining_healthy} healthy voters of {}, below quorum {}",
            voters.len() - 1,
            quorum(voters.len() - 1)
        ));
    }
    Step::Remove {
        id: m.id,
        ordinal: m.ordinal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voter(i: u32) -> Member {
        Member {
            id: 0x100 + u64::from(i),
            ordinal: Some(i),
            learner: false,
            healthy: true,
            started: true,
            applied: 0,
        }
    }
    fn learner(i: u32, healthy: bool) -> Member {
        Member {
            learner: true,
            healthy,
            started: healthy,
            ..voter(i)
        }
    }
    fn id(i: u32) -> u64 {
        0x100 + u64::from(i)
    }
    fn obs(desired: u32, replicas: u32, members: Vec<Member>) -> Observed {
        Observed {
            desired,
            replicas,
            members: Some(members),
            leader: Some(id(0)),
            ..Observed::default()
        }
    }

    #[test]
    fn steady_when_everything_matches() {
        let o = obs(3, 3, (0..3).map(voter).collect());
        assert_eq!(next_step(&o), Step::Steady);
    }

    #[test]
    fn waits_while_no_member_answers() {
        let o = Observed {
            desired: 3,
            replicas: 3,
            ..Observed::default()
        };
        assert!(matches!(next_step(&o), Step::Wait(_)));
    }

    /// Drives the planner like the reconciler does, applying each step to a
    /// model of the cluster, and returns the steps taken.
    fn drive(mut o: Observed, max: usize) -> (Vec<Step>, Observed) {
        let mut steps = Vec::new();
        for _ in 0..max {
            let step = next_step(&o);
            let members = o.members.as_mut().unwrap();
            match &step {
                Step::Steady
                | Step::Wait(_)
                | Step::Refuse(_)
                | Step::Halt(_)
                | Step::QuorumLost(_) => {
                    steps.push(step);
                    return (steps, o);
                }
                Step::Roll { .. } => unreachable!("nothing is outdated in these models"),
                Step::AddLearner { ordinal } => members.push(learner(*ordinal, false)),
                Step::SetReplicas(n) => {
                    // The new pod starts and its learner becomes healthy.
                    for m in members.iter_mut() {
                        if m.ordinal.is_some_and(|i| i < *n) {
                            m.healthy = true;
                        }
                    }
                    for i in o.replicas..*n {
                        if !o.claims.contains(&i) {
                            o.claims.push(i);
                        }
                    }
                    o.replicas = *n;
                }
                Step::Promote { id, .. } => {
                    members.iter_mut().find(|m| m.id == *id).unwrap().learner = false
                }
                Step::MoveLeader { to, .. } => o.leader = Some(*to),
                Step::Remove { id, .. } => members.retain(|m| m.id != *id),
                Step::DeleteClaim { ordinal } => o.claims.retain(|c| c != ordinal),
            }
            steps.push(step);
        }
        panic!("no steady state after {max} steps: {steps:?}");
    }

    #[test]
    fn scale_out_3_to_5_adds_learners_one_at_a_time() {
        let (steps, o) = drive(obs(5, 3, (0..3).map(voter).collect()), 20);
        assert_eq!(
            steps,
            vec![
                Step::AddLearner { ordinal: 3 },
                Step::SetReplicas(4),
                Step::Promote {
                    id: id(3),
                    ordinal: 3
                },
                Step::AddLearner { ordinal: 4 },
                Step::SetReplicas(5),
                Step::Promote {
                    id: id(4),
                    ordinal: 4
                },
                Step::Steady,
            ]
        );
        assert_eq!(o.replicas, 5);
    }

    #[test]
    fn scale_in_5_to_3_moves_leadership_off_the_leaving_member() {
        let mut o = obs(3, 5, (0..5).map(voter).collect());
        o.leader = Some(id(4));
        o.claims = (0..5).collect();
        o.delete_claims = true;
        let (steps, o) = drive(o, 20);
        assert_eq!(
            steps,
            vec![
                Step::MoveLeader {
                    from: id(4),
                    to: id(0)
                },
                Step::Remove {
                    id: id(4),
                    ordinal: Some(4)
                },
                Step::SetReplicas(4),
                Step::Remove {
                    id: id(3),
                    ordinal: Some(3)
                },
                Step::SetReplicas(3),
                Step::DeleteClaim { ordinal: 4 },
                Step::DeleteClaim { ordinal: 3 },
                Step::Steady,
            ]
        );
        assert_eq!(o.claims, vec![0, 1, 2]);
    }

    #[test]
    fn kept_claims_stay_until_their_ordinal_is_reused() {
        let mut o = obs(2, 3, (0..3).map(voter).collect());
        o.claims = vec![0, 1, 2];
        let (steps, mut o) = drive(o, 10);
        assert_eq!(steps.last(), Some(&Step::Steady));
        assert_eq!(o.claims, vec![0, 1, 2]);
        // Scaling out again first drops the removed member's stale data.
        o.desired = 3;
        assert_eq!(next_step(&o), Step::DeleteClaim { ordinal: 2 });
    }

    #[test]
    fn resumes_after_a_crash_between_add_and_raising_the_statefulset() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members.push(learner(3, false));
        assert_eq!(next_step(&obs(5, 3, members)), Step::SetReplicas(4));
    }

    #[test]
    fn resumes_after_a_crash_between_raising_and_promoting() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members.push(learner(3, false));
        assert!(matches!(
            next_step(&obs(5, 4, members.clone())),
            Step::Wait(_)
        ));
        members[3].healthy = true;
        assert_eq!(
            next_step(&obs(5, 4, members)),
            Step::Promote {
                id: id(3),
                ordinal: 3
            }
        );
    }

    #[test]
    fn resumes_after_a_crash_between_remove_and_lowering() {
        let members: Vec<Member> = (0..4).map(voter).collect();
        assert_eq!(next_step(&obs(3, 5, members)), Step::SetReplicas(4));
    }

    #[test]
    fn an_add_whose_scale_out_was_called_off_is_removed() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members.push(learner(3, false));
        assert_eq!(
            next_step(&obs(3, 3, members)),
            Step::Remove {
                id: id(3),
                ordinal: Some(3)
            }
        );
    }

    #[test]
    fn a_missing_member_inside_the_statefulset_is_added_back() {
        let members = vec![voter(0), voter(2)];
        assert_eq!(
            next_step(&obs(3, 3, members)),
            Step::AddLearner { ordinal: 1 }
        );
        let mut o = obs(3, 3, vec![voter(0), voter(2)]);
        o.claims = vec![0, 1, 2];
        assert_eq!(next_step(&o), Step::DeleteClaim { ordinal: 1 });
    }

    #[test]
    fn a_member_whose_volume_was_lost_is_removed_then_added_back() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members[1].healthy = false;
        let mut o = obs(3, 3, members);
        o.claims = vec![0, 1, 2];
        o.emptied = vec![1];
        assert_eq!(
            next_step(&o),
            Step::Remove {
                id: id(1),
                ordinal: Some(1)
            }
        );
        o.members.as_mut().unwrap().retain(|m| m.id != id(1));
        // Its (fresh) claim stays: the pod joins with it as a learner.
        assert_eq!(next_step(&o), Step::AddLearner { ordinal: 1 });
        // The pod still shows its last refusal while it backs off; the new
        // learner, never started, is the replacement: wait for it.
        o.members.as_mut().unwrap().push(Member {
            id: 0x901,
            ..learner(1, false)
        });
        assert!(
            matches!(next_step(&o), Step::Wait(_)),
            "{:?}",
            next_step(&o)
        );
    }

    #[test]
    fn a_lost_member_is_not_removed_when_that_would_lose_quorum() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members[1].healthy = false;
        members[2].healthy = false;
        let mut o = obs(3, 3, members);
        o.emptied = vec![1];
        assert!(matches!(next_step(&o), Step::Refuse(_)));
    }

    #[test]
    fn removal_that_would_lose_quorum_is_refused() {
        // 3 voters, member 1 down: removing member 2 leaves 1 healthy of 2.
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members[1].healthy = false;
        assert!(matches!(next_step(&obs(2, 3, members)), Step::Refuse(_)));
    }

    #[test]
    fn removing_an_unhealthy_top_member_is_allowed() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members[2].healthy = false;
        assert_eq!(
            next_step(&obs(2, 3, members)),
            Step::Remove {
                id: id(2),
                ordinal: Some(2)
            }
        );
    }

    #[test]
    fn the_last_voter_is_never_removed() {
        let o = obs(1, 2, vec![voter(1)]);
        // Member 0 is missing and member 1 is the last voter: member 0 is
        // added back; member 1 is never removed while it is the only voter.
        assert!(!matches!(next_step(&o), Step::Remove { .. }));
        let only = Observed {
            desired: 1,
            replicas: 1,
            members: Some(vec![voter(0)]),
            ..Observed::default()
        };
        assert_eq!(next_step(&only), Step::Steady);
    }

    #[test]
    fn scale_out_waits_for_unhealthy_voters() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members[0].healthy = false;
        assert!(matches!(next_step(&obs(4, 3, members)), Step::Wait(_)));
    }

    #[test]
    fn leader_leaving_with_no_healthy_peer_is_refused() {
        let mut members: Vec<Member> = (0..2).map(voter).collect();
        members[0].healthy = false;
        let mut o = obs(1, 2, members);
        o.leader = Some(id(1));
        assert!(matches!(next_step(&o), Step::Refuse(_)));
    }

    #[test]
    fn a_foreign_member_is_left_alone() {
        let mut members: Vec<Member> = (0..3).map(voter).collect();
        members.push(Member {
            id: 9,
            ordinal: None,
            learner: false,
            healthy: true,
            started: true,
            applied: 0,
        });
        assert_eq!(next_step(&obs(3, 3, members)), Step::Steady);
    }
}

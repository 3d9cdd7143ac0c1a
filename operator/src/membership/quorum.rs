//! Quorum loss: fewer voters answer than a quorum needs, so the cluster
//! can take no write and no membership change. After `quorumLossAfterSeconds`
//! the operator names the answering voter with the highest applied index
//! (the survivor) and, approved or `Automatic`, restarts it with
//! `--force-new-cluster-once` (one force, never repeated by a restart);
//! once it runs as a one-member cluster the planner adds the other pods
//! back as new learners. Pure: the stages are unit tests.

use super::etcd::{ClusterView, ListedMember};
use super::plan::Step;
use crate::crd::{QuorumLossMode, QuorumLossStatus, Recovery};
use crate::names::{ClusterNames, RECOVER_ANNOTATION};
use k8s_openapi::jiff::Timestamp;

pub const LOST: &str = "Lost";
pub const RECOVERING: &str = "Recovering";
pub const RECOVERED: &str = "Recovered";

/// What the decision needs besides the observed members.
pub struct QuorumInput<'a> {
    pub view: &'a ClusterView,
    pub names: &'a ClusterNames,
    /// The status's record, from the last reconcile.
    pub prev: Option<&'a QuorumLossStatus>,
    pub recovery: Recovery,
    /// The pod the approval annotation names.
    pub approved: Option<&'a str>,
    pub now: Timestamp,
    /// The StatefulSet controller has not seen the latest template yet.
    pub template_pending: bool,
    /// Whether this ordinal's pod runs the StatefulSet's current template.
    pub pod_current: &'a dyn Fn(u32) -> bool,
}

/// The record to keep (`None`: no record) and, while the quorum is lost or
/// being recovered, the step instead of the planner's.
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub record: Option<QuorumLossStatus>,
    pub step: Option<Step>,
}

fn ordinal(names: &ClusterNames, m: &ListedMember) -> Option<u32> {
    use super::etcd::Placement;
    m.peer_urls
        .iter()
        .find_map(|u| names.ordinal_of_peer_url(u))
}

fn member_name(names: &ClusterNames, m: &ListedMember) -> String {
    ordinal(names, m).map_or_else(|| format!("{:x}", m.id), |i| names.pod_name(i))
}

/// The voters that answer and the voters in all, when fewer answer than a
/// quorum needs (and at least one does).
fn lost_quorum(view: &ClusterView) -> Option<(Vec<&ListedMember>, Vec<&ListedMember>)> {
    let voters: Vec<&ListedMember> = view.members.iter().filter(|m| !m.learner).collect();
    let answering: Vec<&ListedMember> = voters.iter().copied().filter(|m| m.answered()).collect();
    let quorum = voters.len() / 2 + 1;
    (!view.linearizable && !answering.is_empty() && answering.len() < quorum)
        .then_some((answering, voters))
}

/// The stage after this observation.
pub fn decide(i: &QuorumInput) -> Decision {
    let names = i.names;
    if let Some(p) = i.prev.filter(|p| p.stage == RECOVERING) {
        return recovering(i, p);
    }
    let Some((answering, voters)) = lost_quorum(i.view) else {
        // A quorum answers: a reported loss healed on its own is no news;
        // a recovery stays on record.
        let record = i.prev.filter(|p| p.stage == RECOVERED).cloned();
        return Decision { record, step: None };
    };
    // The survivor must be one of the StatefulSet's pods: it is restarted.
    let survivor = answering
        .iter()
        .filter_map(|m| Some((ordinal(names, m)?, *m)))
        .max_by_key(|(o, m)| (m.applied, std::cmp::Reverse(*o)));
    let since = i
        .prev
        .filter(|p| p.stage == LOST)
        .map(|p| p.since.clone())
        .unwrap_or_else(|| i.now.to_string());
    let mut lost: Vec<String> = voters
        .iter()
        .filter(|m| !m.answered())
        .map(|m| member_name(names, m))
        .collect();
    lost.sort();
    let mut record = QuorumLossStatus {
        since: since.clone(),
        stage: LOST.into(),
        lost: lost.clone(),
        ..QuorumLossStatus::default()
    };
    let head = format!(
        "quorum lost: {} of {} voters answer ({} do not)",
        answering.len(),
        voters.len(),
        lost.join(", ")
    );
    let Some((o, s)) = survivor else {
        record.message = format!("{head}; none of those answering is a pod of this cluster");
        let step = Step::QuorumLost(record.message.clone());
        return Decision {
            record: Some(record),
            step: Some(step),
        };
    };
    let pod = names.pod_name(o);
    record.survivor = Some(pod.clone());
    record.survivor_id = Some(format!("{:x}", s.id));
    record.applied_index = s.applied;
    record.revision = s.revision;
    let plan = format!(
        "recovery restarts {pod} (applied index {}, revision {}) as a one-member cluster and \
         adds the others back as new members: every write up to revision {} stays, what only \
         {} held is lost",
        s.applied,
        s.revision,
        s.revision,
        lost.join(", ")
    );
    let lost_for = since
        .parse::<Timestamp>()
        .ok()
        .and_then(|t| i.now.duration_since(t).as_secs().try_into().ok())
        .unwrap_or(0u64);
    let after = u64::from(i.recovery.quorum_loss_after_seconds);
    let automatic = i.recovery.quorum_loss == QuorumLossMode::Automatic;
    let approved = i.approved == Some(pod.as_str());
    let message = if lost_for < after {
        format!("{head} for {lost_for} s; recovery is offered after {after} s: {plan}")
    } else if automatic || approved {
        record.stage = RECOVERING.into();
        record.token = Some(i.now.as_second().to_string());
        record.message = format!("{head}; recovering: {plan}");
        return Decision {
            record: Some(record),
            step: Some(Step::Wait(format!("recovery from {pod} starts"))),
        };
    } else {
        let other = match i.approved {
            Some(a) => format!(" (the annotation names {a}, not the survivor)"),
            None => String::new(),
        };
        format!("{head}; {plan}; to recover, annotate the EtcdCluster {RECOVER_ANNOTATION}={pod}{other}")
    };
    record.message = message.clone();
    Decision {
        record: Some(record),
        step: Some(Step::QuorumLost(message)),
    }
}

/// A recovery under way: replace the survivor's pod once the template
/// carries the force, then wait until it runs alone.
fn recovering(i: &QuorumInput, p: &QuorumLossStatus) -> Decision {
    let names = i.names;
    let survivor = p.survivor.as_deref().and_then(|s| names.ordinal_of(s));
    let Some(o) = survivor else {
        // Not a record this operator wrote: drop it.
        return Decision {
            record: None,
            step: None,
        };
    };
    let pod = names.pod_name(o);
    let voters: Vec<&ListedMember> = i.view.members.iter().filter(|m| !m.learner).collect();
    let alone = i.view.linearizable
        && voters.len() == 1
        && voters[0].healthy
        && ordinal(names, voters[0]) == Some(o);
    if alone {
        let mut record = p.clone();
        record.stage = RECOVERED.into();
        record.recovered = Some(i.now.to_string());
        record.message = format!(
            "{pod} runs as a one-member cluster from revision {}; {} are added back as new members",
            p.revision,
            p.lost.join(", ")
        );
        return Decision {
            record: Some(record),
            step: None,
        };
    }
    if i.template_pending {
        return Decision {
            record: Some(p.clone()),
            step: Some(Step::Wait(
                "the StatefulSet controller has not seen the template with the force yet".into(),
            )),
        };
    }
    if !(i.pod_current)(o) {
        if lost_quorum(i.view).is_none() && i.view.linearizable {
            // The quorum came back before the survivor was restarted with
            // the force: nothing to recover any more.
            return Decision {
                record: None,
                step: None,
            };
        }
        // The others first: their pods restart joining only (the template
        // says `--initial-cluster-state=existing`), so that the ones with
        // an empty volume cannot bootstrap a cluster of their own with the
        // same IDs while the survivor restarts.
        let others = p.lost.iter().filter_map(|n| names.ordinal_of(n));
        if let Some(other) = others.filter(|x| !(i.pod_current)(*x)).max() {
            return Decision {
                record: Some(p.clone()),
                step: Some(Step::Roll { ordinal: other }),
            };
        }
        return Decision {
            record: Some(p.clone()),
            step: Some(Step::Roll { ordinal: o }),
        };
    }
    Decision {
        record: Some(p.clone()),
        step: Some(Step::Wait(format!(
            "{pod} restarts with --force-new-cluster as a one-member cluster"
        ))),
    }
}

/// The `--force-new-cluster-once` value the members run with while a
/// recovery is under way.
pub fn force_once(status: Option<&QuorumLossStatus>) -> Option<String> {
    let q = status.filter(|q| q.stage == RECOVERING)?;
    Some(format!(
        "{}/{}",
        q.survivor.as_deref()?,
        q.token.as_deref()?
    ))
}

#[cfg(test)]
mod tests;

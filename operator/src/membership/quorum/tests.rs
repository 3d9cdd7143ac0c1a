use super::*;
use crate::render::tests::cluster;

fn names() -> ClusterNames {
    ClusterNames::of(&cluster(3))
}

/// Voter `i`; `answered` with this applied index (revision ten times it).
fn voter(i: u32, applied: Option<u64>, healthy: bool) -> ListedMember {
    ListedMember {
        id: 0x100 + u64::from(i),
        name: names().pod_name(i),
        peer_urls: vec![names().peer_url(i)],
        client_urls: vec![names().client_url(i)],
        learner: false,
        healthy,
        db_size: applied.map(|_| (1 << 20, 1 << 19)),
        applied: applied.unwrap_or(0),
        revision: applied.map_or(0, |a| a as i64 * 10),
    }
}

fn view(members: Vec<ListedMember>, linearizable: bool) -> ClusterView {
    ClusterView {
        cluster_id: 7,
        leader: None,
        members,
        linearizable,
    }
}

/// One of three answers, without a leader.
fn lost_view() -> ClusterView {
    view(
        vec![
            voter(0, Some(40), false),
            voter(1, None, false),
            voter(2, None, false),
        ],
        false,
    )
}

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

struct Case {
    view: ClusterView,
    prev: Option<QuorumLossStatus>,
    recovery: Recovery,
    approved: Option<&'static str>,
    now: Timestamp,
    current: Vec<u32>,
    pending: bool,
}

impl Case {
    fn new(view: ClusterView) -> Case {
        Case {
            view,
            prev: None,
            recovery: Recovery {
                quorum_loss: QuorumLossMode::Manual,
                quorum_loss_after_seconds: 60,
            },
            approved: None,
            now: at(0),
            current: Vec::new(),
            pending: false,
        }
    }

    fn decide(&self) -> Decision {
        let names = names();
        let current = |o: u32| self.current.contains(&o);
        decide(&QuorumInput {
            view: &self.view,
            names: &names,
            prev: self.prev.as_ref(),
            recovery: self.recovery.clone(),
            approved: self.approved,
            now: self.now,
            template_pending: self.pending,
            pod_current: &current,
        })
    }
}

#[test]
fn a_cluster_with_a_quorum_has_nothing_to_recover() {
    let healthy = view(
        vec![
            voter(0, Some(9), true),
            voter(1, Some(9), true),
            voter(2, None, false),
        ],
        true,
    );
    assert_eq!(
        Case::new(healthy).decide(),
        Decision {
            record: None,
            step: None
        }
    );
}

#[test]
fn a_lost_quorum_is_reported_with_the_survivor_and_what_would_be_lost() {
    let d = Case::new(lost_view()).decide();
    let r = d.record.expect("a record");
    assert_eq!(r.stage, LOST);
    assert_eq!(r.since, at(0).to_string());
    assert_eq!(r.survivor.as_deref(), Some("demo-0"));
    assert_eq!(r.survivor_id.as_deref(), Some("100"));
    assert_eq!((r.applied_index, r.revision), (40, 400));
    assert_eq!(r.lost, vec!["demo-1", "demo-2"]);
    let Some(Step::QuorumLost(why)) = d.step else {
        panic!("{:?}", d.step)
    };
    assert!(why.contains("1 of 3 voters answer"), "{why}");
    assert!(why.contains("offered after 60 s"), "{why}");
    assert!(
        why.contains("every write up to revision 400 stays"),
        "{why}"
    );
}

#[test]
fn the_survivor_is_the_answering_voter_furthest_ahead() {
    let mut members: Vec<ListedMember> = (0..5).map(|i| voter(i, None, false)).collect();
    members[1] = voter(1, Some(70), false);
    members[3] = voter(3, Some(90), false);
    let r = Case::new(view(members, false)).decide().record.unwrap();
    assert_eq!(r.survivor.as_deref(), Some("demo-3"));
    assert_eq!(r.lost, vec!["demo-0", "demo-2", "demo-4"]);
}

#[test]
fn manual_recovery_waits_for_the_annotation_naming_the_survivor() {
    let first = Case::new(lost_view()).decide().record;
    let mut c = Case::new(lost_view());
    c.prev = first;
    c.now = at(61);
    let d = c.decide();
    let r = d.record.clone().unwrap();
    // The loss keeps its start.
    assert_eq!(
        (r.stage.as_str(), r.since.clone()),
        (LOST, at(0).to_string())
    );
    let Some(Step::QuorumLost(why)) = &d.step else {
        panic!("{:?}", d.step)
    };
    assert!(
        why.contains("annotate the EtcdCluster ferrocd.dev/recover-quorum-from=demo-0"),
        "{why}"
    );
    c.approved = Some("demo-1");
    let Some(Step::QuorumLost(why)) = c.decide().step else {
        panic!("not reported")
    };
    assert!(why.contains("names demo-1, not the survivor"), "{why}");
    c.approved = Some("demo-0");
    let d = c.decide();
    let r = d.record.unwrap();
    assert_eq!(r.stage, RECOVERING);
    assert_eq!(r.token, Some((T0 + 61).to_string()));
    assert_eq!(
        d.step,
        Some(Step::Wait("recovery from demo-0 starts".into()))
    );
    assert_eq!(force_once(Some(&r)), Some(format!("demo-0/{}", T0 + 61)));
}

#[test]
fn automatic_recovery_starts_after_the_delay_only() {
    let mut c = Case::new(lost_view());
    c.recovery.quorum_loss = QuorumLossMode::Automatic;
    let first = c.decide();
    assert_eq!(first.record.as_ref().unwrap().stage, LOST);
    c.prev = first.record;
    c.now = at(30);
    assert_eq!(c.decide().record.unwrap().stage, LOST);
    c.now = at(60);
    assert_eq!(c.decide().record.unwrap().stage, RECOVERING);
}

fn recovering_case() -> Case {
    let mut c = Case::new(lost_view());
    c.recovery.quorum_loss = QuorumLossMode::Automatic;
    c.recovery.quorum_loss_after_seconds = 10;
    c.now = at(20);
    c.prev = Case::new(lost_view()).decide().record;
    c.prev = c.decide().record;
    assert_eq!(c.prev.as_ref().unwrap().stage, RECOVERING);
    c
}

#[test]
fn a_recovery_replaces_the_survivors_pod_then_waits_for_it_alone() {
    let mut c = recovering_case();
    c.pending = true;
    assert!(
        matches!(c.decide().step, Some(Step::Wait(_))),
        "no roll before the template"
    );
    c.pending = false;
    // The template carries the force; the lost members' pods restart on
    // it first (joining only), then the survivor's.
    assert_eq!(c.decide().step, Some(Step::Roll { ordinal: 2 }));
    c.current = vec![2];
    assert_eq!(c.decide().step, Some(Step::Roll { ordinal: 1 }));
    c.current = vec![1, 2];
    assert_eq!(c.decide().step, Some(Step::Roll { ordinal: 0 }));
    // An operator that crashed after the roll: the same record, a wait.
    c.current = vec![0, 1, 2];
    let d = c.decide();
    assert_eq!(d.record, c.prev);
    assert!(matches!(d.step, Some(Step::Wait(_))), "{:?}", d.step);
    // It runs alone: recovered; the planner takes over (adds the others).
    c.view = view(vec![voter(0, Some(41), true)], true);
    let d = c.decide();
    assert_eq!(d.step, None);
    let r = d.record.unwrap();
    assert_eq!(r.stage, RECOVERED);
    assert_eq!(r.recovered, Some(at(20).to_string()));
    assert_eq!(force_once(Some(&r)), None, "no force once recovered");
    // The record stays once the cluster is whole again.
    let mut later = Case::new(view(
        (0..3).map(|i| voter(i, Some(60), true)).collect(),
        true,
    ));
    later.prev = Some(r.clone());
    assert_eq!(later.decide().record, Some(r));
}

#[test]
fn a_quorum_back_before_the_survivor_restarts_cancels_the_recovery() {
    let mut c = recovering_case();
    c.view = view((0..3).map(|i| voter(i, Some(50), true)).collect(), true);
    assert_eq!(
        c.decide(),
        Decision {
            record: None,
            step: None
        }
    );
}

#[test]
fn a_loss_that_healed_on_its_own_leaves_no_record() {
    let mut c = Case::new(view(
        (0..3).map(|i| voter(i, Some(50), true)).collect(),
        true,
    ));
    c.prev = Case::new(lost_view()).decide().record;
    assert_eq!(c.decide().record, None);
}

//! etcd's watch guarantees, checked on each recorded stream against the
//! reference history:
//! - ordered: revisions only go up, across messages strictly;
//! - unique: an event is delivered once;
//! - atomic: a revision's events arrive together, all of them;
//! - reliable: no revision the watch covers is skipped;
//! - resumable: a watch asked again from a revision goes on from there;
//! - bookmarkable: progress notifications never go backward, and nothing
//!   at or below one arrives after it;
//! - prev_kv and is_create correct, filters (prefix, no-delete) respected.

use crate::history::{Event, WatchMessage, WatchStream};
use crate::reference::{by_revision, Reference};

/// Every guarantee `stream` breaks, given that the watch was kept up until
/// the store's revision `last_rev` had been delivered.
pub fn check_stream(stream: &WatchStream, reference: &Reference, last_rev: i64) -> Vec<String> {
    let spec = &stream.spec;
    let wanted = |e: &Event| e.kv.key.starts_with(&spec.prefix) && !(spec.no_delete && e.delete);
    // The revisions this watch must deliver, with their events.
    let expected: Vec<(i64, Vec<Event>)> = reference
        .events
        .range(spec.start_rev..)
        .map(|(rev, events)| (*rev, events.iter().filter(|e| wanted(e)).cloned().collect()))
        .filter(|(_, events): &(i64, Vec<Event>)| !events.is_empty())
        .collect();
    let mut problems = Vec::new();
    let mut say = |p: String| problems.push(format!("{}: {p}", stream.name));
    let mut next = 0usize; // index into `expected` of the next revision due
    let mut last_event = 0i64;
    let mut last_progress = 0i64;
    let mut resume_from = spec.start_rev;
    for m in &stream.messages {
        match m {
            WatchMessage::Events { events, .. } => {
                if events.is_empty() {
                    say("a message without events".into());
                }
                for e in events {
                    if !wanted(e) {
                        say(format!("filter not respected: {e:?}"));
                    }
                }
                for (rev, group) in by_revision(events) {
                    if rev <= last_event {
                        let kind = if group.iter().any(|e| {
                            reference
                                .events
                                .get(&rev)
                                .is_some_and(|all| all.contains(e))
                                && rev == last_event
                        }) {
                            "unique"
                        } else {
                            "ordered"
                        };
                        say(format!("{kind}: revision {rev} after {last_event}"));
                        continue;
                    }
                    if rev < resume_from {
                        say(format!(
                            "resumable: revision {rev} below the resume point {resume_from}"
                        ));
                    }
                    if rev <= last_progress {
                        say(format!(
                            "bookmarkable: revision {rev} after progress at {last_progress}"
                        ));
                    }
                    match expected.get(next) {
                        Some((due, events)) if *due == rev => {
                            if *events != group {
                                say(format!(
                                    "atomic: revision {rev} delivered as {group:?}, it holds {events:?}"
                                ));
                            }
                            next += 1;
                        }
                        Some((due, _)) if *due < rev => {
                            say(format!("reliable: revision {due} skipped, got {rev}"));
                            next = expected.partition_point(|(r, _)| *r <= rev);
                        }
                        _ => {
                            say(format!("revision {rev} not in the history: {group:?}"));
                        }
                    }
                    for e in &group {
                        check_event(e, reference, &mut say);
                    }
                    last_event = rev;
                }
            }
            WatchMessage::Progress { rev } => {
                if *rev < last_progress {
                    say(format!(
                        "bookmarkable: progress went back from {last_progress} to {rev}"
                    ));
                }
                if let Some((due, _)) = expected.get(next) {
                    if *due <= *rev {
                        say(format!(
                            "reliable: progress at {rev} before revision {due} was delivered"
                        ));
                    }
                }
                last_progress = last_progress.max(*rev);
            }
            WatchMessage::Resumed { resume_from: from } => {
                let delivered = last_event.max(last_progress);
                if *from > delivered + 1 && *from > spec.start_rev {
                    say(format!(
                        "resumable: asked again from {from} though only {delivered} was delivered"
                    ));
                }
                resume_from = *from;
            }
        }
    }
    if let Some((due, _)) = expected.get(next) {
        if *due <= last_rev {
            say(format!(
                "reliable: revision {due} never delivered (watched up to {last_rev})"
            ));
        }
    }
    problems
}

/// prev_kv and is_create of one delivered event.
fn check_event(e: &Event, reference: &Reference, say: &mut impl FnMut(String)) {
    let rev = e.kv.mod_rev;
    let before = reference.kv_at(&e.kv.key, rev - 1);
    if e.prev != before {
        say(format!(
            "prev_kv of {} at {rev} is {:?}, it was {before:?}",
            e.kv.key, e.prev
        ));
    }
    if !e.delete && (e.kv.create_rev == rev) != before.is_none() {
        say(format!(
            "is_create of {} at {rev} wrong: {:?} after {before:?}",
            e.kv.key, e.kv
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{kv, Kv, WatchSpec};

    /// Revisions 2..=5: a put, a second key, an update with a third key
    /// (one transaction), a delete.
    fn history() -> Vec<Event> {
        let put = |kv: Kv, prev: Option<Kv>| Event {
            delete: false,
            kv,
            prev,
        };
        vec![
            put(kv("/a", "1", 2, 2, 1), None),
            put(kv("/b", "1", 3, 3, 1), None),
            put(kv("/a", "2", 2, 4, 2), Some(kv("/a", "1", 2, 2, 1))),
            put(kv("/c", "1", 4, 4, 1), None),
            Event {
                delete: true,
                kv: kv("/b", "", 0, 5, 0),
                prev: Some(kv("/b", "1", 3, 3, 1)),
            },
        ]
    }

    fn stream(prefix: &str, no_delete: bool, messages: Vec<WatchMessage>) -> WatchStream {
        WatchStream {
            name: "w".into(),
            spec: WatchSpec {
                prefix: prefix.into(),
                start_rev: 1,
                no_delete,
            },
            messages,
        }
    }

    fn msg(events: &[Event]) -> WatchMessage {
        WatchMessage::Events {
            header_rev: events.last().map(|e| e.kv.mod_rev).unwrap_or(0),
            events: events.to_vec(),
        }
    }

    fn reference() -> Reference {
        let h = history();
        let per_rev = by_revision(&h).into_iter().map(|(_, g)| msg(&g));
        let full = stream("", false, per_rev.collect());
        let r = Reference::build(&[full], 5).unwrap();
        assert!(r.self_check().is_empty());
        r
    }

    fn broken(messages: Vec<WatchMessage>, prefix: &str, no_delete: bool) -> Vec<String> {
        check_stream(&stream(prefix, no_delete, messages), &reference(), 5)
    }

    fn assert_caught(problems: Vec<String>, guarantee: &str) {
        assert!(
            problems.iter().any(|p| p.contains(guarantee)),
            "{guarantee} not caught: {problems:?}"
        );
    }

    #[test]
    fn a_correct_stream_with_progress_and_a_resume_passes() {
        let h = history();
        let ok = vec![
            msg(&h[..2]),
            WatchMessage::Progress { rev: 3 },
            WatchMessage::Resumed { resume_from: 4 },
            msg(&h[2..4]),
            msg(&h[4..]),
            WatchMessage::Progress { rev: 5 },
        ];
        assert_eq!(broken(ok, "", false), Vec::<String>::new());
        let filtered = vec![msg(&h[..1]), msg(&h[2..3])];
        assert_eq!(broken(filtered, "/a", true), Vec::<String>::new());
    }

    #[test]
    fn each_broken_guarantee_is_caught() {
        let h = history();
        let all = |msgs: &[&[Event]]| msgs.iter().map(|m| msg(m)).collect::<Vec<_>>();
        assert_caught(
            broken(all(&[&h[1..2], &h[0..1], &h[2..]]), "", false),
            "ordered",
        );
        assert_caught(
            broken(all(&[&h[0..2], &h[1..2], &h[2..]]), "", false),
            "unique",
        );
        // Revision 4's two events in two messages.
        let split = all(&[&h[..2], &h[2..3], &h[3..4], &h[4..]]);
        assert_caught(broken(split, "", false), "atomic");
        assert_caught(broken(all(&[&h[0..1], &h[2..]]), "", false), "reliable");
        let resumed_late = vec![
            msg(&h[0..1]),
            WatchMessage::Resumed { resume_from: 4 },
            msg(&h[2..]),
        ];
        assert_caught(broken(resumed_late, "", false), "resumable");
        let back = vec![
            msg(&h[..2]),
            WatchMessage::Progress { rev: 3 },
            WatchMessage::Progress { rev: 2 },
            msg(&h[2..]),
        ];
        assert_caught(broken(back, "", false), "bookmarkable");
        let early = vec![
            msg(&h[..1]),
            WatchMessage::Progress { rev: 4 },
            msg(&h[1..]),
        ];
        assert_caught(broken(early, "", false), "bookmarkable");
        let mut wrong_prev = h.clone();
        wrong_prev[2].prev = None;
        assert_caught(broken(vec![msg(&wrong_prev)], "", false), "prev_kv");
        let mut not_created = h.clone();
        not_created[2].kv.create_rev = 4;
        assert_caught(broken(vec![msg(&not_created)], "", false), "is_create");
        assert_caught(broken(vec![msg(&h)], "/a", false), "filter");
        assert_caught(broken(all(&[&h[0..1], &h[2..]]), "", true), "filter");
        assert_caught(broken(vec![msg(&h[..4])], "", false), "never delivered");
    }

    #[test]
    fn watchers_that_disagree_or_miss_a_revision_make_no_reference() {
        let h = history();
        let mut other = h.clone();
        other[1].kv.value = "changed".into();
        let a = stream("", false, vec![msg(&h)]);
        let b = stream("", false, vec![msg(&other)]);
        let why = Reference::build(&[a.clone(), b], 5).unwrap_err();
        assert!(why[0].contains("disagree at revision 3"), "{why:?}");
        let gap = stream("", false, vec![msg(&h[..1]), msg(&h[2..])]);
        let why = Reference::build(&[gap], 5).unwrap_err();
        assert!(why[0].contains("revision 3"), "{why:?}");
    }
}

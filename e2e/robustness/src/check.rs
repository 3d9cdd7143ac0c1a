//! Every checker over one recorded history: the reference write history
//! from the watches, each watch stream's guarantees, every answer against
//! the history at its revision, and linearizability of the operations.

use crate::history::History;
use crate::linearizability::{self, Verdict};
use crate::patch::prepare;
use crate::reference::Reference;
use crate::watch_check::check_stream;
use std::time::{Duration, Instant};

/// How long the linearizability search may take: a minute (a 25 s
/// history took 0.2-20 s on a loaded machine), and 2 ms more per operation
/// for long runs.
fn search_budget(operations: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(2) * operations as u32
}

#[derive(Debug)]
pub struct Findings {
    pub violations: Vec<String>,
    pub linearizability: String,
    pub checked_operations: usize,
    pub check_time: Duration,
}

pub fn check(history: &History, last_rev: i64) -> Findings {
    let started = Instant::now();
    let reference = match Reference::build(&history.watches, last_rev) {
        Ok(r) => r,
        Err(problems) => {
            return Findings {
                violations: problems,
                linearizability: "not checked: no reference history".into(),
                checked_operations: 0,
                check_time: started.elapsed(),
            }
        }
    };
    eprintln!(
        "check: reference of {} revisions in {:?}",
        reference.events.len(),
        started.elapsed()
    );
    let mut violations = reference.self_check();
    for w in &history.watches {
        violations.extend(check_stream(w, &reference, last_rev));
    }
    for op in &history.operations {
        if let Some(v) = reference.check_answer(&op.request, &op.response) {
            violations.push(format!("client {}: {v}", op.client));
        }
    }
    eprintln!("check: watches and answers in {:?}", started.elapsed());
    let ops = prepare(&history.operations, &reference);
    eprintln!(
        "check: searching a linearization of {} operations ({} with unknown outcome)",
        ops.len(),
        ops.iter().filter(|o| o.ret.is_none()).count()
    );
    let verdict = linearizability::check(&ops, search_budget(ops.len()));
    let linearizability = match verdict {
        Verdict::Linearizable => "linearizable".to_string(),
        Verdict::Violation(why) => {
            violations.push(why.clone());
            "VIOLATION".into()
        }
        Verdict::Unknown(why) => {
            violations.push(format!("linearizability not decided: {why}"));
            "UNDECIDED".into()
        }
    };
    Findings {
        violations,
        linearizability,
        checked_operations: ops.len(),
        check_time: started.elapsed(),
    }
}

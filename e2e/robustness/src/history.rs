//! What the clients did and saw: one record per request (its call and
//! return times, what it asked, what came back) and one per watch
//! response. The checkers read nothing else.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A key's value as a response or an event carries it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_rev: i64,
    pub mod_rev: i64,
    pub version: i64,
    pub lease: i64,
}

/// A value without a lease, for the checkers' unit tests.
#[cfg(test)]
pub(crate) fn kv(key: &str, value: &str, create_rev: i64, mod_rev: i64, version: i64) -> Kv {
    Kv {
        key: key.into(),
        value: value.into(),
        create_rev,
        mod_rev,
        version,
        lease: 0,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A linearizable read of one key.
    Get {
        key: String,
    },
    /// A serializable read of one key (any member, maybe behind).
    StaleGet {
        key: String,
    },
    /// A range over `prefix` of at most `limit` keys (0: all) starting at
    /// `from`, at `revision` (0: the current one).
    List {
        prefix: String,
        from: String,
        limit: i64,
        revision: i64,
    },
    Put {
        key: String,
        value: String,
        lease: i64,
    },
    Delete {
        key: String,
    },
    /// `mod_revision(key) == expected` ? put : nothing (0 means "absent").
    PutIfModRev {
        key: String,
        expected: i64,
        value: String,
    },
    /// `mod_revision(key) == expected` ? delete : nothing.
    DeleteIfModRev {
        key: String,
        expected: i64,
    },
    LeaseGrant {
        id: i64,
    },
    LeaseRevoke {
        id: i64,
    },
    Defragment,
}

impl Request {
    /// Whether the request can change the store.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Request::Get { .. }
                | Request::StaleGet { .. }
                | Request::List { .. }
                | Request::Defragment
        )
    }

    /// The value a put in it writes (every put writes a value of its own).
    pub fn value_written(&self) -> Option<&str> {
        match self {
            Request::Put { value, .. } | Request::PutIfModRev { value, .. } => Some(value),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Get {
        rev: i64,
        kv: Option<Kv>,
    },
    List {
        rev: i64,
        kvs: Vec<Kv>,
        count: i64,
        more: bool,
    },
    Put {
        rev: i64,
    },
    Delete {
        rev: i64,
        deleted: i64,
    },
    /// Both conditional requests.
    Txn {
        rev: i64,
        succeeded: bool,
    },
    LeaseGrant {
        rev: i64,
    },
    LeaseRevoke {
        rev: i64,
    },
    /// etcd's definite `LEASE_NOT_FOUND` (for a put or revoke).
    LeaseNotFound,
    Defragment,
    /// No answer, or an error after which the request may or may not have
    /// taken effect.
    Unknown {
        error: String,
    },
}

impl Response {
    pub fn revision(&self) -> Option<i64> {
        match self {
            Response::Get { rev, .. }
            | Response::List { rev, .. }
            | Response::Put { rev }
            | Response::Delete { rev, .. }
            | Response::Txn { rev, .. }
            | Response::LeaseGrant { rev }
            | Response::LeaseRevoke { rev } => Some(*rev),
            _ => None,
        }
    }
}

/// One request of one client. Times are nanoseconds since the run began;
/// an `Unknown` response has no return time (it may take effect any time
/// after its call).
#[derive(Clone, Debug)]
pub struct Operation {
    pub client: usize,
    pub call: u64,
    pub ret: Option<u64>,
    pub request: Request,
    pub response: Response,
}

/// One event as a watch delivered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub delete: bool,
    pub kv: Kv,
    pub prev: Option<Kv>,
}

/// One message on a watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    Events {
        header_rev: i64,
        events: Vec<Event>,
    },
    /// A progress notification: everything up to `rev` was sent.
    Progress {
        rev: i64,
    },
    /// The stream broke; the watcher asks again from `resume_from`.
    Resumed {
        resume_from: i64,
    },
}

/// What a watcher asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub prefix: String,
    pub start_rev: i64,
    pub no_delete: bool,
}

#[derive(Clone, Debug)]
pub struct WatchStream {
    pub name: String,
    pub spec: WatchSpec,
    pub messages: Vec<WatchMessage>,
}

/// One line per watch message (revisions of the events, progress,
/// resumes): what a look after a failed run starts from.
pub fn summary(watches: &[WatchStream]) -> String {
    let mut out = String::new();
    for w in watches {
        out.push_str(&format!("{} {:?}\n", w.name, w.spec));
        for m in &w.messages {
            let line = match m {
                WatchMessage::Events { header_rev, events } => {
                    let revs: Vec<String> =
                        events.iter().map(|e| e.kv.mod_rev.to_string()).collect();
                    format!("  events {} (header {header_rev})", revs.join(","))
                }
                WatchMessage::Progress { rev } => format!("  progress {rev}"),
                WatchMessage::Resumed { resume_from } => format!("  resumed from {resume_from}"),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Everything recorded in one run.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub operations: Vec<Operation>,
    pub watches: Vec<WatchStream>,
}

/// Shared by the client tasks; the clock starts at creation.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    operations: Arc<Mutex<Vec<Operation>>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            operations: Arc::default(),
        }
    }

    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn record(&self, op: Operation) {
        if let Ok(mut ops) = self.operations.lock() {
            ops.push(op);
        }
    }

    pub fn operations(&self) -> Vec<Operation> {
        self.operations
            .lock()
            .map(|ops| ops.clone())
            .unwrap_or_default()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

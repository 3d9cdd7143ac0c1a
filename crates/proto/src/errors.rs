//! etcd's gRPC errors: the status code and the exact message text, because
//! etcd's clients (clientv3, etcdctl, kube-apiserver) map errors by their
//! text. Every such text ferrocd sends or matches is spelled here and
//! nowhere else; so are the classifications other code needs.

use tonic::{Code, Status};

/// One of etcd's errors as it goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdError {
    code: Code,
    message: &'static str,
}

impl EtcdError {
    const fn new(code: Code, message: &'static str) -> EtcdError {
        EtcdError { code, message }
    }

    pub const fn code(self) -> Code {
        self.code
    }

    /// The text, with etcd's `etcdserver: ` prefix.
    pub const fn message(self) -> &'static str {
        self.message
    }

    pub fn status(self) -> Status {
        Status::new(self.code, self.message)
    }

    /// Whether `status` is this error (by its text, as etcd's clients decide).
    pub fn is(self, status: &Status) -> bool {
        status.message() == self.message
    }
}

impl std::error::Error for EtcdError {}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        e.status()
    }
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

macro_rules! etcd_errors {
    ($($(#[$doc:meta])* $name:ident = $code:ident, $text:literal;)*) => {
        $($(#[$doc])* pub const $name: EtcdError = EtcdError::new(Code::$code, $text);)*
        /// Every error above, for tests and lookups by text.
        pub const ALL: &[EtcdError] = &[$($name),*];
    };
}

etcd_errors! {
    // Request checks (KV and Txn).
    EMPTY_KEY = InvalidArgument, "etcdserver: key is not provided";
    KEY_NOT_FOUND = InvalidArgument, "etcdserver: key not found";
    VALUE_PROVIDED = InvalidArgument, "etcdserver: value is provided";
    LEASE_PROVIDED = InvalidArgument, "etcdserver: lease is provided";
    TOO_MANY_OPS = InvalidArgument, "etcdserver: too many operations in txn request";
    DUPLICATE_KEY = InvalidArgument, "etcdserver: duplicate key given in txn request";
    INVALID_SORT_OPTION = InvalidArgument, "etcdserver: invalid sort option";
    REQUEST_TOO_LARGE = InvalidArgument, "etcdserver: request is too large";
    TOO_MANY_REQUESTS = ResourceExhausted, "etcdserver: too many requests";

    // The MVCC store.
    COMPACTED = OutOfRange, "etcdserver: mvcc: required revision has been compacted";
    FUTURE_REV = OutOfRange, "etcdserver: mvcc: required revision is a future revision";
    NO_SPACE = ResourceExhausted, "etcdserver: mvcc: database space exceeded";

    // Leases.
    LEASE_NOT_FOUND = NotFound, "etcdserver: requested lease not found";
    LEASE_EXISTS = FailedPrecondition, "etcdserver: lease already exists";
    LEASE_TTL_TOO_LARGE = OutOfRange, "etcdserver: too large lease TTL";

    // Membership.
    MEMBER_EXISTS = FailedPrecondition, "etcdserver: member ID already exist";
    PEER_URL_EXISTS = FailedPrecondition, "etcdserver: Peer URLs already exists";
    MEMBER_BAD_URLS = InvalidArgument, "etcdserver: given member URLs are invalid";
    MEMBER_NOT_FOUND = NotFound, "etcdserver: member not found";
    MEMBER_NOT_LEARNER = FailedPrecondition, "etcdserver: can only promote a learner member";
    LEARNER_NOT_READY = FailedPrecondition,
        "etcdserver: can only promote a learner member which is in sync with leader";
    TOO_MANY_LEARNERS = FailedPrecondition, "etcdserver: too many learner members in cluster";
    NOT_ENOUGH_STARTED = FailedPrecondition,
        "etcdserver: re-configuration failed due to not enough started members";

    // Auth.
    ROOT_USER_NOT_EXIST = FailedPrecondition, "etcdserver: root user does not exist";
    ROOT_ROLE_NOT_EXIST = FailedPrecondition, "etcdserver: root user does not have root role";
    USER_ALREADY_EXIST = FailedPrecondition, "etcdserver: user name already exists";
    USER_EMPTY = InvalidArgument, "etcdserver: user name is empty";
    USER_NOT_FOUND = FailedPrecondition, "etcdserver: user name not found";
    ROLE_ALREADY_EXIST = FailedPrecondition, "etcdserver: role name already exists";
    ROLE_NOT_FOUND = FailedPrecondition, "etcdserver: role name not found";
    ROLE_EMPTY = InvalidArgument, "etcdserver: role name is empty";
    AUTH_FAILED = InvalidArgument, "etcdserver: authentication failed, invalid user ID or password";
    PERMISSION_NOT_GIVEN = InvalidArgument, "etcdserver: permission not given";
    PERMISSION_DENIED = PermissionDenied, "etcdserver: permission denied";
    ROLE_NOT_GRANTED = FailedPrecondition, "etcdserver: role is not granted to the user";
    PERMISSION_NOT_GRANTED = FailedPrecondition, "etcdserver: permission is not granted to the role";
    AUTH_NOT_ENABLED = FailedPrecondition, "etcdserver: authentication is not enabled";
    INVALID_AUTH_TOKEN = Unauthenticated, "etcdserver: invalid auth token";
    INVALID_AUTH_MGMT = InvalidArgument, "etcdserver: invalid auth management";
    AUTH_OLD_REVISION = InvalidArgument, "etcdserver: revision of auth store is old";
    /// etcd has no gRPC error for this one: its text goes out with code Unknown.
    NO_PASSWORD_USER = Unknown,
        "auth: authentication failed, password was given for no password user";
    /// Also without a gRPC error of its own (a JWT member given no private key).
    JWT_VERIFY_ONLY = Unknown, "auth: token signing attempted with verify-only key";

    // Leadership, liveness, time limits.
    NO_LEADER = Unavailable, "etcdserver: no leader";
    NOT_LEADER = FailedPrecondition, "etcdserver: not leader";
    LEADER_CHANGED = Unavailable, "etcdserver: leader changed";
    STOPPED = Unavailable, "etcdserver: server stopped";
    TIMEOUT = Unavailable, "etcdserver: request timed out";
    TIMEOUT_DUE_TO_LEADER_FAIL = Unavailable,
        "etcdserver: request timed out, possibly due to previous leader failure";
    TIMEOUT_DUE_TO_CONNECTION_LOST = Unavailable,
        "etcdserver: request timed out, possibly due to connection lost";
    TIMEOUT_WAIT_APPLIED_INDEX = Unavailable,
        "etcdserver: request timed out, waiting for the applied index took too long";
    /// etcd sends this one with code Unknown; ferrocd has always said Unavailable.
    TIMEOUT_LEADER_TRANSFER = Unavailable,
        "etcdserver: request timed out, leader transfer took too long";
    UNHEALTHY = Unavailable, "etcdserver: unhealthy cluster";
    CORRUPT = DataLoss, "etcdserver: corrupt cluster";
    NOT_SUPPORTED_FOR_LEARNER = FailedPrecondition, "etcdserver: rpc not supported for learner";
    BAD_LEADER_TRANSFEREE = FailedPrecondition, "etcdserver: bad leader transferee";
    WATCH_CANCELED = Cancelled, "etcdserver: watch canceled";

    // The lock and election services: their client package's errors, sent
    // with code Unknown as etcd's services return them.
    ELECTION_NOT_LEADER = Unknown, "election: not leader";
    ELECTION_NO_LEADER = Unknown, "election: no leader";
    ELECTION_MISSING_LEADER = Unknown, "\"leader\" field must be provided";
    LOCK_SESSION_EXPIRED = Unknown, "mutex: session is expired";
}

/// An auth error as etcd sends it from Defragment, Snapshot, Hash and
/// HashKV: the auth package's own text with code Unknown (etcd does not
/// translate those four).
pub fn auth_untranslated(e: EtcdError) -> Status {
    let text = match e {
        PERMISSION_DENIED => "auth: permission denied",
        USER_EMPTY => "auth: user name is empty",
        USER_NOT_FOUND => "auth: user not found",
        INVALID_AUTH_TOKEN => "auth: invalid auth token",
        other => return other.status(),
    };
    Status::new(Code::Unknown, text)
}

/// An RPC this build does not serve, with the reason.
pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("ferrocd: {what}"))
}

/// An internal failure of this member, named as ferrocd's own.
pub fn internal(what: impl std::fmt::Display) -> Status {
    Status::internal(format!("ferrocd: {what}"))
}

/// raft refused a membership change for a reason of its own (its text).
pub fn raft_refused(what: impl std::fmt::Display) -> Status {
    Status::failed_precondition(format!("etcdserver: {what}"))
}

/// Leadership moved or is being decided: the same request may succeed on
/// another attempt (at the leader, once there is one).
pub fn leadership_in_flux(s: &Status) -> bool {
    s.code() == Code::Unavailable || NOT_LEADER.is(s)
}

/// A refusal that only means "not yet" to a caller driving membership (a
/// learner still catching up, a leadership change, a member busy or
/// unreachable): retry later; not a failure.
pub fn is_transient(s: &Status) -> bool {
    const NOT_YET: &[EtcdError] = &[
        LEARNER_NOT_READY,
        NO_LEADER,
        LEADER_CHANGED,
        TIMEOUT,
        TIMEOUT_DUE_TO_LEADER_FAIL,
        TIMEOUT_DUE_TO_CONNECTION_LOST,
        TIMEOUT_WAIT_APPLIED_INDEX,
        TIMEOUT_LEADER_TRANSFER,
        UNHEALTHY,
    ];
    NOT_YET.iter().any(|e| e.is(s))
        || matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded)
}

/// Why etcd refuses to start a member whose HashKV differs from its peers'
/// (the initial corruption check).
pub fn data_inconsistency(member_id: u64) -> String {
    format!("{member_id:x} found data inconsistency with peers")
}

/// How a peer's refusal of a member of another cluster starts.
const CLUSTER_MISMATCH: &str = "ferrocd: cluster ID mismatch";

/// The refusal a member of another cluster gets from a peer.
pub fn cluster_mismatch(ours: u64, theirs: u64) -> Status {
    Status::failed_precondition(format!(
        "{CLUSTER_MISMATCH}: this member belongs to cluster {ours:x}, the sender to {theirs:x}"
    ))
}

/// Whether a peer refused this member as one of another cluster.
pub fn is_cluster_mismatch(s: &Status) -> bool {
    s.message().starts_with(CLUSTER_MISMATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_etcds_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            // etcd's untranslated auth errors, and the lock and election
            // services' client errors, keep their package's words and go
            // out with code Unknown.
            let packages = ["auth: ", "election: ", "mutex: ", "\"leader\" field"];
            let untranslated =
                packages.iter().any(|p| e.message().starts_with(p)) && e.code() == Code::Unknown;
            assert!(
                e.message().starts_with("etcdserver: ") || untranslated,
                "{e}"
            );
            assert!(seen.insert(e.message()), "{e} twice");
        }
    }

    #[test]
    fn errors_are_recognised_by_text_as_clients_do() {
        let s = Status::new(Code::Unknown, "etcdserver: not leader");
        assert!(NOT_LEADER.is(&s));
        assert!(leadership_in_flux(&s));
        assert!(leadership_in_flux(&STOPPED.status()));
        assert!(!leadership_in_flux(&COMPACTED.status()));
    }

    #[test]
    fn not_in_sync_and_no_leader_are_transient_peer_urls_taken_is_not() {
        assert!(is_transient(&LEARNER_NOT_READY.status()));
        assert!(is_transient(&NO_LEADER.status()));
        assert!(is_transient(&Status::deadline_exceeded("slow")));
        assert!(!is_transient(&PEER_URL_EXISTS.status()));
        assert!(!is_transient(&MEMBER_NOT_LEARNER.status()));
    }

    #[test]
    fn cluster_mismatch_is_recognised() {
        assert!(is_cluster_mismatch(&cluster_mismatch(1, 2)));
        assert!(!is_cluster_mismatch(&NOT_LEADER.status()));
    }
}

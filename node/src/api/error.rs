//! etcd's gRPC errors: status code and message text exactly as etcd sends
//! them, because clients map errors by their text.

use crate::apply::ApplyError;
use crate::mvcc::MvccError;
use crate::server::ServerError;
use tonic::{Code, Status};

fn etcd(code: Code, text: &str) -> Status {
    Status::new(code, format!("etcdserver: {text}"))
}

pub fn empty_key() -> Status {
    etcd(Code::InvalidArgument, "key is not provided")
}
pub fn key_not_found() -> Status {
    etcd(Code::InvalidArgument, "key not found")
}
pub fn value_provided() -> Status {
    etcd(Code::InvalidArgument, "value is provided")
}
pub fn lease_provided() -> Status {
    etcd(Code::InvalidArgument, "lease is provided")
}
pub fn too_many_ops() -> Status {
    etcd(Code::InvalidArgument, "too many operations in txn request")
}
pub fn duplicate_key() -> Status {
    etcd(Code::InvalidArgument, "duplicate key given in txn request")
}
pub fn invalid_sort_option() -> Status {
    etcd(Code::InvalidArgument, "invalid sort option")
}
pub fn member_not_found() -> Status {
    etcd(Code::NotFound, "member not found")
}
pub fn member_not_learner() -> Status {
    etcd(
        Code::FailedPrecondition,
        "can only promote a learner member",
    )
}
pub fn bad_leader_transferee() -> Status {
    etcd(Code::FailedPrecondition, "bad leader transferee")
}
pub fn no_leader() -> Status {
    etcd(Code::Unavailable, "no leader")
}
pub fn not_leader() -> Status {
    etcd(Code::FailedPrecondition, "not leader")
}
pub fn timeout() -> Status {
    etcd(Code::Unavailable, "request timed out")
}

/// An RPC this build does not serve, with the reason.
pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("ferrocd: {what}"))
}

pub fn status(e: ServerError) -> Status {
    match e {
        ServerError::Apply(a) => apply_status(a),
        ServerError::RequestTooLarge => etcd(Code::InvalidArgument, "request is too large"),
        ServerError::Stopped => etcd(Code::Unavailable, "server stopped"),
        ServerError::Timeout => timeout(),
        ServerError::NotLeader(_) => not_leader(),
        ServerError::Refused { code, message } => Status::new(Code::from_i32(code), message),
        ServerError::Membership(m) => Status::failed_precondition(m),
        ServerError::Config(m) => Status::internal(m),
        ServerError::BadLeaderTransferee => bad_leader_transferee(),
        ServerError::ClusterFull(_) => Status::failed_precondition("discovery: cluster is full"),
        ServerError::LeaderTransferTimeout => etcd(
            Code::Unavailable,
            "request timed out, leader transfer took too long",
        ),
    }
}

fn apply_status(e: ApplyError) -> Status {
    match e {
        ApplyError::Mvcc(MvccError::Compacted) => etcd(
            Code::OutOfRange,
            "mvcc: required revision has been compacted",
        ),
        ApplyError::Mvcc(MvccError::FutureRev) => etcd(
            Code::OutOfRange,
            "mvcc: required revision is a future revision",
        ),
        ApplyError::Mvcc(MvccError::Storage(m)) => {
            tracing::error!(error = %m, "storage error");
            Status::internal(format!("ferrocd: storage error: {m}"))
        }
        ApplyError::LeaseNotFound => etcd(Code::NotFound, "requested lease not found"),
        ApplyError::LeaseExists => etcd(Code::FailedPrecondition, "lease already exists"),
        ApplyError::LeaseTtlTooLarge => etcd(Code::OutOfRange, "too large lease TTL"),
        ApplyError::KeyNotFound => key_not_found(),
        ApplyError::NoSpace => etcd(Code::ResourceExhausted, "mvcc: database space exceeded"),
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Self {
        status(e)
    }
}

impl From<MvccError> for Status {
    fn from(e: MvccError) -> Self {
        apply_status(ApplyError::Mvcc(e))
    }
}

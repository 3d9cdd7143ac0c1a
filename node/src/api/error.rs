//! A refused request as etcd's gRPC status (code and text from
//! `ferrocd_proto::errors`).

use crate::apply::ApplyError;
use crate::member::RequestError;
use crate::mvcc::MvccError;
use ferrocd_proto::errors;
use tonic::Status;

pub fn status(e: RequestError) -> Status {
    match e {
        RequestError::Apply(a) => apply_status(a),
        RequestError::TooLarge => errors::REQUEST_TOO_LARGE.status(),
        RequestError::Stopped => errors::STOPPED.status(),
        RequestError::Timeout => errors::TIMEOUT.status(),
        RequestError::NotLeader(_) => errors::NOT_LEADER.status(),
        RequestError::Refused(e) => e.status(),
        RequestError::Relayed(s) => s,
        RequestError::Raft(m) => errors::raft_refused(m),
        RequestError::BadLeaderTransferee => errors::BAD_LEADER_TRANSFEREE.status(),
        RequestError::LeaderTransferTimeout => errors::TIMEOUT_LEADER_TRANSFER.status(),
    }
}

fn apply_status(e: ApplyError) -> Status {
    match e {
        ApplyError::Mvcc(MvccError::Compacted) => errors::COMPACTED.status(),
        ApplyError::Mvcc(MvccError::FutureRev) => errors::FUTURE_REV.status(),
        ApplyError::Mvcc(MvccError::Storage(m)) => {
            tracing::error!(error = %m, "storage error");
            errors::internal(format_args!("storage error: {m}"))
        }
        ApplyError::LeaseNotFound => errors::LEASE_NOT_FOUND.status(),
        ApplyError::LeaseExists => errors::LEASE_EXISTS.status(),
        ApplyError::LeaseTtlTooLarge => errors::LEASE_TTL_TOO_LARGE.status(),
        ApplyError::KeyNotFound => errors::KEY_NOT_FOUND.status(),
        ApplyError::NoSpace => errors::NO_SPACE.status(),
        ApplyError::Corrupt => errors::CORRUPT.status(),
        ApplyError::Refused(e) => e.status(),
    }
}

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Self {
        status(e)
    }
}

impl From<MvccError> for Status {
    fn from(e: MvccError) -> Self {
        apply_status(ApplyError::Mvcc(e))
    }
}

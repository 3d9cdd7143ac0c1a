//! The member's two kinds of failure: it could not start (a line for the
//! operator of the process), or it could not serve one request (the API
//! layer turns that into etcd's gRPC status).

use crate::apply::ApplyError;
use crate::mvcc::MvccError;
use crate::peer::PeerDialer;
use ferrocd_proto::errors::EtcdError;

/// Why the member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] MvccError),
    /// Discovery found the cluster complete without this member; the
    /// cluster's peer URLs and how to dial them (for `--discovery-fallback proxy`).
    #[error("failed to join discovery cluster (discovery: cluster is full)")]
    ClusterFull(Vec<String>, PeerDialer),
}

/// Why a request could not be served.
#[derive(Debug, thiserror::Error, Clone)]
pub enum RequestError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("request is too large")]
    TooLarge,
    #[error("server stopped")]
    Stopped,
    #[error("request timed out")]
    Timeout,
    /// This member is not the leader; the leader's peer URL when known.
    #[error("not leader")]
    NotLeader(Option<String>),
    /// One of etcd's checks refused the request (membership changes).
    #[error("{0}")]
    Refused(EtcdError),
    /// The leader refused a request this member forwarded to it; the
    /// client gets the leader's answer unchanged.
    #[error("{}", .0.message())]
    Relayed(tonic::Status),
    /// raft refused a membership change for a reason of its own.
    #[error("{0}")]
    Raft(String),
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    #[error("request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
}

impl From<MvccError> for RequestError {
    fn from(e: MvccError) -> Self {
        RequestError::Apply(ApplyError::Mvcc(e))
    }
}

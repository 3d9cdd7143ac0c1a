//! Member-to-member traffic on `--listen-peer-urls`: raft messages, and
//! followers forwarding writes and read-index requests to the leader. Every
//! message carries the cluster ID; a member of another cluster is refused.

pub mod client;
pub mod service;

pub use client::{Forwarder, PeerNetwork, Refusals};
pub use service::PeerService;

/// How a refusal for a foreign cluster ID starts.
pub const CLUSTER_MISMATCH: &str = "ferrocd: cluster ID mismatch";

/// The refusal a member of another cluster gets.
pub fn cluster_mismatch(ours: u64, theirs: u64) -> tonic::Status {
    tonic::Status::failed_precondition(format!(
        "{CLUSTER_MISMATCH}: this member belongs to cluster {ours:x}, the sender to {theirs:x}"
    ))
}

//! Cluster membership: the pure planner of the next step, and the etcd v3
//! API client that observes the cluster and carries a step out.

pub mod etcd;
pub mod plan;
pub mod quorum;
pub mod rollout;

pub use etcd::{ClientTls, ClusterView, EtcdError, EtcdMembers, Placement};
pub use plan::{next_step, Member, Observed, Step};
pub use rollout::RolloutObserved;

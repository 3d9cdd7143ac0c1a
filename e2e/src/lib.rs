//! Driving ferrocd from outside: the benchmark tool's workloads, statistics,
//! and the side-by-side comparison with etcd; a real Kubernetes control
//! plane for the operator's tests.

pub mod cluster;
pub mod compare;
pub mod control_plane;
pub mod harness;
pub mod load;
pub mod stats;

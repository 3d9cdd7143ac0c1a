//! The benchmark tool's parts: clusters of etcd or ferrocd on loopback, the
//! load (workloads over raw gRPC), statistics, and the side-by-side
//! comparison with etcd.

pub mod cluster;
pub mod compare;
pub mod load;
pub mod stats;

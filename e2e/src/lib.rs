//! Driving ferrocd from outside: the benchmark tool's workloads, statistics,
//! and the side-by-side comparison with etcd.

pub mod cluster;
pub mod compare;
pub mod load;
pub mod stats;

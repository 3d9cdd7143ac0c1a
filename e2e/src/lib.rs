//! Driving ferrocd from outside: the benchmark tool's workloads, statistics,
//! and the side-by-side comparison with etcd; a real Kubernetes control
//! plane for the operator's tests.

pub mod cluster;
pub mod compare;
pub mod control_plane;
pub mod harness;
pub mod load;
pub mod scenarios;
pub mod stats;

/// The runtime a Kubernetes scenario runs on (two workers: the machine's cores).
pub fn scenario_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

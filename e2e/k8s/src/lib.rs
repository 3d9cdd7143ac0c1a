//! The operator's Kubernetes test harness: a real kube-apiserver and
//! controller-manager (`control_plane`), a local Kubernetes-shaped cluster
//! around them (`harness`: network, node agent, cluster DNS), and the
//! end-to-end scenarios that run on it or on a real cluster (`scenarios`).
//! It is test support: it fails by panicking with what is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod control_plane;
pub mod harness;
pub mod scenarios;

/// The runtime a Kubernetes scenario runs on (two workers: the machine's cores).
pub fn scenario_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

//! ferrocd: an etcd-compatible key-value store.
//!
//! The request path is one-way: `api` (gRPC + HTTP) validates a request and
//! hands writes to `server`, which proposes them as log entries; `apply`
//! executes each entry deterministically against the `mvcc` store and the
//! `lease` table, then the `watch` hub fans the resulting events out.

pub mod api;
pub mod apply;
pub mod config;
pub mod discovery;
pub mod gateway;
pub mod ids;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod mvcc;
pub mod peer;
pub mod proto;
pub mod raft;
pub mod server;
pub mod tls;
pub mod watch;

/// The etcd version ferrocd reports (Status.version, /version). kube-apiserver
/// enables watch progress requests from 3.5.13 on.
pub const ETCD_VERSION: &str = "3.5.13";
/// The etcd cluster version ferrocd reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";
/// ferrocd's own version.
pub const FERROCD_VERSION: &str = env!("CARGO_PKG_VERSION");

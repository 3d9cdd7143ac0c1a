//! ferrocd: an etcd-compatible key-value store.
//!
//! The request path is one-way (README "Architecture"; `tests/it/layers.rs`
//! fails on a back edge): `api` (gRPC + HTTP) validates a request and hands
//! it to the `member`'s handles, which propose writes as raft log entries
//! (`raft`, with `peer` carrying them between members); `apply` executes
//! each committed entry deterministically against the `mvcc` store and the
//! `lease` table, then the `watch` hub fans the resulting events out.

// Clients and servers.
pub mod api;
pub mod gateway;
// The member core.
pub mod member;
// Replication and member-to-member traffic.
pub mod peer;
pub mod raft;
// Backups in etcd's snapshot format.
pub mod snapshot;
// Bootstrap by discovery.
pub mod discovery;
// The deterministic store.
pub mod apply;
pub mod auth;
pub mod lease;
pub mod mvcc;
pub mod watch;
// Leaves.
pub mod config;
pub mod ids;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod tls;

/// The etcd version ferrocd reports (Status.version, /version). kube-apiserver
/// enables watch progress requests from 3.5.13 on.
pub const ETCD_VERSION: &str = "3.5.13";
/// The etcd cluster version ferrocd reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";
/// ferrocd's own version.
pub const FERROCD_VERSION: &str = env!("CARGO_PKG_VERSION");

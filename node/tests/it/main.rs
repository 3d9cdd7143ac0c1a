//! ferrocd's integration tests: real processes on real sockets, real etcd 3.5
//! as the reference, real clients.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod auth;
mod catch_up;
mod cli;
mod clients;
mod cluster;
mod compaction;
mod crash;
mod differential;
mod discovery;
mod discovery_url;
mod disk_full;
mod etcdctl;
mod etcdctl_tools;
mod gateway;
mod http;
mod json_gateway;
mod layers;
mod leadership;
mod lifecycle;
mod lock_election;
mod metrics;
mod recovery;
mod snapshot;
mod tls;
mod watch;

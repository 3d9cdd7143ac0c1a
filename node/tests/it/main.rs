//! ferrocd's integration tests: real processes on real sockets, real etcd 3.5
//! as the reference, real clients.

mod support;

mod cli;
mod clients;
mod cluster;
mod compaction;
mod crash;
mod differential;
mod discovery;
mod discovery_url;
mod etcdctl;
mod gateway;
mod http;
mod leadership;
mod tls;
mod watch;

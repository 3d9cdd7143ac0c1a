//! ferrocd's integration tests: real processes on real sockets, real etcd 3.5
//! as the reference, real clients.

mod support;

mod clients;
mod differential;
mod etcdctl;

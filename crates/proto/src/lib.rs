//! The wire contracts of ferrocd, compiled once for every crate: etcd's v3
//! API (`etcdserverpb`, `mvccpb`, `authpb`) and ferrocd's peer protocol
//! (`ferrocdpb`), etcd's error codes and texts (`errors`), and etcd's
//! request checks (`validate`).

#[allow(clippy::all, missing_docs)]
mod generated {
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod authpb {
        tonic::include_proto!("authpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
    pub mod ferrocdpb {
        tonic::include_proto!("ferrocdpb");
    }
}

pub use generated::{authpb, etcdserverpb, ferrocdpb, mvccpb};

pub mod errors;
pub mod validate;

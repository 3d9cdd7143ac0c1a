//! The wire contracts of ferrocd, compiled once for every crate: etcd's v3
//! API (`etcdserverpb`, `mvccpb`, `authpb`, the lock and election services
//! `v3lockpb` and `v3electionpb`) and ferrocd's peer protocol (`ferrocdpb`), etcd's error codes and texts (`errors`), and etcd's
//! request checks (`validate`).

#[allow(clippy::all, missing_docs)]
mod generated {
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
        #[cfg(feature = "json")]
        include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
    }
    pub mod authpb {
        tonic::include_proto!("authpb");
        #[cfg(feature = "json")]
        include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
        #[cfg(feature = "json")]
        include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
    }
    pub mod v3lockpb {
        tonic::include_proto!("v3lockpb");
        #[cfg(feature = "json")]
        include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
    }
    pub mod v3electionpb {
        tonic::include_proto!("v3electionpb");
        #[cfg(feature = "json")]
        include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
    }
    pub mod ferrocdpb {
        tonic::include_proto!("ferrocdpb");
    }
}

pub use generated::{authpb, etcdserverpb, ferrocdpb, mvccpb, v3electionpb, v3lockpb};

pub mod errors;
pub mod keys;
pub mod validate;

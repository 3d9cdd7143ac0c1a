//! Code generated from the project's `.proto` files (see `build.rs`).
#![allow(clippy::all, missing_docs)]

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

//! What ferrocd's tests, the Kubernetes harness and the benchmark share.
//! Test support fails by panicking with what is missing, so `unwrap` and
//! `expect` are allowed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod addr;
pub mod bins;
pub mod bridge;
pub mod grpc;
pub mod netns;
pub mod pki;
pub mod process;
pub mod s3;
pub mod tmpfs;

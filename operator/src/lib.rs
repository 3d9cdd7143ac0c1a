//! ferrocd-operator: reconciles `EtcdCluster` resources into a headless
//! Service (SRV records), a client Service, a StatefulSet of `ferrocd`
//! members and a PodDisruptionBudget, and scales the cluster one member at
//! a time through its own membership API.
//!
//! `crd` is the resource, `names` derives every name and URL, `render`
//! builds the child objects, `membership` plans and carries out member
//! steps, `controller` ties them together per reconcile.

pub mod auth;
pub mod backup;
pub mod backup_controller;
pub mod controller;
pub mod crd;
pub mod effective;
pub mod etcd_auth;
pub mod leader;
pub mod maintenance;
pub mod membership;
pub mod metrics;
pub mod names;
pub mod pki;
pub mod render;
pub mod tls;

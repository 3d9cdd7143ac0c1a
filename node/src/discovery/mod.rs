//! Finding cluster members by name: DNS SRV records as etcd 3.5 reads them,
//! for a member's bootstrap (`_etcd-server`) and for clients (`_etcd-client`).

pub mod dns;
pub mod srv;
pub mod v2;
pub mod v3;

pub use dns::Dns;

/// Why a lookup failed; the text is what the user sees.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct DiscoveryError(pub String);

//! Member and cluster IDs, computed exactly as etcd computes them so that IDs
//! printed by etcdctl match between etcd and ferrocd for the same flags.

use sha1::{Digest, Sha1};

/// Member ID: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs
/// joined with no separator, followed by the cluster token and, for members
/// added at runtime, the Unix time in seconds.
pub fn member_id(peer_urls: &[String], token: &str, now_unix: Option<i64>) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut b: Vec<u8> = urls.concat().into_bytes();
    b.extend_from_slice(token.as_bytes());
    if let Some(t) = now_unix {
        b.extend_from_slice(t.to_string().as_bytes());
    }
    first_u64(&Sha1::digest(&b))
}

/// Cluster ID: SHA-1 over the sorted member IDs as 8-byte big-endian values.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut b = Vec::with_capacity(ids.len() * 8);
    for id in ids {
        b.extend_from_slice(&id.to_be_bytes());
    }
    first_u64(&Sha1::digest(&b))
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_member_and_cluster_ids_match_etcd() {
        let m = member_id(&["http://localhost:2380".to_string()], "etcd-cluster", None);
        assert_eq!(format!("{m:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[m])), "cdf818194e3a8c32");
    }

    #[test]
    fn peer_url_order_does_not_matter() {
        let a = member_id(&["http://b:2380".into(), "http://a:2380".into()], "t", None);
        let b = member_id(&["http://a:2380".into(), "http://b:2380".into()], "t", None);
        assert_eq!(a, b);
        assert_ne!(a, member_id(&["http://a:2380".into()], "t", None));
    }
}

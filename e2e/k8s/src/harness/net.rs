//! The harness network: one "cluster" network namespace holding a bridge
//! (10.77.0.1/16) and every control-plane process, and one namespace per
//! pod, joined to the bridge, with its own address,
//! `/etc/netns/<ns>/resolv.conf` pointing at the cluster DNS and
//! `/etc/netns/<ns>/hosts`. All traffic stays inside namespaces the harness
//! made; everything is deleted on drop (testkit's `bridge`).

use ferrocd_testkit::bridge::{Bridge, Host};
use std::net::Ipv4Addr;

/// The bridge's address: API server, cluster DNS and node address.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

pub use ferrocd_testkit::netns::{in_netns, ns_command};

/// The cluster network namespace with the bridge.
pub type ClusterNet = Bridge;

pub fn cluster_net() -> Result<ClusterNet, String> {
    Bridge::new("fck", GATEWAY, 16)
}

/// One pod's network namespace, attached to the cluster bridge.
pub type PodNet = Host;

/// A pod's namespace at `ip`, resolving through the cluster DNS with the
/// search path of namespace `kube_ns`; `hostname`/`fqdn` go to its hosts file.
pub fn pod_net(
    cluster: &ClusterNet,
    ip: Ipv4Addr,
    kube_ns: &str,
    hostname: &str,
    fqdn: Option<&str>,
) -> Result<PodNet, String> {
    let pod = Host::new(cluster, ip, "fcp")?;
    pod.etc_file(
        "resolv.conf",
        &format!(
            "nameserver {GATEWAY}\nsearch {kube_ns}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:3\n"
        ),
    )?;
    let mut hosts = format!("127.0.0.1 localhost\n{ip} {hostname}");
    if let Some(f) = fqdn {
        hosts = format!("{hosts} {f}");
    }
    pod.etc_file("hosts", &(hosts + "\n"))?;
    Ok(pod)
}

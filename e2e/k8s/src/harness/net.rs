//! The harness network: one "cluster" network namespace holding a bridge
//! (10.77.0.1/16) and every control-plane process, and one namespace per
//! pod, joined to the bridge by a veth pair, with its own address,
//! `/etc/netns/<ns>/resolv.conf` pointing at the cluster DNS and
//! `/etc/netns/<ns>/hosts`. All traffic stays inside namespaces the harness
//! made; everything is deleted on drop.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The bridge's address: API server, cluster DNS and node address.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PREFIX: u8 = 16;

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub use ferrocd_testkit::netns::{in_netns, ns_command};

/// Runs a command inside network namespace `ns`.
fn ns_exec(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

fn etc_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// The cluster network namespace with the bridge.
pub struct ClusterNet {
    pub name: String,
    next_host: std::sync::atomic::AtomicU32,
}

impl ClusterNet {
    pub fn new() -> Result<ClusterNet, String> {
        let name = format!("fck-{:08x}", rand::random::<u32>());
        run(&["ip", "netns", "add", &name])?;
        let net = ClusterNet {
            name: name.clone(),
            next_host: std::sync::atomic::AtomicU32::new(10),
        };
        net.exec(&["ip", "link", "set", "lo", "up"])?;
        net.exec(&["ip", "link", "add", "br0", "type", "bridge"])?;
        net.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{GATEWAY}/{PREFIX}"),
            "dev",
            "br0",
        ])?;
        net.exec(&["ip", "link", "set", "br0", "up"])?;
        Ok(net)
    }

    /// Runs a command inside the cluster namespace.
    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        ns_exec(&self.name, args)
    }

    /// A `Command` that runs `program` inside the cluster namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        ns_command(&self.name, program)
    }

    /// A fresh address on the bridge's network.
    pub fn allocate(&self) -> Ipv4Addr {
        let n = self
            .next_host
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ipv4Addr::new(10, 77, (n >> 8) as u8, n as u8)
    }
}

impl Drop for ClusterNet {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(etc_dir(&self.name));
    }
}

/// One pod's network namespace, attached to the cluster bridge.
pub struct PodNet {
    pub name: String,
    pub ip: Ipv4Addr,
}

impl PodNet {
    /// A namespace at `ip`, resolving through the cluster DNS with the
    /// search path of namespace `kube_ns`; `hostname`/`fqdn` go to its hosts file.
    pub fn new(
        cluster: &ClusterNet,
        ip: Ipv4Addr,
        kube_ns: &str,
        hostname: &str,
        fqdn: Option<&str>,
    ) -> Result<PodNet, String> {
        let name = format!("fcp-{:08x}", rand::random::<u32>());
        run(&["ip", "netns", "add", &name])?;
        let pod = PodNet {
            name: name.clone(),
            ip,
        };
        let host_if = format!("v{:x}{:x}", ip.octets()[2], ip.octets()[3]);
        cluster.exec(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ])?;
        cluster.exec(&["ip", "link", "set", &host_if, "master", "br0"])?;
        cluster.exec(&["ip", "link", "set", &host_if, "up"])?;
        pod.exec(&["ip", "link", "set", "lo", "up"])?;
        pod.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{ip}/{PREFIX}"),
            "dev",
            "eth0",
        ])?;
        pod.exec(&["ip", "link", "set", "eth0", "up"])?;
        pod.exec(&["ip", "route", "add", "default", "via", &GATEWAY.to_string()])?;
        let etc = etc_dir(&name);
        std::fs::create_dir_all(&etc).map_err(|e| e.to_string())?;
        std::fs::write(
            etc.join("resolv.conf"),
            format!(
                "nameserver {GATEWAY}\nsearch {kube_ns}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:3\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut hosts = format!("127.0.0.1 localhost\n{ip} {hostname}");
        if let Some(f) = fqdn {
            hosts = format!("{hosts} {f}");
        }
        std::fs::write(etc.join("hosts"), hosts + "\n").map_err(|e| e.to_string())?;
        Ok(pod)
    }

    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        ns_exec(&self.name, args)
    }

    /// A `Command` that runs `program` inside this pod's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        ns_command(&self.name, program)
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(etc_dir(&self.name));
    }
}

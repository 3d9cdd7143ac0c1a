//! A private network of namespaces: one "hub" namespace holding a bridge
//! (its address is the network's gateway), and hosts, each a namespace of
//! its own joined to the bridge by a veth pair, with its own address and a
//! default route through the gateway. Firewall rules inside a host's
//! namespace touch only that host. Everything is deleted on drop.

use crate::netns::ns_command;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

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

/// Runs a command inside network namespace `ns`.
pub fn ns_exec(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// Where `ip netns exec` finds a namespace's own /etc files.
pub fn etc_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// The hub namespace with the bridge `br0`.
pub struct Bridge {
    pub name: String,
    pub gateway: Ipv4Addr,
    prefix: u8,
    next_host: AtomicU32,
}

impl Bridge {
    /// A hub namespace named `<tag>-<random>` whose bridge has `gateway`
    /// on a /`prefix` network.
    pub fn new(tag: &str, gateway: Ipv4Addr, prefix: u8) -> Result<Bridge, String> {
        let name = format!("{tag}-{:08x}", rand::random::<u32>());
        run(&["ip", "netns", "add", &name])?;
        let net = Bridge {
            name,
            gateway,
            prefix,
            next_host: AtomicU32::new(10),
        };
        net.exec(&["ip", "link", "set", "lo", "up"])?;
        net.exec(&["ip", "link", "add", "br0", "type", "bridge"])?;
        net.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{gateway}/{prefix}"),
            "dev",
            "br0",
        ])?;
        net.exec(&["ip", "link", "set", "br0", "up"])?;
        Ok(net)
    }

    /// Runs a command inside the hub namespace.
    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        ns_exec(&self.name, args)
    }

    /// A `Command` that runs `program` inside the hub namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        ns_command(&self.name, program)
    }

    /// A fresh address on the network (from .10 up, after the gateway's).
    pub fn allocate(&self) -> Ipv4Addr {
        let n = self.next_host.fetch_add(1, Ordering::Relaxed);
        let [a, b, _, _] = self.gateway.octets();
        Ipv4Addr::new(a, b, (n >> 8) as u8, n as u8)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(etc_dir(&self.name));
    }
}

/// One host's namespace, attached to the bridge.
pub struct Host {
    pub name: String,
    pub ip: Ipv4Addr,
}

impl Host {
    /// A namespace named `<tag>-<random>` at `ip` on `bridge`'s network.
    pub fn new(bridge: &Bridge, ip: Ipv4Addr, tag: &str) -> Result<Host, String> {
        let name = format!("{tag}-{:08x}", rand::random::<u32>());
        run(&["ip", "netns", "add", &name])?;
        let host = Host {
            name: name.clone(),
            ip,
        };
        let host_if = format!("v{:x}{:x}", ip.octets()[2], ip.octets()[3]);
        bridge.exec(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ])?;
        bridge.exec(&["ip", "link", "set", &host_if, "master", "br0"])?;
        bridge.exec(&["ip", "link", "set", &host_if, "up"])?;
        host.exec(&["ip", "link", "set", "lo", "up"])?;
        let cidr = format!("{ip}/{}", bridge.prefix);
        host.exec(&["ip", "addr", "add", &cidr, "dev", "eth0"])?;
        host.exec(&["ip", "link", "set", "eth0", "up"])?;
        let gateway = bridge.gateway.to_string();
        host.exec(&["ip", "route", "add", "default", "via", &gateway])?;
        Ok(host)
    }

    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        ns_exec(&self.name, args)
    }

    /// A `Command` that runs `program` inside this host's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        ns_command(&self.name, program)
    }

    /// Writes `/etc/<file>` as processes in this namespace see it.
    pub fn etc_file(&self, file: &str, contents: &str) -> Result<(), String> {
        let etc = etc_dir(&self.name);
        std::fs::create_dir_all(&etc).map_err(|e| e.to_string())?;
        std::fs::write(etc.join(file), contents).map_err(|e| e.to_string())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(etc_dir(&self.name));
    }
}

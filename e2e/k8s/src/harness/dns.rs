//! Cluster DNS for the harness: a real dnsmasq in the cluster namespace,
//! answering for `cluster.local` what CoreDNS's kubernetes plugin answers
//! from Services and Endpoints: `S.N.svc.cluster.local`, one name per
//! endpoint with a hostname (`h.S.N.svc.cluster.local`), and SRV records
//! `_<port>._<proto>.S.N.svc.cluster.local`. A records are rewritten in a
//! hosts directory dnsmasq watches; a change of SRV records restarts it.

use k8s_openapi::api::core::v1::{Endpoints, Service};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Stdio};

pub const DOMAIN: &str = "cluster.local";

/// What the cluster DNS publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    /// (name, address), one line of a hosts file each.
    pub a: BTreeSet<(String, Ipv4Addr)>,
    /// (service name, target, port).
    pub srv: BTreeSet<(String, String, u16)>,
}

/// The records CoreDNS would serve for these objects.
pub fn records(services: &[Service], endpoints: &[Endpoints]) -> Records {
    let mut r = Records::default();
    for svc in services {
        let (Some(name), Some(ns)) = (
            svc.metadata.name.as_deref(),
            svc.metadata.namespace.as_deref(),
        ) else {
            continue;
        };
        let spec = svc.spec.clone().unwrap_or_default();
        let base = format!("{name}.{ns}.svc.{DOMAIN}");
        let headless = spec.cluster_ip.as_deref() == Some("None");
        if !headless {
            if let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()) {
                r.a.insert((base.clone(), ip));
            }
            for p in spec.ports.unwrap_or_default() {
                if let Some(pn) = p.name {
                    let proto = p.protocol.unwrap_or_else(|| "TCP".into()).to_lowercase();
                    r.srv.insert((
                        format!("_{pn}._{proto}.{base}"),
                        base.clone(),
                        p.port as u16,
                    ));
                }
            }
            continue;
        }
        let Some(ep) = endpoints.iter().find(|e| {
            e.metadata.name.as_deref() == Some(name) && e.metadata.namespace.as_deref() == Some(ns)
        }) else {
            continue;
        };
        for subset in ep.subsets.clone().unwrap_or_default() {
            // With publishNotReadyAddresses the endpoints controller already
            // lists unready pods under `addresses`.
            for addr in subset.addresses.clone().unwrap_or_default() {
                let Ok(ip) = addr.ip.parse::<Ipv4Addr>() else {
                    continue;
                };
                r.a.insert((base.clone(), ip));
                let host = addr
                    .hostname
                    .clone()
                    .unwrap_or_else(|| addr.ip.replace('.', "-"));
                let target = format!("{host}.{base}");
                r.a.insert((target.clone(), ip));
                for p in subset.ports.clone().unwrap_or_default() {
                    if let Some(pn) = p.name {
                        let proto = p.protocol.unwrap_or_else(|| "TCP".into()).to_lowercase();
                        r.srv.insert((
                            format!("_{pn}._{proto}.{base}"),
                            target.clone(),
                            p.port as u16,
                        ));
                    }
                }
            }
        }
    }
    r
}

/// dnsmasq serving the cluster's records on the bridge address.
pub struct ClusterDns {
    dir: PathBuf,
    listen: Ipv4Addr,
    child: Option<Child>,
    current: Records,
    spawn: Box<dyn Fn() -> std::process::Command + Send + Sync>,
}

impl ClusterDns {
    /// `command` makes the command that runs `dnsmasq` in the cluster
    /// namespace; state lives in `dir`.
    pub fn new(
        dir: PathBuf,
        listen: Ipv4Addr,
        command: impl Fn() -> std::process::Command + Send + Sync + 'static,
    ) -> ClusterDns {
        let _ = std::fs::create_dir_all(dir.join("hosts.d"));
        let mut d = ClusterDns {
            dir,
            listen,
            child: None,
            current: Records::default(),
            spawn: Box::new(command),
        };
        d.restart();
        d
    }

    /// Publishes `records` from now on.
    pub fn publish(&mut self, records: Records) {
        if records == self.current {
            return;
        }
        let hosts: String = records
            .a
            .iter()
            .map(|(n, ip)| format!("{ip} {n}\n"))
            .collect();
        let tmp = self.dir.join("hosts.tmp");
        if std::fs::write(&tmp, hosts).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join("hosts.d").join("cluster"));
        }
        let srv_changed = records.srv != self.current.srv;
        self.current = records;
        if srv_changed {
            self.restart();
        }
    }

    fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let mut conf = format!(
            "listen-address={}\nbind-interfaces\nno-resolv\nno-hosts\nno-negcache\nuser=root\nlocal=/{DOMAIN}/\nhostsdir={}\n",
            self.listen,
            self.dir.join("hosts.d").display()
        );
        for (name, target, port) in &self.current.srv {
            conf.push_str(&format!("srv-host={name},{target},{port}\n"));
        }
        let path = self.dir.join("dnsmasq.conf");
        if std::fs::write(&path, conf).is_err() {
            return;
        }
        let Ok(log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dnsmasq.log"))
        else {
            return;
        };
        let Ok(err) = log.try_clone() else { return };
        let mut cmd = (self.spawn)();
        cmd.args([
            "--keep-in-foreground",
            "--log-facility=-",
            &format!("--conf-file={}", path.display()),
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
        match cmd.spawn() {
            Ok(c) => self.child = Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot start dnsmasq (apt-get install dnsmasq-base)")
            }
        }
    }
}

impl Drop for ClusterDns {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headless_services_publish_pod_names_and_srv_records() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo", "namespace": "apps"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                     "ports": [{"name": "etcd-server", "port": 2380}, {"name": "etcd-client", "port": 2379}]}
        }))
        .unwrap();
        let ep: Endpoints = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo", "namespace": "apps"},
            "subsets": [{
                "addresses": [{"ip": "10.77.0.10", "hostname": "demo-0"}, {"ip": "10.77.0.11", "hostname": "demo-1"}],
                "ports": [{"name": "etcd-server", "port": 2380, "protocol": "TCP"}, {"name": "etcd-client", "port": 2379, "protocol": "TCP"}]
            }]
        }))
        .unwrap();
        let r = records(&[svc], &[ep]);
        assert!(r.a.contains(&(
            "demo-0.demo.apps.svc.cluster.local".into(),
            Ipv4Addr::new(10, 77, 0, 10)
        )));
        assert!(r.a.contains(&(
            "demo.apps.svc.cluster.local".into(),
            Ipv4Addr::new(10, 77, 0, 11)
        )));
        assert!(r.srv.contains(&(
            "_etcd-server._tcp.demo.apps.svc.cluster.local".into(),
            "demo-1.demo.apps.svc.cluster.local".into(),
            2380
        )));
        assert_eq!(r.srv.len(), 4);
    }
}

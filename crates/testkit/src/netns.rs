//! Network namespaces: running code and programs inside one, and a
//! private network for DNS tests: a network namespace with its own
//! loopback addresses (the seeds' 10.0.1.x hosts), a real dnsmasq serving
//! the test's SRV and A records inside it, and `/etc/netns/NAME/resolv.conf`
//! pointing at that dnsmasq, so every process started in the namespace
//! (ferrocd, etcd, etcdctl) resolves through it. Dropping it kills what it
//! started, deletes the namespace and its files, also when a test fails.

use crate::process::Process;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

const DNS_ADDR: &str = "127.0.0.53";

/// Runs `f` on a new thread that entered network namespace `ns`: sockets
/// it (and threads it starts) opens live there.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = Path::new("/var/run/netns").join(ns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) on a namespace fd we hold open; it changes this thread only.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

/// A `Command` that runs `program` inside network namespace `ns` (`ip netns
/// exec` execs it, so the child's PID is the program's own).
pub fn ns_command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c.stdin(Stdio::null());
    c
}

/// One DNS record in dnsmasq's terms.
#[derive(Debug, Clone)]
pub enum Record {
    /// `_service._tcp.domain` -> target:port
    Srv {
        service: String,
        target: String,
        port: u16,
    },
    /// host -> IPv4 address
    A { host: String, ip: Ipv4Addr },
}

impl Record {
    pub fn srv(service: &str, target: &str, port: u16) -> Record {
        Record::Srv {
            service: service.into(),
            target: target.into(),
            port,
        }
    }

    pub fn a(host: &str, ip: Ipv4Addr) -> Record {
        Record::A {
            host: host.into(),
            ip,
        }
    }

    fn dnsmasq_line(&self) -> String {
        match self {
            Record::Srv {
                service,
                target,
                port,
            } => format!("srv-host={service},{target},{port},0,0"),
            Record::A { host, ip } => format!("host-record={host},{ip}"),
        }
    }
}

/// The server and client SRV records and the A record of one member of
/// seed 000's layout: `host` at `ip`, peer port 2380, client port 2379.
pub fn member_records(domain: &str, host: &str, ip: Ipv4Addr) -> Vec<Record> {
    vec![
        Record::srv(&format!("_etcd-server._tcp.{domain}"), host, 2380),
        Record::srv(&format!("_etcd-client._tcp.{domain}"), host, 2379),
        Record::a(host, ip),
    ]
}

pub struct NetNs {
    pub name: String,
    dir: tempfile::TempDir,
    dnsmasq: Option<Child>,
    local_domains: Vec<String>,
}

impl NetNs {
    /// A namespace with loopback up and `addrs` on it. `local_domains` are
    /// answered by dnsmasq alone (unknown names there: NXDOMAIN at once).
    pub fn new(addrs: &[Ipv4Addr], local_domains: &[&str]) -> NetNs {
        let name = format!("fcd-{:08x}", rand::random::<u32>());
        let ns = NetNs {
            name: name.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
            dnsmasq: None,
            local_domains: local_domains.iter().map(|s| s.to_string()).collect(),
        };
        sh(&["ip", "netns", "add", &name]);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        for a in addrs {
            ns.exec_ok(&["ip", "addr", "add", &format!("{a}/32"), "dev", "lo"]);
        }
        std::fs::create_dir_all(ns.etc_dir()).expect("/etc/netns dir");
        std::fs::write(
            ns.etc_dir().join("resolv.conf"),
            format!("nameserver {DNS_ADDR}\noptions timeout:1 attempts:2\n"),
        )
        .expect("resolv.conf");
        ns
    }

    fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// A file that processes in the namespace see at `/etc/<rel>` (its
    /// first path element must exist in /etc, as `ip netns exec` bind-mounts it).
    pub fn etc_file(&self, rel: &str, contents: &str) {
        let path = self.etc_dir().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("etc dir");
        std::fs::write(path, contents).expect("etc file");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Serves exactly these records from now on (dnsmasq restarted, as a
    /// cluster DNS reloads), once it answers again.
    pub fn set_records(&mut self, records: &[Record]) {
        self.stop_dnsmasq();
        let conf = self.dir.path().join("dnsmasq.conf");
        let mut f = std::fs::File::create(&conf).expect("dnsmasq.conf");
        writeln!(
            f,
            "listen-address={DNS_ADDR}\nbind-interfaces\nno-resolv\nno-hosts\nno-negcache\nuser=root"
        )
        .unwrap();
        for d in &self.local_domains {
            writeln!(f, "local=/{d}/").unwrap();
        }
        for r in records {
            writeln!(f, "{}", r.dnsmasq_line()).unwrap();
        }
        drop(f);
        let log = std::fs::File::create(self.dir.path().join("dnsmasq.log")).expect("log");
        let child = self
            .command("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--log-facility=-",
                &format!("--conf-file={}", conf.display()),
            ])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base; the README test command does)");
        self.dnsmasq = Some(child);
        let addr: SocketAddr = format!("{DNS_ADDR}:53").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .in_ns(move || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start: {}",
                std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop_dnsmasq(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        ns_command(&self.name, program)
    }

    /// Runs a program inside the namespace: (exit code, stdout, stderr).
    pub fn run(&self, program: &Path, args: &[&str]) -> (i32, String, String) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn exec_ok(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full);
    }

    /// Runs `f` on a thread that entered the namespace (sockets it opens live there).
    pub fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_netns(&self.name, f)
    }

    /// Starts a long-running process in the namespace, logging to `log`.
    pub fn spawn(&self, program: &Path, args: &[String], log: &Path) -> Process {
        let mut c = self.command(program);
        c.args(args);
        Process::spawn(c, log)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.stop_dnsmasq();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

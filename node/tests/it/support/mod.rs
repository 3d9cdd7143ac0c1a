//! What the integration tests share: finding the real binaries, unique
//! loopback addresses, member processes that are killed and reaped on drop,
//! and clients.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ferrocd binary under test.
pub fn ferrocd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrocd"))
}

pub use ferrocd_testkit::bins::{etcd as etcd_bin, etcdctl34, etcdctl35};
pub use ferrocd_testkit::process::{run, Process};
pub use ferrocd_testkit::{grpc as client, netns, pki};

/// etcd's flags for member `m0` alone on `ip` with its data in `data_dir`.
pub fn single_member_flags(ip: Ipv4Addr, data_dir: &std::path::Path) -> Vec<String> {
    vec![
        "--name=m0".to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls=http://{ip}:2379"),
        format!("--advertise-client-urls=http://{ip}:2379"),
        format!("--listen-peer-urls=http://{ip}:2380"),
        format!("--initial-advertise-peer-urls=http://{ip}:2380"),
        format!("--initial-cluster=m0=http://{ip}:2380"),
    ]
}

/// A member's client and peer ports.
const MEMBER_PORTS: [u16; 2] = [2379, 2380];

/// A loopback address no other test uses, its client and peer ports free.
pub fn unique_ip() -> Ipv4Addr {
    ferrocd_testkit::addr::loopback_ip(&MEMBER_PORTS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ferrocd,
    /// etcd 3.5, the reference.
    Etcd,
    /// etcd 3.4 (Debian's etcd-server), for snapshots written by 3.4.
    Etcd34,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ferrocd => "ferrocd",
            Kind::Etcd => "etcd",
            Kind::Etcd34 => "etcd-3.4",
        }
    }

    pub fn bin(self) -> PathBuf {
        match self {
            Kind::Ferrocd => ferrocd_bin(),
            Kind::Etcd => etcd_bin(),
            Kind::Etcd34 => ferrocd_testkit::bins::etcd34(),
        }
    }
}

/// One member process on its own loopback address and data dir. Dropping it
/// kills the process (SIGKILL), reaps it, and removes the data dir.
pub struct Member {
    pub kind: Kind,
    pub ip: Ipv4Addr,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
    /// Replaces the single-member flags (members of a cluster).
    flags: Option<Vec<String>>,
    child: Option<Child>,
    starts: u32,
    /// Environment added at each start (e.g. FAILPOINTS).
    pub env: Vec<(String, String)>,
}

impl Member {
    /// Starts a member with etcd's single-member flags plus `extra`, and waits until it is healthy.
    pub fn start(kind: Kind, extra: &[&str]) -> Member {
        let mut m = Member {
            kind,
            ip: unique_ip(),
            dir: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            flags: None,
            child: None,
            starts: 0,
            env: Vec::new(),
        };
        m.spawn();
        m.wait_healthy();
        m
    }

    /// Starts (without waiting) a member with exactly these flags on `ip`.
    pub fn spawn_with(kind: Kind, ip: Ipv4Addr, flags: Vec<String>) -> Member {
        Member::spawn_in(kind, ip, flags, tempfile::tempdir().expect("temp dir"))
    }

    /// Like `spawn_with`, in `dir` (whose `data` may already hold a data dir).
    pub fn spawn_in(
        kind: Kind,
        ip: Ipv4Addr,
        flags: Vec<String>,
        dir: tempfile::TempDir,
    ) -> Member {
        let mut m = Member {
            kind,
            ip,
            dir,
            extra: Vec::new(),
            flags: None,
            child: None,
            starts: 0,
            env: Vec::new(),
        };
        let data = m.data_dir().display().to_string();
        let mut all = flags;
        all.push(format!("--data-dir={data}"));
        m.flags = Some(all);
        m.spawn();
        m
    }

    pub fn endpoint(&self) -> String {
        format!("{}:2379", self.ip)
    }

    pub fn url(&self) -> String {
        format!("http://{}:2379", self.ip)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}-{}.log", self.kind.name(), self.starts))
    }

    pub fn args(&self) -> Vec<String> {
        if let Some(f) = &self.flags {
            return f.clone();
        }
        let mut a = single_member_flags(self.ip, &self.data_dir());
        a.extend(self.extra.iter().cloned());
        a
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let bin = self.kind.bin();
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let child = Command::new(bin)
            .args(self.args())
            .env(
                "RUST_LOG",
                std::env::var("FERROCD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn member");
        self.child = Some(child);
    }

    /// Polls /health until it answers `"health":"true"`.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "{} exited with {status}:\n{}",
                        self.kind.name(),
                        self.log_tail()
                    );
                }
            }
            if let Some((200, body)) = http_get(&self.endpoint(), "/health") {
                if body.contains("\"health\":\"true\"") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy in 30s:\n{}",
                self.kind.name(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits up to `limit` for the process to exit on its own; its status if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Sends SIGTERM; the process is reaped by `wait_exit` or `kill9`.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// Freezes the process (SIGSTOP) until `resume`.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = self.child.as_ref() {
            // SAFETY: kill(2) on our own child's PID, which is not reaped yet.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts with these flags added after the original ones (later flags win).
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.extra.extend(extra.iter().map(|s| s.to_string()));
        if let Some(f) = self.flags.as_mut() {
            f.extend(extra.iter().map(|s| s.to_string()));
        }
        self.restart();
    }

    /// Stops the process and starts it again on the same data dir, without
    /// waiting.
    pub fn respawn(&mut self) {
        self.respawn_with(&[]);
    }

    /// Stops the process and starts it again on the same data dir with these
    /// flags added, without waiting (it may be meant to refuse to start).
    pub fn respawn_with(&mut self, extra: &[&str]) {
        self.kill9();
        self.extra.extend(extra.iter().map(|s| s.to_string()));
        if let Some(f) = self.flags.as_mut() {
            f.extend(extra.iter().map(|s| s.to_string()));
        }
        self.spawn();
    }

    /// The whole log of the current start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts the process again on the same data dir and waits until healthy.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_healthy();
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}",
                self.kind.name(),
                self.endpoint(),
                self.log_tail()
            );
        }
        self.kill9();
    }
}

/// Starts a member the way `etcdctl member add` tells you to: its `ETCD_*`
/// lines as flags.
pub fn start_added_member(kind: Kind, ip: Ipv4Addr, add_output: &str) -> Member {
    let mut flags = vec![
        format!("--listen-peer-urls=http://{ip}:2380"),
        format!("--listen-client-urls=http://{ip}:2379"),
        format!("--advertise-client-urls=http://{ip}:2379"),
    ];
    for line in add_output.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if let Some(flag) = k.strip_prefix("ETCD_") {
                let v = v.trim_matches('"');
                flags.push(format!("--{}={v}", flag.to_lowercase().replace('_', "-")));
            }
        }
    }
    Member::spawn_with(kind, ip, flags)
}

/// `n` loopback addresses 127.a.b.1..n in one random /24, client and peer ports free on each.
pub fn unique_ips(n: u8) -> Vec<Ipv4Addr> {
    ferrocd_testkit::addr::loopback_ips(n, &MEMBER_PORTS)
}

/// The token of the clusters tests start.
pub const CLUSTER_TOKEN: &str = "etcd-cluster-1";

/// A static-bootstrap cluster as seed 001 starts it: member `infraI` on
/// 127.a.b.(I+1), token `etcd-cluster-1`.
pub struct Cluster {
    pub members: Vec<Member>,
}

impl Cluster {
    pub fn start(kind: Kind, n: u8, extra: &[&str]) -> Cluster {
        Cluster::start_prepared(kind, n, extra, |_, _| {})
    }

    /// Member `i`'s flags in the cluster over `ips`.
    fn member_flags(ips: &[Ipv4Addr], i: usize) -> Vec<String> {
        let ip = ips[i];
        vec![
            "--name".to_string(),
            format!("infra{i}"),
            "--initial-advertise-peer-urls".into(),
            format!("http://{ip}:2380"),
            "--listen-peer-urls".into(),
            format!("http://{ip}:2380"),
            "--listen-client-urls".into(),
            format!("http://{ip}:2379"),
            "--advertise-client-urls".into(),
            format!("http://{ip}:2379"),
            "--initial-cluster-token".into(),
            CLUSTER_TOKEN.into(),
            "--initial-cluster".into(),
            Cluster::initial_cluster(ips),
            "--initial-cluster-state".into(),
            "new".into(),
        ]
    }

    fn initial_cluster(ips: &[Ipv4Addr]) -> String {
        ips.iter()
            .enumerate()
            .map(|(i, ip)| format!("infra{i}=http://{ip}:2380"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts a cluster after `prepare` has had each member's data dir
    /// written: it gets the member's index and the flags `snapshot restore`
    /// takes for it (name, initial cluster and token, peer URLs, data dir).
    pub fn start_prepared(
        kind: Kind,
        n: u8,
        extra: &[&str],
        mut prepare: impl FnMut(usize, Vec<String>),
    ) -> Cluster {
        let ips = unique_ips(n);
        let mut members: Vec<Member> = (0..ips.len())
            .map(|i| {
                let dir = tempfile::tempdir().expect("temp dir");
                prepare(
                    i,
                    vec![
                        format!("--name=infra{i}"),
                        format!("--initial-cluster={}", Cluster::initial_cluster(&ips)),
                        format!("--initial-cluster-token={CLUSTER_TOKEN}"),
                        format!("--initial-advertise-peer-urls=http://{}:2380", ips[i]),
                        format!("--data-dir={}", dir.path().join("data").display()),
                    ],
                );
                let mut flags = Cluster::member_flags(&ips, i);
                flags.extend(extra.iter().map(|s| s.to_string()));
                Member::spawn_in(kind, ips[i], flags, dir)
            })
            .collect();
        for m in &mut members {
            m.wait_healthy();
        }
        Cluster { members }
    }

    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A minimal HTTP/1.0 GET: (status, body).
pub fn http_get(endpoint: &str, path: &str) -> Option<(u16, String)> {
    http_request(endpoint, "GET", path, "")
}

/// A minimal HTTP/1.0 PUT of a form body (`value=3`): (status, body).
pub fn http_put_form(endpoint: &str, path: &str, form: &str) -> Option<(u16, String)> {
    http_request(endpoint, "PUT", path, form)
}

fn http_request(endpoint: &str, method: &str, path: &str, form: &str) -> Option<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&endpoint.parse().ok()?, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {endpoint}\r\n").ok()?;
    if !form.is_empty() {
        write!(
            s,
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        )
        .ok()?;
    }
    write!(s, "\r\n{form}").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

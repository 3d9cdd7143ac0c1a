//! The cluster under test: `n` members of ferrocd or etcd 3.5, each in a
//! network namespace of its own on a private bridge (so firewall rules can
//! cut or thin one member's peer traffic), each a child process the suite
//! can kill, pause, cut off, replace and start again on its data dir.
//! Every child is killed and reaped on drop (paused ones continued first),
//! then its namespace deleted.

use ferrocd_proto::etcdserverpb::{maintenance_client::MaintenanceClient, StatusRequest};
use ferrocd_testkit::bridge::{Bridge, Host};
use ferrocd_testkit::tmpfs::Tmpfs;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which server runs the members.
#[derive(Clone, Debug)]
pub struct Server {
    pub bin: PathBuf,
    /// Flags added to every member's command line.
    pub extra: Vec<String>,
    /// Environment of every member.
    pub env: Vec<(String, String)>,
    pub label: String,
    /// Each member's data dir on a tmpfs of this size (`256m`), so the
    /// suite can fill its disk.
    pub disk: Option<String>,
    /// Built with `--features failpoints` (ferrocd's test build): fail
    /// points can be armed over HTTP.
    pub failpoints: bool,
}

impl Server {
    /// ferrocd, taking snapshots often and keeping few entries behind
    /// them, so a follower cut off for seconds catches up from a snapshot.
    pub fn ferrocd(bin: PathBuf) -> Server {
        Server {
            bin,
            extra: vec![
                "--snapshot-count=50".into(),
                "--experimental-snapshot-catchup-entries=20".into(),
            ],
            env: vec![],
            label: "ferrocd".into(),
            disk: None,
            failpoints: true,
        }
    }

    /// etcd 3.5 (3.5.1 has no flag for its 5000 catch-up entries: its
    /// followers catch up from the log in a short run).
    pub fn etcd(bin: PathBuf) -> Server {
        Server {
            bin,
            extra: vec!["--snapshot-count=100".into()],
            env: vec![],
            label: "etcd-3.5".into(),
            disk: None,
            failpoints: false,
        }
    }
}

pub struct Member {
    pub name: String,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    host: Host,
    args: Vec<String>,
    env: Vec<(String, String)>,
    bin: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Unmounted after the member is killed (fields drop after `drop`).
    disk: Option<Tmpfs>,
}

/// The file that fills a member's disk.
const FILLER: &str = "filler";

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://{}:2379", self.ip)
    }

    pub fn start(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let err = log.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let child = self
            .host
            .command(&self.bin)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// kill -9, and reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                self.signal_pid(c.id(), libc::SIGCONT);
                self.paused = false;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pause(&mut self) {
        if let Some(pid) = self.child.as_ref().map(|c| c.id()) {
            self.signal_pid(pid, libc::SIGSTOP);
            self.paused = true;
        }
    }

    pub fn resume(&mut self) {
        if let Some(pid) = self.child.as_ref().map(|c| c.id()) {
            self.signal_pid(pid, libc::SIGCONT);
            self.paused = false;
        }
    }

    fn signal_pid(&self, pid: u32, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's PID; no memory is involved.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }

    /// Peer traffic to and from this member dropped (clients still reach it).
    pub fn cut_off(&self) -> Result<(), String> {
        for chain in ["INPUT", "OUTPUT"] {
            self.iptables(&["-A", chain, "-p", "tcp", "--dport", "2380", "-j", "DROP"])?;
        }
        Ok(())
    }

    /// A share of the peer packets this member sends is dropped (one way).
    pub fn lose_outgoing(&self, probability: f64) -> Result<(), String> {
        let p = probability.to_string();
        self.iptables(&[
            "-A",
            "OUTPUT",
            "-p",
            "tcp",
            "--dport",
            "2380",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &p,
            "-j",
            "DROP",
        ])
    }

    /// Every rule gone.
    pub fn heal(&self) -> Result<(), String> {
        self.iptables(&["-F"])
    }

    fn iptables(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["iptables"];
        full.extend_from_slice(args);
        self.host.exec(&full)
    }

    /// Starts again as a new member of a running cluster (after a
    /// MemberAdd), on an empty data dir.
    pub fn rejoin(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        for a in &mut self.args {
            if a.starts_with("--initial-cluster-state=") {
                *a = "--initial-cluster-state=existing".into();
            }
        }
        self.start();
    }

    pub fn peer_url(&self) -> String {
        format!("http://{}:2380", self.ip)
    }

    /// Fills the member's tmpfs to the last byte.
    pub fn fill_disk(&self) -> Result<u64, String> {
        let disk = self
            .disk
            .as_ref()
            .ok_or("the member has no disk of its own")?;
        let mut f = std::fs::File::create(disk.path().join(FILLER)).map_err(|e| e.to_string())?;
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => return Ok(written),
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(written),
                Err(e) => return Err(format!("filling {}: {e}", disk.path().display())),
            }
        }
    }

    pub fn free_disk(&self) {
        if let Some(disk) = &self.disk {
            let _ = std::fs::remove_file(disk.path().join(FILLER));
        }
    }

    /// Arms a fail point (ferrocd's test build) with an action in the
    /// `fail` crate's syntax.
    pub async fn arm(&self, point: &str, action: &str) -> Result<(), String> {
        let url = format!("{}/debug/failpoints/{point}", self.endpoint());
        let r = reqwest::Client::new()
            .put(&url)
            .body(action.to_string())
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        // 204 is the fail point endpoint's answer; anything else (the gRPC
        // router answers unknown paths with 200) means a build without it.
        match r.status().as_u16() {
            204 => Ok(()),
            400 => Err(format!("{url}: {}", r.text().await.unwrap_or_default())),
            code => Err(format!(
                "{url}: {code}; the member binary was built without --features failpoints"
            )),
        }
    }

    /// Waits up to `limit` for the process to end on its own.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Whether the process ended on its own (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    pub dir: PathBuf,
    /// Dropped after the members (fields drop in order).
    _net: Arc<Bridge>,
}

impl Cluster {
    /// Starts `n` members on `net` in `dir` (data dirs and logs under it).
    pub fn start(server: &Server, n: u8, dir: &Path, net: Arc<Bridge>) -> Result<Cluster, String> {
        let ips: Vec<Ipv4Addr> = (0..n).map(|_| net.allocate()).collect();
        let initial: Vec<String> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| format!("m{i}=http://{ip}:2380"))
            .collect();
        let token = format!("robustness-{}", rand::random::<u32>());
        let mut members = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let disk = server.disk.as_deref().map(Tmpfs::mount);
            let data_dir = match &disk {
                Some(d) => d.path().join(format!("m{i}.data")),
                None => dir.join(format!("m{i}.data")),
            };
            let mut args = vec![
                format!("--name=m{i}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-peer-urls=http://{ip}:2380"),
                format!("--initial-advertise-peer-urls=http://{ip}:2380"),
                format!("--listen-client-urls=http://{ip}:2379"),
                format!("--advertise-client-urls=http://{ip}:2379"),
                format!("--initial-cluster={}", initial.join(",")),
                format!("--initial-cluster-token={token}"),
                "--initial-cluster-state=new".into(),
            ];
            args.extend(server.extra.iter().cloned());
            let mut m = Member {
                name: format!("m{i}"),
                ip: *ip,
                data_dir,
                host: Host::new(&net, *ip, "frm")?,
                args,
                env: server.env.clone(),
                bin: server.bin.clone(),
                log: dir.join(format!("m{i}.log")),
                child: None,
                paused: false,
                disk,
            };
            m.start();
            members.push(m);
        }
        Ok(Cluster {
            members,
            dir: dir.to_path_buf(),
            _net: net,
        })
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint()).collect()
    }

    /// Waits until every member answers Status with the same leader;
    /// returns the leader's index.
    pub async fn wait_healthy(&mut self, limit: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + limit;
        loop {
            let mut leaders = Vec::new();
            for m in &self.members {
                leaders.push(status(&m.endpoint()).await);
            }
            let ids: Vec<u64> = leaders.iter().flatten().map(|(id, _)| *id).collect();
            let agreed = leaders
                .iter()
                .flatten()
                .map(|(_, l)| *l)
                .collect::<std::collections::BTreeSet<_>>();
            if ids.len() == self.members.len() && agreed.len() == 1 {
                let leader = agreed.into_iter().next().unwrap_or(0);
                if let Some(i) = ids.iter().position(|id| *id == leader) {
                    return Ok(i);
                }
            }
            for m in &mut self.members {
                if let Some(status) = m.exited() {
                    return Err(format!(
                        "member {} exited ({status}):\n{}",
                        m.name,
                        m.log_tail(20)
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no agreed leader within {limit:?}: {leaders:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// (member ID, leader ID) as the member at `endpoint` says.
pub async fn status(endpoint: &str) -> Result<(u64, u64), String> {
    let ch = ferrocd_testkit::grpc::dial(endpoint, None).await?;
    let s = tokio::time::timeout(
        Duration::from_secs(1),
        MaintenanceClient::new(ch).status(StatusRequest {}),
    )
    .await
    .map_err(|_| format!("{endpoint}: status timed out"))?
    .map_err(|e| format!("{endpoint}: {}", e.message()))?
    .into_inner();
    let id = s.header.map(|h| h.member_id).unwrap_or(0);
    if s.leader == 0 {
        return Err(format!("{endpoint}: no leader"));
    }
    Ok((id, s.leader))
}

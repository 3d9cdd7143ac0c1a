//! Clusters for the side-by-side comparison: N members of etcd or ferrocd
//! on their own loopback addresses, static bootstrap, same flags and
//! durability for both; killed, reaped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Cluster {
    children: Vec<Child>,
    pub endpoints: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members of `bin` (etcd or ferrocd) and waits until every
    /// member answers /health with a leader.
    pub fn start(bin: &Path, n: u8) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ips = ferrocd_testkit::addr::loopback_ips(n, &[2379, 2380]);
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

pub use ferrocd_testkit::bins::find_etcd;

/// The ferrocd binary next to this tool (release if built, else this profile's).
pub fn find_ferrocd(given: Option<PathBuf>) -> Result<PathBuf, String> {
    match given {
        Some(p) => Ok(p),
        None => ferrocd_testkit::bins::workspace_bin("ferrocd", true),
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

/// The median round trip of one small message over a loopback TCP
/// connection (Nagle off, as gRPC sets it): the network part of the
/// physical floor of a replicated write. Zero if the probe cannot run.
pub fn loopback_rtt(rounds: usize) -> Duration {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let probe = || -> std::io::Result<Duration> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let echo = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            let mut b = [0u8; 64];
            loop {
                match s.read(&mut b)? {
                    0 => return Ok(()),
                    n => s.write_all(&b[..n])?,
                }
            }
        });
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let (msg, mut back) = ([7u8; 64], [0u8; 64]);
        let mut times = Vec::with_capacity(rounds.max(1));
        for _ in 0..rounds.max(1) {
            let start = Instant::now();
            s.write_all(&msg)?;
            s.read_exact(&mut back)?;
            times.push(start.elapsed());
        }
        drop(s);
        let _ = echo.join();
        times.sort_unstable();
        Ok(times[times.len() / 2])
    };
    probe().unwrap_or(Duration::ZERO)
}

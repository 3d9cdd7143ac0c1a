//! Talking to the cluster and to the `ferrocd` binary: which member a
//! snapshot comes from, what it says about a revision (key count, HashKV),
//! and `ferrocd snapshot ...` as a tool.

use super::cli::AgentError;
use crate::etcd_auth::{self, AuthedChannel, Credentials};
use ferrocd_proto::etcdserverpb::{
    kv_client::KvClient, maintenance_client::MaintenanceClient, HashKvRequest, RangeRequest,
    StatusRequest, StatusResponse,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A follower this far behind the most advanced member is not taken.
const MAX_LAG: u64 = 1000;

/// How to reach the members (etcdctl's flags).
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Client URLs of the members, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    #[arg(long)]
    pub cert: Option<PathBuf>,
    #[arg(long = "key-file")]
    pub key_file: Option<PathBuf>,
    #[command(flatten)]
    pub user: UserArgs,
}

/// Who to authenticate as where the cluster has auth on (the snapshot and
/// HashKV need root).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UserArgs {
    #[arg(long)]
    pub user: Option<String>,
    /// A file holding the user's password (a mounted Secret).
    #[arg(long = "password-file", requires = "user")]
    pub password_file: Option<PathBuf>,
}

impl UserArgs {
    fn credentials(&self) -> Result<Option<Credentials>, AgentError> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let password = match &self.password_file {
            Some(f) => std::fs::read_to_string(f).map_err(io(f))?,
            None => String::new(),
        };
        Ok(Some(Credentials {
            user: user.clone(),
            password: password.trim_end_matches('\n').to_string(),
        }))
    }
}

pub fn io(what: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |e| AgentError::Io(what.display().to_string(), e)
}

/// A connection to `url`, authenticated where the cluster has auth on.
pub async fn channel(url: &str, c: &ClusterArgs) -> Result<AuthedChannel, AgentError> {
    let bad = |e: &dyn std::fmt::Display| AgentError::Cluster(format!("endpoint {url}: {e}"));
    let mut ep = Endpoint::from_shared(url.to_string())
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(3));
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &c.cacert {
            let pem = std::fs::read(ca).map_err(io(ca))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&c.cert, &c.key_file) {
            let cert = std::fs::read(cert).map_err(io(cert))?;
            let key = std::fs::read(key).map_err(io(key))?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        ep = ep.tls_config(tls).map_err(|e| bad(&e))?;
    }
    let ch: Channel = ep.connect().await.map_err(|e| bad(&e))?;
    let token = etcd_auth::token(&ch, c.user.credentials()?.as_ref())
        .await
        .map_err(|s| bad(&format!("authenticating: {}", s.message())))?;
    Ok(etcd_auth::authed(ch, token))
}

/// A member with what it said about itself.
pub struct Source {
    pub url: String,
    pub channel: AuthedChannel,
    pub status: StatusResponse,
}

impl Source {
    pub fn member_id(&self) -> u64 {
        self.status
            .header
            .as_ref()
            .map(|h| h.member_id)
            .unwrap_or(0)
    }

    pub fn is_leader(&self) -> bool {
        self.member_id() == self.status.leader
    }
}

/// Asks every endpoint for its status: those that answered in time, and
/// the last refusal (e.g. "user name is empty" on a cluster with auth).
async fn ask_all(c: &ClusterArgs) -> (Vec<Source>, Option<String>) {
    let asked = futures::future::join_all(c.endpoints.iter().map(|url| async move {
        let ch = match channel(url, c).await {
            Ok(ch) => ch,
            Err(e) => return Err(Some(e.to_string())),
        };
        let status = match tokio::time::timeout(
            Duration::from_secs(5),
            MaintenanceClient::new(ch.clone()).status(StatusRequest {}),
        )
        .await
        {
            Ok(Ok(s)) => s.into_inner(),
            Ok(Err(s)) if s.code() != tonic::Code::Unavailable => {
                return Err(Some(format!("{url}: {}", s.message())))
            }
            _ => return Err(None),
        };
        Ok(Source {
            url: url.clone(),
            channel: ch,
            status,
        })
    }))
    .await;
    let mut sources = Vec::new();
    let mut refusal = None;
    for a in asked {
        match a {
            Ok(s) => sources.push(s),
            Err(why) => refusal = why.or(refusal),
        }
    }
    (sources, refusal)
}

/// The member a snapshot is taken from: a healthy voter that knows a
/// leader, preferring a caught-up follower (the leader's disk and CPU are
/// the cluster's), then the highest applied index. Asks again for up to
/// `patience`: a backup asked for while the cluster is still forming (or
/// electing) waits for it rather than failing at once.
pub async fn pick_member(c: &ClusterArgs, patience: Duration) -> Result<Source, AgentError> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let (sources, refusal) = ask_all(c).await;
        if let Some(s) = best_of(sources) {
            return Ok(s);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AgentError::Cluster(format!(
                "no healthy member answered at {} within {}s{}",
                c.endpoints.join(","),
                patience.as_secs(),
                refusal
                    .map(|r| format!(" (last refusal: {r})"))
                    .unwrap_or_default()
            )));
        }
        tracing::info!("no healthy member yet, asking again in 2s");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn best_of(sources: Vec<Source>) -> Option<Source> {
    let healthy: Vec<Source> = sources
        .into_iter()
        .filter(|s| s.status.leader != 0 && s.status.errors.is_empty() && !s.status.is_learner)
        .collect();
    let newest = healthy
        .iter()
        .map(|s| s.status.raft_applied_index)
        .max()
        .unwrap_or(0);
    let rank = |s: &Source| {
        let caught_up = s.status.raft_applied_index + MAX_LAG >= newest;
        (caught_up && !s.is_leader(), s.status.raft_applied_index)
    };
    healthy
        .into_iter()
        .filter(|s| s.is_leader() || s.status.raft_applied_index + MAX_LAG >= newest)
        .max_by_key(rank)
}

/// Keys live at `revision`, read from the member's own state.
pub async fn keys_at(ch: &AuthedChannel, revision: i64) -> Result<i64, AgentError> {
    let r = KvClient::new(ch.clone())
        .range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision,
            count_only: true,
            serializable: true,
            ..RangeRequest::default()
        })
        .await
        .map_err(|s| {
            AgentError::Cluster(format!("counting keys at {revision}: {}", s.message()))
        })?;
    Ok(r.into_inner().count)
}

/// HashKV at `revision` and the compact revision then.
pub async fn hash_kv_at(ch: &AuthedChannel, revision: i64) -> Result<(u32, i64), AgentError> {
    let r = MaintenanceClient::new(ch.clone())
        .hash_kv(HashKvRequest { revision })
        .await
        .map_err(|s| AgentError::Cluster(format!("HashKV at {revision}: {}", s.message())))?
        .into_inner();
    Ok((r.hash, r.compact_revision))
}

/// `ferrocd` beside this binary (the image and the harness put them
/// together), else on PATH.
pub fn ferrocd() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("ferrocd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("ferrocd"))
}

/// Runs `ferrocd args...`; its stdout, or its stderr's last line as the error.
pub async fn run_ferrocd(args: &[&str]) -> Result<String, AgentError> {
    let out = tokio::process::Command::new(ferrocd())
        .args(args)
        .output()
        .await
        .map_err(|e| AgentError::Tool(format!("cannot run ferrocd: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no output");
        return Err(AgentError::Tool(format!(
            "ferrocd {}: {last}",
            args[..args.len().min(2)].join(" ")
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The revision `ferrocd snapshot status` reads from a snapshot file.
pub async fn snapshot_revision(file: &Path) -> Result<i64, AgentError> {
    let path = file.display().to_string();
    let out = run_ferrocd(&["snapshot", "status", &path, "-w", "json"]).await?;
    let v: serde_json::Value = serde_json::from_str(out.trim())
        .map_err(|e| AgentError::Tool(format!("snapshot status said {out:?}: {e}")))?;
    v["revision"]
        .as_i64()
        .ok_or_else(|| AgentError::Tool(format!("snapshot status said {out:?}")))
}

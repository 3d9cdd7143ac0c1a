//! `ferrocd-operator backup ...`: what backup Jobs and restore init
//! containers run (the image holds both binaries). Each command reports a
//! [`Report`] as JSON on stdout and in its result file (the container's
//! termination message, which the operator reads).

use super::record::{Failed, Report};
use super::store::{Location, S3Target};
use super::{restore, save, verify};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Store(#[from] super::store::StoreError),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("{0}")]
    Cluster(String),
    #[error("{0}")]
    Tool(String),
}

impl AgentError {
    /// The `reason` of a failure (conditions, metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            AgentError::Store(e) if e.is_credentials() => "Credentials",
            AgentError::Store(_) => "ObjectStore",
            AgentError::Io(..) => "LocalDisk",
            AgentError::Cluster(_) => "Cluster",
            AgentError::Tool(_) => "Snapshot",
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum BackupCommand {
    /// Take a snapshot from the cluster and store it.
    Save(save::SaveArgs),
    /// Restore a stored snapshot into a throw-away member and check it.
    Verify(verify::VerifyArgs),
    /// Restore a member's data dir from a stored snapshot (init container).
    Restore(restore::RestoreArgs),
    /// Remove a stored snapshot (retention, deletion policy Delete).
    Delete(DeleteArgs),
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub from: LocationArgs,
    #[command(flatten)]
    pub result: ResultArgs,
}

async fn delete(a: &DeleteArgs) -> Result<Report, AgentError> {
    let location = a.from.location();
    location.delete().await?;
    Ok(Report::Deleted(location.to_string()))
}

/// Where the backup object is.
#[derive(clap::Args, Debug, Clone)]
pub struct LocationArgs {
    /// S3 bucket (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint, e.g. http://minio:9000 (AWS when unset).
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    /// Bucket in the URL path instead of the host name.
    #[arg(long)]
    pub s3_path_style: bool,
    /// CA bundle (PEM) for the S3 endpoint's certificate.
    #[arg(long)]
    pub s3_ca_file: Option<PathBuf>,
    /// A directory (a mounted volume) instead of a bucket.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Object key (or file path under --dir).
    #[arg(long)]
    pub key: String,
}

impl LocationArgs {
    pub fn location(&self) -> Location {
        match (&self.s3_bucket, &self.dir) {
            (Some(bucket), _) => Location::S3 {
                target: S3Target {
                    endpoint: self.s3_endpoint.clone(),
                    bucket: bucket.clone(),
                    region: self.s3_region.clone(),
                    path_style: self.s3_path_style,
                    ca_file: self.s3_ca_file.clone(),
                    keys: None,
                },
                key: self.key.clone(),
            },
            (None, dir) => Location::Dir {
                dir: dir.clone().unwrap_or_default(),
                key: self.key.clone(),
            },
        }
    }
}

/// Where a command writes its report besides stdout.
#[derive(clap::Args, Debug, Clone)]
pub struct ResultArgs {
    /// The container's termination message file.
    #[arg(long, default_value = "/dev/termination-log")]
    pub result_file: PathBuf,
}

/// Runs one command; the process's exit code: 0 done, 1 failed, 3 a
/// backup that does not verify.
pub async fn run(cmd: BackupCommand) -> i32 {
    let (result_file, outcome) = match cmd {
        BackupCommand::Save(a) => (a.result.result_file.clone(), save::save(&a).await),
        BackupCommand::Verify(a) => (a.result.result_file.clone(), verify::verify(&a).await),
        BackupCommand::Restore(a) => (a.result.result_file.clone(), restore::restore(&a).await),
        BackupCommand::Delete(a) => (a.result.result_file.clone(), delete(&a).await),
    };
    let report = outcome.unwrap_or_else(|e| {
        Report::Failed(Failed {
            reason: e.reason().into(),
            message: e.to_string(),
        })
    });
    let code = match &report {
        Report::Failed(f) => {
            eprintln!("ferrocd-operator backup: {}", f.message);
            1
        }
        Report::Verified(v) if !v.verified => 3,
        _ => 0,
    };
    let line = report.to_json();
    println!("{line}");
    if let Err(e) = std::fs::write(&result_file, &line) {
        eprintln!("cannot write {}: {e}", result_file.display());
    }
    code
}

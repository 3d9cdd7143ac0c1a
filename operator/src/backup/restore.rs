//! `backup restore`: a member pod's init container. Restores the pod's
//! data dir from a stored snapshot with `ferrocd snapshot restore`, unless
//! there is nothing to restore: the data dir already holds a member (a
//! restart), the pod joined after the cluster was created, or the cluster
//! has formed on the restored data already (then a member that lost its
//! volume starts empty and is replaced, as any other).

use super::cli::{AgentError, LocationArgs, ResultArgs};
use super::member::{io, run_ferrocd, snapshot_revision};
use super::record::{Report, Restored};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub from: LocationArgs,
    /// Refuse the object unless its SHA-256 is this.
    #[arg(long)]
    pub sha256: Option<String>,
    /// The snapshot has no integrity trailer (a copied db file).
    #[arg(long)]
    pub skip_hash_check: bool,
    #[arg(long)]
    pub data_dir: PathBuf,
    /// This member's name (the pod's name, `C-<ordinal>`).
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub initial_cluster: String,
    #[arg(long)]
    pub initial_cluster_token: String,
    #[arg(long)]
    pub initial_advertise_peer_urls: String,
    /// Members the cluster was created with: a pod with a higher ordinal
    /// joined later and starts empty.
    #[arg(long)]
    pub bootstrap_members: u32,
    /// Set (to `true`) by the operator once the cluster has formed on the
    /// restored data.
    #[arg(long, env = "FERROCD_RESTORE_DONE", default_value = "false")]
    pub restore_done: String,
    #[command(flatten)]
    pub result: ResultArgs,
}

/// The ordinal at the end of a StatefulSet pod's name.
fn ordinal(name: &str) -> Option<u32> {
    name.rsplit('-').next()?.parse().ok()
}

fn skipped(message: String) -> Report {
    Report::Restored(Restored {
        revision: None,
        message,
    })
}

pub async fn restore(a: &RestoreArgs) -> Result<Report, AgentError> {
    let holds_member = std::fs::read_dir(&a.data_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if holds_member {
        return Ok(skipped(format!(
            "{} already holds a member; not restoring",
            a.data_dir.display()
        )));
    }
    if a.restore_done == "true" {
        return Ok(skipped(format!(
            "the cluster has formed on the restored data; {} starts empty",
            a.name
        )));
    }
    match ordinal(&a.name) {
        Some(o) if o < a.bootstrap_members => {}
        _ => {
            return Ok(skipped(format!(
                "{} joined after the cluster was created; it starts empty and catches up",
                a.name
            )))
        }
    }
    let parent = a.data_dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let file = parent.join(".restore.db");
    let result = restore_from(a, &file).await;
    let _ = std::fs::remove_file(&file);
    result
}

async fn restore_from(a: &RestoreArgs, file: &Path) -> Result<Report, AgentError> {
    let location = a.from.location();
    let sha256 = location.download(file).await?;
    if let Some(want) = &a.sha256 {
        if &sha256 != want {
            return Err(AgentError::Tool(format!(
                "{location}: SHA-256 is {sha256}, the backup recorded {want}; not restoring"
            )));
        }
    }
    let revision = snapshot_revision(file).await?;
    let file_arg = file.display().to_string();
    let data_arg = a.data_dir.display().to_string();
    let mut args = vec![
        "snapshot",
        "restore",
        &file_arg,
        "--data-dir",
        &data_arg,
        "--name",
        &a.name,
        "--initial-cluster",
        &a.initial_cluster,
        "--initial-cluster-token",
        &a.initial_cluster_token,
        "--initial-advertise-peer-urls",
        &a.initial_advertise_peer_urls,
    ];
    if a.skip_hash_check {
        args.push("--skip-hash-check");
    }
    run_ferrocd(&args).await?;
    Ok(Report::Restored(Restored {
        revision: Some(revision),
        message: format!(
            "restored {} from {location} at revision {revision}",
            a.data_dir.display()
        ),
    }))
}

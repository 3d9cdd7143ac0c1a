//! `backup save`: a snapshot from a healthy member (a caught-up follower
//! when there is one) streamed into a scratch file while it is hashed;
//! its revision read back with `ferrocd snapshot status`, the key count
//! and HashKV at that revision taken on the same member; then stored whole
//! or not at all.

use super::cli::{AgentError, LocationArgs, ResultArgs};
use super::member::{hash_kv_at, io, keys_at, pick_member, snapshot_revision, ClusterArgs, Source};
use super::record::{Report, Taken};
use super::store::hex;
use ferrocd_proto::etcdserverpb::{maintenance_client::MaintenanceClient, SnapshotRequest};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub to: LocationArgs,
    /// Directory for the snapshot while it is checked (an emptyDir).
    #[arg(long, default_value = "/tmp")]
    pub scratch: PathBuf,
    /// How long to wait for a healthy member before giving up, in seconds.
    #[arg(long, default_value_t = 120)]
    pub wait_for_member: u64,
    #[command(flatten)]
    pub result: ResultArgs,
}

pub async fn save(a: &SaveArgs) -> Result<Report, AgentError> {
    let source = pick_member(
        &a.cluster,
        std::time::Duration::from_secs(a.wait_for_member),
    )
    .await?;
    let member = source.member_id();
    tracing::info!(url = %source.url, member = %format!("{member:x}"), leader = source.is_leader(), "taking the snapshot");
    std::fs::create_dir_all(&a.scratch).map_err(io(&a.scratch))?;
    let file = a
        .scratch
        .join(format!("snapshot-{}.db.part", std::process::id()));
    let result = take(a, &source, &file).await;
    let _ = std::fs::remove_file(&file);
    let mut taken = result?;
    taken.member = format!("{member:x}");
    taken.from_leader = source.is_leader();
    taken.cluster_id = format!(
        "{:x}",
        source
            .status
            .header
            .as_ref()
            .map(|h| h.cluster_id)
            .unwrap_or(0)
    );
    Ok(Report::Taken(taken))
}

async fn take(a: &SaveArgs, source: &Source, file: &Path) -> Result<Taken, AgentError> {
    let failed = |s: tonic::Status| {
        AgentError::Cluster(format!("snapshot from {}: {}", source.url, s.message()))
    };
    let mut out = std::fs::File::create(file).map_err(io(file))?;
    let mut sha = Sha256::new();
    let mut trailer = Trailer::default();
    let mut size = 0u64;
    let mut stream = MaintenanceClient::new(source.channel.clone())
        .snapshot(SnapshotRequest {})
        .await
        .map_err(failed)?
        .into_inner();
    while let Some(chunk) = stream.message().await.map_err(failed)? {
        sha.update(&chunk.blob);
        trailer.feed(&chunk.blob);
        out.write_all(&chunk.blob).map_err(io(file))?;
        size += chunk.blob.len() as u64;
    }
    out.sync_all().map_err(io(file))?;
    drop(out);
    if !trailer.matches() {
        return Err(AgentError::Cluster(format!(
            "snapshot from {}: the stream's SHA-256 trailer does not match its {size} bytes",
            source.url
        )));
    }
    let revision = snapshot_revision(file).await?;
    let keys = keys_at(&source.channel, revision).await?;
    let (hash_kv, compact_revision) = hash_kv_at(&source.channel, revision).await?;
    let location = a.to.location();
    tracing::info!(%location, size, revision, keys, "storing the snapshot");
    location.upload(file).await?;
    Ok(Taken {
        location: location.to_string(),
        sha256: hex(&sha.finalize()),
        size,
        revision,
        keys,
        hash_kv,
        compact_revision,
        member: String::new(),
        from_leader: false,
        cluster_id: String::new(),
    })
}

/// etcd's snapshot stream ends with the SHA-256 of what came before it;
/// checked while streaming (everything but the last 32 bytes is hashed).
#[derive(Default)]
struct Trailer {
    inner: Sha256,
    tail: Vec<u8>,
}

impl Trailer {
    fn feed(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 32 {
            let n = self.tail.len() - 32;
            self.inner.update(&self.tail[..n]);
            self.tail.drain(..n);
        }
    }

    fn matches(self) -> bool {
        self.tail.len() == 32 && self.inner.finalize()[..] == self.tail[..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_check_takes_a_whole_stream_and_refuses_a_cut_one() {
        let body = vec![7u8; 100_000];
        let mut stream = body.clone();
        stream.extend_from_slice(&Sha256::digest(&body));
        let mut t = Trailer::default();
        for chunk in stream.chunks(4099) {
            t.feed(chunk);
        }
        assert!(t.matches());
        let mut cut = Trailer::default();
        cut.feed(&stream[..stream.len() - 1000]);
        assert!(!cut.matches());
        let mut flipped = stream.clone();
        flipped[10] ^= 1;
        let mut f = Trailer::default();
        f.feed(&flipped);
        assert!(!f.matches());
    }
}

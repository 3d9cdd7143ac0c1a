//! Where backups live: an S3-compatible bucket (through `object_store`) or
//! a directory (a mounted PersistentVolumeClaim). Either way an object
//! appears whole or not at all: S3 commits a multipart upload only when it
//! completes (an aborted or crashed upload lists nothing), a directory gets
//! a hidden temporary file that is fsynced and renamed into place.

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Multipart part size: S3's minimum is 5 MiB.
const PART: usize = 8 << 20;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store {0}: {1}")]
    ObjectStore(String, #[source] object_store::Error),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    /// The store refused who we are (wrong or missing keys).
    pub fn is_credentials(&self) -> bool {
        match self {
            StoreError::ObjectStore(_, e) => {
                matches!(
                    e,
                    object_store::Error::PermissionDenied { .. }
                        | object_store::Error::Unauthenticated { .. }
                ) || [
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                    "AccessDenied",
                ]
                .iter()
                .any(|code| e.to_string().contains(code))
            }
            _ => false,
        }
    }
}

/// An S3-compatible bucket. Credentials come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Target {
    /// `http(s)://host:port`; empty for AWS itself.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: Option<String>,
    /// Bucket in the path (`endpoint/bucket/key`), as MinIO and SeaweedFS
    /// expect, instead of in the host name.
    pub path_style: bool,
    /// PEM file of the CA that signed the endpoint's certificate.
    pub ca_file: Option<PathBuf>,
    /// Access key ID and secret; from the environment when None.
    pub keys: Option<(String, String)>,
}

/// One backup object: a key in a bucket, or a file name in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    S3 { target: S3Target, key: String },
    Dir { dir: PathBuf, key: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { target, key } => write!(f, "s3://{}/{key}", target.bucket),
            Location::Dir { dir, key } => write!(f, "{}", dir.join(key).display()),
        }
    }
}

fn s3(target: &S3Target) -> Result<AmazonS3, StoreError> {
    let mut options = ClientOptions::new()
        .with_connect_timeout(std::time::Duration::from_secs(5))
        .with_timeout(std::time::Duration::from_secs(60));
    if let Some(ca) = &target.ca_file {
        let pem = std::fs::read(ca).map_err(|e| StoreError::Io(ca.display().to_string(), e))?;
        let certs = object_store::Certificate::from_pem_bundle(&pem)
            .map_err(|e| StoreError::ObjectStore(ca.display().to_string(), e))?;
        for c in certs {
            options = options.with_root_certificate(c);
        }
    }
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&target.bucket)
        .with_virtual_hosted_style_request(!target.path_style)
        .with_region(target.region.clone().unwrap_or_else(|| "us-east-1".into()))
        // A store that is down fails the run within half a minute (the
        // next scheduled run tries again) instead of object_store's 3 min.
        .with_retry(RetryConfig {
            max_retries: 4,
            retry_timeout: std::time::Duration::from_secs(30),
            ..RetryConfig::default()
        });
    if let Some((id, secret)) = &target.keys {
        b = b.with_access_key_id(id).with_secret_access_key(secret);
    }
    if let Some(endpoint) = &target.endpoint {
        options = options.with_allow_http(endpoint.starts_with("http://"));
        b = b.with_endpoint(endpoint);
    }
    b.with_client_options(options)
        .build()
        .map_err(|e| StoreError::ObjectStore(format!("s3://{}", target.bucket), e))
}

impl S3Target {
    /// Keys under `prefix`, sorted: only whole objects (an upload that
    /// did not complete is not one).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let store = s3(self)?;
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        let mut keys = Vec::new();
        let mut stream = store.list(prefix.as_ref());
        while let Some(meta) = stream.next().await {
            let meta =
                meta.map_err(|e| StoreError::ObjectStore(format!("s3://{}", self.bucket), e))?;
            keys.push(meta.location.to_string());
        }
        keys.sort();
        Ok(keys)
    }
}

impl Location {
    /// Copies a local file to the location; the object exists only once
    /// all of it is there.
    pub async fn upload(&self, local: &Path) -> Result<(), StoreError> {
        let io = |e| StoreError::Io(local.display().to_string(), e);
        match self {
            Location::S3 { target, key } => {
                let store = s3(target)?;
                let failed = |e| StoreError::ObjectStore(self.to_string(), e);
                let upload = store
                    .put_multipart(&ObjectPath::from(key.as_str()))
                    .await
                    .map_err(failed)?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
                let mut file = std::fs::File::open(local).map_err(io)?;
                let mut buf = vec![0u8; 1 << 20];
                let mut sent = 0usize;
                loop {
                    let n = file.read(&mut buf).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                        let _ = writer.abort().await;
                        return Err(failed(e));
                    }
                    writer.write(&buf[..n]);
                    sent += n;
                    if sent % PART < n {
                        tracing::info!(location = %self, mib = sent >> 20, "parts uploading");
                    }
                }
                writer.finish().await.map_err(failed)?;
                Ok(())
            }
            Location::Dir { dir, key } => {
                let dest = dir.join(key);
                let parent = dest.parent().unwrap_or(dir).to_path_buf();
                let at = |p: &Path| {
                    let p = p.display().to_string();
                    move |e| StoreError::Io(p, e)
                };
                std::fs::create_dir_all(&parent).map_err(at(&parent))?;
                let name = dest.file_name().unwrap_or_default().to_string_lossy();
                let tmp = parent.join(format!(".{name}.partial"));
                std::fs::copy(local, &tmp).map_err(at(&tmp))?;
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(at(&tmp))?;
                std::fs::rename(&tmp, &dest).map_err(at(&dest))?;
                std::fs::File::open(&parent)
                    .and_then(|f| f.sync_all())
                    .map_err(at(&parent))?;
                Ok(())
            }
        }
    }

    /// Copies the object to a local file; returns its SHA-256 (hex).
    pub async fn download(&self, local: &Path) -> Result<String, StoreError> {
        let io = |e| StoreError::Io(local.display().to_string(), e);
        let mut out = std::fs::File::create(local).map_err(io)?;
        let mut sha = Sha256::new();
        match self {
            Location::S3 { target, key } => {
                let store = s3(target)?;
                let failed = |e| StoreError::ObjectStore(self.to_string(), e);
                let mut stream = store
                    .get(&ObjectPath::from(key.as_str()))
                    .await
                    .map_err(failed)?
                    .into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(failed)?;
                    sha.update(&chunk);
                    out.write_all(&chunk).map_err(io)?;
                }
            }
            Location::Dir { dir, key } => {
                let src = dir.join(key);
                let mut f = std::fs::File::open(&src)
                    .map_err(|e| StoreError::Io(src.display().to_string(), e))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f
                        .read(&mut buf)
                        .map_err(|e| StoreError::Io(src.display().to_string(), e))?;
                    if n == 0 {
                        break;
                    }
                    sha.update(&buf[..n]);
                    out.write_all(&buf[..n]).map_err(io)?;
                }
            }
        }
        out.sync_all().map_err(io)?;
        Ok(hex(&sha.finalize()))
    }

    /// Removes the object (retention); a missing object is not an error.
    pub async fn delete(&self) -> Result<(), StoreError> {
        match self {
            Location::S3 { target, key } => {
                match s3(target)?.delete(&ObjectPath::from(key.as_str())).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(StoreError::ObjectStore(self.to_string(), e)),
                }
            }
            Location::Dir { dir, key } => match std::fs::remove_file(dir.join(key)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::Io(self.to_string(), e)),
            },
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate for this
//! member's advertised hosts, made once and kept in the data dir
//! (`fixtures/client` or `fixtures/peer`, as etcd keeps it).

use super::TlsError;
use std::path::{Path, PathBuf};

/// The certificate and key files in `dir`, made if they are not there yet.
pub fn self_signed(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let mut names: Vec<String> = hosts.to_vec();
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names)
        .map_err(|e| TlsError(format!("cannot make a self-signed certificate: {e}")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "etcd");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key =
        rcgen::KeyPair::generate().map_err(|e| TlsError(format!("cannot make a key: {e}")))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError(format!("cannot make a self-signed certificate: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| TlsError(format!("{}: {e}", dir.display())))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem())
        .map_err(|e| TlsError(format!("{}: {e}", cert_path.display())))?;
    tracing::info!(cert = %cert_path.display(), "made a self-signed certificate (auto TLS)");
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))
}

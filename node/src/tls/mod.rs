//! TLS for client and peer URLs with rustls (ring provider only), as etcd's
//! flags describe it: certificate and key files or an automatic self-signed
//! certificate, a trusted CA with client-certificate authentication, allowed
//! peer CN / hostname, cipher suites and protocol versions.
//!
//! Certificate, key and CA files are re-read when they change on disk: each
//! new connection uses the configuration of the files as they are now;
//! connections already open keep theirs.

mod auto;
mod conn;
mod dial;
mod files;

pub use conn::{incoming, remote_addr, Conn, ConnInfo};
pub use dial::TlsConnector;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Why TLS could not be set up; the text is what the user sees.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct TlsError(pub String);

/// One side's TLS flags (`--cert-file ...` or `--peer-cert-file ...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub auto_tls: bool,
    /// Peers only: the CN a peer's certificate must carry.
    pub allowed_cn: Option<String>,
    /// Peers only: a host name a peer's certificate must be valid for.
    pub allowed_hostname: Option<String>,
}

impl TlsFiles {
    /// No certificate configured (neither files nor auto-tls).
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && !self.auto_tls
    }
}

/// `--cipher-suites`, `--tls-min-version`, `--tls-max-version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// IANA names of the TLS 1.2 suites allowed (empty: rustls' defaults).
    pub cipher_suites: Vec<String>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    V12,
    V13,
}

impl TlsVersion {
    /// etcd's names: TLS1.2, TLS1.3 (TLS1.0/1.1 are not offered by rustls).
    pub fn parse(s: &str) -> Result<TlsVersion, TlsError> {
        match s {
            "TLS1.2" => Ok(TlsVersion::V12),
            "TLS1.3" => Ok(TlsVersion::V13),
            "TLS1.0" | "TLS1.1" => Err(TlsError(format!(
                "unsupported TLS version {s:?}: ferrocd speaks TLS1.2 and TLS1.3"
            ))),
            _ => Err(TlsError(format!("unknown TLS version {s:?}"))),
        }
    }
}

impl Default for TlsPolicy {
    fn default() -> Self {
        TlsPolicy {
            cipher_suites: Vec::new(),
            min_version: TlsVersion::V12,
            max_version: TlsVersion::V13,
        }
    }
}

impl TlsPolicy {
    fn provider(&self) -> Result<Arc<rustls::crypto::CryptoProvider>, TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let mut chosen: Vec<SupportedCipherSuite> = provider
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            for name in &self.cipher_suites {
                let suite = provider
                    .cipher_suites
                    .iter()
                    .find(|s| format!("{:?}", s.suite()) == *name)
                    .ok_or_else(|| TlsError(format!("unexpected TLS cipher suite {name:?}")))?;
                chosen.push(*suite);
            }
            provider.cipher_suites = chosen;
        }
        Ok(Arc::new(provider))
    }

    fn versions(&self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
        if self.min_version > self.max_version {
            return Err(TlsError(
                "--tls-min-version must not be greater than --tls-max-version".into(),
            ));
        }
        let mut v = Vec::new();
        if self.min_version <= TlsVersion::V12 {
            v.push(&rustls::version::TLS12);
        }
        if self.max_version >= TlsVersion::V13 {
            v.push(&rustls::version::TLS13);
        }
        Ok(v)
    }
}

/// What the files said when they were last read.
struct Loaded<T> {
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
    config: Arc<T>,
}

/// A configuration built from files, rebuilt when one of them changes (a
/// rebuild that fails keeps the last good configuration and is retried).
struct Reloading<T> {
    watched: Vec<PathBuf>,
    loaded: Mutex<Loaded<T>>,
}

impl<T> Reloading<T> {
    fn new(files: &TlsFiles, config: T) -> Reloading<T> {
        let watched: Vec<PathBuf> = [&files.cert_file, &files.key_file, &files.trusted_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Reloading {
            loaded: Mutex::new(Loaded {
                stamps: stamps(&watched),
                checked: Instant::now(),
                config: Arc::new(config),
            }),
            watched,
        }
    }

    fn current(&self, rebuild: impl FnOnce() -> Result<T, TlsError>) -> Arc<T> {
        let mut l = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if l.checked.elapsed() >= RECHECK {
            l.checked = Instant::now();
            let now = stamps(&self.watched);
            if now != l.stamps {
                match rebuild() {
                    Ok(c) => {
                        tracing::info!(files = ?self.watched, "reloaded TLS certificate files");
                        l.config = Arc::new(c);
                        l.stamps = now;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "changed TLS files do not load yet; keeping the previous ones")
                    }
                }
            }
        }
        l.config.clone()
    }

    fn replace(&self, config: T) {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).config = Arc::new(config);
    }
}

/// Re-read files at most this often.
const RECHECK: Duration = Duration::from_millis(500);

fn stamps(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A server configuration that follows its files.
pub struct ServerTls {
    files: TlsFiles,
    policy: TlsPolicy,
    config: Reloading<ServerConfig>,
}

impl ServerTls {
    /// `hosts` are the names and addresses an automatic certificate covers;
    /// `dir` is where it is kept (`<data-dir>/fixtures/client` or `/peer`).
    pub fn new(
        mut files: TlsFiles,
        policy: TlsPolicy,
        hosts: &[String],
        dir: &Path,
    ) -> Result<Arc<ServerTls>, TlsError> {
        if files.auto_tls && files.cert_file.is_none() {
            let (cert, key) = auto::self_signed(dir, hosts)?;
            files.cert_file = Some(cert);
            files.key_file = Some(key);
        }
        if files.client_cert_auth && files.trusted_ca_file.is_none() {
            return Err(TlsError(
                "client certificate authentication needs a trusted CA file (--trusted-ca-file / --peer-trusted-ca-file)".into(),
            ));
        }
        let config = Reloading::new(&files, build_server(&files, &policy)?);
        Ok(Arc::new(ServerTls {
            files,
            policy,
            config,
        }))
    }

    /// The configuration for a new connection (re-read if a file changed).
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config
            .current(|| build_server(&self.files, &self.policy))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn build_server(files: &TlsFiles, policy: &TlsPolicy) -> Result<ServerConfig, TlsError> {
    let provider = policy.provider()?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&policy.versions()?)
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
    let builder = match &files.trusted_ca_file {
        Some(ca) if files.client_cert_auth => {
            let roots = Arc::new(files::roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let (Some(cert), Some(key)) = (&files.cert_file, &files.key_file) else {
        return Err(TlsError(
            "TLS needs --cert-file and --key-file (or --auto-tls)".into(),
        ));
    };
    let mut config = builder
        .with_single_cert(files::certs(cert)?, files::key(key)?)
        .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The peer client's configuration (a member dialing other members).
pub struct ClientTls {
    files: TlsFiles,
    policy: TlsPolicy,
    config: Reloading<ClientConfig>,
    /// Set when `_etcd-server-ssl` SRV records named the peers and no peer
    /// CA is given: peers' certificates must then be valid, under the
    /// system's CAs, for this domain (etcd's rule).
    srv_domain: Mutex<Option<String>>,
}

impl ClientTls {
    /// With an automatic certificate (or no trusted CA) peers' certificates
    /// are not verified, as etcd's `--peer-auto-tls` does.
    pub fn new(files: TlsFiles, policy: TlsPolicy) -> Result<Arc<ClientTls>, TlsError> {
        let config = Reloading::new(&files, build_client(&files, &policy, false)?);
        Ok(Arc::new(ClientTls {
            files,
            policy,
            config,
            srv_domain: Mutex::new(None),
        }))
    }

    /// Peers found through `_etcd-server-ssl` records of `domain`: without a
    /// peer CA, their certificates must be valid for the domain under the
    /// system's CAs (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).
    pub fn verify_peers_for_domain(&self, domain: &str) -> Result<(), TlsError> {
        if self.files.trusted_ca_file.is_some() {
            return Ok(());
        }
        let config = build_client(&self.files, &self.policy, true)?;
        *self.srv_domain.lock().unwrap_or_else(|e| e.into_inner()) = Some(domain.to_string());
        self.config.replace(config);
        tracing::info!(domain, "peer certificates must be valid for the SRV domain");
        Ok(())
    }

    /// The name peers' certificates are checked against: the SRV domain
    /// when set, else the host being dialed.
    pub fn server_name(&self, host: &str) -> String {
        self.srv_domain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| host.to_string())
    }

    pub fn current(&self) -> Arc<ClientConfig> {
        self.config.current(|| {
            let by_domain = self
                .srv_domain
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some();
            build_client(&self.files, &self.policy, by_domain)
        })
    }
}

/// `system_roots`: verify servers under the system's CAs (SRV domain rule).
fn build_client(
    files: &TlsFiles,
    policy: &TlsPolicy,
    system_roots: bool,
) -> Result<ClientConfig, TlsError> {
    let provider = policy.provider()?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&policy.versions()?)
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?;
    let builder = match &files.trusted_ca_file {
        Some(ca) => builder.with_root_certificates(files::roots(ca)?),
        None if system_roots => builder.with_root_certificates(files::system_roots()?),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(files::AcceptAnyServer(provider))),
    };
    let mut config = match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(files::certs(cert)?, files::key(key)?)
            .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?,
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A member's server TLS for one side (client or peer), if its flags ask
/// for any: `urls` give the host names an automatic certificate covers.
pub fn for_member(
    files: &TlsFiles,
    policy: &TlsPolicy,
    urls: &[String],
    dir: &Path,
) -> Result<Option<Arc<ServerTls>>, TlsError> {
    if files.is_empty() {
        return Ok(None);
    }
    let hosts: Vec<String> = urls
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .collect();
    ServerTls::new(files.clone(), policy.clone(), &hosts, dir).map(Some)
}

/// The subject Common Name of a certificate, if it has one.
fn common_name(cert: &rustls::pki_types::CertificateDer<'_>) -> Result<Option<String>, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("cannot parse the client certificate: {e}"))?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_string);
    Ok(cn)
}

/// `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`: the
/// verified client certificate must carry that CN / be valid for that host.
fn check_peer(
    files: &TlsFiles,
    certs: Option<&[rustls::pki_types::CertificateDer<'static>]>,
) -> Result<(), String> {
    if files.allowed_cn.is_none() && files.allowed_hostname.is_none() {
        return Ok(());
    }
    let Some(cert) = certs.and_then(|c| c.first()) else {
        return Err("no client certificate".into());
    };
    if let Some(cn) = &files.allowed_cn {
        let found = common_name(cert)?;
        if found.as_deref() != Some(cn.as_str()) {
            return Err(format!(
                "CommonName authentication failed (allowed {cn:?}, got {:?})",
                found.unwrap_or_default()
            ));
        }
    }
    if let Some(host) = &files.allowed_hostname {
        let ee = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| format!("cannot parse the client certificate: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(host.as_str())
            .map_err(|e| format!("bad --peer-cert-allowed-hostname {host:?}: {e}"))?;
        ee.verify_is_valid_for_subject_name(&name)
            .map_err(|e| format!("client certificate is not valid for {host:?}: {e:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;

    fn cert(cn: &str, dns: &str) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec![dns.to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn allowed_cn_and_hostname_hold_peers_to_their_names() {
        let c = [cert("member", "m.example.com")];
        let mut files = TlsFiles {
            allowed_cn: Some("member".into()),
            ..Default::default()
        };
        assert!(check_peer(&files, Some(&c)).is_ok());
        assert!(check_peer(&files, None).is_err());
        files.allowed_cn = Some("other".into());
        let e = check_peer(&files, Some(&c)).unwrap_err();
        assert!(e.starts_with("CommonName authentication failed"), "{e}");
        files.allowed_cn = None;
        files.allowed_hostname = Some("m.example.com".into());
        assert!(check_peer(&files, Some(&c)).is_ok());
        files.allowed_hostname = Some("x.example.com".into());
        assert!(check_peer(&files, Some(&c)).is_err());
    }

    #[test]
    fn versions_and_cipher_suites() {
        let p = TlsPolicy {
            min_version: TlsVersion::V13,
            ..Default::default()
        };
        assert_eq!(p.versions().unwrap(), [&rustls::version::TLS13]);
        assert!(TlsVersion::parse("TLS1.1").is_err());
        let p = TlsPolicy {
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()],
            ..Default::default()
        };
        let provider = p.provider().unwrap();
        let tls12: Vec<String> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(tls12, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        let p = TlsPolicy {
            cipher_suites: vec!["TLS_RSA_WITH_RC4_128_SHA".into()],
            ..Default::default()
        };
        assert!(p.provider().is_err());
    }
}

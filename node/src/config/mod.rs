//! Member configuration: etcd's flags, `ETCD_*` environment variables and
//! `--config-file`, turned into a validated [`Config`].

pub mod file;
pub mod flags;
pub mod gateway;
mod member_flags;
pub mod snapshot;

pub use member_flags::FLAGS;

use flags::Values;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

const DEFAULT_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;

/// `--auth-token`: etcd's token kinds and their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthToken {
    Simple,
    Jwt {
        sign_method: String,
        pub_key: Option<PathBuf>,
        priv_key: Option<PathBuf>,
        ttl: Duration,
    },
}

impl AuthToken {
    /// `simple`, or `jwt,sign-method=M,pub-key=F,priv-key=F,ttl=D` (etcd's
    /// options; its JWT ttl default is 5 minutes).
    pub fn parse(text: &str) -> Result<AuthToken, String> {
        let mut parts = text.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut opts = std::collections::HashMap::new();
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                return Err(format!(
                    "--auth-token: invalid auth options ({p:?} is not key=value)"
                ));
            };
            if opts.insert(k.to_string(), v.to_string()).is_some() {
                return Err(format!(
                    "--auth-token: invalid auth options ({k:?} given twice)"
                ));
            }
        }
        match kind {
            "simple" => Ok(AuthToken::Simple),
            "jwt" => {
                let ttl = match opts.get("ttl").map(String::as_str) {
                    None | Some("") => Duration::from_secs(300),
                    Some(t) => flags::parse_duration(t)
                        .ok_or_else(|| format!("--auth-token: invalid JWT ttl {t:?}"))?,
                };
                let file = |k: &str| opts.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
                Ok(AuthToken::Jwt {
                    sign_method: opts.get("sign-method").cloned().unwrap_or_default(),
                    pub_key: file("pub-key"),
                    priv_key: file("priv-key"),
                    ttl,
                })
            }
            other => Err(format!(
                "--auth-token: invalid auth options (unknown token type {other:?}; use simple or jwt)"
            )),
        }
    }
}

/// The validated member configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<Url>,
    /// `--listen-metrics-urls`: plain-HTTP health and metrics listeners.
    pub listen_metrics_urls: Vec<Url>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<Url>,
    pub initial_advertise_peer_urls: Vec<String>,
    /// name -> peer URLs, in the order given.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_token: String,
    pub initial_cluster_state: ClusterState,
    /// `--force-new-cluster`: restart from the data dir as a one-member cluster.
    pub force_new_cluster: bool,
    /// `--force-new-cluster-once NAME/TOKEN` when NAME is this member's:
    /// the token (forced unless the data dir was forced with it before).
    pub force_new_cluster_once: Option<String>,
    /// Test only (`FERROCD_TEST_UNSAFE_LOCAL_READS=1`): linearizable reads
    /// served from the local store without a read index, a deliberately
    /// broken mode the robustness suite must catch.
    pub unsafe_local_reads: bool,
    /// etcd's corruption checks (`--experimental-*corrupt*`, `*compact-hash*`).
    pub corruption_checks: CorruptionChecks,
    /// `--discovery-srv`: the initial cluster comes from DNS SRV records.
    pub discovery_srv: Option<SrvDiscovery>,
    /// `--discovery URL [--discovery-proxy URL]`: the v2 discovery protocol.
    pub discovery_url: Option<UrlDiscovery>,
    /// `--discovery-token --discovery-endpoints`: v3 discovery.
    pub discovery_v3: Option<V3Discovery>,
    /// `--discovery-fallback`: what a member beyond the discovered size does.
    pub discovery_fallback: Fallback,
    /// Bytes; `None` means no quota (a negative flag value).
    pub quota_backend_bytes: Option<u64>,
    /// `--metrics extensive`: gRPC handling-time histograms too (etcd
    /// takes any other value as `basic`).
    pub extensive_metrics: bool,
    /// `--auth-token`: simple tokens or JWT.
    pub auth_token: AuthToken,
    /// `--auth-token-ttl`: how long an unused simple token lives.
    pub auth_token_ttl: Duration,
    /// `--bcrypt-cost` (etcd's default where the value is out of bcrypt's range).
    pub bcrypt_cost: u32,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub auto_compaction: Option<AutoCompaction>,
    pub watch_progress_notify_interval: Duration,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    /// Log entries kept behind a snapshot for slow followers
    /// (`--experimental-snapshot-catchup-entries`); further behind, a
    /// follower gets the snapshot.
    pub snapshot_catchup_entries: u64,
    /// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`, `--auto-tls`.
    pub client_tls: crate::tls::TlsFiles,
    /// The `--peer-*` TLS flags.
    pub peer_tls: crate::tls::TlsFiles,
    pub tls_policy: crate::tls::TlsPolicy,
    pub log_level: String,
    pub logger: String,
    pub log_outputs: String,
}

/// `--discovery-srv DOMAIN [--discovery-srv-name NAME] [--initial-cluster-size N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvDiscovery {
    pub domain: String,
    /// Suffix of the service names (`_etcd-server-NAME._tcp`); empty for none.
    pub service_name: String,
    /// Wait until this many members are listed (0: take what is there).
    pub wait_for_size: usize,
}

/// `--discovery URL [--discovery-proxy URL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlDiscovery {
    pub url: String,
    pub proxy: Option<String>,
}

/// `--discovery-token TOKEN --discovery-endpoints HOST:PORT,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Discovery {
    pub token: String,
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
}

/// `--discovery-fallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Exit,
    /// Serve clients by forwarding them to the discovered cluster.
    Proxy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    New,
    Existing,
}

/// `--auto-compaction-mode` with its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep this much history (time).
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `ferrocd gateway start ...`
    Gateway(gateway::GatewayConfig),
    /// `ferrocd snapshot status|restore FILE ...`
    Snapshot(snapshot::SnapshotCommand),
    Help,
    Version,
}

/// Which corruption checks run, and how often.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorruptionChecks {
    /// Compare HashKV with the peers before serving (a restarting member).
    pub initial: bool,
    /// The leader compares HashKV with its followers this often.
    pub periodic: Option<Duration>,
    /// The leader compares HashKV at the last compaction this often.
    pub compact_hash: Option<Duration>,
}

/// A configuration mistake: one line for the user, and the exit code
/// (2 for flag syntax, as Go's flag package; 1 for invalid settings, as etcd).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Flag(#[from] flags::FlagError),
    #[error(transparent)]
    File(#[from] file::ConfigFileError),
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Flag(_) => 2,
            _ => 1,
        }
    }
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

/// Parses the command line (without the program name) and environment.
pub fn parse_command_line(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, ConfigError> {
    if args.first().map(String::as_str) == Some("gateway") {
        return match args.get(1).map(String::as_str) {
            Some("start") => Ok(Command::Gateway(gateway::GatewayConfig::parse(
                &args[2..],
            )?)),
            _ => Err(invalid(
                "usage: ferrocd gateway start [--endpoints=HOST:PORT,...|--discovery-srv=DOMAIN] [--listen-addr=ADDR] [--retry-delay=DURATION]",
            )),
        };
    }
    if args.first().map(String::as_str) == Some("snapshot") {
        return Ok(Command::Snapshot(snapshot::parse(&args[1..])?));
    }
    let values = flags::parse(FLAGS, args, env)?;
    if values.help {
        return Ok(Command::Help);
    }
    if values.version {
        return Ok(Command::Version);
    }
    let values = match values.get("config-file").filter(|p| !p.is_empty()) {
        Some(path) => file::load(std::path::Path::new(path), FLAGS)?,
        None => values,
    };
    let mut config = Config::from_values(&values)?;
    config.unsafe_local_reads = env("FERROCD_TEST_UNSAFE_LOCAL_READS").as_deref() == Some("1");
    Ok(Command::Run(Box::new(config)))
}

/// The usage text printed by `--help`.
pub fn usage() -> String {
    let mut s = String::from(
        "Usage:\n\n  ferrocd [flags]\n    Start a ferrocd member (etcd-compatible).\n\n  ferrocd --version\n  ferrocd -h | --help\n\nFlags (each also read from ETCD_<FLAG_NAME> when not given):\n",
    );
    for spec in FLAGS {
        s.push_str(&format!(
            "  --{}\n      {} (default: '{}')\n",
            spec.name, spec.help, spec.default
        ));
    }
    s
}

impl Config {
    /// Builds the configuration from parsed values, applying etcd's defaults.
    pub fn from_values(v: &Values) -> Result<Config, ConfigError> {
        let get = |name: &str| v.get_or_default(FLAGS, name);
        let name = get("name");
        let data_dir = match v.get("data-dir").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(format!("{name}.etcd")),
        };
        let listen_client_urls =
            parse_listen_urls("listen-client-urls", &get("listen-client-urls"))?;
        let listen_peer_urls = parse_listen_urls("listen-peer-urls", &get("listen-peer-urls"))?;
        let listen_metrics_urls = match get("listen-metrics-urls") {
            none if none.is_empty() => Vec::new(),
            urls => parse_listen_urls("listen-metrics-urls", &urls)?,
        };
        if let Some(u) = listen_metrics_urls.iter().find(|u| u.scheme() != "http") {
            return Err(invalid(format!(
                "--listen-metrics-urls: only http URLs are supported, not {}",
                u.as_str().trim_end_matches('/')
            )));
        }
        let advertise_client_urls =
            parse_urls("advertise-client-urls", &get("advertise-client-urls"))?;
        let initial_advertise_peer_urls = parse_urls(
            "initial-advertise-peer-urls",
            &get("initial-advertise-peer-urls"),
        )?;
        let discovery_url = get("discovery");
        let srv_domain = get("discovery-srv");
        // etcd: a discovery flag replaces the default initial cluster; given
        // together with an explicit one (or each other), they conflict.
        let v3_endpoints: Vec<String> = split_list(&get("discovery-endpoints"))
            .map(str::to_string)
            .collect();
        let sources = [
            v.is_set("initial-cluster") && !get("initial-cluster").is_empty(),
            !discovery_url.is_empty(),
            !srv_domain.is_empty(),
            !v3_endpoints.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(invalid(
                "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\"",
            ));
        }
        let discovery_fallback = match get("discovery-fallback").as_str() {
            "exit" => Fallback::Exit,
            "proxy" => Fallback::Proxy,
            other => {
                return Err(invalid(format!(
                    "invalid value {other:?} for flag -discovery-fallback: valid values are \"exit\", \"proxy\""
                )))
            }
        };
        let discovery_v3 = if v3_endpoints.is_empty() {
            None
        } else {
            let token = get("discovery-token");
            if token.is_empty() {
                return Err(invalid(
                    "--discovery-token is required when --discovery-endpoints is set",
                ));
            }
            Some(V3Discovery {
                token,
                endpoints: v3_endpoints,
                dial_timeout: flags::parse_duration(&get("discovery-dial-timeout"))
                    .unwrap_or(Duration::from_secs(2)),
                request_timeout: flags::parse_duration(&get("discovery-request-timeout"))
                    .unwrap_or(Duration::from_secs(5)),
            })
        };
        let discovery_url = (!discovery_url.is_empty()).then(|| UrlDiscovery {
            url: discovery_url,
            proxy: Some(get("discovery-proxy")).filter(|p| !p.is_empty()),
        });
        let discovery_srv = (!srv_domain.is_empty()).then(|| SrvDiscovery {
            domain: srv_domain,
            service_name: get("discovery-srv-name"),
            wait_for_size: get("initial-cluster-size").parse().unwrap_or(0),
        });
        // etcd: when --name is given but --initial-cluster is not, the initial
        // cluster is this member alone under its advertised peer URLs.
        let discovered =
            discovery_srv.is_some() || discovery_url.is_some() || discovery_v3.is_some();
        let initial_cluster_text = if discovered {
            String::new()
        } else if v.is_set("initial-cluster") {
            get("initial-cluster")
        } else {
            initial_advertise_peer_urls
                .iter()
                .map(|u| format!("{name}={u}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let initial_cluster = parse_initial_cluster(&initial_cluster_text)?;
        let initial_cluster_state = match get("initial-cluster-state").as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => {
                return Err(invalid(format!(
                    "invalid value {other:?} for flag -initial-cluster-state: valid values are \"new\", \"existing\""
                )))
            }
        };
        let quota: i64 = get("quota-backend-bytes").parse().unwrap_or(0);
        let quota_backend_bytes = match quota {
            0 => Some(DEFAULT_QUOTA_BYTES as u64),
            q if q < 0 => None,
            q => Some(q as u64),
        };
        let max_request_bytes: usize = get("max-request-bytes").parse().unwrap_or(1_572_864);
        let max_txn_ops: usize = get("max-txn-ops").parse().unwrap_or(128);
        if max_txn_ops == 0 {
            return Err(invalid("--max-txn-ops must be greater than 0"));
        }
        let auth_token = AuthToken::parse(&get("auth-token")).map_err(invalid)?;
        let auth_token_ttl = Duration::from_secs(get("auth-token-ttl").parse().unwrap_or(300));
        let bcrypt_cost = match get("bcrypt-cost").parse::<u32>() {
            Ok(c) if (4..=31).contains(&c) => c,
            _ => {
                tracing::warn!("use default bcrypt cost instead of the invalid given cost");
                10
            }
        };
        let auto_compaction = parse_auto_compaction(
            &get("auto-compaction-mode"),
            &get("auto-compaction-retention"),
        )?;
        let watch_progress_notify_interval =
            flags::parse_duration(&get("experimental-watch-progress-notify-interval"))
                .unwrap_or(Duration::from_secs(600));
        let heartbeat_ms: u64 = get("heartbeat-interval").parse().unwrap_or(100);
        let election_ms: u64 = get("election-timeout").parse().unwrap_or(1000);
        if heartbeat_ms == 0 || election_ms < 5 * heartbeat_ms {
            return Err(invalid(format!(
                "--election-timeout[{election_ms}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat_ms}ms]"
            )));
        }
        let snapshot_count: u64 = get("snapshot-count").parse().unwrap_or(100_000);
        let log_level = get("log-level");
        if !["debug", "info", "warn", "error", "panic", "fatal"].contains(&log_level.as_str()) {
            return Err(invalid(format!(
                "unknown log level {log_level:?}; use one of debug, info, warn, error, panic, fatal"
            )));
        }
        let logger = get("logger");
        if !["zap", "capnslog"].contains(&logger.as_str()) {
            return Err(invalid(format!("unknown logger option {logger:?}")));
        }
        let log_outputs = get("log-outputs");
        let path =
            |name: &str| Some(PathBuf::from(get(name))).filter(|p| !p.as_os_str().is_empty());
        let flag = |name: &str| flags::parse_bool(&get(name)).unwrap_or(false);
        let client_tls = crate::tls::TlsFiles {
            cert_file: path("cert-file"),
            key_file: path("key-file"),
            trusted_ca_file: path("trusted-ca-file"),
            client_cert_auth: flag("client-cert-auth"),
            auto_tls: flag("auto-tls"),
            allowed_cn: None,
            allowed_hostname: None,
        };
        let peer_tls = crate::tls::TlsFiles {
            cert_file: path("peer-cert-file"),
            key_file: path("peer-key-file"),
            trusted_ca_file: path("peer-trusted-ca-file"),
            client_cert_auth: flag("peer-client-cert-auth"),
            auto_tls: flag("peer-auto-tls"),
            allowed_cn: Some(get("peer-cert-allowed-cn")).filter(|s| !s.is_empty()),
            allowed_hostname: Some(get("peer-cert-allowed-hostname")).filter(|s| !s.is_empty()),
        };
        for (files, cert, key) in [
            (&client_tls, "cert-file", "key-file"),
            (&peer_tls, "peer-cert-file", "peer-key-file"),
        ] {
            if files.cert_file.is_some() != files.key_file.is_some() {
                return Err(invalid(format!(
                    "--{cert} and --{key} must be given together"
                )));
            }
        }
        for u in &listen_client_urls {
            if u.scheme() == "https" && client_tls.is_empty() {
                return Err(invalid(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                    u.as_str().trim_end_matches('/')
                )));
            }
        }
        for u in &listen_peer_urls {
            if u.scheme() == "https" && peer_tls.is_empty() {
                return Err(invalid(format!(
                    "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {} with HTTPS scheme",
                    u.as_str().trim_end_matches('/')
                )));
            }
        }
        let version = |name: &str, default: crate::tls::TlsVersion| match get(name).as_str() {
            "" => Ok(default),
            v => crate::tls::TlsVersion::parse(v).map_err(|e| invalid(format!("--{name}: {e}"))),
        };
        let tls_policy = crate::tls::TlsPolicy {
            cipher_suites: split_list(&get("cipher-suites"))
                .map(str::to_string)
                .collect(),
            min_version: version("tls-min-version", crate::tls::TlsVersion::V12)?,
            max_version: version("tls-max-version", crate::tls::TlsVersion::V13)?,
        };
        let force_new_cluster_once = match get("force-new-cluster-once").as_str() {
            "" => None,
            v => match v.split_once('/') {
                Some((who, token)) if !who.is_empty() && !token.is_empty() => {
                    (who == name).then(|| token.to_string())
                }
                _ => {
                    return Err(invalid(format!(
                        "--force-new-cluster-once {v:?}: want NAME/TOKEN"
                    )))
                }
            },
        };
        if tls_policy.min_version > tls_policy.max_version {
            return Err(invalid(
                "--tls-min-version must not be greater than --tls-max-version",
            ));
        }
        Ok(Config {
            unsafe_local_reads: false,
            name,
            data_dir,
            listen_client_urls,
            listen_metrics_urls,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_token: get("initial-cluster-token"),
            initial_cluster_state,
            force_new_cluster: flag("force-new-cluster"),
            force_new_cluster_once,
            corruption_checks: CorruptionChecks {
                initial: flag("experimental-initial-corrupt-check"),
                periodic: flags::parse_duration(&get("experimental-corrupt-check-time"))
                    .filter(|d| !d.is_zero()),
                compact_hash: flag("experimental-compact-hash-check-enabled")
                    .then(|| flags::parse_duration(&get("experimental-compact-hash-check-time")))
                    .flatten()
                    .filter(|d| !d.is_zero()),
            },
            discovery_srv,
            discovery_url,
            discovery_v3,
            discovery_fallback,
            quota_backend_bytes,
            extensive_metrics: get("metrics") == "extensive",
            auth_token,
            auth_token_ttl,
            bcrypt_cost,
            max_request_bytes,
            max_txn_ops,
            auto_compaction,
            watch_progress_notify_interval,
            heartbeat_interval: Duration::from_millis(heartbeat_ms),
            election_timeout: Duration::from_millis(election_ms),
            snapshot_count: snapshot_count.max(1),
            snapshot_catchup_entries: get("experimental-snapshot-catchup-entries")
                .parse()
                .unwrap_or(5000),
            client_tls,
            peer_tls,
            tls_policy,
            log_level,
            logger,
            log_outputs,
        })
    }

    /// etcd's minimum lease TTL: 1.5 election timeouts, rounded up to seconds.
    pub fn min_lease_ttl(&self) -> i64 {
        (self.election_timeout.as_millis() as i64 * 3 / 2 + 999) / 1000
    }

    /// How long a request may wait for a leader (etcd: 5 s plus two election timeouts).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.election_timeout
    }

    /// This member's peer URLs as listed in the (static) initial cluster.
    pub fn own_initial_peer_urls(&self) -> Result<&[String], ConfigError> {
        self.initial_cluster
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, urls)| urls.as_slice())
            .ok_or_else(|| {
                invalid(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    self.name
                ))
            })
    }
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn parse_urls(flag: &str, s: &str) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for part in split_list(s) {
        let u = Url::parse(part)
            .map_err(|e| invalid(format!("invalid value {part:?} for flag -{flag}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https" | "unix" | "unixs") {
            return Err(invalid(format!(
                "invalid value {part:?} for flag -{flag}: URL scheme must be http, https, unix or unixs"
            )));
        }
        if u.host_str().is_none() {
            return Err(invalid(format!(
                "invalid value {part:?} for flag -{flag}: URL has no host"
            )));
        }
        out.push(part.to_string());
    }
    if out.is_empty() {
        return Err(invalid(format!("flag -{flag} needs at least one URL")));
    }
    Ok(out)
}

fn parse_listen_urls(flag: &str, s: &str) -> Result<Vec<Url>, ConfigError> {
    let mut out = Vec::new();
    for part in parse_urls(flag, s)? {
        let u = Url::parse(&part)
            .map_err(|e| invalid(format!("invalid value {part:?} for flag -{flag}: {e}")))?;
        if u.scheme() == "unix" || u.scheme() == "unixs" {
            return Err(invalid(format!(
                "invalid value {part:?} for flag -{flag}: unix sockets are not supported"
            )));
        }
        if u.port_or_known_default().is_none() {
            return Err(invalid(format!(
                "invalid value {part:?} for flag -{flag}: URL needs a port"
            )));
        }
        out.push(u);
    }
    Ok(out)
}

/// `name=url,name=url,...` as `--initial-cluster` takes it.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for part in split_list(s) {
        let (name, url) = part.split_once('=').ok_or_else(|| {
            invalid(format!(
                "invalid value {part:?} for flag -initial-cluster: expected NAME=URL"
            ))
        })?;
        let url = parse_urls("initial-cluster", url)?.remove(0);
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url),
            None => out.push((name.to_string(), vec![url])),
        }
    }
    Ok(out)
}

fn parse_auto_compaction(
    mode: &str,
    retention: &str,
) -> Result<Option<AutoCompaction>, ConfigError> {
    let bad = || {
        invalid(format!(
            "invalid value {retention:?} for flag -auto-compaction-retention (mode {mode})"
        ))
    };
    match mode {
        "periodic" => {
            // A bare integer means hours, as in etcd.
            let d = match retention.parse::<u64>() {
                Ok(h) => Duration::from_secs(h * 3600),
                Err(_) => flags::parse_duration(retention).ok_or_else(bad)?,
            };
            Ok((!d.is_zero()).then_some(AutoCompaction::Periodic(d)))
        }
        "revision" => {
            let n: i64 = retention.parse().map_err(|_| bad())?;
            Ok((n > 0).then_some(AutoCompaction::Revision(n)))
        }
        other => Err(invalid(format!(
            "unknown auto-compaction-mode {other:?}; use periodic or revision"
        ))),
    }
}

#[cfg(test)]
mod tests;

//! `ferrocd gateway start`'s flags, with etcd 3.5's names and defaults.

use super::flags::{self, spec, FlagSpec, Kind};
use super::ConfigError;
use std::time::Duration;

/// The gateway's flags, with etcd 3.5's names and defaults.
pub const FLAGS: &[FlagSpec] = &[
    spec("listen-addr", Kind::Str, "127.0.0.1:23790", "listen address"),
    spec("endpoints", Kind::Str, "127.0.0.1:2379", "comma separated etcd cluster endpoints"),
    spec("discovery-srv", Kind::Str, "", "DNS domain used to bootstrap initial cluster"),
    spec("discovery-srv-name", Kind::Str, "", "service name to query when using DNS discovery"),
    spec("insecure-discovery", Kind::Bool, "true", "accept insecure SRV records"),
    spec("insecure-skip-tls-verify", Kind::Bool, "false", "skip server certificate verify"),
    spec("trusted-ca-file", Kind::Str, "", "path to the client server TLS CA file for verifying the discovered endpoints when discovery-srv is provided."),
    spec("retry-delay", Kind::Duration, "1m0s", "duration of delay before retrying failed endpoints"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub listen_addr: String,
    /// `host:port` of each endpoint, schemes stripped.
    pub endpoints: Vec<String>,
    /// `--discovery-srv` domain and `--discovery-srv-name`.
    pub discovery_srv: Option<(String, String)>,
    pub insecure_discovery: bool,
    pub retry_delay: Duration,
}

impl GatewayConfig {
    /// Parses the arguments after `gateway start`.
    pub fn parse(args: &[String]) -> Result<GatewayConfig, ConfigError> {
        let v = flags::parse(FLAGS, args, &|_| None)?;
        let get = |name: &str| v.get_or_default(FLAGS, name);
        let endpoints = get("endpoints")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(strip_scheme)
            .collect();
        let domain = get("discovery-srv");
        Ok(GatewayConfig {
            listen_addr: get("listen-addr"),
            endpoints,
            discovery_srv: (!domain.is_empty()).then(|| (domain, get("discovery-srv-name"))),
            insecure_discovery: flags::parse_bool(&get("insecure-discovery")).unwrap_or(true),
            retry_delay: flags::parse_duration(&get("retry-delay"))
                .unwrap_or(Duration::from_secs(60)),
        })
    }
}

/// `host:port` of an endpoint URL.
pub fn strip_scheme(e: &str) -> String {
    e.split_once("://")
        .map_or(e, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_defaults_are_etcds() {
        let c = GatewayConfig::parse(&[]).unwrap();
        assert_eq!(c.listen_addr, "127.0.0.1:23790");
        assert_eq!(c.endpoints, ["127.0.0.1:2379"]);
        assert_eq!(c.retry_delay, Duration::from_secs(60));
        let args: Vec<String> = [
            "--endpoints=http://10.0.0.1:2379,10.0.0.2:2379",
            "--retry-delay",
            "2s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = GatewayConfig::parse(&args).unwrap();
        assert_eq!(c.endpoints, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(c.retry_delay, Duration::from_secs(2));
    }
}

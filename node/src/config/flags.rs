//! A command-line parser with Go's `flag` package semantics, because etcd's
//! users and scripts rely on them: `-flag` and `--flag`, `-flag=value` or
//! `-flag value`, booleans only as `-flag` or `-flag=BOOL`, and Go's error
//! texts (`flag provided but not defined: -foo`). Values not given on the
//! command line come from `ETCD_<FLAG_NAME>` environment variables.

use std::collections::BTreeMap;

/// How a flag's value is checked when it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Bool,
    Int,
    Uint,
    Duration,
}

/// One flag: its name (without dashes), value kind, default and help text.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

/// A flag's spec, for the tables of flags.
pub const fn spec(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        default,
        help,
    }
}

impl FlagSpec {
    /// The environment variable etcd reads for this flag.
    pub fn env_name(&self) -> String {
        format!("ETCD_{}", self.name.to_uppercase().replace('-', "_"))
    }
}

/// Where a value came from; decides precedence and error wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Env,
    CommandLine,
    ConfigFile,
}

/// Errors of the parsing stage. Each displays as the one line Go's flag
/// package (or etcd) prints for the same mistake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    #[error("flag provided but not defined: -{0}")]
    Undefined(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid value {value:?} for flag -{name}: parse error")]
    Invalid { name: String, value: String },
    #[error("invalid boolean value {value:?} for -{name}: parse error")]
    InvalidBool { name: String, value: String },
    #[error("invalid value {value:?} for {env}: parse error")]
    InvalidEnv { env: String, value: String },
    #[error("'{0}' is not a valid flag")]
    Positional(String),
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
}

/// The result of parsing: raw, validated values by flag name.
#[derive(Debug, Default, Clone)]
pub struct Values {
    values: BTreeMap<&'static str, (String, Source)>,
    pub help: bool,
    pub version: bool,
}

impl Values {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|(v, _)| v.as_str())
    }
    pub fn source(&self, name: &str) -> Source {
        self.values
            .get(name)
            .map(|(_, s)| *s)
            .unwrap_or(Source::Default)
    }
    pub fn is_set(&self, name: &str) -> bool {
        self.source(name) != Source::Default
    }
    /// The value of `name`, or its default from `specs`.
    pub fn get_or_default(&self, specs: &[FlagSpec], name: &str) -> String {
        self.get(name).map(str::to_string).unwrap_or_else(|| {
            specs
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.default.to_string())
                .unwrap_or_default()
        })
    }
    pub(crate) fn set(&mut self, spec: &FlagSpec, value: String, source: Source) {
        self.values.insert(spec.name, (value, source));
    }
}

/// Checks a value against its kind, as Go does at parse time.
pub fn check_value(spec: &FlagSpec, value: &str) -> bool {
    match spec.kind {
        Kind::Str => true,
        Kind::Bool => parse_bool(value).is_some(),
        Kind::Int => value.parse::<i64>().is_ok(),
        Kind::Uint => value.parse::<u64>().is_ok(),
        Kind::Duration => parse_duration(value).is_some(),
    }
}

/// Go's strconv.ParseBool.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's time.ParseDuration for the units etcd users write (ns..h), e.g. "1h30m", "500ms".
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    if s == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * nanos_per;
    }
    Some(std::time::Duration::from_nanos(total as u64))
}

/// Parses `args` (without the program name) against `specs`, then fills what
/// the command line left unset from `env`.
pub fn parse(
    specs: &[FlagSpec],
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Values, FlagError> {
    let mut out = Values::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(p) = args.get(i) {
                return Err(FlagError::Positional(p.clone()));
            }
            break;
        }
        let Some(body) = arg.strip_prefix('-') else {
            return Err(FlagError::Positional(arg.clone()));
        };
        if body.is_empty() {
            return Err(FlagError::Positional(arg.clone()));
        }
        let body = body.strip_prefix('-').unwrap_or(body);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::BadSyntax(arg.clone()));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if name == "h" || name == "help" {
            out.help = true;
            continue;
        }
        if name == "version" {
            out.version = match &inline {
                Some(v) => parse_bool(v).ok_or_else(|| FlagError::InvalidBool {
                    name: name.into(),
                    value: v.clone(),
                })?,
                None => true,
            };
            continue;
        }
        let spec = specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| FlagError::Undefined(name.to_string()))?;
        let value = if spec.kind == Kind::Bool {
            let v = inline.unwrap_or_else(|| "true".into());
            if parse_bool(&v).is_none() {
                return Err(FlagError::InvalidBool {
                    name: name.into(),
                    value: v,
                });
            }
            v
        } else {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| FlagError::MissingValue(name.into()))?;
                    i += 1;
                    v.clone()
                }
            }
        };
        if !check_value(spec, &value) {
            return Err(FlagError::Invalid {
                name: name.into(),
                value,
            });
        }
        out.set(spec, value, Source::CommandLine);
    }
    for spec in specs {
        if out.is_set(spec.name) {
            continue;
        }
        if let Some(v) = env(&spec.env_name()) {
            if !check_value(spec, &v) {
                return Err(FlagError::InvalidEnv {
                    env: spec.env_name(),
                    value: v,
                });
            }
            out.set(spec, v, Source::Env);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "name",
            kind: Kind::Str,
            default: "default",
            help: "",
        },
        FlagSpec {
            name: "quota-backend-bytes",
            kind: Kind::Int,
            default: "0",
            help: "",
        },
        FlagSpec {
            name: "client-cert-auth",
            kind: Kind::Bool,
            default: "false",
            help: "",
        },
    ];

    fn p(args: &[&str]) -> Result<Values, FlagError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(SPECS, &args, &|_| None)
    }

    #[test]
    fn go_flag_forms() {
        let v = p(&[
            "-name",
            "a",
            "--quota-backend-bytes=5",
            "--client-cert-auth",
        ])
        .unwrap();
        assert_eq!(v.get("name"), Some("a"));
        assert_eq!(v.get("quota-backend-bytes"), Some("5"));
        assert_eq!(v.get("client-cert-auth"), Some("true"));
    }

    #[test]
    fn go_flag_errors_read_as_go_prints_them() {
        assert_eq!(
            p(&["--foo"]).unwrap_err().to_string(),
            "flag provided but not defined: -foo"
        );
        assert_eq!(
            p(&["--name"]).unwrap_err().to_string(),
            "flag needs an argument: -name"
        );
        assert_eq!(
            p(&["--quota-backend-bytes=abc"]).unwrap_err().to_string(),
            "invalid value \"abc\" for flag -quota-backend-bytes: parse error"
        );
        assert_eq!(
            p(&["extra"]).unwrap_err().to_string(),
            "'extra' is not a valid flag"
        );
    }

    #[test]
    fn env_fills_unset_flags_only() {
        let args = vec!["--name".to_string(), "cli".to_string()];
        let env = |k: &str| match k {
            "ETCD_NAME" => Some("env".to_string()),
            "ETCD_QUOTA_BACKEND_BYTES" => Some("7".to_string()),
            _ => None,
        };
        let v = parse(SPECS, &args, &env).unwrap();
        assert_eq!(v.get("name"), Some("cli"));
        assert_eq!(v.get("quota-backend-bytes"), Some("7"));
        assert_eq!(v.source("quota-backend-bytes"), Source::Env);
        let bad = |k: &str| (k == "ETCD_QUOTA_BACKEND_BYTES").then(|| "x".to_string());
        assert_eq!(
            parse(SPECS, &[], &bad).unwrap_err().to_string(),
            "invalid value \"x\" for ETCD_QUOTA_BACKEND_BYTES: parse error"
        );
    }

    #[test]
    fn durations_parse_like_go() {
        use std::time::Duration;
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(""), None);
    }
}

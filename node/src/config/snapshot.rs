//! `ferrocd snapshot status|restore FILE`'s flags, with etcdutl 3.5's names
//! and defaults.

use super::flags::{self, spec, FlagSpec, Kind};
use super::{invalid, parse_initial_cluster, ConfigError};
use std::path::PathBuf;

const STATUS_FLAGS: &[FlagSpec] = &[
    spec(
        "write-out",
        Kind::Str,
        "simple",
        "set the output format (simple, table, json)",
    ),
    spec(
        "w",
        Kind::Str,
        "simple",
        "set the output format (simple, table, json)",
    ),
];

const RESTORE_FLAGS: &[FlagSpec] = &[
    spec("data-dir", Kind::Str, "", "Path to the output data directory (default: NAME.etcd)"),
    spec("name", Kind::Str, "default", "Human-readable name for this member"),
    spec("initial-cluster", Kind::Str, "", "Initial cluster configuration for restore bootstrap (default: NAME=http://localhost:2380)"),
    spec("initial-cluster-token", Kind::Str, "etcd-cluster", "Initial cluster token for the etcd cluster during restore bootstrap"),
    spec("initial-advertise-peer-urls", Kind::Str, "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster"),
    spec("skip-hash-check", Kind::Bool, "false", "Ignore snapshot integrity hash value (required if copied from data directory)"),
    spec("bump-revision", Kind::Uint, "0", "How much to increase the latest revision after restore"),
    spec("mark-compacted", Kind::Bool, "false", "Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)"),
];

pub const USAGE: &str = "usage: ferrocd snapshot status FILE [-w simple|table|json] | ferrocd snapshot restore FILE [--data-dir=DIR] [--name=NAME] [--initial-cluster=NAME=URL,...] [--initial-cluster-token=TOKEN] [--initial-advertise-peer-urls=URL,...] [--skip-hash-check] [--bump-revision=N --mark-compacted]";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotCommand {
    Status { file: PathBuf, format: String },
    Restore(RestoreConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreConfig {
    pub file: PathBuf,
    pub data_dir: PathBuf,
    pub name: String,
    pub initial_cluster: Vec<(String, Vec<String>)>,
    pub initial_cluster_token: String,
    pub peer_urls: Vec<String>,
    pub skip_hash_check: bool,
    pub bump_revision: u64,
    pub mark_compacted: bool,
}

/// Parses the arguments after `snapshot`.
pub fn parse(args: &[String]) -> Result<SnapshotCommand, ConfigError> {
    let (verb, rest) = args.split_first().ok_or_else(|| invalid(USAGE))?;
    let specs = match verb.as_str() {
        "status" => STATUS_FLAGS,
        "restore" => RESTORE_FLAGS,
        _ => return Err(invalid(USAGE)),
    };
    let (files, flag_args) = split_positional(specs, rest);
    let [file] = files.as_slice() else {
        return Err(invalid(format!(
            "snapshot {verb} requires exactly one argument"
        )));
    };
    let v = flags::parse(specs, &flag_args, &|_| None)?;
    let get = |name: &str| v.get_or_default(specs, name);
    let file = PathBuf::from(file);
    if verb == "status" {
        let format = v
            .get("w")
            .map(str::to_string)
            .unwrap_or_else(|| get("write-out"));
        return Ok(SnapshotCommand::Status { file, format });
    }
    let name = get("name");
    let cluster_text = match get("initial-cluster") {
        c if c.is_empty() => format!("{name}=http://localhost:2380"),
        c => c,
    };
    let bump_revision: u64 = get("bump-revision").parse().unwrap_or(0);
    let mark_compacted = flags::parse_bool(&get("mark-compacted")).unwrap_or(false);
    if (bump_revision == 0) == mark_compacted {
        return Err(invalid("--mark-compacted required if --revision-bump > 0"));
    }
    let data_dir = match get("data-dir") {
        d if d.is_empty() => PathBuf::from(format!("{name}.etcd")),
        d => PathBuf::from(d),
    };
    Ok(SnapshotCommand::Restore(RestoreConfig {
        file,
        data_dir,
        initial_cluster: parse_initial_cluster(&cluster_text)?,
        initial_cluster_token: get("initial-cluster-token"),
        peer_urls: get("initial-advertise-peer-urls")
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        skip_hash_check: flags::parse_bool(&get("skip-hash-check")).unwrap_or(false),
        bump_revision,
        mark_compacted,
        name,
    }))
}

/// The positional arguments, and the flags with their values: a flag that
/// takes a value and has no `=` takes the next argument (cobra's rule).
fn split_positional(specs: &[FlagSpec], args: &[String]) -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !a.starts_with('-') || a == "-" {
            files.push(a.clone());
            continue;
        }
        rest.push(a.clone());
        let name = a.trim_start_matches('-');
        let takes_value =
            !name.contains('=') && specs.iter().any(|s| s.name == name && s.kind != Kind::Bool);
        if takes_value {
            if let Some(v) = it.next() {
                rest.push(v.clone());
            }
        }
    }
    (files, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn restore_takes_etcdutls_flags_and_defaults() {
        let SnapshotCommand::Restore(r) = parse(&args("restore snap.db --name m1 --data-dir=/d --initial-cluster m1=http://a:2380,m2=http://b:2380 --initial-advertise-peer-urls http://a:2380 --skip-hash-check")).unwrap() else {
            panic!("not a restore")
        };
        assert_eq!(r.file, PathBuf::from("snap.db"));
        assert_eq!(r.data_dir, PathBuf::from("/d"));
        assert_eq!(r.name, "m1");
        assert_eq!(r.initial_cluster.len(), 2);
        assert_eq!(r.peer_urls, vec!["http://a:2380"]);
        assert!(r.skip_hash_check);
        assert_eq!(r.initial_cluster_token, "etcd-cluster");

        let SnapshotCommand::Restore(d) = parse(&args("restore s --name x")).unwrap() else {
            panic!("not a restore")
        };
        assert_eq!(d.data_dir, PathBuf::from("x.etcd"));
        assert_eq!(
            d.initial_cluster,
            vec![("x".into(), vec!["http://localhost:2380".into()])]
        );
    }

    #[test]
    fn status_and_mistakes() {
        assert_eq!(
            parse(&args("status f -w json")).unwrap(),
            SnapshotCommand::Status {
                file: "f".into(),
                format: "json".into()
            }
        );
        for (bad, msg) in [
            ("status", "snapshot status requires exactly one argument"),
            (
                "restore a b",
                "snapshot restore requires exactly one argument",
            ),
            (
                "restore a --bump-revision 10",
                "--mark-compacted required if --revision-bump > 0",
            ),
            (
                "restore a --mark-compacted",
                "--mark-compacted required if --revision-bump > 0",
            ),
            ("frobnicate", USAGE),
        ] {
            assert_eq!(parse(&args(bad)).unwrap_err().to_string(), msg, "{bad}");
        }
        assert!(parse(&args("restore a --bogus")).is_err());
    }
}

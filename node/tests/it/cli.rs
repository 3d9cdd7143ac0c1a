//! The command line: etcd's flags, env and config file; malformed input
//! exits non-zero with one line naming the problem, as etcd's does.

use crate::support::{etcd_bin, ferrocd_bin, http_get, run, unique_ip, Kind, Member};
use std::path::Path;

/// The first line etcd prints for the same mistake (Go's flag package).
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[test]
fn malformed_flags_exit_2_with_etcds_message() {
    let cases: &[&[&str]] = &[
        &["--foo"],
        &["-foo=1"],
        &["--quota-backend-bytes=abc"],
        &["--max-txn-ops", "-3"],
        &["--name"],
        &["--experimental-watch-progress-notify-interval=5"],
    ];
    for args in cases {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (code, out, err) = run(&ferrocd_bin(), &args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} printed on stdout: {out}");
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?}: one line expected, got:\n{err}"
        );
        let (etcd_code, _, etcd_err) = run(&etcd_bin(), &args, &[]);
        assert_eq!(etcd_code, 2, "etcd {args:?}");
        assert_eq!(first_line(&err), first_line(&etcd_err), "{args:?}");
    }
}

#[test]
fn invalid_settings_exit_1_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--name",
                "infra1",
                "--initial-cluster",
                "infra0=http://127.0.0.1:2380",
            ],
            "couldn't find local name \"infra1\" in the initial cluster configuration",
        ),
        (
            &["--listen-client-urls", "localhost:2379"],
            "-listen-client-urls",
        ),
        (
            &["--initial-cluster-state", "maybe"],
            "-initial-cluster-state",
        ),
        (
            &["--auto-compaction-mode", "weekly"],
            "auto-compaction-mode",
        ),
        (&["--log-level", "loud"], "log level"),
        (&["--auth-token", "opaque"], "unknown token type \"opaque\""),
        (&["--auth-token", "jwt,ttl"], "invalid auth options"),
        (
            &["--auth-token", "jwt,sign-method=XS256"],
            "invalid auth signature method \"XS256\"",
        ),
        (
            &["--auth-token", "jwt,sign-method=RS256"],
            "missing key data (pub-key)",
        ),
        (
            &[
                "--auth-token",
                "jwt,sign-method=ES256,pub-key=/nonexistent.pub",
            ],
            "cannot read pub-key /nonexistent.pub",
        ),
        (&["positional"], "'positional' is not a valid flag"),
    ];
    for (args, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.push(format!("--data-dir={}", dir.path().join("d").display()));
        let (code, _, err) = run(&ferrocd_bin(), &a, &[]);
        assert_ne!(code, 0, "{args:?} should fail");
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with('{')).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected, got:\n{err}");
        assert!(lines[0].contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn bad_environment_value_names_the_variable() {
    let (code, _, err) = run(&ferrocd_bin(), &[], &[("ETCD_QUOTA_BACKEND_BYTES", "lots")]);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "invalid value \"lots\" for ETCD_QUOTA_BACKEND_BYTES: parse error"
    );
}

#[test]
fn version_and_help() {
    let (code, out, _) = run(&ferrocd_bin(), &["--version".into()], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("etcd API Version: 3.5."), "{out}");
    let (code, out, _) = run(&ferrocd_bin(), &["--help".into()], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--listen-client-urls",
        "--quota-backend-bytes",
        "--auto-compaction-retention",
        "--config-file",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
}

fn member_names(endpoint: &str) -> String {
    let (code, out, err) = run(
        &crate::support::etcdctl35(),
        &[
            format!("--endpoints={endpoint}"),
            "member".into(),
            "list".into(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    out
}

fn wait_health(endpoint: &str, child: &mut std::process::Child) {
    for _ in 0..200 {
        if let Some((200, _)) = http_get(endpoint, "/health") {
            return;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("ferrocd exited: {s}");
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("ferrocd did not come up on {endpoint}");
}

/// Kills and reaps a process started by a test, also when the test fails.
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[String], env: &[(&str, String)], cwd: &Path) -> Reap {
    Reap(
        std::process::Command::new(ferrocd_bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(cwd)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ferrocd"),
    )
}

#[test]
fn config_file_is_used_and_other_flags_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let ip = unique_ip();
    let file = dir.path().join("ferrocd.yaml");
    std::fs::write(
        &file,
        format!(
            "name: from-file\ndata-dir: {}\nlisten-client-urls: http://{ip}:2379\nadvertise-client-urls: http://{ip}:2379\ninitial-advertise-peer-urls: http://{ip}:2380\ninitial-cluster: from-file=http://{ip}:2380\nquota-backend-bytes: 100000000\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut p = spawn(
        &[
            format!("--config-file={}", file.display()),
            "--name=ignored".into(),
        ],
        &[],
        dir.path(),
    );
    let ep = format!("{ip}:2379");
    wait_health(&ep, &mut p.0);
    assert!(member_names(&ep).contains("from-file"));
    assert!(dir.path().join("data/member/db").exists());
}

#[test]
fn environment_variables_configure_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let ip = unique_ip();
    let env = [
        ("ETCD_NAME", "from-env".to_string()),
        (
            "ETCD_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
        ("ETCD_LISTEN_CLIENT_URLS", format!("http://{ip}:2379")),
        ("ETCD_ADVERTISE_CLIENT_URLS", format!("http://{ip}:2379")),
        (
            "ETCD_INITIAL_ADVERTISE_PEER_URLS",
            format!("http://{ip}:2380"),
        ),
        // Not the default localhost:2380, which the no-flags test takes.
        ("ETCD_LISTEN_PEER_URLS", format!("http://{ip}:2380")),
    ];
    let mut p = spawn(&[], &env, dir.path());
    let ep = format!("{ip}:2379");
    wait_health(&ep, &mut p.0);
    assert!(member_names(&ep).contains("from-env"));
}

#[test]
fn with_no_flags_it_serves_localhost_2379_from_default_etcd() {
    assert!(
        std::net::TcpListener::bind("127.0.0.1:2379").is_ok(),
        "127.0.0.1:2379 is taken; this test needs it (etcd's default)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(&[], &[], dir.path());
    wait_health("127.0.0.1:2379", &mut p.0);
    let (code, out, err) = run(
        &crate::support::etcdctl35(),
        &["put".into(), "foo".into(), "bar".into()],
        &[],
    );
    assert_eq!((code, out.trim()), (0, "OK"), "{err}");
    let (_, out, _) = run(
        &crate::support::etcdctl35(),
        &["get".into(), "foo".into()],
        &[],
    );
    assert_eq!(out, "foo\nbar\n");
    assert!(dir.path().join("default.etcd/member/db").exists());
    drop(p);
}

#[test]
fn restart_keeps_identity_whatever_the_bootstrap_flags_say() {
    let mut m = Member::start(Kind::Ferrocd, &[]);
    let status = |m: &Member| -> serde_json::Value {
        let (code, out, err) = run(
            &crate::support::etcdctl35(),
            &[
                format!("--endpoints={}", m.endpoint()),
                "endpoint".into(),
                "status".into(),
                "-w".into(),
                "json".into(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let before = status(&m);
    let (code, _, err) = run(
        &crate::support::etcdctl35(),
        &[
            format!("--endpoints={}", m.endpoint()),
            "put".into(),
            "k".into(),
            "v".into(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    // Another token would give another member and cluster ID if the flags were used again.
    m.restart_with(&["--initial-cluster-token=something-else"]);
    let after = status(&m);
    assert_eq!(
        after[0]["Status"]["header"]["member_id"],
        before[0]["Status"]["header"]["member_id"]
    );
    assert_eq!(
        after[0]["Status"]["header"]["cluster_id"],
        before[0]["Status"]["header"]["cluster_id"]
    );
    let (_, out, _) = run(
        &crate::support::etcdctl35(),
        &[
            format!("--endpoints={}", m.endpoint()),
            "get".into(),
            "k".into(),
        ],
        &[],
    );
    assert_eq!(out, "k\nv\n", "the data survived the restart");
    assert!(
        std::fs::read_to_string(m.log_path())
            .unwrap()
            .contains("ignoring the bootstrap flags"),
        "the restart says it ignores the bootstrap flags"
    );
}

//! etcdctl 3.5 and 3.4 scripts run against etcd 3.5 and against ferrocd:
//! the same output (IDs, addresses and timings normalized) and exit codes.

use crate::support::{etcdctl34, etcdctl35, run, Kind, Member};
use regex::Regex;
use std::path::Path;

/// One etcdctl invocation. `{LEASE}` is replaced by the ID the last
/// `lease grant` printed on that server; `{DIR}` by a scratch directory.
struct Cmd {
    args: &'static str,
    stdin: Option<&'static str>,
    /// Compare only the exit code (output holds sizes or versions that differ by design).
    exit_only: bool,
}

const fn c(args: &'static str) -> Cmd {
    Cmd {
        args,
        stdin: None,
        exit_only: false,
    }
}

const fn exit_only(args: &'static str) -> Cmd {
    Cmd {
        args,
        stdin: None,
        exit_only: true,
    }
}

const SCRIPT: &[Cmd] = &[
    c("put foo bar"),
    c("get foo"),
    c("get foo -w json"),
    c("put foo baz --prev-kv"),
    c("get foo --print-value-only"),
    c("put foo/1 a"),
    c("put foo/2 b"),
    c("put fop c"),
    c("get foo --prefix"),
    c("get foo --prefix --keys-only"),
    c("get foo --prefix --count-only -w json"),
    c("get foo --prefix --limit 1 -w json"),
    c("get foo --prefix --sort-by=MODIFY --order=DESCEND"),
    c("get foo --from-key"),
    c("get foo --rev 2"),
    c("get foo --prefix --rev 3 -w json"),
    c("get foo --consistency=s"),
    c("put missing --ignore-value"),
    c("del foo/1"),
    c("del foo --prefix --prev-kv"),
    c("del nothing"),
    Cmd {
        args: "txn --interactive=false",
        stdin: Some("mod(\"fop\") > \"0\"\n\nput fop d\nget fop\n\nput else x\n\n"),
        exit_only: false,
    },
    Cmd {
        args: "txn --interactive=false -w json",
        stdin: Some("value(\"fop\") = \"nope\"\n\nput x y\n\nget fop\n\n"),
        exit_only: false,
    },
    c("compaction 3"),
    c("get foo --rev 2"),
    c("compaction 100"),
    c("compaction 4 --physical"),
    c("lease grant 100"),
    c("put leased v --lease={LEASE}"),
    c("lease timetolive {LEASE} --keys"),
    c("lease list"),
    c("lease keep-alive --once {LEASE}"),
    c("lease revoke {LEASE}"),
    c("get leased"),
    c("lease revoke 4d2"),
    c("lease timetolive 4d2"),
    c("member list"),
    c("member list -w json"),
    c("endpoint health"),
    exit_only("endpoint status -w json"),
    c("endpoint hashkv -w json"),
    c("alarm list"),
    c("alarm disarm"),
    c("defrag"),
    c("snapshot save {DIR}/snap.db"),
    c("lock mylock echo locked"),
    c("put /k8s/a 1"),
    c("get /k8s --prefix -w json --limit 1"),
];

/// etcdctl's `auth`, `user` and `role` commands, and `--user` (both forms).
const AUTH_SCRIPT: &[Cmd] = &[
    c("auth status"),
    c("auth enable"),
    c("user add root --new-user-password=rootpw"),
    c("user list"),
    c("auth enable"),
    c("put k v"),
    c("--user=root:rootpw put k v"),
    c("--user=root:wrong get k"),
    c("--user=nobody:x get k"),
    c("--user=root:rootpw auth status"),
    c("--user=root:rootpw role add r"),
    c("--user=root:rootpw role add r"),
    c("--user=root:rootpw role add"),
    c("--user=root:rootpw role grant-permission r readwrite k"),
    c("--user=root:rootpw role grant-permission r read --prefix p/"),
    c("--user=root:rootpw role grant-permission r write --from-key z"),
    c("--user=root:rootpw role grant-permission r read a c"),
    c("--user=root:rootpw role grant-permission r bogus a"),
    c("--user=root:rootpw role grant-permission nope read a"),
    c("--user=root:rootpw role get r"),
    c("--user=root:rootpw role get nope"),
    c("--user=root:rootpw role list"),
    c("--user=root:rootpw user add alice --new-user-password=alicepw"),
    c("--user=root:rootpw user add alice --new-user-password=again"),
    c("--user=root:rootpw user grant-role alice r"),
    c("--user=root:rootpw user grant-role alice nope"),
    c("--user=root:rootpw user grant-role nobody r"),
    c("--user=root:rootpw user get alice"),
    c("--user=root:rootpw user get alice --detail"),
    c("--user=root:rootpw user get nobody"),
    c("--user=root:rootpw user list"),
    c("--user=alice:alicepw get k"),
    c("--user=alice:alicepw put k v2"),
    c("--user=alice:alicepw put x y"),
    c("--user=alice:alicepw get p/ --prefix"),
    c("--user=alice:alicepw get a --prefix"),
    c("--user=alice:alicepw put zz 1"),
    c("--user=alice:alicepw get zz"),
    c("--user=alice --password=alicepw get k --print-value-only"),
    c("--user=alice:alicepw user list"),
    c("--user=alice:alicepw user get alice"),
    c("--user=alice:alicepw role get r"),
    c("--user=alice:alicepw auth disable"),
    Cmd {
        args: "--user=root:rootpw user passwd alice --interactive=false",
        stdin: Some("newpw\n"),
        exit_only: false,
    },
    c("--user=alice:alicepw get k"),
    c("--user=alice:newpw get k"),
    c("--user=root:rootpw role revoke-permission r k"),
    c("--user=root:rootpw role revoke-permission r k"),
    c("--user=root:rootpw role revoke-permission r p/ --prefix"),
    c("--user=root:rootpw role get r"),
    c("--user=alice:newpw get k"),
    c("--user=root:rootpw user revoke-role alice r"),
    c("--user=root:rootpw user revoke-role alice r"),
    c("--user=root:rootpw user revoke-role root root"),
    c("--user=root:rootpw user delete root"),
    c("--user=root:rootpw role delete root"),
    c("--user=root:rootpw role delete r"),
    c("--user=root:rootpw user delete alice"),
    c("--user=root:rootpw user delete alice"),
    c("--user=root:rootpw user add nopw --no-password"),
    c("--user=nopw:x get k"),
    c("--user=root:rootpw auth disable"),
    c("auth status"),
    c("get k --print-value-only"),
    c("user list"),
    c("role list"),
];

fn normalize(text: &str, m: &Member, dir: &Path) -> String {
    let rules: &[(&str, &str)] = &[
        (
            r#""(cluster_id|member_id|raft_term|ID|id|hash)":\d+"#,
            r#""$1":<N>"#,
        ),
        (r"\b[0-9a-f]{12,16}\b", "<ID>"),
        (r"took = [0-9.]+[µnm]?s", "took = <T>"),
        (r"remaining\(-?\d+s\)", "remaining(<T>)"),
        (r#""level":"[a-z]+","ts":[^\n]*"#, "<LOG>"),
    ];
    let mut s = text
        .replace(&m.ip.to_string(), "<IP>")
        .replace(&dir.display().to_string(), "<DIR>");
    for (pat, rep) in rules {
        s = Regex::new(pat)
            .expect("regex")
            .replace_all(&s, *rep)
            .into_owned();
    }
    s
}

/// Runs the script; returns one line per command: exit code, stdout and the
/// `Error:` lines of stderr (etcdctl's log lines carry timestamps).
fn run_script(ctl: &Path, m: &Member, script: &[Cmd]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("dir");
    let mut lease = String::new();
    let mut out = Vec::new();
    for cmd in script {
        let args_text = cmd
            .args
            .replace("{LEASE}", &lease)
            .replace("{DIR}", &dir.path().display().to_string());
        let mut args: Vec<String> = vec![
            format!("--endpoints={}", m.endpoint()),
            "--command-timeout=10s".into(),
        ];
        args.extend(args_text.split_whitespace().map(str::to_string));
        let (code, stdout, stderr) = match cmd.stdin {
            None => run(ctl, &args, &[("ETCDCTL_API", "3")]),
            Some(input) => run_with_stdin(ctl, &args, input),
        };
        if cmd.args.starts_with("lease grant") {
            lease = stdout
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
        }
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("Error:")).collect();
        let line = if cmd.exit_only {
            format!("{} => exit {code}", cmd.args)
        } else {
            format!(
                "{} => exit {code}\n{}{}",
                cmd.args,
                stdout,
                errors.join("\n")
            )
        };
        out.push(normalize(&line, m, dir.path()));
    }
    out
}

fn run_with_stdin(ctl: &Path, args: &[String], input: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(ctl)
        .args(args)
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let o = child.wait_with_output().expect("etcdctl output");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `script` on a fresh etcd and a fresh ferrocd; the outputs, and the
/// differences between them.
fn differences(ctl: &Path, script: &[Cmd]) -> (Vec<String>, Vec<String>) {
    let etcd = Member::start(Kind::Etcd, &[]);
    let ferro = Member::start(Kind::Ferrocd, &[]);
    let want = run_script(ctl, &etcd, script);
    let got = run_script(ctl, &ferro, script);
    let diffs: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .map(|(w, g)| format!("etcd:\n{w}\nferrocd:\n{g}\n"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{} of {} etcdctl commands differ:\n{}",
        diffs.len(),
        script.len(),
        diffs.join("\n")
    );
    (want, got)
}

fn compare_with_etcd(ctl: &Path) {
    let (_, got) = differences(ctl, SCRIPT);
    // The script really exercised the servers.
    assert!(
        got.iter().any(|l| l.contains("Snapshot saved at")),
        "{got:?}"
    );
    assert!(got.iter().any(|l| l.contains("locked")), "{got:?}");
}

#[test]
fn etcdctl_35_script_matches_etcd() {
    compare_with_etcd(&etcdctl35());
}

#[test]
fn etcdctl_34_script_matches_etcd() {
    compare_with_etcd(&etcdctl34());
}

fn compare_auth_with_etcd(ctl: &Path) {
    let (want, _) = differences(ctl, AUTH_SCRIPT);
    // The script really turned auth on and was refused where it should be.
    assert!(
        want.iter().any(|l| l.contains("Authentication Enabled")),
        "{want:?}"
    );
    assert!(
        want.iter().any(|l| l.contains("permission denied")),
        "{want:?}"
    );
}

#[test]
fn etcdctl_35_auth_script_matches_etcd() {
    compare_auth_with_etcd(&etcdctl35());
}

#[test]
fn etcdctl_34_auth_script_matches_etcd() {
    compare_auth_with_etcd(&etcdctl34());
}

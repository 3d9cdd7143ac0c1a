//! The dependency direction of README's "Architecture", checked over the
//! sources: each top-level module of the member may name only the modules
//! below it (`crate::x` in code outside `#[cfg(test)]`), the operator and the
//! test tools do not link the member, and etcd's error texts are spelled in
//! the proto crate only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each module of `node/src` and the modules it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    // Clients and servers.
    (
        "api",
        &[
            "member", "snapshot", "apply", "auth", "mvcc", "watch", "lease", "metrics", "config",
            "tls", "listen", "ids",
        ],
    ),
    ("gateway", &["config", "discovery", "peer", "listen", "tls"]),
    // Backups: etcd's snapshot format to and from the store.
    ("snapshot", &["raft", "apply", "mvcc", "config", "ids"]),
    // The member core.
    (
        "member",
        &[
            "raft",
            "peer",
            "discovery",
            "apply",
            "auth",
            "mvcc",
            "lease",
            "watch",
            "metrics",
            "config",
            "tls",
            "listen",
            "ids",
        ],
    ),
    // Replication: peer reaches the member only through its LocalMember
    // trait; raft reaches the store only through apply's state machine.
    ("peer", &["raft", "tls", "metrics"]),
    ("raft", &["apply", "metrics"]),
    ("discovery", &["config", "tls", "ids"]),
    // The deterministic store.
    ("apply", &["auth", "mvcc", "lease", "watch"]),
    ("auth", &[]),
    ("watch", &["mvcc"]),
    ("lease", &[]),
    ("mvcc", &[]),
    // Leaves.
    ("config", &["tls"]),
    ("tls", &[]),
    ("listen", &[]),
    ("ids", &[]),
    ("logging", &[]),
    ("metrics", &[]),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the node crate lives in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file: comments dropped, and everything from the first
/// `#[cfg(test)]` on (test modules close the files here).
fn code_of(path: &Path) -> String {
    strip_comments_and_tests(&std::fs::read_to_string(path).expect("readable source"))
}

fn strip_comments_and_tests(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a piece of code names as `crate::m` or `crate::{m, ...}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let ident = regex::Regex::new(r"\bcrate::([a-z_][a-z0-9_]*)").expect("regex");
    let group = regex::Regex::new(r"\bcrate::\{([^}]*)\}").expect("regex");
    let word = regex::Regex::new(r"\b([a-z_][a-z0-9_]*)\b").expect("regex");
    let mut out: BTreeSet<String> = ident
        .captures_iter(code)
        .map(|c| c[1].to_string())
        .collect();
    for g in group.captures_iter(code) {
        out.extend(word.captures_iter(&g[1]).map(|c| c[1].to_string()));
    }
    out
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let src = repo().join("node/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // The walk itself must have found the sources (a wrong path checks nothing).
    assert!(
        files.len() > 50,
        "only {} files under {}",
        files.len(),
        src.display()
    );
    assert!(files.iter().any(|f| f.ends_with("member/mod.rs")));
    let mut back_edges = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("a first component");
        if top == "lib" || top == "main" {
            continue;
        }
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == top) else {
            panic!("module {top} is not in the layer table of tests/it/layers.rs and README");
        };
        for used in crate_modules(&code_of(file)) {
            if used != top && !allowed.contains(&used.as_str()) {
                back_edges.push(format!("{} -> {used}", rel.display()));
            }
        }
    }
    assert!(
        back_edges.is_empty(),
        "imports against the layer order:\n{}",
        back_edges.join("\n")
    );
}

#[test]
fn imports_are_found_in_paths_and_groups_but_not_in_comments_or_tests() {
    let code = "use crate::api::error;\nuse crate::{member, raft::Batch};\n\
                let x = crate::ids::member_id(); // crate::gateway\n\
                #[cfg(test)]\nmod tests { use crate::watch; }\n";
    let used = crate_modules(&strip_comments_and_tests(code));
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["api", "ids", "member", "raft"]
    );
}

#[test]
fn operator_and_test_tools_do_not_link_the_member() {
    for manifest in [
        "operator/Cargo.toml",
        "e2e/bench/Cargo.toml",
        "e2e/k8s/Cargo.toml",
        "crates/proto/Cargo.toml",
        "crates/testkit/Cargo.toml",
    ] {
        let text = std::fs::read_to_string(repo().join(manifest)).expect("manifest");
        // `ferrocd = ...`, `ferrocd={...}`, `ferrocd.workspace = true`.
        let links = text.lines().any(|l| {
            let l = l.trim_start();
            ["ferrocd ", "ferrocd=", "ferrocd."]
                .iter()
                .any(|p| l.starts_with(p))
        });
        assert!(!links, "{manifest} depends on the ferrocd member crate");
    }
}

#[test]
fn etcd_error_texts_are_spelled_only_in_the_proto_crate() {
    let mut files = Vec::new();
    for dir in [
        "node/src",
        "operator/src",
        "e2e/bench/src",
        "e2e/k8s/src",
        "crates/testkit/src",
    ] {
        rust_files(&repo().join(dir), &mut files);
    }
    let spelled: Vec<String> = files
        .iter()
        .filter(|f| code_of(f).contains("\"etcdserver: "))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        spelled.is_empty(),
        "etcd error texts outside crates/proto/src/errors.rs:\n{}",
        spelled.join("\n")
    );
}

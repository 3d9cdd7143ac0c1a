//! `ferrocd-bench compare --quick` proves the benchmark works end to end
//! (real etcd 3.5 and ferrocd clusters); it is not a performance check.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

#[test]
fn compare_quick_measures_every_scenario_on_both_systems() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_ferrocd-bench"));
    let ferrocd = bench.with_file_name("ferrocd");
    assert!(
        ferrocd.exists(),
        "build the workspace first: {}",
        ferrocd.display()
    );
    let out = succeeded(
        Command::new(&bench)
            .args(["compare", "--quick", "--json", "--rounds", "2", "--ferrocd"])
            .arg(&ferrocd),
    );
    let report: serde_json::Value = serde_json::from_slice(&out).expect("JSON report");
    assert!(report["fsync_latency_ms"].as_f64().unwrap() > 0.0);
    assert!(report["loopback_rtt_ms"].as_f64().unwrap() > 0.0);
    for system in ["etcd", "ferrocd"] {
        let rows = report[system].as_array().unwrap();
        // 12 scenarios; the snapshot one reports three rows, the two
        // single-client ones two (average and p99).
        assert_eq!(rows.len(), 16, "{system}: {rows:?}");
        let with_floor: Vec<&str> = rows
            .iter()
            .filter(|r| r["floor_ms"].as_f64().is_some_and(|f| f > 0.0))
            .map(|r| r["scenario"].as_str().unwrap())
            .collect();
        assert_eq!(
            with_floor,
            [
                "put, 1 client, sequential keys: average",
                "put, 1 client, sequential keys: p99",
                "single member: put, 1 client: average",
                "single member: put, 1 client: p99",
            ],
            "{system}"
        );
        for r in rows {
            assert!(r["value"].as_f64().unwrap() > 0.0, "{system}: {r}");
            let rounds = r["rounds"].as_array().unwrap();
            assert_eq!(rounds.len(), 2, "{system}: {r}");
            let (lo, hi) = (rounds[0].as_f64().unwrap(), rounds[1].as_f64().unwrap());
            // The median of two rounds is the higher one (index len/2 of the sorted pair).
            assert_eq!(r["value"].as_f64().unwrap(), lo.max(hi), "{system}: {r}");
            if let Some(s) = r["summary"].as_object() {
                assert_eq!(s["errors"], 0, "{system}: {r}");
            }
        }
    }

    // README's table comes from a saved report.
    let saved = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(saved.path(), &out).unwrap();
    let table = succeeded(Command::new(&bench).arg("table").arg(saved.path()));
    let table = String::from_utf8(table).unwrap();
    for r in report["etcd"].as_array().unwrap() {
        let row = format!("| {} |", r["scenario"].as_str().unwrap());
        assert!(table.contains(&row), "{row} missing from\n{table}");
    }
    assert!(table.contains("floor of a 1-client put"), "{table}");
}

/// Runs `cmd`, fails the test with its stderr unless it exits 0; its stdout.
fn succeeded(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run ferrocd-bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

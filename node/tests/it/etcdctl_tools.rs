//! etcdctl 3.5's cluster tools on ferrocd beside etcd 3.5: `check perf`,
//! `check datascale`, `defrag --cluster`, `endpoint hashkv --cluster`, and
//! `make-mirror` from etcd into ferrocd and back (the migration path of a
//! live etcd cluster).

use crate::support::client::Client;
use crate::support::{etcdctl35, run, Cluster, Kind, Member, Process};
use ferrocd_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn ctl(endpoints: &str, args: &[&str]) -> (i32, String, String) {
    let mut a = vec![format!("--endpoints={endpoints}")];
    a.extend(args.iter().map(|s| s.to_string()));
    run(&etcdctl35(), &a, &[])
}

/// The verdict lines of `check perf` / `check datascale` (without the
/// progress bar, which shares their stdout).
fn verdicts(out: &str) -> Vec<String> {
    out.split(['\n', '\r'])
        .filter_map(|l| {
            l.find("PASS")
                .or_else(|| l.find("FAIL"))
                .map(|i| l[i..].trim().to_string())
        })
        .collect()
}

/// `check perf --load s` on a 3-member etcd and a 3-member ferrocd at the
/// same time, then `check datascale`, `defrag --cluster` and
/// `endpoint hashkv --cluster` on each. Runs alone (see .config/nextest.toml)
/// so that its latency verdicts, printed, say something.
#[test]
fn etcdctl_check_defrag_and_hashkv_pass_on_ferrocd_as_on_etcd() {
    let etcd = Cluster::start(Kind::Etcd, 3, &[]);
    let ferrocd = Cluster::start(Kind::Ferrocd, 3, &[]);
    let (e, f) = (etcd.endpoints(), ferrocd.endpoints());
    let perf = [
        "check",
        "perf",
        "--load",
        "s",
        "--auto-compact",
        "--auto-defrag",
    ];
    let (etcd_perf, ferrocd_perf) = std::thread::scope(|s| {
        let a = s.spawn(|| ctl(&e, &perf));
        let b = s.spawn(|| ctl(&f, &perf));
        (
            a.join().expect("etcd perf"),
            b.join().expect("ferrocd perf"),
        )
    });
    let (ev, fv) = (verdicts(&etcd_perf.1), verdicts(&ferrocd_perf.1));
    eprintln!("check perf --load s, 3 members:\n  etcd 3.5: {ev:?}\n  ferrocd:  {fv:?}");
    // Throughput and latency verdicts depend on the machine's load (the
    // benchmark compares speed): what must hold is that every request
    // succeeded and the tool judged the same three things on both.
    let failed_requests = |v: &[String]| {
        v.iter()
            .filter(|l| l.contains("ERROR") || l.contains("errors") || l.contains("Cleanup"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(failed_requests(&fv), Vec::<String>::new(), "ferrocd");
    assert_eq!(failed_requests(&ev), Vec::<String>::new(), "etcd");
    assert_eq!(fv.len(), ev.len(), "etcd: {ev:?}, ferrocd: {fv:?}");
    assert_eq!(fv.len(), 4, "three judgements and a verdict: {fv:?}");
    let passed = fv.last().is_some_and(|l| l == "PASS");
    assert_eq!(
        ferrocd_perf.0 == 0,
        passed,
        "exit code {} against verdict {fv:?}",
        ferrocd_perf.0
    );
    assert!(
        !ferrocd_perf.2.contains("Error"),
        "ferrocd check perf: {}",
        ferrocd_perf.2
    );

    for (name, endpoints) in [("etcd", &e), ("ferrocd", &f)] {
        let (code, out, err) = ctl(
            endpoints,
            &[
                "check",
                "datascale",
                "--load",
                "s",
                "--auto-compact",
                "--auto-defrag",
            ],
        );
        let v = verdicts(&out);
        eprintln!("check datascale --load s on {name}: {v:?}");
        assert_eq!(code, 0, "{name} check datascale: {err}");
        assert!(
            v.iter().all(|l| l.starts_with("PASS")) && !v.is_empty(),
            "{name}: {out}"
        );

        let (code, out, err) = ctl(endpoints, &["defrag", "--cluster"]);
        assert_eq!(code, 0, "{name} defrag --cluster: {err}");
        let done = out
            .lines()
            .filter(|l| l.starts_with("Finished defragmenting etcd member[http://"))
            .count();
        assert_eq!(done, 3, "{name}: {out}");

        let (code, out, err) = ctl(endpoints, &["endpoint", "hashkv", "--cluster"]);
        assert_eq!(code, 0, "{name} endpoint hashkv --cluster: {err}");
        let hashes: Vec<&str> = out.lines().filter_map(|l| l.split(", ").nth(1)).collect();
        assert_eq!(hashes.len(), 3, "{name}: {out}");
        assert!(
            hashes.iter().all(|h| *h == hashes[0]),
            "{name}: members' hashes differ: {out}"
        );
    }
}

type Keys = BTreeMap<Vec<u8>, Vec<u8>>;

async fn keys(c: &Client, prefix: &[u8]) -> Keys {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let r =
        c.kv.clone()
            .range(RangeRequest {
                key: prefix.to_vec(),
                range_end: end,
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
    r.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

async fn put(c: &Client, key: String, value: String) {
    c.kv.clone()
        .put(PutRequest {
            key: key.into_bytes(),
            value: value.into_bytes(),
            ..Default::default()
        })
        .await
        .expect("put");
}

async fn wait_same(from: &Client, to: &Client, prefix: &[u8], what: &str) -> usize {
    let want = keys(from, prefix).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = keys(to, prefix).await;
        if got == want {
            return got.len();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the mirror has {} keys, the source {}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Copies everything under `prefix` from `src` to `dst` with etcdctl
/// make-mirror, then the live writes and deletes made while it runs.
async fn mirror(src: &Member, dst: &Member, prefix: &str, what: &str) -> usize {
    let (s, d) = (
        Client::connect(&src.endpoint()).await,
        Client::connect(&dst.endpoint()).await,
    );
    let mut cmd = Command::new(etcdctl35());
    cmd.args([
        "--endpoints",
        &src.endpoint(),
        "make-mirror",
        "--prefix",
        prefix,
        &dst.endpoint(),
    ]);
    let log = src
        .dir
        .path()
        .join(format!("make-mirror-{}.log", dst.kind.name()));
    let _mirror = Process::spawn(cmd, &log);
    let copied = wait_same(
        &s,
        &d,
        prefix.as_bytes(),
        &format!("{what}: the first copy"),
    )
    .await;
    for i in 0..100 {
        put(&s, format!("{prefix}live/{i}"), format!("l{i}")).await;
    }
    for i in (0..1000).step_by(10) {
        let key = format!("{prefix}{i:04}").into_bytes();
        s.kv.clone()
            .delete_range(DeleteRangeRequest {
                key,
                ..Default::default()
            })
            .await
            .expect("delete");
    }
    put(&s, format!("{prefix}0001"), "changed".into()).await;
    let live = wait_same(&s, &d, prefix.as_bytes(), &format!("{what}: live writes")).await;
    eprintln!(
        "make-mirror {what}: {copied} keys copied, then {live} after live writes and deletes"
    );
    live
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_mirror_copies_etcd_into_ferrocd_and_back() {
    let etcd = Member::start(Kind::Etcd, &[]);
    let ferrocd = Member::start(Kind::Ferrocd, &[]);
    let e = Client::connect(&etcd.endpoint()).await;
    for i in 0..1000 {
        put(&e, format!("/app/{i:04}"), format!("value-{i}")).await;
    }
    let n = mirror(&etcd, &ferrocd, "/app/", "etcd 3.5 -> ferrocd").await;
    assert_eq!(n, 1000);
    // And back: ferrocd's keys into a fresh etcd.
    let back = Member::start(Kind::Etcd, &[]);
    let f = Client::connect(&ferrocd.endpoint()).await;
    for i in 0..1000 {
        put(&f, format!("/back/{i:04}"), format!("value-{i}")).await;
    }
    let n = mirror(&ferrocd, &back, "/back/", "ferrocd -> etcd 3.5").await;
    assert_eq!(n, 1000);
}

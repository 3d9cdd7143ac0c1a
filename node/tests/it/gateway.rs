//! `ferrocd gateway start`, seed 004's L4 proxy: etcdctl through it, one
//! endpoint killed while clients keep working, and the endpoint taken back
//! once it answers again.

use crate::support::{etcdctl35, ferrocd_bin, run, unique_ip, Cluster, Kind, Process};
use std::process::Command;
use std::time::{Duration, Instant};

fn through(gateway: &str, args: &[&str]) -> (i32, String, String) {
    let mut a = vec![
        format!("--endpoints={gateway}"),
        "--dial-timeout=3s".into(),
        "--command-timeout=10s".into(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    run(&etcdctl35(), &a, &[])
}

#[test]
fn etcdctl_works_through_the_gateway_while_an_endpoint_dies() {
    let mut cluster = Cluster::start(Kind::Ferrocd, 3, &[]);
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("{}:23790", unique_ip());
    let mut cmd = Command::new(ferrocd_bin());
    cmd.args([
        "gateway",
        "start",
        &format!("--endpoints={}", cluster.endpoints()),
        &format!("--listen-addr={listen}"),
        "--retry-delay=1s",
    ]);
    let gateway = Process::spawn(cmd, &dir.path().join("gateway.log"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while through(&listen, &["put", "via", "gateway"]).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "gateway never proxied:\n{}",
            gateway.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = through(&listen, &["get", "via", "--print-value-only"]);
    assert_eq!((code, out.trim()), (0, "gateway"), "{err}");

    // Every connection goes to the next live endpoint: none fails while one is dead.
    cluster.members[0].kill9();
    for i in 0..9 {
        let v = format!("v{i}");
        let (code, _, err) = through(&listen, &["put", "k", &v]);
        assert_eq!(code, 0, "put {i} through the gateway: {err}");
        let (code, out, err) = through(&listen, &["get", "k", "--print-value-only"]);
        assert_eq!((code, out.trim()), (0, v.as_str()), "{err}");
    }
    assert!(
        gateway.log_text().contains("deactivated endpoint"),
        "{}",
        gateway.log_text()
    );
    // Back after the retry delay.
    cluster.members[0].restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gateway.log_text().contains("activated endpoint\"") {
        assert!(
            Instant::now() < deadline,
            "endpoint never taken back:\n{}",
            gateway.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn gateway_without_endpoints_or_with_a_bad_subcommand_exits_with_one_line() {
    let (code, _, err) = run(&ferrocd_bin(), &["gateway".into(), "stop".into()], &[]);
    assert_eq!(code, 1);
    assert!(err.starts_with("usage: ferrocd gateway start"), "{err}");
    let (code, _, err) = run(
        &ferrocd_bin(),
        &["gateway".into(), "start".into(), "--endpoints=".into()],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "ferrocd gateway: no endpoints found");
}

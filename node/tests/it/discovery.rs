//! DNS SRV discovery with a real dnsmasq inside a private network namespace:
//! seed 000's command lines (hostname and IP forms) for ferrocd and etcd
//! 3.5, etcd's error cases, records appearing one by one, and a member
//! added with MemberAdd joining through the records.

use crate::support::netns::{member_records, NetNs, Record};
use crate::support::{etcdctl35, ferrocd_bin, Kind, Process};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const DOMAIN: &str = "example.com";

/// Seed 000's hosts: infraN.example.com at 10.0.1.(10+N).
fn host(i: usize) -> String {
    format!("infra{i}.{DOMAIN}")
}

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, 10 + i as u8)
}

fn records(members: std::ops::Range<usize>) -> Vec<Record> {
    members
        .flat_map(|i| member_records(DOMAIN, &host(i), ip(i)))
        .collect()
}

fn network(n: usize) -> NetNs {
    let addrs: Vec<Ipv4Addr> = (0..n).map(ip).collect();
    NetNs::new(&addrs, &[DOMAIN])
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// Advertise and listen URLs name the host (seed 000's first example).
    Hostname,
    /// The same with IP addresses (its second example).
    Ip,
}

/// Seed 000's command line for member `i`, plus a data dir and `extra`.
fn seed_args(ns: &NetNs, i: usize, form: Form, extra: &[&str]) -> Vec<String> {
    let h = match form {
        Form::Hostname => host(i),
        Form::Ip => ip(i).to_string(),
    };
    let mut a: Vec<String> = [
        "--name".to_string(),
        format!("infra{i}"),
        "--discovery-srv".into(),
        DOMAIN.into(),
        "--initial-advertise-peer-urls".into(),
        format!("http://{h}:2380"),
        "--initial-cluster-token".into(),
        "etcd-cluster-1".into(),
        "--initial-cluster-state".into(),
        "new".into(),
        "--advertise-client-urls".into(),
        format!("http://{h}:2379"),
        "--listen-client-urls".into(),
        format!("http://{h}:2379"),
        "--listen-peer-urls".into(),
        format!("http://{h}:2380"),
        "--data-dir".into(),
        ns.dir()
            .join(format!("infra{i}.etcd"))
            .display()
            .to_string(),
    ]
    .to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn bin(kind: Kind) -> std::path::PathBuf {
    kind.bin()
}

fn start(ns: &NetNs, kind: Kind, i: usize, args: Vec<String>) -> Process {
    let log = ns.dir().join(format!("{}-infra{i}.log", kind.name()));
    ns.spawn(&bin(kind), &args, &log)
}

/// etcdctl 3.5 inside the namespace, endpoints from `--discovery-srv`.
fn ctl_srv(ns: &NetNs, args: &[&str]) -> (i32, String, String) {
    let mut a = vec![
        "--discovery-srv",
        DOMAIN,
        "--dial-timeout=2s",
        "--command-timeout=5s",
    ];
    a.extend_from_slice(args);
    ns.run(&etcdctl35(), &a)
}

/// Waits until `etcdctl --discovery-srv` reaches `n` healthy members.
fn wait_healthy(ns: &NetNs, n: usize, procs: &mut [Process]) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (code, out, err) = ctl_srv(ns, &["endpoint", "health", "--cluster"]);
        if code == 0 && out.matches("is healthy").count() == n {
            return;
        }
        for p in procs.iter_mut() {
            if let Some(status) = p.wait_exit(Duration::ZERO) {
                panic!("a member exited with {status}:\n{}", p.log_text());
            }
        }
        assert!(
            Instant::now() < deadline,
            "cluster not healthy through SRV: {out} {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `member list` through SRV, as sorted lines of ID, name, peer and client URLs.
fn member_list(ns: &NetNs) -> Vec<String> {
    let (code, out, err) = ctl_srv(ns, &["member", "list"]);
    assert_eq!(code, 0, "member list: {err}");
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| {
            // "id, started, name, peer urls, client urls, is learner"
            let f: Vec<&str> = l.split(", ").collect();
            format!("{} {} {} {} {}", f[0], f[1], f[2], f[3], f[4])
        })
        .collect();
    lines.sort();
    lines
}

/// Seed 000 for `kind` in `form`: three members, then the cluster as
/// etcdctl sees it through the client SRV records, and a write and read.
fn seed_cluster(kind: Kind, form: Form) -> Vec<String> {
    let mut ns = network(3);
    ns.set_records(&records(0..3));
    let mut procs: Vec<Process> = (0..3)
        .map(|i| start(&ns, kind, i, seed_args(&ns, i, form, &[])))
        .collect();
    wait_healthy(&ns, 3, &mut procs);
    let deadline = Instant::now() + Duration::from_secs(20);
    let members = loop {
        let m = member_list(&ns);
        // Members publish their names right after starting.
        if m.iter().all(|l| l.contains(" infra")) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (code, _, err) = ctl_srv(&ns, &["put", "seed", "000"]);
    assert_eq!(code, 0, "put through SRV: {err}");
    let (code, out, err) = ctl_srv(&ns, &["get", "seed", "--print-value-only"]);
    assert_eq!(code, 0, "get through SRV: {err}");
    assert_eq!(out.trim(), "000");
    members
}

#[test]
fn seed_000_ip_form_forms_the_same_cluster_as_etcd() {
    let etcd = seed_cluster(Kind::Etcd, Form::Ip);
    let ferrocd = seed_cluster(Kind::Ferrocd, Form::Ip);
    assert_eq!(etcd.len(), 3, "{etcd:?}");
    // Same member IDs (from the SRV host names and the token), names and URLs.
    assert_eq!(ferrocd, etcd);
}

#[test]
fn seed_000_hostname_form_binds_resolved_names() {
    // etcd 3.5 refuses host names in listen URLs ("expected IP in URL for
    // binding"); ferrocd resolves and binds them, as the seed expects.
    let ns = network(1);
    let mut etcd = start(&ns, Kind::Etcd, 0, seed_args(&ns, 0, Form::Hostname, &[]));
    assert!(etcd.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        etcd.log_text().contains("expected IP in URL for binding"),
        "{}",
        etcd.log_text()
    );
    let members = seed_cluster(Kind::Ferrocd, Form::Hostname);
    let reference = seed_cluster(Kind::Etcd, Form::Ip);
    // The same cluster as etcd's IP form (IDs and peer URLs come from the
    // records); only the advertised client URLs differ, as the flags do.
    let without_client_urls = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(
        without_client_urls(&members),
        without_client_urls(&reference)
    );
    assert!(members[0].ends_with(".example.com:2379"), "{members:?}");
}

/// (exit code, the line naming the error) of a member that must not start.
fn refused(kind: Kind, ns: &NetNs, args: Vec<String>) -> String {
    let mut p = start(ns, kind, 9, args);
    let status = p
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{} kept running:\n{}", kind.name(), p.log_text()));
    assert!(!status.success(), "{}", p.log_text());
    p.log_text()
}

#[test]
fn srv_errors_match_etcd() {
    let mut ns = network(3);
    ns.set_records(&records(0..3));
    for kind in [Kind::Etcd, Kind::Ferrocd] {
        // Advertised at an address no record names (etcd quotes the name
        // inside its JSON log line; ferrocd prints the line as it is).
        let mut args = seed_args(&ns, 0, Form::Ip, &[]);
        args[5] = "http://10.0.1.99:2380".into();
        let log = refused(kind, &ns, args).replace("\\\"", "\"");
        assert!(
            log.contains("cannot find local etcd member \"infra0\" in SRV records"),
            "{}: {log}",
            kind.name()
        );
        // A domain without records.
        let mut args = seed_args(&ns, 0, Form::Ip, &[]);
        args[3] = "nothing.example.com".into();
        let log = refused(kind, &ns, args);
        assert!(
            log.contains("error querying DNS SRV records for _etcd-server-ssl")
                && log.contains("error querying DNS SRV records for _etcd-server "),
            "{}: {log}",
            kind.name()
        );
        // SRV discovery together with an explicit initial cluster.
        let args = seed_args(
            &ns,
            0,
            Form::Ip,
            &["--initial-cluster", "infra0=http://10.0.1.10:2380"],
        );
        let log = refused(kind, &ns, args);
        assert!(
            log.contains("multiple discovery or bootstrap flags are set"),
            "{}: {log}",
            kind.name()
        );
    }
}

/// A fourth member whose address no SRV target names, started beside a
/// running 3-member cluster: refused with etcd's error (the join of a
/// running cluster applies only to a member the records list).
#[test]
fn a_member_missing_from_the_records_of_a_running_cluster_is_refused_as_etcd_refuses_it() {
    let mut ns = network(4);
    ns.set_records(&records(0..3));
    for kind in [Kind::Etcd, Kind::Ferrocd] {
        let mut procs: Vec<Process> = (0..3)
            .map(|i| start(&ns, kind, i, seed_args(&ns, i, Form::Ip, &[])))
            .collect();
        wait_healthy(&ns, 3, &mut procs);
        let mut p = start(&ns, kind, 3, seed_args(&ns, 3, Form::Ip, &[]));
        let status = p
            .wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{} kept running:\n{}", kind.name(), p.log_text()));
        assert!(!status.success(), "{}", p.log_text());
        let log = p.log_text().replace("\\\"", "\"");
        assert!(
            log.contains("cannot find local etcd member \"infra3\" in SRV records"),
            "{}: {log}",
            kind.name()
        );
        drop(procs);
        for i in 0..4 {
            let _ = std::fs::remove_dir_all(ns.dir().join(format!("infra{i}.etcd")));
        }
    }
}

/// One cluster ID and `n` started members, as every member reports them.
fn one_cluster(ns: &NetNs, n: usize) -> String {
    let (code, out, err) = ctl_srv(ns, &["endpoint", "status", "--cluster", "-w", "json"]);
    assert_eq!(code, 0, "endpoint status: {err}");
    let re = regex::Regex::new(r#""cluster_id":(\d+)"#).unwrap();
    let ids: std::collections::BTreeSet<String> =
        re.captures_iter(&out).map(|c| c[1].to_string()).collect();
    assert_eq!(ids.len(), 1, "members report different clusters: {out}");
    assert_eq!(out.matches("\"Endpoint\"").count(), n, "{out}");
    let started = member_list(ns);
    assert_eq!(started.len(), n, "{started:?}");
    assert!(
        started
            .iter()
            .all(|l| l.split(' ').nth(1) == Some("started")),
        "{started:?}"
    );
    ids.into_iter().next().unwrap()
}

#[test]
fn members_started_apart_while_records_appear_form_one_cluster() {
    let mut ns = network(3);
    let mut procs = Vec::new();
    for i in 0..3 {
        // Records appear one by one, each member a random 0-4 s after its record.
        ns.set_records(&records(0..i + 1));
        std::thread::sleep(Duration::from_millis(rand::random::<u64>() % 4000));
        procs.push(start(
            &ns,
            Kind::Ferrocd,
            i,
            seed_args(&ns, i, Form::Hostname, &["--initial-cluster-size", "3"]),
        ));
        if i == 0 {
            // The first member must have seen one record and be waiting before
            // the next appears; on a loaded machine its start can take longer
            // than the random pause, and it would then see all three at once.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !procs[0].log_text().contains(WAITING_FOR_RECORDS) {
                assert!(
                    Instant::now() < deadline,
                    "the first member did not wait for the others:\n{}",
                    procs[0].log_text()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    wait_healthy(&ns, 3, &mut procs);
    one_cluster(&ns, 3);
}

const WAITING_FOR_RECORDS: &str =
    "waiting until the SRV records list --initial-cluster-size members";

#[test]
fn a_member_added_with_member_add_joins_through_the_records() {
    let mut ns = network(4);
    ns.set_records(&records(0..3));
    let mut procs: Vec<Process> = (0..3)
        .map(|i| {
            start(
                &ns,
                Kind::Ferrocd,
                i,
                seed_args(&ns, i, Form::Hostname, &["--initial-cluster-size", "3"]),
            )
        })
        .collect();
    wait_healthy(&ns, 3, &mut procs);
    let id = one_cluster(&ns, 3);
    // The operator's scale-out: MemberAdd (learner), the record, the pod.
    let peer = format!("--peer-urls=http://{}:2380", host(3));
    let (code, out, err) = ctl_srv(&ns, &["member", "add", "infra3", &peer, "--learner"]);
    assert_eq!(code, 0, "member add: {err}");
    assert!(
        out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    ns.set_records(&records(0..4));
    procs.push(start(
        &ns,
        Kind::Ferrocd,
        3,
        seed_args(&ns, 3, Form::Hostname, &["--initial-cluster-size", "3"]),
    ));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let list = member_list(&ns);
        let joined = list.iter().any(|l| l.contains(" infra3 "));
        if joined {
            break;
        }
        assert!(Instant::now() < deadline, "infra3 never joined: {list:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        procs[3]
            .log_text()
            .contains("found a running cluster that lists this member"),
        "{}",
        procs[3].log_text()
    );
    // Promote the caught-up learner; all four serve one cluster.
    let (_, out, _) = ctl_srv(&ns, &["member", "list"]);
    let learner = out
        .lines()
        .find(|l| l.contains(" infra3,"))
        .and_then(|l| l.split(',').next())
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _, err) = ctl_srv(&ns, &["member", "promote", &learner]);
        if code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "promote: {err}");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_healthy(&ns, 4, &mut procs);
    assert_eq!(one_cluster(&ns, 4), id);
}

#[test]
fn the_gateway_finds_the_cluster_through_client_srv_records() {
    let mut ns = network(3);
    ns.set_records(&records(0..3));
    let mut procs: Vec<Process> = (0..3)
        .map(|i| start(&ns, Kind::Ferrocd, i, seed_args(&ns, i, Form::Ip, &[])))
        .collect();
    wait_healthy(&ns, 3, &mut procs);
    let args: Vec<String> = [
        "gateway",
        "start",
        "--discovery-srv",
        DOMAIN,
        "--listen-addr",
        "127.0.0.1:23790",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let gateway = ns.spawn(&ferrocd_bin(), &args, &ns.dir().join("gateway.log"));
    let ctl = |args: &[&str]| {
        let mut a = vec!["--endpoints=127.0.0.1:23790", "--dial-timeout=2s"];
        a.extend_from_slice(args);
        ns.run(&etcdctl35(), &a)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl(&["put", "seed", "004"]).0 != 0 {
        assert!(
            Instant::now() < deadline,
            "gateway never proxied:\n{}",
            gateway.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, out, err) = ctl(&["get", "seed", "--print-value-only"]);
    assert_eq!((code, out.trim()), (0, "004"), "{err}");
    assert!(
        gateway.log_text().contains("infra2.example.com:2379"),
        "{}",
        gateway.log_text()
    );
}

/// `_etcd-server-ssl` records and peer certificates without a peer CA:
/// whether three members form a cluster when their certificates do, or do
/// not, carry the SRV domain.
fn server_ssl_cluster_forms(domain_in_san: bool) -> bool {
    let mut ns = network(3);
    let mut recs = Vec::new();
    for i in 0..3 {
        recs.push(Record::srv(
            &format!("_etcd-server-ssl._tcp.{DOMAIN}"),
            &host(i),
            2380,
        ));
        recs.push(Record::srv(
            &format!("_etcd-client._tcp.{DOMAIN}"),
            &host(i),
            2379,
        ));
        recs.push(Record::a(&host(i), ip(i)));
    }
    ns.set_records(&recs);
    let pki = crate::support::pki::Pki::new("srv-ca");
    let mut procs = Vec::new();
    for i in 0..3 {
        let mut sans = vec![format!("DNS:{}", host(i)), format!("IP:{}", ip(i))];
        if domain_in_san {
            sans.push(format!("DNS:{DOMAIN}"));
        }
        let (cert, key) = pki.issue_with_sans(&format!("infra{i}"), &sans);
        let h = host(i);
        let mut args = seed_args(&ns, i, Form::Hostname, &[]);
        for a in args.iter_mut() {
            if *a == format!("http://{h}:2380") {
                *a = format!("https://{h}:2380");
            }
        }
        args.extend([
            format!("--peer-cert-file={}", cert.display()),
            format!("--peer-key-file={}", key.display()),
        ]);
        // The test CA stands in for the system's CAs.
        let mut cmd = ns.command(ferrocd_bin());
        cmd.args(&args).env("SSL_CERT_FILE", pki.ca());
        procs.push(Process::spawn(cmd, &ns.dir().join(format!("infra{i}.log"))));
    }
    let deadline = Instant::now() + Duration::from_secs(if domain_in_san { 40 } else { 8 });
    while Instant::now() < deadline {
        let (code, out, _) = ctl_srv(&ns, &["endpoint", "health", "--cluster"]);
        if code == 0 && out.matches("is healthy").count() == 3 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if domain_in_san {
        for p in &procs {
            eprintln!("{}", p.log_text());
        }
    }
    false
}

#[test]
fn server_ssl_records_require_the_srv_domain_in_peer_certificates() {
    assert!(
        server_ssl_cluster_forms(true),
        "certificates naming the domain"
    );
    assert!(
        !server_ssl_cluster_forms(false),
        "certificates without the SRV domain must not be trusted"
    );
}

/// A member whose data dir was lost, restarted with the same SRV flags,
/// must not rejoin as itself (its log is gone); etcd refuses with
/// "member ID has already been bootstrapped", and so does ferrocd.
#[test]
fn a_member_that_lost_its_data_is_refused_as_etcd_refuses_it() {
    let mut lines = Vec::new();
    for kind in [Kind::Etcd, Kind::Ferrocd] {
        let mut ns = network(3);
        ns.set_records(&records(0..3));
        let mut procs: Vec<Process> = (0..3)
            .map(|i| start(&ns, kind, i, seed_args(&ns, i, Form::Ip, &[])))
            .collect();
        wait_healthy(&ns, 3, &mut procs);
        let id = member_list(&ns)
            .into_iter()
            .find(|l| l.contains(" infra2 "))
            .and_then(|l| l.split(' ').next().map(str::to_string))
            .expect("infra2 listed");
        drop(procs.remove(2));
        std::fs::remove_dir_all(ns.dir().join("infra2.etcd")).expect("wipe infra2");
        let mut again = start(&ns, kind, 2, seed_args(&ns, 2, Form::Ip, &[]));
        let status = again
            .wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{} kept running on an empty data dir", kind.name()));
        assert!(!status.success(), "{}", kind.name());
        let log = again.log_text();
        let want = format!("member {id} has already been bootstrapped");
        assert!(
            log.contains(&want),
            "{}: no {want:?} in\n{log}",
            kind.name()
        );
        lines.push(want);
        // The cluster itself is unharmed (after an election if infra2 led).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, _, err) = ctl_srv(&ns, &["put", "after", "v"]);
            if code == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{}: {err}", kind.name());
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert_eq!(lines.len(), 2);
}

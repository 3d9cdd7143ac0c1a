//! Discovery URLs (seed 003): etcd's v2 protocol against a custom URL on a
//! real etcd 3.5 (`--enable-v2`), on a ferrocd cluster (its `/v2/keys`),
//! and through Debian's discovery.etcd.io server; v3 discovery against etcd
//! 3.5 and ferrocd; the members beyond the size (proxy or exit); errors.

use crate::support::netns::NetNs;
use crate::support::{
    etcd_bin, etcdctl35, ferrocd_bin, http_put_form, run, unique_ips, Kind, Member, Process,
};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// A discovery backend: one etcd 3.5 with the v2 API on, or one ferrocd.
fn backend(kind: Kind, ip: Ipv4Addr) -> Member {
    let mut flags = vec![
        "--name".to_string(),
        "backend".into(),
        format!("--listen-client-urls=http://{ip}:2379"),
        format!("--advertise-client-urls=http://{ip}:2379"),
        format!("--listen-peer-urls=http://{ip}:2380"),
        format!("--initial-advertise-peer-urls=http://{ip}:2380"),
        format!("--initial-cluster=backend=http://{ip}:2380"),
    ];
    if kind == Kind::Etcd {
        flags.push("--enable-v2=true".into());
    }
    let mut m = Member::spawn_with(kind, ip, flags);
    m.wait_healthy();
    m
}

/// Sets a v2 discovery token's size through the keys API.
fn put_size(backend: &Member, token_path: &str, size: usize) {
    let path = format!("/v2/keys{token_path}/_config/size");
    let (code, body) = http_put_form(&backend.endpoint(), &path, &format!("value={size}"))
        .expect("keys API answers");
    assert!(code == 200 || code == 201, "{code} {body}");
}

/// A member whose only bootstrap flags are `discovery` ones.
fn discovered_member(kind: Kind, ip: Ipv4Addr, name: &str, discovery: &[String]) -> Member {
    let mut flags = vec![
        "--name".to_string(),
        name.to_string(),
        format!("--listen-client-urls=http://{ip}:2379"),
        format!("--advertise-client-urls=http://{ip}:2379"),
        format!("--listen-peer-urls=http://{ip}:2380"),
        format!("--initial-advertise-peer-urls=http://{ip}:2380"),
    ];
    flags.extend(discovery.iter().cloned());
    Member::spawn_with(kind, ip, flags)
}

/// `member list` lines (ID, started, name, peer URLs, client URLs), sorted.
fn members(endpoint: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = run(
            &etcdctl35(),
            &[
                format!("--endpoints={endpoint}"),
                "member".into(),
                "list".into(),
            ],
            &[],
        );
        assert_eq!(code, 0, "member list: {err}");
        let mut lines: Vec<String> = out.lines().map(|l| l.to_string()).collect();
        lines.sort();
        // Names appear once every member published them.
        if lines.iter().all(|l| l.contains(", started, ")) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn full_log(m: &Member) -> String {
    std::fs::read_to_string(m.log_path()).unwrap_or_default()
}

/// Three `kind` members through `--discovery` on a fresh etcd v2 backend:
/// their member list.
fn three_through_v2(kind: Kind, backend_ip: Ipv4Addr, ips: &[Ipv4Addr]) -> Vec<String> {
    let b = backend(Kind::Etcd, backend_ip);
    put_size(&b, "/discovery/seed003", 3);
    let url = format!("http://{backend_ip}:2379/v2/keys/discovery/seed003");
    let mut ms: Vec<Member> = (0..3)
        .map(|i| {
            discovered_member(
                kind,
                ips[i],
                &format!("etcd{i}"),
                &[format!("--discovery={url}")],
            )
        })
        .collect();
    for m in &mut ms {
        m.wait_healthy();
    }
    members(&ms[0].endpoint())
}

#[test]
fn v2_discovery_on_etcd_gives_etcds_cluster_and_later_members_proxy_or_exit() {
    let ips = unique_ips(6);
    let (backend_ip, member_ips) = (ips[5], &ips[..5]);
    // The same URL and addresses for both: the member IDs must agree.
    let reference = three_through_v2(Kind::Etcd, backend_ip, member_ips);
    let ours = three_through_v2(Kind::Ferrocd, backend_ip, member_ips);
    assert_eq!(reference.len(), 3, "{reference:?}");
    assert_eq!(ours, reference);

    // Again, now with two members too many.
    let b = backend(Kind::Etcd, backend_ip);
    put_size(&b, "/discovery/full", 3);
    let url = format!("--discovery=http://{backend_ip}:2379/v2/keys/discovery/full");
    let mut ms: Vec<Member> = (0..3)
        .map(|i| {
            discovered_member(
                Kind::Ferrocd,
                member_ips[i],
                &format!("m{i}"),
                std::slice::from_ref(&url),
            )
        })
        .collect();
    for m in &mut ms {
        m.wait_healthy();
    }
    // The default fallback: a proxy serving clients from the cluster.
    let mut proxy = discovered_member(
        Kind::Ferrocd,
        member_ips[3],
        "m3",
        std::slice::from_ref(&url),
    );
    proxy.wait_healthy();
    let ctl = |endpoint: String, args: &[&str]| {
        let mut a = vec![format!("--endpoints={endpoint}")];
        a.extend(args.iter().map(|s| s.to_string()));
        run(&etcdctl35(), &a, &[])
    };
    let (code, _, err) = ctl(proxy.endpoint(), &["put", "through", "proxy"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = ctl(ms[0].endpoint(), &["get", "through", "--print-value-only"]);
    assert_eq!((code, out.trim()), (0, "proxy"));
    assert!(full_log(&proxy).contains("discovery cluster is full, falling back to proxy"));
    assert_eq!(members(&ms[0].endpoint()).len(), 3);
    // --discovery-fallback exit: one line, exit 1.
    let mut late = discovered_member(
        Kind::Ferrocd,
        member_ips[4],
        "m4",
        &[url, "--discovery-fallback=exit".into()],
    );
    let status = late.wait_exit(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        full_log(&late).contains("failed to join discovery cluster (discovery: cluster is full)"),
        "{}",
        full_log(&late)
    );
}

#[test]
fn v2_discovery_errors_and_retries() {
    let ips = unique_ips(3);
    let b = backend(Kind::Etcd, ips[0]);
    // No size key: etcd and ferrocd both refuse to start.
    let url = format!(
        "--discovery=http://{}:2379/v2/keys/discovery/nosize",
        ips[0]
    );
    for kind in [Kind::Etcd, Kind::Ferrocd] {
        let mut m = discovered_member(kind, ips[1], "a", std::slice::from_ref(&url));
        let status = m.wait_exit(Duration::from_secs(20)).expect("exits");
        assert_eq!(status.code(), Some(1), "{}", full_log(&m));
        assert!(
            full_log(&m).contains("failed to join discovery cluster"),
            "{}",
            full_log(&m)
        );
        if kind == Kind::Ferrocd {
            assert!(full_log(&m).contains("discovery: size key not found"));
        }
    }
    // Its ID registered already (a member that crashed after registering).
    put_size(&b, "/discovery/dup", 3);
    let token = format!("http://{}:2379/v2/keys/discovery/dup", ips[0]);
    let id = ferrocd::ids::member_id(&[format!("http://{}:2380", ips[1])], &token, None);
    let (code, _) = http_put_form(
        &b.endpoint(),
        &format!("/v2/keys/discovery/dup/{id:x}"),
        &format!("value=a=http://{}:2380", ips[1]),
    )
    .unwrap();
    assert_eq!(code, 201);
    for kind in [Kind::Etcd, Kind::Ferrocd] {
        let mut m = discovered_member(kind, ips[1], "a", &[format!("--discovery={token}")]);
        let status = m.wait_exit(Duration::from_secs(20)).expect("exits");
        assert_eq!(status.code(), Some(1));
        assert!(
            full_log(&m).contains("discovery: found duplicate id"),
            "{}: {}",
            kind.name(),
            full_log(&m)
        );
    }
    drop(b);
    // The server is down when the member starts: it retries until it answers.
    let url = format!("--discovery=http://{}:2379/v2/keys/discovery/later", ips[2]);
    let mut m = discovered_member(Kind::Ferrocd, ips[1], "a", &[url]);
    std::thread::sleep(Duration::from_millis(1500));
    // Frozen while the server comes up and gets its size key, so no retry
    // lands between the two (a server without the key is a fatal error).
    m.pause();
    let b = backend(Kind::Etcd, ips[2]);
    put_size(&b, "/discovery/later", 1);
    m.resume();
    m.wait_healthy();
    assert!(full_log(&m).contains("discovery server unreachable; waiting for retry"));
}

#[test]
fn one_ferrocd_cluster_bootstraps_another_through_its_v2_keys() {
    let ips = unique_ips(4);
    let b = backend(Kind::Ferrocd, ips[3]);
    put_size(&b, "/discovery/inner", 3);
    let url = format!("--discovery=http://{}:2379/v2/keys/discovery/inner", ips[3]);
    let mut ms: Vec<Member> = (0..3)
        .map(|i| {
            discovered_member(
                Kind::Ferrocd,
                ips[i],
                &format!("n{i}"),
                std::slice::from_ref(&url),
            )
        })
        .collect();
    for m in &mut ms {
        m.wait_healthy();
    }
    let list = members(&ms[2].endpoint());
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|l| l.contains(", started, n")), "{list:?}");
}

#[test]
fn discovery_through_debians_discovery_server_on_etcd_and_on_ferrocd() {
    let discovery_server = std::path::Path::new("/usr/bin/discovery.etcd.io");
    assert!(
        discovery_server.exists(),
        "apt-get install etcd-discovery (the README test command does)"
    );
    for store in [Kind::Etcd, Kind::Ferrocd] {
        let ns = NetNs::new(&[], &[]);
        ns.etc_file(
            "etcd-discovery/etcd-discovery.conf",
            "[server]\nprefix_url=http://127.0.0.1:8087\nweb_service_address=127.0.0.1:8087\n[etcd]\nendpoint_location=http://127.0.0.1:2379\n",
        );
        let mut store_args = vec![
            "--name".to_string(),
            "store".into(),
            "--data-dir".into(),
            ns.dir().join("store").display().to_string(),
        ];
        let bin = match store {
            Kind::Etcd | Kind::Etcd34 => {
                store_args.push("--enable-v2=true".into());
                etcd_bin()
            }
            Kind::Ferrocd => ferrocd_bin(),
        };
        let _store = ns.spawn(&bin, &store_args, &ns.dir().join("store.log"));
        let server = ns.spawn(discovery_server, &[], &ns.dir().join("discovery.log"));
        // discovery.etcd.io/new?size=3 hands out a token URL.
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            let got = ns.in_ns(|| crate::support::http_get("127.0.0.1:8087", "/new?size=3"));
            if let Some((200, body)) = got {
                break body.trim().to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no token from discovery.etcd.io:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(url.starts_with("http://127.0.0.1:8087/"), "{url}");
        let _members: Vec<Process> = (2..5)
            .map(|i| {
                let ip = format!("127.0.0.{i}");
                let args: Vec<String> = vec![
                    format!("--name=d{i}"),
                    format!("--data-dir={}", ns.dir().join(format!("d{i}")).display()),
                    format!("--discovery={url}"),
                    format!("--listen-client-urls=http://{ip}:2379"),
                    format!("--advertise-client-urls=http://{ip}:2379"),
                    format!("--listen-peer-urls=http://{ip}:2380"),
                    format!("--initial-advertise-peer-urls=http://{ip}:2380"),
                ];
                ns.spawn(&ferrocd_bin(), &args, &ns.dir().join(format!("d{i}.log")))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, out, _) = ns.run(
                &etcdctl35(),
                &[
                    "--endpoints=127.0.0.2:2379",
                    "--dial-timeout=2s",
                    "member",
                    "list",
                ],
            );
            if code == 0 && out.matches(", started, d").count() == 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no cluster through discovery.etcd.io on {}: {out}\n{}",
                store.name(),
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn v3_discovery_on_etcd_and_on_ferrocd() {
    for store in [Kind::Etcd, Kind::Ferrocd] {
        let ips = unique_ips(5);
        let b = backend(store, ips[4]);
        let (code, _, err) = run(
            &etcdctl35(),
            &[
                format!("--endpoints={}", b.endpoint()),
                "put".into(),
                "/_etcd/registry/v3tok/_config/size".into(),
                "3".into(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        let flags = [
            "--discovery-token=v3tok".to_string(),
            format!("--discovery-endpoints={}", b.endpoint()),
        ];
        let mut ms: Vec<Member> = (0..3)
            .map(|i| discovered_member(Kind::Ferrocd, ips[i], &format!("v{i}"), &flags))
            .collect();
        for m in &mut ms {
            m.wait_healthy();
        }
        let list = members(&ms[0].endpoint());
        assert_eq!(list.len(), 3, "{}: {list:?}", store.name());
        let mut extra = flags.to_vec();
        extra.push("--discovery-fallback=exit".into());
        let mut late = discovered_member(Kind::Ferrocd, ips[3], "v3", &extra);
        let status = late.wait_exit(Duration::from_secs(20)).expect("exits");
        assert_eq!(status.code(), Some(1));
        assert!(full_log(&late).contains("discovery: cluster is full"));
    }
}

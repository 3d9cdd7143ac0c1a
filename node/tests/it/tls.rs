//! TLS as seed 002 sets it up, against etcd 3.5 as the reference: a shared
//! CA with client-certificate auth on client and peer URLs (refused vs
//! served must agree), automatic certificates, and (ferrocd) certificate
//! files rotated under a writing client. Certificates are made with the
//! openssl commands the README shows.

use crate::support::pki::Pki;
use crate::support::{etcdctl35, run, unique_ips, Kind, Member};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// etcdctl 3.5 with these TLS flags; true when the command succeeded.
fn ctl_ok(endpoint: &str, tls: &[String], args: &[&str]) -> bool {
    let mut a = vec![
        format!("--endpoints=https://{endpoint}"),
        "--dial-timeout=2s".into(),
        "--command-timeout=5s".into(),
    ];
    a.extend(tls.iter().cloned());
    a.extend(args.iter().map(|s| s.to_string()));
    run(&etcdctl35(), &a, &[]).0 == 0
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A 3-member cluster on https client and peer URLs with `flags(i)` each.
fn tls_cluster(kind: Kind, ips: &[Ipv4Addr], flags: impl Fn(usize) -> Vec<String>) -> Vec<Member> {
    let initial = (0..3)
        .map(|i| format!("s{i}=https://{}:2380", ips[i]))
        .collect::<Vec<_>>()
        .join(",");
    (0..3)
        .map(|i| {
            let ip = ips[i];
            let mut f = vec![
                format!("--name=s{i}"),
                format!("--listen-client-urls=https://{ip}:2379"),
                format!("--advertise-client-urls=https://{ip}:2379"),
                format!("--listen-peer-urls=https://{ip}:2380"),
                format!("--initial-advertise-peer-urls=https://{ip}:2380"),
                format!("--initial-cluster={initial}"),
                "--initial-cluster-token=tls-cluster".into(),
            ];
            f.extend(flags(i));
            Member::spawn_with(kind, ip, f)
        })
        .collect()
}

fn any_log_contains(members: &[Member], text: &str) -> bool {
    members.iter().any(|m| {
        std::fs::read_to_string(m.log_path())
            .unwrap_or_default()
            .contains(text)
    })
}

/// Seed 002's TLS cluster for `kind`: what is served and what is refused.
fn client_cert_auth_outcomes(kind: Kind) -> Vec<String> {
    let ips = unique_ips(4);
    let pki = Pki::new("ferrocd-test-ca");
    let certs: Vec<(PathBuf, PathBuf)> = (0..3)
        .map(|i| pki.issue(&format!("s{i}"), &[ips[i]]))
        .collect();
    let (client_cert, client_key) = pki.issue("client", &[]);
    let foreign = Pki::new("foreign-ca");
    let (intruder_cert, intruder_key) = foreign.issue("intruder", &[ips[3]]);
    let ca = pki.ca();
    let members = tls_cluster(kind, &ips, |i| {
        let (cert, key) = &certs[i];
        vec![
            format!("--cert-file={}", p(cert)),
            format!("--key-file={}", p(key)),
            format!("--trusted-ca-file={}", p(&ca)),
            "--client-cert-auth".into(),
            format!("--peer-cert-file={}", p(cert)),
            format!("--peer-key-file={}", p(key)),
            format!("--peer-trusted-ca-file={}", p(&ca)),
            "--peer-client-cert-auth".into(),
        ]
    });
    let good = vec![
        format!("--cacert={}", p(&ca)),
        format!("--cert={}", p(&client_cert)),
        format!("--key={}", p(&client_key)),
    ];
    let ep0 = members[0].endpoint();
    wait_until(
        &format!("{} TLS cluster never healthy", kind.name()),
        Duration::from_secs(30),
        || ctl_ok(&ep0, &good, &["endpoint", "health", "--cluster"]),
    );
    let mut seen = vec![format!(
        "client with the CA's certificate: {}",
        ctl_ok(&ep0, &good, &["put", "k", "v"])
    )];
    let no_cert = vec![format!("--cacert={}", p(&ca))];
    seen.push(format!(
        "client without a certificate: {}",
        ctl_ok(&ep0, &no_cert, &["get", "k"])
    ));
    let other_ca = vec![
        format!("--cacert={}", p(&ca)),
        format!("--cert={}", p(&intruder_cert)),
        format!("--key={}", p(&intruder_key)),
    ];
    seen.push(format!(
        "client with another CA's certificate: {}",
        ctl_ok(&ep0, &other_ca, &["get", "k"])
    ));
    // The JSON gateway on the same https URL, with and without a certificate.
    let range = r#"{"key":"aw=="}"#;
    seen.push(format!(
        "gateway range with the CA's certificate: {}",
        gateway_post(
            &ep0,
            &ca,
            Some((&client_cert, &client_key)),
            "/v3/kv/range",
            range
        )
    ));
    seen.push(format!(
        "gateway range without a certificate: {}",
        gateway_post(&ep0, &ca, None, "/v3/kv/range", range)
    ));
    // A peer whose certificate another CA signed cannot join.
    let peer = format!("--peer-urls=https://{}:2380", ips[3]);
    let mut add = good.clone();
    add.push(format!("--endpoints=https://{ep0}"));
    add.extend(["member", "add", "s3", &peer, "--learner"].map(String::from));
    let (code, out, err) = run(&etcdctl35(), &add, &[]);
    assert_eq!(code, 0, "member add: {err}");
    let env_line = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=\"")))
            .map(|v| v.trim_end_matches('"').to_string())
            .unwrap()
    };
    let ip = ips[3];
    let intruder = Member::spawn_with(
        kind,
        ip,
        vec![
            "--name=s3".into(),
            format!("--initial-cluster={}", env_line("ETCD_INITIAL_CLUSTER")),
            "--initial-cluster-state=existing".into(),
            "--initial-cluster-token=tls-cluster".into(),
            format!("--listen-client-urls=https://{ip}:2379"),
            format!("--advertise-client-urls=https://{ip}:2379"),
            format!("--listen-peer-urls=https://{ip}:2380"),
            format!("--initial-advertise-peer-urls=https://{ip}:2380"),
            format!("--cert-file={}", p(&intruder_cert)),
            format!("--key-file={}", p(&intruder_key)),
            format!("--peer-cert-file={}", p(&intruder_cert)),
            format!("--peer-key-file={}", p(&intruder_key)),
            format!("--peer-trusted-ca-file={}", p(&foreign.ca())),
            "--peer-client-cert-auth".into(),
        ],
    );
    std::thread::sleep(Duration::from_secs(4));
    let mut list = good.clone();
    list.push(format!("--endpoints=https://{ep0}"));
    list.extend(["member", "list"].map(String::from));
    let (_, out, _) = run(&etcdctl35(), &list, &[]);
    let joined = out.lines().any(|l| l.contains(", started, s3,"));
    seen.push(format!(
        "peer with another CA's certificate joined: {joined}"
    ));
    seen.push(format!(
        "a member logged the rejected connection: {}",
        any_log_contains(&members, "rejected connection")
    ));
    drop(intruder);
    seen
}

#[test]
fn client_cert_auth_on_clients_and_peers_refuses_what_etcd_refuses() {
    let etcd = client_cert_auth_outcomes(Kind::Etcd);
    let ferrocd = client_cert_auth_outcomes(Kind::Ferrocd);
    assert_eq!(
        etcd,
        [
            "client with the CA's certificate: true",
            "client without a certificate: false",
            "client with another CA's certificate: false",
            r#"gateway range with the CA's certificate: 200 [{"create_revision":"2","key":"aw==","mod_revision":"2","value":"dg==","version":"1"}]"#,
            "gateway range without a certificate: refused",
            "peer with another CA's certificate joined: false",
            "a member logged the rejected connection: true",
        ]
    );
    assert_eq!(ferrocd, etcd);
}

fn auto_tls_outcomes(kind: Kind) -> Vec<String> {
    let ips = unique_ips(3);
    let members = tls_cluster(kind, &ips, |_| {
        vec!["--auto-tls".into(), "--peer-auto-tls".into()]
    });
    let skip = vec![
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".into(),
    ];
    let ep = members[1].endpoint();
    wait_until(
        &format!("{} auto-tls cluster never healthy", kind.name()),
        Duration::from_secs(30),
        || ctl_ok(&ep, &skip, &["put", "auto", "tls"]),
    );
    let mut seen = vec![format!(
        "skip verify, read back: {}",
        ctl_ok(&ep, &skip, &["get", "auto"])
    )];
    seen.push(format!(
        "verifying the self-signed certificate: {}",
        ctl_ok(
            &ep,
            &["--insecure-transport=false".into()],
            &["get", "auto"]
        )
    ));
    seen
}

#[test]
fn auto_tls_cluster_serves_etcdctl_with_insecure_skip_tls_verify() {
    let etcd = auto_tls_outcomes(Kind::Etcd);
    let ferrocd = auto_tls_outcomes(Kind::Ferrocd);
    assert_eq!(
        etcd,
        [
            "skip verify, read back: true",
            "verifying the self-signed certificate: false"
        ]
    );
    assert_eq!(ferrocd, etcd);
}

/// The serial number of the certificate `endpoint` shows a new connection.
/// A gateway POST over TLS: the answer's `kvs` values, or why it failed.
fn gateway_post(
    endpoint: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    path: &str,
    body: &str,
) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).expect("ca")).expect("ca pem");
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(5));
        if let Some((cert, key)) = identity {
            let mut pem = std::fs::read(cert).expect("cert");
            pem.extend(std::fs::read(key).expect("key"));
            b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
        }
        let client = b.build().expect("client");
        match client
            .post(format!("https://{endpoint}{path}"))
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                format!("{status} {}", v["kvs"])
            }
            Err(_) => "refused".to_string(),
        }
    })
}

fn served_serial(endpoint: &str, ca: &Path, cert: &Path, key: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {endpoint} -CAfile {} -cert {} -key {} </dev/null 2>/dev/null | openssl x509 -noout -serial",
            p(ca),
            p(cert),
            p(key)
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn rotated_certificate_files_are_used_by_new_connections_without_a_failed_request() {
    let ip = unique_ips(1)[0];
    let pki = Pki::new("rotation-ca");
    let (cert, key) = pki.issue("member", &[ip]);
    let (client_cert, client_key) = pki.issue("client", &[]);
    // The member reads these two paths; rotation replaces them.
    let live = tempfile::tempdir().unwrap();
    let (live_cert, live_key) = (
        live.path().join("server.pem"),
        live.path().join("server.key"),
    );
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let ca = pki.ca();
    let mut m = Member::spawn_with(
        Kind::Ferrocd,
        ip,
        vec![
            "--name=r0".into(),
            // https and http side by side.
            format!("--listen-client-urls=https://{ip}:2379,http://{ip}:2381"),
            format!("--advertise-client-urls=https://{ip}:2379"),
            format!("--listen-peer-urls=http://{ip}:2380"),
            format!("--initial-advertise-peer-urls=http://{ip}:2380"),
            format!("--initial-cluster=r0=http://{ip}:2380"),
            format!("--cert-file={}", p(&live_cert)),
            format!("--key-file={}", p(&live_key)),
            format!("--trusted-ca-file={}", p(&ca)),
            "--client-cert-auth".into(),
        ],
    );
    let tls = vec![
        format!("--cacert={}", p(&ca)),
        format!("--cert={}", p(&client_cert)),
        format!("--key={}", p(&client_key)),
    ];
    let ep = m.endpoint();
    wait_until("TLS member never served", Duration::from_secs(30), || {
        ctl_ok(&ep, &tls, &["put", "before", "rotation"])
    });
    let (code, _, err) = run(
        &etcdctl35(),
        &[
            format!("--endpoints=http://{ip}:2381"),
            "get".into(),
            "before".into(),
        ],
        &[],
    );
    assert_eq!(code, 0, "plain http next to https: {err}");
    let old_serial = served_serial(&ep, &ca, &client_cert, &client_key);
    assert!(old_serial.starts_with("serial="), "{old_serial}");

    // A client writes (a new connection each time) while the files change.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (ep, tls, stop) = (ep.clone(), tls.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if ctl_ok(&ep, &tls, &["put", "k", &format!("v{ok}")]) {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let (new_cert, new_key) = pki.issue("member-renewed", &[ip]);
    // Replace each file atomically (write aside, rename over).
    for (from, to) in [(&new_key, &live_key), (&new_cert, &live_cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    wait_until(
        "new connections never saw the new certificate",
        Duration::from_secs(10),
        || {
            let s = served_serial(&ep, &ca, &client_cert, &client_key);
            s.starts_with("serial=") && s != old_serial
        },
    );
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = writer.join().unwrap();
    assert!(ok > 3, "only {ok} writes");
    assert_eq!(failed, 0, "{failed} writes failed during the rotation");
    let log = std::fs::read_to_string(m.log_path()).unwrap_or_default();
    assert!(log.contains("reloaded TLS certificate files"), "{log}");
    m.kill9();
}

/// Whether `openssl s_client` completes a handshake with this version flag.
fn handshake(endpoint: &str, version_flag: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {endpoint} {version_flag} </dev/null >/dev/null 2>&1"
        ))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn tls_min_version_refuses_older_clients() {
    let ip = unique_ips(1)[0];
    let _m = Member::spawn_with(
        Kind::Ferrocd,
        ip,
        vec![
            "--name=v0".into(),
            format!("--listen-client-urls=https://{ip}:2379"),
            format!("--advertise-client-urls=https://{ip}:2379"),
            format!("--listen-peer-urls=http://{ip}:2380"),
            format!("--initial-advertise-peer-urls=http://{ip}:2380"),
            format!("--initial-cluster=v0=http://{ip}:2380"),
            "--auto-tls".into(),
            "--tls-min-version=TLS1.3".into(),
        ],
    );
    let ep = format!("{ip}:2379");
    wait_until("no TLS 1.3 handshake", Duration::from_secs(30), || {
        handshake(&ep, "-tls1_3")
    });
    assert!(!handshake(&ep, "-tls1_2"), "a TLS 1.2 client was served");
}

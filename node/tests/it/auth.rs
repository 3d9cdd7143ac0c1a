//! Auth beyond one member's answers: a 3-member cluster shares users,
//! roles and tokens (through restarts and snapshots), client certificates'
//! Common Names are users (against etcd 3.5 over TLS), and real clients
//! log in with a user and password.

use crate::support::client::Client;
use crate::support::pki::Pki;
use crate::support::{etcdctl35, run, Cluster, Kind, Member};
use ferrocd_proto::authpb::{permission::Type, Permission};
use ferrocd_proto::etcdserverpb::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn with_token<T>(m: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut().insert("token", token.parse().unwrap());
    r
}

/// Root with the root role, then auth on; root's token.
async fn enable_auth(c: &mut Client) -> String {
    let channel = c.channel.clone();
    crate::support::client::enable_auth(channel, Some("rootpw"))
        .await
        .unwrap();
    login(c, "root", "rootpw").await
}

async fn login(c: &mut Client, name: &str, password: &str) -> String {
    c.auth
        .authenticate(AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// As root: `alice` may read and write keys under `a/`.
async fn add_alice(c: &mut Client, root: &str) {
    c.auth
        .role_add(with_token(AuthRoleAddRequest { name: "a".into() }, root))
        .await
        .unwrap();
    c.auth
        .role_grant_permission(with_token(
            AuthRoleGrantPermissionRequest {
                name: "a".into(),
                perm: Some(Permission {
                    perm_type: Type::Readwrite as i32,
                    key: b"a/".to_vec(),
                    range_end: b"a0".to_vec(),
                }),
            },
            root,
        ))
        .await
        .unwrap();
    c.auth
        .user_add(with_token(
            AuthUserAddRequest {
                name: "alice".into(),
                password: "alicepw".into(),
                ..Default::default()
            },
            root,
        ))
        .await
        .unwrap();
    c.auth
        .user_grant_role(with_token(
            AuthUserGrantRoleRequest {
                user: "alice".into(),
                role: "a".into(),
            },
            root,
        ))
        .await
        .unwrap();
}

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn get(k: &str) -> RangeRequest {
    RangeRequest {
        key: k.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// What `token` may do on a member: write a/1, write b, read a/1.
async fn outcomes(c: &mut Client, token: &str) -> Vec<String> {
    let show = |r: Result<(), tonic::Status>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.message().to_string(),
    };
    vec![
        show(c.kv.put(with_token(put("a/1", "x"), token)).await.map(drop)),
        show(c.kv.put(with_token(put("b", "x"), token)).await.map(drop)),
        show(
            c.kv.range(with_token(get("a/1"), token))
                .await
                .map(|r| assert_eq!(r.into_inner().count, 1)),
        ),
    ]
}

const ALICE_MAY: [&str; 3] = ["ok", "etcdserver: permission denied", "ok"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_share_users_roles_and_tokens_through_restarts_and_snapshots() {
    /// A snapshot every 100 entries, 1000 kept behind it (1300 writes
    /// later, a member that was down needs the snapshot).
    const SNAPSHOT_EVERY_100: [&str; 2] = [
        "--snapshot-count=100",
        "--experimental-snapshot-catchup-entries=1000",
    ];
    let mut cluster =
        tokio::task::spawn_blocking(|| Cluster::start(Kind::Ferrocd, 3, &SNAPSHOT_EVERY_100))
            .await
            .unwrap();
    let mut c: Vec<Client> = Vec::new();
    for m in &cluster.members {
        c.push(Client::connect(&m.endpoint()).await);
    }
    // Auth turned on through member 0 holds on all.
    let root = enable_auth(&mut c[0]).await;
    add_alice(&mut c[0], &root).await;
    for (i, client) in c.iter_mut().enumerate() {
        let status = client
            .auth
            .auth_status(with_token(AuthStatusRequest {}, &root))
            .await
            .unwrap()
            .into_inner();
        assert!(status.enabled, "member {i}: {status:?}");
        let anonymous = client.kv.range(get("a/1")).await.unwrap_err();
        assert_eq!(anonymous.message(), "etcdserver: user name is empty");
    }
    // A token made through member 1 works on member 2 (and 0).
    let alice = login(&mut c[1], "alice", "alicepw").await;
    for i in [2, 0, 1] {
        assert_eq!(outcomes(&mut c[i], &alice).await, ALICE_MAY, "member {i}");
    }
    // A restarted member keeps users and roles.
    tokio::task::block_in_place(|| cluster.members[2].restart());
    c[2] = Client::connect(&cluster.members[2].endpoint()).await;
    let alice2 = login(&mut c[2], "alice", "alicepw").await;
    assert_eq!(outcomes(&mut c[2], &alice2).await, ALICE_MAY);
    // A member that missed auth changes catches up from a snapshot.
    cluster.members[2].kill9();
    c[0].auth
        .user_add(with_token(
            AuthUserAddRequest {
                name: "bob".into(),
                password: "bobpw".into(),
                ..Default::default()
            },
            &root,
        ))
        .await
        .unwrap();
    c[0].auth
        .user_grant_role(with_token(
            AuthUserGrantRoleRequest {
                user: "bob".into(),
                role: "a".into(),
            },
            &root,
        ))
        .await
        .unwrap();
    for i in 0..1300 {
        c[0].kv
            .put(with_token(put(&format!("a/{i:05}"), "x"), &root))
            .await
            .unwrap();
    }
    tokio::task::block_in_place(|| cluster.members[2].restart());
    c[2] = Client::connect(&cluster.members[2].endpoint()).await;
    let bob = login(&mut c[2], "bob", "bobpw").await;
    assert_eq!(outcomes(&mut c[2], &bob).await, ALICE_MAY);
    assert!(
        cluster.members[2]
            .log_tail()
            .contains("installed a snapshot from the leader"),
        "member 2 caught up without a snapshot"
    );
    let users = c[2]
        .auth
        .user_list(with_token(AuthUserListRequest {}, &root))
        .await;
    // Tokens are in memory (as etcd's): root's from before the restart is gone there.
    assert_eq!(
        users.unwrap_err().message(),
        "etcdserver: invalid auth token"
    );
    let root2 = login(&mut c[2], "root", "rootpw").await;
    let users = c[2]
        .auth
        .user_list(with_token(AuthUserListRequest {}, &root2))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(users, ["alice", "bob", "root"]);
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// etcdctl 3.5 over TLS with a client certificate: exit code and the
/// output's last line.
fn ctl(endpoint: &str, tls: &[String], args: &[&str]) -> String {
    let mut a = vec![
        format!("--endpoints=https://{endpoint}"),
        "--dial-timeout=3s".into(),
        "--command-timeout=5s".into(),
    ];
    a.extend(tls.iter().cloned());
    a.extend(args.iter().map(|s| s.to_string()));
    let (code, out, err) = run(&etcdctl35(), &a, &[]);
    let last = format!("{out}{err}")
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.starts_with('{'))
        .unwrap_or_default()
        .to_string();
    format!("{code}: {last}")
}

/// Seed 002's TLS member with client-certificate auth, and what users named
/// by certificates may do once auth is on.
fn cn_outcomes(kind: Kind) -> Vec<String> {
    let ip = crate::support::unique_ip();
    let pki = Pki::new("ferrocd-auth-ca");
    let (cert, key) = pki.issue("member", &[ip]);
    let ca = pki.ca();
    let mut m = Member::spawn_with(
        kind,
        ip,
        vec![
            "--name=m0".into(),
            format!("--listen-client-urls=https://{ip}:2379"),
            format!("--advertise-client-urls=https://{ip}:2379"),
            format!("--listen-peer-urls=http://{ip}:2380"),
            format!("--initial-advertise-peer-urls=http://{ip}:2380"),
            format!("--initial-cluster=m0=http://{ip}:2380"),
            format!("--cert-file={}", p(&cert)),
            format!("--key-file={}", p(&key)),
            format!("--trusted-ca-file={}", p(&ca)),
            "--client-cert-auth".into(),
        ],
    );
    let as_cn = |cn: &str| {
        let (c, k) = pki.issue(cn, &[]);
        vec![
            format!("--cacert={}", p(&ca)),
            format!("--cert={}", p(&c)),
            format!("--key={}", p(&k)),
        ]
    };
    let (root, alice, mallory) = (as_cn("root"), as_cn("alice"), as_cn("mallory"));
    let ep = m.endpoint();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctl(&ep, &root, &["endpoint", "health"]).starts_with("0:") {
        assert!(Instant::now() < deadline, "{} never healthy", kind.name());
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut seen = Vec::new();
    let mut step = |tls: &[String], args: &[&str]| seen.push(ctl(&ep, tls, args));
    step(
        &root,
        &["user", "add", "root", "--new-user-password=rootpw"],
    );
    step(&root, &["user", "add", "alice", "--no-password"]);
    step(&root, &["role", "add", "reader"]);
    step(&root, &["role", "grant-permission", "reader", "read", "k"]);
    step(&root, &["user", "grant-role", "alice", "reader"]);
    step(&root, &["put", "k", "v"]);
    step(&root, &["auth", "enable"]);
    // The certificate's CN is the user when no password is given.
    step(&root, &["put", "k", "v2"]);
    step(&root, &["user", "list"]);
    step(&alice, &["get", "k", "--print-value-only"]);
    step(&alice, &["put", "k", "x"]);
    step(&alice, &["user", "list"]);
    step(&mallory, &["get", "k"]);
    // A user and password win over the certificate.
    step(&alice, &["--user=root:rootpw", "put", "k", "v3"]);
    step(&alice, &["--user=root:wrong", "get", "k"]);
    step(&root, &["auth", "disable"]);
    step(&mallory, &["get", "k", "--print-value-only"]);
    m.terminate();
    seen
}

#[test]
fn client_certificate_common_names_are_users_as_in_etcd() {
    let etcd = cn_outcomes(Kind::Etcd);
    let ferrocd = cn_outcomes(Kind::Ferrocd);
    // The reference itself: CN users work as the issue describes.
    assert_eq!(etcd[7], "0: OK", "{etcd:#?}");
    assert_eq!(etcd[9], "0: v2", "{etcd:#?}");
    assert!(etcd[10].contains("permission denied"), "{etcd:#?}");
    assert_eq!(ferrocd, etcd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_etcd_client_crate_logs_in_with_user_and_password() {
    let m = tokio::task::spawn_blocking(|| Member::start(Kind::Ferrocd, &[]))
        .await
        .unwrap();
    let mut raw = Client::connect(&m.endpoint()).await;
    let root = enable_auth(&mut raw).await;
    add_alice(&mut raw, &root).await;
    let opts = etcd_client::ConnectOptions::new().with_user("alice", "alicepw");
    let mut c = etcd_client::Client::connect([m.endpoint()], Some(opts))
        .await
        .unwrap();
    c.put("a/1", "x", None).await.unwrap();
    let got = c.get("a/1", None).await.unwrap();
    assert_eq!(got.kvs()[0].value(), b"x");
    let denied = c.put("b", "x", None).await.unwrap_err().to_string();
    assert!(denied.contains("permission denied"), "{denied}");
    let wrong = etcd_client::ConnectOptions::new().with_user("alice", "nope");
    let refused = etcd_client::Client::connect([m.endpoint()], Some(wrong))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("authentication failed, invalid user ID or password"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwt_tokens_signed_with_ed25519_work_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ed.key");
    let public = dir.path().join("ed.pub");
    let (code, _, err) = run(
        Path::new("openssl"),
        &[
            "genpkey".into(),
            "-algorithm".into(),
            "ed25519".into(),
            "-out".into(),
            p(&key),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        Path::new("openssl"),
        &[
            "pkey".into(),
            "-in".into(),
            p(&key),
            "-pubout".into(),
            "-out".into(),
            p(&public),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let flag = format!(
        "--auth-token=jwt,sign-method=EdDSA,pub-key={},priv-key={},ttl=2s",
        p(&public),
        p(&key)
    );
    let m = tokio::task::spawn_blocking(move || Member::start(Kind::Ferrocd, &[&flag]))
        .await
        .unwrap();
    let mut c = Client::connect(&m.endpoint()).await;
    let root = enable_auth(&mut c).await;
    assert_eq!(root.split('.').count(), 3, "not a JWT: {root}");
    add_alice(&mut c, &root).await;
    let alice = login(&mut c, "alice", "alicepw").await;
    assert_eq!(outcomes(&mut c, &alice).await, ALICE_MAY);
    // Past its ttl the token is refused.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let expired =
        c.kv.range(with_token(get("a/1"), &alice))
            .await
            .unwrap_err();
    assert_eq!(expired.message(), "etcdserver: invalid auth token");
}

//! The operator's membership steps against real clusters on loopback:
//! etcd 3.5 (the reference) and ferrocd, 3 members grown to 4 and shrunk
//! back with the leader on the leaving member, plain and with TLS on
//! client and peer URLs (client certificates required, issued by the
//! operator's own CA code). The planner decides every
//! step; this test plays the StatefulSet (starting and stopping member
//! processes as replicas change) and carries the steps out through the
//! operator's own etcd v3 API client.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrocd_operator::membership::{next_step, ClientTls, EtcdMembers, Observed, Placement, Step};
use ferrocd_operator::pki::Ca;
use ferrocd_proto::etcdserverpb::{kv_client::KvClient, PutRequest, RangeRequest};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use ferrocd_testkit::bins::etcd as etcd_bin;

/// The workspace's ferrocd binary, beside this test's directory.
fn ferrocd_bin() -> PathBuf {
    ferrocd_testkit::bins::workspace_bin("ferrocd", false).unwrap_or_else(|e| panic!("{e}"))
}

/// Ordinal i lives on 127.a.b.(i+1), ports 2379/2380.
struct Loopback {
    ips: Vec<Ipv4Addr>,
    scheme: &'static str,
}

impl Loopback {
    fn new(n: u8, scheme: &'static str) -> Loopback {
        let ips = ferrocd_testkit::addr::loopback_ips(n, &[2379, 2380]);
        Loopback { ips, scheme }
    }
    fn client_url(&self, i: u32) -> String {
        format!("{}://{}:2379", self.scheme, self.ips[i as usize])
    }
}

impl Placement for Loopback {
    fn peer_url(&self, ordinal: u32) -> String {
        format!("{}://{}:2380", self.scheme, self.ips[ordinal as usize])
    }
    fn ordinal_of_peer_url(&self, url: &str) -> Option<u32> {
        (0..self.ips.len() as u32).find(|i| self.peer_url(*i) == url)
    }
}

/// A TLS cluster's files and the operator's identity, made the way the
/// operator makes them for OperatorManaged clusters: one CA, one member
/// certificate valid for every member's address, a client certificate.
struct Tls {
    member_flags: Vec<String>,
    operator: ClientTls,
}

impl Tls {
    fn issue(net: &Loopback, dir: &std::path::Path) -> Tls {
        let ca = Ca::generate("loopback").expect("CA");
        let mut names: Vec<String> = net.ips.iter().map(|ip| ip.to_string()).collect();
        names.push("localhost".into());
        let member = ca
            .issue_member("members", &names)
            .expect("member certificate");
        let me = ca
            .issue_client("ferrocd-operator")
            .expect("client certificate");
        let file = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pem");
            path.display().to_string()
        };
        let ca_file = file("ca.crt", &ca.pair.cert_pem);
        let cert = file("tls.crt", &member.cert_pem);
        let key = file("tls.key", &member.key_pem);
        Tls {
            member_flags: vec![
                format!("--cert-file={cert}"),
                format!("--key-file={key}"),
                format!("--trusted-ca-file={ca_file}"),
                "--client-cert-auth".into(),
                format!("--peer-cert-file={cert}"),
                format!("--peer-key-file={key}"),
                format!("--peer-trusted-ca-file={ca_file}"),
                "--peer-client-cert-auth".into(),
            ],
            operator: ClientTls {
                ca_pem: ca.pair.cert_pem.clone(),
                cert_pem: me.cert_pem,
                key_pem: me.key_pem,
            },
        }
    }
}

/// The StatefulSet's part: one process per ordinal below the replica count,
/// killed and reaped on scale-in and on drop (data dirs go with `dir`).
struct Pods {
    bin: PathBuf,
    net: Loopback,
    tls: Option<Tls>,
    dir: tempfile::TempDir,
    procs: BTreeMap<u32, Child>,
    /// Root's password, once the test turned auth on.
    root_password: Option<String>,
    /// More flags for every member.
    flags: Vec<String>,
}

impl Pods {
    fn new(bin: PathBuf, tls: bool) -> Pods {
        let net = Loopback::new(4, if tls { "https" } else { "http" });
        let dir = tempfile::tempdir().expect("temp dir");
        let tls = tls.then(|| Tls::issue(&net, dir.path()));
        Pods {
            bin,
            net,
            tls,
            dir,
            procs: BTreeMap::new(),
            root_password: None,
            flags: Vec::new(),
        }
    }

    fn client_tls(&self) -> Option<ClientTls> {
        self.tls.as_ref().map(|t| t.operator.clone())
    }

    /// The operator's client for the running members.
    fn members(&self) -> EtcdMembers {
        EtcdMembers::new(self.endpoints())
            .with_tls(self.client_tls())
            .with_root_password(self.root_password.clone())
    }

    fn start(&mut self, ordinal: u32, state: &str, initial: &str) {
        let ip = self.net.ips[ordinal as usize];
        let scheme = self.net.scheme;
        let log =
            std::fs::File::create(self.dir.path().join(format!("m{ordinal}.log"))).expect("log");
        let child = Command::new(&self.bin)
            .args([
                format!("--name=m{ordinal}"),
                format!(
                    "--data-dir={}",
                    self.dir.path().join(format!("m{ordinal}")).display()
                ),
                format!("--listen-client-urls={scheme}://{ip}:2379"),
                format!("--advertise-client-urls={scheme}://{ip}:2379"),
                format!("--listen-peer-urls={scheme}://{ip}:2380"),
                format!("--initial-advertise-peer-urls={scheme}://{ip}:2380"),
                format!("--initial-cluster={initial}"),
                format!("--initial-cluster-state={state}"),
                "--initial-cluster-token=operator-membership".into(),
            ])
            .args(self.tls.iter().flat_map(|t| t.member_flags.iter()))
            .args(&self.flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start member");
        self.procs.insert(ordinal, child);
    }

    fn initial_cluster(&self, ordinals: impl Iterator<Item = u32>) -> String {
        ordinals
            .map(|i| format!("m{i}={}", self.net.peer_url(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Static bootstrap of ordinals 0..n.
    fn bootstrap(&mut self, n: u32) {
        let initial = self.initial_cluster(0..n);
        for i in 0..n {
            self.start(i, "new", &initial);
        }
    }

    /// What the StatefulSet controller does when replicas change: new
    /// ordinals start and join as existing members, removed ones stop.
    fn scale_to(&mut self, n: u32) {
        let current = self.procs.len() as u32;
        for i in current..n {
            let initial = self.initial_cluster(0..=i);
            self.start(i, "existing", &initial);
        }
        for i in n..current {
            if let Some(mut c) = self.procs.remove(&i) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    fn endpoints(&self) -> Vec<String> {
        self.procs.keys().map(|i| self.net.client_url(*i)).collect()
    }

    /// A KV client for one member, with the operator's identity on TLS.
    async fn kv(&self, ordinal: u32) -> KvClient<Channel> {
        let tls = self.client_tls().map(|t| {
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&t.ca_pem))
                .identity(Identity::from_pem(&t.cert_pem, &t.key_pem))
        });
        let url = self.net.client_url(ordinal);
        KvClient::new(
            ferrocd_testkit::grpc::dial(&url, tls)
                .await
                .expect("connect"),
        )
    }

    fn logs(&self) -> String {
        self.procs
            .keys()
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- m{i} ---\n{}",
                    lines[lines.len().saturating_sub(15)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for (_, mut c) in std::mem::take(&mut self.procs) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs planner steps until the cluster is steady at `desired`; returns the
/// steps taken (waits left out).
async fn reconcile_to(pods: &mut Pods, desired: u32) -> Vec<Step> {
    let mut taken = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            Instant::now() < deadline,
            "not steady at {desired} in 90 s; steps so far: {taken:?}"
        );
        let client = pods.members();
        let view = client.observe().await.ok();
        let observed = Observed {
            desired,
            replicas: pods.procs.len() as u32,
            members: view.as_ref().map(|v| v.planned(&pods.net)),
            leader: view.as_ref().and_then(|v| v.leader),
            claims: Vec::new(),
            delete_claims: false,
            emptied: Vec::new(),
            rollout: Default::default(),
        };
        let step = next_step(&observed);
        let done = match &step {
            Step::Steady => return taken,
            Step::Wait(_) => Ok(()),
            Step::Refuse(why) => panic!("refused: {why}"),
            Step::AddLearner { ordinal } => client
                .add_learner(&pods.net.peer_url(*ordinal))
                .await
                .map(|_| ()),
            Step::SetReplicas(n) => {
                pods.scale_to(*n);
                Ok(())
            }
            Step::Promote { id, .. } => client.promote(*id).await,
            Step::MoveLeader { from, to } => match &view {
                Some(v) => client.move_leader(v, *from, *to).await,
                None => Ok(()),
            },
            Step::Remove { id, .. } => client.remove(*id).await,
            Step::DeleteClaim { .. } => panic!("no claims here"),
            Step::Roll { .. } | Step::Halt(_) => panic!("no rollout here: {step}"),
            Step::QuorumLost(why) => panic!("{why}"),
        };
        match done {
            Ok(()) if !matches!(step, Step::Wait(_)) => taken.push(step),
            Ok(()) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(300)).await,
            Err(e) => panic!("{step}: {e}"),
        }
    }
}

async fn put_then_read(pods: &Pods, ordinal: u32, key: &str) -> Vec<u8> {
    let mut kv = pods.kv(ordinal).await;
    kv.put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..PutRequest::default()
    })
    .await
    .expect("put");
    let r = kv
        .range(RangeRequest {
            key: key.into(),
            serializable: true,
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner();
    r.kvs.first().map(|kv| kv.value.clone()).unwrap_or_default()
}

async fn grow_and_shrink(bin: PathBuf, tls: bool) {
    let mut pods = Pods::new(bin, tls);
    pods.bootstrap(3);
    let settled = reconcile_to(&mut pods, 3).await;
    assert!(
        settled.is_empty(),
        "a fresh cluster needs no steps: {settled:?}"
    );
    put_then_read(&pods, 0, "before").await;

    // Scale out: learner, pod, promotion.
    let steps = reconcile_to(&mut pods, 4).await;
    let kinds: Vec<String> = steps.iter().map(|s| format!("{s}")).collect();
    assert!(
        matches!(steps[0], Step::AddLearner { ordinal: 3 }),
        "{kinds:?}"
    );
    assert_eq!(steps[1], Step::SetReplicas(4), "{kinds:?}");
    assert!(
        matches!(steps[2], Step::Promote { ordinal: 3, .. }),
        "{kinds:?}"
    );
    assert_eq!(steps.len(), 3, "{kinds:?}");
    let view = pods.members().observe().await.expect("observe");
    assert_eq!(view.members.len(), 4);
    assert!(
        view.members
            .iter()
            .all(|m| !m.learner && m.healthy && !m.name.is_empty()),
        "{view:?}"
    );
    // The new member holds what was written before it joined.
    let got = pods
        .kv(3)
        .await
        .range(RangeRequest {
            key: b"before".to_vec(),
            serializable: true,
            ..RangeRequest::default()
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(
        got.kvs.len(),
        1,
        "member 3 lacks the key written before it joined"
    );

    // Put the leader on the member that will leave.
    let m3 = view.members.iter().find(|m| m.name == "m3").expect("m3").id;
    let client = pods.members();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = client.observe().await.expect("observe");
        if view.leader == Some(m3) {
            break;
        }
        assert!(Instant::now() < deadline, "leadership never reached m3");
        if let Some(leader) = view.leader {
            let _ = client.move_leader(&view, leader, m3).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Scale in: leadership moves off m3 first, then m3 leaves.
    let steps = reconcile_to(&mut pods, 3).await;
    let kinds: Vec<String> = steps.iter().map(|s| format!("{s}")).collect();
    assert!(
        matches!(steps[0], Step::MoveLeader { from, .. } if from == m3),
        "{kinds:?}"
    );
    assert_eq!(
        steps[1],
        Step::Remove {
            id: m3,
            ordinal: Some(3)
        },
        "{kinds:?}"
    );
    assert_eq!(steps[2], Step::SetReplicas(3), "{kinds:?}");
    let view = pods.members().observe().await.expect("observe");
    assert_eq!(view.members.len(), 3);
    assert!(view.leader.is_some_and(|l| l != m3));
    assert_eq!(put_then_read(&pods, 0, "after").await, b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_grows_and_shrinks_through_the_operator_steps() {
    grow_and_shrink(etcd_bin(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrocd_grows_and_shrinks_through_the_operator_steps() {
    grow_and_shrink(ferrocd_bin(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_tls_grows_and_shrinks_through_the_operator_steps() {
    grow_and_shrink(etcd_bin(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrocd_with_tls_grows_and_shrinks_through_the_operator_steps() {
    grow_and_shrink(ferrocd_bin(), true).await;
}

/// spec.auth's member side: the operator turns auth on (root with a
/// password), is refused without it, scales with it, turns auth off.
async fn auth_on_scale_then_off(bin: PathBuf) {
    let mut pods = Pods::new(bin, false);
    pods.bootstrap(3);
    reconcile_to(&mut pods, 3).await;
    let operator = pods.members();
    assert!(!operator.auth_enabled().await.expect("auth status"));
    // Twice: the second finds root there and sets its password again.
    operator.enable_auth("first").await.expect("enable auth");
    operator
        .disable_auth()
        .await
        .expect_err("disabled without a token");
    let root = |p: &str| EtcdMembers::new(pods.endpoints()).with_root_password(Some(p.to_string()));
    root("first")
        .disable_auth()
        .await
        .expect("disable auth as root");
    pods.members()
        .enable_auth("s3cr3t")
        .await
        .expect("enable auth again");
    // Refused without a user: that says "on" too.
    assert!(pods
        .members()
        .auth_enabled()
        .await
        .expect("auth status without a user"));
    assert!(root("s3cr3t")
        .auth_enabled()
        .await
        .expect("auth status as root"));

    let anonymous = pods.members().add_learner(&pods.net.peer_url(3)).await;
    let refused = anonymous.expect_err("a member added without a user");
    assert_eq!(refused.to_string(), "etcdserver: user name is empty");
    let wrong = root("first").add_learner(&pods.net.peer_url(3)).await;
    assert_eq!(
        wrong
            .expect_err("a member added with the old password")
            .to_string(),
        "etcdserver: authentication failed, invalid user ID or password"
    );

    pods.root_password = Some("s3cr3t".into());
    let steps = reconcile_to(&mut pods, 4).await;
    assert!(
        matches!(steps[0], Step::AddLearner { ordinal: 3 }),
        "{steps:?}"
    );
    reconcile_to(&mut pods, 3).await;
    assert_eq!(
        pods.members()
            .observe()
            .await
            .expect("observe")
            .members
            .len(),
        3
    );
    pods.members().disable_auth().await.expect("disable auth");
    assert!(!pods.members().auth_enabled().await.expect("auth status"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_auth_on_scale_then_off_through_the_operator_client() {
    auth_on_scale_then_off(etcd_bin()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrocd_auth_on_scale_then_off_through_the_operator_client() {
    auth_on_scale_then_off(ferrocd_bin()).await;
}

/// NOSPACE remediation's member side: a 16 MiB quota filled with one key's
/// history; the alarm read, the history compacted, every member
/// defragmented (the leader last), the alarm disarmed; writes resume.
async fn nospace_remediated(bin: PathBuf) {
    let mut pods = Pods::new(bin, false);
    pods.flags
        .push(format!("--quota-backend-bytes={}", 16 << 20));
    pods.bootstrap(3);
    reconcile_to(&mut pods, 3).await;
    let mut kv = pods.kv(0).await;
    let value = vec![b'x'; 256 << 10];
    let mut puts = 0;
    let refused = loop {
        let put = kv
            .put(PutRequest {
                key: b"/full".to_vec(),
                value: value.clone(),
                ..PutRequest::default()
            })
            .await;
        match put {
            Ok(_) => puts += 1,
            Err(s) => break s.message().to_string(),
        }
        assert!(puts < 1000, "the quota was never reached");
    };
    assert_eq!(refused, "etcdserver: mvcc: database space exceeded");
    let operator = pods.members();
    let alarmed = operator.nospace_alarms().await.expect("alarm list");
    assert!(!alarmed.is_empty());
    let view = operator.observe().await.expect("observe");
    assert!(view.members.iter().all(|m| m.db_size.is_some()), "{view:?}");
    let turn = ferrocd_operator::maintenance::sequence(&view).expect("order");
    assert!(operator.compact_all().await.expect("compact") > puts);
    for (id, _) in turn {
        operator.defragment(&view, id).await.expect("defragment");
    }
    operator.disarm_nospace(&alarmed).await.expect("disarm");
    assert!(operator
        .nospace_alarms()
        .await
        .expect("alarm list")
        .is_empty());
    kv.put(PutRequest {
        key: b"/after".to_vec(),
        value: b"ok".to_vec(),
        ..PutRequest::default()
    })
    .await
    .expect("a put after the remediation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_nospace_remediated_through_the_operator_client() {
    nospace_remediated(etcd_bin()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrocd_nospace_remediated_through_the_operator_client() {
    nospace_remediated(ferrocd_bin()).await;
}

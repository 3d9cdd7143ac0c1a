//! A real Kubernetes control plane on loopback for tests: etcd 3.5 as its
//! store, kube-apiserver (token auth, RBAC, service-account tokens) and
//! kube-controller-manager (the StatefulSet, endpoints, garbage-collector,
//! service-account and token controllers, ...), all 1.20.2 built by
//! `e2e/k8s/build-control-plane.sh` (with kubectl). Every process is killed and reaped and
//! the directory removed on drop.

use kube::config::Config;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the control-plane binaries are: `$FERROCD_K8S_BIN`, else the
/// build script's cache.
pub fn k8s_bin_dir() -> PathBuf {
    let dir = std::env::var("FERROCD_K8S_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/cache/ferrocd/k8s-1.20.2/bin"));
    assert!(
        ["kube-apiserver", "kube-controller-manager", "kubectl"]
            .iter()
            .all(|b| dir.join(b).exists()),
        "kube-apiserver, kube-controller-manager or kubectl missing in {}: run \
         e2e/k8s/build-control-plane.sh (the README test command does)",
        dir.display()
    );
    dir
}

const ADMIN_TOKEN: &str = "ferrocd-test-admin";

/// How kube-apiserver reaches its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAccess {
    /// Plain HTTP, auth off.
    Plain,
    /// TLS with client certificates (`--client-cert-auth`) and auth on:
    /// kube-apiserver's certificate names user `root`, who has no password.
    CertificateAuth,
}

pub struct ControlPlane {
    children: Vec<(String, Child)>,
    pub ip: Ipv4Addr,
    pub url: String,
    /// The network namespace everything runs in (`None`: the test's own).
    netns: Option<String>,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager on a free
    /// loopback address and waits until the API server is ready and the
    /// `default` service account exists.
    pub async fn start(etcd: &Path) -> ControlPlane {
        ControlPlane::start_with(etcd, StoreAccess::Plain).await
    }

    /// The same, the store reached as `access` says.
    pub async fn start_with(etcd: &Path, access: StoreAccess) -> ControlPlane {
        let ip = ferrocd_testkit::addr::loopback_ip(&[2379, 2380, 6443]);
        ControlPlane::start_in(etcd, None, ip, access).await
    }

    /// The same inside network namespace `netns`, on `ip` there. The
    /// caller must run on a thread inside that namespace.
    pub async fn start_at(etcd: &Path, netns: Option<String>, ip: Ipv4Addr) -> ControlPlane {
        ControlPlane::start_in(etcd, netns, ip, StoreAccess::Plain).await
    }

    async fn start_in(
        etcd: &Path,
        netns: Option<String>,
        ip: Ipv4Addr,
        access: StoreAccess,
    ) -> ControlPlane {
        let bin = k8s_bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().to_path_buf();
        let key = rcgen::KeyPair::generate().expect("service-account key");
        std::fs::write(d.join("sa.key"), key.serialize_pem()).expect("write key");
        std::fs::write(d.join("sa.pub"), key.public_key_pem()).expect("write key");
        std::fs::write(
            d.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin,system:masters\n"),
        )
        .expect("tokens");
        // The serving certificate comes from a CA the controller-manager
        // hands to pods (ca.crt of their service-account Secrets), so
        // in-cluster clients verify the API server.
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "harness kubernetes CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let serving_key = rcgen::KeyPair::generate().expect("serving key");
        let serving = rcgen::CertificateParams::new(vec![
            ip.to_string(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            "localhost".into(),
        ])
        .expect("serving params")
        .signed_by(&serving_key, &ca, &ca_key)
        .expect("serving certificate");
        std::fs::write(d.join("ca.crt"), ca.pem()).expect("write ca");
        std::fs::write(d.join("serving.crt"), serving.pem()).expect("write cert");
        std::fs::write(d.join("serving.key"), serving_key.serialize_pem()).expect("write key");
        let url = format!("https://{ip}:6443");
        std::fs::write(
            d.join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {url}\n    insecure-skip-tls-verify: true\n\
                 users:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: admin\ncurrent-context: local\n"
            ),
        )
        .expect("kubeconfig");
        let mut cp = ControlPlane {
            children: Vec::new(),
            ip,
            url,
            netns,
            dir,
        };
        let path = |f: &str| d.join(f).display().to_string();
        let scheme = match access {
            StoreAccess::Plain => "http",
            StoreAccess::CertificateAuth => "https",
        };
        let mut store_flags = vec![
            "--name=k8s-store".into(),
            format!("--data-dir={}", d.join("etcd").display()),
            format!("--listen-client-urls={scheme}://{ip}:2379"),
            format!("--advertise-client-urls={scheme}://{ip}:2379"),
            format!("--listen-peer-urls=http://{ip}:2380"),
            format!("--initial-advertise-peer-urls=http://{ip}:2380"),
            format!("--initial-cluster=k8s-store=http://{ip}:2380"),
        ];
        let mut apiserver_flags = vec![format!("--etcd-servers={scheme}://{ip}:2379")];
        if access == StoreAccess::CertificateAuth {
            store::issue(&d, &ca, &ca_key, ip);
            store_flags.extend([
                format!("--cert-file={}", path("store.crt")),
                format!("--key-file={}", path("store.key")),
                format!("--trusted-ca-file={}", path("ca.crt")),
                "--client-cert-auth".into(),
            ]);
            apiserver_flags.extend([
                format!("--etcd-cafile={}", path("ca.crt")),
                format!("--etcd-certfile={}", path("root.crt")),
                format!("--etcd-keyfile={}", path("root.key")),
            ]);
        }
        cp.spawn("etcd", etcd, &store_flags);
        if access == StoreAccess::CertificateAuth {
            let url = format!("https://{ip}:2379");
            if let Err(e) = store::enable_auth(&d, &url).await {
                panic!("cannot turn auth on in the store: {e}\n{}", cp.logs());
            }
        }
        apiserver_flags.extend([
            format!("--bind-address={ip}"),
            format!("--advertise-address={ip}"),
            "--secure-port=6443".into(),
            format!("--tls-cert-file={}", path("serving.crt")),
            format!("--tls-private-key-file={}", path("serving.key")),
            format!("--token-auth-file={}", path("tokens.csv")),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", path("sa.pub")),
            format!("--service-account-signing-key-file={}", path("sa.key")),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--enable-priority-and-fairness=false".into(),
            "--v=1".into(),
        ]);
        cp.spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &apiserver_flags,
        );
        let client = cp.admin_client();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let req = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            if matches!(client.request_text(req).await, Ok(body) if body.trim() == "ok") {
                break;
            }
            cp.assert_running();
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready in 90 s:\n{}",
                cp.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        cp.spawn(
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &[
                format!("--kubeconfig={}", path("kubeconfig")),
                "--controllers=*,-nodelifecycle".into(),
                format!("--service-account-private-key-file={}", path("sa.key")),
                format!("--root-ca-file={}", path("ca.crt")),
                "--use-service-account-credentials=false".into(),
                "--leader-elect=false".into(),
                "--port=0".into(),
                "--secure-port=0".into(),
                "--v=1".into(),
            ],
        );
        // The service-account controller runs once `default` appears.
        let sas: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
            kube::Api::namespaced(client.clone(), "default");
        loop {
            if matches!(sas.get_opt("default").await, Ok(Some(_))) {
                break;
            }
            cp.assert_running();
            assert!(
                Instant::now() < deadline,
                "controller-manager made no service account:\n{}",
                cp.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        cp
    }

    fn spawn(&mut self, name: &str, bin: &Path, args: &[String]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let mut command = self.command(bin);
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.children.push((name.to_string(), child));
    }

    /// A `Command` for `bin`, inside the control plane's namespace if any.
    fn command(&self, bin: &Path) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        }
    }

    fn assert_running(&mut self) {
        let mut exited = None;
        for (name, c) in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                exited = Some(format!("{name} exited with {status}"));
            }
        }
        if let Some(e) = exited {
            panic!("{e}:\n{}", self.logs());
        }
    }

    /// The last lines of every process's log.
    pub fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(name, _)| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- {name} ---\n{}",
                    lines[lines.len().saturating_sub(20)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A client authenticated with `token` (the API server's own
    /// self-signed serving certificate is not verified).
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        let mut config = Config::new(self.url.parse().expect("url"));
        config.accept_invalid_certs = true;
        config.auth_info.token = Some(token.to_string().into());
        config.default_namespace = "default".into();
        kube::Client::try_from(config).expect("client")
    }

    /// A cluster-admin client (system:masters).
    pub fn admin_client(&self) -> kube::Client {
        self.client_with_token(ADMIN_TOKEN)
    }

    /// A kubeconfig file for the admin user.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs the real kubectl as the admin user; (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let kubectl = k8s_bin_dir().join("kubectl");
        let mut command = self.command(&kubectl);
        let out = command
            .arg(format!("--kubeconfig={}", self.kubeconfig().display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The store's side of [`StoreAccess::CertificateAuth`].
mod store {
    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::time::{Duration, Instant};
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};

    /// `store.crt` for the store's address and `root.crt`, a client
    /// certificate whose Common Name is `root`, both from the CA.
    pub fn issue(dir: &Path, ca: &rcgen::Certificate, ca_key: &rcgen::KeyPair, ip: Ipv4Addr) {
        let make = |name: &str, sans: Vec<String>| {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(sans).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.extended_key_usages = vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, ca, ca_key).expect("certificate");
            std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write cert");
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem())
                .expect("write key");
        };
        make("store", vec![ip.to_string()]);
        make("root", Vec::new());
    }

    /// As `root` by certificate: the root role and user, then auth on.
    pub async fn enable_auth(dir: &Path, url: &str) -> Result<(), String> {
        let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| format!("{f}: {e}"));
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca.crt")?))
            .identity(Identity::from_pem(read("root.crt")?, read("root.key")?));
        let deadline = Instant::now() + Duration::from_secs(30);
        let channel = loop {
            match ferrocd_testkit::grpc::dial(url, Some(tls.clone())).await {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        ferrocd_testkit::grpc::enable_auth(channel, None).await
    }
}

impl ControlPlane {
    /// The store's endpoint (`https://` with [`StoreAccess::CertificateAuth`]).
    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        // Controllers first, the store last.
        for (_, c) in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

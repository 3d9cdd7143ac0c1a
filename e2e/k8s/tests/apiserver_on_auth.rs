//! kube-apiserver 1.20 on a store with auth on, as a careful operator of
//! etcd runs it: TLS with client certificates, and the API server's
//! certificate naming user `root` (etcd's CN auth, no password). The same
//! on etcd 3.5 and on ferrocd.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrocd_k8s_harness::control_plane::{ControlPlane, StoreAccess};
use ferrocd_proto::etcdserverpb::{kv_client::KvClient, RangeRequest};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use std::path::Path;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// What kube-apiserver could do on the store, and what the store says to
/// a client with root's certificate but a bad token.
async fn outcomes(store: &Path) -> Vec<String> {
    // start_with waits until the API server is ready and the
    // controller-manager made the default service account: both write.
    let cp = ControlPlane::start_with(store, StoreAccess::CertificateAuth).await;
    let maps: Api<ConfigMap> = Api::namespaced(cp.admin_client(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "on-auth"},
        "data": {"k": "v"},
    }))
    .unwrap();
    maps.create(&PostParams::default(), &cm).await.unwrap();
    let got = maps.get("on-auth").await.unwrap();
    let mut seen = vec![format!("configmap: {:?}", got.data)];
    let (ok, out, err) = cp.kubectl(&["get", "serviceaccount", "default", "-o", "name"]);
    seen.push(format!("kubectl: {ok} {} {err}", out.trim()));

    let d = cp.store_dir();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(d.join("ca.crt")).unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read(d.join("root.crt")).unwrap(),
            std::fs::read(d.join("root.key")).unwrap(),
        ));
    let url = format!("https://{}:2379", cp.ip);
    let channel = ferrocd_testkit::grpc::dial(&url, Some(tls)).await.unwrap();
    let mut kv = KvClient::new(channel);
    let count = kv
        .range(RangeRequest {
            key: b"/registry/configmaps/default/on-auth".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().count);
    seen.push(format!("root by certificate reads the key: {count:?}"));
    let mut bad = tonic::Request::new(RangeRequest {
        key: b"/registry/".to_vec(),
        range_end: b"/registry0".to_vec(),
        count_only: true,
        ..Default::default()
    });
    bad.metadata_mut().insert("token", "bogus".parse().unwrap());
    let refused = kv.range(bad).await.map(|r| r.into_inner().count);
    seen.push(format!(
        "a bad token: {:?}",
        refused.map_err(|e| e.message().to_string())
    ));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_apiserver_runs_on_a_store_with_auth_on_as_root_by_certificate() {
    let etcd = outcomes(&ferrocd_testkit::bins::etcd()).await;
    let ferrocd = outcomes(&ferrocd_k8s_harness::harness::workspace_bin("ferrocd")).await;
    assert_eq!(
        etcd[2], "root by certificate reads the key: Ok(1)",
        "{etcd:#?}"
    );
    assert_eq!(
        etcd[3], "a bad token: Err(\"etcdserver: invalid auth token\")",
        "{etcd:#?}"
    );
    assert_eq!(ferrocd, etcd);
}

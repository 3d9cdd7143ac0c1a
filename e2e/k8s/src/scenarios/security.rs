//! Security scenarios: TLS by default with client certificates issued on
//! request, and etcd auth turned on by the operator.

use super::{
    channel, create_cluster, create_cluster_with, member_pods, patch_spec, pod_name, running_with,
    set_replicas, wait_status, Target, NAME,
};
use ferrocd_proto::errors::USER_EMPTY;
use ferrocd_proto::etcdserverpb as pb;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::Api;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::ClientTlsConfig;

/// Whether `pod` answers a read over this connection (none: plain HTTP).
async fn reads(t: &impl Target, ns: &str, pod: &Pod, tls: Option<ClientTlsConfig>) -> bool {
    let Some(ch) = channel(t, ns, pod, tls).await else {
        return false;
    };
    pb::kv_client::KvClient::new(ch)
        .range(pb::RangeRequest {
            key: b"secure".to_vec(),
            ..Default::default()
        })
        .await
        .is_ok()
}

/// Operator-managed TLS: members serve clients holding a certificate from
/// the cluster's CA and refuse clients without one.
pub async fn a_cluster_created_without_tls_serves_tls_only_to_issued_client_certificates<
    T: Target,
>(
    t: Arc<T>,
    ns: String,
) {
    let t = &*t;
    create_cluster(t, &ns, 3, true).await;
    let status = wait_status(t, &ns, 240, "3 TLS members Running", running_with(3)).await;
    assert_eq!(
        status.tls,
        Some(ferrocd_operator::crd::TlsMode::OperatorManaged)
    );
    t.say("3 members Ready with the default TLS; the operator reached them with its client certificate");
    // A client certificate on request: spec.tls.clientSecrets.
    patch_spec(
        t,
        &ns,
        serde_json::json!({"tls": {"clientSecrets": [{"name": "demo-app"}]}}),
    )
    .await;
    let secrets = Api::<Secret>::namespaced(t.client(), &ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    let secret = loop {
        if let Ok(Some(s)) = secrets.get_opt("demo-app").await {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "Secret demo-app not issued in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    t.say("the operator issued Secret demo-app");
    let data = secret.data.unwrap_or_default();
    let part = |k: &str| data.get(k).map(|b| b.0.clone()).expect(k);
    let (cert, key, ca) = (part("tls.crt"), part("tls.key"), part("ca.crt"));
    let pods = member_pods(t, &ns).await;
    let pod = &pods[0];
    let server_name = format!("{}.{NAME}.{ns}.svc.cluster.local", pod_name(pod));
    let tls = |with_identity: bool| {
        let mut c = ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
            .domain_name(server_name.clone());
        if with_identity {
            c = c.identity(tonic::transport::Identity::from_pem(&cert, &key));
        }
        c
    };
    let ch = channel(t, &ns, pod, Some(tls(true)))
        .await
        .expect("TLS connection with a client certificate");
    let list = pb::cluster_client::ClusterClient::new(ch.clone())
        .member_list(pb::MemberListRequest { linearizable: true })
        .await
        .expect("member list")
        .into_inner();
    assert_eq!(list.members.len(), 3);
    assert!(
        list.members
            .iter()
            .all(|m| m.client_ur_ls.iter().all(|u| u.starts_with("https://"))),
        "{:?}",
        list.members
    );
    pb::kv_client::KvClient::new(ch)
        .put(pb::PutRequest {
            key: b"secure".to_vec(),
            value: b"yes".to_vec(),
            ..Default::default()
        })
        .await
        .expect("put over TLS");
    t.say("served over TLS with a CA-issued client certificate");
    // Without a client certificate the handshake or the first call fails.
    assert!(
        !reads(t, &ns, pod, Some(tls(false))).await,
        "served a client without a certificate"
    );
    let srv = format!("--discovery-srv={NAME}.{ns}.svc.cluster.local");
    let dir = tempfile::tempdir().expect("temp dir");
    for (f, bytes) in [("tls.crt", &cert), ("tls.key", &key), ("ca.crt", &ca)] {
        std::fs::write(dir.path().join(f), bytes).expect("write");
    }
    let path = |f: &str| dir.path().join(f).display().to_string();
    let args = vec![
        srv,
        format!("--cacert={}", path("ca.crt")),
        format!("--cert={}", path("tls.crt")),
        format!("--key={}", path("tls.key")),
        "get".into(),
        "secure".into(),
        "--print-value-only".into(),
    ];
    match t.etcdctl_in_cluster(&ns, &args) {
        None => t.say("(this target runs no etcdctl inside the cluster: SRV check skipped)"),
        Some(out) => {
            assert_eq!(out.expect("etcdctl through _etcd-client-ssl").trim(), "yes");
            t.say("etcdctl --discovery-srv found the members through _etcd-client-ssl");
        }
    }
    t.say("refused without a client certificate");
    assert!(!reads(t, &ns, pod, None).await, "served plain HTTP");
    t.say("refused over plain HTTP");
}

/// A put on `name` with `token` (none: anonymous): etcd's answer.
async fn put_as(t: &impl Target, ns: &str, name: &str, token: Option<&str>) -> Result<(), String> {
    let pods = member_pods(t, ns).await;
    let pod = pods
        .iter()
        .find(|p| pod_name(p) == name)
        .ok_or(format!("no pod {name}"))?;
    let ch = channel(t, ns, pod, None)
        .await
        .ok_or(format!("{name} not reachable"))?;
    let mut req = tonic::Request::new(pb::PutRequest {
        key: format!("by-{name}").into(),
        value: b"v".to_vec(),
        ..Default::default()
    });
    if let Some(token) = token {
        req.metadata_mut()
            .insert("token", token.parse().map_err(|_| "bad token".to_string())?);
    }
    pb::kv_client::KvClient::new(ch)
        .put(req)
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
}

/// spec.auth: the operator turns auth on with a generated root password;
/// anonymous clients are refused, root is served, and members added and
/// removed later run under the same auth.
pub async fn a_cluster_with_auth_refuses_anonymous_clients_serves_root_and_scales<T: Target>(
    t: Arc<T>,
    ns: String,
) {
    let t = &*t;
    create_cluster_with(t, &ns, 3, serde_json::json!({"auth": {}})).await;
    wait_status(t, &ns, 240, "3 members Running with auth on", |s| {
        running_with(3)(s) && s.auth_enabled == Some(true)
    })
    .await;
    t.say("3 members Running; status.authEnabled");
    let secret = Api::<Secret>::namespaced(t.client(), &ns)
        .get(&format!("{NAME}-root"))
        .await
        .expect("Secret demo-root");
    let password = secret
        .data
        .and_then(|d| {
            d.get("password")
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
        .expect("password in demo-root");
    let pods = member_pods(t, &ns).await;
    let ch = channel(t, &ns, &pods[0], None)
        .await
        .expect("demo-0 reachable");
    let token = pb::auth_client::AuthClient::new(ch)
        .authenticate(pb::AuthenticateRequest {
            name: "root".into(),
            password,
        })
        .await
        .expect("root authenticates with the Secret's password")
        .into_inner()
        .token;
    assert_eq!(
        put_as(t, &ns, "demo-0", None).await,
        Err(USER_EMPTY.message().into())
    );
    put_as(t, &ns, "demo-0", Some(&token))
        .await
        .expect("root writes");
    t.say("anonymous put refused (user name is empty); root's put served");
    for replicas in [5u32, 3] {
        set_replicas(t, &ns, replicas).await;
        t.say(&format!("spec.replicas = {replicas}"));
        wait_status(t, &ns, 300, &format!("scaled to {replicas}"), |s| {
            running_with(replicas as usize)(s) && s.auth_enabled == Some(true)
        })
        .await;
        let newest = format!("demo-{}", replicas - 1);
        assert_eq!(
            put_as(t, &ns, &newest, None).await,
            Err(USER_EMPTY.message().into()),
            "{newest} served an anonymous client"
        );
        // Tokens are the cluster's: the one from demo-0 works on every member.
        put_as(t, &ns, &newest, Some(&token))
            .await
            .expect("root writes");
        t.say(&format!(
            "scaled to {replicas} as root; {newest} refuses anonymous clients"
        ));
    }
}

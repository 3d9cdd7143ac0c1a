//! Third-party clients against ferrocd: the Rust `etcd-client` crate, and the
//! Python `aetcd` client compared against etcd 3.5.

use crate::support::{Kind, Member};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use std::path::PathBuf;
use std::process::Command;

#[tokio::test]
async fn etcd_client_crate_kv_txn_lease_watch() {
    let m = tokio::task::spawn_blocking(|| Member::start(Kind::Ferrocd, &[]))
        .await
        .unwrap();
    let mut c = Client::connect([m.endpoint()], None)
        .await
        .expect("connect");

    let put = c.put("a", "1", None).await.unwrap();
    assert_eq!(put.header().unwrap().revision(), 2);
    c.put("a", "2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    c.put("b", "3", None).await.unwrap();
    let got = c.get("a", None).await.unwrap();
    let kv = &got.kvs()[0];
    assert_eq!(
        (
            kv.value(),
            kv.version(),
            kv.create_revision(),
            kv.mod_revision()
        ),
        (&b"2"[..], 2, 2, 3)
    );
    let all = c
        .get("", Some(GetOptions::new().with_all_keys().with_limit(1)))
        .await
        .unwrap();
    assert_eq!((all.count(), all.kvs().len(), all.more()), (2, 1, true));

    // Optimistic update as kube-apiserver does it.
    let txn = Txn::new()
        .when([Compare::mod_revision("a", CompareOp::Equal, 3)])
        .and_then([TxnOp::put("a", "3", None)])
        .or_else([TxnOp::get("a", None)]);
    assert!(c.txn(txn).await.unwrap().succeeded());
    let stale = Txn::new()
        .when([Compare::mod_revision("a", CompareOp::Equal, 3)])
        .and_then([TxnOp::put("a", "4", None)])
        .or_else([TxnOp::get("a", None)]);
    assert!(!c.txn(stale).await.unwrap().succeeded());

    let lease = c.lease_grant(30, None).await.unwrap();
    c.put(
        "leased",
        "x",
        Some(PutOptions::new().with_lease(lease.id())),
    )
    .await
    .unwrap();
    let (mut keeper, mut responses) = c.lease_keep_alive(lease.id()).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let ka = responses.message().await.unwrap().unwrap();
    assert_eq!((ka.id(), ka.ttl()), (lease.id(), 30));
    c.lease_revoke(lease.id()).await.unwrap();
    assert_eq!(c.get("leased", None).await.unwrap().count(), 0);

    let mut stream = c
        .watch(
            "a",
            Some(WatchOptions::new().with_start_revision(2).with_prev_key()),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut watch_id = None;
    while seen.len() < 3 {
        let resp = stream.message().await.unwrap().unwrap();
        watch_id = Some(resp.watch_id());
        for e in resp.events() {
            seen.push((
                e.event_type(),
                e.kv().unwrap().mod_revision(),
                e.prev_kv().map(|p| p.mod_revision()),
            ));
        }
    }
    assert_eq!(
        seen,
        vec![
            (EventType::Put, 2, None),
            (EventType::Put, 3, Some(2)),
            (EventType::Put, 5, Some(3))
        ]
    );
    stream.cancel(watch_id.unwrap()).await.unwrap();

    c.compact(4, None).await.unwrap();
    let err = c
        .get("a", Some(GetOptions::new().with_revision(3)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("etcdserver: mvcc: required revision has been compacted"),
        "{err}"
    );
    let status = c.status().await.unwrap();
    assert!(status.version() >= "3.5.13", "{}", status.version());
}

fn python_client(m: &Member) -> String {
    python_script(m, "aetcd_client.py")
}

fn python_script(m: &Member, name: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name);
    let out = Command::new("python3")
        .arg(script)
        .arg(m.ip.to_string())
        .arg("2379")
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{name} failed against {}:\n{}",
        m.kind.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn python_aetcd_client_sees_what_it_sees_on_etcd() {
    let etcd = Member::start(Kind::Etcd, &[]);
    let ferro = Member::start(Kind::Ferrocd, &[]);
    let want = python_client(&etcd);
    let got = python_client(&ferro);
    assert!(want.contains("\"txn\": true"), "{want}");
    assert_eq!(got, want);
}

/// etcd3gw speaks only the JSON gateway: KV, prefixes, create/replace
/// txns, leases, watches and its txn-built locks.
#[test]
fn python_etcd3gw_gateway_client_sees_what_it_sees_on_etcd() {
    let etcd = Member::start(Kind::Etcd, &[]);
    let ferro = Member::start(Kind::Ferrocd, &[]);
    let want = python_script(&etcd, "etcd3gw_client.py");
    let got = python_script(&ferro, "etcd3gw_client.py");
    assert!(want.contains("\"lock_second_acquire\": false"), "{want}");
    assert!(want.contains("\"DELETE\""), "{want}");
    assert_eq!(got, want);
}

/// etcdctl 3.5 on `m` (as root once auth is on).
fn ctl_as_root(m: &Member, args: &str) {
    let mut a = vec![format!("--endpoints={}", m.endpoint())];
    if !args.starts_with("user add root") && args != "auth enable" {
        a.push("--user=root:rootpw".into());
    }
    a.extend(args.split_whitespace().map(str::to_string));
    let (code, _, err) = crate::support::run(&crate::support::etcdctl35(), &a, &[]);
    assert_eq!(code, 0, "etcdctl {args}: {err}");
}

fn python_auth(kind: Kind) -> String {
    let m = Member::start(kind, &[]);
    for cmd in [
        "user add root --new-user-password=rootpw",
        "auth enable",
        "role add a",
        "role grant-permission a readwrite --prefix a/",
        "user add alice --new-user-password=alicepw",
        "user grant-role alice a",
    ] {
        ctl_as_root(&m, cmd);
    }
    python_script(&m, "aetcd_auth.py")
}

#[test]
fn python_aetcd_client_logs_in_as_on_etcd() {
    let want = python_auth(Kind::Etcd);
    let got = python_auth(Kind::Ferrocd);
    assert!(want.contains(r#""get_allowed": ["ok", "x"]"#), "{want}");
    assert!(want.contains("permission denied"), "{want}");
    assert_eq!(got, want);
}

use super::*;

fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    match parse_command_line(&args, &|_| None)? {
        Command::Run(c) => Ok(*c),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn defaults_are_etcds() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(c.listen_client_urls[0].as_str(), "http://localhost:2379/");
    assert_eq!(
        c.initial_cluster,
        vec![(
            "default".to_string(),
            vec!["http://localhost:2380".to_string()]
        )]
    );
    assert_eq!(c.quota_backend_bytes, Some(2 * 1024 * 1024 * 1024));
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.auto_compaction, None);
}

#[test]
fn name_sets_data_dir_and_initial_cluster() {
    let c = cfg(&[
        "--name",
        "infra0",
        "--initial-advertise-peer-urls",
        "http://10.0.0.1:2380",
    ])
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("infra0.etcd"));
    assert_eq!(c.own_initial_peer_urls().unwrap(), ["http://10.0.0.1:2380"]);
}

#[test]
fn auto_compaction_forms() {
    let c = cfg(&["--auto-compaction-retention", "1"]).unwrap();
    assert_eq!(
        c.auto_compaction,
        Some(AutoCompaction::Periodic(Duration::from_secs(3600)))
    );
    let c = cfg(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=1000",
    ])
    .unwrap();
    assert_eq!(c.auto_compaction, Some(AutoCompaction::Revision(1000)));
    assert!(cfg(&["--auto-compaction-mode=weekly"]).is_err());
}

#[test]
fn metrics_urls_are_optional_and_plain_http() {
    assert!(cfg(&[]).unwrap().listen_metrics_urls.is_empty());
    let c = cfg(&["--listen-metrics-urls", "http://127.0.0.1:2381"]).unwrap();
    assert_eq!(c.listen_metrics_urls[0].as_str(), "http://127.0.0.1:2381/");
    let e = cfg(&["--listen-metrics-urls", "https://127.0.0.1:2381"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("only http URLs"), "{e}");
}

#[test]
fn bad_urls_are_rejected_with_the_flag_name() {
    let e = cfg(&["--listen-client-urls", "localhost:2379"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("-listen-client-urls"), "{e}");
}

#[test]
fn discovery_flags_conflict_with_an_explicit_initial_cluster() {
    let conflict = "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\"";
    let e = cfg(&[
        "--initial-cluster=a=http://10.0.0.1:2380",
        "--discovery-srv=example.com",
    ])
    .unwrap_err();
    assert_eq!(e.to_string(), conflict);
    assert_eq!(e.exit_code(), 1);
    let e = cfg(&[
        "--discovery=http://d.example.com/abc",
        "--discovery-srv=example.com",
    ])
    .unwrap_err();
    assert_eq!(e.to_string(), conflict);
    // The default initial cluster gives way to SRV discovery.
    let c = cfg(&["--name=infra0", "--discovery-srv=example.com"]).unwrap();
    assert!(c.initial_cluster.is_empty());
    assert_eq!(
        c.discovery_srv,
        Some(SrvDiscovery {
            domain: "example.com".into(),
            service_name: String::new(),
            wait_for_size: 0
        })
    );
}

#[test]
fn name_missing_from_initial_cluster() {
    let c = cfg(&[
        "--name",
        "infra1",
        "--initial-cluster",
        "infra0=http://a:2380",
    ])
    .unwrap();
    assert_eq!(
        c.own_initial_peer_urls().unwrap_err().to_string(),
        "couldn't find local name \"infra1\" in the initial cluster configuration"
    );
}

#[test]
fn force_new_cluster_once_applies_to_the_named_member_only() {
    let once = |name: &str, v: &str| cfg(&["--name", name, "--force-new-cluster-once", v]);
    assert_eq!(
        once("demo-0", "demo-0/r1").unwrap().force_new_cluster_once,
        Some("r1".to_string())
    );
    assert_eq!(
        once("demo-1", "demo-0/r1").unwrap().force_new_cluster_once,
        None
    );
    for bad in ["demo-0", "/r1", "demo-0/"] {
        let err = once("demo-0", bad).unwrap_err().to_string();
        assert!(err.contains("want NAME/TOKEN"), "{bad}: {err}");
    }
}

//! One run: start a cluster, send traffic from several clients on every
//! member while faults are injected, stop, let the watches catch up, and
//! check the whole history.

use crate::check::{check, Findings};
use crate::cluster::{Cluster, Server};
use crate::faults::{inject, Fault};
use crate::history::{History, Recorder, WatchSpec};
use crate::traffic::{Profile, TrafficClient};
use crate::watcher::{StopAt, Watcher};
use ferrocd_testkit::bridge::Bridge;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Config {
    pub server: Server,
    pub members: u8,
    pub profile: Profile,
    pub clients_per_member: usize,
    /// Requests a second, per client.
    pub rate: f64,
    pub duration: Duration,
    pub faults: Vec<Fault>,
    /// Watchers ask for progress every second. etcd before 3.5.8 answers
    /// such a request ahead of events still queued (etcd-io/etcd#15220),
    /// which the bookmarkable check reports.
    pub request_progress: bool,
}

#[derive(Debug)]
pub struct Report {
    pub label: String,
    pub operations: usize,
    /// Requests by outcome: answered, unknown.
    pub answered: usize,
    pub unknown: usize,
    pub watch_messages: usize,
    pub last_revision: i64,
    pub faults: BTreeMap<String, usize>,
    /// Snapshots members installed from a leader (from their logs).
    pub snapshots_installed: usize,
    pub findings: Findings,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} operations ({} answered, {} unknown), {} watch messages, last revision {}",
            self.label,
            self.operations,
            self.answered,
            self.unknown,
            self.watch_messages,
            self.last_revision
        )?;
        writeln!(
            f,
            "  faults injected: {:?}; snapshots installed: {}",
            self.faults, self.snapshots_installed
        )?;
        writeln!(
            f,
            "  linearizability: {} ({} operations checked in {:.1}s)",
            self.findings.linearizability,
            self.findings.checked_operations,
            self.findings.check_time.as_secs_f64()
        )?;
        writeln!(f, "  violations: {}", self.findings.violations.len())?;
        for v in self.findings.violations.iter().take(20) {
            writeln!(f, "    {v}")?;
        }
        Ok(())
    }
}

/// The private network every run's members live on.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);

/// One run on a network of its own: the members each in a namespace on a
/// bridge, the clients, watchers and checks in the bridge's namespace.
pub fn run_in_network(cfg: &Config, dir: &Path) -> Result<Report, String> {
    let net = std::sync::Arc::new(Bridge::new("frb", GATEWAY, 16)?);
    let (cfg, dir): (Config, PathBuf) = (cfg.clone(), dir.to_path_buf());
    let hub = net.name.clone();
    ferrocd_testkit::netns::in_netns(&hub, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        rt.block_on(run(&cfg, &dir, net))
    })
}

async fn run(cfg: &Config, dir: &Path, net: std::sync::Arc<Bridge>) -> Result<Report, String> {
    let started = Instant::now();
    let mut cluster = Cluster::start(&cfg.server, cfg.members, dir, net)?;
    cluster.wait_healthy(Duration::from_secs(60)).await?;
    let endpoints = cluster.endpoints();

    let stop_at = StopAt::default();
    let prefix = cfg.profile.prefix();
    let mut watchers: Vec<Watcher> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let spec = WatchSpec {
                prefix: String::new(),
                start_rev: 1,
                no_delete: false,
            };
            Watcher::start(
                format!("all@m{i}"),
                ep.clone(),
                spec,
                cfg.request_progress,
                stop_at.clone(),
            )
        })
        .collect();
    // Filtered watches: a prefix, and a prefix without deletes.
    for (name, no_delete) in [("prefix", false), ("prefix-no-delete", true)] {
        let spec = WatchSpec {
            prefix: prefix.into(),
            start_rev: 1,
            no_delete,
        };
        let ep = endpoints[watchers.len() % endpoints.len()].clone();
        let progress = cfg.request_progress;
        watchers.push(Watcher::start(
            name.into(),
            ep,
            spec,
            progress,
            stop_at.clone(),
        ));
    }

    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (i, ep) in endpoints.iter().enumerate() {
        for j in 0..cfg.clients_per_member {
            let id = i * cfg.clients_per_member + j;
            let mut c = TrafficClient::new(id, ep, recorder.clone())?;
            let (stop, profile, rate) = (stop.clone(), cfg.profile, cfg.rate);
            clients.push(tokio::spawn(
                async move { c.run(profile, rate, stop).await },
            ));
        }
    }

    // Kubernetes-like: an informer lists, then watches from the revision
    // after its list (started after the first fault, with data to list).
    let mut informer = (cfg.profile == Profile::KubernetesLike)
        .then(|| TrafficClient::new(clients.len(), &endpoints[0], recorder.clone()))
        .transpose()?;
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = started + cfg.duration;
    let mut next = 0usize;
    let mut failure = None;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every fault listed is injected once at least, however long the
    // recoveries take; then more until the time is up.
    while (Instant::now() < deadline || next < cfg.faults.len()) && !cfg.faults.is_empty() {
        let fault = cfg.faults[next % cfg.faults.len()];
        next += 1;
        // A compaction must not pass a watcher, or it could not resume.
        let compactable = watchers.iter().map(|w| w.delivered()).min().unwrap_or(0);
        if let Err(e) = inject(&mut cluster, fault, compactable).await {
            let delivered: Vec<(String, i64)> = watchers
                .iter()
                .map(|w| (w.recorded().name, w.delivered()))
                .collect();
            failure = Some(format!("{e}\nwatchers had delivered: {delivered:?}"));
            break;
        }
        *injected.entry(format!("{fault:?}")).or_default() += 1;
        let listed = match informer.as_mut() {
            Some(c) => c.paginated_list().await,
            None => None,
        };
        if let Some(rev) = listed {
            informer = None;
            let spec = WatchSpec {
                prefix: prefix.into(),
                start_rev: rev + 1,
                no_delete: false,
            };
            let ep = endpoints[endpoints.len() - 1].clone();
            let informed = Watcher::start(
                "informer".into(),
                ep,
                spec,
                cfg.request_progress,
                stop_at.clone(),
            );
            watchers.push(informed);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // A fault the cluster did not recover from ends the run now.
    while Instant::now() < deadline && failure.is_none() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    if let Some(e) = failure {
        return Err(e);
    }

    // Every watcher must deliver up to the last revision.
    cluster.wait_healthy(Duration::from_secs(30)).await?;
    let last_rev = current_revision(&endpoints[0]).await?;
    stop_at.set(last_rev);
    let drain = Instant::now() + Duration::from_secs(30);
    for w in &mut watchers {
        let left = drain.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, &mut w.task).await.is_err() {
            w.task.abort();
        }
    }
    let history = History {
        operations: recorder.operations(),
        watches: watchers.iter().map(|w| w.recorded()).collect(),
    };
    let unknown = history
        .operations
        .iter()
        .filter(|o| o.ret.is_none())
        .count();
    // The recorded history beside the members' logs, for a look after a
    // failed run.
    let _ = std::fs::write(dir.join("history.txt"), format!("{history:#?}"));
    let _ = std::fs::write(
        dir.join("watches.txt"),
        crate::history::summary(&history.watches),
    );
    let findings = check(&history, last_rev);
    let snapshots_installed = cluster
        .members
        .iter()
        .map(|m| {
            m.log_text()
                .matches("installed a snapshot from the leader")
                .count()
        })
        .sum();
    Ok(Report {
        label: format!("{} x{} {:?}", cfg.server.label, cfg.members, cfg.profile),
        operations: history.operations.len(),
        answered: history.operations.len() - unknown,
        unknown,
        watch_messages: history.watches.iter().map(|w| w.messages.len()).sum(),
        last_revision: last_rev,
        faults: injected,
        snapshots_installed,
        findings,
    })
}

/// The store's revision now (a linearizable read on `endpoint`).
async fn current_revision(endpoint: &str) -> Result<i64, String> {
    let ch = ferrocd_testkit::grpc::dial(endpoint, None).await?;
    let r = ferrocd_proto::etcdserverpb::kv_client::KvClient::new(ch)
        .range(ferrocd_proto::etcdserverpb::RangeRequest {
            key: b"/".to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("{endpoint}: {}", e.message()))?
        .into_inner();
    Ok(r.header.map(|h| h.revision).unwrap_or(0))
}

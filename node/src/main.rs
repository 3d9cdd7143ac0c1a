//! `ferrocd`: one etcd-compatible member.

use ferrocd::config::Fallback;
use ferrocd::config::{self, Command};
use ferrocd::member::{Member, StartError};

// jemalloc instead of glibc's malloc: under 1000 clients glibc spent ~19% of
// the member's CPU in malloc/free (perf); jemalloc gave +14% put throughput
// (3-member cluster, 3 alternating runs) for a few MiB more resident memory.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match config::parse_command_line(&args, &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    };
    let cfg = match command {
        Command::Help => {
            print!("{}", config::usage());
            return;
        }
        Command::Version => {
            println!("ferrocd Version: {}", ferrocd::FERROCD_VERSION);
            println!("etcd API Version: {}", ferrocd::ETCD_VERSION);
            return;
        }
        Command::Gateway(gw) => {
            ferrocd::logging::init("info", "zap", "default");
            let result = tokio::runtime::Runtime::new()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(ferrocd::gateway::run(gw)));
            if let Err(e) = result {
                eprintln!("ferrocd gateway: {e}");
                std::process::exit(1);
            }
            return;
        }
        Command::Snapshot(cmd) => {
            ferrocd::logging::init("info", "zap", "default");
            if let Err(e) = run_snapshot(cmd) {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
            return;
        }
        Command::Run(cfg) => *cfg,
    };
    ferrocd::logging::init(&cfg.log_level, &cfg.logger, &cfg.log_outputs);
    #[cfg(feature = "failpoints")]
    let _failpoints = arm_failpoints();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // The raft log's fsync blocks the worker it runs on (raft waits for it
    // anyway): keep a second worker for everything else on one-core hosts.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none()
        && std::thread::available_parallelism().map_or(1, |n| n.get()) < 2
    {
        builder.worker_threads(2);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrocd: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cfg)) {
        tracing::error!(error = %e, "ferrocd stopped");
        eprintln!("ferrocd: {e}");
        std::process::exit(1);
    }
}

/// A test build's fail points: those in FAILPOINTS (`name=action;...`) are
/// armed now, others over HTTP later (api/failpoints.rs). Any panic aborts
/// the process, so a fail point's `panic` is a crash at that instant, not
/// the end of one task.
#[cfg(feature = "failpoints")]
fn arm_failpoints() -> fail::FailScenario<'static> {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
    fail::FailScenario::setup()
}

async fn run(cfg: config::Config) -> Result<(), Box<dyn std::error::Error>> {
    let fallback = cfg.discovery_fallback;
    let listen = cfg.listen_client_urls.clone();
    let server = match Member::start(cfg).await {
        Ok(s) => s,
        Err(StartError::ClusterFull(peers, dialer)) if fallback == Fallback::Proxy => {
            ferrocd::gateway::serve_as_proxy(&listen, peers, dialer, shutdown_signal()).await?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let listeners = ferrocd::api::bind_listeners(&server).await?;
    let (fatal_tx, fatal_rx) = tokio::sync::oneshot::channel();
    let watcher = server.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            reason = watcher.fatal() => { let _ = fatal_tx.send(reason); }
        }
    };
    ferrocd::api::serve(server.clone(), listeners, stop).await;
    server.shutdown().await;
    if let Ok(reason) = fatal_rx.await {
        return Err(reason.into());
    }
    tracing::info!("ferrocd stopped");
    Ok(())
}

/// `ferrocd snapshot status|restore`, as etcdutl's commands.
fn run_snapshot(cmd: config::snapshot::SnapshotCommand) -> Result<(), String> {
    use config::snapshot::SnapshotCommand;
    use ferrocd::snapshot::{restore, status};
    match cmd {
        SnapshotCommand::Status { file, format } => {
            let format = status::Format::parse(&format)
                .ok_or_else(|| "unsupported output format".to_string())?;
            let s = status::status(&file).map_err(|e| e.to_string())?;
            print!("{}", status::render(&s, format));
        }
        SnapshotCommand::Restore(cfg) => {
            tracing::info!(path = %cfg.file.display(), data_dir = %cfg.data_dir.display(), "restoring snapshot");
            let r = restore::restore(&cfg).map_err(|e| e.to_string())?;
            tracing::info!(
                path = %cfg.file.display(),
                data_dir = %r.data_dir.display(),
                member_id = %format!("{:x}", r.member_id),
                cluster_id = %format!("{:x}", r.cluster_id),
                revision = r.imported.rev,
                compact_revision = r.imported.compact_rev,
                "restored snapshot"
            );
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT, shutting down"),
    }
}

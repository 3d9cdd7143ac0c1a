//! `ferrocd-operator`: serves /metrics and /healthz, takes the leader Lease
//! (when asked), then runs the EtcdCluster controller.

use axum::routing::get;
use clap::Parser;
use ferrocd_operator::backup::cli::{self as backup, BackupCommand};
use ferrocd_operator::controller::{self, connect_etcd, Context};
use ferrocd_operator::leader::LeaderElection;
use ferrocd_operator::metrics::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ferrocd-operator",
    version,
    about = "Runs ferrocd clusters described by EtcdCluster resources"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Watch EtcdClusters in this namespace only (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics and /healthz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Hold a coordination.k8s.io Lease so only one replica reconciles.
    #[arg(long, env = "LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "ferrocd-operator")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a leader Lease lasts without renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// What backup Jobs and restore init containers run.
    #[command(subcommand)]
    Backup(BackupCommand),
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(Command::Backup(cmd)) = args.command {
        std::process::exit(backup::run(cmd).await);
    }
    if let Err(e) = run(args).await {
        eprintln!("ferrocd-operator: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    let metrics = Arc::new(Metrics::default());

    let served = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || async move {
                (
                    [("content-type", ferrocd_operator::metrics::CONTENT_TYPE)],
                    served.render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_addr))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });

    let ctx = Arc::new(Context::new(client.clone(), metrics, connect_etcd()));
    let controllers = {
        let (ctx, ns) = (ctx.clone(), args.namespace.clone());
        async move {
            tokio::join!(
                controller::run(ctx.clone(), ns.clone()),
                ferrocd_operator::backup_controller::run(ctx, ns)
            );
        }
    };
    if !args.leader_elect {
        controllers.await;
        return Ok(());
    }
    let lease_ns = args
        .lease_namespace
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("ferrocd-operator-{:08x}", rand::random::<u32>()));
    let election = LeaderElection::new(
        client,
        &lease_ns,
        &args.lease_name,
        &identity,
        Duration::from_secs(args.lease_duration.max(3)),
    );
    election.acquire().await;
    tokio::select! {
        _ = controllers => Ok(()),
        _ = election.keep() => Err("lost the leader lease; exiting so a new leader takes over".into()),
    }
}

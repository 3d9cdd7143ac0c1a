//! The workloads, shaped like etcd's `benchmark` tool: `--clients`
//! concurrent clients share `--conns` gRPC connections and issue `--total`
//! requests between them, each request's latency recorded.

use crate::stats::Samples;
use ferrocd_proto::authpb::{permission, Permission};
use ferrocd_proto::etcdserverpb::{
    auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient,
    maintenance_client::MaintenanceClient, request_op::Request as Op, watch_client::WatchClient,
    watch_request::RequestUnion, AuthRoleAddRequest, AuthRoleGrantPermissionRequest,
    AuthUserAddRequest, AuthUserGrantRoleRequest, AuthenticateRequest, LeaseGrantRequest,
    LeaseKeepAliveRequest, PutRequest, RangeRequest, RequestOp, SnapshotRequest, StatusRequest,
    TxnRequest, WatchCreateRequest, WatchRequest,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::codegen::InterceptedService;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::transport::Channel;

/// Where the load goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` or URLs.
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    /// Send everything to the leader only.
    pub target_leader: bool,
}

async fn dial(endpoint: &str) -> Result<Channel, String> {
    ferrocd_testkit::grpc::dial(endpoint, None).await
}

/// The endpoint whose member leads.
pub async fn leader_endpoint(endpoints: &[String]) -> Result<String, String> {
    for e in endpoints {
        let Ok(ch) = dial(e).await else { continue };
        let Ok(s) = MaintenanceClient::new(ch).status(StatusRequest {}).await else {
            continue;
        };
        let s = s.into_inner();
        if s.leader != 0 && Some(s.leader) == s.header.map(|h| h.member_id) {
            return Ok(e.clone());
        }
    }
    Err(format!("no leader among {endpoints:?}"))
}

/// `conns` connections, spread over the endpoints (or all to the leader).
pub async fn connect(t: &Target) -> Result<Vec<Channel>, String> {
    let endpoints = if t.target_leader {
        vec![leader_endpoint(&t.endpoints).await?]
    } else {
        t.endpoints.clone()
    };
    let mut out = Vec::new();
    for i in 0..t.conns.max(1) {
        out.push(dial(&endpoints[i % endpoints.len()]).await?);
    }
    Ok(out)
}

/// A request-per-call workload.
#[derive(Debug, Clone)]
pub enum Workload {
    Put {
        key_size: usize,
        val_size: usize,
        sequential_keys: bool,
        key_space_size: usize,
    },
    Range {
        key: Vec<u8>,
        end: Vec<u8>,
        serializable: bool,
    },
    TxnPut {
        key_size: usize,
        val_size: usize,
        key_space_size: usize,
    },
    LeaseKeepalive,
}

/// Spaces requests out to at most `rate` per second overall (0: no limit).
struct Pacer {
    start: Instant,
    interval: Option<Duration>,
    issued: AtomicUsize,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            start: Instant::now(),
            interval: (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64)),
            issued: AtomicUsize::new(0),
        }
    }

    async fn wait(&self) {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = self.interval {
            let at = self.start + i * n as u32;
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

fn key_for(n: usize, size: usize, sequential: bool, space: usize) -> Vec<u8> {
    let i = if sequential {
        n % space.max(1)
    } else {
        rand::random_range(0..space.max(1))
    };
    let mut k = format!("{i:0width$}", width = size.max(1)).into_bytes();
    k.truncate(size.max(1));
    k
}

/// The auth token every request carries (etcd's `token` metadata), if any.
#[derive(Debug, Clone, Default)]
pub struct Token(Option<AsciiMetadataValue>);

impl Interceptor for Token {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            r.metadata_mut().insert("token", t.clone());
        }
        Ok(r)
    }
}

type Authed = InterceptedService<Channel, Token>;

/// Turns auth on (root with the root role) and adds user `bench`, who may
/// read and write every key without being root; `bench`'s token.
pub async fn enable_auth(endpoint: &str) -> Result<Token, String> {
    let ch = dial(endpoint).await?;
    ferrocd_testkit::grpc::enable_auth(ch.clone(), Some("rootpw")).await?;
    let mut auth = AuthClient::new(ch.clone());
    let e = |s: tonic::Status| format!("auth setup: {}", s.message());
    let login = |name: &str, password: &str| AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    let root = auth
        .authenticate(login("root", "rootpw"))
        .await
        .map_err(e)?;
    let root = token_value(&root.into_inner().token)?;
    let mut as_root = AuthClient::with_interceptor(ch, root);
    as_root
        .role_add(AuthRoleAddRequest {
            name: "bench".into(),
        })
        .await
        .map_err(e)?;
    as_root
        .role_grant_permission(AuthRoleGrantPermissionRequest {
            name: "bench".into(),
            perm: Some(Permission {
                perm_type: permission::Type::Readwrite as i32,
                key: vec![0],
                range_end: vec![0],
            }),
        })
        .await
        .map_err(e)?;
    as_root
        .user_add(AuthUserAddRequest {
            name: "bench".into(),
            password: "benchpw".into(),
            ..Default::default()
        })
        .await
        .map_err(e)?;
    as_root
        .user_grant_role(AuthUserGrantRoleRequest {
            user: "bench".into(),
            role: "bench".into(),
        })
        .await
        .map_err(e)?;
    let bench = auth
        .authenticate(login("bench", "benchpw"))
        .await
        .map_err(e)?;
    token_value(&bench.into_inner().token)
}

fn token_value(t: &str) -> Result<Token, String> {
    t.parse()
        .map(|v| Token(Some(v)))
        .map_err(|_| format!("token {t:?} is not ASCII"))
}

/// Runs `total` requests of `workload` from `clients` clients; progress on
/// stderr when `progress`.
pub async fn run(
    channels: &[Channel],
    clients: usize,
    total: usize,
    rate: u64,
    workload: Workload,
    progress: bool,
) -> Samples {
    run_as(
        channels,
        clients,
        total,
        rate,
        workload,
        progress,
        Token::default(),
    )
    .await
}

/// [`run`] with every request carrying `token`.
pub async fn run_as(
    channels: &[Channel],
    clients: usize,
    total: usize,
    rate: u64,
    workload: Workload,
    progress: bool,
    token: Token,
) -> Samples {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let pacer = Arc::new(Pacer::new(rate));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let start = Instant::now();
    let reporter = progress.then(|| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let d = done.load(Ordering::Relaxed);
                eprint!("\r{d}/{total} requests");
                if d >= total {
                    break;
                }
            }
        })
    });
    let mut tasks = Vec::new();
    for c in 0..clients.max(1) {
        let ch = channels[c % channels.len()].clone();
        let (next, done, pacer, samples, workload, token) = (
            next.clone(),
            done.clone(),
            pacer.clone(),
            samples.clone(),
            workload.clone(),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine = Samples::default();
            let mut client = Client::new(ch, &workload, token).await;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                pacer.wait().await;
                let t = Instant::now();
                match client.call(n, &workload).await {
                    Ok(()) => mine.latencies.push(t.elapsed()),
                    Err(_) => mine.errors += 1,
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .merge(mine);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some(r) = reporter {
        r.abort();
        eprintln!("\r{total}/{total} requests");
    }
    let mut s = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    s.elapsed = start.elapsed();
    s
}

/// One client's connection state for its workload.
struct Client {
    kv: KvClient<Authed>,
    keepalive: Option<(
        tokio::sync::mpsc::Sender<LeaseKeepAliveRequest>,
        tonic::Streaming<ferrocd_proto::etcdserverpb::LeaseKeepAliveResponse>,
        i64,
    )>,
}

impl Client {
    async fn new(ch: Channel, w: &Workload, token: Token) -> Client {
        let keepalive = match w {
            Workload::LeaseKeepalive => {
                let mut lease = LeaseClient::with_interceptor(ch.clone(), token.clone());
                let id = lease
                    .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
                    .await
                    .map(|r| r.into_inner().id)
                    .unwrap_or(0);
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let _ = tx.send(LeaseKeepAliveRequest { id }).await;
                match lease
                    .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
                {
                    Ok(s) => {
                        let mut stream = s.into_inner();
                        // The answer to the request sent to open the stream.
                        let _ = stream.message().await;
                        Some((tx, stream, id))
                    }
                    Err(_) => None,
                }
            }
            _ => None,
        };
        Client {
            kv: KvClient::with_interceptor(ch, token),
            keepalive,
        }
    }

    async fn call(&mut self, n: usize, w: &Workload) -> Result<(), String> {
        let err = |e: tonic::Status| e.message().to_string();
        match w {
            Workload::Put {
                key_size,
                val_size,
                sequential_keys,
                key_space_size,
            } => {
                let put = PutRequest {
                    key: key_for(n, *key_size, *sequential_keys, *key_space_size),
                    value: vec![b'v'; *val_size],
                    ..Default::default()
                };
                self.kv.put(put).await.map_err(err)?;
            }
            Workload::Range {
                key,
                end,
                serializable,
            } => {
                let r = RangeRequest {
                    key: key.clone(),
                    range_end: end.clone(),
                    serializable: *serializable,
                    ..Default::default()
                };
                self.kv.range(r).await.map_err(err)?;
            }
            Workload::TxnPut {
                key_size,
                val_size,
                key_space_size,
            } => {
                let put = RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: key_for(n, *key_size, false, *key_space_size),
                        value: vec![b'v'; *val_size],
                        ..Default::default()
                    })),
                };
                let txn = TxnRequest {
                    success: vec![put],
                    ..Default::default()
                };
                self.kv.txn(txn).await.map_err(err)?;
            }
            Workload::LeaseKeepalive => {
                let Some((tx, stream, id)) = self.keepalive.as_mut() else {
                    return Err("no keep-alive stream".into());
                };
                tx.send(LeaseKeepAliveRequest { id: *id })
                    .await
                    .map_err(|e| e.to_string())?;
                stream
                    .message()
                    .await
                    .map_err(err)?
                    .ok_or("keep-alive stream ended")?;
            }
        }
        Ok(())
    }
}

/// Watch fan-out: `watchers` watchers over `streams` streams on
/// `key_space` keys; `puts` puts at `put_rate` per second spread over the
/// keys; each event's latency is from the put being sent to the event
/// arriving (the value carries the send time).
pub async fn watch_latency(
    channels: &[Channel],
    watchers: usize,
    streams: usize,
    key_space: usize,
    puts: usize,
    put_rate: u64,
    progress: bool,
) -> Samples {
    let base = Instant::now();
    let key = |i: usize| format!("watchkey-{i}").into_bytes();
    let expected = (0..puts)
        .map(|p| {
            (0..watchers)
                .filter(|w| w % key_space.max(1) == p % key_space.max(1))
                .count()
        })
        .sum::<usize>();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    for s in 0..streams.max(1) {
        let mut client = WatchClient::new(channels[s % channels.len()].clone());
        let (tx, rx) = tokio::sync::mpsc::channel(watchers.max(1));
        let mine: Vec<usize> = (0..watchers).filter(|w| w % streams.max(1) == s).collect();
        for w in &mine {
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: key(w % key_space.max(1)),
                    ..Default::default()
                })),
            };
            let _ = tx.send(create).await;
        }
        let Ok(resp) = client
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        else {
            continue;
        };
        senders.push(tx);
        let mut stream = resp.into_inner();
        let ev_tx = ev_tx.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(Some(r)) = stream.message().await {
                for ev in r.events {
                    let sent = ev
                        .kv
                        .and_then(|kv| String::from_utf8(kv.value).ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if let Some(nanos) = sent {
                        let _ =
                            ev_tx.send(base.elapsed().saturating_sub(Duration::from_nanos(nanos)));
                    }
                }
            }
        }));
    }
    // Give every watcher time to be created before the first put.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let mut kv = KvClient::new(channels[0].clone());
    let pacer = Pacer::new(put_rate);
    let mut samples = Samples::default();
    for p in 0..puts {
        pacer.wait().await;
        let put = PutRequest {
            key: key(p % key_space.max(1)),
            value: (base.elapsed().as_nanos() as u64).to_string().into_bytes(),
            ..Default::default()
        };
        if kv.put(put).await.is_err() {
            samples.errors += 1;
        }
        if progress && p % 100 == 0 {
            eprint!("\r{p}/{puts} puts");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while samples.latencies.len() < expected {
        match tokio::time::timeout_at(deadline.into(), ev_rx.recv()).await {
            Ok(Some(l)) => samples.latencies.push(l),
            _ => break,
        }
    }
    samples.errors += expected.saturating_sub(samples.latencies.len());
    samples.elapsed = start.elapsed();
    drop(senders);
    for r in readers {
        r.abort();
    }
    if progress {
        eprintln!("\r{puts}/{puts} puts, {} events", samples.latencies.len());
    }
    samples
}

/// What streaming one Maintenance.Snapshot cost, and what a writer saw
/// meanwhile.
pub struct SnapshotRun {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Sequential small puts on another connection during the snapshot.
    pub writer: Samples,
}

/// Reads a whole snapshot stream from `snap` (the bytes counted, not kept)
/// while one client puts small values through `writer`.
pub async fn snapshot_under_writes(
    snap: &Channel,
    writer: &Channel,
) -> Result<SnapshotRun, String> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let put_loop = {
        let stop = stop.clone();
        let mut kv = KvClient::new(writer.clone());
        tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let put = PutRequest {
                    key: format!("snapshot-writer/{n}").into_bytes(),
                    value: vec![b'w'; 256],
                    ..Default::default()
                };
                let t = Instant::now();
                match kv.put(put).await {
                    Ok(_) => samples.latencies.push(t.elapsed()),
                    Err(_) => samples.errors += 1,
                }
                n += 1;
            }
            samples
        })
    };
    // Let the writer reach its steady pace first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let mut client = MaintenanceClient::new(snap.clone()).max_decoding_message_size(64 << 20);
    let result = async {
        let mut stream = client
            .snapshot(SnapshotRequest {})
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let mut bytes = 0u64;
        while let Some(m) = stream.message().await.map_err(|e| e.to_string())? {
            bytes += m.blob.len() as u64;
        }
        Ok::<_, String>(bytes)
    }
    .await;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut writer = put_loop.await.map_err(|e| e.to_string())?;
    writer.elapsed = elapsed;
    Ok(SnapshotRun {
        bytes: result?,
        elapsed,
        writer,
    })
}

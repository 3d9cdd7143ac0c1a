//! Differential testing: every case runs against a fresh etcd 3.5 and a fresh
//! ferrocd (same flags); each step's answer, normalized only where the two
//! legitimately differ (member/cluster IDs, raft term, timing), must be equal.

mod cases_auth;
mod cases_kv;
mod cases_lease;
mod cases_txn;
mod cases_watch;
pub mod dsl;

use crate::support::client::Client;
use crate::support::{Cluster, Kind, Member};
use dsl::{Case, Step};
use ferrocd_proto::etcdserverpb::*;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// Cases run concurrently (each with its own two servers).
const PARALLEL: usize = 6;

/// Where a case runs: a single member of each, or 3-member clusters.
#[derive(Clone, Copy, Debug)]
pub enum Topology {
    Single,
    ThreeMembers,
}

/// Runs every case against both servers; panics listing every mismatch.
pub async fn run_all(group: &str, cases: Vec<Case>) {
    run_on(group, cases, Topology::Single, PARALLEL).await
}

pub async fn run_on(group: &str, cases: Vec<Case>, topology: Topology, parallel: usize) {
    let total = cases.len();
    let sem = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for case in cases {
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.expect("semaphore");
            run_case(case, topology).await
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(msg) = t.await.expect("case task") {
            failures.push(msg);
        }
    }
    eprintln!(
        "differential {group}: {total} cases, {} mismatches",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} {group} cases differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The servers of one side of a case; steps talk to `members[target]`.
struct Side {
    members: Vec<Member>,
    target: usize,
}

impl Side {
    fn start(kind: Kind, topology: Topology, args: &[&str]) -> Side {
        match topology {
            Topology::Single => Side {
                members: vec![Member::start(kind, args)],
                target: 0,
            },
            // Member 1: most often a follower, so forwarding is exercised.
            Topology::ThreeMembers => Side {
                members: Cluster::start(kind, 3, args).members,
                target: 1,
            },
        }
    }

    fn endpoint(&self) -> String {
        self.members[self.target].endpoint()
    }
}

async fn run_case(case: Case, topology: Topology) -> Result<(), String> {
    let args = case.args.clone();
    let (etcd, ferro) = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        (
            Side::start(Kind::Etcd, topology, &a),
            Side::start(Kind::Ferrocd, topology, &a),
        )
    })
    .await
    .expect("start servers");
    let limit = Duration::from_secs(90);
    let (etcd_ep, ferro_ep) = (etcd.endpoint(), ferro.endpoint());
    let (want, got) = tokio::join!(
        tokio::time::timeout(limit, execute(&etcd_ep, &case.steps)),
        tokio::time::timeout(limit, execute(&ferro_ep, &case.steps))
    );
    drop((etcd, ferro));
    let (Ok(want), Ok(got)) = (want, got) else {
        return Err(format!("case {:?} did not finish in {limit:?}", case.name));
    };
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        if let Step::Newer(_, answer) = &case.steps[i] {
            if !g.contains(answer) {
                return Err(format!(
                    "case {:?}, step {i} ({}):\n  etcd after 3.5.1: ...{answer}...\n  ferrocd: {g}",
                    case.name,
                    case.steps[i].label()
                ));
            }
            continue;
        }
        if w != g {
            return Err(format!(
                "case {:?}, step {i} ({}):\n  etcd:    {w}\n  ferrocd: {g}",
                case.name,
                case.steps[i].label()
            ));
        }
    }
    Ok(())
}

/// Runs the steps on one server; one outcome string per step.
async fn execute(endpoint: &str, steps: &[Step]) -> Vec<String> {
    let mut c = Client::connect(endpoint).await;
    let mut watch: Option<(mpsc::Sender<WatchRequest>, tonic::Streaming<WatchResponse>)> = None;
    let mut out = Vec::with_capacity(steps.len());
    let mut token: Option<String> = None;
    let mut tokens: std::collections::HashMap<String, String> = Default::default();
    for step in steps {
        let step = match step {
            Step::Newer(inner, _) => inner.as_ref(),
            other => other,
        };
        let t = token.clone();
        let r = match step {
            Step::Put(r) => show(
                c.kv.put(with_token(r.clone(), &t))
                    .await
                    .map(|r| norm_put(r.into_inner())),
            ),
            Step::Range(r) => show(
                c.kv.range(with_token(r.clone(), &t))
                    .await
                    .map(|r| norm_range(r.into_inner())),
            ),
            Step::Delete(r) => show(
                c.kv.delete_range(with_token(r.clone(), &t))
                    .await
                    .map(|r| norm_delete(r.into_inner())),
            ),
            Step::Txn(r) => show(
                c.kv.txn(with_token(r.clone(), &t))
                    .await
                    .map(|r| norm_txn(r.into_inner())),
            ),
            Step::Compact(rev, physical) => show(
                c.kv.compact(with_token(
                    CompactionRequest {
                        revision: *rev,
                        physical: *physical,
                    },
                    &t,
                ))
                .await
                .map(|r| r.into_inner().header.map(|h| h.revision)),
            ),
            Step::Grant(ttl, id) => show(
                c.lease
                    .lease_grant(with_token(LeaseGrantRequest { ttl: *ttl, id: *id }, &t))
                    .await
                    .map(|r| {
                        let mut r = r.into_inner();
                        norm_header(&mut r.header);
                        r
                    }),
            ),
            Step::Revoke(id) => show(
                c.lease
                    .lease_revoke(with_token(LeaseRevokeRequest { id: *id }, &t))
                    .await
                    .map(|r| r.into_inner().header.map(|h| h.revision)),
            ),
            Step::Ttl(id, keys) => show(
                c.lease
                    .lease_time_to_live(with_token(
                        LeaseTimeToLiveRequest {
                            id: *id,
                            keys: *keys,
                        },
                        &t,
                    ))
                    .await
                    .map(|r| {
                        let mut r = r.into_inner();
                        norm_header(&mut r.header);
                        // Remaining TTL depends on timing: compare its sign and bound.
                        r.ttl = match r.ttl {
                            t if t > 0 && t <= r.granted_ttl => 1,
                            t => t,
                        };
                        r.keys.sort();
                        r
                    }),
            ),
            Step::KeepAlive(id) => {
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.send(LeaseKeepAliveRequest { id: *id }).await;
                let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
                match c.lease.lease_keep_alive(with_token(stream, &t)).await {
                    Ok(resp) => {
                        let mut s = resp.into_inner();
                        let first = tokio::time::timeout(Duration::from_secs(5), s.next()).await;
                        match first {
                            Ok(Some(Ok(mut r))) => {
                                norm_header(&mut r.header);
                                format!("Ok({r:?})")
                            }
                            other => format!("KeepAlive stream: {other:?}"),
                        }
                    }
                    Err(e) => format!("Err({:?}, {:?})", e.code(), e.message()),
                }
            }
            Step::Leases => show(
                c.lease
                    .lease_leases(with_token(LeaseLeasesRequest {}, &t))
                    .await
                    .map(|r| {
                        let mut r = r.into_inner();
                        norm_header(&mut r.header);
                        r.leases.sort_by_key(|l| l.id);
                        r
                    }),
            ),
            Step::HashKv(rev) => show(
                c.maintenance
                    .hash_kv(with_token(HashKvRequest { revision: *rev }, &t))
                    .await
                    .map(|r| {
                        let mut r = r.into_inner();
                        norm_header(&mut r.header);
                        r.hash = 0;
                        // etcd 3.5.1 predates the hash_revision field (3.5.5+).
                        r.hash_revision = 0;
                        r
                    }),
            ),
            Step::Alarm(req) => show(c.maintenance.alarm(with_token(*req, &t)).await.map(|r| {
                let mut r = r.into_inner();
                norm_header(&mut r.header);
                for a in &mut r.alarms {
                    a.member_id = 0;
                }
                r
            })),
            Step::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                "slept".into()
            }
            Step::WatchSend(req) => {
                if let Some((tx, _)) = watch.as_ref() {
                    format!("sent: {:?}", tx.send(req.clone()).await.is_ok())
                } else {
                    // grpc-go sends no response headers before its first
                    // message, so the first request must be queued before
                    // the call is awaited.
                    let (tx, rx) = mpsc::channel(64);
                    let queued = tx.send(req.clone()).await.is_ok();
                    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
                    match c.watch.watch(with_token(stream, &t)).await {
                        Ok(resp) => {
                            watch = Some((tx, resp.into_inner()));
                            format!("sent: {queued:?}")
                        }
                        Err(e) => format!("Err({:?}, {:?})", e.code(), e.message()),
                    }
                }
            }
            Step::WatchRecv(n) => match watch.as_mut() {
                Some((_, s)) => collect_watch(s, Some(*n), Duration::from_secs(5)).await,
                None => "no watch stream".into(),
            },
            Step::WatchQuiet(ms) => match watch.as_mut() {
                Some((_, s)) => collect_watch(s, None, Duration::from_millis(*ms)).await,
                None => "no watch stream".into(),
            },
            Step::Auth(op) => auth_call(&mut c, op.clone(), &t).await,
            Step::Login(name, password) => {
                let req = AuthenticateRequest {
                    name: name.clone(),
                    password: password.clone(),
                };
                match c.auth.authenticate(with_token(req, &t)).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        let shape = token_shape(&r.token);
                        tokens.insert(name.clone(), r.token.clone());
                        token = Some(r.token);
                        format!("Ok(token {shape})")
                    }
                    Err(e) => format!("Err({:?}, {:?})", e.code(), e.message()),
                }
            }
            Step::As(user) => {
                token = tokens.get(user).cloned();
                format!("as {user}: {}", token.is_some())
            }
            Step::Tamper => {
                // A character well inside the signature: the last one may
                // carry only padding bits, which some decoders ignore.
                token = token.map(|t| {
                    let mut b = t.into_bytes();
                    let i = b.len().saturating_sub(6);
                    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
                    String::from_utf8(b).expect("ASCII token")
                });
                "token changed".into()
            }
            Step::Token(new) => {
                token = new.clone();
                "token set".into()
            }
            Step::Status => show(
                c.maintenance
                    .status(with_token(StatusRequest {}, &t))
                    .await
                    .map(|r| r.into_inner().errors),
            ),
            Step::Newer(..) => "nested newer step".into(),
            Step::MemberList => show(
                c.cluster
                    .member_list(with_token(MemberListRequest::default(), &t))
                    .await
                    .map(|r| r.into_inner().members.len()),
            ),
        };
        out.push(r);
    }
    out
}

/// A request carrying `token` (etcd's `token` metadata) if there is one.
fn with_token<T>(m: T, token: &Option<String>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("token", t.parse().expect("ASCII token"));
    }
    r
}

/// What two servers' tokens share: for simple ones 16 letters, a dot, a
/// log index; for JWTs the algorithm and the user and revision claimed.
fn token_shape(t: &str) -> String {
    use base64::Engine;
    let parts: Vec<&str> = t.split('.').collect();
    match parts.as_slice() {
        [p, i]
            if p.len() == 16
                && p.chars().all(|c| c.is_ascii_alphabetic())
                && i.parse::<u64>().is_ok() =>
        {
            "simple".into()
        }
        [header, claims, _] => {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let json = |part: &str| -> serde_json::Value {
                b64.decode(part)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default()
            };
            let (h, c) = (json(header), json(claims));
            format!(
                "jwt alg={} username={} revision={} exp_set={}",
                h["alg"],
                c["username"],
                c["revision"],
                c["exp"].is_u64()
            )
        }
        _ if t.is_empty() => "empty".into(),
        _ => "other".into(),
    }
}

/// One Auth RPC; the answer with its header normalized.
async fn auth_call(c: &mut Client, op: dsl::AuthOp, t: &Option<String>) -> String {
    use dsl::AuthOp as O;
    macro_rules! call {
        ($method:ident, $req:expr) => {
            show(c.auth.$method(with_token($req, t)).await.map(|r| {
                let mut r = r.into_inner();
                norm_header(&mut r.header);
                r
            }))
        };
    }
    match op {
        O::Enable(r) => call!(auth_enable, r),
        O::Disable(r) => call!(auth_disable, r),
        O::Status(r) => call!(auth_status, r),
        O::Authenticate(_) => "use Step::Login".into(),
        O::UserAdd(r) => call!(user_add, r),
        O::UserGet(r) => call!(user_get, r),
        O::UserList(r) => call!(user_list, r),
        O::UserDelete(r) => call!(user_delete, r),
        O::UserChangePassword(r) => call!(user_change_password, r),
        O::UserGrantRole(r) => call!(user_grant_role, r),
        O::UserRevokeRole(r) => call!(user_revoke_role, r),
        O::RoleAdd(r) => call!(role_add, r),
        O::RoleGet(r) => call!(role_get, r),
        O::RoleList(r) => call!(role_list, r),
        O::RoleDelete(r) => call!(role_delete, r),
        O::RoleGrantPermission(r) => call!(role_grant_permission, r),
        O::RoleRevokePermission(r) => call!(role_revoke_permission, r),
    }
}

/// Collects watch responses: `n` of them (or until the timeout), or with
/// `n = None` whatever arrives before the timeout.
async fn collect_watch(
    s: &mut tonic::Streaming<WatchResponse>,
    n: Option<usize>,
    within: Duration,
) -> String {
    let deadline = tokio::time::Instant::now() + within;
    let mut got: Vec<(i64, String)> = Vec::new();
    while n.is_none_or(|n| got.len() < n) {
        match tokio::time::timeout_at(deadline, s.next()).await {
            Ok(Some(Ok(mut r))) => {
                norm_header(&mut r.header);
                got.push((r.watch_id, format!("{r:?}")));
            }
            Ok(Some(Err(e))) => {
                got.push((i64::MAX, format!("Err({:?}, {:?})", e.code(), e.message())));
                break;
            }
            Ok(None) => {
                got.push((i64::MAX, "stream closed".into()));
                break;
            }
            Err(_) => break,
        }
    }
    // Order matters per watcher, not across watchers (etcd walks a Go map).
    got.sort_by_key(|(id, _)| *id);
    let texts: Vec<String> = got.into_iter().map(|(_, t)| t).collect();
    format!("{} responses: [{}]", texts.len(), texts.join(", "))
}

fn show<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("Err({:?}, {:?})", e.code(), e.message()),
    }
}

/// Member, cluster and term differ between two independent servers.
fn norm_header(h: &mut Option<ResponseHeader>) {
    if let Some(h) = h {
        h.cluster_id = 0;
        h.member_id = 0;
        h.raft_term = 0;
    }
}

fn norm_put(mut r: PutResponse) -> PutResponse {
    norm_header(&mut r.header);
    r
}

fn norm_range(mut r: RangeResponse) -> RangeResponse {
    norm_header(&mut r.header);
    r
}

fn norm_delete(mut r: DeleteRangeResponse) -> DeleteRangeResponse {
    norm_header(&mut r.header);
    r
}

fn norm_txn(mut r: TxnResponse) -> TxnResponse {
    norm_header(&mut r.header);
    for op in &mut r.responses {
        match &mut op.response {
            Some(response_op::Response::ResponseRange(x)) => norm_header(&mut x.header),
            Some(response_op::Response::ResponsePut(x)) => norm_header(&mut x.header),
            Some(response_op::Response::ResponseDeleteRange(x)) => norm_header(&mut x.header),
            Some(response_op::Response::ResponseTxn(x)) => *x = norm_txn(x.clone()),
            None => {}
        }
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_kv_against_etcd() {
    run_all("kv", cases_kv::cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_txn_against_etcd() {
    run_all("txn", cases_txn::cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_watch_against_etcd() {
    run_all("watch", cases_watch::cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_lease_against_etcd() {
    run_all("lease", cases_lease::cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_on_three_member_clusters() {
    let mut cases = cases_kv::cases();
    cases.extend(cases_txn::cases());
    cases.extend(cases_watch::cases());
    cases.extend(cases_lease::cases());
    run_on("all groups", cases, Topology::ThreeMembers, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_auth_against_etcd() {
    run_all("auth", cases_auth::cases()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn differential_jwt_tokens_against_etcd() {
    let keys = cases_auth::JwtKeys::generate();
    run_all("jwt", cases_auth::jwt_cases(&keys)).await;
}

#[test]
fn the_auth_suite_has_at_least_60_cases() {
    let n = cases_auth::cases().len();
    eprintln!("differential auth cases: {n}");
    assert!(n >= 60, "only {n} auth cases");
}

#[test]
fn the_differential_suite_has_at_least_150_cases() {
    let n = cases_kv::cases().len()
        + cases_txn::cases().len()
        + cases_watch::cases().len()
        + cases_lease::cases().len();
    eprintln!("differential cases: {n}");
    assert!(n >= 150, "only {n} differential cases");
}

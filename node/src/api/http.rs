//! HTTP endpoints on the client port: /health, /livez, /readyz, /version,
//! /metrics, with etcd's bodies and status codes.

use crate::member::Member;
use crate::metrics::Gauges;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferrocd_proto::etcdserverpb::AlarmType;
use std::collections::HashMap;
use std::sync::Arc;

pub fn router(server: Arc<Member>) -> Router {
    let router = probes()
        .route("/version", get(version))
        .merge(super::v2keys::router());
    #[cfg(feature = "failpoints")]
    let router = router.merge(super::failpoints::router());
    router.with_state(server)
}

/// What `--listen-metrics-urls` serves: health, probes and metrics.
pub fn probes_router(server: Arc<Member>) -> Router {
    probes().with_state(server)
}

fn probes() -> Router<Arc<Member>> {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

type Params = Query<HashMap<String, String>>;

fn json(code: StatusCode, body: String) -> Response {
    (code, [("content-type", "application/json")], body).into_response()
}

async fn health(State(s): State<Arc<Member>>, Query(q): Params) -> Response {
    let excluded: Vec<String> = q
        .get("exclude")
        .map(|e| vec![e.clone()])
        .unwrap_or_default();
    let serializable = q.get("serializable").is_some_and(|v| v == "true");
    let (ok, reason) = check_health(&s, &excluded, serializable);
    if ok {
        s.metrics.health_success.inc();
    } else {
        s.metrics.health_failures.inc();
    }
    let body = serde_json::json!({"health": ok.to_string(), "reason": reason}).to_string();
    if ok {
        json(StatusCode::OK, body)
    } else {
        // etcd answers failures through Go's http.Error, which adds a newline.
        json(StatusCode::SERVICE_UNAVAILABLE, body + "\n")
    }
}

fn check_health(s: &Member, excluded_alarms: &[String], serializable: bool) -> (bool, String) {
    let view = match s.reader.read() {
        Ok(v) => v,
        Err(e) => return (false, format!("READ ERROR: {e}")),
    };
    for (_, alarm) in view.alarms().unwrap_or_default() {
        let name = AlarmType::try_from(alarm).map_or("UNKNOWN", |t| t.as_str_name());
        if excluded_alarms.iter().any(|e| e == name) {
            continue;
        }
        return (false, format!("ALARM {name}"));
    }
    if !serializable && !s.leadership.has_leader() {
        return (false, "RAFT NO LEADER".into());
    }
    (true, String::new())
}

/// One named check of /livez or /readyz.
type Check = (&'static str, fn(&Member) -> Result<(), String>);

fn serializable_read(s: &Member) -> Result<(), String> {
    s.reader.read().map(|_| ()).map_err(|e| e.to_string())
}

fn linearizable_read(s: &Member) -> Result<(), String> {
    if !s.leadership.has_leader() {
        return Err(ferrocd_proto::errors::NO_LEADER.message().into());
    }
    serializable_read(s)
}

fn data_corruption(s: &Member) -> Result<(), String> {
    let alarms = s
        .reader
        .read()
        .map_err(|e| e.to_string())?
        .alarms()
        .map_err(|e| e.to_string())?;
    if alarms.iter().any(|(_, a)| *a == AlarmType::Corrupt as i32) {
        return Err("alarm activated: CORRUPT".into());
    }
    Ok(())
}

async fn livez(State(s): State<Arc<Member>>, Query(q): Params) -> Response {
    probe(&s, "livez", &[("serializable_read", serializable_read)], &q)
}

async fn readyz(State(s): State<Arc<Member>>, Query(q): Params) -> Response {
    let checks: [Check; 3] = [
        ("data_corruption", data_corruption),
        ("serializable_read", serializable_read),
        ("linearizable_read", linearizable_read),
    ];
    probe(&s, "readyz", &checks, &q)
}

/// etcd's (and Kubernetes') probe format: `ok`, or with `?verbose` one
/// `[+]name ok` / `[-]name failed: reason` line per check; `?exclude=name`.
fn probe(s: &Member, what: &str, checks: &[Check], q: &HashMap<String, String>) -> Response {
    let verbose = q.contains_key("verbose");
    let excluded: Vec<&str> = q
        .get("exclude")
        .map(|e| e.split(',').collect())
        .unwrap_or_default();
    let mut lines = String::new();
    let mut failed = false;
    for (name, check) in checks {
        if excluded.contains(name) {
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match check(s) {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                failed = true;
                lines.push_str(&format!("[-]{name} failed: {e}\n"));
            }
        }
    }
    if failed {
        lines.push_str(&format!("{what} check failed\n"));
        return (StatusCode::SERVICE_UNAVAILABLE, lines).into_response();
    }
    if verbose {
        lines.push_str("ok\n");
        (StatusCode::OK, lines).into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn version() -> Response {
    let body = serde_json::json!({
        "etcdserver": crate::ETCD_VERSION,
        "etcdcluster": crate::ETCD_CLUSTER_VERSION,
    })
    .to_string();
    json(StatusCode::OK, body)
}

async fn metrics(State(s): State<Arc<Member>>) -> Response {
    let store = s.store.clone();
    let (in_use, keys, revs) = tokio::task::spawn_blocking(move || {
        let revs = store
            .read()
            .map(|v| (v.rev, v.compact_rev))
            .unwrap_or((0, 0));
        (store.size_in_use().unwrap_or(0), store.live_keys(), revs)
    })
    .await
    .unwrap_or((0, 0, (0, 0)));
    let g = Gauges {
        member_id: s.leadership.member_id(),
        has_leader: s.leadership.has_leader(),
        is_leader: s.leadership.is_leader(),
        is_learner: s.membership.is_learner(),
        db_size: s.store.file_size(),
        db_size_in_use: in_use,
        quota_bytes: s.config.quota_backend_bytes.unwrap_or(0),
        keys,
        current_revision: revs.0,
        compact_revision: revs.1,
    };
    (
        StatusCode::OK,
        [("content-type", crate::metrics::CONTENT_TYPE)],
        s.metrics.render(&g),
    )
        .into_response()
}

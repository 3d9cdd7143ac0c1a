//! Test builds only (`--features failpoints`): fail points armed over HTTP
//! on the client port, as etcd's gofail endpoint arms its own:
//! `PUT /debug/failpoints/<name>` with an action in the body (`panic`,
//! `sleep(100)`, `2*off->panic`: the `fail` crate's syntax), `DELETE` to
//! disarm, `GET /debug/failpoints` to list what is armed. A build with the
//! feature aborts on any panic (main.rs), so `panic` is a crash at that
//! instant.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::Router;

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/debug/failpoints", get(list))
        .route("/debug/failpoints/{name}", put(arm).delete(disarm))
}

async fn list() -> String {
    fail::list()
        .into_iter()
        .map(|(name, action)| format!("{name}={action}\n"))
        .collect()
}

async fn arm(Path(name): Path<String>, action: String) -> (StatusCode, String) {
    match fail::cfg(name, action.trim()) {
        Ok(()) => (StatusCode::NO_CONTENT, String::new()),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

async fn disarm(Path(name): Path<String>) -> StatusCode {
    fail::remove(name);
    StatusCode::NO_CONTENT
}

//! The part of etcd's v2 keys API (`/v2/keys/...` on the client port) that
//! the v2 discovery protocol needs, so that one ferrocd cluster can
//! bootstrap another with `--discovery http://HOST:2379/v2/keys/TOKEN-PATH`:
//! GET of a key or a directory (one level, or `recursive=true`), GET with
//! `wait=true` (`waitIndex`, `recursive`), PUT of a value (`prevExist`),
//! DELETE of a key. v2 keys are v3 keys named by their path (`/a/b`); a
//! directory is every key below `path/`; indexes are revisions. Names
//! starting with `_` are hidden from listings, as in etcd.

use crate::apply::EntryResponse;
use crate::member::Member;
use crate::mvcc::{KeyRange, RangeOptions};
use crate::watch::{HubMsg, WatchSpec};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferrocd_proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request as Op,
    Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
};
use ferrocd_proto::ferrocdpb::internal_request::Request as Entry;
use ferrocd_proto::mvccpb::{event::EventType, KeyValue};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub fn router() -> Router<Arc<Member>> {
    Router::new()
        .route("/v2/keys", get(get_root))
        .route("/v2/keys/", get(get_root))
        .route(
            "/v2/keys/{*path}",
            get(get_key).put(put_key).delete(delete_key),
        )
}

type Params = Query<HashMap<String, String>>;

#[derive(Serialize)]
struct Node {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dir: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<Node>,
    #[serde(rename = "modifiedIndex")]
    modified_index: i64,
    #[serde(rename = "createdIndex")]
    created_index: i64,
}

#[derive(Serialize)]
struct Answer {
    action: &'static str,
    node: Node,
    #[serde(rename = "prevNode", skip_serializing_if = "Option::is_none")]
    prev_node: Option<Node>,
}

/// etcd's v2 error codes.
const KEY_NOT_FOUND: u32 = 100;
const NODE_EXISTS: u32 = 105;
const EVENT_INDEX_CLEARED: u32 = 401;
const RAFT_INTERNAL: u32 = 300;

fn error(status: StatusCode, code: u32, message: &str, cause: &str, index: i64) -> Response {
    // Field order as etcd writes it.
    #[derive(Serialize)]
    struct ApiError<'a> {
        #[serde(rename = "errorCode")]
        code: u32,
        message: &'a str,
        cause: &'a str,
        index: i64,
    }
    let body = ApiError {
        code,
        message,
        cause,
        index,
    };
    reply(
        status,
        index,
        serde_json::to_string(&body).unwrap_or_default(),
    )
}

fn reply(status: StatusCode, index: i64, body: String) -> Response {
    (
        status,
        [
            ("content-type", "application/json".to_string()),
            ("x-etcd-index", index.to_string()),
        ],
        body,
    )
        .into_response()
}

fn answer(status: StatusCode, index: i64, a: &Answer) -> Response {
    reply(status, index, serde_json::to_string(a).unwrap_or_default())
}

fn internal(s: &Member, e: impl std::fmt::Display) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        RAFT_INTERNAL,
        "Raft Internal Error",
        &e.to_string(),
        s.hub.rev(),
    )
}

/// `/a//b/` -> `/a/b`; the root is `/`.
fn clean(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// Keys strictly below `dir`: the `dir/` prefix as [start, end).
fn below_bounds(dir: &str) -> (Vec<u8>, Vec<u8>) {
    let start = if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    };
    let mut end = start.clone().into_bytes();
    if let Some(last) = end.last_mut() {
        // The prefix ends in '/', so this cannot overflow.
        *last += 1;
    }
    (start.into_bytes(), end)
}

fn below(dir: &str) -> KeyRange {
    let (start, end) = below_bounds(dir);
    KeyRange::Bounded(start, end)
}

fn leaf(kv: &KeyValue) -> Node {
    Node {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        dir: None,
        value: Some(String::from_utf8_lossy(&kv.value).into_owned()),
        nodes: Vec::new(),
        modified_index: kv.mod_revision,
        created_index: kv.create_revision,
    }
}

/// The directory `dir` holding `kvs` (all keys below it), one level deep or
/// entirely; hidden names are left out.
fn directory(dir: &str, kvs: &[KeyValue], recursive: bool, top: bool) -> Node {
    let prefix = if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    };
    let mut children: BTreeMap<String, Vec<&KeyValue>> = BTreeMap::new();
    for kv in kvs {
        let key = String::from_utf8_lossy(&kv.key);
        let Some(rest) = key.strip_prefix(&prefix) else {
            continue;
        };
        let name = rest.split('/').next().unwrap_or_default().to_string();
        if name.is_empty() || name.starts_with('_') {
            continue;
        }
        children.entry(name).or_default().push(kv);
    }
    let nodes = if top || recursive {
        children
            .into_iter()
            .map(|(name, kvs)| {
                let key = format!("{prefix}{name}");
                match kvs.as_slice() {
                    [kv] if kv.key == key.as_bytes() => leaf(kv),
                    _ => {
                        let owned: Vec<KeyValue> = kvs.into_iter().cloned().collect();
                        directory(&key, &owned, recursive, false)
                    }
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Node {
        key: dir.to_string(),
        dir: Some(true),
        value: None,
        nodes,
        modified_index: kvs.iter().map(|k| k.mod_revision).max().unwrap_or(0),
        created_index: kvs.iter().map(|k| k.create_revision).min().unwrap_or(0),
    }
}

/// v2 keys are v3 keys: while v3 auth is on, the v2 API (which carries no
/// v3 credentials) refuses as etcd's v2 auth does.
fn refused_by_auth(s: &Member) -> Option<Response> {
    s.authn.enabled().then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            110,
            "The request requires user authentication",
            "Insufficient credentials",
            s.hub.rev(),
        )
    })
}

async fn get_root(State(s): State<Arc<Member>>, q: Params) -> Response {
    if let Some(r) = refused_by_auth(&s) {
        return r;
    }
    read(s, "/".into(), q.0).await
}

async fn get_key(State(s): State<Arc<Member>>, Path(path): Path<String>, q: Params) -> Response {
    if let Some(r) = refused_by_auth(&s) {
        return r;
    }
    read(s, clean(&path), q.0).await
}

async fn read(s: Arc<Member>, key: String, q: HashMap<String, String>) -> Response {
    let flag = |name: &str| q.get(name).is_some_and(|v| v == "true");
    if flag("wait") {
        let from = q.get("waitIndex").and_then(|v| v.parse::<i64>().ok());
        return wait(s, key, from, flag("recursive")).await;
    }
    if let Err(e) = s.reader.linearizable_read().await {
        return internal(&s, e);
    }
    let view = match s.reader.read() {
        Ok(v) => v,
        Err(e) => return internal(&s, e),
    };
    let index = view.rev;
    let single = view.range(
        &KeyRange::Single(key.clone().into_bytes()),
        RangeOptions::default(),
    );
    if let Ok(r) = &single {
        if let Some(kv) = r.kvs.first() {
            let a = Answer {
                action: "get",
                node: leaf(kv),
                prev_node: None,
            };
            return answer(StatusCode::OK, index, &a);
        }
    }
    match view.range(&below(&key), RangeOptions::default()) {
        Ok(r) if !r.kvs.is_empty() || key == "/" => {
            let a = Answer {
                action: "get",
                node: directory(&key, &r.kvs, flag("recursive"), true),
                prev_node: None,
            };
            answer(StatusCode::OK, index, &a)
        }
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            KEY_NOT_FOUND,
            "Key not found",
            &key,
            index,
        ),
        Err(e) => internal(&s, e),
    }
}

/// The first change at or after `from` to `key` (or below it, recursively).
async fn wait(s: Arc<Member>, key: String, from: Option<i64>, recursive: bool) -> Response {
    let start = from.unwrap_or_else(|| s.hub.rev() + 1);
    let range = if recursive {
        // The key itself and everything below it.
        KeyRange::Bounded(key.clone().into_bytes(), below_bounds(&key).1)
    } else {
        KeyRange::Single(key.clone().into_bytes())
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let spec = WatchSpec {
        watch_id: 0,
        range,
        no_put: false,
        no_delete: false,
    };
    let handle = s.hub.watch(spec, start, tx);
    let dir_prefix = format!("{key}/");
    let outcome = loop {
        match rx.recv().await {
            Some(HubMsg::Events { events, .. }) => {
                let hit = events.into_iter().find(|ev| {
                    ev.kv.as_ref().is_some_and(|kv| {
                        let k = String::from_utf8_lossy(&kv.key);
                        k == key || (recursive && k.starts_with(&dir_prefix))
                    })
                });
                if let Some(ev) = hit {
                    break Ok(ev);
                }
            }
            Some(HubMsg::Compacted { compact_rev, .. }) => break Err(compact_rev),
            None => break Err(0),
        }
    };
    s.hub.cancel(&handle);
    match outcome {
        Ok(ev) => {
            let kv = ev.kv.unwrap_or_default();
            let (action, node) = if ev.r#type == EventType::Delete as i32 {
                let mut n = leaf(&kv);
                n.value = None;
                ("delete", n)
            } else if kv.create_revision == kv.mod_revision {
                ("create", leaf(&kv))
            } else {
                ("set", leaf(&kv))
            };
            let a = Answer {
                action,
                node,
                prev_node: None,
            };
            answer(StatusCode::OK, s.hub.rev(), &a)
        }
        Err(compacted) => error(
            StatusCode::BAD_REQUEST,
            EVENT_INDEX_CLEARED,
            "The event in requested index is outdated and cleared",
            &format!("the requested history has been cleared [{compacted}/{start}]"),
            s.hub.rev(),
        ),
    }
}

async fn put_key(
    State(s): State<Arc<Member>>,
    Path(path): Path<String>,
    q: Params,
    body: String,
) -> Response {
    if let Some(r) = refused_by_auth(&s) {
        return r;
    }
    let key = clean(&path);
    // `value` comes as a form field (curl -d value=...) or in the query.
    let value = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "value")
        .map(|(_, v)| v.into_owned())
        .or_else(|| q.get("value").cloned())
        .unwrap_or_default();
    let put = RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.clone().into_bytes(),
            value: value.into_bytes(),
            prev_kv: true,
            ..Default::default()
        })),
    };
    // prevExist=false: create only; prevExist=true: replace only.
    let exists = |want: bool| Compare {
        result: if want {
            CompareResult::Greater
        } else {
            CompareResult::Equal
        } as i32,
        target: CompareTarget::Create as i32,
        key: key.clone().into_bytes(),
        target_union: Some(TargetUnion::CreateRevision(0)),
        ..Default::default()
    };
    let prev_exist = q.get("prevExist").map(|v| v == "true");
    let txn = TxnRequest {
        compare: prev_exist.map(exists).into_iter().collect(),
        success: vec![put],
        failure: Vec::new(),
    };
    let r = match s.proposer.propose(Entry::Txn(txn), None).await {
        Ok(EntryResponse::Txn(r)) => r,
        Ok(other) => return internal(&s, format!("unexpected {other:?}")),
        Err(e) => return internal(&s, e),
    };
    let index = r.header.as_ref().map_or(0, |h| h.revision);
    if !r.succeeded {
        return match prev_exist {
            Some(false) => error(
                StatusCode::PRECONDITION_FAILED,
                NODE_EXISTS,
                "Key already exists",
                &key,
                index,
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                KEY_NOT_FOUND,
                "Key not found",
                &key,
                index,
            ),
        };
    }
    let prev = r.responses.first().and_then(|op| match &op.response {
        Some(ferrocd_proto::etcdserverpb::response_op::Response::ResponsePut(p)) => {
            p.prev_kv.clone()
        }
        _ => None,
    });
    let node = Node {
        key: key.clone(),
        dir: None,
        value: Some(String::new()),
        nodes: Vec::new(),
        modified_index: index,
        created_index: prev.as_ref().map_or(index, |p| p.create_revision),
    };
    let node = match s.reader.read().ok().and_then(|v| {
        v.range(
            &KeyRange::Single(key.clone().into_bytes()),
            RangeOptions {
                rev: index,
                ..Default::default()
            },
        )
        .ok()
    }) {
        Some(r) if !r.kvs.is_empty() => leaf(&r.kvs[0]),
        _ => node,
    };
    let (status, action) = match (prev_exist, &prev) {
        (Some(false), _) => (StatusCode::CREATED, "create"),
        (Some(true), _) => (StatusCode::OK, "update"),
        (None, None) => (StatusCode::CREATED, "set"),
        (None, Some(_)) => (StatusCode::OK, "set"),
    };
    let a = Answer {
        action,
        node,
        prev_node: prev.as_ref().map(leaf),
    };
    answer(status, index, &a)
}

async fn delete_key(State(s): State<Arc<Member>>, Path(path): Path<String>) -> Response {
    if let Some(r) = refused_by_auth(&s) {
        return r;
    }
    let key = clean(&path);
    let req = DeleteRangeRequest {
        key: key.clone().into_bytes(),
        prev_kv: true,
        ..Default::default()
    };
    let r = match s.proposer.propose(Entry::DeleteRange(req), None).await {
        Ok(EntryResponse::DeleteRange(r)) => r,
        Ok(other) => return internal(&s, format!("unexpected {other:?}")),
        Err(e) => return internal(&s, e),
    };
    let index = r.header.as_ref().map_or(0, |h| h.revision);
    let Some(prev) = r.prev_kvs.first() else {
        return error(
            StatusCode::NOT_FOUND,
            KEY_NOT_FOUND,
            "Key not found",
            &key,
            index,
        );
    };
    let a = Answer {
        action: "delete",
        node: Node {
            key: key.clone(),
            dir: None,
            value: None,
            nodes: Vec::new(),
            modified_index: index,
            created_index: prev.create_revision,
        },
        prev_node: Some(leaf(prev)),
    };
    answer(StatusCode::OK, index, &a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            create_revision: rev,
            mod_revision: rev,
            ..Default::default()
        }
    }

    #[test]
    fn a_directory_lists_one_level_and_hides_underscore_names() {
        let kvs = [
            kv("/d/tok/_config/size", "3", 4),
            kv("/d/tok/abc", "infra0=http://a:2380", 5),
            kv("/d/tok/sub/x", "1", 6),
        ];
        let n = directory("/d/tok", &kvs, false, true);
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(
            json,
            r#"{"key":"/d/tok","dir":true,"nodes":[{"key":"/d/tok/abc","value":"infra0=http://a:2380","modifiedIndex":5,"createdIndex":5},{"key":"/d/tok/sub","dir":true,"modifiedIndex":6,"createdIndex":6}],"modifiedIndex":6,"createdIndex":4}"#
        );
        assert_eq!(clean("a//b/"), "/a/b");
        assert_eq!(clean(""), "/");
    }
}

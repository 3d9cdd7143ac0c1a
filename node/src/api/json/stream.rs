//! The gateway's streams, as grpc-gateway v1 runs them: a request body of
//! JSON messages one after another, an answer of `{"result":...}` lines
//! (or one error chunk), written as the gRPC stream yields them.

use super::body;
use super::Gateway;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ferrocd_proto::etcdserverpb as pb;
use ferrocd_proto::v3electionpb as el;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::convert::Infallible;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::AbortOnDropHandle;
use tonic::{Status, Streaming};

/// `/v3/watch`: the watch stream stays open after the request body ends,
/// as etcd's does after a client's last request.
pub async fn watch(State(g): State<Gateway>, headers: HeaderMap, raw: Body) -> Response {
    both_ways::<pb::WatchRequest, pb::WatchResponse>(
        g,
        "/etcdserverpb.Watch/Watch",
        headers,
        raw,
        true,
    )
    .await
}

/// `/v3/lease/keepalive`: answers each request; ends with the body.
pub async fn keep_alive(State(g): State<Gateway>, headers: HeaderMap, raw: Body) -> Response {
    both_ways::<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>(
        g,
        "/etcdserverpb.Lease/LeaseKeepAlive",
        headers,
        raw,
        false,
    )
    .await
}

pub async fn snapshot(State(g): State<Gateway>, headers: HeaderMap, raw: Bytes) -> Response {
    answers_stream::<pb::SnapshotRequest, pb::SnapshotResponse>(
        g.up,
        "/etcdserverpb.Maintenance/Snapshot",
        headers,
        raw,
    )
    .await
}

pub async fn observe(State(g): State<Gateway>, headers: HeaderMap, raw: Bytes) -> Response {
    answers_stream::<el::LeaderRequest, el::LeaderResponse>(
        g.up,
        "/v3electionpb.Election/Observe",
        headers,
        raw,
    )
    .await
}

async fn answers_stream<Req, Resp>(
    up: super::Upstream,
    path: &'static str,
    headers: HeaderMap,
    raw: Bytes,
) -> Response
where
    Req: prost::Message + Default + DeserializeOwned + Send + Sync + 'static,
    Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
{
    let msg: Req = match body::decode(&raw) {
        Ok(m) => m,
        Err(text) => return body::error(&Status::invalid_argument(text)),
    };
    let call = up
        .server_streaming::<Req, Resp>(path, super::request(msg, &headers))
        .await;
    respond(call, None).await
}

async fn both_ways<Req, Resp>(
    g: Gateway,
    path: &'static str,
    headers: HeaderMap,
    raw: Body,
    keep_open: bool,
) -> Response
where
    Req: prost::Message + Default + DeserializeOwned + Send + Sync + 'static,
    Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
{
    let mut messages = JsonMessages::new(raw, g.max_body);
    // grpc-gateway fails the call when the first message does not decode
    // (with code Unknown); a later bad message only ends the sending side.
    let first = match messages.next::<Req>().await {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(text)) => return body::error(&Status::unknown(text)),
    };
    let (tx, rx) = mpsc::channel::<Req>(16);
    let feeder = AbortOnDropHandle::new(tokio::spawn(async move {
        if let Some(m) = first {
            if tx.send(m).await.is_err() {
                return;
            }
        }
        while let Some(Ok(m)) = messages.next::<Req>().await {
            if tx.send(m).await.is_err() {
                return;
            }
        }
        if keep_open {
            tx.closed().await;
        }
    }));
    let request = super::request(ReceiverStream::new(rx), &headers);
    let call = g.up.streaming::<_, Req, Resp>(path, request).await;
    respond(call, Some(feeder)).await
}

/// The answer: the status of the first message decides the HTTP status, as
/// grpc-gateway writes no header before it. `feeder` lives as long as the
/// answer, so a client that goes away ends the gRPC stream too.
async fn respond<Resp>(
    call: Result<Streaming<Resp>, Status>,
    feeder: Option<AbortOnDropHandle<()>>,
) -> Response
where
    Resp: prost::Message + Default + Serialize + Send + Sync + 'static,
{
    let mut stream = match call {
        Ok(s) => s,
        Err(status) => return error_answer(&status),
    };
    let first = match stream.message().await {
        Ok(Some(m)) => m,
        Ok(None) => return chunked(Body::empty()),
        Err(status) => return error_answer(&status),
    };
    let rest = futures::stream::unfold(Some((stream, feeder)), |state| async move {
        let (mut stream, feeder) = state?;
        match stream.message().await {
            Ok(Some(m)) => Some((result_chunk(&m), Some((stream, feeder)))),
            Ok(None) => None,
            Err(status) => Some((Bytes::from(body::stream_error_chunk(&status)), None)),
        }
    });
    let chunks = futures::stream::iter([result_chunk(&first)])
        .chain(rest)
        .map(Ok::<_, Infallible>);
    chunked(Body::from_stream(chunks))
}

fn result_chunk<T: Serialize>(msg: &T) -> Bytes {
    Bytes::from(format!("{{\"result\":{}}}\n", body::encode(msg)))
}

fn error_answer(status: &Status) -> Response {
    let code = body::http_status(status.code());
    let mut resp = chunked(Body::from(body::stream_error_chunk(status)));
    *resp.status_mut() = code;
    resp
}

fn chunked(b: Body) -> Response {
    let mut resp = (StatusCode::OK, b).into_response();
    let h = resp.headers_mut();
    for (k, v) in body::CORS {
        h.insert(k, http::HeaderValue::from_static(v));
    }
    h.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    h.insert(
        "grpc-metadata-content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// A request body read as JSON values one after another.
struct JsonMessages {
    body: axum::body::BodyDataStream,
    buf: Vec<u8>,
    ended: bool,
    /// The longest one message may be (its unread rest is not buffered).
    max: usize,
    scan: Scan,
}

impl JsonMessages {
    fn new(raw: Body, max: usize) -> JsonMessages {
        JsonMessages {
            body: raw.into_data_stream(),
            buf: Vec::new(),
            ended: false,
            max,
            scan: Scan::default(),
        }
    }

    /// The next message; None at the end of the body. Each byte is looked
    /// at once until a value is complete, which is then parsed once.
    async fn next<T: DeserializeOwned + Default>(&mut self) -> Option<Result<T, String>> {
        loop {
            let end = self.scan.value_end(&self.buf);
            if end.is_some() || self.ended {
                let upto = end.unwrap_or(self.buf.len());
                self.scan = Scan::default();
                let mut values = serde_json::Deserializer::from_slice(&self.buf[..upto])
                    .into_iter::<serde_json::Value>();
                let parsed = match values.next() {
                    None => return None,
                    Some(Ok(v)) => Ok((v, values.byte_offset())),
                    Some(Err(e)) if e.is_eof() => Err("unexpected EOF".to_string()),
                    Some(Err(e)) => Err(body::go_syntax_error(&e, &self.buf)),
                };
                return Some(parsed.and_then(|(value, used)| {
                    self.buf.drain(..used);
                    body::decode_value(value)
                }));
            }
            if self.buf.len() > self.max {
                return Some(Err(format!("message longer than {} bytes", self.max)));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                _ => self.ended = true,
            }
        }
    }
}

/// Where the first JSON value of a growing buffer ends, found by looking
/// at each byte once (nesting and strings), not by parsing it again for
/// every chunk that arrives.
#[derive(Default)]
struct Scan {
    pos: usize,
    kind: Option<ValueKind>,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum ValueKind {
    Container,
    Text,
    Literal,
}

impl Scan {
    fn value_end(&mut self, buf: &[u8]) -> Option<usize> {
        while self.pos < buf.len() {
            let (i, b) = (self.pos, buf[self.pos]);
            self.pos += 1;
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => {
                        self.in_string = false;
                        if self.kind == Some(ValueKind::Text) {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match (self.kind, b) {
                (None, b' ' | b'\t' | b'\r' | b'\n') => {}
                (None, b'{' | b'[') => {
                    self.kind = Some(ValueKind::Container);
                    self.depth = 1;
                }
                (None, b'"') => {
                    self.kind = Some(ValueKind::Text);
                    self.in_string = true;
                }
                (None, _) => self.kind = Some(ValueKind::Literal),
                (
                    Some(ValueKind::Literal),
                    b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'[' | b'"' | b'}' | b']' | b',',
                ) => {
                    return Some(i);
                }
                (Some(ValueKind::Container), b'"') => self.in_string = true,
                (Some(ValueKind::Container), b'{' | b'[') => self.depth += 1,
                (Some(ValueKind::Container), b'}' | b']') => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Scan;

    fn ends(text: &str) -> Option<usize> {
        Scan::default().value_end(text.as_bytes())
    }

    #[test]
    fn values_end_where_json_says_they_do() {
        assert_eq!(ends(r#" {"a":"}{\"","b":[1,{}]} {"#), Some(24));
        assert_eq!(ends(r#"{"a":"#), None);
        assert_eq!(ends(r#""x\"y" 1"#), Some(6));
        assert_eq!(ends("null {"), Some(4));
        assert_eq!(ends("123"), None);
    }

    #[test]
    fn a_value_arriving_in_pieces_is_scanned_once() {
        let text = br#"{"create_request":{"key":"YQ=="}}"#;
        let mut scan = Scan::default();
        let mut end = None;
        for n in 1..=text.len() {
            end = scan.value_end(&text[..n]);
            if end.is_some() {
                assert_eq!(n, text.len());
            }
        }
        assert_eq!(end, Some(text.len()));
    }
}

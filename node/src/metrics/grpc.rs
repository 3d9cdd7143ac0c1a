//! gRPC server metrics as etcd exports them (go-grpc-prometheus):
//! `grpc_server_started_total`, `grpc_server_handled_total` (by code),
//! `grpc_server_msg_received_total`, `grpc_server_msg_sent_total`, and with
//! `--metrics extensive` `grpc_server_handling_seconds`; plus
//! `etcd_network_client_grpc_{received,sent}_bytes_total`. Recorded by a
//! middleware around the gRPC routes that counts length-prefixed messages
//! in both bodies and reads `grpc-status` from the trailers.

use super::{Counter, Histogram, Labels, Level};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Buf;
use http_body::Frame;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// grpc-go's names of the status codes, by number.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;

const UNARY: &str = "unary";
const BIDI: &str = "bidi_stream";
const SERVER_STREAM: &str = "server_stream";

/// Every method the member serves: (service, method, type).
const METHODS: &[(&str, &str, &str)] = &[
    ("etcdserverpb.KV", "Range", UNARY),
    ("etcdserverpb.KV", "Put", UNARY),
    ("etcdserverpb.KV", "DeleteRange", UNARY),
    ("etcdserverpb.KV", "Txn", UNARY),
    ("etcdserverpb.KV", "Compact", UNARY),
    ("etcdserverpb.Watch", "Watch", BIDI),
    ("etcdserverpb.Lease", "LeaseGrant", UNARY),
    ("etcdserverpb.Lease", "LeaseRevoke", UNARY),
    ("etcdserverpb.Lease", "LeaseKeepAlive", BIDI),
    ("etcdserverpb.Lease", "LeaseTimeToLive", UNARY),
    ("etcdserverpb.Lease", "LeaseLeases", UNARY),
    ("etcdserverpb.Cluster", "MemberAdd", UNARY),
    ("etcdserverpb.Cluster", "MemberRemove", UNARY),
    ("etcdserverpb.Cluster", "MemberUpdate", UNARY),
    ("etcdserverpb.Cluster", "MemberList", UNARY),
    ("etcdserverpb.Cluster", "MemberPromote", UNARY),
    ("etcdserverpb.Maintenance", "Alarm", UNARY),
    ("etcdserverpb.Maintenance", "Status", UNARY),
    ("etcdserverpb.Maintenance", "Defragment", UNARY),
    ("etcdserverpb.Maintenance", "Hash", UNARY),
    ("etcdserverpb.Maintenance", "HashKV", UNARY),
    ("etcdserverpb.Maintenance", "Snapshot", SERVER_STREAM),
    ("etcdserverpb.Maintenance", "MoveLeader", UNARY),
    ("etcdserverpb.Maintenance", "Downgrade", UNARY),
    ("etcdserverpb.Auth", "AuthEnable", UNARY),
    ("etcdserverpb.Auth", "AuthDisable", UNARY),
    ("etcdserverpb.Auth", "AuthStatus", UNARY),
    ("etcdserverpb.Auth", "Authenticate", UNARY),
    ("etcdserverpb.Auth", "UserAdd", UNARY),
    ("etcdserverpb.Auth", "UserGet", UNARY),
    ("etcdserverpb.Auth", "UserList", UNARY),
    ("etcdserverpb.Auth", "UserDelete", UNARY),
    ("etcdserverpb.Auth", "UserChangePassword", UNARY),
    ("etcdserverpb.Auth", "UserGrantRole", UNARY),
    ("etcdserverpb.Auth", "UserRevokeRole", UNARY),
    ("etcdserverpb.Auth", "RoleAdd", UNARY),
    ("etcdserverpb.Auth", "RoleGet", UNARY),
    ("etcdserverpb.Auth", "RoleList", UNARY),
    ("etcdserverpb.Auth", "RoleDelete", UNARY),
    ("etcdserverpb.Auth", "RoleGrantPermission", UNARY),
    ("etcdserverpb.Auth", "RoleRevokePermission", UNARY),
    ("v3lockpb.Lock", "Lock", UNARY),
    ("v3lockpb.Lock", "Unlock", UNARY),
    ("v3electionpb.Election", "Campaign", UNARY),
    ("v3electionpb.Election", "Proclaim", UNARY),
    ("v3electionpb.Election", "Leader", UNARY),
    ("v3electionpb.Election", "Observe", SERVER_STREAM),
    ("v3electionpb.Election", "Resign", UNARY),
];

/// One method's series.
#[derive(Debug)]
struct Method {
    started: Counter,
    msg_received: Counter,
    msg_sent: Counter,
    handled: Vec<Counter>,
    handling: Option<Histogram>,
}

/// The series of every method, looked up by path without a lock.
#[derive(Debug, Clone)]
pub struct GrpcMetrics {
    methods: Arc<HashMap<String, Arc<Method>>>,
    received_bytes: Counter,
    sent_bytes: Counter,
}

fn labels(service: &str, method: &str, kind: &str) -> Labels {
    vec![
        ("grpc_method".into(), method.into()),
        ("grpc_service".into(), service.into()),
        ("grpc_type".into(), kind.into()),
    ]
}

impl GrpcMetrics {
    pub fn register(r: &mut Registry, level: Level) -> GrpcMetrics {
        let started = Family::<Labels, Counter>::default();
        let handled = Family::<Labels, Counter>::default();
        let received = Family::<Labels, Counter>::default();
        let sent = Family::<Labels, Counter>::default();
        let handling = Family::<Labels, Histogram>::default();
        let mut methods = HashMap::new();
        for (service, method, kind) in METHODS {
            let l = labels(service, method, kind);
            let by_code = CODES
                .iter()
                .map(|code| {
                    let mut l = l.clone();
                    l.insert(0, ("grpc_code".into(), (*code).into()));
                    handled.get_or_create(&l).clone()
                })
                .collect();
            methods.insert(
                format!("/{service}/{method}"),
                Arc::new(Method {
                    started: started.get_or_create(&l).clone(),
                    msg_received: received.get_or_create(&l).clone(),
                    msg_sent: sent.get_or_create(&l).clone(),
                    handled: by_code,
                    handling: (level == Level::Extensive)
                        .then(|| handling.get_or_create(&l).clone()),
                }),
            );
        }
        r.register(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            started,
        );
        r.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            handled,
        );
        r.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server.",
            received,
        );
        r.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server.",
            sent,
        );
        if level == Level::Extensive {
            r.register(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                handling,
            );
        }
        let received_bytes = Counter::default();
        let sent_bytes = Counter::default();
        r.register(
            "etcd_network_client_grpc_received_bytes",
            "The total number of bytes received from grpc clients.",
            received_bytes.clone(),
        );
        r.register(
            "etcd_network_client_grpc_sent_bytes",
            "The total number of bytes sent to grpc clients.",
            sent_bytes.clone(),
        );
        GrpcMetrics {
            methods: Arc::new(methods),
            received_bytes,
            sent_bytes,
        }
    }
}

/// One call in flight: ends once, with the code of its trailers (or
/// Canceled when its answer is dropped first).
struct Call {
    method: Arc<Method>,
    /// Client bytes in and out.
    received_bytes: Counter,
    sent_bytes: Counter,
    started: Instant,
    done: AtomicBool,
}

impl Call {
    fn finish(&self, code: usize) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(c) = self.method.handled.get(code) {
            c.inc();
        }
        if let Some(h) = &self.method.handling {
            h.observe(self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(CANCELED);
    }
}

fn status_code(headers: &http::HeaderMap) -> Option<usize> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The middleware: wraps both bodies of a known gRPC method.
pub async fn record(State(metrics): State<GrpcMetrics>, req: Request, next: Next) -> Response {
    let Some(method) = metrics.methods.get(req.uri().path()).cloned() else {
        return next.run(req).await;
    };
    method.started.inc();
    let call = Arc::new(Call {
        method,
        received_bytes: metrics.received_bytes.clone(),
        sent_bytes: metrics.sent_bytes.clone(),
        started: Instant::now(),
        done: AtomicBool::new(false),
    });
    let req = req.map(|b| {
        Body::new(Counting {
            inner: b,
            frames: Frames::default(),
            call: call.clone(),
            sending: false,
        })
    });
    let resp = next.run(req).await;
    // A call refused at once answers with the status in its headers.
    if let Some(code) = status_code(resp.headers()) {
        call.finish(code);
        return resp;
    }
    resp.map(|b| {
        Body::new(Counting {
            inner: b,
            frames: Frames::default(),
            call,
            sending: true,
        })
    })
}

/// Counts gRPC's length-prefixed messages in a byte stream.
#[derive(Default)]
struct Frames {
    header: [u8; 5],
    have: usize,
    remaining: usize,
}

impl Frames {
    /// How many messages begin in `data`.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut started = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                started += 1;
                self.have = 0;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.remaining = len as usize;
            }
        }
        started
    }
}

/// A request or response body that counts what passes.
struct Counting {
    inner: Body,
    frames: Frames,
    call: Arc<Call>,
    /// The response (messages sent) rather than the request.
    sending: bool,
}

impl http_body::Body for Counting {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let messages = this.frames.feed(data.chunk());
                let call = &this.call;
                let (bytes, msgs) = if this.sending {
                    (&call.sent_bytes, &call.method.msg_sent)
                } else {
                    (&call.received_bytes, &call.method.msg_received)
                };
                bytes.inc_by(data.len() as u64);
                msgs.inc_by(messages);
            } else if let Some(trailers) = frame.trailers_ref() {
                if this.sending {
                    this.call.finish(status_code(trailers).unwrap_or(2));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::Frames;

    #[test]
    fn messages_are_counted_across_chunks() {
        let mut f = Frames::default();
        // Two messages (3 and 0 bytes), split mid-header and mid-payload.
        let stream = [0u8, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0];
        assert_eq!(f.feed(&stream[..2]), 0);
        assert_eq!(f.feed(&stream[2..6]), 1);
        assert_eq!(f.feed(&stream[6..]), 1);
        assert_eq!(f.feed(&[0, 0, 0, 0, 1, 9, 0, 0]), 1);
    }
}

//! Watchers that record every message they get. A broken stream is asked
//! again from the revision after the last one delivered, as clients
//! resume; progress is asked for every second (bookmarks).

use crate::history::{Event, WatchMessage, WatchSpec, WatchStream};
use crate::traffic::{kv_of, prefix_end};
use ferrocd_proto::etcdserverpb::{
    watch_client::WatchClient, watch_create_request::FilterType, watch_request::RequestUnion,
    WatchCreateRequest, WatchProgressRequest, WatchRequest,
};
use ferrocd_proto::mvccpb::event::EventType;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::StreamExt;

/// Until which revision the watchers must deliver before they stop
/// (0: keep going).
#[derive(Clone, Default)]
pub struct StopAt(Arc<AtomicI64>);

impl StopAt {
    pub fn set(&self, rev: i64) {
        self.0.store(rev, Ordering::SeqCst);
    }

    fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct Watcher {
    pub stream: Arc<Mutex<WatchStream>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub fn start(
        name: String,
        endpoint: String,
        spec: WatchSpec,
        request_progress: bool,
        stop: StopAt,
    ) -> Watcher {
        let stream = Arc::new(Mutex::new(WatchStream {
            name,
            spec: spec.clone(),
            messages: Vec::new(),
        }));
        let record = stream.clone();
        let task = tokio::spawn(async move {
            let mut delivered = spec.start_rev - 1;
            loop {
                let from = delivered + 1;
                let asks = request_progress || stop.get() != 0;
                watch_once(&endpoint, &spec, from, asks, &record, &mut delivered, &stop).await;
                if stop.get() != 0 && delivered >= stop.get() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                push(
                    &record,
                    WatchMessage::Resumed {
                        resume_from: delivered + 1,
                    },
                );
            }
        });
        Watcher { stream, task }
    }

    /// The revision the watcher is known to have everything up to (from
    /// its latest events or progress notification).
    pub fn delivered(&self) -> i64 {
        let Ok(s) = self.stream.lock() else {
            return 0;
        };
        s.messages
            .iter()
            .rev()
            .find_map(|m| match m {
                WatchMessage::Events { events, .. } => events.last().map(|e| e.kv.mod_rev),
                WatchMessage::Progress { rev } => Some(*rev),
                WatchMessage::Resumed { .. } => None,
            })
            .unwrap_or(0)
    }

    pub fn recorded(&self) -> WatchStream {
        self.stream
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

fn push(record: &Arc<Mutex<WatchStream>>, m: WatchMessage) {
    if let Ok(mut s) = record.lock() {
        s.messages.push(m);
    }
}

/// One stream from `from` until it breaks or has delivered `stop`.
async fn watch_once(
    endpoint: &str,
    spec: &WatchSpec,
    from: i64,
    request_progress: bool,
    record: &Arc<Mutex<WatchStream>>,
    delivered: &mut i64,
    stop: &StopAt,
) {
    let Ok(ch) = ferrocd_testkit::grpc::dial(endpoint, None).await else {
        return;
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (key, range_end) = if spec.prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (spec.prefix.as_bytes().to_vec(), prefix_end(&spec.prefix))
    };
    let create = WatchCreateRequest {
        key,
        range_end,
        start_revision: from,
        prev_kv: true,
        progress_notify: true,
        filters: if spec.no_delete {
            vec![FilterType::Nodelete as i32]
        } else {
            vec![]
        },
        ..WatchCreateRequest::default()
    };
    if tx
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await
        .is_err()
    {
        return;
    }
    let Ok(resp) = WatchClient::new(ch)
        .max_decoding_message_size(64 << 20)
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    else {
        return;
    };
    let mut stream = resp.into_inner();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                // At the end every watcher asks: its last revision tells
                // it when it has everything.
                if !request_progress && stop.get() == 0 {
                    continue;
                }
                let ask = WatchRequest {
                    request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                };
                if tx.send(ask).await.is_err() {
                    return;
                }
            }
            next = tokio::time::timeout(Duration::from_secs(5), stream.next()) => {
                let Ok(Some(Ok(r))) = next else { return };
                if r.created {
                    continue;
                }
                if r.canceled || r.compact_revision != 0 {
                    push(record, WatchMessage::Resumed { resume_from: *delivered + 1 });
                    return;
                }
                let header_rev = r.header.as_ref().map(|h| h.revision).unwrap_or(0);
                if r.events.is_empty() {
                    push(record, WatchMessage::Progress { rev: header_rev });
                    *delivered = (*delivered).max(header_rev);
                } else {
                    let events: Vec<Event> = r
                        .events
                        .iter()
                        .map(|e| Event {
                            delete: e.r#type == EventType::Delete as i32,
                            kv: e.kv.as_ref().map(kv_of).unwrap_or_else(|| kv_of(&Default::default())),
                            prev: e.prev_kv.as_ref().map(kv_of),
                        })
                        .collect();
                    let last = events.last().map(|e| e.kv.mod_rev).unwrap_or(0);
                    push(record, WatchMessage::Events { header_rev, events });
                    *delivered = (*delivered).max(last);
                }
                if stop.get() != 0 && *delivered >= stop.get() {
                    return;
                }
            }
        }
    }
}

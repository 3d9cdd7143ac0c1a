//! The TCP proxy: round-robin over live endpoints; a dead one is skipped
//! and probed again every retry delay.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

const DIAL_TIMEOUT: Duration = Duration::from_secs(3);

struct Remote {
    addr: String,
    active: bool,
}

#[derive(Clone)]
pub struct TcpProxy {
    remotes: Arc<Mutex<Vec<Remote>>>,
    next: Arc<AtomicUsize>,
    retry_delay: Duration,
}

impl TcpProxy {
    pub fn new(endpoints: Vec<String>, retry_delay: Duration) -> TcpProxy {
        TcpProxy {
            remotes: Arc::new(Mutex::new(
                endpoints
                    .into_iter()
                    .map(|addr| Remote { addr, active: true })
                    .collect(),
            )),
            next: Arc::default(),
            retry_delay,
        }
    }

    pub async fn run(self, listener: TcpListener) {
        tokio::spawn(self.clone().monitor());
        loop {
            let (client, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let Some(mut upstream) = proxy.dial().await else {
                    tracing::warn!(client = %peer, "no endpoint available; closing the connection");
                    return;
                };
                let mut client = client;
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    }

    /// The next active endpoint in turn.
    fn pick(&self) -> Option<String> {
        let remotes = self.remotes.lock().unwrap_or_else(|e| e.into_inner());
        let active: Vec<&Remote> = remotes.iter().filter(|r| r.active).collect();
        if active.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % active.len();
        Some(active[i].addr.clone())
    }

    fn set_active(&self, addr: &str, active: bool) {
        let mut remotes = self.remotes.lock().unwrap_or_else(|e| e.into_inner());
        for r in remotes.iter_mut().filter(|r| r.addr == addr) {
            if r.active != active {
                if active {
                    tracing::info!(endpoint = %addr, "activated endpoint");
                } else {
                    tracing::warn!(endpoint = %addr, "deactivated endpoint");
                }
            }
            r.active = active;
        }
    }

    /// Connects to the next endpoint that answers, setting aside those that do not.
    async fn dial(&self) -> Option<TcpStream> {
        while let Some(addr) = self.pick() {
            match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr)).await {
                Ok(Ok(s)) => return Some(s),
                _ => self.set_active(&addr, false),
            }
        }
        None
    }

    /// Every retry delay, probes the inactive endpoints.
    async fn monitor(self) {
        loop {
            tokio::time::sleep(self.retry_delay).await;
            let inactive: Vec<String> = {
                let remotes = self.remotes.lock().unwrap_or_else(|e| e.into_inner());
                remotes
                    .iter()
                    .filter(|r| !r.active)
                    .map(|r| r.addr.clone())
                    .collect()
            };
            for addr in inactive {
                if let Ok(Ok(_)) =
                    tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&addr)).await
                {
                    self.set_active(&addr, true);
                }
            }
        }
    }
}

//! Accepting connections for tonic servers, plain or TLS. TLS handshakes
//! run off the accept loop (a slow or hostile client cannot stall the
//! others), refusals are logged as etcd logs them, and peers' certificates
//! can be held to an allowed CN or host name.

use super::ServerTls;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::Connected;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection: plain TCP, or TLS over it.
pub enum Conn {
    Plain(TcpStream),
    /// With the Common Name of the client's verified certificate, if any.
    Tls(
        Box<tokio_rustls::server::TlsStream<TcpStream>>,
        Option<String>,
    ),
}

/// What every request on a connection knows of it (in its extensions).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// The verified client certificate's Common Name (`--client-cert-auth`).
    pub common_name: Option<String>,
}

impl ConnInfo {
    pub fn of<T>(req: &tonic::Request<T>) -> Option<&ConnInfo> {
        req.extensions().get::<ConnInfo>()
    }
}

/// The peer address of a request's connection.
pub fn remote_addr<T>(req: &tonic::Request<T>) -> Option<SocketAddr> {
    ConnInfo::of(req).and_then(|c| c.remote)
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        match self {
            Conn::Plain(s) => ConnInfo {
                remote: s.peer_addr().ok(),
                common_name: None,
            },
            Conn::Tls(s, cn) => ConnInfo {
                remote: s.get_ref().0.peer_addr().ok(),
                common_name: cn.clone(),
            },
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections of `listener`: as they are without `tls`; with it,
/// those that completed a TLS handshake (and, for peers, passed the allowed
/// CN / host name check).
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
) -> tokio_stream::wrappers::ReceiverStream<Result<Conn, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            // Stop (and free the port) once the server dropped the stream.
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(tls) = tls.clone() else {
                if tx.send(Ok(Conn::Plain(tcp))).await.is_err() {
                    return;
                }
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
                let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        tracing::warn!(remote_addr = %remote, error = %e, "rejected connection");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(remote_addr = %remote, error = "TLS handshake timed out", "rejected connection");
                        return;
                    }
                };
                let certs = conn.get_ref().1.peer_certificates();
                if let Err(why) = super::check_peer(tls.files(), certs) {
                    tracing::warn!(remote_addr = %remote, error = %why, "rejected connection");
                    return;
                }
                // rustls verified the chain (client certificates are only
                // asked for with --client-cert-auth).
                let cn = certs
                    .and_then(|c| c.first())
                    .and_then(|c| super::common_name(c).ok().flatten());
                let _ = tx.send(Ok(Conn::Tls(Box::new(conn), cn))).await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

//! Dialing https peer URLs: a tower connector for tonic channels that
//! makes a TCP connection and a TLS handshake with the member's peer
//! client identity (its files as they are at dial time).

use super::ClientTls;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct TlsConnector {
    pub tls: Arc<ClientTls>,
}

type Conn = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower::Service<http::Uri> for TlsConnector {
    type Response = Conn;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let bad =
                |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
            let host = uri.host().ok_or_else(|| bad("peer URL without a host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(2380);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from(tls.server_name(&host))
                .map_err(|e| bad(&format!("bad peer host name: {e}")))?;
            let conn = tokio_rustls::TlsConnector::from(tls.current())
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(conn))
        })
    }
}

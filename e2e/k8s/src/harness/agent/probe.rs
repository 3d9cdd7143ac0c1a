//! Running a container's probes (HTTP GET and TCP) against the pod's address.

use super::*;

/// One HTTP GET; true for a 2xx/3xx answer.
pub(super) fn http_ok(ip: Ipv4Addr, port: u16, path: &str, timeout: Duration) -> bool {
    let addr = SocketAddr::from((ip, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if s.read_exact(&mut head).is_err() {
        return false;
    }
    matches!(head.get(9), Some(b'2') | Some(b'3'))
}

pub(super) fn probe_port(
    c: &Container,
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
) -> Option<u16> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match port {
        IntOrString::Int(p) => Some(*p as u16),
        IntOrString::String(name) => c
            .ports
            .as_ref()?
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port as u16),
    }
}

/// Runs one probe against the pod; `None` when the probe is of a kind the
/// agent does not run (counted as success).
pub(super) fn run_probe(c: &Container, p: &Probe, ip: Ipv4Addr) -> bool {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    if let Some(h) = &p.http_get {
        let Some(port) = probe_port(c, &h.port) else {
            return false;
        };
        return http_ok(ip, port, h.path.as_deref().unwrap_or("/"), timeout);
    }
    if let Some(t) = &p.tcp_socket {
        let Some(port) = probe_port(c, &t.port) else {
            return false;
        };
        return TcpStream::connect_timeout(&SocketAddr::from((ip, port)), timeout).is_ok();
    }
    true
}

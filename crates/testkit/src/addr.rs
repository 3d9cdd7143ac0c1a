//! Loopback addresses no other test or run uses: random in 127.0.0.0/8,
//! with the given ports checked free on each.

use std::net::{Ipv4Addr, TcpListener};

fn free(ip: Ipv4Addr, ports: &[u16]) -> bool {
    ports.iter().all(|p| TcpListener::bind((ip, *p)).is_ok())
}

/// One address 127.a.b.c with every one of `ports` free.
pub fn loopback_ip(ports: &[u16]) -> Ipv4Addr {
    loop {
        let r: u32 = rand::random();
        let ip = Ipv4Addr::new(
            127,
            100 + (r % 150) as u8,
            (r >> 8) as u8,
            1 + ((r >> 16) % 250) as u8,
        );
        if free(ip, ports) {
            return ip;
        }
    }
}

/// `n` addresses 127.a.b.1..n in one random /24, every one of `ports` free on each.
pub fn loopback_ips(n: u8, ports: &[u16]) -> Vec<Ipv4Addr> {
    loop {
        let r: u32 = rand::random();
        let (a, b) = (100 + (r % 150) as u8, (r >> 8) as u8);
        let ips: Vec<Ipv4Addr> = (1..=n).map(|i| Ipv4Addr::new(127, a, b, i)).collect();
        if ips.iter().all(|ip| free(*ip, ports)) {
            return ips;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_share_a_prefix_and_have_the_ports_free() {
        let ips = loopback_ips(3, &[2379, 2380]);
        assert_eq!(ips.len(), 3);
        assert!(ips
            .iter()
            .all(|ip| ip.octets()[..3] == ips[0].octets()[..3]));
        let held = TcpListener::bind((ips[0], 2379)).unwrap();
        assert!(!free(ips[0], &[2379]), "a bound port is not free");
        drop(held);
        let one = loopback_ip(&[2379]);
        assert_eq!(one.octets()[0], 127);
    }
}

//! Loopback addresses no other test or run uses: random /24s in
//! 127.0.0.0/8, with the given ports checked free on each, and reserved
//! across test processes until their servers have bound them.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

fn free(ip: Ipv4Addr, ports: &[u16]) -> bool {
    ports.iter().all(|p| TcpListener::bind((ip, *p)).is_ok())
}

/// How many of this process's newest picks stay reserved. Checking a port
/// free and a server binding it are apart by a process start, and two test
/// processes picking one /24 in that window collided ("address already in
/// use"); by the time this many newer picks were made, the servers of an
/// older one hold its ports, which the check sees.
const HELD_PICKS: usize = 64;

/// The reservations held: exclusive locks on files named after their /24
/// (empty files, left in place: removing one could race a process locking it).
static HELD: Mutex<VecDeque<File>> = Mutex::new(VecDeque::new());

/// Reserves the /24 `127.a.b.0` for this process, unless another process
/// (or this one) holds it. The lock goes with the process, so a test that
/// dies leaves nothing reserved.
fn reserve(a: u8, b: u8) -> bool {
    let dir = std::env::temp_dir().join("ferrocd-test-loopback");
    let file = std::fs::create_dir_all(&dir).and_then(|()| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("127.{a}.{b}")))
    });
    let file = match file {
        Ok(f) => f,
        // Without the directory the port check alone guards, as before.
        Err(_) => return true,
    };
    if file.try_lock().is_err() {
        return false;
    }
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    held.push_back(file);
    if held.len() > HELD_PICKS {
        held.pop_front();
    }
    true
}

/// One address 127.a.b.1 with every one of `ports` free.
pub fn loopback_ip(ports: &[u16]) -> Ipv4Addr {
    loopback_ips(1, ports)[0]
}

/// `n` addresses 127.a.b.1..n in one random /24, every one of `ports` free on each.
pub fn loopback_ips(n: u8, ports: &[u16]) -> Vec<Ipv4Addr> {
    loop {
        let r: u32 = rand::random();
        let (a, b) = (100 + (r % 150) as u8, (r >> 8) as u8);
        let ips: Vec<Ipv4Addr> = (1..=n).map(|i| Ipv4Addr::new(127, a, b, i)).collect();
        if ips.iter().all(|ip| free(*ip, ports)) && reserve(a, b) {
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

    #[test]
    fn a_reserved_prefix_is_not_handed_out_again() {
        let [_, a, b, _] = loopback_ip(&[]).octets();
        assert!(!reserve(a, b), "127.{a}.{b} reserved twice");
        let newest: std::collections::BTreeSet<(u8, u8)> = (0..HELD_PICKS)
            .map(|_| loopback_ip(&[]).octets())
            .map(|p| (p[1], p[2]))
            .collect();
        assert_eq!(newest.len(), HELD_PICKS, "the newest picks are distinct");
    }
}

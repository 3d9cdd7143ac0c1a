//! A member whose disk fills up stops claiming health: it exits non-zero
//! with one line naming its data dir and the error, and every write it
//! acknowledged is there when it restarts with room again.

use crate::support::client::Client;
use crate::support::{ferrocd_bin, http_get, single_member_flags, unique_ip, Process};
use ferrocd_proto::etcdserverpb::{PutRequest, RangeRequest};
use ferrocd_testkit::tmpfs::Tmpfs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn start(ip: std::net::Ipv4Addr, data_dir: &Path, log: &Path) -> Process {
    let mut c = Command::new(ferrocd_bin());
    c.args(single_member_flags(ip, data_dir));
    let mut p = Process::spawn(c, log);
    let endpoint = format!("{ip}:2379");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, body)) = http_get(&endpoint, "/health") {
            if body.contains("\"health\":\"true\"") {
                return p;
            }
        }
        assert!(
            p.wait_exit(Duration::ZERO).is_none(),
            "exited:\n{}",
            p.log_text()
        );
        assert!(Instant::now() < deadline, "not healthy:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("/big/{i:05}").into_bytes()
}

#[tokio::test]
async fn a_full_disk_stops_the_member_with_one_line_and_loses_no_acknowledged_write() {
    let tmpfs = Tmpfs::mount("24m");
    let data = tmpfs.path().join("data");
    let logs = tempfile::tempdir().expect("log dir");
    let ip = unique_ip();
    let mut member = start(ip, &data, &logs.path().join("full.log"));
    let mut client = Client::connect(&format!("{ip}:2379")).await;
    let value = vec![b'x'; 64 * 1024];
    let mut acknowledged = Vec::new();
    for i in 0..2000 {
        let put = PutRequest {
            key: key(i),
            value: value.clone(),
            ..Default::default()
        };
        match tokio::time::timeout(Duration::from_secs(10), client.kv.put(put)).await {
            Ok(Ok(_)) => acknowledged.push(i),
            _ => break,
        }
    }
    assert!(!acknowledged.is_empty(), "some writes fit on 24 MiB");
    assert!(acknowledged.len() < 2000, "the disk filled up");

    let status = member
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running on a full disk:\n{}", member.log_text()));
    assert!(!status.success(), "exit status {status}");
    let log = member.log_text();
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.contains(&data.display().to_string()) && last.contains("No space left on device"),
        "the last line names the data dir and the error: {last}"
    );
    drop(member);

    // With room again (a copy of the data dir on a real disk), every
    // acknowledged write is there.
    let roomy = tempfile::tempdir().expect("temp dir");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(roomy.path().join("data"))
        .status()
        .expect("cp");
    assert!(copied.success());
    let _member = start(
        ip,
        &roomy.path().join("data"),
        &logs.path().join("again.log"),
    );
    let mut client = Client::connect(&format!("{ip}:2379")).await;
    for i in &acknowledged {
        let r = client
            .kv
            .range(RangeRequest {
                key: key(*i),
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        assert_eq!(r.kvs.len(), 1, "acknowledged key {i} is there");
        assert_eq!(r.kvs[0].value.len(), value.len());
    }
}

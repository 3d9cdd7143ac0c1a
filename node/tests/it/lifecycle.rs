//! A member started in this process owns every task it starts: after
//! `shutdown` none of them runs, its peer port is free again,
//! and the runtime holds no more tasks than before it started.

use crate::support::{single_member_flags, unique_ip};
use ferrocd::config::{self, Command};
use ferrocd::member::Member;
use ferrocd_proto::etcdserverpb::PutRequest;
use ferrocd_proto::ferrocdpb::internal_request::Request;
use std::time::{Duration, Instant};

fn config_for(ip: std::net::Ipv4Addr, data_dir: &std::path::Path) -> config::Config {
    let args = single_member_flags(ip, data_dir);
    match config::parse_command_line(&args, &|_| None).expect("valid flags") {
        Command::Run(c) => *c,
        _ => panic!("a member's flags"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_of_a_member_outlives_its_shutdown() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let dir = tempfile::tempdir().expect("temp dir");
    let ip = unique_ip();
    let member = Member::start(config_for(ip, dir.path()))
        .await
        .expect("member starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !member.leadership.is_leader() {
        assert!(
            Instant::now() < deadline,
            "a one-member cluster elects itself"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A write exercises the proposer's batcher and the state machine.
    member
        .proposer
        .propose(
            Request::Put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }),
            None,
        )
        .await
        .expect("put");
    member.reader.linearizable_read().await.expect("read index");
    assert!(member.tasks_running() > 0, "the member runs its tasks");

    member.shutdown().await;
    assert_eq!(member.tasks_running(), 0, "every task of the member ended");
    drop(member);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = metrics.num_alive_tasks();
        if alive <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{alive} tasks alive after shutdown, {before} before start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::net::TcpListener::bind((ip, 2380)).expect("the peer port is free again");
}

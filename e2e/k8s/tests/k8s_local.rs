//! The operator's scenarios (ferrocd_k8s_harness::scenarios) on the local
//! Kubernetes-shaped cluster (ferrocd_k8s_harness::harness): the operator, itself a
//! pod with its service account and RBAC, runs ferrocd members as pods that
//! find each other through the cluster DNS's SRV records. Each scenario
//! prints its timeline on stderr.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrocd_k8s_harness::harness::{net::GATEWAY, with_cluster};
use ferrocd_k8s_harness::scenarios::{self, backup::S3Store, local::LocalTarget};
use ferrocd_testkit::s3::{SeaweedFs, ACCESS_KEY, BUCKET, SECRET_KEY};
use std::future::Future;
use std::sync::Arc;

fn local<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<LocalTarget>, String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_cluster(|c| async move {
        let target = Arc::new(LocalTarget::new(c));
        scenarios::run(target, scenario).await;
    });
}

#[test]
fn create_3_members_that_form_one_cluster_reachable_through_srv() {
    local(scenarios::create_3_members_that_form_one_cluster);
}

#[test]
fn create_with_pods_starting_in_random_order_and_late() {
    local(scenarios::create_with_pods_starting_in_random_order_and_late);
}

#[test]
fn scale_3_to_5_to_3_by_editing_replicas() {
    local(scenarios::scale_3_to_5_to_3_by_editing_replicas);
}

#[test]
fn a_member_killed_with_sigkill_restarts_with_its_data() {
    local(scenarios::a_member_killed_with_sigkill_restarts_with_its_data);
}

#[test]
fn a_member_whose_volume_was_lost_is_replaced_by_a_new_member() {
    local(scenarios::a_member_whose_volume_was_lost_is_replaced);
}

#[test]
fn a_partitioned_member_catches_up_after_healing() {
    local(scenarios::a_partitioned_member_catches_up_after_healing);
}

#[test]
fn rolling_restart_while_clients_write_loses_no_acknowledged_write() {
    local(scenarios::rolling_restart_while_clients_write_loses_no_acknowledged_write);
}

#[test]
fn a_new_image_rolls_3_members_one_at_a_time() {
    local(scenarios::a_new_image_rolls_3_members_one_at_a_time);
}

#[test]
fn a_new_image_rolls_5_members_one_at_a_time() {
    local(scenarios::a_new_image_rolls_5_members_one_at_a_time);
}

#[test]
fn a_lost_quorum_is_recovered_once_approved() {
    local(scenarios::a_lost_quorum_is_recovered_once_approved);
}

#[test]
fn a_lost_quorum_is_recovered_automatically() {
    local(scenarios::a_lost_quorum_is_recovered_automatically);
}

#[test]
fn a_member_that_does_not_start_halts_the_rollout() {
    local(scenarios::a_member_that_does_not_start_halts_the_rollout);
}

#[test]
fn a_cluster_created_without_tls_serves_tls_only_to_issued_client_certificates() {
    local(scenarios::a_cluster_created_without_tls_serves_tls_only_to_issued_client_certificates);
}

#[test]
fn backups_to_s3_and_a_volume_on_a_schedule_and_a_restore_from_them() {
    with_cluster(|c| async move {
        // The S3 server on the node's address, reached by the pods.
        let s3 = SeaweedFs::start(std::net::IpAddr::V4(GATEWAY), &c.root().join("s3"));
        let store = S3Store {
            endpoint: s3.endpoint(),
            bucket: BUCKET.into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
        };
        let target = Arc::new(LocalTarget::new(c));
        scenarios::run(target, move |t, ns| {
            scenarios::backup::backups_to_s3_and_a_volume_and_a_restore_from_them(t, ns, store)
        })
        .await;
        drop(s3);
    });
}

#[test]
fn a_cluster_with_auth_refuses_anonymous_clients_serves_root_and_scales() {
    local(scenarios::a_cluster_with_auth_refuses_anonymous_clients_serves_root_and_scales);
}

#[test]
fn a_paused_cluster_changes_nothing_until_it_is_unpaused() {
    local(scenarios::a_paused_cluster_changes_nothing_until_it_is_unpaused);
}

#[test]
fn a_fragmented_cluster_is_defragmented_the_leader_last() {
    local(scenarios::a_fragmented_cluster_is_defragmented_the_leader_last);
}

#[test]
fn a_nospace_alarm_is_remediated_and_writes_resume() {
    local(scenarios::a_nospace_alarm_is_remediated_and_writes_resume);
}

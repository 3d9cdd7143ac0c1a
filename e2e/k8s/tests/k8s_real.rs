//! The operator's scenarios (ferrocd_k8s_harness::scenarios) on the real cluster
//! `KUBECONFIG` names, with the chart already installed (`e2e/kind.sh`
//! makes a kind cluster, loads the image, installs the chart and runs
//! these with `--features real-cluster`; without the feature this file is
//! not built). The same scenarios run on the local cluster in k8s_local.
// Tests fail by panicking: unwrap and expect are how they say what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrocd_k8s_harness::scenarios::{self, real::run};

#[test]
fn create_3_members_that_form_one_cluster_reachable_through_srv() {
    run(scenarios::create_3_members_that_form_one_cluster);
}

#[test]
fn create_with_pods_starting_in_random_order_and_late() {
    run(scenarios::create_with_pods_starting_in_random_order_and_late);
}

#[test]
fn scale_3_to_5_to_3_by_editing_replicas() {
    run(scenarios::scale_3_to_5_to_3_by_editing_replicas);
}

#[test]
fn a_member_killed_with_sigkill_restarts_with_its_data() {
    run(scenarios::a_member_killed_with_sigkill_restarts_with_its_data);
}

#[test]
fn a_member_whose_volume_was_lost_is_replaced_by_a_new_member() {
    run(scenarios::a_member_whose_volume_was_lost_is_replaced);
}

#[test]
fn a_partitioned_member_catches_up_after_healing() {
    run(scenarios::a_partitioned_member_catches_up_after_healing);
}

#[test]
fn rolling_restart_while_clients_write_loses_no_acknowledged_write() {
    run(scenarios::rolling_restart_while_clients_write_loses_no_acknowledged_write);
}

#[test]
fn a_cluster_created_without_tls_serves_tls_only_to_issued_client_certificates() {
    run(scenarios::a_cluster_created_without_tls_serves_tls_only_to_issued_client_certificates);
}

#[test]
fn a_cluster_with_auth_refuses_anonymous_clients_serves_root_and_scales() {
    run(scenarios::a_cluster_with_auth_refuses_anonymous_clients_serves_root_and_scales);
}

#[test]
fn a_paused_cluster_changes_nothing_until_it_is_unpaused() {
    run(scenarios::a_paused_cluster_changes_nothing_until_it_is_unpaused);
}

#[test]
fn a_fragmented_cluster_is_defragmented_the_leader_last() {
    run(scenarios::a_fragmented_cluster_is_defragmented_the_leader_last);
}

#[test]
fn a_nospace_alarm_is_remediated_and_writes_resume() {
    run(scenarios::a_nospace_alarm_is_remediated_and_writes_resume);
}

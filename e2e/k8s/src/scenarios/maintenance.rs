//! Day-2 scenarios: a paused cluster, ordered defragmentation, and a
//! NOSPACE alarm remediated.

use super::{
    channel, create_cluster_with, kv, member_pods, patch_spec, running_cluster, running_with,
    set_replicas, wait_status, Target, NAME,
};
use ferrocd_proto::errors::NO_SPACE;
use ferrocd_proto::etcdserverpb as pb;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use std::sync::Arc;
use std::time::Duration;

async fn set_paused(t: &impl Target, ns: &str, paused: bool) {
    patch_spec(t, ns, serde_json::json!({ "paused": paused })).await;
}

/// spec.paused: an edit to a paused cluster changes nothing until it is
/// unpaused; then it is carried out.
pub async fn a_paused_cluster_changes_nothing_until_it_is_unpaused<T: Target>(
    t: Arc<T>,
    ns: String,
) {
    let t = &*t;
    running_cluster(t, &ns, 3).await;
    set_paused(t, &ns, true).await;
    wait_status(t, &ns, 60, "the Paused condition", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Paused" && c.status == "True")
    })
    .await;
    set_replicas(t, &ns, 5).await;
    t.say("paused, then spec.replicas = 5");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let sts = Api::<StatefulSet>::namespaced(t.client(), &ns)
        .get(NAME)
        .await
        .expect("StatefulSet");
    assert_eq!(
        sts.spec.and_then(|s| s.replicas),
        Some(3),
        "scaled while paused"
    );
    assert_eq!(member_pods(t, &ns).await.len(), 3);
    t.say("10 s later: still 3 pods and 3 in the StatefulSet");
    set_paused(t, &ns, false).await;
    wait_status(t, &ns, 300, "scaled to 5 after unpausing", |s| {
        running_with(5)(s) && !s.conditions.iter().any(|c| c.type_ == "Paused")
    })
    .await;
    t.say("unpaused: scaled to 5");
}

/// spec.maintenance.defrag: after most of the data is deleted and
/// compacted away, the operator defragments every member, the leader last.
pub async fn a_fragmented_cluster_is_defragmented_the_leader_last<T: Target>(
    t: Arc<T>,
    ns: String,
) {
    let t = &*t;
    running_cluster(t, &ns, 3).await;
    let pods = member_pods(t, &ns).await;
    let mut kv = kv(t, &ns, &pods[0]).await.expect("demo-0 reachable");
    let value = vec![b'x'; 4096];
    for i in 0..2000 {
        kv.put(pb::PutRequest {
            key: format!("/frag/{i:05}").into(),
            value: value.clone(),
            ..Default::default()
        })
        .await
        .expect("put");
    }
    let deleted = kv
        .delete_range(pb::DeleteRangeRequest {
            key: b"/frag/".to_vec(),
            range_end: b"/frag0".to_vec(),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    let revision = deleted.header.map(|h| h.revision).unwrap_or_default();
    kv.compact(pb::CompactionRequest {
        revision,
        physical: true,
    })
    .await
    .expect("compact");
    t.say("8 MB written, deleted and compacted away");
    patch_spec(
        t,
        &ns,
        serde_json::json!({"maintenance": {"defrag": {"fragmentedPercent": 50, "minDbSizeBytes": 1048576}}}),
    )
    .await;
    let ran = wait_status(t, &ns, 240, "a defragmentation", |s| s.defrag.is_some()).await;
    let d = ran.defrag.expect("status.defrag");
    assert_eq!(
        (d.reason.as_str(), d.result.as_str()),
        ("Fragmentation", "Succeeded"),
        "{d:?}"
    );
    assert_eq!(d.members.len(), 3, "{d:?}");
    assert_eq!(
        Some(d.members[2].clone()),
        ran.leader,
        "the leader was not last: {d:?}"
    );
    // The next observation finds the files compact.
    let after = wait_status(t, &ns, 120, "compact files", |s| {
        s.storage
            .as_ref()
            .is_some_and(|x| x.fragmented_percent < 50)
    })
    .await;
    let storage = after.storage.expect("status.storage");
    t.say(&format!(
        "defragmented {} (the leader last); now {}% fragmented",
        d.members.join(", "),
        storage.fragmented_percent
    ));
}

/// spec.maintenance.nospaceRemediation: a real NOSPACE alarm (a small
/// quota filled with the history of one key) is cleared by compaction,
/// defragmentation of every member and disarming; writes resume.
pub async fn a_nospace_alarm_is_remediated_and_writes_resume<T: Target>(t: Arc<T>, ns: String) {
    let t = &*t;
    create_cluster_with(
        t,
        &ns,
        3,
        serde_json::json!({
            "options": {"quotaBackendBytes": 16 << 20},
            "maintenance": {"nospaceRemediation": true},
        }),
    )
    .await;
    wait_status(t, &ns, 240, "3 members Running", running_with(3)).await;
    let pods = member_pods(t, &ns).await;
    let mut kv = kv(t, &ns, &pods[0]).await.expect("demo-0 reachable");
    let value = vec![b'x'; 256 << 10];
    let mut puts = 0;
    let refusal = loop {
        let put = kv
            .put(pb::PutRequest {
                key: b"/full".to_vec(),
                value: value.clone(),
                ..Default::default()
            })
            .await;
        match put {
            Ok(_) => puts += 1,
            Err(s) => break s.message().to_string(),
        }
        assert!(puts < 1000, "16 MiB quota never reached");
    };
    assert_eq!(refusal, NO_SPACE.message());
    t.say(&format!("NOSPACE after {puts} puts of 256 KiB to one key"));
    // The refusing member proposes the alarm; a proposal lost on a busy
    // machine is proposed again by the next refused put, as a client
    // retrying makes it.
    let ch = channel(t, &ns, &pods[0], None)
        .await
        .expect("demo-0 reachable");
    let mut maintenance = pb::maintenance_client::MaintenanceClient::new(ch);
    let mut attempts = 0;
    loop {
        let listed = maintenance
            .alarm(pb::AlarmRequest {
                action: pb::alarm_request::AlarmAction::Get as i32,
                member_id: 0,
                alarm: pb::AlarmType::Nospace as i32,
            })
            .await
            .expect("alarm list")
            .into_inner();
        if !listed.alarms.is_empty() {
            break;
        }
        attempts += 1;
        assert!(
            attempts < 10,
            "no NOSPACE alarm after {attempts} refused puts"
        );
        t.say("no alarm yet: the put again");
        let again = kv
            .put(pb::PutRequest {
                key: b"/full".to_vec(),
                value: value.clone(),
                ..Default::default()
            })
            .await
            .expect_err("a put over the quota");
        assert_eq!(again.message(), NO_SPACE.message());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let status = wait_status(t, &ns, 240, "the alarm remediated", |s| {
        s.defrag.as_ref().is_some_and(|d| d.reason == "NoSpace")
    })
    .await;
    let d = status.defrag.expect("status.defrag");
    assert_eq!(d.result, "Succeeded", "{d:?}");
    assert_eq!(d.members.len(), 3, "{d:?}");
    t.say(&d.message);
    kv.put(pb::PutRequest {
        key: b"/after".to_vec(),
        value: b"ok".to_vec(),
        ..Default::default()
    })
    .await
    .expect("a put after the remediation");
    t.say("writes resume");
}

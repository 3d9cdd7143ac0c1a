//! A pod's status as the agent reports it (phase, IP, conditions, container states).

use super::*;

impl Agent {
    pub(super) fn status_of(&self, uid: &str) -> Option<serde_json::Value> {
        let mut state = self.state.lock().ok()?;
        let p = state.pods.get_mut(uid)?;
        let ready = p.containers.iter().all(|c| c.ready && c.child.is_some());
        let cond =
            |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }});
        let containers: Vec<serde_json::Value> = p
            .containers
            .iter()
            .map(|c| {
                let state = match (&c.child, &c.started_at) {
                    (Some(_), Some(at)) => json!({"running": {"startedAt": at.to_string()}}),
                    _ => json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                };
                let last_state = match &c.last_exit {
                    Some((code, message, at)) => json!({"terminated": {"exitCode": code, "message": message, "finishedAt": at}}),
                    None => json!({}),
                };
                json!({"name": c.spec.name, "ready": c.ready && c.child.is_some(), "restartCount": c.restarts,
                       "image": c.spec.image.clone().unwrap_or_default(), "imageID": "", "started": c.started,
                       "state": state, "lastState": last_state})
            })
            .collect();
        let status = json!({
            "phase": "Running",
            "podIP": p.net.ip.to_string(),
            "podIPs": [{"ip": p.net.ip.to_string()}],
            "hostIP": GATEWAY.to_string(),
            "startTime": p.start_time.to_string(),
            "conditions": [cond("Initialized", true), cond("PodScheduled", true), cond("ContainersReady", ready), cond("Ready", ready)],
            "containerStatuses": containers,
        });
        if p.last_status.as_ref() == Some(&status) {
            return None;
        }
        p.last_status = Some(status.clone());
        Some(status)
    }
}

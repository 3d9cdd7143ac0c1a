//! A pod's status as the agent reports it (phase, IP, conditions, container
//! states, init containers included).

use super::pod::exit_code;
use super::*;

impl Agent {
    pub(super) fn status_of(&self, uid: &str) -> Option<serde_json::Value> {
        let mut state = self.state.lock().ok()?;
        let p = state.pods.get_mut(uid)?;
        let (inits, mains): (Vec<&RunningContainer>, Vec<&RunningContainer>) =
            p.containers.iter().partition(|c| c.init);
        let init_failed = inits.iter().any(|c| c.done && exit_code(c) != Some(0));
        let initialized = inits.iter().all(|c| c.done && exit_code(c) == Some(0));
        let phase = if init_failed {
            "Failed"
        } else if !initialized {
            "Pending"
        } else if mains.iter().all(|c| c.done) {
            if mains.iter().all(|c| exit_code(c) == Some(0)) {
                "Succeeded"
            } else {
                "Failed"
            }
        } else {
            "Running"
        };
        let ready = mains.iter().all(|c| c.ready && c.child.is_some());
        let cond =
            |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }});
        let report = |c: &&RunningContainer| {
            let terminated = |(code, message, at): &(i32, String, String)| {
                let reason = if *code == 0 { "Completed" } else { "Error" };
                json!({"terminated": {"exitCode": code, "reason": reason, "message": message, "finishedAt": at}})
            };
            let state = match (&c.child, &c.started_at, &c.last_exit) {
                (Some(_), Some(at), _) => json!({"running": {"startedAt": at.to_string()}}),
                (None, _, Some(exit)) if c.done => terminated(exit),
                _ if !c.init && !initialized => json!({"waiting": {"reason": "PodInitializing"}}),
                _ => json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            };
            let last_state = match &c.last_exit {
                Some(exit) if !c.done => terminated(exit),
                _ => json!({}),
            };
            json!({"name": c.spec.name, "ready": c.ready && c.child.is_some(), "restartCount": c.restarts,
                   "image": c.spec.image.clone().unwrap_or_default(), "imageID": "", "started": c.started,
                   "state": state, "lastState": last_state})
        };
        let containers: Vec<serde_json::Value> = mains.iter().map(report).collect();
        let init_containers: Vec<serde_json::Value> = inits.iter().map(report).collect();
        let mut status = json!({
            "phase": phase,
            "podIP": p.net.ip.to_string(),
            "podIPs": [{"ip": p.net.ip.to_string()}],
            "hostIP": GATEWAY.to_string(),
            "startTime": p.start_time.to_string(),
            "conditions": [cond("Initialized", initialized), cond("PodScheduled", true), cond("ContainersReady", ready), cond("Ready", ready)],
            "containerStatuses": containers,
        });
        if !init_containers.is_empty() {
            status["initContainerStatuses"] = json!(init_containers);
        }
        if p.last_status.as_ref() == Some(&status) {
            return None;
        }
        p.last_status = Some(status.clone());
        Some(status)
    }
}

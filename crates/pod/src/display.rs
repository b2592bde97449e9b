//! What `kubectl get pods` shows, as pure functions over a Pod with status:
//! the READY, STATUS and RESTARTS columns follow kubectl's `printPod`
//! (k8s.io/kubernetes pkg/printers/internalversion/printers.go).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// One row of `get pods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    pub name: String,
    pub namespace: String,
    /// `ready/total` app containers (restartable init containers count too, as in kubectl).
    pub ready: String,
    pub status: String,
    pub restarts: i32,
    pub ip: String,
}

fn term_reason(c: &ContainerStatus, init: bool) -> Option<String> {
    let t = c.state.as_ref()?.terminated.as_ref()?;
    let p = if init { "Init:" } else { "" };
    Some(match t.reason.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => format!("{p}{r}"),
        None => match t.signal.filter(|s| *s != 0) {
            Some(s) => format!("{p}Signal:{s}"),
            None => format!("{p}ExitCode:{}", t.exit_code),
        },
    })
}

/// kubectl's printPod for one pod.
pub fn pod_row(pod: &Pod) -> PodRow {
    let spec = pod.spec.clone().unwrap_or_default();
    let st = pod.status.clone().unwrap_or_default();
    let total = spec.containers.len()
        + spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i32;
    let mut reason = st
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| st.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let n_init = spec.init_containers.as_ref().map_or(0, |v| v.len());
    let mut initializing = false;
    for (i, c) in st.init_container_statuses.iter().flatten().enumerate() {
        restarts += c.restart_count;
        let state = c.state.clone().unwrap_or_default();
        let sidecar = spec
            .init_containers
            .iter()
            .flatten()
            .find(|s| s.name == c.name)
            .is_some_and(|s| s.restart_policy.as_deref() == Some("Always"));
        if sidecar && state.running.is_some() && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if state.terminated.is_some() {
            reason = term_reason(c, true).unwrap_or_default();
        } else if let Some(w) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .filter(|r| !r.is_empty() && r != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{i}/{n_init}");
        }
        initializing = true;
        break;
    }
    if !initializing {
        let mut has_running = false;
        for c in st.container_statuses.iter().flatten().rev() {
            restarts += c.restart_count;
            let state = c.state.clone().unwrap_or_default();
            if let Some(w) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = w;
            } else if state.terminated.is_some() {
                reason = term_reason(c, false).unwrap_or_default();
            } else if state.running.is_some() && c.ready {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = "Terminating".into();
    }
    PodRow {
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        ready: format!("{ready}/{total}"),
        status: reason,
        restarts,
        ip: st.pod_ip.clone().unwrap_or_else(|| "<none>".into()),
    }
}

/// Condition `type_` of the pod is `want` ("True"/"False").
pub fn condition_is(pod: &Pod, type_: &str, want: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_.eq_ignore_ascii_case(type_)))
        .is_some_and(|c| c.status.eq_ignore_ascii_case(want))
}

/// Every app container is running (what `create --wait` waits for).
pub fn all_running(pod: &Pod) -> bool {
    let n = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let st = pod.status.as_ref();
    st.and_then(|s| s.phase.as_deref()) == Some("Running")
        && st
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                cs.len() == n
                    && cs
                        .iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
}

/// Why a pod that is waited for will not get there on its own: phase
/// Failed/Unknown, or a container crash-looping or unable to start.
pub fn stuck_reason(pod: &Pod) -> Option<String> {
    let st = pod.status.as_ref()?;
    match st.phase.as_deref() {
        Some("Failed") | Some("Unknown") => {
            let row = pod_row(pod);
            return Some(format!(
                "pod is {} ({}){}",
                st.phase.as_deref().unwrap_or_default(),
                row.status,
                st.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        _ => {}
    }
    for c in st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
    {
        let w = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(r) = w.and_then(|w| w.reason.as_deref()) {
            if matches!(
                r,
                "CrashLoopBackOff"
                    | "CreateContainerError"
                    | "CreateContainerConfigError"
                    | "ErrImagePull"
                    | "ImagePullBackOff"
                    | "ErrImageNeverPull"
                    | "RunContainerError"
            ) {
                let last = c
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .map(|t| {
                        format!(
                            " (last exit: {} {}{})",
                            t.reason.as_deref().unwrap_or(""),
                            t.exit_code,
                            t.message
                                .as_deref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                return Some(format!("container {:?} is in {r}{last}", c.name));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn running_pod() {
        let p = pod(json!({"metadata": {"name": "w"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 1, "image": "", "imageID": "", "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "image": "", "imageID": "", "state": {"running": {}}}]}}));
        let r = pod_row(&p);
        assert_eq!(
            (r.ready.as_str(), r.status.as_str(), r.restarts),
            ("1/2", "Running", 3)
        );
        assert!(all_running(&p));
        assert_eq!(stuck_reason(&p), None);
    }

    #[test]
    fn crashloop_and_completed() {
        let p = pod(json!({"metadata": {"name": "w"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}},
                {"name": "b", "ready": true, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}}]}}));
        assert_eq!(pod_row(&p).status, "CrashLoopBackOff");
        assert!(stuck_reason(&p)
            .unwrap()
            .contains("CrashLoopBackOff (last exit: Error 1"));
        let done = pod(json!({"metadata": {"name": "w"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}));
        assert_eq!(pod_row(&done).status, "Completed");
        let sig = pod(json!({"metadata": {"name": "w"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}}));
        assert_eq!(pod_row(&sig).status, "Signal:9");
    }

    #[test]
    fn init_progress() {
        let p = pod(json!({"metadata": {"name": "w"},
            "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "i2", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}}],
              "containerStatuses": [{"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "PodInitializing"}}}]}}));
        assert_eq!(pod_row(&p).status, "Init:1/2");
        let f = pod(json!({"metadata": {"name": "w"},
            "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "initContainerStatuses": [
                {"name": "i1", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}}));
        assert_eq!(pod_row(&f).status, "Init:Error");
    }

    #[test]
    fn conditions() {
        let p = pod(json!({"metadata": {"name": "w"}, "status": {"conditions": [
            {"type": "Ready", "status": "True"}]}}));
        assert!(condition_is(&p, "ready", "True"));
        assert!(!condition_is(&p, "Ready", "False"));
        assert!(!condition_is(&p, "Initialized", "True"));
    }
}

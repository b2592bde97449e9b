//! Pod phase (kubelet_pods.go getPhase).

use super::container::RestartPolicy;
use crate::resources::is_restartable_init;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, PodSpec};

/// Pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Unknown => "Unknown",
        }
    }
}

pub(super) fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

pub(super) fn running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}
pub(super) fn terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|st| st.terminated.as_ref())
}
pub(super) fn waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}
pub(super) fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|st| st.terminated.as_ref())
}

/// HasAnyRegularContainerStarted.
pub fn any_regular_container_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers
        .iter()
        .filter_map(|c| find(statuses, &c.name))
        .any(|s| {
            running(s) || terminated(s).is_some() || (waiting(s) && last_terminated(s).is_some())
        })
}

/// getPhase. `statuses` holds init and app container statuses together.
pub fn pod_phase(spec: &PodSpec, statuses: &[ContainerStatus]) -> Phase {
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    let mut pending_regular_init = 0;
    let mut pending_sidecars = 0;
    let mut failed_init = 0;
    for c in init.iter().filter(|c| !is_restartable_init(c)) {
        let Some(s) = find(statuses, &c.name) else {
            pending_regular_init += 1;
            continue;
        };
        if running(s) {
            pending_regular_init += 1;
        } else if let Some(t) = terminated(s) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if waiting(s) {
            match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_regular_init += 1,
            }
        } else {
            pending_regular_init += 1;
        }
    }
    let (mut unknown, mut running_n, mut waiting_n, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in init.iter().filter(|c| is_restartable_init(c)) {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        if running(s) {
            if s.started != Some(true) {
                pending_sidecars += 1;
            }
            running_n += 1;
        } else if terminated(s).is_some() {
            // Terminated sidecars are ignored.
        } else if waiting(s) {
            if last_terminated(s).is_none() {
                pending_sidecars += 1;
                waiting_n += 1;
            }
        } else {
            pending_sidecars += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        if running(s) {
            running_n += 1;
        } else if let Some(t) = terminated(s) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if waiting(s) {
            if last_terminated(s).is_some() {
                stopped += 1;
            } else {
                waiting_n += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = RestartPolicy::of(spec);
    if failed_init > 0 && policy == RestartPolicy::Never {
        return Phase::Failed;
    }
    let initialized = any_regular_container_started(spec, statuses);
    if pending_regular_init > 0 || (pending_sidecars > 0 && !initialized) || waiting_n > 0 {
        return Phase::Pending;
    }
    if running_n > 0 && unknown == 0 {
        return Phase::Running;
    }
    if running_n == 0 && stopped > 0 && unknown == 0 {
        if policy == RestartPolicy::Always {
            return Phase::Running; // all restarting
        }
        if stopped == succeeded {
            return Phase::Succeeded;
        }
        if policy == RestartPolicy::Never {
            return Phase::Failed;
        }
        return Phase::Running; // OnFailure, restarting the failed ones
    }
    Phase::Pending
}

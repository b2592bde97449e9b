//! Pod conditions (status/generate.go).

use super::container::reason;
use super::phase::{any_regular_container_started, find, terminated, Phase};
use crate::resources::is_restartable_init;
use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec};

pub(super) fn cond(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        message,
        ..Default::default()
    }
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
pub(super) fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

pub(super) fn is_ready(s: &ContainerStatus) -> bool {
    s.ready
}

/// GeneratePodInitializedCondition.
pub fn initialized_condition(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    phase: Phase,
) -> PodCondition {
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    if init.is_empty() {
        return cond("Initialized", true, None, None);
    }
    let mut unknown = vec![];
    let mut incomplete = vec![];
    for c in init {
        let Some(s) = find(statuses, &c.name) else {
            unknown.push(c.name.clone());
            continue;
        };
        let done = if is_restartable_init(c) {
            s.started == Some(true)
        } else {
            terminated(s).is_some_and(|t| t.exit_code == 0)
        };
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    if phase == Phase::Succeeded && unknown.is_empty() {
        return cond("Initialized", true, Some(reason::POD_COMPLETED), None);
    }
    if any_regular_container_started(spec, statuses) {
        return cond("Initialized", true, None, None);
    }
    let mut msgs = vec![];
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        msgs.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if msgs.is_empty() {
        cond("Initialized", true, None, None)
    } else {
        cond(
            "Initialized",
            false,
            Some(reason::CONTAINERS_NOT_INITIALIZED),
            Some(msgs.join(", ")),
        )
    }
}

/// GenerateContainersReadyCondition.
pub fn containers_ready_condition(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    phase: Phase,
) -> PodCondition {
    let mut unknown = vec![];
    let mut unready = vec![];
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_restartable_init(c));
    for c in sidecars.chain(spec.containers.iter()) {
        match find(statuses, &c.name) {
            Some(s) if !is_ready(s) => unready.push(c.name.clone()),
            Some(_) => {}
            None => unknown.push(c.name.clone()),
        }
    }
    if phase == Phase::Succeeded && unknown.is_empty() {
        return cond("ContainersReady", false, Some(reason::POD_COMPLETED), None);
    }
    if phase == Phase::Failed {
        return cond("ContainersReady", false, Some(reason::POD_FAILED), None);
    }
    let mut msgs = vec![];
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        msgs.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if msgs.is_empty() {
        cond("ContainersReady", true, None, None)
    } else {
        cond(
            "ContainersReady",
            false,
            Some(reason::CONTAINERS_NOT_READY),
            Some(msgs.join(", ")),
        )
    }
}

/// GeneratePodReadyCondition: ContainersReady, then readiness gates (podrun
/// has no controller to set gate conditions, so any gate keeps Ready False).
pub fn ready_condition(spec: &PodSpec, containers_ready: &PodCondition) -> PodCondition {
    if containers_ready.status != "True" {
        return PodCondition {
            type_: "Ready".into(),
            ..containers_ready.clone()
        };
    }
    let gates: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .map(|g| {
            format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                g.condition_type
            )
        })
        .collect();
    if !gates.is_empty() {
        return cond(
            "Ready",
            false,
            Some(reason::READINESS_GATES_NOT_READY),
            Some(gates.join(", ")),
        );
    }
    cond("Ready", true, None, None)
}

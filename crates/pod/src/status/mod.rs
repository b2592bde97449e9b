//! Container and pod status as kubelet computes it.
//!
//! Sources: pkg/kubelet/kubelet_pods.go (getPhase), pkg/kubelet/status/generate.go
//! (Initialized / ContainersReady / Ready conditions), pkg/kubelet/container/helpers.go
//! (ShouldContainerBeRestarted), containerd/CRI termination reasons.
//!
//! The supervisor keeps one [`ContainerRecord`] per container and turns them
//! into `k8s_openapi` [`ContainerStatus`] values; [`pod_status`] assembles a
//! complete [`PodStatus`] so `get pod -o json` prints a real Pod object.
//! A dead supervisor is reported as phase `Unknown` ([`StatusInputs::unreachable`]).

mod conditions;
mod container;
mod phase;
#[cfg(test)]
mod tests;

use conditions::cond;
pub use conditions::{containers_ready_condition, initialized_condition, ready_condition};
pub use container::*;
pub use phase::{any_regular_container_started, pod_phase, Phase};

use crate::resources::qos_class;
use k8s_openapi::api::core::v1::{
    ContainerStatus, HostIP, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Everything [`pod_status`] needs besides the spec.
#[derive(Debug, Clone, Default)]
pub struct StatusInputs<'a> {
    pub init_containers: &'a [ContainerRecord],
    pub containers: &'a [ContainerRecord],
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    pub start_time: Option<Timestamp>,
    /// Conditions of the previous status: their lastTransitionTime is kept
    /// when a condition's status did not change.
    pub previous_conditions: &'a [PodCondition],
    pub now: Option<Timestamp>,
    /// The supervisor cannot be reached: phase Unknown.
    pub unreachable: bool,
    /// Set when the pod was deleted/failed for a pod-level reason.
    pub message: Option<String>,
}

/// A complete PodStatus: phase, conditions (PodScheduled, Initialized,
/// ContainersReady, Ready), QoS class, IPs, start time, container statuses.
pub fn pod_status(spec: &PodSpec, input: &StatusInputs<'_>) -> PodStatus {
    let init: Vec<ContainerStatus> = input
        .init_containers
        .iter()
        .map(ContainerRecord::to_status)
        .collect();
    let apps: Vec<ContainerStatus> = input
        .containers
        .iter()
        .map(ContainerRecord::to_status)
        .collect();
    let all: Vec<ContainerStatus> = init.iter().chain(apps.iter()).cloned().collect();
    let computed = pod_phase(spec, &all);
    let mut conditions = vec![cond("PodScheduled", true, None, None)];
    conditions.push(initialized_condition(spec, &all, computed));
    let cr = containers_ready_condition(spec, &all, computed);
    let mut ready = ready_condition(spec, &cr);
    let phase = if input.unreachable {
        ready = PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: Some(reason::SUPERVISOR_UNREACHABLE.into()),
            message: Some("the pod's supervisor process is not running".into()),
            ..Default::default()
        };
        Phase::Unknown
    } else {
        computed
    };
    conditions.push(cr);
    conditions.push(ready);
    for c in &mut conditions {
        let prev = input
            .previous_conditions
            .iter()
            .find(|p| p.type_ == c.type_);
        c.last_transition_time = match prev {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => input.now.map(Time),
        };
    }
    PodStatus {
        phase: Some(phase.as_str().into()),
        conditions: Some(conditions),
        qos_class: Some(qos_class(spec).as_str().into()),
        pod_ip: input.pod_ip.clone(),
        pod_ips: input.pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        host_ip: input.host_ip.clone(),
        host_ips: input.host_ip.clone().map(|ip| vec![HostIP { ip }]),
        start_time: input.start_time.map(Time),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(apps),
        message: input.message.clone(),
        ..Default::default()
    }
}

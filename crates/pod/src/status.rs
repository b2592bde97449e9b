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

use crate::resources::{is_restartable_init, qos_class};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Waiting reasons kubelet uses.
pub mod reason {
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    pub const POD_INITIALIZING: &str = "PodInitializing";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
    pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
    pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
    // Terminated reasons.
    pub const COMPLETED: &str = "Completed";
    pub const ERROR: &str = "Error";
    pub const OOM_KILLED: &str = "OOMKilled";
    pub const START_ERROR: &str = "StartError";
    pub const CONTAINER_CANNOT_RUN: &str = "ContainerCannotRun";
    // Condition reasons.
    pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
    pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
    pub const POD_COMPLETED: &str = "PodCompleted";
    pub const POD_FAILED: &str = "PodFailed";
    pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";
    pub const SUPERVISOR_UNREACHABLE: &str = "SupervisorUnreachable";
}

/// Pod restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// From `spec.restartPolicy` (unset = Always; unknown values are
    /// rejected by validation and read as Always here).
    pub fn of(spec: &PodSpec) -> Self {
        match spec.restart_policy.as_deref() {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }
}

/// Role of a container in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// Regular init container: runs to completion, in order.
    Init,
    /// Init container with `restartPolicy: Always` (sidecar).
    Sidecar,
    /// App container.
    App,
}

/// Whether a container that exited with `exit_code` is started again.
/// App: ShouldContainerBeRestarted (Never → no; OnFailure → only non-zero;
/// Always → yes). Init: only on failure and unless the pod policy is Never
/// (then the pod fails). Sidecar: always, whatever the pod policy.
pub fn should_restart(policy: RestartPolicy, kind: ContainerKind, exit_code: i32) -> bool {
    match kind {
        ContainerKind::Sidecar => true,
        ContainerKind::Init => exit_code != 0 && policy != RestartPolicy::Never,
        ContainerKind::App => match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        },
    }
}

/// How a process ended, as wait(2) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// (exitCode, signal): a signal death reads as 128+signal, as runtimes report.
    pub fn code_and_signal(self) -> (i32, Option<i32>) {
        match self {
            ExitStatus::Exited(c) => (c, None),
            ExitStatus::Signaled(s) => (128 + s, Some(s)),
        }
    }
}

/// Terminated reason: OOMKilled if the cgroup OOM-killed it, else Completed
/// for 0 and Error otherwise.
pub fn termination_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        reason::OOM_KILLED
    } else if exit_code == 0 {
        reason::COMPLETED
    } else {
        reason::ERROR
    }
}

/// A finished run of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Termination {
    /// A process that ran and exited.
    pub fn exited(
        status: ExitStatus,
        oom_killed: bool,
        started_at: Timestamp,
        finished_at: Timestamp,
    ) -> Self {
        let (exit_code, signal) = status.code_and_signal();
        Termination {
            exit_code,
            signal,
            reason: termination_reason(exit_code, oom_killed).into(),
            message: None,
            started_at: Some(started_at),
            finished_at,
            container_id: None,
        }
    }

    /// The process could not be started (bad command, missing binary...):
    /// exit code 128, reason StartError, as containerd reports it.
    pub fn start_error(message: impl Into<String>, at: Timestamp) -> Self {
        Termination {
            exit_code: 128,
            signal: None,
            reason: reason::START_ERROR.into(),
            message: Some(message.into()),
            started_at: None,
            finished_at: at,
            container_id: None,
        }
    }

    fn to_k8s(&self) -> ContainerStateTerminated {
        ContainerStateTerminated {
            container_id: self.container_id.clone(),
            exit_code: self.exit_code,
            signal: self.signal,
            reason: Some(self.reason.clone()),
            message: self.message.clone(),
            started_at: self.started_at.map(Time),
            finished_at: Some(Time(self.finished_at)),
        }
    }
}

/// Current state of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(Termination),
}

impl State {
    pub fn waiting(reason: &str) -> Self {
        State::Waiting {
            reason: reason.into(),
            message: None,
        }
    }

    fn to_k8s(&self) -> ContainerState {
        match self {
            State::Waiting { reason, message } => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..Default::default()
            },
            State::Running { started_at } => ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(*started_at)),
                }),
                ..Default::default()
            },
            State::Terminated(t) => ContainerState {
                terminated: Some(t.to_k8s()),
                ..Default::default()
            },
        }
    }
}

/// What the supervisor knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_state: Option<Termination>,
    pub restart_count: u32,
    pub ready: bool,
    /// Startup probe passed (None before the container ever ran).
    pub started: Option<bool>,
}

impl ContainerRecord {
    /// A container not yet created.
    pub fn new(name: &str, image: &str, waiting_reason: &str) -> Self {
        ContainerRecord {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            container_id: None,
            state: State::waiting(waiting_reason),
            last_state: None,
            restart_count: 0,
            ready: false,
            started: None,
        }
    }

    /// The process started (first time or a restart).
    pub fn on_start(&mut self, container_id: Option<String>, at: Timestamp) {
        if let State::Terminated(t) =
            std::mem::replace(&mut self.state, State::Running { started_at: at })
        {
            self.last_state = Some(t);
            self.restart_count += 1;
        }
        // Out of CrashLoopBackOff (Waiting): already counted by on_backoff.
        self.container_id = container_id;
        self.started = Some(false);
        self.ready = false;
    }

    /// The process ended.
    pub fn on_exit(&mut self, mut t: Termination) {
        t.container_id = t.container_id.or_else(|| self.container_id.clone());
        self.state = State::Terminated(t);
        self.ready = false;
        self.started = Some(false);
    }

    /// It will be restarted after a back-off: Waiting(CrashLoopBackOff) with
    /// the termination kept as lastState; counts as a restart (kubelet counts
    /// restarts when the new container is created; the number it shows while
    /// waiting is the same).
    pub fn on_backoff(&mut self, message: impl Into<String>) {
        if let State::Terminated(t) = std::mem::replace(
            &mut self.state,
            State::Waiting {
                reason: reason::CRASH_LOOP_BACK_OFF.into(),
                message: Some(message.into()),
            },
        ) {
            self.last_state = Some(t);
            self.restart_count += 1;
        }
    }

    /// The k8s status object.
    pub fn to_status(&self) -> ContainerStatus {
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            state: Some(self.state.to_k8s()),
            last_state: Some(
                self.last_state
                    .as_ref()
                    .map(|t| ContainerState {
                        terminated: Some(t.to_k8s()),
                        ..Default::default()
                    })
                    .unwrap_or_default(),
            ),
            restart_count: self.restart_count as i32,
            ready: self.ready,
            started: self.started,
            ..Default::default()
        }
    }
}

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

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}
fn terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|st| st.terminated.as_ref())
}
fn waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}
fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
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

fn cond(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        message,
        ..Default::default()
    }
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

fn is_ready(s: &ContainerStatus) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodReadinessGate};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn spec(init: &[&str], sidecars: &[&str], apps: &[&str], policy: &str) -> PodSpec {
        let mk = |n: &&str| Container {
            name: n.to_string(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        let mut ic: Vec<Container> = sidecars
            .iter()
            .map(|n| Container {
                restart_policy: Some("Always".into()),
                ..mk(n)
            })
            .collect();
        ic.extend(init.iter().map(mk));
        PodSpec {
            init_containers: (!ic.is_empty()).then_some(ic),
            containers: apps.iter().map(mk).collect(),
            restart_policy: Some(policy.into()),
            ..Default::default()
        }
    }

    fn rec(name: &str) -> ContainerRecord {
        ContainerRecord::new(name, "busybox", reason::CONTAINER_CREATING)
    }
    fn run(name: &str) -> ContainerRecord {
        let mut r = rec(name);
        r.on_start(Some(format!("id-{name}")), t(0));
        r
    }
    fn exited(name: &str, code: i32) -> ContainerRecord {
        let mut r = run(name);
        r.on_exit(Termination::exited(
            ExitStatus::Exited(code),
            false,
            t(0),
            t(5),
        ));
        r
    }
    fn statuses(v: &[ContainerRecord]) -> Vec<ContainerStatus> {
        v.iter().map(ContainerRecord::to_status).collect()
    }

    #[test]
    fn restart_decisions() {
        use ContainerKind::*;
        use RestartPolicy::*;
        assert!(should_restart(Always, App, 0));
        assert!(should_restart(Always, App, 1));
        assert!(!should_restart(OnFailure, App, 0));
        assert!(should_restart(OnFailure, App, 137));
        assert!(!should_restart(Never, App, 1));
        assert!(!should_restart(Always, Init, 0));
        assert!(should_restart(Always, Init, 1));
        assert!(should_restart(OnFailure, Init, 1));
        assert!(!should_restart(Never, Init, 1));
        assert!(should_restart(Never, Sidecar, 0));
    }

    #[test]
    fn reasons_and_codes() {
        assert_eq!(termination_reason(0, false), "Completed");
        assert_eq!(termination_reason(2, false), "Error");
        assert_eq!(termination_reason(137, true), "OOMKilled");
        assert_eq!(ExitStatus::Signaled(9).code_and_signal(), (137, Some(9)));
        assert_eq!(ExitStatus::Exited(3).code_and_signal(), (3, None));
        let e = Termination::start_error("exec: \"nope\": not found", t(1));
        assert_eq!((e.exit_code, e.reason.as_str()), (128, "StartError"));
    }

    #[test]
    fn record_lifecycle_and_status_object() {
        let mut r = rec("web");
        assert_eq!(
            r.to_status()
                .state
                .unwrap()
                .waiting
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        r.on_start(Some("c1".into()), t(0));
        r.on_exit(Termination::exited(
            ExitStatus::Signaled(9),
            true,
            t(0),
            t(3),
        ));
        r.on_backoff("back-off 10s restarting failed container=web");
        assert_eq!(r.restart_count, 1);
        let s = r.to_status();
        assert_eq!(
            s.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        let last = s.last_state.unwrap().terminated.unwrap();
        assert_eq!(
            (last.exit_code, last.signal, last.reason.as_deref()),
            (137, Some(9), Some("OOMKilled"))
        );
        assert_eq!(last.container_id.as_deref(), Some("c1"));
        r.on_start(Some("c2".into()), t(20));
        assert_eq!(r.restart_count, 1); // not counted twice
                                        // Restart straight from Terminated (no back-off wait) counts too.
        r.on_exit(Termination::exited(
            ExitStatus::Exited(0),
            false,
            t(20),
            t(21),
        ));
        r.on_start(Some("c3".into()), t(22));
        assert_eq!(r.restart_count, 2);
        let json = serde_json::to_value(r.to_status()).unwrap();
        assert_eq!(
            json["state"]["running"]["startedAt"],
            "2023-11-14T22:13:42Z"
        );
        assert_eq!(json["lastState"]["terminated"]["reason"], "Completed");
        assert_eq!(json["restartCount"], 2);
    }

    #[test]
    fn phases_simple() {
        let sp = spec(&[], &[], &["a", "b"], "Always");
        assert_eq!(pod_phase(&sp, &[]), Phase::Pending);
        assert_eq!(
            pod_phase(&sp, &statuses(&[rec("a"), rec("b")])),
            Phase::Pending
        );
        assert_eq!(
            pod_phase(&sp, &statuses(&[run("a"), rec("b")])),
            Phase::Pending
        );
        assert_eq!(
            pod_phase(&sp, &statuses(&[run("a"), run("b")])),
            Phase::Running
        );
        assert_eq!(
            pod_phase(&sp, &statuses(&[run("a"), exited("b", 0)])),
            Phase::Running
        );
        assert_eq!(
            pod_phase(&sp, &statuses(&[exited("a", 0), exited("b", 1)])),
            Phase::Running
        );
        let never = spec(&[], &[], &["a", "b"], "Never");
        assert_eq!(
            pod_phase(&never, &statuses(&[exited("a", 0), exited("b", 0)])),
            Phase::Succeeded
        );
        assert_eq!(
            pod_phase(&never, &statuses(&[exited("a", 0), exited("b", 1)])),
            Phase::Failed
        );
        assert_eq!(
            pod_phase(&never, &statuses(&[exited("a", 0), run("b")])),
            Phase::Running
        );
        let onf = spec(&[], &[], &["a"], "OnFailure");
        assert_eq!(
            pod_phase(&onf, &statuses(&[exited("a", 0)])),
            Phase::Succeeded
        );
        assert_eq!(
            pod_phase(&onf, &statuses(&[exited("a", 2)])),
            Phase::Running
        );
        // Crash-looping (Waiting with a last termination) counts as stopped.
        let mut c = exited("a", 1);
        c.on_backoff("x");
        assert_eq!(pod_phase(&onf, &statuses(&[c])), Phase::Running);
    }

    #[test]
    fn phases_with_init_containers() {
        let sp = spec(&["i1", "i2"], &[], &["a"], "Always");
        assert_eq!(
            pod_phase(&sp, &statuses(&[run("i1"), rec("i2"), rec("a")])),
            Phase::Pending
        );
        assert_eq!(
            pod_phase(
                &sp,
                &statuses(&[exited("i1", 0), exited("i2", 0), run("a")])
            ),
            Phase::Running
        );
        // Failing init under Always: Pending (retrying).
        assert_eq!(
            pod_phase(&sp, &statuses(&[exited("i1", 1), rec("i2"), rec("a")])),
            Phase::Pending
        );
        let never = spec(&["i1"], &[], &["a"], "Never");
        assert_eq!(
            pod_phase(&never, &statuses(&[exited("i1", 1), rec("a")])),
            Phase::Failed
        );
        let mut looping = exited("i1", 1);
        looping.on_backoff("x");
        let onf = spec(&["i1"], &[], &["a"], "OnFailure");
        assert_eq!(
            pod_phase(&onf, &statuses(&[looping, rec("a")])),
            Phase::Pending
        );
    }

    #[test]
    fn phases_with_sidecars() {
        let sp = spec(&[], &["side"], &["a"], "Never");
        let mut side = run("side");
        assert_eq!(
            pod_phase(&sp, &statuses(&[side.clone(), rec("a")])),
            Phase::Pending
        );
        side.started = Some(true);
        assert_eq!(
            pod_phase(&sp, &statuses(&[side.clone(), run("a")])),
            Phase::Running
        );
        // App done, sidecar still running: Running (kubelet then stops sidecars).
        assert_eq!(
            pod_phase(&sp, &statuses(&[side, exited("a", 0)])),
            Phase::Running
        );
        // Sidecar stopped too: Succeeded.
        assert_eq!(
            pod_phase(&sp, &statuses(&[exited("side", 137), exited("a", 0)])),
            Phase::Succeeded
        );
    }

    #[test]
    fn conditions() {
        let sp = spec(&["init"], &[], &["a", "b"], "Always");
        let st = statuses(&[run("init"), rec("a"), rec("b")]);
        let i = initialized_condition(&sp, &st, Phase::Pending);
        assert_eq!(
            (i.status.as_str(), i.reason.as_deref()),
            ("False", Some("ContainersNotInitialized"))
        );
        assert_eq!(
            i.message.as_deref(),
            Some("containers with incomplete status: [init]")
        );
        let cr = containers_ready_condition(&sp, &st, Phase::Pending);
        assert_eq!(cr.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            cr.message.as_deref(),
            Some("containers with unready status: [a b]")
        );
        let r = ready_condition(&sp, &cr);
        assert_eq!(
            (r.type_.as_str(), r.status.as_str(), r.reason.as_deref()),
            ("Ready", "False", Some("ContainersNotReady"))
        );

        let mut a = run("a");
        a.ready = true;
        let st = statuses(&[exited("init", 0), a.clone()]);
        let i = initialized_condition(&sp, &st, Phase::Running);
        assert_eq!(i.status, "True");
        let cr = containers_ready_condition(&sp, &st, Phase::Running);
        assert_eq!(
            cr.message.as_deref(),
            Some("containers with unknown status: [b]")
        );
        let mut b = run("b");
        b.ready = true;
        let st = statuses(&[exited("init", 0), a, b]);
        let cr = containers_ready_condition(&sp, &st, Phase::Running);
        assert_eq!(cr.status, "True");
        assert_eq!(ready_condition(&sp, &cr).status, "True");
        let mut gated = sp.clone();
        gated.readiness_gates = Some(vec![PodReadinessGate {
            condition_type: "x/y".into(),
        }]);
        assert_eq!(
            ready_condition(&gated, &cr).reason.as_deref(),
            Some("ReadinessGatesNotReady")
        );

        let done = spec(&[], &[], &["a"], "Never");
        let st = statuses(&[exited("a", 0)]);
        let cr = containers_ready_condition(&done, &st, Phase::Succeeded);
        assert_eq!(
            (cr.status.as_str(), cr.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );
        let i = initialized_condition(
            &spec(&["i"], &[], &["a"], "Never"),
            &statuses(&[exited("i", 0), exited("a", 0)]),
            Phase::Succeeded,
        );
        assert_eq!(i.reason.as_deref(), Some("PodCompleted"));
    }

    #[test]
    fn full_pod_status() {
        let sp = spec(&["init"], &[], &["a"], "Always");
        let mut a = run("a");
        a.ready = true;
        a.started = Some(true);
        let init = [exited("init", 0)];
        let apps = [a];
        let prev = vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(t(1))),
            ..Default::default()
        }];
        let input = StatusInputs {
            init_containers: &init,
            containers: &apps,
            pod_ip: Some("10.1.0.2".into()),
            host_ip: Some("127.0.0.1".into()),
            start_time: Some(t(0)),
            previous_conditions: &prev,
            now: Some(t(9)),
            ..Default::default()
        };
        let ps = pod_status(&sp, &input);
        assert_eq!(ps.phase.as_deref(), Some("Running"));
        assert_eq!(ps.qos_class.as_deref(), Some("BestEffort"));
        let conds = ps.conditions.unwrap();
        let types: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            vec!["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        );
        assert!(conds.iter().all(|c| c.status == "True"));
        assert_eq!(conds[3].last_transition_time, Some(Time(t(1))));
        assert_eq!(conds[0].last_transition_time, Some(Time(t(9))));
        assert_eq!(ps.pod_ips.unwrap()[0].ip, "10.1.0.2");
        assert_eq!(ps.init_container_statuses.unwrap().len(), 1);

        let gone = pod_status(
            &sp,
            &StatusInputs {
                unreachable: true,
                ..input
            },
        );
        assert_eq!(gone.phase.as_deref(), Some("Unknown"));
        let ready = gone
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("SupervisorUnreachable"))
        );
    }
}

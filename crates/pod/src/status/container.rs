//! One container: states, termination reasons, restart decision, and the
//! record the supervisor keeps (turned into a k8s ContainerStatus).

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodSpec,
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

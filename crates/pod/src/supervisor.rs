//! The pod supervisor: runs one pod in the current process.
//!
//! [`run_pod`] starts the sandbox, runs init containers in order to
//! completion, starts the app containers, reaps exits (`waitpid(-1)`: the
//! caller should be `PR_SET_CHILD_SUBREAPER`), restarts per `restartPolicy`
//! with [`RestartBackoff`] (scaled by `SupervisorOptions::backoff_scale`),
//! pumps logs, rewrites `<pod_dir>/status.json` atomically on every
//! transition, and on a stop request (the file `<pod_dir>/stop`, see
//! [`request_stop`]) sends SIGTERM, waits the grace period, sends SIGKILL and
//! tears everything down. Single-threaded: no thread may run while the
//! container engine forks.

use crate::backoff::{BackoffDecision, RestartBackoff};
use crate::events::{container_object, EventLog};
use crate::health::{ContainerHealth, HealthEvent, HealthTarget, HookKind};
use crate::launch::{
    start_container, write_bundle, write_pod_files, ImageProcess, LaunchContext, LaunchError,
    Running,
};
use crate::logs::drain;
use crate::probe::ProbeKind;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxError};
use crate::status::{
    pod_status, should_restart, ContainerKind, ContainerRecord, ExitStatus, RestartPolicy,
    StatusInputs, Termination,
};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors that stop the supervisor itself (container failures are statuses, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("pod has no spec")]
    NoSpec,
    #[error("container {0:?}: no image rootfs was provided")]
    NoImage(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("{0}")]
    Cgroup(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the pod's files go.
#[derive(Debug, Clone)]
pub struct PodDirs {
    /// Pod state dir: status.json, stop, ns/, bundles/, volumes/, hosts.
    pub pod_dir: PathBuf,
    /// OCI state root for the pod's containers.
    pub state_root: PathBuf,
    /// CRI log root (`<root>/<ns>_<name>_<uid>/<container>/<n>.log`).
    pub log_root: PathBuf,
}

/// A container's resolved image: mounted rootfs and image config.
#[derive(Debug, Clone)]
pub struct ContainerImage {
    pub rootfs: PathBuf,
    pub process: ImageProcess,
    /// Image ID (`sha256:...`) for `imageID` in the status; may be empty.
    pub image_id: String,
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// Pod cgroup relative to the caller's, e.g. `podrun-pods/<uid>`.
    pub cgroup_parent: String,
    pub machine_memory: u64,
    /// Multiplies the 10 s..300 s restart backoff (env PODRUN_BACKOFF_SCALE).
    pub backoff_scale: f64,
    /// Used when the pod has no terminationGracePeriodSeconds.
    pub default_grace: Duration,
    /// pids.max of the pod cgroup (None or <= 0: unlimited).
    pub pids_limit: Option<i64>,
}

impl SupervisorOptions {
    /// Defaults, with the backoff scale read from PODRUN_BACKOFF_SCALE.
    pub fn new(cgroup_parent: impl Into<String>) -> Self {
        SupervisorOptions {
            cgroup_parent: cgroup_parent.into(),
            machine_memory: machine_memory(),
            backoff_scale: std::env::var("PODRUN_BACKOFF_SCALE")
                .ok()
                .and_then(|s| crate::backoff::parse_scale(&s))
                .unwrap_or(1.0),
            default_grace: Duration::from_secs(30),
            pids_limit: Some(crate::podcgroup::DEFAULT_PIDS_LIMIT),
        }
    }
}

fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(1 << 30)
}

/// Supplies a fresh root filesystem for each start of a container (the
/// image store's overlay: a restarted container gets a new writable layer,
/// as under kubelet).
pub trait RootfsProvider {
    /// Mounts (again) the root of `container`; returns its path.
    fn prepare(&mut self, container: &str) -> Result<PathBuf, String>;
    /// Unmounts every root this provider mounted.
    fn release_all(&mut self);
}

/// What the daemon adds around [`run_pod`]: readiness report, control socket,
/// rootfs provider, pid files.
#[derive(Default)]
pub struct Extras {
    /// Written `ok\n` once the sandbox is up and the first containers were
    /// started, or `error: ...\n` if the pod could not start; then closed.
    pub ready: Option<OwnedFd>,
    /// The pod's control socket (see [`crate::daemon`]).
    pub control: Option<UnixListener>,
    pub rootfs: Option<Box<dyn RootfsProvider>>,
    /// Let pause outlive the supervisor and record its pid in `pause.pid`.
    pub detach_pause: bool,
}

fn report_ready(ready: &mut Option<OwnedFd>, msg: &str) {
    if let Some(fd) = ready.take() {
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(msg.as_bytes());
    }
}

/// Asks a running supervisor to stop the pod.
pub fn request_stop(pod_dir: &Path) -> std::io::Result<()> {
    std::fs::write(pod_dir.join("stop"), b"stop\n")
}

/// Reads `<pod_dir>/status.json`.
pub fn read_status(pod_dir: &Path) -> Result<Pod, SupervisorError> {
    let p = pod_dir.join("status.json");
    let b = std::fs::read(&p).map_err(|source| SupervisorError::Io {
        what: "read",
        path: p.clone(),
        source,
    })?;
    serde_json::from_slice(&b).map_err(|e| SupervisorError::Io {
        what: "parse",
        path: p,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

use crate::crilog::now;

struct Slot {
    spec: Container,
    kind: ContainerKind,
    rec: ContainerRecord,
    run: Option<(Running, Timestamp)>,
    backoff: RestartBackoff,
    /// Monotonic time (since supervisor start) of the last exit, when a restart is due.
    restart_due: Option<Duration>,
    done: bool,
    /// Probes and hooks (containers with probes or lifecycle hooks).
    health: Option<ContainerHealth>,
    /// postStart is running: the container is not Running yet (id, start time).
    post_start: Option<(Option<String>, Timestamp)>,
    /// The container is being stopped (preStop, stop signal, SIGKILL).
    stopping: Option<Stopping>,
    /// pidfd of the running container's init: polled, so an exit wakes the loop.
    pidfd: Option<OwnedFd>,
    /// OOM kills in the running container's cgroup, polled: the OOMKilling event is
    /// recorded when the kernel kills, even if the container's main process survives.
    oom: Option<podrun_cgroups::OomWatcher>,
    /// An OOMKilling event was recorded for the current run.
    oom_reported: bool,
}

/// The longest the supervisor's loop sleeps when nothing is due: a stop file
/// (`request_stop`) is noticed within this time; everything else (container
/// exits, probe runs and deadlines, control connections, logs) wakes it.
const IDLE_WAKE: Duration = Duration::from_millis(500);

/// A container being stopped with kubelet's sequence: preStop (within the
/// grace period), the stop signal, SIGKILL when the grace runs out (at least
/// 2 s after the signal).
#[derive(Debug, Clone, Copy)]
struct Stopping {
    /// End of the grace period.
    deadline: Instant,
    /// When the stop signal was sent; then SIGKILL is due at `kill_at`.
    kill_at: Option<Instant>,
    killed: bool,
}

/// kubelet's minimum time between the stop signal and SIGKILL.
const MIN_GRACE_AFTER_SIGNAL: Duration = Duration::from_secs(2);

/// The stop signal of a container: `lifecycle.stopSignal`, else the image's
/// StopSignal, else SIGTERM.
fn stop_signal(c: &Container, image: Option<&str>) -> i32 {
    c.lifecycle
        .as_ref()
        .and_then(|l| l.stop_signal.as_deref())
        .or(image)
        .and_then(|s| podrun_container::signal::parse(s).ok())
        .unwrap_or(libc::SIGTERM)
}

fn needs_health(c: &Container) -> bool {
    c.liveness_probe.is_some()
        || c.readiness_probe.is_some()
        || c.startup_probe.is_some()
        || c.lifecycle
            .as_ref()
            .is_some_and(|l| l.post_start.is_some() || l.pre_stop.is_some())
}

struct Sup<'a> {
    pod: &'a Pod,
    dirs: &'a PodDirs,
    images: &'a HashMap<String, ContainerImage>,
    opts: &'a SupervisorOptions,
    rt: podrun_container::Runtime,
    uid: String,
    ns: String,
    name: String,
    t0: Instant,
    start_time: Timestamp,
    init: Vec<Slot>,
    apps: Vec<Slot>,
    message: Option<String>,
    events: EventLog,
    /// Events recorded since events.json was last written (it is written
    /// with the status, once per loop turn, not once per event).
    events_dirty: std::cell::Cell<bool>,
    /// Pod conditions as last written to status.json.
    conditions: std::cell::RefCell<Vec<k8s_openapi::api::core::v1::PodCondition>>,
    rootfs: Option<Box<dyn RootfsProvider>>,
    control: Option<UnixListener>,
    /// A stop was requested (control socket or stop file), with an optional grace override.
    stop: Option<Option<Duration>>,
    /// The pod's network namespace pin (None with hostNetwork), for probes.
    netns: Option<PathBuf>,
    /// The pod failed for a pod-level reason (reason, message), e.g. DeadlineExceeded.
    failed: Option<(String, String)>,
    /// The pod's termination grace period.
    grace: Duration,
    /// Sum of the containers' [`ContainerHealth::changes`] when probes.json was last written.
    probe_gen: u64,
}

impl Sup<'_> {
    fn mono(&self) -> Duration {
        self.t0.elapsed()
    }

    fn write_status(&self) -> Result<(), SupervisorError> {
        self.flush_events();
        let spec = self.pod.spec.as_ref().ok_or(SupervisorError::NoSpec)?;
        let init: Vec<ContainerRecord> = self.init.iter().map(|s| s.rec.clone()).collect();
        let apps: Vec<ContainerRecord> = self.apps.iter().map(|s| s.rec.clone()).collect();
        // The conditions last written (their transition times carry over).
        let prev = self.conditions.take();
        let st = pod_status(
            spec,
            &StatusInputs {
                init_containers: &init,
                containers: &apps,
                pod_ip: Some("127.0.0.1".into()),
                host_ip: Some("127.0.0.1".into()),
                start_time: Some(self.start_time),
                previous_conditions: &prev,
                now: Some(now()),
                unreachable: false,
                message: self.message.clone(),
            },
        );
        let mut st = st;
        if let Some((reason, message)) = &self.failed {
            st.phase = Some("Failed".into());
            st.reason = Some(reason.clone());
            st.message = Some(message.clone());
        }
        self.conditions
            .replace(st.conditions.clone().unwrap_or_default());
        let mut pod = self.pod.clone();
        pod.status = Some(st);
        let tmp = self.dirs.pod_dir.join("status.json.tmp");
        let dst = self.dirs.pod_dir.join("status.json");
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| SupervisorError::Io { what, path, source }
        };
        std::fs::write(&tmp, serde_json::to_vec_pretty(&pod).expect("json"))
            .map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &dst).map_err(io("rename onto", &dst))?;
        Ok(())
    }

    fn event(&mut self, warning: bool, reason: &str, object: &str, msg: String) {
        if warning {
            self.events.warning(reason, object, msg);
        } else {
            self.events.normal(reason, object, msg);
        }
        self.events_dirty.set(true);
    }

    fn flush_events(&self) {
        if self.events_dirty.replace(false) {
            if let Err(e) = self.events.save(&self.dirs.pod_dir) {
                tracing::warn!(error = %e, "cannot write events");
            }
        }
    }

    /// Accepts and answers control connections (non-blocking).
    fn serve_control(&mut self) {
        loop {
            let Some(l) = &self.control else { return };
            let Ok((conn, _)) = l.accept() else { return };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
            let mut line = String::new();
            let mut r = std::io::BufReader::new(&conn);
            let reply = match r.read_line(&mut line) {
                Ok(_) => match crate::daemon::parse_request(&line) {
                    Ok(crate::daemon::Request::Ping) => {
                        format!("{{\"ok\":true,\"pid\":{}}}\n", std::process::id())
                    }
                    Ok(crate::daemon::Request::Stop { grace }) => {
                        tracing::info!(?grace, "stop requested over the control socket");
                        self.stop = Some(grace.map(Duration::from_secs));
                        "{\"ok\":true}\n".to_string()
                    }
                    Err(e) => format!("{}\n", serde_json::json!({"ok": false, "error": e})),
                },
                Err(e) => format!(
                    "{}\n",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                ),
            };
            let _ = (&conn).write_all(reply.as_bytes());
        }
    }

    fn cid(&self, c: &str) -> String {
        format!("{}-{}", self.uid, c)
    }

    /// Starts slot `i` of `init` (is_init) or `apps`.
    fn start(
        &mut self,
        is_init: bool,
        i: usize,
        ctx: &LaunchContext,
    ) -> Result<(), SupervisorError> {
        let slot = if is_init {
            &self.init[i]
        } else {
            &self.apps[i]
        };
        let name = slot.spec.name.clone();
        let img = self
            .images
            .get(&name)
            .ok_or_else(|| SupervisorError::NoImage(name.clone()))?;
        let id = self.cid(&name);
        let restart = slot.rec.restart_count
            + u32::from(matches!(
                slot.rec.state,
                crate::status::State::Terminated(_)
            ));
        let log = crate::crilog::container_log_path(
            &self.dirs.log_root,
            &self.ns,
            &self.name,
            &self.uid,
            &name,
            restart,
        );
        let object = container_object(is_init, &name);
        let img_id = img.image_id.clone();
        podrun_container::util::trace("sup: start container");
        let rootfs = match self.rootfs.as_mut() {
            Some(p) => p.prepare(&name),
            None => Ok(img.rootfs.clone()),
        };
        // Err((message, is a configuration error)).
        podrun_container::util::trace("sup: rootfs");
        let res = match rootfs {
            Ok(rootfs) => write_bundle(ctx, &slot.spec, &img.process, &rootfs)
                .and_then(|b| start_container(&self.rt, &id, &b, &log))
                .map_err(|e| (e.to_string(), e.is_config_error())),
            Err(e) => Err((e, false)),
        };
        let t = now();
        let mono = self.mono();
        let oom_rel = crate::podcgroup::container_cgroup(&self.opts.cgroup_parent, &name);
        let slot = if is_init {
            &mut self.init[i]
        } else {
            &mut self.apps[i]
        };
        match res {
            Ok(r) => {
                tracing::info!(container = %name, pid = r.pid, "container started");
                slot.rec.image_id = img_id;
                slot.pidfd = podrun_container::util::pidfd_open(r.pid);
                slot.oom = crate::podcgroup::oom_watcher(&oom_rel);
                slot.oom_reported = false;
                slot.run = Some((r, t));
                slot.stopping = None;
                if slot.health.is_none() && needs_health(&slot.spec) {
                    let target = HealthTarget {
                        state_root: self.dirs.state_root.clone(),
                        container_id: id.clone(),
                        netns: self.netns.clone(),
                        pod_ip: "127.0.0.1".into(),
                    };
                    match ContainerHealth::new(target, &slot.spec) {
                        Ok(h) => slot.health = Some(h),
                        Err(e) => {
                            tracing::warn!(container = %name, error = %e, "probes unavailable")
                        }
                    }
                }
                let cid = Some(format!("podrun://{id}"));
                let post = slot.health.as_mut().is_some_and(|h| {
                    h.container_stopped();
                    h.start_hook(HookKind::PostStart, Instant::now(), None)
                });
                if post {
                    // Not Running until postStart completes.
                    slot.post_start = Some((cid, t));
                } else {
                    slot.rec.on_start(cid, t);
                    mark_running(slot, Instant::now());
                }
                self.event(
                    false,
                    "Created",
                    &object,
                    format!("Created container {name}"),
                );
                self.event(
                    false,
                    "Started",
                    &object,
                    format!("Started container {name}"),
                );
            }
            Err((e, true)) => {
                // kubelet: CreateContainerConfigError is a Waiting state, retried
                // (with back-off here) whatever the restartPolicy: the container
                // never ran.
                tracing::warn!(container = %name, error = %e, "container config error");
                let _ = self.rt.delete(&id, true);
                slot.rec.state = crate::status::State::Waiting {
                    reason: crate::status::reason::CREATE_CONTAINER_CONFIG_ERROR.into(),
                    message: Some(e.clone()),
                };
                slot.restart_due = Some(mono);
                self.event(true, "Failed", &object, format!("Error: {e}"));
            }
            Err((e, false)) => {
                tracing::warn!(container = %name, error = %e, "container start failed");
                let e2 = e.clone();
                let _ = self.rt.delete(&id, true);
                if slot.run.is_none()
                    && !matches!(slot.rec.state, crate::status::State::Terminated(_))
                {
                    slot.rec.on_start(Some(id), t);
                }
                slot.rec.on_exit(Termination::start_error(e, t));
                let policy = RestartPolicy::of(self.pod.spec.as_ref().unwrap());
                if should_restart(policy, slot.kind, 128) {
                    slot.restart_due = Some(mono);
                } else {
                    slot.done = true;
                }
                self.event(true, "Failed", &object, format!("Error: {e2}"));
            }
        }
        Ok(())
    }

    /// Records the exit of `pid` if it is one of our containers.
    fn on_exit(&mut self, pid: i32, st: ExitStatus) {
        let policy = RestartPolicy::of(self.pod.spec.as_ref().unwrap());
        let mono = self.mono();
        let rt = &self.rt;
        let n_init = self.init.len();
        let mut oom_event = None;
        for (idx, slot) in self.init.iter_mut().chain(self.apps.iter_mut()).enumerate() {
            if slot.run.as_ref().map(|(r, _)| r.pid) != Some(pid) {
                continue;
            }
            let (mut r, started) = slot.run.take().unwrap();
            if let Some((cid, t)) = slot.post_start.take() {
                slot.rec.on_start(cid, t);
            }
            if let Some(h) = slot.health.as_mut() {
                h.cancel_hook();
                h.container_stopped();
            }
            slot.stopping = None;
            slot.pidfd = None;
            // A kill the watch has not reported yet is still in the counter read below.
            slot.oom = None;
            let reported = std::mem::take(&mut slot.oom_reported);
            let _ = drain(&mut r.pumps, Duration::from_secs(2));
            let oom = crate::podcgroup::oom_killed(&crate::podcgroup::container_cgroup(
                &self.opts.cgroup_parent,
                &slot.spec.name,
            ));
            let _ = rt.delete(&r.id, true);
            let term = Termination::exited(st, oom, started, now());
            let code = term.exit_code;
            tracing::info!(container = %slot.spec.name, code, oom, "container exited");
            slot.rec.on_exit(term);
            if should_restart(policy, slot.kind, code) {
                slot.restart_due = Some(mono);
            } else {
                slot.done = true;
            }
            if oom && !reported {
                oom_event = Some((idx < n_init, slot.spec.name.clone()));
            }
            break;
        }
        if let Some((init, name)) = oom_event {
            let obj = container_object(init, &name);
            self.event(
                true,
                "OOMKilling",
                &obj,
                format!("Memory cgroup out of memory: container {name} was killed by the kernel OOM killer (exit code 137)"),
            );
        }
    }

    fn running_pids(&self) -> Vec<i32> {
        self.init
            .iter()
            .chain(self.apps.iter())
            .filter_map(|s| s.run.as_ref().map(|(r, _)| r.pid))
            .collect()
    }

    /// Polls the log pumps for up to `timeout`.
    fn pump_logs(&mut self, timeout: Duration) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        for s in self.init.iter().chain(self.apps.iter()) {
            if let Some((r, _)) = &s.run {
                for p in r.pumps.iter().filter(|p| !p.is_eof()) {
                    fds.push(libc::pollfd {
                        fd: p.fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
        }
        if fds.is_empty() {
            std::thread::sleep(timeout);
            return;
        }
        // SAFETY: fds is a valid pollfd array of that length.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis() as i32,
            )
        };
        for s in self.init.iter_mut().chain(self.apps.iter_mut()) {
            if let Some((r, _)) = &mut s.run {
                for p in r.pumps.iter_mut() {
                    let _ = p.pump();
                }
            }
        }
    }

    /// Reaps every exited child; returns true if one of ours exited.
    fn reap(&mut self) -> bool {
        let mut any = false;
        loop {
            let mut st = 0;
            // SAFETY: plain non-blocking waitpid.
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if pid <= 0 {
                return any;
            }
            let es = if libc::WIFEXITED(st) {
                ExitStatus::Exited(libc::WEXITSTATUS(st))
            } else if libc::WIFSIGNALED(st) {
                ExitStatus::Signaled(libc::WTERMSIG(st))
            } else {
                continue;
            };
            if self.running_pids().contains(&pid) {
                self.on_exit(pid, es);
                any = true;
            }
        }
    }

    fn slot_mut(&mut self, is_init: bool, i: usize) -> &mut Slot {
        if is_init {
            &mut self.init[i]
        } else {
            &mut self.apps[i]
        }
    }

    /// Polls log pumps and probe/hook runs for up to `max` (less when a probe
    /// is due or a stop step is), then pumps logs, steps the probes and hooks,
    /// and advances stops. Returns true when the status changed.
    fn poll_all(&mut self, max: Duration) -> bool {
        let now = Instant::now();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut wake = now + max;
        if let Some(l) = &self.control {
            fds.push(libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(l),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // (index in fds, slot index over init then apps) of each OOM watch.
        let mut oom_fds: Vec<(usize, usize)> = Vec::new();
        for (si, s) in self.init.iter().chain(self.apps.iter()).enumerate() {
            if let Some(fd) = &s.pidfd {
                fds.push(libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if let Some(w) = &s.oom {
                oom_fds.push((fds.len(), si));
                fds.push(libc::pollfd {
                    fd: std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(w)),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if let Some((r, _)) = &s.run {
                for p in r.pumps.iter().filter(|p| !p.is_eof()) {
                    fds.push(libc::pollfd {
                        fd: p.fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            if let Some(h) = &s.health {
                for (fd, events) in h.poll_fds() {
                    fds.push(libc::pollfd {
                        fd,
                        events,
                        revents: 0,
                    });
                }
                if let Some(d) = h.next_deadline() {
                    wake = wake.min(d);
                }
            }
            if let Some(st) = &s.stopping {
                wake = wake.min(st.kill_at.unwrap_or(st.deadline));
            }
        }
        let ms = wake
            .saturating_duration_since(now)
            .as_micros()
            .div_ceil(1000) as i32;
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(ms as u64));
        } else {
            // SAFETY: fds is a valid pollfd array of that length.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        }
        let n_init = self.init.len();
        for (fi, si) in oom_fds {
            if fds[fi].revents == 0 {
                continue;
            }
            let slot = if si < n_init {
                &mut self.init[si]
            } else {
                &mut self.apps[si - n_init]
            };
            let killed = slot.oom.as_mut().map(|w| w.check());
            match killed {
                Some(Ok(true)) => {
                    slot.oom_reported = true;
                    let name = slot.spec.name.clone();
                    tracing::warn!(container = %name, "OOM kill in the container's cgroup");
                    self.event(
                        true,
                        "OOMKilling",
                        &container_object(si < n_init, &name),
                        format!("Memory cgroup out of memory: the kernel OOM killer killed a process of container {name}"),
                    );
                }
                Some(Ok(false)) | None => {}
                Some(Err(e)) => {
                    tracing::warn!(container = %slot.spec.name, error = %e, "OOM watch failed; dropped");
                    slot.oom = None;
                }
            }
        }
        for s in self.init.iter_mut().chain(self.apps.iter_mut()) {
            if let Some((r, _)) = &mut s.run {
                for p in r.pumps.iter_mut() {
                    let _ = p.pump();
                }
            }
        }
        let changed = self.step_health();
        self.advance_stops();
        self.save_probe_reports();
        changed
    }

    /// Rewrites `<pod_dir>/probes.json` when a probe's result or last outcome changed.
    fn save_probe_reports(&mut self) {
        let gen: u64 = self
            .init
            .iter()
            .chain(self.apps.iter())
            .filter_map(|s| s.health.as_ref())
            .map(|h| h.changes() + 1)
            .sum();
        if gen == self.probe_gen {
            return;
        }
        self.probe_gen = gen;
        let reports: crate::health::ProbeReports = self
            .init
            .iter()
            .chain(self.apps.iter())
            .filter_map(|s| {
                s.health
                    .as_ref()
                    .map(|h| (s.spec.name.clone(), h.reports()))
            })
            .filter(|(_, r)| !r.is_empty())
            .collect();
        if let Err(e) = crate::health::write_probe_reports(&self.dirs.pod_dir, &reports) {
            tracing::warn!(error = %e, "cannot write probes.json");
        }
    }

    /// Steps every container's probes and hooks and applies kubelet's
    /// reactions. Returns true when the status changed.
    fn step_health(&mut self) -> bool {
        let now = Instant::now();
        let mut all = Vec::new();
        for (is_init, v) in [(true, &mut self.init), (false, &mut self.apps)] {
            for (i, s) in v.iter_mut().enumerate() {
                if let Some(h) = &mut s.health {
                    let ev = h.step(now);
                    if !ev.is_empty() {
                        all.push((is_init, i, ev));
                    }
                }
            }
        }
        let mut changed = false;
        for (is_init, i, evs) in all {
            for ev in evs {
                changed |= self.on_health_event(is_init, i, ev);
            }
        }
        changed
    }

    fn on_health_event(&mut self, is_init: bool, i: usize, ev: HealthEvent) -> bool {
        let name = self.slot_mut(is_init, i).spec.name.clone();
        let obj = container_object(is_init, &name);
        let pod_ref = format!("{}_{}({})", self.name, self.ns, self.uid);
        match ev {
            HealthEvent::Unhealthy { message, .. } => {
                self.event(true, "Unhealthy", &obj, message);
                false
            }
            HealthEvent::Warning { message, .. } => {
                self.event(true, "ProbeWarning", &obj, message);
                false
            }
            HealthEvent::Result { kind, result, kill } => {
                let slot = self.slot_mut(is_init, i);
                if slot.run.is_none() || slot.stopping.is_some() {
                    return false;
                }
                if let Some(h) = &slot.health {
                    slot.rec.started = Some(h.started());
                    slot.rec.ready = h.ready();
                }
                tracing::info!(container = %name, ?kind, ?result, kill, "probe result");
                if kill {
                    let what = match kind {
                        ProbeKind::Startup => "startup",
                        _ => "liveness",
                    };
                    let grace = slot
                        .health
                        .as_ref()
                        .and_then(|h| h.probe_grace(kind))
                        .unwrap_or(self.grace);
                    self.event(
                        false,
                        "Killing",
                        &obj,
                        format!("Container {name} failed {what} probe, will be restarted"),
                    );
                    self.begin_stop(is_init, i, grace);
                }
                true
            }
            HealthEvent::Hook {
                kind: HookKind::PostStart,
                result,
            } => {
                let slot = self.slot_mut(is_init, i);
                let Some((cid, t)) = slot.post_start.take() else {
                    return false;
                };
                slot.rec.on_start(cid, t);
                match result {
                    Ok(()) => {
                        mark_running(slot, Instant::now());
                    }
                    Err(m) => {
                        let kind = hook_kind_name(&slot.spec, HookKind::PostStart);
                        self.event(
                            true,
                            "FailedPostStartHook",
                            &obj,
                            format!(
                                "{kind} lifecycle hook for Container \"{name}\" in Pod \"{pod_ref}\" failed - error: {m}"
                            ),
                        );
                        self.event(false, "Killing", &obj, "FailedPostStartHook".to_string());
                        let g = self.grace;
                        self.begin_stop(is_init, i, g);
                    }
                }
                true
            }
            HealthEvent::Hook {
                kind: HookKind::PreStop,
                result,
            } => {
                if let Err(m) = result {
                    let kind = {
                        let s = self.slot_mut(is_init, i);
                        hook_kind_name(&s.spec, HookKind::PreStop)
                    };
                    self.event(
                        true,
                        "FailedPreStopHook",
                        &obj,
                        format!(
                            "{kind} lifecycle hook for Container \"{name}\" in Pod \"{pod_ref}\" failed - error: {m}"
                        ),
                    );
                }
                self.send_stop_signal(is_init, i);
                false
            }
        }
    }

    /// Starts stopping a running container: preStop within `grace`, then the
    /// stop signal, then SIGKILL (see [`Stopping`]). Probes stop at once.
    fn begin_stop(&mut self, is_init: bool, i: usize, grace: Duration) {
        let now = Instant::now();
        let slot = self.slot_mut(is_init, i);
        if slot.run.is_none() || slot.stopping.is_some() {
            return;
        }
        slot.stopping = Some(Stopping {
            deadline: now + grace,
            kill_at: None,
            killed: false,
        });
        slot.rec.ready = false;
        let pre_stop = match slot.health.as_mut() {
            Some(h) => {
                h.cancel_hook();
                h.container_stopped();
                !grace.is_zero() && h.start_hook(HookKind::PreStop, now, Some(grace))
            }
            None => false,
        };
        if !pre_stop {
            self.send_stop_signal(is_init, i);
        }
    }

    /// Sends the container's stop signal (once); SIGKILL follows when the
    /// grace period ends, at least [`MIN_GRACE_AFTER_SIGNAL`] later.
    fn send_stop_signal(&mut self, is_init: bool, i: usize) {
        let now = Instant::now();
        let slot = if is_init {
            &mut self.init[i]
        } else {
            &mut self.apps[i]
        };
        let Some(st) = slot.stopping.as_mut() else {
            return;
        };
        if st.kill_at.is_some() {
            return;
        }
        if let Some(h) = slot.health.as_mut() {
            h.cancel_hook();
        }
        st.kill_at = Some(st.deadline.max(now + MIN_GRACE_AFTER_SIGNAL));
        if let Some((r, _)) = &slot.run {
            let image_sig = self
                .images
                .get(&slot.spec.name)
                .and_then(|i| i.process.stop_signal.as_deref());
            let sig = stop_signal(&slot.spec, image_sig);
            tracing::info!(container = %slot.spec.name, sig, "stop signal");
            let _ = self.rt.kill(&r.id, sig, false);
        }
    }

    /// Abandons preStop hooks whose grace ran out and SIGKILLs containers past `kill_at`.
    fn advance_stops(&mut self) {
        let now = Instant::now();
        let mut abandon = Vec::new();
        for (is_init, v) in [(true, &mut self.init), (false, &mut self.apps)] {
            for (i, s) in v.iter_mut().enumerate() {
                let Some(st) = s.stopping.as_mut() else {
                    continue;
                };
                match st.kill_at {
                    None if now >= st.deadline => abandon.push((is_init, i)),
                    Some(k) if now >= k && !st.killed => {
                        st.killed = true;
                        if let Some((r, _)) = &s.run {
                            tracing::info!(container = %s.spec.name, "grace period over: SIGKILL");
                            let _ = self.rt.kill(&r.id, libc::SIGKILL, true);
                        }
                    }
                    _ => {}
                }
            }
        }
        for (is_init, i) in abandon {
            // The hook reports its own failure (timed out) on the next step;
            // the signal cannot wait for it.
            self.send_stop_signal(is_init, i);
        }
    }

    fn signal_all(&self, sig: i32) {
        for s in self.init.iter().chain(self.apps.iter()) {
            if let Some((r, _)) = &s.run {
                let _ = self.rt.kill(&r.id, sig, true);
            }
        }
    }
}

/// A running container (postStart done, or none): Running, probes start.
fn mark_running(slot: &mut Slot, at: Instant) {
    match slot.health.as_mut() {
        Some(h) => {
            h.container_started(at);
            slot.rec.started = Some(h.started());
            slot.rec.ready = h.ready();
        }
        None => {
            // Without probes a running container is started and ready at
            // once (kubelet: no startup probe → started; no readiness probe → ready).
            slot.rec.started = Some(slot.spec.startup_probe.is_none());
            slot.rec.ready =
                slot.spec.startup_probe.is_none() && slot.spec.readiness_probe.is_none();
        }
    }
}

/// kubelet's hook kind word for messages: Exec, HTTP, Sleep.
fn hook_kind_name(c: &Container, k: HookKind) -> &'static str {
    let h = c.lifecycle.as_ref().and_then(|l| match k {
        HookKind::PostStart => l.post_start.as_ref(),
        HookKind::PreStop => l.pre_stop.as_ref(),
    });
    match h {
        Some(h) if h.exec.is_some() => "Exec",
        Some(h) if h.http_get.is_some() => "HTTP",
        Some(h) if h.sleep.is_some() => "Sleep",
        _ => "TCP",
    }
}

/// Runs `pod` to completion or until [`request_stop`]; returns the final phase.
///
/// The caller provides each container's mounted image (`images` by container
/// name), is root, and should be `PR_SET_CHILD_SUBREAPER`. The pod's state
/// dir keeps `status.json`; everything else it created (namespace pins,
/// containers, cgroups, bundles) is removed before returning.
pub fn run_pod(
    pod: &Pod,
    dirs: &PodDirs,
    images: &HashMap<String, ContainerImage>,
    opts: &SupervisorOptions,
) -> Result<crate::status::Phase, SupervisorError> {
    run_pod_with(pod, dirs, images, opts, Extras::default())
}

/// [`run_pod`] with the daemon's [`Extras`].
pub fn run_pod_with(
    pod: &Pod,
    dirs: &PodDirs,
    images: &HashMap<String, ContainerImage>,
    opts: &SupervisorOptions,
    mut extras: Extras,
) -> Result<crate::status::Phase, SupervisorError> {
    let r = run_pod_inner(pod, dirs, images, opts, &mut extras);
    if let Err(e) = &r {
        report_ready(&mut extras.ready, &format!("error: {e}\n"));
    }
    if let Some(mut p) = extras.rootfs.take() {
        p.release_all();
    }
    r
}

fn run_pod_inner(
    pod: &Pod,
    dirs: &PodDirs,
    images: &HashMap<String, ContainerImage>,
    opts: &SupervisorOptions,
    extras: &mut Extras,
) -> Result<crate::status::Phase, SupervisorError> {
    let spec = pod.spec.as_ref().ok_or(SupervisorError::NoSpec)?;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        if !images.contains_key(&c.name) {
            return Err(SupervisorError::NoImage(c.name.clone()));
        }
    }
    std::fs::create_dir_all(&dirs.pod_dir).map_err(|source| SupervisorError::Io {
        what: "create pod dir",
        path: dirs.pod_dir.clone(),
        source,
    })?;
    let _ = std::fs::remove_file(dirs.pod_dir.join("stop"));
    write_pod_files(pod, &dirs.pod_dir)?;
    podrun_container::util::trace("sup: pod files");
    let sandbox = Sandbox::start_with(
        &SandboxConfig {
            hostname: crate::launch::pod_hostname(pod),
            host_network: spec.host_network == Some(true),
            host_ipc: spec.host_ipc == Some(true),
            share_pid: spec.share_process_namespace == Some(true),
            ns_dir: dirs.pod_dir.join("ns"),
        },
        !extras.detach_pause,
    )?;
    if extras.detach_pause {
        if let Some(rec) = crate::podstate::PidRecord::of(sandbox.pid()) {
            let p = dirs.pod_dir.join(crate::podstate::files::PAUSE_PID);
            rec.write(&p).map_err(|source| SupervisorError::Io {
                what: "write",
                path: p,
                source,
            })?;
        }
    }
    podrun_container::util::trace("sup: sandbox");
    let pod_cg = crate::podcgroup::setup(spec, &opts.cgroup_parent, opts.pids_limit)
        .map_err(SupervisorError::Cgroup);
    if let Err(e) = pod_cg {
        drop(sandbox);
        crate::podcgroup::remove(&opts.cgroup_parent);
        return Err(e);
    }
    let slot = |c: &Container, kind| Slot {
        spec: c.clone(),
        kind,
        rec: ContainerRecord::new(
            &c.name,
            c.image.as_deref().unwrap_or_default(),
            if kind == ContainerKind::App {
                "ContainerCreating"
            } else {
                "PodInitializing"
            },
        ),
        run: None,
        backoff: RestartBackoff::new(opts.backoff_scale),
        restart_due: None,
        done: false,
        health: None,
        post_start: None,
        stopping: None,
        pidfd: None,
        oom: None,
        oom_reported: false,
    };
    let mut sup = Sup {
        pod,
        dirs,
        images,
        opts,
        rt: podrun_container::Runtime::in_process(&dirs.state_root),
        uid: pod.metadata.uid.clone().unwrap_or_else(|| "nouid".into()),
        ns: pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pod.metadata.name.clone().unwrap_or_default(),
        t0: Instant::now(),
        start_time: now(),
        init: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                slot(
                    c,
                    if crate::resources::is_restartable_init(c) {
                        ContainerKind::Sidecar
                    } else {
                        ContainerKind::Init
                    },
                )
            })
            .collect(),
        apps: spec
            .containers
            .iter()
            .map(|c| slot(c, ContainerKind::App))
            .collect(),
        message: None,
        events: crate::events::EventLog::load(&dirs.pod_dir),
        events_dirty: std::cell::Cell::new(false),
        conditions: std::cell::RefCell::new(
            read_status(&dirs.pod_dir)
                .ok()
                .and_then(|p| p.status)
                .and_then(|s| s.conditions)
                .unwrap_or_default(),
        ),
        rootfs: extras.rootfs.take(),
        control: extras.control.take(),
        stop: None,
        netns: sandbox
            .ns_path(crate::sandbox::NsKind::Net)
            .map(Path::to_path_buf),
        failed: None,
        grace: spec
            .termination_grace_period_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(opts.default_grace),
        probe_gen: 0,
    };
    if let Some(l) = &sup.control {
        let _ = l.set_nonblocking(true);
    }
    let result = supervise(&mut sup, &sandbox, &mut extras.ready);
    extras.rootfs = sup.rootfs.take();
    // Teardown, whatever happened.
    sup.signal_all(libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sup.running_pids().is_empty() && Instant::now() < deadline {
        sup.reap();
        sup.pump_logs(Duration::from_millis(20));
    }
    let _ = sup.write_status();
    drop(sandbox);
    let _ = std::fs::remove_file(dirs.pod_dir.join(crate::podstate::files::PAUSE_PID));
    crate::podcgroup::remove(&opts.cgroup_parent);
    let _ = std::fs::remove_dir_all(dirs.pod_dir.join("bundles"));
    if let Err(e) = crate::volumes::unmount_pod_volumes(pod, &dirs.pod_dir) {
        tracing::warn!(error = %e, "cannot unmount pod volumes");
    }
    let _ = std::fs::remove_dir_all(dirs.pod_dir.join("volumes"));
    let _ = std::fs::remove_file(dirs.pod_dir.join("stop"));
    result?;
    let st = read_status(&dirs.pod_dir)?;
    Ok(match st.status.and_then(|s| s.phase).as_deref() {
        Some("Succeeded") => crate::status::Phase::Succeeded,
        Some("Failed") => crate::status::Phase::Failed,
        Some("Running") => crate::status::Phase::Running,
        Some("Pending") => crate::status::Phase::Pending,
        _ => crate::status::Phase::Unknown,
    })
}

fn supervise(
    sup: &mut Sup,
    sandbox: &Sandbox,
    ready: &mut Option<OwnedFd>,
) -> Result<(), SupervisorError> {
    let ctx = LaunchContext {
        pod: sup.pod,
        pod_dir: &sup.dirs.pod_dir,
        namespaces: sandbox.namespaces(),
        cgroup_parent: &sup.opts.cgroup_parent,
        machine_memory: sup.opts.machine_memory,
    };
    let grace = sup
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(sup.opts.default_grace);
    let stop_file = sup.dirs.pod_dir.join("stop");
    let active_deadline = sup
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64));
    let mut next_init = 0usize;
    let mut apps_started = false;
    let mut init_failed = false;
    sup.write_status()?;
    loop {
        let mut changed = false;
        // Start what is due.
        if !init_failed && next_init < sup.init.len() {
            let s = &sup.init[next_init];
            if s.done && s.kind == ContainerKind::Init {
                if matches!(&s.rec.state, crate::status::State::Terminated(t) if t.exit_code == 0) {
                    next_init += 1;
                } else {
                    init_failed = true;
                }
                changed = true;
            } else if s.run.is_none() && s.restart_due.is_none() && !s.done {
                sup.start(true, next_init, &ctx)?;
                changed = true;
            } else if s.kind == ContainerKind::Sidecar && s.run.is_some() {
                next_init += 1;
            }
        } else if !init_failed && !apps_started {
            for i in 0..sup.apps.len() {
                sup.start(false, i, &ctx)?;
            }
            apps_started = true;
            changed = true;
        }
        // Restarts whose backoff expired.
        let mono = sup.mono();
        let mut next_wake = IDLE_WAKE;
        for is_init in [true, false] {
            let n = if is_init {
                sup.init.len()
            } else {
                sup.apps.len()
            };
            for i in 0..n {
                let s = if is_init {
                    &mut sup.init[i]
                } else {
                    &mut sup.apps[i]
                };
                let Some(fin) = s.restart_due else { continue };
                match s.backoff.check(fin, mono) {
                    BackoffDecision::Restart => {
                        s.restart_due = None;
                        sup.start(is_init, i, &ctx)?;
                        changed = true;
                    }
                    BackoffDecision::Wait(left) => {
                        next_wake = next_wake.min(left);
                        if !matches!(s.rec.state, crate::status::State::Waiting { .. }) {
                            let msg =
                                format!("back-off restarting failed container {}", s.spec.name);
                            s.rec.on_backoff(msg.clone());
                            changed = true;
                            let cname = s.spec.name.clone();
                            let obj = container_object(is_init, &cname);
                            let msg = format!(
                                "Back-off restarting failed container {cname} in pod {}_{}({})",
                                sup.name, sup.ns, sup.uid
                            );
                            sup.event(true, "BackOff", &obj, msg);
                        }
                    }
                }
            }
        }
        if sup.reap() {
            changed = true;
        }
        if changed {
            sup.write_status()?;
        }
        if ready.is_some()
            && (apps_started
                || next_init > 0
                || init_failed
                || sup.init.iter().any(|s| s.run.is_some()))
        {
            report_ready(ready, "ok\n");
            // Start-up is over: keep only the code the loop runs mapped.
            crate::daemon::trim_text();
        }
        sup.flush_events();
        sup.serve_control();
        if sup.stop.is_none() && stop_file.exists() {
            sup.stop = Some(None);
        }
        if let Some(ads) = active_deadline {
            if sup.failed.is_none() && sup.stop.is_none() && sup.mono() >= ads {
                let msg = "Pod was active on the node longer than the specified deadline";
                tracing::info!("activeDeadlineSeconds reached");
                sup.failed = Some(("DeadlineExceeded".into(), msg.into()));
                sup.event(true, "DeadlineExceeded", "", msg.into());
                sup.stop = Some(None);
            }
        }
        // Finished?
        let all_apps_done = apps_started && sup.apps.iter().all(|s| s.done);
        if init_failed || all_apps_done {
            return Ok(());
        }
        if let Some(g) = sup.stop {
            let grace = g.unwrap_or(grace);
            tracing::info!(?grace, "stopping the pod");
            if sup.failed.is_none() {
                sup.message = Some("pod stopped".into());
            }
            let running: Vec<(bool, String)> = sup
                .init
                .iter()
                .map(|s| (true, s))
                .chain(sup.apps.iter().map(|s| (false, s)))
                .filter(|(_, s)| s.run.is_some())
                .map(|(i, s)| (i, s.spec.name.clone()))
                .collect();
            for (i, n) in running {
                sup.event(
                    false,
                    "Killing",
                    &container_object(i, &n),
                    format!("Stopping container {n}"),
                );
            }
            // Each container: preStop, stop signal, SIGKILL after the grace
            // (kubelet's 2 s minimum after the signal).
            for is_init in [true, false] {
                let n = if is_init {
                    sup.init.len()
                } else {
                    sup.apps.len()
                };
                for i in 0..n {
                    let s = sup.slot_mut(is_init, i);
                    s.restart_due = None;
                    s.done = true;
                    // A stop already under way (liveness kill) keeps its own timing.
                    sup.begin_stop(is_init, i, grace);
                }
            }
            let deadline = Instant::now() + grace + MIN_GRACE_AFTER_SIGNAL + Duration::from_secs(5);
            while !sup.running_pids().is_empty() && Instant::now() < deadline {
                sup.reap();
                sup.poll_all(Duration::from_millis(20));
            }
            sup.signal_all(libc::SIGKILL);
            for s in sup.init.iter_mut().chain(sup.apps.iter_mut()) {
                s.restart_due = None;
                s.done = true;
            }
            return Ok(());
        }
        if let Some(ads) = active_deadline {
            next_wake = next_wake.min(ads.saturating_sub(sup.mono()));
        }
        // Something changed: loop again at once (the next init container, ...).
        if changed {
            next_wake = Duration::ZERO;
        }
        if sup.poll_all(next_wake) {
            sup.write_status()?;
        }
    }
}

/// Pure: the `oom_kill N` counter of a v1 `memory.oom_control` or v2 `memory.events`.
pub fn parse_oom_kill(content: &str) -> Option<u64> {
    content
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    fn container(v: serde_json::Value) -> k8s_openapi::api::core::v1::Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn stop_signal_and_hook_kinds() {
        let c = container(serde_json::json!({"name": "a"}));
        assert_eq!(super::stop_signal(&c, None), libc::SIGTERM);
        assert_eq!(super::stop_signal(&c, Some("SIGQUIT")), libc::SIGQUIT);
        assert!(!super::needs_health(&c));
        let c = container(
            serde_json::json!({"name": "a", "lifecycle": {"stopSignal": "SIGUSR1",
            "postStart": {"exec": {"command": ["true"]}}, "preStop": {"httpGet": {"port": 80}}}}),
        );
        assert_eq!(super::stop_signal(&c, Some("SIGHUP")), libc::SIGUSR1);
        assert!(super::needs_health(&c));
        assert_eq!(
            super::hook_kind_name(&c, crate::health::HookKind::PostStart),
            "Exec"
        );
        assert_eq!(
            super::hook_kind_name(&c, crate::health::HookKind::PreStop),
            "HTTP"
        );
        let c = container(
            serde_json::json!({"name": "a", "lifecycle": {"stopSignal": "QUIT"},
            "readinessProbe": {"tcpSocket": {"port": 1}}}),
        );
        assert_eq!(super::stop_signal(&c, None), libc::SIGQUIT);
        assert!(super::needs_health(&c));
    }

    #[test]
    fn parse_oom_kill_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(super::parse_oom_kill(v1), Some(2));
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(super::parse_oom_kill(v2), Some(1));
        assert_eq!(super::parse_oom_kill("oom 1\n"), None);
    }
}

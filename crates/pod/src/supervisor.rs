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
use crate::launch::{
    start_container, write_bundle, write_pod_files, ImageProcess, LaunchContext, LaunchError,
    Running,
};
use crate::logs::drain;
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

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

struct Slot {
    spec: Container,
    kind: ContainerKind,
    rec: ContainerRecord,
    run: Option<(Running, Timestamp)>,
    backoff: RestartBackoff,
    /// Monotonic time (since supervisor start) of the last exit, when a restart is due.
    restart_due: Option<Duration>,
    done: bool,
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
    rootfs: Option<Box<dyn RootfsProvider>>,
    control: Option<UnixListener>,
    /// A stop was requested (control socket or stop file), with an optional grace override.
    stop: Option<Option<Duration>>,
}

impl Sup<'_> {
    fn mono(&self) -> Duration {
        self.t0.elapsed()
    }

    fn write_status(&self) -> Result<(), SupervisorError> {
        let spec = self.pod.spec.as_ref().ok_or(SupervisorError::NoSpec)?;
        let init: Vec<ContainerRecord> = self.init.iter().map(|s| s.rec.clone()).collect();
        let apps: Vec<ContainerRecord> = self.apps.iter().map(|s| s.rec.clone()).collect();
        let prev = read_status(&self.dirs.pod_dir)
            .ok()
            .and_then(|p| p.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default();
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
        if let Err(e) = self.events.save(&self.dirs.pod_dir) {
            tracing::warn!(error = %e, "cannot write events");
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
        let rootfs = match self.rootfs.as_mut() {
            Some(p) => p.prepare(&name),
            None => Ok(img.rootfs.clone()),
        };
        let res = match rootfs {
            Ok(rootfs) => write_bundle(ctx, &slot.spec, &img.process, &rootfs)
                .and_then(|b| start_container(&self.rt, &id, &b, &log))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let t = now();
        let mono = self.mono();
        let slot = if is_init {
            &mut self.init[i]
        } else {
            &mut self.apps[i]
        };
        match res {
            Ok(r) => {
                tracing::info!(container = %name, pid = r.pid, "container started");
                slot.rec.on_start(Some(format!("podrun://{id}")), t);
                slot.rec.image_id = img_id;
                // Without probes a running container is started and ready at
                // once (kubelet: no startup probe → started; no readiness probe → ready).
                slot.rec.started = Some(slot.spec.startup_probe.is_none());
                slot.rec.ready =
                    slot.spec.startup_probe.is_none() && slot.spec.readiness_probe.is_none();
                slot.run = Some((r, t));
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
            Err(e) => {
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
            let _ = drain(&mut r.pumps, Duration::from_secs(2));
            let oom = oom_killed(&format!("{}/{}", self.opts.cgroup_parent, slot.spec.name));
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
            if oom {
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

    fn signal_all(&self, sig: i32) {
        for s in self.init.iter().chain(self.apps.iter()) {
            if let Some((r, _)) = &s.run {
                let _ = self.rt.kill(&r.id, sig, true);
            }
        }
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
        rootfs: extras.rootfs.take(),
        control: extras.control.take(),
        stop: None,
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
    remove_cgroup(&opts.cgroup_parent);
    let _ = std::fs::remove_dir_all(dirs.pod_dir.join("bundles"));
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
                    BackoffDecision::Wait(_) => {
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
        }
        sup.serve_control();
        if sup.stop.is_none() && stop_file.exists() {
            sup.stop = Some(None);
        }
        // Finished?
        let all_apps_done = apps_started && sup.apps.iter().all(|s| s.done);
        if init_failed || all_apps_done {
            return Ok(());
        }
        if let Some(g) = sup.stop {
            let grace = g.unwrap_or(grace);
            tracing::info!(?grace, "stopping the pod");
            sup.message = Some("pod stopped".into());
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
            sup.signal_all(libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while !sup.running_pids().is_empty() && Instant::now() < deadline {
                sup.reap();
                sup.pump_logs(Duration::from_millis(20));
            }
            sup.signal_all(libc::SIGKILL);
            for s in sup.init.iter_mut().chain(sup.apps.iter_mut()) {
                s.restart_due = None;
                s.done = true;
            }
            return Ok(());
        }
        sup.pump_logs(Duration::from_millis(20));
    }
}

/// Removes the pod cgroup in every hierarchy (best effort: containers' own
/// cgroups are removed by the engine on delete).
fn remove_cgroup(rel: &str) {
    let Ok(s) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    for line in s.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let base = if ctrls.is_empty() {
            PathBuf::from("/sys/fs/cgroup/unified")
        } else {
            let c = ctrls
                .split(',')
                .next()
                .unwrap_or("")
                .trim_start_matches("name=");
            PathBuf::from("/sys/fs/cgroup").join(c)
        };
        let mut p = base.join(path.trim_start_matches('/')).join(rel);
        // rmdir the pod cgroup, then its now-empty parents up to the caller's.
        for _ in 0..rel.split('/').count() {
            if std::fs::remove_dir(&p).is_err() {
                break;
            }
            p.pop();
        }
    }
}

/// The caller's cgroup directory for each hierarchy: (controllers, dir).
fn own_cgroup_dirs() -> Vec<(String, PathBuf)> {
    let Ok(s) = std::fs::read_to_string("/proc/self/cgroup") else {
        return Vec::new();
    };
    s.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            let base = if ctrls.is_empty() {
                PathBuf::from("/sys/fs/cgroup/unified")
            } else {
                let c = ctrls
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("name=");
                PathBuf::from("/sys/fs/cgroup").join(c)
            };
            Some((ctrls.to_string(), base.join(path.trim_start_matches('/'))))
        })
        .collect()
}

/// Pure: the `oom_kill N` counter of a v1 `memory.oom_control` or v2 `memory.events`.
pub fn parse_oom_kill(content: &str) -> Option<u64> {
    content
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the kernel OOM-killed a process in the container cgroup `rel`
/// (relative to ours): read before the engine removes the cgroup.
fn oom_killed(rel: &str) -> bool {
    own_cgroup_dirs().into_iter().any(|(ctrls, dir)| {
        let f = if ctrls.split(',').any(|c| c == "memory") {
            dir.join(rel).join("memory.oom_control")
        } else if ctrls.is_empty() {
            dir.join(rel).join("memory.events")
        } else {
            return false;
        };
        std::fs::read_to_string(f)
            .ok()
            .and_then(|c| parse_oom_kill(&c))
            .is_some_and(|n| n > 0)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_oom_kill_counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(super::parse_oom_kill(v1), Some(2));
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(super::parse_oom_kill(v2), Some(1));
        assert_eq!(super::parse_oom_kill("oom 1\n"), None);
    }
}

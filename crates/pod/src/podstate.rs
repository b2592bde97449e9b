//! A pod's state directory and everything that can be learnt from it without
//! the supervisor: where files live, whether the supervisor and pause are
//! alive, the effective status (phase Unknown when the supervisor is gone),
//! and the one cleanup function used by `delete`, `delete --force` and a
//! failed `create`.
//!
//! Layout, under `<root>/pods/<namespace>_<name>/`:
//! ```text
//! pod.json          the submitted Pod (defaults applied, uid, creationTimestamp)
//! run.json          RunInfo: log root, image store, cgroup dirs, image ids
//! status.json       the Pod with status, rewritten atomically by the supervisor
//! events.json       EventLog
//! supervisor.pid    "<pid> <starttime>"     pause.pid   the same for pause
//! control.sock      the supervisor's control socket
//! supervisor.log    the supervisor's own log (tracing)
//! containers/       OCI state root of the pod's containers (ids <uid>-<name>)
//! ns/ bundles/ volumes/ hosts hostname
//! ```

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors reading or cleaning up pod state.
#[derive(Debug, thiserror::Error)]
pub enum PodStateError {
    #[error("pods {name:?} not found in namespace {namespace:?}")]
    NotFound { namespace: String, name: String },
    #[error("pods {name:?} already exists in namespace {namespace:?} (state in {dir})")]
    AlreadyExists {
        namespace: String,
        name: String,
        dir: PathBuf,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cleanup of {dir} incomplete: {problems}")]
    Cleanup { dir: PathBuf, problems: String },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PodStateError {
    let path = path.to_path_buf();
    move |source| PodStateError::Io { what, path, source }
}

/// Facts recorded at create time that cleanup needs even without a supervisor.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// CRI log root; the pod's logs are in `<log_root>/<ns>_<name>_<uid>/`.
    pub log_root: PathBuf,
    /// Image store root (container rootfs keys `<uid>-<container>`).
    pub image_root: PathBuf,
    /// Pod cgroup, relative to the supervisor's cgroup.
    pub cgroup_parent: String,
    /// Absolute pod cgroup dirs, one per hierarchy.
    pub cgroup_dirs: Vec<PathBuf>,
    /// Container name → image id (`sha256:...`) resolved at create time.
    pub images: BTreeMap<String, String>,
    /// Restart backoff scale (1.0 = kubelet's 10 s .. 300 s).
    pub backoff_scale: f64,
    /// pids.max of the pod cgroup (None: unlimited).
    #[serde(default)]
    pub pids_limit: Option<i64>,
}

/// `<root>/pods`.
pub fn pods_root(root: &Path) -> PathBuf {
    root.join("pods")
}

/// The directory of pod `namespace/name`.
pub fn pod_dir(root: &Path, namespace: &str, name: &str) -> PathBuf {
    pods_root(root).join(format!("{namespace}_{name}"))
}

/// A pid with its start time (to tell it from a recycled pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: i32,
    pub start_time: u64,
}

impl PidRecord {
    pub fn of(pid: i32) -> Option<PidRecord> {
        podrun_container::util::proc_stat(pid).map(|s| PidRecord {
            pid,
            start_time: s.start_time,
        })
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{} {}\n", self.pid, self.start_time))?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> Option<PidRecord> {
        let s = std::fs::read_to_string(path).ok()?;
        let mut it = s.split_whitespace();
        Some(PidRecord {
            pid: it.next()?.parse().ok()?,
            start_time: it.next()?.parse().ok()?,
        })
    }

    pub fn alive(&self) -> bool {
        podrun_container::util::process_alive(self.pid, self.start_time)
    }
}

/// Names of the files in a pod dir.
pub mod files {
    pub const POD: &str = "pod.json";
    pub const RUN: &str = "run.json";
    pub const STATUS: &str = "status.json";
    pub const SUPERVISOR_PID: &str = "supervisor.pid";
    pub const PAUSE_PID: &str = "pause.pid";
    pub const SOCKET: &str = "control.sock";
    pub const SUPERVISOR_LOG: &str = "supervisor.log";
    pub const CONTAINERS: &str = "containers";
}

/// A pod as seen from its state dir.
#[derive(Debug, Clone)]
pub struct PodView {
    pub dir: PathBuf,
    /// status.json if present, else pod.json; with phase Unknown if the
    /// supervisor is gone while the pod had not finished.
    pub pod: Pod,
    pub supervisor: Option<PidRecord>,
    pub supervisor_alive: bool,
    pub run: RunInfo,
}

impl PodView {
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or("")
    }
    pub fn phase(&self) -> &str {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending")
    }
    /// The container's log dir for this pod.
    pub fn log_dir(&self) -> PathBuf {
        crate::crilog::pod_log_dir(
            &self.run.log_root,
            self.namespace(),
            self.name(),
            self.uid(),
        )
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, PodStateError> {
    let b = std::fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice(&b).map_err(|e| PodStateError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes JSON atomically (tmp + rename).
pub fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), PodStateError> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).expect("json")).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename onto", path))
}

/// Pure: a pod whose supervisor is gone before it finished is phase Unknown.
pub fn apply_liveness(mut pod: Pod, supervisor_alive: bool) -> Pod {
    if supervisor_alive {
        return pod;
    }
    let st = pod.status.get_or_insert_with(Default::default);
    match st.phase.as_deref() {
        Some("Succeeded") | Some("Failed") => {}
        _ => {
            st.phase = Some("Unknown".into());
            st.message = Some(
                "the pod's supervisor process is not running: its containers are not watched (podrun delete --force removes them)".into(),
            );
            for c in st.conditions.iter_mut().flatten() {
                if c.type_ == "Ready" || c.type_ == "ContainersReady" {
                    c.status = "Unknown".into();
                    c.reason = Some("SupervisorLost".into());
                }
            }
            for c in st.container_statuses.iter_mut().flatten() {
                c.ready = false;
            }
        }
    }
    pod
}

/// Reads one pod's state dir.
pub fn load(dir: &Path) -> Result<PodView, PodStateError> {
    let run: RunInfo = read_json(&dir.join(files::RUN)).unwrap_or_default();
    let status_path = dir.join(files::STATUS);
    let pod: Pod = if status_path.exists() {
        read_json(&status_path)?
    } else {
        read_json(&dir.join(files::POD))?
    };
    let supervisor = PidRecord::read(&dir.join(files::SUPERVISOR_PID));
    let alive = supervisor.is_some_and(|p| p.alive());
    // A pod still being created (no pid yet) counts as alive for a short while.
    let creating = supervisor.is_none()
        && std::fs::metadata(dir.join(files::POD))
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(30))
            .unwrap_or(false);
    Ok(PodView {
        dir: dir.to_path_buf(),
        pod: apply_liveness(pod, alive || creating),
        supervisor,
        supervisor_alive: alive,
        run,
    })
}

/// Finds pod `namespace/name`.
pub fn find(root: &Path, namespace: &str, name: &str) -> Result<PodView, PodStateError> {
    let dir = pod_dir(root, namespace, name);
    if !dir.join(files::POD).exists() {
        return Err(PodStateError::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    load(&dir)
}

/// All pods (in `namespace`, or every namespace), sorted by namespace and name.
pub fn list(root: &Path, namespace: Option<&str>) -> Vec<PodView> {
    let Ok(rd) = std::fs::read_dir(pods_root(root)) else {
        return Vec::new();
    };
    let mut v: Vec<PodView> = rd
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            match namespace {
                Some(ns) => n.starts_with(&format!("{ns}_")),
                None => n.contains('_'),
            }
        })
        .filter(|e| e.path().join(files::POD).exists())
        .filter_map(|e| load(&e.path()).ok())
        .filter(|p| namespace.is_none_or(|ns| p.namespace() == ns))
        .collect();
    v.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    v
}

/// Mount points at or below `dir` (deepest first), from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(s) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let prefix = dir.to_string_lossy().trim_end_matches('/').to_string();
    let mut v: Vec<PathBuf> = s
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

use podrun_container::mounts::unescape_mountinfo;

fn umount_detach(p: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid NUL-terminated path; umount2 has no memory effects on us.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILLs `p` (if it is still the same process) and waits up to `timeout` for it to go.
pub fn kill_and_wait(p: PidRecord, timeout: Duration) -> bool {
    if !p.alive() {
        return true;
    }
    match podrun_container::util::pidfd_open(p.pid) {
        Some(fd) if p.alive() => {
            let _ = podrun_container::util::pidfd_signal(&fd, libc::SIGKILL);
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
            // Reap it if it happens to be our child.
            // SAFETY: non-blocking waitpid on a specific pid.
            unsafe { libc::waitpid(p.pid, std::ptr::null_mut(), libc::WNOHANG) };
            let deadline = Instant::now() + Duration::from_millis(200);
            while p.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            !p.alive()
        }
        _ => true,
    }
}

/// Kills what is left in a cgroup dir tree and removes it (deepest first).
fn remove_cgroup_tree(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    let mut dirs = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(rd) = std::fs::read_dir(&dirs[i]) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    dirs.push(e.path());
                }
            }
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        for attempt in 0..50 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    if attempt == 49 {
                        return Err(format!("rmdir {}: {e}", d.display()));
                    }
                    let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        // SAFETY: plain kill(2) of a pid read from the pod's own cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    Ok(())
}

/// Removes everything a pod left on the host: kills the supervisor (if
/// `kill_supervisor`), every container (through the engine), pause; unmounts
/// rootfs overlays, namespace pins and volumes; removes the pod's cgroups,
/// its logs (if `remove_logs`) and finally its state dir (if `remove_dir`).
/// Every step runs even if an earlier one failed; problems are collected.
pub fn cleanup(
    dir: &Path,
    kill_supervisor: bool,
    remove_logs: bool,
    remove_dir: bool,
) -> Result<(), PodStateError> {
    let mut problems: Vec<String> = Vec::new();
    let run: RunInfo = read_json(&dir.join(files::RUN)).unwrap_or_default();
    let pod: Option<Pod> = read_json(&dir.join(files::POD)).ok();
    if kill_supervisor {
        if let Some(p) = PidRecord::read(&dir.join(files::SUPERVISOR_PID)) {
            if !kill_and_wait(p, Duration::from_secs(5)) {
                problems.push(format!("supervisor pid {} did not die", p.pid));
            }
        }
    }
    // Containers (kills every process in each container cgroup, removes it).
    let croot = dir.join(files::CONTAINERS);
    if croot.exists() {
        let rt = podrun_container::Runtime::in_process(&croot);
        match rt.list() {
            Ok(states) => {
                for s in states {
                    if let Err(e) = rt.delete(&s.id, true) {
                        problems.push(format!("container {}: {e}", s.id));
                    }
                }
            }
            Err(e) => problems.push(format!("list containers: {e}")),
        }
    }
    if let Some(p) = PidRecord::read(&dir.join(files::PAUSE_PID)) {
        if !kill_and_wait(p, Duration::from_secs(5)) {
            problems.push(format!("pause pid {} did not die", p.pid));
        }
    }
    // Container rootfs overlays.
    if let Some(pod) = &pod {
        if !run.image_root.as_os_str().is_empty() {
            if let Ok(store) = podrun_image::Store::open(&run.image_root) {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                for key in store.containers() {
                    if key.starts_with(&format!("{uid}-")) {
                        if let Err(e) = store.unmount_rootfs(&key) {
                            problems.push(format!("rootfs {key}: {e}"));
                        }
                    }
                }
            }
        }
    }
    // Anything still mounted in the pod dir: ns pins, tmpfs volumes, bind mounts.
    for m in mounts_under(dir) {
        if let Err(e) = umount_detach(&m) {
            problems.push(format!("umount {}: {e}", m.display()));
        }
    }
    for d in &run.cgroup_dirs {
        if let Err(e) = remove_cgroup_tree(d) {
            problems.push(e);
        }
    }
    crate::podcgroup::remove_empty_parent(&run.cgroup_dirs);
    if remove_logs {
        if let Some(pod) = &pod {
            let m = &pod.metadata;
            let ld = crate::crilog::pod_log_dir(
                &run.log_root,
                m.namespace.as_deref().unwrap_or("default"),
                m.name.as_deref().unwrap_or(""),
                m.uid.as_deref().unwrap_or(""),
            );
            if !run.log_root.as_os_str().is_empty() && ld.exists() {
                if let Err(e) = std::fs::remove_dir_all(&ld) {
                    problems.push(format!("remove logs {}: {e}", ld.display()));
                }
            }
        }
    }
    if remove_dir && problems.is_empty() {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("remove {}: {e}", dir.display()));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PodStateError::Cleanup {
            dir: dir.to_path_buf(),
            problems: problems.join("; "),
        })
    }
}

/// A random RFC 4122 version-4 UUID (as Kubernetes assigns to pods).
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b.copy_from_slice(&(t ^ (std::process::id() as u128) << 64).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_is_v4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, new_uid());
    }

    #[test]
    fn unknown_when_supervisor_gone() {
        let mut p = Pod {
            status: Some(k8s_openapi::api::core::v1::PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let u = apply_liveness(p.clone(), false);
        let st = u.status.unwrap();
        assert_eq!(st.phase.as_deref(), Some("Unknown"));
        assert_eq!(st.conditions.unwrap()[0].status, "Unknown");
        assert_eq!(apply_liveness(p.clone(), true), p);
        p.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert_eq!(
            apply_liveness(p, false).status.unwrap().phase.as_deref(),
            Some("Succeeded")
        );
    }

    #[test]
    fn mountinfo_unescape() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/x\\134y"), "/x\\y");
    }

    #[test]
    fn pid_record_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let me = PidRecord::of(std::process::id() as i32).unwrap();
        me.write(&d.path().join("p.pid")).unwrap();
        assert_eq!(PidRecord::read(&d.path().join("p.pid")), Some(me));
        assert!(me.alive());
        assert!(!PidRecord {
            pid: me.pid,
            start_time: me.start_time + 1
        }
        .alive());
    }

    #[test]
    fn paths() {
        assert_eq!(
            pod_dir(Path::new("/run/podrun"), "default", "web"),
            PathBuf::from("/run/podrun/pods/default_web")
        );
    }
}

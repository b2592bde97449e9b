//! The pod supervisor as a daemon: `podrun create pod.yaml` writes the pod's
//! state dir ([`crate::podstate`]), then [`spawn_supervisor`] double-forks,
//! `setsid`s and re-executes podrun as `__supervise <pod_dir>` (a fresh, small
//! process image rather than a copy of the CLI's heap), and waits on a pipe
//! until the supervisor reports the sandbox up and the first containers
//! started (`ok`) or why it could not (`error: ...`). [`supervise_main`] is
//! the daemon's body: child subreaper, pid file, control socket, image rootfs
//! per container start, then [`crate::supervisor::run_pod_with`].
//!
//! Control protocol (one JSON line each way over `<pod_dir>/control.sock`):
//! `{"op":"ping"}` → `{"ok":true,"pid":N}`;
//! `{"op":"stop","grace":S}` → `{"ok":true}` (then the pod terminates: SIGTERM,
//! grace period, SIGKILL, cleanup, and the supervisor exits).

use crate::launch::ImageProcess;
use crate::podstate::{files, PidRecord, RunInfo};
use crate::supervisor::{ContainerImage, Extras, PodDirs, RootfsProvider, SupervisorOptions};
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io::{BufRead, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of the daemon plumbing.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("pod supervisor failed to start the pod: {0}")]
    StartFailed(String),
    #[error("pod supervisor exited without reporting (see {0})")]
    NoReport(PathBuf),
    #[error("control socket {path}: {source}")]
    Control {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: supervisor answered: {message}")]
    Refused { path: PathBuf, message: String },
}

/// A control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    Stop { grace: Option<u64> },
}

/// Pure: parses one request line.
pub fn parse_request(line: &str) -> Result<Request, String> {
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))?;
    match v.get("op").and_then(|o| o.as_str()) {
        Some("ping") => Ok(Request::Ping),
        Some("stop") => Ok(Request::Stop {
            grace: v.get("grace").and_then(|g| g.as_u64()),
        }),
        Some(o) => Err(format!("unknown op {o:?} (expected ping or stop)")),
        None => Err("request has no \"op\"".into()),
    }
}

/// Pure: the request line for `r`.
pub fn encode_request(r: &Request) -> String {
    match r {
        Request::Ping => "{\"op\":\"ping\"}\n".into(),
        Request::Stop { grace: Some(g) } => format!("{{\"op\":\"stop\",\"grace\":{g}}}\n"),
        Request::Stop { grace: None } => "{\"op\":\"stop\"}\n".into(),
    }
}

/// Sends `r` to the supervisor of the pod in `pod_dir`; returns its reply.
pub fn request(pod_dir: &Path, r: &Request) -> Result<serde_json::Value, DaemonError> {
    let path = pod_dir.join(files::SOCKET);
    let cerr = |source| DaemonError::Control {
        path: path.clone(),
        source,
    };
    let mut s = UnixStream::connect(&path).map_err(cerr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(cerr)?;
    s.write_all(encode_request(r).as_bytes()).map_err(cerr)?;
    let mut line = String::new();
    std::io::BufReader::new(&s)
        .read_line(&mut line)
        .map_err(cerr)?;
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|e| {
        cerr(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad reply {line:?}: {e}"),
        ))
    })?;
    if v.get("ok") != Some(&serde_json::Value::Bool(true)) {
        return Err(DaemonError::Refused {
            path,
            message: v.to_string(),
        });
    }
    Ok(v)
}

fn sys(what: &'static str) -> DaemonError {
    DaemonError::Sys {
        what,
        source: std::io::Error::last_os_error(),
    }
}

/// Starts the supervisor for the pod in `pod_dir` as a detached daemon:
/// `exe args... __supervise <pod_dir>` with stdio on `supervisor.log` and the
/// ready pipe on fd 3. Returns once the supervisor reported `ok`, or the error
/// it reported. The caller must be single-threaded (it forks).
pub fn spawn_supervisor(
    exe: &Path,
    exe_fd: Option<&OwnedFd>,
    args: &[String],
    pod_dir: &Path,
    timeout: Duration,
) -> Result<(), DaemonError> {
    let exe_fd = exe_fd.map(|f| f.as_raw_fd()).unwrap_or(-1);
    let log_path = pod_dir.join(files::SUPERVISOR_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| DaemonError::Sys {
            what: "open supervisor log",
            source,
        })?;
    let null = std::fs::File::open("/dev/null").map_err(|source| DaemonError::Sys {
        what: "open /dev/null",
        source,
    })?;
    let c = |s: &OsStr| CString::new(s.as_bytes()).expect("no NUL in argument");
    let c_exe = c(exe.as_os_str());
    let mut argv: Vec<CString> = vec![CString::new("podrun").unwrap()];
    argv.extend(args.iter().map(|a| c(OsStr::new(a))));
    argv.push(CString::new("__supervise").unwrap());
    argv.push(c(pod_dir.as_os_str()));
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            CString::new(b).unwrap_or_default()
        })
        .collect();
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_p.push(std::ptr::null());

    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys("pipe2"));
    }
    // SAFETY: pipe2 just returned two fresh descriptors we now own.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (wr_fd, log_fd, null_fd) = (wr.as_raw_fd(), log.as_raw_fd(), null.as_raw_fd());

    // SAFETY: fork in a single-threaded caller; the child only makes
    // async-signal-safe calls (setsid, fork, dup2, execve, _exit) on data
    // prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(sys("fork"));
    }
    if pid == 0 {
        // SAFETY: see above; never returns.
        unsafe { daemon_child(wr_fd, log_fd, null_fd, exe_fd, &c_exe, &argv_p, &env_p) }
    }
    drop(wr);
    let mut st = 0;
    // SAFETY: waiting for the intermediate child we just forked.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    let mut msg = Vec::new();
    let mut pfd = libc::pollfd {
        fd: rd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + timeout;
    let mut f = std::fs::File::from(rd);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(DaemonError::StartFailed(format!(
                "no report from the supervisor within {timeout:?} (see {})",
                log_path.display()
            )));
        }
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        let mut buf = [0u8; 4096];
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => msg.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(DaemonError::Sys {
                    what: "read ready pipe",
                    source: e,
                })
            }
        }
        if msg.ends_with(b"\n") {
            break;
        }
    }
    let msg = String::from_utf8_lossy(&msg).trim().to_string();
    if msg == "ok" {
        Ok(())
    } else if let Some(e) = msg.strip_prefix("error: ") {
        Err(DaemonError::StartFailed(e.to_string()))
    } else {
        Err(DaemonError::NoReport(log_path))
    }
}

/// # Safety
/// Only in the child of `fork` in a single-threaded process.
unsafe fn daemon_child(
    wr: RawFd,
    log: RawFd,
    null: RawFd,
    exe_fd: RawFd,
    exe: &CString,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
) -> ! {
    if libc::setsid() < 0 {
        libc::_exit(1);
    }
    let pid = libc::fork();
    if pid != 0 {
        libc::_exit(if pid < 0 { 1 } else { 0 });
    }
    // Stdio: null, log, log; the ready pipe on fd 3 (dup2 clears O_CLOEXEC).
    // The sources, and the sealed binary to execute, are first moved above fd 10
    // so no dup2 can clobber one that is still needed (the log file or the
    // sealed binary may well be fd 3 itself).
    let wr = libc::fcntl(wr, libc::F_DUPFD_CLOEXEC, 10);
    let log = libc::fcntl(log, libc::F_DUPFD_CLOEXEC, 10);
    let null = libc::fcntl(null, libc::F_DUPFD_CLOEXEC, 10);
    let sealed = exe_fd >= 0;
    let exe_fd = if sealed {
        libc::fcntl(exe_fd, libc::F_DUPFD_CLOEXEC, 10)
    } else {
        -1
    };
    if wr < 0
        || log < 0
        || null < 0
        || (sealed && exe_fd < 0)
        || libc::dup2(null, 0) < 0
        || libc::dup2(log, 1) < 0
        || libc::dup2(log, 2) < 0
        || libc::dup2(wr, 3) < 0
    {
        libc::_exit(1);
    }
    if sealed {
        // The sealed view of the binary (see podrun_container::selfexe::sealed_exe).
        libc::syscall(
            libc::SYS_execveat,
            exe_fd,
            c"".as_ptr(),
            argv.as_ptr(),
            env.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    } else {
        libc::execve(exe.as_ptr(), argv.as_ptr(), env.as_ptr());
    }
    let m = b"error: cannot execute podrun for the supervisor\n";
    libc::write(3, m.as_ptr() as *const libc::c_void, m.len());
    libc::_exit(127);
}

/// Pure: the read-only private file mappings (`exe` and the shared libraries)
/// in a /proc/self/smaps text that hold no anonymous (copy-on-write) pages:
/// text (`r-xp`) and read-only data never written, but not the RELRO segments
/// the loader relocated.
/// Returns (start, end) pairs.
pub fn clean_mappings(smaps: &str, exe: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    let mut flush = |cur: &mut Option<(usize, usize)>, anon_zero: bool| {
        if let (Some(c), true) = (cur.take(), anon_zero) {
            out.push(c);
        }
    };
    for l in smaps.lines() {
        if let Some(m) = podrun_container::util::MapsLine::parse(l) {
            // A new mapping header: drop an unfinished one (no Anonymous line seen).
            cur = None;
            if (m.perms == "r-xp" || m.perms == "r--p")
                && (m.path == exe || m.path.starts_with('/'))
            {
                cur = Some((m.start, m.end));
            }
        } else if let Some(v) = l.strip_prefix("Anonymous:") {
            let anon_zero = v.split_ascii_whitespace().next() == Some("0");
            flush(&mut cur, anon_zero);
        }
    }
    out
}

/// Drops this process's page-table entries for its own program text and
/// untouched read-only data, so the long-lived supervisor only keeps mapped
/// (and accounted in RSS/PSS) what it uses from now on; start-up code and
/// fault-around neighbours go. Only read-only private mappings of the
/// executable without any copy-on-write page are touched: their pages equal
/// the file's, so MADV_DONTNEED just refaults them from the page cache on use
/// (nothing is evicted from the cache).
pub fn trim_text() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let exe = exe.to_string_lossy().to_string();
    for (a, b) in clean_mappings(&smaps, &exe) {
        // SAFETY: [a, b) is a read-only private file mapping of our own
        // executable with no anonymous (written) page; MADV_DONTNEED only
        // drops its PTEs and the next access refaults the same bytes.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    }
    // Heap: hand freed start-up memory (parsed manifests, image configs) back (the glibc
    // build). The musl build's allocator (dlmalloc, fork_gate.rs) keeps freed memory up to
    // its 2 MiB trim threshold and offers no trim of its global instance: that is the
    // +0.3 MiB of anonymous PSS docs/benchmarks.md measured (Pods, 2026-11-24 09:24).
    // SAFETY: malloc_trim only releases free chunks; the supervisor is single-threaded.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0)
    };
    // Stack: the deep start-up call chains are over; drop the pages below the
    // current frame (one page kept for the red zone and this call's callees).
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    if let Some((lo, _)) = stack_range(&smaps) {
        let keep = (sp.saturating_sub(8 << 10)) & !4095;
        if keep > lo {
            // SAFETY: [lo, keep) lies in this thread's stack mapping, at least a
            // page below the live frame: it holds no live data (the stack grows
            // down); pages fault back in zeroed if the stack grows again.
            unsafe { libc::madvise(lo as *mut libc::c_void, keep - lo, libc::MADV_DONTNEED) };
        }
    }
}

/// Pure: the `[stack]` mapping (start, end) in a /proc/self/smaps or maps text.
pub fn stack_range(smaps: &str) -> Option<(usize, usize)> {
    smaps
        .lines()
        .filter_map(podrun_container::util::MapsLine::parse)
        .find(|m| m.path == "[stack]")
        .map(|m| (m.start, m.end))
}

/// Image rootfs from the store: a fresh overlay per container start.
struct StoreRootfs {
    store: podrun_image::Store,
    images: HashMap<String, podrun_image::Image>,
    uid: String,
    mounted: Vec<String>,
}

impl RootfsProvider for StoreRootfs {
    fn prepare(&mut self, container: &str) -> Result<PathBuf, String> {
        let img = self
            .images
            .get(container)
            .ok_or_else(|| format!("container {container:?}: no image"))?;
        let key = format!("{}-{}", self.uid, container);
        self.store
            .unmount_rootfs(&key)
            .map_err(|e| format!("container {container:?}: {e}"))?;
        let p = self
            .store
            .mount_rootfs(img, &key, false)
            .map_err(|e| format!("container {container:?}: {e}"))?;
        if !self.mounted.contains(&key) {
            self.mounted.push(key);
        }
        Ok(p)
    }

    fn release_all(&mut self) {
        for k in self.mounted.drain(..) {
            if let Err(e) = self.store.unmount_rootfs(&k) {
                tracing::warn!(key = %k, error = %e, "cannot unmount container rootfs");
            }
        }
    }
}

fn image_process(c: &podrun_image::ImageConfig) -> ImageProcess {
    ImageProcess {
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        env: c.env.clone(),
        working_dir: c.working_dir.clone(),
        user: c.user.clone(),
        stop_signal: c.stop_signal.clone(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T, String> {
    let b = std::fs::read(p).map_err(|e| format!("read {}: {e}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| format!("parse {}: {e}", p.display()))
}

/// The body of `podrun __supervise <pod_dir>`; returns the process exit code.
pub fn supervise_main(pod_dir: &Path) -> i32 {
    podrun_container::util::trace("sup: main");
    // SAFETY: fd 3 is the ready pipe given by spawn_supervisor (if it is not
    // open, fcntl fails and we run without one).
    let ready = (unsafe { libc::fcntl(3, libc::F_GETFD) } >= 0).then(|| {
        // SAFETY: fd 3 is open and ours alone.
        unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) };
        // SAFETY: as above; wrapped once.
        unsafe { OwnedFd::from_raw_fd(3) }
    });
    let mut ready = ready;
    let fail = |ready: &mut Option<OwnedFd>, msg: String| -> i32 {
        tracing::error!("{msg}");
        if let Some(fd) = ready.take() {
            let mut f = std::fs::File::from(fd);
            let _ = f.write_all(format!("error: {msg}\n").as_bytes());
        }
        1
    };
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    // A control client that hangs up must not kill the supervisor.
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let me = PidRecord::of(std::process::id() as i32);
    if let Some(me) = me {
        if let Err(e) = me.write(&pod_dir.join(files::SUPERVISOR_PID)) {
            return fail(&mut ready, format!("write supervisor.pid: {e}"));
        }
    }
    let pod: Pod = match read_json(&pod_dir.join(files::POD)) {
        Ok(p) => p,
        Err(e) => return fail(&mut ready, e),
    };
    let run: RunInfo = match read_json(&pod_dir.join(files::RUN)) {
        Ok(r) => r,
        Err(e) => return fail(&mut ready, e),
    };
    let store = match podrun_image::Store::open(&run.image_root) {
        Ok(s) => s,
        Err(e) => return fail(&mut ready, format!("image store: {e}")),
    };
    let mut imgs = HashMap::new();
    let mut cimgs = HashMap::new();
    for (name, id) in &run.images {
        match store.resolve(id) {
            Ok(img) => {
                cimgs.insert(
                    name.clone(),
                    ContainerImage {
                        rootfs: PathBuf::new(),
                        process: image_process(&img.config),
                        image_id: img.id.to_string(),
                    },
                );
                imgs.insert(name.clone(), img);
            }
            Err(e) => return fail(&mut ready, format!("container {name:?}: image {id}: {e}")),
        }
    }
    let sock = pod_dir.join(files::SOCKET);
    let _ = std::fs::remove_file(&sock);
    podrun_container::util::trace("sup: images resolved");
    let control = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => return fail(&mut ready, format!("bind {}: {e}", sock.display())),
    };
    let dirs = PodDirs {
        pod_dir: pod_dir.to_path_buf(),
        state_root: pod_dir.join(files::CONTAINERS),
        log_root: run.log_root.clone(),
    };
    let mut opts = SupervisorOptions::new(run.cgroup_parent.clone());
    opts.backoff_scale = run.backoff_scale;
    opts.pids_limit = run.pids_limit;
    let extras = Extras {
        ready,
        control: Some(control),
        rootfs: Some(Box::new(StoreRootfs {
            store,
            images: imgs,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            mounted: Vec::new(),
        })),
        detach_pause: true,
    };
    podrun_container::util::trace("sup: socket bound");
    let r = crate::supervisor::run_pod_with(&pod, &dirs, &cimgs, &opts, extras);
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_dir_all(&dirs.state_root);
    let _ = std::fs::remove_file(pod_dir.join(files::SUPERVISOR_PID));
    match r {
        Ok(phase) => {
            tracing::info!(phase = phase.as_str(), "pod finished");
            0
        }
        Err(e) => {
            tracing::error!(error = %e, "supervisor failed");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_mappings_skip_relro_and_writable() {
        let smaps = "55d0a0000000-55d0a0100000 r--p 00000000 00:1f 12 /usr/bin/podrun\n\
Rss: 100 kB\nAnonymous: 0 kB\n\
55d0a0100000-55d0a0800000 r-xp 00100000 00:1f 12 /usr/bin/podrun\n\
Anonymous: 0 kB\n\
55d0a0800000-55d0a0900000 r--p 00800000 00:1f 12 /usr/bin/podrun\n\
Anonymous: 400 kB\n\
55d0a0900000-55d0a0a00000 rw-p 00900000 00:1f 12 /usr/bin/podrun\n\
Anonymous: 0 kB\n\
7f0000000000-7f0000100000 r-xp 00000000 00:1f 13 /usr/lib/libc.so.6\n\
Anonymous: 0 kB\n";
        assert_eq!(
            clean_mappings(smaps, "/usr/bin/podrun"),
            vec![
                (0x55d0a0000000, 0x55d0a0100000),
                (0x55d0a0100000, 0x55d0a0800000),
                (0x7f0000000000, 0x7f0000100000)
            ]
        );
    }

    #[test]
    fn stack_range_parses() {
        let m =
            "7ffd0000-7ffd2000 rw-p 00000000 00:00 0                          [stack]\nRss: 8 kB\n";
        assert_eq!(stack_range(m), Some((0x7ffd0000, 0x7ffd2000)));
        assert_eq!(stack_range("nothing"), None);
    }

    #[test]
    fn requests_roundtrip() {
        for r in [
            Request::Ping,
            Request::Stop { grace: Some(3) },
            Request::Stop { grace: None },
        ] {
            assert_eq!(parse_request(&encode_request(&r)).unwrap(), r);
        }
    }

    #[test]
    fn bad_requests_say_why() {
        assert!(parse_request("{}").unwrap_err().contains("no \"op\""));
        assert!(parse_request("{\"op\":\"x\"}")
            .unwrap_err()
            .contains("unknown op"));
        assert!(parse_request("nope").unwrap_err().contains("bad request"));
    }
}

//! The pod sandbox: a `pause` process that owns the pod's shared namespaces.
//!
//! [`Sandbox::start`] clones a child into new net/ipc/uts namespaces (and a new
//! pid namespace when the pod shares its process namespace; hostNetwork and
//! hostIPC skip the respective namespace). The child brings `lo` up with
//! `SIOCSIFFLAGS`, sets the hostname, reports success over a pipe and then
//! waits for signals: it reaps zombies on SIGCHLD (it is PID 1 of the pod's pid
//! namespace when one exists) and exits on SIGTERM/SIGINT. It also dies with
//! its parent (`PR_SET_PDEATHSIG`) unless started with
//! [`Sandbox::start_with`]`(cfg, false)`, as the pod supervisor does.
//!
//! The parent pins each new namespace by bind-mounting `/proc/<pid>/ns/<kind>`
//! onto `<ns_dir>/<kind>`; containers join them by that path. [`Sandbox::teardown`]
//! (also run on drop) kills pause, reaps it, unmounts and removes the pins.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Errors starting or tearing down a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox hostname {0:?} is not valid (empty, over 64 bytes or contains NUL)")]
    BadHostname(String),
    #[error("sandbox: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sandbox: {what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("sandbox pause process failed during setup at step {step}: {source}")]
    Child {
        step: &'static str,
        source: std::io::Error,
    },
}

/// A namespace the sandbox may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsKind {
    Net,
    Ipc,
    Uts,
    Pid,
}

impl NsKind {
    /// The name under `/proc/<pid>/ns/` and in OCI (`network` differs: see [`NsKind::oci_type`]).
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Pid => "pid",
        }
    }

    /// The OCI `linux.namespaces[].type` value.
    pub fn oci_type(self) -> &'static str {
        match self {
            NsKind::Net => "network",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Pid => "pid",
        }
    }

    fn clone_flag(self) -> libc::c_int {
        match self {
            NsKind::Net => libc::CLONE_NEWNET,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Uts => libc::CLONE_NEWUTS,
            NsKind::Pid => libc::CLONE_NEWPID,
        }
    }
}

/// What the sandbox should isolate.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Hostname set in the pod's uts namespace.
    pub hostname: String,
    /// `spec.hostNetwork`: keep the host's network namespace.
    pub host_network: bool,
    /// `spec.hostIPC`: keep the host's ipc namespace.
    pub host_ipc: bool,
    /// `spec.shareProcessNamespace`: pause becomes PID 1 of a new pid namespace.
    pub share_pid: bool,
    /// Directory (created if missing) where the namespace pins are bind-mounted.
    pub ns_dir: PathBuf,
}

/// The namespaces a config asks for, in a fixed order. Pure.
pub fn namespaces_for(cfg: &SandboxConfig) -> Vec<NsKind> {
    let mut v = Vec::new();
    if !cfg.host_network {
        v.push(NsKind::Net);
    }
    if !cfg.host_ipc {
        v.push(NsKind::Ipc);
    }
    // A pod without a uts namespace could not have its own hostname; kubelet
    // only shares uts with hostNetwork, which we keep simple: always new uts
    // unless the network is the host's.
    if !cfg.host_network {
        v.push(NsKind::Uts);
    }
    if cfg.share_pid {
        v.push(NsKind::Pid);
    }
    v
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty() && h.len() <= 64 && !h.as_bytes().contains(&0)
}

/// A running pause process with its pinned namespaces.
#[derive(Debug)]
pub struct Sandbox {
    pid: i32,
    ns_dir: PathBuf,
    pins: Vec<(NsKind, PathBuf)>,
    created_dir: bool,
    torn_down: bool,
}

// Steps reported by the child on failure (index into STEPS).
const STEPS: [&str; 6] = [
    "ok",
    "prctl(PR_SET_PDEATHSIG)",
    "sigprocmask",
    "socket(AF_INET) for lo",
    "ioctl(SIOCSIFFLAGS lo up)",
    "sethostname",
];

impl Sandbox {
    /// Start pause and pin its namespaces under `cfg.ns_dir`.
    pub fn start(cfg: &SandboxConfig) -> Result<Sandbox, SandboxError> {
        Self::start_with(cfg, true)
    }

    /// As [`Sandbox::start`]; `die_with_parent: false` lets pause outlive its
    /// creator (the pod supervisor: a killed supervisor must not take the pod's
    /// namespaces — or, with a shared pid namespace, its containers — with it).
    pub fn start_with(cfg: &SandboxConfig, die_with_parent: bool) -> Result<Sandbox, SandboxError> {
        let kinds = namespaces_for(cfg);
        let set_host = kinds.contains(&NsKind::Uts);
        if set_host && !valid_hostname(&cfg.hostname) {
            return Err(SandboxError::BadHostname(cfg.hostname.clone()));
        }
        let hostname = CString::new(cfg.hostname.as_bytes())
            .map_err(|_| SandboxError::BadHostname(cfg.hostname.clone()))?;
        let new_net = kinds.contains(&NsKind::Net);
        let flags = kinds.iter().fold(0, |f, k| f | k.clone_flag());

        let created_dir = !cfg.ns_dir.exists();
        std::fs::create_dir_all(&cfg.ns_dir).map_err(|e| SandboxError::Io {
            what: "create ns dir",
            path: cfg.ns_dir.clone(),
            source: e,
        })?;

        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a valid 2-element array for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(SandboxError::Sys {
                what: "pipe2",
                source: std::io::Error::last_os_error(),
            });
        }
        let (rd, wr) = (fds[0], fds[1]);
        let parent_pid = std::process::id() as libc::pid_t;
        // pause never allocates: it drops its copy of the malloc heap at once,
        // so pages the supervisor rewrites later are not kept twice.
        let heap = heap_range();

        // SAFETY: a raw clone with a NULL stack behaves like fork: the child
        // gets a copy-on-write copy of this stack. The child only makes raw
        // system calls (no allocation, no locks) and ends with _exit.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD) as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: closing the two pipe fds we just created.
            unsafe {
                libc::close(rd);
                libc::close(wr);
            }
            cleanup_dir(&cfg.ns_dir, created_dir);
            return Err(SandboxError::Sys {
                what: "clone pause",
                source: e,
            });
        }
        if pid == 0 {
            // SAFETY: child of the clone; see pause_child.
            unsafe {
                pause_child(
                    rd,
                    wr,
                    parent_pid,
                    die_with_parent,
                    new_net,
                    set_host,
                    &hostname,
                    heap,
                )
            }
        }
        let pid = pid as i32;
        // SAFETY: the write end belongs to the child now.
        unsafe { libc::close(wr) };
        let mut buf = [0u8; 8];
        let n = read_full(rd, &mut buf);
        // SAFETY: closing our read end.
        unsafe { libc::close(rd) };
        let mut sb = Sandbox {
            pid,
            ns_dir: cfg.ns_dir.clone(),
            pins: Vec::new(),
            created_dir,
            torn_down: false,
        };
        if n != 8 {
            let _ = sb.teardown_inner();
            return Err(SandboxError::Child {
                step: "startup (pause exited before reporting)",
                source: std::io::Error::from_raw_os_error(libc::ECHILD),
            });
        }
        let step = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        let errno = i32::from_ne_bytes(buf[4..8].try_into().unwrap());
        if step != 0 {
            let _ = sb.teardown_inner();
            return Err(SandboxError::Child {
                step: STEPS.get(step).copied().unwrap_or("unknown"),
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        for k in kinds {
            if let Err(e) = sb.pin(k) {
                let _ = sb.teardown_inner();
                return Err(e);
            }
        }
        tracing::debug!(pid, ns_dir = %sb.ns_dir.display(), "sandbox started");
        Ok(sb)
    }

    fn pin(&mut self, k: NsKind) -> Result<(), SandboxError> {
        let target = self.ns_dir.join(k.proc_name());
        std::fs::File::create(&target).map_err(|e| SandboxError::Io {
            what: "create ns pin file",
            path: target.clone(),
            source: e,
        })?;
        let src = format!("/proc/{}/ns/{}", self.pid, k.proc_name());
        let c_src = CString::new(src).unwrap();
        let c_dst = cpath(&target);
        // SAFETY: valid NUL-terminated paths; a plain bind mount.
        let rc = unsafe {
            libc::mount(
                c_src.as_ptr(),
                c_dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            let _ = std::fs::remove_file(&target);
            return Err(SandboxError::Io {
                what: "bind-mount namespace onto",
                path: target,
                source: e,
            });
        }
        self.pins.push((k, target));
        Ok(())
    }

    /// Host pid of pause.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Pinned path of a namespace the sandbox owns (None when shared with the host).
    pub fn ns_path(&self, k: NsKind) -> Option<&Path> {
        self.pins
            .iter()
            .find(|(kind, _)| *kind == k)
            .map(|(_, p)| p.as_path())
    }

    /// All pinned namespaces.
    pub fn namespaces(&self) -> &[(NsKind, PathBuf)] {
        &self.pins
    }

    /// Kill pause, reap it, unmount and remove the pins (and the ns dir if we created it).
    pub fn teardown(mut self) -> Result<(), SandboxError> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<(), SandboxError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        // SAFETY: signalling and reaping our own child. ECHILD (someone else
        // reaped it, e.g. a supervisor's waitpid(-1)) is fine.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut st = 0;
            while libc::waitpid(self.pid, &mut st, 0) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
        let mut first_err = None;
        for (_, p) in self.pins.drain(..).rev() {
            let c = cpath(&p);
            // SAFETY: valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                let e = std::io::Error::last_os_error();
                if first_err.is_none() {
                    first_err = Some(SandboxError::Io {
                        what: "unmount namespace pin",
                        path: p.clone(),
                        source: e,
                    });
                }
            }
            let _ = std::fs::remove_file(&p);
        }
        cleanup_dir(&self.ns_dir, self.created_dir);
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.teardown_inner() {
            tracing::warn!(error = %e, "sandbox teardown on drop");
        }
    }
}

fn cleanup_dir(dir: &Path, created: bool) {
    if created {
        let _ = std::fs::remove_dir(dir);
    }
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn read_full(fd: libc::c_int, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of buf.
        let n = unsafe {
            libc::read(
                fd,
                buf[got..].as_mut_ptr() as *mut libc::c_void,
                buf.len() - got,
            )
        };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    got
}

/// Report (step, errno) to the parent and exit when step != 0.
///
/// # Safety
/// Only async-signal-safe calls; used in the cloned child.
unsafe fn report(wr: libc::c_int, step: u32, errno: i32) {
    let mut b = [0u8; 8];
    b[0..4].copy_from_slice(&step.to_ne_bytes());
    b[4..8].copy_from_slice(&errno.to_ne_bytes());
    libc::write(wr, b.as_ptr() as *const libc::c_void, 8);
    if step != 0 {
        libc::_exit(1);
    }
}

unsafe fn errno() -> i32 {
    *libc::__errno_location()
}

/// The `[heap]` (brk, malloc's main arena) range of this process.
fn heap_range() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let l = maps.lines().find(|l| l.ends_with("[heap]"))?;
    let (a, b) = l.split_whitespace().next()?.split_once('-')?;
    Some((
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    ))
}

/// The pause process body. Never returns.
///
/// # Safety
/// Must only be called in the child of a fork-like clone: uses raw syscalls only.
// Eight plain values computed before the clone, for this one call site.
#[allow(clippy::too_many_arguments)]
unsafe fn pause_child(
    rd: libc::c_int,
    wr: libc::c_int,
    parent: libc::pid_t,
    die_with_parent: bool,
    new_net: bool,
    set_host: bool,
    hostname: &CString,
    heap: Option<(usize, usize)>,
) -> ! {
    libc::close(rd);
    if die_with_parent
        && libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
    {
        report(wr, 1, errno());
    }
    // The parent may already be gone (pdeathsig would then never fire).
    if die_with_parent && libc::getppid() != parent && libc::getpid() != 1 {
        libc::_exit(1);
    }
    // Show as "pause" in ps/top (comm only; argv stays the supervisor's).
    libc::prctl(
        libc::PR_SET_NAME,
        c"pause".as_ptr() as libc::c_ulong,
        0,
        0,
        0,
    );
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigaddset(&mut set, libc::SIGCHLD);
    libc::sigaddset(&mut set, libc::SIGTERM);
    libc::sigaddset(&mut set, libc::SIGINT);
    if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
        report(wr, 2, errno());
    }
    if new_net {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            report(wr, 3, errno());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, c) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *c as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(s, libc::SIOCSIFFLAGS as _, &mut ifr) != 0 {
            report(wr, 4, errno());
        }
        libc::close(s);
    }
    if set_host {
        let b = hostname.as_bytes();
        if libc::sethostname(b.as_ptr() as *const libc::c_char, b.len()) != 0 {
            report(wr, 5, errno());
        }
    }
    report(wr, 0, 0);
    libc::close(wr);
    if let Some((start, end)) = heap {
        // Nothing below uses the heap (`hostname` lived there and is no longer
        // read); only raw system calls and this stack from here on.
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
    }
    loop {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::sigwaitinfo(&set, &mut info);
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            libc::_exit(0);
        }
        // SIGCHLD (or EINTR): reap whatever has exited.
        let mut st = 0;
        while libc::waitpid(-1, &mut st, libc::WNOHANG) > 0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(net: bool, ipc: bool, pid: bool) -> SandboxConfig {
        SandboxConfig {
            hostname: "p".into(),
            host_network: net,
            host_ipc: ipc,
            share_pid: pid,
            ns_dir: PathBuf::from("/x"),
        }
    }

    #[test]
    fn namespaces_default_pod() {
        assert_eq!(
            namespaces_for(&cfg(false, false, false)),
            vec![NsKind::Net, NsKind::Ipc, NsKind::Uts]
        );
    }

    #[test]
    fn namespaces_host_network_and_ipc_shared_pid() {
        assert_eq!(namespaces_for(&cfg(true, true, true)), vec![NsKind::Pid]);
        assert_eq!(namespaces_for(&cfg(true, false, false)), vec![NsKind::Ipc]);
    }

    #[test]
    fn hostname_rules() {
        assert!(valid_hostname("web-0"));
        assert!(!valid_hostname(""));
        assert!(!valid_hostname(&"a".repeat(65)));
    }

    #[test]
    fn oci_names() {
        assert_eq!(NsKind::Net.oci_type(), "network");
        assert_eq!(NsKind::Net.proc_name(), "net");
    }
}

//! The container side: what the forked child does, in order, until it execs the user
//! program. Runs single-threaded in a fork of the runtime, so it has the parsed spec in
//! memory and needs no re-exec. Every failure goes back to the runtime over the channel.

use crate::channel::{Channel, Msg};
use crate::error::{Error, Result, SysContext};
use crate::namespaces::NsPlan;
use crate::{console, hooks, rootfs};
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd;
use oci_spec::runtime::Spec;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

pub(crate) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub ns: &'a NsPlan,
    pub chan: &'a Channel,
    /// O_PATH descriptor of exec.fifo (create mode).
    pub fifo: Option<RawFd>,
    pub console_socket: Option<RawFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub stdio: Option<[RawFd; 3]>,
    /// The child is already in every new namespace (single clone3).
    pub single_clone: bool,
    /// Cgroup files the child writes itself into (v1 `tasks`).
    pub attach: Option<&'a podrun_cgroups::SelfAttach>,
    /// The v1 hierarchies the child enters later, after `Msg::CgroupReady` (the runtime
    /// creates them meanwhile), at the cgroup gate (see `RootfsOptions::cgroup_gate`).
    pub v1_later: Option<&'a podrun_cgroups::Cgroup>,
    /// A new network namespace the runtime had a helper thread make (netns_ahead.rs),
    /// entered first thing.
    pub netns: Option<RawFd>,
    /// The plan and the descriptor for switching to the sealed view of the binary, first
    /// thing (create.rs).
    pub seal: Option<(&'a crate::selfexe::SealPlan, RawFd)>,
    /// The host's cgroup layout the runtime detected (for the cgroup mount).
    pub cgroup_layout: Option<&'a podrun_cgroups::Layout>,
    /// The signals the runtime ignored or caught at the clone (util::signals_to_reset).
    pub signals_to_reset: u64,
}

/// The last steps into the container's cgroup, taken once: wait until the runtime has made
/// the v1 cgroups and enter them (when deferred), then unshare the cgroup namespace (single
/// clone), whose root is thereby the container's cgroup.
struct CgroupGate<'a> {
    a: &'a InitArgs<'a>,
    passed: std::cell::Cell<bool>,
}

impl CgroupGate<'_> {
    fn pass(&self) -> Result<()> {
        if self.passed.replace(true) {
            return Ok(());
        }
        if let Some(cg) = self.a.v1_later {
            crate::util::trace("init: at cgroup gate");
            let fds = match self.a.chan.recv_fds()? {
                Some((Msg::CgroupReady, fds)) => fds,
                Some((m, _)) => {
                    return Err(Error::Other(format!(
                        "protocol: expected CgroupReady, got {m:?}"
                    )))
                }
                None => return Err(Error::RuntimeGone("create")),
            };
            let paths = cg.v1_tasks_paths();
            if fds.len() != paths.len() {
                return Err(Error::Other(format!(
                    "protocol: {} cgroup descriptors for {} hierarchies",
                    fds.len(),
                    paths.len()
                )));
            }
            podrun_cgroups::SelfAttach {
                tasks: paths.into_iter().zip(fds).collect(),
                into: None,
            }
            .attach_current()?;
            crate::util::trace("init: in cgroup");
        }
        if self.a.single_clone && self.a.ns.new.contains(CloneFlags::CLONE_NEWCGROUP) {
            unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace".into())?;
        }
        Ok(())
    }
}

/// Entry point of the forked child; never returns.
pub(crate) fn child_main(a: InitArgs) -> ! {
    let err = match run(&a) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // The runtime may be gone (create returned): then stderr is all we have. If it went away
    // during create, it failed and reports that itself.
    if matches!(err, Error::RuntimeGone(_)) {
        // SAFETY: as below.
        unsafe { libc::_exit(127) }
    }
    if a.chan.send(&Msg::Error(err.to_string())).is_err() {
        eprintln!("podrun init: {err}");
    } else {
        a.chan.drain_until_closed();
    }
    // SAFETY: _exit skips Rust/atexit destructors, which belong to the parent's copy of state.
    unsafe { libc::_exit(127) }
}

use crate::privileges::{self, Never};

/// Whether the init waits for the runtime's `Go` before it goes on: only a single-clone init
/// in a new user namespace, whose id maps the runtime writes first (the staged path asks for
/// them itself, and without a user namespace there is nothing to wait for).
pub(crate) fn needs_go(ns: &NsPlan) -> bool {
    ns.single_clone() && ns.new_user()
}

fn expect(chan: &Channel, want: Msg) -> Result<()> {
    match chan.recv()? {
        Some(m) if m == want => Ok(()),
        Some(m) => Err(Error::Other(format!(
            "protocol: expected {want:?}, got {m:?}"
        ))),
        None => Err(Error::RuntimeGone("create")),
    }
}

fn run(a: &InitArgs) -> Result<Never> {
    if let Some((plan, view)) = a.seal {
        // CVE-2019-5736: from its first step on, the init runs from the read-only view of
        // the binary (and so does whatever its execve would take from /proc/self/exe). A
        // fresh fork has no page of the binary mapped yet: the switch is a few calls.
        // PODRUN_SEAL=init-fails: a test's stand-in for a kernel that refuses the switch.
        let r = if crate::selfexe::seal_knob_is(&["init-fails"]) {
            Err(Error::Other("PODRUN_SEAL=init-fails".into()))
        } else {
            plan.apply(view)
        };
        if let Err(e) = r {
            if a.chan.send(&Msg::SealFailed(e.to_string())).is_ok() {
                a.chan.drain_until_closed();
            }
            // SAFETY: leave the forked copy without running the runtime's destructors.
            unsafe { libc::_exit(127) }
        }
        let _ = unistd::close(view);
        crate::util::trace("init: sealed");
    }
    if let Some(fd) = a.netns {
        // SAFETY: the runtime's descriptor of the new network namespace, valid in this
        // copy of its table; borrowed for the call only.
        let ns = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        setns(ns, CloneFlags::CLONE_NEWNET).ctx(|| "enter the new network namespace".into())?;
        let _ = unistd::close(fd);
    }
    // The runtime blocked signals it forwards; the container starts with an empty mask.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    crate::util::reset_signal_dispositions(a.signals_to_reset);
    if !a.ns.new_user() && a.ns.user_join.is_none() {
        // From the start, without a user namespace (else from privileges::prepare on).
        crate::process::set_non_dumpable()?;
    }
    if let Some(at) = a.attach {
        at.attach_current()?;
    }
    if needs_go(a.ns) {
        expect(a.chan, Msg::Go)?;
    }
    if let Some(fds) = a.stdio {
        for (target, fd) in fds.iter().enumerate() {
            if *fd != target as RawFd {
                unistd::dup2(*fd, target as RawFd).ctx(|| format!("dup2 {fd} onto {target}"))?;
            }
        }
    }
    crate::util::trace("init: go");

    if !a.single_clone {
        staged_namespaces(a)?;
    } else {
        for j in &a.ns.join {
            setns(&j.fd, CloneFlags::empty()).ctx(|| {
                format!(
                    "join {} namespace {}",
                    crate::namespaces::proc_name(j.typ),
                    j.path.display()
                )
            })?;
        }
    }
    // The cgroup namespace is created only once we are in our cgroup (clone3 left it out), so
    // its root is the container's cgroup. When the v1 cgroups are still being made, that is
    // at the first mount that shows cgroups (or after the mounts), else here.
    let gate = CgroupGate {
        a,
        passed: std::cell::Cell::new(false),
    };
    if a.v1_later.is_none() {
        gate.pass()?;
    }
    if a.ns.new_user() || a.ns.user_join.is_some() {
        // Become root of the user namespace (if 0 is mapped), as runc does.
        privileges::become_userns_root();
    }
    if a.single_clone && a.ns.new_user() && a.ns.new.contains(CloneFlags::CLONE_NEWIPC) {
        // Left out of the clone (create.rs): made now, as the user namespace's root.
        unshare(CloneFlags::CLONE_NEWIPC).ctx(|| "unshare ipc namespace".into())?;
    }
    if !a.no_new_keyring {
        join_session_keyring();
    }
    let process = a.spec.process().as_ref();
    if let Some(adj) = process.and_then(|p| p.oom_score_adj()) {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::io("write oom_score_adj", "/proc/self/oom_score_adj", e))?;
    }
    if let Some(h) = a.spec.hostname() {
        if !h.is_empty() {
            unistd::sethostname(h).ctx(|| format!("sethostname {h:?}"))?;
        }
    }
    if let Some(d) = a.spec.domainname() {
        if !d.is_empty() {
            set_domainname(d)?;
        }
    }

    let ro = rootfs::RootfsOptions {
        spec: a.spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        in_new_userns: a.ns.new_user() || a.ns.user_join.is_some(),
        new_cgroupns: a.ns.new.contains(CloneFlags::CLONE_NEWCGROUP),
        no_pivot: a.no_pivot,
        cgroup_gate: Some(&|| gate.pass()),
        cgroup_layout: a.cgroup_layout,
    };
    // Our descriptor table as the runtime's /proc shows it, kept across the root change for
    // reopening exec.fifo (close-on-exec, so it never reaches the user program).
    let fd_dir = match a.fifo {
        Some(_) => nix::fcntl::open(
            "/proc/self/fd",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
        // SAFETY: a fresh descriptor from open().
        .map(|fd| unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }),
        None => None,
    };
    if a.ns.has_mount() {
        rootfs::prepare_rootfs(&ro)?;
    } else if a.spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        // runc performs them in the runtime's own mount namespace, leaking them onto the
        // host; podrun does not.
        tracing::warn!("mounts: ignored, the container has no mount namespace of its own");
    }
    gate.pass()?;
    crate::util::trace("init: rootfs prepared");
    let state_json = if hooks::has_creation_hooks(a.spec) {
        a.chan.send(&Msg::HooksReady)?;
        match a.chan.recv()? {
            Some(Msg::HooksDone(s)) => s,
            Some(m) => {
                return Err(Error::Other(format!(
                    "protocol: expected HooksDone, got {m:?}"
                )))
            }
            None => return Err(Error::RuntimeGone("create")),
        }
    } else {
        String::new()
    };
    if let Some(h) = a.spec.hooks() {
        hooks::run_hooks(
            hooks::HookKind::CreateContainer,
            h.create_container().as_ref(),
            state_json.as_bytes(),
        )?;
    }
    if a.ns.has_mount() {
        rootfs::pivot_rootfs(&ro)?;
    } else {
        // No mount namespace: the root is only changed for this process (runc: chroot).
        unistd::chroot(a.rootfs).ctx(|| format!("chroot {}", a.rootfs.display()))?;
        unistd::chdir("/").ctx(|| "chdir /".into())?;
    }
    let terminal = process.and_then(|p| p.terminal()).unwrap_or(false);
    if terminal {
        let sock = a.console_socket.ok_or_else(|| {
            Error::spec("process.terminal", "true but no console socket was given")
        })?;
        let size = process
            .and_then(|p| p.console_size())
            .map(|b| (b.height() as u16, b.width() as u16));
        console::setup_console(sock, size, a.ns.has_mount())?;
    }
    if a.ns.has_mount() {
        rootfs::finalize_rootfs(a.spec)?;
    }
    if !a.ns.has_mount() {
        // With a mount namespace, finalize_rootfs wrote them (before readonlyPaths).
        write_sysctls(a.spec)?;
    }
    crate::util::trace("init: rootfs finalized");

    let Some(process) = process else {
        return Err(Error::spec("process", "required to create a container"));
    };
    let prepared = privileges::prepare(a.spec, process, a.preserve_fds, true)?;

    a.chan.send(&Msg::Ready)?;
    crate::util::trace("init: ready");
    let fifo = match a.chan.recv()? {
        Some(Msg::Start) => None,
        Some(Msg::WaitFifo) => Some(wait_fifo(
            a.fifo.ok_or_else(|| Error::Other("no exec fifo".into()))?,
            fd_dir.as_ref(),
        )?),
        Some(m) => return Err(Error::Other(format!("protocol: expected Start, got {m:?}"))),
        None => return Err(Error::RuntimeGone("start")),
    };
    let r = start_program(a, &state_json, prepared);
    if let (Err(e), Some(f)) = (&r, &fifo) {
        // `podrun start` reads this after the go byte, up to end-of-file, and reports it.
        let _ = unistd::write(f, e.to_string().as_bytes());
    }
    r
}

/// After `start`: the startContainer hooks, then the user program.
fn start_program(a: &InitArgs, state_json: &str, prepared: privileges::Prepared) -> Result<Never> {
    if let Some(h) = a
        .spec
        .hooks()
        .as_ref()
        .filter(|h| h.start_container().is_some())
    {
        let st = with_status(state_json, "created");
        hooks::run_hooks(
            hooks::HookKind::StartContainer,
            h.start_container().as_ref(),
            st.as_bytes(),
        )?;
    }
    prepared.exec()
}

/// The state JSON with another status (startContainer hooks run once the container is created).
fn with_status(state_json: &str, status: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(state_json) {
        Ok(mut v) => {
            v["status"] = status.into();
            v.to_string()
        }
        Err(_) => state_json.to_string(),
    }
}

/// runc's three stages, for a joined user namespace or joined namespaces with a new user
/// namespace: join (user first), unshare a new user namespace and have the runtime write
/// its maps, unshare the rest, then fork the init into the new pid namespace.
fn staged_namespaces(a: &InitArgs) -> Result<()> {
    if let Some(u) = &a.ns.user_join {
        setns(&u.fd, CloneFlags::CLONE_NEWUSER)
            .ctx(|| format!("join user namespace {}", u.path.display()))?;
    }
    for j in &a.ns.join {
        setns(&j.fd, CloneFlags::empty()).ctx(|| {
            format!(
                "join {} namespace {}",
                crate::namespaces::proc_name(j.typ),
                j.path.display()
            )
        })?;
    }
    if a.ns.new_user() {
        unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "unshare user namespace".into())?;
        a.chan.send(&Msg::NeedMaps)?;
        expect(a.chan, Msg::MapsWritten)?;
        privileges::become_userns_root();
    }
    let rest = a.ns.new - CloneFlags::CLONE_NEWUSER;
    unshare(rest).ctx(|| format!("unshare namespaces {rest:?}"))?;
    if a.ns.new_time() {
        a.chan.send(&Msg::NeedTimeOffsets)?;
        expect(a.chan, Msg::TimeOffsetsWritten)?;
    }
    if a.ns.new_pid() || a.ns.user_join.is_some() || a.ns.new_time() {
        // SAFETY: single-threaded process; the child continues with a copy of memory.
        match unsafe { unistd::fork() }.ctx(|| "fork init into the pid namespace".into())? {
            unistd::ForkResult::Child => {
                a.chan.send_with_creds(&Msg::Pid)?;
            }
            unistd::ForkResult::Parent { .. } => {
                // SAFETY: the intermediate process has nothing to clean up.
                unsafe { libc::_exit(0) }
            }
        }
    }
    Ok(())
}

fn join_session_keyring() {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) creates an anonymous session keyring; failure
    // (keyrings disabled, or seccomp'd hosts) is not fatal, as in runc.
    unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
}

fn set_domainname(d: &str) -> Result<()> {
    // SAFETY: the pointer and length describe the string's bytes for the call's duration.
    let r = unsafe { libc::setdomainname(d.as_ptr() as *const libc::c_char, d.len()) };
    if r != 0 {
        return Err(Error::sys(
            format!("setdomainname {d:?}"),
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

fn write_sysctls(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (k, v) in map {
        if k.contains("..") || k.starts_with('/') {
            return Err(Error::spec(format!("linux.sysctl.{k}"), "invalid key"));
        }
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&p, v).map_err(|e| {
            Error::spec(
                format!("linux.sysctl.{k}"),
                format!("write {v:?} to {}: {e}", p.display()),
            )
        })?;
    }
    Ok(())
}

/// Resolve args[0] inside the container as execvp would, so a missing binary fails `create`
/// with a clear message instead of a silent exit after `start`.
pub(crate) fn find_executable(arg0: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    if arg0.is_empty() {
        return Err(Error::spec("process.args[0]", "empty"));
    }
    let check = |p: &Path| -> std::result::Result<(), String> {
        let md = std::fs::metadata(p).map_err(|e| e.to_string())?;
        if md.is_dir() {
            return Err("is a directory".into());
        }
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).map_err(|e| e.desc().to_string())
    };
    if arg0.contains('/') {
        let p = if arg0.starts_with('/') {
            PathBuf::from(arg0)
        } else {
            cwd.join(arg0)
        };
        check(&p).map_err(|e| Error::spec("process.args[0]", format!("exec {arg0:?}: {e}")))?;
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        if check(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(Error::spec(
        "process.args[0]",
        format!("exec {arg0:?}: executable file not found in $PATH"),
    ))
}

/// Open exec.fifo for writing through our O_PATH descriptor; this blocks until `podrun start`
/// opens it for reading. Then tell start we are going, and keep the descriptor: it is
/// close-on-exec, so start reads end-of-file once the user program runs (or this process has
/// ended), and an error before that is written to it (see `run`).
fn wait_fifo(fd: RawFd, fd_dir: Option<&std::os::fd::OwnedFd>) -> Result<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    use std::os::fd::{AsRawFd, FromRawFd};
    let name = fd.to_string();
    // Reopen through the runtime's /proc/self/fd directory, held open from before the root
    // changed: the container may have no /proc of its own.
    let f = match fd_dir {
        Some(d) => nix::fcntl::openat(
            Some(d.as_raw_fd()),
            name.as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ),
        None => nix::fcntl::open(
            format!("/proc/self/fd/{fd}").as_str(),
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ),
    }
    .ctx(|| "open exec fifo".into())?;
    // SAFETY: the descriptor open() just returned, owned from here on.
    let f = unsafe { std::os::fd::OwnedFd::from_raw_fd(f) };
    let _ = unistd::write(&f, b"0");
    let _ = unistd::close(fd);
    Ok(f)
}

//! The runtime side of `create` and `run`: state dir, cgroup, namespaces plan, one clone3,
//! then the conversation with the init until it reports ready. Everything set up is torn
//! down again if any step fails.

use crate::channel::{self, Channel, Msg};
use crate::clone::{clone3, Forked};
use crate::cpu_helper::Helper;
use crate::error::{Error, Result};
use crate::init::{child_main, InitArgs};
use crate::namespaces::NsPlan;
use crate::spec::{load_bundle, Bundle};
use crate::state::{Record, StateEntry, Status};
use crate::{hooks, util, CreateOptions, Runtime};
use crate::{netns_ahead, selfexe};
use nix::fcntl::Flock;
use nix::sched::CloneFlags;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Run,
    /// `run` in the foreground: a terminal without --console-socket is proxied by podrun.
    RunForeground,
}

/// A container whose init reported ready.
pub(crate) struct Created {
    pub pid: i32,
    pub pidfd: Option<OwnedFd>,
    pub chan: Channel,
    pub record: Record,
    pub dir: StateEntry,
    pub _lock: Flock<File>,
    pub proxy: Option<crate::tty::Proxy>,
    /// The sealed view of the binary the init switched to (see `create`): kept open until
    /// the user program runs, so its overlay is torn down here, not in the init's execve.
    pub seal_view: Option<OwnedFd>,
}

/// Undo what create did so far, unless disarmed.
struct Cleanup<'a> {
    dir: Option<&'a StateEntry>,
    cgroup: Option<podrun_cgroups::Cgroup>,
    pidfds: Vec<OwnedFd>,
    /// The processes this create made (child, init): the only ones it reaps.
    /// Waiting for any child instead would block on the caller's other
    /// children (a pod supervisor's pause and containers).
    pids: Vec<i32>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for fd in &self.pidfds {
            let _ = util::pidfd_signal(fd, libc::SIGKILL);
        }
        // Reap what we started (the init or the intermediate stage; a
        // reparented init only when we are its subreaper, else ECHILD).
        for pid in &self.pids {
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(*pid),
                Some(nix::sys::wait::WaitPidFlag::__WALL),
            );
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup: {e}");
            }
        }
        if let Some(d) = self.dir {
            let _ = d.remove();
        }
    }
}

/// `seal_runtime`: this process seals itself before the clone, whatever the spec (after an
/// init could not seal itself; see lifecycle.rs).
pub(crate) fn create(
    rt: &Runtime,
    o: &CreateOptions,
    mode: Mode,
    seal_runtime: bool,
) -> Result<Created> {
    crate::util::trace("create: start");
    // CVE-2019-5736 (selfexe.rs): whatever this process forks into the container must run
    // from a sealed view of the binary, made first, before the helper below starts: beside a
    // network namespace being made, the overlay's setup waits for it (0.60-0.66 ms instead of
    // 0.14-0.19, PODRUN_TRACE_TIMING).
    let want_view = rt.seal && !selfexe::is_sealed();
    let mut view = want_view
        .then(|| selfexe::sealed_view(&rt.root))
        .transpose()?;
    // A new network namespace is the costliest part of the clone. A helper thread on the
    // other CPU makes it while this one parses the bundle and makes the cgroups (see
    // `Ahead`), and the init enters it first thing (netns_ahead.rs).
    let mut ahead = Some(Ahead::start(o.bundle.join("config.json"))?);
    let Bundle {
        dir: bundle,
        spec,
        rootfs,
    } = load_bundle(&o.bundle)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::spec("process", "required to create a container"))?;
    let terminal = process.terminal().unwrap_or(false);
    let ns = NsPlan::from_spec(&spec)?;
    crate::util::trace("create: bundle loaded");
    let single = ns.single_clone();
    // The network namespace made aside is used without a user namespace to own it (with one
    // the init's own clone creates it, so that namespace owns it): the helper's rule
    // (netns_ahead::made_aside), here over the full parse. Should the two reads disagree (the
    // file changed in between), the clone makes the namespace, or the helper's is dropped.
    let net_ahead = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .is_some_and(netns_ahead::made_aside);
    // The init switches to the view first thing (init.rs), with a plan made here before the
    // clone: a fork has no page of the binary mapped yet, so its switch costs a few system
    // calls. This process itself stays as it is, like runc's (only `runc init` runs from a
    // sealed copy): it is never in the container's pid namespace. Except when the container
    // shares the host's pid namespace, where it could see this process (or with
    // PODRUN_SEAL=early): then this process seals itself now and the init inherits that (in
    // place; where that cannot be done, Error::Reexec: the command starts again from the
    // view, nothing was made yet).
    let seal_runtime =
        seal_runtime || selfexe::early_only() || (!ns.new_pid() && ns.pid_join.is_none());
    let seal_init = view.is_some() && !seal_runtime;
    if seal_runtime {
        if let Some(view) = view.take() {
            // No other thread may run while this process remaps itself: the helper ends
            // first (its namespace is kept).
            let net = ahead.take().map(|a| a.finish());
            selfexe::seal_now_with(view)?;
            ahead = net.map(Ahead::Done);
        }
    }
    let (dir, lock) = StateEntry::create(&rt.root, &o.id)?;
    crate::util::trace("create: state dir locked");
    let mut cleanup = Cleanup {
        dir: Some(&dir),
        cgroup: None,
        pidfds: Vec::new(),
        pids: Vec::new(),
        armed: true,
    };
    // Console: the pty master goes to --console-socket.
    let mut proxy = None;
    let console = match (&o.console_socket, terminal) {
        (Some(p), true) => Some(UnixStream::connect(p).map_err(|e| Error::io("connect console socket", p, e))?),
        (None, true) if mode == Mode::RunForeground => {
            let (p, s) = crate::tty::pair()?;
            proxy = Some(p);
            Some(s)
        }
        (Some(_), false) => return Err(Error::Other("--console-socket given but process.terminal is false".into())),
        (None, true) => {
            return Err(Error::Other(
                "process.terminal is true but no --console-socket was given (podrun does not allocate a tty for a detached container)".into(),
            ))
        }
        (None, false) => None,
    };

    // Cgroup: created and limited before the process exists.
    let layout = podrun_cgroups::detect()?;
    crate::util::trace("create: cgroup layout read");
    let linux = spec.linux().as_ref();
    let cg_path = linux
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup = podrun_cgroups::Cgroup::resolve(&layout, cg_path.as_deref(), &o.id)?;
    crate::util::trace("create: cgroup resolved");
    // On a v1 or hybrid host the init can enter the v1 hierarchies by itself at any time (a
    // single-thread move into `tasks`), so their directories are made, and limited, while it
    // already sets up its first mounts (two CPUs at work instead of one); it enters them
    // before the first mount that shows cgroups, before devices and hooks (init.rs,
    // CgroupGate). cgroup2 has to exist at its birth (clone3 CLONE_INTO_CGROUP). Not with a
    // user namespace: there the init's credentials cannot open the host's cgroup files.
    let v1_later = single
        && !ns.new_user()
        && ns.user_join.is_none()
        && cgroup.mode() == podrun_cgroups::Mode::V1;
    cleanup.cgroup = Some(cgroup.clone());
    if v1_later {
        cgroup.create_unified()?;
    } else {
        cgroup.create()?;
        cgroup.apply(&crate::resources::effective(&spec))?;
    }
    crate::util::trace("create: cgroup created");

    // exec.fifo: `start` opens it for reading, which releases the init.
    let fifo_fd = if mode == Mode::Create {
        let fifo = dir.fifo();
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
            .map_err(|e| Error::sys(format!("mkfifo {}", fifo.display()), e))?;
        // Writable by the container's root, whatever the umask and the user namespace (runc too).
        let (uid, gid) = root_ids(&spec);
        let fifo_err = |e| Error::sys(format!("chmod/chown {}", fifo.display()), e);
        nix::sys::stat::fchmodat(
            None,
            &fifo,
            nix::sys::stat::Mode::from_bits_truncate(0o622),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(fifo_err)?;
        nix::unistd::chown(&fifo, Some(uid.into()), Some(gid.into())).map_err(fifo_err)?;
        let fd = nix::fcntl::open(
            &fifo,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| Error::sys(format!("open {}", fifo.display()), e))?;
        // SAFETY: a fresh descriptor from open().
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        None
    };

    let (parent, child) = channel::pair()?;
    let mut flags = CloneFlags::empty();
    if single {
        // The cgroup namespace is unshared by the init once it is in its cgroup.
        flags = ns.new - CloneFlags::CLONE_NEWCGROUP;
        // In a new user namespace, the IPC namespace too, once the init is that namespace's
        // root (runc's order): its mqueue filesystem takes the creator's ids, and host root
        // is unmapped there (/dev/mqueue would belong to "nobody").
        if ns.new_user() {
            flags -= CloneFlags::CLONE_NEWIPC;
        }
    }
    if net_ahead {
        flags -= CloneFlags::CLONE_NEWNET;
    }
    // A joined pid (or time) namespace applies to children: enter it for them, then come back.
    let restore_pid = enter_for_children(ns.pid_join.as_ref(), CloneFlags::CLONE_NEWPID)?;
    let restore_time = enter_for_children(
        ns.time_join.as_ref(),
        CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    )?;
    // The child enters its cgroup by itself (no grace-period wait; see
    // Cgroup::self_attach): at birth for cgroup2, by "0" > tasks for v1.
    let attach = if v1_later {
        cgroup.unified_attach()?
    } else {
        cgroup.self_attach()?
    };
    // The init's sealing plan (it inherits this process's mappings); then, while the network
    // namespace is still being made, the v1 hierarchies (the rest follows after the clone).
    // Then wait for the helper: no other thread may run at the clone (the child is a copy of
    // this one thread, and must find no lock held).
    let seal_plan = seal_init.then(selfexe::SealPlan::new).transpose()?;
    let signals_to_reset = util::signals_to_reset();
    let mut v1_made = 0;
    if v1_later && net_ahead {
        v1_made = cgroup.create_v1_while(&|| ahead.as_ref().is_some_and(|a| !a.is_finished()))?;
    }
    crate::util::trace("create: v1 dirs made ahead");
    let netns = match ahead.map(|a| a.finish()) {
        Some(Some(made)) if net_ahead => Some(made?),
        _ => {
            if net_ahead {
                // The helper read the file otherwise: the clone makes the namespace.
                flags |= CloneFlags::CLONE_NEWNET;
            }
            None
        }
    };
    crate::util::trace("create: helper done");
    let forked = clone3(
        flags.bits() as u64,
        attach.into.as_ref().map(|f| f.as_raw_fd()),
    );
    restore(restore_pid, CloneFlags::CLONE_NEWPID);
    restore(
        restore_time,
        CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    );
    let (child_pid, pidfd) = match forked? {
        Forked::Child => {
            drop(parent);
            child_main(InitArgs {
                spec: &spec,
                bundle: &bundle,
                rootfs: &rootfs,
                ns: &ns,
                chan: &child,
                fifo: fifo_fd.as_ref().map(|f| f.as_raw_fd()),
                console_socket: console.as_ref().map(|c| c.as_raw_fd()),
                no_pivot: o.no_pivot,
                no_new_keyring: o.no_new_keyring,
                preserve_fds: o.preserve_fds,
                stdio: o.stdio,
                single_clone: single,
                attach: Some(&attach),
                v1_later: v1_later.then_some(&cgroup),
                netns: netns.as_ref().map(|f| f.as_raw_fd()),
                seal: seal_plan.as_ref().zip(view.as_ref().map(|v| v.as_raw_fd())),
                cgroup_layout: Some(&layout),
                signals_to_reset,
            })
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child);
    drop(netns);
    drop(console);
    drop(fifo_fd);
    cleanup.pidfds.push(pidfd);
    cleanup.pids.push(child_pid);

    crate::util::trace("create: cloned");
    drop(attach);
    if single && ns.new_user() {
        write_id_maps(child_pid, &spec)?;
    }
    if crate::init::needs_go(&ns) {
        parent.send(&Msg::Go)?;
    }
    crate::util::trace("create: cloned, init going");
    if v1_later {
        cgroup.create_v1_from(v1_made)?;
        crate::util::trace("create: v1 dirs made");
        cgroup.apply(&crate::resources::effective(&spec))?;
        crate::util::trace("create: v1 limits applied");
        let v1 = cgroup.v1_attach()?;
        let fds: Vec<_> = v1.tasks.iter().map(|(_, f)| f.as_raw_fd()).collect();
        crate::util::trace("create: v1 cgroups made");
        if let Err(e) = parent.send_fds(&Msg::CgroupReady, &fds) {
            // The init failed meanwhile: its own message says why.
            return Err(init_error(&parent).unwrap_or(e));
        }
    }

    let mut init_pid = child_pid;
    let created = util::rfc3339_now();
    let annotations = spec.annotations().clone().unwrap_or_default();
    let mut record = Record {
        id: o.id.clone(),
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        pid: child_pid,
        start_time: 0,
        created,
        owner: owner_name(),
        annotations: annotations.into_iter().collect(),
        cgroup: Some(cgroup.clone()),
        spec: crate::state::StoredSpec::new(&spec)?,
    };
    // The state file and the pid file, written beside their places; renamed into place once
    // the init is ready. The init of a single clone is the child itself: they are written
    // while it sets up.
    let write_state = |record: &mut Record, pid: i32| -> Result<_> {
        record.pid = pid;
        record.start_time = util::proc_stat(pid).map(|s| s.start_time).unwrap_or(0);
        let state = dir.prepare_save(record)?;
        let pid_file = o
            .pid_file
            .as_ref()
            .map(|p| util::PendingWrite::new(p, pid.to_string().as_bytes()))
            .transpose()?;
        Ok((state, pid_file))
    };
    let written_ahead = if single {
        let w = write_state(&mut record, child_pid)?;
        crate::util::trace("create: state written ahead");
        Some(w)
    } else {
        None
    };
    loop {
        let msg = parent.recv_with_creds()?;
        match msg {
            Some((Msg::NeedMaps, _)) => {
                write_id_maps(child_pid, &spec)?;
                parent.send(&Msg::MapsWritten)?;
            }
            Some((Msg::NeedTimeOffsets, _)) => {
                write_time_offsets(child_pid, &spec)?;
                parent.send(&Msg::TimeOffsetsWritten)?;
            }
            Some((Msg::Pid, Some(pid))) => {
                init_pid = pid;
                if let Some(fd) = util::pidfd_open(pid) {
                    cleanup.pidfds.push(fd);
                }
                if pid != child_pid {
                    cleanup.pids.push(pid);
                }
            }
            Some((Msg::HooksReady, _)) => {
                record.pid = init_pid;
                let st = serde_json::to_string(
                    &record.oci_state_with(Status::Creating, spec.version().clone()),
                )
                .unwrap_or_default();
                if let Some(h) = spec.hooks() {
                    hooks::run_hooks(
                        hooks::HookKind::Prestart,
                        h.prestart().as_ref(),
                        st.as_bytes(),
                    )?;
                    hooks::run_hooks(
                        hooks::HookKind::CreateRuntime,
                        h.create_runtime().as_ref(),
                        st.as_bytes(),
                    )?;
                }
                // createContainer hooks see "creating" too; the init marks startContainer's "created".
                parent.send(&Msg::HooksDone(st))?;
            }
            Some((Msg::Ready, _)) => break,
            Some((Msg::Error(e), _)) => return Err(Error::Other(e)),
            Some((Msg::SealFailed(e), _)) => return Err(Error::InitSeal(e)),
            Some((m, _)) => {
                return Err(Error::Other(format!(
                    "protocol: unexpected {m:?} from init"
                )))
            }
            None => {
                return Err(Error::Other(format!(
                    "container init exited during create{}",
                    reap_status(child_pid)
                )))
            }
        }
    }
    crate::util::trace("create: init ready");
    let (state, pid_file) = match written_ahead {
        Some(w) if init_pid == child_pid => w,
        _ => write_state(&mut record, init_pid)?,
    };
    state.commit()?;
    if let Some(p) = pid_file {
        p.commit()?;
    }
    crate::util::trace("create: state saved");
    // The init is ours as long as it is a direct child (single clone); the intermediate of the
    // staged path has exited and must be reaped.
    let pidfd = if single {
        cleanup.pidfds.pop()
    } else {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child_pid), None);
        cleanup.pidfds.pop()
    };
    cleanup.armed = false;
    drop(cleanup);
    Ok(Created {
        seal_view: view,
        pid: init_pid,
        pidfd,
        chan: parent,
        record,
        dir,
        _lock: lock,
        proxy,
    })
}

/// The helper thread of a create (cpu_helper.rs): it reads from config.json whether the
/// runtime will want a network namespace made aside and, if so, makes it, while the runtime
/// parses the bundle and makes the state directory and the cgroups (netns_ahead.rs).
enum Ahead {
    Running(Helper<AheadOut>),
    /// Ended early (before this process sealed itself in place), with its result.
    Done(AheadOut),
}

/// The network namespace, if the helper made one (or failed to).
type AheadOut = Option<Result<OwnedFd>>;

impl Ahead {
    fn start(config: std::path::PathBuf) -> Result<Self> {
        Helper::spawn(move || {
            crate::util::trace("helper: running");
            let want = std::fs::read(&config).is_ok_and(|d| netns_ahead::wants_netns(&d));
            let net = want.then(netns_ahead::new_netns);
            crate::util::trace("helper: done");
            net
        })
        .map(Ahead::Running)
    }

    /// Whether the helper is done (it may still be ending).
    fn is_finished(&self) -> bool {
        match self {
            Ahead::Running(h) => h.is_finished(),
            Ahead::Done(_) => true,
        }
    }

    /// Wait for the helper; its result.
    fn finish(self) -> AheadOut {
        match self {
            Ahead::Running(h) => h.join(),
            Ahead::Done(out) => out,
        }
    }
}

/// The error the init reported before it went away, if it did.
fn init_error(chan: &Channel) -> Option<Error> {
    match chan.recv() {
        Ok(Some(Msg::Error(e))) => Some(Error::Other(e)),
        Ok(Some(Msg::SealFailed(e))) => Some(Error::InitSeal(e)),
        _ => None,
    }
}

/// After a failed create, what happened to the child, for the message.
fn reap_status(pid: i32) -> String {
    use nix::sys::wait::{waitpid, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, c)) => format!(" (exit status {c})"),
        Ok(WaitStatus::Signaled(_, s, _)) => format!(" (killed by {s})"),
        _ => String::new(),
    }
}

fn enter_for_children(
    j: Option<&crate::namespaces::Joined>,
    flag: CloneFlags,
) -> Result<Option<OwnedFd>> {
    let Some(j) = j else { return Ok(None) };
    let own = format!(
        "/proc/self/ns/{}",
        if flag == CloneFlags::CLONE_NEWPID {
            "pid_for_children"
        } else {
            "time_for_children"
        }
    );
    let fd = nix::fcntl::open(
        own.as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {own}"), e))?;
    // SAFETY: a fresh descriptor from open().
    let saved = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::sched::setns(&j.fd, flag)
        .map_err(|e| Error::sys(format!("join {}", j.path.display()), e))?;
    Ok(Some(saved))
}

fn restore(saved: Option<OwnedFd>, flag: CloneFlags) {
    if let Some(fd) = saved {
        let _ = nix::sched::setns(&fd, flag);
    }
}

/// Write uid_map and gid_map of a child that has a new user namespace.
fn write_id_maps(pid: i32, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let fmt = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        m.into_iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    let uid = fmt(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = fmt(linux.and_then(|l| l.gid_mappings().as_ref()));
    for (name, data) in [("uid_map", uid), ("gid_map", gid)] {
        if data.is_empty() {
            continue;
        }
        let p = format!("/proc/{pid}/{name}");
        std::fs::write(&p, &data).map_err(|e| {
            Error::spec(
                format!("linux.{}Mappings", &name[..3]),
                format!("write {p}: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Write linux.timeOffsets to the time namespace the child unshared (for its children).
fn write_time_offsets(pid: i32, spec: &oci_spec::runtime::Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut data = String::new();
    for (clock, off) in offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::spec(
                format!("linux.timeOffsets.{clock}"),
                "only monotonic and boottime clocks have offsets",
            ));
        }
        data.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    let p = format!("/proc/{pid}/timens_offsets");
    std::fs::write(&p, data)
        .map_err(|e| Error::spec("linux.timeOffsets", format!("write {p}: {e}")))
}

/// The host uid and gid that container root maps to (0 and 0 without a user namespace).
fn root_ids(spec: &oci_spec::runtime::Spec) -> (u32, u32) {
    let linux = spec.linux().as_ref();
    let find = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.into_iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
            .unwrap_or(0)
    };
    (
        find(linux.and_then(|l| l.uid_mappings().as_ref())),
        find(linux.and_then(|l| l.gid_mappings().as_ref())),
    )
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

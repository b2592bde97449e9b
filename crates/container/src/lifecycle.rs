//! The OCI operations on an existing container: start, state, kill, delete, list, ps,
//! pause, resume; and `create`/`run` on top of create.rs.

use crate::channel::Msg;
use crate::create::{self, Mode};
use crate::error::{Error, Result};
use crate::state::{Record, State, StateEntry, Status};
use crate::{hooks, wait, CreateOptions, Runtime};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

impl Runtime {
    /// `create`: the init waits on exec.fifo when this returns.
    pub fn create(&self, o: &CreateOptions) -> Result<()> {
        let c = reexec_if_asked(self.create_sealed(o, Mode::Create))?;
        c.chan.send(&Msg::WaitFifo)?;
        Ok(())
    }

    /// `run`: create and start; unless detached, wait for the container, forwarding
    /// signals, then delete it and return its exit code (128+n when killed by signal n).
    pub fn run(&self, o: &CreateOptions, detach: bool) -> Result<i32> {
        let fwd = if detach {
            None
        } else {
            Some(wait::Forwarder::new()?)
        };
        let created = self.create_sealed(
            o,
            if detach {
                Mode::Run
            } else {
                Mode::RunForeground
            },
        );
        let mut c = match created {
            Err(Error::Reexec(view)) => {
                // The signal mask survives execve: start again as this process started.
                if let Some(f) = fwd {
                    f.restore_mask();
                }
                return Err(crate::selfexe::reexec(view));
            }
            r => r?,
        };
        let proxy = match c.proxy.take() {
            Some(p) => Some(p.start()?),
            None => None,
        };
        c.chan.send(&Msg::Start)?;
        crate::util::trace("run: start sent");
        // The channel is close-on-exec: end-of-file means the user program is running.
        match c.chan.recv()? {
            None => {}
            Some(Msg::Error(e)) => {
                let _ = self.destroy(&c.dir, &c.record);
                return Err(Error::Other(e));
            }
            Some(m) => {
                return Err(Error::Other(format!(
                    "protocol: unexpected {m:?} after start"
                )))
            }
        }
        crate::util::trace("run: program running");
        // The init has left the sealed view behind (execve): its overlay goes now, while
        // the container runs.
        drop(c.seal_view.take());
        run_poststart(&c.record);
        let Some(fwd) = fwd else { return Ok(0) };
        let code = fwd.wait(c.pid, c.pidfd.as_ref())?;
        crate::util::trace("run: container exited");
        if let Some(p) = proxy {
            p.finish();
        }
        drop(c._lock);
        self.destroy(&c.dir, &c.record)?;
        crate::util::trace("run: destroyed");
        Ok(code)
    }

    /// Library use (the pod supervisor): create and start a container and return its init's
    /// host pid once the user program is running. The caller reaps it (it is the caller's
    /// child, or reparented to it when the caller is a child subreaper).
    pub fn run_detached(&self, o: &CreateOptions) -> Result<i32> {
        self.run(o, true)?;
        Ok(self.load(&o.id)?.1.pid)
    }

    /// create.rs, once more with the runtime sealing itself if the init could not (its
    /// first attempt was undone completely).
    fn create_sealed(&self, o: &CreateOptions, mode: Mode) -> Result<create::Created> {
        match create::create(self, o, mode, false) {
            Err(Error::InitSeal(e)) => {
                tracing::debug!("the init could not seal itself ({e}); sealing podrun instead");
                create::create(self, o, mode, true)
            }
            r => r,
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        let dir = StateEntry::new(&self.root, id)?;
        let _l = dir.lock()?;
        let rec = dir.load()?;
        let st = rec.status(&dir);
        if st != Status::Created {
            return Err(Error::WrongState {
                id: id.into(),
                status: st.to_string(),
                msg: "cannot start a container that is not created".into(),
            });
        }
        // The init runs from the sealed view of podrun (selfexe.rs), which the `create` that
        // made it no longer holds: the init's execve of the program would drop the last
        // reference to the view's overlay, and its teardown would run first thing in the
        // container's program (task work after execve: ~75 µs). Holding the init's executable
        // across the exec moves the teardown here, after the program runs. Nothing depends
        // on it: an init that is not sealed (a read-only install) is the host binary.
        let _sealed_view = hold_exe(rec.pid);
        release_fifo(&dir, &rec)?;
        run_poststart(&rec);
        Ok(())
    }

    pub fn state(&self, id: &str) -> Result<State> {
        let dir = StateEntry::new(&self.root, id)?;
        let rec = dir.load()?;
        Ok(rec.oci_state(rec.status(&dir)))
    }

    pub fn list(&self) -> Result<Vec<State>> {
        let mut out = Vec::new();
        for id in crate::state::ids(&self.root)? {
            if let Ok(dir) = StateEntry::new(&self.root, &id) {
                if let Ok(rec) = dir.load() {
                    out.push(rec.oci_state(rec.status(&dir)));
                }
            }
        }
        Ok(out)
    }

    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<()> {
        let dir = StateEntry::new(&self.root, id)?;
        let rec = dir.load()?;
        let st = rec.status(&dir);
        if all {
            if let Some(cg) = &rec.cgroup {
                return Ok(cg.kill_all(sig)?);
            }
        }
        if st == Status::Stopped {
            return Err(Error::WrongState {
                id: id.into(),
                status: st.to_string(),
                msg: "container not running".into(),
            });
        }
        signal_init(&rec, sig)?;
        // A frozen process does not act on SIGKILL until it is thawed (the v1 freezer): thaw
        // a paused container for it, as runc does (other signals wait for `resume`).
        if st == Status::Paused && sig == libc::SIGKILL {
            if let Some(cg) = &rec.cgroup {
                cg.thaw()?;
            }
        }
        Ok(())
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let dir = StateEntry::new(&self.root, id)?;
        // Opening the lock file is the existence check (no stat before it).
        let _l = match dir.lock() {
            Err(Error::NotFound(_)) if force => return Ok(()),
            l => l?,
        };
        let rec = match dir.load() {
            Ok(r) => r,
            // A create that died half-way leaves a lock file without state: remove it.
            Err(Error::NotFound(_)) => {
                dir.remove()?;
                return if force {
                    Ok(())
                } else {
                    Err(Error::NotFound(id.into()))
                };
            }
            Err(e) => return Err(e),
        };
        match rec.status(&dir) {
            Status::Stopped => {}
            Status::Created => kill_and_wait(&rec)?,
            st if force => {
                if st == Status::Paused {
                    if let Some(cg) = &rec.cgroup {
                        let _ = cg.thaw();
                    }
                }
                kill_and_wait(&rec)?
            }
            st => {
                return Err(Error::WrongState {
                    id: id.into(),
                    status: st.to_string(),
                    msg: "cannot delete a container that is not stopped (use --force)".into(),
                })
            }
        }
        self.destroy(&dir, &rec)
    }

    /// Remove what is left of a stopped container: processes in its cgroup, the cgroup,
    /// poststop hooks, the state directory.
    pub(crate) fn destroy(&self, dir: &StateEntry, rec: &Record) -> Result<()> {
        if let Some(cg) = &rec.cgroup {
            cg.destroy()?;
        }
        crate::util::trace("destroy: cgroup removed");
        if let Some((h, version)) = stored_hooks(rec) {
            let st = serde_json::to_string(&rec.oci_state_with(Status::Stopped, version))
                .unwrap_or_default();
            run_hooks_warn(hooks::HookKind::Poststop, h.poststop().as_ref(), &st);
        }
        dir.remove()
    }

    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let dir = StateEntry::new(&self.root, id)?;
        let rec = dir.load()?;
        match &rec.cgroup {
            Some(cg) => Ok(cg.pids()?),
            None => Ok(if rec.status(&dir) == Status::Stopped {
                vec![]
            } else {
                vec![rec.pid]
            }),
        }
    }

    /// Resource usage from the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<podrun_cgroups::Stats> {
        let (_, rec) = self.load(id)?;
        let cg = rec
            .cgroup
            .as_ref()
            .ok_or_else(|| Error::Other(format!("container {id:?} has no cgroup")))?;
        Ok(cg.stats()?)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let (dir, rec) = self.load(id)?;
        match rec.status(&dir) {
            Status::Running | Status::Created => {}
            st => {
                return Err(Error::WrongState {
                    id: id.into(),
                    status: st.to_string(),
                    msg: "cannot pause a container that is not running".into(),
                })
            }
        }
        rec.cgroup
            .as_ref()
            .ok_or_else(|| Error::Other("container has no cgroup".into()))?
            .freeze()?;
        Ok(())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let (dir, rec) = self.load(id)?;
        let st = rec.status(&dir);
        if st != Status::Paused {
            return Err(Error::WrongState {
                id: id.into(),
                status: st.to_string(),
                msg: "cannot resume a container that is not paused".into(),
            });
        }
        rec.cgroup
            .as_ref()
            .ok_or_else(|| Error::Other("container has no cgroup".into()))?
            .thaw()?;
        Ok(())
    }

    pub(crate) fn load(&self, id: &str) -> Result<(StateEntry, Record)> {
        let dir = StateEntry::new(&self.root, id)?;
        let rec = dir.load()?;
        Ok((dir, rec))
    }
}

/// poststart and poststop: a failing hook is a warning, and the remaining hooks still run.
fn run_hooks_warn(kind: hooks::HookKind, list: Option<&Vec<oci_spec::runtime::Hook>>, state: &str) {
    for h in list.into_iter().flatten() {
        if let Err(e) = hooks::run_hooks(kind, Some(&vec![h.clone()]), state.as_bytes()) {
            tracing::warn!("{e}");
        }
    }
}

/// The container's hooks and ociVersion (for the hooks' state) from its stored spec, in one
/// parse; an unreadable spec is a warning, so that it cannot keep a container from being
/// deleted.
fn stored_hooks(rec: &Record) -> Option<(oci_spec::runtime::Hooks, String)> {
    match rec.spec.head() {
        Ok(h) => h.hooks.map(|hooks| (hooks, h.oci_version)),
        Err(e) => {
            tracing::warn!("{}: {e}; its hooks are not run", rec.id);
            None
        }
    }
}

fn run_poststart(rec: &Record) {
    if let Some((h, version)) = stored_hooks(rec) {
        let st = serde_json::to_string(&rec.oci_state_with(Status::Running, version))
            .unwrap_or_default();
        run_hooks_warn(hooks::HookKind::Poststart, h.poststart().as_ref(), &st);
    }
}

/// An O_PATH descriptor of `pid`'s executable, if it can be had (see `Runtime::start`).
/// Not std's `OpenOptions::custom_flags(O_PATH)`: std drops O_PATH from custom flags and
/// opens the file for reading (seen with strace), which opens the overlay's real file too.
fn hold_exe(pid: i32) -> Option<OwnedFd> {
    let path = format!("/proc/{pid}/exe");
    let fd = nix::fcntl::open(
        path.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    // SAFETY: a fresh descriptor from open(), owned by nothing else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Release a created container's init through exec.fifo and wait until its user program
/// runs. Opening the fifo for reading lets the init's open for writing complete; the init
/// writes one byte, and its end of the fifo is close-on-exec, so end-of-file means that the
/// program has been executed (or that the init has ended). Anything the init writes after
/// the byte is the error that stopped it (a startContainer hook, the execve). The fifo is
/// removed then: `state` says `created` while the startContainer hooks run (the status they
/// are given), `running` once the program has been executed.
fn release_fifo(dir: &StateEntry, rec: &Record) -> Result<()> {
    use nix::fcntl::{open, OFlag};
    let path = dir.fifo();
    let raw = open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {}", path.display()), e))?;
    // SAFETY: a fresh descriptor from open().
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    // The go byte: the init may still be on its way to the fifo (30 s at most).
    while got.is_empty() {
        match read_fifo(&fd, &mut got)? {
            Read::Data => {}
            Read::Eof | Read::Nothing => {
                if !crate::util::process_alive(rec.pid, rec.start_time) {
                    return Err(Error::Other(format!(
                        "container \"{}\" init exited before start",
                        rec.id
                    )));
                }
                if Instant::now() > deadline {
                    return Err(Error::Other(format!(
                        "container \"{}\" did not start within 30s",
                        rec.id
                    )));
                }
            }
        }
    }
    // Then end-of-file: the program runs. No deadline: the startContainer hooks have their
    // own timeouts, and a dead init has closed its end.
    loop {
        match read_fifo(&fd, &mut got)? {
            Read::Eof => break,
            Read::Data | Read::Nothing => {}
        }
    }
    std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
    let err = String::from_utf8_lossy(&got[1..]);
    if err.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "container \"{}\" failed to start: {}",
            rec.id,
            err.trim_end()
        )))
    }
}

enum Read {
    Data,
    Eof,
    /// Nothing within 100 ms (the writer has not opened the fifo yet, or is busy).
    Nothing,
}

/// One poll (100 ms at most) and read of the fifo, appending what came to `got`.
fn read_fifo(fd: &OwnedFd, got: &mut Vec<u8>) -> Result<Read> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut pfd, PollTimeout::from(100u16)) {
        Ok(0) => return Ok(Read::Nothing),
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(Read::Nothing),
        Err(e) => return Err(Error::sys("poll exec fifo", e)),
    }
    let mut b = [0u8; 4096];
    match nix::unistd::read(fd.as_raw_fd(), &mut b) {
        Ok(0) => {
            // A fifo no writer has opened yet also reads as end-of-file: only a writer that
            // came and went (POLLHUP) is the end.
            let hup = pfd[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP));
            Ok(if hup { Read::Eof } else { Read::Nothing })
        }
        Ok(k) => {
            got.extend_from_slice(&b[..k]);
            Ok(Read::Data)
        }
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => Ok(Read::Nothing),
        Err(e) => Err(Error::sys("read exec fifo", e)),
    }
}

fn pidfd_of(rec: &Record) -> Option<OwnedFd> {
    let fd = crate::util::pidfd_open(rec.pid)?;
    // The pid could have been recycled between the state check and pidfd_open: check again.
    if !crate::util::process_alive(rec.pid, rec.start_time) {
        return None;
    }
    Some(fd)
}

fn signal_init(rec: &Record, sig: i32) -> Result<()> {
    let Some(fd) = pidfd_of(rec) else {
        return Err(Error::WrongState {
            id: rec.id.clone(),
            status: "stopped".into(),
            msg: "container not running".into(),
        });
    };
    crate::util::pidfd_signal(&fd, sig).map_err(|e| {
        Error::sys(
            format!("kill {} with {}", rec.id, crate::signal::name(sig)),
            e,
        )
    })?;
    Ok(())
}

/// SIGKILL the container (every process in its cgroup) and wait until the init is gone.
fn kill_and_wait(rec: &Record) -> Result<()> {
    let fd = pidfd_of(rec);
    if let Some(cg) = &rec.cgroup {
        cg.kill_all(libc::SIGKILL)?;
    }
    if let Some(fd) = fd {
        let _ = crate::util::pidfd_signal(&fd, libc::SIGKILL);
        let mut pfd = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(10_000u16));
    }
    Ok(())
}

/// create.rs seals this process before its clone where the init cannot seal itself
/// (selfexe::seal_now). Where that cannot be done in place, create made nothing yet and
/// hands back the sealed view: the command starts again from it.
fn reexec_if_asked<T>(r: Result<T>) -> Result<T> {
    match r {
        Err(Error::Reexec(view)) => Err(crate::selfexe::reexec(view)),
        r => r,
    }
}

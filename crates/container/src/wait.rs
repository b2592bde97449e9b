//! Foreground `run`/`exec`: forward every signal the runtime receives to the container's
//! process and return its exit status the way a shell reports it (128+n for signal n).

use crate::error::{Error, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::OwnedFd;

pub struct Forwarder {
    sfd: SignalFd,
    old: SigSet,
}

/// Signals that are not forwarded: uncatchable ones and synchronous faults.
const KEEP: &[Signal] = &[
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
];

impl Forwarder {
    /// Block the forwarded signals (the container's init unblocks them for itself) and become
    /// a child subreaper, so an init forked by an intermediate stage is still ours to reap.
    pub fn new() -> Result<Self> {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only changes this process's reaping.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut mask = SigSet::all();
        for s in KEEP {
            mask.remove(*s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .map_err(|e| Error::sys("sigprocmask", e))?;
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::sys("signalfd", e))?;
        Ok(Forwarder { sfd, old })
    }

    /// Give up forwarding: unblock what `new` blocked.
    pub fn restore_mask(self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }

    /// Wait for `pid` to exit, forwarding signals to it; returns the shell-style status.
    pub fn wait(self, pid: i32, _pidfd: Option<&OwnedFd>) -> Result<i32> {
        loop {
            // Reap first: the process may already be gone.
            if let Some(code) = reap(pid)? {
                let _ =
                    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
                return Ok(code);
            }
            let info = match self.sfd.read_signal() {
                Ok(Some(i)) => i,
                Ok(None) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("read signalfd", e)),
            };
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                continue;
            }
            // SAFETY: kill(2) with a pid and a signal number; failure (already gone) is fine.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// Reap every exited child; return `pid`'s status if it was among them.
fn reap(pid: i32) -> Result<Option<i32>> {
    loop {
        match waitpid(
            None::<Pid>,
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => return Ok(Some(c)),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => {
                return Ok(Some(128 + s as i32))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::ECHILD) => {
                return Err(Error::Other(format!(
                    "process {pid} is not a child of this runtime"
                )))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("waitpid", e)),
        }
    }
}

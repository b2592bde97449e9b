//! clone3(2): fork with namespace flags, a pidfd, and (cgroup v2) straight into a cgroup.

use crate::error::{Error, Result};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// CLONE_INTO_CGROUP (Linux 5.7); libc's constant is deprecated for overflowing c_int.
const CLONE_INTO_CGROUP: u64 = 0x200000000;

pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

/// Fork with `flags` (CLONE_NEW*); returns a pidfd of the child. The child runs on a copy of
/// the address space like fork(2): only the calling thread goes on in it (no allocation of
/// another thread is in flight at the clone: fork_gate.rs).
pub fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let tid_slot = musl_tid::slot();
    // No allocation in flight on another thread at the clone (fork_gate.rs); nothing here
    // allocates until the gate is open again, in the parent and in the child.
    let gate = crate::fork_gate::close();
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets its own copy of
    // memory and returns 0 here. `args` and `pidfd` live for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let errno = nix::errno::Errno::last();
    if ret == 0 {
        musl_tid::refresh(tid_slot);
    }
    gate.open();
    match ret {
        -1 => Err(Error::sys(format!("clone3 (flags {flags:#x})"), errno)),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: the kernel stored a new pidfd for the child in `pidfd`; we own it.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// musl keeps the thread id in its thread descriptor, set when the thread was made; its own
/// fork() refreshes it in the child, a raw clone3 does not. raise() and abort() (so a panic,
/// under panic=abort) signal that cached id: a clone3 child left with its parent's would
/// send its SIGABRT to the parent's thread. The child stores its own id there.
mod musl_tid {
    /// The descriptor's `tid` field, if this libc has one where expected: on x86-64 musl,
    /// `struct pthread` (pthread_self()) starts with self, dtv, prev, next, sysinfo and the
    /// stack canary (fixed at %fs:0x28 by the ABI), then `int tid`. Checked against the
    /// kernel's answer in the parent before use.
    pub(super) fn slot() -> Option<*mut libc::c_int> {
        #[cfg(all(target_env = "musl", target_arch = "x86_64"))]
        {
            const TID_OFFSET: usize = 48;
            // SAFETY: on musl, pthread_t is the address of the calling thread's descriptor,
            // which is larger than TID_OFFSET + 4 bytes; reading an int there is in bounds.
            let slot =
                unsafe { (libc::pthread_self() as *mut u8).add(TID_OFFSET) } as *mut libc::c_int;
            // SAFETY: as above.
            let cached = unsafe { slot.read() };
            // SAFETY: gettid takes no arguments.
            let real = unsafe { libc::syscall(libc::SYS_gettid) } as libc::c_int;
            if cached == real {
                return Some(slot);
            }
        }
        None
    }

    /// In the clone3 child: store its own thread id in `slot` (from [`slot`], in the parent).
    pub(super) fn refresh(slot: Option<*mut libc::c_int>) {
        if let Some(slot) = slot {
            // SAFETY: gettid takes no arguments; `slot` is this thread's descriptor field,
            // checked in the parent, at the same address in this copy of its memory.
            unsafe { slot.write(libc::syscall(libc::SYS_gettid) as libc::c_int) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a clone3 child, libc's idea of the thread id (what raise() and abort() signal) is
    /// the child's own.
    #[test]
    fn a_clone3_child_knows_its_own_thread_id() {
        match clone3(0, None).unwrap() {
            Forked::Child => {
                // SAFETY: gettid takes no arguments.
                let real = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
                // SAFETY: as above (libc's cached answer on musl).
                let libc_tid = unsafe { libc::gettid() };
                // SAFETY: leave the forked copy at once, without the test harness.
                unsafe { libc::_exit(if libc_tid == real { 0 } else { 1 }) }
            }
            Forked::Parent { pid, .. } => {
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
                assert_eq!(
                    st,
                    nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0),
                    "the child's libc gettid() was not its own thread id"
                );
            }
        }
    }
}

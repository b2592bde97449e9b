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
    gate.open();
    match ret {
        -1 => Err(Error::sys(format!("clone3 (flags {flags:#x})"), errno)),
        0 => {
            end_panics_here();
            Ok(Forked::Child)
        }
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: the kernel stored a new pidfd for the child in `pidfd`; we own it.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// A panic in a clone3 child ends the child, and only the child.
///
/// musl caches the thread id in its thread descriptor; its fork() refreshes it, a raw clone3
/// cannot. Its abort() (where a panic ends with panic=abort) raises SIGABRT with tkill(2) on
/// that cached id: the parent's thread. With a pid namespace of its own the child would only
/// fail to signal anyone, but when the two share one (a container that joins the host's or
/// another container's pid namespace, `exec`), a panic in the child would kill the runtime
/// that created it. So the child's panic hook, after printing the message as before, sends
/// SIGABRT to the child's own pid and, should that not end it (the init of a pid namespace
/// ignores a signal it sends itself without a handler), exits with 134 (128 + SIGABRT).
fn end_panics_here() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        // SAFETY: system calls on this process only: SIGABRT's default action, unblocked,
        // then kill(getpid(), SIGABRT), then exit_group.
        unsafe {
            libc::signal(libc::SIGABRT, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGABRT);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::syscall(
                libc::SYS_kill,
                libc::syscall(libc::SYS_getpid),
                libc::SIGABRT,
            );
            libc::syscall(libc::SYS_exit_group, 128 + libc::SIGABRT);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the hook, the child's panic would tkill the parent's thread id (this test's
    /// thread: the same pid namespace) or, in this unwinding test build, unwind into a copy
    /// of the test harness.
    #[test]
    fn a_panicking_clone3_child_dies_alone() {
        match clone3(0, None).unwrap() {
            Forked::Child => panic!("deliberate panic in a clone3 child"),
            Forked::Parent { pid, pidfd } => {
                drop(pidfd);
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
                assert!(
                    matches!(
                        st,
                        nix::sys::wait::WaitStatus::Signaled(
                            _,
                            nix::sys::signal::Signal::SIGABRT,
                            _
                        )
                    ),
                    "{st:?}"
                );
            }
        }
    }
}

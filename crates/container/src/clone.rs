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
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as i32,
            // SAFETY: the kernel stored a new pidfd for the child in `pidfd`; we own it.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

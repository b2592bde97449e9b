//! A new network namespace, made by a helper thread on the other CPU while the runtime
//! prepares the init's clone (cgroups), instead of by the clone itself.
//!
//! Creating a network namespace is the costliest part of starting a container's namespaces
//! (~0.3 ms here: the loopback device, sysctl tables, every subsystem's per-namespace
//! state), and it is pure kernel work that needs nothing from the clone. Without a user
//! namespace to own it, a thread can make it, keep a descriptor of it, and the init enters
//! it with `setns` before anything that depends on it (init.rs). The thread must have ended
//! before the clone (see cpu_helper.rs).

use crate::error::{Error, Result};
use std::os::fd::{FromRawFd, OwnedFd};

/// Move the calling thread into a new network namespace and return a descriptor of it. Meant
/// for a helper thread that ends right after (CLONE_NEWNET does not need a single-threaded
/// process; the thread's namespace dies with it, the descriptor keeps it).
pub(crate) fn new_netns() -> Result<OwnedFd> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys("unshare network namespace", e))?;
    let fd = nix::fcntl::open(
        "/proc/thread-self/ns/net",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open /proc/thread-self/ns/net", e))?;
    // SAFETY: a fresh descriptor from open().
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// As root: the thread's namespace is a new one, and the caller's is untouched.
    #[test]
    fn makes_a_new_network_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let own = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        let fd = crate::cpu_helper::Helper::spawn(new_netns)
            .unwrap()
            .join()
            .unwrap();
        let new = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        assert_ne!(own.ino(), new.ino(), "the thread's namespace is a new one");
        let after = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        assert_eq!(own.ino(), after.ino(), "the caller stays in its namespace");
    }
}

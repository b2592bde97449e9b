//! A new network namespace, made by a short-lived thread while the runtime prepares the
//! init's clone (cgroups), instead of by the clone itself.
//!
//! Creating a network namespace is the costliest part of starting a container's namespaces
//! (~0.3 ms here: the loopback device, sysctl tables, every subsystem's per-namespace
//! state), and it is pure kernel work that needs nothing from the clone. Without a user
//! namespace to own it, a thread can make it on the other CPU, keep a descriptor of it, and
//! the init enters it with `setns` before anything that depends on it (init.rs).
//!
//! The thread is a bare pthread that runs three system calls and no Rust code: it touches no
//! lock or allocation the runtime could hold at its clone, which must happen after the thread
//! ended ([`NetnsAhead::join`]; dropping a `NetnsAhead` joins too). It is placed on another
//! CPU than the caller's: left to the scheduler it often waits on the busy caller's CPU for
//! the next tick (measured 2.7-3.6 ms), which would cost more than it saves.

use crate::error::{Error, Result};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// What the thread reports: the namespace's descriptor, or the failing step and its errno.
struct Shared {
    done: AtomicBool,
    fd: AtomicI32,
    /// 0: none, 1: unshare, 2: open.
    failed_step: AtomicI32,
    errno: AtomicI32,
}

pub(crate) struct NetnsAhead {
    thread: libc::pthread_t,
    shared: Box<Shared>,
    joined: bool,
}

extern "C" fn body(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is the `Shared` box of the NetnsAhead that started this thread; it is
    // freed only after pthread_join returned (join or Drop), so it outlives the thread.
    let sh = unsafe { &*(arg as *const Shared) };
    let fail = |step: i32| {
        // SAFETY: __errno_location returns this thread's errno slot.
        sh.errno
            .store(unsafe { *libc::__errno_location() }, Ordering::Relaxed);
        sh.failed_step.store(step, Ordering::Relaxed);
    };
    // SAFETY: unshare(2) with a flag only: this thread alone moves to a new network
    // namespace (CLONE_NEWNET does not require a single-threaded process).
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        fail(1);
    } else {
        // SAFETY: open(2) of a constant C path.
        let fd = unsafe {
            libc::open(
                c"/proc/thread-self/ns/net".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            fail(2);
        } else {
            sh.fd.store(fd, Ordering::Relaxed);
        }
    }
    sh.done.store(true, Ordering::Release);
    std::ptr::null_mut()
}

impl NetnsAhead {
    /// Start the thread.
    pub(crate) fn spawn() -> Result<Self> {
        let shared = Box::new(Shared {
            done: AtomicBool::new(false),
            fd: AtomicI32::new(-1),
            failed_step: AtomicI32::new(0),
            errno: AtomicI32::new(0),
        });
        // SAFETY: a zeroed pthread_attr_t is initialised by pthread_attr_init before use and
        // destroyed below; the affinity set is a plain bit set filled by the calls below.
        let thread = unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            let r = libc::pthread_attr_init(&mut attr);
            if r != 0 {
                return Err(Error::sys(
                    "pthread_attr_init",
                    nix::errno::Errno::from_raw(r),
                ));
            }
            libc::pthread_attr_setstacksize(&mut attr, 64 * 1024);
            if let Some(set) = other_cpus() {
                libc::pthread_attr_setaffinity_np(
                    &mut attr,
                    std::mem::size_of::<libc::cpu_set_t>(),
                    &set,
                );
            }
            let mut thread: libc::pthread_t = 0;
            let r = libc::pthread_create(
                &mut thread,
                &attr,
                body,
                &*shared as *const Shared as *mut libc::c_void,
            );
            libc::pthread_attr_destroy(&mut attr);
            if r != 0 {
                return Err(Error::sys(
                    "start the network namespace thread",
                    nix::errno::Errno::from_raw(r),
                ));
            }
            thread
        };
        Ok(NetnsAhead {
            thread,
            shared,
            joined: false,
        })
    }

    /// Whether the thread has finished its work (it may still be exiting).
    pub(crate) fn is_finished(&self) -> bool {
        self.shared.done.load(Ordering::Acquire)
    }

    /// Wait for the thread to end; the new namespace's descriptor.
    pub(crate) fn join(mut self) -> Result<OwnedFd> {
        self.wait();
        let sh = &self.shared;
        let errno = nix::errno::Errno::from_raw(sh.errno.load(Ordering::Relaxed));
        match sh.failed_step.load(Ordering::Relaxed) {
            0 => {
                let fd = sh.fd.swap(-1, Ordering::Relaxed);
                // SAFETY: the thread opened this descriptor for us and nobody else owns it.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
            1 => Err(Error::sys("unshare network namespace", errno)),
            _ => Err(Error::sys("open /proc/thread-self/ns/net", errno)),
        }
    }

    fn wait(&mut self) {
        if !self.joined {
            // SAFETY: a thread we started and have not joined yet.
            unsafe { libc::pthread_join(self.thread, std::ptr::null_mut()) };
            self.joined = true;
        }
    }
}

impl Drop for NetnsAhead {
    fn drop(&mut self) {
        self.wait();
        let fd = self.shared.fd.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: an unclaimed descriptor the thread opened for us.
            unsafe { libc::close(fd) };
        }
    }
}

/// The CPUs this process may use, except the one it runs on; None if there is no other.
fn other_cpus() -> Option<libc::cpu_set_t> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it, sched_getcpu
    // takes no arguments, and CPU_* only touch the set's bits.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let cur = libc::sched_getcpu();
        if cur < 0 || !libc::CPU_ISSET(cur as usize, &set) {
            return None;
        }
        libc::CPU_CLR(cur as usize, &mut set);
        (libc::CPU_COUNT(&set) > 0).then_some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root: the thread's namespace is a new one, and the caller's is untouched.
    #[test]
    fn makes_a_new_network_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let own = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        let t = NetnsAhead::spawn().unwrap();
        let fd = t.join().unwrap();
        let new = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(own.ino(), new.ino(), "the thread's namespace is a new one");
        let after = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        assert_eq!(own.ino(), after.ino(), "the caller stays in its namespace");
    }

    #[test]
    fn drop_without_join_closes_and_joins() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let t = NetnsAhead::spawn().unwrap();
        while !t.is_finished() {
            std::hint::spin_loop();
        }
        let fd = t.shared.fd.load(Ordering::Relaxed);
        assert!(fd >= 0);
        let link = format!("/proc/self/fd/{fd}");
        let ns = std::fs::read_link(&link).unwrap();
        drop(t);
        // (Another test may reuse the number meanwhile, but not for this namespace.)
        assert_ne!(std::fs::read_link(&link).ok(), Some(ns), "closed on drop");
    }
}

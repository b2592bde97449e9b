//! A child of a fork or clone must find no allocator lock held. The child is a copy of the
//! one thread that forked; a lock another thread held at that moment stays held in the child
//! forever. The allocator (dlmalloc, below) has one global lock. A raw clone3 (clone.rs;
//! namespaces and CLONE_INTO_CGROUP need it) runs no fork handlers, and libc's fork()
//! protects only libc's own malloc. podrun's own runtime is single-threaded at the clone,
//! but a process that embeds this library (the test binaries, which run tests on several
//! threads; the pod supervisor) is not: there a container's init, or a forked child, could
//! hang in its first allocation.
//!
//! So every allocation passes a gate: a count of allocations in flight, and a bit that a
//! forking thread sets ([`close`]) and then waits until the count is zero. New allocations
//! wait while the bit is set; the parent and the child open the gate again right after the
//! clone. For fork(), pthread_atfork handlers do the same. Cost: two uncontended atomic
//! operations per allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The allocator behind the gate: dlmalloc (Doug Lea's, the Rust port std uses on wasm), not
/// musl's. musl's mallocng hands every group it empties back to the kernel at once, so a
/// short podrun command maps and unmaps the same few pages over and over: ~17 munmaps per
/// `create`, each a TLB shootdown while the helper thread runs on the other CPU (~10 µs in
/// this VM), and a fresh page fault for every page mapped again. dlmalloc keeps freed
/// memory in its bins and gives back only whole free segments past its trim threshold
/// (2 MiB). Measured: create → start → delete 5.21 → 4.74 ms; the price is memory kept by
/// the long-lived pod processes, supervisor + pause PSS 1.32 → 1.79 MiB (docs/benchmarks.md).
static INNER: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

const CLOSED: usize = 1 << (usize::BITS - 1);

/// Allocations in flight, and `CLOSED`.
static STATE: AtomicUsize = AtomicUsize::new(0);

/// The allocator of every program that links this crate: dlmalloc behind the gate.
pub struct GatedAlloc;

#[inline]
fn enter() {
    loop {
        if STATE.fetch_add(1, Ordering::Acquire) & CLOSED == 0 {
            return;
        }
        STATE.fetch_sub(1, Ordering::Relaxed);
        while STATE.load(Ordering::Relaxed) & CLOSED != 0 {
            std::thread::yield_now();
        }
    }
}

#[inline]
fn leave() {
    STATE.fetch_sub(1, Ordering::Release);
}

// SAFETY: every call is forwarded to dlmalloc unchanged; the gate only delays it.
unsafe impl GlobalAlloc for GatedAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        enter();
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { INNER.alloc(l) };
        leave();
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        enter();
        // SAFETY: as above.
        let p = unsafe { INNER.alloc_zeroed(l) };
        leave();
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        enter();
        // SAFETY: as above.
        unsafe { INNER.dealloc(p, l) };
        leave();
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        enter();
        // SAFETY: as above.
        let q = unsafe { INNER.realloc(p, l, new_size) };
        leave();
        q
    }
}

/// The gate held closed by a cloning thread; [`Closed::open`] in the parent and in the child.
pub(crate) struct Closed(());

/// Close the gate and wait until no allocation is in flight. The caller must not allocate
/// until it opens the gate again.
pub(crate) fn close() -> Closed {
    loop {
        let s = STATE.load(Ordering::Relaxed);
        if s & CLOSED == 0
            && STATE
                .compare_exchange_weak(s, s | CLOSED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            break;
        }
        std::thread::yield_now();
    }
    while STATE.load(Ordering::Acquire) != CLOSED {
        std::thread::yield_now();
    }
    Closed(())
}

impl Closed {
    pub(crate) fn open(self) {
        STATE.fetch_and(!CLOSED, Ordering::Release);
    }
}

/// Before fork(): close the gate (the forking thread is not inside an allocation).
extern "C" fn close_before_fork() {
    // Opened again by the handlers below, in the parent and in the child.
    let _stays_closed: Closed = close();
}

/// After fork(), in the parent: open it again.
extern "C" fn open_in_parent() {
    STATE.fetch_and(!CLOSED, Ordering::Release);
}

/// After fork(), in the child: its only thread has nothing in flight, and the gate is open.
extern "C" fn reset_in_child() {
    STATE.store(0, Ordering::Relaxed);
}

extern "C" fn register_handlers() {
    // SAFETY: registers handlers that only touch an atomic (and yield while waiting).
    unsafe {
        libc::pthread_atfork(
            Some(close_before_fork),
            Some(open_in_parent),
            Some(reset_in_child),
        )
    };
}

/// Registered at program start, before any fork.
#[used]
#[link_section = ".init_array"]
static REGISTER_HANDLERS: extern "C" fn() = register_handlers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_holds_allocations_until_opened() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let (go, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (g, d) = (go.clone(), done.clone());
        let t = std::thread::spawn(move || {
            while !g.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            let v = Box::new([1u8; 64]); // an allocation
            d.store(true, Ordering::SeqCst);
            v.len()
        });
        // From here until `open`, this thread must not allocate.
        let gate = close();
        go.store(true, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let held = !done.load(Ordering::SeqCst);
        gate.open();
        assert_eq!(t.join().unwrap(), 64);
        assert!(held, "an allocation went through a closed gate");
    }

    /// fork() while other threads allocate all the time: every child allocates and exits
    /// (with an allocator lock inherited held, it would hang).
    #[test]
    fn forked_children_can_allocate_while_threads_allocate() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let v: Vec<u64> = (0..(n % 300) as u64).collect();
                        n = n.wrapping_add(v.len() + 1);
                    }
                    n
                })
            })
            .collect();
        for _ in 0..200 {
            // SAFETY: fork; the child only allocates, frees and _exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let v: Vec<String> = (0..50).map(|i| i.to_string()).collect();
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(if v.len() == 50 { 0 } else { 1 }) };
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut status = 0;
            loop {
                // SAFETY: waits for our own child without blocking.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    // SAFETY: kills our own hung child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    stop.store(true, Ordering::Relaxed);
                    panic!("a forked child hung in its first allocation");
                }
                std::thread::yield_now();
            }
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
    }
}

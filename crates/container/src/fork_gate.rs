//! A child of a fork or clone must find no allocator lock held. The child is a copy of the
//! one thread that forked; a lock another thread held at that moment stays held in the child
//! forever. A raw clone3 (clone.rs; namespaces and CLONE_INTO_CGROUP need it) runs no fork
//! handlers, and libc's fork() protects only libc's own malloc. podrun's own runtime is
//! single-threaded at the clone, but a process that embeds this library (the test binaries,
//! which run tests on several threads; the pod supervisor) is not: there a container's init,
//! or a forked child, could hang in its first allocation.
//!
//! So the allocator's one lock is also the gate: a cloning thread takes it ([`close`]), which
//! waits out any allocation in flight and holds new ones back, and the parent and the child
//! release it right after the clone ([`Closed::open`]). For fork(), pthread_atfork handlers
//! do the same. Cost: one uncontended atomic exchange to take the lock and one to release
//! it, per allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};

/// The allocator: dlmalloc (Doug Lea's, the Rust port std uses on wasm), not musl's. musl's
/// mallocng hands every group it empties back to the kernel at once, so a short podrun
/// command maps and unmaps the same few pages over and over: ~17 munmaps per `create`, each
/// a TLB shootdown while the helper thread runs on the other CPU (~10 µs in this VM), and a
/// fresh page fault for every page mapped again. dlmalloc keeps freed memory in its bins
/// and gives back only whole free segments past its trim threshold (2 MiB). Measured:
/// create → start → delete 5.21 → 4.74 ms; the price is memory kept by the long-lived pod
/// processes, supervisor + pause PSS 1.32 → 1.79 MiB (docs/benchmarks.md). dlmalloc's own
/// global instance has a lock of its own; this one is behind [`LOCK`] alone.
struct Heap(UnsafeCell<dlmalloc::Dlmalloc>);

// SAFETY: the dlmalloc instance is only reached with LOCK held (`with_heap`).
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap(UnsafeCell::new(dlmalloc::Dlmalloc::new()));

/// 0: free; 1: held; 2: held, and a thread may be waiting (futex).
static LOCK: AtomicU32 = AtomicU32::new(0);

fn lock() {
    if LOCK
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        lock_contended();
    }
}

#[cold]
fn lock_contended() {
    while LOCK.swap(2, Ordering::Acquire) != 0 {
        futex(libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, 2);
    }
}

fn unlock() {
    if LOCK.swap(0, Ordering::Release) == 2 {
        futex(libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1);
    }
}

/// futex(2) on LOCK: wait while it holds `val`, or wake `val` waiters.
fn futex(op: libc::c_int, val: u32) {
    // SAFETY: a futex operation on a static word; no timeout, no second word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            LOCK.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// Run `f` on the heap with the lock held.
#[inline]
fn with_heap<T>(f: impl FnOnce(&mut dlmalloc::Dlmalloc) -> T) -> T {
    lock();
    // SAFETY: LOCK is held: no other reference to the instance exists until `unlock`.
    let r = f(unsafe { &mut *HEAP.0.get() });
    unlock();
    r
}

/// The allocator of every program that links this crate: dlmalloc behind the lock.
pub struct GatedAlloc;

// SAFETY: every call is forwarded to dlmalloc unchanged, with its lock held.
unsafe impl GlobalAlloc for GatedAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        with_heap(|h| unsafe { h.malloc(l.size(), l.align()) })
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as above.
        with_heap(|h| unsafe { h.calloc(l.size(), l.align()) })
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        with_heap(|h| unsafe { h.free(p, l.size(), l.align()) })
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        with_heap(|h| unsafe { h.realloc(p, l.size(), l.align(), new_size) })
    }
}

/// The allocator's lock held by a cloning thread; [`Closed::open`] in the parent and in the
/// child.
pub(crate) struct Closed(());

/// Take the allocator's lock: no allocation is in flight on any thread from here, and none
/// starts. The caller must not allocate until it opens the gate again.
pub(crate) fn close() -> Closed {
    lock();
    Closed(())
}

impl Closed {
    /// Release the lock. In a clone's child, whose only thread is the one that took it, this
    /// is the release of its own copy (waking nobody: the waiters stayed in the parent).
    pub(crate) fn open(self) {
        unlock();
    }
}

/// Before fork(): take the lock (the forking thread is not inside an allocation).
extern "C" fn close_before_fork() {
    // Released by the handlers below, in the parent and in the child.
    lock();
}

/// After fork(), in the parent: release it.
extern "C" fn open_in_parent() {
    unlock();
}

/// After fork(), in the child: its only thread holds it; nobody waits on this copy.
extern "C" fn reset_in_child() {
    LOCK.store(0, Ordering::Relaxed);
}

extern "C" fn register_handlers() {
    // SAFETY: registers handlers that only take or release the lock.
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

//! A clone3 child must find no allocator lock held. The child is a copy of the one thread
//! that called clone3; a lock another thread held at that moment stays held in the child
//! forever. musl's allocator has one global lock, and its fork() takes it around the fork,
//! but a raw clone3 (clone.rs; namespaces and CLONE_INTO_CGROUP need it) does not. podrun's
//! own runtime is single-threaded at the clone, but a process that embeds this library
//! (the test binaries, which run tests on several threads) is not: there the container's
//! init could hang in its first allocation.
//!
//! So every allocation passes a gate: a count of allocations in flight, and a bit that a
//! cloning thread sets ([`close`]) and then waits until the count is zero. New allocations
//! wait while the bit is set; the parent and the child open the gate again right after the
//! clone. Cost: two uncontended atomic operations per allocation. A fork() child (whose
//! in-flight counts belong to threads it does not have) starts with the gate reset.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

const CLOSED: usize = 1 << (usize::BITS - 1);

/// Allocations in flight, and `CLOSED`.
static STATE: AtomicUsize = AtomicUsize::new(0);

/// The allocator of every program that links this crate: the system allocator behind the
/// gate.
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

// SAFETY: every call is forwarded to the system allocator unchanged; the gate only delays it.
unsafe impl GlobalAlloc for GatedAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        enter();
        // SAFETY: the caller's contract, passed on.
        let p = unsafe { System.alloc(l) };
        leave();
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        enter();
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(l) };
        leave();
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        enter();
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) };
        leave();
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        enter();
        // SAFETY: as above.
        let q = unsafe { System.realloc(p, l, new_size) };
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

/// After fork(): the child's only thread has nothing in flight.
extern "C" fn reset_in_child() {
    STATE.store(0, Ordering::Relaxed);
}

extern "C" fn register_reset() {
    // SAFETY: registers a child handler that only stores to an atomic.
    unsafe { libc::pthread_atfork(None, None, Some(reset_in_child)) };
}

/// Registered at program start, before any fork.
#[used]
#[link_section = ".init_array"]
static REGISTER_RESET: extern "C" fn() = register_reset;

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
}

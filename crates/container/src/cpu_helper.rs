//! A short-lived helper thread placed on another CPU than the caller's, for kernel work that
//! can run beside the caller's own (making a network namespace while the cgroups are made,
//! removing cgroup directories two at a time).
//!
//! Why not `std::thread::spawn`: left to the scheduler, a new thread often starts on the
//! CPU of its busy creator and waits there for the next tick (measured 2.7-3.6 ms here, a
//! 2-CPU VM), which costs more than the work it was meant to overlap. A bare pthread whose
//! attributes name the other CPUs starts there at once (~40 µs).
//!
//! The helper must have ended ([`Helper::join`], or drop) before the caller forks: a fork
//! copies only the calling thread, and must find no lock held by another.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

struct Slot<T> {
    work: Option<Box<dyn FnOnce() -> T + Send>>,
    out: Option<T>,
    done: AtomicBool,
    /// Set (and woken) by the creator once it no longer needs the thread's id (see spawn):
    /// until then the finished thread does not exit.
    may_exit: AtomicU32,
}

pub(crate) struct Helper<T: Send + 'static> {
    thread: libc::pthread_t,
    slot: *mut Slot<T>,
    joined: bool,
    /// The thread runs on [`SHARED_STACK`] (given back once it is joined).
    shared_stack: bool,
}

const STACK_SIZE: usize = 256 * 1024;

/// The stack of one helper at a time (the usual case: one per `create`), in .bss: no mmap of
/// a stack when the thread starts and, above all, no munmap when it is joined, which is a
/// TLB shootdown of the other CPU right before the clone (libc frees a stack it allocated in
/// pthread_join). A second helper at the same time (test binaries, the pod supervisor) gets
/// a stack of its own from libc. Pages are touched only as deep as the thread goes.
#[repr(C, align(4096))]
struct SharedStack(std::cell::UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: the buffer is only handed out to one thread at a time (STACK_TAKEN), never read or
// written through this static.
unsafe impl Sync for SharedStack {}

static SHARED_STACK: SharedStack = SharedStack(std::cell::UnsafeCell::new([0; STACK_SIZE]));
static STACK_TAKEN: AtomicBool = AtomicBool::new(false);

extern "C" fn trampoline<T>(arg: *mut libc::c_void) -> *mut libc::c_void {
    let slot = arg as *mut Slot<T>;
    // SAFETY: `slot` is the Slot the spawning Helper owns and frees only after pthread_join.
    // Until `done` is set, this thread alone touches `work` and `out` (through the raw
    // pointer: the creator only reads the atomics meanwhile).
    unsafe {
        if let Some(work) = (*slot).work.take() {
            (*slot).out = Some(work());
        }
        (*slot).done.store(true, Ordering::Release);
        let may_exit = &(*slot).may_exit;
        while may_exit.load(Ordering::Acquire) == 0 {
            futex(may_exit, libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, 0);
        }
    }
    std::ptr::null_mut()
}

/// futex(2) on `word` (private): FUTEX_WAIT while it holds `val`, or FUTEX_WAKE.
fn futex(word: &AtomicU32, op: libc::c_int, val: u32) {
    // SAFETY: `word` is a live, aligned u32; no timeout, no second word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            val,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

impl<T: Send + 'static> Helper<T> {
    /// Run `work` on a new thread, on another CPU when there is one.
    pub(crate) fn spawn(work: impl FnOnce() -> T + Send + 'static) -> Result<Self> {
        let slot = Box::into_raw(Box::new(Slot {
            work: Some(Box::new(work)),
            out: None,
            done: AtomicBool::new(false),
            may_exit: AtomicU32::new(0),
        }));
        // SAFETY: a zeroed pthread_attr_t is initialised by pthread_attr_init before use and
        // destroyed right after pthread_create; `slot` stays valid until the thread is joined.
        // The shared stack is this thread's alone (STACK_TAKEN) until it is joined: a joined
        // thread runs no more.
        let r = unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            let mut r = libc::pthread_attr_init(&mut attr);
            let mut thread: libc::pthread_t = std::mem::zeroed();
            let shared = STACK_TAKEN
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if r == 0 {
                if shared {
                    libc::pthread_attr_setstack(
                        &mut attr,
                        SHARED_STACK.0.get() as *mut libc::c_void,
                        STACK_SIZE,
                    );
                } else {
                    libc::pthread_attr_setstacksize(&mut attr, STACK_SIZE);
                }
                let cpus = other_cpus();
                #[cfg(target_env = "gnu")]
                if let Some(set) = &cpus {
                    libc::pthread_attr_setaffinity_np(
                        &mut attr,
                        std::mem::size_of::<libc::cpu_set_t>(),
                        set,
                    );
                }
                r = libc::pthread_create(
                    &mut thread,
                    &attr,
                    trampoline::<T>,
                    slot as *mut libc::c_void,
                );
                #[cfg(test)]
                if tests::PAUSE_AFTER_CREATE.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                // musl has no affinity attribute: the new thread is moved right away, while
                // it waits for its first turn (a queued task migrates at once). The thread
                // cannot have exited yet (it waits for `may_exit`): musl's
                // pthread_setaffinity_np of an exited thread would apply to the caller (its
                // id is 0 by then), and the container would inherit that mask.
                #[cfg(not(target_env = "gnu"))]
                if let (0, Some(set)) = (r, &cpus) {
                    libc::pthread_setaffinity_np(
                        thread,
                        std::mem::size_of::<libc::cpu_set_t>(),
                        set,
                    );
                }
                if r == 0 {
                    (*slot).may_exit.store(1, Ordering::Release);
                    futex(
                        &(*slot).may_exit,
                        libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                        1,
                    );
                }
                libc::pthread_attr_destroy(&mut attr);
            }
            if r != 0 && shared {
                STACK_TAKEN.store(false, Ordering::Release);
            }
            (r, thread, shared)
        };
        match r {
            (0, thread, shared_stack) => Ok(Helper {
                thread,
                slot,
                joined: false,
                shared_stack,
            }),
            (e, _, _) => {
                // SAFETY: no thread was started, so the slot is still ours alone.
                drop(unsafe { Box::from_raw(slot) });
                Err(Error::sys(
                    "start a helper thread",
                    nix::errno::Errno::from_raw(e),
                ))
            }
        }
    }

    /// Whether the work is done (the thread may still be ending).
    pub(crate) fn is_finished(&self) -> bool {
        // SAFETY: `done` is atomic and the slot lives until drop.
        unsafe { &*self.slot }.done.load(Ordering::Acquire)
    }

    /// Wait for the thread to end; the work's result.
    pub(crate) fn join(mut self) -> T {
        self.wait();
        // SAFETY: the thread has ended; the slot is ours alone again.
        let out = unsafe { &mut *self.slot }.out.take();
        // With panic=abort a panicking closure ended the process; without a result there is
        // no way here but to fail loudly too.
        out.expect("helper thread returned no result")
    }

    fn wait(&mut self) {
        if self.joined {
            return;
        }
        // The helper's work is short (its caller waits for it with nothing else to do): spin,
        // a bounded while, instead of sleeping in pthread_join. A sleeping caller's CPU goes
        // idle, and waking an idle virtual CPU costs more than the rest of the wait (measured
        // 85 µs from the helper's last step to the caller's next, in a 2-CPU VM).
        let until = std::time::Instant::now() + std::time::Duration::from_millis(2);
        while std::time::Instant::now() < until {
            // SAFETY: a thread we started and have not joined yet; on success it is joined
            // (and must not be joined again).
            if unsafe { libc::pthread_tryjoin_np(self.thread, std::ptr::null_mut()) } == 0 {
                self.joined();
                return;
            }
            std::hint::spin_loop();
        }
        // SAFETY: a thread we started and have not joined yet.
        unsafe { libc::pthread_join(self.thread, std::ptr::null_mut()) };
        self.joined();
    }

    /// The thread has ended: its stack is free again.
    fn joined(&mut self) {
        self.joined = true;
        if self.shared_stack {
            STACK_TAKEN.store(false, Ordering::Release);
        }
    }
}

impl<T: Send + 'static> Drop for Helper<T> {
    fn drop(&mut self) {
        self.wait();
        // SAFETY: the thread has ended; the slot was made by Box::into_raw in spawn and is
        // freed once, here (dropping an unclaimed result with it).
        drop(unsafe { Box::from_raw(self.slot) });
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
    use std::sync::Arc;

    #[test]
    fn runs_the_work_and_returns_its_result() {
        let h = Helper::spawn(|| 6 * 7).unwrap();
        assert_eq!(h.join(), 42);
    }

    /// Two helpers at once never share the stack in .bss (one of them, or neither when a
    /// concurrent test holds it, runs on it), and both work.
    #[test]
    fn helpers_at_the_same_time_each_have_a_stack() {
        let on_shared = || {
            let x = 0u8;
            let at = &x as *const u8 as usize;
            let base = SHARED_STACK.0.get() as usize;
            (base..base + STACK_SIZE).contains(&at)
        };
        let a = Helper::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            on_shared()
        })
        .unwrap();
        let b = Helper::spawn(on_shared).unwrap();
        let (a, b) = (a.join(), b.join());
        assert!(!(a && b), "two threads on one stack");
    }

    #[test]
    fn drop_waits_for_the_work_and_frees_its_result() {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let h = Helper::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            f.store(true, Ordering::SeqCst);
            vec![1u8; 1000]
        })
        .unwrap();
        drop(h);
        assert!(flag.load(Ordering::SeqCst), "drop joined the thread");
    }

    /// Set by the test below: the creator sleeps between creating the thread and pinning
    /// it, so the thread has long finished its work by then.
    pub(super) static PAUSE_AFTER_CREATE: AtomicBool = AtomicBool::new(false);

    #[test]
    fn the_creator_keeps_its_cpus_when_the_work_ends_at_once() {
        fn mask() -> Vec<bool> {
            // SAFETY: as in other_cpus.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
                (0..libc::CPU_SETSIZE as usize)
                    .map(|c| libc::CPU_ISSET(c, &set))
                    .collect()
            }
        }
        let before = mask();
        PAUSE_AFTER_CREATE.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            Helper::spawn(|| ()).unwrap().join();
            assert_eq!(mask(), before, "a helper's pinning landed on its creator");
        }
        PAUSE_AFTER_CREATE.store(false, Ordering::SeqCst);
    }

    #[test]
    fn is_pinned_to_the_other_cpus() {
        fn allowed() -> i32 {
            // SAFETY: as in other_cpus.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
                libc::CPU_COUNT(&set)
            }
        }
        let cpus = allowed();
        let helper = Helper::spawn(allowed).unwrap().join();
        assert_eq!(helper, if cpus > 1 { cpus - 1 } else { cpus });
    }
}

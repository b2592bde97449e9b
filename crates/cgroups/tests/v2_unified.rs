//! The v2 code path, exercised on this hybrid host's cgroup2 mount (/sys/fs/cgroup/unified,
//! hugetlb only): mkdir with subtree_control, cgroup.procs, cgroup.freeze, cgroup.kill,
//! CLONE_INTO_CGROUP through v2_dir_fd, hugetlb limits, rmdir. Controllers that live in v1 here
//! (memory, cpu, pids...) must give clear "not available" errors.

mod common;

use common::*;
use podrun_cgroups::{Cgroup, Layout, Mode};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::Path;

const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn v2_layout() -> Option<Layout> {
    if !Path::new(UNIFIED).join("cgroup.procs").exists() {
        eprintln!("skipped: no cgroup2 mount at {UNIFIED}");
        return None;
    }
    Some(Layout::V2 {
        root: UNIFIED.into(),
    })
}

#[test]
fn v2_lifecycle_freeze_kill() {
    require_root!();
    let Some(layout) = v2_layout() else { return };
    let before = self_cgroup();
    let top = unique("v2life");
    let cg = Cgroup::resolve(&layout, None, &format!("{top}/c")).unwrap();
    let _g = Cleanup(cg.clone());
    assert_eq!(cg.mode(), Mode::V2);
    cg.create().unwrap();
    let leaf = cg.unified_dir().unwrap().to_path_buf();
    assert!(leaf.starts_with(UNIFIED) && leaf.is_dir());
    // hugetlb was enabled down the path so the leaf has its files.
    assert!(read(&leaf.join("cgroup.controllers"))
        .split(' ')
        .any(|c| c == "hugetlb"));
    cg.apply(&res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":8388608}],"unified":{"hugetlb.1GB.max":"0"}}"#))
        .unwrap();
    assert_eq!(read(&leaf.join("hugetlb.2MB.max")), "8388608");
    assert_eq!(read(&leaf.join("hugetlb.1GB.max")), "0");

    let mut a = sleeper();
    let mut b = sleeper();
    cg.add_pid(a.id() as i32).unwrap();
    cg.add_pid(b.id() as i32).unwrap();
    let mut want = vec![a.id() as i32, b.id() as i32];
    want.sort();
    assert_eq!(cg.pids().unwrap(), want);
    let pc = std::fs::read_to_string(format!("/proc/{}/cgroup", a.id())).unwrap();
    assert!(pc.contains(&format!("0::/{top}/c")), "{pc}");

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert_eq!(read(&leaf.join("cgroup.freeze")), "1");
    // Non-fatal signal on a frozen cgroup: stays frozen.
    cg.kill_all(libc::SIGCONT).unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    // SIGKILL goes through cgroup.kill.
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(wait_signal(&mut a), Some(libc::SIGKILL));
    assert_eq!(wait_signal(&mut b), Some(libc::SIGKILL));
    cg.wait_empty(std::time::Duration::from_secs(5)).unwrap();

    let paths = cg.paths();
    cg.destroy().unwrap();
    assert_gone(&paths);
    assert!(
        !Path::new(UNIFIED).join(&top).exists(),
        "created parent left behind"
    );
    assert_eq!(self_cgroup(), before);
}

#[test]
fn v2_kill_all_other_signal_and_destroy_leftovers() {
    require_root!();
    let Some(layout) = v2_layout() else { return };
    let cg = Cgroup::resolve(&layout, Some(&unique("v2sig")), "d").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    let mut a = sleeper();
    let mut b = sleeper();
    cg.add_pid(a.id() as i32).unwrap();
    cg.add_pid(b.id() as i32).unwrap();
    cg.kill_all(libc::SIGTERM).unwrap(); // freeze, signal each, thaw
    assert_eq!(wait_signal(&mut a), Some(libc::SIGTERM));
    assert!(!cg.is_frozen().unwrap());
    // b was also signalled
    assert_eq!(wait_signal(&mut b), Some(libc::SIGTERM));
    let mut c = sleeper();
    cg.add_pid(c.id() as i32).unwrap();
    cg.freeze().unwrap();
    cg.destroy().unwrap(); // frozen leftovers: cgroup.kill works on frozen cgroups
    assert_eq!(wait_signal(&mut c), Some(libc::SIGKILL));
    assert_gone(&cg.paths());
}

#[test]
fn v2_controllers_from_v1_are_reported_missing() {
    require_root!();
    let Some(layout) = v2_layout() else { return };
    let cg = Cgroup::resolve(&layout, Some(&unique("v2miss")), "d").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    for (json, ctrl) in [
        (r#"{"memory":{"limit":1048576}}"#, "\"memory\""),
        (r#"{"cpu":{"shares":512}}"#, "\"cpu\""),
        (r#"{"pids":{"limit":5}}"#, "\"pids\""),
        (r#"{"unified":{"memory.high":"1"}}"#, "\"memory\""),
    ] {
        let e = cg.apply(&res(json)).unwrap_err().to_string();
        assert!(
            e.contains(ctrl) && e.contains("not available"),
            "{json}: {e}"
        );
    }
    let e = podrun_cgroups::OomWatcher::new(&cg)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("memory.events") && e.contains("memory controller"),
        "{e}"
    );
    assert!(cg.oom_kill_count().is_err());
    // Nothing requested from absent controllers: fine.
    cg.apply(&res("{}")).unwrap();
    assert!(cg.stats().unwrap().memory_usage.is_none());
    cg.destroy().unwrap();
    assert_gone(&cg.paths());
}

/// struct clone_args from linux/sched.h (CLONE_ARGS_SIZE_VER2 = 88 bytes).
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
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[test]
fn v2_dir_fd_supports_clone_into_cgroup() {
    require_root!();
    let Some(layout) = v2_layout() else { return };
    let cg = Cgroup::resolve(&layout, Some(&unique("v2clone")), "d").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    let fd = cg.v2_dir_fd().expect("v2 cgroup has a dir fd");
    let prog = CString::new("/bin/sleep").unwrap();
    let a0 = CString::new("sleep").unwrap();
    let a1 = CString::new("300").unwrap();
    let argv = [a0.as_ptr(), a1.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone_args is fully initialised; the child only calls execve/_exit
    // (async-signal-safe) on memory prepared before the call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: see above; never returns.
        unsafe {
            libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    let pid = pid as i32;
    assert_eq!(
        cg.pids().unwrap(),
        vec![pid],
        "child born inside the cgroup"
    );
    cg.destroy().unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    assert_gone(&cg.paths());
}

#[test]
fn hybrid_cgroup_has_no_v2_dir_fd() {
    require_root!();
    let l = podrun_cgroups::detect().unwrap();
    if let Layout::V1 { .. } = l {
        let cg = Cgroup::resolve(&l, Some("/x/y"), "d").unwrap();
        assert!(cg.v2_dir_fd().is_none());
    }
}

/// Runs `script` in a shell placed in `cg`, returns its exit code.
fn run_in(cg: &Cgroup, script: &str) -> i32 {
    let mut child = gated_sh(script);
    cg.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    child.wait().unwrap().code().expect("exit code")
}

#[test]
fn v2_device_rules_are_enforced_by_bpf() {
    require_root!();
    let Some(layout) = v2_layout() else { return };
    let cg = Cgroup::resolve(&layout, Some(&unique("v2dev")), "d").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    // stdout/stderr are /dev/null opened by the parent, so only the named opens are checked.
    // The v1 devices cgroup of the test process allows everything; the BPF program attached to
    // the cgroup2 leaf is checked in addition, so it is what decides here.
    let probe = "head -c1 /dev/zero || exit 10; echo x >/dev/null || exit 11; exit 0";
    assert_eq!(run_in(&cg, probe), 0, "no rules yet: everything allowed");
    cg.apply(&res(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}"#,
    ))
    .unwrap();
    assert_eq!(
        run_in(&cg, probe),
        10,
        "/dev/zero (1:5) must be denied, /dev/null allowed"
    );
    assert_eq!(run_in(&cg, "echo x >/dev/null 2>&1 || exit 11; exit 0"), 0);
    // A second apply replaces the program.
    cg.apply(&res(
        r#"{"devices":[{"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .unwrap();
    assert_eq!(
        run_in(&cg, probe),
        11,
        "now /dev/zero allowed, /dev/null denied"
    );
    cg.destroy().unwrap();
    assert_gone(&cg.paths());
}

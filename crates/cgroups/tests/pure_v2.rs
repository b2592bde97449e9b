//! The library on a pure cgroup v2 host (memory, cpu, pids in cgroup2). This hybrid host skips
//! these; `integration/vm/run` builds this test binary and runs it as root inside its
//! `cgroup_no_v1=all` guest, where every test runs for real (the guest reports
//! `lib-pure-v2` with the pass count).

mod common;

use common::*;
use podrun_cgroups::{detect, Cgroup, Layout, Mode, OomWatcher};
use std::time::Duration;

/// The layout, when this is a pure v2 host with the memory controller; else None (skipped).
fn pure_v2() -> Option<Layout> {
    let l = detect().unwrap();
    match &l {
        Layout::V2 { root }
            if read(&root.join("cgroup.subtree_control"))
                .split_whitespace()
                .any(|c| c == "memory") =>
        {
            Some(l)
        }
        _ => {
            eprintln!(
                "skipped: not a pure cgroup v2 host with memory enabled (run integration/vm/run)"
            );
            None
        }
    }
}

#[test]
fn v2_limits_written_and_stats_read() {
    require_root!();
    let Some(layout) = pure_v2() else { return };
    let cg = Cgroup::resolve(&layout, None, &format!("{}/c", unique("v2res"))).unwrap();
    let _g = Cleanup(cg.clone());
    assert_eq!(cg.mode(), Mode::V2);
    cg.create().unwrap();
    cg.apply(&res(
        r#"{"memory":{"limit":67108864,"reservation":16777216},
            "cpu":{"shares":1024,"quota":25000,"period":100000},
            "pids":{"limit":20}}"#,
    ))
    .unwrap();
    let d = cg.unified_dir().unwrap().to_path_buf();
    assert_eq!(read(&d.join("memory.max")), "67108864");
    assert_eq!(read(&d.join("memory.low")), "16777216");
    assert_eq!(read(&d.join("memory.swap.max")), "0");
    assert_eq!(read(&d.join("memory.oom.group")), "1");
    assert_eq!(read(&d.join("cpu.max")), "25000 100000");
    assert_eq!(read(&d.join("cpu.weight")), "39");
    assert_eq!(read(&d.join("pids.max")), "20");
    let mut child = sleeper();
    cg.add_pid(child.id() as i32).unwrap();
    let st = cg.stats().unwrap();
    assert_eq!(st.memory_limit, Some(67108864));
    assert_eq!(st.pids_limit, Some(20));
    assert_eq!(st.pids_current, Some(1));
    assert!(
        st.memory_usage.is_some() && st.cpu_usage_ns.is_some(),
        "{st:?}"
    );
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(wait_signal(&mut child), Some(libc::SIGKILL));
    let paths = cg.paths();
    cg.destroy().unwrap();
    assert_gone(&paths);
    assert!(
        !d.parent().unwrap().exists(),
        "the parent we made is removed too"
    );
}

#[test]
fn v2_oom_kill_is_counted_and_watched_with_inotify() {
    require_root!();
    let Some(layout) = pure_v2() else { return };
    let pod = Cgroup::resolve(&layout, Some(&unique("v2oom")), "unused").unwrap();
    let _gp = Cleanup(pod.clone());
    pod.create().unwrap();
    let hog = pod.child("hog").unwrap();
    let sib = pod.child("sib").unwrap();
    let _gh = Cleanup(hog.clone());
    let _gs = Cleanup(sib.clone());
    hog.create().unwrap();
    sib.create().unwrap();
    hog.apply(&res(r#"{"memory":{"limit":16777216}}"#)).unwrap();
    sib.apply(&res(r#"{"memory":{"limit":16777216}}"#)).unwrap();
    let mut w = OomWatcher::new(&hog).unwrap();
    assert!(!w.check().unwrap());
    let sibling = Reap(sleeper());
    sib.add_pid(sibling.0.id() as i32).unwrap();
    // With memory.oom.group=1 the whole group goes: the shell and dd.
    let mut child = gated_sh("dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived");
    hog.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    assert_eq!(wait_signal(&mut child), Some(libc::SIGKILL));
    assert!(
        w.wait(Some(Duration::from_secs(10))).unwrap(),
        "the inotify watcher saw no OOM kill"
    );
    assert!(w.last_count() >= 1);
    assert!(hog.oom_kill_count().unwrap() >= 1);
    assert_eq!(sib.oom_kill_count().unwrap(), 0);
    assert!(sib.pids().unwrap().contains(&(sibling.0.id() as i32)));
    let paths = [hog.paths(), sib.paths(), pod.paths()].concat();
    drop(sibling);
    hog.destroy().unwrap();
    sib.destroy().unwrap();
    pod.destroy().unwrap();
    assert_gone(&paths);
}

#[test]
fn v2_freeze_thaw_and_cgroup_kill() {
    require_root!();
    let Some(layout) = pure_v2() else { return };
    let cg = Cgroup::resolve(&layout, Some(&unique("v2frz")), "unused").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    let mut a = sleeper();
    let mut b = sleeper();
    cg.add_pid(a.id() as i32).unwrap();
    cg.add_pid(b.id() as i32).unwrap();
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(wait_signal(&mut a), Some(libc::SIGKILL));
    assert_eq!(wait_signal(&mut b), Some(libc::SIGKILL));
    cg.destroy().unwrap();
    assert_gone(&cg.paths());
}

//! The resource checks of the cgroup v2 VM suite (integration/vm), on this hybrid host's v1
//! controllers: a memory limit without swap (memsw = limit) OOM-kills the container that
//! allocates past it while its sibling survives; a CPU quota holds a busy loop to its share;
//! shares and pids limits are written and enforced; nothing is left after destroy.

mod common;

use common::*;
use podrun_cgroups::Cgroup;
use std::path::Path;
use std::time::{Duration, Instant};

fn keyed(file: &Path, key: &str) -> u64 {
    read(file)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} in {}", file.display()))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn v1_memory_limit_without_swap_oom_kills_only_that_container() {
    require_root!();
    let layout = hybrid();
    let pod = Cgroup::resolve(&layout, Some(&unique("v1oom")), "unused").unwrap();
    let _gp = Cleanup(pod.clone());
    pod.create().unwrap();
    let hog = pod.child("hog").unwrap();
    let sib = pod.child("sibling").unwrap();
    let _gh = Cleanup(hog.clone());
    let _gs = Cleanup(sib.clone());
    hog.create().unwrap();
    sib.create().unwrap();
    hog.apply(&res(r#"{"memory":{"limit":33554432}}"#)).unwrap();
    sib.apply(&res(r#"{"memory":{"limit":67108864}}"#)).unwrap();
    let hm = hog.v1_dir("memory").unwrap();
    assert_eq!(read(&hm.join("memory.limit_in_bytes")), "33554432");
    if hm.join("memory.memsw.limit_in_bytes").exists() {
        // no swap: memory+swap = memory
        assert_eq!(read(&hm.join("memory.memsw.limit_in_bytes")), "33554432");
    }

    let sibling = Reap(sleeper());
    sib.add_pid(sibling.0.id() as i32).unwrap();
    // dd's 96 MiB buffer, filled by the read, is far past the 32 MiB limit.
    let mut child = gated_sh("exec dd if=/dev/zero of=/dev/null bs=96M count=1");
    hog.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    assert_eq!(wait_signal(&mut child), Some(libc::SIGKILL));
    assert!(hog.oom_kill_count().unwrap() >= 1);
    assert_eq!(sib.oom_kill_count().unwrap(), 0);
    assert!(
        sib.pids().unwrap().contains(&(sibling.0.id() as i32)),
        "the sibling must survive"
    );
    let paths = [hog.paths(), sib.paths(), pod.paths()].concat();
    drop(sibling);
    hog.destroy().unwrap();
    sib.destroy().unwrap();
    pod.destroy().unwrap();
    assert_gone(&paths);
}

#[test]
fn v1_cpu_quota_holds_a_busy_loop_to_its_share() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("v1cpu")), "unused").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    // 20% of one CPU: low enough that a loaded 2-core builder still offers it.
    cg.apply(&res(
        r#"{"cpu":{"quota":20000,"period":100000,"shares":512}}"#,
    ))
    .unwrap();
    let cpu = cg.v1_dir("cpu").unwrap();
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "20000");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&cpu.join("cpu.shares")), "512");
    let mut child = gated_sh("while :; do :; done");
    cg.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let _r = Reap(child);
    std::thread::sleep(Duration::from_millis(300));
    let u0 = cg.stats().unwrap().cpu_usage_ns.unwrap();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let u1 = cg.stats().unwrap().cpu_usage_ns.unwrap();
    let wall = t0.elapsed().as_nanos() as f64;
    let share = (u1 - u0) as f64 / wall;
    eprintln!("busy loop used {:.1}% of a CPU (quota 20%)", share * 100.0);
    assert!(
        (0.16..=0.24).contains(&share),
        "busy loop used {:.1}% of a CPU over {:.2} s; quota 20% (+-20%)",
        share * 100.0,
        wall / 1e9
    );
    assert!(keyed(&cpu.join("cpu.stat"), "nr_throttled") >= 1);
    cg.destroy().unwrap();
    assert_gone(&cg.paths());
}

#[test]
fn v1_pids_limit_refuses_forks_past_it() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("v1pids")), "unused").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    cg.apply(&res(r#"{"pids":{"limit":8}}"#)).unwrap();
    let pd = cg.v1_dir("pids").unwrap();
    assert_eq!(read(&pd.join("pids.max")), "8");
    // 20 background sleeps: forks past 8 tasks fail (dash gives up at the first failure).
    let mut child =
        gated_sh("i=0; while [ $i -lt 20 ]; do sleep 300 & i=$((i+1)); done; exec sleep 300");
    cg.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let _r = Reap(child);
    let t0 = Instant::now();
    while keyed(&pd.join("pids.events"), "max") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no fork refused after 10 s (pids.current {})",
            read(&pd.join("pids.current"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cur: u64 = read(&pd.join("pids.current")).parse().unwrap();
    assert!(cur <= 8, "pids.current {cur} > pids.max 8");
    cg.destroy().unwrap();
    assert_gone(&cg.paths());
}

//! Root integration tests on the hybrid host (v1 controllers + cgroup2 with hugetlb only).
//! Every cgroup is nested under the caller's own cgroup; the test process never moves.

mod common;

use common::*;
use podrun_cgroups::{Cgroup, Layout, Mode, OomWatcher};
use std::path::Path;
use std::time::Duration;

/// Guard that destroys the cgroup even when an assertion fails.
#[test]
fn lifecycle_on_hybrid_host() {
    require_root!();
    let before = self_cgroup();
    let layout = hybrid();
    let top = unique("life");
    let cg = Cgroup::resolve(&layout, None, &format!("{top}/c1")).unwrap();
    let _g = Cleanup(cg.clone());
    assert_eq!(cg.mode(), Mode::V1);
    cg.create().unwrap();
    let paths = cg.paths();
    assert!(paths.len() >= 8, "{paths:?}");
    for p in &paths {
        assert!(p.is_dir(), "{}", p.display());
    }
    // Nested under our own memory cgroup, not the root.
    let me = podrun_cgroups::parse_proc_cgroup(&before);
    let mem = cg.v1_dir("memory").unwrap();
    assert!(
        mem.starts_with(
            Path::new("/sys/fs/cgroup/memory").join(me.v1["memory"].trim_start_matches('/'))
        ),
        "{}",
        mem.display()
    );
    // cpuset was seeded from the parent.
    let cpuset = cg.v1_dir("cpuset").unwrap();
    assert!(!read(&cpuset.join("cpuset.cpus")).is_empty());
    assert!(!read(&cpuset.join("cpuset.mems")).is_empty());

    cg.apply(&res(
        r#"{"memory":{"limit":67108864,"reservation":33554432,"swappiness":0},
            "cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0"},
            "pids":{"limit":32},
            "hugepageLimits":[{"pageSize":"2MB","limit":4194304}],
            "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .unwrap();
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(&mem.join("memory.soft_limit_in_bytes")), "33554432");
    let cpu = cg.v1_dir("cpu").unwrap();
    assert_eq!(read(&cpu.join("cpu.shares")), "512");
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&cpuset.join("cpuset.cpus")), "0");
    assert_eq!(read(&cg.v1_dir("pids").unwrap().join("pids.max")), "32");
    assert_eq!(
        read(&cg.unified_dir().unwrap().join("hugetlb.2MB.max")),
        "4194304"
    );
    assert_eq!(
        read(&cg.v1_dir("devices").unwrap().join("devices.list")),
        "c 1:3 rwm"
    );

    let mut child = sleeper();
    let pid = child.id() as i32;
    cg.add_pid(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    let pc = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(pc.contains(&format!("/{top}/c1")), "{pc}");
    let st = cg.stats().unwrap();
    assert_eq!(st.pids_current, Some(1));
    assert_eq!(st.pids_limit, Some(32));
    assert_eq!(st.memory_limit, Some(67108864));
    assert!(
        st.memory_usage.is_some() && st.cpu_usage_ns.is_some(),
        "{st:?}"
    );

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());

    cg.kill_all(libc::SIGTERM).unwrap();
    assert_eq!(wait_signal(&mut child), Some(libc::SIGTERM));
    assert!(cg.pids().unwrap().is_empty());

    cg.destroy().unwrap();
    assert_gone(&paths);
    // The parent we created is gone too, in every hierarchy.
    for p in &paths {
        assert!(
            !p.parent().unwrap().exists(),
            "{} left behind",
            p.parent().unwrap().display()
        );
    }
    cg.destroy().unwrap(); // idempotent
    assert_eq!(self_cgroup(), before, "the test process must never move");
}

#[test]
fn destroy_kills_leftovers_even_when_frozen() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("leftover")), "unused").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    let mut a = sleeper();
    let mut b = sleeper();
    cg.add_pid(a.id() as i32).unwrap();
    cg.add_pid(b.id() as i32).unwrap();
    assert_eq!(cg.pids().unwrap().len(), 2);
    cg.freeze().unwrap();
    // kill_all with a non-fatal signal keeps a frozen cgroup frozen
    cg.kill_all(libc::SIGCONT).unwrap();
    assert!(cg.is_frozen().unwrap());
    let paths = cg.paths();
    cg.destroy().unwrap();
    assert_eq!(wait_signal(&mut a), Some(libc::SIGKILL));
    assert_eq!(wait_signal(&mut b), Some(libc::SIGKILL));
    assert_gone(&paths);
}

#[test]
fn preexisting_parent_is_kept() {
    require_root!();
    let layout = hybrid();
    let pod_name = unique("pod");
    let pod = Cgroup::resolve(&layout, Some(&pod_name), "unused").unwrap();
    let _gp = Cleanup(pod.clone());
    pod.create().unwrap();
    let ctr = Cgroup::resolve(&layout, Some(&format!("{pod_name}/ctr")), "unused").unwrap();
    let _gc = Cleanup(ctr.clone());
    ctr.create().unwrap();
    let mut child = sleeper();
    ctr.add_pid(child.id() as i32).unwrap();
    // The pod sees the container's processes (recursive listing).
    assert_eq!(pod.pids().unwrap(), vec![child.id() as i32]);
    ctr.destroy().unwrap();
    assert_eq!(wait_signal(&mut child), Some(libc::SIGKILL));
    assert_gone(&ctr.paths());
    for p in pod.paths() {
        assert!(p.is_dir(), "pod cgroup {} must survive", p.display());
    }
    pod.destroy().unwrap();
    assert_gone(&pod.paths());
}

#[test]
fn destroy_removes_child_cgroups_made_inside() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("sub")), "unused").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    let mut child = sleeper();
    let mut other = sleeper();
    cg.add_pid(child.id() as i32).unwrap();
    // A process that only ever joined one hierarchy (outside the freezer) is found too.
    std::fs::write(
        cg.v1_dir("pids").unwrap().join("cgroup.procs"),
        other.id().to_string(),
    )
    .unwrap();
    // A container managing its own sub-cgroups (in some hierarchies only).
    for ctrl in ["pids", "freezer"] {
        let sub = cg.v1_dir(ctrl).unwrap().join("inner/deeper");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("cgroup.procs"), child.id().to_string()).unwrap();
    }
    std::fs::create_dir_all(cg.v1_dir("memory").unwrap().join("empty-child")).unwrap();
    let mut want = vec![child.id() as i32, other.id() as i32];
    want.sort();
    assert_eq!(cg.pids().unwrap(), want);
    cg.destroy().unwrap();
    assert_eq!(wait_signal(&mut child), Some(libc::SIGKILL));
    assert_eq!(wait_signal(&mut other), Some(libc::SIGKILL));
    assert_gone(&cg.paths());
}

#[test]
fn oom_kill_is_counted_and_notified() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("oom")), "unused").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    cg.apply(&res(r#"{"memory":{"limit":16777216,"swap":16777216}}"#))
        .unwrap();
    assert_eq!(cg.oom_kill_count().unwrap(), 0);
    let mut w = OomWatcher::new(&cg).unwrap();
    assert!(!w.check().unwrap());
    // tail keeps the whole (newline-free) input in memory: 64M > 16M limit.
    let mut child = gated_sh("head -c 64M /dev/zero | tail");
    cg.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the pipeline should have failed: {status:?}"
    );
    assert!(cg.oom_kill_count().unwrap() >= 1);
    assert!(
        w.wait(Some(Duration::from_secs(5))).unwrap(),
        "watcher saw no OOM kill"
    );
    assert!(w.last_count() >= 1);
    cg.destroy().unwrap();
    assert_gone(&cg.paths());
}

#[test]
fn limit_below_usage_is_a_clear_error() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("busy")), "unused").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    // Anonymous memory (no swap on the VM) that cannot be reclaimed.
    let mut child =
        gated_sh("x=$(head -c 8000000 /dev/zero | tr '\\0' a); echo ready > /dev/null; read _y");
    cg.add_pid(child.id() as i32).unwrap();
    {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    let mem = cg.v1_dir("memory").unwrap().to_path_buf();
    for _ in 0..500 {
        let u: u64 = read(&mem.join("memory.usage_in_bytes")).parse().unwrap();
        if u > 8_000_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = cg
        .apply(&res(r#"{"memory":{"limit":1048576}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("memory.limit_in_bytes") && e.contains("write \"1048576\""),
        "{e}"
    );
    assert!(e.contains("below the current usage"), "{e}");
    drop(child.stdin.take());
    cg.destroy().unwrap();
    let _ = child.wait();
    assert_gone(&cg.paths());
}

#[test]
fn clear_errors_for_bad_requests() {
    require_root!();
    let layout = hybrid();
    let e = Cgroup::resolve(&layout, Some("system.slice:podrun:x"), "d")
        .unwrap_err()
        .to_string();
    assert!(e.contains("systemd"), "{e}");

    // A v1-only layout (no cgroup2): hugetlb requested -> names the controller.
    let Layout::V1 { mounts, roots, .. } = layout.clone() else {
        unreachable!()
    };
    let v1only = Layout::V1 {
        mounts,
        unified: None,
        roots,
    };
    let cg = Cgroup::resolve(&v1only, Some(&unique("nohuge")), "d").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    let e = cg
        .apply(&res(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":2097152}]}"#,
        ))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"hugetlb\"") && e.contains("hugepageLimits"),
        "{e}"
    );
    // Controllers not mounted here (net_cls) but not requested: fine.
    cg.apply(&res(r#"{"memory":{"limit":1073741824}}"#))
        .unwrap();
    let e = cg
        .apply(&res(r#"{"network":{"classID":1}}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("net_cls"), "{e}");
    // cpuset outside the parent's set: kernel refusal with the file named.
    let e = cg
        .apply(&res(r#"{"cpu":{"cpus":"63"}}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cpuset.cpus") && e.contains("\"63\""), "{e}");
    cg.destroy().unwrap();
    assert_gone(&cg.paths());
}

#[test]
fn state_json_roundtrip_keeps_working() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("serde")), "d").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    let json = serde_json::to_string(&cg).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cg);
    let mut child = sleeper();
    back.add_pid(child.id() as i32).unwrap();
    back.destroy().unwrap();
    assert_eq!(wait_signal(&mut child), Some(libc::SIGKILL));
    assert_gone(&cg.paths());
}

#[test]
fn pod_child_cgroups() {
    require_root!();
    let layout = hybrid();
    let pod = Cgroup::resolve(&layout, None, &unique("podchild")).unwrap();
    let _gp = Cleanup(pod.clone());
    pod.create().unwrap();
    pod.apply(&res(
        r#"{"memory":{"limit":536870912},"pids":{"limit":100}}"#,
    ))
    .unwrap();
    let a = pod.child("a").unwrap();
    let b = pod.child("b").unwrap();
    a.create().unwrap();
    b.create().unwrap();
    a.apply(&res(r#"{"memory":{"limit":268435456}}"#)).unwrap();
    let mut ca = sleeper();
    let mut cb = sleeper();
    a.add_pid(ca.id() as i32).unwrap();
    b.add_pid(cb.id() as i32).unwrap();
    assert_eq!(pod.stats().unwrap().pids_current, Some(2));
    a.destroy().unwrap();
    assert_eq!(wait_signal(&mut ca), Some(libc::SIGKILL));
    assert_gone(&a.paths());
    assert!(b.paths().iter().all(|p| p.is_dir()));
    // Destroying the pod takes the remaining container with it.
    pod.destroy().unwrap();
    assert_eq!(wait_signal(&mut cb), Some(libc::SIGKILL));
    assert_gone(&b.paths());
    assert_gone(&pod.paths());
}

#[test]
fn failed_create_leaves_nothing_behind() {
    require_root!();
    let layout = hybrid();
    let pod = Cgroup::resolve(&layout, None, &unique("halfway")).unwrap();
    let _gp = Cleanup(pod.clone());
    pod.create().unwrap();
    // Forbid sub-cgroups in the cgroup2 part only: the v1 mkdirs succeed, the unified one
    // (made last) fails, and everything made before must be removed again.
    let u = pod.unified_dir().unwrap();
    std::fs::write(u.join("cgroup.max.depth"), "0").unwrap();
    let c = pod.child("c").unwrap();
    let e = c.create().unwrap_err().to_string();
    assert!(
        e.contains("mkdir") && e.contains(&*u.join("c").to_string_lossy()),
        "{e}"
    );
    assert_gone(&c.paths());
    for p in pod.paths() {
        assert!(
            p.is_dir(),
            "the pre-existing parent {} must stay",
            p.display()
        );
    }
    pod.destroy().unwrap();
    assert_gone(&pod.paths());
}

#[test]
fn destroy_stops_a_forking_workload() {
    require_root!();
    let layout = hybrid();
    let cg = Cgroup::resolve(&layout, Some(&unique("forks")), "d").unwrap();
    let _g = Cleanup(cg.clone());
    cg.create().unwrap();
    cg.apply(&res(r#"{"pids":{"limit":64}}"#)).unwrap();
    let mut child = gated_sh("while true; do sleep 100 & done");
    cg.add_pid(child.id() as i32).unwrap();
    release(&mut child);
    for _ in 0..500 {
        if cg.pids().unwrap().len() >= 32 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cg.pids().unwrap().len() >= 32, "workload did not fork");
    cg.destroy().unwrap();
    // The shell may already have given up on its own when fork hit pids.max (dash exits
    // on a failed `&`); what matters is that nothing is left running and the cgroup is gone.
    let sig = wait_signal(&mut child);
    assert!(
        sig.is_none() || sig == Some(libc::SIGKILL),
        "unexpected end: {sig:?}"
    );
    assert!(cg.pids().map(|p| p.is_empty()).unwrap_or(true));
    assert_gone(&cg.paths());
}

/// Containers come and go under one shared parent: a destroy removes the parent it finds
/// empty while a create in another thread is between its mkdirs (or reading the parent's
/// cpuset, which then reports ENODEV). Every create must still succeed. Each round starts
/// the threads together on a new parent.
#[test]
fn creates_survive_a_shared_parent_removed_meanwhile() {
    require_root!();
    let layout = hybrid();
    let top = unique("shared");
    let threads = 3;
    let start = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (layout, top, start) = (layout.clone(), top.clone(), start.clone());
            std::thread::spawn(move || {
                // Errors are collected, not raised: every thread must reach every barrier.
                let mut errors = Vec::new();
                for i in 0..150 {
                    let cg =
                        Cgroup::resolve(&layout, Some(&format!("{top}-{i}/w{t}")), "d").unwrap();
                    let _g = Cleanup(cg.clone());
                    start.wait();
                    if let Err(e) = cg.create().and_then(|()| cg.destroy()) {
                        errors.push(format!("{top}-{i}/w{t}: {e}"));
                    }
                }
                errors
            })
        })
        .collect();
    let errors: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

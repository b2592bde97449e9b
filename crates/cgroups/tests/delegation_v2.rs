//! cgroup v2 delegation, exercised on this hybrid host's cgroup2 mount (/sys/fs/cgroup/unified,
//! where hugetlb is a domain controller): podrun started from a non-root cgroup that already
//! holds processes (a CI job's cgroup) moves them to `<job>/podrun-leaf` when a limit needs a
//! controller the job cannot enable (not before), enables the controllers and nests containers
//! beside the leaf; when the move is impossible the error says what to do. The process that "is podrun" is this test binary re-executed (a helper test),
//! so the test harness itself never changes cgroup.

mod common;

use common::*;
use podrun_cgroups::{Cgroup, Layout, DELEGATION_LEAF};
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIFIED: &str = "/sys/fs/cgroup/unified";
const ENV_JOB: &str = "PDCG_DELEG_JOB";
const ENV_MODE: &str = "PDCG_DELEG_MODE";

fn have_unified_hugetlb() -> bool {
    std::fs::read_to_string(Path::new(UNIFIED).join("cgroup.subtree_control"))
        .is_ok_and(|s| s.split_whitespace().any(|c| c == "hugetlb"))
}

/// Kills whatever is left in the job tree and removes it, deepest first (also on failure).
struct JobCleanup(PathBuf);
impl Drop for JobCleanup {
    fn drop(&mut self) {
        let mut dirs = vec![];
        let mut stack = vec![self.0.clone()];
        while let Some(d) = stack.pop() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
            dirs.push(d);
        }
        for d in &dirs {
            if let Ok(p) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for pid in p.split_whitespace().filter_map(|s| s.parse::<i32>().ok()) {
                    // SAFETY: kill(2) with a pid read from the job's own cgroup.procs.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for d in dirs.iter().rev() {
            for _ in 0..100 {
                match std::fs::remove_dir(d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Run the helper below as a separate process started inside `job`.
fn run_helper(job: &Path, mode: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "delegation_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_JOB, job)
        .env(ENV_MODE, mode)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The helper really ran (a filter matching nothing would also exit 0).
    let ran = text.contains("test delegation_helper ... ok");
    (out.status.success() && ran, text)
}

fn procs(dir: &Path) -> Vec<String> {
    read(&dir.join("cgroup.procs"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn v2_delegation_moves_the_job_to_a_leaf_and_nests_beside_it() {
    require_root!();
    if !have_unified_hugetlb() {
        eprintln!("skipped: no hugetlb in {UNIFIED}/cgroup.subtree_control");
        return;
    }
    let job = Path::new(UNIFIED).join(unique("deleg"));
    std::fs::create_dir(&job).unwrap();
    let _g = JobCleanup(job.clone());
    let other = Reap(sleeper());
    let other_pid = other.0.id().to_string();
    std::fs::write(job.join("cgroup.procs"), &other_pid).unwrap();
    assert!(!read(&job.join("cgroup.subtree_control")).contains("hugetlb"));

    let (ok, out) = run_helper(&job, "ok");
    assert!(ok, "helper failed:\n{out}");
    // The job's other process was moved too, and the job is now a pure parent.
    let leaf = job.join(DELEGATION_LEAF);
    assert!(procs(&leaf).contains(&other_pid), "{:?}", procs(&leaf));
    assert!(procs(&job).is_empty(), "{:?}", procs(&job));
    assert!(read(&job.join("cgroup.subtree_control")).contains("hugetlb"));
    // Containers the helper made are gone; only the leaf is left (it still holds the job).
    assert!(!job.join("c1").exists() && !job.join("c2").exists());
}

#[test]
fn v2_delegation_failure_says_what_to_do() {
    require_root!();
    if !have_unified_hugetlb() {
        eprintln!("skipped: no hugetlb in {UNIFIED}/cgroup.subtree_control");
        return;
    }
    let job = Path::new(UNIFIED).join(unique("delegfail"));
    std::fs::create_dir(&job).unwrap();
    let _g = JobCleanup(job.clone());
    let other = Reap(sleeper());
    std::fs::write(job.join("cgroup.procs"), other.0.id().to_string()).unwrap();
    // One sub-cgroup only (the container's): the move to a leaf cannot happen.
    std::fs::write(job.join("cgroup.max.descendants"), "1").unwrap();

    let (ok, out) = run_helper(&job, "fail");
    assert!(ok, "helper failed:\n{out}");
    assert!(procs(&job).contains(&other.0.id().to_string()));
    assert!(!job.join(DELEGATION_LEAF).exists());
}

/// The "podrun" side, run by the tests above in a child process (ignored in normal runs).
#[test]
#[ignore]
fn delegation_helper() {
    let (Some(job), Some(mode)) = (std::env::var_os(ENV_JOB), std::env::var(ENV_MODE).ok()) else {
        return;
    };
    let job = PathBuf::from(job);
    // Join the job's cgroup: from here on this process is "podrun started inside a CI job".
    std::fs::write(job.join("cgroup.procs"), "0").unwrap();
    let layout = Layout::V2 {
        root: UNIFIED.into(),
    };
    let cg = Cgroup::resolve(&layout, None, "c1").unwrap();
    assert_eq!(cg.unified_dir().unwrap(), job.join("c1"));
    // create() alone moves nothing: a request without limits needs no controller.
    cg.create().unwrap();
    assert!(
        !self_cgroup().contains(DELEGATION_LEAF),
        "{}",
        self_cgroup()
    );
    assert!(!job.join(DELEGATION_LEAF).exists());
    cg.apply(&serde_json::from_str(r#"{"devices":[]}"#).unwrap())
        .unwrap();
    assert!(!job.join(DELEGATION_LEAF).exists());
    let hugetlb =
        serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#).unwrap();
    if mode == "fail" {
        let e = cg.apply(&hugetlb).unwrap_err().to_string();
        for needle in [
            "holds processes",
            "no internal processes",
            "mkdir",
            &format!("{}/{DELEGATION_LEAF}", job.display()),
            "cgroup.subtree_control",
            "absolute linux.cgroupsPath",
        ] {
            assert!(e.contains(needle), "{needle:?} not in: {e}");
        }
        cg.destroy().unwrap();
        assert!(!job.join("c1").exists());
        return;
    }
    // A limit needs hugetlb, which the busy job cannot enable: the job moves to the leaf.
    cg.apply(&hugetlb).unwrap();
    assert!(
        self_cgroup().contains(&format!("/{DELEGATION_LEAF}")),
        "{}",
        self_cgroup()
    );
    assert_eq!(read(&job.join("c1/hugetlb.2MB.max")), "4194304");
    // A second container resolved from inside the leaf nests beside it, not below it.
    let cg2 = Cgroup::resolve(&layout, None, "c2").unwrap();
    assert_eq!(cg2.unified_dir().unwrap(), job.join("c2"));
    cg2.create().unwrap();
    cg2.destroy().unwrap();
    cg.destroy().unwrap();
    assert!(!job.join("c1").exists() && !job.join("c2").exists());
    assert!(job.exists(), "the job's cgroup is not ours to remove");
}

//! Leftovers of earlier test processes that were killed (a timeout, ^C)
//! before their fixtures' `Drop` could run: namespace pins and overlays
//! still mounted under their temp dirs, and their cgroups. Fixtures call
//! [`sweep`] when they start, so a killed run never leaks into the host for
//! good. Only what belongs to a process that no longer exists is touched: the
//! owner's pid is in every name the fixtures create (`<pid>-...` cgroups, and
//! a `state/<pid>-...` entry or an `owner.pid` file in each temp dir).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn leading_pid(name: &str) -> Option<i32> {
    name.split('-').next()?.parse().ok()
}

/// The pid that owns temp dir `d`, if it says.
fn owner_of(d: &Path) -> Option<i32> {
    if let Ok(s) = std::fs::read_to_string(d.join("owner.pid")) {
        return s.trim().parse().ok();
    }
    std::fs::read_dir(d.join("state"))
        .ok()?
        .flatten()
        .find_map(|e| leading_pid(&e.file_name().to_string_lossy()))
}

/// Records the calling process as the owner of temp dir `d`.
pub fn mark_owner(d: &Path) {
    let _ = std::fs::write(d.join("owner.pid"), std::process::id().to_string());
}

fn umount_all_under(d: &Path) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let pfx = d.to_string_lossy().to_string();
    let mut mps: Vec<String> = mi
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(podrun_container::mounts::unescape_mountinfo)
        .filter(|m| *m == pfx || m.starts_with(&format!("{pfx}/")))
        .collect();
    mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mps {
        let c = std::ffi::CString::new(m).unwrap();
        // SAFETY: a valid NUL-terminated path; a lazy unmount of a dead test's mount.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn remove_cgroup_tree(d: &Path) {
    let mut dirs = vec![d.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for e in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            }
        }
        i += 1;
    }
    for c in dirs.iter().rev() {
        let procs = std::fs::read_to_string(c.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) of a process left in a dead test's cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for _ in 0..100 {
            if std::fs::remove_dir(c).is_ok() || !c.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// `<pid>-...` cgroups of dead pids below every `podrun-pods-test` dir.
fn sweep_cgroups() {
    let mut stack: Vec<(PathBuf, u32)> = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((d, depth)) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name() == "podrun-pods-test" {
                for c in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                    let n = c.file_name().to_string_lossy().to_string();
                    if leading_pid(&n).is_some_and(|pid| !pid_alive(pid)) {
                        remove_cgroup_tree(&c.path());
                    }
                }
            } else if depth < 6 {
                stack.push((p, depth + 1));
            }
        }
    }
}

/// Removes what killed test processes left: temp dirs named `<prefix>*`
/// whose owner is gone (mounts first), and their cgroups.
pub fn sweep(prefixes: &[&str]) {
    for e in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().to_string();
        if !prefixes.iter().any(|p| n.starts_with(p)) {
            continue;
        }
        let d = e.path();
        if owner_of(&d).is_some_and(|pid| !pid_alive(pid)) {
            umount_all_under(&d);
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    sweep_cgroups();
}

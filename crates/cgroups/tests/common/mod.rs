//! Helpers shared by the root integration tests (run on the hybrid test VM).
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skip (return early) when not root: these tests need cgroupfs write access.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// A unique top-level name so parallel tests (and other engineers' tests) never collide.
pub fn unique(tag: &str) -> String {
    format!("pdcg-{tag}-{}", std::process::id())
}

pub fn self_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup").unwrap()
}

pub fn sleeper() -> Child {
    Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("spawn sleep")
}

/// A shell that waits for one line on stdin, then runs `script`.
pub fn gated_sh(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read _go; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

pub fn release(child: &mut Child) {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
}

/// Wait (bounded) for the child and return the signal that killed it, if any.
pub fn wait_signal(child: &mut Child) -> Option<i32> {
    for _ in 0..1000 {
        if let Some(st) = child.try_wait().unwrap() {
            return st.signal();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("child {} did not exit in 10s", child.id());
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Kill and reap a child (cleanup on the failure paths of a test).
pub struct Reap(pub Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// OCI `linux.resources` from JSON.
pub fn res(json: &str) -> oci_spec::runtime::LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// Destroys the cgroup when the test ends, whatever happened.
pub struct Cleanup(pub podrun_cgroups::Cgroup);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.destroy();
    }
}

pub fn assert_gone(paths: &[std::path::PathBuf]) {
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

/// The host layout, asserted hybrid (v1 controllers + cgroup2).
pub fn hybrid() -> podrun_cgroups::Layout {
    let l = podrun_cgroups::detect().unwrap();
    assert!(
        l.is_hybrid(),
        "these tests expect the hybrid test VM: {l:?}"
    );
    l
}

//! The engine used as a library, as the pod supervisor will: `Runtime::in_process`, a
//! container whose stdio goes to descriptors the caller chose, reaped by the caller.
//! Needs root (skipped otherwise).

use podrun_container::{CreateOptions, Runtime};
use std::io::Read;
use std::os::fd::AsRawFd;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn bundle(args: &[&str]) -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("podrun-lib-")
        .tempdir()
        .unwrap();
    let root = t.path().join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    let mut spec = serde_json::to_value(podrun_container::spec::default_spec(false)).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(args);
    spec["linux"]["cgroupsPath"] = format!("podrun-lib-test/{}", std::process::id()).into();
    std::fs::write(
        t.path().join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    t
}

#[test]
fn run_detached_with_caller_stdio_and_reap() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let b = bundle(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let state = tempfile::tempdir().unwrap();
    let rt = Runtime::in_process(state.path());
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let o = CreateOptions {
        id: "lib1".into(),
        bundle: b.path().to_path_buf(),
        stdio: Some([devnull.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]),
        ..Default::default()
    };
    let pid = rt.run_detached(&o).expect("run_detached");
    drop(out_w);
    drop(err_w);
    let mut out = String::new();
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    let mut err = String::new();
    std::fs::File::from(err_r).read_to_string(&mut err).unwrap();
    assert_eq!(out, "out\n");
    assert_eq!(err, "err\n");
    // The init is our child: we reap it and see its real exit status.
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap() {
        nix::sys::wait::WaitStatus::Exited(_, code) => assert_eq!(code, 7),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(rt.state("lib1").unwrap().status, "stopped");
    rt.delete("lib1", false).unwrap();
    assert!(!state.path().join("lib1").exists(), "state left behind");
    let leftovers: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/pids")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() == "podrun-lib-test")
        .map(|e| e.path())
        .collect();
    for l in &leftovers {
        assert_eq!(
            std::fs::read_dir(l)
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_dir())
                .count(),
            0,
            "cgroup left in {}",
            l.display()
        );
        let _ = std::fs::remove_dir(l);
    }
}

//! Root tests of the supervisor: each pod runs `run_pod` in a forked child
//! (as the CLI will), made PR_SET_CHILD_SUBREAPER; the test reads status.json.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use podrun_pod::crilog::{container_log_path, parse_line};
use podrun_pod::launch::ImageProcess;
use podrun_pod::supervisor::{
    read_status, request_stop, run_pod, ContainerImage, PodDirs, SupervisorOptions,
};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn rootfs(dir: &Path) -> PathBuf {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "data"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    // A hard link, not a copy: a copy holds a writable fd that a parallel
    // test's fork could inherit, and exec would then fail with ETXTBSY.
    if std::fs::hard_link("/bin/busybox", dir.join("bin/busybox")).is_err() {
        std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    }
    for a in [
        "sh", "cat", "echo", "sleep", "head", "tr", "ps", "grep", "seq",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    dir.to_path_buf()
}

struct TestPod {
    tmp: tempfile::TempDir,
    uid: String,
    dirs: PodDirs,
    cg: String,
}

fn setup(tag: &str) -> TestPod {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("podrun-sup-{tag}-"))
        .tempdir()
        .unwrap();
    let uid = format!(
        "{tag}-{}-{}",
        std::process::id(),
        tmp.path().file_name().unwrap().to_string_lossy()
    );
    let dirs = PodDirs {
        pod_dir: tmp.path().join("pod"),
        state_root: tmp.path().join("state"),
        log_root: tmp.path().join("logs"),
    };
    TestPod {
        cg: format!("podrun-suptest-{uid}"),
        tmp,
        uid,
        dirs,
    }
}

/// Forks a child that runs the pod; returns its pid.
fn spawn_pod(t: &TestPod, pod: &Pod) -> i32 {
    let mut opts = SupervisorOptions::new(t.cg.clone());
    opts.backoff_scale = 0.01; // 10 s initial backoff -> 100 ms
    spawn_pod_with(t, pod, opts)
}

fn spawn_pod_with(t: &TestPod, pod: &Pod, opts: SupervisorOptions) -> i32 {
    let names: Vec<String> = {
        let s = pod.spec.as_ref().unwrap();
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .map(|c| c.name.clone())
            .collect()
    };
    let rf = rootfs(&t.tmp.path().join("rootfs"));
    let images: HashMap<String, ContainerImage> = names
        .into_iter()
        .map(|n| {
            (
                n,
                ContainerImage {
                    rootfs: rf.clone(),
                    process: ImageProcess::default(),
                    image_id: String::new(),
                },
            )
        })
        .collect();
    // SAFETY: the child only runs the supervisor (single-threaded) and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: plain prctl in the child.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let code = match run_pod(pod, &t.dirs, &images, &opts) {
            Ok(_) => 0,
            Err(_) => 1,
        };
        // SAFETY: leave the forked child without running the harness.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn wait_child(pid: i32, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        let mut st = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            return libc::WEXITSTATUS(st);
        }
        if Instant::now() > deadline {
            // SAFETY: killing our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("supervisor did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn assert_clean(t: &TestPod) {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = t.tmp.path().to_string_lossy().to_string();
    let left: Vec<&str> = mi
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
    for line in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
    {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let base = if ctrls.is_empty() {
            PathBuf::from("/sys/fs/cgroup/unified")
        } else {
            PathBuf::from("/sys/fs/cgroup")
                .join(ctrls.split(',').next().unwrap().trim_start_matches("name="))
        };
        let p = base.join(path.trim_start_matches('/')).join(&t.cg);
        assert!(!p.exists(), "cgroup left: {}", p.display());
    }
    assert!(!t.dirs.pod_dir.join("ns").exists());
    assert!(
        std::fs::read_dir(&t.dirs.state_root)
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "OCI state left"
    );
}

fn log_lines(t: &TestPod, pod: &str, c: &str, n: u32) -> Vec<String> {
    let p = container_log_path(&t.dirs.log_root, "default", pod, &t.uid, c, n);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| String::from_utf8(parse_line(l.as_bytes()).unwrap().content).unwrap())
        .collect()
}

fn pod(t: &TestPod, name: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": t.uid},
        "spec": spec,
    }))
    .unwrap()
}

#[test]
fn init_containers_run_in_order_then_app_succeeds() {
    if !is_root() {
        return;
    }
    let t = setup("init");
    let p = pod(
        &t,
        "inits",
        serde_json::json!({
            "restartPolicy": "Never",
            "volumes": [{"name": "v", "emptyDir": {}}],
            "initContainers": [
                {"name": "i1", "image": "busybox", "command": ["sh", "-c", "echo one > /data/order"],
                 "volumeMounts": [{"name": "v", "mountPath": "/data"}]},
                {"name": "i2", "image": "busybox", "command": ["sh", "-c", "echo two >> /data/order"],
                 "volumeMounts": [{"name": "v", "mountPath": "/data"}]}
            ],
            "containers": [
                {"name": "app", "image": "busybox", "command": ["sh", "-c", "cat /data/order; echo err >&2"],
                 "volumeMounts": [{"name": "v", "mountPath": "/data"}]}
            ]
        }),
    );
    let pid = spawn_pod(&t, &p);
    assert_eq!(wait_child(pid, Duration::from_secs(60)), 0);
    let st = read_status(&t.dirs.pod_dir).unwrap();
    assert_eq!(phase(&st), "Succeeded", "{:#?}", st.status);
    let mut lines = log_lines(&t, "inits", "app", 0);
    lines.sort();
    assert_eq!(lines, vec!["err", "one", "two"]);
    assert_clean(&t);
}

#[test]
fn never_exit_3_is_failed_with_exit_code() {
    if !is_root() {
        return;
    }
    let t = setup("fail");
    let p = pod(
        &t,
        "failer",
        serde_json::json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 3"]}]
        }),
    );
    let pid = spawn_pod(&t, &p);
    assert_eq!(wait_child(pid, Duration::from_secs(60)), 0);
    let st = read_status(&t.dirs.pod_dir).unwrap();
    assert_eq!(phase(&st), "Failed");
    let cs = &st
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let term = cs
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("terminated");
    assert_eq!(term.exit_code, 3, "{term:?}");
    assert_eq!(term.reason.as_deref(), Some("Error"));
    assert_clean(&t);
}

#[test]
fn stop_request_terminates_running_pod() {
    if !is_root() {
        return;
    }
    let t = setup("stop");
    let p = pod(
        &t,
        "sleeper",
        serde_json::json!({
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {"name": "a", "image": "busybox", "command": ["sleep", "1000"]},
                {"name": "b", "image": "busybox", "command": ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.1; done"]}
            ]
        }),
    );
    let pid = spawn_pod(&t, &p);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(st) = read_status(&t.dirs.pod_dir) {
            if phase(&st) == "Running" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "pod never Running");
        std::thread::sleep(Duration::from_millis(20));
    }
    request_stop(&t.dirs.pod_dir).unwrap();
    assert_eq!(wait_child(pid, Duration::from_secs(30)), 0);
    let st = read_status(&t.dirs.pod_dir).unwrap();
    for cs in st
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()
    {
        assert!(cs.state.as_ref().unwrap().terminated.is_some(), "{cs:?}");
    }
    let lines = log_lines(&t, "sleeper", "b", 0);
    assert_eq!(lines.first().map(String::as_str), Some("up"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "bye"),
        "SIGTERM trap did not run: {lines:?}"
    );
    assert_clean(&t);
}

#[test]
fn on_failure_restarts_with_backoff_then_succeeds() {
    if !is_root() {
        return;
    }
    let t = setup("restart");
    let p = pod(
        &t,
        "flaky",
        serde_json::json!({
            "restartPolicy": "OnFailure",
            "volumes": [{"name": "v", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "if [ -f /data/ran ]; then echo second; exit 0; fi; touch /data/ran; echo first; exit 1"],
                "volumeMounts": [{"name": "v", "mountPath": "/data"}]}]
        }),
    );
    let pid = spawn_pod(&t, &p);
    assert_eq!(wait_child(pid, Duration::from_secs(60)), 0);
    let st = read_status(&t.dirs.pod_dir).unwrap();
    assert_eq!(phase(&st), "Succeeded", "{:#?}", st.status);
    let cs = &st
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(cs.restart_count, 1);
    let last = cs
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("last terminated");
    assert_eq!(last.exit_code, 1);
    assert_eq!(log_lines(&t, "flaky", "c", 0), vec!["first"]);
    assert_eq!(log_lines(&t, "flaky", "c", 1), vec!["second"]);
    assert_clean(&t);
}

#[test]
fn memory_limit_exceeded_is_oomkilled() {
    if !is_root() {
        return;
    }
    let t = setup("oom");
    let p = pod(
        &t,
        "hog",
        serde_json::json!({
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox",
                "command": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
                "resources": {"limits": {"memory": "32Mi"}}}]
        }),
    );
    let pid = spawn_pod(&t, &p);
    assert_eq!(wait_child(pid, Duration::from_secs(60)), 0);
    let st = read_status(&t.dirs.pod_dir).unwrap();
    let cs = &st
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let term = cs
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("terminated");
    assert_eq!(term.reason.as_deref(), Some("OOMKilled"), "{term:?}");
    assert_eq!(phase(&st), "Failed");
    assert_clean(&t);
}

#[test]
fn shared_process_namespace_sees_other_containers() {
    if !is_root() {
        return;
    }
    let t = setup("pidns");
    let p = pod(
        &t,
        "shared",
        serde_json::json!({
            "shareProcessNamespace": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "a", "image": "busybox", "command": ["sleep", "1000"]},
                {"name": "b", "image": "busybox", "command": ["sh", "-c",
                    "for i in $(seq 100); do if ps | grep -v grep | grep -q 'sleep 1000'; then exit 0; fi; sleep 0.1; done; exit 1"]}
            ]
        }),
    );
    let pid = spawn_pod(&t, &p);
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        let st = read_status(&t.dirs.pod_dir).ok();
        let b = st
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|v| v.iter().find(|c| c.name == "b").cloned())
            .and_then(|c| c.state)
            .and_then(|s| s.terminated);
        if let Some(term) = b {
            break term.exit_code;
        }
        assert!(Instant::now() < deadline, "b never finished");
        std::thread::sleep(Duration::from_millis(20));
    };
    request_stop(&t.dirs.pod_dir).unwrap();
    assert_eq!(wait_child(pid, Duration::from_secs(30)), 0);
    assert_eq!(
        code, 0,
        "b did not see a's process in the shared pid namespace"
    );
    assert_clean(&t);
}

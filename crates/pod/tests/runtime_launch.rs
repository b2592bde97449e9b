//! Root tests of launch.rs: containers of a pod started in-process through
//! `podrun-container`, as the supervisor does: a shared netns and emptyDir,
//! securityContext (identity, groups, capabilities, no_new_privs, privileged,
//! read-only root, runAsNonRoot), volumes (Memory emptyDir, hostPath types,
//! subPath), sysctls and hostUsers=false. Nothing is left behind.
//!
//! `harness = false` (see Cargo.toml): the container engine forks from the
//! calling process, and a fork while another thread (libtest's main thread
//! printing a result, say) holds the allocator lock deadlocks the child. So
//! this file has its own single-threaded `main`, which runs the tests in
//! order and takes name filters and `--skip NAME` like libtest.

#[path = "common/stale.rs"]
mod stale;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use podrun_pod::crilog::{container_log_path, parse_line};
use podrun_pod::launch::{
    start_container, write_bundle, write_pod_files, ImageProcess, LaunchContext,
};
use podrun_pod::sandbox::{Sandbox, SandboxConfig};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.to_path_buf();
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "www", "data"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "httpd", "wget", "cat", "seq", "sleep", "hostname"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(root.join("www/index.html"), "hello from httpd\n").unwrap();
    root
}

fn mounted_under(dir: &Path) -> Vec<String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy().to_string();
    mi.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .map(String::from)
        .collect()
}

/// Every `<controller mount>/<our cgroup>/<rel>` that exists.
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
    {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let base = if ctrls.is_empty() {
            PathBuf::from("/sys/fs/cgroup/unified")
        } else {
            let c = ctrls.split(',').next().unwrap().trim_start_matches("name=");
            PathBuf::from("/sys/fs/cgroup").join(c)
        };
        let p = base.join(path.trim_start_matches('/')).join(rel);
        if p.exists() {
            out.push(p);
        }
    }
    out
}

fn remove_tree(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(p);
}

fn wait_exit(pid: i32) -> i32 {
    let mut st = 0;
    // SAFETY: waiting for our own child (or a reparented orphan: we are subreaper).
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        128 + libc::WTERMSIG(st)
    }
}

fn two_containers_share_netns_and_emptydir() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    // SAFETY: plain prctl; makes orphaned container inits our children.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    stale::sweep(&["podrun-health-", "podrun-launch-", "podrun-hostpath-"]);
    let tmp = tempfile::Builder::new()
        .prefix("podrun-launch-")
        .tempdir()
        .unwrap();
    stale::mark_owner(tmp.path());
    let uniq = format!(
        "{}-{}",
        std::process::id(),
        tmp.path().file_name().unwrap().to_string_lossy()
    );
    let pod_dir = tmp.path().join("pod");
    let log_root = tmp.path().join("logs");
    let state = tmp.path().join("state");
    let cg_parent = format!("podrun-pods-test/{uniq}");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": uniq},
        "spec": {
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "containers": [
                {"name": "server", "image": "busybox",
                 "command": ["sh", "-c", "echo from-server > /data/note; exec httpd -f -p 8080 -h /www"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/data"}]},
                {"name": "client", "image": "busybox",
                 "command": ["sh", "-c", "for i in $(seq 100); do if [ -f /data/note ] && wget -qO- http://127.0.0.1:8080/; then cat /data/note; hostname; exit 0; fi; sleep 0.1; done; exit 1"],
                 "volumeMounts": [{"name": "shared", "mountPath": "/data"}]}
            ]
        }
    }))
    .unwrap();

    let sb = Sandbox::start(&SandboxConfig {
        hostname: "web".into(),
        host_network: false,
        host_ipc: false,
        share_pid: false,
        ns_dir: pod_dir.join("ns"),
    })
    .expect("sandbox");
    write_pod_files(&pod, &pod_dir).unwrap();
    let ctx = LaunchContext {
        pod: &pod,
        pod_dir: &pod_dir,
        namespaces: sb.namespaces(),
        cgroup_parent: &cg_parent,
        machine_memory: 1 << 30,
    };
    let rt = podrun_container::Runtime::in_process(&state);
    let containers = pod.spec.as_ref().unwrap().containers.clone();
    let mut running = Vec::new();
    for c in &containers {
        let rf = rootfs(&tmp.path().join(format!("rootfs-{}", c.name)));
        let bundle = write_bundle(&ctx, c, &ImageProcess::default(), &rf).expect("bundle");
        let log = container_log_path(&log_root, "default", "web", &uniq, &c.name, 0);
        let id = format!("{uniq}-{}", c.name);
        running.push((
            id.clone(),
            log,
            start_container(&rt, &id, &bundle, &log_path_of(&log_root, &uniq, &c.name))
                .expect("start"),
        ));
    }
    let (client_id, client_log, client) = running.pop().unwrap();
    let (server_id, server_log, server) = running.pop().unwrap();
    let mut client = client;
    let mut server = server;
    assert!(
        podrun_pod::logs::drain(&mut client.pumps, std::time::Duration::from_secs(10)).unwrap()
    );
    let code = wait_exit(client.pid);
    let log = std::fs::read_to_string(&client_log).unwrap();
    let lines: Vec<String> = log
        .lines()
        .map(|l| String::from_utf8(parse_line(l.as_bytes()).expect("CRI line").content).unwrap())
        .collect();
    assert_eq!(code, 0, "client failed; log:\n{log}");
    assert_eq!(
        lines,
        vec!["hello from httpd", "from-server", "web"],
        "{log}"
    );

    rt.kill(&server_id, libc::SIGKILL, true)
        .expect("kill server");
    assert_eq!(wait_exit(server.pid), 128 + libc::SIGKILL);
    assert!(
        podrun_pod::logs::drain(&mut server.pumps, std::time::Duration::from_secs(10)).unwrap()
    );
    assert!(server_log.exists());
    rt.delete(&client_id, true).unwrap();
    rt.delete(&server_id, true).unwrap();
    sb.teardown().unwrap();

    assert!(
        mounted_under(tmp.path()).is_empty(),
        "mounts left: {:?}",
        mounted_under(tmp.path())
    );
    for d in cgroup_dirs(&cg_parent) {
        let kids: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(kids.is_empty(), "container cgroups left in {}", d.display());
        remove_tree(&d);
        let _ = std::fs::remove_dir(d.parent().unwrap()); // podrun-pods-test, if now empty
    }
    // The procs of the pod are gone.
    assert!(std::fs::read_to_string(format!("/proc/{}/stat", server.pid)).is_err());
}

fn log_path_of(root: &Path, uid: &str, c: &str) -> PathBuf {
    container_log_path(root, "default", "web", uid, c, 0)
}

// ---------------------------------------------------------------------------
// securityContext and volumes, seen from inside real containers.
// ---------------------------------------------------------------------------

use podrun_pod::launch::{unmount_pod_volumes, LaunchError};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// A busybox root with the applets these tests use.
fn busybox_root(dir: &Path) -> PathBuf {
    if dir.join("bin/busybox").exists() {
        return dir.to_path_buf();
    }
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "data"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for a in [
        "sh", "id", "ls", "cat", "grep", "touch", "echo", "test", "stat", "mkdir", "unshare",
        "true",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    dir.to_path_buf()
}

/// One pod under test: its state dir, sandbox, containers. Everything is torn
/// down on drop (also when an assertion failed); [`Harness::finish`] also
/// asserts that nothing was left behind.
struct Harness {
    tmp: tempfile::TempDir,
    uniq: String,
    pod: Pod,
    pod_dir: PathBuf,
    cg_parent: String,
    rt: podrun_container::Runtime,
    sb: Option<Sandbox>,
    started: Vec<(String, i32)>,
    cleaned: bool,
}

impl Harness {
    fn new(spec: serde_json::Value) -> Harness {
        // SAFETY: plain prctl; makes orphaned container inits our children.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        stale::sweep(&["podrun-health-", "podrun-launch-", "podrun-hostpath-"]);
        let tmp = tempfile::Builder::new()
            .prefix("podrun-launch-")
            .tempdir()
            .unwrap();
        stale::mark_owner(tmp.path());
        let uniq = format!(
            "{}-{}",
            std::process::id(),
            tmp.path().file_name().unwrap().to_string_lossy()
        );
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "sec", "namespace": "default", "uid": uniq},
            "spec": spec,
        }))
        .unwrap();
        Harness {
            pod_dir: tmp.path().join("pod"),
            cg_parent: format!("podrun-launch-test-{uniq}"),
            rt: podrun_container::Runtime::in_process(&tmp.path().join("state")),
            tmp,
            uniq,
            pod,
            sb: None,
            started: Vec::new(),
            cleaned: false,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn prepare(&self) -> Result<(), LaunchError> {
        write_pod_files(&self.pod, &self.pod_dir)
    }

    /// Runs app container `i` to completion: (exit code, its output lines).
    fn run(&mut self, i: usize, image: &ImageProcess) -> Result<(i32, Vec<String>), LaunchError> {
        if self.sb.is_none() {
            self.sb = Some(
                Sandbox::start(&SandboxConfig {
                    hostname: "sec".into(),
                    host_network: false,
                    host_ipc: false,
                    share_pid: false,
                    ns_dir: self.pod_dir.join("ns"),
                })
                .expect("sandbox"),
            );
        }
        let c = self.pod.spec.as_ref().unwrap().containers[i].clone();
        let rf = busybox_root(&self.tmp.path().join(format!("rootfs-{}", c.name)));
        let ctx = LaunchContext {
            pod: &self.pod,
            pod_dir: &self.pod_dir,
            namespaces: self.sb.as_ref().unwrap().namespaces(),
            cgroup_parent: &self.cg_parent,
            machine_memory: 1 << 30,
        };
        let bundle = write_bundle(&ctx, &c, image, &rf)?;
        let log = container_log_path(
            &self.tmp.path().join("logs"),
            "default",
            "sec",
            &self.uniq,
            &c.name,
            0,
        );
        let id = format!("{}-{}", self.uniq, c.name);
        let mut r = start_container(&self.rt, &id, &bundle, &log)?;
        self.started.push((id, r.pid));
        assert!(
            podrun_pod::logs::drain(&mut r.pumps, std::time::Duration::from_secs(20)).unwrap(),
            "container {} did not close its output",
            c.name
        );
        let code = wait_exit(r.pid);
        self.started.last_mut().unwrap().1 = 0; // reaped
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines = text
            .lines()
            .map(|l| {
                String::from_utf8(parse_line(l.as_bytes()).expect("CRI line").content).unwrap()
            })
            .collect();
        Ok((code, lines))
    }

    fn cleanup(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        for (id, pid) in std::mem::take(&mut self.started) {
            if pid > 0 {
                let _ = self.rt.kill(&id, libc::SIGKILL, true);
                let mut st = 0;
                // SAFETY: reaping our own (or reparented) child.
                unsafe { libc::waitpid(pid, &mut st, 0) };
            }
            let _ = self.rt.delete(&id, true);
        }
        let _ = unmount_pod_volumes(&self.pod, &self.pod_dir);
        if let Some(sb) = self.sb.take() {
            let _ = sb.teardown();
        }
        for d in cgroup_dirs(&self.cg_parent) {
            remove_tree(&d);
        }
    }

    /// Tears down and asserts no mount, cgroup or state is left.
    fn finish(mut self) {
        let pids: Vec<i32> = self.started.iter().map(|s| s.1).collect();
        self.cleanup();
        let left = mounted_under(self.tmp.path());
        assert!(left.is_empty(), "mounts left: {left:?}");
        assert!(cgroup_dirs(&self.cg_parent).is_empty(), "cgroups left");
        for p in pids.into_iter().filter(|p| *p > 0) {
            assert!(std::fs::read_to_string(format!("/proc/{p}/stat")).is_err());
        }
        let state: Vec<_> = std::fs::read_dir(self.tmp.path().join("state"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(state.is_empty(), "container state left: {state:?}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn cap_line(lines: &[String], key: &str) -> u64 {
    let l = lines
        .iter()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"));
    u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| {
            let i = podrun_pod::security::ALL_CAPABILITIES
                .iter()
                .position(|c| c == n)
                .unwrap();
            1u64 << i
        })
        .fold(0, |a, b| a | b)
}

fn run_as_user_and_fs_group_seen_inside() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mut h = Harness::new(serde_json::json!({
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                            "supplementalGroups": [4000]},
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "id; ls -lnd /data; touch /data/f && ls -ln /data/f; grep -E '^Cap(Eff|Bnd)' /proc/self/status"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
    }));
    h.prepare().unwrap();
    let host = h.pod_dir.join("volumes/data");
    let m = std::fs::metadata(&host).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 2000));
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o2777,
        "kubelet: 0777 + setgid"
    );
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert!(out[0].starts_with("uid=1000 gid=3000 groups="), "{out:?}");
    let groups = out[0].split("groups=").nth(1).unwrap();
    assert!(
        groups.contains("2000") && groups.contains("4000"),
        "{out:?}"
    );
    let dir: Vec<&str> = out[1].split_whitespace().collect();
    assert_eq!(&dir[..1], &["drwxrwsrwx"], "{out:?}");
    assert_eq!(&dir[2..4], &["0", "2000"], "{out:?}");
    let file: Vec<&str> = out[2].split_whitespace().collect();
    assert_eq!(
        &file[2..4],
        &["1000", "2000"],
        "setgid dir gives its group: {out:?}"
    );
    assert_eq!(cap_line(&out, "CapEff:"), 0, "non-root: no effective caps");
    assert_eq!(
        cap_line(&out, "CapBnd:"),
        cap_mask(&podrun_pod::security::DEFAULT_CAPABILITIES)
    );
    h.finish();
}

fn no_new_privs_only_when_escalation_is_disallowed() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let script = "grep NoNewPrivs /proc/self/status";
    let mut h = Harness::new(serde_json::json!({
        "containers": [
            {"name": "strict", "image": "busybox", "command": ["sh", "-c", script],
             "securityContext": {"allowPrivilegeEscalation": false}},
            {"name": "default", "image": "busybox", "command": ["sh", "-c", script]}]
    }));
    h.prepare().unwrap();
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!((code, out), (0, vec!["NoNewPrivs:\t1".to_string()]));
    let (code, out) = h.run(1, &ImageProcess::default()).unwrap();
    assert_eq!((code, out), (0, vec!["NoNewPrivs:\t0".to_string()]));
    h.finish();
}

fn capabilities_add_drop_and_privileged() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let script = "grep -E '^Cap(Eff|Bnd|Amb)' /proc/self/status; grep ' /sys ' /proc/mounts; ls /dev; echo masked=$(grep -c ' /proc/keys ' /proc/mounts); true";
    let mut h = Harness::new(serde_json::json!({
        "containers": [
            {"name": "adddrop", "image": "busybox", "command": ["sh", "-c", script],
             "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["chown", "KILL"]}}},
            {"name": "dropall", "image": "busybox", "command": ["sh", "-c", script],
             "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}}},
            {"name": "priv", "image": "busybox", "command": ["sh", "-c", script],
             "securityContext": {"privileged": true}}]
    }));
    h.prepare().unwrap();
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    let mut want: Vec<&str> = podrun_pod::security::DEFAULT_CAPABILITIES
        .iter()
        .copied()
        .filter(|c| *c != "CAP_CHOWN" && *c != "CAP_KILL")
        .collect();
    want.extend(["CAP_NET_ADMIN", "CAP_SYS_TIME"]);
    assert_eq!(cap_line(&out, "CapEff:"), cap_mask(&want), "{out:?}");
    assert_eq!(cap_line(&out, "CapBnd:"), cap_mask(&want), "{out:?}");
    assert_eq!(cap_line(&out, "CapAmb:"), 0);
    let sys = out.iter().find(|l| l.contains(" /sys ")).unwrap();
    assert!(
        sys.contains(" ro,"),
        "unprivileged /sys is read-only: {sys}"
    );
    assert!(out.iter().any(|l| l == "masked=1"), "{out:?}");

    let (code, out) = h.run(1, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(
        cap_line(&out, "CapEff:"),
        cap_mask(&["CAP_NET_BIND_SERVICE"])
    );
    assert_eq!(
        cap_line(&out, "CapBnd:"),
        cap_mask(&["CAP_NET_BIND_SERVICE"])
    );

    let (code, out) = h.run(2, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    // "All" is what the runtime itself holds (this VM withholds CAP_SYS_RESOURCE, say).
    let current = podrun_pod::launch::current_capabilities();
    let all = cap_mask(&current.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(current.len() >= 38, "{current:?}");
    assert_eq!(cap_line(&out, "CapEff:"), all, "{out:?}");
    assert_eq!(cap_line(&out, "CapBnd:"), all, "{out:?}");
    let sys = out.iter().find(|l| l.contains(" /sys ")).unwrap();
    assert!(sys.contains(" rw,"), "privileged /sys is writable: {sys}");
    // Host devices are there (a default container has only null, zero, full, random, urandom, tty).
    let host_dev = ["kmsg", "loop-control", "mem", "tty0"]
        .into_iter()
        .find(|d| Path::new("/dev").join(d).exists())
        .expect("a host device to look for");
    assert!(
        out.iter().any(|l| l == host_dev),
        "/dev/{host_dev} missing: {out:?}"
    );
    assert!(
        out.iter().any(|l| l == "masked=0"),
        "no masked paths: {out:?}"
    );
    h.finish();
}

fn read_only_root_filesystem_refuses_writes() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mut h = Harness::new(serde_json::json!({
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "touch /x 2>&1; touch /scratch/ok && echo volume-writable"],
            "securityContext": {"readOnlyRootFilesystem": true},
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]
    }));
    h.prepare().unwrap();
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert!(out[0].contains("Read-only file system"), "{out:?}");
    assert_eq!(out[1], "volume-writable");
    assert!(h.pod_dir.join("volumes/scratch/ok").exists());
    h.finish();
}

fn run_as_non_root_refuses_a_root_image() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mut h = Harness::new(serde_json::json!({
        "securityContext": {"runAsNonRoot": true},
        "containers": [
            {"name": "root", "image": "busybox", "command": ["id", "-u"]},
            {"name": "ok", "image": "busybox", "command": ["id", "-u"]}]
    }));
    h.prepare().unwrap();
    let e = h.run(0, &ImageProcess::default()).unwrap_err();
    assert!(e.is_config_error());
    let want = "container has runAsNonRoot and image will run as root (pod: \"default/sec\", container: root)";
    assert_eq!(e.to_string(), want);
    let e = h
        .run(
            0,
            &ImageProcess {
                user: Some("0:0".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.to_string(), want);
    assert!(h.started.is_empty(), "nothing was started");
    // An image USER that is not root passes the check.
    let img = ImageProcess {
        user: Some("1234".into()),
        ..Default::default()
    };
    assert_eq!(h.run(1, &img).unwrap(), (0, vec!["1234".to_string()]));
    h.finish();
}

fn memory_empty_dir_is_a_sized_tmpfs_shared_by_containers() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mut h = Harness::new(serde_json::json!({
        "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
        "containers": [
            {"name": "writer", "image": "busybox",
             "command": ["sh", "-c", "grep ' /cache ' /proc/mounts; echo shared > /cache/note"],
             "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
            {"name": "reader", "image": "busybox", "command": ["cat", "/cache/note"],
             "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}]
    }));
    h.prepare().unwrap();
    h.prepare().unwrap(); // idempotent: no second tmpfs on top
    let vol = h.pod_dir.join("volumes/cache");
    assert_eq!(mounted_under(&vol).len(), 1, "{:?}", mounted_under(&vol));
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    let m: Vec<&str> = out[0].split_whitespace().collect();
    assert_eq!(&m[..3], &["tmpfs", "/cache", "tmpfs"], "{out:?}");
    assert!(m[3].split(',').any(|o| o == "size=16384k"), "{out:?}");
    assert_eq!(
        h.run(1, &ImageProcess::default()).unwrap(),
        (0, vec!["shared".to_string()])
    );
    unmount_pod_volumes(&h.pod, &h.pod_dir).unwrap();
    assert!(mounted_under(&vol).is_empty());
    unmount_pod_volumes(&h.pod, &h.pod_dir).unwrap(); // again: nothing to do
    h.finish();

    // A later volume failing undoes the tmpfs already mounted.
    let h = Harness::new(serde_json::json!({
        "volumes": [{"name": "m", "emptyDir": {"medium": "Memory"}},
                    {"name": "huge", "emptyDir": {"medium": "HugePages"}}],
        "containers": [{"name": "c", "image": "busybox"}]
    }));
    let e = h.prepare().unwrap_err().to_string();
    assert!(
        e.starts_with("spec.volumes[1]: MountVolume.SetUp failed for volume \"huge\""),
        "{e}"
    );
    assert!(mounted_under(&h.pod_dir).is_empty());
    h.finish();
}

fn host_path_types_create_and_refuse() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let base = tempfile::Builder::new()
        .prefix("podrun-hostpath-")
        .tempdir()
        .unwrap();
    let b = base.path();
    std::fs::write(b.join("a-file"), "x\n").unwrap();
    let newdir = b.join("made/dir");
    let newfile = b.join("made/sub/file.txt");
    let mut h = Harness::new(serde_json::json!({
        "volumes": [
            {"name": "d", "hostPath": {"path": newdir, "type": "DirectoryOrCreate"}},
            {"name": "f", "hostPath": {"path": newfile, "type": "FileOrCreate"}},
            {"name": "n", "hostPath": {"path": "/dev/null", "type": "CharDevice"}},
            {"name": "e", "hostPath": {"path": b.join("a-file"), "type": "File"}}],
        "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "echo into-dir > /hd/x && echo into-file > /hf && cat /he && test -c /hn && echo chardev"],
            "volumeMounts": [{"name": "d", "mountPath": "/hd"}, {"name": "f", "mountPath": "/hf"},
                             {"name": "n", "mountPath": "/hn"}, {"name": "e", "mountPath": "/he", "readOnly": true}]}]
    }));
    h.prepare().unwrap();
    let md = std::fs::metadata(&newdir).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.permissions().mode() & 0o777, 0o755);
    let mf = std::fs::metadata(&newfile).unwrap();
    assert!(mf.is_file());
    assert_eq!(mf.permissions().mode() & 0o777, 0o644);
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out, vec!["x", "chardev"]);
    assert_eq!(
        std::fs::read_to_string(newdir.join("x")).unwrap(),
        "into-dir\n"
    );
    assert_eq!(std::fs::read_to_string(&newfile).unwrap(), "into-file\n");
    h.finish();

    // Refusals, with kubelet's messages naming the volume and the path.
    let sock = b.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let cases = [
        (b.join("a-file"), "Directory", "is not a directory"),
        (b.join("a-file"), "DirectoryOrCreate", "is not a directory"),
        (b.join("missing"), "File", "is not a file"),
        (b.to_path_buf(), "FileOrCreate", "is not a file"),
        (b.to_path_buf(), "Socket", "is not a socket file"),
        (
            PathBuf::from("/dev/null"),
            "BlockDevice",
            "is not a block device",
        ),
        (b.join("a-file"), "CharDevice", "is not a character device"),
    ];
    for (path, kind, what) in cases {
        let h = Harness::new(serde_json::json!({
            "volumes": [{"name": "ok", "emptyDir": {}},
                        {"name": "bad", "hostPath": {"path": path, "type": kind}}],
            "containers": [{"name": "c", "image": "busybox"}]
        }));
        let e = h.prepare().unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "spec.volumes[1]: MountVolume.SetUp failed for volume \"bad\" : hostPath type check failed: {} {what}",
                path.display()
            )
        );
        h.finish();
    }
    // A socket is accepted as Socket.
    let h = Harness::new(serde_json::json!({
        "volumes": [{"name": "s", "hostPath": {"path": sock, "type": "Socket"}}],
        "containers": [{"name": "c", "image": "busybox"}]
    }));
    h.prepare().unwrap();
    h.finish();
    assert!(!b.join("missing").exists());
}

fn sub_path_mounts_a_created_subdirectory() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let hostdir = tempfile::Builder::new()
        .prefix("podrun-subpath-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(hostdir.path().join("conf")).unwrap();
    std::fs::write(hostdir.path().join("conf/app.conf"), "k=v\n").unwrap();
    let mut h = Harness::new(serde_json::json!({
        "securityContext": {"fsGroup": 2000},
        "volumes": [{"name": "v", "emptyDir": {}},
                    {"name": "h", "hostPath": {"path": hostdir.path()}}],
        "containers": [
            {"name": "writer", "image": "busybox",
             "command": ["sh", "-c", "echo deep > /sub/file && cat /etc/app/app.conf && ls /sub"],
             "env": [{"name": "WHO", "value": "writer"}],
             "volumeMounts": [{"name": "v", "mountPath": "/sub", "subPathExpr": "a/$(WHO)"},
                              {"name": "h", "mountPath": "/etc/app", "subPath": "conf", "readOnly": true}]},
            {"name": "reader", "image": "busybox", "command": ["cat", "/all/a/writer/file"],
             "volumeMounts": [{"name": "v", "mountPath": "/all"}]},
            {"name": "escape", "image": "busybox", "command": ["true"],
             "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "../../etc"}]}]
    }));
    h.prepare().unwrap();
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out, vec!["k=v", "file"]);
    let created = h.pod_dir.join("volumes/v/a/writer");
    let m = std::fs::metadata(&created).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o2777, "volume's mode");
    assert_eq!(m.gid(), 2000);
    assert_eq!(
        h.run(1, &ImageProcess::default()).unwrap(),
        (0, vec!["deep".to_string()])
    );
    let e = h.run(2, &ImageProcess::default()).unwrap_err().to_string();
    assert_eq!(
        e,
        "spec.containers[2].volumeMounts[0].subPath: Invalid value: \"../../etc\": must not contain '..'"
    );
    assert!(h.path("pod/volumes/v/a/writer/file").exists());
    h.finish();
}

fn host_users_false_runs_in_a_per_pod_user_namespace() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mut h = Harness::new(serde_json::json!({
        "hostUsers": false,
        "securityContext": {"fsGroup": 2000},
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "cat /proc/self/uid_map; id -u; ls -lnd /data/.; touch /data/f && ls -ln /data/f"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]
    }));
    // No /etc/hosts nor /data in this root (write_bundle creates the mount
    // points), and /data would be a symlink out of the root: replaced by a
    // path inside it.
    let rf = busybox_root(&h.path("rootfs-c"));
    std::fs::remove_dir(rf.join("data")).unwrap();
    let outside = h.path("outside");
    std::os::unix::fs::symlink(&outside, rf.join("data")).unwrap();
    h.prepare().unwrap();
    let base = podrun_pod::security::user_namespace_base(&h.uniq);
    let m = std::fs::metadata(h.pod_dir.join("volumes/data")).unwrap();
    assert_eq!((m.uid(), m.gid()), (base, base + 2000));
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    let map: Vec<&str> = out[0].split_whitespace().collect();
    assert_eq!(map, vec!["0".to_string(), base.to_string(), "65536".into()]);
    assert_eq!(out[1], "0");
    let dir: Vec<&str> = out[2].split_whitespace().collect();
    assert_eq!(&dir[2..4], &["0", "2000"], "{out:?}");
    let file: Vec<&str> = out[3].split_whitespace().collect();
    assert_eq!(&file[2..4], &["0", "2000"], "{out:?}");
    let f = std::fs::metadata(h.pod_dir.join("volumes/data/f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (base, base + 2000));
    assert!(rf.join("etc/hosts").is_file() && rf.join("etc/hostname").is_file());
    assert!(!outside.exists(), "mount point created outside the root");
    h.finish();
}

fn image_user_name_resolved_from_the_image_passwd() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mut h = Harness::new(serde_json::json!({
        "containers": [{"name": "c", "image": "busybox", "command": ["id"]}]
    }));
    let rf = busybox_root(&h.path("rootfs-c"));
    std::fs::write(
        rf.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1500:1600::/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        rf.join("etc/group"),
        "root:x:0:\napp:x:1600:\nextra:x:1700:root,app\n",
    )
    .unwrap();
    h.prepare().unwrap();
    let img = ImageProcess {
        user: Some("app".into()),
        ..Default::default()
    };
    let (code, out) = h.run(0, &img).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert!(
        out[0].starts_with("uid=1500(app) gid=1600(app) groups="),
        "{out:?}"
    );
    assert!(
        out[0].contains("1700(extra)"),
        "member group added: {out:?}"
    );
    h.finish();
}

fn failed_create_leaves_the_sandbox_and_other_containers_alone() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mut h = Harness::new(serde_json::json!({
        "volumes": [{"name": "gone", "emptyDir": {}}],
        "containers": [
            {"name": "broken", "image": "busybox", "command": ["true"],
             "volumeMounts": [{"name": "gone", "mountPath": "/gone"}]},
            {"name": "fine", "image": "busybox", "command": ["echo", "still-works"]}]
    }));
    h.prepare().unwrap();
    // The bind source disappears: the engine fails while creating the container.
    std::fs::remove_dir(h.pod_dir.join("volumes/gone")).unwrap();
    let e = h.run(0, &ImageProcess::default()).unwrap_err();
    assert!(matches!(e, LaunchError::Runtime { .. }), "{e}");
    // The pause process (our child) was neither reaped nor waited for.
    let pause = h.sb.as_ref().unwrap().pid();
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(pause, 0) }, 0, "pause is gone");
    assert!(std::fs::read_to_string(format!("/proc/{pause}/stat"))
        .unwrap()
        .split(' ')
        .nth(2)
        .is_some_and(|st| st != "Z"));
    assert_eq!(
        h.run(1, &ImageProcess::default()).unwrap(),
        (0, vec!["still-works".to_string()])
    );
    h.finish();
}

fn pod_sysctls_apply_to_the_pod_namespaces_only() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let host_port =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    let mut h = Harness::new(serde_json::json!({
        "securityContext": {"sysctls": [
            {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"},
            {"name": "kernel.shm_rmid_forced", "value": "1"}]},
        "containers": [{"name": "c", "image": "busybox",
            "command": ["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/shm_rmid_forced"]}]
    }));
    h.prepare().unwrap();
    assert_eq!(
        h.run(0, &ImageProcess::default()).unwrap(),
        (0, vec!["0".to_string(), "1".to_string()])
    );
    h.finish();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_port
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap(),
        host_shm
    );
}

fn seccomp_runtime_default_blocks_namespaces_and_keyring() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    // unshare -U needs no capability: only the filter can refuse it. Its error message is
    // dropped: stdout and stderr reach the log through separate pipes, in either order.
    let script = "grep Seccomp: /proc/self/status; \
                  unshare -U true 2>/dev/null && echo userns-ok || echo userns-refused";
    let mut h = Harness::new(serde_json::json!({
        "containers": [
            {"name": "confined", "image": "busybox", "command": ["sh", "-c", script],
             "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
            {"name": "unconfined", "image": "busybox", "command": ["sh", "-c", script]},
            {"name": "nonroot", "image": "busybox", "command": ["sh", "-c", script],
             "securityContext": {"runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}}]
    }));
    h.prepare().unwrap();
    let (code, out) = h.run(0, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0], "Seccomp:\t2", "{out:?}");
    assert_eq!(out.last().unwrap(), "userns-refused", "{out:?}");
    let (code, out) = h.run(1, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(
        out,
        vec!["Seccomp:\t0".to_string(), "userns-ok".to_string()]
    );
    // A non-root user (no CAP_SYS_ADMIN left, no no_new_privs) is filtered too.
    let (code, out) = h.run(2, &ImageProcess::default()).unwrap();
    assert_eq!(code, 0, "{out:?}");
    assert_eq!(out[0], "Seccomp:\t2", "{out:?}");
    assert_eq!(out.last().unwrap(), "userns-refused", "{out:?}");
    h.finish();
}

/// Tests in order; a plain single-threaded runner (see the module docs).
const TESTS: &[(&str, fn())] = &[
    (
        "two_containers_share_netns_and_emptydir",
        two_containers_share_netns_and_emptydir,
    ),
    (
        "run_as_user_and_fs_group_seen_inside",
        run_as_user_and_fs_group_seen_inside,
    ),
    (
        "no_new_privs_only_when_escalation_is_disallowed",
        no_new_privs_only_when_escalation_is_disallowed,
    ),
    (
        "capabilities_add_drop_and_privileged",
        capabilities_add_drop_and_privileged,
    ),
    (
        "read_only_root_filesystem_refuses_writes",
        read_only_root_filesystem_refuses_writes,
    ),
    (
        "run_as_non_root_refuses_a_root_image",
        run_as_non_root_refuses_a_root_image,
    ),
    (
        "memory_empty_dir_is_a_sized_tmpfs_shared_by_containers",
        memory_empty_dir_is_a_sized_tmpfs_shared_by_containers,
    ),
    (
        "host_path_types_create_and_refuse",
        host_path_types_create_and_refuse,
    ),
    (
        "sub_path_mounts_a_created_subdirectory",
        sub_path_mounts_a_created_subdirectory,
    ),
    (
        "host_users_false_runs_in_a_per_pod_user_namespace",
        host_users_false_runs_in_a_per_pod_user_namespace,
    ),
    (
        "image_user_name_resolved_from_the_image_passwd",
        image_user_name_resolved_from_the_image_passwd,
    ),
    (
        "failed_create_leaves_the_sandbox_and_other_containers_alone",
        failed_create_leaves_the_sandbox_and_other_containers_alone,
    ),
    (
        "pod_sysctls_apply_to_the_pod_namespaces_only",
        pod_sysctls_apply_to_the_pod_namespaces_only,
    ),
    (
        "seccomp_runtime_default_blocks_namespaces_and_keyring",
        seccomp_runtime_default_blocks_namespaces_and_keyring,
    ),
];

fn main() {
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut list = false;
    let mut exact = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--skip" => skips.extend(args.next()),
            "--list" => list = true,
            "--exact" => exact = true,
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            s => filters.push(s.to_string()),
        }
    }
    let selected: Vec<&(&str, fn())> = TESTS
        .iter()
        .filter(|(n, _)| {
            let hit = |f: &String| {
                if exact {
                    n == f
                } else {
                    n.contains(f.as_str())
                }
            };
            (filters.is_empty() || filters.iter().any(hit)) && !skips.iter().any(hit)
        })
        .collect();
    if list {
        for (n, _) in &selected {
            println!("{n}: test");
        }
        return;
    }
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, f) in &selected {
        print!("test {name} ... ");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        match std::panic::catch_unwind(*f) {
            Ok(()) => println!("ok"),
            Err(_) => {
                println!("FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:");
        for n in &failed {
            println!("    {n}");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        TESTS.len() - selected.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

//! Root test: two containers of one pod launched through launch.rs share the
//! sandbox's network namespace (busybox httpd + wget over 127.0.0.1) and an
//! emptyDir volume; their output lands in CRI log files; nothing is left behind.

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

#[test]
fn two_containers_share_netns_and_emptydir() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    // SAFETY: plain prctl; makes orphaned container inits our children.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let tmp = tempfile::Builder::new()
        .prefix("podrun-launch-")
        .tempdir()
        .unwrap();
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

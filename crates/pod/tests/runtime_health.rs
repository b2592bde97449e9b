//! Root tests: probes and hooks of `health/` against real containers in a real
//! pod sandbox (busybox rootfs): a tcp probe on a port opened late inside the
//! pod's network namespace, an http probe against busybox httpd (200, then 500
//! from a CGI, a custom header seen by the server, a same-host redirect and a
//! redirect elsewhere), exec probes (success, failure with output, a hanging
//! command killed at the timeout), and postStart/preStop hooks. Every test
//! removes its containers, sandbox, mounts and cgroups, even on failure.

#[path = "common/stale.rs"]
mod stale;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use podrun_pod::health::{ContainerHealth, HealthEvent, HealthTarget, HookKind};
use podrun_pod::launch::{
    start_container, write_bundle, write_pod_files, ImageProcess, LaunchContext, Running,
};
use podrun_pod::probe::{ProbeKind, ProbeResult};
use podrun_pod::sandbox::{NsKind, Sandbox, SandboxConfig};

/// Tests fork (the engine, exec helpers): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const CGI_HEALTH: &str = r#"#!/bin/sh
env > /www/cgi-env
if [ -f /www/broken ]; then
  printf 'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nbroken on purpose\n'
else
  printf 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfine\n'
fi
"#;

const CGI_REDIRECT: &str = r#"#!/bin/sh
printf 'HTTP/1.1 302 Found\r\nLocation: %s\r\n\r\n' "$QUERY_STRING"
"#;

fn rootfs(dir: &Path) -> PathBuf {
    let root = dir.to_path_buf();
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "www/cgi-bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in [
        "sh", "httpd", "cat", "sleep", "touch", "rm", "env", "echo", "printf", "true", "false",
        "test", "[", "sed",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(root.join("www/index.html"), "hello from httpd\n").unwrap();
    for (n, s) in [("health", CGI_HEALTH), ("redirect", CGI_REDIRECT)] {
        let p = root.join("www/cgi-bin").join(n);
        std::fs::write(&p, s).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

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

fn mounted_under(dir: &Path) -> Vec<String> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy().to_string();
    mi.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
        .map(String::from)
        .collect()
}

/// A pod sandbox with one container; everything is removed on drop.
struct Fixture {
    tmp: tempfile::TempDir,
    uniq: String,
    sb: Option<Sandbox>,
    rt: podrun_container::Runtime,
    state: PathBuf,
    cg_parent: String,
    running: Option<Running>,
    rootfs: PathBuf,
    container: Container,
}

impl Fixture {
    /// Starts a sandbox and the container described by `c` (JSON of a Container).
    fn new(c: serde_json::Value) -> Fixture {
        // SAFETY: plain prctl; orphans (exec'd commands whose helper was killed) become ours.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        stale::sweep(&["podrun-health-", "podrun-launch-", "podrun-hostpath-"]);
        let tmp = tempfile::Builder::new()
            .prefix("podrun-health-")
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
            "metadata": {"name": "health", "namespace": "default", "uid": uniq},
            "spec": {"containers": [c]}
        }))
        .unwrap();
        let pod_dir = tmp.path().join("pod");
        let state = tmp.path().join("state");
        let cg_parent = format!("podrun-pods-test/{uniq}");
        let sb = Sandbox::start(&SandboxConfig {
            hostname: "health".into(),
            host_network: false,
            host_ipc: false,
            share_pid: false,
            ns_dir: pod_dir.join("ns"),
        })
        .expect("sandbox");
        write_pod_files(&pod, &pod_dir).unwrap();
        let container = pod.spec.as_ref().unwrap().containers[0].clone();
        let rf = rootfs(&tmp.path().join("rootfs"));
        let mut f = Fixture {
            rt: podrun_container::Runtime::in_process(&state),
            uniq,
            sb: Some(sb),
            state,
            cg_parent,
            running: None,
            rootfs: rf,
            container,
            tmp,
        };
        let ctx = LaunchContext {
            pod: &pod,
            pod_dir: &pod_dir,
            namespaces: f.sb.as_ref().unwrap().namespaces(),
            cgroup_parent: &f.cg_parent,
            machine_memory: 1 << 30,
        };
        let bundle =
            write_bundle(&ctx, &f.container, &ImageProcess::default(), &f.rootfs).expect("bundle");
        let log = f.tmp.path().join("logs/c.log");
        let id = f.id();
        f.running = Some(start_container(&f.rt, &id, &bundle, &log).expect("start"));
        f
    }

    fn id(&self) -> String {
        format!("{}-{}", self.uniq, self.container.name)
    }

    fn netns(&self) -> PathBuf {
        self.sb
            .as_ref()
            .unwrap()
            .ns_path(NsKind::Net)
            .unwrap()
            .to_path_buf()
    }

    fn health(&self) -> ContainerHealth {
        ContainerHealth::new(
            HealthTarget {
                state_root: self.state.clone(),
                container_id: self.id(),
                netns: Some(self.netns()),
                pod_ip: "127.0.0.1".into(),
            },
            &self.container,
        )
        .expect("health")
    }

    fn www(&self, f: &str) -> PathBuf {
        self.rootfs.join("www").join(f)
    }

    /// Pumps the container's logs and drives `h` until `pred` holds for an event, or `limit`.
    fn drive(
        &mut self,
        h: &mut ContainerHealth,
        limit: Duration,
        mut pred: impl FnMut(&HealthEvent) -> bool,
    ) -> Vec<HealthEvent> {
        let end = Instant::now() + limit;
        let mut all = Vec::new();
        while Instant::now() < end {
            let mut fds: Vec<libc::pollfd> = h
                .poll_fds()
                .into_iter()
                .map(|(fd, events)| libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                })
                .collect();
            if let Some(r) = &self.running {
                for p in r.pumps.iter().filter(|p| !p.is_eof()) {
                    fds.push(libc::pollfd {
                        fd: p.fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            let wait = h
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            // SAFETY: a valid pollfd array of that length.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    wait.as_millis() as i32 + 1,
                )
            };
            if let Some(r) = &mut self.running {
                for p in r.pumps.iter_mut() {
                    let _ = p.pump();
                }
            }
            let ev = h.step(Instant::now());
            let hit = ev.iter().any(&mut pred);
            all.extend(ev);
            if hit {
                break;
            }
        }
        all
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.kill(&r.id, libc::SIGKILL, true);
            // Reap everything until the init is gone: exec'd commands whose
            // helper was killed are reparented to us (subreaper), and the
            // container's init (pid 1 of its namespace) cannot finish exiting
            // before they are reaped.
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                // SAFETY: non-blocking waitpid on any child.
                let p = unsafe {
                    libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG | libc::__WALL)
                };
                if p == r.pid {
                    break;
                }
                if p <= 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let _ = self.rt.delete(&r.id, true);
        }
        if let Some(sb) = self.sb.take() {
            let _ = sb.teardown();
        }
        for d in cgroup_dirs(&self.cg_parent) {
            remove_tree(&d);
            let _ = std::fs::remove_dir(d.parent().unwrap());
        }
        let left = mounted_under(self.tmp.path());
        if !left.is_empty() && !std::thread::panicking() {
            panic!("mounts left: {left:?}");
        }
    }
}

fn result(kind: ProbeKind, r: ProbeResult) -> impl Fn(&HealthEvent) -> bool {
    move |e| matches!(e, HealthEvent::Result { kind: k, result, .. } if *k == kind && *result == r)
}

fn messages(ev: &[HealthEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            HealthEvent::Unhealthy { message, .. } | HealthEvent::Warning { message, .. } => {
                Some(message.clone())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn tcp_probe_on_a_port_opened_late_in_the_pod_netns() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = Fixture::new(serde_json::json!({
        "name": "late", "image": "busybox",
        "command": ["sh", "-c", "sleep 2; exec httpd -f -p 18081 -h /www"],
        "ports": [{"name": "web", "containerPort": 18081}],
        "readinessProbe": {"tcpSocket": {"port": "web"}, "periodSeconds": 1}
    }));
    let mut h = f.health();
    h.container_started(Instant::now());
    assert!(!h.ready());
    let ev = f.drive(
        &mut h,
        Duration::from_secs(15),
        result(ProbeKind::Readiness, ProbeResult::Success),
    );
    assert!(h.ready(), "{ev:?}");
    let failed = messages(&ev);
    assert!(
        !failed.is_empty()
            && failed.iter().all(|m| m.starts_with(
                "Readiness probe failed: dial tcp 127.0.0.1:18081: connect: connection refused"
            )),
        "{failed:?}"
    );
    // The port is in the pod's namespace only: the host's 127.0.0.1:18081 is closed.
    assert!(std::net::TcpStream::connect("127.0.0.1:18081").is_err());
}

#[test]
fn http_probe_status_header_and_redirects_against_busybox_httpd() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = Fixture::new(serde_json::json!({
        "name": "web", "image": "busybox",
        "command": ["httpd", "-f", "-p", "18082", "-h", "/www"],
        "livenessProbe": {"httpGet": {"path": "/cgi-bin/health", "port": 18082,
            "httpHeaders": [{"name": "User-Agent", "value": "podrun-test-agent"},
                            {"name": "Host", "value": "probe.example"}]},
            "periodSeconds": 1, "failureThreshold": 2},
        "readinessProbe": {"httpGet": {"path": "/cgi-bin/redirect?/index.html", "port": 18082},
            "periodSeconds": 1}
    }));
    let mut h = f.health();
    h.container_started(Instant::now());
    let ev = f.drive(
        &mut h,
        Duration::from_secs(10),
        result(ProbeKind::Readiness, ProbeResult::Success),
    );
    assert!(h.ready(), "same-host redirect followed to a 200: {ev:?}");
    // Let the first liveness run finish (it may still be in flight): the CGI saw our headers.
    let end = Instant::now() + Duration::from_secs(10);
    while h.last_run(ProbeKind::Liveness).is_none() && Instant::now() < end {
        f.drive(&mut h, Duration::from_millis(200), |_| false);
    }
    let env = std::fs::read_to_string(f.www("cgi-env")).expect("the CGI ran");
    assert!(env.contains("HTTP_USER_AGENT=podrun-test-agent"), "{env}");
    assert!(env.contains("probe.example"), "Host header: {env}");
    assert_eq!(h.result(ProbeKind::Liveness), Some(ProbeResult::Success));
    assert!(h
        .last_run(ProbeKind::Liveness)
        .is_some_and(|r| r.success && r.message == "HTTP probe succeeded with statuscode: 200"));
    // The CGI turns 500: two failures in a row kill.
    std::fs::write(f.www("broken"), "").unwrap();
    let ev = f.drive(
        &mut h,
        Duration::from_secs(10),
        result(ProbeKind::Liveness, ProbeResult::Failure),
    );
    assert!(
        ev.contains(&HealthEvent::Result {
            kind: ProbeKind::Liveness,
            result: ProbeResult::Failure,
            kill: true
        }),
        "{ev:?}"
    );
    let m = messages(&ev);
    assert!(
        m.iter().any(|m| m
            .starts_with("Liveness probe failed: HTTP probe failed with statuscode: 500")
            && m.contains("broken on purpose")),
        "{m:?}"
    );
    drop(h);
    // A redirect to another host: success with a warning.
    f.container.readiness_probe = Some(
        serde_json::from_value(serde_json::json!({"httpGet": {
            "path": "/cgi-bin/redirect?http://10.255.255.1/elsewhere", "port": 18082},
            "periodSeconds": 1}))
        .unwrap(),
    );
    f.container.liveness_probe = None;
    let mut h = f.health();
    h.container_started(Instant::now());
    let ev = f.drive(
        &mut h,
        Duration::from_secs(10),
        result(ProbeKind::Readiness, ProbeResult::Success),
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, HealthEvent::Warning { message, .. }
            if message.contains("Probe terminated redirects to http://10.255.255.1:80/elsewhere"))),
        "{ev:?}"
    );
}

#[test]
fn exec_probes_success_failure_and_timeout_kill() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = Fixture::new(serde_json::json!({
        "name": "ex", "image": "busybox",
        "command": ["sh", "-c", "touch /tmp/healthy; exec sleep 600"],
        // Startup also checks the probe command does not inherit an ignored
        // SIGPIPE (bit 12 of SigIgn) from the prober (Rust ignores it).
        "startupProbe": {"exec": {"command": ["sh", "-c",
            "cat /tmp/healthy && m=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status) && [ $(( 0x$m & 0x1000 )) -eq 0 ]"]},
            "periodSeconds": 1},
        "livenessProbe": {"exec": {"command": ["sh", "-c", "echo checking; test -f /tmp/healthy || { echo gone >&2; exit 3; }"]},
            "periodSeconds": 1, "failureThreshold": 1},
        "readinessProbe": {"exec": {"command": ["sh", "-c", "if [ -f /tmp/hang ]; then exec sleep 4242; fi"]},
            "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1}
    }));
    let mut h = f.health();
    h.container_started(Instant::now());
    assert!(!h.started());
    let ev = f.drive(
        &mut h,
        Duration::from_secs(10),
        result(ProbeKind::Readiness, ProbeResult::Success),
    );
    assert!(h.started() && h.ready(), "{ev:?}");
    // The hanging command: killed at the 1 s timeout, a failure.
    let hang = f.rootfs.join("tmp/hang");
    // /tmp of the container is its rootfs' /tmp (no tmpfs in this bundle).
    std::fs::write(&hang, "").unwrap();
    let t = Instant::now();
    let ev = f.drive(
        &mut h,
        Duration::from_secs(10),
        result(ProbeKind::Readiness, ProbeResult::Failure),
    );
    assert!(!h.ready(), "{ev:?}");
    let m = messages(&ev);
    assert!(
        m.iter()
            .any(|m| m.starts_with("Readiness probe failed: command \"sh -c")
                && m.contains("timed out after 1s")),
        "{m:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    // No `sleep 4242` survives the timeout (SIGKILLed: gone, or a zombie
    // with no command line, once the kill has been processed).
    let survivors = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.starts_with("sleep 4242"))
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(5);
    while !survivors().is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        survivors().is_empty(),
        "hanging exec left running: {:?}",
        survivors()
    );
    std::fs::remove_file(&hang).unwrap();
    // Liveness failure with output (stdout and stderr) in the message.
    std::fs::remove_file(f.rootfs.join("tmp/healthy")).unwrap();
    let ev = f.drive(
        &mut h,
        Duration::from_secs(10),
        result(ProbeKind::Liveness, ProbeResult::Failure),
    );
    let m = messages(&ev);
    assert!(
        m.iter()
            .any(|m| m.starts_with("Liveness probe failed: command")
                && m.contains("exited with 3")
                && m.contains("checking")
                && m.contains("gone")),
        "{m:?}"
    );
}

#[test]
fn post_start_and_pre_stop_hooks() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut f = Fixture::new(serde_json::json!({
        "name": "hooks", "image": "busybox",
        "command": ["httpd", "-f", "-p", "18083", "-h", "/www"],
        "lifecycle": {
            "postStart": {"exec": {"command": ["sh", "-c", "echo started > /www/poststart"]}},
            "preStop": {"httpGet": {"path": "/cgi-bin/health", "port": 18083}}
        }
    }));
    let mut h = f.health();
    assert!(h.start_hook(HookKind::PostStart, Instant::now(), None));
    let ev = f.drive(&mut h, Duration::from_secs(10), |e| {
        matches!(e, HealthEvent::Hook { .. })
    });
    assert!(
        ev.contains(&HealthEvent::Hook {
            kind: HookKind::PostStart,
            result: Ok(())
        }),
        "{ev:?}"
    );
    assert_eq!(
        std::fs::read_to_string(f.www("poststart")).unwrap(),
        "started\n"
    );
    // preStop httpGet reaches the server (the CGI records its environment).
    let _ = std::fs::remove_file(f.www("cgi-env"));
    assert!(h.start_hook(
        HookKind::PreStop,
        Instant::now(),
        Some(Duration::from_secs(5))
    ));
    let ev = f.drive(&mut h, Duration::from_secs(10), |e| {
        matches!(e, HealthEvent::Hook { .. })
    });
    assert!(
        ev.contains(&HealthEvent::Hook {
            kind: HookKind::PreStop,
            result: Ok(())
        }),
        "{ev:?}"
    );
    assert!(f.www("cgi-env").exists());
    // A failing exec hook reports its exit code and output; a hanging one is
    // abandoned when its budget runs out.
    f.container.lifecycle = Some(
        serde_json::from_value(serde_json::json!({
            "postStart": {"exec": {"command": ["sh", "-c", "echo no-way; exit 7"]}},
            "preStop": {"exec": {"command": ["sleep", "4343"]}}
        }))
        .unwrap(),
    );
    let mut h = f.health();
    assert!(h.start_hook(HookKind::PostStart, Instant::now(), None));
    let ev = f.drive(&mut h, Duration::from_secs(10), |e| {
        matches!(e, HealthEvent::Hook { .. })
    });
    assert!(
        ev.iter().any(
            |e| matches!(e, HealthEvent::Hook { kind: HookKind::PostStart, result: Err(m) }
            if m.contains("exited with 7") && m.contains("no-way"))
        ),
        "{ev:?}"
    );
    assert!(h.start_hook(
        HookKind::PreStop,
        Instant::now(),
        Some(Duration::from_secs(1))
    ));
    let ev = f.drive(&mut h, Duration::from_secs(10), |e| {
        matches!(e, HealthEvent::Hook { .. })
    });
    assert!(
        ev.iter().any(
            |e| matches!(e, HealthEvent::Hook { kind: HookKind::PreStop, result: Err(m) }
            if m.contains("timed out"))
        ),
        "{ev:?}"
    );
}

/// HTTPS probe against `openssl s_server -www` with a throw-away self-signed
/// certificate (not verified, as kubelet does). Host network; skipped without openssl.
#[test]
fn https_probe_accepts_a_self_signed_certificate() {
    let Ok(_) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        eprintln!("skipping: no openssl");
        return;
    };
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("c.pem"), tmp.path().join("k.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=probe-test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = std::process::Command::new("openssl")
        .args(["s_server", "-www", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = Kill(server);
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let c: Container = serde_json::from_value(serde_json::json!({"name": "tls",
        "readinessProbe": {"httpGet": {"path": "/", "port": port, "scheme": "HTTPS"}, "periodSeconds": 1}}))
    .unwrap();
    let mut h = host_health(tmp.path(), &c);
    let end = Instant::now() + Duration::from_secs(10);
    let mut all = Vec::new();
    while !h.ready() && Instant::now() < end {
        let mut fds: Vec<libc::pollfd> = h
            .poll_fds()
            .into_iter()
            .map(|(fd, events)| libc::pollfd {
                fd,
                events,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid pollfd array.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        all.extend(h.step(Instant::now()));
    }
    assert!(h.ready(), "{all:?}");
    let last = h.last_run(ProbeKind::Readiness).unwrap();
    assert_eq!(last.message, "HTTP probe succeeded with statuscode: 200");
}

const GRPC_SERVER: &str = r#"
import grpc, sys
from concurrent import futures
status = {"": 1, "bad": 2}
def check(req, ctx):
    svc = req[2:2 + req[1]].decode() if req[:1] == b"\x0a" else ""
    if svc not in status:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
    return bytes([0x08, status[svc]])
h = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(
    check, request_deserializer=lambda b: b, response_serializer=lambda b: b)})
s = grpc.server(futures.ThreadPoolExecutor(2))
s.add_generic_rpc_handlers((h,))
port = s.add_insecure_port("127.0.0.1:0")
s.start()
print(port, flush=True)
sys.stdin.read()
"#;

/// Debian's interpreter, whose grpcio module .ci/run installs (python3-grpcio), not
/// whichever python3 comes first on PATH.
const PYTHON: &str = "/usr/bin/python3";

/// gRPC health probes against a real gRPC server (python grpcio): SERVING succeeds,
/// NOT_SERVING and an unknown service fail.
#[test]
fn grpc_probe_against_a_grpcio_health_server() {
    // Serialised with the tests whose containers' children are reaped by any-child waits,
    // which would take this one's exit status too (ECHILD).
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let check = std::process::Command::new(PYTHON)
        .args(["-c", "import grpc"])
        .output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "{PYTHON} with grpcio is needed: apt-get install python3-grpcio ({check:?})"
    );
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(PYTHON)
        .args(["-c", GRPC_SERVER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _server = Kill(child);
    let port: u16 = line.trim().parse().expect("server port");
    let tmp = tempfile::tempdir().unwrap();
    let mut hs: Vec<(String, ContainerHealth)> = ["", "bad", "nope"]
        .iter()
        .map(|svc| {
            let c: Container = serde_json::from_value(serde_json::json!({"name": "g",
                "readinessProbe": {"grpc": {"port": port, "service": svc}, "periodSeconds": 1}}))
            .unwrap();
            (svc.to_string(), host_health(tmp.path(), &c))
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(15);
    while hs
        .iter()
        .any(|(_, h)| h.last_run(ProbeKind::Readiness).is_none())
        && Instant::now() < end
    {
        let mut fds: Vec<libc::pollfd> = hs
            .iter()
            .flat_map(|(_, h)| h.poll_fds())
            .map(|(fd, events)| libc::pollfd {
                fd,
                events,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid pollfd array.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        for (_, h) in &mut hs {
            h.step(Instant::now());
        }
    }
    let last = |i: usize| hs[i].1.last_run(ProbeKind::Readiness).cloned().unwrap();
    assert!(hs[0].1.ready(), "{:?}", last(0));
    assert_eq!(last(0).message, "service healthy");
    assert!(!last(1).success);
    assert_eq!(
        last(1).message,
        "service unhealthy (responded with \"NOT_SERVING\")"
    );
    assert!(
        !last(2).success && last(2).message.starts_with("rpc error"),
        "{:?}",
        last(2)
    );
}

/// Probes of container `c` run against a server on the host (no pod netns, no
/// container to exec into), its container marked started now.
fn host_health(tmp: &std::path::Path, c: &Container) -> ContainerHealth {
    let mut h = ContainerHealth::new(
        HealthTarget {
            state_root: tmp.join("none"),
            container_id: "none".into(),
            netns: None,
            pod_ip: "127.0.0.1".into(),
        },
        c,
    )
    .unwrap();
    h.container_started(Instant::now());
    h
}

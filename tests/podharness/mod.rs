//! Shared harness for the pod integration tests (`tests/pod_*.rs`): runs the
//! real `podrun` binary as root against a busybox image built locally from
//! Debian's busybox-static (scripts/build-busybox-image) and loaded once into
//! a shared image store.
//!
//! Every [`PodEnv`] has its own `--root` and log dir. When it is dropped it
//! force-deletes whatever pods are left and then ASSERTS that nothing leaked:
//! no mount under its dirs, no process of its pods (supervisor, pause,
//! containers), no pod cgroup directory in any hierarchy, no pod state dir
//! and no log dir.
//!
//! Env: `PODRUN_TEST_KEEP=1` keeps the dirs; the backoff scale of each env is
//! set with [`PodEnv::backoff_scale`] (PODRUN_BACKOFF_SCALE for the CLI).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "localhost/busybox:latest";
const IMAGE_ROOT: &str = "/tmp/podrun-podtest-images";

/// Builds the busybox image archive and loads it into the shared store (once per process).
pub fn image_root() -> &'static Path {
    static ONCE: OnceLock<PathBuf> = OnceLock::new();
    ONCE.get_or_init(|| {
        let root = PathBuf::from(IMAGE_ROOT);
        let ok = Command::new(podrun())
            .args(["image", "inspect", IMAGE])
            .env("PODRUN_IMAGE_ROOT", &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let arch =
                std::env::temp_dir().join(format!("podrun-podtest-bb-{}.tar", std::process::id()));
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-busybox-image");
            let st = Command::new(&script)
                .arg("--archive")
                .arg(&arch)
                .stdout(Stdio::null())
                .status()
                .expect("run scripts/build-busybox-image");
            assert!(
                st.success(),
                "scripts/build-busybox-image failed (is busybox-static installed?)"
            );
            let out = Command::new(podrun())
                .args(["image", "load", "-i"])
                .arg(&arch)
                .env("PODRUN_IMAGE_ROOT", &root)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "image load: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_file(&arch);
        }
        root
    })
}

pub fn podrun() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_podrun"))
}

/// One test's pod environment.
pub struct PodEnv {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub logs: PathBuf,
    pub backoff: Option<String>,
    /// (uid, cgroup dirs) of every pod seen, for the leak check.
    seen: std::cell::RefCell<Vec<(String, Vec<PathBuf>)>>,
}

/// Pod envs of test processes that were killed before their `Drop` ran
/// (`/tmp/podrun-podtest-<tag>-<pid>` with a dead pid): their pods' supervisors
/// and containers would run forever. Force-delete them and remove the dir.
fn sweep_stale_envs() {
    for e in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(rest) = n.strip_prefix("podrun-podtest-") else {
            continue;
        };
        let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let root = e.path().join("run");
        for p in std::fs::read_dir(root.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let pn = p.file_name().to_string_lossy().to_string();
            if let Some((ns, name)) = pn.split_once('_') {
                let _ = Command::new(podrun())
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "pod", name, "-n", ns, "--force"])
                    .env("PODRUN_IMAGE_ROOT", IMAGE_ROOT)
                    .env("PODRUN_POD_LOG_DIR", e.path().join("logs"))
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

impl PodEnv {
    pub fn new(tag: &str) -> PodEnv {
        image_root();
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale_envs);
        let dir = std::env::temp_dir().join(format!("podrun-podtest-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        PodEnv {
            root: dir.join("run"),
            logs: dir.join("logs"),
            dir,
            backoff: None,
            seen: Default::default(),
        }
    }

    /// Scales kubelet's 10 s..300 s restart backoff for this env's pods.
    pub fn backoff_scale(mut self, s: &str) -> Self {
        self.backoff = Some(s.into());
        self
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(podrun());
        c.arg("--root").arg(&self.root);
        c.env("PODRUN_IMAGE_ROOT", image_root());
        c.env("PODRUN_POD_LOG_DIR", &self.logs);
        if let Some(b) = &self.backoff {
            c.env("PODRUN_BACKOFF_SCALE", b);
        }
        c
    }

    /// Runs podrun with `args` (bounded: 120 s).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args(args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn podrun");
        if let Some(s) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("podrun {args:?} did not finish in 120 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let out = child.wait_with_output().unwrap();
        if std::env::var_os("PODRUN_TEST_VERBOSE").is_some() {
            eprintln!(
                "podrun {args:?} -> {:?}\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    /// Runs podrun and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podrun {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `yaml` to a file in the env and returns its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// `create -f` of `yaml` with extra args (e.g. `--wait`); asserts success.
    pub fn create(&self, yaml: &str, extra: &[&str]) -> String {
        let p = self.manifest("pod.yaml", yaml);
        let mut args = vec!["create", "-f", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = self.ok(&args);
        self.remember_all();
        out
    }

    fn remember_all(&self) {
        let pods = self.root.join("pods");
        for e in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            let run: Value = std::fs::read(e.path().join("run.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let pod: Value = std::fs::read(e.path().join("pod.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            let Some(uid) = pod["metadata"]["uid"].as_str() else {
                continue;
            };
            let dirs: Vec<PathBuf> = run["cgroup_dirs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str().map(PathBuf::from))
                .collect();
            let mut seen = self.seen.borrow_mut();
            if !seen.iter().any(|(u, _)| u == uid) {
                seen.push((uid.to_string(), dirs));
            }
        }
    }

    /// `get pod NAME -o json`.
    pub fn get(&self, name: &str) -> Value {
        let s = self.ok(&["get", "pod", name, "-o", "json"]);
        serde_json::from_str(&s).expect("get -o json prints JSON")
    }

    /// Polls `get` until `pred` holds (panics after `timeout` with the last status).
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.get(name);
            if pred(&v) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "pod {name}: timed out after {timeout:?} waiting for {what}; status:\n{}",
                    serde_json::to_string_pretty(&v["status"]).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn phase(v: &Value) -> &str {
        v["status"]["phase"].as_str().unwrap_or("")
    }

    /// The status of container `c` (app or init).
    pub fn cstatus<'a>(v: &'a Value, c: &str) -> &'a Value {
        for key in ["containerStatuses", "initContainerStatuses"] {
            if let Some(s) = v["status"][key]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == c))
            {
                return s;
            }
        }
        &Value::Null
    }

    /// Logs of container `c` of pod `name`.
    pub fn logs(&self, name: &str, c: &str) -> String {
        self.ok(&["logs", name, "-c", c])
    }

    /// Processes whose cgroup, or command line, belongs to this env.
    pub fn leftover_processes(&self) -> Vec<String> {
        let seen = self.seen.borrow();
        let dir = self.dir.to_string_lossy().to_string();
        let mut v = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if stat.contains(") Z ") {
                continue;
            }
            if seen.iter().any(|(u, _)| cg.contains(&format!("pod{u}"))) || cmd.contains(&dir) {
                v.push(format!("{pid}: {cmd}"));
            }
        }
        v
    }

    /// Everything this env left on the host.
    pub fn leaks(&self) -> Vec<String> {
        let mut l = Vec::new();
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.to_string_lossy().to_string();
        for line in mi.lines() {
            if line.contains(&dir) {
                l.push(format!("mount: {line}"));
            }
            for (u, _) in self.seen.borrow().iter() {
                if line.contains(u.as_str()) {
                    l.push(format!("mount of pod {u}: {line}"));
                }
            }
        }
        for p in self.leftover_processes() {
            l.push(format!("process {p}"));
        }
        for (u, dirs) in self.seen.borrow().iter() {
            for d in dirs {
                if d.exists() {
                    l.push(format!("cgroup of pod {u}: {}", d.display()));
                }
                // The pods' shared parent goes with the last pod in it (other
                // tests' pods may still be in it, or being created: then it is
                // not empty, or only for a moment, and `finish` retries).
                if let Some(p) = d.parent().filter(|p| p.ends_with("podrun-pods")) {
                    let busy = std::fs::read_dir(p)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .any(|e| e.file_type().is_ok_and(|t| t.is_dir()));
                    let msg = format!("empty shared pod cgroup {}", p.display());
                    if p.is_dir() && !busy && !l.contains(&msg) {
                        l.push(msg);
                    }
                }
            }
        }
        let pods = self.root.join("pods");
        for e in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            l.push(format!("state dir {}", e.path().display()));
        }
        for e in std::fs::read_dir(&self.logs)
            .into_iter()
            .flatten()
            .flatten()
        {
            l.push(format!("log dir {}", e.path().display()));
        }
        l
    }

    /// Deletes every pod left (force) and asserts nothing leaked.
    pub fn finish(&self) {
        self.remember_all();
        let pods = self.root.join("pods");
        for e in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if let Some((ns, name)) = n.split_once('_') {
                let _ = self.run(&["delete", "pod", name, "-n", ns, "--force"]);
            }
        }
        // Processes may take a moment to be reaped by init.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut leaks = self.leaks();
        while !leaks.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            leaks = self.leaks();
        }
        assert!(leaks.is_empty(), "left behind:\n{}", leaks.join("\n"));
    }
}

impl Drop for PodEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Still clean up, without asserting.
            let pods = self.root.join("pods");
            for e in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if let Some((ns, name)) = n.split_once('_') {
                    let _ = self.run(&["delete", "pod", name, "-n", ns, "--force"]);
                }
            }
        } else {
            self.finish();
        }
        if std::env::var_os("PODRUN_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

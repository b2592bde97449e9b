//! Shared harness for the OCI-face integration tests (`tests/oci_*.rs`).
//!
//! Every test gets its own `--root` state dir, its own bundle (busybox rootfs +
//! config.json), a unique container id and a unique relative cgroupsPath
//! (`podrun-test/<id>`). The [`Ctr`] guard force-deletes the container when it
//! goes out of scope and then ASSERTS that nothing was left behind: no mount
//! under the test dirs, no state dir for the id, no cgroup directory of the
//! test in any hierarchy (nested under the caller's own cgroup).
//!
//! The runtime under test is `$PODRUN_TEST_RUNTIME` if set (e.g.
//! `/usr/sbin/runc`), else the `podrun` binary built by cargo.
//!
//! Run (as root):
//!   cargo test --test 'oci_*'                                   # podrun
//!   PODRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --test 'oci_*' # reference
//! Host packages: busybox-static, iproute2 (`ip netns`), util-linux
//! (`unshare`, `mount`), coreutils (`sha256sum`); runc only for reference runs.
//! `PODRUN_TEST_KEEP=1` keeps each test's dir; `PODRUN_TEST_TMP` moves them.
//! Known reference failures on runc 1.1.5 (spec/race bugs, not test bugs):
//! oci_hooks::poststart_runs_at_start_not_create,
//! oci_hooks::failing_poststop_hook_does_not_block_delete,
//! oci_errors::concurrent_creates_same_id_exactly_one_wins (intermittent).
#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Bounded wait for any runtime invocation (a hung runtime fails the test).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bounded wait for a container state change.
pub const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Runtime selection
// ---------------------------------------------------------------------------

/// Path of the runtime under test.
pub fn runtime() -> PathBuf {
    match std::env::var_os("PODRUN_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_podrun")),
    }
}

/// True when the runtime under test is podrun (not runc or another reference).
pub fn is_podrun() -> bool {
    runtime()
        .file_name()
        .map(|n| n.to_string_lossy().starts_with("podrun"))
        .unwrap_or(false)
}

/// The tests need root (namespaces, cgroups, mounts).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the OCI integration tests must run as root");
}

// ---------------------------------------------------------------------------
// Default config: exactly `runc spec` (runc 1.1.5) output
// ---------------------------------------------------------------------------

/// `runc spec` output, embedded so that runc is not needed at test time.
pub const RUNC_SPEC: &str = r#"{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": { "uid": 0, "gid": 0 },
		"args": [ "sh" ],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"effective": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"permitted": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"ambient": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ]
		},
		"rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
		"noNewPrivileges": true
	},
	"root": { "path": "rootfs", "readonly": true },
	"hostname": "runc",
	"mounts": [
		{ "destination": "/proc", "type": "proc", "source": "proc" },
		{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
		  "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
		{ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
		  "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" ] },
		{ "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
		  "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
		{ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
		  "options": [ "nosuid", "noexec", "nodev" ] },
		{ "destination": "/sys", "type": "sysfs", "source": "sysfs",
		  "options": [ "nosuid", "noexec", "nodev", "ro" ] },
		{ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
		  "options": [ "nosuid", "noexec", "nodev", "relatime", "ro" ] }
	],
	"linux": {
		"resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
		"namespaces": [
			{ "type": "pid" }, { "type": "network" }, { "type": "ipc" },
			{ "type": "uts" }, { "type": "mount" }
		],
		"maskedPaths": [
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
			"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
			"/proc/sched_debug", "/sys/firmware", "/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
		]
	}
}"#;

/// `runc spec` as a JSON value.
pub fn runc_spec() -> Value {
    serde_json::from_str(RUNC_SPEC).expect("embedded runc spec is valid JSON")
}

// ---------------------------------------------------------------------------
// Busybox rootfs
// ---------------------------------------------------------------------------

/// The host's static busybox (Debian `busybox-static`).
pub fn host_busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: apt-get install -y busybox-static");
}

/// Applet paths relative to `/` (`busybox --list-full`), computed once.
fn applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new(host_busybox())
            .arg("--list-full")
            .output()
            .expect("run busybox --list-full");
        assert!(out.status.success(), "busybox --list-full failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().trim_start_matches('/').to_string())
            .filter(|l| !l.is_empty())
            .collect()
    })
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nwheel:x:10:\nstaff:x:20:\nuser:x:1000:\nnogroup:x:65534:\n";

/// Build a busybox rootfs at `dir` (created if missing): `/bin/busybox`, one
/// symlink per applet (like `busybox --install -s`), /etc/passwd with root and
/// user 1000, /etc/group, and the usual empty mount points.
pub fn make_busybox_rootfs(dir: &Path) {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/user",
        "var",
        "run",
    ] {
        fs::create_dir_all(dir.join(d))
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.join(d).display()));
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let bb = dir.join("bin/busybox");
    fs::copy(host_busybox(), &bb)
        .unwrap_or_else(|e| panic!("copy busybox to {}: {e}", bb.display()));
    fs::set_permissions(&bb, fs::Permissions::from_mode(0o755)).unwrap();
    for a in applets() {
        let link = dir.join(a);
        if link == bb || link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        symlink("/bin/busybox", &link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    }
    fs::write(dir.join("etc/passwd"), PASSWD).unwrap();
    fs::write(dir.join("etc/group"), GROUP).unwrap();
    fs::write(dir.join("etc/hostname"), "rootfs\n").unwrap();
}

/// Recursively lchown a tree (for user-namespace tests).
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    let md = path.symlink_metadata().unwrap();
    if md.is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

// ---------------------------------------------------------------------------
// Running commands with bounded waits
// ---------------------------------------------------------------------------

/// Wait for a child with a deadline; kills it and panics on timeout.
pub fn wait_child(child: &mut Child, what: &str, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {timeout:?}: {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Poll `f` until it returns Some, or panic after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Exit code as a shell would report it (128+n for a signal).
pub fn code(st: &ExitStatus) -> i32 {
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn describe(o: &Output) -> String {
    format!(
        "exit={} stdout={:?} stderr={:?}",
        code(&o.status),
        stdout(o),
        stderr(o)
    )
}

/// Assert a command succeeded, with its output in the message.
#[track_caller]
pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed: {}", describe(o));
}

/// Is this stderr line an error report in podrun's (`podrun: msg`) or runc's
/// (`ERRO[0000] msg` on a tty, `time=".." level=error msg=".."` otherwise) style?
pub fn is_error_line(l: &str) -> bool {
    l.starts_with("podrun") || l.starts_with("ERRO[") || l.contains("level=error")
}

/// Assert a failed invocation: non-zero exit, an error line, and each of
/// `needles` named in stderr. `podrun_needles` are checked only for podrun
/// (runc's wording does not always name the thing, podrun's must).
/// For podrun the error must be exactly one line.
#[track_caller]
pub fn assert_error(o: &Output, needles: &[&str], podrun_needles: &[&str]) {
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        describe(o)
    );
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| is_error_line(l)),
        "no error line (podrun: / ERRO[ / level=error) in stderr: {}",
        describe(o)
    );
    if is_podrun() {
        assert_eq!(
            lines.len(),
            1,
            "podrun must print exactly one error line: {}",
            describe(o)
        );
        for n in podrun_needles {
            assert!(
                err.contains(n),
                "stderr does not name {n:?}: {}",
                describe(o)
            );
        }
    }
    for n in needles {
        assert!(
            err.contains(n),
            "stderr does not name {n:?}: {}",
            describe(o)
        );
    }
}

// ---------------------------------------------------------------------------
// Host introspection helpers
// ---------------------------------------------------------------------------

/// Mount points (field 5 of /proc/self/mountinfo), unescaped.
pub fn mount_points() -> Vec<String> {
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mi.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            m.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
        })
        .collect()
}

/// One cgroup hierarchy of this host: its mount point and the caller's own
/// cgroup path in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// e.g. "memory", "cpu", "name=systemd", "" for cgroup2
    pub key: String,
    pub mount: PathBuf,
    pub own: String,
}

/// All mounted cgroup hierarchies, paired with /proc/self/cgroup.
pub fn hierarchies() -> Vec<Hierarchy> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut own_map: Vec<(Vec<String>, String)> = Vec::new();
    for l in own.lines() {
        let mut it = l.splitn(3, ':');
        let _n = it.next();
        let ctrls = it.next().unwrap_or("");
        let path = it.next().unwrap_or("/").to_string();
        let set: Vec<String> = if ctrls.is_empty() {
            vec![]
        } else {
            ctrls.split(',').map(String::from).collect()
        };
        own_map.push((set, path));
    }
    let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out = Vec::new();
    for l in mi.lines() {
        let (pre, post) = match l.split_once(" - ") {
            Some(x) => x,
            None => continue,
        };
        let mut pf = post.split(' ');
        let fstype = pf.next().unwrap_or("");
        let _src = pf.next();
        let sopts = pf.next().unwrap_or("");
        let mp = pre.split(' ').nth(4).unwrap_or("");
        if fstype == "cgroup2" {
            if let Some((_, p)) = own_map.iter().find(|(s, _)| s.is_empty()) {
                out.push(Hierarchy {
                    key: String::new(),
                    mount: mp.into(),
                    own: p.clone(),
                });
            }
        } else if fstype == "cgroup" {
            let opts: Vec<&str> = sopts.split(',').collect();
            if let Some((s, p)) = own_map
                .iter()
                .find(|(s, _)| !s.is_empty() && s.iter().all(|c| opts.contains(&c.as_str())))
            {
                out.push(Hierarchy {
                    key: s.join(","),
                    mount: mp.into(),
                    own: p.clone(),
                });
            }
        }
    }
    // A hierarchy may be mounted more than once; keep the first mount.
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert(h.key.clone()));
    out
}

/// The directory a relative cgroupsPath resolves to in the hierarchy of
/// `controller` (e.g. "memory", "pids", "cpu", "freezer"), nested under the
/// caller's own cgroup (as runc does for relative paths).
pub fn cgroup_dir(controller: &str, cgroups_path: &str) -> PathBuf {
    let h = hierarchies()
        .into_iter()
        .find(|h| h.key.split(',').any(|k| k == controller))
        .unwrap_or_else(|| panic!("no cgroup hierarchy for controller {controller}"));
    h.mount
        .join(h.own.trim_start_matches('/'))
        .join(cgroups_path.trim_start_matches('/'))
}

pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Inode of a file (e.g. /proc/self/ns/net) as "ns:[inode]"-comparable number.
pub fn inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {path}: {e}"))
        .ino()
}

/// Decode a capability hex mask (CapEff etc. from /proc/<pid>/status).
pub fn cap_mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in status: {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

/// Capability numbers (linux/capability.h) for the names the tests use.
pub fn cap_bit(name: &str) -> u32 {
    match name {
        "CAP_CHOWN" => 0,
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_FOWNER" => 3,
        "CAP_KILL" => 5,
        "CAP_SETGID" => 6,
        "CAP_SETUID" => 7,
        "CAP_SETPCAP" => 8,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_ADMIN" => 12,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_CHROOT" => 18,
        "CAP_SYS_ADMIN" => 21,
        "CAP_MKNOD" => 27,
        "CAP_AUDIT_WRITE" => 29,
        _ => panic!("unknown cap {name}"),
    }
}

pub fn caps_to_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| m | (1u64 << cap_bit(n)))
}

/// Field value of /proc/<pid>/status style text (`Name:\tvalue`).
pub fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

pub fn pid_alive(pid: i64) -> bool {
    // A zombie still has a /proc entry; treat it as dead.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// The per-test container guard
// ---------------------------------------------------------------------------

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's container: its dirs, config and id. Dropping it force-deletes
/// the container and asserts that nothing was leaked.
pub struct Ctr {
    pub id: String,
    /// Per-test base dir (holds root/, bundle/, logs, scratch files).
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub cgroups_path: String,
    pub config: Value,
    calls: AtomicU32,
    /// Skip the leftover assertions (for tests that check them themselves).
    pub check_leftovers: bool,
    /// Extra environment for every runtime command (e.g. PODRUN_SEAL=exec).
    pub rt_env: Vec<(String, String)>,
}

impl Ctr {
    /// A new container context with a fresh busybox bundle and the `runc spec`
    /// config, edited to: terminal=false, unique cgroupsPath.
    pub fn new(name: &str) -> Ctr {
        require_root();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let short: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(20)
            .collect();
        let id = format!("{short}-{}-{n}", std::process::id());
        let base = std::env::var_os("PODRUN_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        fs::create_dir_all(&base).unwrap();
        let dir = tempfile::Builder::new()
            .prefix(&format!("podrun-t-{id}-"))
            .tempdir_in(&base)
            .expect("tempdir")
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir.join("root");
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        fs::create_dir_all(&bundle).unwrap();
        make_busybox_rootfs(&rootfs);
        let cgroups_path = format!("podrun-test/{id}");
        let mut config = runc_spec();
        config["process"]["terminal"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(cgroups_path);
        Ctr {
            id,
            dir,
            root,
            bundle,
            rootfs,
            cgroups_path,
            config,
            calls: AtomicU32::new(0),
            check_leftovers: true,
            rt_env: Vec::new(),
        }
    }

    // ----- config editing ---------------------------------------------------

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }
    /// args = ["sh", "-c", script]
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }
    pub fn env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(kv));
        self
    }
    pub fn cwd(&mut self, cwd: &str) -> &mut Self {
        self.config["process"]["cwd"] = json!(cwd);
        self
    }
    pub fn user(&mut self, uid: u32, gid: u32, additional: &[u32]) -> &mut Self {
        let mut u = json!({"uid": uid, "gid": gid});
        if !additional.is_empty() {
            u["additionalGids"] = json!(additional);
        }
        self.config["process"]["user"] = u;
        self
    }
    pub fn terminal(&mut self, t: bool) -> &mut Self {
        self.config["process"]["terminal"] = json!(t);
        self
    }
    pub fn readonly_rootfs(&mut self, ro: bool) -> &mut Self {
        self.config["root"]["readonly"] = json!(ro);
        self
    }
    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }
    /// Bind-mount a host dir into the container (rw unless `ro`).
    pub fn bind(&mut self, host: &Path, dest: &str, ro: bool) -> &mut Self {
        let mut opts = vec!["rbind"];
        if ro {
            opts.push("ro");
        }
        self.add_mount(
            json!({"destination": dest, "type": "bind", "source": host, "options": opts}),
        )
    }
    pub fn namespaces(&mut self, types: &[&str]) -> &mut Self {
        let v: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
        self.config["linux"]["namespaces"] = json!(v);
        self
    }
    /// Add or replace a namespace entry (with an optional path to join).
    pub fn namespace(&mut self, ty: &str, path: Option<&str>) -> &mut Self {
        let ns = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != ty);
        let mut e = json!({"type": ty});
        if let Some(p) = path {
            e["path"] = json!(p);
        }
        ns.push(e);
        self
    }
    pub fn remove_namespace(&mut self, ty: &str) -> &mut Self {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != ty);
        self
    }
    /// Merge keys into linux.resources.
    pub fn resources(&mut self, r: Value) -> &mut Self {
        let res = &mut self.config["linux"]["resources"];
        for (k, v) in r.as_object().unwrap() {
            res[k] = v.clone();
        }
        self
    }
    pub fn hook(&mut self, kind: &str, path: &str, args: &[&str]) -> &mut Self {
        let hooks = &mut self.config["hooks"];
        if hooks.is_null() {
            *hooks = json!({});
        }
        if hooks[kind].is_null() {
            hooks[kind] = json!([]);
        }
        hooks[kind]
            .as_array_mut()
            .unwrap()
            .push(json!({"path": path, "args": args}));
        self
    }
    /// Set all capability sets (bounding/effective/permitted/inheritable/ambient).
    pub fn caps(&mut self, caps: &[&str]) -> &mut Self {
        let c = json!(caps);
        self.config["process"]["capabilities"] = json!({
            "bounding": c, "effective": c, "permitted": c, "inheritable": c, "ambient": c
        });
        self
    }
    pub fn rlimits(&mut self, r: Value) -> &mut Self {
        self.config["process"]["rlimits"] = r;
        self
    }

    /// Write config.json into the bundle.
    pub fn save(&self) {
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    // ----- running the runtime ---------------------------------------------

    fn next_files(&self, tag: &str) -> (PathBuf, PathBuf) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        (
            self.dir.join(format!("{n:03}-{tag}.out")),
            self.dir.join(format!("{n:03}-{tag}.err")),
        )
    }

    /// A `Command` for the runtime with `--root` set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(runtime());
        c.arg("--root").arg(&self.root).args(args);
        c.envs(self.rt_env.iter().map(|(k, v)| (k, v)));
        c.stdin(Stdio::null());
        c
    }

    /// Run the runtime with `--root` and `args`; stdout/stderr go to files (a
    /// container started by this call inherits them and may keep writing).
    /// Bounded by [`CMD_TIMEOUT`].
    pub fn rt(&self, args: &[&str]) -> Output {
        let tag = args
            .first()
            .copied()
            .unwrap_or("x")
            .trim_start_matches('-')
            .to_string();
        let (o, e) = self.next_files(&tag);
        self.rt_files(args, &o, &e)
    }

    pub fn rt_files(&self, args: &[&str], out: &Path, err: &Path) -> Output {
        let mut c = self.command(args);
        c.stdout(fs::File::create(out).unwrap())
            .stderr(fs::File::create(err).unwrap());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", runtime().display()));
        let st = wait_child(
            &mut child,
            &format!("{} {:?}", runtime().display(), args),
            CMD_TIMEOUT,
        );
        Output {
            status: st,
            stdout: fs::read(out).unwrap_or_default(),
            stderr: fs::read(err).unwrap_or_default(),
        }
    }

    fn ctr_out(&self) -> PathBuf {
        self.dir.join("container.out")
    }
    fn ctr_err(&self) -> PathBuf {
        self.dir.join("container.err")
    }
    /// What the container's init wrote to stdout so far (after create/run -d).
    pub fn container_stdout(&self) -> String {
        fs::read_to_string(self.ctr_out()).unwrap_or_default()
    }
    pub fn container_stderr(&self) -> String {
        fs::read_to_string(self.ctr_err()).unwrap_or_default()
    }

    /// save() + `create --bundle B id`. The container's stdout/stderr go to
    /// [`Ctr::container_stdout`]/[`Ctr::container_stderr`].
    pub fn try_create(&self) -> Output {
        self.save();
        let b = self.bundle.to_str().unwrap().to_string();
        self.rt_files(
            &["create", "--bundle", &b, &self.id],
            &self.ctr_out(),
            &self.ctr_err(),
        )
    }
    #[track_caller]
    pub fn create(&self) {
        let o = self.try_create();
        assert_ok(&o, "create");
    }
    #[track_caller]
    pub fn start(&self) {
        let o = self.rt(&["start", &self.id]);
        assert_ok(&o, "start");
    }
    /// save() + foreground `run --bundle B id`: returns once the container exits.
    pub fn run(&self) -> Output {
        self.save();
        let b = self.bundle.to_str().unwrap().to_string();
        self.rt(&["run", "--bundle", &b, &self.id])
    }
    /// `run` a shell script in the container and return its output.
    pub fn run_sh(&mut self, script: &str) -> Output {
        self.sh(script);
        self.run()
    }
    /// `run -d`.
    pub fn run_detached(&self) -> Output {
        self.save();
        let b = self.bundle.to_str().unwrap().to_string();
        self.rt_files(
            &["run", "-d", "--bundle", &b, &self.id],
            &self.ctr_out(),
            &self.ctr_err(),
        )
    }
    pub fn try_state(&self) -> Output {
        self.rt(&["state", &self.id])
    }
    #[track_caller]
    pub fn state(&self) -> Value {
        let o = self.try_state();
        assert_ok(&o, "state");
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {}", describe(&o)))
    }
    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap_or("").to_string()
    }
    pub fn pid(&self) -> i64 {
        self.state()["pid"].as_i64().expect("state.pid")
    }
    /// Poll `state` until status == `want`.
    pub fn wait_status(&self, want: &str) {
        let mut last = String::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll(&format!("status {want}"), WAIT, || {
                last = self.status();
                (last == want).then_some(())
            })
        }));
        if r.is_err() {
            panic!(
                "container {} never reached {want:?} (last {last:?})",
                self.id
            );
        }
    }
    #[track_caller]
    pub fn kill(&self, sig: &str) {
        let o = self.rt(&["kill", &self.id, sig]);
        assert_ok(&o, "kill");
    }
    #[track_caller]
    pub fn delete(&self) {
        let o = self.rt(&["delete", &self.id]);
        assert_ok(&o, "delete");
    }
    /// `exec id args...` (foreground).
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut a = vec!["exec", self.id.as_str()];
        a.extend_from_slice(args);
        self.rt(&a)
    }
    /// exec with runtime options before the id (e.g. ["--env", "A=b"]).
    pub fn exec_opts(&self, opts: &[&str], args: &[&str]) -> Output {
        let mut a = vec!["exec"];
        a.extend_from_slice(opts);
        a.push(self.id.as_str());
        a.extend_from_slice(args);
        self.rt(&a)
    }
    /// create + start of a long-running `sleep` init; waits for `running`.
    pub fn start_sleeper(&mut self) {
        self.args(&["sleep", "1000"]);
        self.create();
        self.start();
        self.wait_status("running");
    }

    pub fn cgroup_dir(&self, controller: &str) -> PathBuf {
        cgroup_dir(controller, &self.cgroups_path)
    }

    // ----- leftovers --------------------------------------------------------

    /// Everything this test could have leaked, as human-readable strings.
    pub fn leftovers(&self) -> Vec<String> {
        let mut v = Vec::new();
        let dir = self.dir.to_string_lossy().to_string();
        for m in mount_points() {
            if m == dir || m.starts_with(&format!("{dir}/")) {
                v.push(format!("mount left: {m}"));
            }
        }
        for h in hierarchies() {
            let d = h
                .mount
                .join(h.own.trim_start_matches('/'))
                .join(&self.cgroups_path);
            if d.exists() {
                let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                v.push(format!(
                    "cgroup left: {} (procs: {:?})",
                    d.display(),
                    procs.split_whitespace().collect::<Vec<_>>()
                ));
            }
        }
        // The container's names in --root: `<id>` (its lock file) and `<id>:...`.
        let prefix = format!("{}:", self.id);
        for ent in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if name == self.id || name.starts_with(&prefix) {
                v.push(format!("state left: {}", ent.path().display()));
            }
        }
        v
    }

    /// Best-effort removal of whatever leaked, so one failure does not poison
    /// the host for other tests.
    fn force_cleanup(&self) {
        for h in hierarchies() {
            let d = h
                .mount
                .join(h.own.trim_start_matches('/'))
                .join(&self.cgroups_path);
            if !d.exists() {
                continue;
            }
            let _ = fs::write(d.join("freezer.state"), "THAWED");
            let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for p in procs.split_whitespace() {
                if let Ok(pid) = p.parse::<i32>() {
                    // SAFETY: plain kill(2) of a pid read from the test's own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::remove_dir(&d).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let dir = self.dir.to_string_lossy().to_string();
        let mut mps: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&dir))
            .collect();
        mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mps {
            let c = std::ffi::CString::new(m).unwrap();
            // SAFETY: c is a valid NUL-terminated path; MNT_DETACH cannot corrupt memory.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = self.rt(&["delete", "--force", &self.id]);
        let left = if self.check_leftovers {
            self.leftovers()
        } else {
            Vec::new()
        };
        self.force_cleanup();
        // The tests' shared `podrun-test` parent: podrun removes only the parents
        // it created, and which test created it is a race; the last one out
        // removes it (rmdir fails while other tests' cgroups are inside).
        for h in hierarchies() {
            let d = h
                .mount
                .join(h.own.trim_start_matches('/'))
                .join("podrun-test");
            let _ = fs::remove_dir(d);
        }
        let dir = self.dir.to_string_lossy().to_string();
        let still_mounted = mount_points().iter().any(|m| m.starts_with(&dir));
        if !still_mounted && std::env::var_os("PODRUN_TEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!(
                "container {} leaked after delete --force:\n  {}",
                self.id,
                left.join("\n  ")
            );
        }
    }
}

/// Read a whole fd-backed pipe/master in a thread until EOF/EIO (bounded).
pub fn read_all_bounded(mut f: fs::File, timeout: Duration) -> Vec<u8> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // EIO once the pty slave is closed
            }
        }
        let _ = tx.send(buf);
    });
    rx.recv_timeout(timeout).expect("reading timed out")
}

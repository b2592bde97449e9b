//! Root tests of the in-container setup modules. Each scenario re-executes
//! this test binary (one `child_*` entry, selected by an environment
//! variable) inside fresh namespaces, so pivot_root, uid switches and
//! seccomp never touch the test runner. The parent checks the outcome and
//! that nothing leaked onto the host.

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use podrun_container::{capabilities, console, fds, process, rootfs, seccomp};

const ENV_ROLE: &str = "PODRUN_SETUP_TEST_ROLE";
const ENV_DIR: &str = "PODRUN_SETUP_TEST_DIR";
const ENV_FD: &str = "PODRUN_SETUP_TEST_FD";

/// These tests fork children that inherit descriptors and expect their own pipes to reach
/// EOF; run in parallel threads, one test's pipe ends leak into another's child and both
/// hang. One at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn role() -> Option<String> {
    std::env::var(ENV_ROLE).ok()
}

/// Run `entry` of this binary in a child; `ns` = unshare flags for it.
fn run_child(
    entry: &str,
    role: &str,
    dir: &Path,
    ns: nix::sched::CloneFlags,
    fd: Option<RawFd>,
) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        entry,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ])
    .env(ENV_ROLE, role)
    .env(ENV_DIR, dir)
    .env("RUST_BACKTRACE", "0");
    if let Some(fd) = fd {
        cmd.env(ENV_FD, fd.to_string());
    }
    // SAFETY: unshare is async-signal-safe; the child is single-threaded here.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::unshare(ns).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// Like [`run_child`], but the child also gets a new user namespace whose
/// maps (0 -> 0, 65536 ids) the parent writes before the child execs.
fn run_child_userns(
    entry: &str,
    role: &str,
    dir: &Path,
    ns: nix::sched::CloneFlags,
) -> std::process::Output {
    let (a_r, a_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (b_r, b_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (a_w_raw, b_r_raw) = (a_w.as_raw_fd(), b_r.as_raw_fd());
    let (a_r_raw, b_w_raw) = (a_r.as_raw_fd(), b_w.as_raw_fd());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        entry,
        "--nocapture",
        "--test-threads=1",
        "--include-ignored",
    ])
    .env(ENV_ROLE, role)
    .env(ENV_DIR, dir)
    .env("RUST_BACKTRACE", "0");
    // SAFETY: only async-signal-safe calls (unshare, getpid, read, write, close).
    unsafe {
        cmd.pre_exec(move || {
            // Our copies of the parent's ends, so EOF means the parent gave up.
            libc::close(a_r_raw);
            libc::close(b_w_raw);
            // The user namespace first, so the others are owned by it.
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(|e| std::io::Error::other(format!("unshare user: {e}")))?;
            nix::sched::unshare(ns)
                .map_err(|e| std::io::Error::other(format!("unshare {ns:?}: {e}")))?;
            let pid = libc::getpid().to_ne_bytes();
            libc::write(a_w_raw, pid.as_ptr().cast(), pid.len());
            let mut b = [0u8; 1];
            if libc::read(b_r_raw, b.as_mut_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::other("parent did not write the id maps"));
            }
            libc::close(a_w_raw);
            libc::close(b_r_raw);
            Ok(())
        });
    }
    // The runner keeps our copies of the child's pipe ends open until the
    // spawn is over (closing them earlier would free the fd numbers the
    // child is about to use); on a pre-exec failure they close and the
    // read below sees EOF.
    let runner = std::thread::spawn(move || {
        let out = cmd.output();
        drop(a_w);
        drop(b_r);
        out
    });
    let mut pid = [0u8; 4];
    let n = nix::unistd::read(a_r.as_raw_fd(), &mut pid).unwrap();
    if n != 4 {
        // The child failed before it could report: show why.
        drop(b_w);
        let out = runner.join().unwrap();
        panic!("child setup failed: {out:?}");
    }
    let pid = i32::from_ne_bytes(pid);
    for f in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{f}"), "0 0 65536\n").unwrap();
    }
    nix::unistd::write(&b_w, b"x").unwrap();
    runner.join().unwrap().unwrap()
}

fn mount_points_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .map(|m| Path::new(m).starts_with(dir))
                .unwrap_or(false)
        })
        .map(String::from)
        .collect()
}

/// A busybox rootfs with applet links, /etc, an absolute symlink that
/// points at the host's /etc (evil) and a host directory to bind.
fn make_bundle() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("podrun-setup-")
        .tempdir()
        .unwrap();
    let root = t.path().join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "cat", "test", "mkdir", "touch"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
    std::fs::create_dir_all(root.join("opt/seed/sub")).unwrap();
    std::fs::write(root.join("opt/seed/sub/file"), "seeded\n").unwrap();
    std::fs::create_dir_all(t.path().join("hostdata")).unwrap();
    std::fs::write(t.path().join("hostdata/file"), "from the host\n").unwrap();
    std::fs::write(t.path().join("hostdata/secret"), "hidden\n").unwrap();
    t
}

fn spec_json(no_pivot_marker: bool) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": "hostdata", "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", if no_pivot_marker { "nodev" } else { "nosuid" }]},
            {"destination": "/evil/podrun-escape", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/opt/seed", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755", "nosuid"]}
        ],
        "linux": {
            "namespaces": [{"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
            "devices": [{"path": "/dev/myfifo", "type": "p", "fileMode": 384}],
            "maskedPaths": ["/proc/kcore", "/proc/timer_list", "/proc/acpi", "/data/secret", "/does/not/exist"],
            "readonlyPaths": ["/proc/sys", "/proc/bus"],
            "sysctl": {"net.ipv4.ip_forward": "1"}
        }
    })
}

fn rdev_of(p: &str) -> (u64, u64) {
    let md = std::fs::metadata(p).unwrap_or_else(|e| panic!("{p}: {e}"));
    (
        nix::sys::stat::major(md.rdev()),
        nix::sys::stat::minor(md.rdev()),
    )
}

fn errno_of_create(p: &str) -> Option<i32> {
    std::fs::write(p, "x").err().and_then(|e| e.raw_os_error())
}

/// Child side of the rootfs scenario: build, pivot, finalize, check, then
/// exec busybox for a last look from a real program.
#[test]
#[ignore = "re-executed by rootfs_* tests"]
fn child_rootfs() {
    let _serial = serial();
    let Some(role) = role() else { return };
    let dir = PathBuf::from(std::env::var(ENV_DIR).unwrap());
    let no_pivot = role == "nopivot";
    let userns = role == "userns";
    let mut json = spec_json(no_pivot);
    if userns {
        // No pid namespace of our own: procfs cannot be mounted, bind the host's.
        json["mounts"][0] = serde_json::json!({"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]});
    }
    let spec: oci_spec::runtime::Spec = serde_json::from_value(json).unwrap();
    let root = dir.join("rootfs");
    let o = rootfs::RootfsOptions {
        spec: &spec,
        rootfs: &root,
        bundle: &dir,
        in_new_userns: userns,
        new_cgroupns: role == "cgroupns",
        no_pivot,
        cgroup_gate: None,
        cgroup_layout: None,
    };
    if role == "badbind" {
        let mut v = spec_json(false);
        v["mounts"][7]["source"] = serde_json::json!("missing-dir");
        let bad: oci_spec::runtime::Spec = serde_json::from_value(v).unwrap();
        let o = rootfs::RootfsOptions { spec: &bad, ..o };
        let e = rootfs::prepare_rootfs(&o).unwrap_err().to_string();
        println!("ERROR: {e}");
        assert!(e.contains("mounts[7]") && e.contains("missing-dir"), "{e}");
        return;
    }
    rootfs::prepare_rootfs(&o).unwrap();
    rootfs::pivot_rootfs(&o).unwrap();
    if role == "console" {
        console_in_container(&spec);
    }
    rootfs::finalize_rootfs(&spec).unwrap();

    // Devices and links.
    assert_eq!(rdev_of("/dev/null"), (1, 3));
    assert_eq!(rdev_of("/dev/urandom"), (1, 9));
    assert_eq!(
        std::fs::metadata("/dev/null").unwrap().permissions().mode() & 0o777,
        0o666
    );
    let fifo = std::fs::metadata("/dev/myfifo").unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_link("/dev/ptmx").unwrap(),
        PathBuf::from("pts/ptmx")
    );
    assert_eq!(
        std::fs::read_link("/dev/fd").unwrap(),
        PathBuf::from("/proc/self/fd")
    );
    assert!(Path::new("/dev/shm").is_dir());
    // Bind: readable, read-only; the masked file reads empty.
    assert_eq!(
        std::fs::read_to_string("/data/file").unwrap(),
        "from the host\n"
    );
    assert_eq!(errno_of_create("/data/new"), Some(libc::EROFS));
    assert_eq!(std::fs::read_to_string("/data/secret").unwrap(), "");
    // Masked /proc/timer_list is /dev/null, /proc/acpi an empty ro tmpfs; readonly /proc/sys; sysctl written first.
    assert_eq!(rdev_of("/proc/timer_list"), (1, 3));
    assert_eq!(std::fs::read_dir("/proc/acpi").unwrap().count(), 0);
    assert_eq!(errno_of_create("/proc/acpi/x"), Some(libc::EROFS));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(
        errno_of_create("/proc/sys/net/ipv4/ip_forward"),
        Some(libc::EROFS)
    );
    // Read-only root, writable tmpfs.
    assert_eq!(errno_of_create("/newfile"), Some(libc::EROFS));
    std::fs::write("/tmp/ok", "x").unwrap();
    // cgroup v1 hierarchies bound read-only.
    assert!(Path::new("/sys/fs/cgroup/memory").is_dir());
    // Bind of our own cgroup, or the cgroupns root: either way we are in it.
    let procs = std::fs::read_to_string("/sys/fs/cgroup/memory/cgroup.procs").unwrap();
    let me = std::process::id().to_string();
    assert!(procs.lines().any(|l| l == me), "{me} not in {procs}");
    assert!(Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists());
    assert_eq!(errno_of_create("/sys/fs/cgroup/newfile"), Some(libc::EROFS));
    // tmpcopyup: the image's content on a fresh, writable tmpfs.
    assert_eq!(
        std::fs::read_to_string("/opt/seed/sub/file").unwrap(),
        "seeded\n"
    );
    std::fs::write("/opt/seed/new", "x").unwrap();
    // The symlink to /etc was resolved inside the rootfs.
    assert!(Path::new("/etc/podrun-escape").is_dir());
    // The old root is gone.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let points: Vec<&str> = mi.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    assert!(
        !points.iter().any(|p| p.contains(dir.to_str().unwrap())),
        "host path visible:\n{mi}"
    );
    // Only / and what the spec asked for: no mount of the old root is left.
    assert_eq!(points[0], "/", "{mi}");
    assert!(
        points.iter().all(
            |p| ["/", "/proc", "/dev", "/sys", "/data", "/tmp", "/etc", "/opt"]
                .iter()
                .any(|k| *p == *k || p.starts_with(&format!("{k}/")))
        ),
        "unexpected mounts:\n{mi}"
    );
    fds::verify_cwd().unwrap();

    let err = Command::new("/bin/sh")
        .args([
            "-c",
            "test -c /dev/zero && test -d /proc/self && ls /bin >/dev/null && cat /data/file",
        ])
        .env_clear()
        .exec();
    panic!("exec busybox: {err}");
}

/// runc's order: console after the pivot, before finalize; the pty peer is
/// bound over /dev/console. Stdio then belongs to the pty, so the verdict
/// is the exit status.
fn console_in_container(spec: &oci_spec::runtime::Spec) {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    console::setup_console(a.as_raw_fd(), Some((30, 90)), true).unwrap();
    rootfs::finalize_rootfs(spec).unwrap();
    // Take the master (dropping it unread would hang up the terminal).
    let mut buf = [0u8; 32];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        b.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let has_master = msg.cmsgs().unwrap().any(
        |c| matches!(c, nix::sys::socket::ControlMessageOwned::ScmRights(ref f) if f.len() == 1),
    );
    let n = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..n]).to_string();
    let console = std::fs::metadata("/dev/console").unwrap();
    let peer = std::fs::metadata(&name).unwrap();
    let ok = has_master
        && name.starts_with("/dev/pts/")
        && console.file_type().is_char_device()
        && console.rdev() == peer.rdev()
        // SAFETY: isatty on fds 0..2 (now the pty peer).
        && unsafe { libc::isatty(0) == 1 && libc::isatty(1) == 1 && libc::isatty(2) == 1 };
    // SAFETY: leave without the test harness printing to the pty.
    unsafe { libc::_exit(if ok { 0 } else { 3 }) };
}

fn rootfs_scenario(role: &str) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = make_bundle();
    let flags = nix::sched::CloneFlags::CLONE_NEWNS
        | nix::sched::CloneFlags::CLONE_NEWNET
        | nix::sched::CloneFlags::CLONE_NEWIPC
        | nix::sched::CloneFlags::CLONE_NEWUTS;
    let flags = if role == "cgroupns" {
        flags | nix::sched::CloneFlags::CLONE_NEWCGROUP
    } else {
        flags
    };
    let out = if role == "userns" {
        run_child_userns("child_rootfs", role, t.path(), flags)
    } else {
        run_child("child_rootfs", role, t.path(), flags, None)
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    if role == "console" {
        // Stdio went to the pty: the exit status is the verdict.
    } else if role != "badbind" {
        assert!(
            stdout.contains("from the host"),
            "busybox did not run:\n{stdout}\n{stderr}"
        );
    } else {
        assert!(stdout.contains("ERROR: "), "{stdout}");
    }
    // Nothing leaked to the host.
    assert!(
        mount_points_under(t.path()).is_empty(),
        "leaked: {:?}",
        mount_points_under(t.path())
    );
    assert!(
        !t.path().join("rootfs/opt/seed/new").exists(),
        "tmpcopyup wrote into the image"
    );
    assert!(
        !Path::new("/etc/podrun-escape").exists(),
        "mount escaped to the host's /etc"
    );
}

#[test]
fn rootfs_pivot_root() {
    let _serial = serial();
    rootfs_scenario("pivot");
}

#[test]
fn rootfs_cgroup_namespace() {
    let _serial = serial();
    rootfs_scenario("cgroupns");
}

#[test]
fn rootfs_user_namespace() {
    let _serial = serial();
    rootfs_scenario("userns");
}

#[test]
fn rootfs_console_bound_on_dev_console() {
    let _serial = serial();
    rootfs_scenario("console");
}

#[test]
fn rootfs_no_pivot() {
    let _serial = serial();
    rootfs_scenario("nopivot");
}

#[test]
fn rootfs_bad_bind_source_is_named_and_leaks_nothing() {
    let _serial = serial();
    rootfs_scenario("badbind");
}

fn status_field(text: &str, key: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

/// Child side of the identity scenario: rlimits, user, caps, umask,
/// seccomp, no_new_privs, then report /proc/self/status.
#[test]
#[ignore = "re-executed by identity_and_seccomp"]
fn child_identity() {
    let _serial = serial();
    let Some(_) = role() else { return };
    let p: oci_spec::runtime::Process = serde_json::from_value(serde_json::json!({
        "cwd": "/",
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [5, 6], "umask": 23},
        "capabilities": {
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}]
    }))
    .unwrap();
    let sc: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]
    }))
    .unwrap();
    let prog = seccomp::compile(&sc).unwrap();
    process::set_rlimits(p.rlimits().as_deref().unwrap()).unwrap();
    process::apply_identity(&p, capabilities::last_cap()).unwrap();
    process::set_no_new_privs().unwrap();
    assert!(seccomp::load(&prog).unwrap().is_none());
    // SAFETY: a raw syscall.
    let r = unsafe { libc::syscall(libc::SYS_getppid) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    // Capabilities, NNP and seccomp are per thread: read this thread's view.
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    for k in [
        "Uid:",
        "Gid:",
        "Groups:",
        "CapInh:",
        "CapPrm:",
        "CapEff:",
        "CapBnd:",
        "CapAmb:",
        "NoNewPrivs:",
        "Umask:",
    ] {
        println!("REPORT {k} {}", status_field(&status, k));
    }
    println!("REPORT getppid {r} {errno:?}");
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    println!(
        "REPORT nofile {}",
        nofile
            .split_whitespace()
            .skip(3)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

#[test]
fn identity_and_seccomp() {
    let _serial = serial();
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let out = run_child(
        "child_identity",
        "identity",
        t.path(),
        nix::sched::CloneFlags::empty(),
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |k: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(&format!("REPORT {k} ")).map(|x| x.1))
            .unwrap_or_else(|| panic!("no {k} in\n{stdout}"))
            .to_string()
    };
    let bit = |c: caps::Capability| 1u64 << c.index();
    let kill = bit(caps::Capability::CAP_KILL);
    let nbs = bit(caps::Capability::CAP_NET_BIND_SERVICE);
    let chown = bit(caps::Capability::CAP_CHOWN);
    let hex = |v: u64| format!("{v:016x}");
    assert_eq!(get("Uid:"), "1000\t1000\t1000\t1000");
    assert_eq!(get("Gid:"), "1001\t1001\t1001\t1001");
    assert_eq!(get("Groups:"), "5 6");
    assert_eq!(get("CapBnd:"), hex(kill | nbs | chown));
    assert_eq!(get("CapPrm:"), hex(kill | nbs));
    assert_eq!(get("CapEff:"), hex(kill | nbs));
    assert_eq!(get("CapInh:"), hex(nbs));
    assert_eq!(get("CapAmb:"), hex(nbs));
    assert_eq!(get("NoNewPrivs:"), "1");
    assert_eq!(get("Umask:"), "0027");
    assert_eq!(get("getppid"), "-1 Some(42)");
    assert_eq!(get("nofile"), "512 1024");
}

/// Child side of the console scenario: become the pty's session, write.
#[test]
#[ignore = "re-executed by console_master_reaches_socket"]
fn child_console() {
    let _serial = serial();
    let Some(_) = role() else { return };
    let fd: RawFd = std::env::var(ENV_FD).unwrap().parse().unwrap();
    console::setup_console(fd, Some((24, 100)), false).unwrap();
    // stdout is now the pty peer.
    // SAFETY: write to fd 1 and isatty on fd 0.
    unsafe {
        assert_eq!(libc::isatty(0), 1);
        let msg = b"hello-from-pty\n";
        libc::write(1, msg.as_ptr().cast(), msg.len());
    }
    // Keep the pty open until the parent has read.
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: leave without the harness writing to the pty.
    unsafe { libc::_exit(0) };
}

#[test]
fn console_master_reaches_socket() {
    let _serial = serial();
    use nix::sys::socket::{
        recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    };
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::empty(),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let child_fd = b.as_raw_fd();
    let cmd_thread = {
        let dir = t.path().to_path_buf();
        std::thread::spawn(move || {
            run_child(
                "child_console",
                "console",
                &dir,
                nix::sched::CloneFlags::empty(),
                Some(child_fd),
            )
        })
    };
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(a.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
    let mut master = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(f) = c {
            master = f.first().copied();
        }
    }
    let n = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    let master = master.expect("master fd");
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ into our struct.
    assert_eq!(unsafe { libc::ioctl(master, libc::TIOCGWINSZ, &mut ws) }, 0);
    assert_eq!((ws.ws_row, ws.ws_col), (24, 100));
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !String::from_utf8_lossy(&got).contains("hello-from-pty")
        && std::time::Instant::now() < deadline
    {
        let mut tmp = [0u8; 256];
        // SAFETY: read into our buffer.
        let k = unsafe { libc::read(master, tmp.as_mut_ptr().cast(), tmp.len()) };
        if k <= 0 {
            break;
        }
        got.extend_from_slice(&tmp[..k as usize]);
    }
    let out = cmd_thread.join().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&got).contains("hello-from-pty"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // SAFETY: closing the received fd.
    unsafe { libc::close(master) };
    drop(b);
}

/// Child side of the seccomp notify scenario: load a filter whose getppid
/// goes to a listener, hand the listener fd over, and see the answer.
#[test]
#[ignore = "re-executed by seccomp_notify_reaches_listener"]
fn child_seccomp_notify() {
    let _serial = serial();
    let Some(_) = role() else { return };
    let sock: RawFd = std::env::var(ENV_FD).unwrap().parse().unwrap();
    let sc: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/unused.sock",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .unwrap();
    let prog = seccomp::compile(&sc).unwrap();
    assert!(prog.uses_notify());
    process::set_no_new_privs().unwrap();
    let fd = seccomp::load(&prog).unwrap().expect("a listener fd");
    console::send_fd(sock, "seccomp", fd.as_raw_fd()).unwrap();
    drop(fd);
    // SAFETY: a raw syscall; the listener answers it.
    let r = unsafe { libc::syscall(libc::SYS_getppid) };
    println!("REPORT getppid {r}");
}

#[test]
fn seccomp_notify_reaches_listener() {
    let _serial = serial();
    use nix::sys::socket::{
        recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    };
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::empty(),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let child_fd = b.as_raw_fd();
    let dir = t.path().to_path_buf();
    let runner = std::thread::spawn(move || {
        run_child(
            "child_seccomp_notify",
            "notify",
            &dir,
            nix::sched::CloneFlags::empty(),
            Some(child_fd),
        )
    });
    let mut buf = [0u8; 16];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(a.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
    let mut listener = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(f) = c {
            listener = f.first().copied();
        }
    }
    let listener = listener.expect("listener fd");
    let req = libseccomp::ScmpNotifReq::receive(listener).unwrap();
    assert_eq!(req.data.syscall.get_name().unwrap(), "getppid");
    libseccomp::ScmpNotifResp::new_val(req.id, 4242, libseccomp::ScmpNotifRespFlags::empty())
        .respond(listener)
        .unwrap();
    let out = runner.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("REPORT getppid 4242"), "{stdout}");
    // SAFETY: closing the received descriptor.
    unsafe { libc::close(listener) };
    drop(b);
}

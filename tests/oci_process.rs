//! The container process: capabilities, noNewPrivileges, rlimits, user,
//! umask, cwd, env, oomScoreAdj, exec, and a tty through --console-socket.
mod common;

use common::*;
use serde_json::json;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn run_status(c: &mut Ctr) -> String {
    let o = c.run_sh("cat /proc/self/status");
    assert_ok(&o, "run");
    stdout(&o)
}

#[test]
fn default_capabilities() {
    let mut c = Ctr::new("caps-default");
    let st = run_status(&mut c);
    let want = caps_to_mask(&DEFAULT_CAPS);
    assert_eq!(cap_mask(&st, "CapEff"), want, "CapEff");
    assert_eq!(cap_mask(&st, "CapPrm"), want, "CapPrm");
    assert_eq!(cap_mask(&st, "CapBnd"), want, "CapBnd");
    // runc spec lists no inheritable set; ambient can hold at most those caps.
    assert_eq!(
        cap_mask(&st, "CapAmb") & !want,
        0,
        "CapAmb beyond the allowed set"
    );
}

#[test]
fn custom_capabilities_all_sets() {
    let mut c = Ctr::new("caps-custom");
    let caps = ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"];
    c.caps(&caps);
    let st = run_status(&mut c);
    let want = caps_to_mask(&caps);
    for f in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(cap_mask(&st, f), want, "{f} in {st}");
    }
}

#[test]
fn ambient_capabilities_for_non_root_user() {
    let mut c = Ctr::new("caps-nonroot");
    let caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    c.caps(&caps);
    c.user(1000, 1000, &[]);
    let st = run_status(&mut c);
    let want = caps_to_mask(&caps);
    assert!(status_field(&st, "Uid").starts_with("1000"), "{st}");
    assert_eq!(
        cap_mask(&st, "CapEff"),
        want,
        "ambient caps survive the uid change"
    );
    assert_eq!(cap_mask(&st, "CapAmb"), want);
}

#[test]
fn no_caps_when_lists_empty() {
    let mut c = Ctr::new("caps-none");
    c.caps(&[]);
    let st = run_status(&mut c);
    for f in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(cap_mask(&st, f), 0, "{f}");
    }
}

#[test]
fn no_new_privileges() {
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut c = Ctr::new("nnp");
        c.config["process"]["noNewPrivileges"] = json!(nnp);
        let st = run_status(&mut c);
        assert_eq!(
            status_field(&st, "NoNewPrivs"),
            want,
            "noNewPrivileges={nnp}"
        );
    }
}

fn host_nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid rlimit out-pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    assert_eq!(rc, 0);
    (r.rlim_cur, r.rlim_max)
}

fn limits_line(limits: &str, name: &str) -> (String, String) {
    let l = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} in {limits}"));
    let rest: Vec<&str> = l[name.len()..].split_whitespace().collect();
    (rest[0].to_string(), rest[1].to_string())
}

#[test]
fn rlimits_applied() {
    let (_, host_hard) = host_nofile();
    // Never raise the hard limit above what the host allows.
    let hard = host_hard.min(1000);
    let soft = hard / 2;
    let mut c = Ctr::new("rlimits");
    c.rlimits(json!([
        {"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]));
    let o = c.run_sh("cat /proc/self/limits");
    assert_ok(&o, "run");
    let lim = stdout(&o);
    assert_eq!(
        limits_line(&lim, "Max open files"),
        (soft.to_string(), hard.to_string()),
        "{lim}"
    );
    assert_eq!(
        limits_line(&lim, "Max core file size"),
        ("0".into(), "0".into()),
        "{lim}"
    );
}

#[test]
fn rlimit_refused_fails_clearly_and_leaves_nothing() {
    // Above fs.nr_open the kernel refuses RLIMIT_NOFILE even for root.
    let nr_open: u64 = fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut c = Ctr::new("rlimit-refused");
    c.rlimits(json!([{"type": "RLIMIT_NOFILE", "soft": nr_open + 1, "hard": nr_open + 1}]));
    c.args(&["true"]);
    let o = c.try_create();
    assert_error(&o, &[], &["RLIMIT_NOFILE"]);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[test]
fn user_uid_gid_additional_gids() {
    let mut c = Ctr::new("user");
    c.user(1000, 1000, &[10, 20]);
    let o = c.run_sh("cat /proc/self/status; echo ID=$(id -un):$(id -u):$(id -g)");
    assert_ok(&o, "run");
    let st = stdout(&o);
    assert_eq!(
        status_field(&st, "Uid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(
        status_field(&st, "Gid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000"; 4]
    );
    let mut groups: Vec<&str> = status_field(&st, "Groups").split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "20"], "supplementary groups: {st}");
    assert!(st.contains("ID=user:1000:1000"), "{st}");
}

#[test]
fn umask_applied() {
    let mut c = Ctr::new("umask");
    c.config["process"]["user"]["umask"] = json!(0o077);
    c.bind(&c.dir.clone(), "/scratch", false);
    let o = c.run_sh("umask; touch /scratch/f; mkdir /scratch/d");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o).trim(), "0077");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(c.dir.join("f")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(c.dir.join("d")).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn cwd_applied() {
    let mut c = Ctr::new("cwd");
    c.cwd("/etc");
    let o = c.run_sh("pwd; readlink /proc/self/cwd");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "/etc\n/etc\n");
}

#[test]
fn env_applied_exactly() {
    let mut c = Ctr::new("env");
    c.config["process"]["env"] =
        json!(["PATH=/bin:/sbin", "FOO=bar", "WITH_SPACE=a b  c", "EMPTY="]);
    let o = c.run_sh("echo \"FOO=$FOO\"; echo \"WS=$WITH_SPACE\"; echo \"E=${EMPTY-unset}\"; echo \"T=${TERM-unset}\"");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "FOO=bar\nWS=a b  c\nE=\nT=unset\n");
}

#[test]
fn oom_score_adj() {
    let mut c = Ctr::new("oomscore");
    c.config["process"]["oomScoreAdj"] = json!(500);
    let o = c.run_sh("cat /proc/self/oom_score_adj");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o).trim(), "500");
}

// ----- exec ------------------------------------------------------------------

#[test]
fn exec_args_env_cwd_user_and_exit_code() {
    let mut c = Ctr::new("exec");
    c.start_sleeper();
    let o = c.exec(&["sh", "-c", "echo hi; exit 7"]);
    assert_eq!(code(&o.status), 7, "{}", describe(&o));
    assert_eq!(stdout(&o), "hi\n");

    let o = c.exec_opts(
        &[
            "--env",
            "FOO=exec-env",
            "--cwd",
            "/etc",
            "--user",
            "1000:1000",
        ],
        &["sh", "-c", "echo $FOO; pwd; id -u; id -g"],
    );
    assert_ok(&o, "exec with options");
    assert_eq!(stdout(&o), "exec-env\n/etc\n1000\n1000\n");
}

/// HOME, as runc sets it: kept when process.env has it, else the user's home from the
/// container's /etc/passwd, else "/"; for exec too.
#[test]
fn home_from_the_containers_passwd() {
    for (uid, env, want) in [
        (0, None, "/root"),
        (1000, None, "/home/user"),
        (4242, None, "/"),
        (1000, Some("HOME=/custom"), "/custom"),
    ] {
        let mut c = Ctr::new("home");
        c.user(uid, uid, &[]);
        if let Some(e) = env {
            c.env(e);
        }
        let o = c.run_sh("echo $HOME");
        assert_ok(&o, "run");
        assert_eq!(stdout(&o).trim(), want, "uid {uid}, env {env:?}");
    }
    let mut c = Ctr::new("home-exec");
    c.start_sleeper();
    let o = c.exec_opts(&["--user", "1000:1000"], &["sh", "-c", "echo $HOME"]);
    assert_ok(&o, "exec");
    assert_eq!(stdout(&o).trim(), "/home/user");
}

/// runc's exit codes for exec: the process's own status when it ran (1 here), 255 when exec
/// itself failed (a missing program, a stopped container), so that the two are told apart.
#[test]
fn exec_failure_exits_255() {
    let mut c = Ctr::new("exec-255");
    c.start_sleeper();
    let o = c.exec(&["sh", "-c", "exit 1"]);
    assert_eq!(code(&o.status), 1, "{}", describe(&o));
    let o = c.exec(&["/no/such/program"]);
    assert_eq!(code(&o.status), 255, "{}", describe(&o));
    c.kill("KILL");
    c.wait_status("stopped");
    let o = c.exec(&["true"]);
    assert_eq!(code(&o.status), 255, "{}", describe(&o));
}

#[test]
fn exec_joins_init_namespaces() {
    let mut c = Ctr::new("exec-ns");
    c.start_sleeper();
    let init = c.pid();
    let kinds = ["pid", "net", "ipc", "uts", "mnt"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let o = c.exec(&["sh", "-c", &script]);
    assert_ok(&o, "exec");
    let got: Vec<String> = stdout(&o).lines().map(String::from).collect();
    let want: Vec<String> = kinds
        .iter()
        .map(|k| {
            fs::read_link(format!("/proc/{init}/ns/{k}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(got, want);
    // and its cgroup
    let o = c.exec(&["cat", "/proc/self/cgroup"]);
    let s = stdout(&o);
    assert!(
        s.lines()
            .any(|l| l.contains(":memory:") && l.ends_with(&c.cgroups_path)),
        "exec cgroup: {s}"
    );
}

#[test]
fn exec_detach_pid_file() {
    let mut c = Ctr::new("exec-detach");
    c.start_sleeper();
    let pidfile = c.dir.join("exec.pid");
    let o = c.exec_opts(
        &["--detach", "--pid-file", pidfile.to_str().unwrap()],
        &["sleep", "999"],
    );
    assert_ok(&o, "exec --detach");
    let pid: i64 = fs::read_to_string(&pidfile)
        .expect("pid file written")
        .trim()
        .parse()
        .expect("pid");
    assert!(pid_alive(pid), "detached exec process {pid} alive");
    let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmd, "sleep\0999\0");
    let procs = fs::read_to_string(c.cgroup_dir("memory").join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "{pid} not in container cgroup: {procs}"
    );
    let o = c.rt(&["ps", "--format", "json", &c.id]);
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(pids.contains(&pid), "ps {pids:?}");
}

#[test]
fn exec_process_json() {
    let mut c = Ctr::new("exec-process");
    c.start_sleeper();
    let p = c.dir.join("process.json");
    fs::write(
        &p,
        serde_json::to_vec(&json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sh", "-c", "echo $X; pwd; id -u; exit 4"],
            "env": ["PATH=/bin:/usr/bin", "X=from-process-json"],
            "cwd": "/tmp"
        }))
        .unwrap(),
    )
    .unwrap();
    let o = c.exec_opts(&["--process", p.to_str().unwrap()], &[]);
    assert_eq!(code(&o.status), 4, "{}", describe(&o));
    assert_eq!(stdout(&o), "from-process-json\n/tmp\n1000\n");
}

#[test]
fn exec_unknown_binary_fails() {
    let mut c = Ctr::new("exec-nobin");
    c.start_sleeper();
    let o = c.exec(&["/no/such/binary"]);
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        stderr(&o).contains("/no/such/binary"),
        "error names the binary: {}",
        describe(&o)
    );
    assert_eq!(
        c.status(),
        "running",
        "a failed exec does not hurt the container"
    );
}

// ----- tty via --console-socket ---------------------------------------------

/// Accept one connection on `sock` and receive the pty master via SCM_RIGHTS.
fn receive_master(listener: UnixListener) -> std::thread::JoinHandle<OwnedFd> {
    std::thread::spawn(move || {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::AsRawFd;
        let (stream, _) = listener.accept().expect("accept console socket");
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .expect("recvmsg");
        for cm in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(fds) = cm {
                // SAFETY: the fd was just received via SCM_RIGHTS and is owned by us.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("no SCM_RIGHTS fd received on the console socket");
    })
}

fn console_run(c: &mut Ctr, script: &str) -> String {
    c.terminal(true);
    c.sh(script);
    let sock = c.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let h = receive_master(listener);
    c.save();
    let b = c.bundle.to_str().unwrap().to_string();
    let o = c.rt(&[
        "create",
        "--bundle",
        &b,
        "--console-socket",
        sock.to_str().unwrap(),
        &c.id,
    ]);
    assert_ok(&o, "create --console-socket");
    let master = h.join().expect("console receiver");
    c.start();
    let out = read_all_bounded(fs::File::from(master), Duration::from_secs(30));
    c.wait_status("stopped");
    String::from_utf8_lossy(&out).replace('\r', "")
}

#[test]
fn tty_console_socket() {
    let mut c = Ctr::new("tty");
    let out = console_run(
        &mut c,
        "test -t 0 && test -t 1 && echo IS-A-TTY; tty; echo done",
    );
    assert!(out.contains("IS-A-TTY"), "stdin/stdout not a tty: {out:?}");
    assert!(
        out.contains("/dev/pts/") || out.contains("/dev/console"),
        "tty name: {out:?}"
    );
    assert!(out.contains("done"), "{out:?}");
}

#[test]
fn terminal_without_console_socket_fails() {
    let mut c = Ctr::new("tty-nosock");
    c.terminal(true);
    c.args(&["true"]);
    let o = c.try_create();
    assert_error(&o, &[], &["console"]);
}

#[test]
fn exec_tty_console_socket() {
    let mut c = Ctr::new("exec-tty");
    c.start_sleeper();
    let sock = c.dir.join("exec-console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let h = receive_master(listener);
    let reader = std::thread::spawn(move || {
        let master = h.join().expect("console receiver");
        read_all_bounded(fs::File::from(master), Duration::from_secs(30))
    });
    // runc only accepts --console-socket for exec together with --detach.
    let o = c.exec_opts(
        &[
            "--detach",
            "--tty",
            "--console-socket",
            sock.to_str().unwrap(),
        ],
        &["sh", "-c", "test -t 0 && test -t 1 && echo EXEC-TTY; tty"],
    );
    assert_ok(&o, "exec --detach --tty --console-socket");
    let out = String::from_utf8_lossy(&reader.join().unwrap()).replace('\r', "");
    assert!(out.contains("EXEC-TTY"), "exec stdio not a tty: {out:?}");
    assert!(out.contains("/dev/pts/"), "tty name: {out:?}");
}

#[test]
fn seccomp_errno_rule() {
    let mut c = Ctr::new("seccomp");
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    c.add_mount(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
    let o = c.run_sh(
        "mkdir /data/x 2>&1; touch /data/y && echo TOUCH-OK; grep Seccomp: /proc/self/status",
    );
    assert_ok(&o, "run");
    let s = stdout(&o);
    assert!(
        s.contains("Operation not permitted"),
        "mkdir not denied with EPERM: {s}"
    );
    assert!(s.contains("TOUCH-OK"), "other syscalls allowed: {s}");
    assert!(s.contains("Seccomp:\t2"), "seccomp filter mode: {s}");
}

#[test]
fn exec_into_user_namespace() {
    let mut c = Ctr::new("exec-userns");
    c.namespace("user", None);
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    chown_tree(&c.rootfs, 200000, 200000);
    c.start_sleeper();
    let o = c.exec(&["sh", "-c", "cat /proc/self/uid_map; id -u"]);
    assert_ok(&o, "exec");
    let s = stdout(&o);
    let l: Vec<Vec<&str>> = s.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(l[0], ["0", "200000", "65536"], "{s}");
    assert_eq!(l[1], ["0"], "{s}");
    let init = c.pid();
    let o = c.exec(&["readlink", "/proc/self/ns/user"]);
    let want = fs::read_link(format!("/proc/{init}/ns/user")).unwrap();
    assert_eq!(stdout(&o).trim(), want.to_str().unwrap());
}

#[test]
fn exec_inherits_config_env_and_adds_caps() {
    let mut c = Ctr::new("exec-envcap");
    c.env("FROM_CONFIG=yes");
    c.start_sleeper();
    let o = c.exec(&[
        "sh",
        "-c",
        "echo $FROM_CONFIG; grep CapEff /proc/self/status",
    ]);
    assert_ok(&o, "exec");
    let s = stdout(&o);
    assert!(s.starts_with("yes\n"), "exec lacks the config env: {s}");
    assert_eq!(cap_mask(&s, "CapEff"), caps_to_mask(&DEFAULT_CAPS), "{s}");
    let o = c.exec_opts(
        &["--cap", "CAP_NET_RAW"],
        &["grep", "-E", "CapEff|CapInh", "/proc/self/status"],
    );
    assert_ok(&o, "exec --cap");
    let want = caps_to_mask(&DEFAULT_CAPS) | caps_to_mask(&["CAP_NET_RAW"]);
    assert_eq!(cap_mask(&stdout(&o), "CapEff"), want, "{}", describe(&o));
    // CVE-2022-29162: --cap does not make the capability inheritable.
    assert_eq!(
        cap_mask(&stdout(&o), "CapInh") & caps_to_mask(&["CAP_NET_RAW"]),
        0,
        "{}",
        describe(&o)
    );
}

/// Signals ignored by the runtime's caller (here the test process, which
/// ignores SIGPIPE as every Rust program does; add SIGINT) must not stay
/// ignored in the container: execve keeps SIG_IGN.
#[test]
fn ignored_signals_are_not_inherited() {
    // SAFETY: setting a disposition; the test process restores it below.
    let old = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let mut c = Ctr::new("sigign");
    c.args(&["grep", "SigIgn", "/proc/self/status"]);
    let o = c.run();
    // SAFETY: restoring the previous disposition.
    unsafe { libc::signal(libc::SIGINT, old) };
    assert_ok(&o, "run");
    assert_eq!(stdout(&o).trim(), "SigIgn:\t0000000000000000");
}

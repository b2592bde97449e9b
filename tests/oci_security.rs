//! Regression tests for container-breakout CVEs that hit runc.
//!
//! CVE-2019-5736: a container process reaching the host runtime binary
//! through /proc/<pid>/exe (e.g. via a `#!/proc/self/exe` entrypoint run by
//! `exec`) and overwriting it.
//! CVE-2024-21626: host fds leaked into the container (an fd on a host
//! directory) and `process.cwd = /proc/self/fd/N` giving a host cwd.
mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::Duration;

/// Scanner run as the container's init: find a process whose exe is not
/// busybox (i.e. the runtime binary entering the container), hold its exe
/// open read-only, wait for it to exit, then try to reopen it for writing and
/// write the byte already at offset 0 (0x7f, ELF magic: content unchanged).
const SCANNER: &str = r#"
while [ ! -e /shared/caught ]; do
  for d in /proc/[0-9]*; do
    [ "$d" = /proc/1 ] && continue
    [ -e /shared/caught ] && break
    (
      exec 3< "$d/exe" || exit 1
      cmp -s /proc/self/fd/3 /bin/busybox && exit 1
      echo "${d#/proc/} $(readlink $d/exe)" > /shared/caught
      while [ -e "$d" ]; do usleep 10000; done
      i=0; r=DENIED
      while [ $i -lt 200 ]; do
        if (exec 4<>/proc/self/fd/3 && printf '\177' >&4) 2>/shared/errors; then r=WRITE_OK; break; fi
        grep -q busy /shared/errors || break
        usleep 20000; i=$((i+1))
      done
      echo $r > /shared/result
    ) 2>/dev/null
  done
done
sleep 1000
"#;

/// A pipe whose write end is already full, so a writer blocks on it.
fn full_pipe() -> (fs::File, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid 2-int array for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    // SAFETY: both fds were just created by pipe2 and are owned here.
    let (r, w) = unsafe { (fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = fds[1];
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(wfd, libc::F_SETFL, libc::O_NONBLOCK) };
    let mut wf = fs::File::from(w.try_clone().unwrap());
    let chunk = [b'.'; 4096];
    loop {
        match wf.write(&chunk) {
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("fill pipe: {e}"),
        }
    }
    // SAFETY: fcntl on an fd we own; back to blocking writes.
    unsafe { libc::fcntl(wfd, libc::F_SETFL, 0) };
    (r, w)
}

#[test]
fn cve_2019_5736_runtime_binary_not_writable_from_container() {
    cve_2019_5736(None);
}

/// The same with podrun's fallback forced: re-exec from the sealed view
/// instead of switching the executable in place.
#[test]
fn cve_2019_5736_with_the_re_exec_fallback() {
    if !is_podrun() {
        return;
    }
    cve_2019_5736(Some(("PODRUN_SEAL", "exec")));
}

/// What a process exec'd into the container checks on its init: is pid 1 something else
/// than busybox (the runtime binary), and can its executable be opened for writing?
const PID1_PROBE: &str = r#"
exec 3< /proc/1/exe || { echo NO-EXE > /shared/result; exit 0; }
cmp -s /proc/self/fd/3 /bin/busybox && { echo BUSYBOX > /shared/result; exit 0; }
readlink /proc/1/exe > /shared/caught
if (exec 4<>/proc/self/fd/3 && printf '\177' >&4) 2>/shared/errors; then r=WRITE_OK; else r=DENIED; fi
echo $r > /shared/result
"#;

/// CVE-2019-5736 through the container's init itself: its entrypoint is a script whose
/// interpreter is /proc/self/exe, so the init's execve runs the runtime binary as pid 1 of
/// the container (where it blocks writing its help text to a full pipe). podrun's init
/// seals itself before it reports ready (late sealing): what it executes there is the
/// read-only view, never the host binary.
#[test]
fn cve_2019_5736_through_the_init_entrypoint() {
    for env in [None, Some(("PODRUN_SEAL", "early"))] {
        if env.is_some() && !is_podrun() {
            continue;
        }
        let rt = runtime();
        let sha_before = sha256(&rt);
        let (mut c, shared) = evil_container("cve-5736-init", env);
        c.args(&["/evil"]);
        c.save();
        // The init's stdout: a full pipe, so the runtime binary it runs blocks there.
        let (read_end, write_end) = full_pipe();
        let b = c.bundle.to_str().unwrap().to_string();
        let mut cmd = c.command(&["create", "--bundle", &b, &c.id]);
        cmd.stdout(Stdio::from(write_end))
            .stderr(fs::File::create(c.dir.join("create.err")).unwrap());
        let mut child = cmd.spawn().unwrap();
        drop(cmd);
        let st = wait_child(&mut child, "create", CMD_TIMEOUT);
        assert!(
            st.success(),
            "create: {}",
            fs::read_to_string(c.dir.join("create.err")).unwrap_or_default()
        );
        c.start();
        let probed = c.exec(&["sh", "-c", PID1_PROBE]);
        assert_ok(&probed, "exec the probe");
        let result = fs::read_to_string(shared.join("result")).unwrap_or_default();
        let caught = fs::read_to_string(shared.join("caught")).unwrap_or_default();
        let errors = fs::read_to_string(shared.join("errors")).unwrap_or_default();
        drop(read_end);
        eprintln!("{env:?}: pid 1 is {caught:?}: {result:?} ({errors:?})");
        assert_eq!(sha256(&rt), sha_before, "host runtime binary modified");
        assert!(
            !caught.is_empty(),
            "pid 1 should be the runtime binary here: {result:?}"
        );
        assert_eq!(result.trim(), "DENIED", "{env:?}: caught {caught:?}");
        assert!(
            !errors.contains("busy"),
            "{env:?}: pid 1 runs the host binary itself (ETXTBSY): {caught:?} {errors:?}"
        );
    }
}

/// On this kernel, as root, podrun seals itself in place (no second execve):
/// the fast path the benchmarks measure is the one taken.
#[test]
fn podrun_seals_in_place_without_re_exec() {
    if !is_podrun() {
        return;
    }
    // `run` of `true` with stage traces; the traces.
    fn traced_run(mut c: Ctr) -> String {
        c.sh("true");
        c.rt_env.push(("PODRUN_TRACE_TIMING".into(), "1".into()));
        let o = c.run();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "run: {err}");
        // One podrun process image: `main` is reached once, not again after a re-exec.
        assert_eq!(err.matches(" main\n").count(), 1, "{err}");
        err
    }
    // A container with its own pid namespace: the init seals itself first thing.
    let err = traced_run(Ctr::new("seal-in-place"));
    assert!(err.contains("init: sealed"), "{err}");
    assert!(!err.contains("selfexe: sealed in place"), "{err}");

    // Sharing the host's pid namespace, the runtime seals itself before the clone.
    let mut c = Ctr::new("seal-in-place-hostpid");
    let ns = c.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    let err = traced_run(c);
    assert!(err.contains("selfexe: sealed in place"), "{err}");
    assert!(!err.contains("init: sealed"), "{err}");
}

/// A container for the CVE-2019-5736 tests: `env` for the runtime, a host directory
/// shared at /shared (returned), and /evil, a script whose interpreter is /proc/self/exe.
fn evil_container(name: &str, env: Option<(&str, &str)>) -> (Ctr, std::path::PathBuf) {
    let mut c = Ctr::new(name);
    if let Some((k, v)) = env {
        c.rt_env.push((k.into(), v.into()));
    }
    let shared = c.dir.join("shared");
    fs::create_dir(&shared).unwrap();
    c.bind(&shared, "/shared", false);
    let evil = c.rootfs.join("evil");
    fs::write(&evil, "#!/proc/self/exe --help\n").unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    (c, shared)
}

fn cve_2019_5736(env: Option<(&str, &str)>) {
    let rt = runtime();
    let sha_before = sha256(&rt);
    let mtime_before = fs::metadata(&rt).unwrap().mtime_nsec();

    let (mut c, shared) = evil_container("cve-2019-5736", env);
    c.sh(SCANNER);
    c.create();
    c.start();
    c.wait_status("running");

    // `exec /evil`: the kernel runs the interpreter /proc/self/exe of the
    // process doing the execve, i.e. the runtime binary, inside the container,
    // as `<runtime> --help /evil`. Its help text goes to a full pipe, so it
    // blocks there for the scanner. (The exec command's own errors go to a file.)
    let (read_end, write_end) = full_pipe();
    let errf = c.dir.join("exec-evil.err");
    let mut cmd = c.command(&["exec", &c.id, "/evil"]);
    cmd.stdout(Stdio::from(write_end))
        .stderr(fs::File::create(&errf).unwrap());
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut exited = None;
    let caught = poll(
        "the runtime binary inside the container, or exec to return",
        WAIT,
        || {
            if let Some(c) = fs::read_to_string(shared.join("caught"))
                .ok()
                .filter(|s| s.ends_with('\n'))
            {
                return Some(Some(c));
            }
            exited = child.try_wait().unwrap();
            exited.map(|_| None)
        },
    );
    let Some(caught) = caught else {
        // The runtime refused to execute itself via /proc/self/exe in the
        // container (runc 1.1.5: "exec /evil: no such file or directory").
        let st = exited.unwrap();
        assert!(
            !st.success(),
            "exec /evil succeeded without the runtime binary showing up inside"
        );
        assert_eq!(sha256(&rt), sha_before, "host runtime binary modified");
        eprintln!(
            "note: runtime never exposed its binary inside: {}",
            fs::read_to_string(&errf).unwrap_or_default()
        );
        return;
    };
    let drained = std::thread::spawn(move || read_all_bounded(read_end, Duration::from_secs(60)));
    let _ = wait_child(&mut child, "exec /evil", CMD_TIMEOUT);
    let _ = drained.join();
    let result = poll("scanner result", WAIT, || {
        fs::read_to_string(shared.join("result"))
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    let errors = fs::read_to_string(shared.join("errors")).unwrap_or_default();
    eprintln!("caught {caught:?}: reopen for write {result:?} ({errors:?})");

    assert_eq!(
        sha256(&rt),
        sha_before,
        "host runtime binary modified! caught {caught}"
    );
    assert_eq!(
        fs::metadata(&rt).unwrap().mtime_nsec(),
        mtime_before,
        "host runtime binary written to"
    );
    assert_eq!(
        result.trim(),
        "DENIED",
        "container reopened the runtime binary for writing (caught {caught:?})"
    );
    assert!(
        !errors.contains("busy"),
        "the container holds the host runtime binary itself (ETXTBSY only because it was running): caught {caught:?}, {errors:?}"
    );
}

/// fds of `ls -l /proc/self/fd` output other than 0,1,2 and ls's own
/// directory fd.
fn extra_fds(ls: &str) -> Vec<String> {
    ls.lines()
        .filter_map(|l| l.split_once(" -> "))
        .filter_map(|(left, target)| {
            let fd = left.split_whitespace().last()?;
            if ["0", "1", "2"].contains(&fd) {
                return None;
            }
            let is_own_dir = target.starts_with("/proc/") && target.ends_with("/fd");
            (!is_own_dir).then(|| format!("{fd} -> {target}"))
        })
        .collect()
}

#[test]
fn cve_2024_21626_no_leaked_fds_in_init_or_exec() {
    let mut c = Ctr::new("cve-21626-fds");
    c.sh("ls -l /proc/self/fd; echo ---; sleep 1000");
    c.create();
    c.start();
    poll("init fd listing", WAIT, || {
        c.container_stdout().contains("---").then_some(())
    });
    let init = c.container_stdout();
    assert!(init.contains(" 0 -> "), "listing parsed: {init}");
    let extra = extra_fds(&init);
    assert!(
        extra.is_empty(),
        "fds leaked into the container init: {extra:?}\n{init}"
    );
    let o = c.exec(&["ls", "-l", "/proc/self/fd"]);
    assert_ok(&o, "exec ls");
    let extra = extra_fds(&stdout(&o));
    assert!(
        extra.is_empty(),
        "fds leaked into exec: {extra:?}\n{}",
        stdout(&o)
    );
    // Nothing on the host side either: the init's fds seen from the host.
    let pid = c.pid();
    for e in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let n: u32 = e.file_name().to_string_lossy().parse().unwrap();
        let t = fs::read_link(e.path()).unwrap();
        assert!(n <= 2, "container init holds fd {n} -> {}", t.display());
    }
}

fn host_hostname_file() -> String {
    fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Escape attempt: walk up from the cwd and read /etc/hostname there.
const ESCAPE: &str =
    "readlink /proc/self/cwd; cat ../../../../../../../../../../etc/hostname 2>/dev/null; echo END";

fn assert_cwd_contained(out: &str, what: &str) {
    assert!(
        !out.contains("unreachable"),
        "{what}: cwd outside the container root: {out}"
    );
    let host = host_hostname_file();
    if !host.is_empty() && host != "rootfs" {
        assert!(
            !out.contains(&host),
            "{what}: read the host's /etc/hostname: {out}"
        );
    }
}

#[test]
fn cve_2024_21626_cwd_proc_self_fd_is_not_a_host_dir() {
    for fd in 3..=9 {
        let mut c = Ctr::new("cve-21626-cwd");
        c.cwd(&format!("/proc/self/fd/{fd}"));
        let o = c.run_sh(ESCAPE);
        if o.status.success() {
            assert_cwd_contained(&stdout(&o), &format!("cwd=/proc/self/fd/{fd}"));
        }
    }
}

#[test]
fn cve_2024_21626_exec_cwd_proc_self_fd_is_not_a_host_dir() {
    let mut c = Ctr::new("cve-21626-exec");
    c.start_sleeper();
    for fd in 3..=9 {
        let cwd = format!("/proc/self/fd/{fd}");
        let o = c.exec_opts(&["--cwd", &cwd], &["sh", "-c", ESCAPE]);
        if o.status.success() {
            assert_cwd_contained(&stdout(&o), &format!("exec --cwd {cwd}"));
        }
    }
    assert_eq!(c.status(), "running");
}

/// CVE-2016-9962: a created container's init runs podrun's code as the container's root
/// user with the container's capabilities while it holds descriptors of host objects (the
/// state directory, the host's /proc, cgroup directories). A process exec'd into the
/// container as that same user, with those same capabilities, must not reach them through
/// /proc/1. Once started, pid 1 is the container's own program and is reachable again, as
/// with runc (execve restores dumpability).
#[test]
fn cve_2016_9962_created_init_is_not_reachable_through_proc() {
    let mut c = Ctr::new("cve-9962");
    c.args(&["sleep", "1000"]);
    c.create();
    let probe = "readlink /proc/1/fd/0 >/dev/null 2>&1 && echo FD-REACHABLE || echo FD-DENIED; \
                 cat /proc/1/environ >/dev/null 2>&1 && echo ENV-REACHABLE || echo ENV-DENIED";
    let probe_pid1 = |when: &str| {
        let o = c.exec(&["sh", "-c", probe]);
        assert_ok(&o, &format!("exec probe ({when})"));
        stdout(&o)
    };
    assert_eq!(
        probe_pid1("created"),
        "FD-DENIED\nENV-DENIED\n",
        "the waiting init is reachable from inside the container"
    );
    // The host side still sees everything (root with CAP_SYS_PTRACE).
    let pid = c.pid();
    assert!(fs::read_dir(format!("/proc/{pid}/fd")).is_ok());
    c.start();
    assert_eq!(
        probe_pid1("running"),
        "FD-REACHABLE\nENV-REACHABLE\n",
        "the container's own program lost its usual dumpability"
    );
}

/// Where the init cannot switch to the sealed view (a kernel that refuses it; simulated
/// with PODRUN_SEAL=init-fails), the first attempt is undone and podrun seals itself before
/// the clone instead: the container still runs, and nothing of the first attempt is left.
#[test]
fn init_that_cannot_seal_itself_falls_back_to_a_sealed_runtime() {
    if !is_podrun() {
        return;
    }
    let mut c = Ctr::new("seal-fallback");
    c.sh("echo ran");
    c.rt_env.push(("PODRUN_SEAL".into(), "init-fails".into()));
    c.rt_env.push(("PODRUN_TRACE_TIMING".into(), "1".into()));
    let o = c.run();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run: {err}");
    assert_eq!(stdout(&o).trim(), "ran");
    assert!(err.contains("selfexe: sealed in place"), "{err}");
    assert!(!err.contains("init: sealed"), "{err}");
    // Two attempts at create, one state entry, no cgroup left.
    assert_eq!(err.matches("create: start").count(), 2, "{err}");
    assert!(!c.root.join(&c.id).exists(), "state left behind");
}

/// `--root` inside the binary's own directory (a CI job running `./podrun --root ./state`):
/// overlayfs refuses the overlapping layers there, and podrun must still seal itself with
/// the read-only overlay (another empty layer), not by copying its 13 MB into a memfd.
#[test]
fn sealing_with_the_state_root_next_to_the_binary() {
    if !is_podrun() {
        return;
    }
    let mut c = Ctr::new("seal-next-to");
    c.args(&["true"]);
    c.save();
    let dir = c.dir.join("bin");
    fs::create_dir(&dir).unwrap();
    let bin = dir.join("podrun");
    fs::copy(runtime(), &bin).unwrap();
    let root = dir.join("state");
    let id = format!("{}-x", c.id);
    let o = std::process::Command::new(&bin)
        .args(["--root", root.to_str().unwrap(), "run", "--bundle"])
        .arg(&c.bundle)
        .arg(&id)
        .env("PODRUN_TRACE_TIMING", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run: {err}");
    assert!(err.contains("selfexe: overlay ready"), "{err}");
    assert!(!err.contains("memfd"), "{err}");
    assert!(err.contains("init: sealed"), "{err}");
    assert!(!root.join(&id).exists(), "state left behind");
}

//! OCI hooks: run each hook (path, args with args[0] as argv0, env), feed it
//! the container state JSON on stdin, capture stdout/stderr, enforce the
//! timeout. Runs in the runtime process (or, for createContainer and
//! startContainer, in a process inside the container's namespaces). Uses a
//! poll loop instead of threads so it is also safe in a freshly forked
//! single-threaded process.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// The hook points of the OCI runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    /// The name used in config.json.
    pub fn as_str(&self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cap on captured output per stream.
const MAX_OUTPUT: usize = 64 * 1024;

/// What a finished hook produced.
#[derive(Debug)]
pub struct HookOutput {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Run every hook of `kind` in order; the first failure stops the run.
/// Whether the spec has hooks that run during create or start and need the runtime's state
/// (prestart, createRuntime, createContainer, startContainer): without any, the init skips
/// its hooks round trip with the runtime.
pub fn has_creation_hooks(spec: &oci_spec::runtime::Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    })
}

pub fn run_hooks(kind: HookKind, hooks: Option<&Vec<Hook>>, state_json: &[u8]) -> Result<()> {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    // Hooks run from the bundle directory, as under runc (which works from there): where it
    // exists, that is, not for the hooks that run inside the container.
    let cwd = bundle_of(state_json).filter(|d| d.is_dir());
    for (i, h) in hooks.iter().enumerate() {
        let fail = |msg: String| Error::Hook {
            kind: kind.as_str(),
            path: h.path().display().to_string(),
            msg,
        };
        let timeout = match h.timeout() {
            None => None,
            Some(t) if t > 0 => Some(Duration::from_secs(t as u64)),
            Some(t) => {
                return Err(Error::spec(
                    format!("hooks.{kind}[{i}].timeout"),
                    format!("must be greater than zero, got {t}"),
                ))
            }
        };
        tracing::debug!(hook = %h.path().display(), %kind, "running hook");
        let out = run_hook(h, state_json, timeout, cwd.as_deref()).map_err(fail)?;
        if !out.status.success() {
            let how = match (out.status.code(), out.status.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(s)) => format!("killed by signal {s}"),
                _ => "failed".to_string(),
            };
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let msg = if err.is_empty() {
                how
            } else {
                format!("{how}: {err}")
            };
            return Err(fail(msg));
        }
    }
    Ok(())
}

/// The `bundle` of a state JSON.
fn bundle_of(state_json: &[u8]) -> Option<std::path::PathBuf> {
    #[derive(serde::Deserialize)]
    struct Bundle {
        bundle: std::path::PathBuf,
    }
    serde_json::from_slice::<Bundle>(state_json)
        .ok()
        .map(|b| b.bundle)
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// Run one hook; `Err` carries a message for [`Error::Hook`].
pub fn run_hook(
    h: &Hook,
    stdin_data: &[u8],
    timeout: Option<Duration>,
    cwd: Option<&std::path::Path>,
) -> Result<HookOutput, String> {
    let args = h.args().as_deref().unwrap_or(&[]);
    let mut cmd = Command::new(h.path());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    if let Some(a0) = args.first() {
        cmd.arg0(a0);
    }
    cmd.args(args.iter().skip(1));
    // Like runc (Go's exec.Cmd): no `env` means the runtime's environment,
    // an `env` list (even empty) is the whole environment.
    if let Some(env) = h.env() {
        cmd.env_clear();
        for kv in env {
            match kv.split_once('=') {
                Some((k, v)) => cmd.env(k, v),
                None => cmd.env(kv, ""),
            };
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let res = pump(&mut child, stdin_data, timeout);
    if res.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    res
}

/// Feed stdin, collect stdout/stderr, and wait, all in one poll loop.
fn pump(child: &mut Child, input: &[u8], timeout: Option<Duration>) -> Result<HookOutput, String> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    for fd in [
        stdin.as_ref().map(|s| s.as_raw_fd()),
        stdout.as_ref().map(|s| s.as_raw_fd()),
        stderr.as_ref().map(|s| s.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut written = 0usize;
    if input.is_empty() {
        stdin = None;
    }
    let mut exited: Option<std::process::ExitStatus> = None;
    loop {
        if exited.is_none() {
            exited = child.try_wait().map_err(|e| format!("wait: {e}"))?;
        }
        if let Some(status) = exited {
            // Drain what is already there; descendants may keep the pipes
            // open forever, so do not wait for EOF.
            drain(&mut stdout, &mut out);
            drain(&mut stderr, &mut err);
            return Ok(HookOutput {
                status,
                stdout: out,
                stderr: err,
            });
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                let secs = timeout.map(|t| t.as_secs()).unwrap_or(0);
                return Err(format!("timed out after {secs}s"));
            }
        }
        let mut fds = Vec::with_capacity(3);
        if let Some(s) = &stdin {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
        if let Some(s) = &stdout {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(s) = &stderr {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // Short ticks: process exit is noticed by try_wait, not by poll.
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if let Some(s) = stdin.as_mut() {
            match s.write(&input[written..]) {
                Ok(k) => {
                    written += k;
                    if written >= input.len() {
                        stdin = None; // close: EOF for the hook
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // The hook does not read its stdin: fine.
                Err(_) => stdin = None,
            }
        }
        read_some(&mut stdout, &mut out);
        read_some(&mut stderr, &mut err);
    }
}

fn read_some<R: Read>(r: &mut Option<R>, buf: &mut Vec<u8>) {
    let Some(s) = r.as_mut() else { return };
    let mut tmp = [0u8; 8192];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => {
                *r = None;
                return;
            }
            Ok(k) => {
                if buf.len() < MAX_OUTPUT {
                    buf.extend_from_slice(&tmp[..k.min(MAX_OUTPUT - buf.len())]);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                *r = None;
                return;
            }
        }
    }
}

fn drain<R: Read>(r: &mut Option<R>, buf: &mut Vec<u8>) {
    read_some(r, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    thread_local! {
        // One dir per test (libtest runs each test on its own thread): removed
        // when the test's thread ends.
        static DIR: tempfile::TempDir = tempfile::Builder::new()
            .prefix("podrun-hooks-")
            .tempdir()
            .unwrap();
    }

    fn script(name: &str, body: &str) -> PathBuf {
        let p = DIR.with(|d| d.path().join(name));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn stdin_args_env_and_success() {
        let out = std::env::temp_dir().join(format!("podrun-hooks-out-{}", std::process::id()));
        // busybox dispatches on argv0: "sh" proves args[0] became argv0.
        let h = hook(serde_json::json!({
            "path": "/bin/busybox",
            "args": ["sh", "-c", format!("cat > {o}; echo \"$0|$1|$2|$FOO|$HOME\" >> {o}", o = out.display()), "zero", "a", "b"],
            "env": ["FOO=bar"]
        }));
        run_hooks(HookKind::Prestart, Some(&vec![h]), br#"{"id":"c1"}"#).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "{\"id\":\"c1\"}zero|a|b|bar|\n");
        std::fs::remove_file(out).unwrap();
    }

    #[test]
    fn failure_names_path_status_and_stderr() {
        let p = script("fail.sh", "echo '  something broke  ' >&2; exit 3");
        let h = hook(serde_json::json!({ "path": p }));
        let e = run_hooks(HookKind::CreateRuntime, Some(&vec![h]), b"{}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("createRuntime hook"), "{e}");
        assert!(
            e.contains("fail.sh") && e.contains("exit status 3: something broke"),
            "{e}"
        );
    }

    #[test]
    fn stops_at_first_failure() {
        let marker =
            std::env::temp_dir().join(format!("podrun-hooks-marker-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let bad = hook(serde_json::json!({ "path": script("bad.sh", "exit 1") }));
        let good = hook(
            serde_json::json!({ "path": script("mark.sh", &format!("touch {}", marker.display())) }),
        );
        assert!(run_hooks(HookKind::Poststop, Some(&vec![bad, good]), b"{}").is_err());
        assert!(!marker.exists());
    }

    #[test]
    fn timeout_kills_the_hook() {
        let h = hook(serde_json::json!({ "path": script("slow.sh", "sleep 30"), "timeout": 1 }));
        let t = Instant::now();
        let e = run_hooks(HookKind::Poststart, Some(&vec![h]), b"{}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out after 1s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn bad_timeout_and_missing_binary() {
        let h = hook(serde_json::json!({ "path": "/bin/true", "timeout": 0 }));
        let e = run_hooks(HookKind::Prestart, Some(&vec![h]), b"{}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hooks.prestart[0].timeout"), "{e}");
        let h = hook(serde_json::json!({ "path": "/nonexistent/hook" }));
        let e = run_hooks(HookKind::Prestart, Some(&vec![h]), b"{}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/hook") && e.contains("cannot start"),
            "{e}"
        );
        assert!(run_hooks(HookKind::Prestart, None, b"{}").is_ok());
    }

    #[test]
    fn env_is_inherited_only_without_env_list() {
        let sh = |env: Option<Vec<&str>>, check: &str| {
            let mut j = serde_json::json!({ "path": "/bin/busybox", "args": ["sh", "-c", check] });
            if let Some(e) = env {
                j["env"] = serde_json::json!(e);
            }
            run_hooks(HookKind::Prestart, Some(&vec![hook(j)]), b"{}")
        };
        // cargo sets CARGO_MANIFEST_DIR for test processes (shells invent PATH).
        if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
            sh(None, "test -n \"$CARGO_MANIFEST_DIR\"").unwrap();
        }
        sh(Some(vec![]), "test -z \"$CARGO_MANIFEST_DIR\"").unwrap();
        sh(
            Some(vec!["A=1"]),
            "test \"$A\" = 1 && test -z \"$CARGO_MANIFEST_DIR\"",
        )
        .unwrap();
        assert!(sh(Some(vec!["A=2"]), "test \"$A\" = 1").is_err());
    }

    #[test]
    fn hook_ignoring_large_stdin_still_succeeds() {
        let h = hook(serde_json::json!({ "path": script("noread.sh", "exit 0") }));
        let big = vec![b'x'; 1 << 20];
        run_hooks(HookKind::StartContainer, Some(&vec![h]), &big).unwrap();
    }
}

//! Non-blocking exec in a container for probes and hooks.
//!
//! The engine's [`podrun_container::Runtime::exec`] joins the container's
//! namespaces and cgroup (as `podrun exec` does) and waits for the process.
//! To keep the supervisor's loop non-blocking, [`ExecRun::spawn`] forks a
//! helper that leads a new process group, points its stdout/stderr at a pipe,
//! runs the engine's exec and reports the exit code on a status pipe. The
//! supervisor polls both pipes; on timeout it SIGKILLs the whole process group
//! (helper, the exec'd command and whatever it forked that stayed in the group).

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Output kept for the event message.
pub const MAX_OUTPUT: usize = 10 * 1024;

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    /// The command ran; shell-style code (128+n for signal n).
    Exited(i32),
    /// The engine could not run it (container gone, no such binary...).
    Error(String),
    /// The helper died without reporting (killed).
    Lost,
}

/// An exec in flight.
#[derive(Debug)]
pub struct ExecRun {
    pid: i32,
    out: Option<OwnedFd>,
    status: Option<OwnedFd>,
    output: Vec<u8>,
    status_buf: Vec<u8>,
    reaped: bool,
}

fn pipe_nb() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Encodes the helper's report. Pure.
pub fn encode_report(r: &Result<i32, String>) -> Vec<u8> {
    match r {
        Ok(c) => format!("C{c}").into_bytes(),
        Err(e) => format!("E{e}").into_bytes(),
    }
}

/// Decodes the helper's report (`None`: nothing was reported). Pure.
pub fn decode_report(b: &[u8]) -> ExecEnd {
    let s = String::from_utf8_lossy(b);
    if let Some(c) = s.strip_prefix('C').and_then(|c| c.parse().ok()) {
        ExecEnd::Exited(c)
    } else if let Some(e) = s.strip_prefix('E') {
        ExecEnd::Error(e.to_string())
    } else {
        ExecEnd::Lost
    }
}

impl ExecRun {
    /// Starts `argv` in container `id` of the engine rooted at `state_root`.
    pub fn spawn(state_root: &Path, id: &str, argv: &[String]) -> io::Result<ExecRun> {
        let (out_r, out_w) = pipe_nb()?;
        let (st_r, st_w) = pipe_nb()?;
        let null = std::fs::File::open("/dev/null")?;
        // Everything the child needs is prepared before the fork.
        let opts = podrun_container::ExecOptions {
            args: argv.to_vec(),
            ..Default::default()
        };
        let rt = podrun_container::Runtime::in_process(state_root);
        let id = id.to_string();
        // SAFETY: the caller (the supervisor or a test) is single-threaded at this
        // point or only uses async-signal-safe-enough code paths in the child; the
        // child never returns into the caller's code (it _exits).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // Child: own process group (the timeout kills it whole), stdio on the pipe.
            // SAFETY: plain syscalls on descriptors this process owns; _exit never returns.
            unsafe {
                libc::setpgid(0, 0);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The supervisor ignores SIGPIPE; an ignored disposition survives
                // execve, and the probe's command must get the default.
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::dup2(null.as_raw_fd(), 0);
                libc::dup2(out_w.as_raw_fd(), 1);
                libc::dup2(out_w.as_raw_fd(), 2);
                // Blocking writes for the report.
                let fl = libc::fcntl(st_w.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(st_w.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
                let fl = libc::fcntl(1, libc::F_GETFL);
                libc::fcntl(1, libc::F_SETFL, fl & !libc::O_NONBLOCK);
            }
            drop(out_w);
            drop(out_r);
            drop(st_r);
            let r = rt.exec(&id, opts).map_err(|e| e.to_string());
            let b = encode_report(&r);
            // SAFETY: write to our own pipe, then leave without running destructors.
            unsafe {
                libc::write(st_w.as_raw_fd(), b.as_ptr() as *const libc::c_void, b.len());
                libc::_exit(0)
            }
        }
        // Parent: make sure the group exists before anyone signals it.
        // SAFETY: setpgid on our fresh child (races with the child's own call harmlessly).
        unsafe { libc::setpgid(pid, pid) };
        drop(out_w);
        drop(st_w);
        Ok(ExecRun {
            pid,
            out: Some(out_r),
            status: Some(st_r),
            output: Vec::new(),
            status_buf: Vec::new(),
            reaped: false,
        })
    }

    /// The helper's pid (also its process group).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Descriptors to poll for input.
    pub fn poll_fds(&self) -> Vec<RawFd> {
        self.status
            .iter()
            .chain(self.out.iter())
            .map(|f| f.as_raw_fd())
            .collect()
    }

    fn read_out(&mut self) {
        let Some(fd) = &self.out else { return };
        let mut f = std::fs::File::from(fd.try_clone().expect("dup"));
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    self.out = None;
                    return;
                }
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(self.output.len());
                    self.output.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Non-blocking progress; Some once the helper reported (or died).
    pub fn poll(&mut self) -> Option<ExecEnd> {
        self.read_out();
        let fd = self.status.as_ref()?;
        let mut f = std::fs::File::from(fd.try_clone().ok()?);
        let mut buf = [0u8; 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.status_buf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        self.status = None;
        // The helper closed its end: it is exiting. Collect what output is there
        // (a daemonized grandchild may keep the pipe open: don't wait for EOF).
        self.read_out();
        self.out = None;
        self.reap(0);
        Some(decode_report(&self.status_buf))
    }

    /// Output so far (stdout and stderr interleaved), at most [`MAX_OUTPUT`] bytes.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }

    fn reap(&mut self, flags: i32) {
        if self.reaped {
            return;
        }
        let mut st = 0;
        // SAFETY: waiting for our own child; ECHILD (already reaped by the
        // supervisor's waitpid(-1)) is fine.
        let r = unsafe { libc::waitpid(self.pid, &mut st, flags | libc::__WALL) };
        if r == self.pid || r < 0 {
            self.reaped = true;
        }
    }

    /// Kills the helper's whole process group (timeout or cancel) and reaps the helper.
    pub fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: signal our helper's process group (its pid is still ours:
            // it is not reaped yet).
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
            self.reap(0);
        }
        self.read_out();
        self.out = None;
        self.status = None;
    }
}

impl Drop for ExecRun {
    fn drop(&mut self) {
        if self.status.is_some() {
            self.kill();
        } else {
            self.reap(libc::WNOHANG);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trip() {
        assert_eq!(decode_report(&encode_report(&Ok(3))), ExecEnd::Exited(3));
        assert_eq!(
            decode_report(&encode_report(&Err("no such container".into()))),
            ExecEnd::Error("no such container".into())
        );
        assert_eq!(decode_report(b""), ExecEnd::Lost);
    }
}

//! Log pumps: copy a container's stdout/stderr pipe into a CRI log file
//! (kubelet's `<restart>.log` format, see [`crate::crilog`]).
//!
//! No threads: the container engine forks with `clone3` from the calling
//! process, and a thread holding an allocator or stdio lock at that moment
//! would deadlock the child. Pumps are non-blocking and driven by the caller's
//! poll loop ([`LogPump::fd`] + [`LogPump::pump`]) or by [`drain`].

use crate::crilog::{LogEncoder, Stream, DEFAULT_MAX_LINE};
use k8s_openapi::jiff::Timestamp;
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;

/// A CRI log file shared by the stdout and stderr pumps of one container run.
pub type SharedLog = Rc<RefCell<File>>;

/// Opens (appending, creating parent dirs) the log file for one container run.
pub fn open_log(path: &Path) -> std::io::Result<SharedLog> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(Rc::new(RefCell::new(f)))
}

/// One stream of one container run.
#[derive(Debug)]
pub struct LogPump {
    pipe: File,
    enc: LogEncoder,
    log: SharedLog,
    eof: bool,
}

impl LogPump {
    /// Wraps the read end of a pipe (made non-blocking here).
    pub fn new(pipe: OwnedFd, stream: Stream, log: SharedLog) -> std::io::Result<LogPump> {
        let fd = pipe.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(LogPump {
            pipe: File::from(pipe),
            enc: LogEncoder::new(stream, DEFAULT_MAX_LINE),
            log,
            eof: false,
        })
    }

    /// The descriptor to poll for POLLIN/POLLHUP.
    pub fn fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// True once the writers are all gone and the rest was flushed.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// Reads what is available (until EAGAIN or EOF) and appends records.
    pub fn pump(&mut self) -> std::io::Result<()> {
        if self.eof {
            return Ok(());
        }
        let mut buf = [0u8; 16 * 1024];
        let mut out = Vec::new();
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    self.enc.finish(now(), &mut out);
                    self.eof = true;
                    break;
                }
                Ok(n) => self.enc.push(&buf[..n], now(), &mut out),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if !out.is_empty() {
            self.log.borrow_mut().write_all(&out)?;
        }
        Ok(())
    }
}

/// Polls `pumps` until all reach EOF or `timeout` passes; returns whether all did.
pub fn drain(pumps: &mut [LogPump], timeout: std::time::Duration) -> std::io::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let mut fds: Vec<libc::pollfd> = pumps
            .iter()
            .filter(|p| !p.eof)
            .map(|p| libc::pollfd {
                fd: p.fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        // SAFETY: fds is a valid array of pollfd of the given length.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                left.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for p in pumps.iter_mut() {
            p.pump()?;
        }
    }
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

//! OOM-kill counting and notification (v2 inotify on memory.events, v1 eventfd on
//! memory.oom_control through cgroup.event_control).

use crate::cgroup::{Cgroup, Mode};
use crate::error::{Error, Result};
use crate::fsio;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

impl Cgroup {
    /// The file holding the oom_kill counter: v2 memory.events, v1 memory.oom_control.
    fn oom_file(&self) -> Result<PathBuf> {
        let d = match self.mode {
            Mode::V2 => self.unified_dir().map(|d| d.join("memory.events")),
            Mode::V1 => self.v1_dir("memory").map(|d| d.join("memory.oom_control")),
        };
        d.ok_or_else(|| Error::Unsupported {
            what: "OOM accounting",
            reason: "the memory controller is not available for this cgroup".into(),
        })
    }

    /// How many processes the kernel OOM killer has killed in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64> {
        read_oom_kill(&self.oom_file()?)
    }
}

fn read_oom_kill(f: &Path) -> Result<u64> {
    let s = match fsio::read_raw(f) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound && f.parent().is_some_and(Path::is_dir) => {
            return Err(Error::Unsupported {
                what: "OOM accounting",
                reason: format!(
                    "{} does not exist (memory controller not enabled for this cgroup)",
                    f.display()
                ),
            })
        }
        Err(source) => {
            return Err(Error::Read {
                path: f.to_path_buf(),
                source,
            })
        }
    };
    fsio::keyed_value(f, &s, "oom_kill")?.ok_or_else(|| Error::Parse {
        path: f.to_path_buf(),
        content: s.trim().to_string(),
        reason: "no oom_kill line (kernel older than 4.13?)".into(),
    })
}

fn sys_err(call: &str) -> Error {
    Error::Sys {
        call: call.to_string(),
        source: io::Error::last_os_error(),
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Dir {
        path: p.to_path_buf(),
        op: "open",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })
}

/// Watches a cgroup for OOM kills. Poll [`OomWatcher::as_fd`] for readability (epoll, poll, an
/// event loop), then call [`OomWatcher::check`].
#[derive(Debug)]
pub struct OomWatcher {
    fd: OwnedFd,
    count_file: PathBuf,
    last: u64,
    /// v1: the memory.oom_control fd registered with cgroup.event_control (kept open).
    _ctl: Option<OwnedFd>,
}

impl OomWatcher {
    /// Start watching; the current oom_kill count is the baseline.
    pub fn new(cg: &Cgroup) -> Result<OomWatcher> {
        let count_file = cg.oom_file()?;
        let last = read_oom_kill(&count_file)?;
        match cg.mode {
            Mode::V2 => {
                // SAFETY: plain syscall, no pointers.
                let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
                if raw < 0 {
                    return Err(sys_err("inotify_init1"));
                }
                // SAFETY: `raw` is a fresh fd owned by nobody else.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                let c = cpath(&count_file)?;
                // SAFETY: valid fd and NUL-terminated path that outlives the call.
                let wd =
                    unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) };
                if wd < 0 {
                    return Err(sys_err(&format!(
                        "inotify_add_watch({})",
                        count_file.display()
                    )));
                }
                Ok(OomWatcher {
                    fd,
                    count_file,
                    last,
                    _ctl: None,
                })
            }
            Mode::V1 => {
                // SAFETY: plain syscall, no pointers.
                let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                if raw < 0 {
                    return Err(sys_err("eventfd"));
                }
                // SAFETY: `raw` is a fresh fd owned by nobody else.
                let efd = unsafe { OwnedFd::from_raw_fd(raw) };
                let c = cpath(&count_file)?;
                // SAFETY: NUL-terminated path that outlives the call.
                let craw = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                if craw < 0 {
                    return Err(fsio::dir_err(
                        &count_file,
                        "open",
                        io::Error::last_os_error(),
                    ));
                }
                // SAFETY: `craw` is a fresh fd owned by nobody else.
                let ctl = unsafe { OwnedFd::from_raw_fd(craw) };
                let ec = count_file.with_file_name("cgroup.event_control");
                fsio::write(&ec, &format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()))?;
                Ok(OomWatcher {
                    fd: efd,
                    count_file,
                    last,
                    _ctl: Some(ctl),
                })
            }
        }
    }

    /// Drain pending notifications (non-blocking).
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into a local buffer of the stated length from our own fd.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }

    /// True if new OOM kills happened since the last call (or since `new`). Drains the fd.
    /// A removed cgroup reads as "no new kill".
    pub fn check(&mut self) -> Result<bool> {
        self.drain();
        // v1 notifies when the cgroup goes under OOM, which can precede the kill's accounting
        // by a moment: re-read briefly before concluding "no kill".
        let start = Instant::now();
        loop {
            let n = match read_oom_kill(&self.count_file) {
                Ok(n) => n,
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOENT)
                        || e.raw_os_error() == Some(libc::ENODEV) =>
                {
                    return Ok(false)
                }
                Err(e) => return Err(e),
            };
            if n > self.last {
                self.last = n;
                return Ok(true);
            }
            if start.elapsed() > Duration::from_millis(50) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Block up to `timeout` (None = forever) for a notification, then [`check`](Self::check).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let ms = timeout
            .map(|d| d.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(-1);
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack, count 1.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::Sys {
                    call: "poll".into(),
                    source: e,
                });
            }
        }
        self.check()
    }

    /// The oom_kill count seen at the last check.
    pub fn last_count(&self) -> u64 {
        self.last
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

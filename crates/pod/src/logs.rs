//! Log pumps: copy a container's stdout/stderr pipe into a CRI log file
//! (kubelet's `<restart>.log` format, see [`crate::crilog`]).
//!
//! No threads: the container engine forks with `clone3` from the calling
//! process, and a thread holding an allocator or stdio lock at that moment
//! would deadlock the child. Pumps are non-blocking and driven by the caller's
//! poll loop ([`LogPump::fd`] + [`LogPump::pump`]) or by [`drain`].

use crate::crilog::{LogEncoder, Stream, DEFAULT_MAX_LINE};
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A CRI log file shared by the stdout and stderr pumps of one container run.
pub type SharedLog = Rc<RefCell<LogFile>>;

/// kubelet's defaults: containerLogMaxSize 10Mi, containerLogMaxFiles 5.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
pub const DEFAULT_MAX_FILES: usize = 5;

/// A container run's log file, rotated by size as kubelet's log manager does:
/// when a write would take `<n>.log` past `max_size`, it is renamed to
/// `<n>.log.<UTC timestamp>` and a new `<n>.log` is started; at most
/// `max_files` files (current included) are kept, the oldest removed.
/// Limits: env PODRUN_LOG_MAX_SIZE (bytes) and PODRUN_LOG_MAX_FILES.
#[derive(Debug)]
pub struct LogFile {
    file: File,
    path: PathBuf,
    size: u64,
    max_size: u64,
    max_files: usize,
}

impl LogFile {
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> std::io::Result<LogFile> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            file,
            path: path.to_path_buf(),
            size,
            max_size: max_size.max(1),
            max_files: max_files.max(1),
        })
    }

    /// Appends `data` (whole records), rotating first if it would not fit.
    pub fn write_records(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + data.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let ts = crate::crilog::format_rfc3339_nano(now())
            .replace([':', '-'], "")
            .replace('T', "-");
        let name = self
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let rotated = self.path.with_file_name(format!("{name}.{ts}"));
        std::fs::rename(&self.path, &rotated)?;
        // Keep max_files - 1 rotated files besides the new current one.
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let prefix = format!("{name}.");
        let mut old: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        old.sort();
        while old.len() > self.max_files - 1 {
            let _ = std::fs::remove_file(old.remove(0));
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn env_limit<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Opens (appending, creating parent dirs) the log file for one container run.
pub fn open_log(path: &Path) -> std::io::Result<SharedLog> {
    let f = LogFile::open(
        path,
        env_limit("PODRUN_LOG_MAX_SIZE", DEFAULT_MAX_SIZE),
        env_limit("PODRUN_LOG_MAX_FILES", DEFAULT_MAX_FILES),
    )?;
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
            self.log.borrow_mut().write_records(&out)?;
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

use crate::crilog::now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        let mut f = LogFile::open(&p, 100, 3).unwrap();
        for i in 0..20 {
            f.write_records(
                format!("2026-01-01T00:00:00.{i:09}Z stdout F {}\n", "x".repeat(30)).as_bytes(),
            )
            .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"0.log".to_string()));
        assert!(std::fs::metadata(&p).unwrap().len() <= 100);
        // Whole records only: every file ends with a newline.
        for n in &names {
            let c = std::fs::read(d.path().join(n)).unwrap();
            assert_eq!(c.last(), Some(&b'\n'));
        }
    }
}

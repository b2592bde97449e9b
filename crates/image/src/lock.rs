//! Advisory file locks (flock) on files under the store root. Each lock opens its own file
//! description, so locks also exclude threads of one process from each other.

use crate::error::{IoContext, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn shared(path: &Path) -> Result<FileLock> {
        Self::take(path, libc::LOCK_SH)
    }

    pub fn exclusive(path: &Path) -> Result<FileLock> {
        Self::take(path, libc::LOCK_EX)
    }

    fn take(path: &Path, op: libc::c_int) -> Result<FileLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .ctx("opening lock file", path)?;
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            let r = unsafe { libc::flock(file.as_raw_fd(), op) };
            if r == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e).ctx("locking", path);
            }
        }
        Ok(FileLock { _file: file })
    }
}

//! File descriptors before exec (CVE-2024-21626): every descriptor from
//! `first` up is marked close-on-exec, except the ones the caller keeps.

use std::os::fd::RawFd;

use crate::error::{Error, Result};

pub use crate::process::verify_cwd;

const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// The ranges [lo, hi] from `first` to the maximum, minus `keep`.
pub fn ranges_without(first: RawFd, keep: &[RawFd]) -> Vec<(u32, u32)> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|k| **k >= first)
        .map(|k| *k as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut out = Vec::new();
    let mut lo = first.max(0) as u32;
    for k in keep {
        if k > lo {
            out.push((lo, k - 1));
        }
        lo = k + 1;
    }
    out.push((lo, u32::MAX));
    out
}

/// Mark fds >= `first` close-on-exec, except those in `keep`.
pub fn cloexec_from(first: RawFd, keep: &[RawFd]) -> Result<()> {
    for (lo, hi) in ranges_without(first, keep) {
        // SAFETY: close_range only changes descriptor flags.
        let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, CLOSE_RANGE_CLOEXEC) };
        if r < 0 {
            let e = nix::Error::last();
            if e == nix::Error::ENOSYS || e == nix::Error::EINVAL {
                return cloexec_by_proc(first, keep);
            }
            return Err(Error::sys("close_range(CLOSE_RANGE_CLOEXEC)", e));
        }
    }
    Ok(())
}

/// Fallback for old kernels: walk /proc/self/fd.
fn cloexec_by_proc(first: RawFd, keep: &[RawFd]) -> Result<()> {
    let dir = "/proc/self/fd";
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))?;
    let fds: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd < first || keep.contains(&fd) {
            continue;
        }
        // SAFETY: fcntl on a descriptor number; a closed one just fails.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFD);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFD, fl | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(ranges_without(3, &[]), vec![(3, u32::MAX)]);
        assert_eq!(ranges_without(3, &[5]), vec![(3, 4), (6, u32::MAX)]);
        assert_eq!(
            ranges_without(3, &[3, 1, 9, 9, 4]),
            vec![(5, 8), (10, u32::MAX)]
        );
    }

    fn has_cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD on a valid descriptor.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    #[test]
    fn marks_all_but_kept() {
        // Descriptors far above anything the test harness uses.
        let base = 900;
        for fd in base..base + 3 {
            // SAFETY: dup2 of stdin (no CLOEXEC on the copy).
            assert!(unsafe { libc::dup2(0, fd) } == fd);
            assert!(!has_cloexec(fd));
        }
        cloexec_from(base, &[base + 1]).unwrap();
        assert!(has_cloexec(base));
        assert!(!has_cloexec(base + 1));
        assert!(has_cloexec(base + 2));
        for fd in base..base + 3 {
            // SAFETY: closing our own copies.
            unsafe { libc::close(fd) };
        }
    }
}

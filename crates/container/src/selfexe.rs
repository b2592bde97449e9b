//! CVE-2019-5736: a container process must never be able to reach the host's podrun binary
//! through /proc/<pid>/exe and write to it. Before creating or entering a container,
//! podrun re-executes itself from a sealed memfd copy, so every process it forks into a
//! container has that read-only, unlinked copy as its executable.

use crate::error::{Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MEMFD_NAME: &str = "podrun-sealed";

/// Is this process already running from the sealed copy?
pub fn is_sealed() -> bool {
    match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p
            .to_string_lossy()
            .starts_with(&format!("/memfd:{MEMFD_NAME}")),
        Err(_) => false,
    }
}

/// Re-exec from a sealed memfd unless already done. Returns only when running sealed.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let fd = sealed_copy()?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| {
            CString::new(a.into_encoded_bytes()).map_err(|_| Error::Other("NUL in argument".into()))
        })
        .collect::<Result<_>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = k.into_encoded_bytes();
            b.push(b'=');
            b.extend(v.into_encoded_bytes());
            CString::new(b).ok()
        })
        .collect();
    let e = nix::unistd::fexecve(fd.as_raw_fd(), &args, &env).unwrap_err();
    Err(Error::sys("re-exec podrun from its sealed copy", e))
}

fn sealed_copy() -> Result<OwnedFd> {
    let name = CString::new(MEMFD_NAME).expect("no NUL");
    // SAFETY: memfd_create with a valid C string; the result is checked.
    let raw =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if raw < 0 {
        return Err(Error::sys("memfd_create", nix::errno::Errno::last()));
    }
    // SAFETY: a fresh descriptor we own.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let exe = std::fs::File::open("/proc/self/exe")
        .map_err(|e| Error::io("open", "/proc/self/exe", e))?;
    let len = exe
        .metadata()
        .map_err(|e| Error::io("stat", "/proc/self/exe", e))?
        .len() as usize;
    let mut left = len;
    while left > 0 {
        // SAFETY: sendfile between two descriptors we own; offsets are the files' own.
        let n = unsafe {
            libc::sendfile(
                memfd.as_raw_fd(),
                exe.as_raw_fd(),
                std::ptr::null_mut(),
                left,
            )
        };
        if n <= 0 {
            return Err(Error::sys(
                "copy podrun into memfd",
                nix::errno::Errno::last(),
            ));
        }
        left -= n as usize;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl(F_ADD_SEALS) on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(Error::sys("seal memfd", nix::errno::Errno::last()));
    }
    Ok(memfd)
}

//! CVE-2019-5736: a container process must never be able to reach the host's podrun binary
//! through /proc/<pid>/exe and write to it. Before creating or entering a container,
//! podrun re-executes itself from a read-only view of its binary, so every process it forks
//! into a container has that view as its executable:
//!
//! * first choice, zero-copy: a detached, never-attached overlayfs with the binary's
//!   directory as its top lower layer and no upper layer (runc's `sealedOverlayfs`): such an
//!   overlay cannot be made writable, and a detached mount leaks into no namespace;
//! * fallback: a sealed memfd copy of the binary (costs a copy of the whole file).
//!
//! A binary already on a read-only mount needs neither.

use crate::error::{Error, Result};
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

mod remap;

const MEMFD_NAME: &str = "podrun-sealed";

/// Is this process's executable out of a container's reach (read-only mount, or sealed memfd)?
pub fn is_sealed() -> bool {
    if let Ok(p) = std::fs::read_link("/proc/self/exe") {
        if p.to_string_lossy()
            .starts_with(&format!("/memfd:{MEMFD_NAME}"))
        {
            return true;
        }
    }
    match nix::sys::statvfs::statvfs("/proc/self/exe") {
        Ok(s) => s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        Err(_) => false,
    }
}

/// A descriptor of a read-only view of this binary, to execute a child from
/// (`execveat(fd, "", AT_EMPTY_PATH)`), or None if this process already runs
/// sealed (then `/proc/self/exe` is safe to execute). Lets a caller that forks
/// nothing into containers itself (the pod CLI) skip its own re-exec and
/// still start its long-lived child (the pod supervisor) sealed.
pub fn sealed_exe(scratch: &Path) -> Result<Option<OwnedFd>> {
    if is_sealed() {
        return Ok(None);
    }
    sealed_view(scratch).map(Some)
}

/// A read-only view of this binary: the sealed overlay, else a sealed memfd copy.
pub fn sealed_view(scratch: &Path) -> Result<OwnedFd> {
    match sealed_overlay(scratch) {
        Ok(fd) => {
            crate::util::trace("selfexe: overlay ready");
            Ok(fd)
        }
        Err(e) => {
            tracing::debug!("sealed overlay unavailable ({e}); copying the binary into a memfd");
            let fd = sealed_memfd()?;
            crate::util::trace("selfexe: memfd copy ready");
            Ok(fd)
        }
    }
}

/// Whether `PODRUN_SEAL` is one of `values`. The knob, for tests and odd kernels:
/// `early` seals podrun itself before a clone instead of leaving it to the container's init,
/// `exec` does that by executing podrun again from the view (the fallback path), and
/// `init-fails` makes the init report that it could not seal itself (init.rs).
pub(crate) fn seal_knob_is(values: &[&str]) -> bool {
    std::env::var_os("PODRUN_SEAL")
        .as_deref()
        .and_then(|v| v.to_str())
        .is_some_and(|v| values.contains(&v))
}

/// `PODRUN_SEAL=exec` or `early`: always seal this process itself before a clone (never
/// leave it to the container's init).
pub fn early_only() -> bool {
    seal_knob_is(&["exec", "early"])
}

/// Seal this process now, in place; where that cannot be done, `Error::Reexec` hands the
/// view back for [`reexec`] (the caller, which made nothing yet, returns it).
pub fn seal_now(scratch: &Path) -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    seal_now_with(sealed_view(scratch)?)
}

/// [`seal_now`] with a view made already (by a helper thread that has ended: no other
/// thread may run here).
pub fn seal_now_with(view: OwnedFd) -> Result<()> {
    if seal_knob_is(&["exec"]) {
        return Err(Error::Reexec(view));
    }
    match seal_in_place(view.as_raw_fd()) {
        Ok(()) if is_sealed() => {
            crate::util::trace("selfexe: sealed in place");
            Ok(())
        }
        Ok(()) => {
            tracing::debug!("executable replaced but not read-only; re-executing");
            Err(Error::Reexec(view))
        }
        Err(e) => {
            tracing::debug!("cannot switch the executable in place ({e}); re-executing");
            Err(Error::Reexec(view))
        }
    }
}

/// Execute this command again (same arguments and environment) from `view`. Returns only
/// on failure.
pub fn reexec(view: OwnedFd) -> Error {
    let args: Result<Vec<CString>> = crate::util::args_os()
        .into_iter()
        .map(|a| {
            CString::new(a.into_encoded_bytes()).map_err(|_| Error::Other("NUL in argument".into()))
        })
        .collect();
    let args = match args {
        Ok(a) => a,
        Err(e) => return e,
    };
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut b = k.into_encoded_bytes();
            b.push(b'=');
            b.extend(v.into_encoded_bytes());
            CString::new(b).ok()
        })
        .collect();
    crate::util::trace("selfexe: sealed view ready, exec");
    let e = execveat_empty(view.as_raw_fd(), &args, &env);
    Error::sys("re-exec podrun from its sealed view", e)
}

/// Seal this process (in place, else by executing it again from the view) unless already
/// running from a read-only view. `scratch` is a directory podrun owns (created empty if
/// missing) used as the overlay's second, empty lower layer. Returns only when running
/// sealed.
pub fn ensure_sealed(scratch: &Path) -> Result<()> {
    crate::util::trace("selfexe: start");
    match seal_now(scratch) {
        Err(Error::Reexec(view)) => Err(reexec(view)),
        r => r,
    }
}

/// Make `fd` (a read-only view of this binary) this process's executable without a new
/// `execve`: every mapping of the binary is moved off the host path, then `mm->exe_file`
/// replaced (see `remap`). Costs a few system calls and a copy of the writable data
/// segments' file-backed pages (~60 KB for podrun) instead of loading the whole program again.
fn seal_in_place(fd: RawFd) -> Result<()> {
    let plan = SealPlan::new()?;
    if plan.threads != 1 {
        return Err(Error::Other(format!("{} threads running", plan.threads)));
    }
    plan.apply(fd)
}

/// What switching this process's executable in place takes (see `seal_in_place`), worked
/// out ahead: a forked child inherits the same mappings, so a runtime can plan for its
/// container's init and the init only applies it, first thing after the clone
/// (`create.rs`, `init.rs`). Reads /proc/self/stat and /proc/self/maps, so the init needs no
/// /proc of its own.
pub struct SealPlan {
    stat: String,
    threads: u64,
    steps: Vec<remap::Step>,
}

impl SealPlan {
    pub fn new() -> Result<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat")
            .map_err(|e| Error::io("read", "/proc/self/stat", e))?;
        let threads = remap::threads(&stat).unwrap_or(0);
        let maps = std::fs::read_to_string("/proc/self/maps")
            .map_err(|e| Error::io("read", "/proc/self/maps", e))?;
        let (loads, textrel) = remap::load_segments();
        if textrel {
            return Err(Error::Other("the executable has text relocations".into()));
        }
        let vmas = remap::exe_mappings(&maps, &loads);
        if vmas.is_empty() {
            return Err(Error::Other("no mapping of the executable found".into()));
        }
        let steps = remap::plan(&vmas, &loads)?;
        crate::util::trace("selfexe: planned");
        Ok(SealPlan {
            stat,
            threads,
            steps,
        })
    }

    /// Map the executable from `fd` (a read-only view of it) and make that the process's
    /// executable. The process must run no other thread; it keeps its memory intact if this
    /// fails.
    pub fn apply(&self, fd: RawFd) -> Result<()> {
        remap::apply(&self.steps, fd)?;
        crate::util::trace("selfexe: remapped");
        remap::set_exe_file(fd, &self.stat)
    }
}

fn execveat_empty(fd: RawFd, args: &[CString], env: &[CString]) -> nix::errno::Errno {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = c"";
    // SAFETY: argv/envp are NULL-terminated arrays of pointers to C strings that outlive the
    // call; on success execveat does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    nix::errno::Errno::last()
}

fn check(r: libc::c_long, what: &str) -> Result<RawFd> {
    if r < 0 {
        Err(Error::sys(what.to_string(), nix::errno::Errno::last()))
    } else {
        Ok(r as RawFd)
    }
}

fn fsconfig_str(ctx: RawFd, key: &CStr, val: &CStr) -> libc::c_long {
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    // SAFETY: fsconfig reads the two C strings for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            val.as_ptr(),
            0,
        )
    }
}

/// Escape ':' and '\' for an overlayfs lowerdir list.
fn escape_lower(p: &str) -> String {
    p.replace('\\', "\\\\").replace(':', "\\:")
}

/// Empty directories for the overlay's second layer when `<scratch>/.exe-lower` lies inside
/// the binary's directory (e.g. `--root` next to the binary), where overlayfs refuses the
/// overlapping layers (ELOOP) and podrun would fall back to copying itself into a memfd.
const OTHER_EMPTY_LAYERS: [&str; 2] = ["/dev/shm/.podrun-exe-lower", "/run/.podrun-exe-lower"];

fn sealed_overlay(scratch: &Path) -> Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Error::io("readlink", "/proc/self/exe", e))?;
    let (dir, name) = match (exe.parent(), exe.file_name()) {
        (Some(d), Some(n)) => (d, n),
        _ => {
            return Err(Error::Other(format!(
                "odd executable path {}",
                exe.display()
            )))
        }
    };
    let mut empties = vec![scratch.join(".exe-lower")];
    if empties[0].starts_with(dir) {
        // Overlapping for certain (a symlinked path may still: ELOOP, below).
        empties.clear();
    }
    empties.extend(OTHER_EMPTY_LAYERS.iter().map(PathBuf::from));
    let mut mnt = None;
    for (i, empty) in empties.iter().enumerate() {
        match overlay_mount(dir, empty) {
            Ok(m) => {
                mnt = Some(m);
                break;
            }
            // An overlapping layer (ELOOP), or a fallback directory that failed: try the
            // next one.
            Err(e) if i + 1 < empties.len() => {
                tracing::debug!("sealed overlay with {}: {e}", empty.display());
            }
            Err(e) => return Err(e),
        }
    }
    let mnt = mnt.ok_or_else(|| Error::Other("no overlay layers".into()))?;
    let name_c =
        CString::new(name.as_encoded_bytes()).map_err(|_| Error::Other("NUL in path".into()))?;
    // SAFETY: openat relative to our detached mount with a C string; checked.
    let fd = check(
        unsafe {
            libc::openat(
                mnt.as_raw_fd(),
                name_c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        } as libc::c_long,
        "open podrun in its sealed overlay",
    )?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A detached, read-only overlayfs of `dir` and the empty directory `empty` (created if
/// missing), without an upper layer: nothing can make it writable.
fn overlay_mount(dir: &Path, empty: &Path) -> Result<OwnedFd> {
    std::fs::create_dir_all(empty).map_err(|e| Error::io("create", empty, e))?;
    // SAFETY: fsopen with a C string literal; the result is checked.
    let ctx = check(
        unsafe {
            libc::syscall(
                libc::SYS_fsopen,
                c"overlay".as_ptr(),
                1, /* FSOPEN_CLOEXEC */
            )
        },
        "fsopen overlay",
    )?;
    // SAFETY: a fresh descriptor we own.
    let ctx = unsafe { OwnedFd::from_raw_fd(ctx) };
    let lower = format!(
        "{}:{}",
        escape_lower(&dir.to_string_lossy()),
        escape_lower(&empty.to_string_lossy())
    );
    let lower_c = CString::new(lower.clone()).map_err(|_| Error::Other("NUL in path".into()))?;
    check(
        fsconfig_str(ctx.as_raw_fd(), c"lowerdir", &lower_c),
        &format!("fsconfig overlay lowerdir={lower}"),
    )?;
    let _ = fsconfig_str(ctx.as_raw_fd(), c"xino", c"off");
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    // SAFETY: fsconfig command without pointers.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        },
        &format!("fsconfig create overlay lowerdir={lower}"),
    )?;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
    const MOUNT_ATTR_NOSUID: libc::c_uint = 0x2;
    const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;
    // SAFETY: fsmount on our context; the result is checked.
    let mnt = check(
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                ctx.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            )
        },
        "fsmount overlay",
    )?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt) })
}

fn sealed_memfd() -> Result<OwnedFd> {
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn escapes_lowerdir() {
        assert_eq!(escape_lower("/a:b\\c"), "/a\\:b\\\\c");
    }
}

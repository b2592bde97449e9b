//! Identity and privileges of the container process, in runc's order
//! (finalizeNamespace + setupUser): bounding set, keep-caps, stdio ownership,
//! supplementary groups, gid, uid, clear keep-caps, capability sets, umask.
//! Seccomp, no_new_privs, rlimits (see `rlimits.rs`) and exec are the
//! caller's.

use nix::unistd::{setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Process;

use crate::capabilities::{apply_caps, cap_sets, drop_bounding, set_keep_caps};
use crate::error::{Error, Result, SysContext};

pub use crate::capabilities::parse_capability;
pub use crate::rlimits::set_rlimits;

/// Is setgroups(2) denied in our user namespace (/proc/self/setgroups)?
pub fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups")
        .map(|s| s.trim() == "deny")
        .unwrap_or(false)
}

/// Switch to `process.user` and apply `process.capabilities` and the umask.
pub fn apply_identity(p: &Process, last: u8) -> Result<()> {
    let sets = cap_sets(p.capabilities().as_ref(), last)?;
    let user = p.user();
    let (uid, gid) = (user.uid(), user.gid());

    drop_bounding(sets.bounding, last)?;
    set_keep_caps(true)?;
    fix_stdio_ownership(uid, gid);

    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // Tried first: /proc/self/setgroups is read only when the kernel refuses (EPERM), to
    // tell a user namespace's "deny" from a real failure.
    match nix::unistd::setgroups(&groups) {
        Ok(()) => {}
        Err(nix::Error::EPERM) if setgroups_denied() => {
            if !groups.is_empty() {
                tracing::warn!(
                    "setgroups is denied in this user namespace; process.user.additionalGids ignored"
                );
            }
        }
        Err(e) => {
            return Err(Error::InvalidSpec {
                field: "process.user.additionalGids".into(),
                msg: format!(
                    "setgroups {:?}: {e}",
                    user.additional_gids().as_deref().unwrap_or(&[])
                ),
            })
        }
    }
    setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid)).map_err(|e| {
        Error::InvalidSpec {
            field: "process.user.gid".into(),
            msg: format!("setresgid {gid}: {e}"),
        }
    })?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid)).map_err(|e| {
        Error::InvalidSpec {
            field: "process.user.uid".into(),
            msg: format!("setresuid {uid}: {e}"),
        }
    })?;
    set_keep_caps(false)?;
    apply_caps(&sets)?;

    let mask = user.umask().unwrap_or(0o022) & 0o777;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    Ok(())
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if r < 0 {
        return Err(Error::sys("prctl(PR_SET_NO_NEW_PRIVS)", nix::Error::last()));
    }
    Ok(())
}

/// Mark this process non-dumpable (CVE-2016-9962, as runc's init does): while podrun's code
/// runs inside a container it holds descriptors of host objects (its state directory, the
/// host's /proc, cgroup directories), and once it has the container's user and capabilities
/// any process in the container with the same could otherwise reach them through
/// /proc/<pid>/fd, cwd or mem. Non-dumpable, only a ptracer with CAP_SYS_PTRACE in the
/// host's user namespace can. The program's execve makes the process dumpable again (by the
/// kernel's usual rules), so the container's own processes are unaffected.
pub fn set_non_dumpable() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if r < 0 {
        return Err(Error::sys("prctl(PR_SET_DUMPABLE, 0)", nix::Error::last()));
    }
    Ok(())
}

/// runc's fixStdioPermissions: give stdio (e.g. a pty) to the target user
/// so it can still use it after the switch; /dev/null and descriptors we
/// may not change are left alone.
fn fix_stdio_ownership(uid: u32, gid: u32) {
    let mut null = None;
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        if st.st_uid == uid {
            continue;
        }
        let n = null.get_or_insert_with(|| nix::sys::stat::stat("/dev/null").ok());
        if let Some(n) = n {
            if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == n.st_rdev {
                continue;
            }
        }
        // SAFETY: fchown on a descriptor number; failure is harmless.
        let r = unsafe { libc::fchown(fd, uid, gid) };
        if r < 0 {
            let e = nix::Error::last();
            if e != nix::Error::EINVAL && e != nix::Error::EPERM && e != nix::Error::EROFS {
                tracing::debug!(fd, error = %e, "cannot chown stdio");
            }
        }
    }
}

/// Is the current working directory reachable from our root? After a
/// chdir into a leaked host directory, getcwd fails with ENOENT or returns
/// "(unreachable)/..." (CVE-2024-21626).
pub fn verify_cwd() -> Result<()> {
    match nix::unistd::getcwd() {
        Err(nix::Error::ENOENT) => Err(Error::Other(
            "current working directory is outside of container mount namespace root -- possible container breakout detected".into(),
        )),
        Err(e) => Err(Error::sys("getcwd", e)),
        Ok(p) if !p.is_absolute() => Err(Error::Other(format!(
            "current working directory {} is not inside the container root",
            p.display()
        ))),
        Ok(_) => Ok(()),
    }
}

/// chdir to `process.cwd`, with the error naming the field.
pub fn change_dir(cwd: &std::path::Path) -> Result<()> {
    nix::unistd::chdir(cwd).ctx(|| format!("process.cwd: chdir {}", cwd.display()))
}

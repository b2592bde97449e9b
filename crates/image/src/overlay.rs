//! Container root filesystems: an overlayfs of the image's layers (read-only lower dirs,
//! shared by every container of the image) plus a per-container upper and work dir.
//! Mounting copies nothing. Lower dirs are passed one by one (`lowerdir+`, new mount API),
//! so the number of layers is not limited by the size of a mount option string.

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::store::{Image, Store};
use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

#[derive(Serialize, Deserialize)]
struct ContainerRecord {
    image: Digest,
    layers: Vec<Digest>,
}

/// Container keys become directory names: keep them plain.
pub fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadKey(key.to_string()))
    }
}

impl Store {
    fn container_dir(&self, key: &str) -> PathBuf {
        self.root.join("rootfs").join(key)
    }

    /// Mount an overlayfs root for a container: lower dirs = the image's layers, upper/work
    /// under `<root>/rootfs/<key>/`; returns the mount path. `read_only` mounts it read-only.
    pub fn mount_rootfs(
        &self,
        image: &Image,
        container_key: &str,
        read_only: bool,
    ) -> Result<PathBuf> {
        validate_key(container_key)?;
        let started = std::time::Instant::now();
        let _g = self.gc_shared()?;
        let dir = self.container_dir(container_key);
        let merged = dir.join("merged");
        if dir.exists() {
            if is_mountpoint(&merged) {
                return Err(Error::AlreadyMounted(container_key.to_string()));
            }
            // A leftover of a crash between mount and record: nothing is mounted, start again.
            fs::remove_dir_all(&dir).ctx("removing stale container rootfs", &dir)?;
        }
        for l in &image.layers {
            if !l.is_dir() {
                return Err(Error::io(
                    "image layer missing",
                    l,
                    io::Error::from_raw_os_error(libc::ENOENT),
                ));
            }
        }
        let result = (|| {
            fs::create_dir(&dir).ctx("creating container rootfs dir", &dir)?;
            for d in ["upper", "work", "merged"] {
                fs::create_dir(dir.join(d)).ctx("creating container rootfs dir", dir.join(d))?;
            }
            let rec = ContainerRecord {
                image: image.id.clone(),
                layers: image.diff_ids.clone(),
            };
            let rp = dir.join("image.json");
            fs::write(&rp, serde_json::to_vec(&rec).expect("json")).ctx("writing", &rp)?;
            mount_overlay(
                &image.layers,
                &dir.join("upper"),
                &dir.join("work"),
                &merged,
                read_only,
            )
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        tracing::debug!(
            key = container_key,
            layers = image.layers.len(),
            read_only,
            elapsed_us = started.elapsed().as_micros() as u64,
            "rootfs mounted"
        );
        Ok(merged)
    }

    /// Unmount a container's root and remove its upper/work dirs. Idempotent.
    pub fn unmount_rootfs(&self, container_key: &str) -> Result<()> {
        validate_key(container_key)?;
        let dir = self.container_dir(container_key);
        let merged = dir.join("merged");
        if !dir.exists() {
            return Ok(());
        }
        if is_mountpoint(&merged) {
            umount(&merged)?;
        }
        fs::remove_dir_all(&dir).ctx("removing container rootfs", &dir)
    }

    /// Keys of containers whose rootfs uses image `id`.
    pub fn containers_using(&self, id: &Digest) -> Vec<String> {
        self.container_records()
            .into_iter()
            .filter(|(_, r)| r.image == *id)
            .map(|(k, _)| k)
            .collect()
    }

    /// Keys of all mounted container roots.
    pub fn containers(&self) -> Vec<String> {
        self.container_records()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    pub(crate) fn container_records(&self) -> Vec<(String, ContainerRecordView)> {
        let mut v = Vec::new();
        let Ok(rd) = fs::read_dir(self.root.join("rootfs")) else {
            return v;
        };
        for e in rd.flatten() {
            let key = e.file_name().to_string_lossy().into_owned();
            if let Ok(b) = fs::read(e.path().join("image.json")) {
                if let Ok(r) = serde_json::from_slice::<ContainerRecord>(&b) {
                    v.push((
                        key,
                        ContainerRecordView {
                            image: r.image,
                            layers: r.layers,
                        },
                    ));
                }
            }
        }
        v
    }
}

pub(crate) struct ContainerRecordView {
    pub image: Digest,
    pub layers: Vec<Digest>,
}

impl std::ops::Deref for ContainerRecordView {
    type Target = Vec<Digest>;
    fn deref(&self) -> &Vec<Digest> {
        &self.layers
    }
}

impl<'a> IntoIterator for &'a ContainerRecordView {
    type Item = &'a Digest;
    type IntoIter = std::slice::Iter<'a, Digest>;
    fn into_iter(self) -> Self::IntoIter {
        self.layers.iter()
    }
}

fn is_mountpoint(p: &Path) -> bool {
    match (
        fs::symlink_metadata(p),
        p.parent().map(fs::symlink_metadata),
    ) {
        (Ok(m), Some(Ok(pm))) => m.dev() != pm.dev(),
        _ => false,
    }
}

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    read_only: bool,
) -> Result<()> {
    match mount_new_api(lowers, upper, work, target, read_only) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            mount_legacy(lowers, upper, work, target, read_only)
        }
        // Kernels before 6.8 have no "lowerdir+" key (overlayfs refuses the superblock with
        // EINVAL, e.g. Debian 12's 6.1): mount(2) with one lowerdir= string instead.
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL)
                || e.kind() == io::ErrorKind::InvalidInput =>
        {
            mount_legacy(lowers, upper, work, target, read_only).map_err(|legacy| Error::Mount {
                path: target.to_path_buf(),
                reason: format!("{e}; and with mount(2): {legacy}"),
            })
        }
        Err(e) => Err(Error::Mount {
            path: target.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// The messages the kernel left in an fs context (e.g. "overlayfs: upper fs does not support
/// tmpfile"), to explain an EINVAL.
fn kernel_log(fs_fd: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reading into a local buffer of buf.len() bytes from an fs context fd.
        let n = unsafe { libc::read(fs_fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let msg = String::from_utf8_lossy(&buf[..n as usize]);
        // Messages are "e ...", "w ..." or "i ..." (error, warning, info).
        out.push_str(" (");
        out.push_str(msg.get(2..).unwrap_or(&msg).trim());
        out.push(')');
    }
    out
}

fn fsconfig_string(fs_fd: &OwnedFd, key: &str, value: &[u8]) -> io::Result<()> {
    let k = cstr(key.as_bytes())?;
    let v = cstr(value)?;
    // SAFETY: fsconfig with a valid fs context fd and NUL-terminated key/value that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            FSCONFIG_SET_STRING,
            k.as_ptr(),
            v.as_ptr(),
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!(
                "fsconfig {key}={}: {e}{}",
                String::from_utf8_lossy(value),
                kernel_log(fs_fd)
            ),
        ));
    }
    Ok(())
}

fn mount_new_api(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    read_only: bool,
) -> io::Result<()> {
    let name = cstr(b"overlay")?;
    // SAFETY: fsopen with a NUL-terminated fs name; returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by fsopen and is owned by nobody else.
    let fs_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // Top layer first.
    for l in lowers.iter().rev() {
        fsconfig_string(&fs_fd, "lowerdir+", l.as_os_str().as_bytes())?;
    }
    fsconfig_string(&fs_fd, "upperdir", upper.as_os_str().as_bytes())?;
    fsconfig_string(&fs_fd, "workdir", work.as_os_str().as_bytes())?;
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs_fd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            0usize,
            0usize,
            0,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("creating overlay superblock: {e}{}", kernel_log(&fs_fd)),
        ));
    }
    let attrs = if read_only { MOUNT_ATTR_RDONLY } else { 0 };
    // SAFETY: fsmount on a created fs context; returns a new mount fd or -1.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs_fd.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) };
    if m < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: m was just returned by fsmount and is owned by nobody else.
    let mnt_fd = unsafe { OwnedFd::from_raw_fd(m as i32) };
    let empty = cstr(b"")?;
    let t = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: move_mount from the detached mount fd (empty path) to a NUL-terminated target path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt_fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mount_legacy(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    read_only: bool,
) -> Result<()> {
    let lower: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    let mut flags = nix::mount::MsFlags::empty();
    if read_only {
        flags |= nix::mount::MsFlags::MS_RDONLY;
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| Error::Mount {
        path: target.to_path_buf(),
        reason: format!("mount(2) overlay: {e}"),
    })
}

fn umount(target: &Path) -> Result<()> {
    let t = cstr(target.as_os_str().as_bytes()).map_err(|e| Error::io("unmounting", target, e))?;
    // SAFETY: umount2 with a NUL-terminated path.
    let r = unsafe { libc::umount2(t.as_ptr(), 0) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
        Some(libc::EBUSY) => {
            tracing::warn!(path = %target.display(), "rootfs busy: detaching it lazily");
            // SAFETY: as above, with MNT_DETACH.
            let r = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
            if r == 0 {
                Ok(())
            } else {
                Err(Error::io("unmounting", target, io::Error::last_os_error()))
            }
        }
        _ => Err(Error::io("unmounting", target, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("abc-1_2.x").is_ok());
        for k in ["", ".", "..", "a/b", "a b", &"x".repeat(201)] {
            assert!(validate_key(k).is_err(), "{k:?}");
        }
    }
}

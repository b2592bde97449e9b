//! Device nodes in the container's /dev: the default set runc always creates
//! (null, zero, full, random, urandom, tty), the spec's `linux.devices`, the
//! /dev/ptmx symlink and the /dev/fd, stdin, stdout, stderr, core symlinks.
//! Runs inside the container's mount namespace, before pivot_root.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::error::{Error, Result, SysContext};
use crate::mounts::{clean_destination, secure_join};

/// A device to create, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the container, absolute ("/dev/null").
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    /// Permission bits only.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn default_node(path: &str, major: u64, minor: u64) -> DeviceNode {
    DeviceNode {
        path: PathBuf::from(path),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    }
}

/// The devices runc creates in every container with its own /dev.
pub fn default_devices() -> Vec<DeviceNode> {
    vec![
        default_node("/dev/null", 1, 3),
        default_node("/dev/zero", 1, 5),
        default_node("/dev/full", 1, 7),
        default_node("/dev/random", 1, 8),
        default_node("/dev/urandom", 1, 9),
        default_node("/dev/tty", 5, 0),
    ]
}

/// Validate one `linux.devices[i]` entry.
pub fn device_from_spec(i: usize, d: &LinuxDevice) -> Result<DeviceNode> {
    let field = format!("linux.devices[{i}] ({})", d.path().display());
    if !d.path().is_absolute() {
        return Err(Error::spec(field, "path must be absolute"));
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::spec(
                field,
                "type \"a\" is only valid in cgroup device rules",
            ))
        }
    };
    if kind != SFlag::S_IFIFO && (d.major() < 0 || d.minor() < 0) {
        return Err(Error::spec(field, "major and minor must not be negative"));
    }
    Ok(DeviceNode {
        path: d.path().clone(),
        kind,
        major: d.major().max(0) as u64,
        minor: d.minor().max(0) as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Default devices overridden (by path) and extended by the spec's devices.
pub fn merged_devices(spec_devices: Option<&Vec<LinuxDevice>>) -> Result<Vec<DeviceNode>> {
    let mut out = Vec::new();
    let spec: Vec<DeviceNode> = spec_devices
        .map(|v| {
            v.iter()
                .enumerate()
                .map(|(i, d)| device_from_spec(i, d))
                .collect()
        })
        .transpose()?
        .unwrap_or_default();
    for d in default_devices() {
        if !spec.iter().any(|s| s.path == d.path) {
            out.push(d);
        }
    }
    out.extend(spec);
    Ok(out)
}

/// Create every device under `rootfs`. With `bind` (user namespaces, where
/// mknod is not allowed) the host's node is bind-mounted instead; a mknod
/// that fails with EPERM falls back to the bind too, like runc.
pub fn create_devices(rootfs: &Path, devices: &[DeviceNode], bind: bool) -> Result<()> {
    for d in devices {
        create_device(rootfs, d, bind)?;
    }
    Ok(())
}

fn create_device(rootfs: &Path, d: &DeviceNode, bind: bool) -> Result<()> {
    let dest = secure_join(rootfs, &clean_destination(&d.path))?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    // A FIFO needs no privilege: mknod it even in a user namespace.
    if bind && d.kind != SFlag::S_IFIFO {
        return bind_device(d, &dest);
    }
    let dev = makedev(d.major, d.minor);
    match mknod(&dest, d.kind, Mode::from_bits_truncate(d.mode), dev) {
        Ok(()) => {}
        Err(nix::Error::EEXIST) => {
            // Already there (e.g. a rootfs with a populated /dev): replace it
            // so type and numbers are the ones the spec asked for.
            std::fs::remove_file(&dest).map_err(|e| Error::io("remove", &dest, e))?;
            mknod(&dest, d.kind, Mode::from_bits_truncate(d.mode), dev)
                .ctx(|| format!("mknod {}", dest.display()))?;
        }
        Err(nix::Error::EPERM) => return bind_device(d, &dest),
        Err(e) => return Err(Error::sys(format!("mknod {}", dest.display()), e)),
    }
    // mknod obeys the umask: set the exact permission bits.
    nix::sys::stat::fchmodat(
        None,
        &dest,
        Mode::from_bits_truncate(d.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .ctx(|| format!("chmod {}", dest.display()))?;
    nix::unistd::chown(
        &dest,
        Some(nix::unistd::Uid::from_raw(d.uid)),
        Some(nix::unistd::Gid::from_raw(d.gid)),
    )
    .ctx(|| format!("chown {}", dest.display()))?;
    Ok(())
}

fn bind_device(d: &DeviceNode, dest: &Path) -> Result<()> {
    if std::fs::symlink_metadata(dest).is_err() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dest)
            .map_err(|e| Error::io("create device mount point", dest, e))?;
    }
    mount(
        Some(&d.path),
        dest,
        Some("bind"),
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| {
        format!(
            "bind-mount device {} on {}",
            d.path.display(),
            dest.display()
        )
    })
}

/// /dev/ptmx -> pts/ptmx (the devpts instance of the container).
pub fn setup_ptmx(rootfs: &Path) -> Result<()> {
    let dev = secure_join(rootfs, Path::new("dev"))?;
    let ptmx = dev.join("ptmx");
    match std::fs::remove_file(&ptmx) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove", ptmx, e)),
    }
    symlink("pts/ptmx", &ptmx).map_err(|e| Error::io("symlink", ptmx, e))
}

/// /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr and /dev/core (only when the
/// host has /proc/kcore). Existing entries are left alone.
pub fn setup_dev_symlinks(rootfs: &Path) -> Result<()> {
    let dev = secure_join(rootfs, Path::new("dev"))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        let link = dev.join(name);
        match symlink(target, &link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("symlink", link, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceBuilder;

    #[test]
    fn defaults_are_overridden_by_spec() {
        let d = LinuxDeviceBuilder::default()
            .path("/dev/null")
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .file_mode(0o600u32)
            .uid(5u32)
            .build()
            .unwrap();
        let f = LinuxDeviceBuilder::default()
            .path("/dev/fuse")
            .typ(LinuxDeviceType::C)
            .major(10)
            .minor(229)
            .build()
            .unwrap();
        let v = merged_devices(Some(&vec![d, f])).unwrap();
        assert_eq!(v.len(), 7);
        let null = v.iter().find(|n| n.path == Path::new("/dev/null")).unwrap();
        assert_eq!((null.mode, null.uid), (0o600, 5));
        let fuse = v.iter().find(|n| n.path == Path::new("/dev/fuse")).unwrap();
        assert_eq!((fuse.major, fuse.minor, fuse.mode), (10, 229, 0o666));
    }

    #[test]
    fn invalid_devices_are_named() {
        let d = LinuxDeviceBuilder::default()
            .path("/dev/all")
            .typ(LinuxDeviceType::A)
            .build()
            .unwrap();
        let e = merged_devices(Some(&vec![d])).unwrap_err().to_string();
        assert!(
            e.contains("linux.devices[0]") && e.contains("/dev/all"),
            "{e}"
        );
        let d = LinuxDeviceBuilder::default()
            .path("dev/rel")
            .typ(LinuxDeviceType::C)
            .build()
            .unwrap();
        assert!(merged_devices(Some(&vec![d])).is_err());
        let p = LinuxDeviceBuilder::default()
            .path("/dev/fifo")
            .typ(LinuxDeviceType::P)
            .build()
            .unwrap();
        assert_eq!(device_from_spec(0, &p).unwrap().kind, SFlag::S_IFIFO);
    }
}

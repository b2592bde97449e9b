//! The container's root filesystem, built inside its new mount namespace:
//! root propagation, the rootfs bind, every spec mount (resolved safely under
//! the rootfs), devices, then pivot_root and the final touches (masked and
//! read-only paths, read-only root, sysctls). Follows runc's rootfs_linux.go.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::sys::statfs::statfs;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use crate::devices;

mod copyup;
use crate::error::{Error, Result, SysContext};
use crate::mounts::{
    check_proc_mount, clean_destination, mount_containing, parse_mount_options,
    parse_rootfs_propagation, read_mountinfo, secure_join, sysctl_path, validate_sysctl,
    MountOptions,
};

/// Everything `prepare_rootfs`/`pivot_rootfs` need.
pub struct RootfsOptions<'a> {
    pub spec: &'a Spec,
    /// Absolute host path of the root filesystem.
    pub rootfs: &'a Path,
    /// Bundle directory: relative bind sources are resolved against it.
    pub bundle: &'a Path,
    /// The container has its own user namespace (no mknod: bind devices).
    pub in_new_userns: bool,
    /// The container has its own cgroup namespace (mount cgroupfs directly).
    pub new_cgroupns: bool,
    /// chroot (after MS_MOVE) instead of pivot_root.
    pub no_pivot: bool,
    /// Called before the first spec mount that shows cgroups (type cgroup/cgroup2, or a
    /// source under /sys) and again after the spec mounts, before devices are made: the
    /// container init finishes entering its cgroup (and cgroup namespace) there, so the
    /// runtime can create the cgroup while the first mounts are being done. Must be
    /// idempotent.
    pub cgroup_gate: Option<&'a dyn Fn() -> Result<()>>,
    /// The host's cgroup layout, as the runtime detected it (None: read mountinfo).
    pub cgroup_layout: Option<&'a podrun_cgroups::Layout>,
}

/// Whether a spec mount's content depends on the calling process's cgroup (or cgroup
/// namespace): cgroupfs itself, or a bind of something under /sys (e.g. an rbind of /sys).
fn shows_cgroups(m: &Mount) -> bool {
    matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2"))
        || m.source().as_ref().is_some_and(|s| s.starts_with("/sys"))
}

impl RootfsOptions<'_> {
    fn pass_cgroup_gate(&self) -> Result<()> {
        match self.cgroup_gate {
            Some(g) => g(),
            None => Ok(()),
        }
    }
}

const CGROUP2_SUPER_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::CGROUP2_SUPER_MAGIC;
const PROC_SUPER_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::PROC_SUPER_MAGIC;

fn mnt(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    mount(src, target, fstype, flags, data)
}

fn describe(m: &Mount, i: usize) -> String {
    format!(
        "mounts[{i}] ({} on {})",
        m.typ().as_deref().unwrap_or("bind"),
        m.destination().display()
    )
}

/// See the module documentation and the crate's API notes.
pub fn prepare_rootfs(o: &RootfsOptions) -> Result<()> {
    let linux = o.spec.linux().as_ref();
    let root_prop =
        parse_rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    // 1. "/" slave (or as asked) so nothing we do propagates to the host.
    let flag = if root_prop.is_empty() {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else if root_prop.contains(MsFlags::MS_UNBINDABLE) {
        // An unbindable "/" would refuse the rootfs bind below: private now, unbindable
        // after the pivot (pivot_rootfs applies linux.rootfsPropagation again).
        MsFlags::MS_PRIVATE | MsFlags::MS_REC
    } else {
        root_prop
    };
    mnt(None, Path::new("/"), None, flag, None).ctx(|| "set propagation of /".into())?;
    // 2. pivot_root refuses a shared parent mount. After "/" was made (r)slave or
    //    (r)private no mount is shared any more, so only a shared propagation needs a look.
    if flag.contains(MsFlags::MS_SHARED) || !flag.contains(MsFlags::MS_REC) {
        make_parent_mount_private(o.rootfs)?;
    }
    // 3. The rootfs becomes a mount point of its own.
    mnt(
        Some(o.rootfs),
        o.rootfs,
        Some("bind"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .ctx(|| format!("bind-mount rootfs {} on itself", o.rootfs.display()))?;

    crate::util::trace("rootfs: root bound");
    // 4. The spec's mounts, in order.
    let mounts: &[Mount] = o.spec.mounts().as_deref().unwrap_or(&[]);
    // Each mount's options, and whether it is a bind.
    let parsed: Vec<(MountOptions, bool)> = mounts
        .iter()
        .map(|m| {
            let opts = parse_mount_options(m.options().as_deref().unwrap_or(&[]));
            let is_bind = opts.is_bind() || m.typ().as_deref() == Some("bind");
            (opts, is_bind)
        })
        .collect();
    // A bind mount on /dev brings its own content.
    let setup_dev = !mounts.iter().zip(&parsed).any(|(m, (_, is_bind))| {
        *is_bind && clean_destination(m.destination()) == Path::new("dev")
    });
    // /dev's content is made where the init may wait for its v1 cgroups (at the first mount
    // that shows cgroups), so that wait does some work, unless a later mount could cover
    // /dev. Making a node does not open it: the container's devices cgroup still decides
    // every open.
    let gate_at = mounts
        .iter()
        .position(shows_cgroups)
        .unwrap_or(mounts.len());
    let dev_early = setup_dev
        && mounts[gate_at..]
            .iter()
            .all(|m| !clean_destination(m.destination()).starts_with("dev"));
    let at_gate = || -> Result<()> {
        if dev_early {
            make_dev_content(o)?;
        }
        o.pass_cgroup_gate()
    };
    for (i, (m, (opts, is_bind))) in mounts.iter().zip(&parsed).enumerate() {
        if i == gate_at {
            at_gate()?;
        }
        mount_entry(o, m, opts, *is_bind).map_err(|e| match e {
            Error::InvalidSpec { .. } => e,
            other => Error::Other(format!("{}: {other}", describe(m, i))),
        })?;
    }
    if gate_at == mounts.len() {
        at_gate()?;
    }

    // 5. process.cwd exists (created now: the root may become read-only).
    if let Some(p) = o.spec.process().as_ref() {
        let cwd = p.cwd();
        if !cwd.as_os_str().is_empty() {
            let dir = secure_join(o.rootfs, &clean_destination(cwd))?;
            if std::fs::metadata(&dir).is_err() {
                std::fs::create_dir_all(&dir).map_err(|e| Error::InvalidSpec {
                    field: "process.cwd".into(),
                    msg: format!("create {}: {e}", cwd.display()),
                })?;
            }
        }
    }

    crate::util::trace("rootfs: spec mounts done");
    // 6. /dev content, unless made at the cgroup gate.
    if setup_dev && !dev_early {
        make_dev_content(o)?;
    }
    Ok(())
}

/// /dev's content: the spec's and the default devices, /dev/ptmx, the /dev symlinks and
/// /dev/shm.
fn make_dev_content(o: &RootfsOptions) -> Result<()> {
    let linux = o.spec.linux().as_ref();
    let devs = devices::merged_devices(linux.and_then(|l| l.devices().as_ref()))?;
    devices::create_devices(o.rootfs, &devs, o.in_new_userns)?;
    devices::setup_ptmx(o.rootfs)?;
    devices::setup_dev_symlinks(o.rootfs)?;
    let shm = secure_join(o.rootfs, Path::new("dev/shm"))?;
    std::fs::create_dir_all(&shm).map_err(|e| Error::io("create directory", shm, e))?;
    Ok(())
}

/// pivot_root(2) into the rootfs and detach the old root (runc's fchdir
/// trick: pivot_root(".", ".") then unmount "." after fchdir(old root)), or
/// MS_MOVE + chroot when `no_pivot`. Leaves the cwd at "/", reopens stdio
/// that pointed at the host's /dev/null, then applies rootfsPropagation.
pub fn pivot_rootfs(o: &RootfsOptions) -> Result<()> {
    chdir(o.rootfs).ctx(|| format!("chdir {}", o.rootfs.display()))?;
    if o.no_pivot {
        move_root(o.rootfs)?;
    } else {
        do_pivot(o.rootfs)?;
    }
    reopen_dev_null()?;
    let linux = o.spec.linux().as_ref();
    let prop = parse_rootfs_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    if !prop.is_empty() {
        mnt(None, Path::new("/"), None, prop, None)
            .ctx(|| "apply linux.rootfsPropagation to /".into())?;
    }
    Ok(())
}

fn do_pivot(rootfs: &Path) -> Result<()> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old = open("/", flags, Mode::empty()).ctx(|| "open /".into())?;
    // SAFETY: `open` just returned this fd and nothing else owns it.
    let old = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(old) };
    let new = open(rootfs, flags, Mode::empty()).ctx(|| format!("open {}", rootfs.display()))?;
    // SAFETY: as above.
    let new = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) };
    fchdir(new.as_raw_fd()).ctx(|| format!("fchdir {}", rootfs.display()))?;
    pivot_root(".", ".").ctx(|| format!("pivot_root {}", rootfs.display()))?;
    fchdir(old.as_raw_fd()).ctx(|| "fchdir old root".into())?;
    // Unmounts below must not propagate anywhere.
    mnt(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .ctx(|| "make old root rslave".into())?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root".into())?;
    chdir("/").ctx(|| "chdir /".into())?;
    Ok(())
}

/// runc's msMoveRoot: hide the host's full proc/sys mounts, move the rootfs
/// over "/" and chroot into it.
fn move_root(rootfs: &Path) -> Result<()> {
    for m in read_mountinfo()? {
        if m.root != Path::new("/")
            || (m.fs_type != "proc" && m.fs_type != "sysfs")
            || m.mount_point.starts_with(rootfs)
        {
            continue;
        }
        let p = &m.mount_point;
        let _ = mnt(None, p, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None);
        match umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::Error::EINVAL) | Err(nix::Error::EPERM) => {
                mnt(
                    Some(Path::new("tmpfs")),
                    p,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None,
                )
                .ctx(|| format!("cover {} with tmpfs", p.display()))?;
            }
            Err(e) => return Err(Error::sys(format!("unmount {}", p.display()), e)),
        }
    }
    mnt(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, None)
        .ctx(|| format!("move {} to /", rootfs.display()))?;
    chroot(".").ctx(|| "chroot".into())?;
    chdir("/").ctx(|| "chdir /".into())?;
    Ok(())
}

/// If stdio points at the host's /dev/null, reopen the container's.
fn reopen_dev_null() -> Result<()> {
    let Ok(null) = nix::sys::stat::stat("/dev/null") else {
        return Ok(());
    };
    if null.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Ok(());
    }
    for fd in 0..3 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        if st.st_rdev == null.st_rdev && st.st_mode & libc::S_IFMT == libc::S_IFCHR {
            let f = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| "open /dev/null".into())?;
            // SAFETY: dup3 on two valid descriptors; `f` is closed right after.
            let r = unsafe { libc::dup3(f, fd, 0) };
            let _ = nix::unistd::close(f);
            if r < 0 {
                return Err(Error::sys(
                    format!("dup /dev/null to fd {fd}"),
                    nix::Error::last(),
                ));
            }
        }
    }
    Ok(())
}

/// After the pivot: /dev back to read-only if asked, read-only root,
/// sysctls, readonlyPaths, then maskedPaths (runc's order).
pub fn finalize_rootfs(spec: &Spec) -> Result<()> {
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        if clean_destination(m.destination()) != Path::new("dev") {
            continue;
        }
        let o = parse_mount_options(m.options().as_deref().unwrap_or(&[]));
        if o.flags.contains(MsFlags::MS_RDONLY) && !o.is_bind() {
            remount(Path::new("/dev"), o.flags | MsFlags::MS_REMOUNT)?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount(
            Path::new("/"),
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        )?;
    }
    let linux = spec.linux().as_ref();
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<&String> = sysctl.keys().collect();
        keys.sort();
        for k in keys {
            validate_sysctl(k, |t| has_new_namespace(spec, t))?;
            let p = sysctl_path(k);
            std::fs::write(&p, sysctl[k].as_bytes()).map_err(|e| Error::InvalidSpec {
                field: format!("linux.sysctl[{k}]"),
                msg: format!("write {}: {e}", p.display()),
            })?;
        }
    }
    for (i, p) in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        readonly_path(&absolute("linux.readonlyPaths", i, p)?)?;
    }
    // The first masked directory gets a read-only tmpfs, the others a bind of it: the same
    // empty read-only view, without a filesystem instance (made, and torn down when the
    // container ends) per directory.
    let mut empty_dir = None;
    for (i, p) in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        mask_path(&absolute("linux.maskedPaths", i, p)?, &mut empty_dir)?;
    }
    Ok(())
}

/// A maskedPaths/readonlyPaths entry must be absolute.
fn absolute(field: &str, i: usize, p: &str) -> Result<PathBuf> {
    let path = PathBuf::from(p);
    if !path.is_absolute() {
        return Err(Error::spec(
            format!("{field}[{i}]"),
            format!("\"{p}\" must be an absolute path"),
        ));
    }
    Ok(path)
}

/// Does the spec ask for a namespace of this type ("ipc", "network", "uts")?
/// An entry with a `path` joins an existing namespace, which still is not
/// the host's, so it counts too.
fn has_new_namespace(spec: &Spec, name: &str) -> bool {
    let want = match name {
        "ipc" => LinuxNamespaceType::Ipc,
        "network" => LinuxNamespaceType::Network,
        "uts" => LinuxNamespaceType::Uts,
        _ => return false,
    };
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|ns| ns.iter().any(|n| n.typ() == want))
        .unwrap_or(false)
}

/// Statfs flags that a less privileged mount namespace may not drop.
fn locked_flags(path: &Path) -> MsFlags {
    match statfs(path) {
        Ok(s) => {
            let f = s.flags().bits();
            let keep = libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC
                | libc::MS_NOATIME
                | libc::MS_NODIRATIME
                | libc::MS_RELATIME
                | libc::MS_RDONLY;
            // statfs's ST_* bits have the same values as the MS_* ones.
            MsFlags::from_bits_truncate(f & keep)
        }
        Err(_) => MsFlags::empty(),
    }
}

/// mount(MS_REMOUNT|flags); on EPERM retry with the flags the kernel locked
/// (nosuid, nodev, ... inherited in user namespaces), like runc.
fn remount(target: &Path, flags: MsFlags) -> Result<()> {
    match mnt(None, target, None, flags, None) {
        Ok(()) => Ok(()),
        Err(nix::Error::EPERM) => {
            let f = flags | locked_flags(target);
            mnt(None, target, None, f, None).ctx(|| format!("remount {}", target.display()))
        }
        Err(e) => Err(Error::sys(format!("remount {}", target.display()), e)),
    }
}

/// Bind `path` on itself and remount it read-only (missing paths are fine).
pub fn readonly_path(path: &Path) -> Result<()> {
    match mnt(
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    ) {
        Ok(()) => {}
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::sys(
                format!("linux.readonlyPaths: bind {}", path.display()),
                e,
            ))
        }
    }
    let keep = locked_flags(path) & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    mnt(
        Some(path),
        path,
        None,
        keep | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None,
    )
    .ctx(|| format!("linux.readonlyPaths: remount {} read-only", path.display()))
}

/// Hide `path`: /dev/null over a file, a read-only tmpfs over a directory (or a bind of
/// `empty_dir`, an earlier such tmpfs, which the first directory sets).
pub fn mask_path(path: &Path, empty_dir: &mut Option<PathBuf>) -> Result<()> {
    let is_dir = match std::fs::symlink_metadata(path) {
        Ok(m) => m.is_dir(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // Let the mount report it.
        Err(_) => false,
    };
    if !is_dir {
        return match mnt(
            Some(Path::new("/dev/null")),
            path,
            None,
            MsFlags::MS_BIND,
            None,
        ) {
            Ok(()) | Err(nix::Error::ENOENT) => Ok(()),
            Err(e) => Err(Error::sys(
                format!("linux.maskedPaths: mask {}", path.display()),
                e,
            )),
        };
    }
    if let Some(first) = empty_dir.as_deref() {
        return mnt(Some(first), path, None, MsFlags::MS_BIND, None).ctx(|| {
            format!(
                "linux.maskedPaths: bind {} over {}",
                first.display(),
                path.display()
            )
        });
    }
    mnt(
        Some(Path::new("tmpfs")),
        path,
        Some("tmpfs"),
        MsFlags::MS_RDONLY,
        None,
    )
    .ctx(|| format!("linux.maskedPaths: tmpfs over {}", path.display()))?;
    *empty_dir = Some(path.to_path_buf());
    Ok(())
}

/// pivot_root fails when the parent mount of the new root is shared.
fn make_parent_mount_private(rootfs: &Path) -> Result<()> {
    let infos = read_mountinfo()?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    if let Some(m) = mount_containing(&infos, parent) {
        if m.is_shared() {
            mnt(None, &m.mount_point, None, MsFlags::MS_PRIVATE, None)
                .ctx(|| format!("make {} private", m.mount_point.display()))?;
        }
    }
    Ok(())
}

/// The spec's source, or the filesystem name when it has none (the source
/// shows in mountinfo, and runtime-tools compares it with the spec).
fn src_or(source: &Path, default: &str) -> PathBuf {
    if source.as_os_str().is_empty() {
        PathBuf::from(default)
    } else {
        source.to_path_buf()
    }
}

fn mkdir_all(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io("create mount point", p, e))
}

/// Create `target` as a directory, refusing an existing non-directory.
fn ensure_dir(target: &Path) -> Result<()> {
    match std::fs::symlink_metadata(target) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(Error::Other(format!(
            "mount point {} exists and is not a directory",
            target.display()
        ))),
        Err(_) => mkdir_all(target),
    }
}

fn ensure_file(target: &Path) -> Result<()> {
    if std::fs::symlink_metadata(target).is_ok() {
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        mkdir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .map(|_| ())
        .map_err(|e| Error::io("create mount point", target, e))
}

fn mount_entry(o: &RootfsOptions, m: &Mount, opts: &MountOptions, is_bind: bool) -> Result<()> {
    let fstype = m.typ().as_deref().unwrap_or("");
    let target = secure_join(o.rootfs, &clean_destination(m.destination()))?;
    let source = m.source().clone().unwrap_or_default();
    let data = opts.data_string();

    if is_bind {
        let src = if source.is_absolute() {
            source
        } else {
            o.bundle.join(source)
        };
        let src_is_proc = statfs(&src)
            .map(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
            .unwrap_or(false);
        check_proc_mount(o.rootfs, &target, fstype, true, src_is_proc)?;
        bind_mount(&src, &target, opts)?;
    } else {
        check_proc_mount(o.rootfs, &target, fstype, false, false)?;
        match fstype {
            "proc" => {
                ensure_dir(&target)?;
                mnt(
                    Some(&src_or(&source, "proc")),
                    &target,
                    Some("proc"),
                    opts.flags,
                    data.as_deref(),
                )
                .ctx(|| format!("mount proc on {}", target.display()))?;
            }
            "sysfs" => {
                ensure_dir(&target)?;
                match mnt(
                    Some(&src_or(&source, "sysfs")),
                    &target,
                    Some("sysfs"),
                    opts.flags,
                    data.as_deref(),
                ) {
                    Ok(()) => {}
                    // No network namespace of our own in a user namespace:
                    // the kernel refuses a new sysfs, bind the host's.
                    Err(nix::Error::EPERM) | Err(nix::Error::EBUSY) => {
                        let mut b = opts.clone();
                        b.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
                        bind_mount(Path::new("/sys"), &target, &b)?;
                    }
                    Err(e) => {
                        return Err(Error::sys(
                            format!("mount sysfs on {}", target.display()),
                            e,
                        ))
                    }
                }
            }
            "mqueue" => {
                ensure_dir(&target)?;
                match mnt(
                    Some(&src_or(&source, "mqueue")),
                    &target,
                    Some("mqueue"),
                    opts.flags,
                    data.as_deref(),
                ) {
                    Ok(()) => {}
                    Err(nix::Error::EPERM) | Err(nix::Error::EBUSY) => {
                        let mut b = opts.clone();
                        b.flags |= MsFlags::MS_BIND;
                        bind_mount(Path::new("/dev/mqueue"), &target, &b)?;
                    }
                    Err(e) => {
                        return Err(Error::sys(
                            format!("mount mqueue on {}", target.display()),
                            e,
                        ))
                    }
                }
            }
            "tmpfs" => {
                ensure_dir(&target)?;
                let src = if source.as_os_str().is_empty() {
                    PathBuf::from("tmpfs")
                } else {
                    source
                };
                if opts.tmpcopyup {
                    copyup::mount_tmpfs_copyup(&src, &target, opts.flags, data.as_deref())?;
                    return finish_entry(&target, opts);
                }
                mnt(
                    Some(&src),
                    &target,
                    Some("tmpfs"),
                    opts.flags,
                    data.as_deref(),
                )
                .ctx(|| format!("mount tmpfs on {}", target.display()))?;
            }
            "cgroup" => mount_cgroup(o, &target, opts)?,
            "cgroup2" => mount_cgroup2(&target, opts)?,
            "" => {
                return Err(Error::spec(
                    format!("mounts ({})", m.destination().display()),
                    "type is required unless the options contain bind or rbind",
                ))
            }
            other => {
                ensure_dir(&target)?;
                let src = if source.as_os_str().is_empty() {
                    PathBuf::from(other)
                } else {
                    source
                };
                mnt(
                    Some(&src),
                    &target,
                    Some(other),
                    opts.flags,
                    data.as_deref(),
                )
                .ctx(|| format!("mount {other} {} on {}", src.display(), target.display()))?;
            }
        }
    }
    finish_entry(&target, opts)
}

/// Propagation changes and recursive attributes after a spec mount.
fn finish_entry(target: &Path, opts: &MountOptions) -> Result<()> {
    for p in &opts.propagation {
        mnt(None, target, None, *p, None)
            .ctx(|| format!("set propagation of {}", target.display()))?;
    }
    if opts.rec_set != 0 || opts.rec_clear != 0 {
        mount_setattr_recursive(target, opts.rec_set, opts.rec_clear)?;
    }
    Ok(())
}

/// Bind `src` on `target` (creating a dir or file like the source), then
/// remount with the requested flags (ro, nosuid, ...).
fn bind_mount(src: &Path, target: &Path, opts: &MountOptions) -> Result<()> {
    let md = std::fs::metadata(src).map_err(|e| Error::io("bind mount source", src, e))?;
    if md.is_dir() {
        ensure_dir(target)?;
    } else {
        ensure_file(target)?;
    }
    let bind = opts.flags & (MsFlags::MS_BIND | MsFlags::MS_REC) | MsFlags::MS_BIND;
    mnt(Some(src), target, None, bind, None)
        .ctx(|| format!("bind-mount {} on {}", src.display(), target.display()))?;
    let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount(target, opts.flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT)?;
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr_recursive(target: &Path, set: u64, clear: u64) -> Result<()> {
    let c = std::ffi::CString::new(crate::mounts::path_bytes(target))
        .map_err(|_| Error::Other(format!("path {} contains a NUL byte", target.display())))?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid NUL-terminated path and a properly sized mount_attr
    // that lives across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Error::sys(
            format!("mount_setattr (recursive options) on {}", target.display()),
            nix::Error::last(),
        ));
    }
    Ok(())
}

fn host_is_cgroup2() -> bool {
    statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// /proc/self/cgroup lines: (controllers, path).
fn self_cgroups() -> Result<Vec<(Vec<String>, PathBuf)>> {
    let p = "/proc/self/cgroup";
    let text = std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))?;
    Ok(parse_proc_cgroup(&text))
}

/// Parse /proc/<pid>/cgroup into (controller list, path) pairs.
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let c = if ctrls.is_empty() {
                vec![]
            } else {
                ctrls.split(',').map(String::from).collect()
            };
            Some((c, PathBuf::from(path)))
        })
        .collect()
}

/// Controllers named by a v1 cgroup mount's super options.
fn v1_controllers(super_options: &str) -> Vec<String> {
    let mut v: Vec<String> = super_options
        .split(',')
        .filter(|o| {
            !matches!(
                *o,
                "rw" | "ro" | "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode"
            ) && !o.starts_with("release_agent=")
        })
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// One host cgroup v1 hierarchy: where it is mounted, its controllers (sorted, as mount
/// options), and the mount's root within it.
struct V1Hierarchy {
    mount_point: PathBuf,
    controllers: Vec<String>,
    root: PathBuf,
}

/// The host's v1 hierarchies, from the runtime's cgroup layout (read before the clone, from
/// the host's mountinfo): the init's own read of mountinfo cost ~0.1 ms, and it grows with
/// every mount. Without a layout (a caller that has none), from this namespace's mountinfo.
fn host_v1_hierarchies(o: &RootfsOptions) -> Result<Vec<V1Hierarchy>> {
    if let Some(podrun_cgroups::Layout::V1 { mounts, roots, .. }) = o.cgroup_layout {
        let mut by_point: std::collections::BTreeMap<&Path, Vec<String>> = Default::default();
        for (ctrl, point) in mounts {
            by_point.entry(point).or_default().push(ctrl.clone());
        }
        return Ok(by_point
            .into_iter()
            .map(|(point, mut controllers)| {
                controllers.sort();
                V1Hierarchy {
                    mount_point: point.to_path_buf(),
                    controllers,
                    // In a new cgroup namespace the mount's root does not matter.
                    root: roots
                        .get(point)
                        .filter(|_| !o.new_cgroupns)
                        .cloned()
                        .unwrap_or_else(|| PathBuf::from("/")),
                }
            })
            .collect());
    }
    Ok(read_mountinfo()?
        .into_iter()
        // Only the host's hierarchies, not ones we mounted in the rootfs.
        .filter(|m| m.fs_type == "cgroup" && !m.mount_point.starts_with(o.rootfs))
        .map(|m| V1Hierarchy {
            controllers: v1_controllers(&m.super_options),
            mount_point: m.mount_point,
            root: m.root,
        })
        .collect())
}

/// mount(2) per-mount flags as mount_setattr(2) attributes (set, clear), if each has one.
fn flags_as_attrs(f: MsFlags) -> Option<(u64, u64)> {
    use crate::mounts::*;
    let map = [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
    ];
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME | MsFlags::MS_RELATIME;
    let known = map.iter().fold(atime, |a, (m, _)| a | *m);
    if !(f - known).is_empty() {
        return None;
    }
    let mut set = map
        .iter()
        .filter(|(m, _)| f.contains(*m))
        .fold(0, |a, (_, attr)| a | attr);
    let mut clear = 0;
    // One atime mode at most; later words already won in the parsed flags.
    if f.intersects(atime) {
        clear |= MOUNT_ATTR__ATIME;
        set |= if f.contains(MsFlags::MS_NOATIME) {
            MOUNT_ATTR_NOATIME
        } else if f.contains(MsFlags::MS_STRICTATIME) {
            MOUNT_ATTR_STRICTATIME
        } else {
            MOUNT_ATTR_RELATIME
        };
    }
    Some((set, clear))
}

/// cgroup v1 (host not unified): a tmpfs at the destination and one entry
/// per hierarchy: the cgroupfs itself in a new cgroup namespace, otherwise a
/// bind of the container's own cgroup directory. Combined hierarchies get
/// symlinks (cpu -> cpu,cpuacct).
fn mount_cgroup(o: &RootfsOptions, target: &Path, opts: &MountOptions) -> Result<()> {
    if host_is_cgroup2() {
        return mount_cgroup2(target, opts);
    }
    ensure_dir(target)?;
    let base = MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mnt(
        Some(Path::new("tmpfs")),
        target,
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .ctx(|| format!("mount tmpfs for cgroups on {}", target.display()))?;
    let sub_flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    // Binds (no cgroup namespace) get their flags from one recursive mount_setattr at the
    // end, over the tmpfs and every bind, instead of a remount each.
    let attrs = (!o.new_cgroupns)
        .then(|| flags_as_attrs(sub_flags))
        .flatten();
    let own = if o.new_cgroupns {
        Vec::new()
    } else {
        self_cgroups()?
    };
    for m in host_v1_hierarchies(o)? {
        let Some(name) = m.mount_point.file_name() else {
            continue;
        };
        let dest = target.join(name);
        let ctrls = &m.controllers;
        mkdir_all(&dest)?;
        if o.new_cgroupns {
            let data = ctrls.join(",");
            mnt(
                Some(Path::new("cgroup")),
                &dest,
                Some("cgroup"),
                sub_flags,
                Some(&data),
            )
            .ctx(|| format!("mount cgroup {data} on {}", dest.display()))?;
        } else {
            // This process's cgroup in the hierarchy: the /proc/self/cgroup line that names
            // the hierarchy's (first) controller.
            let path = own
                .iter()
                .find(|(c, _)| {
                    let mut c = c.clone();
                    c.sort();
                    &c == ctrls || ctrls.first().is_some_and(|f| c.contains(f))
                })
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| PathBuf::from("/"));
            let rel = path.strip_prefix(&m.root).unwrap_or(Path::new(""));
            let src = m.mount_point.join(rel);
            if attrs.is_some() {
                mnt(
                    Some(&src),
                    &dest,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .ctx(|| format!("bind-mount {} on {}", src.display(), dest.display()))?;
            } else {
                let mut b = opts.clone();
                b.flags = sub_flags | MsFlags::MS_BIND | MsFlags::MS_REC;
                b.propagation.clear();
                bind_mount(&src, &dest, &b)?;
            }
        }
        // cpu,cpuacct -> links "cpu" and "cpuacct".
        let joined = name.to_string_lossy().to_string();
        if joined.contains(',') {
            for c in joined.split(',') {
                let link = target.join(c);
                if std::fs::symlink_metadata(&link).is_err() {
                    std::os::unix::fs::symlink(&joined, &link)
                        .map_err(|e| Error::io("symlink", link, e))?;
                }
            }
        }
    }
    if let Some((set, clear)) = attrs {
        mount_setattr_recursive(target, set, clear)?;
    } else if opts.flags.contains(MsFlags::MS_RDONLY) {
        remount(
            target,
            base | MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        )?;
    }
    Ok(())
}

/// cgroup2 at the destination; where the kernel refuses (no cgroup namespace
/// in a user namespace) bind the container's own cgroup directory instead.
fn mount_cgroup2(target: &Path, opts: &MountOptions) -> Result<()> {
    ensure_dir(target)?;
    let flags = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    match mnt(
        Some(Path::new("cgroup2")),
        target,
        Some("cgroup2"),
        flags,
        opts.data_string().as_deref(),
    ) {
        Ok(()) => Ok(()),
        Err(nix::Error::EPERM) | Err(nix::Error::EBUSY) => {
            let own = self_cgroups()?;
            let path = own
                .iter()
                .find(|(c, _)| c.is_empty())
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| PathBuf::from("/"));
            let host = if host_is_cgroup2() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                PathBuf::from("/sys/fs/cgroup/unified")
            };
            let src = host.join(path.strip_prefix("/").unwrap_or(&path));
            let mut b = opts.clone();
            b.flags = flags | MsFlags::MS_BIND | MsFlags::MS_REC;
            b.propagation.clear();
            bind_mount(&src, target, &b)
        }
        Err(e) => Err(Error::sys(
            format!("mount cgroup2 on {}", target.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_flags_as_mount_setattr_attributes() {
        use crate::mounts::*;
        let f = MsFlags::MS_NOSUID
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NODEV
            | MsFlags::MS_RELATIME
            | MsFlags::MS_RDONLY;
        assert_eq!(
            flags_as_attrs(f),
            Some((
                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODEV | MOUNT_ATTR_RDONLY,
                MOUNT_ATTR__ATIME
            ))
        );
        assert_eq!(
            flags_as_attrs(MsFlags::MS_NOATIME),
            Some((MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME))
        );
        assert_eq!(flags_as_attrs(MsFlags::empty()), Some((0, 0)));
        // A flag mount_setattr has no attribute for: the caller remounts instead.
        assert_eq!(flags_as_attrs(MsFlags::MS_SYNCHRONOUS), None);
    }

    #[test]
    fn proc_cgroup_parsing() {
        let v = parse_proc_cgroup("4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/u\n");
        assert_eq!(v[0], (vec!["memory".to_string()], PathBuf::from("/a/b")));
        assert_eq!(v[1].0, vec!["cpu".to_string(), "cpuacct".to_string()]);
        assert_eq!(v[3], (vec![], PathBuf::from("/u")));
    }

    #[test]
    fn v1_controller_names() {
        assert_eq!(v1_controllers("rw,cpu,cpuacct"), vec!["cpu", "cpuacct"]);
        assert_eq!(
            v1_controllers("rw,xattr,release_agent=/x,name=systemd"),
            vec!["name=systemd"]
        );
        assert_eq!(v1_controllers("rw,memory"), vec!["memory"]);
    }
}

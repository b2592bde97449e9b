//! Pure mount helpers: OCI mount option parsing (runc's table), propagation
//! names, `/proc/self/mountinfo` parsing, and securejoin-style path resolution
//! inside a root directory (symlinks can never lead outside of it).
//!
//! Kernel work lives in `rootfs.rs`; everything here is testable without root.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};

/// `mount_setattr(2)` attribute bits (linux/mount.h), for the recursive
/// `rro`, `rnosuid`, ... options.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The parsed form of an OCI mount's `options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for mount(2) (`ro`, `nosuid`, `bind`, ...), last word wins.
    pub flags: MsFlags,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...) for mount_setattr(2).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// Everything unknown goes to the filesystem as data (`size=64k`, `mode=755`).
    pub data: Vec<String>,
    /// runc extension: copy the directory's content into a fresh tmpfs.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            data: Vec::new(),
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    /// Data string for mount(2), `None` when empty.
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
    pub fn is_recursive_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC)
    }
}

/// runc's mount flag table: (clear, flag).
fn flag_option(name: &str) -> Option<(bool, MsFlags)> {
    let f = match name {
        "acl" => (false, MsFlags::MS_POSIXACL),
        "async" => (true, MsFlags::MS_SYNCHRONOUS),
        "atime" => (true, MsFlags::MS_NOATIME),
        "bind" => (false, MsFlags::MS_BIND),
        "defaults" => (false, MsFlags::empty()),
        "dev" => (true, MsFlags::MS_NODEV),
        "diratime" => (true, MsFlags::MS_NODIRATIME),
        "dirsync" => (false, MsFlags::MS_DIRSYNC),
        "exec" => (true, MsFlags::MS_NOEXEC),
        "iversion" => (false, MsFlags::MS_I_VERSION),
        "lazytime" => (false, MsFlags::MS_LAZYTIME),
        "loud" => (true, MsFlags::MS_SILENT),
        "mand" => (false, MsFlags::MS_MANDLOCK),
        "noacl" => (true, MsFlags::MS_POSIXACL),
        "noatime" => (false, MsFlags::MS_NOATIME),
        "nodev" => (false, MsFlags::MS_NODEV),
        "nodiratime" => (false, MsFlags::MS_NODIRATIME),
        "noexec" => (false, MsFlags::MS_NOEXEC),
        "noiversion" => (true, MsFlags::MS_I_VERSION),
        "nolazytime" => (true, MsFlags::MS_LAZYTIME),
        "nomand" => (true, MsFlags::MS_MANDLOCK),
        "norelatime" => (true, MsFlags::MS_RELATIME),
        "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
        "nosuid" => (false, MsFlags::MS_NOSUID),
        "nosymfollow" => (false, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "rbind" => (false, MsFlags::MS_BIND | MsFlags::MS_REC),
        "relatime" => (false, MsFlags::MS_RELATIME),
        "remount" => (false, MsFlags::MS_REMOUNT),
        "ro" => (false, MsFlags::MS_RDONLY),
        "rw" => (true, MsFlags::MS_RDONLY),
        "silent" => (false, MsFlags::MS_SILENT),
        "strictatime" => (false, MsFlags::MS_STRICTATIME),
        "suid" => (true, MsFlags::MS_NOSUID),
        "sync" => (false, MsFlags::MS_SYNCHRONOUS),
        "symfollow" => (true, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        _ => return None,
    };
    Some(f)
}

/// Propagation option name -> flags (`rprivate` = MS_PRIVATE|MS_REC, ...).
pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    let f = match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    };
    Some(f)
}

/// Recursive attribute option -> (clear, attr bits) for mount_setattr(2).
fn rec_attr_option(name: &str) -> Option<(bool, u64)> {
    let f = match name {
        "rro" => (false, MOUNT_ATTR_RDONLY),
        "rrw" => (true, MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, MOUNT_ATTR_NOSUID),
        "rsuid" => (true, MOUNT_ATTR_NOSUID),
        "rnodev" => (false, MOUNT_ATTR_NODEV),
        "rdev" => (true, MOUNT_ATTR_NODEV),
        "rnoexec" => (false, MOUNT_ATTR_NOEXEC),
        "rexec" => (true, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (false, MOUNT_ATTR_RELATIME),
        "rnorelatime" => (true, MOUNT_ATTR_RELATIME),
        "rnoatime" => (false, MOUNT_ATTR_NOATIME),
        "ratime" => (true, MOUNT_ATTR_NOATIME),
        "rstrictatime" => (false, MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (true, MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    };
    Some(f)
}

/// Parse OCI mount options the way runc does: known flags set/clear bits in
/// order, propagation words are collected, everything else becomes data.
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let opt = opt.as_ref();
        if let Some((clear, f)) = flag_option(opt) {
            if clear {
                o.flags &= !f;
            } else {
                o.flags |= f;
            }
        } else if let Some(p) = propagation_flag(opt) {
            o.propagation.push(p);
        } else if let Some((clear, a)) = rec_attr_option(opt) {
            if clear {
                o.rec_clear |= a;
                o.rec_set &= !a;
            } else {
                o.rec_set |= a;
                o.rec_clear &= !a;
            }
            // atime attributes are one 3-bit field: setting one clears it first.
            if !clear && matches!(opt, "rrelatime" | "rnoatime" | "rstrictatime") {
                o.rec_clear |= MOUNT_ATTR__ATIME;
            }
        } else if opt == "tmpcopyup" {
            o.tmpcopyup = true;
        } else if opt.is_empty() {
            continue;
        } else {
            o.data.push(opt.to_string());
        }
    }
    o
}

/// Parse `linux.rootfsPropagation` ("" or absent = 0 meaning "not set").
pub fn parse_rootfs_propagation(value: Option<&str>) -> Result<MsFlags> {
    match value {
        None | Some("") => Ok(MsFlags::empty()),
        Some(v) => propagation_flag(v).ok_or_else(|| {
            Error::spec(
                "linux.rootfsPropagation",
                format!("\"{v}\" is not supported (use shared, slave, private, unbindable or their r-forms)"),
            )
        }),
    }
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub options: String,
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: String,
}

impl MountInfo {
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|o| o.starts_with("shared:"))
    }
}

/// Shared with the cgroup layout detection.
pub use podrun_cgroups::unescape_mountinfo;

/// Parse the text of /proc/<pid>/mountinfo. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut v = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 4 {
            continue;
        }
        let (Ok(id), Ok(parent)) = (fields[0].parse(), fields[1].parse()) else {
            continue;
        };
        v.push(MountInfo {
            id,
            parent,
            root: PathBuf::from(unescape_mountinfo(fields[3])),
            mount_point: PathBuf::from(unescape_mountinfo(fields[4])),
            options: fields[5].to_string(),
            optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
            fs_type: fields[sep + 1].to_string(),
            source: unescape_mountinfo(fields[sep + 2]),
            super_options: fields[sep + 3].to_string(),
        });
    }
    v
}

/// Read and parse /proc/self/mountinfo.
pub fn read_mountinfo() -> Result<Vec<MountInfo>> {
    let p = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))?;
    Ok(parse_mountinfo(&text))
}

/// The mount that contains `path` (longest mount point prefix; the last one
/// wins for stacked mounts).
pub fn mount_containing<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    let mut best: Option<&MountInfo> = None;
    for m in mounts {
        if path.starts_with(&m.mount_point) {
            match best {
                Some(b) if b.mount_point.as_os_str().len() > m.mount_point.as_os_str().len() => {}
                _ => best = Some(m),
            }
        }
    }
    best
}

/// Maximum number of symlinks followed by [`secure_join`] (like securejoin).
const MAX_SYMLINKS: usize = 255;

/// Resolve `unsafe_path` inside `root` as if `root` were "/": every symlink is
/// read and resolved relative to `root`, `..` never climbs above it, and
/// components that do not exist yet are appended lexically. The result always
/// starts with `root`. Mirrors cyphar/filepath-securejoin's `SecureJoin`.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut queue: VecDeque<PathBuf> = components(unsafe_path);
    let mut current = PathBuf::new(); // relative to root, never contains ".."
    let mut links = 0usize;
    while let Some(comp) = queue.pop_front() {
        if comp.as_os_str() == ".." {
            current.pop();
            continue;
        }
        let next = current.join(&comp);
        let full = root.join(&next);
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::Other(format!(
                        "resolving {} inside {}: too many levels of symbolic links",
                        unsafe_path.display(),
                        root.display()
                    )));
                }
                let target =
                    std::fs::read_link(&full).map_err(|e| Error::io("readlink", &full, e))?;
                if target.is_absolute() {
                    current = PathBuf::new();
                }
                let mut rest = components(&target);
                rest.extend(queue.drain(..));
                queue = rest;
            }
            Ok(_) => current = next,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => current = next,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => current = next,
            Err(e) => return Err(Error::io("lstat", full, e)),
        }
    }
    Ok(root.join(current))
}

/// Normal components of `p` plus ".." markers; "/" and "." dropped.
fn components(p: &Path) -> VecDeque<PathBuf> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

/// The lexical path of `dest` relative to "/" (no "..", no leading "/").
/// Relative destinations are taken relative to "/" like runc >= 1.2.
pub fn clean_destination(dest: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in dest.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// runc's checkProcMount: nothing but procfs may be mounted on /proc, and
/// under /proc only the few files that lxcfs emulates may be over-mounted.
/// `target` is the resolved host path, `proc_src_is_procfs` whether a bind
/// source is itself a procfs mount.
pub fn check_proc_mount(
    rootfs: &Path,
    target: &Path,
    fs_type: &str,
    is_bind: bool,
    bind_src_is_procfs: bool,
) -> Result<()> {
    let proc_dir = rootfs.join("proc");
    let Ok(rel) = target.strip_prefix(&proc_dir) else {
        return Ok(());
    };
    if rel.as_os_str().is_empty() {
        if (is_bind && bind_src_is_procfs) || (!is_bind && fs_type == "proc") {
            return Ok(());
        }
        return Err(Error::Other(format!(
            "{} cannot be mounted because it is not of type proc",
            target.display()
        )));
    }
    const VALID: &[&str] = &[
        "cpuinfo",
        "diskstats",
        "meminfo",
        "stat",
        "swaps",
        "uptime",
        "loadavg",
        "slabinfo",
        "net/dev",
        "sys/kernel/ns_last_pid",
    ];
    if VALID.iter().any(|v| rel == Path::new(v)) {
        return Ok(());
    }
    Err(Error::Other(format!(
        "{} cannot be mounted because it is inside /proc",
        target.display()
    )))
}

/// Key of a sysctl (`net.ipv4.ip_forward`) -> its /proc/sys path.
pub fn sysctl_path(key: &str) -> PathBuf {
    let mut p = PathBuf::from("/proc/sys");
    p.push(key.replace('.', "/"));
    p
}

/// runc's sysctl validation: a sysctl may only be set when it belongs to a
/// namespace the container owns. `has_ns` answers "does the spec create a
/// new namespace of this type" ("ipc", "network", "uts").
pub fn validate_sysctl(key: &str, has_ns: impl Fn(&str) -> bool) -> Result<()> {
    let field = format!("linux.sysctl[{key}]");
    if key.contains("..") || key.contains('/') && key.split('/').any(|c| c == "..") {
        return Err(Error::spec(field, "invalid sysctl name"));
    }
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        return if has_ns("ipc") {
            Ok(())
        } else {
            Err(Error::spec(field, "requires a new IPC namespace"))
        };
    }
    if key.starts_with("net.") {
        return if has_ns("network") {
            Ok(())
        } else {
            Err(Error::spec(field, "requires a new network namespace"))
        };
    }
    if key == "kernel.hostname" {
        return Err(Error::spec(
            field,
            "set the hostname with the \"hostname\" field instead",
        ));
    }
    if key == "kernel.domainname" {
        return if has_ns("uts") {
            Ok(())
        } else {
            Err(Error::spec(field, "requires a new UTS namespace"))
        };
    }
    Err(Error::spec(field, "is not in a separate kernel namespace"))
}

/// `OsStr` bytes helper for paths handed to the kernel.
pub fn path_bytes(p: &Path) -> &[u8] {
    OsStr::as_bytes(p.as_os_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn options_flags_and_data() {
        let o =
            parse_mount_options(&["nosuid", "noexec", "nodev", "ro", "size=65536k", "mode=755"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(o.data_string().as_deref(), Some("size=65536k,mode=755"));
        assert!(!o.is_bind());
    }

    #[test]
    fn options_last_word_wins() {
        let o = parse_mount_options(&["ro", "rw", "nosuid", "suid", "exec"]);
        assert_eq!(o.flags, MsFlags::empty());
        let o = parse_mount_options(&["rw", "ro"]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn options_bind_and_propagation() {
        let o = parse_mount_options(&["rbind", "rprivate", "ro"]);
        assert!(o.is_bind() && o.is_recursive_bind());
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let o = parse_mount_options(&["bind", "shared", "slave"]);
        assert!(o.is_bind() && !o.is_recursive_bind());
        assert_eq!(o.propagation, vec![MsFlags::MS_SHARED, MsFlags::MS_SLAVE]);
        assert!(o.data.is_empty());
    }

    #[test]
    fn options_recursive_attrs_and_extensions() {
        let o = parse_mount_options(&["rro", "rnosuid", "tmpcopyup", "newinstance"]);
        assert_eq!(o.rec_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert!(o.tmpcopyup);
        assert_eq!(o.data, vec!["newinstance".to_string()]);
        let o = parse_mount_options(&["rro", "rrw"]);
        assert_eq!(o.rec_set, 0);
        assert_eq!(o.rec_clear, MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn rootfs_propagation_values() {
        assert_eq!(parse_rootfs_propagation(None).unwrap(), MsFlags::empty());
        assert_eq!(
            parse_rootfs_propagation(Some("rslave")).unwrap(),
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        assert_eq!(
            parse_rootfs_propagation(Some("shared")).unwrap(),
            MsFlags::MS_SHARED
        );
        let e = parse_rootfs_propagation(Some("bogus"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux.rootfsPropagation") && e.contains("bogus"),
            "{e}"
        );
    }

    #[test]
    fn mountinfo_parsing() {
        let text = "22 1 0:21 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
                    30 22 0:26 /x /sys/fs/cgroup/memory rw master:3 shared:9 - cgroup cgroup rw,memory\n\
                    40 1 0:50 / /mnt/with\\040space rw - tmpfs none rw\n\
                    garbage line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert!(m[0].is_shared());
        assert_eq!(m[1].root, PathBuf::from("/x"));
        assert_eq!(m[1].optional, vec!["master:3", "shared:9"]);
        assert_eq!(m[1].super_options, "rw,memory");
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[2].fs_type, "tmpfs");
        let c = mount_containing(&m, Path::new("/sys/fs/cgroup/memory/a")).unwrap();
        assert_eq!(c.id, 30);
        let c = mount_containing(&m, Path::new("/sys/kernel")).unwrap();
        assert_eq!(c.id, 22);
    }

    fn tempdir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "podrun-mounts-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn secure_join_plain_and_missing() {
        let root = tempdir("plain");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/a/b")).unwrap(),
            root.join("a/b")
        );
        assert_eq!(
            secure_join(&root, Path::new("a/./b/../b/c/d")).unwrap(),
            root.join("a/b/c/d")
        );
        assert_eq!(
            secure_join(&root, Path::new("/../../etc")).unwrap(),
            root.join("etc")
        );
        assert_eq!(secure_join(&root, Path::new("/")).unwrap(), root.clone());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn secure_join_evil_symlinks_stay_inside() {
        let root = tempdir("evil");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../../../etc", root.join("rel")).unwrap();
        symlink("/", root.join("slash")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("etc/../../..", root.join("up")).unwrap();
        std::fs::create_dir_all(root.join("d")).unwrap();
        symlink("../abs/passwd", root.join("d/chain")).unwrap();

        assert_eq!(
            secure_join(&root, Path::new("/abs/passwd")).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            secure_join(&root, Path::new("/rel/shadow")).unwrap(),
            root.join("etc/shadow")
        );
        assert_eq!(
            secure_join(&root, Path::new("/slash/../x")).unwrap(),
            root.join("x")
        );
        assert_eq!(
            secure_join(&root, Path::new("/up/host")).unwrap(),
            root.join("host")
        );
        assert_eq!(
            secure_join(&root, Path::new("/d/chain")).unwrap(),
            root.join("etc/passwd")
        );
        let e = secure_join(&root, Path::new("/loop1/x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too many levels"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn proc_mount_rules() {
        let r = Path::new("/r");
        assert!(check_proc_mount(r, Path::new("/r/proc"), "proc", false, false).is_ok());
        assert!(check_proc_mount(r, Path::new("/r/proc"), "tmpfs", false, false).is_err());
        assert!(check_proc_mount(r, Path::new("/r/proc"), "", true, true).is_ok());
        assert!(check_proc_mount(r, Path::new("/r/proc"), "", true, false).is_err());
        assert!(check_proc_mount(r, Path::new("/r/proc/cpuinfo"), "", true, false).is_ok());
        assert!(check_proc_mount(
            r,
            Path::new("/r/proc/sys/kernel/ns_last_pid"),
            "",
            true,
            false
        )
        .is_ok());
        let e = check_proc_mount(r, Path::new("/r/proc/self/x"), "", true, false).unwrap_err();
        assert!(e.to_string().contains("inside /proc"));
        assert!(check_proc_mount(r, Path::new("/r/procfoo"), "tmpfs", false, false).is_ok());
        assert!(check_proc_mount(r, Path::new("/r/tmp"), "tmpfs", false, false).is_ok());
    }

    #[test]
    fn sysctl_rules() {
        let all = |_: &str| true;
        let none = |_: &str| false;
        assert!(validate_sysctl("net.ipv4.ip_forward", all).is_ok());
        assert!(validate_sysctl("net.ipv4.ip_forward", none).is_err());
        assert!(validate_sysctl("kernel.shmmax", |n| n == "ipc").is_ok());
        assert!(validate_sysctl("fs.mqueue.msg_max", |n| n == "ipc").is_ok());
        let e = validate_sysctl("vm.swappiness", all)
            .unwrap_err()
            .to_string();
        assert!(e.contains("vm.swappiness"), "{e}");
        assert!(validate_sysctl("kernel.domainname", |n| n == "uts").is_ok());
        assert!(validate_sysctl("kernel.domainname", none).is_err());
        assert!(validate_sysctl("kernel.hostname", all).is_err());
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }

    #[test]
    fn clean_destination_strips() {
        assert_eq!(
            clean_destination(Path::new("/a/../b/./c")),
            PathBuf::from("b/c")
        );
        assert_eq!(
            clean_destination(Path::new("rel/x")),
            PathBuf::from("rel/x")
        );
        assert_eq!(clean_destination(Path::new("/../..")), PathBuf::new());
    }
}

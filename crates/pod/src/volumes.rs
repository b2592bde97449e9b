//! Pod volumes on the host, as kubelet sets them up before the containers
//! start: emptyDir (a directory `<pod_dir>/volumes/<name>`, mode 0777, or a
//! tmpfs mounted there for `medium: Memory`), fsGroup ownership (group
//! fsGroup, setgid, group rw: kubelet's SetVolumeOwnership), the owner of a
//! `hostUsers: false` pod's user namespace root, hostPath type checks with
//! kubelet's messages, and subPath resolution. `unmount_pod_volumes` undoes
//! the mounts at teardown.
//!
//! Sources: kubelet `pkg/volume/emptydir/empty_dir.go` (0777, tmpfs with
//! `size=`, calculateEmptyDirMemorySize), `pkg/volume/volume_linux.go`
//! (SetVolumeOwnership), `pkg/volume/hostpath/host_path.go` (checkType),
//! `pkg/kubelet/kubelet_pods.go` (makeMounts: subPath created with the
//! volume's mode when missing).

use crate::quantity::parse_memory_bytes;
use crate::resources::pod_cgroup_config;
use crate::security::user_namespace_base;
use k8s_openapi::api::core::v1::{Pod, Volume};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Errors preparing or resolving volumes. Messages name the field path.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("spec.volumes[{index}]: MountVolume.SetUp failed for volume {name:?} : hostPath type check failed: {path} is not {what}")]
    HostPathType {
        index: usize,
        name: String,
        path: String,
        what: &'static str,
    },
    #[error("spec.volumes[{index}]: MountVolume.SetUp failed for volume {name:?} : {kind} is an invalid volume type")]
    InvalidHostPathType {
        index: usize,
        name: String,
        kind: String,
    },
    #[error("spec.volumes[{index}]: MountVolume.SetUp failed for volume {name:?} : emptyDir medium {medium:?} is not supported (only \"\" and \"Memory\")")]
    Medium {
        index: usize,
        name: String,
        medium: String,
    },
    #[error("spec.volumes[{index}].emptyDir.sizeLimit: Invalid value: {value:?}: {reason}")]
    SizeLimit {
        index: usize,
        value: String,
        reason: String,
    },
    #[error("{field}: Not found: {volume:?}: volume is not defined in spec.volumes")]
    NoVolume { field: String, volume: String },
    #[error("{field}: volume {volume:?}: only emptyDir and hostPath volumes are supported")]
    Unsupported { field: String, volume: String },
    #[error("{field}: Invalid value: {value:?}: {reason}")]
    SubPath {
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let path = path.to_path_buf();
    move |source| VolumeError::Io { what, path, source }
}

/// Host directory of emptyDir `name`.
pub fn empty_dir_path(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(name)
}

/// Host path a volume provides (before subPath), or None for a type podrun
/// does not implement.
pub fn volume_source(pod_dir: &Path, v: &Volume) -> Option<PathBuf> {
    if v.empty_dir.is_some() {
        Some(empty_dir_path(pod_dir, &v.name))
    } else {
        v.host_path.as_ref().map(|h| PathBuf::from(&h.path))
    }
}

fn is_memory(v: &Volume) -> bool {
    v.empty_dir
        .as_ref()
        .and_then(|e| e.medium.as_deref())
        .is_some_and(|m| m == "Memory")
}

/// Pure: calculateEmptyDirMemorySize. The tmpfs size is the node's memory,
/// lowered to the pod's memory limit (when the pod cgroup has one), lowered
/// to the volume's sizeLimit (when set and positive).
pub fn memory_volume_size(pod: &Pod, index: usize, node_memory: u64) -> Result<u64, VolumeError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(node_memory);
    };
    let mut size = node_memory;
    if let Some(l) = pod_cgroup_config(spec).memory_limit {
        if l > 0 && l <= size {
            size = l;
        }
    }
    let v = &spec.volumes.as_deref().unwrap_or_default()[index];
    if let Some(q) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
        let b = parse_memory_bytes(&q.0).map_err(|e| VolumeError::SizeLimit {
            index,
            value: q.0.clone(),
            reason: e.to_string(),
        })?;
        if b > 0 && b <= size {
            size = b;
        }
    }
    Ok(size)
}

/// Pure: the kubelet's check of a hostPath `type` against what `path` is;
/// `what_is` describes the existing file (None: nothing there). Returns
/// `Ok(Some(create))` when the path must be created first (true: a
/// directory, false: a file).
fn host_path_decision(
    index: usize,
    name: &str,
    path: &str,
    kind: &str,
    what_is: Option<std::fs::FileType>,
) -> Result<Option<bool>, VolumeError> {
    let fail = |what| VolumeError::HostPathType {
        index,
        name: name.into(),
        path: path.into(),
        what,
    };
    let ft = what_is;
    match kind {
        // Unset: no check; the runtime creates a missing source as a directory (containerd).
        "" => Ok(ft.is_none().then_some(true)),
        "DirectoryOrCreate" | "Directory" => match ft {
            None if kind == "DirectoryOrCreate" => Ok(Some(true)),
            Some(t) if t.is_dir() => Ok(None),
            _ => Err(fail("a directory")),
        },
        "FileOrCreate" | "File" => match ft {
            None if kind == "FileOrCreate" => Ok(Some(false)),
            Some(t) if t.is_file() => Ok(None),
            _ => Err(fail("a file")),
        },
        "Socket" => match ft {
            Some(t) if t.is_socket() => Ok(None),
            _ => Err(fail("a socket file")),
        },
        "CharDevice" => match ft {
            Some(t) if t.is_char_device() => Ok(None),
            _ => Err(fail("a character device")),
        },
        "BlockDevice" => match ft {
            Some(t) if t.is_block_device() => Ok(None),
            _ => Err(fail("a block device")),
        },
        other => Err(VolumeError::InvalidHostPathType {
            index,
            name: name.into(),
            kind: other.into(),
        }),
    }
}

/// Checks (and for the *OrCreate types creates) hostPath volume `index`:
/// directories with mode 0755, files with 0644 (and 0755 parents).
pub fn check_host_path(index: usize, v: &Volume) -> Result<(), VolumeError> {
    let Some(hp) = v.host_path.as_ref() else {
        return Ok(());
    };
    let p = Path::new(&hp.path);
    // Stat follows symlinks, as kubelet's os.Stat does.
    let ft = std::fs::metadata(p).ok().map(|m| m.file_type());
    let kind = hp.type_.as_deref().unwrap_or("");
    match host_path_decision(index, &v.name, &hp.path, kind, ft)? {
        None => {}
        Some(true) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(p)
                .map_err(io("create hostPath directory", p))?;
        }
        Some(false) => {
            if let Some(parent) = p.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(io("create hostPath parent directory", parent))?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(p)
                .map_err(io("create hostPath file", p))?;
        }
    }
    Ok(())
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn is_mount_point(p: &Path) -> bool {
    match (std::fs::metadata(p), p.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

fn node_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| k * 1024)
        .unwrap_or(u64::MAX)
}

/// Owner of the pod's emptyDir volumes: (uid, gid) on the host, or None to
/// leave root:root. A `hostUsers: false` pod's volumes belong to its user
/// namespace's root; fsGroup (mapped into that namespace) is the group.
pub fn empty_dir_owner(pod: &Pod) -> Option<(u32, u32)> {
    let spec = pod.spec.as_ref()?;
    let fs_group = spec
        .security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    if spec.host_users == Some(false) {
        let base = user_namespace_base(pod.metadata.uid.as_deref().unwrap_or_default());
        Some((base, base + fs_group.unwrap_or(0).min(65535)))
    } else {
        fs_group.map(|g| (0, g))
    }
}

/// Creates the pod's volumes on the host: the hostPath checks first, then
/// each emptyDir (tmpfs for Memory, with its ownership). Idempotent. On error
/// the tmpfs mounts are undone.
pub fn prepare_volumes(pod: &Pod, pod_dir: &Path) -> Result<(), VolumeError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for (i, v) in volumes.iter().enumerate() {
        check_host_path(i, v)?;
    }
    let r = prepare_empty_dirs(pod, pod_dir);
    if r.is_err() {
        let _ = unmount_pod_volumes(pod, pod_dir);
    }
    r
}

fn prepare_empty_dirs(pod: &Pod, pod_dir: &Path) -> Result<(), VolumeError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let owner = empty_dir_owner(pod);
    let fs_group = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .is_some();
    for (i, v) in volumes.iter().enumerate() {
        if let Some(ed) = &v.empty_dir {
            let medium = ed.medium.as_deref().unwrap_or("");
            if !matches!(medium, "" | "Memory") {
                return Err(VolumeError::Medium {
                    index: i,
                    name: v.name.clone(),
                    medium: medium.into(),
                });
            }
            let d = empty_dir_path(pod_dir, &v.name);
            std::fs::create_dir_all(&d).map_err(io("create emptyDir", &d))?;
            if is_memory(v) && !is_mount_point(&d) {
                let size = memory_volume_size(pod, i, node_memory())?;
                let data = CString::new(format!("size={size}")).expect("no NUL");
                let (src, fstype) = (c"tmpfs", c"tmpfs");
                let target = cpath(&d);
                // SAFETY: all pointers are valid NUL-terminated strings for the call.
                let r = unsafe {
                    libc::mount(
                        src.as_ptr(),
                        target.as_ptr(),
                        fstype.as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        data.as_ptr().cast(),
                    )
                };
                if r != 0 {
                    return Err(VolumeError::Io {
                        what: "mount tmpfs on emptyDir",
                        path: d,
                        source: std::io::Error::last_os_error(),
                    });
                }
                tracing::debug!(volume = %v.name, size, "emptyDir tmpfs mounted");
            }
            // empty_dir.go: a disk emptyDir is 0777; a fresh tmpfs keeps its 1777.
            let meta = std::fs::metadata(&d).map_err(io("stat emptyDir", &d))?;
            let mut mode = if is_memory(v) {
                meta.permissions().mode() & 0o7777
            } else {
                0o777
            };
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&d, Some(uid), Some(gid))
                    .map_err(io("chown emptyDir", &d))?;
            }
            if fs_group {
                // SetVolumeOwnership: group rw + x and setgid on directories.
                mode |= 0o2770;
            }
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
                .map_err(io("chmod emptyDir", &d))?;
        }
    }
    Ok(())
}

use podrun_container::mounts::unescape_mountinfo;

/// Unmounts every mount under `<pod_dir>/volumes` (the Memory emptyDirs of
/// `pod`, and anything else left there), deepest first. Missing mounts are fine.
pub fn unmount_pod_volumes(pod: &Pod, pod_dir: &Path) -> Result<(), VolumeError> {
    let root = pod_dir.join("volumes");
    let mut targets: Vec<PathBuf> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|v| is_memory(v))
        .map(|v| empty_dir_path(pod_dir, &v.name))
        .collect();
    let mi = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io("read", Path::new("/proc/self/mountinfo")))?;
    for l in mi.lines() {
        if let Some(m) = l.split(' ').nth(4) {
            let p = PathBuf::from(unescape_mountinfo(m));
            if p.starts_with(&root) && !targets.contains(&p) {
                targets.push(p);
            }
        }
    }
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for t in targets {
        // Stacked mounts: unmount until the path is no longer a mount point.
        for _ in 0..16 {
            let c = cpath(&t);
            // SAFETY: c is a valid NUL-terminated path.
            let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINVAL) | Some(libc::ENOENT) => break, // not (or no longer) a mount point
                    _ => {
                        return Err(VolumeError::Io {
                            what: "unmount emptyDir",
                            path: t,
                            source: e,
                        })
                    }
                }
            }
            tracing::debug!(path = %t.display(), "volume unmounted");
        }
    }
    Ok(())
}

/// Pure: a subPath must be relative and must not contain `..`
/// (validateLocalDescendingPath). `field` is the volumeMount's path.
pub fn check_sub_path(field: &str, sub: &str) -> Result<(), VolumeError> {
    let bad = |reason| VolumeError::SubPath {
        field: format!("{field}.subPath"),
        value: sub.into(),
        reason,
    };
    if Path::new(sub).is_absolute() {
        return Err(bad("must be a relative path"));
    }
    if Path::new(sub)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(bad("must not contain '..'"));
    }
    Ok(())
}

/// Creates `volume/sub` when missing, one directory at a time with the
/// volume directory's mode (kubelet's SafeMakeDir), refusing any existing
/// component that resolves outside the volume (a symlink escape). Returns
/// the resolved host path.
pub fn ensure_sub_path(field: &str, volume: &Path, sub: &str) -> Result<PathBuf, VolumeError> {
    check_sub_path(field, sub)?;
    let root = std::fs::canonicalize(volume).map_err(io("resolve volume", volume))?;
    let mode = std::fs::metadata(&root)
        .map_err(io("stat volume", &root))?
        .permissions()
        .mode()
        & 0o7777;
    let escape = || VolumeError::SubPath {
        field: format!("{field}.subPath"),
        value: sub.into(),
        reason: "resolves outside the volume",
    };
    let mut cur = root.clone();
    for c in Path::new(sub).components() {
        let Component::Normal(name) = c else {
            continue;
        };
        let next = cur.join(name);
        match std::fs::symlink_metadata(&next) {
            Ok(_) => {
                let real = std::fs::canonicalize(&next).map_err(io("resolve subPath", &next))?;
                if !real.starts_with(&root) {
                    return Err(escape());
                }
                cur = real;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&next).map_err(io("create subPath", &next))?;
                std::fs::set_permissions(&next, std::fs::Permissions::from_mode(mode))
                    .map_err(io("chmod subPath", &next))?;
                cur = next;
            }
            Err(e) => return Err(io("stat subPath", &next)(e)),
        }
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}))
        .unwrap()
    }

    #[test]
    fn sub_path_rules() {
        let f = "spec.containers[0].volumeMounts[1]";
        assert!(check_sub_path(f, "a/b").is_ok());
        assert!(check_sub_path(f, "a..b").is_ok());
        assert_eq!(
            check_sub_path(f, "/abs").unwrap_err().to_string(),
            "spec.containers[0].volumeMounts[1].subPath: Invalid value: \"/abs\": must be a relative path"
        );
        assert_eq!(
            check_sub_path(f, "a/../../x").unwrap_err().to_string(),
            "spec.containers[0].volumeMounts[1].subPath: Invalid value: \"a/../../x\": must not contain '..'"
        );
    }

    #[test]
    fn host_path_type_decisions() {
        let d = tempfile::tempdir().unwrap();
        let dir = std::fs::metadata(d.path()).unwrap().file_type();
        let file_p = d.path().join("f");
        std::fs::write(&file_p, "").unwrap();
        let file = std::fs::metadata(&file_p).unwrap().file_type();
        let dec = |k: &str, t| host_path_decision(2, "h", "/x", k, t);
        assert_eq!(dec("", None).unwrap(), Some(true));
        assert_eq!(dec("", Some(file)).unwrap(), None);
        assert_eq!(dec("DirectoryOrCreate", None).unwrap(), Some(true));
        assert_eq!(dec("FileOrCreate", None).unwrap(), Some(false));
        assert_eq!(dec("Directory", Some(dir)).unwrap(), None);
        assert_eq!(dec("File", Some(file)).unwrap(), None);
        assert_eq!(
            dec("Directory", Some(file)).unwrap_err().to_string(),
            "spec.volumes[2]: MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: /x is not a directory"
        );
        assert!(dec("DirectoryOrCreate", Some(file)).is_err());
        assert!(dec("FileOrCreate", Some(dir))
            .unwrap_err()
            .to_string()
            .ends_with("/x is not a file"));
        assert!(dec("File", None).is_err());
        assert!(dec("Socket", Some(file))
            .unwrap_err()
            .to_string()
            .ends_with("is not a socket file"));
        assert!(dec("CharDevice", Some(dir))
            .unwrap_err()
            .to_string()
            .ends_with("is not a character device"));
        assert!(dec("BlockDevice", None)
            .unwrap_err()
            .to_string()
            .ends_with("is not a block device"));
        assert_eq!(
            dec("Pipe", None).unwrap_err().to_string(),
            "spec.volumes[2]: MountVolume.SetUp failed for volume \"h\" : Pipe is an invalid volume type"
        );
    }

    #[test]
    fn memory_size_is_min_of_node_pod_limit_and_size_limit() {
        let p = pod(
            json!({"volumes": [{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                                       {"name": "n", "emptyDir": {"medium": "Memory"}}],
            "containers": [{"name": "c", "image": "x"}]}),
        );
        assert_eq!(memory_volume_size(&p, 0, 1 << 30).unwrap(), 16 << 20);
        assert_eq!(memory_volume_size(&p, 0, 8 << 20).unwrap(), 8 << 20);
        assert_eq!(memory_volume_size(&p, 1, 1 << 30).unwrap(), 1 << 30);
        let p = pod(
            json!({"volumes": [{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"memory": "64Mi"}}}]}),
        );
        assert_eq!(memory_volume_size(&p, 0, 4 << 30).unwrap(), 64 << 20);
        let p = pod(
            json!({"volumes": [{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "lots"}}],
            "containers": [{"name": "c", "image": "x"}]}),
        );
        assert!(memory_volume_size(&p, 0, 1 << 30)
            .unwrap_err()
            .to_string()
            .starts_with("spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"lots\""));
    }

    #[test]
    fn owner_for_fs_group_and_user_namespace() {
        let p = pod(json!({"containers": [{"name": "c", "image": "x"}]}));
        assert_eq!(empty_dir_owner(&p), None);
        let p = pod(
            json!({"securityContext": {"fsGroup": 2000}, "containers": [{"name": "c", "image": "x"}]}),
        );
        assert_eq!(empty_dir_owner(&p), Some((0, 2000)));
        let p = pod(
            json!({"hostUsers": false, "securityContext": {"fsGroup": 2000},
            "containers": [{"name": "c", "image": "x"}]}),
        );
        let b = user_namespace_base("u1");
        assert_eq!(empty_dir_owner(&p), Some((b, b + 2000)));
    }

    #[test]
    fn sub_path_is_created_inside_and_escapes_refused() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o2775)).unwrap();
        let got = ensure_sub_path("f", &vol, "a/b").unwrap();
        assert_eq!(got, std::fs::canonicalize(&vol).unwrap().join("a/b"));
        assert_eq!(
            std::fs::metadata(&got).unwrap().permissions().mode() & 0o7777,
            0o2775
        );
        // Existing path: returned as is.
        assert_eq!(ensure_sub_path("f", &vol, "a/b").unwrap(), got);
        std::os::unix::fs::symlink("/", vol.join("out")).unwrap();
        assert!(ensure_sub_path("f", &vol, "out/etc")
            .unwrap_err()
            .to_string()
            .contains("resolves outside the volume"));
        std::os::unix::fs::symlink("a", vol.join("in")).unwrap();
        assert_eq!(ensure_sub_path("f", &vol, "in/b").unwrap(), got);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}

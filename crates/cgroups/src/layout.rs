//! Host cgroup layout detection (v2, v1, hybrid) from /proc/self/mountinfo.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// v1 controllers this crate knows how to manage. Named hierarchies like `name=systemd` are
/// recorded in the layout too, and a container gets a directory there (no limits).
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Pure cgroup v2: one unified hierarchy mounted at `root`.
    V2 { root: PathBuf },
    /// cgroup v1: one mount per controller (co-mounted controllers share a mountpoint).
    /// `unified: Some(..)` is the hybrid layout (a cgroup2 mount next to the v1 ones).
    V1 {
        mounts: BTreeMap<String, PathBuf>,
        unified: Option<PathBuf>,
        /// Each v1 mount point's root within its hierarchy (mountinfo's fourth field; "/"
        /// unless the mount shows only part of the hierarchy). Read by a container's init
        /// for its /sys/fs/cgroup binds, instead of reading mountinfo again.
        #[serde(default)]
        roots: BTreeMap<PathBuf, PathBuf>,
    },
}

impl Layout {
    /// True for v1 with a cgroup2 mount beside it.
    pub fn is_hybrid(&self) -> bool {
        matches!(
            self,
            Layout::V1 {
                unified: Some(_),
                ..
            }
        )
    }
}

/// Detect the host layout from `/proc/self/mountinfo` (one read, no cgroupfs access).
pub fn detect() -> Result<Layout> {
    let file = Path::new("/proc/self/mountinfo");
    let text = crate::fsio::read_raw(file).map_err(|e| Error::Layout {
        source_file: file.into(),
        reason: format!("read: {}", crate::error::errno_text(&e)),
    })?;
    parse_mountinfo(&text).map_err(|reason| Error::Layout {
        source_file: file.into(),
        reason,
    })
}

/// Undo mountinfo's octal escapes (`\040` = space, `\011`, `\012`, `\134`). Byte-wise, so a
/// backslash before a multi-byte character is kept as it is.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo text into a layout. Pure; unit tested with fake inputs.
pub fn parse_mountinfo(text: &str) -> std::result::Result<Layout, String> {
    let mut mounts: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut roots: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let mut unified: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let lf: Vec<&str> = left.split(' ').collect();
        let rf: Vec<&str> = right.split(' ').collect();
        if lf.len() < 5 || rf.len() < 3 {
            continue;
        }
        let mountpoint = PathBuf::from(unescape_mountinfo(lf[4]));
        match rf[0] {
            "cgroup2" => unified.push(mountpoint),
            "cgroup" => {
                roots
                    .entry(mountpoint.clone())
                    .or_insert_with(|| PathBuf::from(unescape_mountinfo(lf[3])));
                for opt in rf[2].split(',') {
                    let known = V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=");
                    if known {
                        // First mount wins (later ones are usually bind mounts of the same hierarchy).
                        mounts
                            .entry(opt.to_string())
                            .or_insert_with(|| mountpoint.clone());
                    }
                }
            }
            _ => {}
        }
    }
    // Prefer the conventional locations when several cgroup2 mounts exist.
    let pick = |cands: &[PathBuf]| -> Option<PathBuf> {
        for pref in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            if let Some(p) = cands.iter().find(|p| p.as_os_str() == pref) {
                return Some(p.clone());
            }
        }
        cands.first().cloned()
    };
    let has_v1_controller = mounts.keys().any(|k| !k.starts_with("name="));
    if has_v1_controller {
        // Only the mount points that hold a hierarchy of the layout.
        roots.retain(|point, _| mounts.values().any(|m| m == point));
        Ok(Layout::V1 {
            mounts,
            unified: pick(&unified),
            roots,
        })
    } else if let Some(root) = pick(&unified) {
        Ok(Layout::V2 { root })
    } else {
        Err("no cgroup (v1) or cgroup2 filesystem is mounted".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_octal_escapes_bytewise() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/x\\134y"), "/x\\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        // A backslash before a multi-byte character (the old slicing panicked here).
        assert_eq!(unescape_mountinfo("/a\\éé"), "/a\\éé");
    }

    const HYBRID: &str = "\
23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host() {
        let l = parse_mountinfo(HYBRID).unwrap();
        let Layout::V1 {
            mounts, unified, ..
        } = &l
        else {
            panic!("{l:?}")
        };
        assert_eq!(mounts["cpu"], PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(mounts["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpuacct"));
        assert_eq!(mounts["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(
            mounts["name=systemd"],
            PathBuf::from("/sys/fs/cgroup/systemd")
        );
        assert_eq!(
            unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert!(l.is_hybrid());
    }

    #[test]
    fn v1_mount_roots_are_recorded() {
        // A container's view: its own cgroups bind-mounted; a later second mount of the
        // memory hierarchy is not the one the layout uses.
        let t = "\
32 31 0:29 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
33 31 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
34 31 0:29 / /mnt/mem rw - cgroup cgroup rw,memory
";
        let Layout::V1 { roots, mounts, .. } = parse_mountinfo(t).unwrap() else {
            panic!()
        };
        assert_eq!(mounts["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(
            roots[Path::new("/sys/fs/cgroup/memory")],
            PathBuf::from("/docker/abc")
        );
        assert_eq!(roots[Path::new("/sys/fs/cgroup/pids")], PathBuf::from("/"));
        assert!(!roots.contains_key(Path::new("/mnt/mem")));
    }

    #[test]
    fn pure_v2() {
        let t = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(
            parse_mountinfo(t).unwrap(),
            Layout::V2 {
                root: "/sys/fs/cgroup".into()
            }
        );
    }

    #[test]
    fn v1_comounted_without_unified() {
        let t = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/net_cls,net_prio rw shared:10 - cgroup cgroup rw,net_cls,net_prio
34 31 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
";
        let l = parse_mountinfo(t).unwrap();
        let Layout::V1 {
            mounts, unified, ..
        } = &l
        else {
            panic!()
        };
        assert_eq!(mounts["cpu"], mounts["cpuacct"]);
        assert_eq!(
            mounts["net_prio"],
            PathBuf::from("/sys/fs/cgroup/net_cls,net_prio")
        );
        assert!(!mounts.contains_key("xattr"));
        assert!(unified.is_none());
        assert!(!l.is_hybrid());
    }

    #[test]
    fn only_named_hierarchy_and_cgroup2_is_v2() {
        let t = "\
34 31 0:31 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
35 31 0:32 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        assert!(matches!(parse_mountinfo(t).unwrap(), Layout::V2 { .. }));
    }

    #[test]
    fn nothing_mounted_is_error() {
        assert!(parse_mountinfo("23 1 0:21 / /sys rw - sysfs sysfs rw\n").is_err());
    }

    #[test]
    fn escaped_mountpoint() {
        let t = "35 31 0:32 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(t).unwrap(),
            Layout::V2 {
                root: "/mnt/my cg".into()
            }
        );
    }

    #[test]
    fn prefers_conventional_cgroup2_mount() {
        let t = "\
35 31 0:32 / /tmp/other rw - cgroup2 cgroup2 rw
36 31 0:32 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            parse_mountinfo(t).unwrap(),
            Layout::V2 {
                root: "/sys/fs/cgroup".into()
            }
        );
    }
}

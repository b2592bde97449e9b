//! Parsing of /proc/<pid>/cgroup: where the caller sits in each hierarchy.

use std::collections::BTreeMap;

/// The caller's cgroup paths, as the kernel reports them (relative to each hierarchy root,
/// or to the cgroup namespace root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    /// v1 controller (or `name=xxx`) -> path.
    pub v1: BTreeMap<String, String>,
    /// The `0::<path>` line (cgroup2), if present.
    pub v2: Option<String>,
}

/// Parse the text of /proc/<pid>/cgroup. Lines are `hierarchy-ID:controller-list:path`.
pub fn parse_proc_cgroup(text: &str) -> ProcCgroups {
    let mut out = ProcCgroups::default();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        // Strip the " (deleted)" suffix the kernel appends for removed cgroups.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        if id == "0" && ctrls.is_empty() {
            out.v2 = Some(path.to_string());
            continue;
        }
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            out.v1.insert(c.to_string(), path.to_string());
        }
    }
    out
}

/// Read and parse /proc/self/cgroup.
pub fn read_self() -> crate::Result<ProcCgroups> {
    let p = std::path::Path::new("/proc/self/cgroup");
    Ok(parse_proc_cgroup(&crate::fsio::read(p)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_self_cgroup() {
        let t = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/46a0\n2:cpu,cpuacct:/a\n0::/\n";
        let p = parse_proc_cgroup(t);
        assert_eq!(p.v1["memory"], "/process_api/46a0");
        assert_eq!(p.v1["cpu"], "/a");
        assert_eq!(p.v1["cpuacct"], "/a");
        assert_eq!(p.v1["name=systemd"], "/");
        assert_eq!(p.v2.as_deref(), Some("/"));
    }

    #[test]
    fn v2_only_and_deleted_suffix() {
        let p = parse_proc_cgroup("0::/user.slice/x (deleted)\n");
        assert!(p.v1.is_empty());
        assert_eq!(p.v2.as_deref(), Some("/user.slice/x"));
    }

    #[test]
    fn path_with_colon_kept() {
        let p = parse_proc_cgroup("0::/a:b\n");
        assert_eq!(p.v2.as_deref(), Some("/a:b"));
    }
}

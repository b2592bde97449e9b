//! OCI `linux.cgroupsPath` -> one directory per hierarchy. Pure given its inputs.

use crate::cgroup::{Cgroup, Node};
use crate::error::{Error, Result};
use crate::layout::{Layout, V1_CONTROLLERS};
use crate::procself::ProcCgroups;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// A validated cgroups path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgPath {
    /// Absolute paths are placed below each hierarchy root; relative ones below the caller's cgroup.
    pub absolute: bool,
    pub components: Vec<String>,
}

/// Validate `linux.cgroupsPath` (or the default name when it is absent/empty).
pub(crate) fn parse_cgroups_path(p: Option<&str>, default_name: &str) -> Result<CgPath> {
    let raw = match p {
        Some(s) if !s.trim().is_empty() => s,
        _ => default_name,
    };
    let bad = |reason: &str| Error::InvalidPath {
        path: raw.to_string(),
        reason: reason.to_string(),
    };
    if raw.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    if !raw.contains('/') && raw.matches(':').count() == 2 {
        return Err(bad(
            "the systemd \"slice:prefix:name\" form is not supported (podrun manages cgroupfs \
             directly); use a path such as \"/podrun/<id>\" or \"podrun/<id>\"",
        ));
    }
    let absolute = raw.starts_with('/');
    let mut components = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(bad("\"..\" is not allowed")),
            Component::Normal(s) => {
                let s = s.to_str().ok_or_else(|| bad("not valid UTF-8"))?;
                components.push(s.to_string());
            }
            Component::Prefix(_) => return Err(bad("unexpected path prefix")),
        }
    }
    if components.is_empty() {
        return Err(bad(
            "names the hierarchy root (or the caller's own cgroup), not a new cgroup",
        ));
    }
    Ok(CgPath {
        absolute,
        components,
    })
}

/// The leaf cgroup v2 processes are moved to when the cgroup podrun nests under holds
/// processes (see `Cgroup::create`). A caller found in it nests under its parent instead.
pub const DELEGATION_LEAF: &str = "podrun-leaf";

/// The caller's cgroup path with our delegation leaf taken off: a caller that was moved to
/// `<job>/podrun-leaf` nests its containers beside the leaf, in `<job>`.
pub(crate) fn caller_base(caller: &str) -> &str {
    match caller.strip_suffix(DELEGATION_LEAF) {
        Some(rest) if rest.ends_with('/') => rest.trim_end_matches('/'),
        _ => caller,
    }
}

/// Compute the node for one hierarchy mounted at `mount`, the caller being at `caller` in it.
/// `exists` is injected so this stays testable without a cgroupfs.
pub(crate) fn node_for(
    mount: &Path,
    caller: Option<&str>,
    p: &CgPath,
    exists: &dyn Fn(&Path) -> bool,
) -> Node {
    let base = if p.absolute {
        mount.to_path_buf()
    } else {
        let rel = caller_base(caller.unwrap_or("/")).trim_start_matches('/');
        let b = mount.join(rel);
        if rel.is_empty() || exists(&b) {
            b
        } else {
            // The mount shows only part of the hierarchy (bind mount of our own cgroup, e.g. a
            // container without a cgroup namespace): the mount root *is* the caller's cgroup.
            tracing::debug!(
                mount = %mount.display(),
                caller = rel,
                "caller cgroup not visible under mount; nesting under the mount root"
            );
            mount.to_path_buf()
        }
    };
    let mut leaf = base.clone();
    for c in &p.components {
        leaf.push(c);
    }
    // Bottom-up: the trailing components that do not exist yet are ours (the leaf always is).
    // A single component is ours whether it exists or not: no lookup needed.
    let mut owned = 0usize;
    let mut cur = leaf.clone();
    while p.components.len() > 1 && owned < p.components.len() && !exists(&cur) {
        owned += 1;
        cur.pop();
    }
    let owned = owned.max(1);
    Node { leaf, base, owned }
}

/// Pure resolution: layout + the caller's /proc/self/cgroup + path -> Cgroup.
pub(crate) fn resolve_with(
    layout: &Layout,
    me: &ProcCgroups,
    cgroups_path: Option<&str>,
    default_name: &str,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Cgroup> {
    let p = parse_cgroups_path(cgroups_path, default_name)?;
    match layout {
        Layout::V2 { root } => Ok(Cgroup::new_v2(node_for(root, me.v2.as_deref(), &p, exists))),
        Layout::V1 {
            mounts, unified, ..
        } => {
            let mut v1 = BTreeMap::new();
            for (ctrl, mount) in mounts {
                // Named hierarchies (name=systemd) too, as runc does: nothing is limited there,
                // but a process stays where systemd tracks it (a login session's scope, a
                // service), and goes when that unit is stopped, unless it is moved out.
                if !V1_CONTROLLERS.contains(&ctrl.as_str()) && !ctrl.starts_with("name=") {
                    continue;
                }
                let n = node_for(mount, me.v1.get(ctrl).map(String::as_str), &p, exists);
                v1.insert(ctrl.clone(), n);
            }
            let u = unified
                .as_ref()
                .map(|m| node_for(m, me.v2.as_deref(), &p, exists));
            Ok(Cgroup::new_v1(v1, u))
        }
    }
}

/// Strip a trailing `owned` components from `leaf`, giving the list of dirs we may remove,
/// deepest first.
pub(crate) fn owned_dirs(n: &Node) -> Vec<PathBuf> {
    let mut out = Vec::with_capacity(n.owned);
    let mut cur = n.leaf.clone();
    for _ in 0..n.owned {
        if cur == n.base || !cur.starts_with(&n.base) {
            break;
        }
        out.push(cur.clone());
        if !cur.pop() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procself::parse_proc_cgroup;

    fn hybrid() -> Layout {
        crate::layout::parse_mountinfo(
            "\
32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:32 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
",
        )
        .unwrap()
    }

    fn me() -> ProcCgroups {
        parse_proc_cgroup("9:name=systemd:/\n4:memory:/process_api/46a0\n1:cpu:/\n0::/\n")
    }

    fn all_exist(_: &Path) -> bool {
        true
    }
    /// The callers' cgroups and hierarchy roots exist; nothing we would create does.
    fn none_exist(p: &Path) -> bool {
        let s = p.to_string_lossy();
        s.matches('/').count() <= 4 && !s.ends_with("/podrun") && !s.ends_with("/a")
            || s == "/sys/fs/cgroup/memory/process_api/46a0"
            || s == "/sys/fs/cgroup/user.slice/session-1.scope"
    }

    #[test]
    fn relative_nests_under_caller() {
        let cg = resolve_with(&hybrid(), &me(), Some("podrun/c1"), "x", &none_exist).unwrap();
        let paths = cg.paths();
        assert!(paths.contains(&PathBuf::from(
            "/sys/fs/cgroup/memory/process_api/46a0/podrun/c1"
        )));
        assert!(paths.contains(&PathBuf::from("/sys/fs/cgroup/cpu/podrun/c1")));
        assert!(paths.contains(&PathBuf::from("/sys/fs/cgroup/unified/podrun/c1")));
        // The named hierarchy too (runc's behaviour), nested like the others.
        assert!(paths.contains(&PathBuf::from("/sys/fs/cgroup/systemd/podrun/c1")));
        let n = &cg.v1_nodes()["memory"];
        assert_eq!(
            n.base,
            PathBuf::from("/sys/fs/cgroup/memory/process_api/46a0")
        );
        assert_eq!(n.owned, 2);
        assert_eq!(
            owned_dirs(n),
            vec![
                PathBuf::from("/sys/fs/cgroup/memory/process_api/46a0/podrun/c1"),
                PathBuf::from("/sys/fs/cgroup/memory/process_api/46a0/podrun"),
            ]
        );
    }

    #[test]
    fn absolute_is_below_root() {
        let cg = resolve_with(&hybrid(), &me(), Some("/a/b"), "x", &none_exist).unwrap();
        assert!(cg
            .paths()
            .contains(&PathBuf::from("/sys/fs/cgroup/memory/a/b")));
        assert_eq!(
            cg.v1_nodes()["memory"].base,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }

    #[test]
    fn empty_or_missing_uses_default() {
        for p in [None, Some(""), Some("  ")] {
            let cg = resolve_with(&hybrid(), &me(), p, "podrun/id1", &none_exist).unwrap();
            assert!(
                cg.paths()
                    .contains(&PathBuf::from("/sys/fs/cgroup/cpu/podrun/id1")),
                "{p:?}"
            );
        }
    }

    #[test]
    fn preexisting_parents_not_owned() {
        let exists = |p: &Path| !p.ends_with("leaf");
        let cg = resolve_with(&hybrid(), &me(), Some("/pod/leaf"), "x", &exists).unwrap();
        let n = &cg.v1_nodes()["cpu"];
        assert_eq!(n.owned, 1);
        assert_eq!(
            owned_dirs(n),
            vec![PathBuf::from("/sys/fs/cgroup/cpu/pod/leaf")]
        );
    }

    #[test]
    fn preexisting_leaf_is_still_owned() {
        let cg = resolve_with(&hybrid(), &me(), Some("/pod/leaf"), "x", &all_exist).unwrap();
        assert_eq!(cg.v1_nodes()["cpu"].owned, 1);
    }

    #[test]
    fn caller_not_visible_falls_back_to_mount_root() {
        let exists = |p: &Path| p == Path::new("/sys/fs/cgroup/cpu");
        let n = node_for(
            Path::new("/sys/fs/cgroup/cpu"),
            Some("/docker/abc"),
            &parse_cgroups_path(Some("x"), "d").unwrap(),
            &exists,
        );
        assert_eq!(n.leaf, PathBuf::from("/sys/fs/cgroup/cpu/x"));
    }

    #[test]
    fn v2_layout() {
        let l = Layout::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        let me = parse_proc_cgroup("0::/user.slice/session-1.scope\n");
        let cg = resolve_with(&l, &me, None, "podrun/x", &none_exist).unwrap();
        assert_eq!(
            cg.paths(),
            vec![PathBuf::from(
                "/sys/fs/cgroup/user.slice/session-1.scope/podrun/x"
            )]
        );
        assert!(cg.is_v2());
    }

    #[test]
    fn delegation_leaf_caller_nests_beside_the_leaf() {
        assert_eq!(caller_base("/job/podrun-leaf"), "/job");
        assert_eq!(caller_base("/podrun-leaf"), "");
        assert_eq!(caller_base("/job/my-podrun-leaf"), "/job/my-podrun-leaf");
        assert_eq!(caller_base("/job"), "/job");
        let l = Layout::V2 {
            root: "/sys/fs/cgroup".into(),
        };
        let me = parse_proc_cgroup("0::/job/podrun-leaf\n");
        let cg = resolve_with(&l, &me, None, "c1", &all_exist).unwrap();
        assert_eq!(cg.paths(), vec![PathBuf::from("/sys/fs/cgroup/job/c1")]);
        assert_eq!(
            cg.unified_node().unwrap().base,
            PathBuf::from("/sys/fs/cgroup/job")
        );
    }

    #[test]
    fn bad_paths() {
        for (p, needle) in [
            ("system.slice:podrun:abc", "systemd"),
            ("/a/../b", ".."),
            ("/", "root"),
            ("a\0b", "NUL"),
        ] {
            let e = parse_cgroups_path(Some(p), "d").unwrap_err().to_string();
            assert!(e.contains(needle), "{p:?}: {e}");
            assert!(e.contains("linux.cgroupsPath"), "{e}");
        }
    }

    #[test]
    fn path_normalisation() {
        let p = parse_cgroups_path(Some("//a/./b//"), "d").unwrap();
        assert!(p.absolute);
        assert_eq!(p.components, vec!["a", "b"]);
        // colons are fine inside a path with slashes
        assert!(parse_cgroups_path(Some("/a:b:c/d"), "d").is_ok());
    }
}

//! The `Cgroup` handle: one leaf directory per hierarchy; create, join, list, destroy.

use crate::error::{Error, Result};
use crate::fsio;
use crate::layout::Layout;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One hierarchy's part of a cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The cgroup directory itself.
    pub leaf: PathBuf,
    /// The directory we nest under (hierarchy root or the caller's cgroup); never removed.
    pub base: PathBuf,
    /// How many trailing components of `leaf` (>= 1) we created and so remove on destroy.
    pub owned: usize,
}

/// Which hierarchy kind the cgroup lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    V1,
    V2,
}

/// A container's (or pod's) cgroup across all hierarchies. Serializable for state.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub(crate) mode: Mode,
    /// v1: controller -> node (co-mounted controllers share a leaf). Empty on v2.
    #[serde(default)]
    pub(crate) v1: BTreeMap<String, Node>,
    /// v2: the cgroup; hybrid: its part in the cgroup2 hierarchy.
    #[serde(default)]
    pub(crate) unified: Option<Node>,
}

/// Max time destroy() waits for killed processes to leave.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sleep with a small exponential backoff (100µs .. 10ms).
pub(crate) fn backoff(step: &mut u32) {
    let us = (100u64 << (*step).min(7)).min(10_000);
    *step += 1;
    std::thread::sleep(Duration::from_micros(us));
}

impl Cgroup {
    pub(crate) fn new_v2(n: Node) -> Cgroup {
        Cgroup {
            mode: Mode::V2,
            v1: BTreeMap::new(),
            unified: Some(n),
        }
    }

    pub(crate) fn new_v1(v1: BTreeMap<String, Node>, unified: Option<Node>) -> Cgroup {
        Cgroup {
            mode: Mode::V1,
            v1,
            unified,
        }
    }

    /// Resolve an OCI `linux.cgroupsPath`. Absolute ("/a/b") = below each hierarchy root.
    /// Relative ("a/b") or empty (then `default_name`, e.g. "podrun/<id>") = nested under the
    /// caller's own cgroup for each controller (from /proc/self/cgroup).
    /// The systemd "slice:prefix:name" form is rejected with a clear error.
    pub fn resolve(
        layout: &Layout,
        cgroups_path: Option<&str>,
        default_name: &str,
    ) -> Result<Cgroup> {
        let me = crate::procself::read_self()?;
        crate::resolve::resolve_with(layout, &me, cgroups_path, default_name, &|p: &Path| {
            p.is_dir()
        })
    }

    /// A cgroup nested directly below this one in every hierarchy (e.g. a container under its
    /// pod). `name` must be a single path component. The child owns only its own directory:
    /// destroying it never removes this (parent) cgroup.
    pub fn child(&self, name: &str) -> Result<Cgroup> {
        let p = crate::resolve::parse_cgroups_path(Some(name), "")?;
        if p.absolute || p.components.len() != 1 {
            return Err(Error::InvalidPath {
                path: name.to_string(),
                reason: "a child cgroup name must be a single relative path component".into(),
            });
        }
        let sub = |n: &Node| Node {
            leaf: n.leaf.join(&p.components[0]),
            base: n.leaf.clone(),
            owned: 1,
        };
        Ok(Cgroup {
            mode: self.mode,
            v1: self.v1.iter().map(|(k, n)| (k.clone(), sub(n))).collect(),
            unified: self.unified.as_ref().map(sub),
        })
    }

    /// True when this is a pure cgroup v2 cgroup.
    pub fn is_v2(&self) -> bool {
        self.mode == Mode::V2
    }

    /// The hierarchy mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// v1 controller -> node.
    pub fn v1_nodes(&self) -> &BTreeMap<String, Node> {
        &self.v1
    }

    /// The cgroup2 node (v2, or the unified part of a hybrid cgroup).
    pub fn unified_node(&self) -> Option<&Node> {
        self.unified.as_ref()
    }

    /// Leaf directory of a v1 controller, if mounted.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(|n| n.leaf.as_path())
    }

    /// The cgroup2 leaf directory, if any.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_ref().map(|n| n.leaf.as_path())
    }

    /// Distinct nodes (co-mounted v1 controllers counted once), v1 first then unified.
    pub(crate) fn nodes(&self) -> Vec<&Node> {
        let mut out = self.v1_dirs();
        if let Some(u) = &self.unified {
            out.push(u);
        }
        out
    }

    /// The v1 hierarchies' nodes, co-mounted controllers (one directory) once.
    fn v1_dirs(&self) -> Vec<&Node> {
        let mut out: Vec<&Node> = Vec::with_capacity(self.v1.len() + 1);
        for n in self.v1.values() {
            if !out.iter().any(|o| o.leaf == n.leaf) {
                out.push(n);
            }
        }
        out
    }

    /// Every leaf directory (for diagnostics and tests).
    pub fn paths(&self) -> Vec<PathBuf> {
        self.nodes().iter().map(|n| n.leaf.clone()).collect()
    }

    /// The directory whose cgroup.procs is authoritative for listing processes.
    pub(crate) fn procs_dir(&self) -> Option<&Path> {
        if self.mode == Mode::V2 {
            return self.unified_dir();
        }
        for c in [
            "freezer", "pids", "memory", "cpu", "cpuacct", "devices", "blkio", "cpuset",
        ] {
            if let Some(d) = self.v1_dir(c) {
                return Some(d);
            }
        }
        self.v1
            .values()
            .next()
            .map(|n| n.leaf.as_path())
            .or(self.unified_dir())
    }

    /// mkdir -p in every hierarchy. v1 cpuset: copy cpus/mems from the parent at each new
    /// level. v2: enable the parent's available controllers in cgroup.subtree_control at each
    /// level. On failure everything created so far is removed again.
    pub fn create(&self) -> Result<()> {
        self.create_some(self.nodes())
    }

    /// Only the cgroup2 leaf (hybrid or v2), for a child born into it with
    /// clone3(CLONE_INTO_CGROUP) before [`Cgroup::create_v1`] makes the rest (see
    /// [`Cgroup::unified_attach`]). On failure it is removed again.
    pub fn create_unified(&self) -> Result<()> {
        self.create_some(self.unified.iter().collect())
    }

    /// Only the v1 hierarchies' directories (the counterpart of [`Cgroup::create_unified`]).
    /// On failure everything of this cgroup is removed again.
    pub fn create_v1(&self) -> Result<()> {
        self.create_some(self.v1_dirs())
    }

    /// [`Cgroup::create_v1`] for as long as `go_on` says so, one hierarchy at a time (work
    /// for a runtime that waits for something else meanwhile); returns how many it made,
    /// for [`Cgroup::create_v1_from`] to make the rest. On failure everything of this
    /// cgroup is removed again.
    pub fn create_v1_while(&self, go_on: &dyn Fn() -> bool) -> Result<usize> {
        let mut made = 0;
        for n in self.v1_dirs() {
            if !go_on() {
                break;
            }
            self.create_some(vec![n])?;
            made += 1;
        }
        Ok(made)
    }

    /// [`Cgroup::create_v1`] without the first `skip` hierarchies (made already by
    /// [`Cgroup::create_v1_while`]).
    pub fn create_v1_from(&self, skip: usize) -> Result<()> {
        self.create_some(self.v1_dirs().into_iter().skip(skip).collect())
    }

    fn create_some(&self, nodes: Vec<&Node>) -> Result<()> {
        let r = self.create_nodes(nodes);
        if r.is_err() {
            let _ = self.remove_dirs();
        }
        r
    }

    fn create_nodes(&self, nodes: Vec<&Node>) -> Result<()> {
        for n in nodes {
            // A shared parent (e.g. "podrun/") may be removed by a concurrent destroy between
            // our mkdirs (ENOENT), or while we read its cpuset (ENODEV: a cgroup being
            // removed): start the path again a few times.
            let mut tries = 0;
            loop {
                match self.create_node(n) {
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV))
                            && tries < 5 =>
                    {
                        tries += 1
                    }
                    r => {
                        r?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn create_node(&self, n: &Node) -> Result<()> {
        let is_cpuset = self.v1.get("cpuset").is_some_and(|c| c.leaf == n.leaf);
        let is_unified = self.unified.as_ref().is_some_and(|u| u.leaf == n.leaf);
        let rel = n.leaf.strip_prefix(&n.base).unwrap_or(Path::new(""));
        let mut dir = n.base.clone();
        for comp in rel.components() {
            let parent = dir.clone();
            dir.push(comp);
            if is_unified {
                if self.mode == Mode::V2 && parent == n.base && has_procs(&parent) {
                    // A base that holds processes is left alone: one by one, only threaded
                    // controllers (cpu, pids...) would get enabled there, which makes our new
                    // child an invalid domain (clone3/migration into it: EOPNOTSUPP). `apply`
                    // delegates if a limit needs a controller (see `delegate_v2`).
                } else {
                    enable_subtree_controllers(&parent);
                }
            }
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fsio::dir_err(&dir, "mkdir", e)),
            }
            if is_cpuset {
                copy_cpuset_from_parent(&parent, &dir)?;
            }
        }
        Ok(())
    }

    /// cgroup v2: whether the directory we nest under offers `controller` but holds processes
    /// of its own, so it cannot enable it for us (the "no internal processes" rule).
    pub(crate) fn v2_base_busy_with(&self, controller: &str) -> bool {
        self.mode == Mode::V2
            && self.unified.as_ref().is_some_and(|n| {
                fsio::read_raw(&n.base.join("cgroup.controllers"))
                    .is_ok_and(|s| s.split_ascii_whitespace().any(|c| c == controller))
                    && has_procs(&n.base)
            })
    }

    /// cgroup v2 delegation: make the base a pure parent (its processes move to
    /// `<base>/podrun-leaf`), then enable the available controllers level by level down to
    /// the leaf. Called by `apply` when a requested controller is missing and the base is busy.
    pub(crate) fn delegate_v2(&self) -> Result<()> {
        let Some(n) = self.unified.as_ref().filter(|_| self.mode == Mode::V2) else {
            return Ok(());
        };
        delegate_base(&n.base)?;
        let rel = n.leaf.strip_prefix(&n.base).unwrap_or(Path::new(""));
        let mut dir = n.base.clone();
        let mut comps = rel.components().peekable();
        while let Some(c) = comps.next() {
            dir.push(c);
            if comps.peek().is_some() {
                enable_subtree_controllers(&dir);
            }
        }
        Ok(())
    }

    /// Move process `pid` (whole thread group) into the cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        let v = pid.to_string();
        for n in self.nodes() {
            fsio::write(&n.leaf.join("cgroup.procs"), &v)?;
        }
        Ok(())
    }

    /// How a new, single-threaded process enters this cgroup without the
    /// global `cgroup_threadgroup_rwsem` write lock: a write of another pid to
    /// `cgroup.procs` takes it, and on a host without `favordynmods` that lock
    /// waits for an RCU grace period (5-20 ms) — the biggest single cost of
    /// starting a container there. Instead: the unified leaf (v2, or the
    /// cgroup2 part of a hybrid host) is entered at birth with
    /// clone3(CLONE_INTO_CGROUP) using [`SelfAttach::into`], and each v1
    /// hierarchy by the child itself writing "0" (= the calling thread) to
    /// `tasks` through [`SelfAttach::attach_current`] — a single-thread
    /// migration that the kernel does under cgroup_mutex only. The files are
    /// opened here, by the runtime, so the child needs no path lookups or
    /// privileges of its own (cgroupfs checks the opener's credentials).
    pub fn self_attach(&self) -> Result<SelfAttach> {
        let mut a = self.v1_attach()?;
        a.into = self.unified_attach()?.into;
        Ok(a)
    }

    /// [`Cgroup::self_attach`] for the cgroup2 leaf only: a child born into it that enters the
    /// v1 hierarchies later, through [`Cgroup::v1_attach`] (the runtime makes those with
    /// [`Cgroup::create_v1`] while the child already sets up its mounts).
    pub fn unified_attach(&self) -> Result<SelfAttach> {
        let into = match &self.unified {
            Some(u) => Some(open_dir_path(&u.leaf)?),
            None => None,
        };
        Ok(SelfAttach {
            tasks: Vec::new(),
            into,
        })
    }

    /// [`Cgroup::self_attach`] for the v1 hierarchies only: their `tasks` files, opened, in
    /// the order of [`Cgroup::v1_tasks_paths`] (for a runtime that passes the descriptors to
    /// a child that is already running).
    pub fn v1_attach(&self) -> Result<SelfAttach> {
        let mut tasks = Vec::new();
        for p in self.v1_tasks_paths() {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| fsio::dir_err(p.parent().unwrap_or(&p), "open tasks of", e))?;
            tasks.push((p, OwnedFd::from(f)));
        }
        Ok(SelfAttach { tasks, into: None })
    }

    /// The v1 hierarchies' `tasks` files (co-mounted controllers once).
    pub fn v1_tasks_paths(&self) -> Vec<PathBuf> {
        self.v1_dirs()
            .iter()
            .map(|n| n.leaf.join("tasks"))
            .collect()
    }

    /// O_PATH|O_DIRECTORY fd of the v2 leaf, for clone3(CLONE_INTO_CGROUP). None on v1/hybrid.
    pub fn v2_dir_fd(&self) -> Option<OwnedFd> {
        if self.mode != Mode::V2 {
            return None;
        }
        let dir = self.unified_dir()?;
        open_dir_path(dir).ok()
    }

    /// All processes in the cgroup and its descendants (sorted, deduplicated). On v1 this is
    /// the union over every hierarchy, so a process moved into a sub-cgroup of only one
    /// controller (a container managing its own cgroups) is still found.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        match self.mode {
            Mode::V2 => {
                if let Some(d) = self.unified_dir() {
                    collect_pids(d, &mut out)?;
                }
            }
            Mode::V1 => {
                for n in self.nodes() {
                    collect_pids(&n.leaf, &mut out)?;
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Kill leftovers (SIGKILL), wait (bounded) until empty, rmdir the leaf (and child cgroups)
    /// plus the parents we created. Idempotent; missing directories are fine.
    pub fn destroy(&self) -> Result<()> {
        // Fast path, the common case of a container whose processes are all gone: rmdir
        // succeeds in every hierarchy (a cgroup with processes or child cgroups refuses with
        // EBUSY, so nothing can be lost by trying). Anything else takes the full path.
        if self.try_remove_empty() {
            return Ok(());
        }
        let any_exists = self.nodes().iter().any(|n| n.leaf.is_dir());
        if !any_exists {
            return Ok(());
        }
        if !self.pids()?.is_empty() {
            self.kill_all(libc::SIGKILL)?;
            self.wait_empty(EMPTY_TIMEOUT)?;
        }
        self.remove_dirs()
    }

    /// rmdir each leaf once (no retry), then the owned parents; true if every leaf is gone.
    fn try_remove_empty(&self) -> bool {
        let nodes = self.nodes();
        let mut all_gone = true;
        for n in &nodes {
            match std::fs::remove_dir(&n.leaf) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => all_gone = false,
            }
        }
        if all_gone {
            for n in &nodes {
                let _ = remove_owned_parents(n);
            }
        }
        all_gone
    }

    /// Wait until no process is left in the cgroup.
    pub fn wait_empty(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let mut step = 0;
        loop {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    path: self.procs_dir().unwrap_or(Path::new("?")).to_path_buf(),
                    what: format!("the cgroup to become empty (still has pids {pids:?})"),
                });
            }
            backoff(&mut step);
        }
    }

    /// rmdir child cgroups, the leaf, then owned parents (those may be shared: ignore busy).
    pub(crate) fn remove_dirs(&self) -> Result<()> {
        let mut first_err = None;
        for n in self.nodes() {
            if let Err(e) = rmdir_tree(&n.leaf) {
                first_err.get_or_insert(e);
                continue;
            }
            if let Err(e) = remove_owned_parents(n) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// rmdir the parents of `n`'s leaf that podrun created, bottom-up, once the leaf is gone. A
/// shared parent still in use (or already gone) ends the walk without an error.
fn remove_owned_parents(n: &Node) -> Result<()> {
    for d in crate::resolve::owned_dirs(n).into_iter().skip(1) {
        match std::fs::remove_dir(&d) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ENOTEMPTY) | Some(libc::EBUSY)
                ) =>
            {
                break;
            }
            Err(e) => return Err(fsio::dir_err(&d, "rmdir", e)),
        }
    }
    Ok(())
}

/// Open cgroup files for a child to enter the cgroup by itself (see [`Cgroup::self_attach`]).
#[derive(Debug)]
pub struct SelfAttach {
    /// `tasks` of each v1 hierarchy, opened for writing.
    pub tasks: Vec<(PathBuf, OwnedFd)>,
    /// The cgroup2 leaf directory, for clone3(CLONE_INTO_CGROUP).
    pub into: Option<OwnedFd>,
}

impl SelfAttach {
    /// In the new (single-threaded) process: move the calling thread into
    /// every v1 hierarchy's cgroup. Makes only write(2) calls.
    pub fn attach_current(&self) -> Result<()> {
        for (p, fd) in &self.tasks {
            // SAFETY: writing 1 byte from a static buffer to a descriptor we own.
            let n = unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                    b"0".as_ptr() as *const libc::c_void,
                    1,
                )
            };
            if n != 1 {
                return Err(Error::Dir {
                    path: p.clone(),
                    op: "write 0 (self) to",
                    source: io::Error::last_os_error(),
                });
            }
        }
        Ok(())
    }
}

/// Open a directory with O_PATH|O_DIRECTORY|O_CLOEXEC.
pub(crate) fn open_dir_path(dir: &Path) -> Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| Error::Dir {
        path: dir.to_path_buf(),
        op: "open",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(fsio::dir_err(dir, "open", io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let f = dir.join("cgroup.procs");
    match fsio::read_raw(&f) {
        Ok(s) => out.extend(fsio::parse_pids(&f, &s)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Read { path: f, source: e }),
    }
    for child in fsio::child_dirs(dir)? {
        collect_pids(&child, out)?;
    }
    Ok(())
}

/// Remove a cgroup directory and all its child cgroups, deepest first. Missing = Ok.
/// EBUSY right after processes exit is retried for a short, bounded time.
fn rmdir_tree(dir: &Path) -> Result<()> {
    for child in fsio::child_dirs(dir)? {
        rmdir_tree(&child)?;
    }
    let start = Instant::now();
    let mut step = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && start.elapsed() < Duration::from_secs(2) =>
            {
                backoff(&mut step);
            }
            Err(e) => return Err(fsio::dir_err(dir, "rmdir", e)),
        }
    }
}

/// v2: enable in `parent`'s cgroup.subtree_control every controller it has available but not
/// yet enabled. Failures (no-internal-processes rule, threaded mode) are tolerated here; apply()
/// reports a clear error if a controller that is actually needed ends up missing.
fn enable_subtree_controllers(parent: &Path) {
    let avail = match fsio::read_raw(&parent.join("cgroup.controllers")) {
        Ok(s) => s,
        Err(_) => return,
    };
    let enabled = fsio::read_raw(&parent.join("cgroup.subtree_control")).unwrap_or_default();
    let want = missing_controllers(&avail, &enabled);
    if want.is_empty() {
        return;
    }
    let f = parent.join("cgroup.subtree_control");
    let all = want
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    if fsio::write_raw(&f, &all).is_ok() {
        return;
    }
    for c in want {
        if let Err(e) = fsio::write_raw(&f, &format!("+{c}")) {
            tracing::debug!(file = %f.display(), controller = c, error = %e, "cannot enable controller");
        }
    }
}

/// Whether the cgroup directory lists processes of its own.
fn has_procs(dir: &Path) -> bool {
    fsio::read_raw(&dir.join("cgroup.procs")).is_ok_and(|s| !s.trim().is_empty())
}

/// cgroup v2 delegation for the directory we nest under: if it holds processes (podrun
/// started in a CI job's cgroup), move every one of them to `<base>/podrun-leaf` (created if
/// needed), as container-in-container entrypoints do; then enable its available controllers
/// for its children. Nothing happens when every controller is already enabled.
fn delegate_base(base: &Path) -> Result<()> {
    let avail = match fsio::read_raw(&base.join("cgroup.controllers")) {
        Ok(s) => s,
        Err(_) => return Ok(()),
    };
    let enabled = fsio::read_raw(&base.join("cgroup.subtree_control")).unwrap_or_default();
    if missing_controllers(&avail, &enabled).is_empty() {
        return Ok(());
    }
    let pids = fsio::read(&base.join("cgroup.procs"))?;
    if !pids.trim().is_empty() {
        let pid_list = pids.split_whitespace().collect::<Vec<_>>().join(" ");
        let fail = |reason: String| Error::Delegation {
            dir: base.to_path_buf(),
            leaf: crate::resolve::DELEGATION_LEAF,
            pids: pid_list.clone(),
            reason,
        };
        let leaf = base.join(crate::resolve::DELEGATION_LEAF);
        match std::fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(fail(format!(
                    "mkdir {}: {}",
                    leaf.display(),
                    crate::error::errno_text(&e)
                )))
            }
        }
        move_all_procs(base, &leaf).map_err(fail)?;
        tracing::info!(
            base = %base.display(),
            leaf = %leaf.display(),
            pids = %pid_list,
            "moved the processes of the cgroup podrun nests under to a leaf (cgroup v2 delegation)"
        );
    }
    // `apply` plans again and names a controller that is still missing.
    enable_subtree_controllers(base);
    Ok(())
}

/// Move every process listed in `from/cgroup.procs` to `to`, until `from` is empty (processes
/// may fork meanwhile; bounded rounds). Processes that exit meanwhile are fine.
fn move_all_procs(from: &Path, to: &Path) -> std::result::Result<(), String> {
    let dst = to.join("cgroup.procs");
    for _ in 0..50 {
        let text = fsio::read(&from.join("cgroup.procs")).map_err(|e| e.to_string())?;
        let pids: Vec<&str> = text.split_whitespace().collect();
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            match fsio::write_raw(&dst, pid) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => {
                    return Err(format!(
                        "write {pid} to {}: {}",
                        dst.display(),
                        crate::error::errno_text(&e)
                    ))
                }
            }
        }
    }
    Err(format!(
        "{} still lists processes after 50 rounds of moving",
        from.join("cgroup.procs").display()
    ))
}

/// Controllers listed in `available` but not in `enabled` (both space separated).
pub(crate) fn missing_controllers<'a>(available: &'a str, enabled: &str) -> Vec<&'a str> {
    let en: Vec<&str> = enabled.split_ascii_whitespace().collect();
    available
        .split_ascii_whitespace()
        .filter(|c| !en.contains(c))
        .collect()
}

/// v1 cpuset: a new cgroup starts with empty cpus/mems; copy the parent's so tasks can join.
fn copy_cpuset_from_parent(parent: &Path, dir: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fsio::read(&dir.join(f))?;
        if !mine.trim().is_empty() {
            continue;
        }
        let theirs = fsio::read(&parent.join(f))?;
        let v = theirs.trim();
        if !v.is_empty() {
            fsio::write(&dir.join(f), v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_controllers_diff() {
        assert_eq!(
            missing_controllers("cpu io memory pids\n", "memory\n"),
            vec!["cpu", "io", "pids"]
        );
        assert!(missing_controllers("hugetlb\n", "hugetlb\n").is_empty());
        assert!(missing_controllers("", "").is_empty());
    }

    #[test]
    fn serde_roundtrip() {
        let cg = Cgroup::new_v2(Node {
            leaf: "/sys/fs/cgroup/a/b".into(),
            base: "/sys/fs/cgroup".into(),
            owned: 2,
        });
        let s = serde_json::to_string(&cg).unwrap();
        let back: Cgroup = serde_json::from_str(&s).unwrap();
        assert_eq!(back, cg);
        assert!(s.contains("\"v2\""));
    }

    #[test]
    fn child_is_nested_and_owns_only_itself() {
        let pod = Cgroup::new_v2(Node {
            leaf: "/sys/fs/cgroup/podrun/pod1".into(),
            base: "/sys/fs/cgroup".into(),
            owned: 2,
        });
        let c = pod.child("ctr").unwrap();
        let n = c.unified_node().unwrap();
        assert_eq!(n.leaf, PathBuf::from("/sys/fs/cgroup/podrun/pod1/ctr"));
        assert_eq!(n.base, PathBuf::from("/sys/fs/cgroup/podrun/pod1"));
        assert_eq!(n.owned, 1);
        assert_eq!(
            crate::resolve::owned_dirs(n),
            vec![PathBuf::from("/sys/fs/cgroup/podrun/pod1/ctr")]
        );
        for bad in ["a/b", "/a", "..", ""] {
            assert!(pod.child(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nodes_dedup_comounted() {
        let n = Node {
            leaf: "/sys/fs/cgroup/cpu,cpuacct/x".into(),
            base: "/sys/fs/cgroup/cpu,cpuacct".into(),
            owned: 1,
        };
        let mut v1 = BTreeMap::new();
        v1.insert("cpu".to_string(), n.clone());
        v1.insert("cpuacct".to_string(), n);
        let cg = Cgroup::new_v1(v1, None);
        assert_eq!(cg.paths().len(), 1);
        assert!(cg.v2_dir_fd().is_none());
    }
}

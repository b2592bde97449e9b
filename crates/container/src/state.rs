//! Per-container state under `--root`: per id a lock file, `<id>:state.json` (replaced
//! atomically) and the `exec.fifo` of a created container ([`StateEntry`]).
//! Status is computed from the live process, never trusted from the file alone.

use crate::error::{Error, Result};
use crate::util;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const FIFO: &str = "exec.fifo";

/// What podrun remembers about a container.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub pid: i32,
    /// Start time of `pid` (ticks since boot, /proc/<pid>/stat field 22).
    pub start_time: u64,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Option<podrun_cgroups::Cgroup>,
    /// The spec the container was created from (hooks for start/delete, process defaults for exec).
    pub spec: StoredSpec,
}

/// The spec as `state.json` keeps it: its JSON, parsed only when needed. Most commands need
/// only `ociVersion` and the hooks ([`StoredSpec::head`], a cheap parse that skips the
/// rest); `exec` needs all of it ([`StoredSpec::full`]). The file's format is unchanged.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(transparent)]
pub struct StoredSpec {
    raw: Box<serde_json::value::RawValue>,
}

/// The parts of a stored spec that state, start and delete need.
#[derive(Deserialize, Debug, Default)]
pub struct SpecHead {
    #[serde(rename = "ociVersion", default)]
    pub oci_version: String,
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

impl StoredSpec {
    pub fn new(spec: &oci_spec::runtime::Spec) -> Result<StoredSpec> {
        serde_json::value::to_raw_value(spec)
            .map(|raw| StoredSpec { raw })
            .map_err(|e| Error::Other(format!("serialize spec: {e}")))
    }

    pub fn full(&self) -> Result<oci_spec::runtime::Spec> {
        serde_json::from_str(self.raw.get())
            .map_err(|e| Error::Other(format!("stored spec in state.json: {e}")))
    }

    pub fn head(&self) -> Result<SpecHead> {
        serde_json::from_str(self.raw.get())
            .map_err(|e| Error::Other(format!("stored spec in state.json: {e}")))
    }
}

/// The OCI state, as `podrun state` prints it (runc's fields included).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: Option<i32>,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

/// `list --format json` rows (runc's spelling).
#[derive(Serialize, Debug)]
pub struct ListEntry {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    /// Left out when empty, as runc's `list --format json` does.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl From<&State> for ListEntry {
    fn from(s: &State) -> Self {
        ListEntry {
            oci_version: s.oci_version.clone(),
            id: s.id.clone(),
            pid: s.pid.unwrap_or(0),
            status: s.status.clone(),
            bundle: s.bundle.clone(),
            rootfs: s.rootfs.clone(),
            created: s.created.clone(),
            owner: s.owner.clone(),
            annotations: s.annotations.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// A container id must be a safe single path component, as runc requires.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidId(id.into(), "empty"));
    }
    if id.len() > 1024 {
        return Err(Error::InvalidId(id.into(), "longer than 1024 characters"));
    }
    if id == "." || id == ".." {
        return Err(Error::InvalidId(id.into(), "must not be . or .."));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
    {
        return Err(Error::InvalidId(
            id.into(),
            "only [A-Za-z0-9_+.-] are allowed",
        ));
    }
    Ok(())
}

/// Where a container's state lives under `--root`: three names side by side in the root,
/// not a directory of their own.
///
/// - `<id>`: an empty file, the container's lock (flock). Its existence is the id being in
///   use: `create` makes it exclusively (`O_EXCL`), `delete` removes it last.
/// - `<id>:state.json`: the [`Record`], replaced atomically ([`util::PendingWrite`]).
/// - `<id>:exec.fifo`: present while the container is `created` (`start` removes it).
///
/// ':' is not allowed in an id, so no id's names can be another's. A directory per id, as
/// runc keeps, costs a data block on a disk file system (a directory always has one, files
/// this small get one only at write-back): made at every `create` and freed at every
/// `delete`, where a file system mounted `discard` without a journal (ext4 here) waits for
/// the device to discard it, ~190 µs on this VM (docs/benchmarks.md). Containers made by
/// the earlier layout (`<id>/state.json`, `<id>/exec.fifo`) are still found and removed.
pub struct StateEntry {
    /// `<root>/<id>`: the lock file (the state directory in the earlier layout).
    pub path: PathBuf,
    root: PathBuf,
    id: String,
    /// `path` is a directory of the earlier layout.
    legacy: bool,
}

impl StateEntry {
    pub fn new(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        let mut e = Self::at(root, id);
        e.legacy = std::fs::symlink_metadata(&e.path).is_ok_and(|m| m.is_dir());
        Ok(e)
    }

    /// The entry of a valid `id` in the current layout.
    fn at(root: &Path, id: &str) -> Self {
        StateEntry {
            path: root.join(id),
            root: root.to_path_buf(),
            id: id.to_string(),
            legacy: false,
        }
    }

    /// Claim the id and take its lock: the lock file must not exist yet (that is how "id
    /// already in use" is detected, atomically, even with concurrent creates).
    pub fn create(root: &Path, id: &str) -> Result<(Self, Flock<File>)> {
        validate_id(id)?;
        std::fs::create_dir_all(root).map_err(|e| Error::io("create state root", root, e))?;
        let e = Self::at(root, id);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&e.path)
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::AlreadyExists => Error::AlreadyExists(id.into()),
                _ => Error::io("create state lock", &e.path, err),
            })?;
        let lock = Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, err)| Error::sys(format!("lock {}", e.path.display()), err))?;
        Ok((e, lock))
    }

    /// A file of this container's: `<root>/<id>:<name>` (`<root>/<id>/<name>` in the earlier
    /// layout).
    fn file(&self, name: &str) -> PathBuf {
        if self.legacy {
            self.path.join(name)
        } else {
            self.root.join(format!("{}:{name}", self.id))
        }
    }

    pub fn exists(&self) -> bool {
        self.state_file().exists()
    }

    pub fn state_file(&self) -> PathBuf {
        self.file(STATE_FILE)
    }

    /// Take the container's lock (blocking); released when the returned guard drops.
    pub fn lock(&self) -> Result<Flock<File>> {
        let f = File::open(&self.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(self.id())
            } else {
                Error::io("open state lock", &self.path, e)
            }
        })?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("lock {}", self.path.display()), e))
    }

    pub fn id(&self) -> String {
        self.id.clone()
    }

    pub fn load(&self) -> Result<Record> {
        let p = self.state_file();
        let data = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(self.id())
            } else {
                Error::io("read", &p, e)
            }
        })?;
        serde_json::from_slice(&data).map_err(|e| Error::Config {
            path: p,
            msg: e.to_string(),
        })
    }

    pub fn save(&self, r: &Record) -> Result<()> {
        self.prepare_save(r)?.commit()
    }

    /// `save`, written ahead: the state file appears at `commit`.
    pub fn prepare_save(&self, r: &Record) -> Result<util::PendingWrite> {
        let data =
            serde_json::to_vec(r).map_err(|e| Error::Other(format!("serialize state: {e}")))?;
        util::PendingWrite::new(&self.state_file(), &data)
    }

    pub fn fifo(&self) -> PathBuf {
        self.file(FIFO)
    }

    /// Remove the state file, the fifo, then the lock file (or the earlier layout's
    /// directory). A missing name is not an error: a create that failed half-way leaves
    /// only some of them.
    pub fn remove(&self) -> Result<()> {
        let gone = |r: std::io::Result<()>, what: &Path| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", what, e)),
            _ => Ok(()),
        };
        for f in [STATE_FILE, FIFO] {
            let p = self.file(f);
            gone(std::fs::remove_file(&p), &p)?;
        }
        if !self.legacy {
            return gone(std::fs::remove_file(&self.path), &self.path);
        }
        // The earlier layout: what a state directory holds, then the directory.
        match std::fs::remove_dir(&self.path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
        gone(std::fs::remove_dir_all(&self.path), &self.path)
    }
}

/// The ids under `root` that have state (lock files, and directories of the earlier
/// layout), from the directory's entries alone. Sorted.
pub fn ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", root, e)),
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|ent| ent.file_type().is_ok_and(|t| t.is_file() || t.is_dir()))
        .filter_map(|ent| ent.file_name().into_string().ok())
        .filter(|name| validate_id(name).is_ok())
        .collect();
    out.sort();
    Ok(out)
}

impl Record {
    /// The status from the process itself: gone or a zombie = stopped; a waiting init
    /// (exec.fifo still present) = created; a frozen cgroup = paused; else running.
    pub fn status(&self, dir: &StateEntry) -> Status {
        if self.pid <= 0 || !util::process_alive(self.pid, self.start_time) {
            return Status::Stopped;
        }
        // Paused before created: a created container can be paused too (runc's order), and
        // must then be resumed, not started or exec'd into.
        if let Some(cg) = &self.cgroup {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        if dir.fifo().exists() {
            return Status::Created;
        }
        Status::Running
    }

    pub fn oci_state(&self, status: Status) -> State {
        let version = self.spec.head().map(|h| h.oci_version).unwrap_or_default();
        self.oci_state_with(status, version)
    }

    /// [`Record::oci_state`] for a caller that has parsed the stored spec's head already.
    pub fn oci_state_with(&self, status: Status, oci_version: String) -> State {
        State {
            oci_version,
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                Some(0)
            } else {
                Some(self.pid)
            },
            status: status.to_string(),
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn id_rules() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("..").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("a b").is_err());
    }

    #[test]
    fn stored_spec_keeps_the_file_format_and_parses_on_demand() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "hooks": {"poststop": [{"path": "/bin/true"}]}
        }))
        .unwrap();
        let stored = StoredSpec::new(&spec).unwrap();
        // In state.json the spec is the same nested object as before (old files still load).
        let text = serde_json::to_string(&stored).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::to_value(&spec).unwrap()
        );
        let back: StoredSpec = serde_json::from_str(&text).unwrap();
        let head = back.head().unwrap();
        assert_eq!(head.oci_version, "1.0.2");
        let hooks = head.hooks.unwrap();
        assert_eq!(hooks.poststop().as_ref().unwrap().len(), 1);
        let full = back.full().unwrap();
        assert_eq!(
            full.process().as_ref().unwrap().args().as_ref().unwrap()[0],
            "sh"
        );
    }

    #[test]
    fn create_twice_is_already_exists() {
        let d = tempfile::tempdir().unwrap();
        let _first = StateEntry::create(d.path(), "x").unwrap();
        assert!(matches!(
            StateEntry::create(d.path(), "x"),
            Err(Error::AlreadyExists(_))
        ));
    }

    fn record(id: &str) -> Record {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"}
        }))
        .unwrap();
        Record {
            id: id.into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            pid: 0,
            start_time: 0,
            created: "2026-11-25T00:00:00Z".into(),
            owner: "root".into(),
            annotations: HashMap::new(),
            cgroup: None,
            spec: StoredSpec::new(&spec).unwrap(),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_container_is_three_names_in_the_root_and_remove_leaves_none() {
        let d = tempfile::tempdir().unwrap();
        // "a" and "a.json"-like ids cannot collide: ':' is not allowed in an id.
        let (e, lock) = StateEntry::create(d.path(), "a").unwrap();
        let (e2, _lock2) = StateEntry::create(d.path(), "a.state.json").unwrap();
        e.save(&record("a")).unwrap();
        std::fs::write(e.fifo(), b"").unwrap();
        e2.save(&record("a.state.json")).unwrap();
        assert_eq!(
            names(d.path()),
            [
                "a",
                "a.state.json",
                "a.state.json:state.json",
                "a:exec.fifo",
                "a:state.json"
            ]
        );
        assert!(std::fs::metadata(&e.path).unwrap().is_file());
        assert_eq!(ids(d.path()).unwrap(), ["a", "a.state.json"]);
        let found = StateEntry::new(d.path(), "a").unwrap();
        assert!(found.exists());
        assert_eq!(found.load().unwrap().id, "a");
        // flock: another open of the same file waits for the creator's lock.
        drop(lock);
        let _held = found.lock().unwrap();
        found.remove().unwrap();
        assert_eq!(names(d.path()), ["a.state.json", "a.state.json:state.json"]);
        assert!(matches!(found.load(), Err(Error::NotFound(_))));
        assert!(matches!(found.lock(), Err(Error::NotFound(_))));
        // A create that died after claiming the id leaves only the lock file: removable.
        let (half, _l) = StateEntry::create(d.path(), "half").unwrap();
        half.remove().unwrap();
        assert_eq!(ids(d.path()).unwrap(), ["a.state.json"]);
    }

    #[test]
    fn the_earlier_layout_is_still_read_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("old");
        std::fs::create_dir(&old).unwrap();
        let rec = serde_json::to_vec(&record("old")).unwrap();
        std::fs::write(old.join(STATE_FILE), rec).unwrap();
        std::fs::write(old.join(FIFO), b"").unwrap();
        // Not a container: a directory without state, a name with ':', a symlink.
        std::fs::create_dir(d.path().join(".exe-lower")).unwrap();
        std::fs::write(d.path().join("x:state.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("old", d.path().join("link")).unwrap();
        assert_eq!(ids(d.path()).unwrap(), [".exe-lower", "old"]);
        let e = StateEntry::new(d.path(), "old").unwrap();
        assert!(e.exists());
        assert_eq!(e.fifo(), old.join(FIFO));
        assert_eq!(e.load().unwrap().id, "old");
        let _l = e.lock().unwrap();
        assert!(matches!(
            StateEntry::create(d.path(), "old"),
            Err(Error::AlreadyExists(_))
        ));
        e.remove().unwrap();
        assert!(!old.exists());
    }
}

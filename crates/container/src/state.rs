//! Per-container state under `--root`: one directory per id holding `state.json`
//! (replaced atomically), the `exec.fifo` of a created container, and a lock.
//! Status is computed from the live process, never trusted from the file alone.

use crate::error::{Error, Result};
use crate::util;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
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

pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        Ok(StateDir {
            path: root.join(id),
        })
    }

    /// Create the directory; it must not exist yet (that is how "id already in use" is detected,
    /// atomically, even with concurrent creates).
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        let sd = Self::new(root, id)?;
        std::fs::create_dir_all(root).map_err(|e| Error::io("create state root", root, e))?;
        match std::fs::create_dir(&sd.path) {
            Ok(()) => Ok(sd),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::AlreadyExists(id.into()))
            }
            Err(e) => Err(Error::io("create state dir", &sd.path, e)),
        }
    }

    pub fn exists(&self) -> bool {
        self.path.join(STATE_FILE).exists()
    }

    /// Take the container's lock (blocking); released when the returned guard drops.
    pub fn lock(&self) -> Result<Flock<File>> {
        let f = File::open(&self.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(self.id())
            } else {
                Error::io("open state dir", &self.path, e)
            }
        })?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("lock {}", self.path.display()), e))
    }

    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn load(&self) -> Result<Record> {
        let p = self.path.join(STATE_FILE);
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
        util::PendingWrite::new(&self.path.join(STATE_FILE), &data)
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    pub fn remove(&self) -> Result<()> {
        // What a state directory holds, then the directory: no listing in the common case.
        for f in [STATE_FILE, FIFO] {
            let _ = std::fs::remove_file(self.path.join(f));
        }
        match std::fs::remove_dir(&self.path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove state dir", &self.path, e)),
        }
    }
}

impl Record {
    /// The status from the process itself: gone or a zombie = stopped; a waiting init
    /// (exec.fifo still present) = created; a frozen cgroup = paused; else running.
    pub fn status(&self, dir: &StateDir) -> Status {
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
    fn ids() {
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
        StateDir::create(d.path(), "x").unwrap();
        assert!(matches!(
            StateDir::create(d.path(), "x"),
            Err(Error::AlreadyExists(_))
        ));
    }
}

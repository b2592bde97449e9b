//! Temporary files and directories inside the store (same filesystem, so a finished
//! item is published with one rename). Names start with the owner's pid; entries of dead
//! processes are removed by `clean_stale`.

use crate::error::{IoContext, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path removed on drop unless `keep` was called.
pub struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    pub fn new(tmp_dir: &Path, what: &str) -> TempPath {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        TempPath {
            path: tmp_dir.join(format!("{}-{n}-{nanos:x}-{what}", std::process::id())),
            keep: false,
        }
    }

    pub fn new_dir(tmp_dir: &Path, what: &str) -> Result<TempPath> {
        let t = TempPath::new(tmp_dir, what);
        fs::create_dir(&t.path).ctx("creating temporary directory", &t.path)?;
        Ok(t)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The item was renamed away (or must stay): do not remove it on drop.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            remove_any(&self.path);
        }
    }
}

pub fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            if let Err(e) = fs::remove_dir_all(p) {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove temporary directory");
            }
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

/// Remove temporary items whose owning process is gone (an interrupted pull or load).
pub fn clean_stale(tmp_dir: &Path) {
    let Ok(rd) = fs::read_dir(tmp_dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let pid: Option<u32> = name.split('-').next().and_then(|p| p.parse().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            tracing::debug!(path = %e.path().display(), "removing stale temporary item");
            remove_any(&e.path());
        }
    }
}

/// Remove everything in the tmp dir (only under the store's exclusive lock).
pub fn clean_all(tmp_dir: &Path) {
    let Ok(rd) = fs::read_dir(tmp_dir) else {
        return;
    };
    for e in rd.flatten() {
        remove_any(&e.path());
    }
}

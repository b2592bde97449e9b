//! Freezing (v1 freezer.state, v2 cgroup.freeze) and signalling every process of a cgroup.

use crate::cgroup::{backoff, Cgroup, Mode};
use crate::error::{Error, Result};
use crate::fsio;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where freezing is done for a given cgroup.
enum Freezer<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

impl Cgroup {
    fn freezer(&self) -> Result<Freezer<'_>> {
        if self.mode == Mode::V1 {
            if let Some(d) = self.v1_dir("freezer") {
                return Ok(Freezer::V1(d));
            }
        }
        // v2, or hybrid without a v1 freezer: cgroup.freeze exists on every non-root v2 cgroup.
        if let Some(d) = self.unified_dir() {
            return Ok(Freezer::V2(d));
        }
        Err(Error::Unsupported {
            what: "freeze",
            reason: "no v1 freezer controller is mounted and there is no cgroup2 hierarchy".into(),
        })
    }

    /// Freeze every process; returns once the kernel reports the cgroup frozen (bounded).
    pub fn freeze(&self) -> Result<()> {
        match self.freezer()? {
            Freezer::V1(d) => {
                let f = d.join("freezer.state");
                let start = Instant::now();
                let mut step = 0;
                fsio::write(&f, "FROZEN")?;
                loop {
                    let s = fsio::read(&f)?;
                    if s.trim() == "FROZEN" {
                        return Ok(());
                    }
                    if start.elapsed() > FREEZE_TIMEOUT {
                        let _ = fsio::write(&f, "THAWED");
                        return Err(Error::Timeout {
                            path: f,
                            what: format!("state FROZEN (still {:?}); thawed again", s.trim()),
                        });
                    }
                    backoff(&mut step);
                    // Re-request: tasks that were forking when we asked may have escaped.
                    if step % 8 == 0 {
                        fsio::write(&f, "FROZEN")?;
                    }
                }
            }
            Freezer::V2(d) => {
                fsio::write(&d.join("cgroup.freeze"), "1")?;
                self.wait_v2_frozen(d, true)
            }
        }
    }

    /// Thaw every process.
    pub fn thaw(&self) -> Result<()> {
        match self.freezer()? {
            Freezer::V1(d) => fsio::write(&d.join("freezer.state"), "THAWED"),
            Freezer::V2(d) => {
                fsio::write(&d.join("cgroup.freeze"), "0")?;
                self.wait_v2_frozen(d, false)
            }
        }
    }

    /// True when the cgroup is (fully) frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        match self.freezer()? {
            Freezer::V1(d) => Ok(fsio::read(&d.join("freezer.state"))?.trim() == "FROZEN"),
            Freezer::V2(d) => v2_frozen(d),
        }
    }

    fn wait_v2_frozen(&self, d: &Path, want: bool) -> Result<()> {
        let start = Instant::now();
        let mut step = 0;
        loop {
            if v2_frozen(d)? == want {
                return Ok(());
            }
            if start.elapsed() > FREEZE_TIMEOUT {
                if want {
                    let _ = fsio::write(&d.join("cgroup.freeze"), "0");
                }
                return Err(Error::Timeout {
                    path: d.join("cgroup.events"),
                    what: format!("\"frozen {}\"", want as u8),
                });
            }
            backoff(&mut step);
        }
    }

    /// Send `sig` to every process (descendant cgroups included).
    /// SIGKILL: v2 writes cgroup.kill when the kernel has it; otherwise processes are killed in
    /// rounds until no new one appears (see `kill_rounds`), then a frozen cgroup is thawed so
    /// the kills land. Other signals: freeze, signal each process, thaw (no fork races); a
    /// cgroup that was already frozen stays frozen.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        if sig == libc::SIGKILL && self.mode == Mode::V2 {
            if let Some(d) = self.unified_dir() {
                let f = d.join("cgroup.kill");
                match fsio::write_raw(&f, "1") {
                    Ok(()) => return Ok(()),
                    // No cgroup.kill (kernel < 5.14): fall back to freeze + signal.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && d.is_dir() => {}
                    // The cgroup itself is gone: nothing to kill.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(source) => {
                        return Err(Error::Write {
                            path: f,
                            value: "1".into(),
                            source,
                            hint: String::new(),
                        })
                    }
                }
            }
        }
        let Some(dir) = self.procs_dir().map(PathBuf::from) else {
            return Ok(());
        };
        if !dir.is_dir() {
            return Ok(());
        }
        if sig == libc::SIGKILL {
            return self.kill_rounds();
        }
        let can_freeze = self.freezer().is_ok();
        let was_frozen = can_freeze && self.is_frozen().unwrap_or(false);
        if can_freeze && !was_frozen {
            self.freeze()?;
        }
        let res = self.signal_each(sig);
        if can_freeze && (!was_frozen || sig == libc::SIGKILL) {
            self.thaw()?;
        }
        res
    }

    /// SIGKILL without freezing: kill every listed process, re-read, repeat until a round finds
    /// no process we have not signalled yet. A task with SIGKILL pending cannot complete a
    /// fork, so children born during a round are caught by the next one. A frozen cgroup is
    /// thawed afterwards so the kills are delivered.
    fn kill_rounds(&self) -> Result<()> {
        let mut done: Vec<i32> = Vec::new();
        for _ in 0..1000 {
            let fresh: Vec<i32> = self
                .pids()?
                .into_iter()
                .filter(|p| !done.contains(p))
                .collect();
            if fresh.is_empty() {
                if self.freezer().is_ok() && self.is_frozen().unwrap_or(false) {
                    self.thaw()?;
                }
                return Ok(());
            }
            for &pid in &fresh {
                signal(pid, libc::SIGKILL)?;
            }
            done.extend(fresh);
        }
        Err(Error::Timeout {
            path: self.procs_dir().unwrap_or(Path::new("?")).to_path_buf(),
            what: "no new processes after 1000 SIGKILL rounds (fork bomb?)".into(),
        })
    }

    fn signal_each(&self, sig: i32) -> Result<()> {
        for pid in self.pids()? {
            signal(pid, sig)?;
        }
        Ok(())
    }
}

/// kill(2), ignoring processes that are already gone.
fn signal(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: kill(2) with a pid read from cgroup.procs and a caller-given signal number;
    // no memory is shared with the kernel.
    let r = unsafe { libc::kill(pid, sig) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(Error::Sys {
                call: format!("kill({pid}, {sig})"),
                source: e,
            });
        }
    }
    Ok(())
}

fn v2_frozen(d: &Path) -> Result<bool> {
    let f = d.join("cgroup.events");
    let s = fsio::read(&f)?;
    Ok(fsio::keyed_value(&f, &s, "frozen")? == Some(1))
}

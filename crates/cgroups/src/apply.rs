//! Cgroup::apply: plan the writes for `linux.resources`, then perform them in order.

use crate::cgroup::{Cgroup, Mode};
use crate::error::{Error, Result};
use crate::fsio;
use crate::plan::{plan_v1, plan_v2, Avail, Target};
use oci_spec::runtime::LinuxResources;
use std::io::Write;
use std::path::{Path, PathBuf};

impl Cgroup {
    fn target_dir(&self, t: Target) -> Option<&Path> {
        match t {
            Target::V1(c) => self.v1_dir(c),
            Target::Unified => self.unified_dir(),
        }
    }

    fn avail(&self) -> Avail {
        let unified = self.unified_dir().map(|d| {
            fsio::read_raw(&d.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect()
        });
        Avail {
            v1: self.v1.keys().cloned().collect(),
            unified,
        }
    }

    /// Apply OCI `linux.resources` (the cgroup must exist: call [`Cgroup::create`] first).
    /// Nothing is written when the request is invalid or needs a missing controller.
    pub fn apply(&self, res: &LinuxResources) -> Result<()> {
        let avail = self.avail();
        let probe = |t: Target, f: &str| -> Option<String> {
            let d = self.target_dir(t)?;
            fsio::read_raw(&d.join(f)).ok()
        };
        let plan = match self.mode {
            Mode::V2 => match plan_v2(res, &avail, &probe) {
                // podrun started in a cgroup that holds processes (a CI job): delegate, retry.
                Err(Error::ControllerMissing { ref controller, .. })
                    if self.v2_base_busy_with(controller) =>
                {
                    self.delegate_v2()?;
                    plan_v2(res, &self.avail(), &probe)?
                }
                r => r?,
            },
            Mode::V1 => plan_v1(res, &avail, &probe)?,
        };
        for w in &plan.warnings {
            tracing::warn!(cgroup = ?self.procs_dir(), "{w}");
        }
        // Consecutive writes to one file (devices.allow: one rule per write) share one open.
        let mut last: Option<(PathBuf, std::fs::File)> = None;
        for w in &plan.writes {
            let Some(dir) = self.target_dir(w.target) else {
                return Err(Error::ControllerMissing {
                    controller: match w.target {
                        Target::V1(c) => c.to_string(),
                        Target::Unified => "cgroup2".to_string(),
                    },
                    field: w.field,
                    hint: String::new(),
                });
            };
            let path = dir.join(&w.file);
            let written = match &mut last {
                Some((p, f)) if *p == path => f.write_all(w.value.as_bytes()),
                _ => fsio::open_for_write(&path).and_then(|mut f| {
                    let r = f.write_all(w.value.as_bytes());
                    last = Some((path.clone(), f));
                    r
                }),
            };
            if let Err(source) = written {
                let hint = write_hint(&path, &w.file, &w.value, &source, dir);
                return Err(Error::Write {
                    path,
                    value: w.value.clone(),
                    source,
                    hint,
                });
            }
        }
        if let Some(rules) = &plan.v2_devices {
            if let Some(dir) = self.unified_dir() {
                crate::devices_bpf::attach(dir, rules)?;
            }
        }
        Ok(())
    }
}

/// Explain the common kernel refusals.
fn write_hint(path: &Path, file: &str, value: &str, e: &std::io::Error, dir: &Path) -> String {
    let errno = e.raw_os_error().unwrap_or(0);
    match (file, errno) {
        ("memory.limit_in_bytes" | "memory.memsw.limit_in_bytes", libc::EBUSY) => {
            let usage = fsio::read_raw(&dir.join("memory.usage_in_bytes")).unwrap_or_default();
            format!(
                "; the new limit is below the current usage ({} bytes) and could not be reclaimed",
                usage.trim()
            )
        }
        ("memory.limit_in_bytes", libc::EINVAL) => {
            "; memory.limit_in_bytes must not exceed memory.memsw.limit_in_bytes".into()
        }
        ("memory.memsw.limit_in_bytes", libc::EINVAL) => {
            "; memory+swap must be >= memory.limit_in_bytes".into()
        }
        ("cpuset.cpus" | "cpuset.mems", libc::EINVAL) => {
            let parent: PathBuf = path.parent().and_then(Path::parent).map(|p| p.join(file)).unwrap_or_default();
            let pv = fsio::read_raw(&parent).unwrap_or_default();
            format!("; must be a subset of the parent's {file} ({:?})", pv.trim())
        }
        ("cpu.rt_runtime_us", libc::EINVAL | libc::EBUSY) => {
            "; the parent cgroup does not have enough realtime runtime (cpu.rt_runtime_us) to give".into()
        }
        (_, libc::ENOENT) => format!(
            "; the kernel does not provide {file} here (controller not enabled, or value {value:?} unsupported)"
        ),
        _ => String::new(),
    }
}

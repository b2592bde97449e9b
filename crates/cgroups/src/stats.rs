//! Usage statistics: memory, cpu, pids.

use crate::cgroup::{Cgroup, Mode};
use crate::error::Result;
use crate::fsio;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A snapshot of a cgroup's resource usage. Fields are None when the controller is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Current memory usage in bytes (v1 memory.usage_in_bytes, v2 memory.current).
    pub memory_usage: Option<u64>,
    /// Memory limit in bytes; None = unlimited or no memory controller.
    pub memory_limit: Option<u64>,
    /// Total CPU time in nanoseconds (v1 cpuacct.usage, v2 cpu.stat usage_usec * 1000).
    pub cpu_usage_ns: Option<u64>,
    /// Number of tasks (v1/v2 pids.current).
    pub pids_current: Option<u64>,
    /// pids.max; None = unlimited or no pids controller.
    pub pids_limit: Option<u64>,
}

/// v1 reports "unlimited" as a huge page-aligned number.
const V1_UNLIMITED_MIN: u64 = 1 << 62;

fn opt_u64(path: &Path) -> Result<Option<u64>> {
    match fsio::read_raw(path) {
        Ok(s) => {
            let t = s.trim();
            if t == "max" {
                return Ok(None);
            }
            let v = fsio::parse_u64(path, t)?;
            Ok(if v >= V1_UNLIMITED_MIN { None } else { Some(v) })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(crate::Error::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Cgroup {
    /// Memory usage/limit, CPU usage and pids count.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        match self.mode {
            Mode::V2 => {
                let Some(d) = self.unified_dir() else {
                    return Ok(s);
                };
                s.memory_usage = opt_u64(&d.join("memory.current"))?;
                s.memory_limit = opt_u64(&d.join("memory.max"))?;
                let f = d.join("cpu.stat");
                if let Ok(c) = fsio::read_raw(&f) {
                    s.cpu_usage_ns = fsio::keyed_value(&f, &c, "usage_usec")?.map(|u| u * 1000);
                }
                s.pids_current = opt_u64(&d.join("pids.current"))?;
                s.pids_limit = opt_u64(&d.join("pids.max"))?;
            }
            Mode::V1 => {
                if let Some(d) = self.v1_dir("memory") {
                    s.memory_usage = opt_u64(&d.join("memory.usage_in_bytes"))?;
                    s.memory_limit = opt_u64(&d.join("memory.limit_in_bytes"))?;
                }
                if let Some(d) = self.v1_dir("cpuacct") {
                    s.cpu_usage_ns = opt_u64(&d.join("cpuacct.usage"))?;
                }
                if let Some(d) = self.v1_dir("pids") {
                    s.pids_current = opt_u64(&d.join("pids.current"))?;
                    s.pids_limit = opt_u64(&d.join("pids.max"))?;
                }
            }
        }
        Ok(s)
    }
}

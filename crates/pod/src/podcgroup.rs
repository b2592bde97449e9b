//! The pod-level cgroup: one per pod, the containers' cgroups below it, with
//! what kubelet writes there (ResourceConfigForPod, see
//! [`crate::resources::pod_cgroup_config`]) plus a pids limit. Works on v2,
//! v1 and hybrid hosts through `podrun-cgroups`, nested under the
//! supervisor's own cgroup.

use crate::resources::{pod_cgroup_config, PodCgroup};
use k8s_openapi::api::core::v1::PodSpec;
use oci_spec::runtime::LinuxResources;

/// Default per-pod pids limit (kubelet's podPidsLimit is unlimited by
/// default; a runner on a shared CI host wants a fence).
pub const DEFAULT_PIDS_LIMIT: i64 = 16384;

/// Pure: the OCI resources for the pod cgroup.
/// `v2`: on cgroup v2 the engine sets memory.oom.group=1 with a memory limit
/// (what kubelet does for containers); the pod level keeps it 0 as kubelet
/// does, so an OOM at pod level kills one process, not the whole pod.
pub fn pod_resources(pc: &PodCgroup, pids_limit: Option<i64>, v2: bool) -> LinuxResources {
    let mut v = serde_json::json!({"cpu": {"shares": pc.cpu_shares}});
    if let (Some(q), Some(p)) = (pc.cpu_quota_us, pc.cpu_period_us) {
        v["cpu"]["quota"] = q.into();
        v["cpu"]["period"] = p.into();
    }
    if let Some(m) = pc.memory_limit {
        v["memory"] = serde_json::json!({"limit": m});
        if v2 {
            v["unified"] = serde_json::json!({"memory.oom.group": "0"});
        }
    }
    if let Some(p) = pids_limit.filter(|p| *p > 0) {
        v["pids"] = serde_json::json!({"limit": p});
    }
    serde_json::from_value(v).expect("valid LinuxResources")
}

/// Creates the pod cgroup `rel` (relative to this process's cgroup) and
/// applies the pod's limits; returns what was applied.
pub fn setup(spec: &PodSpec, rel: &str, pids_limit: Option<i64>) -> Result<PodCgroup, String> {
    let layout = podrun_cgroups::detect().map_err(|e| format!("cgroup layout: {e}"))?;
    let cg = podrun_cgroups::Cgroup::resolve(&layout, Some(rel), "")
        .map_err(|e| format!("pod cgroup {rel}: {e}"))?;
    cg.create()
        .map_err(|e| format!("create pod cgroup {rel}: {e}"))?;
    let pc = pod_cgroup_config(spec);
    cg.apply(&pod_resources(&pc, pids_limit, cg.is_v2()))
        .map_err(|e| format!("pod cgroup {rel}: {e}"))?;
    Ok(pc)
}

fn resolve(rel: &str) -> Option<podrun_cgroups::Cgroup> {
    let layout = podrun_cgroups::detect().ok()?;
    podrun_cgroups::Cgroup::resolve(&layout, Some(rel), "").ok()
}

/// Usage of cgroup `rel` (relative to this process's cgroup), if it exists.
pub fn stats(rel: &str) -> Option<podrun_cgroups::Stats> {
    resolve(rel)?.stats().ok()
}

/// The directories of cgroup `rel` (relative to this process's cgroup), one
/// per hierarchy, whether they exist yet or not.
pub fn dirs(rel: &str) -> Vec<std::path::PathBuf> {
    resolve(rel).map(|c| c.paths()).unwrap_or_default()
}

/// Whether the kernel OOM killer killed a process in cgroup `rel` (read it
/// before the cgroup is removed).
pub fn oom_killed(rel: &str) -> bool {
    resolve(rel)
        .and_then(|c| c.oom_kill_count().ok())
        .is_some_and(|n| n > 0)
}

/// A watch on cgroup `rel`'s OOM kills (v2: inotify on memory.events; v1: an
/// eventfd registered for memory.oom_control), for the supervisor's poll loop.
/// None (with a warning) where the memory controller is not available.
pub fn oom_watcher(rel: &str) -> Option<podrun_cgroups::OomWatcher> {
    let c = resolve(rel)?;
    match podrun_cgroups::OomWatcher::new(&c) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(cgroup = rel, error = %e, "no OOM watch; OOM kills are seen when the container exits");
            None
        }
    }
}

/// The cgroup of container `name` of the pod whose cgroup is `pod_rel`
/// (both relative to the caller's cgroup).
pub fn container_cgroup(pod_rel: &str, name: &str) -> String {
    format!("{pod_rel}/{name}")
}

/// The cgroup (below the caller's) that holds every pod's cgroup: podrun's own,
/// shared by the pods, so whoever removes the last pod removes it too.
pub const POD_CGROUP_PARENT: &str = "podrun-pods";

/// After a pod's cgroup directories are gone: rmdir their shared parent
/// ([`POD_CGROUP_PARENT`]) where it is now empty. Another pod's cgroup inside
/// makes rmdir fail (EBUSY), which is fine: that pod removes it later.
pub fn remove_empty_parent(pod_dirs: &[std::path::PathBuf]) {
    for d in pod_dirs {
        if let Some(p) = d.parent() {
            if p.file_name() == Some(std::ffi::OsStr::new(POD_CGROUP_PARENT)) {
                let _ = std::fs::remove_dir(p);
            }
        }
    }
}

/// Removes cgroup `rel` in every hierarchy (killing what is left in it) and
/// its now-empty parents up to this process's cgroup. Best effort.
pub fn remove(rel: &str) {
    if let Some(c) = resolve(rel) {
        if let Err(e) = c.destroy() {
            tracing::warn!(cgroup = rel, error = %e, "cannot remove pod cgroup");
        }
        remove_empty_parent(&c.paths());
    }
}

/// CPU time and working-set memory of a cgroup, read from its directories
/// (one per hierarchy; v1 or v2 files, whichever exist).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: Option<u64>,
    /// usage minus inactive file pages (kubelet's working set).
    pub working_set: Option<u64>,
}

/// Pure: `key value` lookup in a memory.stat / cpu.stat text.
pub fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads the usage of the cgroup whose directories are `dirs`.
pub fn usage(dirs: &[std::path::PathBuf]) -> Usage {
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).ok();
    let mut u = Usage::default();
    for d in dirs {
        if u.cpu_ns.is_none() {
            if let Some(v) = read(d.join("cpuacct.usage")).and_then(|s| s.trim().parse().ok()) {
                u.cpu_ns = Some(v);
            } else if let Some(v) =
                read(d.join("cpu.stat")).and_then(|s| stat_value(&s, "usage_usec"))
            {
                u.cpu_ns = Some(v * 1000);
            }
        }
        if u.working_set.is_none() {
            if let Some(used) =
                read(d.join("memory.usage_in_bytes")).and_then(|s| s.trim().parse::<u64>().ok())
            {
                let inactive = read(d.join("memory.stat"))
                    .and_then(|s| stat_value(&s, "total_inactive_file"))
                    .unwrap_or(0);
                u.working_set = Some(used.saturating_sub(inactive));
            } else if let Some(used) =
                read(d.join("memory.current")).and_then(|s| s.trim().parse::<u64>().ok())
            {
                let inactive = read(d.join("memory.stat"))
                    .and_then(|s| stat_value(&s, "inactive_file"))
                    .unwrap_or(0);
                u.working_set = Some(used.saturating_sub(inactive));
            }
        }
    }
    u
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_values() {
        let s = "cache 10\ntotal_inactive_file 4096\ninactive_file 1\n";
        assert_eq!(super::stat_value(s, "total_inactive_file"), Some(4096));
        assert_eq!(super::stat_value(s, "inactive_file"), Some(1));
        assert_eq!(
            super::stat_value("usage_usec 77\nuser_usec 1\n", "usage_usec"),
            Some(77)
        );
        assert_eq!(super::stat_value(s, "nope"), None);
    }

    #[test]
    fn usage_of_this_process_cgroup_is_readable() {
        let dirs = super::dirs("");
        let u = super::usage(&dirs);
        assert!(u.cpu_ns.is_some() || dirs.is_empty(), "{dirs:?}");
    }

    use super::*;
    use crate::resources::QosClass;

    #[test]
    fn guaranteed_pod_gets_quota_memory_and_pids() {
        let pc = PodCgroup {
            qos: QosClass::Guaranteed,
            cpu_shares: 512,
            cpu_quota_us: Some(50_000),
            cpu_period_us: Some(100_000),
            memory_limit: Some(64 << 20),
        };
        let r = serde_json::to_value(pod_resources(&pc, Some(100), true)).unwrap();
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["pids"]["limit"], 100);
        assert_eq!(r["unified"]["memory.oom.group"], "0");
    }

    #[test]
    fn best_effort_pod_gets_min_shares_only() {
        let pc = PodCgroup {
            qos: QosClass::BestEffort,
            cpu_shares: 2,
            cpu_quota_us: None,
            cpu_period_us: None,
            memory_limit: None,
        };
        let r = serde_json::to_value(pod_resources(&pc, None, false)).unwrap();
        assert_eq!(r["cpu"]["shares"], 2);
        assert!(r["cpu"].get("quota").is_none_or(|q| q.is_null()));
        assert!(r.get("memory").is_none_or(|m| m.is_null()));
        assert!(r.get("pids").is_none_or(|m| m.is_null()));
    }
}

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
pub fn pod_resources(pc: &PodCgroup, pids_limit: Option<i64>) -> LinuxResources {
    let mut v = serde_json::json!({"cpu": {"shares": pc.cpu_shares}});
    if let (Some(q), Some(p)) = (pc.cpu_quota_us, pc.cpu_period_us) {
        v["cpu"]["quota"] = q.into();
        v["cpu"]["period"] = p.into();
    }
    if let Some(m) = pc.memory_limit {
        v["memory"] = serde_json::json!({"limit": m});
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
    cg.apply(&pod_resources(&pc, pids_limit))
        .map_err(|e| format!("pod cgroup {rel}: {e}"))?;
    Ok(pc)
}

/// Usage of cgroup `rel` (relative to this process's cgroup), if it exists.
pub fn stats(rel: &str) -> Option<podrun_cgroups::Stats> {
    let layout = podrun_cgroups::detect().ok()?;
    let cg = podrun_cgroups::Cgroup::resolve(&layout, Some(rel), "").ok()?;
    cg.stats().ok()
}

#[cfg(test)]
mod tests {
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
        let r = serde_json::to_value(pod_resources(&pc, Some(100))).unwrap();
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["pids"]["limit"], 100);
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
        let r = serde_json::to_value(pod_resources(&pc, None)).unwrap();
        assert_eq!(r["cpu"]["shares"], 2);
        assert!(r["cpu"].get("quota").is_none_or(|q| q.is_null()));
        assert!(r.get("memory").is_none_or(|m| m.is_null()));
        assert!(r.get("pids").is_none_or(|m| m.is_null()));
    }
}

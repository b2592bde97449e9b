//! `update`: change the cgroup limits of a live container (runc's `update`, which containerd
//! and CRI-O call for the CRI's UpdateContainerResources).
//!
//! The request is a `linux.resources` document in which only the fields to change are set.
//! It is merged into the container's stored resources ([`merge`], runc's rules), the merged
//! resources are written to the cgroup (the planner orders memory and memory+swap so that
//! neither write is refused on the way), and the stored spec is updated. When a write fails,
//! the previous resources are written back and the stored spec is left as it was.
//!
//! What runc's `update` cannot change, podrun's cannot either: device rules (never rewritten
//! on a running container: a v1 rewrite starts with "deny all"), hugepage limits, block I/O
//! throttles and per-device weights, network and rdma limits, and the memory fields other than
//! limit, reservation and swap. When a request sets one of those to something else than the
//! container has, the difference is reported as a warning rather than dropped silently.

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::error::{Error, Result};
use crate::state::{Status, StoredSpec};
use crate::Runtime;

/// The stored resources with the request's changes; and the request's fields that `update`
/// does not change although they differ from the stored ones (for warnings).
pub fn merge(old: &LinuxResources, req: &LinuxResources) -> (LinuxResources, Vec<&'static str>) {
    let mut new = old.clone();
    let mut ignored = Vec::new();

    if let Some(m) = req.memory() {
        let mut mem = old.memory().unwrap_or_default();
        if let Some(l) = m.limit() {
            mem.set_limit(Some(l));
        }
        if let Some(r) = m.reservation() {
            mem.set_reservation(Some(r));
        }
        if let Some(s) = m.swap() {
            mem.set_swap(Some(s));
        } else if m.limit() == Some(-1) {
            // runc: an unlimited memory limit without a swap value means both unlimited.
            mem.set_swap(Some(-1));
        }
        let cur = old.memory().unwrap_or_default();
        if m.kernel().is_some_and(|k| k != 0) && changes(&m.kernel(), &cur.kernel()) {
            ignored.push("memory.kernel");
        }
        if changes(&m.kernel_tcp(), &cur.kernel_tcp()) {
            ignored.push("memory.kernelTCP");
        }
        if changes(&m.swappiness(), &cur.swappiness()) {
            ignored.push("memory.swappiness");
        }
        if changes(&m.disable_oom_killer(), &cur.disable_oom_killer()) {
            ignored.push("memory.disableOOMKiller");
        }
        new.set_memory(Some(mem));
    }

    if let Some(c) = req.cpu() {
        let mut cpu: LinuxCpu = old.cpu().clone().unwrap_or_default();
        if let Some(v) = c.shares() {
            cpu.set_shares(Some(v));
        }
        if let Some(v) = c.quota() {
            cpu.set_quota(Some(v));
        }
        if let Some(v) = c.burst() {
            cpu.set_burst(Some(v));
        }
        if let Some(v) = c.period() {
            cpu.set_period(Some(v));
        }
        if let Some(v) = c.realtime_runtime() {
            cpu.set_realtime_runtime(Some(v));
        }
        if let Some(v) = c.realtime_period() {
            cpu.set_realtime_period(Some(v));
        }
        if let Some(v) = c.idle() {
            cpu.set_idle(Some(v));
        }
        // An empty cpuset string leaves the cpuset as it is (runc writes only non-empty ones).
        if let Some(v) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
            cpu.set_cpus(Some(v.clone()));
        }
        if let Some(v) = c.mems().as_ref().filter(|s| !s.is_empty()) {
            cpu.set_mems(Some(v.clone()));
        }
        new.set_cpu(Some(cpu));
    }

    if let Some(b) = req.block_io() {
        let cur = old.block_io().clone().unwrap_or_default();
        if let Some(w) = b.weight().filter(|&w| w != 0) {
            let mut bio: LinuxBlockIo = cur.clone();
            bio.set_weight(Some(w));
            new.set_block_io(Some(bio));
        }
        if changes(&b.leaf_weight(), &cur.leaf_weight()) {
            ignored.push("blockIO.leafWeight");
        }
        if changes(b.weight_device(), cur.weight_device()) {
            ignored.push("blockIO.weightDevice");
        }
        if [
            (b.throttle_read_bps_device(), cur.throttle_read_bps_device()),
            (
                b.throttle_write_bps_device(),
                cur.throttle_write_bps_device(),
            ),
            (
                b.throttle_read_iops_device(),
                cur.throttle_read_iops_device(),
            ),
            (
                b.throttle_write_iops_device(),
                cur.throttle_write_iops_device(),
            ),
        ]
        .iter()
        .any(|(r, c)| changes(r, c))
        {
            ignored.push("blockIO.throttle*");
        }
    }

    // pids.limit 0 means "unchanged" (runc's --pids-limit default); -1 is unlimited.
    if let Some(p) = req.pids().as_ref().filter(|p| p.limit() != 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(p.limit());
        new.set_pids(Some(pids));
    }

    if let Some(u) = req.unified() {
        let mut merged = old.unified().clone().unwrap_or_default();
        merged.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
        new.set_unified(Some(merged));
    }

    if changes(req.devices(), old.devices()) {
        ignored.push("devices");
    }
    if changes(req.hugepage_limits(), old.hugepage_limits()) {
        ignored.push("hugepageLimits");
    }
    if changes(req.network(), old.network()) {
        ignored.push("network");
    }
    if changes(req.rdma(), old.rdma()) {
        ignored.push("rdma");
    }
    (new, ignored)
}

/// The request sets a field, to something else than it is.
fn changes<T: PartialEq>(req: &Option<T>, cur: &Option<T>) -> bool {
    req.is_some() && req != cur
}

/// The resources written to the cgroup: everything but the device rules, which stay as the
/// container was created with (runc's update skips them too).
fn writable(res: &LinuxResources) -> LinuxResources {
    let mut r = res.clone();
    r.set_devices(None);
    r
}

/// A size as runc's flags take it (docker's RAMInBytes): a number, optionally with a
/// fraction, and an optional binary unit: b, k, m, g, t, p, each optionally followed by "b"
/// or "ib", any case ("512m", "1.5G", "64KiB"). "-1" is unlimited.
pub fn parse_ram(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (e.g. 268435456, 256m, 1.5g)"))?;
    let u = unit.to_ascii_lowercase();
    let u = u
        .strip_suffix("ib")
        .or_else(|| u.strip_suffix('b').filter(|r| !r.is_empty()))
        .unwrap_or(&u);
    let mult: f64 = match u {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    let v = n * mult;
    if !v.is_finite() || v >= i64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(v as i64)
}

impl Runtime {
    /// Change a created, running or paused container's cgroup limits (see the module doc).
    pub fn update(&self, id: &str, req: &LinuxResources) -> Result<()> {
        let dir = crate::state::StateEntry::new(&self.root, id)?;
        let _lock = dir.lock()?;
        let mut rec = dir.load()?;
        let status = rec.status(&dir);
        if status == Status::Stopped {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                msg: "cannot update the resources of a stopped container".into(),
            });
        }
        let cg = rec
            .cgroup
            .clone()
            .ok_or_else(|| Error::Other(format!("container \"{id}\" has no cgroup")))?;
        let mut spec = rec.spec.full()?;
        let old = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let (new, ignored) = merge(&old, req);
        for f in ignored {
            tracing::warn!("{id}: update cannot change {f}; left as it is");
        }
        if req
            .memory()
            .as_ref()
            .is_some_and(|m| m.check_before_update() == Some(true))
        {
            check_memory_usage(id, &cg, &new)?;
        }
        if let Err(e) = cg.apply(&writable(&new)) {
            if let Err(back) = cg.apply(&writable(&old)) {
                tracing::warn!(
                    "{id}: restoring the previous resources after a failed update: {back}"
                );
            }
            return Err(e.into());
        }
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_resources(Some(new));
        spec.set_linux(Some(linux));
        rec.spec = StoredSpec::new(&spec)?;
        dir.save(&rec)
    }
}

/// memory.checkBeforeUpdate: refuse a memory limit below the current usage instead of letting
/// the kernel reclaim (and, on cgroup2, OOM-kill) down to it.
fn check_memory_usage(id: &str, cg: &podrun_cgroups::Cgroup, new: &LinuxResources) -> Result<()> {
    let Some(limit) = new
        .memory()
        .as_ref()
        .and_then(LinuxMemory::limit)
        .filter(|&l| l > 0)
    else {
        return Ok(());
    };
    if let Some(usage) = cg.stats()?.memory_usage {
        if usage > limit as u64 {
            return Err(Error::Other(format!(
                "{id}: memory.limit {limit} is below the current usage ({usage} bytes) and \
                 memory.checkBeforeUpdate is set"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_the_given_fields_change() {
        let old = res(json!({
            "memory": {"limit": 104857600, "reservation": 1000},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 64},
            "devices": [{"allow": false, "access": "rwm"}],
        }));
        let req = res(json!({"memory": {"limit": 209715200}, "cpu": {"quota": 20000}}));
        let (new, ignored) = merge(&old, &req);
        assert!(ignored.is_empty());
        let m = new.memory().unwrap();
        assert_eq!(m.limit(), Some(209715200));
        assert_eq!(m.reservation(), Some(1000));
        assert_eq!(
            m.swap(),
            None,
            "swap stays unset: the planner ties it to the limit"
        );
        let c = new.cpu().clone().unwrap();
        assert_eq!(
            (c.shares(), c.quota(), c.period(), c.cpus().as_deref()),
            (Some(512), Some(20000), Some(100000), Some("0"))
        );
        assert_eq!(new.pids().as_ref().map(|p| p.limit()), Some(64));
        assert_eq!(new.devices(), old.devices());
    }

    #[test]
    fn unlimited_memory_means_unlimited_swap_too() {
        let old = res(json!({"memory": {"limit": 1048576, "swap": 2097152}}));
        let (new, _) = merge(&old, &res(json!({"memory": {"limit": -1}})));
        let m = new.memory().unwrap();
        assert_eq!((m.limit(), m.swap()), (Some(-1), Some(-1)));
        let (new, _) = merge(
            &old,
            &res(json!({"memory": {"limit": -1, "swap": 4194304}})),
        );
        assert_eq!(new.memory().unwrap().swap(), Some(4194304));
    }

    #[test]
    fn zero_pids_and_empty_cpusets_leave_things_alone() {
        let old = res(json!({"pids": {"limit": 10}, "cpu": {"cpus": "0-1", "mems": "0"}}));
        let req = res(json!({"pids": {"limit": 0}, "cpu": {"cpus": "", "mems": ""}}));
        let (new, _) = merge(&old, &req);
        assert_eq!(new.pids().as_ref().map(|p| p.limit()), Some(10));
        let c = new.cpu().clone().unwrap();
        assert_eq!(
            (c.cpus().as_deref(), c.mems().as_deref()),
            (Some("0-1"), Some("0"))
        );
        let (new, _) = merge(&old, &res(json!({"pids": {"limit": -1}})));
        assert_eq!(new.pids().as_ref().map(|p| p.limit()), Some(-1));
    }

    #[test]
    fn unified_keys_are_merged() {
        let old = res(json!({"unified": {"memory.high": "100M", "pids.max": "5"}}));
        let (new, _) = merge(&old, &res(json!({"unified": {"memory.high": "200M"}})));
        let u = new.unified().clone().unwrap();
        assert_eq!(u["memory.high"], "200M");
        assert_eq!(u["pids.max"], "5");
    }

    #[test]
    fn fields_update_cannot_change_are_reported_only_when_they_differ() {
        let old = res(json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "blockIO": {"weight": 100},
        }));
        // containerd sends the whole resources back: the same devices are no change.
        let same = res(
            json!({"devices": [{"allow": false, "access": "rwm"}], "blockIO": {"weight": 300}}),
        );
        let (new, ignored) = merge(&old, &same);
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(new.block_io().clone().unwrap().weight(), Some(300));
        let other = res(json!({
            "devices": [{"allow": true, "access": "rwm"}],
            "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
            "memory": {"kernel": 1048576, "swappiness": 10},
            "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}]},
        }));
        let (new, ignored) = merge(&old, &other);
        assert_eq!(
            ignored,
            [
                "memory.kernel",
                "memory.swappiness",
                "blockIO.throttle*",
                "devices",
                "hugepageLimits"
            ]
        );
        assert_eq!(new.devices(), old.devices());
        assert_eq!(new.hugepage_limits(), old.hugepage_limits());
    }

    #[test]
    fn sizes_as_runc_takes_them() {
        assert_eq!(parse_ram("268435456"), Ok(268435456));
        assert_eq!(parse_ram("256m"), Ok(256 << 20));
        assert_eq!(parse_ram("256MB"), Ok(256 << 20));
        assert_eq!(parse_ram("1.5g"), Ok(3 << 29));
        assert_eq!(parse_ram("64KiB"), Ok(64 << 10));
        assert_eq!(parse_ram("10b"), Ok(10));
        assert_eq!(parse_ram("-1"), Ok(-1));
        assert!(parse_ram("").is_err());
        assert!(parse_ram("12x").is_err());
        assert!(parse_ram("-5m").is_err());
        assert!(parse_ram("m").is_err());
    }
}

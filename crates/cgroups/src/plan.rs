//! OCI `linux.resources` -> an ordered list of cgroup file writes. Pure given a probe closure
//! (which reads current file contents), so every mapping is unit tested without a cgroupfs.

use crate::convert::{
    blkio_weight_to_io, device_rule, mem_value, shares_to_weight, swap_to_v2, validate_page_size,
    validate_unified_key,
};
use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxResources, LinuxThrottleDevice};

/// Which hierarchy a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A v1 controller's directory.
    V1(&'static str),
    /// The cgroup2 leaf (v2, or the unified part of a hybrid host).
    Unified,
}

/// One file write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub target: Target,
    pub file: String,
    pub value: String,
    /// The OCI field this write comes from (for error messages).
    pub field: &'static str,
}

/// Reads the current content of a file of the cgroup; None when it does not exist.
pub type Probe<'a> = &'a dyn Fn(Target, &str) -> Option<String>;

/// What the host offers.
#[derive(Debug, Clone, Default)]
pub struct Avail {
    /// Mounted v1 controllers (empty on v2).
    pub v1: Vec<String>,
    /// Controllers usable in the cgroup2 leaf (its cgroup.controllers); None = no cgroup2 part.
    pub unified: Option<Vec<String>>,
}

impl Avail {
    fn has_v1(&self, c: &str) -> bool {
        self.v1.iter().any(|x| x == c)
    }
    fn has_unified(&self, c: &str) -> bool {
        self.unified
            .as_ref()
            .is_some_and(|u| u.iter().any(|x| x == c))
    }
}

/// The result of planning: writes in order, plus warnings for ignored fields.
#[derive(Debug, Default)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub warnings: Vec<String>,
    /// v2: device rules to enforce with a BPF program (validated; attached after the writes).
    pub v2_devices: Option<Vec<oci_spec::runtime::LinuxDeviceCgroup>>,
}

impl Plan {
    fn w(
        &mut self,
        target: Target,
        file: impl Into<String>,
        value: impl Into<String>,
        field: &'static str,
    ) {
        self.writes.push(Write {
            target,
            file: file.into(),
            value: value.into(),
            field,
        });
    }
}

fn missing(controller: &str, field: &'static str, hint: &str) -> Error {
    Error::ControllerMissing {
        controller: controller.into(),
        field,
        hint: hint.into(),
    }
}

/// Require a v1 controller, returning its target.
fn v1(avail: &Avail, c: &'static str, field: &'static str) -> Result<Target> {
    if avail.has_v1(c) {
        Ok(Target::V1(c))
    } else {
        Err(missing(
            c,
            field,
            "; it is not mounted as a v1 hierarchy on this host",
        ))
    }
}

/// Require a controller in the cgroup2 leaf.
fn v2(avail: &Avail, c: &str, field: &'static str) -> Result<Target> {
    if avail.has_unified(c) {
        Ok(Target::Unified)
    } else {
        Err(missing(
            c,
            field,
            "; it is not listed in the cgroup's cgroup.controllers (not enabled in the parent's \
             cgroup.subtree_control, e.g. because the parent has processes of its own)",
        ))
    }
}

/// (v1 file stem, v2 io.max key, devices) for the four throttle lists.
type Throttle<'a> = (
    &'static str,
    &'static str,
    &'a Option<Vec<LinuxThrottleDevice>>,
);

fn throttles(b: &LinuxBlockIo) -> [Throttle<'_>; 4] {
    [
        ("read_bps", "rbps", b.throttle_read_bps_device()),
        ("write_bps", "wbps", b.throttle_write_bps_device()),
        ("read_iops", "riops", b.throttle_read_iops_device()),
        ("write_iops", "wiops", b.throttle_write_iops_device()),
    ]
}

fn dev_num(field: &'static str, major: i64, minor: i64) -> Result<String> {
    if major < 0 || minor < 0 {
        return Err(Error::InvalidValue {
            field,
            value: format!("{major}:{minor}"),
            reason: "device major/minor must be >= 0".into(),
        });
    }
    Ok(format!("{major}:{minor}"))
}

/// Hugetlb and unified keys are shared by both planners; `v2_layout` picks the v2 file names.
fn plan_hugetlb(
    res: &LinuxResources,
    avail: &Avail,
    v2_layout: bool,
    plan: &mut Plan,
) -> Result<()> {
    let Some(limits) = res.hugepage_limits() else {
        return Ok(());
    };
    for h in limits {
        validate_page_size(h.page_size())?;
        let limit = h.limit();
        if limit < -1 {
            return Err(Error::InvalidValue {
                field: "hugepageLimits.limit",
                value: limit.to_string(),
                reason: "must be -1 (unlimited) or a byte count".into(),
            });
        }
        let use_v1 = !v2_layout && avail.has_v1("hugetlb");
        if use_v1 {
            let v = if limit == -1 {
                "-1".to_string()
            } else {
                limit.to_string()
            };
            plan.w(
                Target::V1("hugetlb"),
                format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                v,
                "hugepageLimits",
            );
        } else if avail.has_unified("hugetlb") {
            let v = if limit == -1 {
                "max".to_string()
            } else {
                limit.to_string()
            };
            plan.w(
                Target::Unified,
                format!("hugetlb.{}.max", h.page_size()),
                v,
                "hugepageLimits",
            );
        } else if v2_layout {
            v2(avail, "hugetlb", "hugepageLimits")?;
        } else {
            return Err(missing(
                "hugetlb",
                "hugepageLimits",
                "; it is neither a mounted v1 hierarchy nor enabled in the cgroup2 hierarchy",
            ));
        }
    }
    Ok(())
}

fn plan_unified(res: &LinuxResources, avail: &Avail, plan: &mut Plan) -> Result<()> {
    let Some(u) = res.unified() else {
        return Ok(());
    };
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in keys {
        validate_unified_key(k)?;
        if avail.unified.is_none() {
            return Err(missing(
                "unified",
                "unified",
                "; this host has no cgroup2 hierarchy (pure cgroup v1)",
            ));
        }
        let ctrl = k.split('.').next().unwrap_or("");
        if ctrl != "cgroup" {
            v2(avail, ctrl, "unified")?;
        }
        plan.w(Target::Unified, k.clone(), u[k].clone(), "unified");
    }
    Ok(())
}

const MEMSW: &str = "memory.memsw.limit_in_bytes";

/// Plan for a v1 (or hybrid) cgroup.
pub fn plan_v1(res: &LinuxResources, avail: &Avail, probe: Probe) -> Result<Plan> {
    let mut p = Plan::default();
    if let Some(m) = res.memory() {
        if m.kernel().is_some_and(|k| k != 0) {
            p.warnings
                .push("memory.kernel is deprecated and ignored".into());
        }
        let limit = m.limit().filter(|&l| l != 0);
        // A memory limit without a swap value means "no swap" (kubelet's behaviour): memsw is
        // set to the limit when swap accounting exists, so the limit cannot be dodged by swapping.
        let swap = m.swap().filter(|&s| s != 0).or_else(|| {
            limit.filter(|&l| {
                l > 0 && avail.has_v1("memory") && probe(Target::V1("memory"), MEMSW).is_some()
            })
        });
        let any = limit.is_some()
            || swap.is_some()
            || m.reservation().is_some_and(|r| r != 0)
            || m.kernel_tcp().is_some_and(|r| r != 0)
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if any {
            let t = v1(avail, "memory", "memory")?;
            let lim_v = limit
                .map(|l| mem_value("memory.limit", l, false))
                .transpose()?;
            let swap_v = swap
                .map(|s| mem_value("memory.swap", s, false))
                .transpose()?;
            if let (Some(l), Some(s)) = (limit, swap) {
                if l > 0 && s > 0 && s < l {
                    return Err(Error::InvalidValue {
                        field: "memory.swap",
                        value: s.to_string(),
                        reason: format!("memory+swap must be >= memory.limit ({l})"),
                    });
                }
            }
            let memsw_exists =
                swap_v.is_some() && probe(t, "memory.memsw.limit_in_bytes").is_some();
            let swap_v = match swap_v {
                Some(_) if !memsw_exists && swap == limit => {
                    // "no swap" requested and swap accounting is off: nothing to enforce.
                    p.warnings
                        .push("memory.swap ignored: swap accounting is disabled".into());
                    None
                }
                Some(v) if !memsw_exists => return Err(Error::InvalidValue {
                    field: "memory.swap",
                    value: v,
                    reason:
                        "swap accounting is disabled on this host (no memory.memsw.limit_in_bytes)"
                            .into(),
                }),
                other => other,
            };
            // memory.limit must stay <= memsw: raise memsw first when the new limit exceeds it.
            let memsw_first = match (limit, &swap_v) {
                (Some(l), Some(_)) => {
                    swap == Some(-1)
                        || probe(t, "memory.memsw.limit_in_bytes")
                            .and_then(|c| c.trim().parse::<u64>().ok())
                            .is_some_and(|cur| l == -1 || (l > 0 && l as u64 > cur))
                }
                _ => false,
            };
            if memsw_first {
                p.w(
                    t,
                    "memory.memsw.limit_in_bytes",
                    swap_v.clone().unwrap_or_default(),
                    "memory.swap",
                );
            }
            if let Some(v) = lim_v {
                p.w(t, "memory.limit_in_bytes", v, "memory.limit");
            }
            if !memsw_first {
                if let Some(v) = swap_v {
                    p.w(t, "memory.memsw.limit_in_bytes", v, "memory.swap");
                }
            }
            if let Some(r) = m.reservation().filter(|&r| r != 0) {
                p.w(
                    t,
                    "memory.soft_limit_in_bytes",
                    mem_value("memory.reservation", r, false)?,
                    "memory.reservation",
                );
            }
            if let Some(k) = m.kernel_tcp().filter(|&k| k != 0) {
                p.w(
                    t,
                    "memory.kmem.tcp.limit_in_bytes",
                    mem_value("memory.kernelTCP", k, false)?,
                    "memory.kernelTCP",
                );
            }
            if let Some(s) = m.swappiness() {
                if s > 100 {
                    return Err(Error::InvalidValue {
                        field: "memory.swappiness",
                        value: s.to_string(),
                        reason: "must be between 0 and 100".into(),
                    });
                }
                p.w(t, "memory.swappiness", s.to_string(), "memory.swappiness");
            }
            if m.disable_oom_killer() == Some(true) {
                p.w(t, "memory.oom_control", "1", "memory.disableOOMKiller");
            }
        }
    }
    if let Some(c) = res.cpu() {
        let shares = c.shares().filter(|&s| s != 0);
        let period = c.period().filter(|&s| s != 0);
        let quota = c.quota().filter(|&s| s != 0);
        let rt_period = c.realtime_period().filter(|&s| s != 0);
        let rt_runtime = c.realtime_runtime().filter(|&s| s != 0);
        let any = shares.is_some()
            || period.is_some()
            || quota.is_some()
            || c.burst().is_some()
            || rt_period.is_some()
            || rt_runtime.is_some()
            || c.idle().is_some();
        if any {
            let t = v1(avail, "cpu", "cpu")?;
            if let Some(s) = shares {
                p.w(t, "cpu.shares", s.to_string(), "cpu.shares");
            }
            if let Some(v) = period {
                p.w(t, "cpu.cfs_period_us", v.to_string(), "cpu.period");
            }
            if let Some(q) = quota {
                let v = if q < 0 {
                    "-1".to_string()
                } else {
                    q.to_string()
                };
                p.w(t, "cpu.cfs_quota_us", v, "cpu.quota");
            }
            if let Some(b) = c.burst() {
                p.w(t, "cpu.cfs_burst_us", b.to_string(), "cpu.burst");
            }
            if let Some(v) = rt_period {
                p.w(t, "cpu.rt_period_us", v.to_string(), "cpu.realtimePeriod");
            }
            if let Some(v) = rt_runtime {
                p.w(t, "cpu.rt_runtime_us", v.to_string(), "cpu.realtimeRuntime");
            }
            if let Some(i) = c.idle() {
                p.w(t, "cpu.idle", i.to_string(), "cpu.idle");
            }
        }
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            let t = v1(avail, "cpuset", "cpu.cpus")?;
            if let Some(v) = cpus {
                p.w(t, "cpuset.cpus", v, "cpu.cpus");
            }
            if let Some(v) = mems {
                p.w(t, "cpuset.mems", v, "cpu.mems");
            }
        }
    }
    if let Some(pids) = res.pids() {
        let t = v1(avail, "pids", "pids")?;
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        p.w(t, "pids.max", v, "pids.limit");
    }
    if let Some(b) = res.block_io() {
        let has_any = b.weight().is_some_and(|w| w != 0)
            || b.leaf_weight().is_some_and(|w| w != 0)
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles(b)
                .iter()
                .any(|(_, _, v)| v.as_ref().is_some_and(|v| !v.is_empty()));
        if has_any {
            let t = v1(avail, "blkio", "blockIO")?;
            // CFQ files (blkio.weight) are gone on blk-mq kernels; BFQ offers blkio.bfq.weight.
            let (wfile, wdev) = if probe(t, "blkio.weight").is_some() {
                ("blkio.weight", "blkio.weight_device")
            } else {
                ("blkio.bfq.weight", "blkio.bfq.weight_device")
            };
            let need_weight = b.weight().is_some_and(|w| w != 0)
                || b.weight_device()
                    .as_ref()
                    .is_some_and(|v| v.iter().any(|d| d.weight().is_some()));
            if need_weight && probe(t, wfile).is_none() {
                return Err(Error::InvalidValue {
                    field: "blockIO.weight",
                    value: b.weight().map(|w| w.to_string()).unwrap_or_default(),
                    reason: "no proportional I/O scheduler: neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ) exists".into(),
                });
            }
            if let Some(w) = b.weight().filter(|&w| w != 0) {
                p.w(t, wfile, w.to_string(), "blockIO.weight");
            }
            if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
                if probe(t, "blkio.leaf_weight").is_some() {
                    p.w(t, "blkio.leaf_weight", w.to_string(), "blockIO.leafWeight");
                } else {
                    p.warnings.push(
                        "blockIO.leafWeight ignored: blkio.leaf_weight does not exist (CFQ only)"
                            .into(),
                    );
                }
            }
            for d in b.weight_device().iter().flatten() {
                let dev = dev_num("blockIO.weightDevice", d.major(), d.minor())?;
                if let Some(w) = d.weight() {
                    p.w(t, wdev, format!("{dev} {w}"), "blockIO.weightDevice");
                }
                if let Some(w) = d.leaf_weight() {
                    if probe(t, "blkio.leaf_weight_device").is_some() {
                        p.w(
                            t,
                            "blkio.leaf_weight_device",
                            format!("{dev} {w}"),
                            "blockIO.weightDevice.leafWeight",
                        );
                    } else {
                        p.warnings
                            .push("blockIO.weightDevice.leafWeight ignored (CFQ only)".into());
                    }
                }
            }
            for (name, _, list) in throttles(b) {
                for d in list.iter().flatten() {
                    let dev = dev_num("blockIO.throttle", d.major(), d.minor())?;
                    p.w(
                        t,
                        format!("blkio.throttle.{name}_device"),
                        format!("{dev} {}", d.rate()),
                        "blockIO.throttle",
                    );
                }
            }
        }
    }
    plan_hugetlb(res, avail, false, &mut p)?;
    if let Some(n) = res.network() {
        if let Some(id) = n.class_id() {
            let t = v1(avail, "net_cls", "network.classID")?;
            p.w(t, "net_cls.classid", id.to_string(), "network.classID");
        }
        for prio in n.priorities().iter().flatten() {
            let t = v1(avail, "net_prio", "network.priorities")?;
            p.w(
                t,
                "net_prio.ifpriomap",
                format!("{} {}", prio.name(), prio.priority()),
                "network.priorities",
            );
        }
    }
    if let Some(devs) = res.devices() {
        if !devs.is_empty() {
            let t = v1(avail, "devices", "devices")?;
            for d in devs {
                let file = if d.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                p.w(t, file, device_rule(d)?, "devices");
            }
        }
    }
    if let Some(r) = res.rdma() {
        let mut keys: Vec<&String> = r.keys().collect();
        keys.sort();
        for k in keys {
            let t = v1(avail, "rdma", "rdma")?;
            p.w(t, "rdma.max", rdma_line(k, &r[k]), "rdma");
        }
    }
    plan_unified(res, avail, &mut p)?;
    Ok(p)
}

fn rdma_line(dev: &str, r: &oci_spec::runtime::LinuxRdma) -> String {
    let f = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_else(|| "max".into());
    format!(
        "{dev} hca_handle={} hca_object={}",
        f(r.hca_handles()),
        f(r.hca_objects())
    )
}

/// Plan for a pure cgroup v2 cgroup.
pub fn plan_v2(res: &LinuxResources, avail: &Avail, probe: Probe) -> Result<Plan> {
    let mut p = Plan::default();
    let u = Target::Unified;
    if let Some(m) = res.memory() {
        if m.kernel().is_some_and(|k| k != 0) || m.kernel_tcp().is_some_and(|k| k != 0) {
            p.warnings
                .push("memory.kernel/kernelTCP have no cgroup v2 equivalent; ignored".into());
        }
        if m.swappiness().is_some() {
            p.warnings
                .push("memory.swappiness has no cgroup v2 equivalent; ignored".into());
        }
        if m.disable_oom_killer() == Some(true) {
            p.warnings
                .push("memory.disableOOMKiller has no cgroup v2 equivalent; ignored".into());
        }
        let limit = m.limit().unwrap_or(0);
        let swap = swap_to_v2(m.swap().unwrap_or(0), limit)?;
        let reservation = m.reservation().filter(|&r| r != 0);
        if limit != 0 || swap.is_some() || reservation.is_some() {
            v2(avail, "memory", "memory")?;
            if limit != 0 {
                p.w(
                    u,
                    "memory.max",
                    mem_value("memory.limit", limit, true)?,
                    "memory.limit",
                );
            }
            // A limit without a swap value: no swap (kubelet), and an OOM kills the whole
            // container (memory.oom.group, as kubelet sets on cgroup v2).
            let swap = match swap {
                None if limit > 0 && probe(u, "memory.swap.max").is_some() => Some("0".into()),
                s => s,
            };
            // An explicit `unified` value (e.g. "0" for a pod-level cgroup) wins.
            let explicit_group = res
                .unified()
                .as_ref()
                .is_some_and(|m| m.contains_key("memory.oom.group"));
            if limit > 0 && !explicit_group && probe(u, "memory.oom.group").is_some() {
                p.w(u, "memory.oom.group", "1", "memory.limit");
            }
            if let Some(s) = swap {
                if probe(u, "memory.swap.max").is_some() {
                    p.w(u, "memory.swap.max", s, "memory.swap");
                } else if s != "0" && s != "max" {
                    return Err(Error::InvalidValue {
                        field: "memory.swap",
                        value: s,
                        reason: "swap accounting is disabled on this host (no memory.swap.max)"
                            .into(),
                    });
                }
            }
            if let Some(r) = reservation {
                p.w(
                    u,
                    "memory.low",
                    mem_value("memory.reservation", r, true)?,
                    "memory.reservation",
                );
            }
        }
    }
    if let Some(c) = res.cpu() {
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(Error::InvalidValue {
                field: "cpu.realtimeRuntime",
                value: format!("{:?}/{:?}", c.realtime_runtime(), c.realtime_period()),
                reason: "realtime scheduling limits are not supported on cgroup v2".into(),
            });
        }
        let shares = c.shares().filter(|&s| s != 0);
        let quota = c.quota().filter(|&q| q != 0);
        let period = c.period().filter(|&q| q != 0);
        if shares.is_some()
            || quota.is_some()
            || period.is_some()
            || c.burst().is_some()
            || c.idle().is_some()
        {
            v2(avail, "cpu", "cpu")?;
            if let Some(s) = shares {
                p.w(
                    u,
                    "cpu.weight",
                    shares_to_weight(s).to_string(),
                    "cpu.shares",
                );
            }
            if quota.is_some() || period.is_some() {
                let cur = probe(u, "cpu.max").unwrap_or_default();
                let mut it = cur.split_ascii_whitespace();
                let (cur_q, cur_p) = (
                    it.next().unwrap_or("max").to_string(),
                    it.next().unwrap_or("100000").to_string(),
                );
                let q = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    Some(_) => "max".into(),
                    None => cur_q,
                };
                let per = period.map(|v| v.to_string()).unwrap_or(cur_p);
                p.w(u, "cpu.max", format!("{q} {per}"), "cpu.quota");
            }
            if let Some(b) = c.burst() {
                p.w(u, "cpu.max.burst", b.to_string(), "cpu.burst");
            }
            if let Some(i) = c.idle() {
                p.w(u, "cpu.idle", i.to_string(), "cpu.idle");
            }
        }
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            v2(avail, "cpuset", "cpu.cpus")?;
            if let Some(v) = cpus {
                p.w(u, "cpuset.cpus", v, "cpu.cpus");
            }
            if let Some(v) = mems {
                p.w(u, "cpuset.mems", v, "cpu.mems");
            }
        }
    }
    if let Some(pids) = res.pids() {
        v2(avail, "pids", "pids")?;
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        p.w(u, "pids.max", v, "pids.limit");
    }
    if let Some(b) = res.block_io() {
        let weight = b.weight().filter(|&w| w != 0);
        let wdevs: Vec<_> = b
            .weight_device()
            .iter()
            .flatten()
            .filter(|d| d.weight().is_some())
            .collect();
        let any_throttle = throttles(b)
            .iter()
            .any(|(_, _, v)| v.as_ref().is_some_and(|v| !v.is_empty()));
        if b.leaf_weight().is_some() {
            p.warnings
                .push("blockIO.leafWeight has no cgroup v2 equivalent; ignored".into());
        }
        if weight.is_some() || !wdevs.is_empty() || any_throttle {
            v2(avail, "io", "blockIO")?;
            // BFQ takes the v1 range as is; io.weight needs the converted range.
            let bfq = probe(u, "io.bfq.weight").is_some();
            let conv = |w: u16| if bfq { w as u64 } else { blkio_weight_to_io(w) };
            let wfile = if bfq { "io.bfq.weight" } else { "io.weight" };
            if let Some(w) = weight {
                let v = if bfq {
                    w.to_string()
                } else {
                    format!("default {}", conv(w))
                };
                p.w(u, wfile, v, "blockIO.weight");
            }
            for d in wdevs {
                let dev = dev_num("blockIO.weightDevice", d.major(), d.minor())?;
                p.w(
                    u,
                    wfile,
                    format!("{dev} {}", conv(d.weight().unwrap_or(0))),
                    "blockIO.weightDevice",
                );
            }
            for (_, key, list) in throttles(b) {
                for d in list.iter().flatten() {
                    let dev = dev_num("blockIO.throttle", d.major(), d.minor())?;
                    let rate = if d.rate() == 0 {
                        "max".to_string()
                    } else {
                        d.rate().to_string()
                    };
                    p.w(
                        u,
                        "io.max",
                        format!("{dev} {key}={rate}"),
                        "blockIO.throttle",
                    );
                }
            }
        }
    }
    plan_hugetlb(res, avail, true, &mut p)?;
    if let Some(n) = res.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(missing(
                "net_cls/net_prio",
                "network",
                "; cgroup v2 has no net_cls/net_prio controllers (use eBPF or tc instead)",
            ));
        }
    }
    if let Some(devs) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        crate::devices_bpf::program(devs)?; // validate now, before anything is written
        p.v2_devices = Some(devs.clone());
    }
    if let Some(r) = res.rdma() {
        let mut keys: Vec<&String> = r.keys().collect();
        keys.sort();
        for k in keys {
            v2(avail, "rdma", "rdma")?;
            p.w(u, "rdma.max", rdma_line(k, &r[k]), "rdma");
        }
    }
    plan_unified(res, avail, &mut p)?;
    Ok(p)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

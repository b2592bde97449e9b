//! Pod and container resources: effective pod requests/limits, QoS class,
//! oom_score_adj, and the cgroup values kubelet derives from them.
//!
//! Sources: pkg/api/v1/resource/helpers.go (PodRequests/PodLimits),
//! pkg/apis/core/v1/helper/qos/qos.go (ComputePodQOS), pkg/kubelet/qos/policy.go
//! (GetContainerOOMScoreAdjust), pkg/kubelet/cm/helpers_linux.go
//! (MilliCPUToShares, MilliCPUToQuota, ResourceConfigForPod) and
//! CpuSharesToCpuWeight. Quantities are assumed validated ([`crate::validate`]);
//! one that does not parse counts as absent here.

use crate::quantity::{parse_cpu_millis, parse_memory_bytes};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const SHARES_PER_CPU: u64 = 1024;
/// CFS period kubelet uses, in microseconds.
pub const QUOTA_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota kubelet writes, in microseconds.
pub const MIN_QUOTA_US: u64 = 1_000;
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// cpu (millicores) and memory (bytes); `None` = not declared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
}

impl Amounts {
    fn add(&mut self, o: &Amounts) {
        self.cpu_millis = add_opt(self.cpu_millis, o.cpu_millis);
        self.memory_bytes = add_opt(self.memory_bytes, o.memory_bytes);
    }
    fn max(&mut self, o: &Amounts) {
        self.cpu_millis = max_opt(self.cpu_millis, o.cpu_millis);
        self.memory_bytes = max_opt(self.memory_bytes, o.memory_bytes);
    }
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Kubernetes QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The API string (`status.qosClass`).
    pub fn as_str(&self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// True for a sidecar: an init container with `restartPolicy: Always`.
pub fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn lookup(
    map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
    key: &str,
) -> Option<String> {
    map.and_then(|m| m.get(key)).map(|q| q.0.clone())
}

/// A container's requests, with the API server default applied: a resource
/// with a limit and no request requests its limit (SetDefaults_Pod).
pub fn container_requests(c: &Container) -> Amounts {
    let r = c.resources.as_ref();
    let req = r.and_then(|r| r.requests.as_ref());
    let lim = r.and_then(|r| r.limits.as_ref());
    let cpu = lookup(req, "cpu").or_else(|| lookup(lim, "cpu"));
    let mem = lookup(req, "memory").or_else(|| lookup(lim, "memory"));
    Amounts {
        cpu_millis: cpu.and_then(|s| parse_cpu_millis(&s).ok()),
        memory_bytes: mem.and_then(|s| parse_memory_bytes(&s).ok()),
    }
}

/// A container's limits.
pub fn container_limits(c: &Container) -> Amounts {
    let lim = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    Amounts {
        cpu_millis: lookup(lim, "cpu").and_then(|s| parse_cpu_millis(&s).ok()),
        memory_bytes: lookup(lim, "memory").and_then(|s| parse_memory_bytes(&s).ok()),
    }
}

/// PodRequests / PodLimits: sum of app containers (plus sidecars, which keep
/// running), then max with each init container's need at the moment it runs
/// (itself + the sidecars started before it).
fn pod_amounts(spec: &PodSpec, per: fn(&Container) -> Amounts) -> Amounts {
    let mut total = Amounts::default();
    for c in &spec.containers {
        total.add(&per(c));
    }
    let mut sidecars = Amounts::default();
    let mut init_peak = Amounts::default();
    for c in spec.init_containers.iter().flatten() {
        let own = per(c);
        let at_start = if is_restartable_init(c) {
            total.add(&own);
            sidecars.add(&own);
            sidecars
        } else {
            let mut tmp = own;
            tmp.add(&sidecars);
            tmp
        };
        init_peak.max(&at_start);
    }
    total.max(&init_peak);
    total
}

/// Effective pod requests (resource.PodRequests, without overhead).
pub fn pod_requests(spec: &PodSpec) -> Amounts {
    pod_amounts(spec, container_requests)
}

/// Effective pod limits (resource.PodLimits). A resource some container
/// leaves unlimited is still reported from the others; use
/// [`pod_cgroup_config`] for what kubelet actually enforces.
pub fn pod_limits(spec: &PodSpec) -> Amounts {
    pod_amounts(spec, container_limits)
}

/// ComputePodQOS over cpu and memory: BestEffort when nothing is requested
/// or limited; Guaranteed when every container limits both cpu and memory
/// and the summed requests equal the summed limits; Burstable otherwise.
pub fn qos_class(spec: &PodSpec) -> QosClass {
    let mut reqs = Amounts::default();
    let mut lims = Amounts::default();
    let mut guaranteed = true;
    let pos = |v: Option<u64>| v.filter(|&v| v > 0);
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = container_requests(c);
        let l = container_limits(c);
        reqs.add(&Amounts {
            cpu_millis: pos(r.cpu_millis),
            memory_bytes: pos(r.memory_bytes),
        });
        let l = Amounts {
            cpu_millis: pos(l.cpu_millis),
            memory_bytes: pos(l.memory_bytes),
        };
        if l.cpu_millis.is_none() || l.memory_bytes.is_none() {
            guaranteed = false;
        }
        lims.add(&l);
    }
    if reqs == Amounts::default() && lims == Amounts::default() {
        return QosClass::BestEffort;
    }
    // Every requested resource must be limited to exactly the same amount,
    // and nothing may be limited without a request.
    if guaranteed && reqs == lims {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// GetContainerOOMScoreAdjust. `machine_memory` in bytes.
/// Burstable: `1000 - 1000*memRequest/machineMemory`, at least 3
/// (1000 + guaranteed's -997, so a Burstable container always scores above a
/// Guaranteed one) and 999 instead of 1000 (so it scores below BestEffort).
pub fn oom_score_adj(qos: QosClass, container: &Container, machine_memory: u64) -> i32 {
    match qos {
        QosClass::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {
            let req = u128::from(container_requests(container).memory_bytes.unwrap_or(0));
            let cap = u128::from(machine_memory.max(1));
            let adj = 1000i128 - (1000 * req / cap) as i128;
            let min = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
            if adj < min {
                min as i32
            } else if adj == i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
                999
            } else {
                adj as i32
            }
        }
    }
}

/// GetContainerOOMScoreAdjust with the pod: a Burstable sidecar (restartable
/// init container) scores no higher than the regular container with the
/// smallest memory request, so it is not killed before the app it serves.
pub fn container_oom_score_adj(spec: &PodSpec, c: &Container, machine_memory: u64) -> i32 {
    let qos = qos_class(spec);
    let own = oom_score_adj(qos, c, machine_memory);
    if qos != QosClass::Burstable || !is_restartable_init(c) || spec.containers.is_empty() {
        return own;
    }
    let min_req = spec
        .containers
        .iter()
        .map(|a| container_requests(a).memory_bytes.unwrap_or(0))
        .min()
        .unwrap_or(0);
    let cap = u128::from(machine_memory.max(1));
    let min_adj = 1000i128 - (1000 * u128::from(min_req) / cap) as i128;
    let mut adj = i128::from(own);
    // Re-apply the sidecar bound to the raw formula, then the same clamps.
    let raw = 1000i128
        - (1000 * u128::from(container_requests(c).memory_bytes.unwrap_or(0)) / cap) as i128;
    if raw > min_adj {
        adj = min_adj;
        let floor = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
        if adj < floor {
            adj = floor;
        } else if adj == i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
            adj = 999;
        }
    }
    adj as i32
}

/// MilliCPUToShares: 1024 per core, at least 2 (0 → 2, the kernel's minimum).
pub fn milli_cpu_to_shares(milli: u64) -> u64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    (milli.saturating_mul(SHARES_PER_CPU) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// MilliCPUToQuota: quota in µs per `period_us`; 0 = no limit; at least 1 ms.
pub fn milli_cpu_to_quota(milli: u64, period_us: u64) -> u64 {
    if milli == 0 {
        return 0;
    }
    (milli.saturating_mul(period_us) / 1000).max(MIN_QUOTA_US)
}

/// CpuSharesToCpuWeight (cgroup v2): `1 + ((shares-2)*9999)/262142`.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((s - 2) * 9999) / 262_142
}

/// What kubelet writes to a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerCgroup {
    pub cpu_shares: u64,
    /// CFS quota in µs per [`QUOTA_PERIOD_US`]; None = unlimited.
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    /// Memory limit in bytes; None = unlimited.
    pub memory_limit: Option<u64>,
    pub oom_score_adj: i32,
}

/// The container's cgroup values (kuberuntime_container_linux.go): shares
/// from the request (or from the limit when only a limit is set).
pub fn container_cgroup(pod: &PodSpec, c: &Container, machine_memory: u64) -> ContainerCgroup {
    let req = container_requests(c);
    let lim = container_limits(c);
    let shares_from = req
        .cpu_millis
        .filter(|&m| m > 0)
        .or(lim.cpu_millis)
        .unwrap_or(0);
    ContainerCgroup {
        cpu_shares: milli_cpu_to_shares(shares_from),
        cpu_quota_us: lim
            .cpu_millis
            .filter(|&m| m > 0)
            .map(|m| milli_cpu_to_quota(m, QUOTA_PERIOD_US)),
        cpu_period_us: QUOTA_PERIOD_US,
        memory_limit: lim.memory_bytes.filter(|&m| m > 0),
        oom_score_adj: container_oom_score_adj(pod, c, machine_memory),
    }
}

/// What kubelet writes to the pod-level cgroup (ResourceConfigForPod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCgroup {
    pub qos: QosClass,
    pub cpu_shares: u64,
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: Option<u64>,
    pub memory_limit: Option<u64>,
}

/// ResourceConfigForPod: Guaranteed gets shares, quota and memory limit;
/// Burstable gets shares, plus quota / memory limit only when *every*
/// container declares that limit; BestEffort gets 2 shares only.
pub fn pod_cgroup_config(spec: &PodSpec) -> PodCgroup {
    let qos = qos_class(spec);
    let reqs = pod_requests(spec);
    let lims = pod_limits(spec);
    let all = || {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
    };
    let cpu_declared = all().all(|c| container_limits(c).cpu_millis.is_some_and(|v| v > 0));
    let mem_declared = all().all(|c| container_limits(c).memory_bytes.is_some_and(|v| v > 0));
    let shares = milli_cpu_to_shares(reqs.cpu_millis.unwrap_or(0));
    let quota = milli_cpu_to_quota(lims.cpu_millis.unwrap_or(0), QUOTA_PERIOD_US);
    let quota = (quota > 0).then_some(quota);
    let mem = lims.memory_bytes.filter(|&m| m > 0);
    match qos {
        QosClass::Guaranteed => PodCgroup {
            qos,
            cpu_shares: shares,
            cpu_quota_us: quota,
            cpu_period_us: Some(QUOTA_PERIOD_US),
            memory_limit: mem,
        },
        QosClass::Burstable => PodCgroup {
            qos,
            cpu_shares: shares,
            cpu_quota_us: if cpu_declared { quota } else { None },
            cpu_period_us: cpu_declared.then_some(QUOTA_PERIOD_US),
            memory_limit: if mem_declared { mem } else { None },
        },
        QosClass::BestEffort => PodCgroup {
            qos,
            cpu_shares: MIN_SHARES,
            cpu_quota_us: None,
            cpu_period_us: None,
            memory_limit: None,
        },
    }
}

/// QoS class of a whole Pod object (empty spec = BestEffort).
pub fn pod_qos(pod: &Pod) -> QosClass {
    pod.spec
        .as_ref()
        .map(qos_class)
        .unwrap_or(QosClass::BestEffort)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
    use std::collections::BTreeMap;

    fn rl(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Q>> {
        if pairs.is_empty() {
            return None;
        }
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                .collect(),
        )
    }

    fn ctr(name: &str, req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                requests: rl(req),
                limits: rl(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(init: Vec<Container>, apps: Vec<Container>) -> PodSpec {
        PodSpec {
            init_containers: (!init.is_empty()).then_some(init),
            containers: apps,
            ..Default::default()
        }
    }

    #[test]
    fn effective_requests_max_of_init_and_sum_of_apps() {
        let s = spec(
            vec![
                ctr("i1", &[("cpu", "2"), ("memory", "100Mi")], &[]),
                ctr("i2", &[("memory", "500Mi")], &[]),
            ],
            vec![
                ctr("a", &[("cpu", "500m"), ("memory", "200Mi")], &[]),
                ctr("b", &[("cpu", "700m"), ("memory", "100Mi")], &[]),
            ],
        );
        let r = pod_requests(&s);
        assert_eq!(r.cpu_millis, Some(2000)); // init 2 > 1.2
        assert_eq!(r.memory_bytes, Some(500 << 20)); // init 500Mi > 300Mi
    }

    #[test]
    fn sidecars_add_to_apps_and_later_inits() {
        let mut side = ctr("side", &[("cpu", "100m")], &[]);
        side.restart_policy = Some("Always".into());
        let s = spec(
            vec![side, ctr("init", &[("cpu", "1")], &[])],
            vec![ctr("a", &[("cpu", "200m")], &[])],
        );
        // apps+sidecar = 300m; init at its start = 1000m + 100m = 1100m.
        assert_eq!(pod_requests(&s).cpu_millis, Some(1100));
    }

    #[test]
    fn limit_defaults_request() {
        let c = ctr("a", &[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(
            container_requests(&c),
            Amounts {
                cpu_millis: Some(1000),
                memory_bytes: Some(1 << 30)
            }
        );
    }

    #[test]
    fn qos_classes() {
        let g = spec(
            vec![],
            vec![ctr("a", &[], &[("cpu", "1"), ("memory", "1Gi")])],
        );
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
        let g2 = spec(
            vec![],
            vec![ctr(
                "a",
                &[("cpu", "1000m")],
                &[("cpu", "1"), ("memory", "1Gi")],
            )],
        );
        assert_eq!(qos_class(&g2), QosClass::Guaranteed);
        let b = spec(
            vec![],
            vec![ctr(
                "a",
                &[("cpu", "500m")],
                &[("cpu", "1"), ("memory", "1Gi")],
            )],
        );
        assert_eq!(qos_class(&b), QosClass::Burstable);
        let b2 = spec(
            vec![],
            vec![
                ctr("a", &[], &[("cpu", "1"), ("memory", "1Gi")]),
                ctr("b", &[], &[]),
            ],
        );
        assert_eq!(qos_class(&b2), QosClass::Burstable);
        let b3 = spec(vec![], vec![ctr("a", &[("memory", "1Gi")], &[])]);
        assert_eq!(qos_class(&b3), QosClass::Burstable);
        let be = spec(
            vec![],
            vec![ctr("a", &[], &[]), ctr("b", &[("cpu", "0")], &[])],
        );
        assert_eq!(qos_class(&be), QosClass::BestEffort);
        let init_only = spec(
            vec![ctr("i", &[("cpu", "1")], &[])],
            vec![ctr("a", &[], &[])],
        );
        assert_eq!(qos_class(&init_only), QosClass::Burstable);
        assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
    }

    #[test]
    fn oom_scores() {
        let c = ctr("a", &[("memory", "1Gi")], &[]);
        let gib = 1u64 << 30;
        assert_eq!(oom_score_adj(QosClass::Guaranteed, &c, 4 * gib), -997);
        assert_eq!(oom_score_adj(QosClass::BestEffort, &c, 4 * gib), 1000);
        assert_eq!(oom_score_adj(QosClass::Burstable, &c, 4 * gib), 750);
        assert_eq!(oom_score_adj(QosClass::Burstable, &c, gib), 3); // 0 → clamped to 3
        let none = ctr("b", &[("cpu", "1")], &[]);
        assert_eq!(oom_score_adj(QosClass::Burstable, &none, gib), 999); // 1000 → 999
        let tiny = ctr("t", &[("memory", "1Ki")], &[]);
        assert_eq!(oom_score_adj(QosClass::Burstable, &tiny, 4 * gib), 999);
    }

    #[test]
    fn sidecar_oom_follows_smallest_app() {
        let gib = 1u64 << 30;
        let mut side = ctr("side", &[("memory", "64Mi")], &[]);
        side.restart_policy = Some("Always".into());
        let s = spec(
            vec![side],
            vec![
                ctr("a", &[("memory", "1Gi")], &[]),
                ctr("b", &[("memory", "2Gi")], &[]),
            ],
        );
        let sidecar = &s.init_containers.as_ref().unwrap()[0];
        // Own score would be 1000 - 1000*64Mi/4Gi = 985; bounded by app a's 750.
        assert_eq!(container_oom_score_adj(&s, sidecar, 4 * gib), 750);
        assert_eq!(container_oom_score_adj(&s, &s.containers[1], 4 * gib), 500);
        assert_eq!(container_cgroup(&s, sidecar, 4 * gib).oom_score_adj, 750);
    }

    #[test]
    fn shares_quota_weight() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD_US), 0);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD_US), 1000);
        assert_eq!(milli_cpu_to_quota(250, QUOTA_PERIOD_US), 25_000);
        assert_eq!(milli_cpu_to_quota(2000, QUOTA_PERIOD_US), 200_000);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(102), 4);
    }

    #[test]
    fn container_cgroup_values() {
        let s = spec(
            vec![],
            vec![ctr(
                "a",
                &[("cpu", "250m"), ("memory", "64Mi")],
                &[("cpu", "500m"), ("memory", "128Mi")],
            )],
        );
        let cg = container_cgroup(&s, &s.containers[0], 1 << 30);
        assert_eq!(cg.cpu_shares, 256);
        assert_eq!(cg.cpu_quota_us, Some(50_000));
        assert_eq!(cg.memory_limit, Some(128 << 20));
        assert_eq!(cg.oom_score_adj, 1000 - 1000 * 64 / 1024);
        let s2 = spec(vec![], vec![ctr("a", &[], &[])]);
        let cg2 = container_cgroup(&s2, &s2.containers[0], 1 << 30);
        assert_eq!(
            (
                cg2.cpu_shares,
                cg2.cpu_quota_us,
                cg2.memory_limit,
                cg2.oom_score_adj
            ),
            (2, None, None, 1000)
        );
    }

    #[test]
    fn pod_cgroup_by_qos() {
        let g = spec(
            vec![],
            vec![
                ctr("a", &[], &[("cpu", "1"), ("memory", "1Gi")]),
                ctr("b", &[], &[("cpu", "500m"), ("memory", "1Gi")]),
            ],
        );
        let p = pod_cgroup_config(&g);
        assert_eq!(
            p,
            PodCgroup {
                qos: QosClass::Guaranteed,
                cpu_shares: 1536,
                cpu_quota_us: Some(150_000),
                cpu_period_us: Some(100_000),
                memory_limit: Some(2 << 30)
            }
        );
        let b = spec(
            vec![],
            vec![
                ctr("a", &[("cpu", "100m")], &[("memory", "1Gi")]),
                ctr("b", &[], &[("memory", "1Gi"), ("cpu", "1")]),
            ],
        );
        let p = pod_cgroup_config(&b);
        assert_eq!(p.qos, QosClass::Burstable);
        assert_eq!(p.cpu_shares, milli_cpu_to_shares(1100));
        assert_eq!(p.cpu_quota_us, None); // container a has no cpu limit
        assert_eq!(p.memory_limit, Some(2 << 30)); // both declare memory limits
        let be = spec(vec![], vec![ctr("a", &[], &[])]);
        assert_eq!(pod_cgroup_config(&be).cpu_shares, 2);
    }
}

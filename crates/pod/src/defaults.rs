//! API-server defaulting (pkg/apis/core/v1/defaults.go), applied after
//! validation so status output and the supervisor see the same values
//! `kubectl get pod -o yaml` would show.

use k8s_openapi::api::core::v1::{Container, Pod, Probe};

/// Default namespace.
pub const DEFAULT_NAMESPACE: &str = "default";

/// SetDefaults_Container's image pull policy: `Always` for `:latest` or an
/// untagged reference (digests count as tagged), `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag is after the last ':' that follows the last '/'.
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn probe_defaults(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(h) = &mut p.http_get {
        h.path.get_or_insert_with(|| "/".into());
        h.scheme.get_or_insert_with(|| "HTTP".into());
    }
}

fn container_defaults(c: &mut Container) {
    if c.image_pull_policy.is_none() {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")).into());
    }
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
    for p in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe_defaults(p);
    }
    // A limit without a request requests the limit.
    if let Some(r) = &mut c.resources {
        if let Some(limits) = r.limits.clone() {
            let requests = r.requests.get_or_insert_with(Default::default);
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
        }
    }
}

/// Applies the defaults in place.
pub fn apply_defaults(pod: &mut Pod) {
    pod.metadata
        .namespace
        .get_or_insert_with(|| DEFAULT_NAMESPACE.into());
    let Some(spec) = &mut pod.spec else { return };
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.security_context.get_or_insert_with(Default::default);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        container_defaults(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;

    #[test]
    fn pull_policy() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abcd"), "IfNotPresent");
    }

    #[test]
    fn defaults_applied() {
        let y = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: busybox:1\n    ports: [{containerPort: 80}]\n    readinessProbe: {httpGet: {port: 80}}\n    resources: {limits: {cpu: '1'}, requests: {memory: 1Mi}}\n";
        let mut pod = parse_manifest("p.yaml", y).unwrap().remove(0).pod;
        apply_defaults(&mut pod);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let s = pod.spec.as_ref().unwrap();
        assert_eq!(s.restart_policy.as_deref(), Some("Always"));
        assert_eq!(s.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(s.termination_grace_period_seconds, Some(30));
        let c = &s.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let p = c.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (p.period_seconds, p.timeout_seconds, p.failure_threshold),
            (Some(10), Some(1), Some(3))
        );
        assert_eq!(p.http_get.as_ref().unwrap().path.as_deref(), Some("/"));
        let req = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(req.get("cpu").unwrap().0, "1");
        assert_eq!(req.get("memory").unwrap().0, "1Mi");
        // Idempotent.
        let before = pod.clone();
        apply_defaults(&mut pod);
        assert_eq!(before, pod);
    }
}

//! Pod validation with kubectl-style messages naming the field path
//! (pkg/apis/core/validation/validation.go, apimachinery field.Error).
//!
//! `validate_pod` returns errors (the pod must not run) and warnings (fields
//! that are valid Kubernetes but mean nothing on one host, e.g.
//! `spec.affinity: ignored: podrun runs pods on this host only`). With
//! `strict`, warnings are returned as errors.
//!
//! Choices where podrun differs from the API server, on purpose:
//! - Init containers with `restartPolicy: Always` (sidecars) may have
//!   lifecycle hooks and all three probes, as in Kubernetes ≥ 1.29; other
//!   init containers may not. `restartPolicy` on an app container is forbidden.
//! - `volumeMounts[].mountPath` must be absolute (Linux only).
//! - Volume sources other than emptyDir and hostPath need an API server
//!   (configMap, secret, PVC, ...): errors, not warnings, since the
//!   container would not see the files it expects.
//! - A named probe/hook port must name a port of the same container.
//! - Extended resources (`vendor.com/gpu`) are warnings (nothing allocates them).

mod container;
mod probe;
mod security;
#[cfg(test)]
mod tests;
mod volume;

use crate::names;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use std::collections::HashSet;
use std::fmt;

/// field.ErrorType, plus `Ignored` for podrun's warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    Duplicate,
    NotSupported,
    Forbidden,
    NotFound,
    Ignored,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorType,
    /// `spec.containers[1].name`
    pub path: String,
    /// The offending value, rendered like Go's `%#v` (`"web"`, `70000`).
    pub value: Option<String>,
    /// Extra detail; for NotSupported the supported values.
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value.as_deref().unwrap_or("");
        let tail = |f: &mut fmt::Formatter<'_>| {
            if self.detail.is_empty() {
                Ok(())
            } else {
                write!(f, ": {}", self.detail)
            }
        };
        match self.kind {
            ErrorType::Required => {
                write!(f, "{}: Required value", self.path)?;
                tail(f)
            }
            ErrorType::Invalid => {
                write!(f, "{}: Invalid value: {v}", self.path)?;
                tail(f)
            }
            ErrorType::Duplicate => write!(f, "{}: Duplicate value: {v}", self.path),
            ErrorType::NotSupported => {
                write!(f, "{}: Unsupported value: {v}", self.path)?;
                tail(f)
            }
            ErrorType::Forbidden => write!(f, "{}: Forbidden: {}", self.path, self.detail),
            ErrorType::NotFound => write!(f, "{}: Not found: {v}", self.path),
            ErrorType::Ignored => write!(f, "{}: ignored: {}", self.path, self.detail),
        }
    }
}

impl std::error::Error for FieldError {}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Validation options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Treat ignored fields as errors.
    pub strict: bool,
}

/// Validation result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<FieldError>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

#[derive(Default)]
struct V {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
}

impl V {
    fn push(
        &mut self,
        kind: ErrorType,
        path: &str,
        value: Option<String>,
        detail: impl Into<String>,
    ) {
        self.errors.push(FieldError {
            kind,
            path: path.into(),
            value,
            detail: detail.into(),
        });
    }
    fn required(&mut self, path: &str, detail: &str) {
        self.push(ErrorType::Required, path, None, detail);
    }
    fn invalid(&mut self, path: &str, value: String, detail: impl Into<String>) {
        self.push(ErrorType::Invalid, path, Some(value), detail);
    }
    fn forbidden(&mut self, path: &str, detail: impl Into<String>) {
        self.push(ErrorType::Forbidden, path, None, detail);
    }
    fn not_supported(&mut self, path: &str, value: &str, supported: &[&str]) {
        let list = supported
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            ErrorType::NotSupported,
            path,
            Some(quote(value)),
            format!("supported values: {list}"),
        );
    }
    fn ignored(&mut self, path: &str, detail: &str) {
        self.warnings.push(FieldError {
            kind: ErrorType::Ignored,
            path: path.into(),
            value: None,
            detail: detail.into(),
        });
    }
    fn names(&mut self, path: &str, value: &str, msgs: Vec<String>) {
        for m in msgs {
            self.invalid(path, quote(value), m);
        }
    }
    fn non_negative(&mut self, path: &str, v: Option<i64>) {
        if let Some(v) = v.filter(|v| *v < 0) {
            self.invalid(path, v.to_string(), "must be greater than or equal to 0");
        }
    }
    fn enum_value(&mut self, path: &str, v: Option<&String>, supported: &[&str]) {
        if let Some(v) = v {
            if !supported.contains(&v.as_str()) {
                self.not_supported(path, v, supported);
            }
        }
    }
}

/// Validates a pod. `opts.strict` turns warnings into errors.
pub fn validate_pod(pod: &Pod, opts: &Options) -> Report {
    let mut v = V::default();
    validate_metadata(pod, &mut v);
    match &pod.spec {
        None => v.required("spec", ""),
        Some(spec) => validate_spec(spec, &mut v),
    }
    let mut report = Report {
        errors: v.errors,
        warnings: v.warnings,
    };
    if opts.strict {
        report.errors.append(&mut report.warnings);
    }
    report
}

/// Warnings for manifest fields the Pod schema does not know.
pub fn unknown_field_warnings(fields: &[String]) -> Vec<FieldError> {
    fields
        .iter()
        .map(|f| FieldError {
            kind: ErrorType::Ignored,
            path: f.clone(),
            value: None,
            detail: "unknown field".into(),
        })
        .collect()
}

fn validate_metadata(pod: &Pod, v: &mut V) {
    let m = &pod.metadata;
    match m.name.as_deref() {
        Some(n) if !n.is_empty() => v.names("metadata.name", n, names::dns1123_subdomain(n)),
        _ => {
            if m.generate_name.as_deref().is_none_or(str::is_empty) {
                v.required("metadata.name", "name or generateName is required");
            }
        }
    }
    if let Some(ns) = m.namespace.as_deref() {
        v.names("metadata.namespace", ns, names::dns1123_label(ns));
    }
    for (k, val) in m.labels.iter().flatten() {
        v.names("metadata.labels", k, names::qualified_name(k));
        v.names("metadata.labels", val, names::label_value(val));
    }
    for k in m.annotations.iter().flatten().map(|(k, _)| k) {
        v.names(
            "metadata.annotations",
            k,
            names::qualified_name(&k.to_lowercase()),
        );
    }
}

/// Scheduling/cluster fields that mean nothing on one host.
const IGNORED_HOST_ONLY: &str = "podrun runs pods on this host only";
const IGNORED_NO_API: &str = "podrun has no Kubernetes API server or service accounts";

fn validate_spec(spec: &PodSpec, v: &mut V) {
    if spec.containers.is_empty() {
        v.required("spec.containers", "");
    }
    v.enum_value(
        "spec.restartPolicy",
        spec.restart_policy.as_ref(),
        &["Always", "OnFailure", "Never"],
    );
    v.enum_value(
        "spec.dnsPolicy",
        spec.dns_policy.as_ref(),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    if spec.dns_policy.as_deref() == Some("None") && spec.dns_config.is_none() {
        v.required(
            "spec.dnsConfig",
            "must provide `dnsConfig` when `dnsPolicy` is None",
        );
    }
    v.non_negative(
        "spec.terminationGracePeriodSeconds",
        spec.termination_grace_period_seconds,
    );
    if let Some(a) = spec.active_deadline_seconds {
        if a <= 0 || a > i64::from(i32::MAX) {
            v.invalid(
                "spec.activeDeadlineSeconds",
                a.to_string(),
                "must be between 1 and 2147483647, inclusive",
            );
        }
    }
    if let Some(h) = spec.hostname.as_deref() {
        v.names("spec.hostname", h, names::dns1123_label(h));
    }
    if let Some(s) = spec.subdomain.as_deref() {
        v.names("spec.subdomain", s, names::dns1123_label(s));
    }
    if let Some(os) = &spec.os {
        if os.name != "linux" {
            v.not_supported("spec.os.name", &os.name, &["linux"]);
        }
    }
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        v.forbidden("spec.ephemeralContainers", "cannot be set on create");
    }
    if let Some(sc) = &spec.security_context {
        validate_pod_security_context(sc, v);
    }

    // Volumes.
    let mut volume_names = HashSet::new();
    for (i, vol) in spec.volumes.iter().flatten().enumerate() {
        let path = format!("spec.volumes[{i}]");
        validate_volume(vol, &path, v);
        if !vol.name.is_empty() && !volume_names.insert(vol.name.as_str()) {
            v.push(
                ErrorType::Duplicate,
                &format!("{path}.name"),
                Some(quote(&vol.name)),
                "",
            );
        }
    }

    // Containers: names unique across init and app containers.
    let mut seen = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    let groups = [
        ("spec.initContainers", init, true),
        ("spec.containers", &spec.containers[..], false),
    ];
    for (base, list, is_init) in groups {
        for (i, c) in list.iter().enumerate() {
            let path = format!("{base}[{i}]");
            validate_container(c, &path, is_init, &volume_names, v);
            if spec.host_network == Some(true) {
                for (j, p) in c.ports.iter().flatten().enumerate() {
                    if let Some(hp) = p.host_port.filter(|h| *h != 0 && *h != p.container_port) {
                        v.invalid(
                            &format!("{path}.ports[{j}].hostPort"),
                            hp.to_string(),
                            "must match `containerPort` when `hostNetwork` is true",
                        );
                    }
                }
            }
            if !c.name.is_empty() && !seen.insert(c.name.as_str()) {
                v.push(
                    ErrorType::Duplicate,
                    &format!("{path}.name"),
                    Some(quote(&c.name)),
                    "",
                );
            }
        }
    }
    // Host ports must not clash within the pod.
    let mut host_ports = HashSet::new();
    for (base, list, _) in groups {
        for (i, c) in list.iter().enumerate() {
            for (j, p) in c.ports.iter().flatten().enumerate() {
                if let Some(hp) = p.host_port.filter(|h| *h != 0) {
                    let key = format!("{hp}/{}", p.protocol.as_deref().unwrap_or("TCP"));
                    if !host_ports.insert(key.clone()) {
                        v.push(
                            ErrorType::Duplicate,
                            &format!("{base}[{i}].ports[{j}].hostPort"),
                            Some(quote(&key)),
                            "",
                        );
                    }
                }
            }
        }
    }

    // Valid in Kubernetes, meaningless here.
    let ignored: [(&str, bool, &str); 16] = [
        (
            "spec.nodeSelector",
            spec.node_selector.as_ref().is_some_and(|m| !m.is_empty()),
            IGNORED_HOST_ONLY,
        ),
        ("spec.affinity", spec.affinity.is_some(), IGNORED_HOST_ONLY),
        (
            "spec.tolerations",
            spec.tolerations.as_ref().is_some_and(|t| !t.is_empty()),
            IGNORED_HOST_ONLY,
        ),
        ("spec.nodeName", spec.node_name.is_some(), IGNORED_HOST_ONLY),
        (
            "spec.schedulerName",
            spec.scheduler_name.is_some(),
            IGNORED_HOST_ONLY,
        ),
        (
            "spec.priorityClassName",
            spec.priority_class_name.is_some(),
            IGNORED_HOST_ONLY,
        ),
        ("spec.priority", spec.priority.is_some(), IGNORED_HOST_ONLY),
        (
            "spec.preemptionPolicy",
            spec.preemption_policy.is_some(),
            IGNORED_HOST_ONLY,
        ),
        (
            "spec.topologySpreadConstraints",
            spec.topology_spread_constraints
                .as_ref()
                .is_some_and(|t| !t.is_empty()),
            IGNORED_HOST_ONLY,
        ),
        (
            "spec.schedulingGates",
            spec.scheduling_gates
                .as_ref()
                .is_some_and(|t| !t.is_empty()),
            IGNORED_HOST_ONLY,
        ),
        (
            "spec.serviceAccountName",
            spec.service_account_name.is_some(),
            IGNORED_NO_API,
        ),
        (
            "spec.serviceAccount",
            spec.service_account.is_some(),
            IGNORED_NO_API,
        ),
        (
            "spec.automountServiceAccountToken",
            spec.automount_service_account_token.is_some(),
            IGNORED_NO_API,
        ),
        (
            "spec.imagePullSecrets",
            spec.image_pull_secrets
                .as_ref()
                .is_some_and(|t| !t.is_empty()),
            "podrun has no Kubernetes secrets; configure registry credentials on the host",
        ),
        (
            "spec.runtimeClassName",
            spec.runtime_class_name.is_some(),
            "podrun is the runtime",
        ),
        (
            "spec.readinessGates",
            spec.readiness_gates.as_ref().is_some_and(|t| !t.is_empty()),
            "nothing sets readiness gate conditions here, so the pod never becomes Ready",
        ),
    ];
    for (path, present, why) in ignored {
        if present {
            v.ignored(path, why);
        }
    }
    if spec.resource_claims.as_ref().is_some_and(|t| !t.is_empty()) {
        v.ignored("spec.resourceClaims", IGNORED_NO_API);
    }
    if spec.overhead.is_some() {
        v.ignored("spec.overhead", "podrun is the runtime");
    }
}

use container::validate_container;
use security::validate_pod_security_context;
use volume::validate_volume;

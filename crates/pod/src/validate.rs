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

use crate::env::SUPPORTED_FIELD_PATHS;
use crate::names;
use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, LifecycleHandler, Pod, PodSecurityContext, PodSpec, Probe,
    SeccompProfile, SecurityContext, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, HashSet};
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

fn validate_volume(vol: &Volume, path: &str, v: &mut V) {
    if vol.name.is_empty() {
        v.required(&format!("{path}.name"), "");
    } else {
        v.names(
            &format!("{path}.name"),
            &vol.name,
            names::dns1123_label(&vol.name),
        );
    }
    let others: [(&str, bool); 22] = [
        ("configMap", vol.config_map.is_some()),
        ("secret", vol.secret.is_some()),
        (
            "persistentVolumeClaim",
            vol.persistent_volume_claim.is_some(),
        ),
        ("projected", vol.projected.is_some()),
        ("downwardAPI", vol.downward_api.is_some()),
        ("ephemeral", vol.ephemeral.is_some()),
        ("image", vol.image.is_some()),
        ("nfs", vol.nfs.is_some()),
        ("iscsi", vol.iscsi.is_some()),
        ("csi", vol.csi.is_some()),
        (
            "awsElasticBlockStore",
            vol.aws_elastic_block_store.is_some(),
        ),
        ("azureDisk", vol.azure_disk.is_some()),
        ("azureFile", vol.azure_file.is_some()),
        ("cephfs", vol.cephfs.is_some()),
        ("cinder", vol.cinder.is_some()),
        ("fc", vol.fc.is_some()),
        ("flexVolume", vol.flex_volume.is_some()),
        ("gcePersistentDisk", vol.gce_persistent_disk.is_some()),
        ("gitRepo", vol.git_repo.is_some()),
        ("glusterfs", vol.glusterfs.is_some()),
        ("rbd", vol.rbd.is_some()),
        (
            "portworxVolume",
            vol.portworx_volume.is_some()
                || vol.photon_persistent_disk.is_some()
                || vol.quobyte.is_some()
                || vol.scale_io.is_some()
                || vol.storageos.is_some()
                || vol.vsphere_volume.is_some()
                || vol.flocker.is_some(),
        ),
    ];
    let mut kinds: Vec<&str> = Vec::new();
    if vol.empty_dir.is_some() {
        kinds.push("emptyDir");
    }
    if vol.host_path.is_some() {
        kinds.push("hostPath");
    }
    kinds.extend(others.iter().filter(|(_, p)| *p).map(|(n, _)| *n));
    match kinds.len() {
        0 => v.required(path, "must specify a volume type"),
        1 => {}
        _ => v.forbidden(
            &format!("{path}.{}", kinds[1]),
            "may not specify more than 1 volume type",
        ),
    }
    for k in &kinds {
        if *k != "emptyDir" && *k != "hostPath" {
            v.forbidden(
                &format!("{path}.{k}"),
                "podrun supports only emptyDir and hostPath volumes (no Kubernetes API server)",
            );
        }
    }
    if let Some(ed) = &vol.empty_dir {
        v.enum_value(
            &format!("{path}.emptyDir.medium"),
            ed.medium.as_ref().filter(|m| !m.is_empty()),
            &["Memory"],
        );
        if let Some(q) = &ed.size_limit {
            validate_quantity(&format!("{path}.emptyDir.sizeLimit"), &q.0, v);
        }
    }
    if let Some(hp) = &vol.host_path {
        let p = format!("{path}.hostPath.path");
        if hp.path.is_empty() {
            v.required(&p, "");
        } else if !hp.path.starts_with('/') {
            v.invalid(&p, quote(&hp.path), "must be an absolute path");
        } else if hp.path.split('/').any(|e| e == "..") {
            v.invalid(&p, quote(&hp.path), "must not contain '..'");
        }
        v.enum_value(
            &format!("{path}.hostPath.type"),
            hp.type_.as_ref().filter(|t| !t.is_empty()),
            &[
                "DirectoryOrCreate",
                "Directory",
                "FileOrCreate",
                "File",
                "Socket",
                "CharDevice",
                "BlockDevice",
            ],
        );
    }
}

fn validate_quantity(path: &str, s: &str, v: &mut V) -> Option<Quantity> {
    match Quantity::parse(s) {
        Ok(q) if q.is_negative() => {
            v.invalid(path, quote(s), "must be greater than or equal to 0");
            None
        }
        Ok(q) => Some(q),
        Err(e) => {
            v.invalid(path, quote(s), e.to_string());
            None
        }
    }
}

fn validate_container(
    c: &Container,
    path: &str,
    is_init: bool,
    volumes: &HashSet<&str>,
    v: &mut V,
) {
    let sidecar = is_init && c.restart_policy.as_deref() == Some("Always");
    if c.name.is_empty() {
        v.required(&format!("{path}.name"), "");
    } else {
        v.names(
            &format!("{path}.name"),
            &c.name,
            names::dns1123_label(&c.name),
        );
    }
    match c.image.as_deref() {
        None | Some("") => v.required(&format!("{path}.image"), ""),
        Some(img) if img.trim() != img => v.invalid(
            &format!("{path}.image"),
            quote(img),
            "must not have leading or trailing whitespace",
        ),
        _ => {}
    }
    v.enum_value(
        &format!("{path}.imagePullPolicy"),
        c.image_pull_policy.as_ref(),
        &["Always", "IfNotPresent", "Never"],
    );
    v.enum_value(
        &format!("{path}.terminationMessagePolicy"),
        c.termination_message_policy.as_ref(),
        &["File", "FallbackToLogsOnError"],
    );
    if let Some(rp) = &c.restart_policy {
        if is_init {
            if rp != "Always" {
                v.not_supported(&format!("{path}.restartPolicy"), rp, &["Always"]);
            }
        } else {
            v.forbidden(
                &format!("{path}.restartPolicy"),
                "may not be set for non-init containers",
            );
        }
    }
    let port_names = validate_ports(c.ports.as_deref().unwrap_or(&[]), path, v);
    if let Some(sc) = &c.security_context {
        validate_security_context(sc, &format!("{path}.securityContext"), v);
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        validate_env(e, &format!("{path}.env[{i}]"), v);
    }
    validate_resources(c, path, v);
    // Volume mounts.
    let mut mount_paths = HashSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            v.required(&format!("{mp}.name"), "");
        } else if !volumes.contains(m.name.as_str()) {
            v.push(
                ErrorType::NotFound,
                &format!("{mp}.name"),
                Some(quote(&m.name)),
                "",
            );
        }
        if m.mount_path.is_empty() {
            v.required(&format!("{mp}.mountPath"), "");
        } else {
            if !m.mount_path.starts_with('/') {
                v.invalid(
                    &format!("{mp}.mountPath"),
                    quote(&m.mount_path),
                    "must be an absolute path",
                );
            }
            let norm = m.mount_path.trim_end_matches('/');
            if !mount_paths.insert(if norm.is_empty() { "/" } else { norm }.to_string()) {
                v.invalid(
                    &format!("{mp}.mountPath"),
                    quote(&m.mount_path),
                    "must be unique",
                );
            }
        }
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sp.starts_with('/') {
                v.invalid(
                    &format!("{mp}.subPath"),
                    quote(sp),
                    "must be a relative path",
                );
            }
            if sp.split('/').any(|e| e == "..") {
                v.invalid(&format!("{mp}.subPath"), quote(sp), "must not contain '..'");
            }
        }
    }
    // Probes and hooks.
    let probes = [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ];
    for (name, probe, success_must_be_one) in probes {
        let Some(p) = probe else { continue };
        let pp = format!("{path}.{name}");
        if is_init && !sidecar {
            v.forbidden(
                &pp,
                "may not be set for init containers without restartPolicy=Always",
            );
            continue;
        }
        validate_probe(p, &pp, success_must_be_one, &port_names, v);
    }
    if let Some(lc) = &c.lifecycle {
        let lp = format!("{path}.lifecycle");
        if is_init && !sidecar {
            v.forbidden(
                &lp,
                "may not be set for init containers without restartPolicy=Always",
            );
        } else {
            if let Some(h) = &lc.post_start {
                validate_lifecycle_handler(h, &format!("{lp}.postStart"), &port_names, v);
            }
            if let Some(h) = &lc.pre_stop {
                validate_lifecycle_handler(h, &format!("{lp}.preStop"), &port_names, v);
            }
        }
    }
}

fn id_range(path: &str, id: Option<i64>, v: &mut V) {
    if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
        v.invalid(
            path,
            id.to_string(),
            "must be between 0 and 2147483647, inclusive",
        );
    }
}

fn validate_seccomp(p: &SeccompProfile, path: &str, v: &mut V) {
    v.enum_value(
        &format!("{path}.type"),
        Some(&p.type_),
        &["RuntimeDefault", "Unconfined", "Localhost"],
    );
    if p.type_ == "Localhost" && p.localhost_profile.as_deref().is_none_or(str::is_empty) {
        v.required(
            &format!("{path}.localhostProfile"),
            "must be set when seccomp type is Localhost",
        );
    }
}

fn validate_pod_security_context(sc: &PodSecurityContext, v: &mut V) {
    let p = "spec.securityContext";
    id_range(&format!("{p}.runAsUser"), sc.run_as_user, v);
    id_range(&format!("{p}.runAsGroup"), sc.run_as_group, v);
    id_range(&format!("{p}.fsGroup"), sc.fs_group, v);
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        id_range(&format!("{p}.supplementalGroups[{i}]"), Some(*g), v);
    }
    v.enum_value(
        &format!("{p}.fsGroupChangePolicy"),
        sc.fs_group_change_policy.as_ref(),
        &["OnRootMismatch", "Always"],
    );
    if let Some(sp) = &sc.seccomp_profile {
        validate_seccomp(sp, &format!("{p}.seccompProfile"), v);
    }
    for (i, s) in sc.sysctls.iter().flatten().enumerate() {
        if s.name.is_empty() {
            v.required(&format!("{p}.sysctls[{i}].name"), "");
        }
    }
    if sc.se_linux_options.is_some() {
        v.ignored(
            &format!("{p}.seLinuxOptions"),
            "podrun does not apply SELinux labels",
        );
    }
    if sc.windows_options.is_some() {
        v.ignored(
            &format!("{p}.windowsOptions"),
            "podrun runs Linux containers only",
        );
    }
}

fn validate_security_context(sc: &SecurityContext, path: &str, v: &mut V) {
    id_range(&format!("{path}.runAsUser"), sc.run_as_user, v);
    id_range(&format!("{path}.runAsGroup"), sc.run_as_group, v);
    v.enum_value(
        &format!("{path}.procMount"),
        sc.proc_mount.as_ref(),
        &["Default", "Unmasked"],
    );
    if let Some(sp) = &sc.seccomp_profile {
        validate_seccomp(sp, &format!("{path}.seccompProfile"), v);
    }
    if sc.allow_privilege_escalation == Some(false) {
        let shown = serde_json::to_string(sc).unwrap_or_default();
        if sc.privileged == Some(true) {
            v.invalid(
                path,
                shown.clone(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let adds_sys_admin = sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN" || c == "SYS_ADMIN"));
        if adds_sys_admin {
            v.invalid(path, shown, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN");
        }
    }
    if sc.se_linux_options.is_some() {
        v.ignored(
            &format!("{path}.seLinuxOptions"),
            "podrun does not apply SELinux labels",
        );
    }
    if sc.windows_options.is_some() {
        v.ignored(
            &format!("{path}.windowsOptions"),
            "podrun runs Linux containers only",
        );
    }
}

fn validate_ports(ports: &[ContainerPort], path: &str, v: &mut V) -> HashSet<String> {
    let mut names_seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            v.names(&format!("{pp}.name"), n, names::port_name(n));
            if !names_seen.insert(n.to_string()) {
                v.push(
                    ErrorType::Duplicate,
                    &format!("{pp}.name"),
                    Some(quote(n)),
                    "",
                );
            }
        }
        if p.container_port == 0 {
            v.required(&format!("{pp}.containerPort"), "");
        } else if !(1..=65535).contains(&p.container_port) {
            v.invalid(
                &format!("{pp}.containerPort"),
                p.container_port.to_string(),
                "must be between 1 and 65535, inclusive",
            );
        }
        if let Some(hp) = p.host_port.filter(|h| *h != 0) {
            if !(1..=65535).contains(&hp) {
                v.invalid(
                    &format!("{pp}.hostPort"),
                    hp.to_string(),
                    "must be between 1 and 65535, inclusive",
                );
            }
        }
        v.enum_value(
            &format!("{pp}.protocol"),
            p.protocol.as_ref(),
            &["SCTP", "TCP", "UDP"],
        );
    }
    names_seen
}

fn validate_port_ref(port: &IntOrString, path: &str, port_names: &HashSet<String>, v: &mut V) {
    match port {
        IntOrString::Int(n) => {
            if !(1..=65535).contains(n) {
                v.invalid(
                    path,
                    n.to_string(),
                    "must be between 1 and 65535, inclusive",
                );
            }
        }
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<i32>() {
                // Kubernetes accepts numeric strings as port numbers.
                validate_port_ref(&IntOrString::Int(n), path, port_names, v);
                return;
            }
            let msgs = names::port_name(s);
            if !msgs.is_empty() {
                v.names(path, s, msgs);
            } else if !port_names.contains(s) {
                v.invalid(
                    path,
                    quote(s),
                    "must name a port of this container (spec.containers[*].ports[*].name)",
                );
            }
        }
    }
}

fn validate_env(e: &EnvVar, path: &str, v: &mut V) {
    if e.name.is_empty() {
        v.required(&format!("{path}.name"), "");
    } else {
        v.names(
            &format!("{path}.name"),
            &e.name,
            names::env_var_name(&e.name),
        );
    }
    let Some(from) = &e.value_from else { return };
    let fp = format!("{path}.valueFrom");
    if e.value.as_deref().is_some_and(|x| !x.is_empty()) {
        v.invalid(
            &fp,
            "\"\"".into(),
            "may not be specified when `value` is not empty",
        );
        return;
    }
    let n = [
        from.field_ref.is_some(),
        from.resource_field_ref.is_some(),
        from.config_map_key_ref.is_some(),
        from.secret_key_ref.is_some(),
        from.file_key_ref.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n == 0 {
        v.invalid(&fp, "\"\"".into(), "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`");
    } else if n > 1 {
        v.invalid(
            &fp,
            "\"\"".into(),
            "may not have more than one field specified at a time",
        );
    }
    if let Some(f) = &from.field_ref {
        let p = &f.field_path;
        let sub = |prefix: &str| {
            p.strip_prefix(prefix)
                .is_some_and(|r| r.starts_with("['") && r.ends_with("']"))
        };
        if !SUPPORTED_FIELD_PATHS.contains(&p.as_str())
            && !sub("metadata.labels")
            && !sub("metadata.annotations")
        {
            v.not_supported(
                &format!("{fp}.fieldRef.fieldPath"),
                p,
                SUPPORTED_FIELD_PATHS,
            );
        }
    }
    for (name, present) in [
        ("resourceFieldRef", from.resource_field_ref.is_some()),
        ("configMapKeyRef", from.config_map_key_ref.is_some()),
        ("secretKeyRef", from.secret_key_ref.is_some()),
        ("fileKeyRef", from.file_key_ref.is_some()),
    ] {
        if present {
            v.forbidden(
                &format!("{fp}.{name}"),
                "not supported by podrun (no Kubernetes API server)",
            );
        }
    }
}

fn standard_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn validate_resources(c: &Container, path: &str, v: &mut V) {
    let Some(r) = &c.resources else { return };
    let rp = format!("{path}.resources");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    let requests = r.requests.as_ref().unwrap_or(&empty);
    let mut parsed_limits = BTreeMap::new();
    for (kind, map) in [("limits", limits), ("requests", requests)] {
        for (name, q) in map {
            let p = format!("{rp}.{kind}[{name}]");
            if name.contains('/') {
                v.ignored(&p, "extended resources are not allocated by podrun");
                continue;
            }
            if !standard_resource(name) {
                v.invalid(
                    &p,
                    quote(name),
                    "must be a standard resource type or fully qualified",
                );
                continue;
            }
            let parsed = validate_quantity(&p, &q.0, v);
            if kind == "limits" {
                if let Some(pq) = parsed {
                    parsed_limits.insert(name.clone(), (pq, q.0.clone()));
                }
            } else if let (Some(req), Some((lim, lim_s))) = (parsed, parsed_limits.get(name)) {
                if req.cmp_exact(lim) == std::cmp::Ordering::Greater {
                    v.invalid(
                        &p,
                        quote(&q.0),
                        format!("must be less than or equal to {name} limit of {lim_s}"),
                    );
                }
            }
        }
    }
}

fn count_handlers(
    exec: bool,
    http: bool,
    tcp: bool,
    grpc: bool,
    sleep: bool,
) -> (usize, Option<&'static str>) {
    let mut n = 0;
    let mut second = None;
    for (present, name) in [
        (exec, "exec"),
        (http, "httpGet"),
        (tcp, "tcpSocket"),
        (grpc, "grpc"),
        (sleep, "sleep"),
    ] {
        if present {
            n += 1;
            if n == 2 {
                second = Some(name);
            }
        }
    }
    (n, second)
}

fn validate_probe(
    p: &Probe,
    path: &str,
    success_must_be_one: bool,
    port_names: &HashSet<String>,
    v: &mut V,
) {
    v.non_negative(
        &format!("{path}.initialDelaySeconds"),
        p.initial_delay_seconds.map(i64::from),
    );
    v.non_negative(
        &format!("{path}.timeoutSeconds"),
        p.timeout_seconds.map(i64::from),
    );
    v.non_negative(
        &format!("{path}.periodSeconds"),
        p.period_seconds.map(i64::from),
    );
    v.non_negative(
        &format!("{path}.successThreshold"),
        p.success_threshold.map(i64::from),
    );
    v.non_negative(
        &format!("{path}.failureThreshold"),
        p.failure_threshold.map(i64::from),
    );
    if let Some(t) = p.termination_grace_period_seconds {
        if t <= 0 {
            v.invalid(
                &format!("{path}.terminationGracePeriodSeconds"),
                t.to_string(),
                "must be greater than 0",
            );
        }
    }
    if success_must_be_one {
        if let Some(s) = p.success_threshold.filter(|s| *s != 1) {
            v.invalid(
                &format!("{path}.successThreshold"),
                s.to_string(),
                "must be 1",
            );
        }
    }
    let (n, second) = count_handlers(
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.grpc.is_some(),
        false,
    );
    if n == 0 {
        v.required(path, "must specify a handler type");
    } else if n > 1 {
        v.forbidden(
            &format!("{path}.{}", second.unwrap_or("exec")),
            "may not specify more than 1 handler type",
        );
    }
    if let Some(e) = &p.exec {
        if e.command.as_ref().is_none_or(|c| c.is_empty()) {
            v.required(&format!("{path}.exec.command"), "");
        }
    }
    if let Some(h) = &p.http_get {
        validate_port_ref(&h.port, &format!("{path}.httpGet.port"), port_names, v);
        v.enum_value(
            &format!("{path}.httpGet.scheme"),
            h.scheme.as_ref(),
            &["HTTP", "HTTPS"],
        );
    }
    if let Some(t) = &p.tcp_socket {
        validate_port_ref(&t.port, &format!("{path}.tcpSocket.port"), port_names, v);
    }
    if let Some(g) = &p.grpc {
        if !(1..=65535).contains(&g.port) {
            v.invalid(
                &format!("{path}.grpc.port"),
                g.port.to_string(),
                "must be between 1 and 65535, inclusive",
            );
        }
    }
}

fn validate_lifecycle_handler(
    h: &LifecycleHandler,
    path: &str,
    port_names: &HashSet<String>,
    v: &mut V,
) {
    let (n, second) = count_handlers(
        h.exec.is_some(),
        h.http_get.is_some(),
        h.tcp_socket.is_some(),
        false,
        h.sleep.is_some(),
    );
    if n == 0 {
        v.required(path, "must specify a handler type");
    } else if n > 1 {
        v.forbidden(
            &format!("{path}.{}", second.unwrap_or("exec")),
            "may not specify more than 1 handler type",
        );
    }
    if let Some(e) = &h.exec {
        if e.command.as_ref().is_none_or(|c| c.is_empty()) {
            v.required(&format!("{path}.exec.command"), "");
        }
    }
    if let Some(hg) = &h.http_get {
        validate_port_ref(&hg.port, &format!("{path}.httpGet.port"), port_names, v);
        v.enum_value(
            &format!("{path}.httpGet.scheme"),
            hg.scheme.as_ref(),
            &["HTTP", "HTTPS"],
        );
    }
    if let Some(t) = &h.tcp_socket {
        validate_port_ref(&t.port, &format!("{path}.tcpSocket.port"), port_names, v);
    }
    if let Some(s) = &h.sleep {
        if s.seconds < 0 {
            v.invalid(
                &format!("{path}.sleep.seconds"),
                s.seconds.to_string(),
                "must be greater than or equal to 0",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_manifest;

    fn pod(yaml: &str) -> Pod {
        parse_manifest("t.yaml", yaml).unwrap().remove(0).pod
    }

    fn errs(yaml: &str) -> Vec<String> {
        validate_pod(&pod(yaml), &Options::default())
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n";

    fn spec_errs(body: &str) -> Vec<String> {
        errs(&format!("{HEAD}{body}"))
    }

    #[test]
    fn valid_pod_has_no_errors() {
        let y = format!(
            "{HEAD}  restartPolicy: OnFailure\n  dnsPolicy: ClusterFirst\n  volumes:\n  - name: data\n    emptyDir: {{}}\n  - name: host\n    hostPath: {{path: /tmp, type: Directory}}\n  initContainers:\n  - name: init\n    image: busybox\n  - name: side\n    image: busybox\n    restartPolicy: Always\n    readinessProbe: {{exec: {{command: ['true']}}}}\n  containers:\n  - name: web\n    image: nginx:1.25\n    imagePullPolicy: IfNotPresent\n    ports: [{{name: http, containerPort: 80}}]\n    env: [{{name: A, value: x}}, {{name: P, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]\n    resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{cpu: '1', memory: 128Mi}}}}\n    volumeMounts: [{{name: data, mountPath: /data}}, {{name: host, mountPath: /host, subPath: x/y}}]\n    livenessProbe: {{httpGet: {{port: http, path: /}}, successThreshold: 1}}\n    readinessProbe: {{tcpSocket: {{port: 80}}, successThreshold: 3}}\n    lifecycle: {{preStop: {{exec: {{command: [sh, -c, 'sleep 1']}}}}}}\n"
        );
        let r = validate_pod(&pod(&y), &Options::default());
        assert_eq!(
            r.errors,
            vec![],
            "{:?}",
            r.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        );
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn names_and_duplicates() {
        let e = errs("apiVersion: v1\nkind: Pod\nmetadata:\n  name: Web_1\nspec:\n  initContainers:\n  - {name: web, image: b}\n  containers:\n  - {name: a, image: b}\n  - {name: web, image: b}\n  - {name: Bad, image: b}\n");
        assert!(e[0].starts_with("metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of"), "{e:?}");
        assert!(
            e.contains(&"spec.containers[1].name: Duplicate value: \"web\"".to_string()),
            "{e:?}"
        );
        assert!(
            e.iter().any(|x| x.starts_with(
                "spec.containers[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label"
            )),
            "{e:?}"
        );
        let e =
            errs("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\nspec:\n  containers: []\n");
        assert_eq!(
            e,
            vec![
                "metadata.name: Required value: name or generateName is required",
                "spec.containers: Required value"
            ]
        );
    }

    #[test]
    fn image_and_enums() {
        let e = spec_errs("  restartPolicy: Sometimes\n  dnsPolicy: Weird\n  containers:\n  - name: a\n    imagePullPolicy: Maybe\n");
        assert_eq!(
            e,
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
                "spec.dnsPolicy: Unsupported value: \"Weird\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
                "spec.containers[0].image: Required value",
                "spec.containers[0].imagePullPolicy: Unsupported value: \"Maybe\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            ]
        );
        let e = spec_errs("  dnsPolicy: None\n  containers: [{name: a, image: b}]\n");
        assert_eq!(
            e,
            vec![
                "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
            ]
        );
    }

    #[test]
    fn init_container_rules() {
        let e = spec_errs("  initContainers:\n  - name: i\n    image: b\n    readinessProbe: {exec: {command: [x]}}\n    livenessProbe: {exec: {command: [x]}}\n    startupProbe: {exec: {command: [x]}}\n    lifecycle: {postStart: {exec: {command: [x]}}}\n    restartPolicy: Never\n  containers: [{name: a, image: b, restartPolicy: Always}]\n");
        assert_eq!(
            e,
            vec![
                "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[0].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
            ]
        );
    }

    #[test]
    fn probe_rules() {
        let e = spec_errs("  containers:\n  - name: a\n    image: b\n    livenessProbe: {exec: {command: [x]}, successThreshold: 2, periodSeconds: -1}\n    startupProbe: {successThreshold: 3}\n    readinessProbe: {exec: {command: [x]}, tcpSocket: {port: 70000}}\n");
        assert_eq!(
            e,
            vec![
                "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                "spec.containers[0].readinessProbe.tcpSocket.port: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[0].startupProbe.successThreshold: Invalid value: 3: must be 1",
                "spec.containers[0].startupProbe: Required value: must specify a handler type",
            ]
        );
        let e = spec_errs("  containers:\n  - name: a\n    image: b\n    readinessProbe: {httpGet: {port: metrics}}\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("spec.containers[0].readinessProbe.httpGet.port: Invalid value: \"metrics\": must name a port"), "{e:?}");
    }

    #[test]
    fn ports() {
        let e = spec_errs("  containers:\n  - name: a\n    image: b\n    ports:\n    - {name: http, containerPort: 80}\n    - {name: http, containerPort: 0, protocol: ICMP}\n    - {name: '8080', containerPort: 70000, hostPort: 8080}\n  - name: c\n    image: b\n    ports: [{containerPort: 1, hostPort: 8080}]\n");
        assert_eq!(
            e,
            vec![
                "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                "spec.containers[0].ports[1].containerPort: Required value",
                "spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.containers[0].ports[2].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.containers[0].ports[2].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                "spec.containers[1].ports[0].hostPort: Duplicate value: \"8080/TCP\"",
            ]
        );
    }

    #[test]
    fn resources() {
        let e = spec_errs("  containers:\n  - name: a\n    image: b\n    resources:\n      limits: {cpu: '1', memory: 1GB, foo: '1'}\n      requests: {cpu: '2', memory: '-1'}\n");
        assert_eq!(
            e,
            vec![
                "spec.containers[0].resources.limits[foo]: Invalid value: \"foo\": must be a standard resource type or fully qualified",
                "spec.containers[0].resources.limits[memory]: Invalid value: \"1GB\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
                "spec.containers[0].resources.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
            ]
        );
        let ok = spec_errs("  containers:\n  - name: a\n    image: b\n    resources: {limits: {cpu: 500m}, requests: {cpu: '0.5'}}\n");
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn volumes_and_mounts() {
        let e = spec_errs("  volumes:\n  - name: data\n    emptyDir: {}\n  - name: data\n    hostPath: {path: rel}\n  - name: cm\n    configMap: {name: x}\n  - name: none\n  containers:\n  - name: a\n    image: b\n    volumeMounts:\n    - {name: data, mountPath: /d}\n    - {name: data, mountPath: /d/}\n    - {name: nope, mountPath: rel, subPath: ../x}\n    - {name: data, mountPath: ''}\n");
        assert_eq!(
            e,
            vec![
                "spec.volumes[1].hostPath.path: Invalid value: \"rel\": must be an absolute path",
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[2].configMap: Forbidden: podrun supports only emptyDir and hostPath volumes (no Kubernetes API server)",
                "spec.volumes[3]: Required value: must specify a volume type",
                "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d/\": must be unique",
                "spec.containers[0].volumeMounts[2].name: Not found: \"nope\"",
                "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"rel\": must be an absolute path",
                "spec.containers[0].volumeMounts[2].subPath: Invalid value: \"../x\": must not contain '..'",
                "spec.containers[0].volumeMounts[3].mountPath: Required value",
            ]
        );
    }

    #[test]
    fn env_rules() {
        let e = spec_errs("  containers:\n  - name: a\n    image: b\n    env:\n    - {name: 'A=B', value: x}\n    - {name: X, value: v, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: Y, valueFrom: {fieldRef: {fieldPath: spec.bogus}}}\n    - {name: Z, valueFrom: {secretKeyRef: {name: s, key: k}}}\n    - {name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n");
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name"));
        assert_eq!(e[1], "spec.containers[0].env[1].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty");
        assert!(e[2].starts_with("spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.bogus\": supported values: \"metadata.name\""));
        assert_eq!(e[3], "spec.containers[0].env[3].valueFrom.secretKeyRef: Forbidden: not supported by podrun (no Kubernetes API server)");
    }

    #[test]
    fn ignored_fields_warn_or_fail_in_strict() {
        let y = format!("{HEAD}  nodeSelector: {{disk: ssd}}\n  affinity: {{}}\n  serviceAccountName: sa\n  containers:\n  - name: a\n    image: b\n    resources: {{limits: {{nvidia.com/gpu: '1'}}}}\n");
        let p = pod(&y);
        let r = validate_pod(&p, &Options::default());
        assert!(r.is_ok());
        let w: Vec<String> = r.warnings.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            w,
            vec![
                "spec.containers[0].resources.limits[nvidia.com/gpu]: ignored: extended resources are not allocated by podrun",
                "spec.nodeSelector: ignored: podrun runs pods on this host only",
                "spec.affinity: ignored: podrun runs pods on this host only",
                "spec.serviceAccountName: ignored: podrun has no Kubernetes API server or service accounts",
            ]
        );
        let strict = validate_pod(&p, &Options { strict: true });
        assert_eq!(strict.errors.len(), 4);
        assert!(strict.warnings.is_empty());
        assert_eq!(
            unknown_field_warnings(&["spec.foo".into()])[0].to_string(),
            "spec.foo: ignored: unknown field"
        );
    }

    #[test]
    fn security_context_rules() {
        let e = spec_errs("  hostNetwork: true\n  securityContext: {runAsUser: -1, fsGroup: 3000000000, supplementalGroups: [1, -2], seccompProfile: {type: Localhost}}\n  containers:\n  - name: a\n    image: b\n    ports: [{containerPort: 80, hostPort: 8080}]\n    securityContext: {allowPrivilegeEscalation: false, privileged: true, procMount: Weird, runAsGroup: -3}\n");
        assert_eq!(
            e,
            vec![
                "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.fsGroup: Invalid value: 3000000000: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.supplementalGroups[1]: Invalid value: -2: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
                "spec.containers[0].securityContext.runAsGroup: Invalid value: -3: must be between 0 and 2147483647, inclusive",
                "spec.containers[0].securityContext.procMount: Unsupported value: \"Weird\": supported values: \"Default\", \"Unmasked\"",
                "spec.containers[0].securityContext: Invalid value: {\"allowPrivilegeEscalation\":false,\"privileged\":true,\"procMount\":\"Weird\",\"runAsGroup\":-3}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                "spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
            ]
        );
        let ok = spec_errs("  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}\n  containers:\n  - name: a\n    image: b\n    securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: {drop: [ALL]}}\n");
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn missing_spec_and_other_pod_fields() {
        let e = errs("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: Bad, labels: {'bad key!': v}}\n");
        assert!(
            e[0].starts_with("metadata.namespace: Invalid value: \"Bad\""),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(
                "metadata.labels: Invalid value: \"bad key!\": name part must consist"
            ),
            "{e:?}"
        );
        assert_eq!(e.last().unwrap(), "spec: Required value");
        let e = spec_errs("  terminationGracePeriodSeconds: -5\n  activeDeadlineSeconds: 0\n  os: {name: windows}\n  containers: [{name: a, image: ' b'}]\n");
        assert_eq!(
            e,
            vec![
                "spec.terminationGracePeriodSeconds: Invalid value: -5: must be greater than or equal to 0",
                "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
                "spec.os.name: Unsupported value: \"windows\": supported values: \"linux\"",
                "spec.containers[0].image: Invalid value: \" b\": must not have leading or trailing whitespace",
            ]
        );
    }
}

//! One container: names, image, enums, ports, env, resources, mounts, and
//! which probes/hooks it may have (validateContainers / validateInitContainers).

use super::probe::{validate_lifecycle_handler, validate_probe};
use super::security::validate_security_context;
use super::volume::validate_quantity;
use super::*;
use crate::env::SUPPORTED_FIELD_PATHS;
use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar};
use std::collections::BTreeMap;

pub(super) fn validate_container(
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
    for (i, e) in c.env_from.iter().flatten().enumerate() {
        let ep = format!("{path}.envFrom[{i}]");
        if e.config_map_ref.is_some() {
            v.forbidden(
                &format!("{ep}.configMapRef"),
                "not supported by podrun (no Kubernetes API server)",
            );
        }
        if e.secret_ref.is_some() {
            v.forbidden(
                &format!("{ep}.secretRef"),
                "not supported by podrun (no Kubernetes API server)",
            );
        }
        if e.config_map_ref.is_none() && e.secret_ref.is_none() {
            v.required(&ep, "must specify one of: `configMapRef` or `secretRef`");
        }
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

pub(super) fn validate_ports(ports: &[ContainerPort], path: &str, v: &mut V) -> HashSet<String> {
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

pub(super) fn validate_env(e: &EnvVar, path: &str, v: &mut V) {
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

pub(super) fn standard_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

pub(super) fn validate_resources(c: &Container, path: &str, v: &mut V) {
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

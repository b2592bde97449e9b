//! Probes and lifecycle handlers (validateProbe / validateHandler / validateLifecycle).

use super::*;
use k8s_openapi::api::core::v1::{LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub(super) fn count_handlers(
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

pub(super) fn validate_probe(
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

pub(super) fn validate_lifecycle_handler(
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

pub(super) fn validate_port_ref(
    port: &IntOrString,
    path: &str,
    port_names: &HashSet<String>,
    v: &mut V,
) {
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

//! Pod and container securityContext (ValidatePodSecurityContext / ValidateSecurityContext).

use super::*;
use k8s_openapi::api::core::v1::{PodSecurityContext, SeccompProfile, SecurityContext};

pub(super) fn id_range(path: &str, id: Option<i64>, v: &mut V) {
    if let Some(id) = id.filter(|id| !(0..=i64::from(i32::MAX)).contains(id)) {
        v.invalid(
            path,
            id.to_string(),
            "must be between 0 and 2147483647, inclusive",
        );
    }
}

pub(super) fn validate_seccomp(p: &SeccompProfile, path: &str, v: &mut V) {
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

pub(super) fn validate_pod_security_context(sc: &PodSecurityContext, v: &mut V) {
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

pub(super) fn validate_security_context(sc: &SecurityContext, path: &str, v: &mut V) {
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

//! Container environment as kubelet builds it (makeEnvironmentVariables) and
//! `$(VAR)` expansion exactly as third_party/forked/golang/expansion/expand.go.
//!
//! Expansion: `$(NAME)` is replaced by NAME's value if defined, otherwise kept
//! verbatim; `$$` becomes `$` (so `$$(X)` is the literal `$(X)`); a `$`
//! followed by anything else is kept with that character; an unclosed `$(`
//! is kept. One deliberate difference: Go works on bytes and mangles a
//! non-ASCII character right after `$`; here it is kept intact.
//!
//! Env vars are processed in order; a value may refer to vars defined
//! *earlier* in the same list (later ones are not visible yet). A name given
//! twice keeps its first position and takes the last value.

use k8s_openapi::api::core::v1::{Container, EnvVar};
use std::collections::HashMap;

/// Expands `$(VAR)` references in `input` using `lookup`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut chars = after.chars();
        match chars.next() {
            None => {
                // A trailing '$' is copied as is.
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after[1..].find(')') {
                Some(close) => {
                    let name = &after[1..1 + close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands with a map of defined variables.
pub fn expand_with(input: &str, vars: &HashMap<String, String>) -> String {
    expand(input, &|name| vars.get(name).cloned())
}

/// Pod facts a `fieldRef` can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodFields {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub node_name: String,
    pub service_account_name: String,
    pub host_ip: String,
    pub pod_ip: String,
}

/// Field paths `fieldRef` supports (besides `metadata.labels['k']` and
/// `metadata.annotations['k']`).
pub const SUPPORTED_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Why an env var could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("env[{index}] {name}: unsupported fieldRef.fieldPath {path:?}")]
    FieldPath {
        index: usize,
        name: String,
        path: String,
    },
    #[error("env[{index}] {name}: valueFrom.{source_kind} is not supported by podrun (no Kubernetes API server)")]
    UnsupportedSource {
        index: usize,
        name: String,
        source_kind: &'static str,
    },
}

fn format_map(m: &std::collections::BTreeMap<String, String>) -> String {
    // kubelet's FormatMap: key="value" lines, sorted by key.
    m.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let inner = path
        .strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")?;
    Some(inner)
}

/// podFieldSelectorRuntimeValue: the value of a `fieldRef.fieldPath`.
pub fn field_value(path: &str, pod: &PodFields) -> Option<String> {
    Some(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "metadata.labels" => format_map(&pod.labels),
        "metadata.annotations" => format_map(&pod.annotations),
        "spec.nodeName" => pod.node_name.clone(),
        "spec.serviceAccountName" => pod.service_account_name.clone(),
        "status.hostIP" | "status.hostIPs" => pod.host_ip.clone(),
        "status.podIP" | "status.podIPs" => pod.pod_ip.clone(),
        other => {
            if let Some(k) = subscript(other, "metadata.labels") {
                pod.labels.get(k).cloned().unwrap_or_default()
            } else if let Some(k) = subscript(other, "metadata.annotations") {
                pod.annotations.get(k).cloned().unwrap_or_default()
            } else {
                return None;
            }
        }
    })
}

/// Resolves a container's `env` list in order: `value` is expanded against
/// the vars defined before it; `valueFrom.fieldRef` reads `pod`. Returns
/// (name, value) pairs in first-definition order.
pub fn resolve_env(env: &[EnvVar], pod: &PodFields) -> Result<Vec<(String, String)>, EnvError> {
    let mut order: Vec<String> = Vec::new();
    let mut vals: HashMap<String, String> = HashMap::new();
    for (index, var) in env.iter().enumerate() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => expand_with(v, &vals),
            (_, Some(from)) => {
                let unsupported = |source_kind| EnvError::UnsupportedSource {
                    index,
                    name: var.name.clone(),
                    source_kind,
                };
                if let Some(f) = &from.field_ref {
                    field_value(&f.field_path, pod).ok_or_else(|| EnvError::FieldPath {
                        index,
                        name: var.name.clone(),
                        path: f.field_path.clone(),
                    })?
                } else if from.resource_field_ref.is_some() {
                    return Err(unsupported("resourceFieldRef"));
                } else if from.config_map_key_ref.is_some() {
                    return Err(unsupported("configMapKeyRef"));
                } else if from.secret_key_ref.is_some() {
                    return Err(unsupported("secretKeyRef"));
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        if !vals.contains_key(&var.name) {
            order.push(var.name.clone());
        }
        vals.insert(var.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|n| {
            let v = vals.remove(&n).unwrap_or_default();
            (n, v)
        })
        .collect())
}

/// Resolves `container.env` (see [`resolve_env`]).
pub fn container_env(c: &Container, pod: &PodFields) -> Result<Vec<(String, String)>, EnvError> {
    resolve_env(c.env.as_deref().unwrap_or(&[]), pod)
}

/// Merges image env (`KEY=VALUE` strings) under the container's env: the
/// container's values win, image vars keep their order first.
pub fn merge_with_image_env(image_env: &[String], container: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = image_env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    for (k, v) in container {
        match out.iter_mut().find(|(ok, _)| ok == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVarSource, ObjectFieldSelector};

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_matches_kubernetes_cases() {
        let m = vars(&[
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]);
        // Cases from expand_test.go.
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$$(VAR_A)", "$A"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$(VAR_A)$(", "A$("),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_A)$", "A$"),
            ("$$", "$"),
            ("$", "$"),
            ("$()", "$()"),
            ("$(VAR_A)$(VAR_A", "A$(VAR_A"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("f000-$$$(VAR_A)", "f000-$A"),
            ("héllo $(VAR_A) $é", "héllo A $é"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand_with(input, &m), want, "input {input:?}");
        }
    }

    fn ev(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn field(name: &str, path: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    api_version: None,
                }),
                ..Default::default()
            }),
        }
    }

    fn pod() -> PodFields {
        PodFields {
            name: "web".into(),
            namespace: "default".into(),
            uid: "1234".into(),
            labels: [("app".to_string(), "x".to_string())].into(),
            pod_ip: "10.0.0.2".into(),
            host_ip: "192.168.1.1".into(),
            node_name: "host".into(),
            service_account_name: "default".into(),
            ..Default::default()
        }
    }

    #[test]
    fn env_in_order_with_references() {
        let env = vec![
            ev("A", "a"),
            ev("B", "$(A)-$(C)"), // C not defined yet: kept verbatim
            ev("C", "c"),
            field("POD", "metadata.name"),
            ev("URL", "http://$(POD_IP):80/$(POD)"),
            field("POD_IP", "status.podIP"),
            ev("A", "again"),
            field("APP", "metadata.labels['app']"),
            field("NS", "metadata.namespace"),
            field("UID", "metadata.uid"),
            field("NODE", "spec.nodeName"),
            field("HOST", "status.hostIP"),
            field("SA", "spec.serviceAccountName"),
            EnvVar {
                name: "EMPTY".into(),
                value: None,
                value_from: None,
            },
        ];
        let got = resolve_env(&env, &pod()).unwrap();
        let want: Vec<(String, String)> = [
            ("A", "again"),
            ("B", "a-$(C)"),
            ("C", "c"),
            ("POD", "web"),
            ("URL", "http://$(POD_IP):80/web"),
            ("POD_IP", "10.0.0.2"),
            ("APP", "x"),
            ("NS", "default"),
            ("UID", "1234"),
            ("NODE", "host"),
            ("HOST", "192.168.1.1"),
            ("SA", "default"),
            ("EMPTY", ""),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unsupported_sources_are_errors() {
        let e = resolve_env(&[field("X", "spec.bogus")], &pod()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "env[0] X: unsupported fieldRef.fieldPath \"spec.bogus\""
        );
        let secret = EnvVar {
            name: "S".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(Default::default()),
                ..Default::default()
            }),
        };
        let e = resolve_env(&[secret], &pod()).unwrap_err();
        assert!(
            e.to_string().contains("secretKeyRef is not supported"),
            "{e}"
        );
    }

    #[test]
    fn labels_map_format() {
        let mut p = pod();
        p.labels.insert("tier".into(), "fe".into());
        assert_eq!(
            field_value("metadata.labels", &p).unwrap(),
            "app=\"x\"\ntier=\"fe\""
        );
        assert_eq!(field_value("metadata.annotations['none']", &p).unwrap(), "");
        assert_eq!(field_value("metadata.labels[app]", &p), None);
    }

    #[test]
    fn image_env_merge() {
        let img = vec![
            "PATH=/usr/bin".to_string(),
            "LANG=C".to_string(),
            "ODD".to_string(),
        ];
        let c = vec![
            ("LANG".to_string(), "en".to_string()),
            ("X".to_string(), "1".to_string()),
        ];
        assert_eq!(
            merge_with_image_env(&img, &c),
            vec!["PATH=/usr/bin", "LANG=en", "ODD=", "X=1"]
        );
    }
}

//! Pod manifests: a YAML (multi-document) or JSON file → `k8s_openapi` Pods.
//!
//! Every document must be `apiVersion: v1` / `kind: Pod`; a `kind: List`
//! (as `kubectl get -o yaml` prints) contributes its items. Empty documents
//! (a trailing `---`) are skipped. Errors name the file, the 1-based document
//! and the line when the parser knows it: `pod.yaml: document 2, line 7: ...`.
//! Fields the Pod schema does not know are reported back (kubectl's
//! "unknown field" warnings) so typos such as `imagePolicy` are not silently lost.

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// A manifest that could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A document could not be parsed or is not a v1 Pod.
    #[error("{file}: {location}{message}")]
    Parse {
        file: String,
        location: Location,
        message: String,
    },
    /// No Pod in the whole file.
    #[error("{file}: no Pod found (the file is empty)")]
    Empty { file: String },
}

/// Where in a file a problem is: document (1-based) and line (1-based).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Location {
    pub document: Option<usize>,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    /// `document 2, line 7: ` (each part only when known; empty if neither).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.document, self.line) {
            (Some(d), Some(l)) => write!(f, "document {d}, line {l}: "),
            (Some(d), None) => write!(f, "document {d}: "),
            (None, Some(l)) => write!(f, "line {l}: "),
            (None, None) => Ok(()),
        }
    }
}

/// One Pod read from a manifest.
#[derive(Debug, Clone)]
pub struct ManifestPod {
    pub pod: Pod,
    /// 1-based index of the document it came from.
    pub document: usize,
    /// Field paths present in the input that the Pod schema does not know.
    pub unknown_fields: Vec<String>,
}

/// Reads and parses a manifest file. (`-` for stdin is the caller's job:
/// read it and call [`parse_manifest`] with the name `"<stdin>"`.)
pub fn load_manifest(path: &Path) -> Result<Vec<ManifestPod>, ManifestError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        file: file.clone(),
        source,
    })?;
    parse_manifest(&file, &text)
}

/// Parses manifest text; `file` is only used in error messages.
pub fn parse_manifest(file: &str, text: &str) -> Result<Vec<ManifestPod>, ManifestError> {
    let trimmed = text.trim_start();
    let pods = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        parse_json(file, text)?
    } else {
        parse_yaml(file, text)?
    };
    if pods.is_empty() {
        return Err(ManifestError::Empty { file: file.into() });
    }
    Ok(pods)
}

fn parse_err(
    file: &str,
    document: Option<usize>,
    line: Option<usize>,
    message: impl Into<String>,
) -> ManifestError {
    ManifestError::Parse {
        file: file.into(),
        location: Location { document, line },
        message: message.into(),
    }
}

fn parse_json(file: &str, text: &str) -> Result<Vec<ManifestPod>, ManifestError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let msg = strip_position(&e.to_string());
        parse_err(file, Some(1), Some(e.line()), msg)
    })?;
    pods_from_value(file, 1, value)
}

fn parse_yaml(file: &str, text: &str) -> Result<Vec<ManifestPod>, ManifestError> {
    let mut pods = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = serde_json::Value::deserialize(doc).map_err(|e| {
            let line = e.location().map(|l| l.line());
            parse_err(file, Some(document), line, strip_position(&e.to_string()))
        })?;
        if value.is_null() {
            continue; // empty document
        }
        let is_pod = value.get("kind").and_then(|k| k.as_str()) == Some("Pod");
        match pods_from_value(file, document, value) {
            Ok(p) => pods.extend(p),
            Err(ManifestError::Parse {
                file,
                location,
                message,
            }) if is_pod && location.line.is_none() => {
                // A schema error found on the JSON tree: re-read this document
                // straight into a Pod to learn the line the parser stopped at.
                let line = serde_norway::Deserializer::from_str(text)
                    .nth(i)
                    .and_then(|d| Pod::deserialize(d).err())
                    .and_then(|e| e.location())
                    .map(|l| l.line());
                return Err(ManifestError::Parse {
                    file,
                    location: Location { line, ..location },
                    message,
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(pods)
}

/// serde errors end with " at line X column Y"; the location is printed
/// separately, so drop it from the message.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(idx) => msg[..idx].to_string(),
        None => msg.to_string(),
    }
}

fn pods_from_value(
    file: &str,
    document: usize,
    value: serde_json::Value,
) -> Result<Vec<ManifestPod>, ManifestError> {
    let err = |msg: String| parse_err(file, Some(document), None, msg);
    let serde_json::Value::Object(map) = &value else {
        return Err(err(format!(
            "expected a Pod object, found {}",
            json_kind(&value)
        )));
    };
    let api_version = map.get("apiVersion").and_then(|v| v.as_str());
    let kind = map.get("kind").and_then(|v| v.as_str());
    match (api_version, kind) {
        (Some("v1"), Some("Pod")) => {
            let pod = pod_from_value(&value, "").map_err(err)?;
            Ok(vec![pod_with_unknowns(pod, document, &value)])
        }
        (Some("v1"), Some("List")) => {
            let items = map
                .get("items")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            let mut out = Vec::new();
            for (idx, item) in items.iter().enumerate() {
                let prefix = format!("items[{idx}]");
                let ik = item.get("kind").and_then(|v| v.as_str());
                let iv = item.get("apiVersion").and_then(|v| v.as_str());
                if ik != Some("Pod") || iv != Some("v1") {
                    return Err(err(format!(
                        "{prefix}: only apiVersion v1, kind Pod is supported (found apiVersion {}, kind {})",
                        show(iv),
                        show(ik)
                    )));
                }
                let pod = pod_from_value(item, &format!("{prefix}: ")).map_err(err)?;
                let mut mp = pod_with_unknowns(pod, document, item);
                for f in &mut mp.unknown_fields {
                    *f = format!("{prefix}.{f}");
                }
                out.push(mp);
            }
            Ok(out)
        }
        _ => Err(err(format!(
            "only apiVersion v1, kind Pod is supported (found apiVersion {}, kind {})",
            show(api_version),
            show(kind)
        ))),
    }
}

fn show(v: Option<&str>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "<missing>".into(),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

fn pod_from_value(value: &serde_json::Value, prefix: &str) -> Result<Pod, String> {
    // serde_path_to_error names the field (`spec.containers[0].command[0]`).
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("{prefix}{inner}")
        } else {
            format!("{prefix}{path}: {inner}")
        }
    })
}

fn pod_with_unknowns(pod: Pod, document: usize, input: &serde_json::Value) -> ManifestPod {
    let known = serde_json::to_value(&pod).unwrap_or(serde_json::Value::Null);
    let mut unknown_fields = Vec::new();
    collect_unknown(input, &known, "", &mut unknown_fields);
    ManifestPod {
        pod,
        document,
        unknown_fields,
    }
}

/// Every non-null key in `input` missing from the re-serialized `known` tree.
fn collect_unknown(
    input: &serde_json::Value,
    known: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, iv) in i {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => collect_unknown(iv, kv, &child, out),
                    None if iv.is_null() => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (idx, (iv, kv)) in i.iter().zip(k.iter()).enumerate() {
                collect_unknown(iv, kv, &format!("{path}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: one
spec:
  containers:
  - name: a
    image: busybox
---
apiVersion: v1
kind: Pod
metadata:
  name: two
spec:
  containers:
  - name: b
    image: busybox
    command: [sleep, '10']
---
";

    #[test]
    fn multi_document_yaml() {
        let pods = parse_manifest("pod.yaml", TWO).unwrap();
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0].pod.metadata.name.as_deref(), Some("one"));
        assert_eq!(pods[1].document, 2);
        let c = &pods[1].pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            c.command.as_deref(),
            Some(&["sleep".to_string(), "10".to_string()][..])
        );
        assert!(pods[0].unknown_fields.is_empty());
    }

    #[test]
    fn json_pod() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
            "spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
        let pods = parse_manifest("pod.json", json).unwrap();
        assert_eq!(pods[0].pod.metadata.name.as_deref(), Some("j"));
    }

    #[test]
    fn json_syntax_error_has_line() {
        let json = "{\n\"apiVersion\": \"v1\",\n\"kind\": \"Pod\"\n\"spec\": {}}";
        let e = parse_manifest("p.json", json).unwrap_err().to_string();
        assert!(e.starts_with("p.json: document 1, line 4: "), "{e}");
    }

    #[test]
    fn yaml_syntax_error_names_document_and_line() {
        let bad = format!("{TWO}apiVersion: v1\nkind: Pod\nmetadata:\n  name: [oops\n");
        let e = parse_manifest("pod.yaml", &bad).unwrap_err().to_string();
        assert!(e.starts_with("pod.yaml: document 3, line "), "{e}");
        let line: usize = e["pod.yaml: document 3, line ".len()..]
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((21..=24).contains(&line), "{e}");
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let y = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n";
        let e = parse_manifest("d.yaml", y).unwrap_err().to_string();
        assert_eq!(
            e,
            "d.yaml: document 1: only apiVersion v1, kind Pod is supported (found apiVersion \"apps/v1\", kind \"Deployment\")"
        );
        let e = parse_manifest("x.yaml", "kind: Pod\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("apiVersion <missing>"), "{e}");
    }

    #[test]
    fn wrong_type_is_rejected() {
        let y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: 3\n";
        let e = parse_manifest("p.yaml", y).unwrap_err().to_string();
        assert!(
            e.starts_with("p.yaml: document 1, line 6: spec.containers: invalid type"),
            "{e}"
        );
        let y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    command: [true]\n";
        let e = parse_manifest("p.yaml", y).unwrap_err().to_string();
        assert!(
            e.contains(
                "spec.containers[0].command[0]: invalid type: boolean `true`, expected a string"
            ),
            "{e}"
        );
    }

    #[test]
    fn scalar_document_is_rejected() {
        let e = parse_manifest("s.yaml", "hello\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "s.yaml: document 1: expected a Pod object, found a string"
        );
    }

    #[test]
    fn empty_file() {
        let e = parse_manifest("e.yaml", "---\n").unwrap_err().to_string();
        assert_eq!(e, "e.yaml: no Pod found (the file is empty)");
        assert!(matches!(
            parse_manifest("e.yaml", ""),
            Err(ManifestError::Empty { .. })
        ));
    }

    #[test]
    fn unknown_fields_are_reported() {
        let y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  nmespace: x\nspec:\n  containers:\n  - name: c\n    image: busybox\n    imagePolicy: Always\n";
        let pods = parse_manifest("p.yaml", y).unwrap();
        assert_eq!(
            pods[0].unknown_fields,
            vec![
                "metadata.nmespace".to_string(),
                "spec.containers[0].imagePolicy".to_string()
            ]
        );
    }

    #[test]
    fn list_kind() {
        let y = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: {containers: [{name: c, image: i}]}\n- apiVersion: v1\n  kind: Service\n";
        let e = parse_manifest("l.yaml", y).unwrap_err().to_string();
        assert!(e.contains("items[1]: only apiVersion v1, kind Pod"), "{e}");
        let y = &y[..y.find("- apiVersion: v1\n  kind: Service").unwrap()];
        assert_eq!(parse_manifest("l.yaml", y).unwrap().len(), 1);
    }

    #[test]
    fn load_names_missing_file() {
        let e = load_manifest(Path::new("/nonexistent/pod.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/pod.yaml: "), "{e}");
    }
}

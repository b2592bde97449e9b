//! The image configuration (the part the pod layer needs: Entrypoint, Cmd, Env, ...).

use crate::digest::Digest;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Execution defaults from the OCI image config. The pod layer applies Kubernetes'
/// command/args rules on top of `entrypoint` and `cmd`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    /// e.g. `["80/tcp"]`
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub architecture: String,
    pub os: String,
    pub created: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawConfig {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<RawExec>,
    rootfs: RawRootfs,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawExec {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    stop_signal: Option<String>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
struct RawRootfs {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<Digest>,
}

/// Parse an image config blob into the execution defaults and the layers' diff IDs.
pub fn parse_config(bytes: &[u8], what: &str) -> Result<(ImageConfig, Vec<Digest>)> {
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| Error::json(what, e))?;
    if raw.rootfs.kind != "layers" {
        return Err(Error::json(
            what,
            format!("rootfs.type must be \"layers\", got {:?}", raw.rootfs.kind),
        ));
    }
    let e = raw.config.unwrap_or_default();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok((
        ImageConfig {
            entrypoint: e.entrypoint.unwrap_or_default(),
            cmd: e.cmd.unwrap_or_default(),
            env: e.env.unwrap_or_default(),
            working_dir: non_empty(e.working_dir),
            user: non_empty(e.user),
            stop_signal: non_empty(e.stop_signal),
            exposed_ports: e.exposed_ports.unwrap_or_default().into_keys().collect(),
            volumes: e.volumes.unwrap_or_default().into_keys().collect(),
            labels: e.labels.unwrap_or_default(),
            architecture: raw.architecture,
            os: raw.os,
            created: raw.created,
        },
        raw.rootfs.diff_ids,
    ))
}

/// A minimal config for `podrun image import`: one layer, a shell as command.
pub fn config_for_import(diff_id: &Digest, created: &str) -> Vec<u8> {
    let p = crate::manifest::host_platform();
    let v = serde_json::json!({
        "created": created,
        "architecture": p.architecture,
        "os": p.os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "created_by": "podrun image import"}],
    });
    serde_json::to_vec(&v).expect("json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_config() {
        let d = format!("sha256:{}", "a".repeat(64));
        let j = serde_json::json!({"architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/init"], "Cmd": null, "Env": ["A=1"], "WorkingDir": "/srv", "User": "1000:1000",
                       "StopSignal": "SIGQUIT", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}, "Labels": {"k": "v"}},
            "rootfs": {"type": "layers", "diff_ids": [d]}});
        let (c, ids) = parse_config(&serde_json::to_vec(&j).unwrap(), "config").unwrap();
        assert_eq!(c.entrypoint, vec!["/init"]);
        assert!(c.cmd.is_empty());
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(c.exposed_ports, vec!["53/udp", "80/tcp"]);
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn empty_strings_are_none_and_rootfs_required() {
        let j = br#"{"config": {"WorkingDir": "", "User": ""}, "rootfs": {"type": "layers", "diff_ids": []}}"#;
        let (c, _) = parse_config(j, "c").unwrap();
        assert_eq!(c.working_dir, None);
        assert_eq!(c.user, None);
        assert!(parse_config(br#"{"config": {}}"#, "c").is_err());
        let imp = config_for_import(&Digest::of_bytes(b""), "2020-01-01T00:00:00Z");
        let (c, ids) = parse_config(&imp, "c").unwrap();
        assert_eq!(c.cmd, vec!["/bin/sh"]);
        assert_eq!(ids, vec![Digest::of_bytes(b"")]);
    }
}

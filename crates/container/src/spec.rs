//! Loading and validating a bundle's config.json.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A loaded bundle: absolute bundle dir, parsed spec, absolute rootfs path.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

/// Read `<bundle>/config.json`; errors name the file, and for bad JSON the line and column.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle).map_err(|e| Error::io("bundle", bundle, e))?;
    let path = dir.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    let spec = parse_spec(&data).map_err(|msg| Error::Config {
        path: path.clone(),
        msg,
    })?;
    let root = spec.root().as_ref().ok_or_else(|| Error::Config {
        path: path.clone(),
        msg: "root: required".into(),
    })?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let md = std::fs::metadata(&rootfs).map_err(|e| Error::Config {
        path: path.clone(),
        msg: format!("root.path {}: {e}", rootfs.display()),
    })?;
    if !md.is_dir() {
        return Err(Error::Config {
            path,
            msg: format!("root.path {}: not a directory", rootfs.display()),
        });
    }
    validate(&spec).map_err(|e| match e {
        Error::InvalidSpec { field, msg } => Error::Config {
            path: path.clone(),
            msg: format!("{field}: {msg}"),
        },
        e => e,
    })?;
    Ok(Bundle { dir, spec, rootfs })
}

pub fn parse_spec(data: &[u8]) -> std::result::Result<Spec, String> {
    serde_json::from_slice::<Spec>(data).map_err(|e| e.to_string())
}

/// Checks the spec's own rules that serde cannot: what must be present together,
/// duplicates, ranges. Messages name the field.
pub fn validate(spec: &Spec) -> Result<()> {
    let version = spec.version();
    if !version.starts_with("1.") {
        return Err(Error::spec(
            "ociVersion",
            format!("unsupported version \"{version}\" (podrun supports 1.x)"),
        ));
    }
    if let Some(p) = spec.process() {
        if p.cwd().as_os_str().is_empty() || !p.cwd().is_absolute() {
            return Err(Error::spec(
                "process.cwd",
                format!("must be an absolute path, got \"{}\"", p.cwd().display()),
            ));
        }
        if p.args().as_ref().is_none_or(|a| a.is_empty()) && p.command_line().is_none() {
            return Err(Error::spec("process.args", "must not be empty"));
        }
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    let mut has_user = false;
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(Error::spec(
                format!("linux.namespaces[{i}]"),
                format!("duplicate namespace type \"{}\"", ns.typ()),
            ));
        }
        if ns.typ() == LinuxNamespaceType::User {
            has_user = true;
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(Error::spec(
                    format!("linux.namespaces[{i}].path"),
                    format!("must be absolute, got \"{}\"", p.display()),
                ));
            }
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !has_user {
        return Err(Error::spec(
            "linux.uidMappings",
            "given without a user namespace in linux.namespaces",
        ));
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !seen.contains(&LinuxNamespaceType::Uts)
    {
        return Err(Error::spec(
            "hostname",
            "cannot set a hostname without a new uts namespace",
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(Error::spec(
                format!("mounts[{i}].destination"),
                format!("must be absolute, got \"{}\"", m.destination().display()),
            ));
        }
    }
    Ok(())
}

/// The default config.json of `podrun spec`, equal in content to runc's.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = if rootless {
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        Spec::rootless(uid, gid)
    } else {
        Spec::default()
    };
    spec.set_hostname(Some("podrun".to_string()));
    // No annotations key, and no inheritable capabilities (runc's spec since 1.1.2,
    // CVE-2022-29162: inheritable capabilities let a program with inheritable file
    // capabilities raise them into its permitted set at execve).
    spec.set_annotations(None);
    if let Some(p) = spec.process_mut().as_mut() {
        if let Some(mut caps) = p.capabilities().clone() {
            caps.set_inheritable(None);
            p.set_capabilities(Some(caps));
        }
    }
    if !rootless {
        // runc's default: deny every device in the devices cgroup (the runtime then allows
        // the default devices itself).
        let mut deny = oci_spec::runtime::LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_access(Some("rwm".to_string()));
        if let Some(linux) = spec.linux_mut() {
            let mut res = linux.resources().clone().unwrap_or_default();
            res.set_devices(Some(vec![deny]));
            linux.set_resources(Some(res));
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_round_trips_and_validates() {
        let s = default_spec(false);
        let text = serde_json::to_vec(&s).unwrap();
        let back = parse_spec(&text).unwrap();
        validate(&back).unwrap();
    }

    #[test]
    fn default_spec_has_no_inheritable_capabilities() {
        for rootless in [false, true] {
            let s = default_spec(rootless);
            let caps = s
                .process()
                .as_ref()
                .unwrap()
                .capabilities()
                .as_ref()
                .unwrap();
            assert!(caps.inheritable().is_none(), "CVE-2022-29162");
            assert!(caps.bounding().as_ref().is_some_and(|b| !b.is_empty()));
            assert!(s.annotations().is_none());
        }
    }

    #[test]
    fn bad_json_names_line() {
        let e = parse_spec(b"{\n \"ociVersion\": \"1.0.2\",\n \"root\": 5\n}").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let mut v: serde_json::Value = serde_json::to_value(default_spec(false)).unwrap();
        v["linux"]["namespaces"] = serde_json::json!([{"type":"pid"},{"type":"pid"}]);
        let s: Spec = serde_json::from_value(v).unwrap();
        let e = validate(&s).unwrap_err().to_string();
        assert!(
            e.contains("linux.namespaces[1]") && e.contains("duplicate"),
            "{e}"
        );
    }

    #[test]
    fn relative_cwd_rejected() {
        let mut v: serde_json::Value = serde_json::to_value(default_spec(false)).unwrap();
        v["process"]["cwd"] = "tmp".into();
        let s: Spec = serde_json::from_value(v).unwrap();
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("process.cwd"));
    }
}

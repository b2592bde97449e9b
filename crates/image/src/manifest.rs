//! Manifests, indexes and media types (OCI and Docker schema2 share one shape).

use crate::digest::Digest;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Every manifest type podrun accepts, for a registry `Accept` header.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest document turned out to be.
pub enum Parsed {
    Manifest(Manifest),
    Index(Index),
}

/// Parse a manifest or index; `content_type` (from HTTP or a descriptor) wins over the
/// document's own `mediaType`, and a document without either is told apart by its fields.
pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Parsed> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::json(what, e))?;
    let media = content_type
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "text/plain")
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .or_else(|| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let is_index = match media.as_str() {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        "" => v.get("manifests").is_some(),
        "application/vnd.docker.distribution.manifest.v1+json"
        | "application/vnd.docker.distribution.manifest.v1+prettyjws" => {
            return Err(Error::UnsupportedMediaType {
                what: format!("{what} (Docker schema1 is deprecated; re-push the image)"),
                media_type: media,
            })
        }
        other => {
            return Err(Error::UnsupportedMediaType {
                what: what.to_string(),
                media_type: other.to_string(),
            })
        }
    };
    if v.get("schemaVersion").and_then(|s| s.as_u64()) != Some(2) {
        return Err(Error::json(what, "schemaVersion must be 2"));
    }
    if is_index {
        Ok(Parsed::Index(
            serde_json::from_value(v).map_err(|e| Error::json(what, e))?,
        ))
    } else {
        let m: Manifest = serde_json::from_value(v).map_err(|e| Error::json(what, e))?;
        for l in &m.layers {
            layer_compression(&l.media_type).map_err(|_| Error::UnsupportedMediaType {
                what: format!("{what}, layer {}", l.digest),
                media_type: l.media_type.clone(),
            })?;
        }
        Ok(Parsed::Manifest(m))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression a layer media type announces (the unpacker also sniffs magic bytes).
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    match media_type {
        OCI_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" | "" => {
            Ok(Compression::None)
        }
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER => Ok(Compression::Gzip),
        OCI_LAYER_ZSTD => Ok(Compression::Zstd),
        "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => Ok(Compression::Gzip),
        other => Err(Error::UnsupportedMediaType {
            what: "layer".into(),
            media_type: other.to_string(),
        }),
    }
}

/// The platform podrun runs images for: linux and this machine's architecture (GOARCH names).
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: arch.to_string(),
        os: "linux".to_string(),
        variant: None,
    }
}

/// Pick the entry of an index that matches `want` (os + architecture; the variant when both give one).
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let candidates = index.manifests.iter().filter(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
    });
    let mut first = None;
    for d in candidates {
        let p = d.platform.as_ref().unwrap();
        match (&want.variant, &p.variant) {
            (Some(w), Some(v)) if w == v => return Some(d),
            _ => {}
        }
        first.get_or_insert(d);
    }
    first
}

/// "linux/amd64, linux/arm64/v8" for error messages.
pub fn platforms_of(index: &Index) -> String {
    let v: Vec<String> = index
        .manifests
        .iter()
        .map(|d| match &d.platform {
            Some(p) => match &p.variant {
                Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
                None => format!("{}/{}", p.os, p.architecture),
            },
            None => "unknown".to_string(),
        })
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(os: &str, arch: &str, variant: Option<&str>, n: u8) -> serde_json::Value {
        let mut p = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        serde_json::json!({"mediaType": OCI_MANIFEST, "size": 1, "digest": format!("sha256:{}", format!("{n:02x}").repeat(32)), "platform": p})
    }

    #[test]
    fn selects_platform() {
        let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            desc("linux", "arm64", Some("v8"), 1), desc("linux", "amd64", None, 2), desc("windows", "amd64", None, 3)]});
        let bytes = serde_json::to_vec(&idx).unwrap();
        let Parsed::Index(i) = parse(&bytes, None, "index").unwrap() else {
            panic!("not an index")
        };
        let want = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        };
        assert_eq!(
            select_platform(&i, &want).unwrap().digest.hex(),
            "02".repeat(32)
        );
        let want = Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        };
        assert!(select_platform(&i, &want).is_none());
        assert_eq!(
            platforms_of(&i),
            "linux/arm64/v8, linux/amd64, windows/amd64"
        );
    }

    #[test]
    fn tells_manifest_from_index() {
        let m = serde_json::json!({"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": format!("sha256:{}", "a".repeat(64))},
            "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": 3, "digest": format!("sha256:{}", "b".repeat(64))}]});
        let b = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            parse(&b, Some(DOCKER_MANIFEST), "m").unwrap(),
            Parsed::Manifest(_)
        ));
        assert!(matches!(parse(&b, None, "m").unwrap(), Parsed::Manifest(_)));
        assert!(parse(
            &b,
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            "m"
        )
        .is_err());
        let bad = serde_json::json!({"schemaVersion": 2, "config": m["config"], "layers": [{"mediaType": "application/x-foo", "size": 1, "digest": format!("sha256:{}", "c".repeat(64))}]});
        assert!(parse(&serde_json::to_vec(&bad).unwrap(), None, "m").is_err());
        assert!(parse(b"{", None, "m").is_err());
    }
}

//! Builders for layers, OCI layouts and archives used by the tests (real tar/gzip bytes).
#![allow(dead_code)]

use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::Path;

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

pub enum E<'a> {
    Dir(&'a str, u32),
    DirOwned(&'a str, u32, u32, u32),
    File(&'a str, &'a [u8], u32),
    FileOwned(&'a str, &'a [u8], u32, u32, u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
    /// A file with a pax xattr.
    FileXattr(&'a str, &'a [u8], &'a str, &'a [u8]),
}

fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    // Write the name bytes raw so tests can build hostile names the builder would refuse.
    let b = name.as_bytes();
    assert!(b.len() < 100, "test names must be short");
    h.as_old_mut().name[..b.len()].copy_from_slice(b);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let b = target.as_bytes();
    h.as_old_mut().linkname[..b.len()].copy_from_slice(b);
}

/// An uncompressed layer tar.
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(n, m) => {
                let mut h = header(n, tar::EntryType::Directory, *m, 0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::DirOwned(n, m, uid, gid) => {
                let mut h = header(n, tar::EntryType::Directory, *m, 0);
                h.set_uid(*uid as u64);
                h.set_gid(*gid as u64);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::File(n, data, m) => {
                let mut h = header(n, tar::EntryType::Regular, *m, data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::FileOwned(n, data, m, uid, gid) => {
                let mut h = header(n, tar::EntryType::Regular, *m, data.len() as u64);
                h.set_uid(*uid as u64);
                h.set_gid(*gid as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
            E::Symlink(n, t) => {
                let mut h = header(n, tar::EntryType::Symlink, 0o777, 0);
                set_link(&mut h, t);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Hardlink(n, t) => {
                let mut h = header(n, tar::EntryType::Link, 0o644, 0);
                set_link(&mut h, t);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Char(n, maj, min) => {
                let mut h = header(n, tar::EntryType::Char, 0o666, 0);
                h.set_device_major(*maj).unwrap();
                h.set_device_minor(*min).unwrap();
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Fifo(n) => {
                let mut h = header(n, tar::EntryType::Fifo, 0o600, 0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::FileXattr(n, data, k, v) => {
                let key = format!("SCHILY.xattr.{k}");
                b.append_pax_extensions([(key.as_str(), *v)]).unwrap();
                let mut h = header(n, tar::EntryType::Regular, 0o644, data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

/// Blobs of one image: (digest, bytes) for config, layers, manifest.
pub struct Built {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<(String, Vec<u8>)>,
    pub diff_ids: Vec<String>,
}

/// An OCI image from uncompressed layer tars (gzip-compressed in the manifest).
pub fn image(layers: &[Vec<u8>], cmd: &[&str], arch: &str) -> Built {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/", "ExposedPorts": {"8080/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let gz: Vec<(String, Vec<u8>)> = layers
        .iter()
        .map(|l| {
            let g = gzip(l);
            (sha(&g), g)
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": gz.iter().map(|(d, b)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": b.len()})).collect::<Vec<_>>(),
    }))
    .unwrap();
    Built {
        manifest_digest: sha(&manifest),
        manifest,
        config_digest: sha(&config),
        config,
        layers: gz,
        diff_ids,
    }
}

fn hex_of(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap()
}

/// Write an OCI image layout directory holding `img` under `name`.
pub fn write_oci_layout(dir: &Path, img: &Built, name: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(
        dir.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(blobs.join(hex_of(&img.config_digest)), &img.config).unwrap();
    std::fs::write(blobs.join(hex_of(&img.manifest_digest)), &img.manifest).unwrap();
    for (d, b) in &img.layers {
        std::fs::write(blobs.join(hex_of(d)), b).unwrap();
    }
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.manifest_digest, "size": img.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": name}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Tar up a directory (an oci-archive from a layout).
pub fn tar_dir(dir: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

/// A docker-archive (docker save format) of `img` tagged `tag`.
pub fn write_docker_archive(out: &Path, img: &Built, uncompressed_layers: &[Vec<u8>], tag: &str) {
    let f = std::fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    let cfg_name = format!("{}.json", hex_of(&img.config_digest));
    add(&cfg_name, &img.config);
    let mut layer_names = Vec::new();
    for (i, l) in uncompressed_layers.iter().enumerate() {
        let n = format!("layer{i}/layer.tar");
        add(&n, l);
        layer_names.push(n);
    }
    let m = json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": layer_names}]);
    add("manifest.json", &serde_json::to_vec(&m).unwrap());
    b.finish().unwrap();
}

/// Mount points under `root` (from /proc/self/mountinfo).
pub fn mounts_under(root: &Path) -> Vec<String> {
    let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let r = root.to_string_lossy().to_string();
    s.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&r))
        .map(str::to_string)
        .collect()
}

/// Entries of a store's tmp dir.
pub fn tmp_entries(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Count entries of a store subdirectory.
pub fn count(root: &Path, sub: &str) -> usize {
    std::fs::read_dir(root.join(sub))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// A temp dir on a filesystem that supports overlay upper dirs (not tmpfs with odd options).
pub fn store_dir() -> tempfile::TempDir {
    std::fs::create_dir_all("/var/tmp/podrun-image-tests").unwrap();
    tempfile::Builder::new()
        .prefix("store")
        .tempdir_in("/var/tmp/podrun-image-tests")
        .unwrap()
}

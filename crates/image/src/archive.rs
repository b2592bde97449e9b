//! `podrun image load`: docker-archive (`docker save`, `podman save`, `skopeo copy
//! docker-archive:`) and oci-archive (an OCI image layout in a tar), optionally compressed.

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Descriptor, Parsed};
use crate::pathcheck::{normalize_member, symlink_escapes};
use crate::reference::Reference;
use crate::store::{Image, Store};
use crate::tmp::TempPath;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl Store {
    /// Load every image of a docker-archive or oci-archive file into the store.
    pub fn load_archive(&self, path: &Path) -> Result<Vec<Image>> {
        self.clean_stale_tmp();
        let snapshot = self.snapshot()?;
        let result = {
            let _g = self.gc_shared()?;
            self.load_archive_locked(path)
        };
        if result.is_err() {
            self.rollback(&snapshot);
        }
        result
    }

    fn load_archive_locked(&self, path: &Path) -> Result<Vec<Image>> {
        let dir = TempPath::new_dir(&self.tmp_dir(), "load")?;
        extract(path, dir.path())?;
        let d = dir.path();
        let bad = |reason: String| Error::BadArchive {
            path: path.to_path_buf(),
            reason,
        };
        if d.join("manifest.json").is_file() {
            self.load_docker(path, d)
        } else if d.join("oci-layout").is_file() && d.join("index.json").is_file() {
            self.load_oci(path, d)
        } else {
            Err(bad("neither a docker-archive (no manifest.json) nor an oci-archive (no oci-layout + index.json)".into()))
        }
    }

    fn load_docker(&self, archive: &Path, d: &Path) -> Result<Vec<Image>> {
        let mp = d.join("manifest.json");
        let bytes = fs::read(&mp).ctx("reading", &mp)?;
        let entries: Vec<DockerEntry> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::json(format!("manifest.json in {}", archive.display()), e))?;
        if entries.is_empty() {
            return Err(Error::BadArchive {
                path: archive.to_path_buf(),
                reason: "manifest.json lists no images".into(),
            });
        }
        let mut imported: HashMap<PathBuf, (Digest, u64)> = HashMap::new();
        let mut images = Vec::new();
        for e in entries {
            let cpath = member(archive, d, &e.config, "Config")?;
            let cbytes = fs::read(&cpath).ctx("reading image config", &cpath)?;
            let config = self.put_blob_bytes(None, &cbytes, "image config")?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let lp = member(archive, d, l, "Layers")?;
                let (digest, size) = match imported.get(&lp) {
                    Some(v) => v.clone(),
                    None => {
                        let v = self.import_blob_file(&lp, None)?;
                        imported.insert(lp.clone(), v.clone());
                        v
                    }
                };
                let media_type = if is_gzip(&self.blob_path(&digest))? {
                    manifest::DOCKER_LAYER_GZIP
                } else {
                    "application/vnd.docker.image.rootfs.diff.tar"
                };
                layers.push(serde_json::json!({"mediaType": media_type, "size": size, "digest": digest.to_string()}));
            }
            let m = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": manifest::DOCKER_MANIFEST,
                "config": {"mediaType": manifest::DOCKER_CONFIG, "size": cbytes.len(), "digest": config.to_string()},
                "layers": layers,
            });
            let mbytes = serde_json::to_vec(&m).expect("json");
            let mdigest = self.put_blob_bytes(None, &mbytes, "manifest")?;
            let mut names = Vec::new();
            for t in e.repo_tags.unwrap_or_default() {
                names.push(Reference::parse(&t)?.tagged_name().unwrap_or(t));
            }
            images.push(self.commit_image(&mdigest, &names)?);
        }
        Ok(images)
    }

    fn load_oci(&self, archive: &Path, d: &Path) -> Result<Vec<Image>> {
        let ip = d.join("index.json");
        let bytes = fs::read(&ip).ctx("reading", &ip)?;
        let index = match manifest::parse(
            &bytes,
            None,
            &format!("index.json in {}", archive.display()),
        )? {
            Parsed::Index(i) => i,
            Parsed::Manifest(_) => {
                return Err(Error::json(
                    format!("index.json in {}", archive.display()),
                    "is not an index",
                ))
            }
        };
        if index.manifests.is_empty() {
            return Err(Error::BadArchive {
                path: archive.to_path_buf(),
                reason: "index.json lists no images".into(),
            });
        }
        let mut images = Vec::new();
        for desc in &index.manifests {
            let names = names_of(desc)?;
            let mdesc = self.oci_pick_manifest(archive, d, desc)?;
            let mbytes = self.oci_blob(d, &mdesc.digest)?;
            let m = match manifest::parse(
                &mbytes,
                Some(&mdesc.media_type),
                &format!("manifest {}", mdesc.digest),
            )? {
                Parsed::Manifest(m) => m,
                Parsed::Index(_) => {
                    return Err(Error::json(
                        format!("manifest {}", mdesc.digest),
                        "nested index too deep",
                    ))
                }
            };
            for blob in std::iter::once(&m.config).chain(m.layers.iter()) {
                if !self.has_blob(&blob.digest) {
                    let p = d.join("blobs/sha256").join(blob.digest.hex());
                    if !p.exists() {
                        return Err(Error::BadArchive {
                            path: archive.to_path_buf(),
                            reason: format!("blob {} is missing", blob.digest),
                        });
                    }
                    self.import_blob_file(&p, Some(&blob.digest))?;
                }
            }
            self.put_blob_bytes(Some(&mdesc.digest), &mbytes, "manifest")?;
            images.push(self.commit_image(&mdesc.digest, &names)?);
        }
        Ok(images)
    }

    /// Read and verify a blob of the unpacked layout.
    fn oci_blob(&self, d: &Path, digest: &Digest) -> Result<Vec<u8>> {
        let p = d.join("blobs/sha256").join(digest.hex());
        let b = fs::read(&p).ctx("reading blob", &p)?;
        digest.verify(&Digest::of_bytes(&b), format!("blob {}", p.display()))?;
        Ok(b)
    }

    /// Follow an index entry to an image manifest for this platform.
    fn oci_pick_manifest(&self, archive: &Path, d: &Path, desc: &Descriptor) -> Result<Descriptor> {
        if desc.media_type != manifest::OCI_INDEX && desc.media_type != manifest::DOCKER_LIST {
            return Ok(desc.clone());
        }
        let b = self.oci_blob(d, &desc.digest)?;
        let Parsed::Index(inner) = manifest::parse(&b, Some(&desc.media_type), "nested index")?
        else {
            return Err(Error::json("nested index", "is a manifest"));
        };
        let want = manifest::host_platform();
        manifest::select_platform(&inner, &want)
            .cloned()
            .ok_or_else(|| Error::NoPlatform {
                reference: archive.display().to_string(),
                wanted: format!("{}/{}", want.os, want.architecture),
                available: manifest::platforms_of(&inner),
            })
    }

    /// Move a file of the unpacked archive into the blob store, checking its digest.
    fn import_blob_file(&self, p: &Path, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let f = fs::File::open(p).ctx("reading", p)?;
        let (digest, size) = HashingReader::new(f).finish().ctx("reading", p)?;
        if let Some(e) = expected {
            e.verify(&digest, format!("blob {}", p.display()))?;
        }
        let dest = self.blob_path(&digest);
        if !dest.exists() {
            let regular = fs::symlink_metadata(p)
                .map(|m| m.is_file())
                .unwrap_or(false);
            if regular {
                fs::rename(p, &dest).ctx("publishing blob", &dest)?;
            } else {
                let f = fs::File::open(p).ctx("reading", p)?;
                self.put_blob_reader(Some(&digest), f, &p.display().to_string(), |_| {})?;
            }
        }
        Ok((digest, size))
    }
}

fn names_of(desc: &Descriptor) -> Result<Vec<String>> {
    let empty = BTreeMap::new();
    let ann = desc.annotations.as_ref().unwrap_or(&empty);
    let name = ann
        .get("io.containerd.image.name")
        .or_else(|| ann.get("org.opencontainers.image.ref.name"));
    match name {
        Some(n) => Ok(vec![Reference::parse(n)?
            .tagged_name()
            .unwrap_or_else(|| n.clone())]),
        None => Ok(vec![]),
    }
}

/// A file named by manifest.json, which must stay inside the archive.
fn member(archive: &Path, d: &Path, name: &str, field: &str) -> Result<PathBuf> {
    let rel = normalize_member(name.as_bytes()).map_err(|_| Error::BadArchive {
        path: archive.to_path_buf(),
        reason: format!("manifest.json {field} entry {name:?} points outside the archive"),
    })?;
    let p = d.join(rel);
    if !p.is_file() {
        return Err(Error::BadArchive {
            path: archive.to_path_buf(),
            reason: format!("manifest.json {field} entry {name:?} is not in the archive"),
        });
    }
    Ok(p)
}

fn is_gzip(p: &Path) -> Result<bool> {
    let mut f = fs::File::open(p).ctx("reading", p)?;
    let mut m = [0u8; 2];
    Ok(f.read_exact(&mut m).is_ok() && m == [0x1f, 0x8b])
}

/// Extract an archive's regular files, directories and in-archive symlinks into `dest`.
fn extract(path: &Path, dest: &Path) -> Result<()> {
    let f = fs::File::open(path).ctx("opening archive", path)?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let magic = r.fill_buf().ctx("reading archive", path)?;
    let src: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(r))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r).ctx("reading archive", path)?)
    } else {
        Box::new(r)
    };
    let bad = |e: io::Error| Error::BadArchive {
        path: path.to_path_buf(),
        reason: format!("not a valid (complete) tar archive: {e}"),
    };
    let mut a = tar::Archive::new(src);
    let mut count = 0;
    for entry in a.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes().into_owned();
        let rel = normalize_member(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let full = dest.join(&rel);
        // Parents are created by us as plain directories; symlinks are only ever leaves.
        if let Some(p) = full.parent() {
            let mut cur = dest.to_path_buf();
            for c in p.strip_prefix(dest).unwrap_or(Path::new("")).components() {
                cur.push(c);
                match fs::symlink_metadata(&cur) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::unsafe_entry(
                            String::from_utf8_lossy(&raw),
                            "path goes through a symlink or file",
                        ))
                    }
                    Err(_) => fs::create_dir(&cur).ctx("creating", &cur)?,
                }
            }
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory if !full.is_dir() => {
                fs::create_dir(&full).ctx("creating", &full)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let _ = fs::remove_file(&full);
                let mut out = fs::File::create(&full).ctx("extracting", &full)?;
                io::copy(&mut entry, &mut out).map_err(bad)?;
                count += 1;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                if target.first() == Some(&b'/') || symlink_escapes(&rel, &target) {
                    return Err(Error::unsafe_entry(
                        String::from_utf8_lossy(&raw),
                        "symlink points outside the archive",
                    ));
                }
                let _ = fs::remove_file(&full);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &full)
                    .ctx("extracting", &full)?;
            }
            _ => {}
        }
    }
    // Read to the end so a truncated compressed stream is noticed.
    let mut rest = a.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(bad)?;
    if count == 0 {
        return Err(Error::BadArchive {
            path: path.to_path_buf(),
            reason: "no files in archive".into(),
        });
    }
    Ok(())
}

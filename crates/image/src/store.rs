//! The store: content-addressed blobs, unpacked layers, the image index and container roots.
//!
//! ```text
//! <root>/blobs/sha256/<hex>   verified blobs (manifests, configs, compressed layers)
//! <root>/layers/<diffid-hex>/ one unpacked layer each (an overlay lower dir)
//! <root>/rootfs/<key>/        a container's upper, work and merged dirs
//! <root>/images.json          image index (see index.rs)
//! <root>/tmp/                 work in progress; published by rename
//! <root>/gc.lock              shared by every writer, exclusive for garbage collection
//! <root>/index.lock           exclusive while the index is rewritten
//! ```

use crate::config::{parse_config, ImageConfig};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::index::{ImageRecord, IndexFile, LayerRecord};
use crate::lock::FileLock;
use crate::manifest::{self, Manifest, Parsed};
use crate::reference::Reference;
use crate::tmp::{self, TempPath};
use crate::unpack::unpack_layer;
use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Default store root; override with `PODRUN_IMAGE_ROOT` or `--image-root`.
pub const DEFAULT_ROOT: &str = "/var/lib/podrun";

pub struct Store {
    pub(crate) root: PathBuf,
}

/// The store root to use when none is given: `$PODRUN_IMAGE_ROOT`, else `/var/lib/podrun`.
pub fn default_root() -> PathBuf {
    match std::env::var_os("PODRUN_IMAGE_ROOT") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// An image in the store, ready to become a root filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// The image ID: digest of its config blob.
    pub id: Digest,
    pub names: Vec<String>,
    pub manifest_digest: Digest,
    pub config: ImageConfig,
    /// Unpacked layer directories, bottom layer first.
    pub layers: Vec<PathBuf>,
    pub diff_ids: Vec<Digest>,
    /// Compressed size of the layers.
    pub size: u64,
    pub stored_at: u64,
}

/// What `prune` removed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PruneReport {
    pub images: Vec<Digest>,
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

impl Store {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        for d in ["blobs/sha256", "layers", "rootfs", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx("creating store directory", &p)?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    pub(crate) fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// Held (shared) by every operation that adds content, so GC never removes work in progress.
    pub(crate) fn gc_shared(&self) -> Result<FileLock> {
        FileLock::shared(&self.root.join("gc.lock"))
    }

    pub(crate) fn gc_exclusive(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.root.join("gc.lock"))
    }

    pub(crate) fn index_lock(&self) -> Result<FileLock> {
        FileLock::exclusive(&self.root.join("index.lock"))
    }

    pub(crate) fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Store bytes as a blob, verifying them against `expected` when given.
    pub(crate) fn put_blob_bytes(
        &self,
        expected: Option<&Digest>,
        data: &[u8],
        what: &str,
    ) -> Result<Digest> {
        let actual = Digest::of_bytes(data);
        if let Some(e) = expected {
            e.verify(&actual, what)?;
        }
        let dest = self.blob_path(&actual);
        if dest.is_file() {
            return Ok(actual);
        }
        let t = TempPath::new(&self.tmp_dir(), "blob");
        let mut f = fs::File::create(t.path()).ctx("writing blob", t.path())?;
        f.write_all(data).ctx("writing blob", t.path())?;
        drop(f);
        fs::rename(t.path(), &dest).ctx("publishing blob", &dest)?;
        t.keep();
        Ok(actual)
    }

    /// Stream a blob into the store, hashing as it goes; it is published only if its digest
    /// is `expected` (when given). Returns the digest and size.
    pub(crate) fn put_blob_reader<R: Read>(
        &self,
        expected: Option<&Digest>,
        src: R,
        what: &str,
        mut progress: impl FnMut(u64),
    ) -> Result<(Digest, u64)> {
        let t = TempPath::new(&self.tmp_dir(), "blob");
        let mut f = fs::File::create(t.path()).ctx("writing blob", t.path())?;
        let mut r = HashingReader::new(src);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading", PathBuf::from(what), e)),
            };
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n]).ctx("writing blob", t.path())?;
            progress(n as u64);
        }
        drop(f);
        let (actual, size) = r
            .finish()
            .map_err(|e| Error::io("reading", PathBuf::from(what), e))?;
        if let Some(e) = expected {
            e.verify(&actual, what)?;
        }
        let dest = self.blob_path(&actual);
        fs::rename(t.path(), &dest).ctx("publishing blob", &dest)?;
        t.keep();
        Ok((actual, size))
    }

    /// Read a (small) blob and check it against its digest before use.
    pub(crate) fn read_blob_verified(&self, d: &Digest, what: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let data = fs::read(&p).ctx("reading blob", &p)?;
        d.verify(&Digest::of_bytes(&data), what)?;
        Ok(data)
    }

    /// Make sure the layer in blob `blob` is unpacked; returns its diff ID. When the diff ID
    /// is known and already unpacked, nothing is read. The unpacked tar is checked against
    /// `expected_diff_id`.
    pub(crate) fn ensure_layer(
        &self,
        blob: &Digest,
        expected_diff_id: Option<&Digest>,
    ) -> Result<Digest> {
        if let Some(d) = expected_diff_id {
            if self.layer_path(d).is_dir() {
                return Ok(d.clone());
            }
        }
        let bp = self.blob_path(blob);
        let f = fs::File::open(&bp).ctx("opening layer blob", &bp)?;
        let mut hashing = HashingReader::new(f);
        let t = TempPath::new_dir(&self.tmp_dir(), "layer")?;
        let stats = unpack_layer(&mut hashing, t.path()).map_err(|e| match e {
            Error::BadArchive { reason, .. } => Error::BadArchive {
                path: bp.clone(),
                reason,
            },
            other => other,
        })?;
        let (compressed, _) = hashing.finish().ctx("reading layer blob", &bp)?;
        blob.verify(&compressed, format!("layer blob {}", bp.display()))?;
        if let Some(d) = expected_diff_id {
            d.verify(
                &stats.diff_id,
                format!("uncompressed content (diff ID) of layer {blob}"),
            )?;
        }
        let dest = self.layer_path(&stats.diff_id);
        match fs::rename(t.path(), &dest) {
            Ok(()) => t.keep(),
            // Someone else unpacked the same layer first: theirs is as good as ours.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {}
            Err(e) => return Err(Error::io("publishing layer", &dest, e)),
        }
        tracing::debug!(layer = %stats.diff_id, entries = stats.entries, bytes = stats.size, "layer unpacked");
        Ok(stats.diff_id)
    }

    /// Record an image whose manifest, config and layer blobs are all in the store: unpack
    /// the missing layers (in parallel), then add it to the index under `names`.
    pub(crate) fn commit_image(&self, manifest_digest: &Digest, names: &[String]) -> Result<Image> {
        let mbytes = self.read_blob_verified(manifest_digest, "manifest")?;
        let m = match manifest::parse(&mbytes, None, &format!("manifest {manifest_digest}"))? {
            Parsed::Manifest(m) => m,
            Parsed::Index(_) => {
                return Err(Error::json(
                    format!("manifest {manifest_digest}"),
                    "is an index, not an image manifest",
                ))
            }
        };
        let cbytes = self.read_blob_verified(&m.config.digest, "image config")?;
        let (_, diff_ids) = parse_config(&cbytes, &format!("image config {}", m.config.digest))?;
        if diff_ids.len() != m.layers.len() {
            return Err(Error::json(
                format!("image config {}", m.config.digest),
                format!(
                    "{} diff_ids for {} layers in the manifest",
                    diff_ids.len(),
                    m.layers.len()
                ),
            ));
        }
        let jobs: Vec<(Digest, Digest)> = m
            .layers
            .iter()
            .map(|l| l.digest.clone())
            .zip(diff_ids.iter().cloned())
            .collect();
        crate::parallel::run(jobs, |(blob, diff)| {
            self.ensure_layer(&blob, Some(&diff)).map(|_| ())
        })?;
        self.record(manifest_digest, &m, &diff_ids, names)
    }

    fn record(
        &self,
        manifest_digest: &Digest,
        m: &Manifest,
        diff_ids: &[Digest],
        names: &[String],
    ) -> Result<Image> {
        let rec = ImageRecord {
            manifest: manifest_digest.clone(),
            config: m.config.digest.clone(),
            names: names.to_vec(),
            layers: m
                .layers
                .iter()
                .zip(diff_ids)
                .map(|(l, d)| LayerRecord {
                    blob: l.digest.clone(),
                    diff_id: d.clone(),
                    media_type: l.media_type.clone(),
                    size: l.size,
                })
                .collect(),
            size: m.layers.iter().map(|l| l.size).sum(),
            stored_at: now(),
        };
        let id = m.config.digest.clone();
        {
            let _l = self.index_lock()?;
            let mut idx = IndexFile::load(&self.index_path())?;
            idx.insert(id.clone(), rec);
            idx.save(&self.index_path())?;
        }
        self.image_by_id(&id)
    }

    /// `check_layers`: fail if a layer dir is missing (needed to mount; `list` shows anyway).
    fn image_from_record(
        &self,
        id: &Digest,
        rec: &ImageRecord,
        check_layers: bool,
    ) -> Result<Image> {
        let cbytes = self.read_blob_verified(&rec.config, "image config")?;
        let (config, _) = parse_config(&cbytes, &format!("image config {}", rec.config))?;
        let mut layers = Vec::with_capacity(rec.layers.len());
        for l in &rec.layers {
            let p = self.layer_path(&l.diff_id);
            if check_layers && !p.is_dir() {
                return Err(Error::io(
                    "layer of image missing (re-pull or load the image)",
                    &p,
                    io::Error::from_raw_os_error(libc::ENOENT),
                ));
            }
            layers.push(p);
        }
        Ok(Image {
            id: id.clone(),
            names: rec.names.clone(),
            manifest_digest: rec.manifest.clone(),
            config,
            layers,
            diff_ids: rec.layers.iter().map(|l| l.diff_id.clone()).collect(),
            size: rec.size,
            stored_at: rec.stored_at,
        })
    }

    fn image_by_id(&self, id: &Digest) -> Result<Image> {
        let idx = IndexFile::load(&self.index_path())?;
        let rec = idx
            .images
            .get(id)
            .ok_or_else(|| Error::ImageNotKnown(id.to_string()))?;
        self.image_from_record(id, rec, true)
    }

    /// Look an image up by name (normalised like Docker), ID, ID prefix or manifest digest.
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        let idx = IndexFile::load(&self.index_path())?;
        let id =
            find_in(&idx, reference)?.ok_or_else(|| Error::ImageNotKnown(reference.to_string()))?;
        self.image_from_record(&id, &idx.images[&id], true)
    }

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<Image>> {
        let idx = IndexFile::load(&self.index_path())?;
        let mut v = Vec::new();
        for (id, rec) in &idx.images {
            match self.image_from_record(id, rec, false) {
                Ok(i) => v.push(i),
                // A damaged image must not hide the others; `rm` still finds it by name or ID.
                Err(e) => tracing::warn!(image = %id, error = %e, "image not listed"),
            }
        }
        v.sort_by(|a, b| b.stored_at.cmp(&a.stored_at).then(a.names.cmp(&b.names)));
        Ok(v)
    }

    /// Remove a name (or, given an ID, the image with all its names) and collect the content
    /// nothing uses any more. Returns the IDs of images that left the store.
    pub fn remove(&self, reference: &str) -> Result<Vec<Digest>> {
        let removed = {
            let _l = self.index_lock()?;
            let mut idx = IndexFile::load(&self.index_path())?;
            let id = find_in(&idx, reference)?
                .ok_or_else(|| Error::ImageNotKnown(reference.to_string()))?;
            let by_name = Reference::parse(reference).ok().and_then(|r| {
                let n = r.tagged_name().unwrap_or_else(|| r.to_string());
                idx.images[&id].names.contains(&n).then_some(n)
            });
            let rec = idx.images.get_mut(&id).expect("found above");
            if let Some(n) = by_name {
                rec.names.retain(|x| *x != n);
            } else {
                rec.names.clear();
            }
            let mut removed = Vec::new();
            if rec.names.is_empty() {
                let users = self.containers_using(&id);
                if !users.is_empty() {
                    return Err(Error::InUse {
                        image: reference.to_string(),
                        containers: users.join(", "),
                    });
                }
                idx.images.remove(&id);
                removed.push(id);
            }
            idx.save(&self.index_path())?;
            removed
        };
        if !removed.is_empty() {
            self.gc(false)?;
        }
        Ok(removed)
    }

    /// Remove images without a name that no container uses, then every blob and layer that no
    /// image and no container uses, and leftovers of interrupted operations.
    pub fn prune(&self) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        {
            let _l = self.index_lock()?;
            let mut idx = IndexFile::load(&self.index_path())?;
            let dangling: Vec<Digest> = idx
                .images
                .iter()
                .filter(|(id, r)| r.names.is_empty() && self.containers_using(id).is_empty())
                .map(|(id, _)| id.clone())
                .collect();
            for id in &dangling {
                idx.images.remove(id);
            }
            if !dangling.is_empty() {
                idx.save(&self.index_path())?;
            }
            report.images = dangling;
        }
        let g = self.gc(true)?;
        report.blobs = g.blobs;
        report.layers = g.layers;
        report.bytes = g.bytes;
        Ok(report)
    }

    /// Delete blobs and layers that no image and no container references.
    pub(crate) fn gc(&self, clean_tmp: bool) -> Result<PruneReport> {
        self.gc_filtered(clean_tmp, None)
    }

    /// Names of the blobs and layers present now, to undo a failed operation with `rollback`.
    pub(crate) fn snapshot(&self) -> Result<Snapshot> {
        let list = |d: PathBuf| -> Result<HashSet<String>> {
            Ok(fs::read_dir(&d)
                .ctx("listing", &d)?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect())
        };
        Ok(Snapshot {
            blobs: list(self.root.join("blobs/sha256"))?,
            layers: list(self.root.join("layers"))?,
        })
    }

    /// After a failed operation: remove the blobs and layers that appeared since `snap` and
    /// that nothing references. Runs under the exclusive GC lock, so no other operation is
    /// half-way and about to reference them.
    pub(crate) fn rollback(&self, snap: &Snapshot) {
        if let Err(e) = self.gc_filtered(false, Some(snap)) {
            tracing::warn!(error = %e, "cleaning up after a failed operation");
        }
    }

    fn gc_filtered(
        &self,
        clean_tmp: bool,
        only_new_since: Option<&Snapshot>,
    ) -> Result<PruneReport> {
        let _g = self.gc_exclusive()?;
        let idx = IndexFile::load(&self.index_path())?;
        let mut keep_blobs: HashSet<String> = HashSet::new();
        let mut keep_layers: HashSet<String> = HashSet::new();
        for rec in idx.images.values() {
            keep_blobs.insert(rec.manifest.hex().to_string());
            keep_blobs.insert(rec.config.hex().to_string());
            for l in &rec.layers {
                keep_blobs.insert(l.blob.hex().to_string());
                keep_layers.insert(l.diff_id.hex().to_string());
            }
        }
        for (_, layers) in self.container_records() {
            keep_layers.extend(layers.iter().map(|d| d.hex().to_string()));
        }
        let mut rep = PruneReport::default();
        let bdir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&bdir).ctx("listing blobs", &bdir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if only_new_since.is_some_and(|s| s.blobs.contains(&name)) {
                continue;
            }
            if !keep_blobs.contains(&name) {
                rep.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(e.path()).ctx("removing blob", e.path())?;
                rep.blobs += 1;
            }
        }
        let ldir = self.root.join("layers");
        for e in fs::read_dir(&ldir).ctx("listing layers", &ldir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if only_new_since.is_some_and(|s| s.layers.contains(&name)) {
                continue;
            }
            if !keep_layers.contains(&name) {
                fs::remove_dir_all(e.path()).ctx("removing layer", e.path())?;
                rep.layers += 1;
            }
        }
        if clean_tmp {
            tmp::clean_all(&self.tmp_dir());
            self.clean_stale_tmp();
        }
        Ok(rep)
    }

    /// Remove temp items of dead processes (called before work that adds content).
    pub(crate) fn clean_stale_tmp(&self) {
        tmp::clean_stale(&self.tmp_dir());
        // `images.tmp<pid>` of an index write that was killed half-way.
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name
                    .strip_prefix("images.tmp")
                    .and_then(|p| p.parse::<u32>().ok())
                {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
    }
}

pub(crate) struct Snapshot {
    blobs: HashSet<String>,
    layers: HashSet<String>,
}

/// Reference -> image ID: by normalised name first, then by ID/digest.
fn find_in(idx: &IndexFile, reference: &str) -> Result<Option<Digest>> {
    let parsed = Reference::parse(reference);
    if let Ok(r) = &parsed {
        if let Some(d) = &r.digest {
            if let Some((id, _)) = idx
                .images
                .iter()
                .find(|(_, rec)| rec.manifest == *d || rec.config == *d)
            {
                return Ok(Some(id.clone()));
            }
        }
    }
    // A digest-only reference was recorded under its full `name@sha256:...` form.
    let name = parsed
        .as_ref()
        .ok()
        .map(|r| r.tagged_name().unwrap_or_else(|| r.to_string()));
    let found = idx.find(name.as_deref(), reference);
    if found.is_none() {
        if let Err(e) = parsed {
            let hexish = reference
                .trim_start_matches("sha256:")
                .chars()
                .all(|c| c.is_ascii_hexdigit());
            if !hexish {
                return Err(e);
            }
        }
    }
    Ok(found)
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

//! The image index (`images.json`): image ID (config digest) -> manifest, layers and names.
//! Replaced atomically (write + rename) under the index lock; readers need no lock.

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    #[serde(default)]
    pub images: BTreeMap<Digest, ImageRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub manifest: Digest,
    pub config: Digest,
    /// Normalised names, e.g. `docker.io/library/busybox:latest`.
    pub names: Vec<String>,
    pub layers: Vec<LayerRecord>,
    /// Sum of the (compressed) layer blob sizes.
    pub size: u64,
    /// Unix time the image entered the store.
    pub stored_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    pub blob: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub size: u64,
}

impl IndexFile {
    pub fn load(path: &Path) -> Result<IndexFile> {
        match fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::json(format!("image index {}", path.display()), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(e) => Err(Error::io("reading image index", path, e)),
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let data = serde_json::to_vec_pretty(self).expect("index serialises");
        let mut f = fs::File::create(&tmp).ctx("writing image index", &tmp)?;
        f.write_all(&data).ctx("writing image index", &tmp)?;
        f.sync_all().ctx("syncing image index", &tmp)?;
        fs::rename(&tmp, path).ctx("replacing image index", path)
    }

    /// Record an image under `id`, moving `names` to it from any other image.
    pub fn insert(&mut self, id: Digest, mut rec: ImageRecord) {
        for other in self.images.values_mut() {
            other.names.retain(|n| !rec.names.contains(n));
        }
        if let Some(old) = self.images.get(&id) {
            for n in &old.names {
                if !rec.names.contains(n) {
                    rec.names.push(n.clone());
                }
            }
            rec.stored_at = old.stored_at;
        }
        rec.names.sort();
        self.images.insert(id, rec);
    }

    /// Find an image by normalised name, by ID (full, `sha256:`-prefixed or a unique hex prefix
    /// of at least 4 digits) or by manifest digest.
    pub fn find(&self, name: Option<&str>, raw: &str) -> Option<Digest> {
        if let Some(n) = name {
            if let Some((id, _)) = self
                .images
                .iter()
                .find(|(_, r)| r.names.iter().any(|x| x == n))
            {
                return Some(id.clone());
            }
        }
        let hex = raw.strip_prefix("sha256:").unwrap_or(raw);
        if hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let m: Vec<&Digest> = self
                .images
                .iter()
                .filter(|(id, r)| id.hex().starts_with(&hex) || r.manifest.hex() == hex)
                .map(|(id, _)| id)
                .collect();
            if m.len() == 1 {
                return Some(m[0].clone());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(names: &[&str], m: u8) -> ImageRecord {
        ImageRecord {
            manifest: Digest::of_bytes(&[m]),
            config: Digest::of_bytes(&[m, 1]),
            names: names.iter().map(|s| s.to_string()).collect(),
            layers: vec![],
            size: 0,
            stored_at: 1,
        }
    }

    #[test]
    fn names_move_between_images() {
        let mut idx = IndexFile::default();
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        idx.insert(a.clone(), rec(&["x:1", "x:latest"], 1));
        idx.insert(b.clone(), rec(&["x:latest"], 2));
        assert_eq!(idx.images[&a].names, vec!["x:1"]);
        assert_eq!(idx.find(Some("x:latest"), "x"), Some(b.clone()));
        assert_eq!(idx.find(None, &a.hex()[..8]), Some(a.clone()));
        assert_eq!(idx.find(None, &a.to_string()), Some(a.clone()));
        assert_eq!(idx.find(None, "zzzz"), None);
        // re-inserting keeps old names
        idx.insert(a.clone(), rec(&["y:2"], 1));
        assert_eq!(idx.images[&a].names, vec!["x:1", "y:2"]);
    }

    #[test]
    fn save_load_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("images.json");
        assert!(IndexFile::load(&p).unwrap().images.is_empty());
        let mut idx = IndexFile::default();
        idx.insert(Digest::of_bytes(b"a"), rec(&["n:1"], 1));
        idx.save(&p).unwrap();
        let back = IndexFile::load(&p).unwrap();
        assert_eq!(back.images.len(), 1);
        fs::write(&p, b"{broken").unwrap();
        assert!(IndexFile::load(&p).is_err());
    }
}

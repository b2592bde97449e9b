//! `podrun image import ROOTFS.tar NAME`: a root filesystem tarball becomes a one-layer image.

use crate::config::config_for_import;
use crate::error::{IoContext, Result};
use crate::manifest;
use crate::reference::Reference;
use crate::store::{now, Image, Store};
use std::fs;
use std::io::Read;
use std::path::Path;

impl Store {
    pub fn import_rootfs(&self, tarball: &Path, name: &str) -> Result<Image> {
        let reference = Reference::parse(name)?;
        let tagged = reference
            .tagged_name()
            .unwrap_or_else(|| reference.to_string());
        self.clean_stale_tmp();
        let snapshot = self.snapshot()?;
        let result = {
            let _g = self.gc_shared()?;
            self.import_locked(tarball, tagged)
        };
        if result.is_err() {
            self.rollback(&snapshot);
        }
        result
    }

    fn import_locked(&self, tarball: &Path, tagged: String) -> Result<Image> {
        let f = fs::File::open(tarball).ctx("opening rootfs tarball", tarball)?;
        let (blob, size) = self.put_blob_reader(None, f, &tarball.display().to_string(), |_| {})?;
        let diff_id = self.ensure_layer(&blob, None)?;
        let cbytes = config_for_import(&diff_id, &rfc3339(now()));
        let config = self.put_blob_bytes(None, &cbytes, "image config")?;
        let mut magic = [0u8; 4];
        let bp = self.blob_path(&blob);
        let n = fs::File::open(&bp)
            .and_then(|mut f| f.read(&mut magic))
            .ctx("reading", &bp)?;
        let media = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            manifest::OCI_LAYER_GZIP
        } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            manifest::OCI_LAYER_ZSTD
        } else {
            manifest::OCI_LAYER_TAR
        };
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": manifest::OCI_CONFIG, "size": cbytes.len(), "digest": config.to_string()},
            "layers": [{"mediaType": media, "size": size, "digest": blob.to_string()}],
        });
        let mdigest =
            self.put_blob_bytes(None, &serde_json::to_vec(&m).expect("json"), "manifest")?;
        self.commit_image(&mdigest, &[tagged])
    }
}

/// Unix seconds -> `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1795435200 + 3661), "2026-11-23T13:01:01Z");
    }
}

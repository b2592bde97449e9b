//! `podrun image pull`: resolve a reference at a registry, fetch manifest, config and layers
//! (layers in parallel, each unpacked while it downloads), verify everything, record the image.

use crate::config::parse_config;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Descriptor, Parsed, Platform};
use crate::reference::Reference;
use crate::registry::auth::{self, Creds};
use crate::registry::Client;
use crate::store::{Image, Store};
use crate::tmp::TempPath;
use crate::unpack::unpack_layer;
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Progress of a pull, for a terminal display.
#[derive(Debug, Clone)]
pub enum Progress {
    Resolved {
        reference: String,
        manifest: Digest,
        layers: usize,
        bytes: u64,
    },
    /// Already in the store: nothing to fetch.
    LayerCached {
        digest: Digest,
        size: u64,
    },
    LayerBytes {
        digest: Digest,
        n: u64,
    },
    LayerDone {
        digest: Digest,
    },
}

#[derive(Clone, Default)]
pub struct PullOptions {
    /// `USER:PASSWORD`; otherwise credentials come from the auth files.
    pub creds: Option<String>,
    /// Talk plain HTTP to the registry named in the reference.
    pub insecure: bool,
    /// Credential files to search instead of the defaults (see `registry::auth::auth_files`).
    pub auth_files: Option<Vec<PathBuf>>,
    /// Platform to resolve indexes to (default: linux and this machine's architecture).
    pub platform: Option<Platform>,
    pub progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("creds", &self.creds.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .field("platform", &self.platform)
            .finish()
    }
}

impl PullOptions {
    fn report(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(p)
        }
    }
}

impl Store {
    /// The image if the store has it, else pull it (Kubernetes' `IfNotPresent`).
    pub fn resolve_or_pull(&self, reference: &str, opts: &PullOptions) -> Result<Image> {
        match self.resolve(reference) {
            Err(Error::ImageNotKnown(_)) => self.pull(reference, opts),
            other => other,
        }
    }

    /// Pull `reference` from its registry into the store.
    pub fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let creds = match &opts.creds {
            Some(c) => Some(Creds::parse(c)?),
            None => auth::lookup(
                &opts.auth_files.clone().unwrap_or_else(auth::auth_files),
                &r.domain,
            )?,
        };
        self.clean_stale_tmp();
        let snapshot = self.snapshot()?;
        let result = {
            let _g = self.gc_shared()?;
            self.pull_locked(&r, creds, opts)
        };
        if result.is_err() {
            self.rollback(&snapshot);
        }
        result
    }

    fn pull_locked(
        &self,
        r: &Reference,
        creds: Option<Creds>,
        opts: &PullOptions,
    ) -> Result<Image> {
        let client = Client::new(r, creds, opts.insecure);
        let (mut body, mut media) = client.manifest(&r.manifest_ref())?;
        let want = opts
            .platform
            .clone()
            .unwrap_or_else(manifest::host_platform);
        let m = loop {
            match manifest::parse(&body, Some(&media), &format!("manifest of {r}"))? {
                Parsed::Manifest(m) => break m,
                Parsed::Index(idx) => {
                    let d = manifest::select_platform(&idx, &want).ok_or_else(|| {
                        Error::NoPlatform {
                            reference: r.to_string(),
                            wanted: format!("{}/{}", want.os, want.architecture),
                            available: manifest::platforms_of(&idx),
                        }
                    })?;
                    let (b, mt) = client.manifest(&d.digest.to_string())?;
                    body = b;
                    media = if mt.is_empty() {
                        d.media_type.clone()
                    } else {
                        mt
                    };
                    if matches!(
                        manifest::parse(&body, Some(&media), "manifest")?,
                        Parsed::Index(_)
                    ) {
                        return Err(Error::json(
                            format!("manifest {}", d.digest),
                            "an index inside an index",
                        ));
                    }
                }
            }
        };
        let mdigest = Digest::of_bytes(&body);
        if let Some(d) = &r.digest {
            // Asked by digest: the digest may name the index or the manifest (checked by the client).
            tracing::debug!(asked = %d, manifest = %mdigest, "resolved by digest");
        }
        opts.report(Progress::Resolved {
            reference: r.to_string(),
            manifest: mdigest.clone(),
            layers: m.layers.len(),
            bytes: m.layers.iter().map(|l| l.size).sum(),
        });
        if !self.has_blob(&m.config.digest) {
            let rd = client.blob(&m.config.digest)?;
            self.put_blob_reader(
                Some(&m.config.digest),
                rd.take(m.config.size.max(1) * 2 + 4096),
                "image config",
                |_| {},
            )?;
        }
        let cbytes = self.read_blob_verified(&m.config.digest, "image config")?;
        let (cfg, diff_ids) = parse_config(&cbytes, &format!("image config {}", m.config.digest))?;
        if !cfg.os.is_empty()
            && !cfg.architecture.is_empty()
            && (cfg.os != want.os || cfg.architecture != want.architecture)
        {
            return Err(Error::NoPlatform {
                reference: r.to_string(),
                wanted: format!("{}/{}", want.os, want.architecture),
                available: format!("{}/{}", cfg.os, cfg.architecture),
            });
        }
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
        let jobs: Vec<(Descriptor, Digest)> = m.layers.iter().cloned().zip(diff_ids).collect();
        let threads = crate::parallel::workers().max(4).min(jobs.len().max(1));
        crate::parallel::run_with(jobs, threads, |(desc, diff)| {
            self.fetch_layer(&client, &desc, &diff, opts)
        })?;
        self.put_blob_bytes(Some(&mdigest), &body, "manifest")?;
        let names = vec![r.tagged_name().unwrap_or_else(|| r.to_string())];
        self.commit_image(&mdigest, &names)
    }

    /// Download a layer into the blob store and unpack it in the same pass; both are
    /// published only once the blob digest and the diff ID have been checked.
    fn fetch_layer(
        &self,
        client: &Client,
        desc: &Descriptor,
        diff: &Digest,
        opts: &PullOptions,
    ) -> Result<()> {
        if self.layer_path(diff).is_dir() && self.has_blob(&desc.digest) {
            opts.report(Progress::LayerCached {
                digest: desc.digest.clone(),
                size: desc.size,
            });
            return Ok(());
        }
        if self.has_blob(&desc.digest) {
            self.ensure_layer(&desc.digest, Some(diff))?;
            opts.report(Progress::LayerDone {
                digest: desc.digest.clone(),
            });
            return Ok(());
        }
        let body = client.blob(&desc.digest)?;
        let blob_tmp = TempPath::new(&self.tmp_dir(), "blob");
        let file = fs::File::create(blob_tmp.path()).ctx("writing blob", blob_tmp.path())?;
        let layer_tmp = TempPath::new_dir(&self.tmp_dir(), "layer")?;
        let digest = desc.digest.clone();
        let mut tee = Tee {
            inner: HashingReader::new(body.take(desc.size + 1)),
            out: io::BufWriter::with_capacity(1 << 20, file),
            progress: |n| {
                opts.report(Progress::LayerBytes {
                    digest: digest.clone(),
                    n,
                })
            },
        };
        let what = format!("layer {}", desc.digest);
        let stats = unpack_layer(&mut tee, layer_tmp.path()).map_err(|e| match e {
            Error::BadArchive { reason, .. } => Error::BadArchive {
                path: PathBuf::from(&what),
                reason,
            },
            other => other,
        })?;
        // Whatever the tar reader left unread (padding) still belongs to the blob.
        io::copy(&mut tee, &mut io::sink())
            .map_err(|e| Error::io("downloading", PathBuf::from(&what), e))?;
        tee.out.flush().ctx("writing blob", blob_tmp.path())?;
        let (actual, size) = tee
            .inner
            .finish()
            .map_err(|e| Error::io("downloading", PathBuf::from(&what), e))?;
        desc.digest
            .verify(&actual, format!("{what} (downloaded {size} bytes)"))?;
        diff.verify(
            &stats.diff_id,
            format!("uncompressed content (diff ID) of {what}"),
        )?;
        let bdest = self.blob_path(&desc.digest);
        fs::rename(blob_tmp.path(), &bdest).ctx("publishing blob", &bdest)?;
        blob_tmp.keep();
        let ldest = self.layer_path(diff);
        match fs::rename(layer_tmp.path(), &ldest) {
            Ok(()) => layer_tmp.keep(),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {}
            Err(e) => return Err(Error::io("publishing layer", &ldest, e)),
        }
        opts.report(Progress::LayerDone {
            digest: desc.digest.clone(),
        });
        Ok(())
    }
}

/// Copies everything read through it to `out`.
struct Tee<R, W, F> {
    inner: HashingReader<R>,
    out: W,
    progress: F,
}

impl<R: Read, W: Write, F: FnMut(u64)> Read for Tee<R, W, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        if n > 0 {
            (self.progress)(n as u64);
        }
        Ok(n)
    }
}

//! `podrun image ...`: the image store's commands (the work is in crates/image).

use crate::GlobalOpts;
use anyhow::Context;
use podrun_image::{Image, Progress, PullOptions, Store};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(clap::Args, Debug, Clone)]
pub struct StoreOpts {
    /// Image store root
    #[arg(long = "image-root", env = "PODRUN_IMAGE_ROOT", default_value = podrun_image::DEFAULT_ROOT)]
    pub image_root: PathBuf,
}

#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry
    Pull {
        /// Image reference, e.g. busybox:1.36 or localhost:5000/app:v1
        reference: String,
        /// Registry credentials USER:PASSWORD (default: ~/.docker/config.json or $REGISTRY_AUTH_FILE)
        #[arg(long)]
        creds: Option<String>,
        /// Use plain HTTP for the registry named in REFERENCE
        #[arg(long)]
        insecure: bool,
        /// Platform OS/ARCH to pick from a multi-platform image (default: this machine's)
        #[arg(long)]
        platform: Option<String>,
        /// No progress output
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Load images from a docker-archive or oci-archive file
    Load {
        /// Archive file (from docker save, podman save, skopeo copy docker-archive:/oci-archive:)
        #[arg(short = 'i', long = "input")]
        input: PathBuf,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Create an image from a root filesystem tarball
    Import {
        /// Root filesystem tar (plain, gzip or zstd)
        tarball: PathBuf,
        /// Name for the image, e.g. localhost/myroot:1
        name: String,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// List images
    #[command(alias = "list")]
    Ls {
        /// Only print image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Output format: table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Show an image's details as JSON
    Inspect {
        reference: String,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Remove image names (an ID removes the image with all its names)
    #[command(alias = "rmi")]
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Remove unnamed images and content no image or container uses
    Prune {
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Mount an image's overlay root filesystem for KEY and print its path
    Mount {
        reference: String,
        key: String,
        #[arg(long)]
        read_only: bool,
        #[command(flatten)]
        store: StoreOpts,
    },
    /// Unmount the root filesystem of KEY and remove its upper dir
    #[command(alias = "unmount")]
    Umount {
        key: String,
        #[command(flatten)]
        store: StoreOpts,
    },
}

fn open(s: &StoreOpts) -> anyhow::Result<Store> {
    Ok(Store::open(&s.image_root)?)
}

pub fn run(_g: &GlobalOpts, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Pull {
            reference,
            creds,
            insecure,
            platform,
            quiet,
            store,
        } => {
            let st = open(&store)?;
            let mut opts = PullOptions {
                creds,
                insecure,
                ..Default::default()
            };
            if let Some(p) = platform {
                let mut parts = p.split('/');
                let (Some(os), Some(arch)) = (parts.next(), parts.next()) else {
                    anyhow::bail!("--platform {p:?}: expected OS/ARCH[/VARIANT]");
                };
                opts.platform = Some(podrun_image::manifest::Platform {
                    os: os.into(),
                    architecture: arch.into(),
                    variant: parts.next().map(str::to_string),
                });
            }
            let display = (!quiet && std::io::stderr().is_terminal())
                .then(|| Arc::new(Mutex::new(ProgressView::default())));
            if let Some(d) = &display {
                let d = d.clone();
                opts.progress = Some(Arc::new(move |p| d.lock().unwrap().update(p)));
            }
            let image = st.pull(&reference, &opts);
            if let Some(d) = &display {
                d.lock().unwrap().finish();
            }
            let image = image?;
            println!("{}", image.id);
            Ok(0)
        }
        ImageCommand::Load { input, store } => {
            let st = open(&store)?;
            let images = st.load_archive(&input)?;
            for i in images {
                if i.names.is_empty() {
                    println!("Loaded image: {}", i.id);
                }
                for n in &i.names {
                    println!("Loaded image: {n}");
                }
            }
            Ok(0)
        }
        ImageCommand::Import {
            tarball,
            name,
            store,
        } => {
            let st = open(&store)?;
            let i = st.import_rootfs(&tarball, &name)?;
            println!("{}", i.id);
            Ok(0)
        }
        ImageCommand::Ls {
            quiet,
            format,
            store,
        } => {
            let st = open(&store)?;
            let images = st.list()?;
            if quiet {
                for i in &images {
                    println!("{}", i.id.short());
                }
            } else if format == "json" {
                let v: Vec<serde_json::Value> = images.iter().map(image_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_table(&images);
            }
            Ok(0)
        }
        ImageCommand::Inspect { reference, store } => {
            let st = open(&store)?;
            let i = st.resolve(&reference)?;
            println!("{}", serde_json::to_string_pretty(&i)?);
            Ok(0)
        }
        ImageCommand::Rm { references, store } => {
            let st = open(&store)?;
            let mut failed = false;
            for r in references {
                match st.remove(&r) {
                    Ok(ids) => {
                        println!("Untagged: {r}");
                        for id in ids {
                            println!("Deleted: {id}");
                        }
                    }
                    Err(e) => {
                        eprintln!("podrun: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        ImageCommand::Prune { store } => {
            let st = open(&store)?;
            let r = st.prune()?;
            for id in &r.images {
                println!("Deleted: {id}");
            }
            println!(
                "Removed {} image(s), {} blob(s), {} layer(s); reclaimed {}",
                r.images.len(),
                r.blobs,
                r.layers,
                human(r.bytes)
            );
            Ok(0)
        }
        ImageCommand::Mount {
            reference,
            key,
            read_only,
            store,
        } => {
            let st = open(&store)?;
            let i = st.resolve(&reference)?;
            let p = st
                .mount_rootfs(&i, &key, read_only)
                .with_context(|| format!("mounting {reference} for {key}"))?;
            println!("{}", p.display());
            Ok(0)
        }
        ImageCommand::Umount { key, store } => {
            open(&store)?.unmount_rootfs(&key)?;
            Ok(0)
        }
    }
}

fn image_json(i: &Image) -> serde_json::Value {
    serde_json::json!({
        "id": i.id.to_string(),
        "names": i.names,
        "manifest": i.manifest_digest.to_string(),
        "size": i.size,
        "layers": i.diff_ids.len(),
        "stored_at": i.stored_at,
        "architecture": i.config.architecture,
        "os": i.config.os,
    })
}

fn split_name(n: &str) -> (&str, &str) {
    if let Some((name, _digest)) = n.split_once('@') {
        return (name, "<none>");
    }
    let slash = n.rfind('/').map(|i| i + 1).unwrap_or(0);
    match n[slash..].rfind(':') {
        Some(i) => (&n[..slash + i], &n[slash + i + 1..]),
        None => (n, "<none>"),
    }
}

fn print_table(images: &[Image]) {
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ]];
    for i in images {
        if i.names.is_empty() {
            rows.push([
                "<none>".into(),
                "<none>".into(),
                i.id.short().into(),
                human(i.size),
            ]);
        }
        for n in &i.names {
            let (repo, tag) = split_name(n);
            rows.push([repo.into(), tag.into(), i.id.short().into(), human(i.size)]);
        }
    }
    let w: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        println!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
    }
}

fn human(b: u64) -> String {
    let f = b as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{b} B")
    }
}

/// One status line on stderr, rewritten in place.
#[derive(Default)]
struct ProgressView {
    reference: String,
    layers: usize,
    total: u64,
    done_layers: usize,
    bytes: u64,
    per_layer: HashMap<String, u64>,
    last_draw: Option<std::time::Instant>,
}

impl ProgressView {
    fn update(&mut self, p: Progress) {
        match p {
            Progress::Resolved {
                reference,
                layers,
                bytes,
                ..
            } => {
                self.reference = reference;
                self.layers = layers;
                self.total = bytes;
            }
            Progress::LayerCached { digest, size } => {
                self.done_layers += 1;
                self.bytes += size;
                self.per_layer.insert(digest.to_string(), size);
            }
            Progress::LayerBytes { digest, n } => {
                self.bytes += n;
                *self.per_layer.entry(digest.to_string()).or_default() += n;
            }
            Progress::LayerDone { .. } => self.done_layers += 1,
        }
        let now = std::time::Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now.duration_since(t).as_millis() < 100)
        {
            return;
        }
        self.last_draw = Some(now);
        self.draw();
    }

    fn draw(&self) {
        let mut e = std::io::stderr();
        let _ = write!(
            e,
            "\r\x1b[KPulling {}: layers {}/{}, {} / {}",
            self.reference,
            self.done_layers,
            self.layers,
            human(self.bytes),
            human(self.total)
        );
        let _ = e.flush();
    }

    fn finish(&self) {
        if !self.reference.is_empty() {
            self.draw();
            eprintln!();
        }
    }
}

//! Test harness: a real CNCF distribution registry (Debian `docker-registry`) on 127.0.0.1
//! with its own config and temporary storage, stopped and removed on drop; images are pushed
//! to it with Debian's `skopeo copy`. Std only, so any test crate can `#[path]`-include it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    token_server: Option<Child>,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub dir: PathBuf,
    pub creds: Option<String>,
    /// For a TLS registry: the CA that signed its certificate (PEM).
    pub ca: Option<PathBuf>,
}

fn tool(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The registry and skopeo are installed (apt-get install docker-registry skopeo apache2-utils).
pub fn available() -> bool {
    tool("docker-registry") && tool("skopeo")
}

pub fn scratch_dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = PathBuf::from(format!(
        "/var/tmp/podrun-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Registry {
    /// Start a registry; with `basic_auth = Some((user, password))` it requires those credentials.
    pub fn start(basic_auth: Option<(&str, &str)>) -> Registry {
        assert!(available(), "docker-registry and skopeo are needed: apt-get install docker-registry skopeo apache2-utils");
        let dir = scratch_dir("registry");
        let mut auth = String::new();
        if let Some((u, p)) = basic_auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: podrun-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        Self::launch(dir, auth, None, basic_auth.map(|(u, p)| format!("{u}:{p}")))
    }

    /// Start a registry that uses token (Bearer) auth, with a token server on 127.0.0.1
    /// (`token_server.py`) that hands out tokens for `user`/`password` only.
    pub fn start_with_token(user: &str, password: &str) -> Registry {
        assert!(available(), "docker-registry and skopeo are needed");
        let dir = scratch_dir("registry");
        let tport = free_port();
        let cert = dir.join("token.pem");
        let script = scripts_dir()
            .parent()
            .unwrap()
            .join("integration/registry/token_server.py");
        // Debian's interpreter, whose `cryptography` module .ci/run installs
        // (python3-cryptography), not whichever python3 comes first on PATH.
        let ts = Command::new("/usr/bin/python3")
            .arg(&script)
            .args([
                "--port",
                &tport.to_string(),
                "--user",
                user,
                "--password",
                password,
            ])
            .arg("--cert-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("token.log")).unwrap())
            .spawn()
            .expect("starting token_server.py");
        let mut ts = ts;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cert.exists() || TcpStream::connect(("127.0.0.1", tport)).is_err() {
            if Instant::now() > deadline || ts.try_wait().ok().flatten().is_some() {
                let _ = ts.kill();
                let _ = ts.wait();
                panic!(
                    "token server did not come up: {}",
                    std::fs::read_to_string(dir.join("token.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let auth = format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: podrun-test\n    issuer: podrun-test-issuer\n    rootcertbundle: {}\n",
            cert.display()
        );
        Self::launch(dir, auth, Some(ts), Some(format!("{user}:{password}")))
    }

    /// Start a registry served over HTTPS with a certificate for 127.0.0.1 signed by a fresh
    /// CA (`self.ca`); no authentication.
    pub fn start_tls() -> Registry {
        assert!(available(), "docker-registry and skopeo are needed");
        let dir = scratch_dir("registry");
        let sh = |args: &[&str]| {
            let o = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl");
            assert!(
                o.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        sh(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=podrun test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        sh(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        sh(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        let tls = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        );
        let ca = dir.join("ca.pem");
        let mut r = Self::launch_with(dir, String::new(), None, None, tls);
        r.ca = Some(ca);
        r
    }

    fn launch(
        dir: PathBuf,
        auth: String,
        token_server: Option<Child>,
        creds: Option<String>,
    ) -> Registry {
        Self::launch_with(dir, auth, token_server, creds, String::new())
    }

    fn launch_with(
        dir: PathBuf,
        auth: String,
        token_server: Option<Child>,
        creds: Option<String>,
        http_extra: String,
    ) -> Registry {
        let addr = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: podrun-test\n{http_extra}{auth}",
            dir.join("storage").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let r = Registry {
            child,
            token_server,
            addr,
            dir,
            creds,
            ca: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&r.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not come up: {}",
                std::fs::read_to_string(r.dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// `skopeo copy` SRC (any transport, e.g. `oci:/path:ref`) to `docker://ADDR/REPO_TAG`.
    pub fn push(&self, src: &str, repo_tag: &str, all: bool) {
        let dest = format!("docker://{}/{repo_tag}", self.addr);
        let mut c = Command::new("skopeo");
        c.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if all {
            c.arg("--all");
        }
        if let Some(cr) = &self.creds {
            c.args(["--dest-creds", cr]);
        }
        let out = c.arg(src).arg(&dest).output().expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {src} {dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Like `push`, with extra `skopeo copy` arguments (e.g. `--format v2s2` for Docker schema2).
    pub fn push_with(&self, src: &str, repo_tag: &str, extra: &[&str]) {
        let dest = format!("docker://{}/{repo_tag}", self.addr);
        let mut c = Command::new("skopeo");
        c.args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(extra);
        if let Some(cr) = &self.creds {
            c.args(["--dest-creds", cr]);
        }
        let out = c.arg(src).arg(&dest).output().expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {src} {dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.addr)
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = &mut self.token_server {
            let _ = t.kill();
            let _ = t.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The repository's scripts directory.
pub fn scripts_dir() -> PathBuf {
    let mut p = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !p.join("scripts/build-busybox-image").exists() {
        assert!(
            p.pop(),
            "scripts/build-busybox-image not found above CARGO_MANIFEST_DIR"
        );
    }
    p.join("scripts")
}

/// Build an OCI layout with `scripts/build-busybox-image`: busybox-static as the base layer,
/// then each of `extra_layers` (directories) on top.
pub fn busybox_layout(out: &Path, name: &str, extra_layers: &[&Path], arch: Option<&str>) {
    let mut c = Command::new(scripts_dir().join("build-busybox-image"));
    c.arg("--layout").arg(out).args(["--name", name]);
    for l in extra_layers {
        c.arg("--extra-layer").arg(l);
    }
    if let Some(a) = arch {
        c.args(["--arch", a]);
    }
    let o = c.output().expect("running build-busybox-image");
    assert!(
        o.status.success(),
        "build-busybox-image: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Two extra layers for a busybox image: one adds files, the next deletes one (whiteout)
/// and replaces a directory's content (opaque).
pub fn whiteout_layers(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("layer-a");
    let b = dir.join("layer-b");
    std::fs::create_dir_all(a.join("data/cache")).unwrap();
    std::fs::create_dir_all(a.join("etc")).unwrap();
    std::fs::write(a.join("etc/motd"), "from layer a\n").unwrap();
    std::fs::write(a.join("etc/deleted"), "you should not see this\n").unwrap();
    std::fs::write(a.join("data/cache/old"), "old\n").unwrap();
    std::fs::create_dir_all(b.join("data/cache")).unwrap();
    std::fs::create_dir_all(b.join("etc")).unwrap();
    std::fs::write(b.join("etc/.wh.deleted"), "").unwrap();
    std::fs::write(b.join("data/cache/.wh..wh..opq"), "").unwrap();
    std::fs::write(b.join("data/cache/new"), "new\n").unwrap();
    (a, b)
}

/// `skopeo copy` to an archive: `docker-archive:FILE:NAME` or `oci-archive:FILE:NAME`.
pub fn skopeo_archive(src: &str, dest: &str) {
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", src, dest])
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo copy {src} {dest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Merge single-image layouts (from `busybox_layout`) into one layout whose `index.json`
/// names `name` -> an image index with one manifest per (os, arch) platform.
pub fn multi_platform_layout(out: &Path, name: &str, parts: &[(&str, &Path)]) {
    use std::fmt::Write as _;
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut entries = String::new();
    for (arch, layout) in parts {
        for e in std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .flatten()
        {
            std::fs::copy(e.path(), blobs.join(e.file_name())).unwrap();
        }
        let idx = std::fs::read_to_string(layout.join("index.json")).unwrap();
        let digest = idx
            .split("\"digest\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let size = idx
            .split("\"size\":")
            .nth(1)
            .unwrap()
            .split([',', '}'])
            .next()
            .unwrap()
            .to_string();
        if !entries.is_empty() {
            entries.push(',');
        }
        write!(
            entries,
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{size},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#
        )
        .unwrap();
    }
    let nested = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{entries}]}}"#
    );
    let out_hash = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let hex = {
        use std::io::Write;
        let mut c = out_hash;
        c.stdin
            .take()
            .unwrap()
            .write_all(nested.as_bytes())
            .unwrap();
        let o = c.wait_with_output().unwrap();
        String::from_utf8(o.stdout)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    std::fs::write(blobs.join(&hex), &nested).unwrap();
    let top = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:{hex}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}]}}"#,
        nested.len()
    );
    std::fs::write(out.join("index.json"), top).unwrap();
}

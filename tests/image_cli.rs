//! `podrun image ...` end to end (as root): archives built from busybox-static, a real
//! registry (Debian docker-registry) fed by skopeo, overlay roots that the OCI engine runs.

#[path = "../integration/registry/harness.rs"]
mod harness;

use harness::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn podrun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_podrun"))
}

struct Env {
    store: PathBuf,
    work: PathBuf,
}

impl Env {
    fn new(what: &str) -> Env {
        let work = scratch_dir(what);
        let store = work.join("store");
        Env { store, work }
    }

    fn image(&self, args: &[&str]) -> Output {
        podrun()
            .arg("image")
            .args(args)
            .env("PODRUN_IMAGE_ROOT", &self.store)
            .env("HOME", &self.work)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.image(args);
        assert!(
            o.status.success(),
            "podrun image {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.image(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "podrun image {args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stderr).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(&*self.store.to_string_lossy()))
            .collect();
        let tmp_left = fs::read_dir(self.store.join("tmp"))
            .map(|r| r.count())
            .unwrap_or(0);
        // Clean up whatever a failed test left mounted before removing the directory.
        if let Ok(rd) = fs::read_dir(self.store.join("rootfs")) {
            for k in rd.flatten() {
                let _ = self.image(&["umount", &k.file_name().to_string_lossy()]);
            }
        }
        let _ = fs::remove_dir_all(&self.work);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "mounts left behind: {left:?}");
            assert_eq!(tmp_left, 0, "temporary files left in the store");
        }
    }
}

fn busybox_archive(e: &Env, name: &str, extra: &[&Path]) -> PathBuf {
    let layout = e
        .work
        .join(format!("layout-{}", name.replace(['/', ':'], "_")));
    busybox_layout(&layout, name, extra, None);
    let a = e
        .work
        .join(format!("{}.tar", name.replace(['/', ':'], "_")));
    let o = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&a)
        .args(["oci-layout", "index.json", "blobs"])
        .status()
        .unwrap();
    assert!(o.success());
    a
}

#[test]
fn load_ls_inspect_mount_rm_prune() {
    let e = Env::new("cli-basic");
    let a = busybox_archive(&e, "localhost/cli/busybox:1", &[]);
    let out = e.ok(&["load", "-i", a.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: localhost/cli/busybox:1");

    let ls = e.ok(&["ls"]);
    assert!(ls.starts_with("REPOSITORY"), "{ls}");
    assert!(
        ls.contains("localhost/cli/busybox") && ls.contains(" 1 "),
        "{ls}"
    );
    let ids = e.ok(&["ls", "-q"]);
    assert_eq!(ids.lines().count(), 1);
    assert_eq!(ids.trim().len(), 12);
    let json: serde_json::Value = serde_json::from_str(&e.ok(&["ls", "--format", "json"])).unwrap();
    assert_eq!(json[0]["names"][0], "localhost/cli/busybox:1");
    assert!(json[0]["id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("sha256:{}", ids.trim())));

    let inspect: serde_json::Value =
        serde_json::from_str(&e.ok(&["inspect", "localhost/cli/busybox:1"])).unwrap();
    assert_eq!(inspect["config"]["cmd"][0], "sh");
    assert_eq!(inspect["layers"].as_array().unwrap().len(), 1);
    // by short ID too
    e.ok(&["inspect", ids.trim()]);

    let merged = e.ok(&["mount", "localhost/cli/busybox:1", "k1"]);
    let merged = PathBuf::from(merged.trim());
    assert!(merged.join("bin/busybox").is_file());
    e.ok(&["umount", "k1"]);
    assert!(!merged.exists());

    // docker-style short names resolve, unknown names fail clearly
    let err = e.fails(&["inspect", "nosuchimage"]);
    assert!(err.contains("image not known: nosuchimage"), "{err}");
    let err = e.fails(&["rm", "nosuchimage"]);
    assert!(err.contains("image not known"), "{err}");

    e.ok(&["rm", "localhost/cli/busybox:1"]);
    assert_eq!(e.ok(&["ls", "-q"]), "");
    let pr = e.ok(&["prune"]);
    assert!(pr.contains("Removed 0 image(s)"), "{pr}");
}

#[test]
fn import_and_bad_inputs() {
    let e = Env::new("cli-import");
    let rootfs = e.work.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/hello"), "imported\n").unwrap();
    let t = e.work.join("rootfs.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&t)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let id = e.ok(&["import", t.to_str().unwrap(), "localhost/imported:1"]);
    assert!(id.trim().starts_with("sha256:"));
    let m = PathBuf::from(e.ok(&["mount", "localhost/imported:1", "imp"]).trim());
    assert_eq!(
        fs::read_to_string(m.join("etc/hello")).unwrap(),
        "imported\n"
    );
    e.ok(&["umount", "imp"]);

    // an escaping layer: one clear error, store unchanged
    let evil = e.work.join("evil");
    fs::create_dir_all(&evil).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", evil.join("escape")).unwrap();
    let et = e.work.join("evil.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&evil)
        .arg("-cf")
        .arg(&et)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let before = e.ok(&["ls", "--format", "json"]);
    let err = e.fails(&["import", et.to_str().unwrap(), "localhost/evil:1"]);
    assert!(err.contains("points outside the layer directory"), "{err}");
    assert_eq!(e.ok(&["ls", "--format", "json"]), before);
    let err = e.fails(&["load", "-i", "/nonexistent/archive.tar"]);
    assert!(err.contains("/nonexistent/archive.tar"), "{err}");
}

#[test]
fn pull_from_local_registry_with_auth() {
    let reg = Registry::start(Some(("user", "pw")));
    let e = Env::new("cli-pull");
    let layout = e.work.join("layout");
    busybox_layout(&layout, "bb", &[], None);
    reg.push(&format!("oci:{}:bb", layout.display()), "cli/bb:2", false);
    let r = reg.reference("cli/bb:2");
    let err = e.fails(&["pull", "--insecure", &r]);
    assert!(err.contains("authentication failed"), "{err}");
    let out = e.ok(&["pull", "--insecure", "--creds", "user:pw", &r]);
    assert!(out.trim().starts_with("sha256:"), "quiet in scripts: {out}");
    // credentials from $HOME/.docker/config.json
    let e2 = Env::new("cli-pull2");
    fs::create_dir_all(e2.work.join(".docker")).unwrap();
    fs::write(
        e2.work.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"dXNlcjpwdw=="}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    e2.ok(&["pull", "--insecure", &r]);
    assert!(e2.ok(&["ls"]).contains(&format!("{}/cli/bb", reg.addr)));
}

/// The acceptance path: an image from the registry and one from an archive both become a
/// root filesystem that a container started by the OCI engine runs in.
#[test]
fn container_runs_in_pulled_and_loaded_images() {
    let reg = Registry::start(None);
    let e = Env::new("cli-run");
    let (a, b) = whiteout_layers(&e.work);
    let layout = e.work.join("layout");
    busybox_layout(&layout, "multi", &[&a, &b], None);
    reg.push(
        &format!("oci:{}:multi", layout.display()),
        "run/multi:1",
        false,
    );
    e.ok(&["pull", "--insecure", &reg.reference("run/multi:1")]);
    let arch = e.work.join("multi.tar");
    skopeo_archive(
        &format!("oci:{}:multi", layout.display()),
        &format!("docker-archive:{}:localhost/run/archived:1", arch.display()),
    );
    e.ok(&["load", "-i", arch.to_str().unwrap()]);

    for (image, key) in [
        (reg.reference("run/multi:1"), "run-pulled"),
        ("localhost/run/archived:1".to_string(), "run-loaded"),
    ] {
        let merged = e.ok(&["mount", &image, key]);
        let bundle = e.work.join(format!("bundle-{key}"));
        fs::create_dir_all(&bundle).unwrap();
        let s = podrun().args(["spec", "-b"]).arg(&bundle).status().unwrap();
        assert!(s.success());
        let cfgp = bundle.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&cfgp).unwrap()).unwrap();
        cfg["root"]["path"] = merged.trim().into();
        cfg["root"]["readonly"] = false.into();
        cfg["process"]["terminal"] = false.into();
        cfg["process"]["args"] = serde_json::json!([
            "/bin/sh",
            "-c",
            "cat /etc/motd; ls /data/cache; test ! -e /etc/deleted && echo whiteout-ok"
        ]);
        cfg["linux"]["cgroupsPath"] = format!("podrun-image-test/{key}").into();
        fs::write(&cfgp, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let state = e.work.join("state");
        let out = podrun()
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(key)
            .output()
            .unwrap();
        let _ = podrun()
            .arg("--root")
            .arg(&state)
            .args(["delete", "--force", key])
            .output();
        assert!(
            out.status.success(),
            "podrun run in {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "from layer a\nnew\nwhiteout-ok\n"
        );
        e.ok(&["umount", key]);
    }
}

/// A pull killed half-way leaves nothing visible; the next pull finishes the work and
/// clears the leftovers.
#[test]
fn interrupted_pull_is_finished_by_the_next() {
    let reg = Registry::start(None);
    let e = Env::new("cli-interrupt");
    let big = e.work.join("big");
    fs::create_dir_all(big.join("data")).unwrap();
    // 3 x 16 MB of incompressible data, so the pull takes a while
    let mut seed = 0x9e3779b97f4a7c15u64;
    for i in 0..3 {
        let mut v = vec![0u8; 16 << 20];
        for c in v.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            c.copy_from_slice(&seed.to_le_bytes()[..c.len()]);
        }
        fs::write(big.join(format!("data/blob{i}")), v).unwrap();
    }
    let layout = e.work.join("layout");
    busybox_layout(&layout, "big", &[&big], None);
    reg.push(&format!("oci:{}:big", layout.display()), "int/big:1", false);
    let r = reg.reference("int/big:1");

    let mut child = podrun()
        .args(["image", "pull", "--insecure", &r])
        .env("PODRUN_IMAGE_ROOT", &e.store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let busy = fs::read_dir(e.store.join("tmp"))
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if busy {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        e.ok(&["ls", "-q"]),
        "",
        "a killed pull must not leave a visible image"
    );

    e.ok(&["pull", "--insecure", &r]);
    assert_eq!(e.ok(&["ls", "-q"]).lines().count(), 1);
    let m = PathBuf::from(e.ok(&["mount", &r, "big"]).trim());
    assert_eq!(fs::metadata(m.join("data/blob2")).unwrap().len(), 16 << 20);
    e.ok(&["umount", "big"]);
    // leftovers of the killed pull are gone (its pid is dead)
    assert_eq!(fs::read_dir(e.store.join("tmp")).unwrap().count(), 0);
}

/// HTTPS is the default: a registry with a certificate from a private CA works once the CA
/// is trusted (system store, or SSL_CERT_FILE), and fails clearly before.
#[test]
fn pull_over_https_with_private_ca() {
    let reg = Registry::start_tls();
    let e = Env::new("cli-tls");
    let layout = e.work.join("layout");
    busybox_layout(&layout, "bb", &[], None);
    reg.push(&format!("oci:{}:bb", layout.display()), "tls/bb:1", false);
    let r = reg.reference("tls/bb:1");
    let err = e.fails(&["pull", &r]);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let o = podrun()
        .args(["image", "pull", &r])
        .env("PODRUN_IMAGE_ROOT", &e.store)
        .env("SSL_CERT_FILE", reg.ca.as_ref().unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(e.ok(&["ls", "-q"]).lines().count(), 1);
}

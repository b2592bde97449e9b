//! Pulls from a real registry (Debian's docker-registry on 127.0.0.1), images pushed with skopeo.

mod common;
#[path = "../../../integration/registry/harness.rs"]
mod harness;

use common::*;
use harness::*;
use podrun_image::{Error, PullOptions, Store};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn insecure() -> PullOptions {
    PullOptions {
        insecure: true,
        auth_files: Some(vec![]),
        ..Default::default()
    }
}

fn assert_clean(root: &Path) {
    assert!(
        mounts_under(root).is_empty(),
        "mounts left: {:?}",
        mounts_under(root)
    );
    assert!(
        tmp_entries(root).is_empty(),
        "tmp left: {:?}",
        tmp_entries(root)
    );
}

#[test]
fn pull_multilayer_with_whiteouts_and_mount() {
    let reg = Registry::start(None);
    let work = scratch_dir("pull-test");
    let (a, b) = whiteout_layers(&work);
    busybox_layout(&work.join("layout"), "multi", &[&a, &b], None);
    reg.push(
        &format!("oci:{}:multi", work.join("layout").display()),
        "test/multi:1",
        false,
    );

    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let mut opts = insecure();
    opts.progress = Some(Arc::new(move |p| ev.lock().unwrap().push(format!("{p:?}"))));
    let reference = reg.reference("test/multi:1");
    let img = st.pull(&reference, &opts).unwrap();
    assert_eq!(img.layers.len(), 3);
    assert_eq!(img.names, vec![format!("{reference}")]);
    assert_eq!(img.config.cmd, vec!["sh"]);
    let ev = events.lock().unwrap().clone();
    assert!(ev.iter().any(|e| e.starts_with("Resolved")), "{ev:?}");
    assert_eq!(ev.iter().filter(|e| e.starts_with("LayerDone")).count(), 3);

    let m = st.mount_rootfs(&img, "p1", false).unwrap();
    assert!(m.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_to_string(m.join("etc/motd")).unwrap(),
        "from layer a\n"
    );
    assert!(!m.join("etc/deleted").exists(), "whiteout applied");
    assert!(!m.join("data/cache/old").exists(), "opaque dir applied");
    assert_eq!(
        fs::read_to_string(m.join("data/cache/new")).unwrap(),
        "new\n"
    );
    // the busybox in it runs (chroot, no container engine needed for this check)
    let out = std::process::Command::new("chroot")
        .arg(&m)
        .args(["/bin/sh", "-c", "cat /etc/motd; ls /data/cache"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from layer a\nnew\n");
    st.unmount_rootfs("p1").unwrap();

    // second pull: everything cached, same image
    let again = st.pull(&reference, &insecure()).unwrap();
    assert_eq!(again.id, img.id);
    // by digest
    let by_digest = st
        .pull(
            &format!("{}/test/multi@{}", reg.addr, img.manifest_digest),
            &insecure(),
        )
        .unwrap();
    assert_eq!(by_digest.id, img.id);
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn pull_with_basic_auth() {
    let reg = Registry::start(Some(("podrun", "s3cret")));
    let work = scratch_dir("auth-test");
    busybox_layout(&work.join("layout"), "bb", &[], None);
    reg.push(
        &format!("oci:{}:bb", work.join("layout").display()),
        "private/bb:1",
        false,
    );
    let reference = reg.reference("private/bb:1");
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let before = (
        count(root.path(), "blobs/sha256"),
        count(root.path(), "layers"),
    );

    // no credentials
    let e = st.pull(&reference, &insecure()).unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(e.to_string().contains("--creds"), "{e}");
    // wrong credentials
    let mut o = insecure();
    o.creds = Some("podrun:wrong".into());
    assert!(matches!(
        st.pull(&reference, &o).unwrap_err(),
        Error::Auth { .. }
    ));
    assert_eq!(
        (
            count(root.path(), "blobs/sha256"),
            count(root.path(), "layers")
        ),
        before
    );

    // --creds
    o.creds = Some("podrun:s3cret".into());
    st.pull(&reference, &o).unwrap();
    // credentials file ($REGISTRY_AUTH_FILE / ~/.docker/config.json format)
    let root2 = store_dir();
    let auth = work.join("auth.json");
    fs::write(
        &auth,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "cG9kcnVuOnMzY3JldA=="}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let mut o = insecure();
    o.auth_files = Some(vec![auth]);
    let img = Store::open(root2.path())
        .unwrap()
        .pull(&reference, &o)
        .unwrap();
    assert_eq!(img.layers.len(), 1);
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn pull_errors_leave_store_unchanged() {
    let reg = Registry::start(None);
    let work = scratch_dir("pull-errors");
    busybox_layout(&work.join("s390x"), "s390x", &[], Some("s390x"));
    reg.push(
        &format!("oci:{}:s390x", work.join("s390x").display()),
        "other/platform:1",
        false,
    );
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let snapshot = || {
        (
            count(root.path(), "blobs/sha256"),
            count(root.path(), "layers"),
            st.list().unwrap().len(),
        )
    };
    let before = snapshot();

    let e = st
        .pull(&reg.reference("other/platform:1"), &insecure())
        .unwrap_err();
    assert!(
        matches!(e, Error::NoPlatform { .. }) && e.to_string().contains("linux/s390x"),
        "{e}"
    );
    assert_eq!(snapshot(), before);

    let e = st
        .pull(&reg.reference("no/such:image"), &insecure())
        .unwrap_err();
    assert!(
        matches!(e, Error::Registry { .. }) && e.to_string().contains("not found"),
        "{e}"
    );
    assert_eq!(snapshot(), before);

    let dead = {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let e = st
        .pull(&format!("127.0.0.1:{dead}/x:1"), &insecure())
        .unwrap_err();
    assert!(e.to_string().contains("cannot reach"), "{e}");
    assert_eq!(snapshot(), before);

    // HTTPS is the default: the plain-HTTP test registry is not reachable that way
    let o = PullOptions {
        auth_files: Some(vec![]),
        ..Default::default()
    };
    assert!(st.pull(&reg.reference("other/platform:1"), &o).is_err());

    let e = st.pull("Not A Ref", &insecure()).unwrap_err();
    assert!(matches!(e, Error::InvalidReference { .. }), "{e}");
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn pull_tampered_blob_is_rejected() {
    let reg = Registry::start(None);
    let work = scratch_dir("tamper");
    busybox_layout(&work.join("layout"), "bb", &[], None);
    reg.push(
        &format!("oci:{}:bb", work.join("layout").display()),
        "t/bb:1",
        false,
    );
    // Corrupt the layer blob inside the registry's storage (same size, different bytes).
    let blobs = reg.dir.join("storage/docker/registry/v2/blobs/sha256");
    let mut largest: Option<(u64, std::path::PathBuf)> = None;
    for p in walk(&blobs) {
        let n = fs::metadata(&p).unwrap().len();
        if largest.as_ref().is_none_or(|(m, _)| n > *m) {
            largest = Some((n, p));
        }
    }
    let (_, p) = largest.unwrap();
    let mut data = fs::read(&p).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&p, data).unwrap();
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let e = st.pull(&reg.reference("t/bb:1"), &insecure()).unwrap_err();
    assert!(
        matches!(e, Error::DigestMismatch { .. } | Error::BadArchive { .. }),
        "{e}"
    );
    assert_eq!(count(root.path(), "layers"), 0);
    assert_eq!(count(root.path(), "blobs/sha256"), 0);
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

#[test]
fn skopeo_archives_load() {
    let work = scratch_dir("skopeo-archives");
    let (a, b) = whiteout_layers(&work);
    busybox_layout(&work.join("layout"), "multi", &[&a, &b], None);
    let src = format!("oci:{}:multi", work.join("layout").display());
    skopeo_archive(
        &src,
        &format!(
            "docker-archive:{}:localhost/arch/docker:1",
            work.join("d.tar").display()
        ),
    );
    skopeo_archive(
        &src,
        &format!(
            "oci-archive:{}:localhost/arch/oci:1",
            work.join("o.tar").display()
        ),
    );
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let d = st.load_archive(&work.join("d.tar")).unwrap();
    assert_eq!(d[0].names, vec!["localhost/arch/docker:1"]);
    let o = st.load_archive(&work.join("o.tar")).unwrap();
    assert!(
        o[0].names.contains(&"localhost/arch/oci:1".to_string()),
        "{:?}",
        o[0].names
    );
    assert_eq!(o[0].id, d[0].id, "same config: one image, two names");
    for (img, key) in [(&d[0], "d"), (&o[0], "o")] {
        let m = st.mount_rootfs(img, key, true).unwrap();
        assert!(m.join("bin/busybox").is_file());
        assert!(!m.join("etc/deleted").exists());
        assert_eq!(
            fs::read_to_string(m.join("data/cache/new")).unwrap(),
            "new\n"
        );
        assert!(!m.join("data/cache/old").exists());
        st.unmount_rootfs(key).unwrap();
    }
    // truncated skopeo archive
    let bytes = fs::read(work.join("d.tar")).unwrap();
    fs::write(work.join("cut.tar"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    assert!(matches!(
        st.load_archive(&work.join("cut.tar")),
        Err(Error::BadArchive { .. })
    ));
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn pull_with_bearer_token_auth() {
    let reg = Registry::start_with_token("tokenuser", "tokenpw");
    let work = scratch_dir("token-test");
    busybox_layout(&work.join("layout"), "bb", &[], None);
    reg.push(
        &format!("oci:{}:bb", work.join("layout").display()),
        "tok/bb:1",
        false,
    );
    let reference = reg.reference("tok/bb:1");
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    // anonymous: the token server refuses
    let e = st.pull(&reference, &insecure()).unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    let mut o = insecure();
    o.creds = Some("tokenuser:tokenpw".into());
    let img = st.pull(&reference, &o).unwrap();
    assert_eq!(img.layers.len(), 1);
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn concurrent_pulls_of_the_same_image() {
    let reg = Registry::start(None);
    let work = scratch_dir("conc-pull");
    let (a, b) = whiteout_layers(&work);
    busybox_layout(&work.join("layout"), "m", &[&a, &b], None);
    reg.push(
        &format!("oci:{}:m", work.join("layout").display()),
        "conc/m:1",
        false,
    );
    let reference = reg.reference("conc/m:1");
    let root = store_dir();
    let ids: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    Store::open(root.path())
                        .unwrap()
                        .pull(&reference, &insecure())
                        .map(|i| i.id)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    let st = Store::open(root.path()).unwrap();
    assert_eq!(st.list().unwrap().len(), 1);
    assert_eq!(count(root.path(), "layers"), 3);
    assert_eq!(
        count(root.path(), "blobs/sha256"),
        5,
        "manifest + config + 3 layers"
    );
    let m = st
        .mount_rootfs(&st.resolve(&reference).unwrap(), "c", true)
        .unwrap();
    assert_eq!(
        fs::read_to_string(m.join("data/cache/new")).unwrap(),
        "new\n"
    );
    st.unmount_rootfs("c").unwrap();
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn resolve_or_pull_pulls_once() {
    let reg = Registry::start(None);
    let work = scratch_dir("rop");
    busybox_layout(&work.join("layout"), "bb", &[], None);
    reg.push(
        &format!("oci:{}:bb", work.join("layout").display()),
        "rop/bb:1",
        false,
    );
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let r = reg.reference("rop/bb:1");
    let a = st.resolve_or_pull(&r, &insecure()).unwrap();
    drop(reg); // registry gone: the second call must not need it
    let b = st.resolve_or_pull(&r, &insecure()).unwrap();
    assert_eq!(a.id, b.id);
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn multi_platform_index_and_docker_schema2() {
    let reg = Registry::start(None);
    let work = scratch_dir("multiarch");
    let host = podrun_image::manifest::host_platform().architecture;
    busybox_layout(&work.join("host"), "h", &[], None);
    busybox_layout(&work.join("s390x"), "s", &[], Some("s390x"));
    busybox_layout(&work.join("arm"), "a", &[], Some("riscv64"));
    multi_platform_layout(
        &work.join("multi"),
        "multi",
        &[("s390x", &work.join("s390x")), (&host, &work.join("host"))],
    );
    multi_platform_layout(
        &work.join("foreign"),
        "foreign",
        &[
            ("s390x", &work.join("s390x")),
            ("riscv64", &work.join("arm")),
        ],
    );
    reg.push_with(
        &format!("oci:{}:multi", work.join("multi").display()),
        "mp/bb:1",
        &["--all"],
    );
    reg.push_with(
        &format!("oci:{}:foreign", work.join("foreign").display()),
        "mp/foreign:1",
        &["--all"],
    );
    reg.push_with(
        &format!("oci:{}:h", work.join("host").display()),
        "mp/docker:1",
        &["--format", "v2s2"],
    );

    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let img = st.pull(&reg.reference("mp/bb:1"), &insecure()).unwrap();
    assert_eq!(
        img.config.architecture, host,
        "index resolved to the host platform"
    );
    let mut o = insecure();
    o.platform = Some(podrun_image::manifest::Platform {
        os: "linux".into(),
        architecture: "s390x".into(),
        variant: None,
    });
    let other = Store::open(store_dir().path())
        .unwrap()
        .pull(&reg.reference("mp/bb:1"), &o)
        .unwrap();
    assert_eq!(other.config.architecture, "s390x");

    let before = (
        count(root.path(), "blobs/sha256"),
        count(root.path(), "layers"),
    );
    let e = st
        .pull(&reg.reference("mp/foreign:1"), &insecure())
        .unwrap_err();
    assert!(matches!(e, Error::NoPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/s390x, linux/riscv64"), "{e}");
    assert_eq!(
        (
            count(root.path(), "blobs/sha256"),
            count(root.path(), "layers")
        ),
        before
    );

    // by the digest of the index: resolved to the host's manifest, and found again by it
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}", reg.reference("mp/bb:1")))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let index_digest = v["Digest"].as_str().unwrap().to_string();
    assert_ne!(index_digest, img.manifest_digest.to_string());
    let by_index = format!("{}/mp/bb@{index_digest}", reg.addr);
    assert_eq!(st.pull(&by_index, &insecure()).unwrap().id, img.id);
    assert_eq!(st.resolve(&by_index).unwrap().id, img.id);
    assert_eq!(
        st.resolve_or_pull(&by_index, &insecure()).unwrap().id,
        img.id
    );

    let d = st.pull(&reg.reference("mp/docker:1"), &insecure()).unwrap();
    let m = fs::read(
        root.path()
            .join("blobs/sha256")
            .join(d.manifest_digest.hex()),
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&m)
        .contains("application/vnd.docker.distribution.manifest.v2+json"));
    assert_eq!(d.id, img.id, "same config through Docker schema2 and OCI");
    assert_clean(root.path());
    let _ = fs::remove_dir_all(&work);
}

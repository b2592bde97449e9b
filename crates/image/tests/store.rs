//! The store for real (as root): archive load, import, overlay roots, rm/prune, bad inputs.

mod common;
use common::*;
use podrun_image::{Error, Store};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn base_layer() -> Vec<u8> {
    layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/os-release", b"base\n", 0o644),
        E::File("etc/remove-me", b"old\n", 0o644),
        E::Dir("var/", 0o755),
        E::Dir("var/cache/", 0o755),
        E::File("var/cache/stale", b"stale\n", 0o644),
        E::File("bin/tool", b"#!/bin/sh\n", 0o755),
        E::Hardlink("bin/tool-link", "bin/tool"),
    ])
}

fn top_layer() -> Vec<u8> {
    layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/.wh.remove-me", b"", 0o644),
        E::File("etc/os-release", b"top\n", 0o644),
        E::Dir("var/cache/", 0o755),
        E::File("var/cache/.wh..wh..opq", b"", 0o644),
        E::File("var/cache/fresh", b"fresh\n", 0o644),
    ])
}

/// A two-layer oci-archive with a whiteout and an opaque dir.
fn oci_archive(dir: &Path, name: &str) -> (PathBuf, Built) {
    let img = image(&[base_layer(), top_layer()], &["/bin/tool"], "amd64");
    let layout = dir.join("layout");
    write_oci_layout(&layout, &img, name);
    let out = dir.join("image.oci.tar");
    tar_dir(&layout, &out);
    (out, img)
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
fn load_oci_archive_and_mount_layers() {
    let work = store_dir();
    let (arch, img) = oci_archive(work.path(), "localhost/test/multi:1");
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let images = st.load_archive(&arch).unwrap();
    assert_eq!(images.len(), 1);
    let i = st.resolve("localhost/test/multi:1").unwrap();
    assert_eq!(i.id.to_string(), img.config_digest);
    assert_eq!(i.manifest_digest.to_string(), img.manifest_digest);
    assert_eq!(i.config.cmd, vec!["/bin/tool"]);
    assert_eq!(i.config.exposed_ports, vec!["8080/tcp"]);
    assert_eq!(i.layers.len(), 2);
    assert_eq!(st.resolve(&i.id.hex()[..12]).unwrap().id, i.id);

    let m = st.mount_rootfs(&i, "c1", false).unwrap();
    assert_eq!(fs::read(m.join("etc/os-release")).unwrap(), b"top\n");
    assert!(
        !m.join("etc/remove-me").exists(),
        "whiteout hides the lower file"
    );
    assert!(
        !m.join("var/cache/stale").exists(),
        "opaque dir hides lower content"
    );
    assert_eq!(fs::read(m.join("var/cache/fresh")).unwrap(), b"fresh\n");
    assert_eq!(
        fs::metadata(m.join("bin/tool")).unwrap().ino(),
        fs::metadata(m.join("bin/tool-link")).unwrap().ino()
    );
    fs::write(m.join("etc/written"), b"c1").unwrap();

    // A second container of the same image: its own upper, nothing copied, nothing shared.
    let m2 = st.mount_rootfs(&i, "c2", true).unwrap();
    assert!(!m2.join("etc/written").exists());
    assert!(
        fs::write(m2.join("etc/x"), b"").is_err(),
        "read-only root refuses writes"
    );
    let upper2 = root.path().join("rootfs/c2/upper");
    assert_eq!(
        fs::read_dir(&upper2).unwrap().count(),
        0,
        "mount copies nothing"
    );
    assert!(matches!(
        st.mount_rootfs(&i, "c1", false),
        Err(Error::AlreadyMounted(_))
    ));
    // Layers are untouched by container writes.
    assert!(!i.layers[1].join("etc/written").exists());

    // In use: the image cannot be removed; prune keeps it.
    assert!(matches!(
        st.remove(&i.id.to_string()),
        Err(Error::InUse { .. })
    ));
    st.unmount_rootfs("c1").unwrap();
    st.unmount_rootfs("c2").unwrap();
    st.unmount_rootfs("c2").unwrap(); // idempotent
    assert!(!root.path().join("rootfs/c1").exists());
    assert_clean(root.path());

    st.remove("localhost/test/multi:1").unwrap();
    assert!(st.list().unwrap().is_empty());
    assert_eq!(count(root.path(), "blobs/sha256"), 0, "rm collects blobs");
    assert_eq!(count(root.path(), "layers"), 0, "rm collects layers");
    assert!(matches!(
        st.resolve("localhost/test/multi:1"),
        Err(Error::ImageNotKnown(_))
    ));
}

#[test]
fn load_docker_archive() {
    let work = store_dir();
    let layers = [base_layer(), top_layer()];
    let img = image(&layers, &["/bin/tool"], "amd64");
    let arch = work.path().join("docker.tar");
    write_docker_archive(&arch, &img, &layers, "busybox:dockerarchive");
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    st.load_archive(&arch).unwrap();
    let i = st
        .resolve("docker.io/library/busybox:dockerarchive")
        .unwrap();
    assert_eq!(i.id.to_string(), img.config_digest);
    assert_eq!(st.resolve("busybox:dockerarchive").unwrap().id, i.id);
    let m = st.mount_rootfs(&i, "d1", false).unwrap();
    assert_eq!(fs::read(m.join("etc/os-release")).unwrap(), b"top\n");
    assert!(!m.join("etc/remove-me").exists());
    st.unmount_rootfs("d1").unwrap();
    // the same layers via an oci-archive are shared, not unpacked twice
    let (oarch, _) = oci_archive(work.path(), "localhost/test/multi:2");
    st.load_archive(&oarch).unwrap();
    assert_eq!(count(root.path(), "layers"), 2);
    assert_eq!(
        st.list().unwrap().len(),
        1,
        "same config = same image ID, two names"
    );
    assert_eq!(st.list().unwrap()[0].names.len(), 2);
    assert_clean(root.path());
}

#[test]
fn import_rootfs_tarball() {
    let work = store_dir();
    let t = work.path().join("rootfs.tar.gz");
    fs::write(
        &t,
        gzip(&layer(&[
            E::File("hello", b"imported", 0o644),
            E::Dir("bin/", 0o755),
        ])),
    )
    .unwrap();
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    let i = st.import_rootfs(&t, "localhost/imported:v1").unwrap();
    assert_eq!(i.config.cmd, vec!["/bin/sh"]);
    assert_eq!(i.names, vec!["localhost/imported:v1"]);
    let m = st.mount_rootfs(&i, "i1", false).unwrap();
    assert_eq!(fs::read(m.join("hello")).unwrap(), b"imported");
    st.unmount_rootfs("i1").unwrap();
    assert!(st
        .import_rootfs(&work.path().join("missing.tar"), "x:1")
        .is_err());
    assert!(st.import_rootfs(&t, "Bad Name").is_err());
    assert_clean(root.path());
}

/// Snapshot of what a store holds, to prove a failure changed nothing.
fn state(root: &Path) -> (Vec<String>, usize, usize, Option<Vec<u8>>) {
    let st = Store::open(root).unwrap();
    let names: Vec<String> = st
        .list()
        .unwrap()
        .iter()
        .flat_map(|i| i.names.clone())
        .collect();
    (
        names,
        count(root, "blobs/sha256"),
        count(root, "layers"),
        fs::read(root.join("images.json")).ok(),
    )
}

fn expect_failure_leaves_store(root: &Path, archive: &Path, check: impl Fn(&Error) -> bool) {
    let before = state(root);
    let st = Store::open(root).unwrap();
    let err = st.load_archive(archive).unwrap_err();
    assert!(check(&err), "unexpected error: {err}");
    assert_eq!(
        state(root),
        before,
        "store changed after failed load ({err})"
    );
    assert_clean(root);
}

#[test]
fn bad_archives_leave_store_unchanged() {
    let work = store_dir();
    let root = store_dir();
    // an existing image, to check it survives untouched
    let (good, _) = oci_archive(work.path(), "localhost/test/good:1");
    Store::open(root.path())
        .unwrap()
        .load_archive(&good)
        .unwrap();

    // 1. layer with ../ path
    let evil = image(
        &[
            layer(&[E::File("ok", b"", 0o644)]),
            layer(&[E::File("../../evil", b"x", 0o644)]),
        ],
        &[],
        "amd64",
    );
    let d = work.path().join("evil");
    write_oci_layout(&d, &evil, "localhost/evil:1");
    let a = work.path().join("evil.tar");
    tar_dir(&d, &a);
    expect_failure_leaves_store(root.path(), &a, |e| {
        matches!(e, Error::UnsafeArchive { .. }) && e.to_string().contains("..")
    });

    // 2. escaping symlink
    let evil = image(
        &[layer(&[E::Symlink("root", "../../../../")])],
        &[],
        "amd64",
    );
    let d = work.path().join("evil2");
    write_oci_layout(&d, &evil, "localhost/evil:2");
    let a = work.path().join("evil2.tar");
    tar_dir(&d, &a);
    expect_failure_leaves_store(root.path(), &a, |e| {
        e.to_string().contains("outside the layer")
    });

    // 3. blob whose digest does not match
    let img = image(&[layer(&[E::File("f", b"good", 0o644)])], &[], "amd64");
    let d = work.path().join("tampered");
    write_oci_layout(&d, &img, "localhost/tampered:1");
    let blob = d
        .join("blobs/sha256")
        .join(img.layers[0].0.strip_prefix("sha256:").unwrap());
    fs::write(&blob, gzip(&layer(&[E::File("f", b"evil", 0o644)]))).unwrap();
    let a = work.path().join("tampered.tar");
    tar_dir(&d, &a);
    expect_failure_leaves_store(root.path(), &a, |e| {
        matches!(e, Error::DigestMismatch { .. })
    });

    // 4. truncated archive
    let (full, _) = oci_archive(&work.path().join("t"), "localhost/trunc:1");
    let bytes = fs::read(&full).unwrap();
    let a = work.path().join("trunc.tar");
    fs::write(&a, &bytes[..bytes.len() / 2]).unwrap();
    expect_failure_leaves_store(root.path(), &a, |e| matches!(e, Error::BadArchive { .. }));

    // 5. diff ID in the config does not match the layer
    let mut img = image(&[layer(&[E::File("f", b"x", 0o644)])], &[], "amd64");
    img.config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(b"something else")]}}))
    .unwrap();
    img.config_digest = sha(&img.config);
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.config_digest, "size": img.config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": img.layers[0].0, "size": img.layers[0].1.len()}]});
    img.manifest = serde_json::to_vec(&m).unwrap();
    img.manifest_digest = sha(&img.manifest);
    let d = work.path().join("diffid");
    write_oci_layout(&d, &img, "localhost/diffid:1");
    let a = work.path().join("diffid.tar");
    tar_dir(&d, &a);
    expect_failure_leaves_store(root.path(), &a, |e| e.to_string().contains("diff ID"));

    // 6. not an archive at all / missing file
    let a = work.path().join("garbage.tar");
    fs::write(&a, b"this is not a tar file at all, just text").unwrap();
    expect_failure_leaves_store(root.path(), &a, |e| matches!(e, Error::BadArchive { .. }));
    expect_failure_leaves_store(root.path(), &work.path().join("nope.tar"), |e| {
        matches!(e, Error::Io { .. })
    });

    // 7. an index with only another platform
    let img = image(&[layer(&[E::File("f", b"arm", 0o644)])], &[], "s390x");
    let d = work.path().join("platform");
    write_oci_layout(&d, &img, "x");
    let nested = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.manifest_digest, "size": img.manifest.len(),
                       "platform": {"os": "linux", "architecture": "s390x"}}]})).unwrap();
    fs::write(
        d.join("blobs/sha256")
            .join(sha(&nested).strip_prefix("sha256:").unwrap()),
        &nested,
    )
    .unwrap();
    fs::write(d.join("index.json"), serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(&nested), "size": nested.len(),
         "annotations": {"org.opencontainers.image.ref.name": "localhost/s390x:1"}}]})).unwrap()).unwrap();
    let a = work.path().join("platform.tar");
    tar_dir(&d, &a);
    expect_failure_leaves_store(root.path(), &a, |e| {
        matches!(e, Error::NoPlatform { .. }) && e.to_string().contains("linux/s390x")
    });

    // the good image is intact and mountable
    let st = Store::open(root.path()).unwrap();
    let i = st.resolve("localhost/test/good:1").unwrap();
    let m = st.mount_rootfs(&i, "after", false).unwrap();
    assert_eq!(fs::read(m.join("etc/os-release")).unwrap(), b"top\n");
    st.unmount_rootfs("after").unwrap();
    assert!(matches!(
        st.resolve("nosuchimage"),
        Err(Error::ImageNotKnown(_))
    ));
}

#[test]
fn concurrent_loads_of_the_same_image() {
    let work = store_dir();
    let (arch, img) = oci_archive(work.path(), "localhost/test/conc:1");
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Store::open(root.path()).unwrap().load_archive(&arch)))
            .collect();
        for h in hs {
            h.join().unwrap().unwrap();
        }
    });
    let all = st.list().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id.to_string(), img.config_digest);
    assert_eq!(count(root.path(), "layers"), 2);
    assert_eq!(count(root.path(), "blobs/sha256"), 4);
    let m = st.mount_rootfs(&all[0], "k", false).unwrap();
    assert_eq!(fs::read(m.join("var/cache/fresh")).unwrap(), b"fresh\n");
    st.unmount_rootfs("k").unwrap();
    assert_clean(root.path());
}

#[test]
fn prune_removes_unused_and_stale() {
    let work = store_dir();
    let (arch, _) = oci_archive(work.path(), "localhost/test/p:1");
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    st.load_archive(&arch).unwrap();
    // leftovers of an interrupted operation and an unreferenced blob
    fs::create_dir(root.path().join("tmp/999999999-0-0-layer")).unwrap();
    fs::write(root.path().join("images.tmp999999999"), b"{half").unwrap();
    fs::write(
        root.path().join("blobs/sha256").join("0".repeat(64)),
        b"orphan",
    )
    .unwrap();
    fs::create_dir(root.path().join("layers").join("1".repeat(64))).unwrap();
    let r = st.prune().unwrap();
    assert_eq!((r.images.len(), r.blobs, r.layers), (0, 1, 1));
    assert!(tmp_entries(root.path()).is_empty());
    assert!(!root.path().join("images.tmp999999999").exists());
    assert_eq!(st.list().unwrap().len(), 1, "named images stay");
    // a mounted container keeps its layers even when the image is gone by name
    let i = st.resolve("localhost/test/p:1").unwrap();
    st.mount_rootfs(&i, "keep", false).unwrap();
    assert!(
        st.remove("localhost/test/p:1").is_err(),
        "last name of an image in use"
    );
    st.unmount_rootfs("keep").unwrap();
    st.remove("localhost/test/p:1").unwrap();
    assert_eq!(st.prune().unwrap().images.len(), 0);
    assert_eq!(count(root.path(), "layers"), 0);
    assert_clean(root.path());
}

#[test]
fn bad_container_keys() {
    let root = store_dir();
    let st = Store::open(root.path()).unwrap();
    assert!(matches!(st.unmount_rootfs("../x"), Err(Error::BadKey(_))));
}

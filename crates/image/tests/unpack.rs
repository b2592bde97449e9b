//! Unpacking real layer tars (as root): content, metadata, whiteouts, and hostile archives.

mod common;
use common::*;
use podrun_image::unpack::unpack_layer;
use podrun_image::Error;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn unpack(
    data: &[u8],
) -> (
    tempfile::TempDir,
    Result<podrun_image::unpack::UnpackStats, Error>,
) {
    let d = store_dir();
    let r = unpack_layer(data, d.path());
    (d, r)
}

#[test]
fn content_metadata_links_devices() {
    let l = layer(&[
        E::Dir("./", 0o755),
        E::Dir("etc/", 0o755),
        E::File("etc/hello", b"hi\n", 0o640),
        E::FileOwned("etc/owned", b"x", 0o4755, 1234, 5678),
        E::Symlink("etc/link", "hello"),
        E::Symlink("bin-sh", "/bin/busybox"),
        E::Hardlink("etc/hard", "etc/hello"),
        E::Char("dev-null", 1, 3),
        E::Fifo("fifo"),
        E::File("deep/a/b/c", b"implicit parents", 0o600),
        E::FileXattr("attr", b"x", "user.podrun", b"yes"),
    ]);
    let (d, r) = unpack(&l);
    let st = r.unwrap();
    assert_eq!(st.diff_id.to_string(), sha(&l));
    let p = d.path();
    assert_eq!(fs::read(p.join("etc/hello")).unwrap(), b"hi\n");
    assert_eq!(
        fs::metadata(p.join("etc/hello")).unwrap().mode() & 0o7777,
        0o640
    );
    let o = fs::metadata(p.join("etc/owned")).unwrap();
    assert_eq!(
        (o.uid(), o.gid(), o.mode() & 0o7777),
        (1234, 5678, 0o4755),
        "owner and setuid kept"
    );
    assert_eq!(
        fs::read_link(p.join("etc/link")).unwrap().to_str(),
        Some("hello")
    );
    assert_eq!(
        fs::read_link(p.join("bin-sh")).unwrap().to_str(),
        Some("/bin/busybox")
    );
    assert_eq!(
        fs::metadata(p.join("etc/hard")).unwrap().ino(),
        fs::metadata(p.join("etc/hello")).unwrap().ino()
    );
    let dn = fs::symlink_metadata(p.join("dev-null")).unwrap();
    assert!(dn.file_type().is_char_device());
    assert_eq!(dn.rdev(), libc::makedev(1, 3));
    assert!(fs::symlink_metadata(p.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(fs::read(p.join("deep/a/b/c")).unwrap(), b"implicit parents");
    assert_eq!(
        fs::metadata(p.join("etc/hello")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::metadata(p.join("etc")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime set after children"
    );
    assert_eq!(
        podrun_image::xattr::get(&p.join("attr"), b"user.podrun")
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
}

#[test]
fn same_diff_id_for_every_compression() {
    let l = layer(&[E::File("a", b"aaaa", 0o644), E::Dir("d/", 0o755)]);
    for data in [l.clone(), gzip(&l), zstd(&l)] {
        let (d, r) = unpack(&data);
        assert_eq!(r.unwrap().diff_id.to_string(), sha(&l));
        assert_eq!(fs::read(d.path().join("a")).unwrap(), b"aaaa");
    }
}

#[test]
fn whiteouts_become_overlay_markers() {
    let l = layer(&[
        E::Dir("etc/", 0o755),
        E::File("etc/.wh.gone", b"", 0o644),
        E::Dir("var/", 0o755),
        E::File("var/.wh..wh..opq", b"", 0o644),
        E::File("var/new", b"n", 0o644),
        E::File(".wh..wh.plnk", b"", 0o644),
    ]);
    let (d, r) = unpack(&l);
    r.unwrap();
    let w = fs::symlink_metadata(d.path().join("etc/gone")).unwrap();
    assert!(w.file_type().is_char_device());
    assert_eq!(w.rdev(), 0);
    assert!(!d.path().join("etc/.wh.gone").exists());
    assert_eq!(
        podrun_image::xattr::get(&d.path().join("var"), b"trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!d.path().join(".wh..wh.plnk").exists());
}

#[test]
fn later_entries_replace_earlier() {
    let l = layer(&[
        E::File("x", b"1", 0o644),
        E::File("x", b"2", 0o644),
        E::Dir("y/", 0o755),
        E::File("y/f", b"", 0o644),
        E::File("y", b"file now", 0o644),
    ]);
    let (d, r) = unpack(&l);
    r.unwrap();
    assert_eq!(fs::read(d.path().join("x")).unwrap(), b"2");
    assert_eq!(fs::read(d.path().join("y")).unwrap(), b"file now");
}

fn assert_unsafe(entries: &[E], needle: &str) {
    let (d, r) = unpack(&layer(entries));
    match r {
        Err(e @ Error::UnsafeArchive { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "message {msg:?} should mention {needle:?}"
            );
        }
        other => panic!("expected UnsafeArchive, got {other:?}"),
    }
    // nothing was written next to the layer dir
    assert!(!d.path().parent().unwrap().join("evil").exists());
}

#[test]
fn rejects_dotdot_paths() {
    assert_unsafe(&[E::File("../evil", b"x", 0o644)], "..");
    assert_unsafe(&[E::File("a/../../evil", b"x", 0o644)], "..");
}

#[test]
fn rejects_escaping_symlink() {
    assert_unsafe(&[E::Symlink("evil", "../../../../etc")], "outside");
    assert_unsafe(
        &[E::Dir("a/", 0o755), E::Symlink("a/evil", "../../x")],
        "outside",
    );
}

#[test]
fn rejects_writing_through_symlinks() {
    // An absolute link is fine as a link, but nothing may be written through it.
    assert_unsafe(
        &[
            E::Symlink("etc", "/etc"),
            E::File("etc/passwd", b"pwned", 0o644),
        ],
        "symlink",
    );
    assert_unsafe(
        &[E::Symlink("l", "."), E::File("l/x", b"", 0o644)],
        "symlink",
    );
    assert_ne!(fs::read("/etc/passwd").unwrap(), b"pwned");
}

#[test]
fn rejects_bad_hardlinks() {
    assert_unsafe(&[E::Hardlink("h", "../../etc/passwd")], "..");
    assert_unsafe(
        &[E::Hardlink("h", "/etc/passwd")],
        "not a directory of this layer",
    );
    assert_unsafe(&[E::Hardlink("h", "/missing")], "not in this layer");
    assert_unsafe(
        &[E::Symlink("s", "/etc"), E::Hardlink("h", "s/passwd")],
        "not a directory of this layer",
    );
}

#[test]
fn truncated_streams_fail() {
    let l = layer(&[E::File("big", &vec![7u8; 100_000], 0o644)]);
    let (_d, r) = unpack(&l[..30_000]);
    assert!(matches!(r, Err(Error::BadArchive { .. })), "{r:?}");
    let g = gzip(&l);
    let (_d, r) = unpack(&g[..g.len() - 20]);
    assert!(matches!(r, Err(Error::BadArchive { .. })), "{r:?}");
    let (_d, r) = unpack(b"");
    assert!(r.is_err());
}

#[test]
fn modes_and_owners_exact_despite_umask_and_setgid_dirs() {
    let l = layer(&[
        E::DirOwned("sg/", 0o2775, 0, 42),
        E::File("sg/f", b"", 0o666),
        E::FileOwned("sg/g", b"", 0o640, 0, 7),
        E::File("plain", b"", 0o777),
    ]);
    let (d, r) = unpack(&l);
    r.unwrap();
    let p = d.path();
    let sg = fs::metadata(p.join("sg")).unwrap();
    assert_eq!((sg.gid(), sg.mode() & 0o7777), (42, 0o2775));
    let f = fs::metadata(p.join("sg/f")).unwrap();
    assert_eq!(
        (f.uid(), f.gid(), f.mode() & 0o7777),
        (0, 0, 0o666),
        "group not inherited from the setgid dir, umask not applied"
    );
    assert_eq!(fs::metadata(p.join("sg/g")).unwrap().gid(), 7);
    assert_eq!(
        fs::metadata(p.join("plain")).unwrap().mode() & 0o7777,
        0o777
    );
}

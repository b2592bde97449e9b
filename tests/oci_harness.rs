//! The harness's own guarantees: the leak check is not vacuous, ids and
//! cgroup paths are unique, the default config is `runc spec`'s.
mod common;

use common::*;
use std::fs;

#[test]
fn leftover_check_detects_each_kind_of_leak() {
    let mut c = Ctr::new("harness-leaks");
    // Fake a leaked cgroup, mount and state dir; the guard must see all three.
    let cg = c.cgroup_dir("memory");
    fs::create_dir_all(&cg).unwrap();
    let mnt = c.dir.join("leaked-mount");
    fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    fs::create_dir_all(&c.root).unwrap();
    fs::write(c.root.join(format!("{}:state.json", c.id)), "{}").unwrap();
    let left = c.leftovers();
    assert!(
        left.iter()
            .any(|l| l.starts_with("cgroup left") && l.contains("/memory/")),
        "{left:?}"
    );
    assert!(left.iter().any(|l| l.starts_with("mount left")), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("state left")), "{left:?}");
    // Let the guard clean up without failing this test, then verify it did.
    fs::remove_file(c.root.join(format!("{}:state.json", c.id))).unwrap();
    c.check_leftovers = false;
    let dir = c.dir.clone();
    drop(c);
    assert!(!cg.exists(), "guard did not remove the leaked cgroup");
    assert!(
        !mount_points()
            .iter()
            .any(|m| m.starts_with(dir.to_str().unwrap())),
        "guard did not unmount"
    );
    assert!(!dir.exists(), "guard did not remove the test dir");
}

#[test]
fn ids_and_cgroup_paths_unique() {
    let a = Ctr::new("same");
    let b = Ctr::new("same");
    assert_ne!(a.id, b.id);
    assert_ne!(a.cgroups_path, b.cgroups_path);
    assert_ne!(a.root, b.root);
    assert!(a.cgroups_path.starts_with("podrun-test/"));
}

#[test]
fn default_config_is_runc_spec_with_terminal_off() {
    let c = Ctr::new("harness-spec");
    let mut want = runc_spec();
    want["process"]["terminal"] = serde_json::json!(false);
    want["linux"]["cgroupsPath"] = serde_json::json!(c.cgroups_path);
    assert_eq!(c.config, want);
    assert!(c.rootfs.join("bin/busybox").is_file());
    assert!(c
        .rootfs
        .join("bin/sh")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(c.rootfs.join("etc/passwd"))
        .unwrap()
        .contains("user:x:1000:1000"));
}

//! Mounts: tmpfs options, bind ro/rw, proc/sysfs/dev, masked and readonly
//! paths, readonly rootfs.
mod common;

use common::*;
use serde_json::json;
use std::fs;

/// Mount options (per-mount and super options) of `dest` as seen inside,
/// from a dump of /proc/self/mountinfo.
fn mount_opts(mountinfo: &str, dest: &str) -> Option<String> {
    mountinfo.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&dest)).then(|| {
            let (_, post) = l.split_once(" - ").unwrap();
            format!(
                "{} {} {}",
                f[5],
                post.split(' ').next().unwrap(),
                post.split(' ').nth(2).unwrap_or("")
            )
        })
    })
}

#[test]
fn tmpfs_with_size_and_mode() {
    let mut c = Ctr::new("mnt-tmpfs");
    c.add_mount(
        json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "size=1m", "mode=750"]}),
    );
    let o = c.run_sh("stat -c %a /data; cat /proc/self/mountinfo; touch /data/ok && echo writable");
    assert_ok(&o, "run");
    let s = stdout(&o);
    assert_eq!(s.lines().next(), Some("750"), "{s}");
    let opts = mount_opts(&s, "/data").unwrap_or_else(|| panic!("/data not mounted: {s}"));
    assert!(opts.contains("tmpfs"), "{opts}");
    assert!(opts.contains("size=1024k"), "{opts}");
    assert!(opts.contains("nosuid") && opts.contains("nodev"), "{opts}");
    assert!(s.contains("writable"), "{s}");
}

#[test]
fn bind_mount_readonly() {
    let mut c = Ctr::new("mnt-bindro");
    let host = c.dir.join("shared-ro");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("hello"), "from-host\n").unwrap();
    c.bind(&host, "/ro", true);
    let o = c
        .run_sh("cat /ro/hello; touch /ro/new 2>/dev/null && echo WROTE; cat /proc/self/mountinfo");
    assert_ok(&o, "run");
    let s = stdout(&o);
    assert!(s.starts_with("from-host\n"), "{s}");
    assert!(!s.contains("WROTE"), "wrote through a ro bind: {s}");
    assert!(!host.join("new").exists());
    let opts = mount_opts(&s, "/ro").expect("/ro mounted");
    assert!(opts.starts_with("ro"), "{opts}");
}

#[test]
fn bind_mount_readwrite_and_file() {
    let mut c = Ctr::new("mnt-bindrw");
    let host = c.dir.join("shared-rw");
    fs::create_dir(&host).unwrap();
    let file = c.dir.join("single-file");
    fs::write(&file, "one-file\n").unwrap();
    c.bind(&host, "/rw", false);
    c.add_mount(json!({"destination": "/etc/single", "type": "bind", "source": file, "options": ["bind", "ro"]}));
    let o = c.run_sh("echo from-container > /rw/out; cat /etc/single");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "one-file\n");
    assert_eq!(
        fs::read_to_string(host.join("out")).unwrap(),
        "from-container\n"
    );
}

#[test]
fn mount_destination_created_under_readonly_rootfs() {
    let mut c = Ctr::new("mnt-mkdir");
    c.add_mount(json!({"destination": "/a/b/c", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}));
    let o = c.run_sh("grep -c ' /a/b/c ' /proc/self/mountinfo");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o).trim(), "1");
}

#[test]
fn proc_sys_dev_mounted() {
    let mut c = Ctr::new("mnt-std");
    let o = c.run_sh(
        "cat /proc/self/mountinfo; for d in null zero full random urandom tty; do test -c /dev/$d && echo DEV-$d; done; \
         echo x > /dev/null && echo NULL-WRITABLE; test -d /sys/kernel && echo SYSFS; readlink /proc/self/exe",
    );
    assert_ok(&o, "run");
    let s = stdout(&o);
    assert!(mount_opts(&s, "/proc").unwrap().contains(" proc "), "{s}");
    let sys = mount_opts(&s, "/sys").unwrap();
    assert!(
        sys.contains(" sysfs ") && sys.starts_with("ro"),
        "/sys: {sys}"
    );
    assert!(mount_opts(&s, "/dev").unwrap().contains(" tmpfs "), "{s}");
    assert!(
        mount_opts(&s, "/dev/pts").unwrap().contains(" devpts "),
        "{s}"
    );
    assert!(
        mount_opts(&s, "/dev/shm").unwrap().contains(" tmpfs "),
        "{s}"
    );
    assert!(
        mount_opts(&s, "/dev/mqueue").unwrap().contains(" mqueue "),
        "{s}"
    );
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        assert!(
            s.contains(&format!("DEV-{d}\n")),
            "default device /dev/{d} missing: {s}"
        );
    }
    assert!(s.contains("NULL-WRITABLE") && s.contains("SYSFS"), "{s}");
    assert!(s.trim_end().ends_with("/bin/busybox"), "{s}");
}

#[test]
fn masked_paths() {
    let mut c = Ctr::new("mnt-masked");
    c.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/secret"));
    // A second masked directory (the first, /sys/firmware, gets the tmpfs; this one a bind
    // of it): empty and read-only too.
    c.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/etc/secretdir"));
    fs::write(c.rootfs.join("etc/secret"), "top-secret\n").unwrap();
    fs::create_dir_all(c.rootfs.join("etc/secretdir")).unwrap();
    fs::write(c.rootfs.join("etc/secretdir/key"), "top-secret\n").unwrap();
    let o = c.run_sh(
        "wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; cat /etc/secret | wc -c; cat /proc/keys | wc -c; \
         ls -A /etc/secretdir | wc -l; \
         touch /etc/secretdir/x 2>/dev/null && echo WROTE-DIR; touch /sys/firmware/x 2>/dev/null && echo WROTE-FW; \
         grep -c ' /etc/secretdir ro' /proc/self/mountinfo",
    );
    assert_ok(&o, "run");
    let out = stdout(&o);
    let v: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        v,
        ["0", "0", "0", "0", "0", "1"],
        "masked paths readable or writable: {}",
        describe(&o)
    );
    assert_eq!(
        fs::read_to_string(c.rootfs.join("etc/secretdir/key")).unwrap(),
        "top-secret\n",
        "the masked directory's content is only hidden"
    );
}

#[test]
fn readonly_paths() {
    let mut c = Ctr::new("mnt-ropaths");
    let o = c.run_sh(
        "cat /proc/self/mountinfo; echo podrun-x > /proc/sys/kernel/hostname 2>/dev/null && echo WROTE; hostname",
    );
    assert_ok(&o, "run");
    let s = stdout(&o);
    for p in [
        "/proc/sys",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sysrq-trigger",
    ] {
        if let Some(opts) = mount_opts(&s, p) {
            assert!(opts.starts_with("ro"), "{p} not read-only: {opts}");
        } else if p == "/proc/sys" {
            panic!("{p} not remounted read-only: {s}");
        }
    }
    assert!(!s.contains("WROTE"), "{s}");
    assert!(s.trim_end().ends_with("runc"), "hostname unchanged: {s}");
}

#[test]
fn readonly_rootfs() {
    let mut c = Ctr::new("mnt-rorootfs");
    let o = c.run_sh("touch /newfile 2>/dev/null && echo WROTE; touch /tmp/x 2>/dev/null && echo WROTE-TMP; true");
    assert_ok(&o, "run");
    assert_eq!(
        stdout(&o),
        "",
        "readonly rootfs was written: {}",
        describe(&o)
    );
    assert!(!c.rootfs.join("newfile").exists());
}

#[test]
fn writable_rootfs() {
    let mut c = Ctr::new("mnt-rwrootfs");
    c.readonly_rootfs(false);
    let o = c.run_sh("echo data > /newfile && echo WROTE");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "WROTE\n");
    assert_eq!(
        fs::read_to_string(c.rootfs.join("newfile")).unwrap(),
        "data\n"
    );
}

#[test]
fn host_mounts_not_visible_and_not_leaked() {
    let mut c = Ctr::new("mnt-isolated");
    c.add_mount(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
    c.sh("sleep 1000");
    c.create();
    let pid = c.pid();
    // The container's mounts live in its own mount namespace only.
    let inside = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        inside.lines().any(|l| l.split(' ').nth(4) == Some("/data")),
        "{inside}"
    );
    assert!(
        !mount_points()
            .iter()
            .any(|m| m.starts_with(c.dir.to_str().unwrap())),
        "container mounts visible in the host namespace"
    );
    let dir = c.dir.to_str().unwrap();
    assert!(
        !inside.lines().any(|l| l
            .split(' ')
            .nth(4)
            .map(|m| m.starts_with(dir))
            .unwrap_or(false)),
        "the bundle path is still a mount point inside (no pivot_root?): {inside}"
    );
}

#[test]
fn linux_devices_created() {
    let mut c = Ctr::new("mnt-devices");
    c.config["linux"]["devices"] = json!([
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 432, "uid": 0, "gid": 0}
    ]);
    c.resources(json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
    ]}));
    let o = c.run_sh("stat -c '%F %t:%T %a' /dev/mynull; echo x > /dev/mynull && echo WROTE");
    assert_ok(&o, "run");
    assert_eq!(
        stdout(&o),
        "character special file 1:3 660\nWROTE\n",
        "{}",
        describe(&o)
    );
}

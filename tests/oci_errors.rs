//! Bad input: each case exits non-zero with one clear error naming the
//! culprit (id, file, field) and leaves nothing behind (checked by the guard).
mod common;

use common::*;
use serde_json::json;
use std::fs;

#[test]
fn unknown_id() {
    let c = Ctr::new("err-unknown");
    let ghost = format!("{}-ghost", c.id);
    for args in [
        vec!["state", ghost.as_str()],
        vec!["start", ghost.as_str()],
        vec!["kill", ghost.as_str(), "KILL"],
        vec!["delete", ghost.as_str()],
        vec!["pause", ghost.as_str()],
        vec!["resume", ghost.as_str()],
        vec!["ps", ghost.as_str()],
        vec!["exec", ghost.as_str(), "true"],
    ] {
        let o = c.rt(&args);
        assert_error(&o, &[], &[&ghost]);
    }
}

#[test]
fn delete_force_unknown_id_is_ok_or_clear() {
    // runc: `delete --force` of a missing container succeeds silently.
    let c = Ctr::new("err-delforce");
    let o = c.rt(&["delete", "--force", &format!("{}-ghost", c.id)]);
    assert_ok(&o, "delete --force of an unknown id");
}

#[test]
fn missing_config_json() {
    let c = Ctr::new("err-noconfig");
    let b = c.bundle.to_str().unwrap().to_string();
    let o = c.rt(&["create", "--bundle", &b, &c.id]);
    assert_error(&o, &["config.json"], &[]);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[test]
fn missing_bundle_dir() {
    let c = Ctr::new("err-nobundle");
    let b = c.dir.join("no-such-bundle");
    let o = c.rt(&["create", "--bundle", b.to_str().unwrap(), &c.id]);
    assert_error(&o, &[], &["no-such-bundle"]);
}

#[test]
fn malformed_config_json() {
    let c = Ctr::new("err-badjson");
    fs::write(
        c.bundle.join("config.json"),
        "{ \"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    let b = c.bundle.to_str().unwrap().to_string();
    let o = c.rt(&["create", "--bundle", &b, &c.id]);
    assert_error(&o, &[], &["config.json"]);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[test]
fn unknown_namespace_type() {
    let mut c = Ctr::new("err-badns");
    c.namespace("bogusns", None);
    let o = c.try_create();
    assert_error(&o, &["bogusns"], &[]);
}

#[test]
fn id_already_in_use() {
    let mut c = Ctr::new("err-dupid");
    c.start_sleeper();
    let pid = c.pid();
    let o = c.try_create();
    assert_error(&o, &[], &[&c.id]);
    // the first container is untouched
    assert_eq!(c.status(), "running");
    assert_eq!(c.pid(), pid);
}

#[test]
fn bundle_without_rootfs() {
    let mut c = Ctr::new("err-norootfs");
    c.config["root"]["path"] = json!("missing-rootfs");
    let o = c.try_create();
    assert_error(&o, &["missing-rootfs"], &[]);
}

#[test]
fn missing_process_args() {
    let mut c = Ctr::new("err-noargs");
    c.config["process"]["args"] = json!([]);
    let o = c.try_create();
    assert_error(&o, &["args"], &[]);
}

#[test]
fn invalid_container_id() {
    let c = Ctr::new("err-badid");
    c.save();
    let b = c.bundle.to_str().unwrap().to_string();
    for bad in ["../escape", "a/b", ""] {
        let o = c.rt(&["create", "--bundle", &b, bad]);
        assert!(!o.status.success(), "id {bad:?} accepted: {}", describe(&o));
    }
    assert!(
        !c.dir.join("escape").exists(),
        "state written outside --root"
    );
    // Hidden entries are runtime-wide (e.g. podrun's .exe-lower), not containers.
    let left: Vec<_> = fs::read_dir(&c.root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| !n.to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a rejected id left state in --root: {left:?}"
    );
}

#[test]
fn entrypoint_not_found() {
    // runc fails `create`/`run` when the binary does not exist in the rootfs.
    let mut c = Ctr::new("err-noentry");
    c.args(&["/no/such/entrypoint"]);
    let o = c.run();
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        stderr(&o).contains("/no/such/entrypoint"),
        "error names the binary: {}",
        describe(&o)
    );
}

#[test]
fn bad_signal_name() {
    let mut c = Ctr::new("err-badsig");
    c.start_sleeper();
    let o = c.rt(&["kill", &c.id, "SIGNOPE"]);
    assert_error(&o, &["SIGNOPE"], &[]);
    assert_eq!(c.status(), "running");
}

#[test]
fn bad_cgroup_value_fails_and_leaves_nothing() {
    let mut c = Ctr::new("err-badcg");
    c.resources(json!({"cpu": {"cpus": "9999"}}));
    c.args(&["true"]);
    let o = c.try_create();
    assert_error(&o, &[], &["cpus"]);
}

#[test]
fn bind_source_missing_fails_halfway_and_leaves_nothing() {
    // Earlier mounts (proc, /dev, tmpfs...) are done when this one fails.
    let mut c = Ctr::new("err-bindsrc");
    let missing = c.dir.join("no-such-source");
    c.add_mount(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
    c.bind(&missing, "/missing", false);
    c.args(&["true"]);
    let o = c.try_create();
    assert_error(&o, &[], &["no-such-source"]);
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[test]
fn unknown_filesystem_type() {
    let mut c = Ctr::new("err-fstype");
    c.add_mount(json!({"destination": "/data", "type": "bogusfs", "source": "none"}));
    c.args(&["true"]);
    let o = c.try_create();
    assert_error(&o, &[], &["/data"]);
}

#[test]
fn unknown_sysctl() {
    let mut c = Ctr::new("err-sysctl");
    c.config["linux"]["sysctl"] = json!({"net.bogus.key": "1"});
    c.args(&["true"]);
    let o = c.try_create();
    // runc names the /proc/sys path, podrun the key
    assert_error(&o, &["bogus"], &["net.bogus.key"]);
}

#[test]
fn hostname_without_uts_namespace() {
    let mut c = Ctr::new("err-hostname");
    c.remove_namespace("uts");
    c.args(&["true"]);
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = c.try_create();
    assert_error(&o, &[], &["hostname"]);
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_before,
        "host hostname changed!"
    );
}

/// runc warns and ignores capabilities it does not know (so that configs
/// naming caps newer than the kernel still run); failing is also acceptable.
/// Either way the name is reported and nothing extra is granted.
#[test]
fn unknown_capability() {
    let mut c = Ctr::new("err-cap");
    c.caps(&["CAP_KILL", "CAP_BOGUS"]);
    c.sh("grep CapEff /proc/self/status");
    let o = c.run();
    assert!(
        stderr(&o).contains("CAP_BOGUS"),
        "CAP_BOGUS not reported: {}",
        describe(&o)
    );
    if o.status.success() {
        assert_eq!(
            cap_mask(&stdout(&o), "CapEff"),
            caps_to_mask(&["CAP_KILL"]),
            "{}",
            describe(&o)
        );
    } else {
        assert_error(&o, &["CAP_BOGUS"], &[]);
    }
}

#[test]
fn unknown_rlimit_type() {
    let mut c = Ctr::new("err-rlimit-type");
    c.rlimits(json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]));
    c.args(&["true"]);
    let o = c.try_create();
    assert_error(&o, &["RLIMIT_BOGUS"], &[]);
}

#[test]
fn namespace_path_missing() {
    let mut c = Ctr::new("err-nspath");
    let p = format!("{}/no-such-netns", c.dir.display());
    c.namespace("network", Some(&p));
    c.args(&["true"]);
    let o = c.try_create();
    assert_error(&o, &[], &["no-such-netns"]);
}

/// The state dir lock must make concurrent creates of one id safe. runc 1.1.5
/// is racy here (all creates can fail, with "exec fifo already exists" and
/// cgroup rmdir EBUSY): this test fails intermittently on runc.
#[test]
fn concurrent_creates_same_id_exactly_one_wins() {
    let mut c = Ctr::new("err-race");
    c.args(&["sleep", "1000"]);
    c.save();
    let b = c.bundle.to_str().unwrap().to_string();
    let mut children = Vec::new();
    for i in 0..4 {
        let mut cmd = c.command(&["create", "--bundle", &b, &c.id]);
        let out = c.dir.join(format!("race-{i}.out"));
        cmd.stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(c.dir.join(format!("race-{i}.err"))).unwrap());
        children.push(cmd.spawn().unwrap());
    }
    let wins = children
        .iter_mut()
        .map(|ch| wait_child(ch, "concurrent create", CMD_TIMEOUT))
        .filter(|st| st.success())
        .count();
    let errs: Vec<String> = (0..4)
        .map(|i| fs::read_to_string(c.dir.join(format!("race-{i}.err"))).unwrap_or_default())
        .collect();
    assert_eq!(
        wins, 1,
        "exactly one concurrent create of the same id must succeed; stderr: {errs:#?}"
    );
    assert_eq!(c.status(), "created");
    // only one container's processes exist in the cgroup
    let procs = fs::read_to_string(c.cgroup_dir("pids").join("cgroup.procs")).unwrap();
    assert_eq!(procs.lines().count(), 1, "{procs}");
}

#[test]
fn wrong_state_operations() {
    let mut c = Ctr::new("err-wrongstate");
    c.args(&["true"]);
    c.create();
    c.start();
    c.wait_status("stopped");
    for args in [
        vec!["start", c.id.as_str()],
        vec!["pause", c.id.as_str()],
        vec!["resume", c.id.as_str()],
    ] {
        let o = c.rt(&args);
        assert_error(&o, &[], &[&c.id]);
    }
}

/// The program vanished between `create` (which checks it) and `start`: the init's execve
/// fails after start released it, and `start` reports that error instead of succeeding.
#[test]
fn start_reports_an_exec_failure() {
    let mut c = Ctr::new("start-exec-fails");
    std::fs::copy(c.rootfs.join("bin/busybox"), c.rootfs.join("bin/vanishing")).unwrap();
    c.args(&["/bin/vanishing", "true"]);
    c.create();
    std::fs::remove_file(c.rootfs.join("bin/vanishing")).unwrap();
    let o = c.rt(&["start", &c.id]);
    assert_error(&o, &[], &["/bin/vanishing"]);
    c.wait_status("stopped");
    c.delete();
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

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

//! OCI lifecycle: create/start/state/kill/delete/run/list/ps/pause/resume.
//! Runs against `$PODRUN_TEST_RUNTIME` (e.g. /usr/sbin/runc) or podrun.
mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;

#[test]
fn create_start_state_transitions() {
    let mut c = Ctr::new("lifecycle");
    c.config["annotations"] = json!({"org.podrun.test": "yes"});
    c.sh("echo started; read x < /dev/null; sleep 1000");
    c.create();

    let st = c.state();
    assert_eq!(st["status"], "created", "state after create: {st}");
    assert_eq!(st["id"], c.id.as_str());
    assert!(
        st["ociVersion"]
            .as_str()
            .map(|v| v.starts_with("1."))
            .unwrap_or(false),
        "ociVersion: {st}"
    );
    let pid = st["pid"].as_i64().expect("pid");
    assert!(
        pid > 0 && pid_alive(pid),
        "created container has a live init pid: {st}"
    );
    assert_eq!(st["bundle"].as_str().unwrap(), c.bundle.to_str().unwrap());
    assert_eq!(
        st["annotations"]["org.podrun.test"], "yes",
        "annotations: {st}"
    );
    let created = st["created"].as_str().expect("created");
    assert!(
        created.len() >= 20 && created.contains('T'),
        "created is RFC3339: {created}"
    );
    assert!(st.get("owner").is_some(), "owner field present: {st}");
    // The user process has not run yet.
    assert_eq!(c.container_stdout(), "", "process ran before start");

    c.start();
    c.wait_status("running");
    assert_eq!(c.pid(), pid, "start keeps the init pid");
    poll("container output", WAIT, || {
        c.container_stdout().contains("started").then_some(())
    });

    // start twice is an error
    let o = c.rt(&["start", &c.id]);
    assert!(
        !o.status.success(),
        "second start must fail: {}",
        describe(&o)
    );

    c.kill("KILL");
    c.wait_status("stopped");
    assert!(!pid_alive(pid), "init pid {pid} gone after SIGKILL");
    c.delete();
    let o = c.try_state();
    assert_error(&o, &[], &[&c.id]);
}

#[test]
fn start_runs_to_stopped() {
    let mut c = Ctr::new("tostopped");
    c.args(&["true"]);
    c.create();
    c.start();
    c.wait_status("stopped");
    c.delete();
}

#[test]
fn run_propagates_exit_codes() {
    for (script, want) in [("true", 0), ("exit 3", 3), ("exit 255", 255)] {
        let mut c = Ctr::new("exitcode");
        let o = c.run_sh(script);
        assert_eq!(code(&o.status), want, "run {script:?}: {}", describe(&o));
        // run deletes the container once it exits
        assert!(!c.root.join(&c.id).exists(), "run left its state");
    }
}

#[test]
fn run_stdout_stderr_passthrough() {
    let mut c = Ctr::new("stdio");
    let o = c.run_sh("echo to-out; echo to-err >&2");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "to-out\n");
    assert!(stderr(&o).contains("to-err"), "{}", describe(&o));
}

#[test]
fn run_reports_137_when_sigkilled() {
    let mut c = Ctr::new("sigkill137");
    c.args(&["sleep", "1000"]);
    c.save();
    let b = c.bundle.to_str().unwrap().to_string();
    let out = c.dir.join("run.out");
    let err = c.dir.join("run.err");
    let mut cmd = c.command(&["run", "--bundle", &b, &c.id]);
    cmd.stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap();
    poll("running", WAIT, || {
        let o = c.try_state();
        (o.status.success()
            && serde_json::from_slice::<Value>(&o.stdout).ok()?["status"] == "running")
            .then_some(())
    });
    c.kill("KILL");
    let st = wait_child(&mut child, "run", CMD_TIMEOUT);
    assert_eq!(
        code(&st),
        137,
        "run of a SIGKILLed container: stderr {:?}",
        fs::read_to_string(&err)
    );
}

#[test]
fn run_detached() {
    let mut c = Ctr::new("rund");
    c.sh("echo detached-ok; sleep 1000");
    let o = c.run_detached();
    assert_ok(&o, "run -d");
    c.wait_status("running");
    poll("output", WAIT, || {
        c.container_stdout().contains("detached-ok").then_some(())
    });
    let o = c.rt(&["delete", "--force", &c.id]);
    assert_ok(&o, "delete --force");
}

#[test]
fn kill_signal_names_and_numbers() {
    for sig in ["KILL", "SIGKILL", "9"] {
        let mut c = Ctr::new("killsig");
        c.start_sleeper();
        let pid = c.pid();
        c.kill(sig);
        c.wait_status("stopped");
        assert!(!pid_alive(pid), "kill {sig}: pid {pid} still alive");
        c.delete();
    }
}

#[test]
fn kill_term_handled_by_trap() {
    let mut c = Ctr::new("killterm");
    c.sh("trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done");
    c.create();
    c.start();
    poll("ready", WAIT, || {
        c.container_stdout().contains("ready").then_some(())
    });
    c.kill("TERM");
    c.wait_status("stopped");
    assert!(
        c.container_stdout().contains("got-term"),
        "stdout: {}",
        c.container_stdout()
    );
}

#[test]
fn kill_all() {
    let mut c = Ctr::new("killall");
    c.sh("sleep 1000 & sleep 1000 & echo ready; wait");
    c.create();
    c.start();
    poll("ready", WAIT, || {
        c.container_stdout().contains("ready").then_some(())
    });
    let procs = c.cgroup_dir("pids").join("cgroup.procs");
    poll("3 procs in cgroup", WAIT, || {
        (fs::read_to_string(&procs).ok()?.lines().count() >= 3).then_some(())
    });
    let o = c.rt(&["kill", "--all", &c.id, "KILL"]);
    assert_ok(&o, "kill --all");
    c.wait_status("stopped");
    poll("cgroup empty", WAIT, || {
        fs::read_to_string(&procs)
            .ok()?
            .trim()
            .is_empty()
            .then_some(())
    });
    c.delete();
}

#[test]
fn delete_force_running() {
    let mut c = Ctr::new("delforce");
    c.start_sleeper();
    let pid = c.pid();
    let o = c.rt(&["delete", &c.id]);
    assert!(
        !o.status.success(),
        "delete of a running container without --force must fail: {}",
        describe(&o)
    );
    assert_eq!(c.status(), "running");
    let o = c.rt(&["delete", "--force", &c.id]);
    assert_ok(&o, "delete --force");
    poll("init gone", WAIT, || (!pid_alive(pid)).then_some(()));
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

#[test]
fn delete_created_never_started() {
    let mut c = Ctr::new("delcreated");
    c.args(&["sh", "-c", "echo must-not-run"]);
    c.create();
    let pid = c.pid();
    c.delete();
    poll("init gone", WAIT, || (!pid_alive(pid)).then_some(()));
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
    assert_eq!(
        c.container_stdout(),
        "",
        "process of a deleted created container ran"
    );
}

#[test]
fn list_table_json_quiet() {
    let mut c = Ctr::new("list");
    c.start_sleeper();
    let o = c.rt(&["list"]);
    assert_ok(&o, "list");
    let s = stdout(&o);
    let mut lines = s.lines();
    let hdr = lines.next().unwrap_or("");
    assert!(
        hdr.starts_with("ID") && hdr.contains("PID") && hdr.contains("STATUS"),
        "list header: {s}"
    );
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(c.id.as_str()))
        .unwrap_or_else(|| panic!("{} not listed: {s}", c.id));
    assert!(
        row.contains("running") && row.contains(&c.pid().to_string()),
        "row: {row}"
    );

    let o = c.rt(&["list", "--format", "json"]);
    assert_ok(&o, "list --format json");
    let v: Value = serde_json::from_slice(&o.stdout).expect("list json");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 1, "{v}");
    assert_eq!(arr[0]["id"], c.id.as_str());
    assert_eq!(arr[0]["status"], "running");
    assert_eq!(arr[0]["pid"].as_i64(), Some(c.pid()));
    // No annotations: no key (runc's omitempty).
    assert!(arr[0].get("annotations").is_none(), "{v}");

    let o = c.rt(&["list", "-q"]);
    assert_ok(&o, "list -q");
    assert_eq!(stdout(&o).trim(), c.id);
}

#[test]
fn list_empty_root() {
    let c = Ctr::new("listempty");
    let o = c.rt(&["list", "-q"]);
    assert_ok(&o, "list -q on an empty root");
    assert_eq!(stdout(&o).trim(), "");
}

#[test]
fn ps_json_and_table() {
    let mut c = Ctr::new("ps");
    c.sh("sleep 1000 & echo ready; wait");
    c.create();
    c.start();
    poll("ready", WAIT, || {
        c.container_stdout().contains("ready").then_some(())
    });
    let init = c.pid();
    let o = c.rt(&["ps", "--format", "json", &c.id]);
    assert_ok(&o, "ps --format json");
    let pids: Vec<i64> = serde_json::from_slice(&o.stdout).expect("ps json is an array of pids");
    assert!(pids.contains(&init), "ps {pids:?} lacks init {init}");
    assert_eq!(pids.len(), 2, "ps lists init and its sleep child: {pids:?}");

    let o = c.rt(&["ps", &c.id]);
    assert_ok(&o, "ps");
    let s = stdout(&o);
    assert!(
        s.lines().next().unwrap_or("").contains("PID"),
        "ps header: {s}"
    );
    assert!(s.contains(&init.to_string()), "ps table: {s}");
}

#[test]
fn pause_resume_freezer() {
    let mut c = Ctr::new("pause");
    c.start_sleeper();
    let fz = c.cgroup_dir("freezer").join("freezer.state");
    let o = c.rt(&["pause", &c.id]);
    assert_ok(&o, "pause");
    assert_eq!(c.status(), "paused");
    assert_eq!(fs::read_to_string(&fz).unwrap().trim(), "FROZEN");
    let o = c.rt(&["resume", &c.id]);
    assert_ok(&o, "resume");
    assert_eq!(c.status(), "running");
    assert_eq!(fs::read_to_string(&fz).unwrap().trim(), "THAWED");
}

#[test]
fn delete_force_paused() {
    let mut c = Ctr::new("delpaused");
    c.start_sleeper();
    let o = c.rt(&["pause", &c.id]);
    assert_ok(&o, "pause");
    let o = c.rt(&["delete", "--force", &c.id]);
    assert_ok(&o, "delete --force of a paused container");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

/// SIGKILL to a paused container's init ends it (the runtime thaws it: a frozen process acts
/// on SIGKILL only once thawed); another signal waits for `resume`, as with runc.
#[test]
fn kill_of_a_paused_container() {
    let mut c = Ctr::new("killpaused");
    c.sh("trap 'echo got-term' TERM; while :; do sleep 0.1; done");
    c.create();
    c.start();
    let id = c.id.clone();
    assert_ok(&c.rt(&["pause", &id]), "pause");
    assert_ok(
        &c.rt(&["kill", &id, "TERM"]),
        "kill TERM of a paused container",
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(c.status(), "paused", "TERM must wait for resume");
    assert!(!c.container_stdout().contains("got-term"));
    assert_ok(
        &c.rt(&["kill", &id, "KILL"]),
        "kill KILL of a paused container",
    );
    c.wait_status("stopped");
    assert_ok(&c.rt(&["delete", &id]), "delete after the kill");
    assert!(c.leftovers().is_empty(), "{:?}", c.leftovers());
}

/// A created container can be paused (runc too): `state` says paused, `start` and `exec`
/// refuse it (exec with runc's 255), `resume` brings back `created`, then `start` runs it.
/// `kill 0` checks the init's existence.
#[test]
fn pause_of_a_created_container() {
    let mut c = Ctr::new("pausecreated");
    c.args(&["sh", "-c", "echo started"]);
    c.create();
    let id = c.id.clone();
    assert_ok(&c.rt(&["kill", &id, "0"]), "kill 0 of a created container");
    assert_ok(&c.rt(&["pause", &id]), "pause of a created container");
    assert_eq!(c.status(), "paused");
    let o = c.rt(&["start", &id]);
    assert!(!o.status.success(), "start of a paused container succeeded");
    let o = c.rt(&["exec", &id, "true"]);
    assert_eq!(
        o.status.code(),
        Some(255),
        "exec into a paused container: {o:?}"
    );
    assert_ok(&c.rt(&["resume", &id]), "resume");
    assert_eq!(c.status(), "created");
    assert_ok(&c.rt(&["start", &id]), "start after resume");
    c.wait_status("stopped");
    assert!(c.container_stdout().contains("started"));
    let o = c.rt(&["kill", &id, "0"]);
    assert!(
        !o.status.success(),
        "kill 0 of a stopped container succeeded"
    );
}

#[test]
fn state_of_stopped_container() {
    let mut c = Ctr::new("stoppedstate");
    c.args(&["true"]);
    c.create();
    c.start();
    c.wait_status("stopped");
    let st = c.state();
    assert_eq!(st["id"], c.id.as_str());
    assert_eq!(st["bundle"].as_str().unwrap(), c.bundle.to_str().unwrap());
    // exec into a stopped container fails
    let o = c.exec(&["true"]);
    assert!(
        !o.status.success(),
        "exec into stopped container: {}",
        describe(&o)
    );
}

#[test]
fn many_containers_one_root() {
    // Two containers under the same --root are independent.
    let mut a = Ctr::new("multi-a");
    a.start_sleeper();
    let mut b = Ctr::new("multi-b");
    b.root = a.root.clone();
    b.start_sleeper();
    let o = a.rt(&["list", "-q"]);
    let s = stdout(&o);
    assert!(s.contains(&a.id) && s.contains(&b.id), "{s}");
    b.kill("KILL");
    b.wait_status("stopped");
    assert_eq!(a.status(), "running");
}

#[test]
fn create_pid_file() {
    let mut c = Ctr::new("pidfile");
    c.args(&["sleep", "1000"]);
    c.save();
    let pf = c.dir.join("init.pid");
    let b = c.bundle.to_str().unwrap().to_string();
    let o = c.rt(&[
        "create",
        "--bundle",
        &b,
        "--pid-file",
        pf.to_str().unwrap(),
        &c.id,
    ]);
    assert_ok(&o, "create --pid-file");
    let pid: i64 = fs::read_to_string(&pf)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(pid, c.pid());
}

#[test]
fn kill_created_container() {
    let mut c = Ctr::new("killcreated");
    c.args(&["sh", "-c", "echo must-not-run"]);
    c.create();
    let pid = c.pid();
    c.kill("KILL");
    c.wait_status("stopped");
    assert!(!pid_alive(pid));
    c.delete();
    assert_eq!(c.container_stdout(), "");
}

#[test]
fn spec_writes_default_config() {
    let c = Ctr::new("spec");
    let d = c.dir.join("specbundle");
    fs::create_dir(&d).unwrap();
    let o = c.rt(&["spec", "--bundle", d.to_str().unwrap()]);
    assert_ok(&o, "spec --bundle");
    let v: Value =
        serde_json::from_slice(&fs::read(d.join("config.json")).expect("config.json written"))
            .unwrap();
    assert!(
        v["ociVersion"].as_str().unwrap_or("").starts_with("1."),
        "{v}"
    );
    assert_eq!(v["process"]["args"], json!(["sh"]));
    // runc's template: a terminal; capability lists sorted, the same on every run.
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(
        v["process"]["capabilities"]["bounding"],
        json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
    assert_eq!(v["root"]["path"], "rootfs");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for t in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&t), "{t} missing from spec namespaces {ns:?}");
    }
    // A second `spec` refuses to overwrite.
    let o = c.rt(&["spec", "--bundle", d.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "spec overwrote an existing config.json: {}",
        describe(&o)
    );
}

#[test]
fn features_json() {
    let c = Ctr::new("features");
    let o = c.rt(&["features"]);
    assert_ok(&o, "features");
    let v: Value = serde_json::from_slice(&o.stdout).expect("features is JSON");
    assert!(
        v["ociVersionMin"].is_string() && v["ociVersionMax"].is_string(),
        "{v}"
    );
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .filter_map(|h| h.as_str())
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "features.hooks lacks {h}: {hooks:?}");
    }
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    for t in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
        assert!(
            ns.contains(&t),
            "features.linux.namespaces lacks {t}: {ns:?}"
        );
    }
    // runc's key for the libseccomp version (a "major.minor.micro" string).
    let v = v["annotations"]["io.github.seccomp.libseccomp.version"]
        .as_str()
        .unwrap_or_else(|| panic!("no libseccomp version annotation: {v}"));
    assert_eq!(
        v.split('.').filter(|p| p.parse::<u32>().is_ok()).count(),
        3,
        "{v}"
    );
}

#[test]
fn log_file_json_format() {
    let c = Ctr::new("logjson");
    let log = c.dir.join("runtime-log.json");
    let ghost = format!("{}-ghost", c.id);
    let o = c.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &ghost,
    ]);
    assert!(!o.status.success(), "{}", describe(&o));
    let text = fs::read_to_string(&log).expect("log file written");
    let errs: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap_or_else(|e| panic!("log line not JSON ({e}): {l:?}"))
        })
        .filter(|v| v["level"] == "error")
        .collect();
    assert!(!errs.is_empty(), "no level=error entry: {text}");
    assert!(
        errs[0]["msg"]
            .as_str()
            .map(|m| !m.is_empty())
            .unwrap_or(false),
        "{text}"
    );
    assert!(errs[0]["time"].is_string(), "{text}");
    if is_podrun() {
        assert!(
            errs[0]["msg"].as_str().unwrap().contains(&ghost),
            "error names the id: {text}"
        );
    }
}

#[test]
fn init_killed_from_host_is_stopped() {
    // The truth about running/stopped comes from the process, not the file.
    let mut c = Ctr::new("hostkill");
    c.start_sleeper();
    let pid = c.pid();
    // SAFETY: plain kill(2) of the container's init pid.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    c.wait_status("stopped");
    c.delete();
}

#[test]
fn init_exit_kills_the_rest_of_the_pid_namespace() {
    let mut c = Ctr::new("orphans");
    c.sh("sleep 1000 & sleep 1000 & echo ready; read x");
    c.create();
    c.start();
    poll("ready", WAIT, || {
        c.container_stdout().contains("ready").then_some(())
    });
    // `read x` got EOF from /dev/null: init exits, its children must die too.
    c.wait_status("stopped");
    let procs = c.cgroup_dir("pids").join("cgroup.procs");
    poll("cgroup empty after init exit", WAIT, || {
        fs::read_to_string(&procs)
            .ok()?
            .trim()
            .is_empty()
            .then_some(())
    });
}

#[test]
fn run_passes_stdin_through() {
    let mut c = Ctr::new("stdin");
    c.args(&["sh", "-c", "tr a-z A-Z"]);
    c.save();
    let input = c.dir.join("input.txt");
    fs::write(&input, "hello stdin\n").unwrap();
    let b = c.bundle.to_str().unwrap().to_string();
    let out = c.dir.join("stdin-run.out");
    let mut cmd = c.command(&["run", "--bundle", &b, &c.id]);
    cmd.stdin(fs::File::open(&input).unwrap())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(c.dir.join("stdin-run.err")).unwrap());
    let mut child = cmd.spawn().unwrap();
    let st = wait_child(&mut child, "run with stdin", CMD_TIMEOUT);
    assert!(
        st.success(),
        "run: {:?}",
        fs::read_to_string(c.dir.join("stdin-run.err"))
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "HELLO STDIN\n");
}

#[test]
fn bundle_defaults_to_cwd() {
    let mut c = Ctr::new("bundlecwd");
    c.args(&["sleep", "1000"]);
    c.save();
    let mut cmd = c.command(&["create", &c.id]);
    cmd.current_dir(&c.bundle)
        .stdout(fs::File::create(c.dir.join("cwd-create.out")).unwrap())
        .stderr(fs::File::create(c.dir.join("cwd-create.err")).unwrap());
    let mut child = cmd.spawn().unwrap();
    let st = wait_child(&mut child, "create without --bundle", CMD_TIMEOUT);
    assert!(
        st.success(),
        "create: {:?}",
        fs::read_to_string(c.dir.join("cwd-create.err"))
    );
    assert_eq!(c.state()["bundle"].as_str(), c.bundle.to_str());
}

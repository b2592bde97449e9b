//! The pod face end to end, as root: `podrun create -f pod.yaml` and the
//! kubectl-like verbs on busybox pods (the situations of the seeds'
//! pod-usage-examples.md). Each test's [`PodEnv`] asserts on drop that no
//! mount, process, cgroup, state or log dir was left behind.

mod podharness;

use podharness::{PodEnv, IMAGE};
use serde_json::Value;
use std::time::{Duration, Instant};

fn pod_yaml(name: &str, restart: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: {restart}\n  containers:\n{containers}"
    )
}

fn container(name: &str, script: &str) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [\"sh\", \"-c\", {script:?}]\n"
    )
}

const T: Duration = Duration::from_secs(30);

#[test]
fn two_containers_talk_over_localhost_and_every_verb_works() {
    let env = PodEnv::new("web");
    let yaml = pod_yaml(
        "web",
        "Always",
        &(container("httpd", "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 8080 -h /www")
            + &container("client", "while true; do wget -q -O - http://127.0.0.1:8080/ && sleep 60; sleep 0.1; done")),
    );
    let out = env.create(&yaml, &["--wait"]);
    assert_eq!(out.trim(), "pod/web created");
    let v = env.get("web");
    assert_eq!(PodEnv::phase(&v), "Running");
    assert_eq!(v["kind"], "Pod");
    assert!(v["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    let cond = |t: &str| {
        v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(cond(t).as_deref(), Some("True"), "{t}");
    }
    assert_eq!(v["status"]["qosClass"], "BestEffort");
    // The table.
    let table = env.ok(&["get", "pods"]);
    let row = table.lines().nth(1).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..4], ["web", "2/2", "Running", "0"], "{table}");
    assert_eq!(env.ok(&["get", "pods", "-o", "name"]).trim(), "pod/web");
    let yaml_out = env.ok(&["get", "pod", "web", "-o", "yaml"]);
    assert!(
        yaml_out.contains("kind: Pod") && yaml_out.contains("phase: Running"),
        "{yaml_out}"
    );
    // The client reached httpd over the pod's loopback.
    let deadline = Instant::now() + T;
    while !env.logs("web", "client").contains("hello-from-httpd") {
        assert!(Instant::now() < deadline, "client never got the page");
        std::thread::sleep(Duration::from_millis(50));
    }
    // exec: same network namespace, own pid namespace, hostname = pod name, exit code.
    let o = env.ok(&[
        "exec",
        "web",
        "-c",
        "client",
        "--",
        "sh",
        "-c",
        "wget -q -O - http://127.0.0.1:8080/; hostname; pidof httpd || echo no-httpd",
    ]);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "hello-from-httpd");
    assert_eq!(lines[1], "web");
    assert_eq!(
        lines[2], "no-httpd",
        "httpd must not be visible from the client's pid namespace: {o}"
    );
    let r = env.run(&["exec", "web", "-c", "httpd", "--", "sh", "-c", "exit 7"]);
    assert_eq!(r.status.code(), Some(7));
    let d = env.ok(&["describe", "pod", "web"]);
    for want in [
        "Name:             web",
        "Status:           Running",
        "Containers:",
        "httpd:",
        "client:",
        "Events:",
        "Started container httpd",
        "Scheduled",
        "Ready             True",
    ] {
        assert!(d.contains(want), "describe lacks {want:?}:\n{d}");
    }
    let del = env.ok(&["delete", "pod", "web", "--grace-period", "1"]);
    assert_eq!(del.trim(), "pod \"web\" deleted");
    let g = env.run(&["get", "pod", "web"]);
    assert_eq!(g.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&g.stderr).contains("NotFound"));
    env.finish();
}

#[test]
fn writer_and_reader_share_an_empty_dir() {
    let env = PodEnv::new("emptydir");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: share\nspec:\n  volumes:\n  - name: shared\n    emptyDir: {}\n  containers:\n"
        .to_string()
        + &container("writer", "i=0; while true; do i=$((i+1)); echo line-$i >> /data/out.txt; sleep 0.1; done")
        + "    volumeMounts:\n    - {name: shared, mountPath: /data}\n"
        + &container("reader", "while true; do tail -n 1 /data/out.txt 2>/dev/null; sleep 0.2; done")
        + "    volumeMounts:\n    - {name: shared, mountPath: /data, readOnly: true}\n";
    env.create(&yaml, &["--wait"]);
    let deadline = Instant::now() + T;
    while !env.logs("share", "reader").contains("line-") {
        assert!(
            Instant::now() < deadline,
            "reader never saw the writer's lines"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The reader's mount is read-only.
    let r = env.run(&[
        "exec",
        "share",
        "-c",
        "reader",
        "--",
        "sh",
        "-c",
        "echo x > /data/y",
    ]);
    assert_ne!(r.status.code(), Some(0));
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let env = PodEnv::new("init");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: init\nspec:\n  restartPolicy: Never\n  volumes:\n  - name: w\n    emptyDir: {}\n  initContainers:\n".to_string()
        + &container("first", "sleep 0.3; echo first >> /w/order")
        + "    volumeMounts: [{name: w, mountPath: /w}]\n"
        + &container("second", "echo second >> /w/order")
        + "    volumeMounts: [{name: w, mountPath: /w}]\n"
        + "  containers:\n"
        + &container("app", "echo app >> /w/order; cat /w/order")
        + "    volumeMounts: [{name: w, mountPath: /w}]\n";
    env.create(&yaml, &[]);
    let v = env.wait_for("init", T, "Succeeded", |v| PodEnv::phase(v) == "Succeeded");
    for c in ["first", "second"] {
        assert_eq!(
            PodEnv::cstatus(&v, c)["state"]["terminated"]["reason"],
            "Completed",
            "{c}"
        );
    }
    assert_eq!(env.logs("init", "app"), "first\nsecond\napp\n");
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("Completed"), "{table}");
}

#[test]
fn failing_init_container_fails_a_never_pod_and_the_app_never_runs() {
    let env = PodEnv::new("initfail");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  restartPolicy: Never\n  initContainers:\n".to_string()
        + &container("check", "echo checking; exit 3")
        + "  containers:\n"
        + &container("app", "echo should-not-run");
    env.create(&yaml, &[]);
    let v = env.wait_for("bad", T, "Failed", |v| PodEnv::phase(v) == "Failed");
    let t = &PodEnv::cstatus(&v, "check")["state"]["terminated"];
    assert_eq!(t["exitCode"], 3);
    assert_eq!(t["reason"], "Error");
    assert!(PodEnv::cstatus(&v, "app")["state"]["running"].is_null());
    assert!(PodEnv::cstatus(&v, "app")["state"]["terminated"].is_null());
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("Init:Error"), "{table}");
    // --wait on such a pod fails fast with the reason.
    let y2 = yaml.replace("name: bad", "name: bad2");
    let p = env.manifest("bad2.yaml", &y2);
    let r = env.run(&["create", "-f", p.to_str().unwrap(), "--wait"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("Failed"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn failing_init_container_is_retried_with_backoff_under_always() {
    let env = PodEnv::new("initretry").backoff_scale("0.02");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: retry\nspec:\n  initContainers:\n"
        .to_string()
        + &container("check", "exit 1")
        + "  containers:\n"
        + &container("app", "sleep 100");
    env.create(&yaml, &[]);
    let v = env.wait_for("retry", T, "init restarts", |v| {
        PodEnv::cstatus(v, "check")["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 2
    });
    assert_eq!(PodEnv::phase(&v), "Pending");
    assert!(PodEnv::cstatus(&v, "app")["state"]["running"].is_null());
}

fn restart_case(env: &PodEnv, name: &str, policy: &str, code: i32) -> Value {
    let yaml = pod_yaml(
        name,
        policy,
        &container("c", &format!("echo run; exit {code}")),
    );
    let p = env.manifest(&format!("{name}.yaml"), &yaml);
    env.ok(&["create", "-f", p.to_str().unwrap()]);
    let v = env.wait_for(name, T, "a decision", |v| {
        let c = PodEnv::cstatus(v, "c");
        matches!(PodEnv::phase(v), "Succeeded" | "Failed")
            || c["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    v
}

#[test]
fn restart_policies_with_zero_and_nonzero_exits() {
    let env = PodEnv::new("restart").backoff_scale("0.01");
    let v = restart_case(&env, "never-ok", "Never", 0);
    assert_eq!(PodEnv::phase(&v), "Succeeded");
    assert_eq!(
        PodEnv::cstatus(&v, "c")["state"]["terminated"]["reason"],
        "Completed"
    );
    let v = restart_case(&env, "never-fail", "Never", 2);
    assert_eq!(PodEnv::phase(&v), "Failed");
    let t = &PodEnv::cstatus(&v, "c")["state"]["terminated"];
    assert_eq!(
        (t["reason"].as_str(), t["exitCode"].as_i64()),
        (Some("Error"), Some(2))
    );
    let v = restart_case(&env, "onfail-ok", "OnFailure", 0);
    assert_eq!(PodEnv::phase(&v), "Succeeded");
    assert_eq!(PodEnv::cstatus(&v, "c")["restartCount"], 0);
    let v = restart_case(&env, "onfail-fail", "OnFailure", 4);
    assert!(PodEnv::cstatus(&v, "c")["restartCount"].as_i64().unwrap() >= 1);
    assert_eq!(
        PodEnv::cstatus(&v, "c")["lastState"]["terminated"]["exitCode"],
        4
    );
    let v = restart_case(&env, "always-ok", "Always", 0);
    assert!(PodEnv::cstatus(&v, "c")["restartCount"].as_i64().unwrap() >= 1);
    assert_eq!(
        PodEnv::cstatus(&v, "c")["lastState"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(PodEnv::phase(&v), "Running");
    // Every run of a restarted container has its own log file; --previous reads the last one.
    let prev = env.ok(&["logs", "always-ok", "--previous"]);
    assert_eq!(prev, "run\n");
}

#[test]
fn crash_loop_backoff_doubles_with_a_scaled_delay() {
    // Scale 0.05: kubelet's 10 s, 20 s, 40 s become 0.5 s, 1 s, 2 s.
    let env = PodEnv::new("crashloop").backoff_scale("0.05");
    let yaml = pod_yaml("crash", "Always", &container("c", "exit 1"));
    env.create(&yaml, &[]);
    let mut seen: Vec<(i64, Instant)> = Vec::new();
    let mut saw_backoff = false;
    let mut saw_table = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 5 && Instant::now() < deadline {
        let v = env.get("crash");
        let c = PodEnv::cstatus(&v, "c");
        let n = c["restartCount"].as_i64().unwrap_or(0);
        if c["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            saw_backoff = true;
            // The table shows it too while it lasts (the container may restart
            // between the two reads, hence "at least once").
            if env.ok(&["get", "pods"]).contains("CrashLoopBackOff") {
                saw_table = true;
            }
        }
        if seen.last().map(|(k, _)| *k) != Some(n) {
            seen.push((n, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_backoff, "never saw CrashLoopBackOff");
    assert!(saw_table, "get pods never showed CrashLoopBackOff");
    assert!(seen.len() >= 5, "restarts seen: {seen:?}");
    // kubelet: the first crash restarts at once, then 10 s, 20 s, 40 s...
    // (scaled). The count rises when a run ends, so from count k to k+1
    // (k >= 2) lies at least the k-1-th delay. Lower bounds only: the
    // backoff must never be shorter than kubelet's.
    for k in 2..seen.len() - 1 {
        let gap = seen[k + 1].1 - seen[k].1;
        let min = Duration::from_millis(500 * (1 << (k - 2).min(4)));
        assert!(
            gap + Duration::from_millis(60) >= min,
            "gap {k}: {gap:?} < {min:?} ({seen:?})"
        );
    }
    let d = env.ok(&["describe", "pod", "crash"]);
    assert!(
        d.contains("BackOff") && d.contains("Back-off restarting failed container c"),
        "{d}"
    );
}

#[test]
fn memory_limit_exceeded_is_oomkilled() {
    let env = PodEnv::new("oom");
    let yaml = pod_yaml(
        "oom",
        "Never",
        &container(
            "hog",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ),
    ) + "    resources:\n      limits: {memory: 32Mi}\n"
        + &container("sibling", "sleep 1; echo alive")
        + "    resources:\n      limits: {memory: 32Mi}\n";
    env.create(&yaml, &[]);
    let v = env.wait_for("oom", T, "finished", |v| {
        matches!(PodEnv::phase(v), "Failed" | "Succeeded")
    });
    let t = &PodEnv::cstatus(&v, "hog")["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137);
    let s = &PodEnv::cstatus(&v, "sibling")["state"]["terminated"];
    assert_eq!(s["reason"], "Completed", "the sibling must survive: {s}");
    assert_eq!(PodEnv::phase(&v), "Failed");
    let d = env.ok(&["describe", "pod", "oom"]);
    assert!(
        d.contains("OOMKilling") && d.contains("Reason:       OOMKilled"),
        "{d}"
    );
}

/// The OOM watch (v1: eventfd on memory.oom_control; v2: inotify on
/// memory.events) reports a kill as it happens, even when the container's
/// main process survives it (a child was the victim): the OOMKilling event is
/// there while the container is still Running, and the container is not
/// restarted nor marked OOMKilled. On cgroup v2 podrun sets memory.oom.group=1
/// (the whole container dies, as with kubelet), so this runs on v1 memory only.
#[test]
fn oom_kill_of_a_child_is_reported_while_the_container_runs() {
    let v1_memory = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "memory"))
        });
    if !v1_memory {
        eprintln!("skipped: no cgroup v1 memory controller (v2 kills the whole container)");
        return;
    }
    let env = PodEnv::new("oomchild");
    let yaml = pod_yaml(
        "oomc",
        "Always",
        &container("c", "tail /dev/zero; echo hog-gone; exec sleep 600"),
    ) + "    resources:\n      limits: {memory: 32Mi}\n";
    env.create(&yaml, &[]);
    let deadline = Instant::now() + T;
    let d = loop {
        let d = env.ok(&["describe", "pod", "oomc"]);
        if d.contains("OOMKilling") {
            break d;
        }
        assert!(Instant::now() < deadline, "no OOMKilling event: {d}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(d.contains("killed a process of container c"), "{d}");
    let v = env.wait_for("oomc", T, "the shell to go on", |_| {
        env.logs("oomc", "c").contains("hog-gone")
    });
    let c = PodEnv::cstatus(&v, "c");
    assert!(!c["state"]["running"].is_null(), "still running: {c}");
    assert_eq!(c["restartCount"], 0, "{c}");
    assert!(c["lastState"]["terminated"].is_null(), "{c}");
}

#[test]
fn security_context_is_seen_from_inside() {
    let env = PodEnv::new("secctx");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sec\nspec:\n  restartPolicy: Never\n  securityContext:\n    runAsUser: 1000\n    runAsGroup: 3000\n    fsGroup: 2000\n  volumes:\n  - name: d\n    emptyDir: {}\n  containers:\n".to_string()
        + &container("c", "id; touch /data/f; ls -ln /data; grep NoNewPrivs /proc/self/status")
        + "    volumeMounts: [{name: d, mountPath: /data}]\n    securityContext:\n      allowPrivilegeEscalation: false\n";
    env.create(&yaml, &[]);
    env.wait_for("sec", T, "Succeeded", |v| PodEnv::phase(v) == "Succeeded");
    let out = env.logs("sec", "c");
    assert!(out.contains("uid=1000 gid=3000"), "{out}");
    assert!(out.contains("2000"), "fsGroup among the groups: {out}");
    let f = out
        .lines()
        .find(|l| l.ends_with(" f"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = f.split_whitespace().collect();
    assert_eq!(
        (cols[2], cols[3]),
        ("1000", "2000"),
        "file group is the fsGroup (setgid dir): {f}"
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn run_as_non_root_refuses_a_root_container() {
    let env = PodEnv::new("nonroot");
    let yaml = pod_yaml("nr", "Never", &container("c", "id"))
        + "    securityContext:\n      runAsNonRoot: true\n";
    env.create(&yaml, &[]);
    let v = env.wait_for("nr", T, "a verdict", |v| {
        let c = PodEnv::cstatus(v, "c");
        !c["state"]["terminated"].is_null()
            || c["state"]["waiting"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("Error"))
    });
    let c = PodEnv::cstatus(&v, "c");
    assert_eq!(
        c["state"]["waiting"]["reason"], "CreateContainerConfigError",
        "{c}"
    );
    let msg = c["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("runAsNonRoot"), "{msg}");
    assert_eq!(PodEnv::phase(&v), "Pending");
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("CreateContainerConfigError"), "{table}");
}

#[test]
fn killed_supervisor_shows_unknown_and_force_delete_cleans_up() {
    let env = PodEnv::new("suplost");
    let yaml = pod_yaml(
        "lost",
        "Always",
        &(container("a", "sleep 1000") + &container("b", "sleep 1000")),
    );
    env.create(&yaml, &["--wait"]);
    let pidf = env.root.join("pods/default_lost/supervisor.pid");
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: plain kill(2) of the supervisor we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let v = env.wait_for("lost", T, "Unknown", |v| PodEnv::phase(v) == "Unknown");
    assert!(v["status"]["message"]
        .as_str()
        .unwrap()
        .contains("supervisor"));
    // Its containers are still running.
    assert!(!env.leftover_processes().is_empty());
    let table = env.ok(&["get", "pods"]);
    assert!(table.contains("Unknown"), "{table}");
    env.ok(&["delete", "pod", "lost", "--force"]);
    env.finish();
}

#[test]
fn graceful_delete_sends_sigterm_then_sigkill_after_the_grace_period() {
    let env = PodEnv::new("grace");
    let out_dir = env.dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: g\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: o\n    hostPath: {{path: {}}}\n  containers:\n",
        out_dir.display()
    ) + &container("polite", "trap 'echo got-term > /o/polite; exit 0' TERM; while true; do sleep 0.05; done")
        + "    volumeMounts: [{name: o, mountPath: /o}]\n"
        + &container("stubborn", "trap 'echo ignoring > /o/stubborn' TERM; while true; do sleep 0.05; done")
        + "    volumeMounts: [{name: o, mountPath: /o}]\n";
    env.create(&yaml, &["--wait"]);
    let t0 = Instant::now();
    env.ok(&["delete", "pod", "g"]);
    let took = t0.elapsed();
    assert_eq!(
        std::fs::read_to_string(out_dir.join("polite")).unwrap(),
        "got-term\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("stubborn")).unwrap(),
        "ignoring\n"
    );
    // The stubborn one was SIGKILLed after the 1 s grace period, not 30 s.
    assert!(took < Duration::from_secs(25), "delete took {took:?}");
    env.finish();
}

#[test]
fn logs_tail_timestamps_and_follow() {
    let env = PodEnv::new("logs");
    let yaml = pod_yaml(
        "l",
        "Never",
        &container(
            "c",
            "for i in 1 2 3 4 5; do echo line-$i; done; echo err >&2; sleep 1; echo last",
        ),
    );
    env.create(&yaml, &[]);
    // -f returns when the container ends, with everything it wrote.
    let f = env.ok(&["logs", "l", "-f"]);
    assert_eq!(f, "line-1\nline-2\nline-3\nline-4\nline-5\nerr\nlast\n");
    assert_eq!(env.ok(&["logs", "l", "--tail", "2"]), "err\nlast\n");
    let ts = env.ok(&["logs", "l", "--timestamps", "--tail", "1"]);
    let (stamp, rest) = ts.trim_end().split_once(' ').unwrap();
    assert_eq!(rest, "last");
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{stamp}");
    let r = env.run(&["logs", "l", "-c", "nope"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("container nope is not valid"));
}

#[test]
fn multi_document_manifest_from_stdin_creates_each_pod() {
    let env = PodEnv::new("multidoc");
    let y = pod_yaml("one", "Always", &container("c", "sleep 100"))
        + "---\n"
        + &pod_yaml("two", "Always", &container("c", "sleep 100"));
    let out = env.run_stdin(&["create", "-f", "-", "--wait"], Some(&y));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod/one created\npod/two created\n"
    );
    let names = env.ok(&["get", "pods", "-o", "name"]);
    assert_eq!(names, "pod/one\npod/two\n");
    // A second create of the same name is refused and changes nothing.
    let p = env.manifest(
        "one.yaml",
        &pod_yaml("one", "Always", &container("c", "sleep 100")),
    );
    let r = env.run(&["create", "-f", p.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("already exists"));
    assert_eq!(PodEnv::phase(&env.get("one")), "Running");
    env.ok(&["delete", "pod", "one", "two", "--grace-period", "0"]);
    let w = env.ok(&["wait", "pod/one", "--for=delete", "--timeout", "5s"]);
    assert!(w.contains("condition met"));
}

#[test]
fn wait_for_ready_and_timeouts() {
    let env = PodEnv::new("wait");
    env.create(&pod_yaml("w", "Always", &container("c", "sleep 100")), &[]);
    let o = env.ok(&["wait", "pod/w", "--for=condition=Ready", "--timeout", "20s"]);
    assert_eq!(o.trim(), "pod/w condition met");
    let r = env.run(&[
        "wait",
        "pod/w",
        "--for=condition=Ready=False",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("timed out"));
}

/// Every validation rule of the issue: a non-zero exit, a message naming
/// the field path, and no pod state created.
#[test]
fn invalid_manifests_are_refused_with_the_field_path() {
    let env = PodEnv::new("invalid");
    let base =
        |spec: &str| format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: v\nspec:\n{spec}");
    let c = |name: &str| {
        format!("  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [sleep, '1']\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (base(&format!("  containers:\n{}{}", c("web"), c("web"))), "spec.containers[1].name: Duplicate value: \"web\""),
        (base(&format!("  initContainers:\n{}  containers:\n{}", c("web"), c("web"))), "Duplicate value: \"web\""),
        (base(&format!("  containers:\n{}", c("Web_1"))), "spec.containers[0].name: Invalid value: \"Web_1\""),
        (base(&format!("  initContainers:\n{}    livenessProbe: {{exec: {{command: [cat, /x]}}}}\n  containers:\n{}", c("i"), c("a"))), "spec.initContainers[0].livenessProbe: Forbidden"),
        (base(&format!("  containers:\n{}    livenessProbe: {{exec: {{command: [cat, /x]}}, successThreshold: 2}}\n", c("a"))), "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2"),
        (base(&format!("  containers:\n{}    resources: {{limits: {{memory: 12Qi}}}}\n", c("a"))), "spec.containers[0].resources.limits[memory]"),
        (base(&format!("  containers:\n{}    resources: {{requests: {{cpu: '2'}}, limits: {{cpu: 500m}}}}\n", c("a"))), "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit"),
        (base(&format!("  containers:\n{}    ports: [{{containerPort: 70000}}]\n", c("a"))), "spec.containers[0].ports[0].containerPort: Invalid value: 70000"),
        (base(&format!("  containers:\n{}    volumeMounts: [{{name: nope, mountPath: /x}}]\n", c("a"))), "spec.containers[0].volumeMounts[0].name: Not found: \"nope\""),
        (base(&format!("  restartPolicy: Sometimes\n  containers:\n{}", c("a"))), "spec.restartPolicy: Unsupported value: \"Sometimes\""),
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  containers:\n  - name: a\n    image: x\n".into(), "metadata.name: Invalid value: \"Bad_Name\""),
        ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: v\nspec:\n  containers:\n  - name: a\n    image: [unclosed\n".into(), "line"),
        ("apiVersion: v1\nkind: Deployment\nmetadata:\n  name: v\n".into(), "Deployment"),
    ];
    for (i, (yaml, want)) in cases.iter().enumerate() {
        let p = env.manifest(&format!("bad{i}.yaml"), yaml);
        let r = env.run(&["create", "-f", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(
            r.status.code(),
            Some(1),
            "case {i} must fail:\n{yaml}\n{err}"
        );
        assert!(
            err.contains(want),
            "case {i}: stderr lacks {want:?}:\n{err}"
        );
        assert!(
            err.contains(&format!("bad{i}.yaml")),
            "case {i}: the file is named:\n{err}"
        );
        assert!(
            !env.root.join("pods/default_v").exists(),
            "case {i} left state"
        );
    }
    // An unknown field: a warning by default, an error with --validate=strict.
    let y = base(&format!("  containers:\n{}    frobnicate: true\n", c("a")));
    let p = env.manifest("unknown.yaml", &y);
    let r = env.run(&["create", "-f", p.to_str().unwrap(), "--validate=strict"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("frobnicate"));
    let r = env.run(&["create", "-f", p.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("Warning")
            && String::from_utf8_lossy(&r.stderr).contains("frobnicate")
    );
    env.ok(&["delete", "pod", "v", "--force"]);
    // A missing image with pull policy Never.
    let y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: noimg\nspec:\n  containers:\n  - name: a\n    image: localhost/nothere:1\n    imagePullPolicy: Never\n";
    let p = env.manifest("noimg.yaml", y);
    let r = env.run(&["create", "-f", p.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("ErrImageNeverPull"));
    assert!(!env.root.join("pods/default_noimg").exists());
    // Unknown pod for every verb.
    for args in [
        vec!["get", "pod", "ghost"],
        vec!["describe", "pod", "ghost"],
        vec!["logs", "ghost"],
        vec!["delete", "pod", "ghost"],
    ] {
        let r = env.run(&args);
        assert_eq!(r.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("\"ghost\""),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}

#[test]
fn top_shows_cpu_capped_by_the_limit_and_memory_per_container() {
    let env = PodEnv::new("top");
    let yaml = pod_yaml(
        "busy",
        "Always",
        &container("spin", "while true; do :; done"),
    ) + "    resources:\n      limits: {cpu: 200m, memory: 64Mi}\n"
        + &container("idle", "sleep 1000");
    env.create(&yaml, &["--wait"]);
    std::thread::sleep(Duration::from_millis(300));
    let out = env.ok(&["top", "pod", "busy", "--containers"]);
    let milli = |c: &str| -> u64 {
        let l = out
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(c))
            .unwrap_or_else(|| panic!("{out}"));
        l.split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches('m')
            .parse()
            .unwrap()
    };
    // The CFS quota caps the spinner at 200m (+20% for sampling); idle uses ~nothing.
    let spin = milli("spin");
    assert!(spin > 0 && spin <= 240, "spin {spin}m:\n{out}");
    assert!(milli("idle") < 50, "{out}");
    assert!(out.contains("Ki") || out.contains("Mi"), "{out}");
    let pods = env.ok(&["top", "pods"]);
    assert!(
        pods.lines().nth(1).is_some_and(|l| l.starts_with("busy ")),
        "{pods}"
    );
}

#[test]
fn a_missing_binary_is_a_start_error() {
    let env = PodEnv::new("starterr");
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  restartPolicy: Never\n  containers:\n".to_string()
        + &format!("  - name: c\n    image: {IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [\"/nonexistent\"]\n");
    let p = env.manifest("bad.yaml", &yaml);
    let r = env.run(&["create", "-f", p.to_str().unwrap(), "--wait"]);
    assert_eq!(r.status.code(), Some(1), "--wait reports the failure");
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("StartError"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let v = env.get("bad");
    assert_eq!(PodEnv::phase(&v), "Failed");
    let t = &PodEnv::cstatus(&v, "c")["state"]["terminated"];
    assert_eq!(t["reason"], "StartError");
    assert_eq!(t["exitCode"], 128);
    assert!(
        t["message"].as_str().unwrap().contains("/nonexistent"),
        "{t}"
    );
    let d = env.ok(&["describe", "pod", "bad"]);
    assert!(d.contains("Failed") && d.contains("Error: "), "{d}");
}

/// The pod cgroup: kubelet's pod-level values (Guaranteed: the summed limits)
/// and podrun's per-pod pids limit, with the containers' cgroups below it.
#[test]
fn pod_cgroup_holds_the_pod_limits_and_a_pids_limit() {
    let env = PodEnv::new("podcg");
    let yaml = pod_yaml("cg", "Always", &container("a", "sleep 1000"))
        + "    resources:\n      limits: {cpu: 200m, memory: 32Mi}\n"
        + &container("b", "sleep 1000")
        + "    resources:\n      limits: {cpu: 300m, memory: 32Mi}\n";
    let p = env.manifest("cg.yaml", &yaml);
    env.ok(&[
        "create",
        "-f",
        p.to_str().unwrap(),
        "--wait",
        "--pids-limit",
        "321",
    ]);
    let v = env.get("cg");
    assert_eq!(v["status"]["qosClass"], "Guaranteed");
    let run: Value =
        serde_json::from_slice(&std::fs::read(env.root.join("pods/default_cg/run.json")).unwrap())
            .unwrap();
    let dirs: Vec<std::path::PathBuf> = run["cgroup_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().into())
        .collect();
    let find = |f: &str| {
        dirs.iter()
            .map(|d| d.join(f))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("no {f} in {dirs:?}"))
    };
    let read = |f: &str| std::fs::read_to_string(find(f)).unwrap().trim().to_string();
    assert_eq!(read("pids.max"), "321");
    // v1 or v2 files, whichever this host has.
    if dirs
        .iter()
        .any(|d| d.join("memory.limit_in_bytes").exists())
    {
        assert_eq!(read("memory.limit_in_bytes"), (64u64 << 20).to_string());
        assert_eq!(read("cpu.cfs_quota_us"), "50000");
    } else {
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
    }
    // Each container's cgroup is below the pod's.
    assert!(dirs.iter().any(|d| d.join("a").is_dir()) && dirs.iter().any(|d| d.join("b").is_dir()));
}

/// A SIGKILL from someone else is exit 137 but not OOMKilled: the reason comes
/// from the cgroup's oom_kill counter, not from the signal.
#[test]
fn sigkill_from_outside_is_not_oomkilled() {
    let env = PodEnv::new("sigkill");
    let yaml = pod_yaml("k", "Never", &container("c", "sleep 1000"))
        + "    resources:\n      limits: {memory: 32Mi}\n";
    env.create(&yaml, &["--wait"]);
    let out = env.ok(&["exec", "k", "--", "sh", "-c", "echo ok"]);
    assert_eq!(out.trim(), "ok");
    // The container's init, found through its cgroup (the harness's process scan).
    let pid: i32 = env
        .leftover_processes()
        .iter()
        .find(|p| p.contains("sleep 1000"))
        .and_then(|p| p.split(':').next())
        .and_then(|p| p.parse().ok())
        .expect("container process");
    // SAFETY: kill(2) of the container's process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let v = env.wait_for("k", T, "Failed", |v| PodEnv::phase(v) == "Failed");
    let t = &PodEnv::cstatus(&v, "c")["state"]["terminated"];
    assert_eq!(t["exitCode"], 137, "{t}");
    assert_eq!(t["reason"], "Error", "{t}");
}

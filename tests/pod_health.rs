//! Probes, lifecycle hooks and termination through the real CLI, as root
//! (`podrun create -f`, `get`, `describe`, `wait`, `delete`), on the busybox
//! image with scaled-down periods: the seeds' examples rewritten. Each test's
//! [`PodEnv`] checks on finish that nothing was left behind.

mod podharness;

use podharness::{PodEnv, IMAGE};
use serde_json::Value;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(40);

fn pod(name: &str, extra_spec: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{extra_spec}  containers:\n{containers}"
    )
}

/// A container running `script` with `more` (indented YAML) appended.
fn c(name: &str, script: &str, more: &str) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: IfNotPresent\n    command: [\"sh\", \"-c\", {script:?}]\n{more}"
    )
}

fn restarts(v: &Value, c: &str) -> u64 {
    PodEnv::cstatus(v, c)["restartCount"].as_u64().unwrap_or(0)
}

fn condition(v: &Value, t: &str) -> String {
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == t)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Polls `describe` until it contains every string of `want`.
fn describe_until(env: &PodEnv, name: &str, want: &[&str]) -> String {
    let deadline = Instant::now() + T;
    loop {
        let d = env.ok(&["describe", "pod", name]);
        if want.iter().all(|w| d.contains(w)) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "describe never showed {want:?}:\n{d}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn liveness_exec_kills_and_restarts_the_container() {
    let env = PodEnv::new("hl-exec").backoff_scale("0.01");
    let yaml = pod(
        "liveness-exec",
        "  terminationGracePeriodSeconds: 1\n",
        &c(
            "app",
            "touch /tmp/healthy; sleep 2; rm -f /tmp/healthy; sleep 600",
            "    livenessProbe:\n      exec: {command: [cat, /tmp/healthy]}\n      periodSeconds: 1\n      failureThreshold: 2\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    let v = env.wait_for("liveness-exec", T, "two restarts", |v| {
        restarts(v, "app") >= 2
    });
    assert_eq!(PodEnv::phase(&v), "Running");
    let last = &PodEnv::cstatus(&v, "app")["lastState"]["terminated"];
    assert_eq!(
        last["exitCode"], 137,
        "sleep ignores SIGTERM as pid 1: {last}"
    );
    describe_until(
        &env,
        "liveness-exec",
        &[
            "Unhealthy",
            "Liveness probe failed: command \"cat /tmp/healthy\" exited with 1",
            "No such file or directory",
            "Killing",
            "Container app failed liveness probe, will be restarted",
        ],
    );
    env.ok(&["delete", "pod", "liveness-exec", "--grace-period", "0"]);
    env.finish();
}

const CGI: &str = "mkdir -p /www/cgi-bin; printf '%s\\n' '#!/bin/sh' 'if [ \"$HTTP_USER_AGENT\" != podrun-probe ]; then printf \"HTTP/1.1 403 Forbidden\\r\\n\\r\\nwrong agent\\n\"; elif [ -f /tmp/broken ]; then printf \"HTTP/1.1 500 Internal Server Error\\r\\n\\r\\nbroken\\n\"; else printf \"HTTP/1.1 200 OK\\r\\n\\r\\nok\\n\"; fi' > /www/cgi-bin/healthz; chmod +x /www/cgi-bin/healthz; ";

#[test]
fn http_liveness_with_custom_header_turns_500_and_restarts() {
    let env = PodEnv::new("hl-http").backoff_scale("0.01");
    let yaml = pod(
        "liveness-http",
        "  terminationGracePeriodSeconds: 1\n",
        &c(
            "web",
            &format!("{CGI}(sleep 3; touch /tmp/broken) & exec httpd -f -p 8080 -h /www"),
            "    ports: [{name: http, containerPort: 8080}]\n    livenessProbe:\n      httpGet:\n        path: /cgi-bin/healthz\n        port: http\n        httpHeaders: [{name: User-Agent, value: podrun-probe}]\n      periodSeconds: 1\n      failureThreshold: 2\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    // Before the CGI turns 500 the probe passes (only with our header), so no restart yet.
    let v = env.get("liveness-http");
    assert_eq!(restarts(&v, "web"), 0);
    env.wait_for("liveness-http", T, "a restart", |v| restarts(v, "web") >= 1);
    let d = describe_until(
        &env,
        "liveness-http",
        &[
            "Liveness probe failed: HTTP probe failed with statuscode: 500",
            "Container web failed liveness probe, will be restarted",
        ],
    );
    assert!(
        !d.contains("statuscode: 403"),
        "the custom User-Agent was sent:\n{d}"
    );
    env.ok(&["delete", "pod", "liveness-http", "--grace-period", "0"]);
    env.finish();
}

#[test]
fn tcp_readiness_on_a_late_port_and_wait_for_ready() {
    let env = PodEnv::new("hl-tcp");
    let yaml = pod(
        "tcp",
        "",
        &c(
            "web",
            "mkdir -p /www; sleep 2; exec httpd -f -p 8081 -h /www",
            "    readinessProbe:\n      tcpSocket: {port: 8081}\n      periodSeconds: 1\n    livenessProbe:\n      tcpSocket: {port: 8081}\n      initialDelaySeconds: 5\n      periodSeconds: 1\n",
        ),
    );
    env.create(&yaml, &[]);
    let v = env.get("tcp");
    assert_eq!(condition(&v, "Ready"), "False");
    assert_eq!(PodEnv::cstatus(&v, "web")["ready"], false);
    env.ok(&["wait", "tcp", "--for=condition=Ready", "--timeout", "30s"]);
    let v = env.get("tcp");
    assert_eq!(condition(&v, "Ready"), "True");
    assert_eq!(condition(&v, "ContainersReady"), "True");
    assert_eq!(PodEnv::cstatus(&v, "web")["ready"], true);
    let table = env.ok(&["get", "pods"]);
    assert!(table.lines().nth(1).unwrap().contains("1/1"), "{table}");
    describe_until(
        &env,
        "tcp",
        &[
            "Readiness probe failed: dial tcp 127.0.0.1:8081",
            "Last result:  result=Success last-run=ok",
        ],
    );
    assert_eq!(restarts(&env.get("tcp"), "web"), 0);
    env.ok(&["delete", "pod", "tcp", "--grace-period", "1"]);
    env.finish();
}

#[test]
fn readiness_flips_ready_both_ways_without_restarts() {
    let env = PodEnv::new("hl-ready");
    let yaml = pod(
        "flip",
        "",
        &c(
            "app",
            "sleep 600",
            "    readinessProbe:\n      exec: {command: [test, -f, /tmp/ready]}\n      periodSeconds: 1\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    assert_eq!(condition(&env.get("flip"), "Ready"), "False");
    env.ok(&["exec", "flip", "--", "touch", "/tmp/ready"]);
    env.wait_for("flip", T, "Ready=True", |v| condition(v, "Ready") == "True");
    env.ok(&["exec", "flip", "--", "rm", "/tmp/ready"]);
    let v = env.wait_for("flip", T, "Ready=False", |v| {
        condition(v, "Ready") == "False"
    });
    assert_eq!(condition(&v, "ContainersReady"), "False");
    assert_eq!(PodEnv::phase(&v), "Running");
    assert_eq!(restarts(&v, "app"), 0);
    assert!(PodEnv::cstatus(&v, "app")["state"]["running"].is_object());
    env.ok(&["delete", "pod", "flip", "--grace-period", "0"]);
    env.finish();
}

#[test]
fn startup_probe_gates_liveness() {
    let env = PodEnv::new("hl-startup").backoff_scale("0.01");
    let yaml = pod(
        "startup",
        "  terminationGracePeriodSeconds: 0\n",
        &c(
            "app",
            "sleep 600",
            "    startupProbe:\n      exec: {command: [test, -f, /tmp/started]}\n      periodSeconds: 1\n      failureThreshold: 60\n    livenessProbe:\n      exec: {command: [\"false\"]}\n      periodSeconds: 1\n      failureThreshold: 1\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    // Liveness would fail at once, but it does not run before startup succeeds.
    std::thread::sleep(Duration::from_secs(3));
    let v = env.get("startup");
    assert_eq!(restarts(&v, "app"), 0);
    assert_eq!(PodEnv::cstatus(&v, "app")["started"], false);
    let d = env.ok(&["describe", "pod", "startup"]);
    assert!(!d.contains("Liveness probe failed"), "{d}");
    env.ok(&["exec", "startup", "--", "touch", "/tmp/started"]);
    env.wait_for("startup", T, "a liveness restart", |v| {
        restarts(v, "app") >= 1
    });
    describe_until(
        &env,
        "startup",
        &[
            "Liveness probe failed",
            "failed liveness probe, will be restarted",
        ],
    );
    env.ok(&["delete", "pod", "startup", "--grace-period", "0"]);
    env.finish();
}

#[test]
fn exec_probe_hanging_past_its_timeout_fails() {
    let env = PodEnv::new("hl-hang");
    let yaml = pod(
        "hang",
        "",
        &c(
            "app",
            "sleep 600",
            "    readinessProbe:\n      exec: {command: [sleep, \"30\"]}\n      periodSeconds: 1\n      timeoutSeconds: 1\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    describe_until(
        &env,
        "hang",
        &["Readiness probe failed: command \"sleep 30\" timed out after 1s"],
    );
    let v = env.get("hang");
    assert_eq!(condition(&v, "Ready"), "False");
    env.ok(&["delete", "pod", "hang", "--grace-period", "0"]);
    env.finish();
}

#[test]
fn post_start_writes_a_file_the_app_reads() {
    let env = PodEnv::new("hl-poststart");
    let yaml = pod(
        "poststart",
        "",
        &c(
            "app",
            "while [ ! -f /tmp/hello ]; do sleep 0.05; done; cat /tmp/hello; sleep 600",
            "    lifecycle:\n      postStart:\n        exec: {command: [sh, -c, \"echo written-by-poststart > /tmp/hello\"]}\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    let deadline = Instant::now() + T;
    while !env
        .logs("poststart", "app")
        .contains("written-by-poststart")
    {
        assert!(Instant::now() < deadline, "the app never read the file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = env.get("poststart");
    assert!(PodEnv::cstatus(&v, "app")["state"]["running"].is_object());
    env.ok(&["delete", "pod", "poststart", "--grace-period", "0"]);
    env.finish();
}

#[test]
fn failing_post_start_kills_and_restarts() {
    let env = PodEnv::new("hl-psfail").backoff_scale("0.01");
    let yaml = pod(
        "psfail",
        "  terminationGracePeriodSeconds: 0\n",
        &c(
            "app",
            "sleep 600",
            "    lifecycle:\n      postStart:\n        exec: {command: [sh, -c, \"echo hook-says-no; exit 9\"]}\n",
        ),
    );
    env.create(&yaml, &[]);
    env.wait_for("psfail", T, "a restart", |v| restarts(v, "app") >= 1);
    describe_until(
        &env,
        "psfail",
        &[
            "FailedPostStartHook",
            "Exec lifecycle hook for Container \"app\"",
            "exited with 9: hook-says-no",
        ],
    );
    env.ok(&["delete", "pod", "psfail", "--grace-period", "0"]);
    env.finish();
}

/// A pod whose app records SIGTERM (and `ignore_term`: ignores it) in a
/// hostPath file, with the given preStop handler (YAML flow) recording too.
fn termination_pod(
    env: &PodEnv,
    name: &str,
    grace: u32,
    pre_stop: &str,
    app: &str,
) -> std::path::PathBuf {
    let shared = env.dir.join(format!("{name}-shared"));
    std::fs::create_dir_all(&shared).unwrap();
    let yaml = pod(
        name,
        &format!(
            "  terminationGracePeriodSeconds: {grace}\n  volumes:\n  - name: shared\n    hostPath: {{path: {}, type: Directory}}\n",
            shared.display()
        ),
        &c(
            "app",
            app,
            &format!(
                "    volumeMounts: [{{name: shared, mountPath: /shared}}]\n    lifecycle:\n      preStop: {pre_stop}\n"
            ),
        ),
    );
    env.create(&yaml, &["--wait"]);
    shared.join("log")
}

#[test]
fn pre_stop_runs_before_sigterm() {
    let env = PodEnv::new("hl-prestop");
    let log = termination_pod(
        &env,
        "prestop",
        10,
        "{exec: {command: [sh, -c, \"echo prestop >> /shared/log\"]}}",
        "trap 'echo term >> /shared/log; exit 0' TERM; while true; do sleep 0.1; done",
    );
    env.ok(&["delete", "pod", "prestop"]);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "prestop\nterm\n");
    env.finish();
}

#[test]
fn pre_stop_longer_than_the_grace_period_is_abandoned() {
    let env = PodEnv::new("hl-prestop-long");
    let log = termination_pod(
        &env,
        "prestoplong",
        1,
        "{exec: {command: [sh, -c, \"echo prestop >> /shared/log; sleep 30; echo late >> /shared/log\"]}}",
        "trap 'echo term >> /shared/log; exit 0' TERM; while true; do sleep 0.1; done",
    );
    env.ok(&["delete", "pod", "prestoplong"]);
    // The hook was abandoned at the grace period: SIGTERM came, the hook never finished.
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "prestop\nterm\n");
    env.finish();
}

#[test]
fn sigterm_ignored_gets_sigkill_after_the_grace_period() {
    let env = PodEnv::new("hl-sigkill");
    let log = termination_pod(
        &env,
        "stubborn",
        1,
        "{sleep: {seconds: 0}}",
        "trap 'echo term-ignored >> /shared/log' TERM; while true; do sleep 0.1; done",
    );
    env.ok(&["delete", "pod", "stubborn"]);
    // It saw SIGTERM, did not exit, and is gone (SIGKILL): finish() checks no process is left.
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "term-ignored\n");
    env.finish();
}

#[test]
fn stop_signal_from_lifecycle() {
    let env = PodEnv::new("hl-stopsig");
    let shared = env.dir.join("stopsig-shared");
    std::fs::create_dir_all(&shared).unwrap();
    let yaml = pod(
        "stopsig",
        &format!(
            "  terminationGracePeriodSeconds: 10\n  volumes:\n  - name: shared\n    hostPath: {{path: {}, type: Directory}}\n",
            shared.display()
        ),
        &c(
            "app",
            "trap 'echo usr1 >> /shared/log; exit 0' USR1; trap 'echo term >> /shared/log; exit 0' TERM; while true; do sleep 0.1; done",
            "    volumeMounts: [{name: shared, mountPath: /shared}]\n    lifecycle:\n      stopSignal: SIGUSR1\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    env.ok(&["delete", "pod", "stopsig"]);
    assert_eq!(
        std::fs::read_to_string(shared.join("log")).unwrap(),
        "usr1\n"
    );
    env.finish();
}

#[test]
fn active_deadline_fails_the_pod() {
    let env = PodEnv::new("hl-deadline");
    let yaml = pod(
        "deadline",
        "  activeDeadlineSeconds: 2\n  terminationGracePeriodSeconds: 0\n",
        &c("app", "sleep 600", ""),
    );
    env.create(&yaml, &["--wait"]);
    let v = env.wait_for("deadline", T, "Failed", |v| PodEnv::phase(v) == "Failed");
    assert_eq!(v["status"]["reason"], "DeadlineExceeded");
    describe_until(&env, "deadline", &["DeadlineExceeded"]);
    env.ok(&["delete", "pod", "deadline", "--grace-period", "0"]);
    env.finish();
}

/// An image with no shell and no tools: only busybox's httpd applet (as
/// /bin/httpd) and a page. Probes still work: they run from the supervisor.
fn no_shell_image(env: &PodEnv) -> String {
    let name = "localhost/podrun-test-noshell:1";
    let root = env.dir.join("noshell-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/httpd")).unwrap();
    std::fs::write(root.join("www/index.html"), "no shell here\n").unwrap();
    let tar = env.dir.join("noshell.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&["image", "import", tar.to_str().unwrap(), name]);
    name.to_string()
}

#[test]
fn image_without_a_shell_is_probed_by_tcp_and_http() {
    let env = PodEnv::new("hl-noshell");
    let image = no_shell_image(&env);
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: noshell\nspec:\n  containers:\n  - name: web\n    image: {image}\n    imagePullPolicy: Never\n    command: [/bin/httpd, -f, -p, \"8082\", -h, /www]\n    ports: [{{name: http, containerPort: 8082}}]\n    readinessProbe:\n      httpGet: {{path: /index.html, port: http}}\n      periodSeconds: 1\n    livenessProbe:\n      tcpSocket: {{port: http}}\n      periodSeconds: 1\n"
    );
    env.create(&yaml, &[]);
    env.ok(&[
        "wait",
        "noshell",
        "--for=condition=Ready",
        "--timeout",
        "30s",
    ]);
    let v = env.get("noshell");
    assert!(!env
        .run(&["exec", "noshell", "--", "sh", "-c", "true"])
        .status
        .success());
    // Liveness passes too: no restart, and its last result (two periods after Ready) is a
    // success. A failure before httpd listens is allowed: the probe starts with the
    // container (initialDelaySeconds 0), as kubelet's, and one failure is below the
    // threshold; it shows as an Unhealthy event, as it would under kubelet.
    std::thread::sleep(Duration::from_secs(2));
    let v2 = env.get("noshell");
    assert_eq!(restarts(&v2, "web"), 0, "{v}");
    let d = env.ok(&["describe", "pod", "noshell"]);
    let liveness_result = d
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Liveness:"))
        .nth(1)
        .unwrap_or("");
    assert!(liveness_result.contains("result=Success"), "{d}");
    assert!(!d.contains("Killing"), "{d}");
    env.ok(&["delete", "pod", "noshell", "--grace-period", "0"]);
    let _ = env.run(&["image", "rm", &image]);
    env.finish();
}

#[test]
fn startup_probe_failure_kills_with_the_probes_own_grace_period() {
    let env = PodEnv::new("hl-startfail").backoff_scale("0.01");
    // The pod's grace (300 s) would outlast the test's wait; the probe's own 1 s applies.
    let yaml = pod(
        "startfail",
        "  terminationGracePeriodSeconds: 300\n",
        &c(
            "app",
            "sleep 600",
            "    startupProbe:\n      exec: {command: [test, -f, /tmp/never]}\n      periodSeconds: 1\n      failureThreshold: 2\n      terminationGracePeriodSeconds: 1\n",
        ),
    );
    env.create(&yaml, &["--wait"]);
    let v = env.wait_for("startfail", T, "a restart", |v| restarts(v, "app") >= 1);
    assert_eq!(
        PodEnv::cstatus(&v, "app")["lastState"]["terminated"]["exitCode"],
        137
    );
    describe_until(
        &env,
        "startfail",
        &[
            "Startup probe failed: command \"test -f /tmp/never\" exited with 1",
            "Container app failed startup probe, will be restarted",
        ],
    );
    env.ok(&["delete", "pod", "startfail", "--grace-period", "0"]);
    env.finish();
}

//! Status tests.

use super::*;
use k8s_openapi::api::core::v1::{Container, PodReadinessGate};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn spec(init: &[&str], sidecars: &[&str], apps: &[&str], policy: &str) -> PodSpec {
    let mk = |n: &&str| Container {
        name: n.to_string(),
        image: Some("busybox".into()),
        ..Default::default()
    };
    let mut ic: Vec<Container> = sidecars
        .iter()
        .map(|n| Container {
            restart_policy: Some("Always".into()),
            ..mk(n)
        })
        .collect();
    ic.extend(init.iter().map(mk));
    PodSpec {
        init_containers: (!ic.is_empty()).then_some(ic),
        containers: apps.iter().map(mk).collect(),
        restart_policy: Some(policy.into()),
        ..Default::default()
    }
}

fn rec(name: &str) -> ContainerRecord {
    ContainerRecord::new(name, "busybox", reason::CONTAINER_CREATING)
}
fn run(name: &str) -> ContainerRecord {
    let mut r = rec(name);
    r.on_start(Some(format!("id-{name}")), t(0));
    r
}
fn exited(name: &str, code: i32) -> ContainerRecord {
    let mut r = run(name);
    r.on_exit(Termination::exited(
        ExitStatus::Exited(code),
        false,
        t(0),
        t(5),
    ));
    r
}
fn statuses(v: &[ContainerRecord]) -> Vec<ContainerStatus> {
    v.iter().map(ContainerRecord::to_status).collect()
}

#[test]
fn restart_decisions() {
    use ContainerKind::*;
    use RestartPolicy::*;
    assert!(should_restart(Always, App, 0));
    assert!(should_restart(Always, App, 1));
    assert!(!should_restart(OnFailure, App, 0));
    assert!(should_restart(OnFailure, App, 137));
    assert!(!should_restart(Never, App, 1));
    assert!(!should_restart(Always, Init, 0));
    assert!(should_restart(Always, Init, 1));
    assert!(should_restart(OnFailure, Init, 1));
    assert!(!should_restart(Never, Init, 1));
    assert!(should_restart(Never, Sidecar, 0));
}

#[test]
fn reasons_and_codes() {
    assert_eq!(termination_reason(0, false), "Completed");
    assert_eq!(termination_reason(2, false), "Error");
    assert_eq!(termination_reason(137, true), "OOMKilled");
    assert_eq!(ExitStatus::Signaled(9).code_and_signal(), (137, Some(9)));
    assert_eq!(ExitStatus::Exited(3).code_and_signal(), (3, None));
    let e = Termination::start_error("exec: \"nope\": not found", t(1));
    assert_eq!((e.exit_code, e.reason.as_str()), (128, "StartError"));
}

#[test]
fn record_lifecycle_and_status_object() {
    let mut r = rec("web");
    assert_eq!(
        r.to_status()
            .state
            .unwrap()
            .waiting
            .unwrap()
            .reason
            .as_deref(),
        Some("ContainerCreating")
    );
    r.on_start(Some("c1".into()), t(0));
    r.on_exit(Termination::exited(
        ExitStatus::Signaled(9),
        true,
        t(0),
        t(3),
    ));
    r.on_backoff("back-off 10s restarting failed container=web");
    assert_eq!(r.restart_count, 1);
    let s = r.to_status();
    assert_eq!(
        s.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("CrashLoopBackOff")
    );
    let last = s.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, last.signal, last.reason.as_deref()),
        (137, Some(9), Some("OOMKilled"))
    );
    assert_eq!(last.container_id.as_deref(), Some("c1"));
    r.on_start(Some("c2".into()), t(20));
    assert_eq!(r.restart_count, 1); // not counted twice
                                    // Restart straight from Terminated (no back-off wait) counts too.
    r.on_exit(Termination::exited(
        ExitStatus::Exited(0),
        false,
        t(20),
        t(21),
    ));
    r.on_start(Some("c3".into()), t(22));
    assert_eq!(r.restart_count, 2);
    let json = serde_json::to_value(r.to_status()).unwrap();
    assert_eq!(
        json["state"]["running"]["startedAt"],
        "2023-11-14T22:13:42Z"
    );
    assert_eq!(json["lastState"]["terminated"]["reason"], "Completed");
    assert_eq!(json["restartCount"], 2);
}

#[test]
fn phases_simple() {
    let sp = spec(&[], &[], &["a", "b"], "Always");
    assert_eq!(pod_phase(&sp, &[]), Phase::Pending);
    assert_eq!(
        pod_phase(&sp, &statuses(&[rec("a"), rec("b")])),
        Phase::Pending
    );
    assert_eq!(
        pod_phase(&sp, &statuses(&[run("a"), rec("b")])),
        Phase::Pending
    );
    assert_eq!(
        pod_phase(&sp, &statuses(&[run("a"), run("b")])),
        Phase::Running
    );
    assert_eq!(
        pod_phase(&sp, &statuses(&[run("a"), exited("b", 0)])),
        Phase::Running
    );
    assert_eq!(
        pod_phase(&sp, &statuses(&[exited("a", 0), exited("b", 1)])),
        Phase::Running
    );
    let never = spec(&[], &[], &["a", "b"], "Never");
    assert_eq!(
        pod_phase(&never, &statuses(&[exited("a", 0), exited("b", 0)])),
        Phase::Succeeded
    );
    assert_eq!(
        pod_phase(&never, &statuses(&[exited("a", 0), exited("b", 1)])),
        Phase::Failed
    );
    assert_eq!(
        pod_phase(&never, &statuses(&[exited("a", 0), run("b")])),
        Phase::Running
    );
    let onf = spec(&[], &[], &["a"], "OnFailure");
    assert_eq!(
        pod_phase(&onf, &statuses(&[exited("a", 0)])),
        Phase::Succeeded
    );
    assert_eq!(
        pod_phase(&onf, &statuses(&[exited("a", 2)])),
        Phase::Running
    );
    // Crash-looping (Waiting with a last termination) counts as stopped.
    let mut c = exited("a", 1);
    c.on_backoff("x");
    assert_eq!(pod_phase(&onf, &statuses(&[c])), Phase::Running);
}

#[test]
fn phases_with_init_containers() {
    let sp = spec(&["i1", "i2"], &[], &["a"], "Always");
    assert_eq!(
        pod_phase(&sp, &statuses(&[run("i1"), rec("i2"), rec("a")])),
        Phase::Pending
    );
    assert_eq!(
        pod_phase(
            &sp,
            &statuses(&[exited("i1", 0), exited("i2", 0), run("a")])
        ),
        Phase::Running
    );
    // Failing init under Always: Pending (retrying).
    assert_eq!(
        pod_phase(&sp, &statuses(&[exited("i1", 1), rec("i2"), rec("a")])),
        Phase::Pending
    );
    let never = spec(&["i1"], &[], &["a"], "Never");
    assert_eq!(
        pod_phase(&never, &statuses(&[exited("i1", 1), rec("a")])),
        Phase::Failed
    );
    let mut looping = exited("i1", 1);
    looping.on_backoff("x");
    let onf = spec(&["i1"], &[], &["a"], "OnFailure");
    assert_eq!(
        pod_phase(&onf, &statuses(&[looping, rec("a")])),
        Phase::Pending
    );
}

#[test]
fn phases_with_sidecars() {
    let sp = spec(&[], &["side"], &["a"], "Never");
    let mut side = run("side");
    assert_eq!(
        pod_phase(&sp, &statuses(&[side.clone(), rec("a")])),
        Phase::Pending
    );
    side.started = Some(true);
    assert_eq!(
        pod_phase(&sp, &statuses(&[side.clone(), run("a")])),
        Phase::Running
    );
    // App done, sidecar still running: Running (kubelet then stops sidecars).
    assert_eq!(
        pod_phase(&sp, &statuses(&[side, exited("a", 0)])),
        Phase::Running
    );
    // Sidecar stopped too: Succeeded.
    assert_eq!(
        pod_phase(&sp, &statuses(&[exited("side", 137), exited("a", 0)])),
        Phase::Succeeded
    );
}

#[test]
fn conditions() {
    let sp = spec(&["init"], &[], &["a", "b"], "Always");
    let st = statuses(&[run("init"), rec("a"), rec("b")]);
    let i = initialized_condition(&sp, &st, Phase::Pending);
    assert_eq!(
        (i.status.as_str(), i.reason.as_deref()),
        ("False", Some("ContainersNotInitialized"))
    );
    assert_eq!(
        i.message.as_deref(),
        Some("containers with incomplete status: [init]")
    );
    let cr = containers_ready_condition(&sp, &st, Phase::Pending);
    assert_eq!(cr.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        cr.message.as_deref(),
        Some("containers with unready status: [a b]")
    );
    let r = ready_condition(&sp, &cr);
    assert_eq!(
        (r.type_.as_str(), r.status.as_str(), r.reason.as_deref()),
        ("Ready", "False", Some("ContainersNotReady"))
    );

    let mut a = run("a");
    a.ready = true;
    let st = statuses(&[exited("init", 0), a.clone()]);
    let i = initialized_condition(&sp, &st, Phase::Running);
    assert_eq!(i.status, "True");
    let cr = containers_ready_condition(&sp, &st, Phase::Running);
    assert_eq!(
        cr.message.as_deref(),
        Some("containers with unknown status: [b]")
    );
    let mut b = run("b");
    b.ready = true;
    let st = statuses(&[exited("init", 0), a, b]);
    let cr = containers_ready_condition(&sp, &st, Phase::Running);
    assert_eq!(cr.status, "True");
    assert_eq!(ready_condition(&sp, &cr).status, "True");
    let mut gated = sp.clone();
    gated.readiness_gates = Some(vec![PodReadinessGate {
        condition_type: "x/y".into(),
    }]);
    assert_eq!(
        ready_condition(&gated, &cr).reason.as_deref(),
        Some("ReadinessGatesNotReady")
    );

    let done = spec(&[], &[], &["a"], "Never");
    let st = statuses(&[exited("a", 0)]);
    let cr = containers_ready_condition(&done, &st, Phase::Succeeded);
    assert_eq!(
        (cr.status.as_str(), cr.reason.as_deref()),
        ("False", Some("PodCompleted"))
    );
    let i = initialized_condition(
        &spec(&["i"], &[], &["a"], "Never"),
        &statuses(&[exited("i", 0), exited("a", 0)]),
        Phase::Succeeded,
    );
    assert_eq!(i.reason.as_deref(), Some("PodCompleted"));
}

#[test]
fn full_pod_status() {
    let sp = spec(&["init"], &[], &["a"], "Always");
    let mut a = run("a");
    a.ready = true;
    a.started = Some(true);
    let init = [exited("init", 0)];
    let apps = [a];
    let prev = vec![PodCondition {
        type_: "Ready".into(),
        status: "True".into(),
        last_transition_time: Some(Time(t(1))),
        ..Default::default()
    }];
    let input = StatusInputs {
        init_containers: &init,
        containers: &apps,
        pod_ip: Some("10.1.0.2".into()),
        host_ip: Some("127.0.0.1".into()),
        start_time: Some(t(0)),
        previous_conditions: &prev,
        now: Some(t(9)),
        ..Default::default()
    };
    let ps = pod_status(&sp, &input);
    assert_eq!(ps.phase.as_deref(), Some("Running"));
    assert_eq!(ps.qos_class.as_deref(), Some("BestEffort"));
    let conds = ps.conditions.unwrap();
    let types: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        vec!["PodScheduled", "Initialized", "ContainersReady", "Ready"]
    );
    assert!(conds.iter().all(|c| c.status == "True"));
    assert_eq!(conds[3].last_transition_time, Some(Time(t(1))));
    assert_eq!(conds[0].last_transition_time, Some(Time(t(9))));
    assert_eq!(ps.pod_ips.unwrap()[0].ip, "10.1.0.2");
    assert_eq!(ps.init_container_statuses.unwrap().len(), 1);

    let gone = pod_status(
        &sp,
        &StatusInputs {
            unreachable: true,
            ..input
        },
    );
    assert_eq!(gone.phase.as_deref(), Some("Unknown"));
    let ready = gone
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("SupervisorUnreachable"))
    );
}

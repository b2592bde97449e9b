//! The Pod examples from the project's seed notes (tests/fixtures), through the
//! whole pure pipeline: load → validate → defaults → resources → argv →
//! probes → initial status.

use podrun_pod::k8s_openapi::api::core::v1::Pod;
use podrun_pod::k8s_openapi::jiff::Timestamp;
use podrun_pod::probe::{ProbeKind, ProbeSettings, ProbeWorker};
use podrun_pod::resources::{container_cgroup, pod_cgroup_config, pod_requests, QosClass};
use podrun_pod::status::{self, reason, ContainerRecord, StatusInputs};
use podrun_pod::{command, defaults, env, manifest, validate};
use std::path::PathBuf;
use std::time::Duration;

const GIB: u64 = 1 << 30;

fn load(name: &str) -> Pod {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut pods = manifest::load_manifest(&path).unwrap();
    assert_eq!(pods.len(), 1);
    let mp = pods.remove(0);
    assert!(
        mp.unknown_fields.is_empty(),
        "{name}: {:?}",
        mp.unknown_fields
    );
    let report = validate::validate_pod(&mp.pod, &validate::Options { strict: true });
    assert!(
        report.is_ok(),
        "{name}: {:?}",
        report
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut pod = mp.pod;
    defaults::apply_defaults(&mut pod);
    pod
}

#[test]
fn memory_demo_is_burstable_with_a_200mi_limit() {
    let pod = load("memory-demo.yaml");
    let spec = pod.spec.as_ref().unwrap();
    let c = &spec.containers[0];
    let cg = container_cgroup(spec, c, 4 * GIB);
    assert_eq!(cg.memory_limit, Some(200 << 20));
    assert_eq!(
        cg.oom_score_adj,
        1000 - (1000 * (100u64 << 20) / (4 * GIB)) as i32
    );
    let pc = pod_cgroup_config(spec);
    assert_eq!(pc.qos, QosClass::Burstable);
    assert_eq!(pc.memory_limit, Some(200 << 20));
    assert_eq!(pc.cpu_shares, 2);
    let argv = command::container_argv(
        &c.name,
        c.command.as_deref(),
        c.args.as_deref(),
        &[],
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        argv,
        [
            "stress",
            "--vm",
            "1",
            "--vm-bytes",
            "150M",
            "--vm-hang",
            "1"
        ]
    );
    assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
}

#[test]
fn cpu_demo_shares_and_quota() {
    let pod = load("cpu-demo.yaml");
    let spec = pod.spec.as_ref().unwrap();
    let cg = container_cgroup(spec, &spec.containers[0], 4 * GIB);
    assert_eq!(cg.cpu_shares, 512);
    assert_eq!(cg.cpu_quota_us, Some(100_000));
    assert_eq!(cg.cpu_period_us, 100_000);
    // Only args: image Entrypoint + args.
    let c = &spec.containers[0];
    let ep = vec!["/stress".to_string()];
    let argv = command::container_argv(
        &c.name,
        c.command.as_deref(),
        c.args.as_deref(),
        &ep,
        &["-logtostderr".into()],
        &[],
    )
    .unwrap();
    assert_eq!(argv, ["/stress", "-cpus", "2"]);
}

#[test]
fn init_demo_starts_pending_and_not_initialized() {
    let pod = load("init-demo.yaml");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(pod_requests(spec).cpu_millis, None);
    let init = [ContainerRecord::new(
        "install",
        "busybox",
        reason::CONTAINER_CREATING,
    )];
    let apps = [ContainerRecord::new(
        "nginx",
        "nginx",
        reason::POD_INITIALIZING,
    )];
    let st = status::pod_status(
        spec,
        &StatusInputs {
            init_containers: &init,
            containers: &apps,
            ..Default::default()
        },
    );
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    let c = st.conditions.unwrap();
    let initialized = c.iter().find(|c| c.type_ == "Initialized").unwrap();
    assert_eq!(
        initialized.reason.as_deref(),
        Some("ContainersNotInitialized")
    );
    assert_eq!(
        initialized.message.as_deref(),
        Some("containers with incomplete status: [install]")
    );
}

#[test]
fn liveness_exec_probe_kills_after_three_failures() {
    let pod = load("liveness-exec.yaml");
    let c = &pod.spec.as_ref().unwrap().containers[0];
    let settings = ProbeSettings::from_probe(c.liveness_probe.as_ref().unwrap());
    assert_eq!(settings.initial_delay, Duration::from_secs(5));
    assert_eq!(settings.period, Duration::from_secs(5));
    let mut w = ProbeWorker::new(ProbeKind::Liveness, settings);
    let start = Duration::from_secs(1000);
    let mut now = start;
    let mut kills = 0;
    // Healthy for 30 s, then the file is gone.
    for _ in 0..20 {
        now = w.next_due(start, true).unwrap_or(now).max(now);
        let healthy = now < start + Duration::from_secs(30);
        let raw = if healthy {
            podrun_pod::probe::ProbeResult::Success
        } else {
            podrun_pod::probe::ProbeResult::Failure
        };
        if let Some((_, podrun_pod::probe::ProbeAction::KillContainer)) = w.record(raw, now) {
            kills += 1;
            break;
        }
        now += Duration::from_secs(5);
    }
    assert_eq!(kills, 1);
    // Probes at 5,10,...,25 succeed; 30, 35, 40 fail → killed at 40 s.
    assert_eq!(now, start + Duration::from_secs(40));
}

#[test]
fn goproxy_probes_and_lifecycle_demo_hooks_validate() {
    let pod = load("goproxy.yaml");
    let c = &pod.spec.as_ref().unwrap().containers[0];
    let r = ProbeSettings::from_probe(c.readiness_probe.as_ref().unwrap());
    assert_eq!(
        (
            r.initial_delay.as_secs(),
            r.period.as_secs(),
            r.failure_threshold
        ),
        (5, 10, 3)
    );
    let pod = load("lifecycle-demo.yaml");
    assert!(pod.spec.unwrap().containers[0]
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .is_some());
}

#[test]
fn volume_pod_shares_an_empty_dir_and_expands_env() {
    let pod = load("volume-pod.yaml");
    let spec = pod.spec.as_ref().unwrap();
    let fields = env::PodFields {
        name: "volume-pod".into(),
        namespace: "default".into(),
        ..Default::default()
    };
    let alpine = &spec.containers[1];
    let e = env::container_env(alpine, &fields).unwrap();
    assert!(e.is_empty());
    let argv = command::container_argv(
        &alpine.name,
        alpine.command.as_deref(),
        alpine.args.as_deref(),
        &[],
        &["/bin/sh".into()],
        &e,
    )
    .unwrap();
    assert_eq!(argv, ["sh", "-c", "tail -f /logs/catalina*.log"]);
    // Both containers running and ready → Running, Ready.
    let mut recs: Vec<ContainerRecord> = spec
        .containers
        .iter()
        .map(|c| ContainerRecord::new(&c.name, "img", reason::CONTAINER_CREATING))
        .collect();
    let t0 = Timestamp::from_second(1_700_000_000).unwrap();
    for r in &mut recs {
        r.on_start(Some(format!("id-{}", r.name)), t0);
        r.started = Some(true);
        r.ready = true;
    }
    let st = status::pod_status(
        spec,
        &StatusInputs {
            containers: &recs,
            now: Some(t0),
            ..Default::default()
        },
    );
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert!(st.conditions.unwrap().iter().all(|c| c.status == "True"));
}

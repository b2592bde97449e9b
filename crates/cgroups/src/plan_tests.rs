use super::*;

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("valid LinuxResources json")
}

fn hybrid_avail() -> Avail {
    Avail {
        v1: [
            "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        unified: Some(vec!["hugetlb".into()]),
    }
}

fn v2_avail() -> Avail {
    Avail {
        v1: vec![],
        unified: Some(
            ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    }
}

/// A probe for a fresh cgroup: memsw unlimited, bfq present, cpu.max default.
fn fresh(_: Target, f: &str) -> Option<String> {
    match f {
        "memory.memsw.limit_in_bytes" => Some("9223372036854771712\n".into()),
        "blkio.bfq.weight" | "io.bfq.weight" => Some("default 100\n".into()),
        "cpu.max" => Some("max 100000\n".into()),
        "memory.swap.max" => Some("max\n".into()),
        _ => None,
    }
}

fn files(p: &Plan) -> Vec<(String, String)> {
    p.writes
        .iter()
        .map(|w| (w.file.clone(), w.value.clone()))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn v1_memory_limit_then_memsw_on_fresh_cgroup() {
    let r = res(
        r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":52428800,"swappiness":10,"disableOOMKiller":true,"kernel":1000}}"#,
    );
    let p = plan_v1(&r, &hybrid_avail(), &fresh).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("memory.limit_in_bytes", "104857600"),
            pair("memory.memsw.limit_in_bytes", "209715200"),
            pair("memory.soft_limit_in_bytes", "52428800"),
            pair("memory.swappiness", "10"),
            pair("memory.oom_control", "1"),
        ]
    );
    assert!(p.writes.iter().all(|w| w.target == Target::V1("memory")));
    assert!(p.warnings.iter().any(|w| w.contains("kernel")));
}

#[test]
fn v1_memsw_first_when_raising_above_current() {
    let r = res(r#"{"memory":{"limit":300,"swap":400}}"#);
    let probe =
        |_: Target, f: &str| (f == "memory.memsw.limit_in_bytes").then(|| "200\n".to_string());
    let p = plan_v1(&r, &hybrid_avail(), &probe).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("memory.memsw.limit_in_bytes", "400"),
            pair("memory.limit_in_bytes", "300")
        ]
    );
    // swap -1 (unlimited) also goes first
    let r = res(r#"{"memory":{"limit":300,"swap":-1}}"#);
    let p = plan_v1(&r, &hybrid_avail(), &probe).unwrap();
    assert_eq!(p.writes[0].file, "memory.memsw.limit_in_bytes");
    assert_eq!(p.writes[0].value, "-1");
}

#[test]
fn v1_memory_validation() {
    let e = plan_v1(
        &res(r#"{"memory":{"limit":300,"swap":100}}"#),
        &hybrid_avail(),
        &fresh,
    )
    .unwrap_err();
    assert!(e.to_string().contains("memory.swap"), "{e}");
    let e = plan_v1(
        &res(r#"{"memory":{"swappiness":200}}"#),
        &hybrid_avail(),
        &fresh,
    )
    .unwrap_err();
    assert!(e.to_string().contains("swappiness"), "{e}");
    let e = plan_v1(&res(r#"{"memory":{"limit":-5}}"#), &hybrid_avail(), &fresh).unwrap_err();
    assert!(e.to_string().contains("memory.limit"), "{e}");
    // swap accounting off: explicit extra swap is an error, swap == limit is ignored
    let none = |_: Target, _: &str| None;
    assert!(plan_v1(
        &res(r#"{"memory":{"limit":100,"swap":200}}"#),
        &hybrid_avail(),
        &none
    )
    .is_err());
    let p = plan_v1(
        &res(r#"{"memory":{"limit":100,"swap":100}}"#),
        &hybrid_avail(),
        &none,
    )
    .unwrap();
    assert_eq!(files(&p), vec![pair("memory.limit_in_bytes", "100")]);
}

#[test]
fn v1_cpu_and_cpuset() {
    let r = res(
        r#"{"cpu":{"shares":512,"quota":50000,"period":100000,"cpus":"0","mems":"0","idle":0}}"#,
    );
    let p = plan_v1(&r, &hybrid_avail(), &fresh).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("cpu.shares", "512"),
            pair("cpu.cfs_period_us", "100000"),
            pair("cpu.cfs_quota_us", "50000"),
            pair("cpu.idle", "0"),
            pair("cpuset.cpus", "0"),
            pair("cpuset.mems", "0"),
        ]
    );
    assert_eq!(p.writes[4].target, Target::V1("cpuset"));
    let r = res(r#"{"cpu":{"realtimePeriod":1000000,"realtimeRuntime":950000}}"#);
    let p = plan_v1(&r, &hybrid_avail(), &fresh).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("cpu.rt_period_us", "1000000"),
            pair("cpu.rt_runtime_us", "950000")
        ]
    );
}

#[test]
fn v1_pids_blkio_devices() {
    let r = res(r#"{
        "pids":{"limit":0},
        "blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":300}],
                   "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                   "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":100}]},
        "devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]
    }"#);
    let p = plan_v1(&r, &hybrid_avail(), &fresh).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("pids.max", "max"),
            pair("blkio.bfq.weight", "500"),
            pair("blkio.bfq.weight_device", "8:0 300"),
            pair("blkio.throttle.read_bps_device", "8:0 1048576"),
            pair("blkio.throttle.write_iops_device", "8:0 100"),
            pair("devices.deny", "a *:* rwm"),
            pair("devices.allow", "c 1:3 rwm"),
        ]
    );
    // CFQ host uses blkio.weight
    let cfq = |_: Target, f: &str| (f == "blkio.weight").then(|| "500".to_string());
    let p = plan_v1(&res(r#"{"blockIO":{"weight":100}}"#), &hybrid_avail(), &cfq).unwrap();
    assert_eq!(files(&p), vec![pair("blkio.weight", "100")]);
    // neither: clear error
    let none = |_: Target, _: &str| None;
    let e = plan_v1(
        &res(r#"{"blockIO":{"weight":100}}"#),
        &hybrid_avail(),
        &none,
    )
    .unwrap_err();
    assert!(e.to_string().contains("blkio.bfq.weight"), "{e}");
}

#[test]
fn v1_hugetlb_goes_to_unified_on_hybrid() {
    let r = res(
        r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304},{"pageSize":"1GB","limit":-1}]}"#,
    );
    let p = plan_v1(&r, &hybrid_avail(), &fresh).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("hugetlb.2MB.max", "4194304"),
            pair("hugetlb.1GB.max", "max")
        ]
    );
    assert!(p.writes.iter().all(|w| w.target == Target::Unified));
    // v1 hugetlb mounted: v1 file names
    let mut a = hybrid_avail();
    a.v1.push("hugetlb".into());
    let p = plan_v1(&r, &a, &fresh).unwrap();
    assert_eq!(p.writes[0].file, "hugetlb.2MB.limit_in_bytes");
    assert_eq!(p.writes[0].target, Target::V1("hugetlb"));
    // nowhere: error naming the controller
    let a = Avail {
        v1: vec!["memory".into()],
        unified: None,
    };
    let e = plan_v1(&r, &a, &fresh).unwrap_err().to_string();
    assert!(
        e.contains("\"hugetlb\"") && e.contains("hugepageLimits"),
        "{e}"
    );
    let e = plan_v1(
        &res(r#"{"hugepageLimits":[{"pageSize":"../x","limit":1}]}"#),
        &hybrid_avail(),
        &fresh,
    )
    .unwrap_err();
    assert!(e.to_string().contains("pageSize"));
}

#[test]
fn v1_missing_controllers_only_matter_when_requested() {
    let a = Avail {
        v1: vec!["memory".into()],
        unified: None,
    };
    // nothing requested for pids/net: fine
    plan_v1(&res(r#"{"memory":{"limit":100}}"#), &a, &fresh).unwrap();
    plan_v1(&res(r#"{}"#), &Avail::default(), &fresh).unwrap();
    let e = plan_v1(&res(r#"{"pids":{"limit":10}}"#), &a, &fresh)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"pids\""), "{e}");
    let e = plan_v1(
        &res(r#"{"network":{"classID":1048577}}"#),
        &hybrid_avail(),
        &fresh,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("net_cls"), "{e}");
    let e = plan_v1(&res(r#"{"unified":{"memory.high":"100"}}"#), &a, &fresh)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unified"), "{e}");
}

#[test]
fn v1_unified_keys_on_hybrid() {
    let p = plan_v1(
        &res(r#"{"unified":{"hugetlb.2MB.max":"2097152"}}"#),
        &hybrid_avail(),
        &fresh,
    )
    .unwrap();
    assert_eq!(files(&p), vec![pair("hugetlb.2MB.max", "2097152")]);
    assert_eq!(p.writes[0].target, Target::Unified);
    // memory is not a v2 controller on this hybrid host
    assert!(plan_v1(
        &res(r#"{"unified":{"memory.high":"1"}}"#),
        &hybrid_avail(),
        &fresh
    )
    .is_err());
}

#[test]
fn v2_memory_cpu_pids() {
    let r = res(
        r#"{"memory":{"limit":104857600,"swap":209715200,"reservation":1024,"swappiness":5},
                   "cpu":{"shares":1024,"quota":50000,"period":100000,"burst":1000,"cpus":"0-1"},
                   "pids":{"limit":42}}"#,
    );
    let p = plan_v2(&r, &v2_avail(), &fresh).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("memory.max", "104857600"),
            pair("memory.swap.max", "104857600"),
            pair("memory.low", "1024"),
            pair("cpu.weight", "39"),
            pair("cpu.max", "50000 100000"),
            pair("cpu.max.burst", "1000"),
            pair("cpuset.cpus", "0-1"),
            pair("pids.max", "42"),
        ]
    );
    assert!(p.writes.iter().all(|w| w.target == Target::Unified));
    assert!(p.warnings.iter().any(|w| w.contains("swappiness")));
}

#[test]
fn v2_cpu_max_keeps_current_parts() {
    let probe = |_: Target, f: &str| (f == "cpu.max").then(|| "20000 50000\n".to_string());
    let p = plan_v2(&res(r#"{"cpu":{"period":200000}}"#), &v2_avail(), &probe).unwrap();
    assert_eq!(files(&p), vec![pair("cpu.max", "20000 200000")]);
    let p = plan_v2(&res(r#"{"cpu":{"quota":-1}}"#), &v2_avail(), &probe).unwrap();
    assert_eq!(files(&p), vec![pair("cpu.max", "max 50000")]);
}

#[test]
fn v2_unlimited_memory_and_errors() {
    let p = plan_v2(&res(r#"{"memory":{"limit":-1}}"#), &v2_avail(), &fresh).unwrap();
    assert_eq!(
        files(&p),
        vec![pair("memory.max", "max"), pair("memory.swap.max", "max")]
    );
    let e = plan_v2(
        &res(r#"{"cpu":{"realtimeRuntime":100}}"#),
        &v2_avail(),
        &fresh,
    )
    .unwrap_err();
    assert!(e.to_string().contains("realtime"));
    let e = plan_v2(&res(r#"{"network":{"classID":1}}"#), &v2_avail(), &fresh).unwrap_err();
    assert!(e.to_string().contains("net_cls"));
    let mut a = v2_avail();
    a.unified = Some(vec!["hugetlb".into()]);
    let e = plan_v2(&res(r#"{"memory":{"limit":100}}"#), &a, &fresh)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"memory\"") && e.contains("subtree_control"),
        "{e}"
    );
}

#[test]
fn v2_io() {
    let r = res(
        r#"{"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}],
                    "throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":10}]}}"#,
    );
    let no_bfq = |_: Target, _: &str| None;
    let p = plan_v2(&r, &v2_avail(), &no_bfq).unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("io.weight", &format!("default {}", blkio_weight_to_io(500))),
            pair("io.max", "8:0 rbps=1000"),
            pair("io.max", "8:16 wiops=10"),
        ]
    );
    let p = plan_v2(&res(r#"{"blockIO":{"weight":500}}"#), &v2_avail(), &fresh).unwrap();
    assert_eq!(files(&p), vec![pair("io.bfq.weight", "500")]);
}

#[test]
fn v2_devices_warn_and_unified_keys() {
    let r = res(
        r#"{"devices":[{"allow":false,"access":"rwm"}],"unified":{"memory.high":"1000","pids.max":"5"}}"#,
    );
    let p = plan_v2(&r, &v2_avail(), &fresh).unwrap();
    assert_eq!(p.v2_devices.as_ref().map(|d| d.len()), Some(1));
    assert_eq!(
        files(&p),
        vec![pair("memory.high", "1000"), pair("pids.max", "5")]
    );
    let e = plan_v2(
        &res(r#"{"unified":{"cgroup.procs":"1"}}"#),
        &v2_avail(),
        &fresh,
    )
    .unwrap_err();
    assert!(e.to_string().contains("cgroup.procs"));
}

#[test]
fn v2_bad_device_rule_is_rejected_before_writing() {
    let e = plan_v2(
        &res(r#"{"pids":{"limit":5},"devices":[{"allow":true,"type":"c","access":"rwx"}]}"#),
        &v2_avail(),
        &fresh,
    )
    .unwrap_err();
    assert!(e.to_string().contains("devices.access"), "{e}");
}

#[test]
fn v2_limit_without_swap_disables_swap_and_sets_oom_group() {
    let probe = |t: Target, f: &str| {
        (f == "memory.oom.group")
            .then(|| "0\n".to_string())
            .or_else(|| fresh(t, f))
    };
    let p = plan_v2(
        &res(r#"{"memory":{"limit":67108864}}"#),
        &v2_avail(),
        &probe,
    )
    .unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("memory.max", "67108864"),
            pair("memory.oom.group", "1"),
            pair("memory.swap.max", "0"),
        ]
    );
    // an explicit swap value wins; unlimited memory sets neither
    let p = plan_v2(
        &res(r#"{"memory":{"limit":100,"swap":300}}"#),
        &v2_avail(),
        &probe,
    )
    .unwrap();
    assert!(files(&p).contains(&pair("memory.swap.max", "200")));
    let p = plan_v2(&res(r#"{"memory":{"limit":-1}}"#), &v2_avail(), &probe).unwrap();
    assert!(!files(&p).iter().any(|(f, _)| f == "memory.oom.group"));
    // an explicit unified memory.oom.group is the only write of that file
    let p = plan_v2(
        &res(r#"{"memory":{"limit":100},"unified":{"memory.oom.group":"0"}}"#),
        &v2_avail(),
        &probe,
    )
    .unwrap();
    let groups: Vec<_> = files(&p)
        .into_iter()
        .filter(|(f, _)| f == "memory.oom.group")
        .collect();
    assert_eq!(groups, vec![pair("memory.oom.group", "0")]);
    // no swap accounting, no oom.group file (old kernels): just the limit
    let none = |_: Target, _: &str| None;
    let p = plan_v2(&res(r#"{"memory":{"limit":100}}"#), &v2_avail(), &none).unwrap();
    assert_eq!(files(&p), vec![pair("memory.max", "100")]);
}

#[test]
fn v1_limit_without_swap_sets_memsw_to_the_limit() {
    let p = plan_v1(
        &res(r#"{"memory":{"limit":67108864}}"#),
        &hybrid_avail(),
        &fresh,
    )
    .unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("memory.limit_in_bytes", "67108864"),
            pair("memory.memsw.limit_in_bytes", "67108864"),
        ]
    );
    // raising an existing limit above the current memsw: memsw first
    let probe =
        |_: Target, f: &str| (f == "memory.memsw.limit_in_bytes").then(|| "33554432\n".to_string());
    let p = plan_v1(
        &res(r#"{"memory":{"limit":67108864}}"#),
        &hybrid_avail(),
        &probe,
    )
    .unwrap();
    assert_eq!(
        files(&p),
        vec![
            pair("memory.memsw.limit_in_bytes", "67108864"),
            pair("memory.limit_in_bytes", "67108864"),
        ]
    );
    // swap accounting off: the limit alone, no error, no warning needed
    let none = |_: Target, _: &str| None;
    let p = plan_v1(&res(r#"{"memory":{"limit":100}}"#), &hybrid_avail(), &none).unwrap();
    assert_eq!(files(&p), vec![pair("memory.limit_in_bytes", "100")]);
}

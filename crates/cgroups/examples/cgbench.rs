//! Hot-path benchmark: resolve + create + apply + add_pid + destroy per container, on the host's
//! real cgroupfs. Run as root: `cargo run --release -p podrun-cgroups --example cgbench -- 200`.
//! Containers are nested in a parent cgroup created first (like a pod, or a long-lived
//! "podrun/" directory), itself under the caller's own cgroup; everything is removed again.
//! Even iterations destroy after the process exited and was reaped (the usual `delete`); odd
//! ones destroy with the process still alive (kill + wait + rmdir).

use oci_spec::runtime::LinuxResources;
use podrun_cgroups::{detect, Cgroup};
use std::process::Command;
use std::time::{Duration, Instant};

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
        .max(2);
    let layout = detect().expect("detect");
    let res: LinuxResources = serde_json::from_str(
        r#"{"memory":{"limit":268435456},"cpu":{"shares":512,"quota":50000,"period":100000},"pids":{"limit":128}}"#,
    )
    .unwrap();
    let top = format!("pdcg-bench-{}", std::process::id());
    let parent = Cgroup::resolve(&layout, None, &top).expect("resolve parent");
    parent.create().expect("create parent");
    let names = [
        "resolve",
        "create",
        "apply",
        "add_pid",
        "destroy (exited)",
        "destroy (live)",
        "total (exited)",
    ];
    let mut t: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); names.len()];
    for i in 0..n {
        let mut child = Command::new("sleep")
            .arg("100")
            .spawn()
            .expect("spawn sleep");
        let s0 = Instant::now();
        let cg = Cgroup::resolve(&layout, None, &format!("{top}/c{i}")).expect("resolve");
        let s1 = Instant::now();
        cg.create().expect("create");
        let s2 = Instant::now();
        cg.apply(&res).expect("apply");
        let s3 = Instant::now();
        cg.add_pid(child.id() as i32).expect("add_pid");
        let s4 = Instant::now();
        for (k, d) in [s1 - s0, s2 - s1, s3 - s2, s4 - s3].into_iter().enumerate() {
            t[k].push(d);
        }
        if i % 2 == 0 {
            let _ = child.kill();
            let _ = child.wait();
            let s5 = Instant::now();
            cg.destroy().expect("destroy");
            let d = s5.elapsed();
            t[4].push(d);
            t[6].push(s4 - s0 + d);
        } else {
            let s5 = Instant::now();
            cg.destroy().expect("destroy");
            t[5].push(s5.elapsed());
            let _ = child.wait();
        }
    }
    parent.destroy().expect("destroy parent");
    println!(
        "layout: {}",
        if layout.is_hybrid() {
            "hybrid"
        } else {
            "v1/v2"
        }
    );
    println!("{n} containers, µs      median        p95");
    for (k, name) in names.iter().enumerate() {
        let med = pct(&mut t[k], 0.5);
        let p95 = pct(&mut t[k], 0.95);
        println!(
            "{name:<18} {:>10.1} {:>10.1}",
            med.as_secs_f64() * 1e6,
            p95.as_secs_f64() * 1e6
        );
    }
}

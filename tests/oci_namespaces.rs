//! Namespaces: new ones of every type, joining by path, user namespace
//! mappings, hostname and namespaced sysctls.
mod common;

use common::*;
use serde_json::json;
use std::collections::HashMap;
use std::fs;
use std::process::{Child, Command, Stdio};

const NS: [&str; 6] = ["pid", "net", "ipc", "uts", "mnt", "cgroup"];

fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Run the container and return {kind: "kind:[inode]"} as seen inside.
fn ns_inside(c: &mut Ctr, kinds: &[&str]) -> HashMap<String, String> {
    let script: String = kinds
        .iter()
        .map(|k| format!("echo {k}=$(readlink /proc/self/ns/{k}); "))
        .collect();
    let o = c.run_sh(&script);
    assert_ok(&o, "run");
    stdout(&o)
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect()
}

#[test]
fn new_namespaces_differ_from_host() {
    let mut c = Ctr::new("ns-new");
    c.namespace("cgroup", None);
    let inside = ns_inside(&mut c, &[&NS[..], &["user"]].concat());
    for k in NS {
        let v = inside
            .get(k)
            .unwrap_or_else(|| panic!("no {k} in {inside:?}"));
        assert!(v.starts_with(&format!("{k}:[")), "{k}: {v}");
        assert_ne!(v, &host_ns(k), "{k} namespace not unshared");
    }
    assert_eq!(
        inside["user"],
        host_ns("user"),
        "user ns must be the host's when not requested"
    );
}

#[test]
fn no_namespace_requested_means_host_namespace() {
    let mut c = Ctr::new("ns-host");
    c.namespaces(&["mount"]);
    c.config.as_object_mut().unwrap().remove("hostname");
    let inside = ns_inside(&mut c, &NS);
    for k in ["pid", "net", "ipc", "uts", "cgroup"] {
        assert_eq!(inside[k], host_ns(k), "{k} should be shared with the host");
    }
    assert_ne!(inside["mnt"], host_ns("mnt"));
}

#[test]
fn pid_namespace_init_is_pid1() {
    let mut c = Ctr::new("ns-pid1");
    let o = c.run_sh("echo $$; ls -d /proc/[0-9]* | wc -l");
    assert_ok(&o, "run");
    let s = stdout(&o);
    let mut l = s.lines();
    assert_eq!(l.next(), Some("1"), "{s}");
    // only sh and the ls pipeline are visible, no host processes
    let n: u32 = l.next().unwrap().trim().parse().unwrap();
    assert!(n <= 4, "{n} pids visible inside the pid namespace: {s}");
}

struct NetNs(String);
impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Needs `ip` (iproute2).
#[test]
fn join_network_namespace_by_path() {
    let mut c = Ctr::new("ns-joinnet");
    let name = format!("podrun-{}", c.id);
    let st = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("ip netns add (apt-get install iproute2)");
    assert!(st.success());
    let _guard = NetNs(name.clone());
    let path = format!("/run/netns/{name}");
    let want = inode(&path);
    c.namespace("network", Some(&path));
    let inside = ns_inside(&mut c, &["net"]);
    assert_eq!(
        inside["net"],
        format!("net:[{want}]"),
        "did not join {path}"
    );
}

struct Sleeper(Child);
impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Sleeper {
    /// `unshare <flags> sleep 1000`, once it has exec'd sleep (its namespaces exist then).
    fn unshare(flags: &[&str]) -> Sleeper {
        let child = Command::new("unshare")
            .args(flags)
            .args(["sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let s = Sleeper(child);
        let pid = s.pid();
        poll("unshare to exec sleep", WAIT, || {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "sleep").then_some(())
        });
        s
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

#[test]
fn join_uts_and_ipc_of_another_process() {
    let mut c = Ctr::new("ns-joinuts");
    let s = Sleeper::unshare(&["--uts", "--ipc"]);
    let pid = s.pid();
    let uts = fs::read_link(format!("/proc/{pid}/ns/uts"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let ipc = fs::read_link(format!("/proc/{pid}/ns/ipc"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_ne!(uts, host_ns("uts"));
    c.config.as_object_mut().unwrap().remove("hostname");
    c.namespace("uts", Some(&format!("/proc/{pid}/ns/uts")));
    c.namespace("ipc", Some(&format!("/proc/{pid}/ns/ipc")));
    let inside = ns_inside(&mut c, &["uts", "ipc", "net"]);
    assert_eq!(inside["uts"], uts);
    assert_eq!(inside["ipc"], ipc);
    assert_ne!(inside["net"], host_ns("net"), "net still a new namespace");
}

#[test]
fn user_namespace_with_mappings() {
    let mut c = Ctr::new("ns-user");
    c.namespace("user", None);
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    chown_tree(&c.rootfs, 100000, 100000);
    c.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; readlink /proc/self/ns/user; stat -c '%u:%g' /dev/mqueue; readlink /proc/self/ns/ipc; sleep 1000");
    c.create();
    let pid = c.pid();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status_field(&status, "Uid").starts_with("100000"),
        "host view of init uid: {status}"
    );
    c.start();
    poll("output", WAIT, || {
        (c.container_stdout().lines().count() >= 7).then_some(())
    });
    let out = c.container_stdout();
    let l: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(l[0], ["0", "100000", "65536"], "uid_map: {out}");
    assert_eq!(l[1], ["0", "100000", "65536"], "gid_map: {out}");
    assert_eq!(l[2], ["0"], "{out}");
    assert_eq!(l[3], ["0"], "{out}");
    assert_ne!(l[4][0], host_ns("user"), "{out}");
    // The IPC namespace's mqueue filesystem belongs to the container's root, not to an
    // unmapped host id (runc: the same).
    assert_eq!(
        l[5][0].split(':').next(),
        Some("0"),
        "/dev/mqueue owner: {out}"
    );
    assert_ne!(l[6][0], host_ns("ipc"), "{out}");
}

/// Joining a user namespace whose setgroups is "deny" (as `unshare --map-root-user` leaves
/// it): the container still starts; process.user.additionalGids cannot be set there and are
/// ignored with a warning, as runc does.
#[test]
fn joined_user_namespace_with_setgroups_denied() {
    if !is_podrun() {
        return; // runc 1.1.5 wants uidMappings even to join a user namespace by path
    }
    let mut c = Ctr::new("ns-userdeny");
    let s = Sleeper::unshare(&["--user", "--map-root-user"]);
    let pid = s.pid();
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/setgroups"))
            .unwrap()
            .trim(),
        "deny"
    );
    c.namespace("user", Some(&format!("/proc/{pid}/ns/user")));
    c.config["process"]["user"]["additionalGids"] = json!([5]);
    // Only root is mapped there: devpts cannot be given group 5 (tty).
    for m in c.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev/pts" {
            let opts = m["options"].as_array_mut().unwrap();
            opts.retain(|o| o != "gid=5");
        }
    }
    let o = c.run_sh("cat /proc/self/setgroups; id -G");
    assert_ok(&o, "run");
    assert_eq!(
        stdout(&o).split_whitespace().collect::<Vec<_>>(),
        ["deny", "0"]
    );
    assert!(
        stderr(&o).contains("setgroups is denied"),
        "no warning: {}",
        stderr(&o)
    );
}

#[test]
fn hostname_set_in_new_uts() {
    let mut c = Ctr::new("ns-hostname");
    c.config["hostname"] = json!("podrun-host");
    let host_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = c.run_sh("hostname; cat /proc/sys/kernel/hostname");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o), "podrun-host\npodrun-host\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_before
    );
}

#[test]
fn sysctl_ip_forward_in_new_netns() {
    let mut c = Ctr::new("ns-sysctl");
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want = if host_before.trim() == "1" { "0" } else { "1" };
    c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    let o = c.run_sh("cat /proc/sys/net/ipv4/ip_forward");
    assert_ok(&o, "run");
    assert_eq!(stdout(&o).trim(), want);
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before,
        "host sysctl changed"
    );
}

#[test]
fn loopback_exists_in_new_netns() {
    let mut c = Ctr::new("ns-lo");
    let o = c.run_sh("ls /sys/class/net");
    assert_ok(&o, "run");
    assert_eq!(
        stdout(&o).split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "only lo in a new netns"
    );
}

/// Time namespace (runtime-spec 1.1): only where the runtime's `features`
/// lists it (runc 1.1.5 does not; podrun does).
#[test]
fn time_namespace_offsets_when_supported() {
    let mut c = Ctr::new("ns-time");
    let o = c.rt(&["features"]);
    let supported = serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| {
            v["linux"]["namespaces"]
                .as_array()
                .map(|a| a.iter().any(|n| n == "time"))
        })
        .unwrap_or(false);
    if !supported {
        eprintln!("skipped: runtime does not list the time namespace in features");
        return;
    }
    c.namespace("time", None);
    c.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 86400, "nanosecs": 0}
    });
    let host_up: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let o = c.run_sh("readlink /proc/self/ns/time; cat /proc/uptime");
    assert_ok(&o, "run");
    let s = stdout(&o);
    let mut l = s.lines();
    assert_ne!(l.next().unwrap_or(""), host_ns("time"), "{s}");
    let up: f64 = l
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        up >= host_up + 86000.0,
        "boottime offset not applied to /proc/uptime: inside {up}, host {host_up}"
    );
}

//! Launching one container of a pod: derive its OCI bundle (config.json) from
//! the manifest, the image config and the sandbox, then run it in-process
//! through `podrun-container` with stdout/stderr pumped into a CRI log file.

use crate::command::container_argv;
use crate::crilog::Stream;
use crate::env::{container_env, merge_with_image_env, PodFields};
use crate::logs::{open_log, LogPump};
use crate::resources::container_cgroup;
use crate::sandbox::NsKind;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors building or starting a container.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    #[error(transparent)]
    Command(#[from] crate::command::CommandError),
    #[error("container {container:?}: volumeMounts[{index}]: volume {volume:?} is not defined in spec.volumes")]
    NoVolume {
        container: String,
        index: usize,
        volume: String,
    },
    #[error("container {container:?}: volumeMounts[{index}]: volume {volume:?}: only emptyDir and hostPath volumes are supported")]
    UnsupportedVolume {
        container: String,
        index: usize,
        volume: String,
    },
    #[error("container {container:?}: image user {user:?} is not numeric uid[:gid] (names are not resolved yet)")]
    User { container: String, user: String },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container {id:?}: {source}")]
    Runtime {
        id: String,
        source: podrun_container::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LaunchError {
    let path = path.to_path_buf();
    move |source| LaunchError::Io { what, path, source }
}

/// The process-related part of an image config.
#[derive(Debug, Clone, Default)]
pub struct ImageProcess {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` strings.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// Everything about the pod a container launch needs.
#[derive(Debug, Clone)]
pub struct LaunchContext<'a> {
    pub pod: &'a Pod,
    /// The pod's state dir: holds `hosts`, `hostname`, `volumes/<name>`, `bundles/<container>`.
    pub pod_dir: &'a Path,
    /// The sandbox's pinned namespaces (see [`crate::sandbox::Sandbox::namespaces`]).
    pub namespaces: &'a [(NsKind, PathBuf)],
    /// Cgroup path of the pod relative to the caller's cgroup, e.g. `podrun-pods/<uid>`.
    pub cgroup_parent: &'a str,
    /// Machine memory in bytes (for oom_score_adj).
    pub machine_memory: u64,
}

/// The fields `fieldRef` may read, from a pod.
pub fn pod_fields(pod: &Pod) -> PodFields {
    let m = &pod.metadata;
    PodFields {
        name: m.name.clone().unwrap_or_default(),
        namespace: m.namespace.clone().unwrap_or_else(|| "default".into()),
        uid: m.uid.clone().unwrap_or_default(),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        service_account_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        host_ip: "127.0.0.1".into(),
        pod_ip: "127.0.0.1".into(),
    }
}

/// The pod's hostname: `spec.hostname` or the pod name.
pub fn pod_hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_else(|| "pod".into())
}

/// Pure: the /etc/hosts content kubelet writes for a pod without hostNetwork.
pub fn hosts_content(hostname: &str) -> String {
    format!(
        "# Kubernetes-managed hosts file (podrun).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n127.0.0.1\t{hostname}\n"
    )
}

/// Writes `hosts`, `hostname` and creates `volumes/<name>` for each emptyDir.
pub fn write_pod_files(pod: &Pod, pod_dir: &Path) -> Result<(), LaunchError> {
    let h = pod_hostname(pod);
    std::fs::create_dir_all(pod_dir).map_err(io("create pod dir", pod_dir))?;
    let hp = pod_dir.join("hosts");
    std::fs::write(&hp, hosts_content(&h)).map_err(io("write", &hp))?;
    let np = pod_dir.join("hostname");
    std::fs::write(&np, format!("{h}\n")).map_err(io("write", &np))?;
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if v.empty_dir.is_some() {
            let d = pod_dir.join("volumes").join(&v.name);
            std::fs::create_dir_all(&d).map_err(io("create emptyDir", &d))?;
        }
    }
    Ok(())
}

fn parse_user(container: &str, u: &str) -> Result<(u32, u32), LaunchError> {
    let bad = || LaunchError::User {
        container: container.into(),
        user: u.into(),
    };
    let (a, b) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let uid: u32 = a.parse().map_err(|_| bad())?;
    let gid: u32 = match b {
        Some(b) => b.parse().map_err(|_| bad())?,
        None => 0,
    };
    Ok((uid, gid))
}

/// Pure (no I/O): the OCI config.json for container `c`.
pub fn build_spec(
    ctx: &LaunchContext,
    c: &Container,
    image: &ImageProcess,
    rootfs: &Path,
) -> Result<Value, LaunchError> {
    let pod = ctx.pod;
    let spec_k = pod.spec.clone().unwrap_or_default();
    let fields = pod_fields(pod);
    let env = container_env(c, &fields)?;
    let argv = container_argv(
        &c.name,
        c.command.as_deref(),
        c.args.as_deref(),
        &image.entrypoint,
        &image.cmd,
        &env,
    )?;
    let mut full_env = merge_with_image_env(&image.env, &env);
    if !full_env.iter().any(|e| e.starts_with("PATH=")) {
        full_env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    full_env.push(format!("HOSTNAME={}", pod_hostname(pod)));

    // User: securityContext (container over pod) over the image's user.
    let psc = spec_k.security_context.as_ref();
    let csc = c.security_context.as_ref();
    let (mut uid, mut gid) = match image.user.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => parse_user(&c.name, u)?,
        None => (0, 0),
    };
    if let Some(u) = csc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|s| s.run_as_user))
    {
        uid = u as u32;
    }
    if let Some(g) = csc
        .and_then(|s| s.run_as_group)
        .or(psc.and_then(|s| s.run_as_group))
    {
        gid = g as u32;
    }
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    let mut spec = serde_json::to_value(podrun_container::spec::default_spec(false))
        .expect("default spec serializes");
    spec["root"] = json!({"path": rootfs, "readonly": false});
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = json!(argv);
    spec["process"]["env"] = json!(full_env);
    spec["process"]["cwd"] = json!(cwd);
    spec["process"]["user"] = json!({"uid": uid, "gid": gid});
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }

    // Namespaces: join the sandbox's, own mount (+ pid unless shared).
    let mut ns = vec![json!({"type": "mount"})];
    let pinned = |k: NsKind| ctx.namespaces.iter().find(|(n, _)| *n == k);
    match pinned(NsKind::Pid) {
        Some((_, p)) => ns.push(json!({"type": "pid", "path": p})),
        None => ns.push(json!({"type": "pid"})),
    }
    for k in [NsKind::Net, NsKind::Ipc, NsKind::Uts] {
        if let Some((_, p)) = pinned(k) {
            ns.push(json!({"type": k.oci_type(), "path": p}));
        }
    }
    if spec_k.host_users == Some(false) {
        ns.push(json!({"type": "user"}));
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    }
    spec["linux"]["namespaces"] = json!(ns);

    // Resources.
    let cg = container_cgroup(&spec_k, c, ctx.machine_memory);
    let mut cpu = json!({"shares": cg.cpu_shares});
    if let Some(q) = cg.cpu_quota_us {
        cpu["quota"] = json!(q);
        cpu["period"] = json!(cg.cpu_period_us);
    }
    let mut res = json!({"cpu": cpu});
    if let Some(m) = cg.memory_limit {
        res["memory"] = json!({"limit": m});
    }
    if let Some(devs) = spec["linux"]["resources"].get("devices").cloned() {
        res["devices"] = devs;
    }
    spec["linux"]["resources"] = res;
    spec["process"]["oomScoreAdj"] = json!(cg.oom_score_adj);
    spec["linux"]["cgroupsPath"] = json!(format!("{}/{}", ctx.cgroup_parent, c.name));

    // Mounts: /etc/hosts, /etc/hostname, then volumes.
    let mounts = spec["mounts"]
        .as_array_mut()
        .expect("default spec has mounts");
    for (f, dst) in [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname")] {
        mounts.push(json!({"destination": dst, "type": "bind",
            "source": ctx.pod_dir.join(f), "options": ["rbind", "rprivate"]}));
    }
    for (i, vm) in c.volume_mounts.iter().flatten().enumerate() {
        let v = spec_k
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == vm.name)
            .ok_or_else(|| LaunchError::NoVolume {
                container: c.name.clone(),
                index: i,
                volume: vm.name.clone(),
            })?;
        let src = if v.empty_dir.is_some() {
            ctx.pod_dir.join("volumes").join(&v.name)
        } else if let Some(hp) = &v.host_path {
            PathBuf::from(&hp.path)
        } else {
            return Err(LaunchError::UnsupportedVolume {
                container: c.name.clone(),
                index: i,
                volume: vm.name.clone(),
            });
        };
        let mut opts = vec!["rbind", "rprivate"];
        if vm.read_only == Some(true) {
            opts.push("ro");
        }
        mounts.push(json!({"destination": vm.mount_path, "type": "bind",
            "source": src, "options": opts}));
    }
    Ok(spec)
}

/// Writes `<pod_dir>/bundles/<container>/config.json`; returns the bundle dir.
pub fn write_bundle(
    ctx: &LaunchContext,
    c: &Container,
    image: &ImageProcess,
    rootfs: &Path,
) -> Result<PathBuf, LaunchError> {
    let spec = build_spec(ctx, c, image, rootfs)?;
    let dir = ctx.pod_dir.join("bundles").join(&c.name);
    std::fs::create_dir_all(&dir).map_err(io("create bundle dir", &dir))?;
    let p = dir.join("config.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&spec).expect("json")).map_err(io("write", &p))?;
    Ok(dir)
}

/// A started container run.
#[derive(Debug)]
pub struct Running {
    pub id: String,
    /// Host pid of the container's init (our child, or reparented to us as subreaper).
    pub pid: i32,
    /// stdout and stderr pumps: poll their fds in the caller's loop (or [`crate::logs::drain`]).
    pub pumps: Vec<LogPump>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(LaunchError::Io {
            what: "pipe2",
            path: PathBuf::new(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: pipe2 just returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Runs the bundle as container `id` (stdin /dev/null, stdout+stderr to the
/// CRI log file `log_path` through pump threads). The caller reaps `pid` and
/// then calls `rt.delete(id, true)`.
pub fn start_container(
    rt: &podrun_container::Runtime,
    id: &str,
    bundle: &Path,
    log_path: &Path,
) -> Result<Running, LaunchError> {
    let log = open_log(log_path).map_err(io("open log", log_path))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let null = std::fs::File::open("/dev/null").map_err(io("open", Path::new("/dev/null")))?;
    let o = podrun_container::CreateOptions {
        id: id.into(),
        bundle: bundle.to_path_buf(),
        stdio: Some([null.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]),
        ..Default::default()
    };
    let pid = rt.run_detached(&o).map_err(|source| LaunchError::Runtime {
        id: id.into(),
        source,
    })?;
    drop(out_w);
    drop(err_w);
    let pumps = vec![
        LogPump::new(out_r, Stream::Stdout, log.clone()).map_err(io("pipe", log_path))?,
        LogPump::new(err_r, Stream::Stderr, log).map_err(io("pipe", log_path))?,
    ];
    Ok(Running {
        id: id.into(),
        pid,
        pumps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}))
        .unwrap()
    }

    fn spec_for(
        p: &Pod,
        ns: &[(NsKind, PathBuf)],
        img: &ImageProcess,
    ) -> Result<Value, LaunchError> {
        let ctx = LaunchContext {
            pod: p,
            pod_dir: Path::new("/run/pods/u1"),
            namespaces: ns,
            cgroup_parent: "podrun-pods/u1",
            machine_memory: 1 << 30,
        };
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        build_spec(&ctx, &c, img, Path::new("/rootfs"))
    }

    #[test]
    fn joins_sandbox_namespaces_and_mounts_volumes() {
        let p = pod(json!({
            "securityContext": {"runAsUser": 1000},
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/srv"}}],
            "containers": [{"name": "c", "image": "x", "args": ["a"], "workingDir": "/w",
                "env": [{"name": "E", "value": "1"}],
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                "volumeMounts": [{"name": "v", "mountPath": "/data"},
                                 {"name": "h", "mountPath": "/srv", "readOnly": true}]}]
        }));
        let ns = vec![
            (NsKind::Net, PathBuf::from("/run/pods/u1/ns/net")),
            (NsKind::Uts, PathBuf::from("/run/pods/u1/ns/uts")),
        ];
        let img = ImageProcess {
            entrypoint: vec!["/bin/ep".into()],
            env: vec!["E=0".into(), "I=2".into()],
            user: Some("5:6".into()),
            ..Default::default()
        };
        let s = spec_for(&p, &ns, &img).unwrap();
        assert_eq!(s["process"]["args"], json!(["/bin/ep", "a"]));
        assert_eq!(s["process"]["cwd"], "/w");
        assert_eq!(s["process"]["user"], json!({"uid": 1000, "gid": 6}));
        let env: Vec<String> = serde_json::from_value(s["process"]["env"].clone()).unwrap();
        assert!(env.contains(&"E=1".to_string()) && env.contains(&"I=2".to_string()));
        assert_eq!(
            s["linux"]["namespaces"],
            json!([{"type": "mount"}, {"type": "pid"},
                   {"type": "network", "path": "/run/pods/u1/ns/net"},
                   {"type": "uts", "path": "/run/pods/u1/ns/uts"}])
        );
        assert_eq!(s["linux"]["cgroupsPath"], "podrun-pods/u1/c");
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 50000);
        let mounts = s["mounts"].as_array().unwrap();
        let find = |d: &str| {
            mounts
                .iter()
                .find(|m| m["destination"] == d)
                .cloned()
                .unwrap()
        };
        assert_eq!(find("/etc/hosts")["source"], "/run/pods/u1/hosts");
        assert_eq!(find("/data")["source"], "/run/pods/u1/volumes/v");
        assert_eq!(find("/srv")["options"], json!(["rbind", "rprivate", "ro"]));
        assert!(s.get("hostname").is_none());
    }

    #[test]
    fn undefined_volume_is_named() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "command": ["sh"],
            "volumeMounts": [{"name": "nope", "mountPath": "/d"}]}]}),
        );
        let e = spec_for(&p, &[], &ImageProcess::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"nope\"") && e.contains("volumeMounts[0]"),
            "{e}"
        );
    }

    #[test]
    fn non_numeric_image_user_is_an_error() {
        let p = pod(json!({"containers": [{"name": "c", "image": "x", "command": ["sh"]}]}));
        let img = ImageProcess {
            user: Some("nginx".into()),
            ..Default::default()
        };
        assert!(spec_for(&p, &[], &img)
            .unwrap_err()
            .to_string()
            .contains("nginx"));
    }

    #[test]
    fn hosts_file_has_hostname() {
        assert!(hosts_content("web").contains("127.0.0.1\tweb\n"));
    }
}

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
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
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

impl LaunchError {
    /// A problem with the pod's configuration (securityContext, volumes,
    /// env, command) rather than with the machine: kubelet reports these as
    /// `CreateContainerConfigError` and retries only when the pod changes.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            LaunchError::Security(_)
                | LaunchError::Volume(_)
                | LaunchError::Env(_)
                | LaunchError::Command(_)
        )
    }
}

pub use crate::volumes::unmount_pod_volumes;

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
    /// The image's StopSignal (e.g. `SIGQUIT`), used when the container has no
    /// `lifecycle.stopSignal`.
    pub stop_signal: Option<String>,
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

/// Writes `hosts` and `hostname`, and sets up the pod's volumes
/// ([`crate::volumes::prepare_volumes`]: emptyDir directories or tmpfs
/// mounts with their ownership, hostPath type checks). Call
/// [`unmount_pod_volumes`] at teardown.
pub fn write_pod_files(pod: &Pod, pod_dir: &Path) -> Result<(), LaunchError> {
    let h = pod_hostname(pod);
    std::fs::create_dir_all(pod_dir).map_err(io("create pod dir", pod_dir))?;
    let hp = pod_dir.join("hosts");
    std::fs::write(&hp, hosts_content(&h)).map_err(io("write", &hp))?;
    let np = pod_dir.join("hostname");
    std::fs::write(&np, format!("{h}\n")).map_err(io("write", &np))?;
    crate::volumes::prepare_volumes(pod, pod_dir)?;
    Ok(())
}

/// One volume mount of a container, resolved against the pod's volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    /// `spec.containers[j].volumeMounts[k]`.
    pub field: String,
    /// Host path of the volume (before subPath).
    pub volume_path: PathBuf,
    /// subPath (or expanded subPathExpr), checked: relative, no `..`.
    pub sub_path: Option<String>,
    pub destination: String,
    pub read_only: bool,
    /// "rprivate", "rslave" or "rshared".
    pub propagation: &'static str,
}

impl ResolvedMount {
    /// The host path bind-mounted into the container.
    pub fn source(&self) -> PathBuf {
        match &self.sub_path {
            Some(s) => self.volume_path.join(s),
            None => self.volume_path.clone(),
        }
    }
}

/// Pure: resolves `c`'s volumeMounts (volume defined and supported, subPath
/// or subPathExpr expanded with the container's env and checked, propagation),
/// sorted by destination depth so parents are mounted before children (as
/// containerd does).
pub fn resolve_mounts(
    pod: &Pod,
    pod_dir: &Path,
    c: &Container,
    env: &[(String, String)],
) -> Result<Vec<ResolvedMount>, LaunchError> {
    use crate::volumes::{check_sub_path, volume_source, VolumeError};
    let cf = crate::security::container_field(pod, &c.name);
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (k, vm) in c.volume_mounts.iter().flatten().enumerate() {
        let field = format!("{cf}.volumeMounts[{k}]");
        let v =
            volumes
                .iter()
                .find(|v| v.name == vm.name)
                .ok_or_else(|| VolumeError::NoVolume {
                    field: format!("{field}.name"),
                    volume: vm.name.clone(),
                })?;
        let volume_path = volume_source(pod_dir, v).ok_or_else(|| VolumeError::Unsupported {
            field: field.clone(),
            volume: vm.name.clone(),
        })?;
        let sub_path = match (
            vm.sub_path.as_deref().filter(|s| !s.is_empty()),
            vm.sub_path_expr.as_deref().filter(|s| !s.is_empty()),
        ) {
            (Some(s), _) => {
                check_sub_path(&field, s)?;
                Some(s.to_string())
            }
            (None, Some(e)) => {
                let s = crate::env::expand(e, &|n| {
                    env.iter()
                        .rev()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                });
                check_sub_path(&field, &s)?;
                Some(s).filter(|s| !s.is_empty())
            }
            (None, None) => None,
        };
        let propagation = match vm.mount_propagation.as_deref() {
            Some("HostToContainer") => "rslave",
            Some("Bidirectional") => "rshared",
            _ => "rprivate",
        };
        out.push(ResolvedMount {
            field,
            volume_path,
            sub_path,
            destination: vm.mount_path.clone(),
            read_only: vm.read_only == Some(true),
            propagation,
        });
    }
    out.sort_by_key(|m| {
        Path::new(&m.destination)
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count()
    });
    Ok(out)
}

/// The OCI config.json for container `c`. Pure except for reading the
/// image's `/etc/passwd` and `/etc/group` under `rootfs` (user names, default
/// and member groups).
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

    // Identity and privileges: securityContext (container over pod) over the image's user.
    let db = crate::security::UserDb::load(rootfs);
    let sec = crate::security::process_security_with(pod, c, image.user.as_deref(), &db)?;
    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    let mut spec = serde_json::to_value(podrun_container::spec::default_spec(false))
        .expect("default spec serializes");
    spec["root"] = json!({"path": rootfs, "readonly": sec.read_only_root});
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = json!(argv);
    spec["process"]["env"] = json!(full_env);
    spec["process"]["cwd"] = json!(cwd);
    let mut user = json!({"uid": sec.uid, "gid": sec.gid});
    if !sec.additional_gids.is_empty() {
        user["additionalGids"] = json!(sec.additional_gids);
    }
    spec["process"]["user"] = user;
    // containerd's CRI: bounding = effective = permitted, no inheritable, no
    // ambient; the kernel then leaves a non-root process no capabilities.
    spec["process"]["capabilities"] = json!({
        "bounding": sec.bounding,
        "effective": sec.effective,
        "permitted": sec.effective,
        "inheritable": [],
        "ambient": [],
    });
    spec["process"]["noNewPrivileges"] = json!(sec.no_new_privileges);
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    // Pod sysctls (namespaced: net.*, ipc): kubelet applies them to the
    // sandbox; every container sets them again in the shared namespaces.
    let sysctls: serde_json::Map<String, Value> = spec_k
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.replace('/', "."), json!(s.value)))
        .collect();
    if !sysctls.is_empty() {
        spec["linux"]["sysctl"] = Value::Object(sysctls);
    }
    if let Some(seccomp) = &sec.seccomp {
        spec["linux"]["seccomp"] = seccomp.clone();
    }
    if sec.unmasked_proc {
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
    }

    // Namespaces: join the sandbox's, own mount (+ pid unless shared).
    let mut ns = vec![json!({"type": "mount"})];
    let pinned = |k: NsKind| ctx.namespaces.iter().find(|(n, _)| *n == k);
    match pinned(NsKind::Pid) {
        Some((_, p)) => ns.push(json!({"type": "pid", "path": p})),
        // hostPID: no pid namespace entry, the container sees the host's.
        None if spec_k.host_pid == Some(true) => {}
        None => ns.push(json!({"type": "pid"})),
    }
    for k in [NsKind::Net, NsKind::Ipc, NsKind::Uts] {
        if let Some((_, p)) = pinned(k) {
            ns.push(json!({"type": k.oci_type(), "path": p}));
        }
    }
    if spec_k.host_users == Some(false) {
        let base = crate::security::user_namespace_base(&fields.uid);
        let size = crate::security::USER_NAMESPACE_SIZE;
        ns.push(json!({"type": "user"}));
        spec["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": base, "size": size}]);
        spec["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": base, "size": size}]);
        userns_mounts(&mut spec);
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
    if sec.privileged {
        res["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else if let Some(devs) = spec["linux"]["resources"].get("devices").cloned() {
        res["devices"] = devs;
    }
    spec["linux"]["resources"] = res;
    if spec_k.host_users != Some(false) {
        // In its own user namespace the init cannot write /proc/self/oom_score_adj
        // (owned by a host uid it does not map); it inherits the caller's.
        spec["process"]["oomScoreAdj"] = json!(cg.oom_score_adj);
    }
    spec["linux"]["cgroupsPath"] = json!(crate::podcgroup::container_cgroup(
        ctx.cgroup_parent,
        &c.name
    ));

    // Mounts: privileged gets rw sysfs and cgroupfs; then /etc/hosts,
    // /etc/hostname (unless a volume provides them), then the volumes.
    let resolved = resolve_mounts(pod, ctx.pod_dir, c, &env)?;
    let mounts = spec["mounts"]
        .as_array_mut()
        .expect("default spec has mounts");
    if sec.privileged {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| x != "ro");
                    o.push(json!("rw"));
                }
            }
        }
    }
    for (f, dst) in [("hosts", "/etc/hosts"), ("hostname", "/etc/hostname")] {
        if resolved.iter().any(|m| m.destination == dst) {
            continue;
        }
        mounts.push(json!({"destination": dst, "type": "bind",
            "source": ctx.pod_dir.join(f), "options": ["rbind", "rprivate"]}));
    }
    for m in &resolved {
        let mut opts = vec!["rbind", m.propagation];
        if m.read_only {
            opts.push("ro");
        }
        mounts.push(json!({"destination": m.destination, "type": "bind",
            "source": m.source(), "options": opts}));
    }
    Ok(spec)
}

/// Pure: mounts a container in its own user namespace cannot make, because
/// the sandbox's net and ipc namespaces it joins belong to the host's user
/// namespace: sysfs becomes a read-only recursive bind of the host's /sys
/// (runc's rootless fallback; it includes /sys/fs/cgroup), mqueue is left out.
fn userns_mounts(spec: &mut Value) {
    let Some(mounts) = spec["mounts"].as_array_mut() else {
        return;
    };
    mounts.retain(|m| m["destination"] != "/dev/mqueue" && m["destination"] != "/sys/fs/cgroup");
    for m in mounts.iter_mut() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
}

/// The host's device nodes for a privileged container (containerd's
/// HostDevices: /dev walked recursively, skipping pts, shm, fd, mqueue and
/// the container runtimes' private dirs, and /dev/console).
pub fn host_devices() -> Vec<Value> {
    fn walk(dir: &Path, out: &mut Vec<Value>) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                let name = e.file_name();
                let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
                if !skip.iter().any(|s| name == *s) {
                    walk(&p, out);
                }
                continue;
            }
            if p == Path::new("/dev/console") {
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            let rdev = m.rdev();
            out.push(json!({"path": p, "type": kind,
                "major": libc::major(rdev), "minor": libc::minor(rdev),
                "fileMode": m.permissions().mode() & 0o777, "uid": m.uid(), "gid": m.gid()}));
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

/// The capabilities this process holds (permitted ∩ bounding), by name.
/// Pure: the oom_score_adj a container can get. Lowering it below the
/// current value needs CAP_SYS_RESOURCE (kubelet's -997 for Guaranteed pods
/// included); without it, keep the current value rather than fail the
/// container (runc would fail `write oom_score_adj: permission denied`).
pub fn effective_oom_score_adj(want: i64, current: i64, can_lower: bool) -> i64 {
    if want < current && !can_lower {
        current
    } else {
        want
    }
}

pub fn current_capabilities() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let m = mask("CapPrm:") & mask("CapBnd:");
    crate::security::ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| m & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Creates the missing mount points of `spec` in `rootfs` (outside /dev,
/// which the container mounts itself): an empty file for a bind mount of a
/// file, else a directory. A container in its own user namespace cannot
/// create them in a root owned by the host's root. Paths are resolved inside
/// the rootfs (symlinks cannot lead out).
fn create_mount_points(spec: &Value, rootfs: &Path) -> Result<(), LaunchError> {
    for m in spec["mounts"].as_array().into_iter().flatten() {
        let Some(dst) = m["destination"].as_str() else {
            continue;
        };
        if dst == "/dev" || dst.starts_with("/dev/") {
            continue;
        }
        let target =
            podrun_container::mounts::secure_join(rootfs, Path::new(dst)).map_err(|e| {
                LaunchError::Io {
                    what: "resolve mount point",
                    path: rootfs.join(dst.trim_start_matches('/')),
                    source: std::io::Error::other(e.to_string()),
                }
            })?;
        if std::fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        let is_file = m["type"] == "bind"
            && m["source"]
                .as_str()
                .and_then(|s| std::fs::metadata(s).ok())
                .is_some_and(|md| !md.is_dir());
        if is_file {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io("create mount point dir", parent))?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&target)
                .map_err(io("create mount point", &target))?;
        } else {
            std::fs::create_dir_all(&target).map_err(io("create mount point", &target))?;
        }
    }
    Ok(())
}

/// Writes `<pod_dir>/bundles/<container>/config.json`; returns the bundle dir.
/// Before that, creates missing subPath directories (with the volume's mode)
/// and, for a privileged container, lists the host's devices into the spec.
pub fn write_bundle(
    ctx: &LaunchContext,
    c: &Container,
    image: &ImageProcess,
    rootfs: &Path,
) -> Result<PathBuf, LaunchError> {
    let mut spec = build_spec(ctx, c, image, rootfs)?;
    let env = container_env(c, &pod_fields(ctx.pod))?;
    for m in resolve_mounts(ctx.pod, ctx.pod_dir, c, &env)? {
        if let Some(sub) = &m.sub_path {
            crate::volumes::ensure_sub_path(&m.field, &m.volume_path, sub)?;
        }
    }
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    let host_users = ctx.pod.spec.as_ref().and_then(|s| s.host_users) != Some(false);
    if privileged && host_users {
        spec["linux"]["devices"] = json!(host_devices());
    }
    let adds_all = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.as_ref())
        .is_some_and(|a| a.iter().any(|x| x.trim().eq_ignore_ascii_case("ALL")));
    if privileged || adds_all {
        // containerd: "all" means the capabilities the runtime itself holds (cap.Current()).
        let current = current_capabilities();
        for set in ["bounding", "effective", "permitted"] {
            if let Some(a) = spec["process"]["capabilities"][set].as_array_mut() {
                a.retain(|c| c.as_str().is_some_and(|c| current.iter().any(|x| x == c)));
            }
        }
    }
    if !host_users {
        create_mount_points(&spec, rootfs)?;
    }
    if let Some(want) = spec["process"]["oomScoreAdj"].as_i64() {
        let current = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let can_lower = current_capabilities()
            .iter()
            .any(|c| c == "CAP_SYS_RESOURCE");
        let eff = effective_oom_score_adj(want, current, can_lower);
        if eff != want {
            tracing::warn!(
                container = %c.name,
                want,
                used = eff,
                "oom_score_adj below the supervisor's needs CAP_SYS_RESOURCE, which this host withholds: keeping the supervisor's value"
            );
            spec["process"]["oomScoreAdj"] = json!(eff);
        }
    }
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

    #[test]
    fn oom_score_adj_is_clamped_without_sys_resource() {
        assert_eq!(effective_oom_score_adj(-997, 0, false), 0);
        assert_eq!(effective_oom_score_adj(-997, 0, true), -997);
        assert_eq!(effective_oom_score_adj(999, 0, false), 999);
        assert_eq!(effective_oom_score_adj(500, 600, false), 600);
    }

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
        // containerd: runAsUser replaces the image's whole USER ("5:6"); no
        // passwd entry for 1000 in the image, so the group is 0.
        assert_eq!(s["process"]["user"], json!({"uid": 1000, "gid": 0}));
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
    fn security_context_reaches_the_process() {
        let p = pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                "supplementalGroups": [4000]},
            "containers": [{"name": "c", "image": "x", "command": ["sh"], "securityContext": {
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["CHOWN"]}}}]
        }));
        let s = spec_for(&p, &[], &ImageProcess::default()).unwrap();
        assert_eq!(
            s["process"]["user"],
            json!({"uid": 1000, "gid": 3000, "additionalGids": [2000, 4000]})
        );
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(s["root"]["readonly"], true);
        let caps = &s["process"]["capabilities"];
        let bnd: Vec<String> = serde_json::from_value(caps["bounding"].clone()).unwrap();
        assert!(bnd.contains(&"CAP_NET_ADMIN".into()) && !bnd.contains(&"CAP_CHOWN".into()));
        assert_eq!(caps["effective"], json!([]), "non-root: no effective caps");
        assert_eq!(caps["ambient"], json!([]));
        assert_eq!(caps["inheritable"], json!([]));
        assert!(!s["linux"]["maskedPaths"].as_array().unwrap().is_empty());
        assert!(s["linux"].get("sysctl").is_none());
        let p = pod(json!({
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"},
                                            {"name": "kernel/shm_rmid_forced", "value": "1"}]},
            "containers": [{"name": "c", "image": "x", "command": ["sh"]}]
        }));
        let s = spec_for(&p, &[], &ImageProcess::default()).unwrap();
        assert_eq!(
            s["linux"]["sysctl"],
            json!({"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1"})
        );
    }

    #[test]
    fn defaults_are_containerd_s() {
        let p = pod(json!({"containers": [{"name": "c", "image": "x", "command": ["sh"]}]}));
        let s = spec_for(&p, &[], &ImageProcess::default()).unwrap();
        assert_eq!(s["process"]["noNewPrivileges"], false);
        assert_eq!(s["root"]["readonly"], false);
        let caps = &s["process"]["capabilities"];
        assert_eq!(caps["bounding"], json!(caps["effective"].clone()));
        let mut want: Vec<&str> = crate::security::DEFAULT_CAPABILITIES.to_vec();
        let mut got: Vec<String> = serde_json::from_value(caps["bounding"].clone()).unwrap();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn privileged_is_unconfined() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "command": ["sh"],
            "securityContext": {"privileged": true}}]}),
        );
        let s = spec_for(&p, &[], &ImageProcess::default()).unwrap();
        assert_eq!(
            s["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            crate::security::ALL_CAPABILITIES.len()
        );
        assert_eq!(s["linux"]["maskedPaths"], json!([]));
        assert_eq!(s["linux"]["readonlyPaths"], json!([]));
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let sys = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap()
            .clone();
        let opts: Vec<String> = serde_json::from_value(sys["options"].clone()).unwrap();
        assert!(opts.contains(&"rw".into()) && !opts.contains(&"ro".into()));
    }

    #[test]
    fn run_as_non_root_refuses_root_image() {
        let p = pod(json!({"securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "image": "x", "command": ["sh"]}]}));
        let e = spec_for(&p, &[], &ImageProcess::default()).unwrap_err();
        assert!(e.is_config_error());
        assert_eq!(
            e.to_string(),
            "container has runAsNonRoot and image will run as root (pod: \"ns/p\", container: c)"
        );
    }

    #[test]
    fn sub_paths_propagation_and_order() {
        let p = pod(json!({
            "volumes": [{"name": "v", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "x", "command": ["sh"],
                "env": [{"name": "D", "value": "dd"}],
                "volumeMounts": [
                    {"name": "v", "mountPath": "/a/b/c", "subPath": "x/y"},
                    {"name": "v", "mountPath": "/a", "subPathExpr": "e/$(D)",
                     "mountPropagation": "HostToContainer"},
                    {"name": "v", "mountPath": "/etc/hosts", "subPath": "h"}]}]
        }));
        let s = spec_for(&p, &[], &ImageProcess::default()).unwrap();
        let ms: Vec<(String, String, Value)> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "bind")
            .map(|m| {
                (
                    m["destination"].as_str().unwrap().to_string(),
                    m["source"].as_str().unwrap().to_string(),
                    m["options"].clone(),
                )
            })
            .collect();
        assert_eq!(
            ms,
            vec![
                (
                    "/etc/hostname".into(),
                    "/run/pods/u1/hostname".into(),
                    json!(["rbind", "rprivate"])
                ),
                (
                    "/a".into(),
                    "/run/pods/u1/volumes/v/e/dd".into(),
                    json!(["rbind", "rslave"])
                ),
                (
                    "/etc/hosts".into(),
                    "/run/pods/u1/volumes/v/h".into(),
                    json!(["rbind", "rprivate"])
                ),
                (
                    "/a/b/c".into(),
                    "/run/pods/u1/volumes/v/x/y".into(),
                    json!(["rbind", "rprivate"])
                ),
            ]
        );
        let bad = pod(json!({"volumes": [{"name": "v", "emptyDir": {}}],
            "containers": [{"name": "c", "image": "x", "command": ["sh"],
                "volumeMounts": [{"name": "v", "mountPath": "/a", "subPath": "../x"}]}]}));
        assert_eq!(
            spec_for(&bad, &[], &ImageProcess::default())
                .unwrap_err()
                .to_string(),
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../x\": must not contain '..'"
        );
    }

    #[test]
    fn host_users_false_maps_a_per_pod_range() {
        let p = pod(json!({"hostUsers": false,
            "containers": [{"name": "c", "image": "x", "command": ["sh"]}]}));
        let s = spec_for(&p, &[], &ImageProcess::default()).unwrap();
        let base = crate::security::user_namespace_base("u1");
        assert_eq!(
            s["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": base, "size": 65536}])
        );
        assert_eq!(s["linux"]["gidMappings"], s["linux"]["uidMappings"]);
        assert!(s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "user"})));
        assert!(s["process"].get("oomScoreAdj").is_none());
        let mounts = s["mounts"].as_array().unwrap();
        assert!(!mounts.iter().any(|m| m["destination"] == "/dev/mqueue"));
        let sys = mounts.iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["type"], "bind");
    }

    #[test]
    fn hosts_file_has_hostname() {
        assert!(hosts_content("web").contains("127.0.0.1\tweb\n"));
    }
}

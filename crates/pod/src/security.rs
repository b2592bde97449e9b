//! A container's securityContext as kubelet and containerd's CRI plugin turn
//! it into an OCI process: identity (runAsUser / runAsGroup over the image's
//! USER, supplementalGroups and fsGroup as additional gids), the runAsNonRoot
//! check with kubelet's messages, no_new_privs from allowPrivilegeEscalation,
//! capabilities over containerd's default set, privileged, readOnlyRootFilesystem
//! and procMount. Pure functions; `launch.rs` applies the result to the spec.
//!
//! Sources: kubelet `pkg/securitycontext` (DetermineEffectiveSecurityContext,
//! AddNoNewPrivileges), `pkg/kubelet/kuberuntime/security_context*.go`
//! (verifyRunAsNonRoot, determineEffectiveSecurityContext: fsGroup first, then
//! supplementalGroups), containerd `pkg/cri/.../container_create_linux.go`
//! (setOCICapabilities: add ALL, drop ALL, add each, drop each; privileged: all
//! capabilities, no masked/readonly paths, rw sysfs and cgroupfs, host devices).

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};

/// containerd's default capability set (oci.populateDefaultUnixSpec), which
/// the CRI plugin gives every non-privileged container.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability, in kernel number order (0 = CAP_CHOWN .. 40 = CAP_CHECKPOINT_RESTORE).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Why a container's securityContext cannot be applied. These are
/// configuration errors: kubelet reports them as `CreateContainerConfigError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")]
    ImageRunsAsRoot { pod: String, container: String },
    #[error(
        "container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {container})"
    )]
    RunAsUserIsRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: \"{pod}\", container: {container})")]
    NonNumericUser {
        pod: String,
        container: String,
        user: String,
    },
    #[error("container {container:?}: image user {user:?} is not numeric uid[:gid] (names are not resolved)")]
    UnresolvedUser { container: String, user: String },
    #[error("{field}: Unsupported value: {name:?}: unknown capability")]
    UnknownCapability { field: String, name: String },
    #[error("{field}: Localhost seccomp profile {profile:?}: podrun does not load Localhost profiles (use RuntimeDefault or Unconfined)")]
    LocalhostSeccomp { field: String, profile: String },
    #[error("{field}: Invalid value: {value}: must be between 0 and 2147483647")]
    BadId { field: String, value: i64 },
}

/// The container's securityContext with the pod's values filled in where the
/// container leaves them unset (DetermineEffectiveSecurityContext).
pub fn effective_security_context(
    pod: Option<&PodSecurityContext>,
    c: Option<&SecurityContext>,
) -> SecurityContext {
    let mut sc = c.cloned().unwrap_or_default();
    if let Some(p) = pod {
        sc.run_as_user = sc.run_as_user.or(p.run_as_user);
        sc.run_as_group = sc.run_as_group.or(p.run_as_group);
        sc.run_as_non_root = sc.run_as_non_root.or(p.run_as_non_root);
        if sc.se_linux_options.is_none() {
            sc.se_linux_options = p.se_linux_options.clone();
        }
        if sc.seccomp_profile.is_none() {
            sc.seccomp_profile = p.seccomp_profile.clone();
        }
        if sc.app_armor_profile.is_none() {
            sc.app_armor_profile = p.app_armor_profile.clone();
        }
    }
    sc
}

/// An image's `USER`, split (`uid`, `uid:gid`, `name`, `name:group`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageUser {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The user part when it is not numeric.
    pub name: Option<String>,
    /// The group part when it is not numeric.
    pub group_name: Option<String>,
}

/// Pure: splits an image config's `User` field.
pub fn parse_image_user(user: Option<&str>) -> ImageUser {
    let Some(u) = user.map(str::trim).filter(|u| !u.is_empty()) else {
        return ImageUser::default();
    };
    let (a, b) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let mut out = ImageUser::default();
    match a.parse::<u32>() {
        Ok(n) => out.uid = Some(n),
        Err(_) => out.name = Some(a.to_string()),
    }
    if let Some(b) = b.filter(|b| !b.is_empty()) {
        match b.parse::<u32>() {
            Ok(n) => out.gid = Some(n),
            Err(_) => out.group_name = Some(b.to_string()),
        }
    }
    out
}

/// The image's /etc/passwd and /etc/group, for names and default groups
/// (containerd's WithUser / WithAdditionalGIDs read them from the rootfs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    /// (name, uid, gid)
    pub passwd: Vec<(String, u32, u32)>,
    /// (name, gid, members)
    pub group: Vec<(String, u32, Vec<String>)>,
}

impl UserDb {
    /// Pure: parses passwd and group file contents; malformed lines are skipped.
    pub fn parse(passwd: &str, group: &str) -> UserDb {
        let fields = |l: &str| l.split(':').map(str::to_string).collect::<Vec<_>>();
        let passwd = podrun_container::passwd::entries(passwd)
            .map(|e| (e.name.to_string(), e.uid, e.gid))
            .collect();
        let group = group
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let f = fields(l);
                let members = f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                Some((f.first()?.clone(), f.get(2)?.parse().ok()?, members))
            })
            .collect();
        UserDb { passwd, group }
    }

    /// Reads `<rootfs>/etc/passwd` and `<rootfs>/etc/group` (missing files:
    /// empty), resolving symlinks inside the root, never to the host's files.
    pub fn load(rootfs: &std::path::Path) -> UserDb {
        let read = |f: &str| {
            podrun_container::mounts::secure_join(rootfs, std::path::Path::new(f))
                .ok()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default()
        };
        UserDb::parse(&read("etc/passwd"), &read("etc/group"))
    }

    fn by_name(&self, name: &str) -> Option<&(String, u32, u32)> {
        self.passwd.iter().find(|p| p.0 == name)
    }

    fn by_uid(&self, uid: u32) -> Option<&(String, u32, u32)> {
        self.passwd.iter().find(|p| p.1 == uid)
    }

    fn group_id(&self, name: &str) -> Option<u32> {
        self.group.iter().find(|g| g.0 == name).map(|g| g.1)
    }

    /// Groups listing `user` as a member, in file order.
    fn member_of(&self, user: &str) -> Vec<u32> {
        self.group
            .iter()
            .filter(|g| g.2.iter().any(|m| m == user))
            .map(|g| g.1)
            .collect()
    }
}

/// The process identity and privileges derived from a securityContext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSecurity {
    pub uid: u32,
    pub gid: u32,
    /// fsGroup, then supplementalGroups (duplicates and the primary gid removed).
    pub additional_gids: Vec<u32>,
    pub no_new_privileges: bool,
    pub privileged: bool,
    /// The bounding set ("CAP_X" names, kernel order).
    pub bounding: Vec<String>,
    /// Effective = permitted: the bounding set for uid 0, empty otherwise
    /// (a non-root process keeps no capability across execve, ambient is empty).
    pub effective: Vec<String>,
    pub read_only_root: bool,
    /// `procMount: Unmasked` or privileged: no masked / read-only /proc paths.
    pub unmasked_proc: bool,
    /// seccompProfile RuntimeDefault (container over pod), not privileged:
    /// the OCI `linux.seccomp` of [`runtime_default_seccomp`].
    pub seccomp: Option<serde_json::Value>,
}

/// `NET_ADMIN`, `cap_net_admin`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`, if known.
pub fn canonical_capability(name: &str) -> Option<&'static str> {
    let up = name.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    ALL_CAPABILITIES.iter().copied().find(|c| *c == full)
}

/// Pure: containerd's capability computation. `privileged` starts from every
/// capability, otherwise from [`DEFAULT_CAPABILITIES`]; then "ALL" in add,
/// "ALL" in drop, each add, each drop (so a drop wins over an add of the same
/// name). `field` is the path of the container's `securityContext.capabilities`.
pub fn capability_set(
    privileged: bool,
    add: &[String],
    drop: &[String],
    field: &str,
) -> Result<Vec<String>, SecurityError> {
    let mut set = [false; ALL_CAPABILITIES.len()];
    let idx = |c: &str| ALL_CAPABILITIES.iter().position(|x| *x == c);
    if privileged {
        // containerd: privileged gets every capability; add/drop are ignored.
        return Ok(ALL_CAPABILITIES.iter().map(|s| s.to_string()).collect());
    }
    for c in DEFAULT_CAPABILITIES {
        set[idx(c).expect("default caps are known")] = true;
    }
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    if add.iter().any(is_all) {
        set = [true; ALL_CAPABILITIES.len()];
    }
    if drop.iter().any(is_all) {
        set = [false; ALL_CAPABILITIES.len()];
    }
    for (list, which, on) in [(add, "add", true), (drop, "drop", false)] {
        for (i, name) in list.iter().enumerate() {
            if is_all(name) {
                continue;
            }
            let c = canonical_capability(name).ok_or_else(|| SecurityError::UnknownCapability {
                field: format!("{field}.{which}[{i}]"),
                name: name.clone(),
            })?;
            set[idx(c).expect("canonical")] = on;
        }
    }
    Ok(ALL_CAPABILITIES
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|(c, _)| c.to_string())
        .collect())
}

/// `"ns/name"`, as kubelet's klog.KObj prints a pod.
pub fn pod_ref(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `spec.containers[j]` or `spec.initContainers[j]` for the container named `name`.
pub fn container_field(pod: &Pod, name: &str) -> String {
    let spec = pod.spec.as_ref();
    if let Some(j) = spec.and_then(|s| s.containers.iter().position(|c| c.name == name)) {
        return format!("spec.containers[{j}]");
    }
    if let Some(j) = spec
        .and_then(|s| s.init_containers.as_ref())
        .and_then(|v| v.iter().position(|c| c.name == name))
    {
        return format!("spec.initContainers[{j}]");
    }
    if let Some(j) = spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .and_then(|v| v.iter().position(|c| c.name == name))
    {
        return format!("spec.ephemeralContainers[{j}]");
    }
    format!("container {name:?}")
}

fn id(field: String, v: i64) -> Result<u32, SecurityError> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v <= i32::MAX as u32)
        .ok_or(SecurityError::BadId { field, value: v })
}

/// Pure: the identity and privileges of container `c` of `pod` whose image
/// has `USER` `image_user`. Applies kubelet's runAsNonRoot check.
pub fn process_security(
    pod: &Pod,
    c: &Container,
    image_user: Option<&str>,
) -> Result<ProcessSecurity, SecurityError> {
    process_security_with(pod, c, image_user, &UserDb::default())
}

/// [`process_security`] with the image's user database: names are resolved,
/// a user without a group gets its passwd group (else 0), and the groups
/// listing the user as a member are added before fsGroup and
/// supplementalGroups (unless `supplementalGroupsPolicy: Strict`). As in
/// containerd, runAsUser replaces the image's whole USER (its group too).
pub fn process_security_with(
    pod: &Pod,
    c: &Container,
    image_user: Option<&str>,
    db: &UserDb,
) -> Result<ProcessSecurity, SecurityError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = effective_security_context(psc, c.security_context.as_ref());
    let cf = container_field(pod, &c.name);
    let img = parse_image_user(image_user);

    // verifyRunAsNonRoot.
    if sc.run_as_non_root == Some(true) {
        let err_pod = || pod_ref(pod);
        match sc.run_as_user {
            Some(0) => {
                return Err(SecurityError::RunAsUserIsRoot {
                    pod: err_pod(),
                    container: c.name.clone(),
                })
            }
            Some(_) => {}
            None => match (&img.uid, &img.name) {
                (Some(0), _) | (None, None) => {
                    return Err(SecurityError::ImageRunsAsRoot {
                        pod: err_pod(),
                        container: c.name.clone(),
                    })
                }
                (None, Some(n)) => {
                    return Err(SecurityError::NonNumericUser {
                        pod: err_pod(),
                        container: c.name.clone(),
                        user: n.clone(),
                    })
                }
                (Some(_), _) => {}
            },
        }
    }

    let unresolved = |u: String| SecurityError::UnresolvedUser {
        container: c.name.clone(),
        user: u,
    };
    // The user part: runAsUser, else the image's; the group part: runAsGroup,
    // else the image's only when runAsUser did not replace the user.
    let (uid, user_entry) = match sc.run_as_user {
        Some(u) => {
            let uid = id(format!("{cf}.securityContext.runAsUser"), u)?;
            (uid, db.by_uid(uid))
        }
        None => match (img.uid, &img.name) {
            (Some(u), _) => (u, db.by_uid(u)),
            (None, None) => (0, db.by_uid(0)),
            (None, Some(n)) => {
                let e = db.by_name(n).ok_or_else(|| unresolved(n.clone()))?;
                (e.1, Some(e))
            }
        },
    };
    let gid = match sc.run_as_group {
        Some(g) => id(format!("{cf}.securityContext.runAsGroup"), g)?,
        None => {
            let image_group =
                if sc.run_as_user.is_some() {
                    None
                } else {
                    match (img.gid, &img.group_name) {
                        (Some(g), _) => Some(g),
                        (None, Some(n)) => Some(db.group_id(n).ok_or_else(|| {
                            unresolved(image_user.unwrap_or_default().to_string())
                        })?),
                        (None, None) => None,
                    }
                };
            image_group.unwrap_or_else(|| user_entry.map(|e| e.2).unwrap_or(0))
        }
    };

    let strict = psc.and_then(|p| p.supplemental_groups_policy.as_deref()) == Some("Strict");
    let mut additional_gids = match user_entry {
        Some(e) if !strict => db.member_of(&e.0),
        _ => Vec::new(),
    };
    if let Some(g) = psc.and_then(|p| p.fs_group) {
        additional_gids.push(id("spec.securityContext.fsGroup".into(), g)?);
    }
    for (i, g) in psc
        .and_then(|p| p.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        additional_gids.push(id(
            format!("spec.securityContext.supplementalGroups[{i}]"),
            *g,
        )?);
    }
    let mut seen = vec![gid];
    additional_gids.retain(|g| {
        let new = !seen.contains(g);
        seen.push(*g);
        new
    });

    let privileged = sc.privileged == Some(true);
    let caps = sc.capabilities.as_ref();
    let bounding = capability_set(
        privileged,
        caps.and_then(|c| c.add.as_deref()).unwrap_or_default(),
        caps.and_then(|c| c.drop.as_deref()).unwrap_or_default(),
        &format!("{cf}.securityContext.capabilities"),
    )?;
    let effective = if uid == 0 {
        bounding.clone()
    } else {
        Vec::new()
    };
    // containerd: a privileged container runs without seccomp.
    let seccomp = match sc.seccomp_profile.as_ref() {
        _ if privileged => None,
        Some(p) if p.type_ == "RuntimeDefault" => Some(runtime_default_seccomp(&bounding)),
        Some(p) if p.type_ == "Localhost" => {
            let field = if c
                .security_context
                .as_ref()
                .is_some_and(|s| s.seccomp_profile.is_some())
            {
                format!("{cf}.securityContext.seccompProfile")
            } else {
                "spec.securityContext.seccompProfile".into()
            };
            return Err(SecurityError::LocalhostSeccomp {
                field,
                profile: p.localhost_profile.clone().unwrap_or_default(),
            });
        }
        _ => None,
    };
    Ok(ProcessSecurity {
        uid,
        gid,
        additional_gids,
        // AddNoNewPrivileges: only an explicit allowPrivilegeEscalation=false
        // (the API server rejects it together with privileged or CAP_SYS_ADMIN).
        no_new_privileges: !privileged && sc.allow_privilege_escalation == Some(false),
        privileged,
        bounding,
        effective,
        read_only_root: sc.read_only_root_filesystem == Some(true),
        unmasked_proc: privileged || sc.proc_mount.as_deref() == Some("Unmasked"),
        seccomp,
    })
}

/// Syscalls RuntimeDefault refuses (EPERM) unless the container holds one of
/// the listed capabilities: the blocks of moby's / containerd's default
/// profile, expressed as a deny list over an allow-by-default filter.
const SECCOMP_BLOCKED: &[(&[&str], &[&str])] = &[
    // Kernel keyring: not namespaced.
    (&["add_key", "keyctl", "request_key"], &[]),
    (&["bpf"], &["CAP_SYS_ADMIN", "CAP_BPF"]),
    (&["perf_event_open"], &["CAP_SYS_ADMIN", "CAP_PERFMON"]),
    (
        &["clock_adjtime", "clock_settime", "settimeofday", "stime"],
        &["CAP_SYS_TIME"],
    ),
    (
        &[
            "create_module",
            "delete_module",
            "finit_module",
            "init_module",
            "get_kernel_syms",
            "query_module",
        ],
        &["CAP_SYS_MODULE"],
    ),
    (&["ioperm", "iopl"], &["CAP_SYS_RAWIO"]),
    (&["kcmp"], &["CAP_SYS_PTRACE"]),
    (
        &["kexec_file_load", "kexec_load", "reboot"],
        &["CAP_SYS_BOOT"],
    ),
    (&["acct"], &["CAP_SYS_PACCT"]),
    (&["syslog"], &["CAP_SYSLOG"]),
    (
        &["get_mempolicy", "mbind", "move_pages", "set_mempolicy"],
        &["CAP_SYS_NICE"],
    ),
    (&["open_by_handle_at"], &["CAP_DAC_READ_SEARCH"]),
    (
        &[
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "quotactl",
            "swapon",
            "swapoff",
            "lookup_dcookie",
            "name_to_handle_at",
            "fanotify_init",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ],
        &["CAP_SYS_ADMIN"],
    ),
    (&["userfaultfd"], &["CAP_SYS_PTRACE"]),
    (
        &[
            "nfsservctl",
            "sysfs",
            "_sysctl",
            "uselib",
            "ustat",
            "vm86",
            "vm86old",
        ],
        &[],
    ),
    (
        &["io_uring_setup", "io_uring_enter", "io_uring_register"],
        &[],
    ),
];

/// clone(2) flags that create namespaces: refused without CAP_SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// Pure: the OCI `linux.seccomp` podrun applies for `seccompProfile:
/// RuntimeDefault`, given the container's capabilities. It refuses what the
/// moby / containerd default profile refuses (keyring, kernel modules, mount
/// and namespace syscalls, clock setting, reboot, io_uring, ...) with EPERM,
/// namespace flags of clone(2) too, and clone3 with ENOSYS so libc falls back
/// to clone. Capabilities re-allow their syscalls as in that profile. Unlike
/// the allow-list original, syscalls not listed here (newer ones) are allowed.
pub fn runtime_default_seccomp(caps: &[String]) -> serde_json::Value {
    use serde_json::json;
    let has = |need: &[&str]| need.iter().any(|n| caps.iter().any(|c| c == n));
    let mut rules = Vec::new();
    for (names, unless) in SECCOMP_BLOCKED {
        if !unless.is_empty() && has(unless) {
            continue;
        }
        rules.push(json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM}));
    }
    if !has(&["CAP_SYS_ADMIN"]) {
        for f in CLONE_NAMESPACE_FLAGS {
            rules.push(
                json!({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM,
                "args": [{"index": 0, "value": f, "valueTwo": f, "op": "SCMP_CMP_MASKED_EQ"}]}),
            );
        }
        rules.push(
            json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}),
        );
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    })
}

/// First host id of a `hostUsers: false` pod's user namespace: 65536 ids
/// starting at `65536 * (16 + fnv1a(pod uid) % 32000)`, i.e. one of 32000
/// slots between 1 Mi (clear of the usual /etc/subuid ranges from 100000) and
/// 2 Gi. Pure, so every container of the pod and the volume chown agree
/// without shared state; two pods collide with probability 1/32000 (kubelet
/// instead keeps an allocation table).
pub fn user_namespace_base(pod_uid: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pod_uid.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    65536 * (16 + (h % 32000) as u32)
}

/// Size of a pod's user namespace mapping.
pub const USER_NAMESPACE_SIZE: u32 = 65536;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}))
        .unwrap()
    }

    fn sec(p: &Pod, user: Option<&str>) -> Result<ProcessSecurity, SecurityError> {
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        process_security(p, &c, user)
    }

    #[test]
    fn image_user_forms() {
        assert_eq!(parse_image_user(None), ImageUser::default());
        assert_eq!(parse_image_user(Some("")), ImageUser::default());
        let u = parse_image_user(Some("5:6"));
        assert_eq!((u.uid, u.gid), (Some(5), Some(6)));
        let u = parse_image_user(Some("nginx:www"));
        assert_eq!(u.name.as_deref(), Some("nginx"));
        assert_eq!(u.group_name.as_deref(), Some("www"));
        assert_eq!(parse_image_user(Some("7")).gid, None);
    }

    #[test]
    fn container_wins_over_pod_and_groups_are_ordered() {
        let p = pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                "supplementalGroups": [4000, 2000, 3000]},
            "containers": [{"name": "c", "image": "x", "securityContext": {"runAsUser": 1001}}]}));
        let s = sec(&p, Some("5:6")).unwrap();
        assert_eq!((s.uid, s.gid), (1001, 3000));
        assert_eq!(s.additional_gids, vec![2000, 4000]);
        assert!(s.effective.is_empty(), "non-root keeps no effective caps");
        assert_eq!(s.bounding.len(), DEFAULT_CAPABILITIES.len());
        assert!(!s.no_new_privileges && !s.privileged && !s.read_only_root);
    }

    #[test]
    fn image_user_used_when_unset() {
        let p = pod(json!({"containers": [{"name": "c", "image": "x"}]}));
        let s = sec(&p, Some("5:6")).unwrap();
        assert_eq!((s.uid, s.gid), (5, 6));
        let s = sec(&p, None).unwrap();
        assert_eq!((s.uid, s.gid), (0, 0));
        assert_eq!(s.effective, s.bounding, "root keeps its bounding set");
        let e = sec(&p, Some("nginx")).unwrap_err().to_string();
        assert!(e.contains("nginx"), "{e}");
    }

    #[test]
    fn run_as_non_root_messages() {
        let p = pod(json!({"securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "image": "x"}]}));
        let want =
            "container has runAsNonRoot and image will run as root (pod: \"ns/p\", container: c)";
        assert_eq!(sec(&p, None).unwrap_err().to_string(), want);
        assert_eq!(sec(&p, Some("0:5")).unwrap_err().to_string(), want);
        assert_eq!(sec(&p, Some("1000")).unwrap().uid, 1000);
        assert_eq!(
            sec(&p, Some("nginx")).unwrap_err().to_string(),
            "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: \"ns/p\", container: c)"
        );
        let p = pod(json!({"securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "image": "x", "securityContext": {"runAsUser": 0}}]}));
        assert_eq!(
            sec(&p, Some("1000")).unwrap_err().to_string(),
            "container's runAsUser breaks non-root policy (pod: \"ns/p\", container: c)"
        );
        // The container may switch the check off.
        let p = pod(json!({"securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "image": "x", "securityContext": {"runAsNonRoot": false}}]}));
        assert_eq!(sec(&p, None).unwrap().uid, 0);
    }

    #[test]
    fn capabilities_add_drop_all() {
        let s = |a: &[&str], d: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            let d: Vec<String> = d.iter().map(|s| s.to_string()).collect();
            capability_set(false, &a, &d, "f")
        };
        let r = s(&["NET_ADMIN", "cap_sys_time"], &["CHOWN", "CAP_KILL"]).unwrap();
        assert!(r.contains(&"CAP_NET_ADMIN".into()) && r.contains(&"CAP_SYS_TIME".into()));
        assert!(!r.contains(&"CAP_CHOWN".into()) && !r.contains(&"CAP_KILL".into()));
        assert_eq!(r.len(), DEFAULT_CAPABILITIES.len());
        assert_eq!(s(&[], &["ALL"]).unwrap(), Vec::<String>::new());
        assert_eq!(
            s(&["NET_BIND_SERVICE"], &["ALL"]).unwrap(),
            vec!["CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(s(&["ALL"], &[]).unwrap().len(), ALL_CAPABILITIES.len());
        assert_eq!(
            s(&["ALL"], &["SYS_ADMIN"]).unwrap().len(),
            ALL_CAPABILITIES.len() - 1
        );
        assert_eq!(
            s(&["NET_ADMIN"], &["NET_ADMIN"]).unwrap().len(),
            DEFAULT_CAPABILITIES.len()
        );
        assert_eq!(
            s(&["BOGUS"], &[]).unwrap_err().to_string(),
            "f.add[0]: Unsupported value: \"BOGUS\": unknown capability"
        );
        assert_eq!(
            capability_set(true, &[], &["ALL".into()], "f")
                .unwrap()
                .len(),
            ALL_CAPABILITIES.len()
        );
    }

    #[test]
    fn privileged_nnp_readonly_procmount() {
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "securityContext":
            {"privileged": true, "readOnlyRootFilesystem": true}}]}),
        );
        let s = sec(&p, None).unwrap();
        assert!(s.privileged && s.unmasked_proc && s.read_only_root && !s.no_new_privileges);
        assert_eq!(s.effective.len(), ALL_CAPABILITIES.len());
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "securityContext":
            {"allowPrivilegeEscalation": false, "procMount": "Unmasked"}}]}),
        );
        let s = sec(&p, None).unwrap();
        assert!(s.no_new_privileges && s.unmasked_proc && !s.privileged);
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "securityContext":
            {"allowPrivilegeEscalation": true}}]}),
        );
        assert!(!sec(&p, None).unwrap().no_new_privileges);
    }

    #[test]
    fn field_paths_and_bad_ids() {
        let p = pod(json!({"initContainers": [{"name": "i", "image": "x"}],
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x",
                "securityContext": {"runAsUser": -1}}]}));
        assert_eq!(container_field(&p, "b"), "spec.containers[1]");
        assert_eq!(container_field(&p, "i"), "spec.initContainers[0]");
        let c = p.spec.as_ref().unwrap().containers[1].clone();
        assert_eq!(
            process_security(&p, &c, None).unwrap_err().to_string(),
            "spec.containers[1].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647"
        );
    }

    #[test]
    fn image_user_database() {
        let db = UserDb::parse(
            "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:102::/:/bin/false\nbad line\n",
            "root:x:0:\nwheel:x:10:root\nnginx:x:102:\nweb:x:300:nginx,other\n",
        );
        let p = pod(json!({"securityContext": {"fsGroup": 2000},
            "containers": [{"name": "c", "image": "x"}]}));
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let s = process_security_with(&p, &c, Some("nginx"), &db).unwrap();
        assert_eq!(
            (s.uid, s.gid, s.additional_gids.clone()),
            (101, 102, vec![300, 2000])
        );
        let s = process_security_with(&p, &c, None, &db).unwrap();
        assert_eq!(
            (s.uid, s.gid, s.additional_gids.clone()),
            (0, 0, vec![10, 2000])
        );
        let s = process_security_with(&p, &c, Some("101:web"), &db).unwrap();
        assert_eq!((s.uid, s.gid), (101, 300));
        assert!(process_security_with(&p, &c, Some("ghost"), &db)
            .unwrap_err()
            .to_string()
            .contains("ghost"));
        // runAsUser replaces the image's user and group: the passwd group of that uid, else 0.
        let p2 = pod(json!({"containers": [{"name": "c", "image": "x",
            "securityContext": {"runAsUser": 101}}]}));
        let c2 = p2.spec.as_ref().unwrap().containers[0].clone();
        let s = process_security_with(&p2, &c2, Some("5:6"), &db).unwrap();
        assert_eq!((s.uid, s.gid), (101, 102));
        let s = process_security_with(&p2, &c2, Some("5:6"), &UserDb::default()).unwrap();
        assert_eq!((s.uid, s.gid), (101, 0));
        // Strict: no groups from the image.
        let p3 = pod(
            json!({"securityContext": {"supplementalGroupsPolicy": "Strict"},
            "containers": [{"name": "c", "image": "x"}]}),
        );
        let c3 = p3.spec.as_ref().unwrap().containers[0].clone();
        assert!(process_security_with(&p3, &c3, None, &db)
            .unwrap()
            .additional_gids
            .is_empty());
    }

    #[test]
    fn seccomp_runtime_default_follows_capabilities() {
        let names = |v: &serde_json::Value| -> Vec<String> {
            v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["names"].as_array().unwrap().clone())
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        let dflt: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect();
        let p = runtime_default_seccomp(&dflt);
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        let n = names(&p);
        for s in [
            "mount", "unshare", "setns", "keyctl", "reboot", "clone", "clone3", "bpf",
        ] {
            assert!(n.contains(&s.to_string()), "{s} not blocked");
        }
        let mut with_admin = dflt.clone();
        with_admin.push("CAP_SYS_ADMIN".into());
        let n = names(&runtime_default_seccomp(&with_admin));
        assert!(!n.contains(&"mount".to_string()) && !n.contains(&"clone".to_string()));
        assert!(n.contains(&"keyctl".to_string()) && n.contains(&"reboot".to_string()));

        let pod_rd = pod(
            json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "x"},
                           {"name": "u", "image": "x", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
                           {"name": "p", "image": "x", "securityContext": {"privileged": true}}]}),
        );
        let cs = pod_rd.spec.as_ref().unwrap().containers.clone();
        assert!(process_security(&pod_rd, &cs[0], None)
            .unwrap()
            .seccomp
            .is_some());
        assert!(process_security(&pod_rd, &cs[1], None)
            .unwrap()
            .seccomp
            .is_none());
        assert!(process_security(&pod_rd, &cs[2], None)
            .unwrap()
            .seccomp
            .is_none());
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "securityContext":
            {"seccompProfile": {"type": "Localhost", "localhostProfile": "my.json"}}}]}),
        );
        assert_eq!(
            sec(&p, None).unwrap_err().to_string(),
            "spec.containers[0].securityContext.seccompProfile: Localhost seccomp profile \"my.json\": podrun does not load Localhost profiles (use RuntimeDefault or Unconfined)"
        );
    }

    #[test]
    fn user_db_stays_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::create_dir_all(d.path().join("x")).unwrap();
        std::fs::write(d.path().join("x/pw"), "app:x:7:8::/:/bin/sh\n").unwrap();
        // Absolute links resolve inside the root: /x/pw is the root's, /etc/group the root's (missing).
        std::os::unix::fs::symlink("/x/pw", d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/group", d.path().join("etc/group")).unwrap();
        let db = UserDb::load(d.path());
        assert_eq!(db.passwd, vec![("app".to_string(), 7, 8)]);
        assert!(db.group.is_empty(), "the host's /etc/group was read");
    }

    #[test]
    fn user_namespace_slots_are_aligned_and_in_range() {
        for uid in ["a", "b", "0b0e3c2a-1111-2222-3333-444455556666", ""] {
            let b = user_namespace_base(uid);
            assert_eq!(b % 65536, 0);
            assert!(b >= 1 << 20 && u64::from(b) + 65536 <= 1 << 31, "{b}");
        }
        assert_ne!(user_namespace_base("a"), user_namespace_base("b"));
        assert_eq!(user_namespace_base("x"), user_namespace_base("x"));
    }
}

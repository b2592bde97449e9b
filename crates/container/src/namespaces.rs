//! Which namespaces a container gets: new ones (clone/unshare flags) and joined ones
//! (opened by path before any fork, so every later step works on file descriptors).

use crate::error::{Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/<pid>/ns/<name> file name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub struct Joined {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

pub struct NsPlan {
    /// Namespaces to create, all types.
    pub new: CloneFlags,
    /// Namespaces to join, except user and pid (held separately).
    pub join: Vec<Joined>,
    pub user_join: Option<Joined>,
    pub pid_join: Option<Joined>,
    pub time_join: Option<Joined>,
}

impl NsPlan {
    pub fn from_spec(spec: &Spec) -> Result<Self> {
        let mut plan = NsPlan {
            new: CloneFlags::empty(),
            join: Vec::new(),
            user_join: None,
            pid_join: None,
            time_join: None,
        };
        let Some(linux) = spec.linux() else {
            return Ok(plan);
        };
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            match ns.path() {
                None => plan.new |= flag(ns.typ()),
                Some(p) => {
                    let fd = open_ns(p, ns.typ())
                        .map_err(|msg| Error::spec(format!("linux.namespaces[{i}].path"), msg))?;
                    let j = Joined {
                        typ: ns.typ(),
                        path: p.clone(),
                        fd,
                    };
                    match ns.typ() {
                        LinuxNamespaceType::User => plan.user_join = Some(j),
                        LinuxNamespaceType::Pid => plan.pid_join = Some(j),
                        LinuxNamespaceType::Time => plan.time_join = Some(j),
                        _ => plan.join.push(j),
                    }
                }
            }
        }
        Ok(plan)
    }

    pub fn new_user(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWUSER)
    }
    pub fn new_pid(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWPID)
    }
    pub fn new_mount(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWNS)
    }
    /// A mount namespace, new or joined: the rootfs is set up in it (runc does the same).
    pub fn has_mount(&self) -> bool {
        self.new_mount() || self.join.iter().any(|j| j.typ == LinuxNamespaceType::Mount)
    }

    /// One clone3 with every new namespace works unless a new time namespace needs offsets, or a joined namespace must be entered
    /// before a new user namespace exists (or the user namespace itself is joined): then the
    /// child joins first, unshares, and forks the init (runc's three stages).
    pub fn single_clone(&self) -> bool {
        let joins_before_new_user = self.new_user() && !self.join.is_empty();
        self.user_join.is_none() && !joins_before_new_user && !self.new_time()
    }

    /// A new time namespace takes its offsets before its first member exists, so the init
    /// must be forked into it after the runtime wrote them.
    pub fn new_time(&self) -> bool {
        self.new
            .contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
    }
}

fn open_ns(p: &std::path::Path, t: LinuxNamespaceType) -> std::result::Result<OwnedFd, String> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    use std::os::fd::FromRawFd;
    let raw = open(p, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {}: {e}", p.display()))?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // NS_GET_NSTYPE tells whether the file is a namespace of the declared type.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: the ioctl takes no argument and only reads the descriptor's namespace type.
    let got = unsafe { libc::ioctl(raw, NS_GET_NSTYPE as _) };
    if got < 0 {
        return Err(format!("{} is not a namespace file", p.display()));
    }
    if got != flag(t).bits() {
        return Err(format!(
            "{} is not a {} namespace",
            p.display(),
            proc_name(t)
        ));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn joins_own_namespaces_and_rejects_wrong_type() {
        let v = serde_json::json!({"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "linux":{"namespaces":[{"type":"network","path":"/proc/self/ns/net"},{"type":"pid"},{"type":"mount"}]}});
        let s: Spec = serde_json::from_value(v).unwrap();
        let p = NsPlan::from_spec(&s).unwrap();
        assert_eq!(p.join.len(), 1);
        assert!(p.new_pid() && p.new_mount() && !p.new_user());
        assert!(p.single_clone());
        let v = serde_json::json!({"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "linux":{"namespaces":[{"type":"ipc","path":"/proc/self/ns/net"}]}});
        let s: Spec = serde_json::from_value(v).unwrap();
        let e = NsPlan::from_spec(&s).err().unwrap().to_string();
        assert!(
            e.contains("linux.namespaces[0].path") && e.contains("not a ipc namespace"),
            "{e}"
        );
    }
}

//! A new network namespace, made by a helper thread on the other CPU while the runtime
//! parses the bundle and prepares the init's clone, instead of by the clone itself.
//!
//! Creating a network namespace is the costliest part of starting a container's namespaces
//! (~0.3-0.6 ms here: the loopback device, sysctl tables, every subsystem's per-namespace
//! state), and it is pure kernel work that needs nothing from the clone. Without a user
//! namespace to own it, a thread can make it, keep a descriptor of it, and the init enters
//! it with `setns` before anything that depends on it (init.rs). The thread must have ended
//! before the clone (see cpu_helper.rs).
//!
//! The helper starts before the runtime has parsed config.json, so it first reads the one
//! thing it needs from the file itself ([`wants_netns`]); the runtime's own parse decides
//! whether the namespace is used (create.rs).

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use serde::Deserialize;
use std::os::fd::{FromRawFd, OwnedFd};

/// Only what decides the helper's work: `linux.namespaces` (every other field is skipped).
#[derive(Deserialize)]
struct Config {
    linux: Option<Linux>,
}

#[derive(Deserialize)]
struct Linux {
    namespaces: Option<Vec<LinuxNamespace>>,
}

/// Whether a network namespace is made aside for a spec's `linux.namespaces`: a new network
/// namespace, and neither a user namespace (which must own it) nor a new time namespace
/// (which needs the staged clone; see NsPlan::single_clone). The one rule for the helper
/// (over its own read of config.json) and the runtime (over its full parse).
pub(crate) fn made_aside(ns: &[LinuxNamespace]) -> bool {
    let new = |t| ns.iter().any(|n| n.typ() == t && n.path().is_none());
    new(LinuxNamespaceType::Network)
        && !ns.iter().any(|n| n.typ() == LinuxNamespaceType::User)
        && !new(LinuxNamespaceType::Time)
}

/// [`made_aside`] for the config.json text `data`; false for what does not parse.
pub(crate) fn wants_netns(data: &[u8]) -> bool {
    serde_json::from_slice::<Config>(data)
        .is_ok_and(|c| made_aside(&c.linux.and_then(|l| l.namespaces).unwrap_or_default()))
}

/// Move the calling thread into a new network namespace and return a descriptor of it. Meant
/// for a helper thread that ends right after (CLONE_NEWNET does not need a single-threaded
/// process; the thread's namespace dies with it, the descriptor keeps it).
pub(crate) fn new_netns() -> Result<OwnedFd> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys("unshare network namespace", e))?;
    let fd = nix::fcntl::open(
        "/proc/thread-self/ns/net",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::sys("open /proc/thread-self/ns/net", e))?;
    // SAFETY: a fresh descriptor from open().
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn wants_a_netns_only_for_a_new_one_without_user_or_new_time_namespaces() {
        let cfg = |ns: &str| format!(r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":[{ns}]}}}}"#);
        let net = r#"{"type":"network"}"#;
        assert!(wants_netns(cfg(net).as_bytes()));
        assert!(wants_netns(
            cfg(&format!(r#"{{"type":"pid"}},{net},{{"type":"mount"}}"#)).as_bytes()
        ));
        assert!(!wants_netns(
            cfg(r#"{"type":"network","path":"/run/netns/x"}"#).as_bytes()
        ));
        assert!(!wants_netns(
            cfg(&format!(r#"{net},{{"type":"user"}}"#)).as_bytes()
        ));
        assert!(!wants_netns(
            cfg(&format!(
                r#"{net},{{"type":"user","path":"/proc/1/ns/user"}}"#
            ))
            .as_bytes()
        ));
        assert!(!wants_netns(
            cfg(&format!(r#"{net},{{"type":"time"}}"#)).as_bytes()
        ));
        assert!(wants_netns(
            cfg(&format!(
                r#"{net},{{"type":"time","path":"/proc/1/ns/time"}}"#
            ))
            .as_bytes()
        ));
        assert!(!wants_netns(cfg(r#"{"type":"pid"}"#).as_bytes()));
        assert!(!wants_netns(br#"{"ociVersion":"1.0.2"}"#));
        assert!(!wants_netns(b"{not json"));
    }

    /// As root: the thread's namespace is a new one, and the caller's is untouched.
    #[test]
    fn makes_a_new_network_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let own = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        let fd = crate::cpu_helper::Helper::spawn(new_netns)
            .unwrap()
            .join()
            .unwrap();
        let new = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        assert_ne!(own.ino(), new.ino(), "the thread's namespace is a new one");
        let after = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        assert_eq!(own.ino(), after.ino(), "the caller stays in its namespace");
    }
}
